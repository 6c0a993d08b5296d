//! The load-test report's "queue time by Pending class": the flow samples the Pending job pods
//! while the load test runs and groups every job under the class its pod was Pending under.
//! On the sandbox, a pod the account's Fargate vCPU quota has no room for gets
//! `fargate-scheduler`'s Warning Event, so those jobs group under `fargate_pod_limit` and the
//! rest under `starting`.

use glrunner::flow::FlowReport;
use glrunner::janitor::PendingClass;
use glrunner::sandbox::SandboxConfig;

use super::run;

/// (jobs, jobs seen Pending) of `class` in the report's table.
fn row(report: &FlowReport, class: PendingClass) -> Option<(usize, usize)> {
    report
        .load_test
        .as_ref()?
        .queue_by_class
        .iter()
        .find(|r| r.class == class)
        .map(|r| (r.jobs, r.observed))
}

#[tokio::test(start_paused = true)]
async fn jobs_whose_pods_waited_for_the_vcpu_quota_group_under_the_pod_limit() {
    let jobs = 400;
    // The default account's quota binds at 400 jobs (the model's fitted quota: the golden
    // run's `limit` is `vcpu-quota`), so some pods find no room at first.
    let (world, config, report) = run(jobs, SandboxConfig::default(), |c| c).await;
    assert!(report.is_success(), "{}", report.render_text());
    let stats = world.stats();
    let refused = stats.quota_refusals as usize;
    assert!(
        refused > 0 && refused < jobs as usize,
        "the scenario: the quota holds some pods back, not all ({refused} of {jobs})"
    );
    assert_eq!(stats.jobs_timed_out, 0, "every held pod found room in time");

    let load = report.load_test.as_ref().unwrap();
    let sampling = load
        .pending_sampling
        .as_ref()
        .expect("the cluster was sampled");
    assert_eq!(sampling.failed_samples, 0);
    assert_eq!(
        sampling.interval_secs,
        config.pending_sample_interval.as_secs_f64()
    );
    // One sample per interval of the load-test phase (plus the first at its start), never
    // one per job: a bounded rate.
    let load_secs = report
        .phases
        .iter()
        .find(|p| p.phase == glrunner::flow::Phase::LoadTest)
        .unwrap()
        .secs;
    assert!(
        sampling.samples as f64 <= load_secs / sampling.interval_secs + 1.0,
        "{} samples in {load_secs} s",
        sampling.samples
    );

    // Every refused pod stays Pending for at least its Fargate start after the Event, longer
    // than the interval, so a sample sees it: exactly the refused jobs group under the pod
    // limit, each seen; the rest are `starting`.
    assert_eq!(
        row(&report, PendingClass::FargatePodLimit),
        Some((refused, refused)),
        "{}",
        report.render_text()
    );
    let (starting, _) = row(&report, PendingClass::Starting).unwrap();
    assert_eq!(starting, jobs as usize - refused);
    assert_eq!(load.queue_by_class.len(), 2, "{:?}", load.queue_by_class);
    // Sorted by job count, each row's percentiles over its own jobs.
    assert!(load.queue_by_class[0].jobs >= load.queue_by_class[1].jobs);
    for r in &load.queue_by_class {
        let (p50, p95, max) = (
            r.queue_p50_secs.unwrap(),
            r.queue_p95_secs.unwrap(),
            r.queue_max_secs.unwrap(),
        );
        assert!(p50 <= p95 && p95 <= max, "{r:?}");
    }
    let overall_max = report.load_test_report.as_ref().unwrap().queue.unwrap().max;
    let class_max = load
        .queue_by_class
        .iter()
        .map(|r| r.queue_max_secs.unwrap())
        .fold(0.0, f64::max);
    assert!(
        (class_max - overall_max).abs() < 1e-6,
        "the classes split the report's own queue times: {class_max} vs {overall_max}"
    );

    // The human report shows the table.
    let text = report.render_text();
    assert!(text.contains("queue time by Pending class"), "{text}");
    assert!(text.contains("fargate_pod_limit"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn without_a_binding_quota_every_job_is_starting() {
    let jobs = 200;
    let sandbox = SandboxConfig::default().with_fargate_vcpu_quota(4000.0);
    let (world, _, report) = run(jobs, sandbox, |c| c).await;
    assert!(report.is_success(), "{}", report.render_text());
    assert_eq!(world.stats().quota_refusals, 0);
    let load = report.load_test.as_ref().unwrap();
    assert_eq!(load.queue_by_class.len(), 1, "{:?}", load.queue_by_class);
    assert_eq!(
        row(&report, PendingClass::Starting).unwrap().0,
        jobs as usize
    );
}
