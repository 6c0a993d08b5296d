//! In-memory backends (`InMemoryReleases`, `InMemoryTokenSecrets`) with Helm's semantics on tokio's clock.
//!
//! Clones share state. Simulated durations use `tokio::time` only, so a paused test clock (the
//! sandbox world) runs them instantly. The sandbox's runner simulator reads installed runners
//! (tags, `concurrent`, job namespace, state) through [`InMemoryReleases::runners`] and wakes on
//! [`InMemoryReleases::subscribe`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::fargate::FargateSize;
use crate::release::{
    ReleaseId, ReleaseManager, ReleaseSpec, ReleaseState, ReleaseStatus, Removal,
};
use crate::secret::{
    Ownership, RunnerToken, SecretOutcome, SecretRef, StoredTokenSecret, TokenSecrets,
};
use crate::values::{RunnerSummary, RunnerValues};

/// App version the in-memory releases report for the pinned chart.
const SIMULATED_APP_VERSION: &str = crate::DEFAULT_RUNNER_VERSION;

/// How long simulated operations take on tokio's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timing {
    /// First install until the runner manager pod is ready (Fargate node start + image pull).
    pub install: Duration,
    /// Upgrade with changed values until the new manager pod is ready.
    pub upgrade: Duration,
    /// Uninstall until the resources are gone.
    pub uninstall: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            install: Duration::from_secs(45),
            upgrade: Duration::from_secs(30),
            uninstall: Duration::from_secs(5),
        }
    }
}

impl Timing {
    /// All operations instant.
    pub fn instant() -> Self {
        Self {
            install: Duration::ZERO,
            upgrade: Duration::ZERO,
            uninstall: Duration::ZERO,
        }
    }

    /// Sets the install duration.
    #[must_use]
    pub fn with_install(mut self, d: Duration) -> Self {
        self.install = d;
        self
    }

    /// Sets the upgrade duration.
    #[must_use]
    pub fn with_upgrade(mut self, d: Duration) -> Self {
        self.upgrade = d;
        self
    }

    /// Sets the uninstall duration.
    #[must_use]
    pub fn with_uninstall(mut self, d: Duration) -> Self {
        self.uninstall = d;
        self
    }
}

#[derive(Debug, Clone)]
struct StoredRelease {
    spec: ReleaseSpec,
    revision: u32,
    state: ReleaseState,
    /// When the pending operation began (Helm's `info.last_deployed` of a pending revision).
    pending_since: Option<Instant>,
    /// The spec of the last revision that was deployed: what a rollback goes back to.
    deployed: Option<ReleaseSpec>,
}

impl StoredRelease {
    fn new(spec: &ReleaseSpec, state: ReleaseState) -> Self {
        Self {
            spec: spec.clone(),
            revision: 1,
            pending_since: helm_pending(&state).then(Instant::now),
            state,
            deployed: None,
        }
    }
}

/// Helm's `IsPending` (helm v4.2.4 pkg/release/common/status.go:47): the states in which
/// `helm upgrade` answers errPending. `uninstalling` is not one of them.
fn helm_pending(state: &ReleaseState) -> bool {
    matches!(
        state,
        ReleaseState::PendingInstall | ReleaseState::PendingUpgrade | ReleaseState::PendingRollback
    )
}

/// How often a pending release is looked at again (as [`crate::HelmCli`] does).
const PENDING_POLL: Duration = Duration::from_secs(2);

impl StoredRelease {
    fn runner(&self) -> InstalledRunner {
        InstalledRunner {
            id: self.spec.id(),
            state: self.state.clone(),
            revision: self.revision,
            tags: self.spec.values.runner_tags.clone(),
            concurrent: self.spec.values.concurrent,
            job_namespace: self
                .spec
                .values
                .executor
                .namespace
                .clone()
                .unwrap_or_else(|| self.spec.namespace.clone()),
            poll_timeout: self.spec.values.executor.poll_timeout,
            job_pod_size: self.spec.values.executor.job_pod_size(0),
            values: self.spec.values.clone(),
        }
    }

    fn status(&self) -> ReleaseStatus {
        ReleaseStatus {
            name: self.spec.name.clone(),
            namespace: self.spec.namespace.clone(),
            revision: self.revision,
            state: self.state.clone(),
            chart_version: Some(
                self.spec
                    .chart
                    .version()
                    .map_or_else(|| "local".to_string(), ToString::to_string),
            ),
            app_version: Some(SIMULATED_APP_VERSION.to_string()),
            runner: Some(RunnerSummary::of(&self.spec.values)),
        }
    }
}

/// A runner release as the sandbox's runner simulator sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstalledRunner {
    /// The release.
    pub id: ReleaseId,
    /// Helm state; only [`ReleaseState::Deployed`] runners take jobs.
    pub state: ReleaseState,
    /// Revision.
    pub revision: u32,
    /// GitLab tags this runner takes jobs for.
    pub tags: Vec<String>,
    /// Maximum concurrent jobs.
    pub concurrent: u32,
    /// Namespace where its job pods run (the release namespace unless overridden).
    pub job_namespace: String,
    /// How long it waits for a job pod to start before failing the job (serialised as seconds).
    #[serde(rename = "poll_timeout_secs", serialize_with = "secs")]
    pub poll_timeout: Duration,
    /// Fargate size of one of its job pods (no service containers).
    pub job_pod_size: Option<FargateSize>,
    /// The full values.
    pub values: RunnerValues,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

impl InstalledRunner {
    /// Whether the runner is up and taking jobs.
    pub fn is_ready(&self) -> bool {
        self.state == ReleaseState::Deployed
    }
}

#[derive(Debug)]
struct Shared {
    releases: Mutex<BTreeMap<ReleaseId, StoredRelease>>,
    changes: watch::Sender<u64>,
}

/// In-memory [`ReleaseManager`]: revisions, pending states, conflicts, `--wait` timeouts, and (when
/// linked to [`InMemoryTokenSecrets`]) a runner that never becomes ready without its Secret.
#[derive(Debug, Clone)]
pub struct InMemoryReleases {
    shared: Arc<Shared>,
    timing: Timing,
    secrets: Option<InMemoryTokenSecrets>,
}

impl Default for InMemoryReleases {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryReleases {
    /// An empty store with [`Timing::default`].
    pub fn new() -> Self {
        let (changes, _) = watch::channel(0);
        Self {
            shared: Arc::new(Shared {
                releases: Mutex::new(BTreeMap::new()),
                changes,
            }),
            timing: Timing::default(),
            secrets: None,
        }
    }

    /// Uses these simulated durations.
    #[must_use]
    pub fn with_timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    /// Links the Secret store: a release whose `runners.secret` is missing never becomes ready,
    /// so `ensure` times out like `helm --wait` would.
    #[must_use]
    pub fn with_secrets(mut self, secrets: InMemoryTokenSecrets) -> Self {
        self.secrets = Some(secrets);
        self
    }

    /// A deep copy with its own state (for snapshots).
    pub fn fork(&self) -> Self {
        let copy = self.lock().clone();
        let (changes, _) = watch::channel(0);
        Self {
            shared: Arc::new(Shared {
                releases: Mutex::new(copy),
                changes,
            }),
            timing: self.timing,
            secrets: self.secrets.clone(),
        }
    }

    /// Every release with its runner settings, sorted by namespace and name.
    pub fn runners(&self) -> Vec<InstalledRunner> {
        self.lock().values().map(StoredRelease::runner).collect()
    }

    /// Every release's identity, revision and state, sorted by namespace and name: what a
    /// watcher of [`InMemoryReleases::subscribe`] reads on each change without copying every
    /// release's values.
    pub fn states(&self) -> Vec<(ReleaseId, u32, ReleaseState)> {
        self.lock()
            .iter()
            .map(|(id, r)| (id.clone(), r.revision, r.state.clone()))
            .collect()
    }

    /// One release with its runner settings.
    pub fn runner(&self, id: &ReleaseId) -> Option<InstalledRunner> {
        self.lock().get(id).map(StoredRelease::runner)
    }

    /// Ready runners that take jobs tagged `tag`.
    pub fn ready_runners_for_tag(&self, tag: &str) -> Vec<InstalledRunner> {
        self.runners()
            .into_iter()
            .filter(|r| r.is_ready() && r.tags.iter().any(|t| t == tag))
            .collect()
    }

    /// A receiver whose value changes whenever any release changes state.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<ReleaseId, StoredRelease>> {
        // A panic while holding the lock cannot leave the map half-updated (single inserts/removes).
        self.shared
            .releases
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn notify(&self) {
        self.shared.changes.send_modify(|n| *n += 1);
    }

    /// Sets the state of `id` if it is still at `revision`; returns its status.
    fn settle(&self, id: &ReleaseId, revision: u32, state: ReleaseState) -> Option<ReleaseStatus> {
        let status = {
            let mut map = self.lock();
            let r = map.get_mut(id).filter(|r| r.revision == revision)?;
            if state == ReleaseState::Deployed {
                r.deployed = Some(r.spec.clone());
            }
            r.state = state;
            r.pending_since = None;
            r.status()
        };
        self.notify();
        Some(status)
    }

    /// A release whose operation was killed stays pending, and Helm refuses every later upgrade
    /// ("another operation (install/upgrade/rollback) is in progress": helm v4.2.4
    /// pkg/action/action.go:73, pkg/action/upgrade.go:246-248). Like [`crate::HelmCli`]: waits
    /// while the pending operation may still run (until `timeout` after it began), then rolls a
    /// pending upgrade or rollback back to the last deployed revision, or uninstalls a pending
    /// install (or one never deployed).
    async fn clear_pending(&self, id: &ReleaseId, timeout: Duration) -> Result<()> {
        loop {
            let since = match self.lock().get(id) {
                Some(r) if helm_pending(&r.state) => r.pending_since,
                _ => return Ok(()),
            };
            let age = since.map_or(timeout, |s| s.elapsed());
            if age < timeout {
                tokio::time::sleep((timeout - age).min(PENDING_POLL)).await;
                continue;
            }
            let target = {
                let map = self.lock();
                map.get(id)
                    .filter(|r| r.state != ReleaseState::PendingInstall)
                    .and_then(|r| r.deployed.clone())
            };
            tracing::warn!(release = %id, "simulated release left pending by an operation that is gone; clearing it");
            return match target {
                Some(deployed) => self.roll_back(id, &deployed, timeout).await,
                None => self.uninstall(id, timeout).await.map(|_| ()),
            };
        }
    }

    /// `helm rollback` to `deployed`: a new revision with that revision's config, pending
    /// (`pending-rollback`) while it waits like an upgrade (helm v4.2.4 pkg/action/rollback.go
    /// `prepareRollback`, `performRollback`).
    async fn roll_back(
        &self,
        id: &ReleaseId,
        deployed: &ReleaseSpec,
        timeout: Duration,
    ) -> Result<()> {
        let revision = {
            let mut map = self.lock();
            let Some(r) = map.get_mut(id) else {
                return Ok(());
            };
            r.revision += 1;
            r.spec = deployed.clone();
            r.state = ReleaseState::PendingRollback;
            r.pending_since = Some(Instant::now());
            r.revision
        };
        self.notify();
        let secret_ready = match &self.secrets {
            Some(secrets) => secrets.contains(&deployed.secret()),
            None => true,
        };
        if !secret_ready || self.timing.upgrade > timeout {
            tokio::time::sleep(timeout).await;
            self.settle(id, revision, ReleaseState::Failed);
            return Err(Error::Timeout {
                resource: id.describe(),
                action: "roll back".into(),
                waited: timeout,
            });
        }
        tokio::time::sleep(self.timing.upgrade).await;
        self.settle(id, revision, ReleaseState::Deployed);
        Ok(())
    }

    async fn deploy(&self, spec: &ReleaseSpec, install: bool) -> Result<ReleaseStatus> {
        spec.validate()?;
        let id = spec.id();
        self.clear_pending(&id, spec.timeout).await?;
        let action = if install {
            "install or upgrade"
        } else {
            "upgrade"
        };
        // Helm creates the release namespace (--create-namespace), never the job namespace the
        // chart puts the executor's Role in: the apply fails, the release is left failed.
        let missing_job_namespace = match (&self.secrets, &spec.values.executor.namespace) {
            (Some(secrets), Some(job_ns)) if *job_ns != spec.namespace => {
                (!secrets.has_namespace(job_ns)).then(|| job_ns.clone())
            }
            _ => None,
        };
        if let Some(secrets) = &self.secrets
            && install
        {
            secrets.add_namespace(&spec.namespace);
        }
        if let Some(job_ns) = missing_job_namespace {
            {
                let mut map = self.lock();
                match map.get_mut(&id) {
                    Some(r) if !r.state.is_pending() => {
                        r.revision += 1;
                        r.spec = spec.clone();
                        r.state = ReleaseState::Failed;
                    }
                    None if install => {
                        map.insert(id.clone(), StoredRelease::new(spec, ReleaseState::Failed));
                    }
                    _ => {}
                }
            }
            self.notify();
            return Err(Error::NotFound {
                resource: format!("namespace {job_ns:?} (the job namespace)"),
                action: format!("{action} {} (its Role goes there)", id.describe()),
            });
        }
        let (revision, wait) = {
            let mut map = self.lock();
            match map.get_mut(&id) {
                Some(r) if r.state.is_pending() => {
                    return Err(Error::Conflict {
                        resource: id.describe(),
                        action: action.into(),
                        detail: format!(
                            "another operation (install/upgrade/rollback) is in progress (state {})",
                            r.state
                        ),
                    });
                }
                Some(r) => {
                    let unchanged = r.spec == *spec && r.state == ReleaseState::Deployed;
                    r.revision += 1;
                    r.state = ReleaseState::PendingUpgrade;
                    r.pending_since = Some(Instant::now());
                    r.spec = spec.clone();
                    (
                        r.revision,
                        if unchanged {
                            Duration::ZERO
                        } else {
                            self.timing.upgrade
                        },
                    )
                }
                None if !install => {
                    return Err(Error::NotFound {
                        resource: id.describe(),
                        action: action.into(),
                    });
                }
                None => {
                    map.insert(
                        id.clone(),
                        StoredRelease::new(spec, ReleaseState::PendingInstall),
                    );
                    (1, self.timing.install)
                }
            }
        };
        self.notify();
        tracing::info!(release = %id, revision, "simulated helm {action} started");
        let secret_ready = match &self.secrets {
            Some(secrets) => secrets.contains(&spec.secret()),
            None => true,
        };
        if !secret_ready || wait > spec.timeout {
            tokio::time::sleep(spec.timeout).await;
            self.settle(&id, revision, ReleaseState::Failed);
            tracing::warn!(release = %id, secret_ready, "simulated release did not become ready in time");
            return Err(Error::Timeout {
                resource: id.describe(),
                action: action.into(),
                waited: spec.timeout,
            });
        }
        tokio::time::sleep(wait).await;
        self.settle(&id, revision, ReleaseState::Deployed)
            .ok_or_else(|| Error::Conflict {
                resource: id.describe(),
                action: action.into(),
                detail: "the release was uninstalled or changed while this operation ran".into(),
            })
    }
}

#[async_trait]
impl ReleaseManager for InMemoryReleases {
    async fn ensure(&self, spec: &ReleaseSpec) -> Result<ReleaseStatus> {
        self.deploy(spec, true).await
    }

    async fn upgrade(&self, spec: &ReleaseSpec) -> Result<ReleaseStatus> {
        self.deploy(spec, false).await
    }

    async fn uninstall(&self, id: &ReleaseId, timeout: Duration) -> Result<Removal> {
        id.validate()?;
        let revision = {
            let mut map = self.lock();
            match map.get_mut(id) {
                None => return Ok(Removal::AlreadyAbsent),
                Some(r) => {
                    r.state = ReleaseState::Uninstalling;
                    r.pending_since = None;
                    r.revision
                }
            }
        };
        self.notify();
        if self.timing.uninstall > timeout {
            tokio::time::sleep(timeout).await;
            return Err(Error::Timeout {
                resource: id.describe(),
                action: "uninstall".into(),
                waited: timeout,
            });
        }
        tokio::time::sleep(self.timing.uninstall).await;
        {
            let mut map = self.lock();
            if map.get(id).is_some_and(|r| r.revision == revision) {
                map.remove(id);
            }
        }
        self.notify();
        tracing::info!(release = %id, "simulated helm uninstall done");
        Ok(Removal::Removed)
    }

    async fn status(&self, id: &ReleaseId) -> Result<Option<ReleaseStatus>> {
        id.validate()?;
        Ok(self.lock().get(id).map(StoredRelease::status))
    }

    async fn list<'a>(&self, namespace: Option<&'a str>) -> Result<Vec<ReleaseStatus>> {
        if let Some(ns) = namespace {
            crate::validate::namespace("namespace", ns)
                .map_err(|i| Error::InvalidInput { issues: vec![i] })?;
        }
        Ok(self
            .lock()
            .values()
            .filter(|r| namespace.is_none_or(|ns| r.spec.namespace == ns))
            .map(StoredRelease::status)
            .collect())
    }
}

/// One stored Secret: glrunner's (with its token) or someone else's.
#[derive(Debug, Clone)]
enum StoredSecret {
    Glrunner(RunnerToken),
    Foreign,
}

#[derive(Debug, Default)]
struct SecretsState {
    secrets: BTreeMap<SecretRef, StoredSecret>,
    namespaces: BTreeSet<String>,
}

/// In-memory [`TokenSecrets`], with the namespaces it created. Clones share state.
///
/// Like the API server it holds Secrets glrunner did not create ([`Self::insert_foreign`]),
/// which are never written over nor deleted.
#[derive(Debug, Clone, Default)]
pub struct InMemoryTokenSecrets {
    state: Arc<Mutex<SecretsState>>,
}

impl InMemoryTokenSecrets {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether glrunner's Secret exists (a foreign one of that name does not count).
    pub fn contains(&self, secret: &SecretRef) -> bool {
        matches!(
            self.lock().secrets.get(secret),
            Some(StoredSecret::Glrunner(_))
        )
    }

    /// Every stored Secret's reference (foreign ones included).
    pub fn refs(&self) -> Vec<SecretRef> {
        self.lock().secrets.keys().cloned().collect()
    }

    /// Puts a Secret there that glrunner did not create (no managed-by label), as someone else would.
    pub fn insert_foreign(&self, secret: &SecretRef) {
        let mut state = self.lock();
        state.namespaces.insert(secret.namespace.clone());
        state.secrets.insert(secret.clone(), StoredSecret::Foreign);
    }

    /// Whether `namespace` exists (created by [`TokenSecrets::ensure`] or
    /// [`TokenSecrets::ensure_namespace`], or by [`Self::insert_foreign`]).
    pub fn has_namespace(&self, namespace: &str) -> bool {
        self.lock().namespaces.contains(namespace)
    }

    /// Records a namespace created elsewhere (Helm's `--create-namespace`, an administrator).
    pub fn add_namespace(&self, namespace: &str) {
        self.lock().namespaces.insert(namespace.to_string());
    }

    fn lock(&self) -> MutexGuard<'_, SecretsState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl TokenSecrets for InMemoryTokenSecrets {
    async fn ensure(&self, secret: &SecretRef, token: &RunnerToken) -> Result<SecretOutcome> {
        secret.validate()?;
        let mut state = self.lock();
        let outcome = match state.secrets.get(secret) {
            Some(StoredSecret::Foreign) => return Err(secret.foreign_error("write")),
            None => SecretOutcome::Created,
            Some(StoredSecret::Glrunner(old)) if old == token => SecretOutcome::Unchanged,
            Some(StoredSecret::Glrunner(_)) => SecretOutcome::Updated,
        };
        state.namespaces.insert(secret.namespace.clone());
        state
            .secrets
            .insert(secret.clone(), StoredSecret::Glrunner(token.clone()));
        drop(state);
        tracing::info!(secret = %secret, ?outcome, "runner token secret ensured (memory)");
        Ok(outcome)
    }

    async fn get(&self, secret: &SecretRef) -> Result<Option<StoredTokenSecret>> {
        secret.validate()?;
        Ok(match self.lock().secrets.get(secret) {
            None => None,
            Some(StoredSecret::Glrunner(token)) => Some(StoredTokenSecret {
                token: token.clone(),
                registration_key_empty: true,
                managed_by_glrunner: true,
            }),
            Some(StoredSecret::Foreign) => {
                return Err(Error::invalid(
                    format!("{} key runner-token", secret.describe()),
                    "is not a glrunner runner token (the Secret was not created by glrunner)",
                    "choose another --secret-name",
                ));
            }
        })
    }

    async fn delete(&self, secret: &SecretRef) -> Result<bool> {
        secret.validate()?;
        let mut state = self.lock();
        match state.secrets.get(secret) {
            None => Ok(false),
            Some(StoredSecret::Foreign) => Err(secret.foreign_error("delete")),
            Some(StoredSecret::Glrunner(_)) => {
                state.secrets.remove(secret);
                Ok(true)
            }
        }
    }

    async fn ownership(&self, secret: &SecretRef) -> Result<Ownership> {
        secret.validate()?;
        Ok(match self.lock().secrets.get(secret) {
            None => Ownership::Absent,
            Some(StoredSecret::Glrunner(_)) => Ownership::Glrunner,
            Some(StoredSecret::Foreign) => Ownership::Foreign,
        })
    }

    async fn ensure_namespace(&self, namespace: &str) -> Result<bool> {
        crate::validate::namespace("namespace", namespace)
            .map_err(|i| Error::InvalidInput { issues: vec![i] })?;
        Ok(self.lock().namespaces.insert(namespace.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;

    #[tokio::test(start_paused = true)]
    async fn release_conformance() {
        let rm = InMemoryReleases::new();
        conformance::run_release_suite(&rm, "mem").await;
        conformance::run_recovery_suite(&rm, "mem", &conformance::Suite::default()).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_killed_install_is_cleared_once_pending_for_its_timeout() {
        let rm = InMemoryReleases::new();
        let s = spec("r").with_timeout(Duration::from_secs(120));
        assert!(
            tokio::time::timeout(Duration::from_secs(10), rm.ensure(&s))
                .await
                .is_err()
        );
        assert_eq!(rm.runners()[0].state, ReleaseState::PendingInstall);
        let rerun = tokio::time::Instant::now();
        let done = rm.ensure(&s).await.unwrap();
        assert_eq!((done.revision, done.state), (1, ReleaseState::Deployed));
        // Pending since 10 s before the re-run: it waits out the other 110 s of the timeout,
        // then the uninstall (5 s) and the install (45 s).
        let waited = rerun.elapsed();
        assert!(
            waited >= Duration::from_secs(110 + 5 + 45)
                && waited <= Duration::from_secs(110 + 5 + 45 + 2),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn secret_conformance() {
        let s = InMemoryTokenSecrets::new();
        conformance::run_secret_suite(&s, "mem").await;
    }

    fn spec(name: &str) -> ReleaseSpec {
        ReleaseSpec::new(
            name,
            "ci",
            RunnerValues::new("https://gitlab.example.com")
                .with_runner_tags(["t1"])
                .with_concurrent(50),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn install_takes_simulated_time_and_passes_through_pending() {
        let rm = InMemoryReleases::new();
        let mut changes = rm.subscribe();
        let start = tokio::time::Instant::now();
        let task = tokio::spawn({
            let rm = rm.clone();
            async move { rm.ensure(&spec("r")).await }
        });
        changes.changed().await.unwrap();
        let runners = rm.runners();
        assert_eq!(runners[0].state, ReleaseState::PendingInstall);
        assert!(!runners[0].is_ready());
        // A second operation while pending waits for the first (Helm would refuse it; the
        // client waits for the pending operation to end), then upgrades.
        let second = rm.ensure(&spec("r")).await.unwrap();
        assert_eq!((second.revision, second.state), (2, ReleaseState::Deployed));
        let status = task.await.unwrap().unwrap();
        assert_eq!((status.revision, status.state), (1, ReleaseState::Deployed));
        assert!(start.elapsed() >= Timing::default().install);
        let r = &rm.runners()[0];
        assert!(r.is_ready());
        assert_eq!(rm.ready_runners_for_tag("t1").len(), 1);
        assert!(rm.ready_runners_for_tag("t2").is_empty());
        assert_eq!(
            (r.tags.as_slice(), r.concurrent, r.job_namespace.as_str()),
            (&["t1".to_string()][..], 50, "ci")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn missing_secret_means_wait_times_out() {
        let secrets = InMemoryTokenSecrets::new();
        let rm = InMemoryReleases::new().with_secrets(secrets.clone());
        let s = spec("r").with_timeout(Duration::from_secs(120));
        let e = rm.ensure(&s).await.unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Timeout);
        assert_eq!(
            rm.status(&s.id()).await.unwrap().unwrap().state,
            ReleaseState::Failed
        );
        secrets
            .ensure(&s.secret(), &RunnerToken::new("glrt-x1").unwrap())
            .await
            .unwrap();
        assert_eq!(rm.ensure(&s).await.unwrap().state, ReleaseState::Deployed);
    }

    #[tokio::test(start_paused = true)]
    async fn slow_install_times_out_and_fork_is_independent() {
        let rm = InMemoryReleases::new()
            .with_timing(Timing::default().with_install(Duration::from_secs(900)));
        assert_eq!(
            rm.ensure(&spec("r")).await.unwrap_err().kind(),
            crate::ErrorKind::Timeout
        );
        let fork = rm.fork();
        rm.uninstall(&spec("r").id(), Duration::from_secs(60))
            .await
            .unwrap();
        assert!(rm.runners().is_empty());
        assert_eq!(fork.runners().len(), 1);
    }
}
