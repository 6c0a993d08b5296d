//! An upgrade of a runner release during a load test, in the sandbox world: the chart's Deployment
//! rolls the manager pod, and the kubelet stops the old one: preStop hook, the image's stop
//! signal, SIGKILL at the end of the grace period. With glrunner's graceful stop (preStop
//! SIGQUIT, then SIGTERM when the drain bound passes) no job is lost, and a drain that runs out
//! ends in the runner's forced shutdown; the official image's SIGQUIT drains without the hook; an
//! image that stops with SIGTERM aborts the running jobs.

use std::time::Duration;

use glrunner::gitlab::ci::{LoadTestSpec, ShardTarget};
use glrunner::gitlab::{GitLabApi, GitLabApiExt, JobStatus, NewPipeline, NewRunner, ProjectRef};
use glrunner::runner_chart::{
    GracefulStop, JOB_POD_MANAGER_ID_LABEL, ManagerImage, ReleaseSpec, RunnerToken, RunnerValues,
    deploy_runner, upgrade_runner,
};
use glrunner::sandbox::{SandboxConfig, SandboxWorld, SimulatorStats};

const TAG: &str = "glrunner-1";
const JOBS: u32 = 60;

/// What became of the load test's jobs.
struct Outcome {
    succeeded: usize,
    failed_by_the_runner: usize,
    other: usize,
    stats: SimulatorStats,
    /// Job pods still in the cluster when the pipeline ended.
    job_pods_left: usize,
}

/// A manager image glrunner cannot vouch for: taken to stop with SIGTERM.
fn custom_image() -> Option<ManagerImage> {
    Some(ManagerImage {
        registry: "123456789012.dkr.ecr.us-east-1.amazonaws.com".into(),
        image: "ci/runner".into(),
        tag: None,
    })
}

/// Installs one runner (`concurrent` 20), starts `JOBS` jobs for it, upgrades the release while
/// 20 run (with a values change unless `same_values`), and waits for the pipeline to end.
async fn upgrade_during_a_load_test(graceful_stop: Option<GracefulStop>) -> Outcome {
    upgrade_during_a_load_test_with(graceful_stop, None, false).await
}

async fn upgrade_during_a_load_test_with(
    graceful_stop: Option<GracefulStop>,
    manager_image: Option<ManagerImage>,
    same_values: bool,
) -> Outcome {
    let world = SandboxWorld::new(
        "us-east-1",
        SandboxConfig::default().with_hung_fraction(0.0),
    );
    let _runners = world.start_runners();
    let project = world
        .gitlab
        .get_or_create_project("sandbox/upgrade")
        .await
        .unwrap();
    let created = world
        .gitlab
        .create_runner(&NewRunner::project(
            project.id,
            "gitlab-runner-1",
            vec![TAG.into()],
        ))
        .await
        .unwrap();
    let token = RunnerToken::new(created.token.expose()).unwrap();
    let values = RunnerValues::new("https://gitlab.sandbox.invalid/")
        .with_concurrent(20)
        .with_runner_tags([TAG])
        .with_secret_name("gitlab-runner-1-token")
        .with_graceful_stop(graceful_stop)
        .with_manager_image(manager_image);
    let spec = ReleaseSpec::new("gitlab-runner-1", "gitlab-runner", values.clone());
    deploy_runner(&world.secrets, &world.releases, &spec, &token)
        .await
        .unwrap();

    let project_ref = ProjectRef::Id(project.id);
    let yaml = LoadTestSpec::new(vec![ShardTarget::new(TAG, JOBS)])
        .to_yaml()
        .unwrap();
    world
        .gitlab
        .put_file(
            &project_ref,
            "main",
            ".gitlab-ci.yml",
            &yaml,
            "load test [skip ci]",
        )
        .await
        .unwrap();
    let pipeline = world
        .gitlab
        .create_pipeline(&project_ref, &NewPipeline::new("main"))
        .await
        .unwrap();

    // Wait until the runner is busy, then upgrade (a values change rolls the manager pod).
    let busy = async {
        loop {
            let running = world
                .stats()
                .runners
                .values()
                .map(|r| r.in_flight)
                .sum::<u32>();
            if running >= 20 {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(600), busy)
        .await
        .expect("the runner took 20 jobs");
    let upgraded = ReleaseSpec::new(
        "gitlab-runner-1",
        "gitlab-runner",
        if same_values {
            values
        } else {
            values.with_concurrent(25)
        },
    );
    let status = upgrade_runner(&world.secrets, &world.releases, &upgraded, &token)
        .await
        .unwrap();
    assert_eq!(status.release.revision, 2);

    let finished = async {
        loop {
            let p = world
                .gitlab
                .get_pipeline(&project_ref, pipeline.id)
                .await
                .unwrap();
            if p.status.is_finished() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(4 * 3600), finished)
        .await
        .expect("the pipeline ended");
    let jobs = world
        .gitlab
        .all_pipeline_jobs(&project_ref, pipeline.id)
        .await
        .unwrap();
    assert_eq!(jobs.len(), JOBS as usize);
    let succeeded = jobs
        .iter()
        .filter(|j| j.status == JobStatus::Success)
        .count();
    let failed_by_the_runner = jobs
        .iter()
        .filter(|j| {
            j.status == JobStatus::Failed
                && j.failure_reason.as_deref() == Some("runner_system_failure")
        })
        .count();
    let job_pods_left = world
        .pods
        .pods()
        .iter()
        .filter(|p| p.labels.contains_key(JOB_POD_MANAGER_ID_LABEL))
        .count();
    Outcome {
        succeeded,
        failed_by_the_runner,
        other: jobs.len() - succeeded - failed_by_the_runner,
        stats: world.stats(),
        job_pods_left,
    }
}

#[tokio::test(start_paused = true)]
async fn an_upgrade_during_a_load_test_loses_no_job_with_the_graceful_stop() {
    let outcome = upgrade_during_a_load_test(Some(GracefulStop::default())).await;
    assert_eq!(outcome.stats.managers_replaced, 1, "the manager pod rolled");
    assert_eq!(
        (
            outcome.succeeded,
            outcome.failed_by_the_runner,
            outcome.other
        ),
        (JOBS as usize, 0, 0),
        "every job finished"
    );
    assert_eq!(outcome.stats.jobs_aborted, 0);
}

#[tokio::test(start_paused = true)]
async fn the_official_images_stop_signal_drains_a_chart_default_release() {
    // No preStop hook of glrunner's: the kubelet's stop signal is the image's SIGQUIT.
    let outcome = upgrade_during_a_load_test(None).await;
    assert_eq!(outcome.stats.managers_replaced, 1, "the manager pod rolled");
    assert_eq!(
        (
            outcome.succeeded,
            outcome.failed_by_the_runner,
            outcome.other
        ),
        (JOBS as usize, 0, 0),
        "every job finished"
    );
    assert_eq!(outcome.stats.managers_killed, 0);
}

#[tokio::test(start_paused = true)]
async fn an_image_that_stops_with_sigterm_aborts_the_running_jobs() {
    let outcome = upgrade_during_a_load_test_with(None, custom_image(), false).await;
    assert_eq!(outcome.stats.managers_replaced, 1, "the manager pod rolled");
    assert!(
        outcome.failed_by_the_runner >= 10,
        "SIGTERM aborted the running jobs: {} failed, {} succeeded",
        outcome.failed_by_the_runner,
        outcome.succeeded
    );
    assert_eq!(
        outcome.stats.jobs_aborted as usize,
        outcome.failed_by_the_runner
    );
    assert_eq!(outcome.other, 0, "no job is left running or pending");
    assert_eq!(outcome.job_pods_left, 0, "the runner deleted their pods");
}

#[tokio::test(start_paused = true)]
async fn a_drain_that_runs_out_ends_in_the_runners_forced_shutdown_inside_the_grace_period() {
    // Jobs run a minute or more in the model; a 1 s drain cannot let them finish. The hook's
    // SIGTERM then makes the runner abort them and delete their pods before the SIGKILL (a second
    // SIGQUIT from the kubelet would have kept it draining until then).
    let outcome = upgrade_during_a_load_test(Some(GracefulStop::new(Duration::from_secs(1)))).await;
    assert!(outcome.failed_by_the_runner > 0);
    assert_eq!(
        outcome.stats.jobs_aborted as usize,
        outcome.failed_by_the_runner
    );
    assert_eq!(outcome.stats.managers_killed, 0, "it exited before SIGKILL");
    assert_eq!(outcome.job_pods_left, 0, "no job pod left running");
    assert_eq!(outcome.other, 0);
}

#[tokio::test(start_paused = true)]
async fn an_upgrade_that_changes_nothing_rolls_nothing() {
    // helm upgrade with the same values and token: a new revision, the same pod template.
    let outcome = upgrade_during_a_load_test_with(None, None, true).await;
    assert_eq!(outcome.stats.managers_replaced, 0);
    assert_eq!(
        (outcome.succeeded, outcome.failed_by_the_runner),
        (JOBS as usize, 0)
    );
}
