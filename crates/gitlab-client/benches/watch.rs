//! Benchmark (not a test): requests and simulated time to watch a 1000-job pipeline on the
//! in-memory backend, the budgeted watcher against naive per-job polling, with requests per
//! minute set beside GitLab.com's 2,000 per minute limit. Runs on a paused tokio clock.
//!
//! `cargo bench -p glrunner-gitlab-client --bench watch`

use std::time::Duration;

use glrunner_gitlab_client::ci::LoadTestSpec;
use glrunner_gitlab_client::memory::{
    InMemoryGitLab, SimulatedRunner, SimulationConfig, simulate_runners,
};
use glrunner_gitlab_client::watch::{WatchConfig, watch_pipeline};
use glrunner_gitlab_client::{GitLabApi, GitLabApiExt, NewPipeline, NewRunner, ProjectRef};

const GITLAB_COM_LIMIT_PER_MINUTE: f64 = 2000.0;

struct Scenario {
    name: &'static str,
    jobs: u32,
    shards: usize,
    concurrent: usize,
}

struct Row {
    scenario: &'static str,
    strategy: &'static str,
    requests: u64,
    simulated_secs: f64,
    makespan_secs: f64,
    wall_ms: u128,
}

async fn setup(
    s: &Scenario,
) -> (
    InMemoryGitLab,
    ProjectRef,
    u64,
    tokio::time::Instant,
    glrunner_gitlab_client::memory::SimulatorHandle,
) {
    let gl = InMemoryGitLab::default();
    let project = gl
        .get_or_create_project("sandbox/bench")
        .await
        .expect("project");
    let tags: Vec<String> = (1..=s.shards).map(|i| format!("shard-{i}")).collect();
    let mut runners = Vec::new();
    for tag in &tags {
        let r = gl
            .create_runner(&NewRunner::project(
                project.id,
                tag.clone(),
                vec![tag.clone()],
            ))
            .await
            .expect("runner");
        runners.push(SimulatedRunner {
            runner_id: r.id,
            concurrent: s.concurrent,
        });
    }
    let pref = ProjectRef::Id(project.id);
    let yaml = LoadTestSpec::even(s.jobs, &tags).to_yaml().expect("yaml");
    gl.put_file(&pref, "main", ".gitlab-ci.yml", &yaml, "bench")
        .await
        .expect("commit");
    let pipeline = gl
        .create_pipeline(&pref, &NewPipeline::new("main"))
        .await
        .expect("pipeline")
        .id;
    let sim = simulate_runners(gl.clone(), SimulationConfig::new(runners));
    (gl, pref, pipeline, tokio::time::Instant::now(), sim)
}

async fn budgeted(s: &Scenario) -> Row {
    let wall = std::time::Instant::now();
    let (gl, project, pipeline, start, _sim) = setup(s).await;
    let before = gl.requests();
    let report = watch_pipeline(
        &gl,
        &project,
        pipeline,
        &WatchConfig::default(),
        &mut |_| {},
    )
    .await
    .expect("watch");
    Row {
        scenario: s.name,
        strategy: "budgeted watcher",
        requests: gl.requests() - before,
        simulated_secs: start.elapsed().as_secs_f64(),
        makespan_secs: report.makespan_secs.unwrap_or(0.0),
        wall_ms: wall.elapsed().as_millis(),
    }
}

/// Naive: list the jobs once, then every 5 s GET the pipeline and GET every unfinished job.
async fn naive(s: &Scenario) -> Row {
    let wall = std::time::Instant::now();
    let (gl, project, pipeline, start, _sim) = setup(s).await;
    let before = gl.requests();
    let mut open: Vec<u64> = gl
        .all_pipeline_jobs(&project, pipeline)
        .await
        .expect("jobs")
        .iter()
        .map(|j| j.id)
        .collect();
    let mut last_finish = None;
    loop {
        let p = gl.get_pipeline(&project, pipeline).await.expect("pipeline");
        let mut still = Vec::new();
        for id in open {
            let job = gl.get_job(&project, id).await.expect("job");
            if job.status.is_finished() {
                last_finish = last_finish.max(job.finished_at);
            } else {
                still.push(id);
            }
        }
        open = still;
        if p.status.is_finished() && open.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let created = gl
        .get_pipeline(&project, pipeline)
        .await
        .expect("pipeline")
        .created_at;
    Row {
        scenario: s.name,
        strategy: "naive per-job polling",
        requests: gl.requests() - before,
        simulated_secs: start.elapsed().as_secs_f64(),
        makespan_secs: last_finish.map_or(0.0, |f| f.duration_since(created).as_secs_f64()),
        wall_ms: wall.elapsed().as_millis(),
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    let scenarios = [
        Scenario {
            name: "1000 jobs, 5 x 200 slots",
            jobs: 1000,
            shards: 5,
            concurrent: 200,
        },
        Scenario {
            name: "1000 jobs, 2 x 100 slots",
            jobs: 1000,
            shards: 2,
            concurrent: 100,
        },
    ];
    let mut rows = Vec::new();
    for s in &scenarios {
        rows.push(rt.block_on(budgeted(s)));
        rows.push(rt.block_on(naive(s)));
    }
    println!(
        "watching a pipeline on the in-memory backend (paused tokio clock; Fargate-like 30-50 s pod start, 5 s job)"
    );
    println!(
        "{:<26} {:<22} {:>9} {:>11} {:>10} {:>9} {:>14} {:>8}",
        "scenario",
        "strategy",
        "requests",
        "simulated s",
        "makespan s",
        "req/min",
        "of 2,000/min",
        "wall ms"
    );
    for r in &rows {
        let rpm = r.requests as f64 / (r.simulated_secs / 60.0).max(1e-9);
        println!(
            "{:<26} {:<22} {:>9} {:>11.1} {:>10.1} {:>9.1} {:>13.1}% {:>8}",
            r.scenario,
            r.strategy,
            r.requests,
            r.simulated_secs,
            r.makespan_secs,
            rpm,
            100.0 * rpm / GITLAB_COM_LIMIT_PER_MINUTE,
            r.wall_ms
        );
    }
}
