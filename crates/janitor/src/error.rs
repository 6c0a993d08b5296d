//! The crate's public error type: stable categories, each message naming the resource and the action.

use std::time::Duration;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Boxed source error from a backend.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors from listing, inspecting and deleting pods, and from the optional GitLab cross-check.
///
/// Categories are stable; match on them (`Error::NotFound { .. }`), never on message text.
/// `action` is what was attempted (`delete pod`), `resource` names the object
/// (`pod gitlab-runner/runner-abc-project-1-concurrent-0-x1y2z3w4`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A field of the input is invalid. Nothing was listed, changed or deleted.
    #[error("invalid {field}: {message}")]
    InvalidInput {
        /// The field, as the user wrote it (`--namespace`, `--grace`, `context`...).
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The resource does not exist (the reaper treats this as "already gone").
    #[error("{action} {resource}: not found")]
    NotFound {
        /// What was being attempted.
        action: String,
        /// The resource.
        resource: String,
    },
    /// The resource already exists.
    #[error("{action} {resource}: already exists")]
    AlreadyExists {
        /// What was being attempted.
        action: String,
        /// The resource.
        resource: String,
    },
    /// A precondition failed (HTTP 409): the pod was replaced by another pod with the same name
    /// (UID precondition) or changed under us. Nothing was deleted.
    #[error("{action} {resource}: conflict: {message}")]
    Conflict {
        /// What was being attempted.
        action: String,
        /// The resource.
        resource: String,
        /// The backend's explanation.
        message: String,
    },
    /// The backend throttled us (HTTP 429) and retries were exhausted.
    #[error("{action} {resource}: throttled by the backend")]
    Throttled {
        /// What was being attempted.
        action: String,
        /// The resource.
        resource: String,
    },
    /// A bounded wait ran out, or the API server did not answer in time.
    #[error("{action}: timed out after {waited:?}")]
    Timeout {
        /// What was being attempted or waited for.
        action: String,
        /// How long we waited.
        waited: Duration,
    },
    /// The caller lacks a permission (HTTP 401/403).
    #[error("{action} {resource}: permission denied: {message}")]
    PermissionDenied {
        /// What was being attempted.
        action: String,
        /// The resource.
        resource: String,
        /// The backend's explanation; `reap rbac` prints the Role the janitor needs.
        message: String,
    },
    /// Any other backend failure (connection refused, TLS, unexpected status, bad response).
    #[error("{action} {resource}: {backend} error: {message}")]
    Backend {
        /// The backend, e.g. `kubernetes`, `memory`, `gitlab`.
        backend: &'static str,
        /// What was being attempted.
        action: String,
        /// The resource.
        resource: String,
        /// A short description of the failure.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidInput {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A stable, machine-readable name of the category (`not_found`, `conflict`...), used in reports.
    pub fn category(&self) -> &'static str {
        match self {
            Self::InvalidInput { .. } => "invalid_input",
            Self::NotFound { .. } => "not_found",
            Self::AlreadyExists { .. } => "already_exists",
            Self::Conflict { .. } => "conflict",
            Self::Throttled { .. } => "throttled",
            Self::Timeout { .. } => "timeout",
            Self::PermissionDenied { .. } => "permission_denied",
            Self::Backend { .. } => "backend",
        }
    }

    /// Whether retrying the same call later may succeed (throttling, timeouts, transient backend errors).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Throttled { .. } | Self::Timeout { .. } | Self::Backend { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_action_and_resource() {
        let e = Error::Conflict {
            action: "delete pod".into(),
            resource: "pod ns/p (uid 1)".into(),
            message: "uid precondition failed".into(),
        };
        let text = e.to_string();
        assert!(
            text.contains("delete pod") && text.contains("pod ns/p"),
            "{text}"
        );
        assert_eq!(e.category(), "conflict");
    }
}
