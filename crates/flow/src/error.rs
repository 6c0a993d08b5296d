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

    pub(crate) fn phase(phase: Phase, message: impl fmt::Display) -> Self {
        Self::Phase {
            phase,
            message: message.to_string(),
        }
    }
}

/// Maps an error of a phase into [`Error::Phase`].
pub(crate) fn at<E: fmt::Display>(phase: Phase) -> impl FnOnce(E) -> Error {
    move |e| Error::phase(phase, e)
}
