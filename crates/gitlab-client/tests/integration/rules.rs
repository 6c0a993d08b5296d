//! GitLab's rules as both doubles model them from GitLab's source (scopes, roles, plan limits,
//! lost answers, runner contacts, retried DELETEs), and the client's helpers checked against
//! them: the in-memory GitLab over HTTP (`testing::serve`) and the e2e tests' Python double.

use std::time::Duration;

use glrunner_gitlab_client::limits::{self, LimitsSource, PlanLimits};
use glrunner_gitlab_client::loadtest::{self, LoadTestRun, RunningPipelines};
use glrunner_gitlab_client::memory::{InMemoryGitLab, MemoryConfig};
use glrunner_gitlab_client::permissions::{self, RoleVerdict};
use glrunner_gitlab_client::runners::{wait_until_contacted_since, wait_until_online};
use glrunner_gitlab_client::{
    Error, GitLabApi, GitLabApiExt, HttpGitLab, LostAnswerPolicy, MemberScope, NewPipeline,
    NewRunner, PipelineStatus, ProjectRef, RetryPolicy, SecretToken, access_level, ci, testing,
};

const TOKEN: &str = "glpat-rules-token-123";

pub(crate) fn client(uri: &str) -> HttpGitLab {
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

fn scopes(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

const CI: &str = "job:\n  script: [true]\n";

// ---- item 1: scopes ---------------------------------------------------------------------

/// `api` alone creates runners (API::API allows it on every route); `create_runner` alone
/// creates runners and nothing else; the client's rule agrees with the double on every set.
#[tokio::test]
async fn an_api_token_creates_runners_and_create_runner_alone_does_nothing_else() {
    let sets: [&[&str]; 6] = [
        &["api"],
        &["create_runner"],
        &["api", "create_runner"],
        &["read_api"],
        &["read_api", "read_user"],
        &["read_user"],
    ];
    for set in sets {
        // The project is made by a full token; the token under test then creates the runner.
        let gl = InMemoryGitLab::default();
        let project = gl.get_or_create_project("sandbox/scopes").await.unwrap();
        gl.set_token_scopes(&scopes(set));
        let server = testing::serve(gl, TOKEN).await;
        let http = client(&server.uri());
        let created = http
            .create_runner(&NewRunner::project(project.id, "r", vec!["t".into()]))
            .await;
        assert_eq!(
            created.is_ok(),
            permissions::scopes_allow_runner_creation(&scopes(set)),
            "{set:?}: {created:?}"
        );
        if let Err(e) = &created {
            // GitLab names every scope registered for the route; the client names `api`.
            assert!(
                matches!(e, Error::PermissionDenied { scope, .. } if scope == "api"),
                "{set:?}: {e:?}"
            );
        }
        // Any token reads its own scopes; a project needs `api` or `read_api`.
        assert_eq!(http.token_info().await.unwrap().scopes, scopes(set));
        let read = http.get_project(&ProjectRef::Id(project.id)).await;
        assert_eq!(
            read.is_ok(),
            set.contains(&"api") || set.contains(&"read_api"),
            "{set:?}: {read:?}"
        );
        let commit = http
            .put_file(
                &ProjectRef::Id(project.id),
                "main",
                ".gitlab-ci.yml",
                CI,
                "ci [skip ci]",
            )
            .await;
        assert_eq!(
            commit.is_ok(),
            permissions::scopes_allow_glrunner(&scopes(set)),
            "{set:?}: {commit:?}"
        );
    }
}

// ---- item 8: roles, admins, DELETE --------------------------------------------------------

#[test]
fn role_names_are_gitlabs() {
    assert_eq!(access_level::name(access_level::PLANNER), "Planner");
    assert_eq!(access_level::name(15), "Planner");
    assert_eq!(access_level::name(5), "Minimal Access");
    assert_eq!(access_level::name(10), "Guest");
    assert_eq!(access_level::name(20), "Reporter");
    assert_eq!(access_level::name(30), "Developer");
    assert_eq!(access_level::name(40), "Maintainer");
    assert_eq!(access_level::name(50), "Owner");
    assert_eq!(access_level::name(0), "None");
}

/// An instance administrator who is no member creates project runners (with Admin Mode off,
/// or a token with `admin_mode`); `GET /user` shows `is_admin` only to administrators.
#[tokio::test]
async fn an_administrator_who_is_no_member_creates_runners() {
    for (admin_mode, token, allowed) in [
        (false, &["api"][..], true),
        (true, &["api", "admin_mode"][..], true),
        (true, &["api"][..], false),
    ] {
        let gl = InMemoryGitLab::new(
            MemoryConfig::default()
                .with_admin(true)
                .with_admin_mode(admin_mode)
                .with_access_level(access_level::NO_ACCESS)
                .with_token_scopes(token),
        );
        gl.add_group("elsewhere");
        let server = testing::serve(gl, TOKEN).await;
        let http = client(&server.uri());
        let user = http.current_user().await.unwrap();
        assert!(user.is_admin);
        let project = http.get_or_create_project("elsewhere/lt").await.unwrap();
        let member = http
            .member(&MemberScope::Project(ProjectRef::Id(project.id)), user.id)
            .await
            .unwrap();
        assert!(member.is_none(), "an administrator is no member");
        let created = http
            .create_runner(&NewRunner::project(project.id, "r", vec!["t".into()]))
            .await;
        assert_eq!(
            created.is_ok(),
            allowed,
            "{admin_mode} {token:?}: {created:?}"
        );
        let verdict = permissions::runner_creation_role(&user, &scopes(token), None);
        assert!(verdict.allowed(), "{verdict:?}");
        if !allowed {
            assert_eq!(verdict, RoleVerdict::AdminUnlessAdminMode);
            let e = created.unwrap_err().to_string();
            assert!(
                e.contains("403 Forbidden - Insufficient permissions"),
                "{e}"
            );
        }
    }
    // Not an administrator: no `is_admin` at all in GitLab's answer.
    let server = testing::serve(InMemoryGitLab::default(), TOKEN).await;
    let raw: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/api/v4/user", server.uri()))
        .header("private-token", TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(raw.get("is_admin").is_none(), "{raw}");
}

/// A DELETE whose first attempt deleted the runner but answered 502 is retried; the retry's
/// 404 means done.
#[tokio::test]
async fn a_retried_delete_that_answers_404_is_done() {
    let gl = InMemoryGitLab::default();
    let (server, faults) = testing::serve_with_faults(gl.clone(), TOKEN).await;
    let http = client(&server.uri());
    let project = http.get_or_create_project("sandbox/del").await.unwrap();
    let runner = http
        .create_runner(&NewRunner::project(project.id, "r", vec!["t".into()]))
        .await
        .unwrap();
    faults.after_effect("DELETE", &format!("/runners/{}", runner.id), 502, 1);
    http.delete_runner(runner.id).await.unwrap();
    assert_eq!(gl.runner_count(), 0);
    // Without a retry before it, a 404 is still a 404.
    let err = http.delete_runner(runner.id).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

/// GitLab's 404 bodies: `"404 Runner Not Found"`, `"404 Project Not Found"`.
#[tokio::test]
async fn not_found_messages_are_gitlabs() {
    let server = testing::serve(InMemoryGitLab::default(), TOKEN).await;
    let get = |path: &str| {
        let url = format!("{}/api/v4/{path}", server.uri());
        async move {
            reqwest::Client::new()
                .get(url)
                .header("private-token", TOKEN)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        get("runners/999999").await["message"],
        "404 Runner Not Found"
    );
    assert_eq!(
        get("projects/sandbox%2Fnone").await["message"],
        "404 Project Not Found"
    );
}

// ---- item 4: plan limits ------------------------------------------------------------------

/// The plan is shown to a group's Owners only; a Maintainer on GitLab.com sees none, which the
/// client reads as unknown limits, not as a self-managed instance. Self-managed EE is `default`.
#[tokio::test]
async fn a_plan_hidden_from_a_maintainer_is_unknown_and_default_is_self_managed() {
    for (level, plan, gitlab_com, expect) in [
        (
            access_level::OWNER,
            Some("free"),
            true,
            Some(LimitsSource::GitLabCom {
                plan: "free".into(),
            }),
        ),
        (access_level::MAINTAINER, Some("free"), true, None),
        (
            access_level::OWNER,
            Some("default"),
            false,
            Some(LimitsSource::SelfManaged),
        ),
        (
            access_level::MAINTAINER,
            Some("default"),
            false,
            Some(LimitsSource::SelfManaged),
        ),
        (
            access_level::OWNER,
            None,
            false,
            Some(LimitsSource::SelfManaged),
        ),
    ] {
        let gl = InMemoryGitLab::new(
            MemoryConfig::default()
                .with_access_level(level)
                .with_plan(plan),
        );
        gl.add_group("team");
        let server = testing::serve(gl, TOKEN).await;
        let ns = client(&server.uri()).get_namespace("team").await.unwrap();
        let shown = level >= access_level::OWNER;
        assert_eq!(
            ns.plan.is_some(),
            shown && plan.is_some(),
            "{level} {plan:?}: {ns:?}"
        );
        let limits = PlanLimits::of(&ns, gitlab_com);
        match expect {
            Some(source) => assert_eq!(limits.source, source, "{level} {plan:?}"),
            None => assert!(!limits.known, "{level} {plan:?}: {limits:?}"),
        }
        // Never a false fail for self-managed: no limit is assumed.
        if !gitlab_com {
            assert_eq!(limits.max_pipeline_jobs(), None);
        }
    }
}

/// GitLab.com Free: at most 500 jobs in a pipeline and, with `>=`, fewer than 500 jobs in the
/// project's alive pipelines together; GitLab's texts, and the client's reading of them.
#[tokio::test]
async fn free_refuses_500_jobs_at_once_and_two_halves_started_together() {
    let free = PlanLimits::gitlab_com_free();
    let gl = InMemoryGitLab::new(
        MemoryConfig::default()
            .with_max_jobs_per_pipeline(free.jobs_per_pipeline)
            .with_max_active_jobs(free.active_jobs),
    );
    let server = testing::serve(gl, TOKEN).await;
    let http = client(&server.uri());
    let project = http.get_or_create_project("sandbox/free").await.unwrap();
    let pref = ProjectRef::Id(project.id);
    let run = |jobs: u32, branch: &'static str| {
        let http = http.clone();
        let pref = pref.clone();
        async move {
            let yaml = ci::LoadTestSpec::even(jobs, &["t".to_owned()])
                .to_yaml()
                .unwrap();
            http.put_file(&pref, branch, ".gitlab-ci.yml", &yaml, "lt [skip ci]")
                .await
                .unwrap();
            http.create_pipeline(&pref, &NewPipeline::new(branch)).await
        }
    };
    let e = run(501, "main").await.unwrap_err();
    assert!(e.is_pipeline_size_exceeded(), "{e}");
    assert!(
        e.to_string().contains("The number of jobs has exceeded the limit of 500. Try splitting the configuration with parent-child-pipelines")
            && e.to_string().contains("/help/ci/debugging.md#pipeline-with-many-jobs-fails-to-start"),
        "{e}"
    );
    let e = run(500, "main").await.unwrap_err();
    assert!(e.is_active_jobs_limit_exceeded(), "{e}");
    assert!(e.to_string().contains(limits::ACTIVE_JOBS_EXCEEDED), "{e}");
    assert_eq!(
        free.admits(500, 0),
        Err(limits::ACTIVE_JOBS_EXCEEDED.to_owned())
    );
    let first = run(250, "main").await.unwrap();
    assert_eq!(first.status, PipelineStatus::Pending);
    let e = run(250, "part-2").await.unwrap_err();
    assert!(
        e.is_active_jobs_limit_exceeded(),
        "two halves together: {e}"
    );
    assert!(free.admits(250, 250).is_err());
    http.cancel_pipeline(&pref, first.id).await.unwrap();
    run(250, "part-2").await.unwrap();
}

// ---- item 5: lost answers -----------------------------------------------------------------

async fn project_with_ci(gl: &InMemoryGitLab) -> ProjectRef {
    let p = gl.get_or_create_project("sandbox/lost").await.unwrap();
    let pref = ProjectRef::Id(p.id);
    gl.put_file(&pref, "main", ".gitlab-ci.yml", CI, "ci [skip ci]")
        .await
        .unwrap();
    pref
}

/// The client gave up after 30 s, GitLab created the pipeline at 45 s: looked for until
/// GitLab's request timeout has passed, it is found, not posted twice.
#[tokio::test(start_paused = true)]
async fn a_pipeline_gitlab_creates_after_the_client_gave_up_is_found_not_posted_twice() {
    let gl = InMemoryGitLab::default();
    let pref = project_with_ci(&gl).await;
    gl.slow_pipeline_creation(Duration::from_secs(30), Duration::from_secs(45));
    let started = tokio::time::Instant::now();
    let pipeline = gl
        .create_pipeline_checked(&pref, &NewPipeline::new("main"))
        .await
        .unwrap();
    let waited = started.elapsed();
    // Counted once GitLab's slow request is surely over.
    tokio::time::sleep(Duration::from_secs(120)).await;
    let ProjectRef::Id(id) = pref else {
        unreachable!()
    };
    let all = gl.pipelines(id);
    assert_eq!(all.len(), 1, "one pipeline: {all:?}");
    assert_eq!(all[0].id, pipeline.id);
    assert!(
        waited >= Duration::from_secs(45) && waited <= Duration::from_secs(60),
        "found soon after it appeared: {waited:?}"
    );
}

/// Nothing appears within GitLab's request timeout: the POST is sent once more, only after it.
#[tokio::test(start_paused = true)]
async fn a_lost_pipeline_that_never_appears_is_posted_again_after_the_request_timeout() {
    let gl = InMemoryGitLab::default();
    let pref = project_with_ci(&gl).await;
    // GitLab's own request timeout ended the request: no effect at all (effect after a day).
    gl.slow_pipeline_creation(Duration::from_secs(30), Duration::from_secs(86_400));
    let started = tokio::time::Instant::now();
    gl.create_pipeline_checked(&pref, &NewPipeline::new("main"))
        .await
        .unwrap();
    assert!(started.elapsed() >= LostAnswerPolicy::default().window());
}

/// The same over HTTP with the "slow effect" fault of the HTTP double (real time, short bounds).
#[tokio::test]
async fn over_http_a_slow_pipeline_post_is_found_not_posted_twice() {
    let gl = InMemoryGitLab::default();
    let pref = project_with_ci(&gl).await;
    let (server, faults) = testing::serve_with_faults(gl.clone(), TOKEN).await;
    let http = HttpGitLab::builder()
        .with_url(server.uri())
        .with_token(SecretToken::new(TOKEN))
        .with_pipeline_creation_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    faults.slow_effect(
        "POST",
        "/pipeline",
        504,
        1,
        Duration::from_secs(5),
        Duration::from_millis(1_200),
    );
    let policy = LostAnswerPolicy::default()
        .with_server_timeout(Duration::from_secs(2))
        .with_margin(Duration::from_millis(500))
        .with_poll_interval(Duration::from_millis(200));
    let pipeline = http
        .create_pipeline_checked_with(&pref, &NewPipeline::new("main"), &policy)
        .await
        .unwrap();
    // Counted once the slow request's effect is surely done.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let ProjectRef::Id(id) = pref else {
        unreachable!()
    };
    let all = gl.pipelines(id);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].id, pipeline.id);
}

/// Pipeline creation waits longer than other calls: past GitLab's request timeout by default.
#[tokio::test]
async fn pipeline_creation_has_its_own_longer_timeout() {
    use wiremock::matchers::{method, path_regex};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    let body = serde_json::json!({"id": 9, "status": "created", "ref": "main", "created_at": "2026-01-01T00:00:00Z"});
    Mock::given(method("POST"))
        .and(path_regex("/pipeline$"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(&body)
                .set_delay(Duration::from_millis(1_500)),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("/pipelines/9$"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(&body)
                .set_delay(Duration::from_millis(1_500)),
        )
        .mount(&server)
        .await;
    let http = HttpGitLab::builder()
        .with_url(server.uri())
        .with_token(SecretToken::new(TOKEN))
        .with_timeout(Duration::from_secs(1))
        .with_pipeline_creation_timeout(Duration::from_secs(4))
        .with_retry_policy(RetryPolicy::default().with_max_retries(0))
        .build()
        .unwrap();
    let pref = ProjectRef::Id(1);
    assert_eq!(
        http.create_pipeline(&pref, &NewPipeline::new("main"))
            .await
            .unwrap()
            .id,
        9
    );
    let e = http.get_pipeline(&pref, 9).await.unwrap_err();
    assert!(
        matches!(e, Error::Timeout { after, .. } if after == Duration::from_secs(1)),
        "{e:?}"
    );
    assert!(
        HttpGitLab::builder().pipeline_creation_timeout()
            > LostAnswerPolicy::GITLAB_REQUEST_TIMEOUT
    );
}

/// GitLab created the lost answer's pipeline even later than its request timeout allows (a
/// slower server): the load test posted again, and cancels the stray pipeline of its commit.
#[tokio::test(start_paused = true)]
async fn a_stray_pipeline_of_the_load_test_commit_is_canceled() {
    let gl = InMemoryGitLab::default();
    let project = gl.get_or_create_project("sandbox/stray").await.unwrap();
    // An unrelated pipeline of another commit on the same branch stays.
    gl.put_file(
        &ProjectRef::Id(project.id),
        "main",
        ".gitlab-ci.yml",
        CI,
        "other [skip ci]",
    )
    .await
    .unwrap();
    let other = gl
        .create_pipeline(&ProjectRef::Id(project.id), &NewPipeline::new("main"))
        .await
        .unwrap();
    gl.slow_pipeline_creation(Duration::from_secs(30), Duration::from_secs(100));
    let run = LoadTestRun::new(ci::LoadTestSpec::even(3, &["t".to_owned()]));
    let started = loadtest::start(&gl, &project, &run, &RunningPipelines::default())
        .await
        .unwrap();
    assert!(started.unexpected.canceled.is_empty());
    tokio::time::sleep(Duration::from_secs(120)).await;
    let strays = loadtest::cancel_unexpected(&gl, &started).await;
    assert_eq!(strays.canceled.len(), 1, "{strays:?}");
    let ours = started.pipelines[0].id;
    for p in gl.pipelines(project.id) {
        let expected = if strays.canceled.contains(&p.id) {
            PipelineStatus::Canceled
        } else {
            assert!(p.id == ours || p.id == other.id, "{p:?}");
            PipelineStatus::Pending
        };
        assert_eq!(p.status, expected, "{p:?}");
    }
}

// ---- item 7: runner contacts --------------------------------------------------------------

/// A reused runner whose manager is gone: GitLab still calls it online (two hours after its last
/// contact), but nothing contacted GitLab since this run's deployment.
#[tokio::test(start_paused = true)]
async fn a_reused_runner_whose_manager_is_gone_is_online_but_not_contacted_since_the_deploy() {
    let gl = InMemoryGitLab::default();
    let p = gl.get_or_create_project("sandbox/reuse").await.unwrap();
    let r = gl
        .create_runner(&NewRunner::project(p.id, "stack/shard-1", vec!["a".into()]))
        .await
        .unwrap();
    let clock = gl.clock();
    let last_run = clock.now();
    gl.runner_contacted_at(r.id, last_run).unwrap();
    tokio::time::sleep(Duration::from_secs(40 * 60)).await;
    let deployed = clock.now();
    let online = wait_until_online(
        &gl,
        &[r.id],
        Duration::from_secs(60),
        Duration::from_secs(5),
        &mut |_| {},
    )
    .await
    .unwrap();
    assert!(online[0].is_online() && !online[0].contacted_since(deployed));
    let err = wait_until_contacted_since(
        &gl,
        &[r.id],
        deployed,
        Duration::from_secs(60),
        Duration::from_secs(5),
        &mut |_| {},
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("contacted since") && text.contains("is online"),
        "{text}"
    );
    gl.runner_contacted(r.id).unwrap();
    let ok = wait_until_contacted_since(
        &gl,
        &[r.id],
        deployed,
        Duration::from_secs(60),
        Duration::from_secs(5),
        &mut |_| {},
    )
    .await
    .unwrap();
    assert!(ok[0].contacted_since(deployed));
}

// ---- the Python double of the e2e tests ---------------------------------------------------

pub(crate) struct PyDouble {
    child: std::process::Child,
    pub(crate) url: String,
}

impl PyDouble {
    pub(crate) fn start() -> Self {
        use std::io::BufRead as _;
        let root = std::env::var_os("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
        let script = std::path::Path::new(&root).join("../../scripts/gitlab_double.py");
        let mut child = std::process::Command::new("python3")
            .arg(&script)
            .args(["0", "--token", TOKEN])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("python3 runs {}: {e}", script.display()));
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("GLRUNNER_TEST_GITLAB_URL=")
            .unwrap_or_else(|| panic!("the double did not start: {line:?}"))
            .to_owned();
        Self { child, url }
    }

    pub(crate) async fn post(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        reqwest::Client::new()
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for PyDouble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python double answers the same rules as the in-memory one: scopes, admin, the hidden
/// plan, both pipeline limits with GitLab's texts, the workflow-rules text, the slow effect, a
/// retried DELETE and a reused runner's old contact.
#[tokio::test]
async fn the_python_double_models_the_same_rules() {
    let py = PyDouble::start();
    let http = client(&py.url);
    // Scopes: `api` alone creates runners; `create_runner` alone only that.
    py.post(
        "/double/config",
        serde_json::json!({"scopes": ["api"], "access_level": 40, "plan": "free"}),
    )
    .await;
    let project = http.get_or_create_project("double/rules").await.unwrap();
    let pref = ProjectRef::Id(project.id);
    let runner = http
        .create_runner(&NewRunner::project(project.id, "r", vec!["t".into()]))
        .await
        .unwrap();
    py.post(
        "/double/config",
        serde_json::json!({"scopes": ["create_runner"]}),
    )
    .await;
    http.create_runner(&NewRunner::project(project.id, "r2", vec!["t".into()]))
        .await
        .unwrap();
    let e = http.get_project(&pref).await.unwrap_err();
    assert!(
        matches!(&e, Error::PermissionDenied { scope, .. } if scope == "read_api" || scope == "api"),
        "{e:?}"
    );
    assert_eq!(
        http.token_info().await.unwrap().scopes,
        scopes(&["create_runner"])
    );
    py.post(
        "/double/config",
        serde_json::json!({"scopes": ["read_api"]}),
    )
    .await;
    let e = http
        .create_runner(&NewRunner::project(project.id, "r3", vec!["t".into()]))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::PermissionDenied { scope, .. } if scope == "api"),
        "{e:?}"
    );
    py.post("/double/config", serde_json::json!({"scopes": ["api"]}))
        .await;
    // A Maintainer sees no plan; an Owner does.
    let ns = http.get_namespace("some-group").await.unwrap();
    assert_eq!(ns.plan, None);
    assert!(!PlanLimits::of(&ns, true).known);
    py.post("/double/config", serde_json::json!({"access_level": 50}))
        .await;
    assert_eq!(
        http.get_namespace("some-group")
            .await
            .unwrap()
            .plan
            .as_deref(),
        Some("free")
    );
    // An administrator who is no member creates runners; `is_admin` only for administrators.
    assert!(!http.current_user().await.unwrap().is_admin);
    py.post(
        "/double/config",
        serde_json::json!({"access_level": 0, "is_admin": true}),
    )
    .await;
    assert!(http.current_user().await.unwrap().is_admin);
    http.create_runner(&NewRunner::project(project.id, "r4", vec!["t".into()]))
        .await
        .unwrap();
    py.post("/double/config", serde_json::json!({"admin_mode": true}))
        .await;
    let e = http
        .create_runner(&NewRunner::project(project.id, "r5", vec!["t".into()]))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("403 Forbidden - Insufficient permissions"),
        "{e}"
    );
    py.post(
        "/double/config",
        serde_json::json!({"access_level": 50, "is_admin": false, "admin_mode": false}),
    )
    .await;
    // Pipeline limits.
    py.post(
        "/double/config",
        serde_json::json!({"max_jobs_per_pipeline": 500, "max_active_jobs": 500}),
    )
    .await;
    let commit = |jobs: u32| {
        let yaml = ci::LoadTestSpec::even(jobs, &["t".to_owned()])
            .to_yaml()
            .unwrap();
        let (http, pref) = (http.clone(), pref.clone());
        async move {
            http.put_file(&pref, "main", ".gitlab-ci.yml", &yaml, "lt [skip ci]")
                .await
                .unwrap();
        }
    };
    commit(501).await;
    let e = http
        .create_pipeline(&pref, &NewPipeline::new("main"))
        .await
        .unwrap_err();
    assert!(
        e.is_pipeline_size_exceeded()
            && e.to_string()
                .contains("pipeline-with-many-jobs-fails-to-start"),
        "{e}"
    );
    commit(500).await;
    let e = http
        .create_pipeline(&pref, &NewPipeline::new("main"))
        .await
        .unwrap_err();
    assert!(e.is_active_jobs_limit_exceeded(), "{e}");
    // `workflow: rules` that exclude API pipelines: GitLab's text.
    http.put_file(
        &pref,
        "main",
        ".gitlab-ci.yml",
        "workflow:\n  rules:\n    - if: $CI_PIPELINE_SOURCE == \"push\"\njob:\n  script: [true]\n",
        "push only [skip ci]",
    )
    .await
    .unwrap();
    let e = http
        .create_pipeline(&pref, &NewPipeline::new("main"))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("Pipeline filtered out by workflow rules."),
        "{e}"
    );
    // The slow effect: found, not posted twice.
    commit(3).await;
    py.post(
        "/double/faults",
        serde_json::json!({"POST /api/v4/projects/[^/]+/pipeline": [504, 1, 0, "slow", 5.0, 1.2]}),
    )
    .await;
    let slow = HttpGitLab::builder()
        .with_url(&py.url)
        .with_token(SecretToken::new(TOKEN))
        .with_pipeline_creation_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let before = http.list_pipelines(&pref, "main").await.unwrap().len();
    let policy = LostAnswerPolicy::default()
        .with_server_timeout(Duration::from_secs(2))
        .with_margin(Duration::from_millis(500))
        .with_poll_interval(Duration::from_millis(200));
    slow.create_pipeline_checked_with(&pref, &NewPipeline::new("main"), &policy)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        http.list_pipelines(&pref, "main").await.unwrap().len(),
        before + 1
    );
    // A retried DELETE answering 404 is done.
    py.post(
        "/double/faults",
        serde_json::json!({format!("DELETE /api/v4/runners/{}", runner.id): [502, 1, 0, "after"]}),
    )
    .await;
    http.delete_runner(runner.id).await.unwrap();
    // A reused runner whose manager is gone: online on a contact 10 minutes old, not since.
    let reused = http
        .create_runner(&NewRunner::project(project.id, "reused", vec!["t".into()]))
        .await
        .unwrap();
    py.post(
        &format!("/double/runners/{}", reused.id),
        serde_json::json!({"contacted_ago": 600}),
    )
    .await;
    let deployed = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60);
    let d = http.get_runner(reused.id).await.unwrap();
    assert!(d.is_online() && !d.contacted_since(deployed), "{d:?}");
    py.post(
        &format!("/double/runners/{}", reused.id),
        serde_json::json!({"contacted_ago": 3 * 3600}),
    )
    .await;
    let d = http.get_runner(reused.id).await.unwrap();
    assert_eq!(d.status.as_deref(), Some("offline"));
    assert!(
        d.contacted_at.is_some(),
        "GitLab keeps the last contact: {d:?}"
    );
}

// ---- item 4: parts run one after another under the active-jobs limit ---------------------

/// 1,000 jobs on GitLab.com Free: two parts started together are refused (500 jobs in active
/// pipelines), so the parts run in waves and are reported as one run.
#[tokio::test(start_paused = true)]
async fn on_free_the_parts_of_a_big_load_test_run_one_after_another() {
    use glrunner_gitlab_client::WatchOutcome;
    use glrunner_gitlab_client::memory::{SimulatedRunner, SimulationConfig, simulate_runners};
    use glrunner_gitlab_client::watch::WatchConfig;
    let free = PlanLimits::gitlab_com_free();
    let gl = InMemoryGitLab::new(
        MemoryConfig::default()
            .with_max_jobs_per_pipeline(free.jobs_per_pipeline)
            .with_max_active_jobs(free.active_jobs),
    );
    let project = gl.get_or_create_project("sandbox/waves").await.unwrap();
    let tags = vec!["a".to_owned(), "b".to_owned()];
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
            concurrent: 500,
        });
    }
    let _sim = simulate_runners(gl.clone(), SimulationConfig::new(runners));
    let spec = ci::LoadTestSpec::even(1_000, &tags);
    let split = LoadTestRun::new(spec).with_max_jobs_per_pipeline(free.max_pipeline_jobs());
    // All parts together: GitLab refuses the second, and the error says what to do.
    let together = loadtest::run(
        &gl,
        &project,
        &split,
        &WatchConfig::default(),
        &RunningPipelines::default(),
        &mut |_| {},
    )
    .await
    .unwrap_err();
    assert!(
        together.error.is_active_jobs_limit_exceeded()
            || together.error.to_string().contains("active pipelines"),
        "{together}"
    );
    assert!(
        together.error.to_string().contains("one after another"),
        "{together}"
    );
    // In waves below the limit: every job runs, one report.
    let waves = split.clone().with_max_active_jobs(free.active_jobs);
    assert_eq!(waves.waves("main").unwrap().len(), 3);
    let outcome = loadtest::run(
        &gl,
        &project,
        &waves,
        &WatchConfig::default(),
        &RunningPipelines::default(),
        &mut |_| {},
    )
    .await
    .unwrap();
    assert_eq!(outcome.report.outcome, WatchOutcome::Finished);
    assert_eq!(
        outcome.report.by_status["success"], 1_000,
        "{:?}",
        outcome.report.by_status
    );
    assert_eq!(outcome.report.pipelines.len(), 3);
    // A part that alone reaches the limit cannot run at all.
    let too_big =
        LoadTestRun::new(ci::LoadTestSpec::even(500, &tags)).with_max_active_jobs(Some(500));
    let e = too_big.waves("main").unwrap_err().to_string();
    assert!(e.contains("at most 499"), "{e}");
}
