//! The HTTP client against the GitLab double (`testing::serve`): the conformance suite and a
//! whole load test over real HTTP, with GitLab's behaviours (push pipelines, refused pipeline
//! variables, the jobs-per-pipeline limit, list shapes).

use std::time::Duration;

use glrunner_gitlab_client::ci::LoadTestSpec;
use glrunner_gitlab_client::loadtest::{self, LoadTestRun, RunningPipelines};
use glrunner_gitlab_client::memory::{
    InMemoryGitLab, MemoryConfig, SimulatedRunner, SimulationConfig, simulate_runners,
};
use glrunner_gitlab_client::watch::WatchConfig;
use glrunner_gitlab_client::{
    GitLabApi, GitLabApiExt, HttpGitLab, NewRunner, RetryPolicy, SecretToken, WatchOutcome,
    conformance, testing,
};

const TOKEN: &str = "glpat-double-token-123";

fn client(uri: &str) -> HttpGitLab {
    HttpGitLab::builder()
        .with_url(uri)
        .with_token(SecretToken::new(TOKEN))
        .with_retry_policy(
            RetryPolicy::default()
                .with_backoff(Duration::from_millis(5), Duration::from_millis(20)),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn conformance_suite_over_http() {
    let server = testing::serve(InMemoryGitLab::default(), TOKEN).await;
    conformance::run_all(&client(&server.uri()), "http")
        .await
        .unwrap();
}

/// The preflight's reads over HTTP answer like GitLab: `GET /version`, the token's scopes, the
/// role through `members/all`, a namespace's plan, the project's pipeline-variables role; and
/// `POST /user/runners` does not exist before 15.10.
#[tokio::test]
async fn preflight_reads_answer_like_gitlab() {
    use glrunner_gitlab_client::{MemberScope, ProjectRef, access_level};
    let gl = InMemoryGitLab::new(
        MemoryConfig::default()
            .with_version("15.9.2-ee")
            .with_token_scopes(&["api"])
            .with_access_level(access_level::DEVELOPER)
            .with_plan(Some("free"))
            .with_refuse_pipeline_variables(true),
    );
    gl.add_group("team");
    let server = testing::serve(gl.clone(), TOKEN).await;
    let http = client(&server.uri());
    let version = http.version().await.unwrap();
    assert_eq!(version.major_minor(), Some((15, 9)));
    assert_eq!(version.at_least(15, 10), Some(false));
    assert_eq!(http.token_info().await.unwrap().scopes, vec!["api"]);
    let user = http.current_user().await.unwrap();
    let ns = http.get_namespace("team").await.unwrap();
    assert_eq!(ns.plan.as_deref(), Some("free"));
    let member = http
        .member(&MemberScope::Group("team".into()), user.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(member.access_level, access_level::DEVELOPER);
    assert!(
        http.member(&MemberScope::Group("team".into()), 999)
            .await
            .unwrap()
            .is_none()
    );
    let project = http.get_or_create_project("team/lt").await.unwrap();
    assert_eq!(
        project
            .ci_pipeline_variables_minimum_override_role
            .as_deref(),
        Some("no_one_allowed")
    );
    let err = http
        .create_runner(&NewRunner::project(project.id, "r", vec!["t".into()]))
        .await
        .unwrap_err();
    // GitLab before 15.10 has no `POST /user/runners`.
    assert!(err.is_not_found(), "{err}");
    let own = http
        .member(&MemberScope::Project(ProjectRef::Id(project.id)), user.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(own.access_level, access_level::DEVELOPER);
}

#[tokio::test]
async fn a_wrong_token_is_a_401() {
    let server = testing::serve(InMemoryGitLab::default(), TOKEN).await;
    let gl = HttpGitLab::builder()
        .with_url(server.uri())
        .with_token(SecretToken::new("glpat-wrong"))
        .build()
        .unwrap();
    let err = gl.current_user().await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
}

#[tokio::test]
async fn a_load_test_over_http_runs_one_pipeline_and_sends_no_variable() {
    let gl = InMemoryGitLab::new(
        MemoryConfig::default()
            .with_refuse_pipeline_variables(true)
            .with_max_jobs_per_pipeline(Some(500)),
    );
    let server = testing::serve(gl.clone(), TOKEN).await;
    let http = client(&server.uri());
    let project = http.get_or_create_project("sandbox/double").await.unwrap();
    let tags: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let mut runners = Vec::new();
    for tag in &tags {
        let r = http
            .create_runner(&NewRunner::project(
                project.id,
                tag.clone(),
                vec![tag.clone()],
            ))
            .await
            .unwrap();
        runners.push(SimulatedRunner {
            runner_id: r.id,
            concurrent: 200,
        });
    }
    // Real time here (the client talks over sockets): fast simulated pods.
    let mut sim = SimulationConfig::new(runners)
        .with_pod_start(Duration::from_millis(20), Duration::from_millis(20))
        .with_job_duration(Duration::from_millis(20));
    sim.check_interval = Duration::from_millis(50);
    let _sim = simulate_runners(gl.clone(), sim);
    let watch = WatchConfig::default()
        .with_intervals(
            Duration::from_millis(100),
            Duration::from_millis(100),
            Duration::from_millis(300),
        )
        .with_max_requests_per_minute(100_000);
    let run = LoadTestRun::new(LoadTestSpec::even(450, &tags));
    let outcome = loadtest::run(
        &http,
        &project,
        &run,
        &watch,
        &RunningPipelines::default(),
        &mut |_| {},
    )
    .await
    .unwrap();
    assert_eq!(outcome.report.outcome, WatchOutcome::Finished);
    assert_eq!(outcome.report.by_status["success"], 450);
    assert_eq!(gl.pipelines(project.id).len(), 1, "exactly one pipeline");
    assert!(outcome.report.requests > 0 && outcome.report.requests <= http.requests_sent());
}

/// The loopback GitLab double the end-to-end tests use (scripts/gitlab_double.py) answers the
/// conformance suite like GitLab too: the e2e tests are only as honest as their double.
#[tokio::test]
async fn the_python_double_of_the_e2e_tests_passes_the_conformance_suite() {
    use std::io::BufRead as _;
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/gitlab_double.py");
    let mut child = match std::process::Command::new("python3")
        .arg(&script)
        .args(["0", "--token", TOKEN])
        .stdout(std::process::Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => panic!("python3 runs {}: {e}", script.display()),
    };
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("GLRUNNER_TEST_GITLAB_URL=")
        .unwrap_or_else(|| panic!("the double did not start: {line:?}"))
        .to_owned();
    let result = conformance::run_all(&client(&url), "py").await;
    let _ = child.kill();
    let _ = child.wait();
    result.unwrap();
}
