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
    let quota = account.quota("fargate", "L-3032A538").await.unwrap();
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
        .simulate(&caller.principal_arn, &["ec2:CreateVpc".to_string()])
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
    let many: Vec<String> = (0..150).map(|i| format!("ec2:Action{i}")).collect();
    let decisions = account
        .simulate(&caller.principal_arn, &many)
        .await
        .unwrap();
    assert_eq!(decisions.len(), 150);
    assert!(decisions.iter().all(|d| d.allowed()));
    assert_eq!(decisions[149].action, "ec2:Action149");
}
