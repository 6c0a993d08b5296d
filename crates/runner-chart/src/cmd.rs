//! One helm invocation: its purpose, captured output, a time bound, and stderr mapped to typed errors.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::error::{Error, Result};

/// Lines of stderr kept in errors.
const STDERR_TAIL_LINES: usize = 15;
/// Characters of stderr kept in errors.
const STDERR_TAIL_CHARS: usize = 2000;

/// A helm command about to run. Every command says why it runs; the purpose appears in logs and errors.
#[derive(Debug)]
pub(crate) struct HelmCmd {
    program: PathBuf,
    purpose: String,
    resource: String,
    action: String,
    args: Vec<OsString>,
    timeout: Duration,
    /// The `--timeout` given to helm itself, reported when helm says it timed out.
    helm_timeout: Duration,
}

impl HelmCmd {
    /// A command running `program` for `purpose` (e.g. `install or upgrade helm release "r" in namespace "n"`).
    pub(crate) fn new(program: &Path, purpose: impl Into<String>) -> Self {
        Self {
            program: program.to_path_buf(),
            purpose: purpose.into(),
            resource: String::new(),
            action: String::new(),
            args: Vec::new(),
            timeout: Duration::from_secs(120),
            helm_timeout: Duration::from_secs(120),
        }
    }

    /// The resource and action named in categorised errors.
    pub(crate) fn about(mut self, resource: impl Into<String>, action: impl Into<String>) -> Self {
        self.resource = resource.into();
        self.action = action.into();
        self
    }

    /// Appends arguments.
    pub(crate) fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Bounds the process: helm's own `--timeout` plus a grace period for it to report.
    pub(crate) fn bounded(mut self, helm_timeout: Duration) -> Self {
        self.helm_timeout = helm_timeout;
        self.timeout = helm_timeout + Duration::from_secs(60);
        self
    }

    /// Runs the command and returns its stdout.
    pub(crate) async fn run(self) -> Result<String> {
        let program = self.program.display().to_string();
        // Defence in depth: nothing token-shaped ever goes on a command line.
        if self
            .args
            .iter()
            .any(|a| crate::secret::looks_like_token(&a.to_string_lossy()))
        {
            return Err(Error::invalid(
                "helm arguments",
                format!(
                    "refusing to {}: an argument looks like a runner token",
                    self.purpose
                ),
                "tokens belong in the Kubernetes Secret, never on helm's command line",
            ));
        }
        tracing::info!(purpose = %self.purpose, "running helm");
        tracing::debug!(program = %program, args = ?self.args, "helm command line");
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // helm inherits our environment, which may hold the token (GLRUNNER_RUNNER_TOKEN) or other
        // credentials helm never needs: withhold them.
        for name in secret_env_names(std::env::vars_os()) {
            command.env_remove(name);
        }
        let child = command.spawn().map_err(|e| Error::Command {
            purpose: self.purpose.clone(),
            program: program.clone(),
            status: "did not start".into(),
            stderr_tail: format!("{e}; install helm 3, or point --helm / GLRUNNER_HELM at it"),
        })?;
        let output = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => {
                return Err(Error::Command {
                    purpose: self.purpose,
                    program,
                    status: "could not be waited for".into(),
                    stderr_tail: e.to_string(),
                });
            }
            Err(_) => {
                tracing::warn!(purpose = %self.purpose, "helm did not finish in time; killed");
                return Err(Error::Timeout {
                    resource: self.resource,
                    action: self.action,
                    waited: self.timeout,
                });
            }
        };
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            tracing::debug!(purpose = %self.purpose, "helm succeeded");
            return Ok(stdout);
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail = redact(&tail(&stderr));
        let status = match output.status.code() {
            Some(code) => format!("exit status {code}"),
            None => "killed by a signal".to_string(),
        };
        tracing::warn!(purpose = %self.purpose, %status, stderr = %tail, "helm failed");
        Err(classify(
            self.purpose,
            program,
            status,
            tail,
            self.resource,
            self.action,
            self.helm_timeout,
        ))
    }
}

/// Environment variables that hold credentials helm has no use for.
const SECRET_ENV: [&str; 8] = [
    "GLRUNNER_RUNNER_TOKEN",
    "GITLAB_TOKEN",
    "GITLAB_PRIVATE_TOKEN",
    "CI_JOB_TOKEN",
    "CI_SERVER_TOKEN",
    "RUNNER_TOKEN",
    "REGISTRATION_TOKEN",
    "CI_REGISTRY_PASSWORD",
];

/// The names of variables to withhold from helm: known credential names, and any whose value
/// looks like a runner or GitLab token.
pub(crate) fn secret_env_names(vars: impl Iterator<Item = (OsString, OsString)>) -> Vec<OsString> {
    vars.filter(|(name, value)| {
        let name = name.to_string_lossy();
        let value = value.to_string_lossy();
        SECRET_ENV.contains(&name.as_ref())
            || crate::secret::looks_like_token(&value)
            || value.contains("glpat-")
    })
    .map(|(name, _)| name)
    .collect()
}

/// Maps helm's stderr to a stable error category.
fn classify(
    purpose: String,
    program: String,
    status: String,
    stderr_tail: String,
    resource: String,
    action: String,
    helm_timeout: Duration,
) -> Error {
    let lower = stderr_tail.to_lowercase();
    let has = |needle: &str| lower.contains(needle);
    if has("release: not found") || has("has no deployed releases") {
        Error::NotFound { resource, action }
    } else if has("cannot re-use a name that is still in use") {
        Error::AlreadyExists { resource, action }
    } else if has("another operation (install/upgrade/rollback) is in progress")
        || has("the object has been modified")
    {
        Error::Conflict {
            resource,
            action,
            detail: stderr_tail,
        }
    } else if has("timed out waiting for the condition") || has("context deadline exceeded") {
        Error::Timeout {
            resource,
            action,
            waited: helm_timeout,
        }
    } else if has("forbidden") || has("unauthorized") {
        Error::PermissionDenied {
            resource,
            action,
            detail: stderr_tail,
        }
    } else if has("too many requests") || has("rate limit") {
        Error::Throttled {
            resource,
            action,
            retry_after: None,
        }
    } else {
        Error::Command {
            purpose,
            program,
            status,
            stderr_tail,
        }
    }
}

/// The last lines of `stderr`, bounded in size.
fn tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(STDERR_TAIL_LINES);
    let mut out = lines[start..].join("\n");
    if out.len() > STDERR_TAIL_CHARS {
        let mut cut = out.len() - STDERR_TAIL_CHARS;
        while !out.is_char_boundary(cut) {
            cut += 1;
        }
        out = format!("...{}", &out[cut..]);
    }
    if out.is_empty() {
        "(no stderr)".to_string()
    } else {
        out
    }
}

/// Replaces anything token-shaped with `glrt-[REDACTED]`.
pub(crate) fn redact(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(crate::secret::TOKEN_PREFIX) {
        out.push_str(&rest[..i]);
        out.push_str("glrt-[REDACTED]");
        rest = &rest[i + crate::secret::TOKEN_PREFIX.len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(rest.len());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(stderr: &str) -> Error {
        classify(
            "p".into(),
            "helm".into(),
            "exit status 1".into(),
            stderr.into(),
            "r".into(),
            "a".into(),
            Duration::from_secs(5),
        )
    }

    #[test]
    fn stderr_is_categorised() {
        use crate::ErrorKind::*;
        assert_eq!(
            err("Error: uninstall: Release not loaded: x: release: not found").kind(),
            NotFound
        );
        assert_eq!(
            err("Error: UPGRADE FAILED: \"x\" has no deployed releases").kind(),
            NotFound
        );
        assert_eq!(
            err("Error: INSTALLATION FAILED: cannot re-use a name that is still in use").kind(),
            AlreadyExists
        );
        assert_eq!(
            err(
                "Error: UPGRADE FAILED: another operation (install/upgrade/rollback) is in progress"
            )
            .kind(),
            Conflict
        );
        assert_eq!(
            err("Error: UPGRADE FAILED: timed out waiting for the condition").kind(),
            Timeout
        );
        assert_eq!(
            err("Error: secrets is forbidden: User \"x\" cannot list").kind(),
            PermissionDenied
        );
        assert_eq!(err("Error: 429 Too Many Requests").kind(), Throttled);
        let e =
            err("Error: chart \"gitlab-runner\" version \"9.9.9\" not found in gitlab repository");
        assert_eq!(e.kind(), Command);
        assert!(
            e.to_string()
                .contains("failed to p (exit status 1): Error: chart"),
            "{e}"
        );
    }

    #[test]
    fn credentials_are_withheld_from_helm() {
        let vars = [
            ("PATH", "/usr/bin"),
            ("GLRUNNER_RUNNER_TOKEN", "x"),
            ("OTHER", "glrt-abc"),
            ("PAT", "glpat-1"),
            ("HOME", "/root"),
        ];
        let names = secret_env_names(
            vars.iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v))),
        );
        assert_eq!(names, ["GLRUNNER_RUNNER_TOKEN", "OTHER", "PAT"]);
    }

    #[test]
    fn tail_and_redaction() {
        let long: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let t = tail(&long);
        assert!(t.starts_with("line 85") && t.ends_with("line 99"), "{t}");
        assert_eq!(tail(""), "(no stderr)");
        assert_eq!(
            redact("token glrt-abc_DEF-1 here, glrt-x"),
            "token glrt-[REDACTED] here, glrt-[REDACTED]"
        );
    }
}
