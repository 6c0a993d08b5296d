//! The `loadtest` binary against the GitLab double (`glrunner_gitlab_client::testing`): the
//! token only from the environment, exactly one pipeline and no pipeline variable, the
//! jobs-per-pipeline split, a timeout that cancels, and exit 1 on failed jobs.

use std::process::Output;
use std::time::Duration;

use glrunner_gitlab_client::memory::{
    InMemoryGitLab, MemoryConfig, SimulatedRunner, SimulationConfig, SimulatorHandle,
    simulate_runners,
};
use glrunner_gitlab_client::{GitLabApiExt, NewRunner, PipelineStatus, testing};

use super::{run, text};

const TOKEN: &str = "glpat-loadtest-double-0123456789";

/// A GitLab double on a loopback port, its project `sandbox/lt`, and simulated runners for
/// `tags` (fast pods: the binary watches in real time).
struct Double {
    rt: tokio::runtime::Runtime,
    gitlab: InMemoryGitLab,
    server: wiremock::MockServer,
    project_id: u64,
    _sim: Option<SimulatorHandle>,
}

impl Double {
    fn new(config: MemoryConfig, tags: &[&str], fail_every: Option<u64>) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let gitlab = InMemoryGitLab::new(config);
        let (server, project_id, sim) = rt.block_on(async {
            gitlab.add_group("sandbox");
            let project = gitlab.get_or_create_project("sandbox/lt").await.unwrap();
            let mut runners = Vec::new();
            for tag in tags {
                let r = glrunner_gitlab_client::GitLabApi::create_runner(
                    &gitlab,
                    &NewRunner::project(
                        project.id,
                        format!("runner-{tag}"),
                        vec![(*tag).to_owned()],
                    ),
                )
                .await
                .unwrap();
                runners.push(SimulatedRunner {
                    runner_id: r.id,
                    concurrent: 500,
                });
            }
            let sim = (!runners.is_empty()).then(|| {
                let mut cfg = SimulationConfig::new(runners)
                    .with_pod_start(Duration::from_millis(10), Duration::from_millis(10))
                    .with_job_duration(Duration::from_millis(10))
                    .with_fail_every(fail_every);
                cfg.check_interval = Duration::from_millis(50);
                simulate_runners(gitlab.clone(), cfg)
            });
            (testing::serve(gitlab.clone(), TOKEN).await, project.id, sim)
        });
        Self {
            rt,
            gitlab,
            server,
            project_id,
            _sim: sim,
        }
    }

    fn loadtest(&self, args: &[&str], token: Option<&str>) -> Output {
        let uri = self.server.uri();
        let mut full = vec![
            "--backend",
            "aws",
            "--gitlab-url",
            uri.as_str(),
            "--project",
            "sandbox/lt",
        ];
        full.extend_from_slice(args);
        // An empty GITLAB_TOKEN counts as unset (and hides one from the caller's environment).
        let env = vec![
            ("GITLAB_URL", ""),
            ("CI_SERVER_URL", ""),
            ("GITLAB_TOKEN", token.unwrap_or("")),
        ];
        let out = run("loadtest", &full, &env);
        let _ = &self.rt;
        out
    }

    fn pipelines(&self) -> Vec<glrunner_gitlab_client::Pipeline> {
        self.gitlab.pipelines(self.project_id)
    }
}

#[test]
fn loadtest_runs_exactly_one_pipeline_without_variables_and_passes() {
    let d = Double::new(
        MemoryConfig::default()
            .with_refuse_pipeline_variables(true)
            .with_max_jobs_per_pipeline(Some(500)),
        &["a", "b", "c"],
        None,
    );
    let out = d.loadtest(
        &[
            "--jobs",
            "450",
            "--tags",
            "a,b,c",
            "--create-project",
            "--output",
            "json",
        ],
        Some(TOKEN),
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let pipelines = d.pipelines();
    assert_eq!(pipelines.len(), 1, "exactly one pipeline: {pipelines:?}");
    assert_eq!(pipelines[0].source.as_deref(), Some("api"));
    assert_eq!(pipelines[0].status, PipelineStatus::Success);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_default();
    assert_eq!(report["total_jobs"], 450, "{stdout}");
    assert!(
        !stderr.contains(TOKEN) && !stdout.contains(TOKEN),
        "the token is never printed"
    );
}

#[test]
fn loadtest_above_the_limit_runs_three_pipelines_reported_as_one() {
    let d = Double::new(
        MemoryConfig::default().with_max_jobs_per_pipeline(Some(500)),
        &["a", "b", "c"],
        None,
    );
    let out = d.loadtest(
        &[
            "--jobs",
            "1200",
            "--tags",
            "a,b,c",
            "--max-jobs-per-pipeline",
            "500",
            "--output",
            "json",
        ],
        Some(TOKEN),
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert_eq!(d.pipelines().len(), 3);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_default();
    assert_eq!(report["total_jobs"], 1200, "{stdout}");
    assert_eq!(
        report["pipelines"].as_array().map(Vec::len),
        Some(3),
        "{stdout}"
    );
}

#[test]
fn loadtest_stopped_by_its_timeout_exits_1_and_cancels_the_pipeline() {
    // No runner: the jobs stay pending.
    let d = Double::new(MemoryConfig::default(), &[], None);
    let out = d.loadtest(
        &["--jobs", "5", "--tags", "a", "--timeout", "3s"],
        Some(TOKEN),
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("did not finish") && stderr.contains("canceled pipeline"),
        "{stderr}"
    );
    let pipelines = d.pipelines();
    assert_eq!(pipelines.len(), 1);
    assert_eq!(pipelines[0].status, PipelineStatus::Canceled);
}

#[test]
fn loadtest_exits_1_when_jobs_fail() {
    let d = Double::new(MemoryConfig::default(), &["a"], Some(2));
    let out = d.loadtest(&["--jobs", "4", "--tags", "a"], Some(TOKEN));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("failed job"), "{stderr}");
}

#[test]
fn loadtest_takes_the_token_only_from_the_environment() {
    let d = Double::new(MemoryConfig::default(), &["a"], None);
    let out = d.loadtest(&["--jobs", "2", "--tags", "a"], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("GITLAB_TOKEN"),
        "{}",
        text(&out.stderr)
    );
    assert!(d.pipelines().is_empty(), "nothing was sent");
    let out = d.loadtest(&["--jobs", "2", "--tags", "a"], Some("glpat-not-the-token"));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("401"), "{}", text(&out.stderr));
    let out = d.loadtest(
        &["--jobs", "2", "--tags", "a", "--variable", "no-equals"],
        Some(TOKEN),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--variable"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn loadtest_explains_refused_pipeline_variables() {
    let d = Double::new(
        MemoryConfig::default().with_refuse_pipeline_variables(true),
        &["a"],
        None,
    );
    let out = d.loadtest(
        &["--jobs", "2", "--tags", "a", "--variable", "LABEL=nightly"],
        Some(TOKEN),
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Minimum role to use pipeline variables") && stderr.contains("LABEL"),
        "{stderr}"
    );
    assert!(d.pipelines().is_empty());
}
