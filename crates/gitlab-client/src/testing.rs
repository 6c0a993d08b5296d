//! A GitLab double over HTTP (feature `testing`): the in-memory GitLab behind GitLab's REST
//! routes on a loopback wiremock server, so the real [`crate::HttpGitLab`] client, the
//! examples and their binaries run against GitLab's behaviour (push pipelines, refused
//! pipeline variables, the jobs-per-pipeline limit, list shapes, runner status) without a
//! GitLab.
//!
//! Every request must carry the token (`PRIVATE-TOKEN`, `Authorization: Bearer` or
//! `JOB-TOKEN`), else 401 as GitLab answers. Errors come back with GitLab's status codes and
//! `{"message": ...}` bodies; job listings carry GitLab's pagination headers; 429s carry
//! `Retry-After`.

use std::future::Future;
use std::task::{Context, Poll, Waker};

use serde::Serialize;
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::api::GitLabApi;
use crate::error::Error;
use crate::memory::InMemoryGitLab;
use crate::types::{
    CommitAction, JobStatus, JobsQuery, Member, MemberScope, NewCommit, NewPipeline, NewProject,
    NewRunner, PipelineVariable, ProjectRef,
};

/// The fault-injecting decorator, for tests that also serve the double ([`crate::faulty`]).
pub use crate::faulty::{Call, Faulty, GitLabArgs, GitLabCall, GitLabRule, Timing};

/// Starts a loopback server answering GitLab's REST API v4 from `gitlab`; requests need `token`.
pub async fn serve(gitlab: InMemoryGitLab, token: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(Double {
            gitlab,
            token: token.to_owned(),
            faults: Faults::default(),
        })
        .mount(&server)
        .await;
    server
}

/// Starts [`serve`]'s double with faults the test can inject while it runs.
pub async fn serve_with_faults(gitlab: InMemoryGitLab, token: &str) -> (MockServer, Faults) {
    let server = MockServer::start().await;
    let faults = Faults::default();
    Mock::given(wiremock::matchers::any())
        .respond_with(Double {
            gitlab,
            token: token.to_owned(),
            faults: faults.clone(),
        })
        .mount(&server)
        .await;
    (server, faults)
}

/// Faults of the double: the next calls of a method and path answer a status instead of
/// GitLab's answer, before GitLab acts or after (a proxy's 502 once GitLab created the runner,
/// commit or pipeline: the effect happened, the answer was lost). Clones share the list.
#[derive(Clone, Debug, Default)]
pub struct Faults(std::sync::Arc<std::sync::Mutex<Vec<FaultRule>>>);

/// One rule of [`Faults`].
#[derive(Clone, Debug)]
struct FaultRule {
    method: String,
    path_suffix: String,
    status: u16,
    left: u32,
    when: Effect,
}

/// When a faulted call's effect happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    /// Never: the fault answers before GitLab acts.
    Never,
    /// Before the fault's answer.
    Before,
    /// Late: the answer comes after `answer_after`, the effect after `effect_after` (both from
    /// the request's arrival), whether or not the client still waits.
    Late {
        answer_after: std::time::Duration,
        effect_after: std::time::Duration,
    },
}

impl Faults {
    /// The next `count` `method` calls whose path ends with `path_suffix` answer `status`
    /// without GitLab acting (429 carries `Retry-After: 1`).
    pub fn before(&self, method: &str, path_suffix: &str, status: u16, count: u32) {
        self.push(method, path_suffix, status, count, Effect::Never);
    }

    /// The next `count` matching calls are carried out, then answer `status`.
    pub fn after_effect(&self, method: &str, path_suffix: &str, status: u16, count: u32) {
        self.push(method, path_suffix, status, count, Effect::Before);
    }

    /// The "slow effect": the next `count` matching calls answer `status` only after
    /// `answer_after`, and GitLab carries them out `effect_after` they arrived, also when the
    /// client gave up meanwhile (Puma goes on with a request whose client left, until GitLab's
    /// request timeout; doc/administration/operations/puma.md). A 504 is a proxy giving up.
    pub fn slow_effect(
        &self,
        method: &str,
        path_suffix: &str,
        status: u16,
        count: u32,
        answer_after: std::time::Duration,
        effect_after: std::time::Duration,
    ) {
        let when = Effect::Late {
            answer_after,
            effect_after,
        };
        self.push(method, path_suffix, status, count, when);
    }

    fn push(&self, method: &str, path_suffix: &str, status: u16, left: u32, when: Effect) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(FaultRule {
                method: method.to_ascii_uppercase(),
                path_suffix: path_suffix.to_owned(),
                status,
                left,
                when,
            });
    }

    /// The matching rule's status and when its effect happens; consumes one use.
    fn take(&self, request: &Request) -> Option<(u16, Effect)> {
        let mut rules = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let rule = rules.iter_mut().find(|r| {
            r.left > 0
                && r.method == request.method.as_str()
                && request.url.path().ends_with(&r.path_suffix)
        })?;
        rule.left -= 1;
        Some((rule.status, rule.when))
    }
}

fn injected(status: u16) -> ResponseTemplate {
    let t = ResponseTemplate::new(status).set_body_json(json!({"message": "injected fault"}));
    if status == 429 {
        t.insert_header("retry-after", "1")
    } else {
        t
    }
}

#[derive(Clone)]
struct Double {
    gitlab: InMemoryGitLab,
    token: String,
    faults: Faults,
}

/// Runs one in-memory call: they never wait on anything, so one poll finishes them.
fn now<T>(fut: impl Future<Output = T>) -> Option<T> {
    let mut fut = std::pin::pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&segment[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json_ok<T: Serialize>(status: u16, value: &T) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(value)
}

/// GitLab's 404 body for a resource the in-memory GitLab names: `not_found!('Project')` and
/// its kin render `"404 Project Not Found"` (lib/api/helpers.rb `not_found!`); records looked
/// up with `find` (pipelines, jobs, members) fall to `rescue_from ActiveRecord::RecordNotFound`,
/// `"404 Not found"`; an unknown route is `error!('404 Not Found', 404)`, `{"error": ...}`
/// (lib/api/api.rb).
fn not_found_body(resource: &str) -> Value {
    let kind = resource.split([' ', '"']).next().unwrap_or_default();
    let named = |what: &str| json!({ "message": format!("404 {what} Not Found") });
    match kind {
        "project" => named("Project"),
        "runner" => named("Runner"),
        "namespace" => named("Namespace"),
        "group" => named("Group"),
        "branch" => named("Branch"),
        "file" => named("File"),
        "POST" => json!({ "error": "404 Not Found" }),
        _ => json!({ "message": "404 Not found" }),
    }
}

/// GitLab's answer for an error of this crate's categories.
fn error_response(e: &Error) -> ResponseTemplate {
    let message = |m: &str| json!({ "message": m });
    match e {
        Error::NotFound { resource, .. } => {
            ResponseTemplate::new(404).set_body_json(not_found_body(resource))
        }
        // `API::APIGuard`'s answer to `InsufficientScopeError`: rack-oauth2's Bearer
        // `Forbidden` with the registered scopes space-separated (lib/api/api_guard.rb,
        // `oauth2_bearer_token_error_handler`; lib/rack/oauth2/server/resource/error.rb).
        Error::PermissionDenied {
            message: m, scope, ..
        } if m == crate::memory::INSUFFICIENT_SCOPE => {
            ResponseTemplate::new(403).set_body_json(json!({
                "error": "insufficient_scope",
                "error_description": m,
                "scope": scope,
            }))
        }
        Error::AlreadyExists { .. } => ResponseTemplate::new(400)
            .set_body_json(json!({"message": {"name": ["has already been taken"]}})),
        Error::InvalidInput { message: m, .. } => {
            ResponseTemplate::new(400).set_body_json(json!({"message": {"base": [m]}}))
        }
        Error::Conflict { message: m, .. } => ResponseTemplate::new(409).set_body_json(message(m)),
        Error::PermissionDenied { message: m, .. } => {
            ResponseTemplate::new(403).set_body_json(message(m))
        }
        Error::Throttled { retry_after, .. } => ResponseTemplate::new(429)
            .insert_header(
                "retry-after",
                retry_after.map_or(1, |d| d.as_secs().max(1)).to_string(),
            )
            .set_body_string("Retry later"),
        other => ResponseTemplate::new(500).set_body_json(message(&other.to_string())),
    }
}

fn answer<T: Serialize>(status: u16, result: Option<crate::Result<T>>) -> ResponseTemplate {
    match result {
        Some(Ok(v)) => json_ok(status, &v),
        Some(Err(e)) => error_response(&e),
        None => ResponseTemplate::new(500).set_body_json(json!({"message": "the double blocked"})),
    }
}

fn bad_request(what: &str) -> ResponseTemplate {
    ResponseTemplate::new(400).set_body_json(json!({ "error": what }))
}

fn id_of(segment: &str) -> Option<u64> {
    segment.parse().ok()
}

impl Double {
    fn authorised(&self, request: &Request) -> bool {
        let h = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok());
        h("private-token") == Some(self.token.as_str())
            || h("job-token") == Some(self.token.as_str())
            || h("authorization").and_then(|v| v.strip_prefix("Bearer "))
                == Some(self.token.as_str())
    }

    fn query(request: &Request, key: &str) -> Option<String> {
        request
            .url
            .query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }

    /// A membership as GitLab answers it: the member, or 404 for a user who is not one.
    fn member(result: Option<crate::Result<Option<Member>>>) -> ResponseTemplate {
        match result {
            Some(Ok(None)) => {
                ResponseTemplate::new(404).set_body_json(json!({"message": "404 Not found"}))
            }
            Some(Ok(Some(m))) => json_ok(200, &m),
            Some(Err(e)) => error_response(&e),
            None => answer::<()>(200, None),
        }
    }

    fn project(segment: &str) -> ProjectRef {
        ProjectRef::parse(segment).unwrap_or_else(|_| ProjectRef::Path(segment.to_owned()))
    }

    /// A job listing (a pipeline's or a project's) with GitLab's pagination headers; `x-total`
    /// and `x-total-pages` only when the listing counted.
    fn jobs(
        request: &Request,
        list: impl FnOnce(&JobsQuery) -> Option<crate::Result<crate::types::Page<crate::types::Job>>>,
    ) -> ResponseTemplate {
        let mut scope = Vec::new();
        for (k, v) in request.url.query_pairs() {
            if k == "scope[]" || k == "scope" {
                match serde_json::from_value::<JobStatus>(Value::String(v.into_owned())) {
                    Ok(s) if s != JobStatus::Unknown => scope.push(s),
                    _ => return bad_request("scope does not have a valid value"),
                }
            }
        }
        let query = JobsQuery {
            page: Self::query(request, "page")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1),
            per_page: Self::query(request, "per_page")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            scope,
        };
        match list(&query) {
            Some(Ok(page)) => {
                let mut t = json_ok(200, &page.items)
                    .insert_header("x-page", page.page.to_string())
                    .insert_header("x-per-page", page.per_page.to_string())
                    .insert_header(
                        "x-next-page",
                        page.next_page.map(|n| n.to_string()).unwrap_or_default(),
                    );
                if let Some(total) = page.total {
                    t = t.insert_header("x-total", total.to_string());
                }
                if let Some(pages) = page.total_pages {
                    t = t.insert_header("x-total-pages", pages.to_string());
                }
                t
            }
            other => answer::<()>(200, other.map(|r| r.map(|_| ()))),
        }
    }

    fn route(&self, request: &Request) -> ResponseTemplate {
        let gl = &self.gitlab;
        let Some(path) = request.url.path().strip_prefix("/api/v4/") else {
            return ResponseTemplate::new(404);
        };
        let segments: Vec<String> = path.split('/').map(percent_decode).collect();
        let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
        let body = || request.body_json::<Value>().unwrap_or(Value::Null);
        match (request.method.as_str(), seg.as_slice()) {
            ("GET", ["user"]) => answer(200, now(gl.current_user())),
            ("GET", ["version"]) => answer(200, now(gl.version())),
            ("GET", ["personal_access_tokens", "self"]) => answer(200, now(gl.token_info())),
            ("GET", ["projects", p, "members", "all", user]) => Self::member(now(gl.member(
                &MemberScope::Project(Self::project(p)),
                id_of(user).unwrap_or(0),
            ))),
            ("GET", ["groups", g, "members", "all", user]) => Self::member(now(gl.member(
                &MemberScope::Group((*g).to_owned()),
                id_of(user).unwrap_or(0),
            ))),
            ("GET", ["namespaces", ns]) => answer(200, now(gl.get_namespace(ns))),
            ("POST", ["projects"]) => match serde_json::from_value::<NewProjectBody>(body()) {
                Ok(b) => {
                    let mut new = NewProject::new(b.path);
                    new.name = b.name;
                    new.namespace_id = b.namespace_id;
                    new.initialize_with_readme = b.initialize_with_readme.unwrap_or(false);
                    answer(201, now(gl.create_project(&new)))
                }
                Err(e) => bad_request(&e.to_string()),
            },
            ("GET", ["projects", p]) => answer(200, now(gl.get_project(&Self::project(p)))),
            ("DELETE", ["projects", p]) => answer(
                202,
                now(gl.delete_project(&Self::project(p)))
                    .map(|r| r.map(|()| json!({"message": "202 Accepted"}))),
            ),
            ("POST", ["user", "runners"]) => {
                match serde_json::from_value::<NewRunnerBody>(body()) {
                    Ok(b) => {
                        let mut new = NewRunner::project(
                            b.project_id,
                            b.description.unwrap_or_default(),
                            b.tag_list.unwrap_or_default(),
                        )
                        .run_untagged(b.run_untagged.unwrap_or(false));
                        new.runner_type = b.runner_type;
                        match now(gl.create_runner(&new)) {
                            // The only answer that shows a runner token, as on GitLab.
                            Some(Ok(c)) => json_ok(
                                201,
                                &json!({"id": c.id, "token": c.token.expose(), "token_expires_at": null}),
                            ),
                            other => answer::<()>(201, other.map(|r| r.map(|_| ()))),
                        }
                    }
                    Err(e) => bad_request(&e.to_string()),
                }
            }
            ("GET", ["projects", p, "runners"]) => {
                if Self::query(request, "type").is_some_and(|t| t != "project_type") {
                    return json_ok(200, &Vec::<Value>::new());
                }
                answer(200, now(gl.list_runners(&Self::project(p))))
            }
            ("GET", ["runners", id]) => match id_of(id) {
                Some(id) => answer(200, now(gl.get_runner(id))),
                None => ResponseTemplate::new(404),
            },
            ("DELETE", ["runners", id]) => match id_of(id) {
                Some(id) => match now(gl.delete_runner(id)) {
                    Some(Ok(())) => ResponseTemplate::new(204),
                    other => answer::<()>(204, other),
                },
                None => ResponseTemplate::new(404),
            },
            ("HEAD", ["projects", p, "repository", "files", file]) => {
                let r = Self::query(request, "ref").unwrap_or_default();
                match now(gl.file_exists(&Self::project(p), file, &r)) {
                    Some(Ok(true)) => ResponseTemplate::new(200),
                    Some(Ok(false)) => ResponseTemplate::new(404),
                    other => answer::<bool>(200, other),
                }
            }
            ("GET", ["projects", p, "repository", "branches", branch]) => {
                answer(200, now(gl.get_branch(&Self::project(p), branch)))
            }
            ("DELETE", ["projects", p, "repository", "branches", branch]) => {
                match now(gl.delete_branch(&Self::project(p), branch)) {
                    Some(Ok(())) => ResponseTemplate::new(204),
                    other => answer::<()>(204, other),
                }
            }
            ("POST", ["projects", p, "repository", "commits"]) => {
                match serde_json::from_value::<CommitBody>(body()) {
                    Ok(b) => {
                        let commit = NewCommit {
                            branch: b.branch,
                            start_branch: b.start_branch,
                            commit_message: b.commit_message,
                            actions: b.actions,
                        };
                        answer(201, now(gl.commit_files(&Self::project(p), &commit)))
                    }
                    Err(e) => bad_request(&e.to_string()),
                }
            }
            ("POST", ["projects", p, "pipeline"]) => {
                match serde_json::from_value::<PipelineBody>(body()) {
                    Ok(b) => {
                        let mut new = NewPipeline::new(b.ref_name);
                        new.variables = b.variables.unwrap_or_default();
                        answer(201, now(gl.create_pipeline(&Self::project(p), &new)))
                    }
                    Err(e) => bad_request(&e.to_string()),
                }
            }
            ("GET", ["projects", p, "pipelines"]) => {
                let r = Self::query(request, "ref").unwrap_or_default();
                answer(200, now(gl.list_pipelines(&Self::project(p), &r)))
            }
            ("GET", ["projects", p, "pipelines", id]) => match id_of(id) {
                Some(id) => answer(200, now(gl.get_pipeline(&Self::project(p), id))),
                None => ResponseTemplate::new(404),
            },
            ("POST", ["projects", p, "pipelines", id, "cancel"]) => match id_of(id) {
                Some(id) => answer(200, now(gl.cancel_pipeline(&Self::project(p), id))),
                None => ResponseTemplate::new(404),
            },
            ("GET", ["projects", p, "pipelines", id, "jobs"]) => match id_of(id) {
                Some(id) => Self::jobs(request, |q| {
                    now(gl.list_pipeline_jobs(&Self::project(p), id, q))
                }),
                None => ResponseTemplate::new(404),
            },
            ("GET", ["projects", p, "jobs"]) => {
                Self::jobs(request, |q| now(gl.list_project_jobs(&Self::project(p), q)))
            }
            ("GET", ["projects", p, "jobs", id]) => match id_of(id) {
                Some(id) => answer(200, now(gl.get_job(&Self::project(p), id))),
                None => ResponseTemplate::new(404),
            },
            // `text/plain`, the raw log or an empty body (lib/api/ci/jobs.rb).
            ("GET", ["projects", p, "jobs", id, "trace"]) => match id_of(id) {
                Some(id) => match now(gl.job_trace(&Self::project(p), id)) {
                    Some(Ok(text)) => ResponseTemplate::new(200)
                        .insert_header("content-type", "text/plain")
                        .set_body_string(text),
                    other => answer(200, other.map(|r| r.map(|_| ()))),
                },
                None => ResponseTemplate::new(404),
            },
            _ => ResponseTemplate::new(404).set_body_json(json!({"error": "404 Not Found"})),
        }
    }
}

impl Respond for Double {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if !self.authorised(request) {
            return ResponseTemplate::new(401)
                .set_body_json(json!({"message": "401 Unauthorized"}));
        }
        match self.faults.take(request) {
            None => self.route(request),
            Some((status, Effect::Never)) => injected(status),
            Some((status, Effect::Before)) => {
                let _lost = self.route(request);
                injected(status)
            }
            Some((
                status,
                Effect::Late {
                    answer_after,
                    effect_after,
                },
            )) => {
                // A thread of its own: the server's tasks keep answering meanwhile (the client
                // lists pipelines while the slow request runs).
                let (double, request) = (self.clone(), request.clone());
                std::thread::spawn(move || {
                    std::thread::sleep(effect_after);
                    let _lost = double.route(&request);
                });
                injected(status).set_delay(answer_after)
            }
        }
    }
}

#[derive(serde::Deserialize)]
struct NewProjectBody {
    path: String,
    name: Option<String>,
    namespace_id: Option<u64>,
    initialize_with_readme: Option<bool>,
}

#[derive(serde::Deserialize)]
struct NewRunnerBody {
    runner_type: String,
    project_id: u64,
    description: Option<String>,
    tag_list: Option<Vec<String>>,
    run_untagged: Option<bool>,
}

#[derive(serde::Deserialize)]
struct CommitBody {
    branch: String,
    start_branch: Option<String>,
    commit_message: String,
    actions: Vec<CommitAction>,
}

#[derive(serde::Deserialize)]
struct PipelineBody {
    #[serde(rename = "ref")]
    ref_name: String,
    variables: Option<Vec<PipelineVariable>>,
}
