//! The fault suite (the whole sandbox flow under injected faults) as CI runs it: every case
//! leaves nothing and duplicates nothing, and the faults really were injected.

use std::sync::Arc;

use glrunner::fault_suite::{GitLabCall, GitLabFault, PROJECT, run_suite};
use glrunner::flow::{self, FlowConfig, FlowEvent};
use glrunner::gitlab::faulty::Faulty;
use glrunner::infra::{StackName, StackSpec};
use glrunner::sandbox::{SandboxConfig, SandboxWorld};

#[tokio::test(start_paused = true)]
async fn the_fault_suite_leaves_nothing_and_duplicates_nothing() {
    let report = run_suite(400, 42).await;
    eprintln!("{}", report.render_text());
    assert!(report.cases.len() >= 18, "{}", report.render_text());
    assert!(
        report.cases.iter().all(|c| c.faults_injected > 0),
        "every case injected its fault: {}",
        report.render_text()
    );
    assert_eq!(report.leftovers, 0, "{}", report.render_text());
    assert_eq!(report.duplicates, 0, "{}", report.render_text());
    let case = |name: &str| {
        report
            .cases
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("case {name}: {}", report.render_text()))
    };
    // A failed janitor round (the apiserver restarting) is retried, as `reap --watch` does:
    // the flow finishes its job instead of failing the reap phase.
    assert_eq!(
        case("apiserver-restart-mid-reap").outcome,
        "done",
        "{}",
        report.render_text()
    );
    // Throttling outlasting the SDK's retries is retried by the engine: the job gets done.
    assert_eq!(
        case("aws-throttling").outcome,
        "done",
        "{}",
        report.render_text()
    );
    // 5xx bursts on describe calls are polled through by the waits (reads), also during
    // teardown's wait for the cluster: the flow's own teardown then leaves nothing.
    for name in ["aws-5xx-burst", "aws-5xx-burst-in-cleanup"] {
        let c = case(name);
        assert_eq!(c.outcome, "done", "{}", report.render_text());
        assert_eq!(c.left_by_cleanup, 0, "{}", report.render_text());
    }
    // A runner, commit or pipeline POST whose answer was lost (before or after GitLab acted)
    // is checked, then reused or sent once more: the job gets done, nothing twice.
    for name in ["gitlab-502-on-posts", "gitlab-502-after-posts"] {
        let c = case(name);
        assert_eq!(c.faults_injected, 3, "{}", report.render_text());
        assert_eq!(c.outcome, "done", "{}", report.render_text());
        assert_eq!(c.left_by_cleanup, 0, "{}", report.render_text());
    }
    // Killed at once (as by SIGKILL) inside provision, releases or teardown, then run again:
    // the re-run reuses what the killed run made and gets the job done; two runs of one stack
    // at once end with one stack and no error.
    for name in [
        "killed-in-provision-then-rerun",
        "killed-in-releases-then-rerun",
        "killed-in-teardown-then-rerun",
        "two-runs-of-one-stack",
    ] {
        let c = case(name);
        assert_eq!(c.outcome, "done", "{}", report.render_text());
        assert_eq!(c.left_by_cleanup, 0, "{}", report.render_text());
    }
    // A 429 storm that outlasted the client's retries is not retried again: a clear failure.
    let storm = case("gitlab-429-storm-runners");
    assert!(
        storm.outcome.starts_with("failed: runners:") && storm.outcome.contains("429"),
        "{}",
        report.render_text()
    );
}

/// GitLab refusing to delete runners (403): the cleanup tries each runner once (the GitLab
/// client owns retries, and a 403 is not worth one) and says so, instead of three times each.
#[tokio::test(start_paused = true)]
async fn the_cleanup_does_not_retry_what_gitlab_refused() {
    let world = SandboxWorld::new("us-east-1", SandboxConfig::default().with_seed(7));
    let spec = StackSpec::new(StackName::new("f-refused").unwrap(), "us-east-1");
    let config = FlowConfig::new(spec, PROJECT, 400);
    let chaos = Arc::new(
        Faulty::new(world.gitlab.clone()).with_rule(
            GitLabFault::Forbidden
                .rule(GitLabCall::DeleteRunner)
                .times(100),
        ),
    );
    let mut backends = world.backends();
    backends.gitlab = chaos.clone();
    let _runners = world.start_runners();
    let report = flow::run(&config, &backends, &|_: &FlowEvent<'_>| {})
        .await
        .unwrap();
    let teardown = report.teardown.as_ref().expect("a teardown ran");
    let shards = report.fleet.as_ref().unwrap().shards.len() as u64;
    assert_eq!(shards, 2);
    // The teardown phase fails (the runners are left), so the cleanup after that failure
    // runs the teardown once more: each pass sends one DELETE per runner (three each before).
    let failure = report.failure.as_ref().expect("the teardown phase failed");
    assert_eq!(
        failure.phase,
        glrunner::flow::Phase::Teardown,
        "{failure:?}"
    );
    assert_eq!(
        chaos.calls(GitLabCall::DeleteRunner),
        2 * shards,
        "one DELETE per runner and pass: {teardown:?}"
    );
    assert_eq!(teardown.leftovers.runners.len(), 2, "{teardown:?}");
    assert!(
        teardown.errors.iter().any(|e| e.contains("403")),
        "{teardown:?}"
    );
}
