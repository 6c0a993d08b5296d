//! [`AwsAccount`] against moto with the project's preflight shim (`scripts/shim_preflight.py`:
//! Service Quotas, `iam:SimulatePrincipalPolicy`, the Price List API), through the same
//! conformance suite as the in-memory account. Skips without `GLRUNNER_TEST_MOTO_URL`, except
//! under `CI=true`.

use glrunner_infra::account::conformance::{self, ConformanceWorld};
use glrunner_infra::aws::AwsAccount;
use glrunner_infra::{AccountInspector, Error};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The shim's preflight state is shared: these tests run one at a time.
static SHIM: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn moto_url() -> Option<String> {
    match std::env::var("GLRUNNER_TEST_MOTO_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "GLRUNNER_TEST_MOTO_URL is not set: run ./scripts/test.sh"
            );
            eprintln!(
                "skipping: GLRUNNER_TEST_MOTO_URL is not set (./scripts/test.sh starts moto)"
            );
            None
        }
    }
}

async fn sdk(url: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_config::Region::new("eu-west-1"))
        .test_credentials()
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
        .load()
        .await
}

/// Sets the shim's preflight state (a plain HTTP/1.1 POST; the shim is on loopback).
async fn configure(url: &str, state: serde_json::Value) {
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let body = state.to_string();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /glrunner-shim/preflight HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"),
        "the moto shim has no preflight routes (scripts/shim_preflight.py not loaded?): {answer}"
    );
}

fn on_any(action: &str) -> glrunner_infra::PermissionCheck {
    glrunner_infra::PermissionCheck {
        action: action.to_owned(),
        resources: vec!["*".into()],
        context: Vec::new(),
    }
}

fn clean_state() -> serde_json::Value {
    serde_json::json!({"quotas": {}, "deny": [], "deny_simulation": false, "prices": {}, "pricing_denied": false})
}

#[tokio::test]
async fn aws_account_passes_the_conformance_suite_on_the_shim() {
    let Some(url) = moto_url() else { return };
    let _guard = SHIM.lock().await;
    let world = ConformanceWorld {
        denied_action: "eks:CreateCluster".into(),
        fargate_vcpu_quota: 8.0,
        fargate_vcpu_hour: 0.05,
        region: "eu-west-1".into(),
    };
    configure(
        &url,
        serde_json::json!({
            "quotas": {"fargate/L-3032A538": world.fargate_vcpu_quota},
            "deny": [world.denied_action],
            "deny_simulation": false,
            "pricing_denied": false,
            "prices": {"eu-west-1": {"fargate_vcpu_hour": world.fargate_vcpu_hour, "fargate_gb_hour": 0.0055, "eks_cluster_hour": 0.1}},
        }),
    )
    .await;
    let account = AwsAccount::new(&sdk(&url).await);
    let result = conformance::run(&account, &world).await;
    configure(&url, clean_state()).await;
    result.unwrap();
}

#[tokio::test]
async fn defaults_denials_and_usage_on_the_shim() {
    let Some(url) = moto_url() else { return };
    let _guard = SHIM.lock().await;
    configure(&url, clean_state()).await;
    let account = AwsAccount::new(&sdk(&url).await);
    // No applied value: AWS's default (6 vCPUs) through GetAWSDefaultServiceQuota.
    let quota = account
        .quota(
            glrunner_infra::account::FARGATE_VCPU.service_code,
            glrunner_infra::account::FARGATE_VCPU.quota_code,
        )
        .await
        .unwrap();
    assert_eq!(quota.value, 6.0);
    assert_eq!(quota.name, "Fargate On-Demand vCPU resource count");
    // The Price List API has no products for a region without prices.
    let prices = account.prices("ap-southeast-2").await.unwrap();
    assert_eq!(prices.fargate_vcpu_hour, None);
    // us-east-1 gets list prices, and the Fargate Spot (listed first, ending like On-Demand's
    // usage type), ARM and Windows products are not mistaken for x86 On-Demand.
    let prices = account.prices("us-east-1").await.unwrap();
    assert_eq!(prices.fargate_vcpu_hour, Some(0.04048));
    assert_eq!(prices.fargate_gb_hour, Some(0.004445));
    assert_eq!(prices.eks_cluster_hour, Some(0.10));
    // Another Region's usage types carry its own billing code (USE2-…).
    let prices = account.prices("us-east-2").await.unwrap();
    assert_eq!(prices.fargate_vcpu_hour, Some(0.04048));
    assert_eq!(prices.fargate_gb_hour, Some(0.004445));
    account.usage().await.unwrap();

    configure(
        &url,
        serde_json::json!({"deny_simulation": true, "pricing_denied": true}),
    )
    .await;
    let caller = account.caller().await.unwrap();
    let err = account
        .simulate(&caller.principal_arn, &[on_any("ec2:CreateVpc")])
        .await
        .unwrap_err();
    let denied_pricing = account.prices("us-east-1").await;
    configure(&url, clean_state()).await;
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
    assert!(
        matches!(denied_pricing, Err(Error::PermissionDenied { .. })),
        "{denied_pricing:?}"
    );

    // More actions than one page of simulation results.
    let many: Vec<_> = (0..150)
        .map(|i| on_any(&format!("ec2:Action{i}")))
        .collect();
    let decisions = account
        .simulate(&caller.principal_arn, &many)
        .await
        .unwrap();
    assert_eq!(decisions.len(), 150);
    assert!(decisions.iter().all(|d| d.allowed()));
    assert_eq!(decisions[149].action, "ec2:Action149");
}

/// The README's least-privilege policy for `stack` in `region` of moto's account.
fn readme_policy(stack: &str, region: &str) -> serde_json::Value {
    let readme = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../../README.md");
    let text = std::fs::read_to_string(readme).unwrap();
    let block = text
        .split_once("<!-- glrunner-least-privilege-policy -->")
        .and_then(|(_, rest)| rest.split_once("```json"))
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("README.md has no least-privilege policy block")
        .0
        .replace("<ACCOUNT>", "123456789012")
        .replace("<REGION>", region)
        .replace("<STACK>", stack);
    serde_json::from_str(&block).unwrap()
}

/// `policy` without `action` in any statement (a statement left without actions goes too:
/// IAM refuses it).
fn without(mut policy: serde_json::Value, action: &str) -> serde_json::Value {
    let statements = policy["Statement"].as_array_mut().unwrap();
    for statement in statements.iter_mut() {
        match &mut statement["Action"] {
            serde_json::Value::Array(list) => list.retain(|a| a != action),
            a if a == action => *a = serde_json::Value::Array(Vec::new()),
            _ => {}
        }
    }
    statements.retain(|s| s["Action"] != serde_json::json!([]));
    policy
}

/// An IAM user with `policy` inline and its access key: a principal IAM judges by its policy.
async fn principal(
    config: &aws_config::SdkConfig,
    name: &str,
    policy: &serde_json::Value,
) -> (String, aws_config::SdkConfig) {
    let iam = aws_sdk_iam::Client::new(config);
    let arn = match iam.create_user().user_name(name).send().await {
        Ok(out) => out.user().unwrap().arn().to_owned(),
        Err(_) => iam
            .get_user()
            .user_name(name)
            .send()
            .await
            .unwrap()
            .user()
            .unwrap()
            .arn()
            .to_owned(),
    };
    iam.put_user_policy()
        .user_name(name)
        .policy_name("glrunner")
        .policy_document(policy.to_string())
        .send()
        .await
        .unwrap();
    // One key at a time (IAM allows two per user; reruns reuse the user).
    let keys = iam.list_access_keys().user_name(name).send().await.unwrap();
    for old in keys.access_key_metadata() {
        if let Some(id) = old.access_key_id() {
            iam.delete_access_key()
                .user_name(name)
                .access_key_id(id)
                .send()
                .await
                .unwrap();
        }
    }
    let key = iam
        .create_access_key()
        .user_name(name)
        .send()
        .await
        .unwrap();
    let key = key.access_key().unwrap();
    let session = config
        .to_builder()
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new(
                    key.access_key_id(),
                    key.secret_access_key(),
                    None,
                    None,
                    "moto-user",
                ),
            ),
        )
        .build();
    (arn, session)
}

fn scope(stack: &str, region: &str) -> glrunner_infra::aws::actions::PermissionScope {
    glrunner_infra::aws::actions::PermissionScope {
        partition: "aws".into(),
        account: "123456789012".into(),
        region: region.into(),
        stack: stack.into(),
        cluster: stack.into(),
        extra_tags: Vec::new(),
        caller_role: None,
        flow: glrunner_infra::aws::actions::PermissionFlow::Provision,
    }
}

/// A principal whose policy is the README's (scoped to the stack's roles and cluster, nothing on
/// `*` that AWS can scope) passes the simulation of glrunner's checks; without `eks:TagResource`
/// exactly that is denied; and the same checks without their ARNs or context (what the
/// preflight sent before: every action on `*`) deny what the policy scopes.
#[tokio::test]
async fn a_stack_scoped_policy_passes_the_checks_on_its_arns_and_context() {
    use glrunner_infra::aws::actions::permission_checks;
    let Some(url) = moto_url() else { return };
    let _guard = SHIM.lock().await;
    configure(&url, clean_state()).await;
    let config = sdk(&url).await;
    let account = AwsAccount::new(&config);
    let checks = permission_checks(&scope("scoped", "eu-west-1"));

    let (arn, _) = principal(&config, "scoped-ci", &readme_policy("scoped", "eu-west-1")).await;
    let decisions = account.simulate(&arn, &checks).await.unwrap();
    let denied: Vec<String> = decisions
        .iter()
        .filter(|d| !d.allowed())
        .map(|d| format!("{} on {}", d.action, d.resource))
        .collect();
    assert!(denied.is_empty(), "the README policy is denied {denied:?}");

    let (arn, _) = principal(
        &config,
        "scoped-ci-no-tags",
        &without(readme_policy("scoped", "eu-west-1"), "eks:TagResource"),
    )
    .await;
    let decisions = account.simulate(&arn, &checks).await.unwrap();
    let denied: std::collections::BTreeSet<&str> = decisions
        .iter()
        .filter(|d| !d.allowed())
        .map(|d| d.action.as_str())
        .collect();
    assert_eq!(denied, ["eks:TagResource"].into_iter().collect());

    // On `*` without context, as before: the scoped statements do not match.
    let unscoped: Vec<_> = checks
        .iter()
        .map(|c| glrunner_infra::PermissionCheck {
            action: c.action.clone(),
            resources: vec!["*".into()],
            context: Vec::new(),
        })
        .collect();
    let (arn, _) = principal(&config, "scoped-ci", &readme_policy("scoped", "eu-west-1")).await;
    let decisions = account.simulate(&arn, &unscoped).await.unwrap();
    let denied: std::collections::BTreeSet<&str> = decisions
        .iter()
        .filter(|d| !d.allowed())
        .map(|d| d.action.as_str())
        .collect();
    for action in [
        "eks:DescribeCluster",
        "iam:CreateRole",
        "iam:PassRole",
        "ec2:CreateTags",
        "eks:CreateCluster",
    ] {
        assert!(
            denied.contains(action),
            "{action} allowed on * without context"
        );
    }
    // Another stack's cluster, and a role passed to another service, are denied.
    let mut other = scope("other", "eu-west-1");
    other.cluster = "other".into();
    let decisions = account
        .simulate(&arn, &permission_checks(&other))
        .await
        .unwrap();
    assert!(
        decisions
            .iter()
            .any(|d| d.action == "eks:DescribeCluster" && !d.allowed())
    );
    let pass_to_ec2 = glrunner_infra::PermissionCheck {
        action: "iam:PassRole".into(),
        resources: vec!["arn:aws:iam::123456789012:role/scoped-eu-west-1-fargate-pods".into()],
        context: vec![glrunner_infra::ContextValue::string(
            "iam:PassedToService",
            "ec2.amazonaws.com",
        )],
    };
    let decisions = account.simulate(&arn, &[pass_to_ec2]).await.unwrap();
    assert_eq!(decisions[0].decision, "implicitDeny");
}

/// A create that carries tags needs the tagging action too (EC2 User Guide, "Grant permission
/// to tag resources during creation"; IAM iam:TagRole; EKS eks:TagResource): the shim refuses it
/// as AWS does, and allows the untagged create.
#[tokio::test]
async fn the_shim_refuses_a_tagged_create_without_its_tagging_action() {
    use aws_sdk_ec2::error::ProvideErrorMetadata as _;
    let Some(url) = moto_url() else { return };
    let _guard = SHIM.lock().await;
    let config = sdk(&url).await;
    let mut policy = readme_policy("tagless", "eu-west-1");
    for action in ["ec2:CreateTags", "iam:TagRole", "eks:TagResource"] {
        policy = without(policy, action);
    }
    let (_, session) = principal(&config, "tagless-ci", &policy).await;

    let ec2 = aws_sdk_ec2::Client::new(&session);
    let tags = aws_sdk_ec2::types::TagSpecification::builder()
        .resource_type(aws_sdk_ec2::types::ResourceType::Vpc)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("glrunner.io/stack")
                .value("tagless")
                .build(),
        )
        .build();
    let err = ec2
        .create_vpc()
        .cidr_block("10.42.0.0/16")
        .tag_specifications(tags)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("UnauthorizedOperation"), "{err:?}");
    assert!(
        err.message().unwrap_or_default().contains("ec2:CreateTags"),
        "{err:?}"
    );
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.42.0.0/16")
        .send()
        .await
        .unwrap();
    ec2.delete_vpc()
        .vpc_id(vpc.vpc().unwrap().vpc_id().unwrap())
        .send()
        .await
        .unwrap();

    let iam = aws_sdk_iam::Client::new(&session);
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"eks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    let err = iam
        .create_role()
        .role_name("tagless-eu-west-1-eks-cluster")
        .path("/glrunner/")
        .assume_role_policy_document(trust)
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key("glrunner.io/stack")
                .value("tagless")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("AccessDenied"), "{err:?}");
    assert!(
        err.message().unwrap_or_default().contains("iam:TagRole"),
        "{err:?}"
    );

    let eks = aws_sdk_eks::Client::new(&session);
    let err = eks
        .create_cluster()
        .name("tagless")
        .role_arn("arn:aws:iam::123456789012:role/glrunner/tagless-eu-west-1-eks-cluster")
        .resources_vpc_config(aws_sdk_eks::types::VpcConfigRequest::builder().build())
        .tags("glrunner.io/stack", "tagless")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("AccessDeniedException"), "{err:?}");
    assert!(
        err.message()
            .unwrap_or_default()
            .contains("eks:TagResource"),
        "{err:?}"
    );
    // Nothing was created.
    let clusters = aws_sdk_eks::Client::new(&config)
        .list_clusters()
        .send()
        .await
        .unwrap();
    assert!(!clusters.clusters().contains(&"tagless".to_string()));
}
