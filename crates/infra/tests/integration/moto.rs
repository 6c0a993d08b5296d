//! The conformance suite and whole-stack checks against a real moto server (with the
//! project's EKS shim for add-ons and access entries). `./scripts/test.sh` starts it and sets
//! `GLRUNNER_TEST_MOTO_URL`; without it these tests skip, except under `CI=true`.
//!
//! moto is synchronous (everything is ACTIVE at once) and never busy, so waiting, retrying
//! and ordering are proven in `smithy.rs` and `memory.rs`; here we prove the real SDK calls,
//! tags, discovery and convergence. The shim runs in strict mode (scripts/moto_shim.py): new
//! IAM roles are refused by EKS for a moment, new EC2 ids are NotFound once, us-east-1a is the
//! zone ID EKS refuses, a Local Zone is listed, and access entries need a real IAM principal.

use aws_sdk_ec2::types::Filter;
use glrunner_infra::aws::{AwsCluster, AwsNetwork};
use glrunner_infra::conformance::{self, Capabilities};
use glrunner_infra::spec::{STACK_TAG, StackName, StackSpec};
use glrunner_infra::{StackOptions, WaitPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// moto is one shared server: run its tests one at a time.
static MOTO: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn moto() -> Option<aws_config::SdkConfig> {
    moto_in("us-east-1").await
}

async fn moto_in(region: &'static str) -> Option<aws_config::SdkConfig> {
    let Ok(url) = std::env::var("GLRUNNER_TEST_MOTO_URL") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true")
                && std::env::var("GLRUNNER_TEST_REQUIRE_SERVERS").as_deref() != Ok("1"),
            "GLRUNNER_TEST_MOTO_URL is not set: run ./scripts/test.sh"
        );
        eprintln!(
            "skipping: GLRUNNER_TEST_MOTO_URL is not set (./scripts/test.sh starts moto and sets it)"
        );
        return None;
    };
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_config::Region::new(region))
        .test_credentials()
        // moto answers some not-found paths with HTTP 500, which the SDK would retry.
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2))
        .load()
        .await;
    assert_strict(&config).await;
    Some(config)
}

/// The shim's strict mode lists a Local Zone; plain moto does not.
async fn assert_strict(config: &aws_config::SdkConfig) {
    let zones = aws_sdk_ec2::Client::new(config)
        .describe_availability_zones()
        .send()
        .await
        .unwrap();
    assert!(
        zones
            .availability_zones()
            .iter()
            .any(|z| z.zone_type() == Some("local-zone")),
        "moto runs without the strict shim: start it with scripts/moto.sh"
    );
}

fn spec(name: &str) -> StackSpec {
    StackSpec::new(StackName::new(name).unwrap(), "us-east-1")
}

#[tokio::test]
async fn network_lifecycle() {
    let Some(config) = moto().await else { return };
    let _guard = MOTO.lock().await;
    let network = AwsNetwork::new(&config);
    conformance::network_lifecycle(
        &network,
        &StackName::new("moto-net").unwrap(),
        Capabilities {
            vpc_dependency_check: true,
        },
        &WaitPolicy::fast(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn cluster_lifecycle() {
    let Some(config) = moto().await else { return };
    let _guard = MOTO.lock().await;
    conformance::cluster_lifecycle(
        &AwsNetwork::new(&config),
        &AwsCluster::new(&config),
        &StackName::new("moto-clu").unwrap(),
        &WaitPolicy::fast(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn interrupted_provision_converges() {
    let Some(config) = moto().await else { return };
    let _guard = MOTO.lock().await;
    conformance::interrupted_provision_converges(
        &AwsNetwork::new(&config),
        &AwsCluster::new(&config),
        &spec("moto-crash"),
        &WaitPolicy::fast(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn dry_run_mutates_nothing() {
    let Some(config) = moto().await else { return };
    let _guard = MOTO.lock().await;
    let plan = conformance::dry_run_mutates_nothing(
        &AwsNetwork::new(&config),
        &AwsCluster::new(&config),
        &spec("moto-dry"),
    )
    .await
    .unwrap();
    assert_eq!(plan.steps.len(), 19);
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let vpcs = ec2
        .describe_vpcs()
        .filters(tag_filter("moto-dry"))
        .send()
        .await
        .unwrap();
    assert!(vpcs.vpcs().is_empty());
}

fn tag_filter(stack: &str) -> Filter {
    Filter::builder()
        .name(format!("tag:{STACK_TAG}"))
        .values(stack)
        .build()
}

/// Counts every resource moto holds for the stack, by type, straight from the SDK.
async fn census(config: &aws_config::SdkConfig, stack: &str) -> Vec<(&'static str, usize)> {
    let ec2 = aws_sdk_ec2::Client::new(config);
    let eks = aws_sdk_eks::Client::new(config);
    let iam = aws_sdk_iam::Client::new(config);
    let vpcs = ec2
        .describe_vpcs()
        .filters(tag_filter(stack))
        .send()
        .await
        .unwrap();
    let subnets = ec2
        .describe_subnets()
        .filters(tag_filter(stack))
        .send()
        .await
        .unwrap();
    let igws = ec2
        .describe_internet_gateways()
        .filters(tag_filter(stack))
        .send()
        .await
        .unwrap();
    let eips = ec2
        .describe_addresses()
        .filters(tag_filter(stack))
        .send()
        .await
        .unwrap();
    let nats = ec2
        .describe_nat_gateways()
        .filter(tag_filter(stack))
        .send()
        .await
        .unwrap();
    let live_nats = nats
        .nat_gateways()
        .iter()
        .filter(|n| n.state().map(|s| s.as_str()) != Some("deleted"))
        .count();
    let tables = ec2
        .describe_route_tables()
        .filters(tag_filter(stack))
        .send()
        .await
        .unwrap();
    let mut tagged_subnets_ok = true;
    for subnet in subnets.subnets() {
        let keys: Vec<&str> = subnet.tags().iter().filter_map(|t| t.key()).collect();
        tagged_subnets_ok &= keys.contains(&"glrunner.io/key")
            && (keys.contains(&"kubernetes.io/role/elb")
                || keys.contains(&"kubernetes.io/role/internal-elb"));
    }
    assert!(
        tagged_subnets_ok,
        "every subnet carries the key and its load-balancer role tag"
    );
    let region = config.region().unwrap().to_string();
    let roles = [
        glrunner_infra::plan::cluster_role_name(stack, &region),
        glrunner_infra::plan::fargate_role_name(stack, &region),
    ];
    let mut role_count = 0;
    for role in &roles {
        if let Ok(out) = iam.get_role().role_name(role).send().await {
            assert!(
                out.role()
                    .unwrap()
                    .tags()
                    .iter()
                    .any(|t| t.key() == STACK_TAG && t.value() == stack),
                "role {role} is tagged"
            );
            role_count += 1;
        }
    }
    let clusters = eks.list_clusters().send().await.unwrap();
    let ours = clusters
        .clusters()
        .iter()
        .filter(|c| c.as_str() == stack)
        .count();
    let (mut profiles, mut addons, mut entries) = (0, 0, 0);
    if ours == 1 {
        let described = eks.describe_cluster().name(stack).send().await.unwrap();
        assert_eq!(
            described
                .cluster()
                .unwrap()
                .tags()
                .unwrap()
                .get(STACK_TAG)
                .map(String::as_str),
            Some(stack)
        );
        profiles = eks
            .list_fargate_profiles()
            .cluster_name(stack)
            .send()
            .await
            .unwrap()
            .fargate_profile_names()
            .len();
        addons = eks
            .list_addons()
            .cluster_name(stack)
            .send()
            .await
            .unwrap()
            .addons()
            .len();
        entries = eks
            .list_access_entries()
            .cluster_name(stack)
            .send()
            .await
            .unwrap()
            .access_entries()
            .len();
    }
    vec![
        ("vpc", vpcs.vpcs().len()),
        ("subnet", subnets.subnets().len()),
        ("internet gateway", igws.internet_gateways().len()),
        ("elastic ip", eips.addresses().len()),
        ("nat gateway", live_nats),
        ("route table", tables.route_tables().len()),
        ("iam role", role_count),
        ("cluster", ours),
        ("fargate profile", profiles),
        ("addon", addons),
        ("access entry", entries),
    ]
}

#[tokio::test]
async fn provision_twice_then_teardown_without_state_leaves_nothing() {
    let Some(config) = moto().await else { return };
    let _guard = MOTO.lock().await;
    let (network, cluster) = (AwsNetwork::new(&config), AwsCluster::new(&config));
    let spec = spec("moto-full");
    let dir = tempfile::tempdir().unwrap();
    let options = StackOptions {
        state_dir: Some(dir.path().to_path_buf()),
        waits: WaitPolicy::fast(),
        ..Default::default()
    };

    let first = glrunner_infra::provision(&spec, &network, &cluster, &options)
        .await
        .unwrap();
    let expected = vec![
        ("vpc", 1),
        ("subnet", 4),
        ("internet gateway", 1),
        ("elastic ip", 1),
        ("nat gateway", 1),
        ("route table", 2),
        ("iam role", 2),
        ("cluster", 1),
        ("fargate profile", 1),
        ("addon", 1),
        // The caller's, and the FARGATE_LINUX entry EKS makes for the pod execution role.
        ("access entry", 2),
    ];
    assert_eq!(
        census(&config, "moto-full").await,
        expected,
        "exactly the planned resources, all tagged"
    );
    assert!(first.kubeconfig.as_ref().unwrap().exists());

    let second = glrunner_infra::provision(&spec, &network, &cluster, &options)
        .await
        .unwrap();
    let (a, b) = (first.applied.unwrap(), second.applied.unwrap());
    assert_eq!(b.created(), 0, "a second provision creates nothing");
    for (key, res) in &a.resources {
        assert_eq!(b.resources[key].id, res.id, "{key} kept its id");
    }
    assert_eq!(census(&config, "moto-full").await, expected);

    // The state file is only a cache: teardown finds everything by tag without it.
    std::fs::remove_file(dir.path().join("moto-full.json")).unwrap();
    let report = glrunner_infra::teardown(&spec.stack, &spec.region, &network, &cluster, &options)
        .await
        .unwrap();
    assert!(report.leftovers.is_empty());
    let after = census(&config, "moto-full").await;
    assert!(after.iter().all(|(_, n)| *n == 0), "left behind: {after:?}");
    // NAT gateways stay listed as `deleted`, like on AWS.
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let nats = ec2
        .describe_nat_gateways()
        .filter(tag_filter("moto-full"))
        .send()
        .await
        .unwrap();
    assert!(
        nats.nat_gateways()
            .iter()
            .all(|n| n.state().map(|s| s.as_str()) == Some("deleted"))
    );
}

/// A caller like an IAM Identity Center session: an assumed role whose role lives under a path.
async fn sso_session(config: &aws_config::SdkConfig) -> (aws_config::SdkConfig, String) {
    let iam = aws_sdk_iam::Client::new(config);
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}"#;
    let name = "AWSReservedSSO_Admin_0123";
    let role = match iam
        .create_role()
        .role_name(name)
        .path("/aws-reserved/sso.amazonaws.com/us-east-1/")
        .assume_role_policy_document(trust)
        .send()
        .await
    {
        Ok(out) => out.role().unwrap().arn().to_string(),
        Err(_) => iam
            .get_role()
            .role_name(name)
            .send()
            .await
            .unwrap()
            .role()
            .unwrap()
            .arn()
            .to_string(),
    };
    let creds = aws_sdk_sts::Client::new(config)
        .assume_role()
        .role_arn(&role)
        .role_session_name("me@example.com")
        .send()
        .await
        .unwrap();
    let c = creds.credentials().unwrap();
    let session = config
        .to_builder()
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new(
                    c.access_key_id(),
                    c.secret_access_key(),
                    Some(c.session_token().to_string()),
                    None,
                    "moto-assume-role",
                ),
            ),
        )
        .build();
    (session, role)
}

#[tokio::test]
async fn provision_as_an_assumed_role_with_a_path_on_the_first_try() {
    let Some(config) = moto().await else { return };
    let _guard = MOTO.lock().await;
    let (session, role) = sso_session(&config).await;
    assert!(
        role.contains(":role/aws-reserved/sso.amazonaws.com/us-east-1/"),
        "{role}"
    );
    let (network, cluster) = (AwsNetwork::new(&session), AwsCluster::new(&session));
    let spec = spec("moto-sso");
    let outcome = glrunner_infra::provision(
        &spec,
        &network,
        &cluster,
        &StackOptions {
            waits: WaitPolicy::fast(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let applied = outcome.applied.unwrap();
    assert_eq!(
        applied.resources[&glrunner_infra::plan::access_entry_key(&role)].id,
        format!("moto-sso/{role}")
    );
    // The zones EKS accepts, by ID: this account's us-east-1a is use1-az3.
    assert!(outcome.plan.step("subnet/private/us-east-1a").is_none());
    let entries = aws_sdk_eks::Client::new(&session)
        .list_access_entries()
        .cluster_name("moto-sso")
        .send()
        .await
        .unwrap();
    assert!(
        entries.access_entries().contains(&role),
        "{:?}",
        entries.access_entries()
    );
    glrunner_infra::teardown(
        &spec.stack,
        &spec.region,
        &network,
        &cluster,
        &StackOptions {
            waits: WaitPolicy::fast(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn the_same_stack_in_two_regions_is_two_stacks() {
    let Some(east) = moto_in("us-east-1").await else {
        return;
    };
    let Some(west) = moto_in("us-west-2").await else {
        return;
    };
    let _guard = MOTO.lock().await;
    let options = StackOptions {
        waits: WaitPolicy::fast(),
        ..Default::default()
    };
    let stack = StackName::new("moto-twin").unwrap();
    for config in [&east, &west] {
        let region = config.region().unwrap().to_string();
        let spec = StackSpec::new(stack.clone(), &region);
        let outcome = glrunner_infra::provision(
            &spec,
            &AwsNetwork::new(config),
            &AwsCluster::new(config),
            &options,
        )
        .await
        .unwrap();
        let applied = outcome.applied.unwrap();
        assert_eq!(
            applied.created(),
            outcome.plan.steps.len(),
            "{region}: nothing shared"
        );
    }
    glrunner_infra::teardown(
        &stack,
        "us-east-1",
        &AwsNetwork::new(&east),
        &AwsCluster::new(&east),
        &options,
    )
    .await
    .unwrap();
    let west_census = census(&west, "moto-twin").await;
    for (what, n) in &west_census {
        assert!(*n > 0, "us-west-2 lost its {what}: {west_census:?}");
    }
    glrunner_infra::teardown(
        &stack,
        "us-west-2",
        &AwsNetwork::new(&west),
        &AwsCluster::new(&west),
        &options,
    )
    .await
    .unwrap();
    for config in [&east, &west] {
        let after = census(config, "moto-twin").await;
        assert!(after.iter().all(|(_, n)| *n == 0), "left behind: {after:?}");
    }
}

/// A call to the shim's control endpoints (plain HTTP/1.1 on loopback); the JSON answer.
async fn shim(method: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
    let url = std::env::var("GLRUNNER_TEST_MOTO_URL").expect("moto runs");
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let body = body.to_string();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"),
        "{method} {path}: {answer}"
    );
    let (_, json) = answer.split_once("\r\n\r\n").unwrap();
    serde_json::from_str(json).unwrap()
}

fn fast() -> StackOptions<'static> {
    StackOptions {
        waits: WaitPolicy::fast(),
        ..Default::default()
    }
}

/// EC2 refuses to release a NAT gateway's Elastic IP for a while after the gateway is deleted
/// (the shim's `eip_auth_failure_s`, with its sources); the first teardown still leaves nothing.
#[tokio::test]
async fn the_first_teardown_leaves_nothing_despite_the_eip_auth_failure_window() {
    let Some(config) = moto().await else { return };
    let _guard = MOTO.lock().await;
    let before = shim("GET", "/glrunner-shim/config", serde_json::json!({})).await;
    shim(
        "POST",
        "/glrunner-shim/config",
        serde_json::json!({"eip_auth_failure_s": 4.0}),
    )
    .await;
    let (network, cluster) = (AwsNetwork::new(&config), AwsCluster::new(&config));
    let spec = spec("moto-eip");
    let provisioned = glrunner_infra::provision(&spec, &network, &cluster, &fast()).await;
    let torn =
        glrunner_infra::teardown(&spec.stack, &spec.region, &network, &cluster, &fast()).await;
    shim(
        "POST",
        "/glrunner-shim/config",
        serde_json::json!({"eip_auth_failure_s": before["eip_auth_failure_s"]}),
    )
    .await;
    let applied = provisioned.unwrap().applied.unwrap();
    // The pod execution role sits at path / (EKS's Fargate guide; the shim refuses a path).
    let name = glrunner_infra::plan::fargate_role_name("moto-eip", "us-east-1");
    assert_eq!(
        applied.resources["role/fargate"].arn.as_deref(),
        Some(format!("arn:aws:iam::123456789012:role/{name}").as_str())
    );
    let report = torn.unwrap_or_else(|e| panic!("the first teardown failed: {e}"));
    assert!(
        report.leftovers.is_empty() && report.errors.is_empty(),
        "{report:?}"
    );
    let after = census(&config, "moto-eip").await;
    assert!(after.iter().all(|(_, n)| *n == 0), "left behind: {after:?}");
}

/// In a shared account, clusters of other teams (one named like another glrunner stack) are
/// listed but may not be described: provision and teardown go on without them.
#[tokio::test]
async fn a_foreign_cluster_the_caller_may_not_describe_stops_neither_provision_nor_teardown() {
    let Some(config) = moto().await else { return };
    let _guard = MOTO.lock().await;
    for name in ["team-payments", "moto-shared-prod"] {
        shim(
            "POST",
            "/glrunner-shim/foreign-clusters",
            serde_json::json!({"region": "us-east-1", "name": name}),
        )
        .await;
    }
    let denied = aws_sdk_eks::Client::new(&config)
        .describe_cluster()
        .name("team-payments")
        .send()
        .await;
    let (network, cluster) = (AwsNetwork::new(&config), AwsCluster::new(&config));
    let spec = spec("moto-shared");
    let provisioned = glrunner_infra::provision(&spec, &network, &cluster, &fast()).await;
    let torn =
        glrunner_infra::teardown(&spec.stack, &spec.region, &network, &cluster, &fast()).await;
    shim(
        "DELETE",
        "/glrunner-shim/foreign-clusters",
        serde_json::json!({}),
    )
    .await;
    assert!(
        denied.is_err_and(|e| format!("{e:?}").contains("AccessDeniedException")),
        "the shim denies the foreign cluster"
    );
    provisioned.unwrap_or_else(|e| panic!("provision: {e}"));
    torn.unwrap_or_else(|e| panic!("teardown: {e}"));
    let after = census(&config, "moto-shared").await;
    assert!(after.iter().all(|(_, n)| *n == 0), "left behind: {after:?}");
}

/// A developer's SSO role that runs after the CI principal provisioned gets an access entry of
/// its own, and EKS (the shim's token review) lets it in as itself.
#[tokio::test]
async fn a_second_principal_after_the_first_provisioned_gets_its_own_entry() {
    let Some(config) = moto().await else { return };
    let _guard = MOTO.lock().await;
    let spec = spec("moto-heads");
    let (network, cluster) = (AwsNetwork::new(&config), AwsCluster::new(&config));
    let first = glrunner_infra::provision(&spec, &network, &cluster, &fast()).await;
    let (session, role) = sso_session(&config).await;
    let second = glrunner_infra::provision(
        &spec,
        &AwsNetwork::new(&session),
        &AwsCluster::new(&session),
        &fast(),
    )
    .await;
    let entries = aws_sdk_eks::Client::new(&config)
        .list_access_entries()
        .cluster_name("moto-heads")
        .send()
        .await
        .unwrap();
    shim(
        "POST",
        "/glrunner-shim/eks-endpoints",
        serde_json::json!({"moto-heads": {"endpoint": "https://127.0.0.1:9", "ca": ""}}),
    )
    .await;
    let token = glrunner_infra::kubeconfig::EksTokenGenerator::new(&session)
        .unwrap()
        .token("moto-heads")
        .await
        .unwrap();
    let review = shim(
        "POST",
        "/glrunner-shim/tokenreview",
        serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token.expose()}}),
    )
    .await;
    let torn =
        glrunner_infra::teardown(&spec.stack, &spec.region, &network, &cluster, &fast()).await;
    first.unwrap();
    second.unwrap();
    let entries = entries.access_entries();
    for principal in ["arn:aws:iam::123456789012:user/moto", role.as_str()] {
        assert!(
            entries.iter().any(|e| e == principal),
            "no access entry for {principal}: {entries:?}"
        );
    }
    assert_eq!(review["status"]["authenticated"], true, "{review}");
    assert_eq!(
        review["status"]["user"]["username"],
        role.as_str(),
        "{review}"
    );
    torn.unwrap();
}

/// ListAssociatedAccessPolicies pages (maxResults, nextToken): an admin policy on the second
/// page is still found, so a reused access entry is not reported as drifted.
#[tokio::test]
async fn the_access_policies_of_an_entry_are_read_past_the_first_page() {
    use glrunner_infra::ClusterProvisioner as _;
    let Some(config) = moto().await else { return };
    let _guard = MOTO.lock().await;
    let spec = spec("moto-pages");
    let (network, cluster) = (AwsNetwork::new(&config), AwsCluster::new(&config));
    glrunner_infra::provision(&spec, &network, &cluster, &fast())
        .await
        .unwrap();
    let (_, role) = sso_session(&config).await;
    let eks = aws_sdk_eks::Client::new(&config);
    eks.create_access_entry()
        .cluster_name("moto-pages")
        .principal_arn(&role)
        .send()
        .await
        .unwrap();
    let scope = aws_sdk_eks::types::AccessScope::builder()
        .r#type(aws_sdk_eks::types::AccessScopeType::Cluster)
        .build();
    let admin = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy";
    for policy in [
        "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy",
        admin,
    ] {
        eks.associate_access_policy()
            .cluster_name("moto-pages")
            .principal_arn(&role)
            .policy_arn(policy)
            .access_scope(scope.clone())
            .send()
            .await
            .unwrap();
    }
    shim(
        "POST",
        "/glrunner-shim/config",
        serde_json::json!({"access_policies_page_size": 1}),
    )
    .await;
    let drift = cluster
        .drift(
            &glrunner_infra::CreateRequest::AccessEntry {
                cluster: "moto-pages".into(),
                principal_arn: role.clone(),
                policy_arn: admin.into(),
            },
            &glrunner_infra::Resource {
                kind: glrunner_infra::ResourceKind::AccessEntry,
                id: format!("moto-pages/{role}"),
                key: String::new(),
                arn: None,
                state: glrunner_infra::ResourceState::Available,
            },
        )
        .await;
    shim(
        "POST",
        "/glrunner-shim/config",
        serde_json::json!({"access_policies_page_size": 100}),
    )
    .await;
    glrunner_infra::teardown(&spec.stack, &spec.region, &network, &cluster, &fast())
        .await
        .unwrap();
    assert_eq!(drift.unwrap(), Vec::<String>::new());
}

/// The S3 client of the moto server (path-style, as [`AwsCluster::new`] makes its own).
fn s3_of(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build(),
    )
}

/// IAM answers policy documents URL-encoded.
fn decode_policy(text: &str) -> serde_json::Value {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// The runner cache on real S3 and IAM: a bucket with its public access blocked, SSE-S3, an
/// expiry rule and a TLS-only policy; a role whose trust admits exactly the managers'
/// ServiceAccount with the STS audience, through the cluster's OIDC provider, and whose policy
/// names only the bucket; teardown empties the bucket (objects, versions, delete markers) and
/// leaves no bucket, role or provider.
#[tokio::test]
async fn the_cache_bucket_and_its_irsa_role_are_locked_down_and_torn_down() {
    let Some(config) = moto().await else { return };
    let _guard = MOTO.lock().await;
    let (network, cluster) = (AwsNetwork::new(&config), AwsCluster::new(&config));
    let mut spec = spec("moto-cache");
    spec.cache.as_mut().unwrap().expire_days = 9;
    let outcome = glrunner_infra::provision(&spec, &network, &cluster, &fast())
        .await
        .unwrap();
    let cache = outcome.cache.clone().expect("the stack has a cache");
    assert_eq!(cache.bucket, "moto-cache-123456789012-us-east-1-cache");
    assert_eq!(
        (cache.namespace.as_str(), cache.service_account.as_str()),
        ("gitlab-runner", "glrunner-manager")
    );
    let s3 = s3_of(&config);
    let bucket = cache.bucket.as_str();

    let block = s3
        .get_public_access_block()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    let block = block.public_access_block_configuration().unwrap();
    assert_eq!(
        (
            block.block_public_acls(),
            block.ignore_public_acls(),
            block.block_public_policy(),
            block.restrict_public_buckets()
        ),
        (Some(true), Some(true), Some(true), Some(true))
    );
    let encryption = s3
        .get_bucket_encryption()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    let rule = &encryption
        .server_side_encryption_configuration()
        .unwrap()
        .rules()[0];
    assert_eq!(
        rule.apply_server_side_encryption_by_default()
            .unwrap()
            .sse_algorithm()
            .as_str(),
        "AES256"
    );
    let lifecycle = s3
        .get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    let rule = &lifecycle.rules()[0];
    assert_eq!(rule.status().as_str(), "Enabled");
    assert_eq!(rule.expiration().and_then(|e| e.days()), Some(9));
    let policy: serde_json::Value = serde_json::from_str(
        s3.get_bucket_policy()
            .bucket(bucket)
            .send()
            .await
            .unwrap()
            .policy()
            .unwrap(),
    )
    .unwrap();
    let deny = &policy["Statement"][0];
    assert_eq!(deny["Effect"], "Deny");
    assert_eq!(deny["Condition"]["Bool"]["aws:SecureTransport"], "false");
    let tags = s3.get_bucket_tagging().bucket(bucket).send().await.unwrap();
    assert!(
        tags.tag_set()
            .iter()
            .any(|t| t.key() == STACK_TAG && t.value() == "moto-cache")
    );

    // The role: trust exactly the managers' ServiceAccount with the STS audience.
    let iam = aws_sdk_iam::Client::new(&config);
    let role_name = cache.role_arn.rsplit('/').next().unwrap();
    let role = iam.get_role().role_name(role_name).send().await.unwrap();
    let trust = decode_policy(role.role().unwrap().assume_role_policy_document().unwrap());
    let providers = iam.list_open_id_connect_providers().send().await.unwrap();
    let provider = outcome.applied.as_ref().unwrap().resources["oidc-provider"]
        .id
        .clone();
    assert!(
        providers
            .open_id_connect_provider_list()
            .iter()
            .any(|p| p.arn() == Some(provider.as_str()))
    );
    let host = provider.split_once(":oidc-provider/").unwrap().1;
    assert_eq!(
        trust["Statement"],
        serde_json::json!([{
            "Effect": "Allow",
            "Principal": { "Federated": provider },
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": { "StringEquals": {
                format!("{host}:sub"): "system:serviceaccount:gitlab-runner:glrunner-manager",
                format!("{host}:aud"): "sts.amazonaws.com",
            } }
        }])
    );
    let inline = iam
        .get_role_policy()
        .role_name(role_name)
        .policy_name("glrunner-cache-bucket")
        .send()
        .await
        .unwrap();
    let access = decode_policy(inline.policy_document());
    let resources: Vec<&str> = access["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Resource"].as_str().unwrap())
        .collect();
    assert_eq!(
        resources,
        [
            format!("arn:aws:s3:::{bucket}/*"),
            format!("arn:aws:s3:::{bucket}")
        ]
    );

    // The TLS-only policy in force: moto evaluates a bucket's policy on object requests, and
    // this endpoint is plain HTTP, so PutObject is refused.
    let refused = s3
        .put_object()
        .bucket(bucket)
        .key("plain-http")
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        refused.raw_response().map(|r| r.status().as_u16()),
        Some(403),
        "{refused:?}"
    );
    // A used cache (written over TLS in real life: the policy is lifted to write here, then
    // put back): versioning on (someone turned it on), an object with two versions and a
    // delete marker, and a plain object.
    let tls_only = s3
        .get_bucket_policy()
        .bucket(bucket)
        .send()
        .await
        .unwrap()
        .policy()
        .unwrap()
        .to_owned();
    s3.delete_bucket_policy()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    for body in ["one", "two"] {
        s3.put_object()
            .bucket(bucket)
            .key("project/default/cache.zip")
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .unwrap();
    }
    s3.delete_object()
        .bucket(bucket)
        .key("project/default/cache.zip")
        .send()
        .await
        .unwrap();
    s3.put_object()
        .bucket(bucket)
        .key("project/other/cache.zip")
        .body(b"three".to_vec().into())
        .send()
        .await
        .unwrap();

    s3.put_bucket_policy()
        .bucket(bucket)
        .policy(tls_only)
        .send()
        .await
        .unwrap();
    let versions = s3
        .list_object_versions()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (versions.versions().len(), versions.delete_markers().len()),
        (3, 1)
    );

    let report = glrunner_infra::teardown(&spec.stack, &spec.region, &network, &cluster, &fast())
        .await
        .unwrap();
    assert!(report.leftovers.is_empty(), "{:?}", report.leftovers);
    assert!(s3.head_bucket().bucket(bucket).send().await.is_err());
    let buckets = s3.list_buckets().send().await.unwrap();
    assert!(buckets.buckets().iter().all(|b| b.name() != Some(bucket)));
    assert!(iam.get_role().role_name(role_name).send().await.is_err());
    let providers = iam.list_open_id_connect_providers().send().await.unwrap();
    assert!(
        providers
            .open_id_connect_provider_list()
            .iter()
            .all(|p| p.arn() != Some(provider.as_str()))
    );
    let after = census(&config, "moto-cache").await;
    assert!(after.iter().all(|(_, n)| *n == 0), "left behind: {after:?}");
}
