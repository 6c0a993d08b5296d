//! The crate's public error: stable categories, each message naming the action and the resource.

use std::time::Duration;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Boxed error source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong talking to GitLab (or to the in-memory stand-in).
///
/// Variants are stable categories; match on them, not on message text. Every message says
/// which action was attempted on which resource (`"create pipeline on project 42"`). The
/// source, when there is one, is attached with `#[source]` and not repeated in the message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The resource does not exist (HTTP 404).
    #[error("cannot {action}: {resource} was not found")]
    NotFound {
        /// What was attempted, e.g. `"get pipeline"`.
        action: &'static str,
        /// Which resource, e.g. `"pipeline 7 of project 42"`.
        resource: String,
    },
    /// The resource already exists (HTTP 400 "has already been taken", 409).
    #[error("cannot {action}: {resource} already exists")]
    AlreadyExists {
        /// What was attempted.
        action: &'static str,
        /// Which resource.
        resource: String,
    },
    /// The request conflicts with the resource's current state.
    #[error("cannot {action} {resource}: conflict: {message}")]
    Conflict {
        /// What was attempted.
        action: &'static str,
        /// Which resource.
        resource: String,
        /// GitLab's explanation.
        message: String,
    },
    /// GitLab throttled us (HTTP 429) and we gave up waiting.
    #[error(
        "cannot {action} {resource}: throttled by GitLab (HTTP 429 Too Many Requests){}",
        retry_after.map(|d| format!("; retry after {} s", d.as_secs_f64().ceil())).unwrap_or_default()
    )]
    Throttled {
        /// What was attempted.
        action: &'static str,
        /// Which resource.
        resource: String,
        /// How long GitLab asked us to wait (`Retry-After` / `RateLimit-Reset`).
        retry_after: Option<Duration>,
        /// True when the transport already waited and retried (the HTTP client's policy) or
        /// judged the wait too long: the one retry layer has given up, so callers must not
        /// retry again. False when a backend reports GitLab's 429 as it came (the in-memory
        /// GitLab), leaving the wait to the caller.
        retried: bool,
    },
    /// An operation or a wait did not finish in time.
    #[error("timed out after {} s trying to {action} {resource}", after.as_secs_f64())]
    Timeout {
        /// What was attempted.
        action: &'static str,
        /// Which resource.
        resource: String,
        /// The bound that was exceeded.
        after: Duration,
    },
    /// The input was rejected (by us before sending, or by GitLab with HTTP 400/422).
    #[error("invalid input to {action} {resource}: {message}")]
    InvalidInput {
        /// What was attempted.
        action: &'static str,
        /// Which resource or field.
        resource: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The token was rejected (401) or lacks a scope or role (403).
    #[error(
        "permission denied to {action} {resource}: {message} (the token needs the `{scope}` scope)"
    )]
    PermissionDenied {
        /// What was attempted.
        action: &'static str,
        /// Which resource.
        resource: String,
        /// The token scope the action needs, e.g. `api` or `create_runner`.
        scope: String,
        /// What GitLab said, and what to do.
        message: String,
    },
    /// Anything else: 5xx after retries, connection failures, undecodable responses.
    #[error("GitLab failed to {action} {resource}: {message}")]
    Backend {
        /// What was attempted.
        action: &'static str,
        /// Which resource.
        resource: String,
        /// HTTP status, when there was a response.
        status: Option<u16>,
        /// What went wrong.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
}

impl Error {
    /// The `Retry-After` hint of a [`Error::Throttled`] error.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Throttled { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// True when GitLab refused the pipeline's variables: GitLab.com, since 17.7, refuses
    /// pipeline variables by default in new namespaces ("Insufficient permissions to set
    /// pipeline variables").
    pub fn is_pipeline_variables_refused(&self) -> bool {
        match self {
            Error::InvalidInput { message, .. }
            | Error::PermissionDenied { message, .. }
            | Error::Conflict { message, .. } => {
                message.contains("Insufficient permissions to set pipeline variables")
            }
            _ => false,
        }
    }

    /// True when GitLab refused the pipeline for its size (the jobs-per-pipeline limit).
    pub fn is_pipeline_size_exceeded(&self) -> bool {
        matches!(self, Error::InvalidInput { message, .. } if message.contains("number of jobs has exceeded the limit"))
    }

    /// True when GitLab refused the pipeline because the project's active pipelines hold too
    /// many jobs (`Chain::Limit::ActiveJobs`, see [`crate::limits`]).
    pub fn is_active_jobs_limit_exceeded(&self) -> bool {
        matches!(self, Error::InvalidInput { message, .. } if message.contains("exceeded the allowed number of jobs in active pipelines"))
    }

    /// Whether the effect of a failed call may still appear *after* the answer came: GitLab
    /// did not finish the request when the client heard back. True for a timeout or a
    /// transport failure (Puma goes on with a request whose client left) and for a proxy's
    /// 502/503/504 (Workhorse or a load balancer gave up while Rails still works); false for
    /// GitLab's own 500 (the request ended with an exception: its effect is final) and for a
    /// 2xx whose body could not be read. GitLab ends such a request at its request timeout
    /// (60 s by default: doc/administration/operations/puma.md, "Change the worker timeout";
    /// GitLab.com keeps it: doc/user/gitlab_com/_index.md, "Puma").
    pub fn effect_may_follow_late(&self) -> bool {
        match self {
            Error::Timeout { .. } => true,
            Error::Backend { status, .. } => status.is_none_or(|s| matches!(s, 502..=504)),
            _ => false,
        }
    }

    /// Whether GitLab may have carried out a failed call although no success came back: a 5xx
    /// answer (a proxy's 502 after GitLab acted), a timeout, a transport failure, or a success
    /// whose body could not be read. A POST that
    /// failed so is never sent again blindly: check whether it took effect first (the
    /// `*_checked` helpers of [`crate::GitLabApiExt`]).
    pub fn may_have_taken_effect(&self) -> bool {
        match self {
            Error::Timeout { .. } => true,
            // 2xx: GitLab acted, but its answer could not be read.
            Error::Backend { status, .. } => {
                status.is_none_or(|s| s >= 500 || (200..300).contains(&s))
            }
            _ => false,
        }
    }

    /// True for [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    pub(crate) fn not_found(action: &'static str, resource: impl Into<String>) -> Self {
        Error::NotFound {
            action,
            resource: resource.into(),
        }
    }

    pub(crate) fn invalid(
        action: &'static str,
        resource: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::InvalidInput {
            action,
            resource: resource.into(),
            message: message.into(),
        }
    }

    pub(crate) fn backend(
        action: &'static str,
        resource: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Backend {
            action,
            resource: resource.into(),
            status: None,
            message: message.into(),
            source: None,
        }
    }
}
