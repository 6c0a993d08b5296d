//! The reaper on the in-memory backend: concurrency bound, failures, evidence checks, watch on
//! paused tokio time, report shapes and bad input.

use std::collections::BTreeSet;
use std::num::NonZeroUsize;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use glrunner_janitor::clock::{ManualClock, TokioClock};
use glrunner_janitor::memory::{Fault, InMemoryJobStatus, InMemoryPods, NewPod};
use glrunner_janitor::{
    Action, DeleteMode, DeleteOutcome, Error, JobStatus, ListQuery, PodApi, PodInfo, PodKey,
    PodPhase, Policy, Reaper, ReaperConfig, Result,
};
use jiff::Timestamp;

const NS: &str = "gitlab-runner";

fn t0() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn store() -> (InMemoryPods, ManualClock) {
    let clock = ManualClock::new(t0());
    (
        InMemoryPods::new().with_clock(Arc::new(clock.clone())),
        clock,
    )
}

fn reaper(api: Arc<dyn PodApi>, clock: &ManualClock) -> Reaper {
    let policy = Policy::new([NS]).with_grace(Duration::from_secs(60));
    Reaper::new(api, ReaperConfig::new(policy))
        .unwrap()
        .with_clock(Arc::new(clock.clone()))
}

/// Counts deletes in flight.
struct Counting {
    inner: InMemoryPods,
    now: AtomicUsize,
    max: AtomicUsize,
}

#[async_trait]
impl PodApi for Counting {
    fn backend(&self) -> &'static str {
        "counting"
    }
    async fn list_pods(&self, q: &ListQuery) -> Result<Vec<PodInfo>> {
        self.inner.list_pods(q).await
    }
    async fn get_pod(&self, ns: &str, name: &str) -> Result<Option<PodInfo>> {
        self.inner.get_pod(ns, name).await
    }
    async fn delete_pod(&self, key: &PodKey, mode: DeleteMode) -> Result<DeleteOutcome> {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
        let r = self.inner.delete_pod(key, mode).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        r
    }
}

#[tokio::test(start_paused = true)]
async fn deletes_are_bounded_by_the_concurrency() {
    let (pods, clock) = store();
    pods.set_latency(Duration::from_millis(50));
    for job in 0..100 {
        pods.insert(NewPod::job(NS, "mgr", 1, job)).unwrap();
    }
    clock.advance(Duration::from_secs(3600));
    let counting = Arc::new(Counting {
        inner: pods.clone(),
        now: AtomicUsize::new(0),
        max: AtomicUsize::new(0),
    });
    let policy = Policy::new([NS]).with_grace(Duration::from_secs(60));
    let config = ReaperConfig::new(policy).with_concurrency(NonZeroUsize::new(4).unwrap());
    let report = Reaper::new(counting.clone(), config)
        .unwrap()
        .with_clock(Arc::new(clock))
        .run_once()
        .await
        .unwrap();
    assert_eq!(report.deleted(), 100);
    assert_eq!(counting.max.load(Ordering::SeqCst), 4);
    assert!(pods.pods().is_empty());
    assert_eq!(pods.deletions().len(), 100);
    assert!(pods.calls().list_pages >= 1);
}

#[tokio::test]
async fn a_failed_delete_is_reported_and_the_round_goes_on() {
    let (pods, clock) = store();
    let bad = pods.insert(NewPod::job(NS, "mgr", 1, 1)).unwrap();
    pods.insert(NewPod::job(NS, "mgr", 1, 2)).unwrap();
    pods.fail_deletes_of(&bad.name, Some(Fault::PermissionDenied));
    clock.advance(Duration::from_secs(3600));
    let report = reaper(Arc::new(pods.clone()), &clock)
        .run_once()
        .await
        .unwrap();
    assert_eq!(report.deleted(), 1);
    assert_eq!(report.errors.len(), 1);
    assert_eq!(report.errors[0].category, "permission_denied");
    assert!(
        report.errors[0].message.contains(&bad.name),
        "{}",
        report.errors[0].message
    );
    assert_eq!(
        report
            .reaped
            .iter()
            .find(|p| p.name == bad.name)
            .unwrap()
            .action,
        Action::Failed
    );
    assert_eq!(pods.pods().len(), 1);
}

#[tokio::test]
async fn a_failed_list_deletes_nothing() {
    let (pods, clock) = store();
    pods.insert(NewPod::job(NS, "mgr", 1, 1)).unwrap();
    clock.advance(Duration::from_secs(3600));
    pods.fail_lists(Some(Fault::Unavailable));
    let err = reaper(Arc::new(pods.clone()), &clock)
        .run_once()
        .await
        .unwrap_err();
    assert!(err.to_string().contains(NS), "{err}");
    assert!(pods.deletions().is_empty());
}

#[tokio::test]
async fn manager_check_reaps_orphans_only() {
    let (pods, clock) = store();
    let manager = pods
        .insert(NewPod::manager(NS, "gitlab-runner", "jx682"))
        .unwrap();
    let healthy = NewPod::job(NS, &manager.name, 1, 1)
        .with_phase(PodPhase::Running)
        .started_at(t0());
    let healthy = pods.insert(healthy).unwrap();
    let orphan = NewPod::job(NS, "gitlab-runner-5fd7489954-dead1", 1, 2)
        .with_phase(PodPhase::Running)
        .started_at(t0());
    let orphan = pods.insert(orphan).unwrap();
    clock.advance(Duration::from_secs(600));
    let api: Arc<dyn PodApi> = Arc::new(pods.clone());
    let policy = Policy::new([NS]).with_grace(Duration::from_secs(60));
    let config = ReaperConfig::new(policy).with_manager_check(true);
    let report = Reaper::new(api, config)
        .unwrap()
        .with_clock(Arc::new(clock))
        .run_once()
        .await
        .unwrap();
    let reaped: Vec<_> = report
        .reaped
        .iter()
        .map(|p| (p.name.as_str(), p.reason.code()))
        .collect();
    assert_eq!(reaped, [(orphan.name.as_str(), "manager_gone")]);
    assert!(pods.pod(NS, &healthy.name).is_some());
    assert!(pods.pod(NS, &manager.name).is_some());
}

#[tokio::test]
async fn gitlab_check_reaps_finished_jobs_and_survives_lookup_failures() {
    let (pods, clock) = store();
    let running = |job| {
        NewPod::job(NS, "mgr", 5, job)
            .with_phase(PodPhase::Running)
            .started_at(t0())
    };
    let done = pods.insert(running(1)).unwrap();
    let active = pods.insert(running(2)).unwrap();
    let jobs = InMemoryJobStatus::new();
    jobs.set(5, 1, JobStatus::Canceled);
    jobs.set(5, 2, JobStatus::Running);
    clock.advance(Duration::from_secs(600));
    let r = reaper(Arc::new(pods.clone()), &clock).with_job_status(Arc::new(jobs.clone()));
    let report = r.run_once().await.unwrap();
    let reaped: Vec<_> = report
        .reaped
        .iter()
        .map(|p| (p.name.as_str(), p.reason.code()))
        .collect();
    assert_eq!(reaped, [(done.name.as_str(), "gitlab_job_finished")]);
    assert!(pods.pod(NS, &active.name).is_some());
    assert_eq!(jobs.lookups(), 2);

    jobs.fail(Some(Fault::Throttled));
    let report = r.run_once().await.unwrap();
    assert!(
        report.reaped.is_empty(),
        "unknown GitLab status never reaps"
    );
    assert_eq!(report.errors.len(), 1);
    assert_eq!(report.errors[0].category, "throttled");
}

#[tokio::test(start_paused = true)]
async fn watch_reaps_pods_as_they_become_hung_on_tokio_time() {
    let clock = Arc::new(TokioClock::starting_at(t0()));
    let pods = InMemoryPods::new().with_clock(clock.clone());
    let hung = pods.insert(NewPod::job(NS, "mgr", 1, 1)).unwrap();
    let policy = Policy::new([NS]).with_grace(Duration::from_secs(60));
    let reaper = Reaper::new(Arc::new(pods.clone()), ReaperConfig::new(policy))
        .unwrap()
        .with_clock(clock);
    let mut rounds = Vec::new();
    let wall = std::time::Instant::now();
    reaper
        .watch(Duration::from_secs(60), std::future::pending(), |r| {
            let report = r.unwrap();
            rounds.push(
                report
                    .reaped
                    .iter()
                    .map(|p| p.name.clone())
                    .collect::<BTreeSet<_>>(),
            );
            if rounds.len() == 6 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .await;
    assert!(wall.elapsed() < Duration::from_secs(5), "virtual time");
    // Pending timeout 180 s + grace 60 s: kept at 0, 60, 120, 180, 240 s; reaped at 300 s.
    let reaped_at: Vec<bool> = rounds.iter().map(|r| r.contains(&hung.name)).collect();
    assert_eq!(reaped_at, [false, false, false, false, false, true]);
    assert!(pods.pods().is_empty());
}

#[tokio::test(start_paused = true)]
async fn watch_stops_on_shutdown_after_the_round_in_progress() {
    let (pods, clock) = store();
    let hung = pods.insert(NewPod::job(NS, "mgr", 1, 1)).unwrap();
    clock.advance(Duration::from_secs(3600));
    let r = reaper(Arc::new(pods.clone()), &clock);
    // Shutdown arrives 90 s in: rounds at 0 s and 60 s ran, the one due at 120 s never starts.
    let shutdown = tokio::time::sleep(Duration::from_secs(90));
    let mut reaped = Vec::new();
    r.watch(Duration::from_secs(60), shutdown, |round| {
        reaped.push(round.unwrap().reaped.len());
        ControlFlow::Continue(())
    })
    .await;
    assert_eq!(
        reaped,
        [1, 0],
        "two rounds ran, the first reaped the hung pod"
    );
    assert!(pods.pod(NS, &hung.name).is_none());
    assert_eq!(pods.calls().lists, 2);
}

#[tokio::test]
async fn watch_with_shutdown_already_resolved_still_runs_one_whole_round() {
    let (pods, clock) = store();
    pods.insert(NewPod::job(NS, "mgr", 1, 1)).unwrap();
    clock.advance(Duration::from_secs(3600));
    let r = reaper(Arc::new(pods.clone()), &clock);
    let mut rounds = 0;
    r.watch(Duration::from_secs(3600), async {}, |round| {
        rounds += 1;
        assert_eq!(round.unwrap().deleted(), 1);
        ControlFlow::Continue(())
    })
    .await;
    assert_eq!(rounds, 1);
    assert_eq!(pods.deletions().len(), 1);
}

#[tokio::test]
async fn report_renders_human_and_json() {
    let (pods, clock) = store();
    pods.insert(
        NewPod::job(NS, "mgr", 1, 1)
            .with_node("fargate-1")
            .with_requests(1000, 2048),
    )
    .unwrap();
    pods.insert(
        NewPod::job(NS, "mgr", 1, 2)
            .with_phase(PodPhase::Running)
            .started_at(t0()),
    )
    .unwrap();
    clock.advance(Duration::from_secs(3600));
    let report = reaper(Arc::new(pods), &clock).run_once().await.unwrap();
    let human = report.to_string();
    assert!(
        human.contains("pending_too_long") && human.contains("1 vCPU / 3 GB"),
        "{human}"
    );
    // The kept section lists the healthy running pod under its reason, with its count.
    let kept_line = human
        .lines()
        .find(|l| l.trim_start().starts_with("running_within_timeout"))
        .unwrap_or_else(|| panic!("no kept line for the running pod: {human}"));
    assert_eq!(
        kept_line.split_whitespace().collect::<Vec<_>>(),
        ["running_within_timeout", "1"],
        "{human}"
    );
    assert_eq!(report.kept.get("running_within_timeout"), Some(&1));
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["considered"], 2);
    assert_eq!(json["reaped"][0]["reason"]["reason"], "pending_too_long");
    assert_eq!(
        json["reaped"][0]["action"], "terminating",
        "bound pod: graceful delete"
    );
    assert!(json["cost"]["usd_per_hour"].as_f64().unwrap() > 0.04);
    assert_eq!(json["cost"]["pricing"]["region"], "us-east-1");
}

#[test]
fn bad_namespaces_are_invalid_input() {
    let api: Arc<dyn PodApi> = Arc::new(InMemoryPods::new());
    for ns in ["Bad_Name", ""] {
        let err = Reaper::new(api.clone(), ReaperConfig::new(Policy::new([ns]))).unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    }
    let none: [&str; 0] = [];
    assert!(Reaper::new(api, ReaperConfig::new(Policy::new(none))).is_err());
}

#[tokio::test]
async fn demo_fleet_reaps_the_hung_pods_only() {
    let clock = ManualClock::new(t0());
    let pods = InMemoryPods::new().with_clock(Arc::new(clock.clone()));
    let jobs = InMemoryJobStatus::new();
    glrunner_janitor::memory::seed_demo(&pods, &jobs, NS, t0()).unwrap();
    let total = pods.pods().len();
    let r = reaper(Arc::new(pods.clone()), &clock).with_job_status(Arc::new(jobs));
    let report = r.run_once().await.unwrap();
    let by_reason: Vec<(&str, usize)> = report
        .reaped_by_reason
        .iter()
        .map(|(k, v)| (*k, *v))
        .collect();
    assert_eq!(
        by_reason,
        [
            ("finished", 2),
            ("gitlab_job_finished", 1),
            ("past_job_timeout", 2),
            ("pending_too_long", 3),
            ("stuck_terminating", 1)
        ],
        "{report}"
    );
    assert!(report.errors.is_empty(), "{report}");
    // Managers, healthy jobs, the name-alike and the other namespace's pods are all still there.
    let left = pods.pods();
    assert!(left.iter().any(|p| p.labels.contains_key("chart")));
    assert!(left.iter().any(|p| p.name.starts_with("runner-lookalike")));
    assert_eq!(
        left.iter().filter(|p| p.namespace == "other-team").count(),
        2
    );
    // All demo job pods are bound to Fargate nodes: graceful deletes leave running and pending ones
    // Terminating (no kubelet in this store); the two finished ones went at once, as the API server
    // deletes Succeeded/Failed pods without grace, and the stuck one was force-deleted.
    assert_eq!(total - left.len(), 3);
    assert_eq!(left.iter().filter(|p| p.is_terminating()).count(), 6);
}
