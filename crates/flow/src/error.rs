//! The flow's error: invalid input (nothing was done), a failed phase, or a backend out of reach.

use std::fmt;

use crate::Phase;

/// The flow's error: invalid input (nothing was done) or a phase that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Invalid input: nothing was created, changed or deleted.
    #[error("invalid {field}: {message}")]
    InvalidInput {
        /// The field or flag.
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A phase failed.
    #[error("{phase}: {message}")]
    Phase {
        /// The phase.
        phase: Phase,
        /// The category of the error that failed it (the capability crate's own).
        category: Category,
        /// What failed, naming the resource and the action.
        message: String,
    },
    /// Reaching a real backend failed before any phase ran (a cluster, the SDK's credentials).
    #[error("{context}: {message}")]
    Backend {
        /// What was being reached (`--cluster prod`).
        context: String,
        /// What failed.
        message: String,
    },
}

impl Error {
    pub(crate) fn backend(context: impl Into<String>, message: impl fmt::Display) -> Self {
        Self::Backend {
            context: context.into(),
            message: message.to_string(),
        }
    }

    /// Whether this is invalid input (nothing was created, changed or deleted).
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Self::InvalidInput { .. })
    }

    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidInput {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A phase's own failure (no capability error behind it): category [`Category::Failed`].
    pub(crate) fn phase(phase: Phase, message: impl fmt::Display) -> Self {
        Self::Phase {
            phase,
            category: Category::Failed,
            message: message.to_string(),
        }
    }

    /// A phase ended by a stop request (SIGINT/SIGTERM): category [`Category::Stopped`].
    pub(crate) fn stopped(phase: Phase, message: impl fmt::Display) -> Self {
        Self::Phase {
            phase,
            category: Category::Stopped,
            message: message.to_string(),
        }
    }

    /// The error's stable category.
    pub fn category(&self) -> Category {
        match self {
            Self::InvalidInput { .. } => Category::InvalidInput,
            Self::Phase { category, .. } => *category,
            Self::Backend { .. } => Category::Backend,
        }
    }
}

/// The stable categories of the capability crates' errors, kept when a phase fails, so an
/// embedder can tell a missing permission from throttling without parsing a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Category {
    /// Input was refused before anything ran.
    InvalidInput,
    /// A resource does not exist.
    NotFound,
    /// A resource exists already.
    AlreadyExists,
    /// Another operation holds the resource, or its state forbids the call.
    Conflict,
    /// The service asked to slow down.
    Throttled,
    /// A wait or a call ran out of time.
    Timeout,
    /// The caller may not do this.
    PermissionDenied,
    /// The run was stopped (SIGINT/SIGTERM).
    Stopped,
    /// The phase's own check failed (no service error behind it).
    Failed,
    /// Anything else the backend answered.
    Backend,
}

/// An error with a [`Category`].
pub(crate) trait Categorized: fmt::Display {
    fn category(&self) -> Category;
}

impl Categorized for String {
    fn category(&self) -> Category {
        Category::Failed
    }
}

impl Categorized for &str {
    fn category(&self) -> Category {
        Category::Failed
    }
}

impl Categorized for Error {
    fn category(&self) -> Category {
        Error::category(self)
    }
}

impl Categorized for glrunner_infra::Error {
    fn category(&self) -> Category {
        use glrunner_infra::Error as E;
        match self {
            E::InvalidInput { .. } | E::UnsupportedZones { .. } => Category::InvalidInput,
            E::NotFound { .. } => Category::NotFound,
            E::AlreadyExists { .. } => Category::AlreadyExists,
            E::Conflict { .. } | E::DependencyViolation { .. } | E::Propagating { .. } => {
                Category::Conflict
            }
            E::Throttled { .. } => Category::Throttled,
            E::Timeout { .. } => Category::Timeout,
            E::PermissionDenied { .. } => Category::PermissionDenied,
            E::Interrupted { .. } => Category::Stopped,
            _ => Category::Backend,
        }
    }
}

/// The GitLab client's and the janitor's errors name their categories alike: one mapping.
macro_rules! categorized_by_variant {
    ($($error:ty),+) => {$(
        impl Categorized for $error {
            fn category(&self) -> Category {
                type E = $error;
                match self {
                    E::InvalidInput { .. } => Category::InvalidInput,
                    E::NotFound { .. } => Category::NotFound,
                    E::AlreadyExists { .. } => Category::AlreadyExists,
                    E::Conflict { .. } => Category::Conflict,
                    E::Throttled { .. } => Category::Throttled,
                    E::Timeout { .. } => Category::Timeout,
                    E::PermissionDenied { .. } => Category::PermissionDenied,
                    _ => Category::Backend,
                }
            }
        }
    )+};
}

categorized_by_variant!(glrunner_gitlab_client::Error, glrunner_janitor::Error);

impl Categorized for glrunner_runner_chart::Error {
    fn category(&self) -> Category {
        use glrunner_runner_chart::ErrorKind as K;
        match self.kind() {
            K::InvalidInput => Category::InvalidInput,
            K::NotFound => Category::NotFound,
            K::AlreadyExists => Category::AlreadyExists,
            K::Conflict => Category::Conflict,
            K::Throttled => Category::Throttled,
            K::Timeout => Category::Timeout,
            K::PermissionDenied => Category::PermissionDenied,
            _ => Category::Backend,
        }
    }
}

/// Maps an error of a phase into [`Error::Phase`], keeping its category.
pub(crate) fn at<E: Categorized>(phase: Phase) -> impl FnOnce(E) -> Error {
    move |e| Error::Phase {
        phase,
        category: e.category(),
        message: e.to_string(),
    }
}
