//! [`FaultyReleases`] and [`FaultySecrets`]: [`ReleaseManager`] and [`TokenSecrets`] decorators
//! that inject faults by rule (feature `testing`; not API-stable). The forwarding of every
//! method of each trait is written here once.
//!
//! ```
//! # async fn demo() {
//! use glrunner_runner_chart::InMemoryReleases;
//! use glrunner_runner_chart::testing::{FaultyReleases, ReleaseArgs, ReleaseCall, ReleaseRule};
//!
//! // The second install times out.
//! let releases = FaultyReleases::new(InMemoryReleases::new()).with_rule(
//!     ReleaseRule::on(ReleaseCall::Ensure, |args| {
//!         let ReleaseArgs::Ensure { spec } = args else { unreachable!() };
//!         glrunner_runner_chart::Error::Timeout {
//!             resource: spec.id().describe(),
//!             action: "install or upgrade".into(),
//!             waited: spec.timeout,
//!         }
//!     })
//!     .skip(1),
//! );
//! # let _ = releases;
//! # }
//! ```

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::release::{ReleaseId, ReleaseManager, ReleaseSpec, ReleaseStatus, Removal};
use crate::secret::{
    Ownership, RunnerToken, SecretOutcome, SecretRef, StoredTokenSecret, TokenSecrets,
};

pub use glrunner_fault::{Call, Timing};

/// A [`ReleaseManager`] `T` whose calls go through [`ReleaseRule`]s.
pub type FaultyReleases<T> = glrunner_fault::Faulty<T, ReleaseCall>;

/// A fault rule for [`FaultyReleases`]: by call, arguments, count and timing (see
/// [`glrunner_fault`]).
pub type ReleaseRule = glrunner_fault::Rule<ReleaseCall>;

/// A [`TokenSecrets`] `T` whose calls go through [`SecretRule`]s.
pub type FaultySecrets<T> = glrunner_fault::Faulty<T, SecretCall>;

/// A fault rule for [`FaultySecrets`].
pub type SecretRule = glrunner_fault::Rule<SecretCall>;

/// A [`ReleaseManager`] method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ReleaseCall {
    /// [`ReleaseManager::ensure`] (`helm upgrade --install`).
    Ensure,
    /// [`ReleaseManager::upgrade`] (`helm upgrade`).
    Upgrade,
    /// [`ReleaseManager::uninstall`] (`helm uninstall`).
    Uninstall,
    /// [`ReleaseManager::status`] (`helm status`).
    Status,
    /// [`ReleaseManager::list`] (`helm list`).
    List,
}

/// The arguments of one [`ReleaseManager`] call, for a rule's condition and its error.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
#[allow(missing_docs)] // the fields are the trait method's parameters
pub enum ReleaseArgs<'a> {
    Ensure {
        spec: &'a ReleaseSpec,
    },
    Upgrade {
        spec: &'a ReleaseSpec,
    },
    Uninstall {
        id: &'a ReleaseId,
        timeout: Duration,
    },
    Status {
        id: &'a ReleaseId,
    },
    List {
        namespace: Option<&'a str>,
    },
}

impl glrunner_fault::Call for ReleaseCall {
    type Args<'a> = ReleaseArgs<'a>;
    type Error = Error;

    fn of(args: &ReleaseArgs<'_>) -> Self {
        match args {
            ReleaseArgs::Ensure { .. } => Self::Ensure,
            ReleaseArgs::Upgrade { .. } => Self::Upgrade,
            ReleaseArgs::Uninstall { .. } => Self::Uninstall,
            ReleaseArgs::Status { .. } => Self::Status,
            ReleaseArgs::List { .. } => Self::List,
        }
    }
}

/// A [`TokenSecrets`] method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum SecretCall {
    /// [`TokenSecrets::ensure`].
    Ensure,
    /// [`TokenSecrets::get`].
    Get,
    /// [`TokenSecrets::delete`].
    Delete,
    /// [`TokenSecrets::ownership`].
    Ownership,
    /// [`TokenSecrets::ensure_namespace`].
    EnsureNamespace,
}

/// The arguments of one [`TokenSecrets`] call. The token prints redacted, as everywhere.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
#[allow(missing_docs)] // the fields are the trait method's parameters
pub enum SecretArgs<'a> {
    Ensure {
        secret: &'a SecretRef,
        token: &'a RunnerToken,
    },
    Get {
        secret: &'a SecretRef,
    },
    Delete {
        secret: &'a SecretRef,
    },
    Ownership {
        secret: &'a SecretRef,
    },
    EnsureNamespace {
        namespace: &'a str,
    },
}

impl glrunner_fault::Call for SecretCall {
    type Args<'a> = SecretArgs<'a>;
    type Error = Error;

    fn of(args: &SecretArgs<'_>) -> Self {
        match args {
            SecretArgs::Ensure { .. } => Self::Ensure,
            SecretArgs::Get { .. } => Self::Get,
            SecretArgs::Delete { .. } => Self::Delete,
            SecretArgs::Ownership { .. } => Self::Ownership,
            SecretArgs::EnsureNamespace { .. } => Self::EnsureNamespace,
        }
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<T: ReleaseManager> ReleaseManager for FaultyReleases<T> {
    async fn ensure(&self, spec: &ReleaseSpec) -> Result<ReleaseStatus> {
        self.run(ReleaseArgs::Ensure { spec }, self.inner().ensure(spec))
            .await
    }
    async fn upgrade(&self, spec: &ReleaseSpec) -> Result<ReleaseStatus> {
        self.run(ReleaseArgs::Upgrade { spec }, self.inner().upgrade(spec))
            .await
    }
    async fn uninstall(&self, id: &ReleaseId, timeout: Duration) -> Result<Removal> {
        let args = ReleaseArgs::Uninstall { id, timeout };
        self.run(args, self.inner().uninstall(id, timeout)).await
    }
    async fn status(&self, id: &ReleaseId) -> Result<Option<ReleaseStatus>> {
        self.run(ReleaseArgs::Status { id }, self.inner().status(id))
            .await
    }
    async fn list<'a>(&self, namespace: Option<&'a str>) -> Result<Vec<ReleaseStatus>> {
        let args = ReleaseArgs::List { namespace };
        self.run(args, self.inner().list(namespace)).await
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<T: TokenSecrets> TokenSecrets for FaultySecrets<T> {
    async fn ensure(&self, secret: &SecretRef, token: &RunnerToken) -> Result<SecretOutcome> {
        let args = SecretArgs::Ensure { secret, token };
        self.run(args, self.inner().ensure(secret, token)).await
    }
    async fn get(&self, secret: &SecretRef) -> Result<Option<StoredTokenSecret>> {
        self.run(SecretArgs::Get { secret }, self.inner().get(secret))
            .await
    }
    async fn delete(&self, secret: &SecretRef) -> Result<bool> {
        self.run(SecretArgs::Delete { secret }, self.inner().delete(secret))
            .await
    }
    async fn ownership(&self, secret: &SecretRef) -> Result<Ownership> {
        let args = SecretArgs::Ownership { secret };
        self.run(args, self.inner().ownership(secret)).await
    }
    async fn ensure_namespace(&self, namespace: &str) -> Result<bool> {
        let args = SecretArgs::EnsureNamespace { namespace };
        self.run(args, self.inner().ensure_namespace(namespace))
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::conformance;
    use crate::memory::{InMemoryReleases, InMemoryTokenSecrets};
    use crate::release::DynReleaseManager;
    use crate::secret::DynTokenSecrets;

    fn conflict(args: &ReleaseArgs<'_>) -> Error {
        Error::Conflict {
            resource: format!("{args:?}"),
            action: "injected".into(),
            detail: "another operation is in progress".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_rule_fires_on_the_nth_call_and_counts_are_right() {
        let releases = InMemoryReleases::new();
        let faulty = FaultyReleases::new(releases.clone()).with_rule(
            ReleaseRule::on(ReleaseCall::Ensure, conflict)
                .skip(1)
                .times(1),
        );
        let spec = |name: &str| conformance::test_spec("ci", name);
        assert!(faulty.ensure(&spec("a")).await.is_ok());
        let err = faulty.ensure(&spec("b")).await.unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{err}");
        assert!(faulty.ensure(&spec("c")).await.is_ok());
        assert_eq!(faulty.injected(), 1);
        assert_eq!(faulty.calls(ReleaseCall::Ensure), 3);
        assert_eq!(faulty.calls(ReleaseCall::Uninstall), 0);
        // Before the call: "b" was never installed.
        let names: Vec<String> = releases
            .list(Some("ci"))
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["a", "c"]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_after_effect_fault_applies_the_effect_and_loses_the_answer() {
        let releases = InMemoryReleases::new();
        let faulty = FaultyReleases::new(releases.clone()).with_rule(
            ReleaseRule::on(ReleaseCall::Uninstall, conflict)
                .times(1)
                .after_effect(),
        );
        let spec = conformance::test_spec("ci", "gone");
        faulty.ensure(&spec).await.unwrap();
        let id = spec.id();
        assert!(faulty.uninstall(&id, spec.timeout).await.is_err());
        assert!(releases.status(&id).await.unwrap().is_none(), "uninstalled");
        assert_eq!(
            faulty.uninstall(&id, spec.timeout).await.unwrap(),
            Removal::AlreadyAbsent
        );
        assert_eq!(faulty.injected(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn secret_rules_pick_calls_by_their_arguments() {
        let faulty = FaultySecrets::new(InMemoryTokenSecrets::new()).with_rule(
            SecretRule::on(SecretCall::EnsureNamespace, |args| Error::Conflict {
                resource: format!("{args:?}"),
                action: "create".into(),
                detail: "injected".into(),
            })
            .when(|args| match args {
                SecretArgs::EnsureNamespace { namespace } => *namespace == "jobs",
                _ => false,
            }),
        );
        assert!(faulty.ensure_namespace("ci").await.is_ok());
        assert!(faulty.ensure_namespace("jobs").await.is_err());
        assert_eq!(faulty.injected(), 1);
        assert_eq!(faulty.calls(SecretCall::EnsureNamespace), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn pass_through_decorators_pass_the_conformance_suites() {
        // Over shared trait objects, as the flow holds them.
        let releases: Arc<DynReleaseManager> = Arc::new(InMemoryReleases::new());
        let faulty = FaultyReleases::new(releases);
        conformance::run_release_suite(&faulty, "faulty").await;
        assert!(faulty.calls(ReleaseCall::List) > 0);
        let secrets: Box<DynTokenSecrets> = Box::new(InMemoryTokenSecrets::new());
        let faulty = FaultySecrets::new(secrets);
        conformance::run_secret_suite(&faulty, "faulty").await;
        assert!(faulty.calls(SecretCall::Ensure) > 0);
        assert_eq!(faulty.injected(), 0);
    }
}
