//! The crate's public error type: stable categories, each message naming the resource and the action.

use std::time::Duration;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Boxed source error from a backend.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors from planning, applying and tearing down infrastructure.
///
/// Categories are stable; match on them (`Error::NotFound { .. }`), never on message text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A field of the input is invalid. Nothing was created or changed.
    #[error("invalid {field}: {message}")]
    InvalidInput {
        /// The field, as the user wrote it (`--vpc-cidr`, `stack`, ...).
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The resource does not exist (deletes treat this as done).
    #[error("{action}: {resource} not found")]
    NotFound {
        /// What was being attempted.
        action: String,
        /// The resource, e.g. `subnet subnet-0abc`.
        resource: String,
    },
    /// The resource already exists.
    #[error("{action}: {resource} already exists")]
    AlreadyExists {
        /// What was being attempted.
        action: String,
        /// The resource.
        resource: String,
    },
    /// Another operation holds the resource (EKS `ResourceInUseException`, a second run holding
    /// the state lock). Usually worth waiting for and retrying.
    #[error("{action}: {resource} is busy: {message}")]
    Conflict {
        /// What was being attempted.
        action: String,
        /// The resource.
        resource: String,
        /// The backend's explanation.
        message: String,
    },
    /// The resource still has dependents (EC2 `DependencyViolation`, IAM `DeleteConflict`).
    #[error("{action}: {resource} still has dependents: {message}")]
    DependencyViolation {
        /// What was being attempted.
        action: String,
        /// The resource.
        resource: String,
        /// The backend's explanation.
        message: String,
    },
    /// The backend throttled us and retries were exhausted.
    #[error("{action}: throttled by the backend")]
    Throttled {
        /// What was being attempted.
        action: String,
    },
    /// A bounded wait ran out.
    #[error("timed out after {waited:?} waiting for {waiting_for}")]
    Timeout {
        /// What we were waiting for, e.g. `EKS cluster glrunner to become ACTIVE`.
        waiting_for: String,
        /// How long we waited.
        waited: Duration,
    },
    /// The caller lacks a permission.
    #[error("{action}: permission denied: {message}")]
    PermissionDenied {
        /// What was being attempted.
        action: String,
        /// The backend's explanation.
        message: String,
    },
    /// A resource reached a failed state (NAT `failed`, cluster `FAILED`, ...).
    #[error("{resource} failed: {message}")]
    Failed {
        /// The resource.
        resource: String,
        /// The reason reported by the backend.
        message: String,
    },
    /// Teardown finished but resources tagged with the stack remain.
    #[error("teardown left {} resource(s) behind: {}", .0.len(), .0.join(", "))]
    Leftovers(Vec<String>),
    /// AWS has not yet propagated something this run just created (IAM eventual consistency:
    /// EKS cannot assume a role created seconds ago). Retried for a bounded propagation window.
    #[error("{action}: {resource} is not usable yet (AWS eventual consistency): {message}")]
    Propagating {
        /// What was being attempted.
        action: String,
        /// The resource.
        resource: String,
        /// The backend's explanation.
        message: String,
    },
    /// EKS refused the availability zones of the cluster's subnets
    /// (`UnsupportedAvailabilityZoneException`); `valid_zones` are the ones it accepts.
    #[error("{action}: EKS does not support the chosen availability zones: {message}")]
    UnsupportedZones {
        /// What was being attempted.
        action: String,
        /// The backend's explanation.
        message: String,
        /// Zones EKS named as usable.
        valid_zones: Vec<String>,
    },
    /// Local state file trouble (I/O, lock, parse).
    #[error("state file {path}: {message}")]
    State {
        /// The state file path.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A stop was requested (SIGINT/SIGTERM): calls in flight finished, nothing new started.
    /// Everything done so far is tagged and recorded, so running the same command again resumes.
    #[error("interrupted during {during}: {progress}; run the same command again to continue")]
    Interrupted {
        /// What was stopped, e.g. `apply of stack glrunner`.
        during: String,
        /// What was done before the stop.
        progress: String,
    },
    /// The service failed transiently and the SDK's own retries did not outlast it: an HTTP
    /// 5xx (`InternalError`, `ServiceUnavailable`, `ServerException`...) or a transport failure
    /// (connection, timeout). A read is safe to repeat later; a create may have taken effect.
    #[error("{action}: {backend} unavailable (transient): {source}")]
    Unavailable {
        /// What was being attempted.
        action: String,
        /// Which backend (`ec2`, `eks`, `iam`, `memory`).
        backend: &'static str,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// Any other backend failure.
    #[error("{action}: {backend} error: {source}")]
    Backend {
        /// What was being attempted.
        action: String,
        /// Which backend (`ec2`, `eks`, `iam`, `sts`, `memory`).
        backend: &'static str,
        /// The underlying error.
        #[source]
        source: BoxError,
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

    /// True for [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// True for [`Error::AlreadyExists`].
    pub fn is_already_exists(&self) -> bool {
        matches!(self, Self::AlreadyExists { .. })
    }

    /// True for errors worth retrying after a pause: busy resources, throttling, dependents that
    /// are still going away.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Conflict { .. } | Self::Throttled { .. } | Self::DependencyViolation { .. }
        )
    }

    /// Whether the error is transient: throttled, busy, or the service unavailable for a
    /// while ([`Error::Unavailable`]). Waits, which only read, keep polling through these
    /// within their bound; creates do not retry [`Error::Unavailable`] (it may have taken
    /// effect, and the SDK already retried it).
    pub fn is_transient(&self) -> bool {
        self.is_retryable() || matches!(self, Self::Unavailable { .. })
    }
}
