//! The mockall mocks: what the reaper sends for a stuck Terminating pod, and that it never deletes
//! what the policy keeps.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use glrunner_janitor::clock::ManualClock;
use glrunner_janitor::memory::{InMemoryPods, NewPod};
use glrunner_janitor::{
    DeleteOutcome, MockJobStatusSource, MockPodApi, PodPhase, Policy, Reaper, ReaperConfig,
};
use jiff::Timestamp;
use mockall::predicate::{always, eq};

#[tokio::test]
async fn stuck_terminating_pod_is_force_deleted_with_its_uid() {
    let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    // Build realistic PodInfos with the memory store, then serve them from the mock.
    let store = InMemoryPods::new().with_clock(Arc::new(ManualClock::new(t0)));
    let created = |pod: NewPod| {
        let key = store.insert(pod).unwrap();
        store.pod(&key.namespace, &key.name).unwrap()
    };
    let mut stuck = created(
        NewPod::job("ns", "mgr", 1, 1)
            .with_phase(PodPhase::Running)
            .with_node("n"),
    );
    stuck.deletion_timestamp = Some(t0);
    let manager = created(NewPod::manager("ns", "gitlab-runner", "abcde"));
    let listed = vec![stuck.clone(), manager];

    let mut api = MockPodApi::new();
    api.expect_backend().return_const("mock");
    api.expect_list_pods()
        .times(1)
        .returning(move |_| Ok(listed.clone()));
    let key = stuck.key();
    api.expect_delete_pod()
        .times(1)
        .withf(move |k, mode| *k == key && mode.is_force())
        .returning(|_, _| Ok(DeleteOutcome::Deleted));

    let mut jobs = MockJobStatusSource::new();
    jobs.expect_job_status().with(always(), eq(1)).never();

    let clock = ManualClock::new(t0);
    clock.advance(Duration::from_secs(3600));
    let policy = Policy::new(["ns"]).with_grace(Duration::from_secs(60));
    let report = Reaper::new(Arc::new(api), ReaperConfig::new(policy))
        .unwrap()
        .with_clock(Arc::new(clock))
        .with_job_status(Arc::new(jobs))
        .run_once()
        .await
        .unwrap();
    assert_eq!(report.deleted(), 1);
    // The mock ignores the label selector and also returned the manager: identity still keeps it.
    assert_eq!(
        report.kept,
        BTreeMap::from([("not_job_pod", 1)]),
        "{report}"
    );
}
