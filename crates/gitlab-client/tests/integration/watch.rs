//! The watcher on the in-memory backend with a paused tokio clock.

use std::time::Duration;

use glrunner_gitlab_client::ci::LoadTestSpec;
use glrunner_gitlab_client::memory::{
    InMemoryGitLab, SimulatedRunner, SimulationConfig, simulate_runners,
};
use glrunner_gitlab_client::watch::{WatchConfig, WatchEvent, watch_pipeline};
use glrunner_gitlab_client::{
    GitLabApi, GitLabApiExt, NewPipeline, NewRunner, ProjectRef, WatchOutcome,
};

struct World {
    gl: InMemoryGitLab,
    project: ProjectRef,
    pipeline: u64,
    runners: Vec<SimulatedRunner>,
}

async fn world(jobs: u32, shards: usize, concurrent: usize) -> World {
    let gl = InMemoryGitLab::default();
    let project = gl.get_or_create_project("sandbox/watch").await.unwrap();
    let tags: Vec<String> = (1..=shards).map(|i| format!("shard-{i}")).collect();
    let mut runners = Vec::new();
    for tag in &tags {
        let r = gl
            .create_runner(&NewRunner::project(
                project.id,
                tag.clone(),
                vec![tag.clone()],
            ))
            .await
            .unwrap();
        runners.push(SimulatedRunner {
            runner_id: r.id,
            concurrent,
        });
    }
    let pref = ProjectRef::Id(project.id);
    gl.put_file(
        &pref,
        "main",
        ".gitlab-ci.yml",
        &LoadTestSpec::even(jobs, &tags).to_yaml().unwrap(),
        "ci",
    )
    .await
    .unwrap();
    let pipeline = gl
        .create_pipeline(&pref, &NewPipeline::new("main"))
        .await
        .unwrap()
        .id;
    World {
        gl,
        project: pref,
        pipeline,
        runners,
    }
}

#[tokio::test(start_paused = true)]
async fn watches_1000_jobs_to_the_end_within_budget() {
    let w = world(1000, 5, 200).await;
    let config = SimulationConfig::new(w.runners.clone()).with_fail_every(Some(100));
    let _sim = simulate_runners(w.gl.clone(), config);
    let before = w.gl.requests();
    let mut events = Vec::new();
    let cfg = WatchConfig::default();
    let report = watch_pipeline(&w.gl, &w.project, w.pipeline, &cfg, &mut |e| {
        events.push(e.clone())
    })
    .await
    .unwrap();
    assert_eq!(report.outcome, WatchOutcome::Finished);
    assert_eq!(report.total_jobs, 1000);
    assert_eq!(report.by_status["success"], 990);
    assert_eq!(report.failures_by_reason["script_failure"], 10);
    assert_eq!(report.pipeline_status, "failed");
    assert_eq!(
        report.requests,
        w.gl.requests() - before,
        "the report counts every request"
    );
    // Simulated: 30-50 s pod start + 5 s script, one wave per shard.
    let makespan = report.makespan_secs.unwrap();
    assert!((35.0..=60.0).contains(&makespan), "makespan {makespan}");
    let q = report.queue.unwrap();
    assert!(
        q.max <= 3.0 + 1e-9,
        "every job is picked within one check interval: {q:?}"
    );
    assert!(report.jobs_per_minute.unwrap() > 900.0);
    let progress: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, WatchEvent::Progress(_)))
        .collect();
    assert!(!progress.is_empty());
    // Rate ceiling: requests per minute of watching stay under the configured 300/min.
    let rpm = report.requests as f64 / (report.watch_secs / 60.0);
    assert!(
        rpm <= f64::from(cfg.max_requests_per_minute) * 1.5,
        "rpm {rpm}"
    );
    // Far cheaper than polling each job: at most a few listings of 10 pages plus small cycles.
    assert!(report.requests < 120, "requests {}", report.requests);
    let all =
        w.gl.all_pipeline_jobs(&w.project, w.pipeline)
            .await
            .unwrap();
    assert!(all.iter().all(|j| j.status.is_finished()));
}

#[tokio::test(start_paused = true)]
async fn waits_out_429s_and_reports_them() {
    let w = world(50, 1, 50).await;
    let _sim = simulate_runners(w.gl.clone(), SimulationConfig::new(w.runners.clone()));
    w.gl.throttle_next(2, Duration::from_secs(7));
    let mut throttles = 0;
    let report = watch_pipeline(
        &w.gl,
        &w.project,
        w.pipeline,
        &WatchConfig::default(),
        &mut |e| {
            if matches!(e, WatchEvent::Throttled { retry_after_secs } if *retry_after_secs == 7.0) {
                throttles += 1;
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(throttles, 2);
    assert_eq!(report.outcome, WatchOutcome::Finished);
    assert_eq!(report.by_status["success"], 50);
}

#[tokio::test(start_paused = true)]
async fn times_out_with_a_partial_report_when_no_runner_takes_jobs() {
    let w = world(10, 1, 10).await;
    let cfg = WatchConfig::default().with_timeout(Duration::from_secs(120));
    let report = watch_pipeline(&w.gl, &w.project, w.pipeline, &cfg, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(report.outcome, WatchOutcome::TimedOut);
    assert_eq!(report.by_status["pending"], 10);
    assert!(
        report.watch_secs >= 120.0 && report.watch_secs < 160.0,
        "{}",
        report.watch_secs
    );
    assert!(report.has_failures());
}

#[tokio::test(start_paused = true)]
async fn stops_when_the_request_budget_runs_out() {
    let w = world(10, 1, 10).await;
    let cfg = WatchConfig::default().with_max_requests(8);
    let report = watch_pipeline(&w.gl, &w.project, w.pipeline, &cfg, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(report.outcome, WatchOutcome::BudgetExhausted);
    assert!(report.requests <= 8, "{}", report.requests);
}

/// A load test stopped by a signal ([`loadtest::run_until`]): its pipeline is canceled and the
/// report covers the jobs so far (`interrupted`), or with `keep_on_stop` the pipeline runs on.
/// No runner takes the jobs, so only the stop can end the run.
#[tokio::test(start_paused = true)]
async fn a_stopped_load_test_cancels_its_pipeline_unless_kept_and_reports_so_far() {
    use glrunner_gitlab_client::PipelineStatus;
    use glrunner_gitlab_client::loadtest::{self, LoadTestRun, RunningPipelines};
    for keep in [false, true] {
        let gl = InMemoryGitLab::default();
        let project = gl.get_or_create_project("sandbox/stop").await.unwrap();
        let run =
            LoadTestRun::new(LoadTestSpec::even(30, &["t".to_owned()])).with_keep_on_stop(keep);
        let outcome = loadtest::run_until(
            &gl,
            &project,
            &run,
            &WatchConfig::default(),
            &RunningPipelines::default(),
            &mut |_| {},
            tokio::time::sleep(Duration::from_secs(60)),
        )
        .await
        .unwrap();
        assert_eq!(outcome.report.outcome, WatchOutcome::Interrupted);
        assert_eq!(
            outcome.report.total_jobs, 30,
            "the report covers the pipeline"
        );
        let pipelines = gl.pipelines(project.id);
        assert_eq!(pipelines.len(), 1);
        if keep {
            assert!(outcome.cancel.canceled.is_empty(), "{:?}", outcome.cancel);
            assert_eq!(pipelines[0].status, PipelineStatus::Pending);
        } else {
            assert_eq!(outcome.cancel.canceled, [pipelines[0].id]);
            assert_eq!(pipelines[0].status, PipelineStatus::Canceled);
            assert_eq!(outcome.report.pipeline_status, "canceled");
        }
    }
}
