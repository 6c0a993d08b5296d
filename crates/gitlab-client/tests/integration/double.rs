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
    // A Developer cannot administer the group: EE shows its plan only to those who can.
    let ns = http.get_namespace("team").await.unwrap();
    assert_eq!(ns.plan, None);
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

/// A client whose 429 waits are short (the double asks for 1 s).
async fn faulty_double() -> (
    InMemoryGitLab,
    wiremock::MockServer,
    testing::Faults,
    HttpGitLab,
    glrunner_gitlab_client::Project,
) {
    let gl = InMemoryGitLab::default();
    let (server, faults) = testing::serve_with_faults(gl.clone(), TOKEN).await;
    let http = client(&server.uri());
    let project = http.get_or_create_project("sandbox/lost").await.unwrap();
    (gl, server, faults, http, project)
}

fn described(runners: &[glrunner_gitlab_client::Runner], description: &str) -> Vec<u64> {
    runners
        .iter()
        .filter(|r| r.description.as_deref() == Some(description))
        .map(|r| r.id)
        .collect()
}

#[tokio::test]
async fn a_runner_post_whose_answer_was_lost_is_checked_and_leaves_one_runner() {
    let (_gl, _server, faults, http, project) = faulty_double().await;
    let pref = glrunner_gitlab_client::ProjectRef::Id(project.id);
    let new = NewRunner::project(project.id, "stack/shard-1", vec!["shard-1".into()]);
    // GitLab created the runner, then a proxy answered 502: the token is gone with the answer.
    faults.after_effect("POST", "/user/runners", 502, 1);
    let created = http.create_runner_checked(&new).await.unwrap();
    let runners = http.list_runners(&pref).await.unwrap();
    assert_eq!(
        described(&runners, "stack/shard-1"),
        vec![created.id],
        "one runner, the one whose token we hold: {runners:?}"
    );
    // A 502 before GitLab acted: nothing to clean, created once more.
    faults.before("POST", "/user/runners", 502, 1);
    let second = NewRunner::project(project.id, "stack/shard-2", vec!["shard-2".into()]);
    let created = http.create_runner_checked(&second).await.unwrap();
    let runners = http.list_runners(&pref).await.unwrap();
    assert_eq!(described(&runners, "stack/shard-2"), vec![created.id]);
    // Without the check, the plain POST reports the lost answer and leaves a runner behind.
    faults.after_effect("POST", "/user/runners", 502, 1);
    let third = NewRunner::project(project.id, "stack/shard-3", vec!["shard-3".into()]);
    let err = http.create_runner(&third).await.unwrap_err();
    assert!(err.may_have_taken_effect(), "{err}");
}

#[tokio::test]
async fn a_commit_whose_answer_was_lost_is_found_on_the_branch_not_repeated() {
    let (gl, _server, faults, http, project) = faulty_double().await;
    let pref = glrunner_gitlab_client::ProjectRef::Id(project.id);
    let before = http
        .get_branch(&pref, "main")
        .await
        .unwrap()
        .commit
        .unwrap()
        .id;
    faults.after_effect("POST", "/repository/commits", 502, 1);
    // A blind repeat of this `create` would fail: the file exists after the first POST.
    let commit = http
        .put_file(
            &pref,
            "main",
            ".gitlab-ci.yml",
            "job:\n  script: [true]\n",
            "load test [skip ci]",
        )
        .await
        .unwrap();
    let head = http
        .get_branch(&pref, "main")
        .await
        .unwrap()
        .commit
        .unwrap()
        .id;
    assert_ne!(head, before);
    assert_eq!(commit.id, head, "the commit the lost answer named");
    assert_eq!(commit.title, "load test [skip ci]");
    assert_eq!(
        gl.file(project.id, "main", ".gitlab-ci.yml").as_deref(),
        Some("job:\n  script: [true]\n")
    );
    // On a new branch, and with the 502 before GitLab acted: committed once more.
    faults.before("POST", "/repository/commits", 502, 1);
    http.put_file(
        &pref,
        "part-2",
        ".gitlab-ci.yml",
        "b: {script: [true]}\n",
        "part 2 [skip ci]",
    )
    .await
    .unwrap();
    assert!(gl.file(project.id, "part-2", ".gitlab-ci.yml").is_some());
}

#[tokio::test]
async fn a_pipeline_post_whose_answer_was_lost_is_reused_not_started_twice() {
    let (gl, _server, faults, http, project) = faulty_double().await;
    let pref = glrunner_gitlab_client::ProjectRef::Id(project.id);
    http.put_file(
        &pref,
        "main",
        ".gitlab-ci.yml",
        "job:\n  script: [true]\n",
        "ci [skip ci]",
    )
    .await
    .unwrap();
    faults.after_effect("POST", "/pipeline", 502, 1);
    let pipeline = http
        .create_pipeline_checked(&pref, &glrunner_gitlab_client::NewPipeline::new("main"))
        .await
        .unwrap();
    let all = gl.pipelines(project.id);
    assert_eq!(all.len(), 1, "one pipeline: {all:?}");
    assert_eq!(all[0].id, pipeline.id);
    // A 502 before GitLab acted: nothing appears while GitLab's request timeout runs (shortened
    // here), then the POST is sent once more.
    faults.before("POST", "/pipeline", 502, 1);
    let policy = glrunner_gitlab_client::LostAnswerPolicy::default()
        .with_server_timeout(Duration::from_millis(300))
        .with_margin(Duration::from_millis(100))
        .with_poll_interval(Duration::from_millis(100));
    let second = http
        .create_pipeline_checked_with(
            &pref,
            &glrunner_gitlab_client::NewPipeline::new("main"),
            &policy,
        )
        .await
        .unwrap();
    assert_ne!(second.id, pipeline.id);
    assert_eq!(gl.pipelines(project.id).len(), 2);
}

/// The loopback GitLab double the end-to-end tests use (scripts/gitlab_double.py) answers the
/// conformance suite like GitLab too: the e2e tests are only as honest as their double.
#[tokio::test]
async fn the_python_double_of_the_e2e_tests_passes_the_conformance_suite() {
    use std::io::BufRead as _;
    // The checkout's directory at run time: the build cache is shared between checkouts, so this
    // binary may have been built in another one.
    let root =
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    let script = std::path::Path::new(&root).join("../../scripts/gitlab_double.py");
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
