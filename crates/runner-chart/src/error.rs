//! The crate's public error: stable categories, each naming the resource and the action.

use std::fmt;
use std::time::Duration;

/// One problem found by validation: which field, what is wrong with it, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Invalid {
    /// The field or flag at fault, e.g. `concurrent` or `gitlab_url`.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
    /// What to do instead.
    pub fix: String,
}

impl Invalid {
    /// Builds one validation problem.
    pub fn new(
        field: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (fix: {})", self.field, self.problem, self.fix)
    }
}

/// A stable, matchable category of [`Error`], for callers that map errors to exit codes or retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Input was rejected before anything ran.
    InvalidInput,
    /// The resource does not exist.
    NotFound,
    /// The resource already exists.
    AlreadyExists,
    /// Another operation holds the resource, or it changed underneath us.
    Conflict,
    /// The server asked us to slow down.
    Throttled,
    /// A bounded wait ran out.
    Timeout,
    /// The credentials lack a permission.
    PermissionDenied,
    /// An external command (helm) failed in a way not covered above.
    Command,
    /// A backend failed in a way not covered above.
    Backend,
}

/// Every error this crate returns. Messages name the resource and the action.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input was rejected by validation; nothing was created, changed or deleted.
    #[error("invalid input: {}", join(issues))]
    InvalidInput {
        /// Every problem found, each naming its field and the fix.
        issues: Vec<Invalid>,
    },
    /// The resource does not exist.
    #[error("cannot {action} {resource}: not found")]
    NotFound {
        /// The resource, e.g. `helm release "runner-1" in namespace "gitlab-runner"`.
        resource: String,
        /// The action attempted, e.g. `upgrade`.
        action: String,
    },
    /// The resource already exists and may not be replaced.
    #[error("cannot {action} {resource}: it already exists")]
    AlreadyExists {
        /// The resource.
        resource: String,
        /// The action attempted.
        action: String,
    },
    /// Another operation is in progress on the resource, or it changed underneath us.
    #[error("cannot {action} {resource}: conflict: {detail}")]
    Conflict {
        /// The resource.
        resource: String,
        /// The action attempted.
        action: String,
        /// What conflicted.
        detail: String,
    },
    /// The server throttled the request.
    #[error("cannot {action} {resource}: throttled by the server{}", retry_hint(*retry_after))]
    Throttled {
        /// The resource.
        resource: String,
        /// The action attempted.
        action: String,
        /// How long the server asked us to wait, when it said.
        retry_after: Option<Duration>,
    },
    /// A bounded wait ran out.
    #[error("timed out after {}s waiting to {action} {resource}", waited.as_secs())]
    Timeout {
        /// The resource.
        resource: String,
        /// The action attempted.
        action: String,
        /// How long we waited.
        waited: Duration,
    },
    /// The credentials in use lack a permission.
    #[error("cannot {action} {resource}: permission denied: {detail}")]
    PermissionDenied {
        /// The resource.
        resource: String,
        /// The action attempted.
        action: String,
        /// What the server said.
        detail: String,
    },
    /// An external command failed.
    #[error("{program} failed to {purpose} ({status}): {stderr_tail}")]
    Command {
        /// Why the command ran, e.g. `install or upgrade helm release "runner-1" in namespace "ci"`.
        purpose: String,
        /// The program, e.g. `/usr/local/bin/helm`.
        program: String,
        /// Exit status, or why it did not start.
        status: String,
        /// The last lines of its standard error.
        stderr_tail: String,
    },
    /// A backend failed in a way that fits no other category.
    #[error("cannot {action} {resource} ({backend} backend): {source}")]
    Backend {
        /// Which backend: `kube`, `helm`, `memory`.
        backend: &'static str,
        /// The resource.
        resource: String,
        /// The action attempted.
        action: String,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn join(issues: &[Invalid]) -> String {
    issues
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn retry_hint(retry_after: Option<Duration>) -> String {
    retry_after
        .map(|d| format!(", retry after {}s", d.as_secs()))
        .unwrap_or_default()
}

impl Error {
    /// One validation problem as an error.
    pub fn invalid(
        field: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::InvalidInput {
            issues: vec![Invalid::new(field, problem, fix)],
        }
    }

    /// Several validation problems as one error; `Ok(())` when there are none.
    pub fn check(issues: Vec<Invalid>) -> Result<()> {
        if issues.is_empty() {
            Ok(())
        } else {
            Err(Self::InvalidInput { issues })
        }
    }

    /// The stable category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidInput { .. } => ErrorKind::InvalidInput,
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            Self::Conflict { .. } => ErrorKind::Conflict,
            Self::Throttled { .. } => ErrorKind::Throttled,
            Self::Timeout { .. } => ErrorKind::Timeout,
            Self::PermissionDenied { .. } => ErrorKind::PermissionDenied,
            Self::Command { .. } => ErrorKind::Command,
            Self::Backend { .. } => ErrorKind::Backend,
        }
    }

    /// The validation problems, when this is [`Error::InvalidInput`].
    pub fn issues(&self) -> &[Invalid] {
        match self {
            Self::InvalidInput { issues } => issues,
            _ => &[],
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_field_resource_and_action() {
        let e = Error::invalid(
            "concurrent",
            "must be at least 1",
            "pass --concurrent 1 or more",
        );
        assert_eq!(
            e.to_string(),
            "invalid input: concurrent: must be at least 1 (fix: pass --concurrent 1 or more)"
        );
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let e = Error::NotFound {
            resource: "helm release \"r\" in namespace \"n\"".into(),
            action: "upgrade".into(),
        };
        assert_eq!(
            e.to_string(),
            "cannot upgrade helm release \"r\" in namespace \"n\": not found"
        );
        let e = Error::Throttled {
            resource: "x".into(),
            action: "get".into(),
            retry_after: Some(Duration::from_secs(3)),
        };
        assert!(e.to_string().ends_with("retry after 3s"));
        assert!(Error::check(vec![]).is_ok());
    }
}
