//! The AWS backend below the HTTP layer (aws-smithy-mocks): waiting, retrying, call order
//! and rollback, which moto cannot show (it is synchronous and never busy).

use std::time::Duration;

use aws_sdk_ec2::operation::create_vpc::CreateVpcOutput;
use aws_sdk_ec2::operation::modify_vpc_attribute::ModifyVpcAttributeOutput;
use aws_sdk_eks::operation::describe_cluster::DescribeClusterOutput;
use aws_sdk_eks::types::{Cluster, ClusterStatus};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::RetryConfig;

use glrunner_infra::aws::{AwsCluster, AwsNetwork};
use glrunner_infra::progress::NoProgress;
use glrunner_infra::resource::{
    CreateRequest, Resource, ResourceKind, ResourceState, ResourceTags,
};
use glrunner_infra::wait::{retry, wait_for};
use glrunner_infra::{ClusterProvisioner, Error, NetworkProvisioner, WaitPolicy};

fn eks_error(status: u16, code: &'static str, message: &'static str) -> HttpResponse {
    let mut response = HttpResponse::new(
        StatusCode::try_from(status).unwrap(),
        SdkBody::from(format!(r#"{{"message":"{message}"}}"#)),
    );
    response.headers_mut().insert("x-amzn-ErrorType", code);
    response
        .headers_mut()
        .insert("content-type", "application/json");
    response
}

fn ec2_error(code: &str) -> HttpResponse {
    let body = format!(
        "<Response><Errors><Error><Code>{code}</Code><Message>{code} for test</Message></Error></Errors><RequestID>r</RequestID></Response>"
    );
    HttpResponse::new(StatusCode::try_from(400).unwrap(), SdkBody::from(body))
}

fn cluster_with(eks: aws_sdk_eks::Client) -> AwsCluster {
    let iam = mock_client!(aws_sdk_iam, []);
    let sts = mock_client!(aws_sdk_sts, []);
    AwsCluster::from_clients(eks, iam, sts)
}

fn describe_status(status: ClusterStatus) -> DescribeClusterOutput {
    DescribeClusterOutput::builder()
        .cluster(
            Cluster::builder()
                .name("c")
                .arn("arn:aws:eks:us-east-1:1:cluster/c")
                .status(status)
                .build(),
        )
        .build()
}

#[tokio::test(start_paused = true)]
async fn waits_for_a_creating_cluster_with_backoff() {
    let rule = mock!(aws_sdk_eks::Client::describe_cluster)
        .sequence()
        .output(|| describe_status(ClusterStatus::Creating))
        .times(3)
        .output(|| describe_status(ClusterStatus::Active))
        .build();
    let cluster = cluster_with(mock_client!(aws_sdk_eks, RuleMode::Sequential, [&rule]));
    let policy = WaitPolicy::default();
    let start = tokio::time::Instant::now();
    let ready = wait_for(
        "cluster",
        "cluster ACTIVE",
        policy.cluster_timeout,
        &policy,
        &NoProgress,
        || cluster.describe(ResourceKind::Cluster, "c"),
        |r| r.is_some_and(|r| r.state == ResourceState::Available),
    )
    .await
    .unwrap();
    assert_eq!(ready.unwrap().state, ResourceState::Available);
    assert_eq!(rule.num_calls(), 4);
    // Polls at 0, 5, 15 and 35 s: the interval doubles from 5 s.
    assert_eq!(start.elapsed(), Duration::from_secs(35));
}

#[tokio::test(start_paused = true)]
async fn wait_is_bounded_and_says_what_it_waited_for() {
    let rule = mock!(aws_sdk_eks::Client::describe_cluster)
        .sequence()
        .output(|| describe_status(ClusterStatus::Creating))
        .repeatedly()
        .build();
    let cluster = cluster_with(mock_client!(aws_sdk_eks, RuleMode::Sequential, [&rule]));
    let mut policy = WaitPolicy::default();
    policy.cluster_timeout = Duration::from_secs(120);
    let err = wait_for(
        "cluster",
        "EKS cluster c to become ACTIVE",
        policy.cluster_timeout,
        &policy,
        &NoProgress,
        || cluster.describe(ResourceKind::Cluster, "c"),
        |r| r.is_some_and(|r| r.state == ResourceState::Available),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, Error::Timeout { ref waiting_for, .. } if waiting_for.contains("cluster c")),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_5xx_burst_during_a_wait_is_waited_out_within_the_bound() {
    // EKS answers 500 ServerException to a few polls (more than the SDK retries when it runs
    // with one attempt): a read, so the wait keeps polling instead of failing the teardown.
    let rule = mock!(aws_sdk_eks::Client::describe_cluster)
        .sequence()
        .http_response(|| eks_error(500, "ServerException", "internal error"))
        .times(3)
        .output(|| describe_status(ClusterStatus::Active))
        .build();
    let cluster = cluster_with(mock_client!(
        aws_sdk_eks,
        RuleMode::Sequential,
        [&rule],
        |c| c.retry_config(RetryConfig::disabled())
    ));
    let policy = WaitPolicy::default();
    let ready = wait_for(
        "cluster",
        "EKS cluster c to become ACTIVE",
        policy.cluster_timeout,
        &policy,
        &NoProgress,
        || cluster.describe(ResourceKind::Cluster, "c"),
        |r| r.is_some_and(|r| r.state == ResourceState::Available),
    )
    .await
    .unwrap();
    assert_eq!(ready.unwrap().state, ResourceState::Available);
    assert_eq!(rule.num_calls(), 4, "three 5xx answers, then ACTIVE");
    // A 5xx maps to the transient category, a 4xx it does not know stays a hard error.
    let rule = mock!(aws_sdk_eks::Client::describe_cluster)
        .sequence()
        .http_response(|| eks_error(503, "ServiceUnavailableException", "try later"))
        .http_response(|| eks_error(400, "InvalidRequestException", "bad"))
        .build();
    let cluster = cluster_with(mock_client!(
        aws_sdk_eks,
        RuleMode::Sequential,
        [&rule],
        |c| c.retry_config(RetryConfig::disabled())
    ));
    let err = cluster
        .describe(ResourceKind::Cluster, "c")
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Unavailable { .. }) && err.is_transient(),
        "{err}"
    );
    let err = cluster
        .describe(ResourceKind::Cluster, "c")
        .await
        .unwrap_err();
    assert!(!err.is_transient(), "{err}");
}

#[tokio::test(start_paused = true)]
async fn failed_cluster_stops_the_wait() {
    let rule = mock!(aws_sdk_eks::Client::describe_cluster)
        .then_output(|| describe_status(ClusterStatus::Failed));
    let cluster = cluster_with(mock_client!(aws_sdk_eks, RuleMode::MatchAny, [&rule]));
    let policy = WaitPolicy::default();
    let err = wait_for(
        "cluster",
        "c",
        policy.cluster_timeout,
        &policy,
        &NoProgress,
        || cluster.describe(ResourceKind::Cluster, "c"),
        |r| r.is_some_and(|r| r.state == ResourceState::Available),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Failed { .. }), "{err}");
}

#[tokio::test(start_paused = true)]
async fn fargate_profile_delete_waits_out_resource_in_use() {
    // EKS answers 409 ResourceInUseException (not modelled for this operation) while another
    // profile is DELETING; the SDK does not retry 409, our retry loop does.
    let rule = mock!(aws_sdk_eks::Client::delete_fargate_profile)
        .sequence()
        .http_response(|| eks_error(409, "ResourceInUseException", "Cannot delete Fargate Profile b because cluster c currently has Fargate profile a in status DELETING"))
        .times(2)
        .output(|| aws_sdk_eks::operation::delete_fargate_profile::DeleteFargateProfileOutput::builder().build())
        .build();
    let cluster = cluster_with(mock_client!(
        aws_sdk_eks,
        RuleMode::Sequential,
        [&rule],
        |c| c.retry_config(RetryConfig::disabled())
    ));
    let profile = Resource {
        kind: ResourceKind::FargateProfile,
        id: "c/b".into(),
        key: "fargate-profile".into(),
        arn: None,
        state: ResourceState::Available,
    };
    let first = cluster.delete(&profile).await.unwrap_err();
    assert!(
        matches!(first, Error::Conflict { ref message, .. } if message.contains("in status DELETING")),
        "{first}"
    );
    let policy = WaitPolicy::default();
    retry(
        "c/b",
        policy.fargate_profile_timeout,
        &policy,
        &NoProgress,
        || cluster.delete(&profile),
    )
    .await
    .unwrap();
    assert_eq!(rule.num_calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn throttled_create_is_retried() {
    let rule = mock!(aws_sdk_ec2::Client::create_vpc)
        .sequence()
        .http_response(|| ec2_error("RequestLimitExceeded"))
        .output(|| {
            CreateVpcOutput::builder()
                .vpc(aws_sdk_ec2::types::Vpc::builder().vpc_id("vpc-1").build())
                .build()
        })
        .build();
    let modify = mock!(aws_sdk_ec2::Client::modify_vpc_attribute)
        .then_output(|| ModifyVpcAttributeOutput::builder().build());
    let ec2 = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&rule, &modify], |c| c
        .retry_config(RetryConfig::disabled()));
    let network = AwsNetwork::from_client(ec2);
    let tags = ResourceTags {
        stack: "s".into(),
        key: "vpc".into(),
        extra: Default::default(),
    };
    let request = CreateRequest::Vpc {
        cidr: "10.0.0.0/16".parse().unwrap(),
    };
    let policy = WaitPolicy::default();
    let vpc = retry("vpc", policy.retry_timeout, &policy, &NoProgress, || {
        network.create(&request, &tags)
    })
    .await
    .unwrap();
    assert_eq!(vpc.id, "vpc-1");
    assert_eq!(rule.num_calls(), 2);
    // DNS support and DNS hostnames: one attribute per call.
    assert_eq!(modify.num_calls(), 2);
}

#[tokio::test]
async fn half_created_vpc_is_rolled_back() {
    let create = mock!(aws_sdk_ec2::Client::create_vpc).then_output(|| {
        CreateVpcOutput::builder()
            .vpc(aws_sdk_ec2::types::Vpc::builder().vpc_id("vpc-2").build())
            .build()
    });
    let modify = mock!(aws_sdk_ec2::Client::modify_vpc_attribute)
        .then_http_response(|| ec2_error("UnauthorizedOperation"));
    let delete = mock!(aws_sdk_ec2::Client::delete_vpc)
        .match_requests(|r| r.vpc_id() == Some("vpc-2"))
        .then_output(|| aws_sdk_ec2::operation::delete_vpc::DeleteVpcOutput::builder().build());
    let ec2 = mock_client!(
        aws_sdk_ec2,
        RuleMode::Sequential,
        [&create, &modify, &delete],
        |c| c.retry_config(RetryConfig::disabled())
    );
    let network = AwsNetwork::from_client(ec2);
    let tags = ResourceTags {
        stack: "s".into(),
        key: "vpc".into(),
        extra: Default::default(),
    };
    let err = network
        .create(
            &CreateRequest::Vpc {
                cidr: "10.0.0.0/16".parse().unwrap(),
            },
            &tags,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
    assert_eq!(delete.num_calls(), 1, "the VPC was deleted again");
}

#[tokio::test]
async fn internet_gateway_is_detached_before_deletion() {
    use aws_sdk_ec2::operation::describe_internet_gateways::DescribeInternetGatewaysOutput;
    use aws_sdk_ec2::types::{InternetGateway, InternetGatewayAttachment};
    let describe = mock!(aws_sdk_ec2::Client::describe_internet_gateways).then_output(|| {
        DescribeInternetGatewaysOutput::builder()
            .internet_gateways(
                InternetGateway::builder()
                    .internet_gateway_id("igw-1")
                    .attachments(InternetGatewayAttachment::builder().vpc_id("vpc-1").build())
                    .build(),
            )
            .build()
    });
    let detach = mock!(aws_sdk_ec2::Client::detach_internet_gateway)
        .match_requests(|r| r.vpc_id() == Some("vpc-1"))
        .then_output(|| {
            aws_sdk_ec2::operation::detach_internet_gateway::DetachInternetGatewayOutput::builder()
                .build()
        });
    let delete = mock!(aws_sdk_ec2::Client::delete_internet_gateway).then_output(|| {
        aws_sdk_ec2::operation::delete_internet_gateway::DeleteInternetGatewayOutput::builder()
            .build()
    });
    // Sequential mode fails the test if the calls come in another order.
    let ec2 = mock_client!(
        aws_sdk_ec2,
        RuleMode::Sequential,
        [&describe, &detach, &delete]
    );
    let igw = Resource {
        kind: ResourceKind::InternetGateway,
        id: "igw-1".into(),
        key: "igw".into(),
        arn: None,
        state: ResourceState::Available,
    };
    AwsNetwork::from_client(ec2).delete(&igw).await.unwrap();
    assert_eq!(
        (describe.num_calls(), detach.num_calls(), delete.num_calls()),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn not_found_codes_map_to_not_found() {
    let rule = mock!(aws_sdk_ec2::Client::delete_subnet)
        .then_http_response(|| ec2_error("InvalidSubnetID.NotFound"));
    let ec2 = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&rule]);
    let subnet = Resource {
        kind: ResourceKind::Subnet,
        id: "subnet-1".into(),
        key: String::new(),
        arn: None,
        state: ResourceState::Available,
    };
    let err = AwsNetwork::from_client(ec2)
        .delete(&subnet)
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    let dependency = mock!(aws_sdk_ec2::Client::delete_vpc)
        .then_http_response(|| ec2_error("DependencyViolation"));
    let ec2 = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&dependency]);
    let vpc = Resource {
        kind: ResourceKind::Vpc,
        id: "vpc-1".into(),
        key: String::new(),
        arn: None,
        state: ResourceState::Available,
    };
    let err = AwsNetwork::from_client(ec2).delete(&vpc).await.unwrap_err();
    assert!(matches!(err, Error::DependencyViolation { .. }), "{err}");
}

// ---------------------------------------------------------------------------------------------
// What a first run on a real account hits (issue 9), at the SDK level.

#[tokio::test]
async fn availability_zones_leave_out_local_zones_and_keep_zone_ids() {
    use aws_sdk_ec2::operation::describe_availability_zones::DescribeAvailabilityZonesOutput;
    use aws_sdk_ec2::types::AvailabilityZone as Zone;
    // AWS lists opted-in Local Zones too unless asked not to; answer with one anyway.
    let rule = mock!(aws_sdk_ec2::Client::describe_availability_zones)
        .match_requests(|r| {
            r.filters()
                .iter()
                .any(|f| f.name() == Some("zone-type") && f.values() == ["availability-zone"])
        })
        .then_output(|| {
            DescribeAvailabilityZonesOutput::builder()
                .availability_zones(
                    Zone::builder()
                        .zone_name("us-west-2-lax-1a")
                        .zone_id("usw2-lax1-az1")
                        .zone_type("local-zone")
                        .build(),
                )
                .availability_zones(
                    Zone::builder()
                        .zone_name("us-west-2b")
                        .zone_id("usw2-az1")
                        .zone_type("availability-zone")
                        .build(),
                )
                .availability_zones(
                    Zone::builder()
                        .zone_name("us-west-2a")
                        .zone_id("usw2-az2")
                        .zone_type("availability-zone")
                        .build(),
                )
                .build()
        });
    let ec2 = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&rule]);
    let zones = AwsNetwork::from_client(ec2)
        .availability_zones()
        .await
        .unwrap();
    assert_eq!(
        zones,
        [
            glrunner_infra::AvailabilityZone::new("us-west-2a", "usw2-az2"),
            glrunner_infra::AvailabilityZone::new("us-west-2b", "usw2-az1"),
        ]
    );
    assert_eq!(
        rule.num_calls(),
        1,
        "the request carried the zone-type filter"
    );
}

#[tokio::test(start_paused = true)]
async fn a_new_vpc_not_yet_visible_to_modify_vpc_attribute_is_retried() {
    let create = mock!(aws_sdk_ec2::Client::create_vpc).then_output(|| {
        CreateVpcOutput::builder()
            .vpc(aws_sdk_ec2::types::Vpc::builder().vpc_id("vpc-3").build())
            .build()
    });
    let modify = mock!(aws_sdk_ec2::Client::modify_vpc_attribute)
        .sequence()
        .http_response(|| ec2_error("InvalidVpcID.NotFound"))
        .times(2)
        .output(|| ModifyVpcAttributeOutput::builder().build())
        .repeatedly()
        .build();
    let delete = mock!(aws_sdk_ec2::Client::delete_vpc)
        .then_output(|| aws_sdk_ec2::operation::delete_vpc::DeleteVpcOutput::builder().build());
    let ec2 = mock_client!(
        aws_sdk_ec2,
        RuleMode::MatchAny,
        [&create, &modify, &delete],
        |c| c.retry_config(RetryConfig::disabled())
    );
    let vpc = AwsNetwork::from_client(ec2)
        .create(
            &CreateRequest::Vpc {
                cidr: "10.0.0.0/16".parse().unwrap(),
            },
            &ResourceTags {
                stack: "s".into(),
                key: "vpc".into(),
                extra: Default::default(),
            },
        )
        .await
        .unwrap();
    assert_eq!(vpc.id, "vpc-3");
    assert_eq!(modify.num_calls(), 4, "two NotFound, then both attributes");
    assert_eq!(delete.num_calls(), 0, "no rollback");
}

fn sts_caller(arn: &'static str) -> aws_sdk_sts::Client {
    let rule = mock!(aws_sdk_sts::Client::get_caller_identity).then_output(move || {
        aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityOutput::builder()
            .arn(arn)
            .account("123456789012")
            .build()
    });
    mock_client!(aws_sdk_sts, RuleMode::MatchAny, [&rule])
}

#[tokio::test]
async fn an_assumed_role_caller_is_named_by_its_role_arn_with_the_path() {
    let get_role = mock!(aws_sdk_iam::Client::get_role)
        .match_requests(|r| r.role_name() == Some("AWSReservedSSO_Admin_0123"))
        .then_output(|| {
            aws_sdk_iam::operation::get_role::GetRoleOutput::builder()
                .role(
                    aws_sdk_iam::types::Role::builder()
                        .path("/aws-reserved/sso.amazonaws.com/us-east-1/")
                        .role_name("AWSReservedSSO_Admin_0123")
                        .role_id("AROA")
                        .arn("arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/us-east-1/AWSReservedSSO_Admin_0123")
                        .create_date(aws_smithy_types::DateTime::from_secs(0))
                        .build()
                        .unwrap(),
                )
                .build()
        });
    let cluster = AwsCluster::from_clients(
        mock_client!(aws_sdk_eks, []),
        mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&get_role]),
        sts_caller(
            "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Admin_0123/me@example.com",
        ),
    );
    assert_eq!(
        cluster.caller_arn().await.unwrap(),
        "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/us-east-1/AWSReservedSSO_Admin_0123"
    );
    let federated = AwsCluster::from_clients(
        mock_client!(aws_sdk_eks, []),
        mock_client!(aws_sdk_iam, []),
        sts_caller("arn:aws:sts::123456789012:federated-user/bob"),
    );
    let err = federated.caller_arn().await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
}

#[tokio::test]
async fn eks_answers_map_to_what_they_mean() {
    // (HTTP status, EKS error type, message, what the error must be)
    type Case = (u16, &'static str, &'static str, fn(&Error) -> bool);
    let cases: [Case; 4] = [
        (
            400,
            "InvalidParameterException",
            "Role with arn: arn:aws:iam::1:role/glrunner/x, could not be assumed because it does not exist or the trusted entity is not correct",
            |e| matches!(e, Error::Propagating { .. }),
        ),
        (
            409,
            "ResourceInUseException",
            "The specified access entry resource is already in use on this cluster.",
            Error::is_already_exists,
        ),
        (
            400,
            "ClientException",
            "No cluster found for name: c.",
            Error::is_not_found,
        ),
        (
            409,
            "ResourceInUseException",
            "Cannot delete Fargate Profile b because cluster c currently has Fargate profile a in status DELETING",
            |e| matches!(e, Error::Conflict { .. }),
        ),
    ];
    for (status, code, message, expected) in cases {
        let rule = mock!(aws_sdk_eks::Client::delete_cluster)
            .then_http_response(move || eks_error(status, code, message));
        let cluster = cluster_with(mock_client!(
            aws_sdk_eks,
            RuleMode::MatchAny,
            [&rule],
            |c| c.retry_config(RetryConfig::disabled())
        ));
        let err = cluster
            .delete(&Resource {
                kind: ResourceKind::Cluster,
                id: "c".into(),
                key: "cluster".into(),
                arn: None,
                state: ResourceState::Available,
            })
            .await
            .unwrap_err();
        assert!(expected(&err), "{code} {message}: {err:?}");
    }
}

#[tokio::test]
async fn unsupported_zones_carry_the_zones_eks_accepts() {
    let rule = mock!(aws_sdk_eks::Client::create_cluster).then_http_response(|| {
        let mut response = HttpResponse::new(
            StatusCode::try_from(400).unwrap(),
            SdkBody::from(
                r#"{"message":"Cannot create cluster 'c' because us-east-1e, the targeted availability zone, does not currently have sufficient capacity to support the cluster. Retry and choose from these availability zones: us-east-1a, us-east-1b","clusterName":"c","validZones":["us-east-1a","us-east-1b"]}"#,
            ),
        );
        response
            .headers_mut()
            .insert("x-amzn-ErrorType", "UnsupportedAvailabilityZoneException");
        response
            .headers_mut()
            .insert("content-type", "application/json");
        response
    });
    let cluster = cluster_with(mock_client!(
        aws_sdk_eks,
        RuleMode::MatchAny,
        [&rule],
        |c| c.retry_config(RetryConfig::disabled())
    ));
    let err = cluster
        .create(
            &CreateRequest::Cluster {
                name: "c".into(),
                version: "1.34".into(),
                role_arn: "arn:aws:iam::1:role/r".into(),
                subnet_ids: vec!["subnet-1".into()],
                public_access_cidrs: vec!["203.0.113.0/24".into()],
            },
            &ResourceTags {
                stack: "s".into(),
                key: "cluster".into(),
                extra: Default::default(),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedZones { ref valid_zones, .. } if valid_zones == &["us-east-1a", "us-east-1b"]),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_public_endpoint_cidrs_reach_create_cluster() {
    let rule = mock!(aws_sdk_eks::Client::create_cluster)
        .match_requests(|r| {
            r.resources_vpc_config()
                .is_some_and(|v| v.public_access_cidrs() == ["203.0.113.0/24"])
        })
        .then_output(|| {
            aws_sdk_eks::operation::create_cluster::CreateClusterOutput::builder().build()
        });
    let cluster = cluster_with(mock_client!(aws_sdk_eks, RuleMode::MatchAny, [&rule]));
    cluster
        .create(
            &CreateRequest::Cluster {
                name: "c".into(),
                version: "1.34".into(),
                role_arn: "arn:aws:iam::1:role/r".into(),
                subnet_ids: vec!["subnet-1".into()],
                public_access_cidrs: vec!["203.0.113.0/24".into()],
            },
            &ResourceTags {
                stack: "s".into(),
                key: "cluster".into(),
                extra: Default::default(),
            },
        )
        .await
        .unwrap();
    assert_eq!(rule.num_calls(), 1);
}
