//! The janitor as a controller (`reap run`): a watch-backed store per namespace, the policy on every change, a deadline per pod, no re-listing.
//!
//! kube-runtime's `watcher` (list once, then watch from the last resourceVersion; on 410 Gone a
//! fresh list; errors retried with its `DefaultBackoff`, 0.8 s doubling to at most 30 s) feeds a
//! reflector store per namespace, selected server-side by the executor's job-pod label. After
//! each change the whole store is judged by [`Reaper`]'s own round (the same policy, UID
//! preconditions, dry run, GitLab and manager cross-checks, `--max-deletes`), and the controller
//! then sleeps until the earliest [`crate::policy::next_deadline`] of any pod, the next change, or
//! shutdown. Optionally it holds a [`crate::lease`] Lease (only the leader deletes), records a
//! Kubernetes Event on each deleted pod, and reaps the executor's orphaned per-job Secrets
//! ([`crate::secrets`]) from a second, metadata-only watch.
//!
//! Every Pending job pod is explained ([`crate::classify`]) from its status and the Warning
//! Events of a third watch (core/v1 Events, `involvedObject.kind=Pod,type=Warning`): the
//! observers see each explanation (the metrics count them by class), a class seen for the first
//! time is recorded as an Event on the pod, and — opt-in, [`ControllerConfig::reap_unrecoverable`]
//! — a pod whose class cannot recover is reaped at once, so its runner reports a failure instead
//! of waiting out `poll_timeout`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::{BoxStream, SelectAll};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Pod, Secret};
use kube::api::{Api, DeleteParams, PartialObjectMeta, Preconditions};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource as _, ResourceExt as _};
use serde::Serialize;

use crate::api::DynJobStatusSource;
use crate::classify::{PendingClass, PendingPod, PodEvent, explain, is_pending_job_pod};
use crate::clock::Clock;
use crate::k8s::{KubePodApi, pod_event, pod_info};
use crate::lease::{LeaderElector, LeaseConfig};
use crate::model::{PodInfo, keys};
use crate::policy::{ReapReason, next_deadline};
use crate::reaper::{Action, Reaper, ReaperConfig, Report, RoundInput};
use crate::secrets::{PodsView, SecretDecision, decide_secret, field_selector, secret_deadline};
use crate::{Error, Result};

/// Hooks into the controller, for metrics, explanations and extra verdicts. Every method has a
/// no-op default; observers are called on the controller's task, so they must be quick.
pub trait ControllerObserver: Send + Sync {
    /// The store's view after each change: every job pod of every namespace (but those the
    /// controller has deleted and the watch still shows), each Pending job pod explained (class,
    /// message, fix), and `now`.
    fn pods_changed(&self, pods: &[PodInfo], pending: &[PendingPod], now: Timestamp) {
        let _ = (pods, pending, now);
    }

    /// A pod was deleted (or set Terminating) for `reason`.
    fn pod_reaped(&self, pod: &Pod, reason: &ReapReason) {
        let _ = (pod, reason);
    }

    /// An extra verdict on a Pending job pod the policy keeps: `Some(rule)` reaps it now as
    /// [`ReapReason::Unrecoverable`] (e.g. a class of Pending that cannot recover).
    fn extra_reap(&self, pod: &Pod) -> Option<String> {
        let _ = pod;
        None
    }

    /// A round ended with `report`.
    fn round_done(&self, report: &Report) {
        let _ = report;
    }

    /// An orphaned executor Secret was deleted for `reason` (a [`SecretDecision`] code).
    fn secret_reaped(&self, namespace: &str, name: &str, reason: &str) {
        let _ = (namespace, name, reason);
    }
}

/// How the controller runs, beyond the reaper's configuration.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ControllerConfig {
    /// Record a Kubernetes Event (events.k8s.io/v1) on each deleted pod.
    pub events: bool,
    /// The Events' reporting controller.
    pub reporter: String,
    /// The Events' reporting instance and the Lease identity (in a pod: its name).
    pub instance: String,
    /// At most one round with GitLab/manager evidence per this interval (the lookups cost calls).
    pub evidence_interval: Duration,
    /// After a round capped by `--max-deletes`, the next round comes no sooner than this.
    pub capped_round_pause: Duration,
    /// Server-side timeout of each watch request, below the client's 60 s read timeout (the
    /// watch then resumes from its last resourceVersion: a watch, not a list).
    pub watch_timeout: Duration,
    /// Leader election on this Lease; `None`: act alone.
    pub lease: Option<LeaseConfig>,
    /// Also reap the executor's per-job Secrets whose pod is gone.
    pub reap_secrets: bool,
    /// Reap a Pending job pod as soon as its class cannot recover
    /// ([`PendingClass::unrecoverable`]): the runner then fails the job with a clear error
    /// instead of waiting out its `poll_timeout`. Off by default.
    pub reap_unrecoverable: bool,
}

impl ControllerConfig {
    /// Events on, no Lease, no Secrets; evidence at most every 60 s.
    pub fn new(instance: impl Into<String>) -> Self {
        Self {
            events: true,
            reporter: "glrunner-janitor".into(),
            instance: instance.into(),
            evidence_interval: Duration::from_secs(60),
            capped_round_pause: Duration::from_secs(10),
            watch_timeout: Duration::from_secs(50),
            lease: None,
            reap_secrets: false,
            reap_unrecoverable: false,
        }
    }

    /// Sets whether Pending job pods whose class cannot recover are reaped at once.
    #[must_use]
    pub fn with_reap_unrecoverable(mut self, reap: bool) -> Self {
        self.reap_unrecoverable = reap;
        self
    }

    /// Sets whether Events are recorded.
    #[must_use]
    pub fn with_events(mut self, events: bool) -> Self {
        self.events = events;
        self
    }

    /// Elects a leader on `lease`.
    #[must_use]
    pub fn with_lease(mut self, lease: Option<LeaseConfig>) -> Self {
        self.lease = lease;
        self
    }

    /// Sets Secret reaping.
    #[must_use]
    pub fn with_secrets(mut self, reap_secrets: bool) -> Self {
        self.reap_secrets = reap_secrets;
        self
    }

    /// Sets the pause after a capped round.
    #[must_use]
    pub fn with_capped_round_pause(mut self, pause: Duration) -> Self {
        self.capped_round_pause = pause;
        self
    }

    /// Sets the evidence interval.
    #[must_use]
    pub fn with_evidence_interval(mut self, interval: Duration) -> Self {
        self.evidence_interval = interval;
        self
    }

    /// Sets the server-side watch timeout (whole seconds, at least 1).
    #[must_use]
    pub fn with_watch_timeout(mut self, timeout: Duration) -> Self {
        self.watch_timeout = timeout.max(Duration::from_secs(1));
        self
    }
}

/// What a controller run did, when it stopped.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ControllerSummary {
    /// Rounds judged.
    pub rounds: u64,
    /// Pods deleted or set Terminating.
    pub deleted: usize,
    /// Failed deletes and lookups.
    pub errors: usize,
    /// Qualifying pods left for a later round (cap, or not leading).
    pub deferred: usize,
    /// Watch errors (apiserver unreachable, 410 Gone, ...), each retried with backoff.
    pub watch_errors: u64,
    /// Full lists the watchers made: at start one per watch (job pods and Warning Events per
    /// namespace, executor Secrets when reaped), then one after each 410.
    pub lists: u64,
    /// Events recorded on deleted pods.
    pub events_recorded: usize,
    /// Events the apiserver refused (the delete still counts).
    pub events_failed: usize,
    /// Events recorded on Pending job pods naming why they have not started.
    pub class_events_recorded: usize,
    /// Pending job pods reaped because their class cannot recover.
    pub unrecoverable_reaped: usize,
    /// Orphaned executor Secrets deleted.
    pub secrets_deleted: usize,
    /// Times this replica became leader.
    pub leaderships: u64,
}

/// The controller: see the module documentation.
pub struct Controller {
    client: Client,
    reaper: Reaper,
    config: ControllerConfig,
    observers: Vec<Arc<dyn ControllerObserver>>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("reaper", &self.reaper)
            .field("config", &self.config)
            .field("observers", &self.observers.len())
            .finish_non_exhaustive()
    }
}

/// How long the controller waits for more events after one, to judge a burst in one round.
const COALESCE_WINDOW: Duration = Duration::from_millis(20);
/// At most this many events coalesced into one round.
const COALESCE_MAX: usize = 10_000;

enum Change {
    // Boxed: a Pod event is some 2.5 kB, the Secret metadata variant a sixth of it.
    Pods(usize, Box<std::result::Result<Event<Pod>, watcher::Error>>),
    Secrets(Box<std::result::Result<Event<PartialObjectMeta<Secret>>, watcher::Error>>),
    Warnings(
        usize,
        Box<std::result::Result<Event<CoreEvent>, watcher::Error>>,
    ),
}

/// Which watch a change came from.
#[derive(Clone, Copy)]
enum Feed {
    Pods(usize),
    Secrets,
    Warnings(usize),
}

/// The field selector of the Warning-Event watch: only Events about pods, only warnings (the
/// classifier reads nothing else). Both fields are selectable on core/v1 Events (kubernetes
/// pkg/registry/core/event/strategy.go `ToSelectableFields`: `involvedObject.kind`, `type`).
pub const WARNING_EVENTS_SELECTOR: &str = "involvedObject.kind=Pod,type=Warning";

/// The longest `note` an events.k8s.io/v1 Event may carry (kubernetes
/// pkg/apis/events/validation/validation.go `NoteLengthLimit = 1024` bytes).
const EVENT_NOTE_LIMIT: usize = 1024;

impl Controller {
    /// A controller over `client` (deletes go through [`KubePodApi::from_client`] on the same
    /// client). Fails like [`Reaper::new`] on a bad namespace.
    pub fn new(client: Client, reaper: ReaperConfig, config: ControllerConfig) -> Result<Self> {
        let api = Arc::new(KubePodApi::from_client(client.clone()));
        Ok(Self {
            reaper: Reaper::new(api, reaper)?,
            client,
            config,
            observers: Vec::new(),
        })
    }

    /// Enables the GitLab cross-check.
    #[must_use]
    pub fn with_job_status(mut self, jobs: Arc<DynJobStatusSource>) -> Self {
        self.reaper = self.reaper.with_job_status(jobs);
        self
    }

    /// Uses `clock` for the policy's `now` (deadlines are still slept on tokio's clock).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.reaper = self.reaper.with_clock(clock);
        self
    }

    /// Adds observers.
    #[must_use]
    pub fn with_observers(
        mut self,
        observers: impl IntoIterator<Item = Arc<dyn ControllerObserver>>,
    ) -> Self {
        self.observers.extend(observers);
        self
    }

    fn namespaces(&self) -> Vec<String> {
        self.reaper
            .config()
            .policy
            .namespaces
            .iter()
            .cloned()
            .collect()
    }

    /// Runs until `shutdown` resolves (a round in flight finishes its deletes first), then
    /// gives up the Lease. Watch failures never end the run: they are retried with backoff.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<ControllerSummary> {
        let namespaces = self.namespaces();
        let mut stores: Vec<Store<Pod>> = Vec::new();
        let mut changes: SelectAll<BoxStream<'static, Change>> = SelectAll::new();
        let timeout = u32::try_from(self.config.watch_timeout.as_secs()).unwrap_or(50);
        for (i, ns) in namespaces.iter().enumerate() {
            let (reader, writer) = reflector::store::<Pod>();
            let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
            let config = watcher::Config::default()
                .labels(keys::LABEL_JOB_POD)
                .timeout(timeout);
            let stream = watcher::watcher(api, config)
                .default_backoff()
                .reflect(writer)
                .map(move |e| Change::Pods(i, Box::new(e)))
                .boxed();
            stores.push(reader);
            changes.push(stream);
        }
        // The Warning Events the classifier explains Pending pods from: a watch, like the pods'.
        let mut warning_stores: Vec<Store<CoreEvent>> = Vec::new();
        for (i, ns) in namespaces.iter().enumerate() {
            let (reader, writer) = reflector::store::<CoreEvent>();
            let api: Api<CoreEvent> = Api::namespaced(self.client.clone(), ns);
            let config = watcher::Config::default()
                .fields(WARNING_EVENTS_SELECTOR)
                .timeout(timeout);
            changes.push(
                watcher::watcher(api, config)
                    .default_backoff()
                    .reflect(writer)
                    .map(move |e| Change::Warnings(i, Box::new(e)))
                    .boxed(),
            );
            warning_stores.push(reader);
        }
        let mut secret_stores: Vec<Store<PartialObjectMeta<Secret>>> = Vec::new();
        if self.config.reap_secrets {
            for ns in &namespaces {
                let (reader, writer) = reflector::store::<PartialObjectMeta<Secret>>();
                let api: Api<PartialObjectMeta<Secret>> = Api::namespaced(self.client.clone(), ns);
                let config = watcher::Config::default()
                    .fields(&field_selector())
                    .timeout(timeout);
                changes.push(
                    watcher::watcher(api, config)
                        .default_backoff()
                        .reflect(writer)
                        .map(|e| Change::Secrets(Box::new(e)))
                        .boxed(),
                );
                secret_stores.push(reader);
            }
        }
        let elector = self
            .config
            .lease
            .clone()
            .map(|lease| LeaderElector::new(self.client.clone(), lease));
        let recorder = self.config.events.then(|| {
            Recorder::new(
                self.client.clone(),
                Reporter {
                    controller: self.config.reporter.clone(),
                    instance: Some(self.config.instance.clone()),
                },
            )
        });

        let mut state = LoopState {
            ready: vec![false; namespaces.len()],
            warnings_ready: vec![false; namespaces.len()],
            secrets_ready: vec![false; secret_stores.len()],
            ..LoopState::default()
        };
        let mut lease_tick = elector.as_ref().map(|e| {
            let mut t = tokio::time::interval(e.config().retry_period);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        tokio::pin!(shutdown);
        let mut wake: Option<tokio::time::Instant> = None;
        loop {
            let sleep: Pin<Box<dyn Future<Output = ()> + Send>> = match wake {
                Some(at) => Box::pin(tokio::time::sleep_until(at)),
                None => Box::pin(std::future::pending()),
            };
            let tick = async {
                match lease_tick.as_mut() {
                    Some(t) => {
                        t.tick().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let mut dirty = false;
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                change = changes.next() => {
                    let Some(change) = change else { break };
                    dirty |= state.apply(change);
                    // Coalesce a burst (a thousand deletions arrive as a thousand events) into
                    // one round: take what follows within a short quiet window, at most
                    // COALESCE_MAX events, so a round over the whole store is not run per event.
                    for _ in 0..COALESCE_MAX {
                        match tokio::time::timeout(COALESCE_WINDOW, changes.next()).await {
                            Ok(Some(change)) => dirty |= state.apply(change),
                            _ => break,
                        }
                    }
                }
                () = sleep => dirty = true,
                () = tick => {
                    if let Some(elector) = &elector {
                        let was = elector.is_leading();
                        match elector.try_acquire_or_renew().await {
                            Ok(true) if !was => {
                                tracing::info!(identity = %elector.config().identity, "became leader");
                                state.summary.leaderships += 1;
                                dirty = true;
                            }
                            Ok(true) => {}
                            Ok(false) if was => tracing::warn!("lost the lease; not acting"),
                            Ok(false) => {}
                            Err(e) => tracing::warn!(error = %e, "lease renewal failed; not acting"),
                        }
                    }
                }
            }
            if !dirty || !state.ready.iter().chain(&state.warnings_ready).all(|r| *r) {
                continue;
            }
            let leading = || elector.as_ref().is_none_or(LeaderElector::is_leading);
            wake = self
                .round(
                    Stores {
                        pods: &stores,
                        warnings: &warning_stores,
                        secrets: &secret_stores,
                    },
                    &mut state,
                    recorder.as_ref(),
                    &leading,
                )
                .await;
        }
        if let Some(elector) = &elector
            && let Err(e) = elector.release().await
        {
            tracing::warn!(error = %e, "could not release the lease; it expires on its own");
        }
        Ok(state.summary)
    }

    /// One round over the stores; returns when to wake for the next deadline.
    fn round<'a>(
        &'a self,
        stores: Stores<'a>,
        state: &'a mut LoopState,
        recorder: Option<&'a Recorder>,
        leading: &'a (dyn Fn() -> bool + Sync),
    ) -> futures::future::BoxFuture<'a, Option<tokio::time::Instant>> {
        Box::pin(self.round_inner(stores, state, recorder, leading))
    }

    async fn round_inner(
        &self,
        stores: Stores<'_>,
        state: &mut LoopState,
        recorder: Option<&Recorder>,
        leading: &(dyn Fn() -> bool + Sync),
    ) -> Option<tokio::time::Instant> {
        let t0 = tokio::time::Instant::now();
        // After a capped round, no deletes until the pause is over, however many events come.
        if let Some(until) = state.hold_until
            && until > t0
        {
            return Some(until);
        }
        let now = self.reaper.now();
        let pods: Vec<Arc<Pod>> = stores.pods.iter().flat_map(Store::state).collect();
        let live: HashSet<String> = pods.iter().filter_map(|p| p.metadata.uid.clone()).collect();
        state.in_flight.retain(|uid, _| live.contains(uid));
        state.classes.retain(|uid, _| live.contains(uid));
        let mut infos = Vec::with_capacity(pods.len());
        let mut by_uid: HashMap<String, Arc<Pod>> = HashMap::with_capacity(pods.len());
        // Deleted by us and unchanged since: the watch has not caught up yet.
        let mut in_flight: HashSet<String> = HashSet::new();
        for pod in &pods {
            let info = match pod_info(pod) {
                Ok(Some(info)) => info,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "pod skipped");
                    continue;
                }
            };
            if state
                .in_flight
                .get(&info.uid)
                .is_some_and(|rv| pod.metadata.resource_version.as_ref() == Some(rv))
            {
                in_flight.insert(info.uid.clone());
            }
            by_uid.insert(info.uid.clone(), pod.clone());
            infos.push(info);
        }
        // A pod we deleted is gone for every purpose below: the gauges must not count it as a
        // Pending pod `starting` while the watch catches up, nor the policy judge it twice.
        infos.retain(|p| !in_flight.contains(&p.uid));
        let pending = self.explain_pending(&infos, stores.warnings, now);
        for o in &self.observers {
            o.pods_changed(&infos, &pending, now);
        }
        let mut extra = HashMap::new();
        for explained in &pending {
            let uid = &explained.uid;
            let observer_rule = by_uid
                .get(uid)
                .and_then(|pod| self.observers.iter().find_map(|o| o.extra_reap(pod)));
            let rule = observer_rule.or_else(|| {
                (self.config.reap_unrecoverable && explained.unrecoverable)
                    .then(|| explained.class.code().to_owned())
            });
            if let Some(rule) = rule {
                extra.insert(uid.clone(), ReapReason::Unrecoverable { rule });
            }
        }
        let with_evidence = self.reaper.gathers_evidence();
        let evidence_due = with_evidence
            && state
                .last_evidence
                .is_none_or(|t| t.elapsed() >= self.config.evidence_interval);
        let mut next: Option<Timestamp> = infos
            .iter()
            .filter_map(|p| next_deadline(p, now, &self.reaper.config().policy, with_evidence))
            .min();
        if !leading() {
            // Not the leader: judge nothing, delete nothing; the lease tick wakes us.
            return None;
        }
        // A class seen for the first time on a pod (or changed) is recorded on it, once.
        let newly_classified: Vec<(Arc<Pod>, PendingPod)> = pending
            .iter()
            .filter(|p| p.class != PendingClass::Starting)
            .filter(|p| state.classes.insert(p.uid.clone(), p.class) != Some(p.class))
            .filter_map(|p| Some((by_uid.get(&p.uid)?.clone(), p.clone())))
            .collect();
        let kept_before: Vec<PodInfo> = if with_evidence {
            infos.clone()
        } else {
            Vec::new()
        };
        let report = self
            .reaper
            .round_over(
                infos,
                now,
                t0,
                RoundInput {
                    gather_evidence: evidence_due,
                    extra,
                    gate: Some(leading),
                },
            )
            .await;
        if evidence_due {
            state.last_evidence = Some(std::time::Instant::now());
        }
        state.summary.rounds += 1;
        state.summary.deleted += report.deleted();
        state.summary.errors += report.errors.len();
        state.summary.deferred += report.deferred;
        state.summary.unrecoverable_reaped += report
            .reaped
            .iter()
            .filter(|r| matches!(r.reason, ReapReason::Unrecoverable { .. }))
            .filter(|r| matches!(r.action, Action::Deleted | Action::Terminating))
            .count();
        let acted: Vec<(Arc<Pod>, ReapReason, Action)> = report
            .reaped
            .iter()
            .filter(|r| matches!(r.action, Action::Deleted | Action::Terminating))
            .filter_map(|r| Some((by_uid.get(&r.uid)?.clone(), r.reason.clone(), r.action)))
            .collect();
        for (pod, reason, _) in &acted {
            if let (Some(uid), Some(rv)) = (&pod.metadata.uid, &pod.metadata.resource_version) {
                state.in_flight.insert(uid.clone(), rv.clone());
            }
            for o in &self.observers {
                o.pod_reaped(pod, reason);
            }
        }
        if let Some(recorder) = recorder {
            let concurrency = self.reaper.config().concurrency.get();
            let results: Vec<bool> = futures::stream::iter(acted.clone())
                .map(|(pod, reason, action)| {
                    let recorder = recorder.clone();
                    record(recorder, pod, reason, action)
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
            let ok = results.iter().filter(|ok| **ok).count();
            state.summary.events_recorded += ok;
            state.summary.events_failed += results.len() - ok;
            let results: Vec<bool> = futures::stream::iter(newly_classified)
                .map(|(pod, explained)| record_class(recorder.clone(), pod, explained))
                .buffer_unordered(concurrency)
                .collect()
                .await;
            let ok = results.iter().filter(|ok| **ok).count();
            state.summary.class_events_recorded += ok;
            state.summary.events_failed += results.len() - ok;
        }
        for o in &self.observers {
            o.round_done(&report);
        }
        if !stores.secrets.is_empty() && state.secrets_ready.iter().all(|r| *r) {
            let secret_next = self
                .reap_secrets(&pods, stores.secrets, now, state, leading)
                .await;
            next = [next, secret_next].into_iter().flatten().min();
        }

        let mut wake = next.and_then(|t| instant_at(t, now));
        if with_evidence && !kept_before.is_empty() {
            let at = state
                .last_evidence
                .map(|t| t + self.config.evidence_interval)
                .unwrap_or_else(std::time::Instant::now);
            let at = tokio::time::Instant::from_std(at);
            wake = Some(wake.map_or(at, |w| w.min(at)));
        }
        state.hold_until = None;
        if report.deferred > 0 {
            let at = tokio::time::Instant::now() + self.config.capped_round_pause;
            if self.reaper.config().max_deletes.is_some() {
                state.hold_until = Some(at);
            }
            wake = Some(wake.map_or(at, |w| w.min(at)));
        }
        wake
    }

    /// Explains every Pending job pod of `infos` from its status and the Warning Events about it.
    fn explain_pending(
        &self,
        infos: &[PodInfo],
        warnings: &[Store<CoreEvent>],
        now: Timestamp,
    ) -> Vec<PendingPod> {
        let pending: Vec<&PodInfo> = infos.iter().filter(|p| is_pending_job_pod(p)).collect();
        if pending.is_empty() {
            return Vec::new();
        }
        // Indexed by (namespace, pod name): each pod reads only its own Events.
        let mut by_pod: HashMap<(String, String), Vec<PodEvent>> = HashMap::new();
        for event in warnings.iter().flat_map(Store::state) {
            if let Some(event) = pod_event(&event) {
                by_pod
                    .entry((event.namespace.clone(), event.pod_name.clone()))
                    .or_default()
                    .push(event);
            }
        }
        pending
            .into_iter()
            .map(|pod| {
                let own = by_pod
                    .get(&(pod.namespace.clone(), pod.name.clone()))
                    .map_or(&[][..], Vec::as_slice);
                explain(pod, own, now)
            })
            .collect()
    }

    fn reap_secrets<'a>(
        &'a self,
        pods: &'a [Arc<Pod>],
        stores: &'a [Store<PartialObjectMeta<Secret>>],
        now: Timestamp,
        state: &'a mut LoopState,
        leading: &'a (dyn Fn() -> bool + Sync),
    ) -> futures::future::BoxFuture<'a, Option<Timestamp>> {
        Box::pin(self.reap_secrets_inner(pods, stores, now, state, leading))
    }

    async fn reap_secrets_inner(
        &self,
        pods: &[Arc<Pod>],
        stores: &[Store<PartialObjectMeta<Secret>>],
        now: Timestamp,
        state: &mut LoopState,
        leading: &(dyn Fn() -> bool + Sync),
    ) -> Option<Timestamp> {
        let policy = &self.reaper.config().policy;
        let view = PodsView {
            uids: pods.iter().filter_map(|p| p.metadata.uid.clone()).collect(),
            pull_secrets: pods
                .iter()
                .flat_map(|p| {
                    let ns = p.metadata.namespace.clone().unwrap_or_default();
                    p.spec
                        .iter()
                        .flat_map(|s| s.image_pull_secrets.iter().flatten())
                        .map(move |r| (ns.clone(), r.name.clone()))
                })
                .collect::<BTreeSet<_>>(),
        };
        let mut next = None;
        let secrets: Vec<_> = stores.iter().flat_map(Store::state).collect();
        for secret in secrets {
            let meta = &secret.metadata;
            match decide_secret(meta, now, policy, &view) {
                SecretDecision::Reap(why) => {
                    let (Some(ns), Some(name), Some(uid)) =
                        (&meta.namespace, &meta.name, &meta.uid)
                    else {
                        continue;
                    };
                    if state.deleted_secrets.contains(uid) {
                        continue;
                    }
                    if self.reaper.config().dry_run {
                        tracing::info!(secret = %format!("{ns}/{name}"), reason = why, "would delete secret");
                        state.deleted_secrets.insert(uid.clone());
                        continue;
                    }
                    if !leading() {
                        break;
                    }
                    let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
                    let params = DeleteParams {
                        preconditions: Some(Preconditions {
                            uid: Some(uid.clone()),
                            resource_version: None,
                        }),
                        ..DeleteParams::default()
                    };
                    match api.delete(name, &params).await {
                        Ok(_) => {
                            tracing::info!(secret = %format!("{ns}/{name}"), reason = why, "deleted secret");
                            state.summary.secrets_deleted += 1;
                            state.deleted_secrets.insert(uid.clone());
                            for o in &self.observers {
                                o.secret_reaped(ns, name, why);
                            }
                        }
                        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {
                            state.deleted_secrets.insert(uid.clone());
                        }
                        Err(e) => {
                            state.summary.errors += 1;
                            tracing::warn!(error = %e, secret = %format!("{ns}/{name}"), "delete secret failed");
                        }
                    }
                }
                SecretDecision::Keep(_) => {
                    if let Some(t) = secret_deadline(meta, now, policy, &view) {
                        next = Some(next.map_or(t, |n: Timestamp| n.min(t)));
                    }
                }
            }
        }
        next
    }
}

/// Records the Event of one deletion; `false` when the apiserver refused it.
fn record(
    recorder: Recorder,
    pod: Arc<Pod>,
    reason: ReapReason,
    action: Action,
) -> futures::future::BoxFuture<'static, bool> {
    Box::pin(async move { record_one(&recorder, &pod, &reason, action).await })
}

async fn record_one(recorder: &Recorder, pod: &Pod, reason: &ReapReason, action: Action) -> bool {
    let event = KubeEvent {
        type_: EventType::Normal,
        reason: event_reason(reason).into(),
        note: Some(format!(
            "glrunner-janitor deleted this job pod: {reason} (rule {}){}",
            reason.code(),
            if reason.delete_mode().is_force() {
                ", grace period 0"
            } else {
                ""
            }
        )),
        action: match action {
            Action::Terminating => "DeleteGracefully".into(),
            _ if reason.delete_mode().is_force() => "ForceDelete".into(),
            _ => "Delete".into(),
        },
        secondary: None,
    };
    match recorder.publish(&event, &pod.object_ref(&())).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, pod = %pod.name_any(), "could not record the deletion Event");
            false
        }
    }
}

/// Records why a Pending job pod has not started; `false` when the apiserver refused it.
fn record_class(
    recorder: Recorder,
    pod: Arc<Pod>,
    explained: PendingPod,
) -> futures::future::BoxFuture<'static, bool> {
    Box::pin(async move {
        let note = truncate_note(format!(
            "glrunner-janitor: this job pod has not started: {} ({}: {}). Fix: {}",
            explained.class.code(),
            explained.source,
            explained.message,
            explained.fix
        ));
        let event = KubeEvent {
            type_: if explained.unrecoverable {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: class_event_reason(explained.class),
            note: Some(note),
            action: "Classify".into(),
            secondary: None,
        };
        match recorder.publish(&event, &pod.object_ref(&())).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, pod = %pod.name_any(), "could not record the class Event");
                false
            }
        }
    })
}

/// The class Event's `reason`: `Pending` and the class in PascalCase (`PendingFargatePrivileged`).
pub fn class_event_reason(class: PendingClass) -> String {
    let mut reason = String::from("Pending");
    for word in class.code().split('_') {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            reason.extend(first.to_uppercase());
            reason.push_str(chars.as_str());
        }
    }
    reason
}

/// Cuts `note` to [`EVENT_NOTE_LIMIT`] bytes on a character boundary.
fn truncate_note(mut note: String) -> String {
    if note.len() > EVENT_NOTE_LIMIT {
        let mut end = EVENT_NOTE_LIMIT - '…'.len_utf8();
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push('…');
    }
    note
}

/// The Event's `reason`: the policy rule in the PascalCase Kubernetes uses for reasons.
pub fn event_reason(reason: &ReapReason) -> &'static str {
    match reason {
        ReapReason::Finished { .. } => "ReapedFinished",
        ReapReason::PendingTooLong => "ReapedPendingTooLong",
        ReapReason::PastJobTimeout { .. } => "ReapedPastJobTimeout",
        ReapReason::StuckTerminating => "ReapedStuckTerminating",
        ReapReason::ManagerGone { .. } => "ReapedManagerGone",
        ReapReason::GitLabJobFinished { .. } => "ReapedGitLabJobFinished",
        ReapReason::Unrecoverable { .. } => "ReapedUnrecoverable",
    }
}

fn instant_at(at: Timestamp, now: Timestamp) -> Option<tokio::time::Instant> {
    let wait = Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO);
    Some(tokio::time::Instant::now() + wait)
}

/// The watch stores a round reads.
#[derive(Clone, Copy)]
struct Stores<'a> {
    pods: &'a [Store<Pod>],
    warnings: &'a [Store<CoreEvent>],
    secrets: &'a [Store<PartialObjectMeta<Secret>>],
}

#[derive(Default)]
struct LoopState {
    ready: Vec<bool>,
    warnings_ready: Vec<bool>,
    secrets_ready: Vec<bool>,
    /// UID → the class last recorded on the pod as an Event.
    classes: HashMap<String, PendingClass>,
    /// UID → resourceVersion of pods deleted by us and not yet seen changed or gone.
    in_flight: HashMap<String, String>,
    deleted_secrets: HashSet<String>,
    last_evidence: Option<std::time::Instant>,
    hold_until: Option<tokio::time::Instant>,
    summary: ControllerSummary,
    secrets_seen: usize,
}

impl LoopState {
    /// Applies one change; `true` when the store's view changed.
    fn apply(&mut self, change: Change) -> bool {
        let failed = match change {
            Change::Pods(i, event) => match *event {
                Ok(event) => return self.event(Feed::Pods(i), &event),
                Err(e) => e,
            },
            Change::Secrets(event) => match *event {
                Ok(event) => return self.event(Feed::Secrets, &event),
                Err(e) => e,
            },
            Change::Warnings(i, event) => match *event {
                Ok(event) => return self.event(Feed::Warnings(i), &event),
                Err(e) => e,
            },
        };
        self.summary.watch_errors += 1;
        tracing::warn!(error = %failed, "watch failed; retrying with backoff");
        false
    }

    fn event<K>(&mut self, feed: Feed, event: &Event<K>) -> bool {
        match event {
            Event::Init => {
                self.summary.lists += 1;
                false
            }
            Event::InitApply(_) => false,
            Event::InitDone => {
                match feed {
                    Feed::Pods(i) => {
                        if let Some(r) = self.ready.get_mut(i) {
                            *r = true;
                        }
                    }
                    Feed::Warnings(i) => {
                        if let Some(r) = self.warnings_ready.get_mut(i) {
                            *r = true;
                        }
                    }
                    Feed::Secrets => {
                        if let Some(r) = self.secrets_ready.get_mut(self.secrets_seen) {
                            *r = true;
                        }
                        self.secrets_seen = (self.secrets_seen + 1).min(self.secrets_ready.len());
                    }
                }
                true
            }
            Event::Apply(_) | Event::Delete(_) => true,
        }
    }
}

/// Maps a watcher error to the crate's error (for callers that surface one).
pub fn watch_error(namespace: &str, e: &watcher::Error) -> Error {
    Error::Backend {
        backend: "kubernetes",
        action: "watch".into(),
        resource: format!("pods in namespace {namespace}"),
        message: e.to_string(),
        source: None,
    }
}
