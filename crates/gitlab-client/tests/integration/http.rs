//! The HTTP backend against wiremock, with bodies and headers shaped like GitLab's API docs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use glrunner_gitlab_client::{
    Error, GitLabApi, GitLabApiExt, HttpGitLab, JobStatus, NewPipeline, NewRunner, ProjectRef,
    RetryPolicy, SecretToken,
};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PAT: &str = "glpat-TESTtokenValue123456";
const RUNNER_TOKEN: &str = "glrt-t1_RunnerSecretXYZ0987";

fn client(server: &MockServer) -> HttpGitLab {
    HttpGitLab::builder()
        .with_url(server.uri())
        .with_token(SecretToken::new(PAT))
        .with_retry_policy(
            RetryPolicy::default()
                .with_backoff(Duration::from_millis(5), Duration::from_millis(20)),
        )
        .with_timeout(Duration::from_secs(5))
        .build()
        .expect("valid client")
}

/// A job object as in GitLab's jobs API documentation.
pub fn doc_job(id: u64, status: &str) -> Value {
    json!({
        "commit": {"id": "0ff3ae198f8601a285adcf5c0fff204ee6fba5fd", "short_id": "0ff3ae19", "title": "Test the CI integration."},
        "coverage": null,
        "allow_failure": false,
        "created_at": "2015-12-24T15:51:21.727Z",
        "started_at": "2015-12-24T17:54:24.729Z",
        "finished_at": "2015-12-24T17:54:24.921Z",
        "erased_at": null,
        "duration": 0.192,
        "queued_duration": 0.023,
        "artifacts_expire_at": "2016-01-23T17:54:24.921Z",
        "tag_list": ["shard-1"],
        "id": id,
        "name": format!("loadtest-shard-1 {id}/250"),
        "pipeline": {"id": 7, "project_id": 42, "ref": "main", "sha": "0ff3ae198f8601a285adcf5c0fff204ee6fba5fd", "status": "running"},
        "ref": "main",
        "artifacts": [],
        "runner": {"id": 32, "description": "", "ip_address": null, "active": true, "paused": false, "is_shared": true, "runner_type": "instance_type", "name": null, "online": false, "status": "offline"},
        "stage": "loadtest",
        "status": status,
        "failure_reason": if status == "failed" { json!("script_failure") } else { Value::Null },
        "tag": false,
        "web_url": format!("https://example.com/foo/bar/-/jobs/{id}"),
        "project": {"ci_job_token_scope_enabled": false},
        "user": {"id": 1, "name": "Administrator", "username": "root", "state": "active"}
    })
}

fn pipeline_json(id: u64, status: &str) -> Value {
    json!({
        "id": id, "iid": 12, "project_id": 42, "name": "Build pipeline", "status": status, "source": "api",
        "ref": "main", "sha": "a91957a858320c0e17f3a0eca7cfacbff50ea29a", "before_sha": "a91957a858320c0e17f3a0eca7cfacbff50ea29a",
        "tag": false, "yaml_errors": null, "user": {"id": 1, "username": "root"},
        "created_at": "2016-08-11T11:28:34.085Z", "updated_at": "2016-08-11T11:32:35.169Z",
        "started_at": null, "finished_at": "2016-08-11T11:32:35.145Z", "committed_at": null,
        "duration": 123.65, "queued_duration": 0.010, "coverage": "30.0",
        "web_url": format!("https://example.com/foo/bar/pipelines/{id}")
    })
}

fn page(items: Vec<Value>, page: u32, next: Option<u32>, total: u64) -> ResponseTemplate {
    let pages = total.div_ceil(100);
    ResponseTemplate::new(200)
        .insert_header("x-page", page.to_string())
        .insert_header("x-per-page", "100")
        .insert_header("x-next-page", next.map(|n| n.to_string()).unwrap_or_default())
        .insert_header("x-prev-page", if page > 1 { (page - 1).to_string() } else { String::new() })
        .insert_header("x-total", total.to_string())
        .insert_header("x-total-pages", pages.to_string())
        .insert_header(
            "link",
            format!(
                "<https://example.com/api/v4/projects/42/pipelines/7/jobs?page=1&per_page=100>; rel=\"first\", \
                 <https://example.com/api/v4/projects/42/pipelines/7/jobs?page={pages}&per_page=100>; rel=\"last\""
            ),
        )
        .insert_header("ratelimit-limit", "2000")
        .insert_header("ratelimit-remaining", "1990")
        .set_body_json(Value::Array(items))
}

#[tokio::test]
async fn all_jobs_across_three_pages() {
    let server = MockServer::start().await;
    let jobs_path = "/api/v4/projects/42/pipelines/7/jobs";
    for (p, range, next) in [
        (1u32, 151..=250u64, Some(2)),
        (2, 51..=150, Some(3)),
        (3, 1..=50, None),
    ] {
        let items = range
            .rev()
            .map(|id| doc_job(id, if id % 50 == 0 { "failed" } else { "success" }))
            .collect();
        Mock::given(method("GET"))
            .and(path(jobs_path))
            .and(query_param("page", p.to_string()))
            .and(query_param("per_page", "100"))
            .and(header("PRIVATE-TOKEN", PAT))
            .respond_with(page(items, p, next, 250))
            .expect(1)
            .mount(&server)
            .await;
    }
    let gl = client(&server);
    let jobs = gl.all_pipeline_jobs(&ProjectRef::Id(42), 7).await.unwrap();
    assert_eq!(jobs.len(), 250);
    assert_eq!(
        jobs.iter()
            .filter(|j| j.status == JobStatus::Failed)
            .count(),
        5
    );
    assert_eq!(jobs[1].failure_reason, None);
    assert_eq!(
        jobs.iter()
            .find(|j| j.id == 50)
            .unwrap()
            .failure_reason
            .as_deref(),
        Some("script_failure")
    );
    assert_eq!(gl.requests_made(), 3);
}

#[tokio::test]
async fn scope_and_page_headers_are_parsed() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(
            "/api/v4/projects/my-group%2Floadtest/pipelines/7/jobs",
        ))
        .and(query_param("scope[]", "running"))
        .respond_with(page(vec![doc_job(3, "running")], 1, None, 1))
        .expect(1)
        .mount(&server)
        .await;
    let gl = client(&server);
    let q =
        glrunner_gitlab_client::JobsQuery::page(1).scope(&[JobStatus::Pending, JobStatus::Running]);
    let page = gl
        .list_pipeline_jobs(&ProjectRef::parse("my-group/loadtest").unwrap(), 7, &q)
        .await
        .unwrap();
    assert_eq!(
        (
            page.items.len(),
            page.next_page,
            page.total,
            page.total_pages
        ),
        (1, None, Some(1), Some(1))
    );
}

/// `GET /projects/:id/jobs?scope[]=pending` as GitLab answers it: pages without `x-total` or
/// `x-total-pages` (GitLab paginates this route `without_count`, lib/api/ci/jobs.rb), a next page
/// until the last; the bounded walk stops at its bound without asking for the page after it.
#[tokio::test]
async fn project_jobs_are_walked_up_to_a_bound() {
    let server = MockServer::start().await;
    let uncounted = |items: Vec<Value>, page: u32, next: Option<u32>| {
        ResponseTemplate::new(200)
            .insert_header("x-page", page.to_string())
            .insert_header("x-per-page", "100")
            .insert_header(
                "x-next-page",
                next.map(|n| n.to_string()).unwrap_or_default(),
            )
            .set_body_json(Value::Array(items))
    };
    for (p, range, next) in [(1u32, 151..=250u64, Some(2)), (2, 51..=150, Some(3))] {
        Mock::given(method("GET"))
            .and(path("/api/v4/projects/my-group%2Floadtest/jobs"))
            .and(query_param("scope[]", "pending"))
            .and(query_param("page", p.to_string()))
            .and(query_param("per_page", "100"))
            .and(header("PRIVATE-TOKEN", PAT))
            .respond_with(uncounted(
                range.rev().map(|id| doc_job(id, "pending")).collect(),
                p,
                next,
            ))
            .mount(&server)
            .await;
    }
    let gl = client(&server);
    let project = ProjectRef::parse("my-group/loadtest").unwrap();
    let first = gl
        .list_project_jobs(
            &project,
            &glrunner_gitlab_client::JobsQuery::page(1).scope(&[JobStatus::Pending]),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            first.items.len(),
            first.next_page,
            first.total,
            first.total_pages
        ),
        (100, Some(2), None, None)
    );
    let before = gl.requests_made();
    let bounded = gl
        .project_jobs_up_to(&project, &[JobStatus::Pending], 150)
        .await
        .unwrap();
    assert_eq!(
        gl.requests_made() - before,
        2,
        "two pages for 150 jobs, not the third"
    );
    assert_eq!((bounded.items.len(), bounded.truncated), (150, true));
    assert_eq!(bounded.items[0].id, 250);
    assert_eq!(bounded.items[149].id, 101);
    assert!(
        bounded
            .items
            .iter()
            .all(|j| j.status == JobStatus::Pending && j.tag_list == ["shard-1"])
    );
}

#[tokio::test]
async fn waits_out_429_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/projects/42/pipelines/7"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .insert_header("ratelimit-name", "throttle_authenticated_api")
                .insert_header("ratelimit-limit", "2000")
                .insert_header("ratelimit-observed", "2001")
                .insert_header("ratelimit-remaining", "0")
                .set_body_string("Retry later\n"),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/projects/42/pipelines/7"))
        .respond_with(ResponseTemplate::new(200).set_body_json(pipeline_json(7, "running")))
        .expect(1)
        .mount(&server)
        .await;
    let gl = client(&server);
    let started = Instant::now();
    let p = gl.get_pipeline(&ProjectRef::Id(42), 7).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited only {:?}",
        started.elapsed()
    );
    assert_eq!(p.id, 7);
    assert_eq!(gl.requests_made(), 2);
}

#[tokio::test]
async fn retry_after_beyond_the_cap_is_throttled() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/user"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "3600")
                .set_body_string("Retry later\n"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let err = client(&server).current_user().await.unwrap_err();
    assert!(matches!(err, Error::Throttled { .. }), "{err:?}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3600)));
    assert!(err.to_string().contains("429"), "{err}");
}

#[tokio::test]
async fn server_errors_are_retried_for_gets() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/projects/42"))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>502 Bad Gateway</html>"))
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/projects/42"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": 42, "name": "loadtest", "path": "loadtest", "path_with_namespace": "my-group/loadtest",
            "default_branch": "main", "web_url": "https://example.com/my-group/loadtest"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let gl = client(&server);
    let p = gl.get_project(&ProjectRef::Id(42)).await.unwrap();
    assert_eq!(p.path_with_namespace, "my-group/loadtest");
    assert_eq!(gl.requests_made(), 3);
}

#[tokio::test]
async fn server_errors_are_not_retried_for_pipeline_creation() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v4/projects/42/pipeline"))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(json!({"message": "500 Internal Server Error"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let err = client(&server)
        .create_pipeline(&ProjectRef::Id(42), &NewPipeline::new("main"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Backend {
                status: Some(500),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("create pipeline on ref \"main\" of project 42"),
        "{err}"
    );
}

#[tokio::test]
async fn unauthorized_is_a_clear_permission_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/user"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"message": "401 Unauthorized"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let err = client(&server).current_user().await.unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("401 Unauthorized")
            && msg.contains("GITLAB_TOKEN")
            && msg.contains("the token's user"),
        "{msg}"
    );
    assert!(!msg.contains(PAT));
}

#[tokio::test]
async fn insufficient_scope_names_the_scope() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v4/user/runners"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "error": "insufficient_scope",
            "error_description": "The request requires higher privileges than provided by the access token.",
            // GitLab lists every scope registered for the route (lib/api/api_guard.rb).
            "scope": "create_runner api read_api"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let err = client(&server)
        .create_runner(&NewRunner::project(42, "r", vec!["a".into()]))
        .await
        .unwrap_err();
    match &err {
        Error::PermissionDenied { scope, .. } => assert_eq!(scope, "api"),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("`api` scope"), "{err}");
}

#[tokio::test]
async fn not_found_and_already_taken() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/projects/9"))
        .respond_with(
            ResponseTemplate::new(404).set_body_json(json!({"message": "404 Project Not Found"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v4/projects"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({"message": {"path": ["has already been taken"]}})),
        )
        .mount(&server)
        .await;
    let gl = client(&server);
    assert!(
        gl.get_project(&ProjectRef::Id(9))
            .await
            .unwrap_err()
            .is_not_found()
    );
    let err = gl
        .create_project(&glrunner_gitlab_client::NewProject::new("x"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
}

fn commit_answer() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({
        "id": "ed899a2f4b50b4370feeea94676502b42383c746", "short_id": "ed899a2f4b5", "title": "load test",
        "created_at": "2016-09-20T09:26:24.000-07:00", "message": "load test"
    }))
}

fn branch_answer(name: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "name": name, "merged": false, "protected": true, "default": name == "main",
        "commit": {"id": "7b5c3cc8be40ee161ae89a06bba6229da1032a0c", "short_id": "7b5c3cc", "title": "add projects API"}
    }))
}

/// `put_file` on `branch` of a server whose file `exists` (or not) and whose branch exists
/// (or not): the commit body it sends must match `expected`.
async fn put_file_sends(branch: &str, branch_exists: bool, exists: bool, expected: Value) {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!(
            "/api/v4/projects/42/repository/branches/{branch}"
        )))
        .respond_with(if branch_exists {
            branch_answer(branch)
        } else {
            ResponseTemplate::new(404).set_body_json(json!({"message": "404 Branch Not Found"}))
        })
        .expect(1)
        .mount(&server)
        .await;
    if !branch_exists {
        Mock::given(method("GET"))
            .and(path("/api/v4/projects/42"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": 42, "name": "loadtest", "path_with_namespace": "group/loadtest",
                "default_branch": "main", "web_url": "https://example.com/group/loadtest"
            })))
            .expect(1)
            .mount(&server)
            .await;
    }
    // The file is looked up where it is now: the branch, or the start branch of a new one.
    let read_ref = if branch_exists { branch } else { "main" };
    Mock::given(method("HEAD"))
        .and(path("/api/v4/projects/42/repository/files/.gitlab-ci.yml"))
        .and(query_param("ref", read_ref))
        .respond_with(ResponseTemplate::new(if exists { 200 } else { 404 }))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v4/projects/42/repository/commits"))
        .and(wiremock::matchers::body_partial_json(expected))
        .respond_with(commit_answer())
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server)
        .put_file(
            &ProjectRef::Id(42),
            branch,
            ".gitlab-ci.yml",
            "x: 1",
            "load test [skip ci]",
        )
        .await
        .unwrap();
    assert_eq!(c.id, "ed899a2f4b50b4370feeea94676502b42383c746");
}

#[tokio::test]
async fn put_file_creates_a_new_file() {
    put_file_sends(
        "main",
        true,
        false,
        json!({"branch": "main", "commit_message": "load test [skip ci]",
               "actions": [{"action": "create", "file_path": ".gitlab-ci.yml", "content": "x: 1"}]}),
    )
    .await;
}

#[tokio::test]
async fn put_file_updates_an_existing_file() {
    put_file_sends(
        "main",
        true,
        true,
        json!({"branch": "main", "actions": [{"action": "update", "file_path": ".gitlab-ci.yml", "content": "x: 1"}]}),
    )
    .await;
}

#[tokio::test]
async fn put_file_to_a_new_branch_starts_it_from_the_default_branch() {
    put_file_sends(
        "loadtest-part-2",
        false,
        true,
        json!({"branch": "loadtest-part-2", "start_branch": "main",
               "actions": [{"action": "update", "file_path": ".gitlab-ci.yml"}]}),
    )
    .await;
}

#[tokio::test]
async fn runner_list_asks_for_project_runners_and_details_carry_tags() {
    let server = MockServer::start().await;
    // GitLab's list entries: no tag_list, no contacted_at.
    Mock::given(method("GET"))
        .and(path("/api/v4/projects/42/runners"))
        .and(query_param("type", "project_type"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"active": true, "paused": false, "description": "stack/stack-runner-1", "id": 6, "ip_address": null,
             "is_shared": false, "runner_type": "project_type", "name": null, "online": false, "status": "never_contacted"}
        ])))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/runners/6"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "active": true, "paused": false, "architecture": "amd64", "description": "stack/stack-runner-1", "id": 6,
            "ip_address": "10.0.1.7", "is_shared": false, "runner_type": "project_type", "contacted_at": "2026-01-01T10:00:00.000Z",
            "maintenance_note": null, "name": "gitlab-runner", "online": true, "status": "online", "platform": "linux",
            "projects": [{"id": 42, "name": "loadtest"}], "revision": "5316d4ac", "tag_list": ["stack-shard-1"],
            "run_untagged": false, "version": "18.9.0", "access_level": "not_protected", "maximum_timeout": null, "locked": false
        })))
        .expect(1)
        .mount(&server)
        .await;
    let gl = client(&server);
    let list = gl.list_runners(&ProjectRef::Id(42)).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].online, Some(false));
    let details = gl.get_runner(list[0].id).await.unwrap();
    assert_eq!(details.tag_list, vec!["stack-shard-1"]);
    assert!(details.is_online());
    assert!(details.contacted_at.is_some());
}

#[tokio::test]
async fn the_token_travels_in_the_header_its_kind_needs() {
    use glrunner_gitlab_client::AuthScheme;
    let oauth = "a".repeat(64);
    for (token, auth, header_name, value) in [
        (
            PAT.to_owned(),
            AuthScheme::Auto,
            "PRIVATE-TOKEN",
            PAT.to_owned(),
        ),
        (
            oauth.clone(),
            AuthScheme::Auto,
            "Authorization",
            format!("Bearer {oauth}"),
        ),
        (
            "glcbt-64_job".to_owned(),
            AuthScheme::Auto,
            "JOB-TOKEN",
            "glcbt-64_job".to_owned(),
        ),
        (
            PAT.to_owned(),
            AuthScheme::Bearer,
            "Authorization",
            format!("Bearer {PAT}"),
        ),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v4/user"))
            .and(header(header_name, value.as_str()))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"id": 1, "username": "root"})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let gl = HttpGitLab::builder()
            .with_url(server.uri())
            .with_token(SecretToken::new(token.clone()))
            .with_auth(auth)
            .build()
            .unwrap();
        assert_eq!(
            gl.current_user().await.unwrap().username,
            "root",
            "{header_name}"
        );
        assert!(!format!("{gl:?}").contains(&token), "Debug shows no token");
    }
    assert!(AuthScheme::parse("bearer").is_ok());
    assert!(
        AuthScheme::parse("basic")
            .unwrap_err()
            .to_string()
            .contains("private-token")
    );
}

#[tokio::test]
async fn refused_pipeline_variables_are_recognised() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v4/projects/42/pipeline"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"message": {"base": ["Insufficient permissions to set pipeline variables"]}}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let err = client(&server)
        .create_pipeline(
            &ProjectRef::Id(42),
            &NewPipeline::new("main").variable("A", "1"),
        )
        .await
        .unwrap_err();
    assert!(err.is_pipeline_variables_refused(), "{err:?}");
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One process-wide TRACE subscriber capturing every test's logs. Global rather than
/// scoped: tracing caches callsite interest process-wide, and scoped subscribers race with
/// callsites first hit on other test threads.
fn captured_logs() -> Capture {
    static CAPTURE: std::sync::OnceLock<Capture> = std::sync::OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let capture = Capture::default();
            let writer = capture.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in this binary");
            capture
        })
        .clone()
}

#[tokio::test]
async fn tracing_output_never_contains_a_token() {
    let capture = captured_logs();

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v4/user/runners"))
        .and(header("PRIVATE-TOKEN", PAT))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": 9171, "token": RUNNER_TOKEN, "token_expires_at": null
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/user"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "0")
                .set_body_string("Retry later"),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/user"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"message": format!("401 Unauthorized: {PAT}")})),
        )
        .mount(&server)
        .await;
    let gl = client(&server);
    let runner = gl
        .create_runner(&NewRunner::project(42, "shard-1", vec!["shard-1".into()]))
        .await
        .unwrap();
    assert_eq!(runner.token.expose(), RUNNER_TOKEN);
    let err = gl.current_user().await.unwrap_err();
    tracing::error!(error = %err, debug = ?err, "user lookup failed");
    tracing::info!(client = ?gl, runner = ?runner, "state");

    // Every test's logs so far, this one's included.
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("GitLab request"),
        "request lines were logged: {logs}"
    );
    assert!(logs.contains("429"), "the throttle was logged: {logs}");
    assert!(
        logs.contains("glrt-****") && logs.contains("glpat-****"),
        "redacted forms appear: {logs}"
    );
    assert!(!logs.contains(PAT), "API token leaked into logs: {logs}");
    assert!(
        !logs.contains(RUNNER_TOKEN),
        "runner token leaked into logs: {logs}"
    );
    assert!(
        !logs.contains("TESTtokenValue") && !logs.contains("RunnerSecret"),
        "token fragments leaked: {logs}"
    );
}

#[test]
fn bad_configuration_is_rejected_before_any_request() {
    let build = |url: &str, token: &str, insecure: bool| {
        HttpGitLab::builder()
            .with_url(url)
            .with_token(SecretToken::new(token))
            .allow_insecure_http(insecure)
            .build()
    };
    let err = build("gitlab.example.com", PAT, false).unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput { .. }) && err.to_string().contains("no scheme"),
        "{err}"
    );
    let err = build("http://gitlab.example.com", PAT, false).unwrap_err();
    assert!(err.to_string().contains("plain http"), "{err}");
    assert!(build("http://gitlab.example.com", PAT, true).is_ok());
    let err = build("https://gitlab.example.com", "  ", false).unwrap_err();
    assert!(err.to_string().contains("GITLAB_TOKEN"), "{err}");
    let err = HttpGitLab::builder()
        .with_token(SecretToken::new(PAT))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("GITLAB_URL"), "{err}");
}

#[tokio::test]
async fn watcher_runs_over_http() {
    use glrunner_gitlab_client::WatchOutcome;
    use glrunner_gitlab_client::watch::{WatchConfig, watch_pipeline};
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/projects/42/pipelines/7"))
        .respond_with(ResponseTemplate::new(200).set_body_json(pipeline_json(7, "running")))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/projects/42/pipelines/7"))
        .respond_with(ResponseTemplate::new(200).set_body_json(pipeline_json(7, "failed")))
        .mount(&server)
        .await;
    let jobs = vec![
        doc_job(3, "success"),
        doc_job(2, "failed"),
        doc_job(1, "success"),
    ];
    Mock::given(method("GET"))
        .and(path("/api/v4/projects/42/pipelines/7/jobs"))
        .respond_with(page(jobs, 1, None, 3))
        .mount(&server)
        .await;
    let gl = client(&server);
    let cfg = WatchConfig::default()
        .with_intervals(
            Duration::from_millis(10),
            Duration::from_millis(10),
            Duration::from_millis(10),
        )
        .with_max_requests_per_minute(1_000_000);
    let report = watch_pipeline(&gl, &ProjectRef::Id(42), 7, &cfg, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(report.outcome, WatchOutcome::Finished);
    assert_eq!(report.total_jobs, 3);
    assert_eq!(report.pipeline_status, "failed");
    assert_eq!(report.failures_by_reason["script_failure"], 1);
    // pipeline, total count, active page, pipeline, final listing
    assert_eq!(report.requests, 5);
    assert_eq!(gl.requests_made(), 5);
}

#[tokio::test]
async fn slow_gets_are_retried_then_time_out_with_a_bound() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/projects/42/pipelines/7"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_delay(Duration::from_secs(2))
                .set_body_json(pipeline_json(7, "running")),
        )
        .expect(2)
        .mount(&server)
        .await;
    let gl = HttpGitLab::builder()
        .with_url(server.uri())
        .with_token(SecretToken::new(PAT))
        .with_timeout(Duration::from_millis(200))
        .with_retry_policy(
            RetryPolicy::default()
                .with_max_retries(1)
                .with_backoff(Duration::from_millis(5), Duration::from_millis(5)),
        )
        .build()
        .unwrap();
    let err = gl.get_pipeline(&ProjectRef::Id(42), 7).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("timed out after 0.2 s"), "{err}");
    assert_eq!(gl.requests_made(), 2, "one retry, then the bound");
}

#[tokio::test]
async fn the_watch_budget_counts_the_transports_own_retries() {
    use glrunner_gitlab_client::watch::{WatchConfig, watch_pipeline};
    let server = MockServer::start().await;
    // The first pipeline read is a 502 that the client retries on its own.
    Mock::given(method("GET"))
        .and(path("/api/v4/projects/42/pipelines/7"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/projects/42/pipelines/7"))
        .respond_with(ResponseTemplate::new(200).set_body_json(pipeline_json(7, "success")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/projects/42/pipelines/7/jobs"))
        .respond_with(page(vec![doc_job(1, "success")], 1, None, 1))
        .mount(&server)
        .await;
    let gl = client(&server);
    let report = watch_pipeline(
        &gl,
        &ProjectRef::Id(42),
        7,
        &WatchConfig::default(),
        &mut |_| {},
    )
    .await
    .unwrap();
    let received = server.received_requests().await.unwrap().len() as u64;
    assert_eq!(
        received, 3,
        "502, then the pipeline, then the final listing"
    );
    assert_eq!(report.requests, received, "the retry counts in the budget");
}

#[tokio::test]
async fn the_watcher_does_not_retry_a_429_the_client_already_retried() {
    use glrunner_gitlab_client::watch::{WatchConfig, watch_pipeline};
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/projects/42/pipelines/7"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "0")
                .set_body_string("Retry later"),
        )
        .mount(&server)
        .await;
    let gl = HttpGitLab::builder()
        .with_url(server.uri())
        .with_token(SecretToken::new(PAT))
        .with_retry_policy(RetryPolicy::default().with_max_retries(2))
        .build()
        .unwrap();
    let cfg = WatchConfig::default().with_timeout(Duration::from_secs(20));
    let err = watch_pipeline(&gl, &ProjectRef::Id(42), 7, &cfg, &mut |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Throttled { retried: true, .. }),
        "{err:?}"
    );
    let received = server.received_requests().await.unwrap().len();
    assert_eq!(
        received, 3,
        "one request and the client's two retries, no second layer"
    );
}
