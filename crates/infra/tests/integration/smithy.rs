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
