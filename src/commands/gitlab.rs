//! The GitLab client the examples build for `--backend aws`: the URL from a flag or the
//! environment, the token from `GITLAB_TOKEN` only (never a flag, never printed).

use glrunner_gitlab_client::http::parse_gitlab_url;
use glrunner_gitlab_client::{AuthScheme, HttpGitLab, SecretToken};

use crate::cli::CliError;

/// Where and how to reach GitLab, as the command line gave it.
#[derive(Debug, Clone, Copy)]
pub struct GitLabTarget<'a> {
    /// `--gitlab-url`; without it `GITLAB_URL`, then `CI_SERVER_URL`.
    pub url: Option<&'a str>,
    /// Allow plain `http://` to a non-loopback GitLab.
    pub allow_insecure_http: bool,
    /// How the token is sent (`auto`, `private-token`, `bearer`, `job-token`).
    pub auth: &'a str,
    /// The token scope the command needs, named when `GITLAB_TOKEN` is missing (`api`, `read_api`).
    pub scope: &'a str,
}

impl<'a> GitLabTarget<'a> {
    /// `url` with the defaults: https only (loopback excepted), the auth scheme from the
    /// token's shape, scope `api`.
    pub fn new(url: Option<&'a str>) -> Self {
        Self {
            url,
            allow_insecure_http: false,
            auth: "auto",
            scope: "api",
        }
    }
}

/// The GitLab URL: `flag`, else `GITLAB_URL`, else `CI_SERVER_URL` (set in every GitLab CI job).
pub fn resolve_url(flag: Option<&str>) -> Option<String> {
    flag.map(str::to_owned)
        .or_else(|| std::env::var("GITLAB_URL").ok())
        .or_else(|| std::env::var("CI_SERVER_URL").ok())
}

/// The GitLab client, checked without sending anything: a bad URL, a missing `GITLAB_TOKEN`
/// or a bad auth scheme is invalid input (exit 2) naming the flag or the variable. With
/// `dry_run`, only the URL is checked (a dry run needs no token) and `None` is returned.
pub fn http_client(
    target: &GitLabTarget<'_>,
    dry_run: bool,
) -> Result<Option<HttpGitLab>, CliError> {
    let url = resolve_url(target.url).ok_or_else(|| {
        CliError::invalid(
            "no GitLab URL: pass --gitlab-url https://gitlab.example.com or set GITLAB_URL",
        )
    })?;
    parse_gitlab_url(&url, target.allow_insecure_http).map_err(|e| {
        let hint = if url.starts_with("http://") {
            " (or pass --allow-insecure-http)"
        } else {
            ""
        };
        CliError::invalid(format!("--gitlab-url: {e}{hint}"))
    })?;
    if dry_run {
        return Ok(None);
    }
    let token = std::env::var("GITLAB_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| {
            CliError::invalid(format!(
                "GITLAB_TOKEN is not set: export a personal access token with the `{}` scope (never pass it as a flag)",
                target.scope
            ))
        })?;
    let auth = AuthScheme::parse(target.auth)
        .map_err(|e| CliError::invalid(format!("--gitlab-auth: {e}")))?;
    HttpGitLab::builder()
        .with_url(url)
        .with_token(SecretToken::new(token))
        .with_auth(auth)
        .allow_insecure_http(target.allow_insecure_http)
        .build()
        .map(Some)
        .map_err(|e| CliError::invalid(e.to_string()))
}
