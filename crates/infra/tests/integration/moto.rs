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

/// moto is one shared server: run its tests one at a time. Take the guard before [`moto`]: a
/// test may switch the shim's strict mode off for a moment while it holds the guard, and the
/// check that the shim is strict must not see that.
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
    let _guard = MOTO.lock().await;
    let Some(config) = moto().await else { return };
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
    let _guard = MOTO.lock().await;
    let Some(config) = moto().await else { return };
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
    let _guard = MOTO.lock().await;
    let Some(config) = moto().await else { return };
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
    let _guard = MOTO.lock().await;
    let Some(config) = moto().await else { return };
    let plan = conformance::dry_run_mutates_nothing(
        &AwsNetwork::new(&config),
        &AwsCluster::new(&config),
        &spec("moto-dry"),
    )
    .await
    .unwrap();
    // 16, the OIDC provider, the S3 cache's bucket and role, and the image cache's S3 endpoint,
    // role policy and three rules.
    assert_eq!(plan.steps.len(), 24);
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
    let cache = cache_census(config, stack).await;
    let mut counts = vec![
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
    ];
    counts.extend(cache);
    counts
}

/// The image cache's resources of the stack, straight from the SDK: live S3 gateway endpoints
/// (tagged), ECR rules under the stack's prefixes, the repositories under them, the secrets
/// glrunner stored, and the inline policies of the pod execution role.
async fn cache_census(config: &aws_config::SdkConfig, stack: &str) -> Vec<(&'static str, usize)> {
    use glrunner_infra::image_cache::{Upstream, rule_prefix};
    let name = StackName::new(stack).unwrap();
    let prefixes: Vec<String> = Upstream::ALL
        .iter()
        .map(|u| rule_prefix(&name, *u))
        .collect();
    let ec2 = aws_sdk_ec2::Client::new(config);
    let endpoints = ec2
        .describe_vpc_endpoints()
        .filters(tag_filter(stack))
        .send()
        .await
        .unwrap();
    let live_endpoints = endpoints
        .vpc_endpoints()
        .iter()
        .filter(|e| {
            e.state()
                .map(|s| s.as_str().to_ascii_lowercase())
                .as_deref()
                != Some("deleted")
        })
        .count();
    let ecr = aws_sdk_ecr::Client::new(config);
    let rules = ecr
        .describe_pull_through_cache_rules()
        .send()
        .await
        .unwrap();
    let rules = rules
        .pull_through_cache_rules()
        .iter()
        .filter(|r| {
            prefixes
                .iter()
                .any(|p| r.ecr_repository_prefix() == Some(p.as_str()))
        })
        .count();
    let repos = ecr.describe_repositories().send().await.unwrap();
    let repos = repos
        .repositories()
        .iter()
        .filter(|r| {
            let name = r.repository_name().unwrap_or_default();
            prefixes.iter().any(|p| name.starts_with(&format!("{p}/")))
        })
        .count();
    let secrets = aws_sdk_secretsmanager::Client::new(config)
        .list_secrets()
        .send()
        .await
        .unwrap();
    let secrets = secrets
        .secret_list()
        .iter()
        .filter(|s| {
            s.name()
                .is_some_and(|n| n.starts_with(&format!("ecr-pullthroughcache/{stack}/")))
        })
        .count();
    let region = config.region().unwrap().to_string();
    let policies = aws_sdk_iam::Client::new(config)
        .list_role_policies()
        .role_name(glrunner_infra::plan::fargate_role_name(stack, &region))
        .send()
        .await
        .map(|out| out.policy_names().len())
        .unwrap_or(0);
    vec![
        ("vpc endpoint", live_endpoints),
        ("cache rule", rules),
        ("cache repository", repos),
        ("cache secret", secrets),
        ("role inline policy", policies),
    ]
}

#[tokio::test]
async fn provision_twice_then_teardown_without_state_leaves_nothing() {
    let _guard = MOTO.lock().await;
    let Some(config) = moto().await else { return };
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
        // The image cache: S3 gateway endpoint, the three rules that need no credential, no
        // repository before a pull, no secret without a credential, the pod role's policy.
        ("vpc endpoint", 1),
        ("cache rule", 3),
        ("cache repository", 0),
        ("cache secret", 0),
        ("role inline policy", 1),
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
    let _guard = MOTO.lock().await;
    let Some(config) = moto().await else { return };
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
    let _guard = MOTO.lock().await;
    let Some(east) = moto_in("us-east-1").await else {
        return;
    };
    let Some(west) = moto_in("us-west-2").await else {
        return;
    };
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
        // No pull made a cache repository and no credential a secret (both 0 from the start).
        if matches!(*what, "cache repository" | "cache secret") {
            continue;
        }
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
    let _guard = MOTO.lock().await;
    let Some(config) = moto().await else { return };
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
    let _guard = MOTO.lock().await;
    let Some(config) = moto().await else { return };
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
    let _guard = MOTO.lock().await;
    let Some(config) = moto().await else { return };
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
    let _guard = MOTO.lock().await;
    let Some(config) = moto().await else { return };
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

/// EKS Pod Identity associations on moto through the shim (scripts/shim_pod_identity.py, which
/// validates against botocore's EKS model): `AwsPodIdentity` lists what CreatePodIdentityAssociation
/// made, every page; the shim refuses what EKS refuses (a duplicate, a non-role ARN, a
/// `maxResults` outside the model's 1..100, a missing cluster) and Delete removes.
#[tokio::test]
async fn pod_identity_associations_on_moto() {
    use aws_sdk_eks::error::ProvideErrorMetadata as _;
    use glrunner_infra::PodIdentityInspector as _;
    use glrunner_infra::aws::AwsPodIdentity;
    let _guard = MOTO.lock().await;
    let Some(config) = moto().await else { return };
    // A cluster to hang them on: made with the strict checks off (they are about provisioning,
    // proven elsewhere), then back on.
    shim(
        "POST",
        "/glrunner-shim/config",
        serde_json::json!({"strict": false}),
    )
    .await;
    let eks = aws_sdk_eks::Client::new(&config);
    let made = eks
        .create_cluster()
        .name("moto-podid")
        .role_arn("arn:aws:iam::123456789012:role/moto-podid")
        .resources_vpc_config(aws_sdk_eks::types::VpcConfigRequest::builder().build())
        .send()
        .await;
    shim(
        "POST",
        "/glrunner-shim/config",
        serde_json::json!({"strict": true}),
    )
    .await;
    made.unwrap();
    let role = "arn:aws:iam::123456789012:role/job-deploy";
    let mut ids = Vec::new();
    for (ns, sa) in [
        ("ci-jobs", "deploy"),
        ("apps", "web"),
        ("ci-jobs", "reader"),
    ] {
        let out = eks
            .create_pod_identity_association()
            .cluster_name("moto-podid")
            .namespace(ns)
            .service_account(sa)
            .role_arn(role)
            .send()
            .await
            .unwrap();
        ids.push(
            out.association()
                .unwrap()
                .association_id()
                .unwrap()
                .to_owned(),
        );
    }
    let inspector = AwsPodIdentity::new(&config);
    conformance::pod_identity_lists_what_exists(
        &inspector,
        "moto-podid",
        &[
            ("apps", "web"),
            ("ci-jobs", "deploy"),
            ("ci-jobs", "reader"),
        ],
        "moto-no-such-cluster",
    )
    .await
    .unwrap();

    // Pages: the paginator follows nextToken.
    let page = eks
        .list_pod_identity_associations()
        .cluster_name("moto-podid")
        .max_results(2)
        .send()
        .await
        .unwrap();
    assert_eq!(page.associations().len(), 2);
    assert!(page.next_token().is_some());

    // What EKS refuses, the shim refuses.
    let dup = eks
        .create_pod_identity_association()
        .cluster_name("moto-podid")
        .namespace("ci-jobs")
        .service_account("deploy")
        .role_arn(role)
        .send()
        .await
        .unwrap_err();
    assert_eq!(dup.code(), Some("ResourceInUseException"), "{dup:?}");
    let bad_role = eks
        .create_pod_identity_association()
        .cluster_name("moto-podid")
        .namespace("ci-jobs")
        .service_account("other")
        .role_arn("arn:aws:iam::123456789012:user/someone")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        bad_role.code(),
        Some("InvalidParameterException"),
        "{bad_role:?}"
    );
    let range = eks
        .list_pod_identity_associations()
        .cluster_name("moto-podid")
        .max_results(101)
        .send()
        .await
        .unwrap_err();
    assert_eq!(range.code(), Some("InvalidParameterException"), "{range:?}");
    assert!(
        range.message().unwrap_or_default().contains("maxResults"),
        "{range:?}"
    );

    for id in &ids {
        eks.delete_pod_identity_association()
            .cluster_name("moto-podid")
            .association_id(id)
            .send()
            .await
            .unwrap();
    }
    let gone = eks
        .delete_pod_identity_association()
        .cluster_name("moto-podid")
        .association_id(&ids[0])
        .send()
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Some("ResourceNotFoundException"), "{gone:?}");
    assert!(
        inspector
            .pod_identity_associations("moto-podid")
            .await
            .unwrap()
            .is_empty()
    );
    eks.delete_cluster()
        .name("moto-podid")
        .send()
        .await
        .unwrap();
}

/// The image cache with a Docker Hub credential on strict moto (the shim's ECR routes, checked
/// against botocore's ECR model): the credential is stored as `ecr-pullthroughcache/<stack>/…`
/// and named by the Docker Hub rule; a first pull makes a repository under the rule's prefix;
/// teardown leaves no rule, no repository, no secret, no endpoint and no inline policy; the
/// credential appears in no state file, plan, outcome or report.
#[tokio::test]
async fn the_image_cache_with_a_credential_is_torn_down_with_its_repositories() {
    use glrunner_infra::image_cache::{Credential, CredentialSource, Upstream, rule_prefix};
    let _guard = MOTO.lock().await;
    let Some(config) = moto().await else { return };
    let (network, cluster) = (AwsNetwork::new(&config), AwsCluster::new(&config));
    let mut spec = spec("moto-cache");
    let token = "dckr_pat_NEVER-SHOWN-7f3a";
    spec.image_cache.docker_hub = Some(CredentialSource::Provided(
        Credential::parse("TEST", &format!("glrunner:{token}")).unwrap(),
    ));
    let dir = tempfile::tempdir().unwrap();
    let options = StackOptions {
        state_dir: Some(dir.path().to_path_buf()),
        waits: WaitPolicy::fast(),
        ..Default::default()
    };
    let outcome = glrunner_infra::provision(&spec, &network, &cluster, &options)
        .await
        .unwrap();
    let counts = census(&config, "moto-cache").await;
    for (what, n) in [
        ("vpc endpoint", 1),
        ("cache rule", 4),
        ("cache secret", 1),
        ("role inline policy", 1),
    ] {
        assert!(counts.contains(&(what, n)), "{what}: {counts:?}");
    }
    // What a brought cluster pulls through: every rule of the registry with its upstream URL
    // (another test's stack may have rules too; this stack's four are among them).
    let stack = StackName::new("moto-cache").unwrap();
    let listed = glrunner_infra::ClusterProvisioner::cache_rules(&cluster)
        .await
        .unwrap();
    for upstream in [
        Upstream::EcrPublic,
        Upstream::Quay,
        Upstream::K8s,
        Upstream::DockerHub,
    ] {
        let rule = listed
            .iter()
            .find(|r| r.prefix == rule_prefix(&stack, upstream))
            .unwrap_or_else(|| panic!("{upstream}: {listed:?}"));
        assert_eq!(rule.upstream(), Some(upstream), "{rule:?}");
    }
    // The rule names the stored secret, whose value is what ECR reads.
    let ecr = aws_sdk_ecr::Client::new(&config);
    let hub = rule_prefix(&stack, Upstream::DockerHub);
    let rules = ecr
        .describe_pull_through_cache_rules()
        .ecr_repository_prefixes(&hub)
        .send()
        .await
        .unwrap();
    let arn = rules.pull_through_cache_rules()[0]
        .credential_arn()
        .unwrap()
        .to_string();
    assert!(
        arn.contains(":secret:ecr-pullthroughcache/moto-cache/docker-hub-"),
        "{arn}"
    );
    let value = aws_sdk_secretsmanager::Client::new(&config)
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .unwrap();
    let value: serde_json::Value = serde_json::from_str(value.secret_string().unwrap()).unwrap();
    assert_eq!(value["username"], "glrunner");
    assert_eq!(value["accessToken"], token);
    // A job's first pull through the Docker Hub and ECR Public rules.
    for repository in [
        format!("{hub}/library/alpine"),
        format!(
            "{}/docker/library/debian",
            rule_prefix(&stack, Upstream::EcrPublic)
        ),
    ] {
        let pulled = shim(
            "POST",
            "/glrunner-shim/ecr-pull",
            serde_json::json!({"region": "us-east-1", "repository": repository}),
        )
        .await;
        assert_eq!(pulled["created"], true, "{repository}");
    }
    assert!(
        census(&config, "moto-cache")
            .await
            .contains(&("cache repository", 2))
    );
    // Nothing written or returned carries the token.
    let state = std::fs::read_to_string(dir.path().join("moto-cache.json")).unwrap();
    assert!(!state.contains(token) && !state.contains("NEVER-SHOWN"));
    let shown = format!(
        "{outcome:?}{}{}",
        serde_json::to_string(&outcome).unwrap(),
        outcome.plan.render_tree()
    );
    assert!(!shown.contains("NEVER-SHOWN"), "the credential leaked");

    let report = glrunner_infra::teardown(&spec.stack, &spec.region, &network, &cluster, &options)
        .await
        .unwrap();
    assert!(report.leftovers.is_empty());
    assert!(!format!("{report:?}").contains("NEVER-SHOWN"));
    let after = census(&config, "moto-cache").await;
    assert!(after.iter().all(|(_, n)| *n == 0), "left behind: {after:?}");
    // Deleted without a recovery window: the name is free again at once.
    let listed = aws_sdk_secretsmanager::Client::new(&config)
        .list_secrets()
        .include_planned_deletion(true)
        .send()
        .await
        .unwrap();
    assert!(
        listed.secret_list().iter().all(|s| !s
            .name()
            .unwrap_or_default()
            .starts_with("ecr-pullthroughcache/moto-cache/")),
        "the secret is only scheduled for deletion"
    );
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
    let _guard = MOTO.lock().await;
    let Some(config) = moto().await else { return };
    let (network, cluster) = (AwsNetwork::new(&config), AwsCluster::new(&config));
    let mut spec = spec("moto-s3c");
    spec.cache.as_mut().unwrap().expire_days = 9;
    let outcome = glrunner_infra::provision(&spec, &network, &cluster, &fast())
        .await
        .unwrap();
    let cache = outcome.cache.clone().expect("the stack has a cache");
    assert_eq!(cache.bucket, "moto-s3c-123456789012-us-east-1-cache");
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
            .any(|t| t.key() == STACK_TAG && t.value() == "moto-s3c")
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
    let after = census(&config, "moto-s3c").await;
    assert!(after.iter().all(|(_, n)| *n == 0), "left behind: {after:?}");
}

/// Job roles (`--job-role`, #25): one IAM role per job ServiceAccount, trusting exactly
/// `system:serviceaccount:<runner ns>:<NAME>` with the STS audience on the cluster's OIDC
/// provider, with the user's managed policies attached (moto loads AWS's managed policies:
/// `MOTO_IAM_LOAD_MANAGED_POLICIES`); the role ARN the flow annotates the ServiceAccount with is
/// the one IAM answers; a policy ARN no policy has is refused and rolls the role back; teardown
/// detaches the policies and deletes the roles.
#[tokio::test]
async fn job_roles_trust_their_service_account_carry_their_policies_and_are_torn_down() {
    let _guard = MOTO.lock().await;
    let Some(config) = moto().await else { return };
    let (network, cluster) = (AwsNetwork::new(&config), AwsCluster::new(&config));
    let mut spec = spec("moto-jobs");
    spec.cache = None;
    spec.image_cache = glrunner_infra::image_cache::ImageCacheSpec::off();
    let s3_read = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess";
    let ecr_read = "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly";
    spec.job_roles = glrunner_infra::job_roles::group([
        ("deploy".to_string(), s3_read.to_string()),
        ("deploy".to_string(), ecr_read.to_string()),
        ("read-only".to_string(), s3_read.to_string()),
    ]);
    let outcome = glrunner_infra::provision(&spec, &network, &cluster, &fast())
        .await
        .unwrap();
    let applied = outcome.applied.as_ref().unwrap();
    let provider = applied.resources["oidc-provider"].id.clone();
    let host = provider.split_once(":oidc-provider/").unwrap().1;
    let iam = aws_sdk_iam::Client::new(&config);
    let accounts = glrunner_infra::job_roles::service_accounts(&spec, "123456789012");
    assert_eq!(accounts.len(), 2);
    for ((name, arn), want) in accounts
        .iter()
        .zip([vec![s3_read, ecr_read], vec![s3_read]])
    {
        let role_name = arn.rsplit('/').next().unwrap();
        let role = iam.get_role().role_name(role_name).send().await.unwrap();
        let role = role.role().unwrap();
        assert_eq!(role.arn(), arn, "the ARN the flow computes is IAM's");
        assert_eq!(
            applied.resources[&glrunner_infra::job_roles::key(name)]
                .arn
                .as_deref(),
            Some(arn.as_str())
        );
        let trust = decode_policy(role.assume_role_policy_document().unwrap());
        assert_eq!(
            trust["Statement"],
            serde_json::json!([{
                "Effect": "Allow",
                "Principal": { "Federated": provider },
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": { "StringEquals": {
                    format!("{host}:sub"): format!("system:serviceaccount:gitlab-runner:{name}"),
                    format!("{host}:aud"): "sts.amazonaws.com",
                } }
            }])
        );
        let attached = iam
            .list_attached_role_policies()
            .role_name(role_name)
            .send()
            .await
            .unwrap();
        let mut arns: Vec<&str> = attached
            .attached_policies()
            .iter()
            .filter_map(|p| p.policy_arn())
            .collect();
        arns.sort_unstable();
        let mut want = want;
        want.sort_unstable();
        assert_eq!(arns, want, "{name}");
    }

    let report = glrunner_infra::teardown(&spec.stack, &spec.region, &network, &cluster, &fast())
        .await
        .unwrap();
    assert!(report.leftovers.is_empty(), "{:?}", report.leftovers);
    for (_, arn) in &accounts {
        let role_name = arn.rsplit('/').next().unwrap();
        assert!(iam.get_role().role_name(role_name).send().await.is_err());
    }
    let after = census(&config, "moto-jobs").await;
    assert!(after.iter().all(|(_, n)| *n == 0), "left behind: {after:?}");

    // A policy no one has: IAM's NoSuchEntity, and no half-made role stays.
    let mut bad = spec.clone();
    bad.job_roles = glrunner_infra::job_roles::group([(
        "deploy".to_string(),
        "arn:aws:iam::123456789012:policy/does-not-exist".to_string(),
    )]);
    let err = glrunner_infra::provision(&bad, &network, &cluster, &fast())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("does-not-exist"), "{err}");
    let role_name = glrunner_infra::job_roles::role_name("moto-jobs", "us-east-1", "deploy");
    assert!(iam.get_role().role_name(&role_name).send().await.is_err());
    let report = glrunner_infra::teardown(&bad.stack, &bad.region, &network, &cluster, &fast())
        .await
        .unwrap();
    assert!(report.leftovers.is_empty(), "{:?}", report.leftovers);
}
