//! [`Faulty`]: a [`PodApi`] decorator that injects faults by rule (feature `testing`; not
//! API-stable). The forwarding of every method is written here once.
//!
//! ```
//! use glrunner_janitor::memory::InMemoryPods;
//! use glrunner_janitor::testing::{Faulty, PodCall, PodRule};
//!
//! // The API server refuses the first two listings (a restart), then answers again.
//! let pods = Faulty::new(InMemoryPods::new()).with_rule(
//!     PodRule::on(PodCall::ListPods, |_| glrunner_janitor::Error::Timeout {
//!         action: "list pods".into(),
//!         waited: std::time::Duration::from_secs(10),
//!     })
//!     .times(2),
//! );
//! # let _ = pods;
//! ```

use async_trait::async_trait;
use serde::Serialize;

use crate::api::PodApi;
use crate::classify::PodEvent;
use crate::error::{Error, Result};
use crate::model::{DeleteMode, DeleteOutcome, ListQuery, PodInfo, PodKey};

pub use glrunner_fault::{Call, Timing};

/// A [`PodApi`] backend `T` whose calls go through [`PodRule`]s.
pub type Faulty<T> = glrunner_fault::Faulty<T, PodCall>;

/// A fault rule for [`Faulty`]: by call, arguments, count and timing (see [`glrunner_fault`]).
pub type PodRule = glrunner_fault::Rule<PodCall>;

/// A fallible [`PodApi`] method (all but `backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum PodCall {
    /// [`PodApi::list_pods`] (`GET /api/v1/namespaces/:ns/pods`, every page).
    ListPods,
    /// [`PodApi::get_pod`].
    GetPod,
    /// [`PodApi::delete_pod`] (with its UID precondition).
    DeletePod,
    /// [`PodApi::list_pod_events`] (`GET /api/v1/namespaces/:ns/events`, every page).
    ListPodEvents,
}

/// The arguments of one [`PodApi`] call, for a rule's condition and its error.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
#[allow(missing_docs)] // the fields are the trait method's parameters
pub enum PodArgs<'a> {
    ListPods { query: &'a ListQuery },
    GetPod { namespace: &'a str, name: &'a str },
    DeletePod { key: &'a PodKey, mode: DeleteMode },
    ListPodEvents { namespace: &'a str },
}

impl glrunner_fault::Call for PodCall {
    type Args<'a> = PodArgs<'a>;
    type Error = Error;

    fn of(args: &PodArgs<'_>) -> Self {
        match args {
            PodArgs::ListPods { .. } => Self::ListPods,
            PodArgs::GetPod { .. } => Self::GetPod,
            PodArgs::DeletePod { .. } => Self::DeletePod,
            PodArgs::ListPodEvents { .. } => Self::ListPodEvents,
        }
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<T: PodApi> PodApi for Faulty<T> {
    fn backend(&self) -> &'static str {
        self.inner().backend()
    }
    async fn list_pods(&self, query: &ListQuery) -> Result<Vec<PodInfo>> {
        self.run(PodArgs::ListPods { query }, self.inner().list_pods(query))
            .await
    }
    async fn get_pod(&self, namespace: &str, name: &str) -> Result<Option<PodInfo>> {
        let args = PodArgs::GetPod { namespace, name };
        self.run(args, self.inner().get_pod(namespace, name)).await
    }
    async fn delete_pod(&self, key: &PodKey, mode: DeleteMode) -> Result<DeleteOutcome> {
        let args = PodArgs::DeletePod { key, mode };
        self.run(args, self.inner().delete_pod(key, mode)).await
    }
    async fn list_pod_events(&self, namespace: &str) -> Result<Vec<PodEvent>> {
        let args = PodArgs::ListPodEvents { namespace };
        self.run(args, self.inner().list_pod_events(namespace))
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::api::DynPodApi;
    use crate::memory::{InMemoryPods, NewPod};

    fn conflict(args: &PodArgs<'_>) -> Error {
        Error::Conflict {
            action: "delete".into(),
            resource: format!("{args:?}"),
            message: "injected".into(),
        }
    }

    #[tokio::test]
    async fn a_rule_fires_on_the_nth_delete_and_counts_are_right() {
        let pods = InMemoryPods::new();
        let keys: Vec<PodKey> = (0..3)
            .map(|i| pods.insert(NewPod::job("ns", "mgr", 1, i)).unwrap())
            .collect();
        let faulty = Faulty::new(pods.clone())
            .with_rule(PodRule::on(PodCall::DeletePod, conflict).skip(1).times(1));
        let mut ok = Vec::new();
        for key in &keys {
            ok.push(
                faulty
                    .delete_pod(key, DeleteMode::graceful(Some(0)))
                    .await
                    .is_ok(),
            );
        }
        assert_eq!(ok, [true, false, true]);
        assert_eq!(faulty.injected(), 1);
        assert_eq!(faulty.calls(PodCall::DeletePod), 3);
        assert_eq!(faulty.calls(PodCall::ListPods), 0);
        // Before the call: the second pod is still there.
        let left: Vec<String> = pods.pods().into_iter().map(|p| p.name).collect();
        assert_eq!(left, [keys[1].name.clone()]);
    }

    #[tokio::test]
    async fn an_after_effect_fault_deletes_and_loses_the_answer() {
        let pods = InMemoryPods::new();
        let key = pods.insert(NewPod::job("ns", "mgr", 1, 1)).unwrap();
        let faulty = Faulty::new(pods.clone()).with_rule(
            PodRule::on(PodCall::DeletePod, conflict)
                .when(|args| match args {
                    PodArgs::DeletePod { mode, .. } => mode.grace_seconds == Some(0),
                    _ => false,
                })
                .after_effect(),
        );
        assert!(
            faulty
                .delete_pod(&key, DeleteMode::graceful(Some(0)))
                .await
                .is_err()
        );
        assert!(pods.pods().is_empty(), "the pod was deleted");
        assert_eq!(faulty.injected(), 1);
        assert_eq!(faulty.backend(), pods.backend());
    }

    #[tokio::test]
    async fn a_pass_through_decorator_passes_the_conformance_suite() {
        let pods = InMemoryPods::new();
        // Over a shared trait object, as the reaper holds it.
        let api: Arc<DynPodApi> = Arc::new(pods.clone());
        let faulty = Faulty::new(api);
        crate::conformance::run_all(&faulty, &pods, "faulty").await;
        assert!(faulty.calls(PodCall::DeletePod) > 0);
        assert_eq!(faulty.injected(), 0);
        let boxed: Box<DynPodApi> = Box::new(pods);
        assert_eq!(Faulty::new(boxed).backend(), "memory");
    }
}
