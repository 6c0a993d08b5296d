//! Progress events emitted while applying or tearing down, for progress bars and JSON lines.

use std::time::Duration;

use serde::Serialize;

/// One thing that happened during apply or teardown.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum ProgressEvent {
    /// A step started.
    StepStarted {
        /// Step key.
        key: String,
        /// Step description.
        description: String,
    },
    /// A step found its resource already there (re-run).
    StepFound {
        /// Step key.
        key: String,
        /// Existing resource id.
        id: String,
    },
    /// Still waiting for a resource to change state.
    Waiting {
        /// Step key or resource.
        key: String,
        /// What we wait for.
        waiting_for: String,
        /// Time waited so far.
        #[serde(with = "secs")]
        elapsed: Duration,
    },
    /// A retryable error; trying again after a pause.
    Retrying {
        /// Step key or resource.
        key: String,
        /// The error.
        reason: String,
        /// Attempt number that failed.
        attempt: u32,
    },
    /// A step finished.
    StepDone {
        /// Step key.
        key: String,
        /// Resource id.
        id: String,
        /// Whether the resource was created (false: it existed).
        created: bool,
        /// Time the step took.
        #[serde(with = "secs")]
        elapsed: Duration,
    },
    /// A step failed.
    StepFailed {
        /// Step key.
        key: String,
        /// The error.
        error: String,
    },
    /// Something worth a person's attention that does not stop the run (drift of a reused
    /// resource, a resource kept back during teardown).
    Warning {
        /// Step key or resource.
        key: String,
        /// What was found.
        message: String,
    },
    /// A resource is being deleted.
    Deleting {
        /// Resource description.
        resource: String,
    },
    /// A resource is gone.
    Deleted {
        /// Resource description.
        resource: String,
        /// Time the deletion took.
        #[serde(with = "secs")]
        elapsed: Duration,
    },
}

mod secs {
    use std::time::Duration;
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_secs_f64() * 10.0).round() / 10.0)
    }
}

/// Receives progress events. Implemented for closures.
pub trait Progress: Send + Sync {
    /// Called for every event, from the task that produced it.
    fn event(&self, event: &ProgressEvent);
}

impl<F: Fn(&ProgressEvent) + Send + Sync> Progress for F {
    fn event(&self, event: &ProgressEvent) {
        self(event)
    }
}

/// Discards every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _event: &ProgressEvent) {}
}
