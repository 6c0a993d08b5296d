//! The REST API v4 backend on reqwest, with the transport policy (429, retries, timeouts, redaction).
//!
//! # Transport policy
//!
//! - **429**: wait what GitLab asks (`Retry-After` seconds or HTTP date, else `RateLimit-Reset`
//!   unix time, else `RateLimit-ResetTime`, else backoff), then retry, for every method (a
//!   throttled request was not processed). Waits longer than
//!   [`RetryPolicy::max_throttle_wait`] or more than [`RetryPolicy::max_retries`] throttles
//!   give [`Error::Throttled`].
//! - **5xx and timeouts**: retried with capped exponential backoff and jitter for idempotent
//!   methods (GET, HEAD, DELETE). A POST is not repeated after a 5xx or a timeout, because
//!   GitLab may have acted on it (a second pipeline); it is retried only on connection
//!   errors, where nothing reached the server.
//! - **Timeouts**: per request (default 30 s) and per connect (default 10 s); pipeline
//!   creation gets longer (default 90 s, [`HttpGitLabBuilder::with_pipeline_creation_timeout`]):
//!   GitLab goes on creating a pipeline after the client gave up, until its own request timeout
//!   (60 s by default), so a client that waits longer than that hears GitLab's own answer
//!   instead of losing it.
//! - **A retried DELETE answering 404** counts as done: the first attempt, whose answer was a
//!   5xx or a timeout, deleted it.
//! - **401/403** become [`Error::PermissionDenied`] naming the scope the call needs (or the
//!   scope GitLab's `insufficient_scope` answer names).
//! - **Authentication** ([`AuthScheme`]): `PRIVATE-TOKEN` for personal, project and group
//!   access tokens, `Authorization: Bearer` for OAuth 2.0 access tokens, `JOB-TOKEN` for CI
//!   job tokens (`glcbt-`); chosen explicitly or from the token's shape.
//! - **One retry layer**: a [`Error::Throttled`] from this client has `retried: true` (it
//!   already waited what GitLab asked, or the wait was too long); callers do not retry it.
//! - **Secrets**: the token travels only in a sensitive header; logs carry
//!   method, path, status and timing, never headers or bodies; error bodies are scrubbed of
//!   the token; decode errors report only a position (serde messages can quote values).
//! - **Plain http** only to loopback hosts unless [`HttpGitLabBuilder::allow_insecure_http`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use url::Url;

use crate::api::GitLabApi;
use crate::error::{Error, Result};
use crate::secret::SecretToken;
use crate::types::{
    Branch, Commit, CreatedRunner, Job, JobsQuery, Member, MemberScope, Namespace, NewCommit,
    NewPipeline, NewProject, NewRunner, Page, Pipeline, Project, ProjectRef, Runner, RunnerDetails,
    ServerVersion, TokenInfo, User, encode_path,
};

/// How the token is sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthScheme {
    /// From the token's shape: `glcbt-…` is a job token; 64 hexadecimal characters without a
    /// GitLab prefix is an OAuth 2.0 access token; anything else an access token.
    #[default]
    Auto,
    /// `PRIVATE-TOKEN: <token>`: personal, project and group access tokens.
    PrivateToken,
    /// `Authorization: Bearer <token>`: OAuth 2.0 access tokens (access tokens work too).
    Bearer,
    /// `JOB-TOKEN: <token>`: a CI job token (`$CI_JOB_TOKEN`), with the job token's limited access.
    JobToken,
}

impl AuthScheme {
    /// The concrete scheme for this token ([`AuthScheme::Auto`] decided by its shape).
    pub fn resolve(self, token: &SecretToken) -> AuthScheme {
        if self != AuthScheme::Auto {
            return self;
        }
        let value = token.expose();
        if value.starts_with("glcbt-") {
            AuthScheme::JobToken
        } else if token.prefix().is_empty()
            && value.len() == 64
            && value.bytes().all(|b| b.is_ascii_hexdigit())
        {
            AuthScheme::Bearer
        } else {
            AuthScheme::PrivateToken
        }
    }

    /// Parses `auto`, `private-token`, `bearer` or `job-token`.
    pub fn parse(value: &str) -> Result<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(AuthScheme::Auto),
            "private-token" | "private_token" => Ok(AuthScheme::PrivateToken),
            "bearer" | "oauth" => Ok(AuthScheme::Bearer),
            "job-token" | "job_token" => Ok(AuthScheme::JobToken),
            other => Err(Error::invalid(
                "use",
                "GitLab authentication scheme",
                format!("{other:?} is not one of auto, private-token, bearer, job-token"),
            )),
        }
    }

    /// The header name and value to send.
    fn header(self, token: &SecretToken) -> (&'static str, String) {
        match self.resolve(token) {
            AuthScheme::Bearer => ("authorization", format!("Bearer {}", token.expose())),
            AuthScheme::JobToken => ("job-token", token.expose().to_owned()),
            AuthScheme::PrivateToken | AuthScheme::Auto => {
                ("private-token", token.expose().to_owned())
            }
        }
    }
}

/// How the HTTP backend retries.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Retries after the first attempt (for 429s, 5xx and connection errors alike).
    pub max_retries: u32,
    /// First backoff; doubles each retry.
    pub initial_backoff: Duration,
    /// Backoff ceiling.
    pub max_backoff: Duration,
    /// Longest `Retry-After` we are willing to sleep; longer asks give [`Error::Throttled`].
    pub max_throttle_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_throttle_wait: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// Sets the retry count.
    #[must_use]
    pub fn with_max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// Sets the backoff range.
    #[must_use]
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Sets the longest acceptable `Retry-After`.
    #[must_use]
    pub fn with_max_throttle_wait(mut self, d: Duration) -> Self {
        self.max_throttle_wait = d;
        self
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .initial_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        exp.min(self.max_backoff)
            .mul_f64(0.5 + 0.5 * fastrand::f64())
    }
}

/// Parses and checks a GitLab base URL (`https://gitlab.com`, optionally ending in `/api/v4`):
/// a scheme is required, only `https` or `http`, and `http` only for loopback hosts unless
/// `allow_insecure_http`. Returns the API base ending in `/api/v4/`.
pub fn parse_gitlab_url(raw: &str, allow_insecure_http: bool) -> Result<Url> {
    let bad = |msg: String| Error::invalid("use", "GitLab URL", msg);
    let raw = raw.trim();
    let url = Url::parse(raw).map_err(|e| match e {
        url::ParseError::RelativeUrlWithoutBase => bad(format!(
            "{raw:?} has no scheme; write it in full, e.g. https://{raw}"
        )),
        other => bad(format!("{raw:?} is not a URL: {other}")),
    })?;
    let host = url
        .host()
        .ok_or_else(|| bad(format!("{raw:?} has no host")))?;
    match url.scheme() {
        "https" => {}
        "http" => {
            let loopback = match host {
                url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
                url::Host::Ipv4(ip) => ip.is_loopback(),
                url::Host::Ipv6(ip) => ip.is_loopback(),
            };
            if !loopback && !allow_insecure_http {
                return Err(bad(format!(
                    "{raw:?} uses plain http to a non-loopback host, which would send the token unencrypted; \
                     use https:// or explicitly allow insecure http"
                )));
            }
        }
        other => return Err(bad(format!("{raw:?} has scheme {other:?}; use https://"))),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "credentials in the URL are not accepted; use the GITLAB_TOKEN environment variable"
                .into(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad(format!(
            "{raw:?} has a query or fragment; give only the base URL"
        )));
    }
    let mut base = url.as_str().trim_end_matches('/').to_owned();
    if let Some(stripped) = base.strip_suffix("/api/v4") {
        base = stripped.to_owned();
    }
    Url::parse(&format!("{base}/api/v4/")).map_err(|e| bad(e.to_string()))
}

/// Builds an [`HttpGitLab`]; validation happens in [`HttpGitLabBuilder::build`].
#[derive(Clone, Debug)]
pub struct HttpGitLabBuilder {
    url: Option<String>,
    token: Option<SecretToken>,
    auth: AuthScheme,
    allow_insecure_http: bool,
    timeout: Duration,
    pipeline_creation_timeout: Duration,
    connect_timeout: Duration,
    retry: RetryPolicy,
}

impl Default for HttpGitLabBuilder {
    fn default() -> Self {
        Self {
            url: None,
            token: None,
            auth: AuthScheme::Auto,
            allow_insecure_http: false,
            timeout: Duration::from_secs(30),
            pipeline_creation_timeout: Duration::from_secs(90),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
        }
    }
}

impl HttpGitLabBuilder {
    /// Reads `GITLAB_URL` (else `CI_SERVER_URL`) and `GITLAB_TOKEN` from the environment,
    /// keeping values already set.
    #[must_use]
    pub fn from_env(mut self) -> Self {
        if self.url.is_none() {
            self.url = std::env::var("GITLAB_URL")
                .or_else(|_| std::env::var("CI_SERVER_URL"))
                .ok();
        }
        if self.token.is_none() {
            self.token = std::env::var("GITLAB_TOKEN").ok().map(SecretToken::new);
        }
        self
    }

    /// Sets the base URL (`https://gitlab.com`).
    #[must_use]
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Sets the API token (scope `api`; `create_runner` suffices for runner creation).
    #[must_use]
    pub fn with_token(mut self, token: SecretToken) -> Self {
        self.token = Some(token);
        self
    }

    /// Sets how the token is sent (default: [`AuthScheme::Auto`]).
    #[must_use]
    pub fn with_auth(mut self, auth: AuthScheme) -> Self {
        self.auth = auth;
        self
    }

    /// Allows plain `http://` to non-loopback hosts (the token then travels unencrypted).
    #[must_use]
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    /// Sets the per-request timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the timeout of `POST /projects/:id/pipeline` (default 90 s). Keep it above GitLab's
    /// request timeout (60 s by default; doc/administration/operations/puma.md): GitLab goes on
    /// creating the pipeline after a client gave up, so a shorter wait loses answers of
    /// pipelines that do get created.
    #[must_use]
    pub fn with_pipeline_creation_timeout(mut self, timeout: Duration) -> Self {
        self.pipeline_creation_timeout = timeout;
        self
    }

    /// The timeout of `POST /projects/:id/pipeline`.
    pub fn pipeline_creation_timeout(&self) -> Duration {
        self.pipeline_creation_timeout
    }

    /// Sets the connect timeout.
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the retry policy.
    #[must_use]
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Validates the URL and token and builds the client. Sends nothing.
    pub fn build(self) -> Result<HttpGitLab> {
        let url = self.url.ok_or_else(|| {
            Error::invalid(
                "use",
                "GitLab URL",
                "no URL given; set GITLAB_URL or CI_SERVER_URL, e.g. https://gitlab.com",
            )
        })?;
        let api = parse_gitlab_url(&url, self.allow_insecure_http)?;
        let token = self.token.filter(|t| !t.is_blank()).ok_or_else(|| {
            Error::invalid(
                "use",
                "GitLab token",
                "no token given; export GITLAB_TOKEN with a personal access token that has the `api` scope",
            )
        })?;
        if token
            .expose()
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(Error::invalid(
                "use",
                "GitLab token",
                "the token contains whitespace; check GITLAB_TOKEN",
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .user_agent(concat!(
                "glrunner-gitlab-client/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| Error::Backend {
                action: "build",
                resource: "HTTP client".into(),
                status: None,
                message: "cannot initialise the HTTP client".into(),
                source: Some(Box::new(e)),
            })?;
        Ok(HttpGitLab {
            client,
            api,
            auth: self.auth.resolve(&token),
            token,
            retry: self.retry,
            timeout: self.timeout,
            pipeline_creation_timeout: self.pipeline_creation_timeout,
            requests: Arc::new(AtomicU64::new(0)),
        })
    }
}

/// GitLab's REST API v4. Clones share the connection pool and the request counter.
#[derive(Clone)]
pub struct HttpGitLab {
    client: reqwest::Client,
    api: Url,
    token: SecretToken,
    auth: AuthScheme,
    retry: RetryPolicy,
    timeout: Duration,
    pipeline_creation_timeout: Duration,
    requests: Arc<AtomicU64>,
}

impl std::fmt::Debug for HttpGitLab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpGitLab")
            .field("api", &self.api.as_str())
            .field("token", &self.token)
            .field("auth", &self.auth)
            .field("retry", &self.retry)
            .finish()
    }
}

/// One call: what to send and how to describe it in errors.
struct Call {
    method: Method,
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<serde_json::Value>,
    action: &'static str,
    resource: String,
    scope: &'static str,
    /// Overrides the client's request timeout.
    timeout: Option<Duration>,
}

impl Call {
    fn new(method: Method, path: String, action: &'static str, resource: String) -> Self {
        Self {
            method,
            path,
            query: Vec::new(),
            body: None,
            action,
            resource,
            scope: "api",
            timeout: None,
        }
    }

    fn query(mut self, key: &'static str, value: impl ToString) -> Self {
        self.query.push((key, value.to_string()));
        self
    }

    fn json(mut self, body: &impl serde::Serialize) -> Result<Self> {
        self.body = Some(
            serde_json::to_value(body)
                .map_err(|e| Error::invalid(self.action, self.resource.clone(), e.to_string()))?,
        );
        Ok(self)
    }

    fn scope(mut self, scope: &'static str) -> Self {
        self.scope = scope;
        self
    }

    fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    fn idempotent(&self) -> bool {
        matches!(
            self.method,
            Method::GET | Method::HEAD | Method::DELETE | Method::PUT
        )
    }
}

fn header<T: std::str::FromStr>(headers: &HeaderMap, name: &str) -> Option<T> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// How long a 429 asks us to wait.
fn throttle_wait(headers: &HeaderMap) -> Option<Duration> {
    let until = |t: jiff::Timestamp| {
        let d = t.duration_since(jiff::Timestamp::now());
        Duration::try_from(d).unwrap_or(Duration::ZERO)
    };
    if let Some(v) = headers.get("retry-after").and_then(|v| v.to_str().ok()) {
        if let Ok(secs) = v.trim().parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(t) = jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(v.trim()) {
            return Some(until(t));
        }
    }
    if let Some(reset) = header::<i64>(headers, "ratelimit-reset")
        && let Ok(t) = jiff::Timestamp::from_second(reset)
    {
        return Some(until(t));
    }
    if let Some(v) = headers
        .get("ratelimit-resettime")
        .and_then(|v| v.to_str().ok())
        && let Ok(t) = jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(v.trim())
    {
        return Some(until(t));
    }
    None
}

/// GitLab's error text from a body: `{"message": "..."}`, `{"message": {"field": ["..."]}}`,
/// `{"error": "...", "error_description": "..."}`, or the raw text.
fn gitlab_message(body: &str) -> String {
    fn flatten(v: &serde_json::Value) -> String {
        match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(a) => a.iter().map(flatten).collect::<Vec<_>>().join(", "),
            serde_json::Value::Object(o) => o
                .iter()
                .map(|(k, v)| format!("{k} {}", flatten(v)))
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        }
    }
    let text = match serde_json::from_str::<serde_json::Value>(body) {
        Ok(v) => {
            if let Some(m) = v.get("message") {
                flatten(m)
            } else if let Some(d) = v.get("error_description").or_else(|| v.get("error")) {
                flatten(d)
            } else {
                v.to_string()
            }
        }
        Err(_) => body.trim().to_owned(),
    };
    let mut text: String = text.chars().take(300).collect();
    if text.is_empty() {
        text = "(no message)".into();
    }
    text
}

impl HttpGitLab {
    /// A builder.
    pub fn builder() -> HttpGitLabBuilder {
        HttpGitLabBuilder::default()
    }

    /// HTTP requests sent so far, retries included.
    pub fn requests_made(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// How the token is sent (never [`AuthScheme::Auto`]: resolved at build time).
    pub fn auth_scheme(&self) -> AuthScheme {
        self.auth
    }

    /// The API base URL (`…/api/v4/`).
    pub fn api_url(&self) -> &Url {
        &self.api
    }

    fn scrub(&self, text: String) -> String {
        text.replace(self.token.expose(), &self.token.redacted())
    }

    async fn send(&self, call: &Call) -> Result<reqwest::Response> {
        let url = self
            .api
            .join(&call.path)
            .map_err(|e| Error::invalid(call.action, call.resource.clone(), e.to_string()))?;
        let mut attempt = 0u32;
        // A DELETE whose earlier attempt may have deleted the resource (a 5xx or a timeout).
        let mut may_have_deleted = false;
        loop {
            attempt += 1;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let (auth_header, auth_value) = self.auth.header(&self.token);
            let mut token = HeaderValue::from_str(&auth_value).map_err(|_| {
                Error::invalid(
                    "use",
                    "GitLab token",
                    "the token is not a valid header value",
                )
            })?;
            token.set_sensitive(true);
            let mut req = self
                .client
                .request(call.method.clone(), url.clone())
                .header(auth_header, token);
            if !call.query.is_empty() {
                req = req.query(&call.query);
            }
            if let Some(body) = &call.body {
                req = req.json(body);
            }
            if let Some(timeout) = call.timeout {
                req = req.timeout(timeout);
            }
            tracing::debug!(method = %call.method, path = %call.path, attempt, "GitLab request");
            let retries_left = attempt <= self.retry.max_retries;
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    tracing::debug!(
                        method = %call.method,
                        path = %call.path,
                        status = status.as_u16(),
                        ratelimit_remaining = header::<u64>(resp.headers(), "ratelimit-remaining"),
                        "GitLab response"
                    );
                    if status.is_success() {
                        return Ok(resp);
                    }
                    if status == StatusCode::NOT_FOUND && may_have_deleted {
                        tracing::info!(path = %call.path, attempt,
                            "the retried DELETE answers 404: an earlier attempt deleted it");
                        return Ok(resp);
                    }
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        let wait = throttle_wait(resp.headers());
                        let sleep = wait.unwrap_or_else(|| self.retry.backoff(attempt));
                        if !retries_left || sleep > self.retry.max_throttle_wait {
                            return Err(Error::Throttled {
                                action: call.action,
                                resource: call.resource.clone(),
                                retry_after: Some(sleep),
                                retried: true,
                            });
                        }
                        tracing::warn!(path = %call.path, wait_secs = sleep.as_secs_f64(), "GitLab throttled the request (429); waiting");
                        tokio::time::sleep(sleep).await;
                        continue;
                    }
                    if status.is_server_error() && call.idempotent() && retries_left {
                        may_have_deleted |= call.method == Method::DELETE;
                        let sleep = self.retry.backoff(attempt);
                        tracing::warn!(path = %call.path, status = status.as_u16(), wait_secs = sleep.as_secs_f64(), "GitLab server error; retrying");
                        tokio::time::sleep(sleep).await;
                        continue;
                    }
                    return Err(self.status_error(call, resp).await);
                }
                Err(e) => {
                    let retryable = e.is_connect()
                        || (e.is_timeout() && call.idempotent())
                        || (e.is_request() && call.idempotent());
                    if retryable && retries_left {
                        // A connection that never opened sent nothing.
                        may_have_deleted |= call.method == Method::DELETE && !e.is_connect();
                        let sleep = self.retry.backoff(attempt);
                        tracing::warn!(path = %call.path, wait_secs = sleep.as_secs_f64(), timeout = e.is_timeout(), connect = e.is_connect(), "GitLab request failed; retrying");
                        tokio::time::sleep(sleep).await;
                        continue;
                    }
                    if e.is_timeout() {
                        return Err(Error::Timeout {
                            action: call.action,
                            resource: call.resource.clone(),
                            after: call.timeout.unwrap_or(self.timeout),
                        });
                    }
                    let message = if e.is_connect() {
                        "cannot connect to GitLab"
                    } else {
                        "the request failed"
                    };
                    return Err(Error::Backend {
                        action: call.action,
                        resource: call.resource.clone(),
                        status: None,
                        message: format!("{message} (after {attempt} attempts)"),
                        source: Some(Box::new(e.without_url())),
                    });
                }
            }
        }
    }

    async fn status_error(&self, call: &Call, resp: reqwest::Response) -> Error {
        let status = resp.status();
        let body = self.scrub(resp.text().await.unwrap_or_default());
        let message = gitlab_message(&body);
        let (action, resource) = (call.action, call.resource.clone());
        match status.as_u16() {
            401 => Error::PermissionDenied {
                action,
                resource,
                scope: call.scope.to_owned(),
                message: format!(
                    "GitLab rejected the token (HTTP 401 Unauthorized: {message}); it is missing, expired or revoked — \
                     create a personal access token and export it as GITLAB_TOKEN"
                ),
            },
            403 => {
                // GitLab lists every scope registered for the route, space-separated
                // (rack-oauth2's `Forbidden#protocol_params` joins them; lib/api/api_guard.rb
                // passes `e.scopes`): name the call's own scope when it is among them.
                let listed = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .filter(|v| {
                        v.get("error").and_then(|e| e.as_str()) == Some("insufficient_scope")
                    })
                    .and_then(|v| v.get("scope").and_then(|s| s.as_str()).map(str::to_owned));
                let scope = match listed {
                    Some(list) if list.split_whitespace().any(|s| s == call.scope) => {
                        call.scope.to_owned()
                    }
                    Some(list) if !list.trim().is_empty() => list
                        .split_whitespace()
                        .next()
                        .unwrap_or(call.scope)
                        .to_owned(),
                    _ => call.scope.to_owned(),
                };
                Error::PermissionDenied {
                    action,
                    resource,
                    scope,
                    message: format!(
                        "HTTP 403 Forbidden: {message}; the token lacks a scope or the user lacks the Maintainer/Owner role"
                    ),
                }
            }
            404 => Error::NotFound { action, resource },
            409 => Error::Conflict {
                action,
                resource,
                message,
            },
            400 | 422
                if message.contains("has already been taken")
                    || message.contains("already exists") =>
            {
                Error::AlreadyExists { action, resource }
            }
            400 | 422 => Error::InvalidInput {
                action,
                resource,
                message,
            },
            429 => Error::Throttled {
                action,
                resource,
                retry_after: None,
                retried: true,
            },
            code => Error::Backend {
                action,
                resource,
                status: Some(code),
                message: format!("HTTP {code}: {message}"),
                source: None,
            },
        }
    }

    async fn json<T: DeserializeOwned>(&self, call: Call) -> Result<T> {
        let resp = self.send(&call).await?;
        self.decode(&call, resp).await.map(|(v, _)| v)
    }

    async fn decode<T: DeserializeOwned>(
        &self,
        call: &Call,
        resp: reqwest::Response,
    ) -> Result<(T, HeaderMap)> {
        let headers = resp.headers().clone();
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| Error::Backend {
            action: call.action,
            resource: call.resource.clone(),
            status: Some(status),
            message: "the response body could not be read".into(),
            source: Some(Box::new(e.without_url())),
        })?;
        // serde_json messages can quote values (a token); report only the category and position.
        let value = serde_json::from_slice(&bytes).map_err(|e| Error::Backend {
            action: call.action,
            resource: call.resource.clone(),
            status: Some(status),
            message: format!(
                "the response is not the JSON GitLab documents ({:?} error at line {} column {})",
                e.classify(),
                e.line(),
                e.column()
            ),
            source: None,
        })?;
        Ok((value, headers))
    }

    async fn no_content(&self, call: Call) -> Result<()> {
        self.send(&call).await.map(|_| ())
    }

    fn project_path(project: &ProjectRef) -> String {
        format!("projects/{}", project.api_segment())
    }
}

fn page_of<T>(items: Vec<T>, headers: &HeaderMap, query_page: u32, per_page: u32) -> Page<T> {
    Page {
        items,
        page: header(headers, "x-page").unwrap_or(query_page),
        per_page: header(headers, "x-per-page").unwrap_or(per_page),
        // `x-next-page` is empty on the last page.
        next_page: header(headers, "x-next-page"),
        total: header(headers, "x-total"),
        total_pages: header(headers, "x-total-pages"),
    }
}

#[async_trait]
impl GitLabApi for HttpGitLab {
    async fn current_user(&self) -> Result<User> {
        self.json(
            Call::new(Method::GET, "user".into(), "get", "the token's user".into())
                .scope("read_user"),
        )
        .await
    }

    async fn version(&self) -> Result<ServerVersion> {
        self.json(
            Call::new(
                Method::GET,
                "version".into(),
                "get",
                "GitLab's version".into(),
            )
            .scope("read_api"),
        )
        .await
    }

    async fn token_info(&self) -> Result<TokenInfo> {
        self.json(Call::new(
            Method::GET,
            "personal_access_tokens/self".into(),
            "get",
            "the access token in use".into(),
        ))
        .await
    }

    async fn member(&self, scope: &MemberScope, user_id: u64) -> Result<Option<Member>> {
        let path = match scope {
            MemberScope::Project(p) => format!("{}/members/all/{user_id}", Self::project_path(p)),
            MemberScope::Group(g) => format!("groups/{}/members/all/{user_id}", encode_path(g)),
        };
        let call = Call::new(
            Method::GET,
            path,
            "get",
            format!("user {user_id} in {scope}"),
        )
        .scope("read_api");
        match self.json(call).await {
            Ok(member) => Ok(Some(member)),
            // GitLab answers 404 for a user who is not a member (and for a scope the user cannot see).
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn get_namespace(&self, path: &str) -> Result<Namespace> {
        let call = Call::new(
            Method::GET,
            format!("namespaces/{}", encode_path(path)),
            "get",
            format!("namespace {path:?}"),
        );
        self.json(call).await
    }

    async fn get_project(&self, project: &ProjectRef) -> Result<Project> {
        self.json(
            Call::new(
                Method::GET,
                Self::project_path(project),
                "get",
                project.to_string(),
            )
            .scope("read_api"),
        )
        .await
    }

    async fn create_project(&self, new: &NewProject) -> Result<Project> {
        let call = Call::new(
            Method::POST,
            "projects".into(),
            "create",
            format!("project {:?}", new.path),
        )
        .json(new)?;
        self.json(call).await
    }

    async fn delete_project(&self, project: &ProjectRef) -> Result<()> {
        self.no_content(Call::new(
            Method::DELETE,
            Self::project_path(project),
            "delete",
            project.to_string(),
        ))
        .await
    }

    async fn create_runner(&self, new: &NewRunner) -> Result<CreatedRunner> {
        let call = Call::new(
            Method::POST,
            "user/runners".into(),
            "create",
            format!(
                "runner {:?} for project {}",
                new.description, new.project_id
            ),
        )
        // `api` allows every route; `create_runner` (16.1+) only adds this one
        // (lib/api/user_runners.rb line 7), see [`crate::permissions`].
        .scope("api")
        .json(new)?;
        let runner: CreatedRunner = self.json(call).await?;
        tracing::info!(runner = runner.id, token = %runner.token, "runner created");
        Ok(runner)
    }

    async fn list_runners(&self, project: &ProjectRef) -> Result<Vec<Runner>> {
        let mut runners = Vec::new();
        let mut page = 1u32;
        loop {
            let call = Call::new(
                Method::GET,
                format!("{}/runners", Self::project_path(project)),
                "list runners of",
                project.to_string(),
            )
            .query("type", "project_type")
            .query("per_page", crate::MAX_PER_PAGE)
            .query("page", page);
            let resp = self.send(&call).await?;
            let (items, headers) = self.decode::<Vec<Runner>>(&call, resp).await?;
            runners.extend(items);
            match header::<u32>(&headers, "x-next-page") {
                Some(next) if next > page => page = next,
                _ => return Ok(runners),
            }
        }
    }

    async fn get_runner(&self, runner_id: u64) -> Result<RunnerDetails> {
        self.json(
            Call::new(
                Method::GET,
                format!("runners/{runner_id}"),
                "get",
                format!("runner {runner_id}"),
            )
            .scope("read_api"),
        )
        .await
    }

    async fn delete_runner(&self, runner_id: u64) -> Result<()> {
        self.no_content(Call::new(
            Method::DELETE,
            format!("runners/{runner_id}"),
            "delete",
            format!("runner {runner_id}"),
        ))
        .await
    }

    async fn file_exists(
        &self,
        project: &ProjectRef,
        file_path: &str,
        ref_name: &str,
    ) -> Result<bool> {
        let call = Call::new(
            Method::HEAD,
            format!(
                "{}/repository/files/{}",
                Self::project_path(project),
                encode_path(file_path)
            ),
            "check",
            format!("file {file_path:?} on {ref_name:?} of {project}"),
        )
        .query("ref", ref_name);
        match self.send(&call).await {
            Ok(_) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn get_branch(&self, project: &ProjectRef, branch: &str) -> Result<Branch> {
        self.json(
            Call::new(
                Method::GET,
                format!(
                    "{}/repository/branches/{}",
                    Self::project_path(project),
                    encode_path(branch)
                ),
                "get",
                format!("branch {branch:?} of {project}"),
            )
            .scope("read_api"),
        )
        .await
    }

    async fn delete_branch(&self, project: &ProjectRef, branch: &str) -> Result<()> {
        self.no_content(Call::new(
            Method::DELETE,
            format!(
                "{}/repository/branches/{}",
                Self::project_path(project),
                encode_path(branch)
            ),
            "delete",
            format!("branch {branch:?} of {project}"),
        ))
        .await
    }

    async fn commit_files(&self, project: &ProjectRef, commit: &NewCommit) -> Result<Commit> {
        let call = Call::new(
            Method::POST,
            format!("{}/repository/commits", Self::project_path(project)),
            "commit to",
            format!("branch {:?} of {project}", commit.branch),
        )
        .json(commit)?;
        self.json(call).await
    }

    async fn create_pipeline(&self, project: &ProjectRef, new: &NewPipeline) -> Result<Pipeline> {
        let call = Call::new(
            Method::POST,
            format!("{}/pipeline", Self::project_path(project)),
            "create",
            format!("pipeline on ref {:?} of {project}", new.ref_name),
        )
        .timeout(self.pipeline_creation_timeout)
        .json(new)?;
        self.json(call).await
    }

    async fn list_pipelines(&self, project: &ProjectRef, ref_name: &str) -> Result<Vec<Pipeline>> {
        let call = Call::new(
            Method::GET,
            format!("{}/pipelines", Self::project_path(project)),
            "list pipelines of",
            format!("ref {ref_name:?} of {project}"),
        )
        .scope("read_api")
        .query("ref", ref_name)
        .query("per_page", crate::MAX_PER_PAGE);
        self.json(call).await
    }

    async fn get_pipeline(&self, project: &ProjectRef, pipeline_id: u64) -> Result<Pipeline> {
        let call = Call::new(
            Method::GET,
            format!("{}/pipelines/{pipeline_id}", Self::project_path(project)),
            "get",
            format!("pipeline {pipeline_id} of {project}"),
        )
        .scope("read_api");
        self.json(call).await
    }

    async fn list_pipeline_jobs(
        &self,
        project: &ProjectRef,
        pipeline_id: u64,
        query: &JobsQuery,
    ) -> Result<Page<Job>> {
        let per_page = query.per_page.clamp(1, crate::MAX_PER_PAGE);
        let mut call = Call::new(
            Method::GET,
            format!(
                "{}/pipelines/{pipeline_id}/jobs",
                Self::project_path(project)
            ),
            "list jobs of",
            format!("pipeline {pipeline_id} of {project}"),
        )
        .scope("read_api")
        .query("per_page", per_page)
        .query("page", query.page.max(1));
        for s in &query.scope {
            call = call.query("scope[]", s.as_str());
        }
        let resp = self.send(&call).await?;
        let (items, headers) = self.decode::<Vec<Job>>(&call, resp).await?;
        Ok(page_of(items, &headers, query.page.max(1), per_page))
    }

    async fn list_project_jobs(
        &self,
        project: &ProjectRef,
        query: &JobsQuery,
    ) -> Result<Page<Job>> {
        // GitLab REST docs, "Jobs API → List project jobs": `GET /projects/:id/jobs`, `scope`
        // as a string or an array (`scope[]=pending`), offset pagination; newest first
        // (`user_project.builds.order(id: :desc)`, lib/api/ci/jobs.rb).
        let per_page = query.per_page.clamp(1, crate::MAX_PER_PAGE);
        let mut call = Call::new(
            Method::GET,
            format!("{}/jobs", Self::project_path(project)),
            "list jobs of",
            project.to_string(),
        )
        .scope("read_api")
        .query("per_page", per_page)
        .query("page", query.page.max(1));
        for s in &query.scope {
            call = call.query("scope[]", s.as_str());
        }
        let resp = self.send(&call).await?;
        let (items, headers) = self.decode::<Vec<Job>>(&call, resp).await?;
        Ok(page_of(items, &headers, query.page.max(1), per_page))
    }

    async fn get_job(&self, project: &ProjectRef, job_id: u64) -> Result<Job> {
        let call = Call::new(
            Method::GET,
            format!("{}/jobs/{job_id}", Self::project_path(project)),
            "get",
            format!("job {job_id} of {project}"),
        )
        .scope("read_api");
        self.json(call).await
    }

    async fn cancel_pipeline(&self, project: &ProjectRef, pipeline_id: u64) -> Result<Pipeline> {
        let call = Call::new(
            Method::POST,
            format!(
                "{}/pipelines/{pipeline_id}/cancel",
                Self::project_path(project)
            ),
            "cancel",
            format!("pipeline {pipeline_id} of {project}"),
        );
        self.json(call).await
    }

    async fn job_trace(&self, project: &ProjectRef, job_id: u64) -> Result<String> {
        // GitLab REST docs, "Jobs API → Get a log file": `GET /projects/:id/jobs/:job_id/trace`,
        // `text/plain`, the raw log (`body trace`, lib/api/ci/jobs.rb). Read in chunks up to the
        // bound, so a runaway log costs at most that much memory.
        let call = Call::new(
            Method::GET,
            format!("{}/jobs/{job_id}/trace", Self::project_path(project)),
            "get the log of",
            format!("job {job_id} of {project}"),
        )
        .scope("read_api");
        let mut resp = self.send(&call).await?;
        let mut body: Vec<u8> = Vec::new();
        while body.len() < crate::MAX_TRACE_BYTES {
            match resp.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => {
                    return Err(Error::Backend {
                        action: call.action,
                        resource: call.resource.clone(),
                        status: None,
                        message: "the job log could not be read".into(),
                        source: Some(Box::new(e.without_url())),
                    });
                }
            }
        }
        body.truncate(crate::MAX_TRACE_BYTES);
        Ok(self.scrub(String::from_utf8_lossy(&body).into_owned()))
    }

    fn requests_sent(&self) -> u64 {
        self.requests_made()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_gitlab_url("https://gitlab.com", false)
                .unwrap()
                .as_str(),
            "https://gitlab.com/api/v4/"
        );
        assert_eq!(
            parse_gitlab_url("https://x.org/gl/api/v4/", false)
                .unwrap()
                .as_str(),
            "https://x.org/gl/api/v4/"
        );
        assert!(parse_gitlab_url("http://127.0.0.1:8080", false).is_ok());
        assert!(parse_gitlab_url("http://[::1]:8080", false).is_ok());
        let e = parse_gitlab_url("gitlab.com", false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no scheme") && e.contains("https://gitlab.com"),
            "{e}"
        );
        assert!(parse_gitlab_url("http://gitlab.example.com", false).is_err());
        assert!(parse_gitlab_url("http://gitlab.example.com", true).is_ok());
        assert!(parse_gitlab_url("ftp://gitlab.example.com", true).is_err());
        assert!(parse_gitlab_url("https://user:pw@gitlab.example.com", true).is_err());
    }

    #[test]
    fn messages() {
        assert_eq!(
            gitlab_message(r#"{"message":"401 Unauthorized"}"#),
            "401 Unauthorized"
        );
        assert_eq!(
            gitlab_message(r#"{"message":{"path":["has already been taken"]}}"#),
            "path has already been taken"
        );
        assert_eq!(gitlab_message("Retry later\n"), "Retry later");
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(throttle_wait(&h), Some(Duration::from_secs(7)));
        let mut h = HeaderMap::new();
        let reset = jiff::Timestamp::now().as_second() + 30;
        h.insert(
            "ratelimit-reset",
            HeaderValue::from_str(&reset.to_string()).unwrap(),
        );
        let w = throttle_wait(&h).unwrap();
        assert!(
            w > Duration::from_secs(25) && w <= Duration::from_secs(30),
            "{w:?}"
        );
    }
}
