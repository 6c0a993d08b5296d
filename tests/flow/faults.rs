//! The fault suite (the whole sandbox flow under injected faults) as CI runs it: every case
//! leaves nothing and duplicates nothing, and the faults really were injected.

use glrunner::fault_suite::run_suite;

#[tokio::test(start_paused = true)]
async fn the_fault_suite_leaves_nothing_and_duplicates_nothing() {
    let report = run_suite(400, 42).await;
    eprintln!("{}", report.render_text());
    assert!(report.cases.len() >= 10, "{}", report.render_text());
    assert!(
        report.cases.iter().all(|c| c.faults_injected > 0),
        "every case injected its fault: {}",
        report.render_text()
    );
    assert_eq!(report.leftovers, 0, "{}", report.render_text());
    assert_eq!(report.duplicates, 0, "{}", report.render_text());
    // A failed janitor round (the apiserver restarting) is retried, as `reap --watch` does:
    // the flow finishes its job instead of failing the reap phase.
    let restart = report
        .cases
        .iter()
        .find(|c| c.name == "apiserver-restart-mid-reap")
        .unwrap();
    assert_eq!(restart.outcome, "done", "{}", report.render_text());
    // Throttling outlasting the SDK's retries is retried by the engine: the job gets done.
    let throttled = report
        .cases
        .iter()
        .find(|c| c.name == "aws-throttling")
        .unwrap();
    assert_eq!(throttled.outcome, "done", "{}", report.render_text());
}
