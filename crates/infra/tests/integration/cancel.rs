//! Stopping apply and teardown on a cancellation token (what SIGINT/SIGTERM trigger in the
//! examples): nothing new starts, the state file keeps what was done, a re-run converges with
//! no duplicate, and a resumed teardown leaves nothing (in-memory cloud, paused clock).

use std::collections::BTreeMap;
use std::time::Duration;

use glrunner_infra::memory::InMemoryCloud;
use glrunner_infra::spec::{StackName, StackSpec};
use glrunner_infra::{Error, StackOptions, provision_until, teardown_until};
use tokio_util::sync::CancellationToken;

fn spec() -> StackSpec {
    StackSpec::new(StackName::new("stop").unwrap(), "us-east-1")
}

/// Every present resource's step key, with how many resources carry it (EKS's own network
/// interfaces and security group carry none).
fn keys(cloud: &InMemoryCloud) -> BTreeMap<String, usize> {
    let mut keys = BTreeMap::new();
    for r in cloud
        .all_resources()
        .into_iter()
        .filter(|r| !r.key.is_empty())
    {
        *keys.entry(r.key).or_insert(0) += 1;
    }
    keys
}

/// Cancels `token` after `after` of (virtual) time.
fn cancel_after(token: &CancellationToken, after: Duration) {
    let token = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        token.cancel();
    });
}

#[tokio::test(start_paused = true)]
async fn a_stopped_apply_resumes_without_duplicates_and_a_stopped_teardown_continues() {
    let cloud = InMemoryCloud::default();
    let dir = tempfile::tempdir().unwrap();
    let options = StackOptions {
        state_dir: Some(dir.path().to_path_buf()),
        ..StackOptions::default()
    };
    let spec = spec();

    // Two minutes in, the network is up and the EKS control plane is creating (~10 min).
    let stop = CancellationToken::new();
    cancel_after(&stop, Duration::from_secs(120));
    let started = tokio::time::Instant::now();
    let err = provision_until(&spec, &cloud, &cloud, &options, &stop)
        .await
        .expect_err("a stop interrupts the apply");
    assert!(matches!(err, Error::Interrupted { .. }), "{err}");
    assert!(
        err.to_string().contains("run the same command again"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(180),
        "the cluster wait was cut short, not waited out: {:?}",
        started.elapsed()
    );
    let after_stop = keys(&cloud);
    assert!(after_stop.contains_key("cluster"), "{after_stop:?}");
    assert!(
        !after_stop.contains_key("fargate-profile"),
        "no step started after the stop: {after_stop:?}"
    );
    let state = std::fs::read_to_string(dir.path().join("stop.json")).unwrap();
    assert!(
        state.contains("vpc"),
        "done steps are in the state file: {state}"
    );

    // The re-run converges: every step once, nothing created twice.
    let outcome = provision_until(&spec, &cloud, &cloud, &options, &CancellationToken::new())
        .await
        .unwrap();
    let report = outcome.applied.unwrap();
    assert_eq!(report.steps.len(), outcome.plan.steps.len());
    assert!(
        report.created() < report.steps.len(),
        "the re-run reused what existed"
    );
    let all = keys(&cloud);
    assert!(all.values().all(|n| *n == 1), "a duplicate: {all:?}");

    // A teardown stopped after its first deletions, then resumed, leaves nothing.
    let stop = CancellationToken::new();
    cancel_after(&stop, Duration::from_secs(30));
    let err = teardown_until(&spec.stack, &spec.region, &cloud, &cloud, &options, &stop)
        .await
        .expect_err("a stop interrupts the teardown");
    assert!(matches!(err, Error::Interrupted { .. }), "{err}");
    assert!(
        !cloud.all_resources().is_empty(),
        "the stop left work to do"
    );
    let report = teardown_until(
        &spec.stack,
        &spec.region,
        &cloud,
        &cloud,
        &options,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(report.leftovers.is_empty());
    assert!(
        cloud.all_resources().is_empty(),
        "{:?}",
        cloud.all_resources()
    );
    assert!(
        !dir.path().join("stop.json").exists(),
        "state removed at the end"
    );
}
