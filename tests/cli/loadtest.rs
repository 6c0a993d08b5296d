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

/// `--images` alone on the sandbox: the jobs spread over alpine, debian and ubuntu from ECR
/// Public, every sampled job's log shows its own image's `/etc/os-release`, and the cache
/// workload's restores and uploads show per shard.
#[test]
fn loadtest_images_on_the_sandbox_proves_every_sampled_image() {
    let out = run(
        "loadtest",
        &["--images", "--jobs", "90", "--cache-workload", "2"],
        &[],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    for image in glrunner_gitlab_client::ci::DEFAULT_IMAGE_MATRIX {
        assert!(
            stdout.contains(&format!("{image} — proved")),
            "{image}: {stdout}"
        );
    }
    assert!(stdout.contains("cache per shard"), "{stdout}");
    assert!(!stdout.contains("MISMATCH"), "{stdout}");
}

/// The sandbox's wrong-image fault (the first job to run gets another image): the run exits 1
/// and names the job, its image and the one it ran.
#[test]
fn loadtest_images_fails_naming_a_job_that_ran_another_image() {
    let out = run(
        "loadtest",
        &[
            "--images",
            "--jobs",
            "30",
            "--sandbox-wrong-image-job",
            "1",
            "--output",
            "json",
        ],
        &[],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let [alpine, debian, _] = glrunner_gitlab_client::ci::DEFAULT_IMAGE_MATRIX else {
        unreachable!()
    };
    assert!(
        stderr.contains(&format!("ran {debian} instead of its image {alpine}"))
            && stderr.contains("(loadtest-"),
        "{stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let m = &report["traces"]["mismatches"];
    assert_eq!(m.as_array().map(Vec::len), Some(1), "{report}");
    assert_eq!(m[0]["expected_image"], *alpine);
    assert_eq!(m[0]["ran"], *debian);
}

/// Bad `--images` and `--cache-workload` values exit 2 naming the flag, before anything runs.
#[test]
fn loadtest_bad_images_exit_2_naming_the_flag() {
    for (args, needle) in [
        (vec!["--images", "alpine:3.20"], "--images"),
        (vec!["--images", "alpine:3.20,Debian:12"], "--images"),
        (vec!["--images", "alpine:3.20,alpine:3.20"], "listed twice"),
        (
            vec!["--images", "alpine:3.20,debian@sha256:abc"],
            "--images",
        ),
        (vec!["--image", "ubuntu:"], "--image"),
        (vec!["--cache-workload", "0"], "--cache-workload"),
        (vec!["--cache-workload", "4096"], "--cache-workload"),
        (
            vec!["--backend", "aws", "--sandbox-wrong-image-job", "1"],
            "sandbox only",
        ),
    ] {
        let out = run("loadtest", &args, &[("GITLAB_TOKEN", "")]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

/// `full_flow --images` on the sandbox proves every sampled job ran its own image (the report
/// shows each image proved and the cache per shard); a wrong image fails the load-test phase
/// naming the job; a bad list exits 2 naming `--images`.
#[test]
fn full_flow_images_on_the_sandbox() {
    let out = run(
        "full_flow",
        &["--jobs", "60", "--images", "--cache-workload"],
        &[],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    // The default stack has the image cache: each job pulled, and proved, its image's cache path.
    for image in glrunner_gitlab_client::ci::DEFAULT_IMAGE_MATRIX {
        let path = image.strip_prefix("public.ecr.aws/").unwrap();
        let cached =
            format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/glrunner/ecr-public/{path}");
        assert!(stdout.contains(&format!("{cached}: proved")), "{stdout}");
        assert!(
            stdout.contains(&format!("{image} through the pull-through cache: {cached}")),
            "{stdout}"
        );
    }
    assert!(stdout.contains("hit(s)"), "{stdout}");
    let out = run(
        "full_flow",
        &["--jobs", "30", "--images", "--sandbox-wrong-image-job", "1"],
        &[],
    );
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("ran another image than its own"), "{all}");
    let out = run("full_flow", &["--images", "alpine:3.20"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--images"));
}
