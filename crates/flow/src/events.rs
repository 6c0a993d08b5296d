//! Progress events of a flow run, for the examples' renderers.

use std::time::Duration;

use glrunner_gitlab_client::watch::WatchProgress;
use glrunner_infra::ProgressEvent;

use super::Phase;

/// Something that happened during the flow, for progress rendering.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum FlowEvent<'a> {
    /// A phase started.
    PhaseStarted {
        /// The phase.
        phase: Phase,
    },
    /// A step inside a phase.
    Step {
        /// The phase.
        phase: Phase,
        /// What happened.
        message: String,
    },
    /// A phase finished.
    PhaseDone {
        /// The phase.
        phase: Phase,
        /// Flow-clock time it took.
        elapsed: Duration,
        /// One-line summary.
        summary: String,
    },
    /// A phase was not selected.
    PhaseSkipped {
        /// The phase.
        phase: Phase,
    },
    /// A phase failed.
    PhaseFailed {
        /// The phase.
        phase: Phase,
        /// The error.
        error: String,
    },
    /// Cleanup after a failure started.
    CleanupStarted,
    /// Infrastructure progress.
    Infra(&'a ProgressEvent),
    /// Pipeline progress.
    Pipeline(&'a WatchProgress),
    /// The preflight passed (with warnings, perhaps): the run goes on.
    Preflight(&'a crate::preflight::PreflightReport),
}

/// Receives [`FlowEvent`]s. Implemented for closures.
pub trait FlowProgress: Send + Sync {
    /// Called for every event.
    fn event(&self, event: &FlowEvent<'_>);
}

impl<F: Fn(&FlowEvent<'_>) + Send + Sync> FlowProgress for F {
    fn event(&self, event: &FlowEvent<'_>) {
        self(event)
    }
}

/// Forwards the infra engine's progress as [`FlowEvent::Infra`].
pub(super) struct InfraProgress<'a>(pub(super) &'a dyn FlowProgress);

impl glrunner_infra::Progress for InfraProgress<'_> {
    fn event(&self, event: &ProgressEvent) {
        self.0.event(&FlowEvent::Infra(event));
    }
}
