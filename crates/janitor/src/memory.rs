//! In-memory backends: [`InMemoryPods`] (a pod store with the API server's delete semantics) and
//! [`InMemoryJobStatus`]; clones share state, so a sandbox world can drive and observe them.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::api::{JobStatus, JobStatusSource, PodApi};
use crate::classify::{PodEvent, PodSignals};
use crate::clock::{Clock, SystemClock};
use crate::model::{
    DeleteMode, DeleteOutcome, ListQuery, OwnerRef, PodInfo, PodKey, PodPhase, PodRequests, keys,
};
use crate::{Error, Result};

const BACKEND: &str = "memory";
/// The API server's default grace period for pods (`terminationGracePeriodSeconds`).
const DEFAULT_GRACE_SECONDS: u32 = 30;

/// A pod to insert into [`InMemoryPods`]: a builder with presets for the pods a runner fleet has.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPod {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Owner references.
    pub owners: Vec<OwnerRef>,
    /// Phase.
    pub phase: PodPhase,
    /// `spec.nodeName`.
    pub node_name: Option<String>,
    /// Creation time; `None` takes the store's clock.
    pub created_at: Option<Timestamp>,
    /// `status.startTime`.
    pub started_at: Option<Timestamp>,
    /// Resource requests.
    pub requests: PodRequests,
    /// Conditions, container states, scheduler name (set through the status subresource on a
    /// real API server, which ignores `status` on create).
    pub signals: PodSignals,
}

impl NewPod {
    /// A bare Pending pod with no labels.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            owners: Vec::new(),
            phase: PodPhase::Pending,
            node_name: None,
            created_at: None,
            started_at: None,
            requests: PodRequests::default(),
            signals: PodSignals::default(),
        }
    }

    /// A job pod as GitLab Runner's Kubernetes executor creates it: name
    /// `runner-<token>-project-<project>-concurrent-<slot>-<suffix>`, the executor's labels and
    /// annotations (job ID, project ID, a 1 h timeout, the manager's name).
    pub fn job(namespace: impl Into<String>, manager: &str, project_id: u64, job_id: u64) -> Self {
        let prefix = format!(
            "runner-3lj4ihzt1-project-{project_id}-concurrent-{}",
            job_id % 10
        );
        let name = format!(
            "{prefix}-{:08x}",
            job_id.wrapping_mul(0x9e37_79b9) & 0xffff_ffff
        );
        Self::new(namespace, name)
            .with_label(keys::LABEL_JOB_POD, &prefix)
            .with_label("pod", &prefix)
            .with_label(keys::ANNOTATION_PROJECT_ID, &project_id.to_string())
            .with_label(keys::LABEL_MANAGER_NAME, manager)
            .with_annotation(keys::ANNOTATION_JOB_ID, &job_id.to_string())
            .with_annotation(keys::ANNOTATION_PROJECT_ID, &project_id.to_string())
            .with_annotation(keys::ANNOTATION_JOB_TIMEOUT, "1h0m0s")
            .with_annotation(
                keys::ANNOTATION_JOB_URL,
                &format!("https://gitlab.example.com/p/-/jobs/{job_id}"),
            )
    }

    /// A runner-manager pod as the gitlab-runner chart's Deployment creates it (chart labels,
    /// owned by a ReplicaSet), named `<release>-gitlab-runner-<hash>-<suffix>`.
    pub fn manager(namespace: impl Into<String>, release: &str, suffix: &str) -> Self {
        let app = format!("{release}-gitlab-runner");
        let rs = format!("{app}-5fd7489954");
        Self::new(namespace, format!("{rs}-{suffix}"))
            .with_label("app", &app)
            .with_label("chart", "gitlab-runner-0.86.0")
            .with_label("release", release)
            .with_label("heritage", "Helm")
            .with_label("pod-template-hash", "5fd7489954")
            .with_owner(OwnerRef::controller("ReplicaSet", rs))
            .with_phase(PodPhase::Running)
            .with_node("fargate-manager")
    }

    /// Adds a label.
    #[must_use]
    pub fn with_label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Adds an annotation.
    #[must_use]
    pub fn with_annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Adds an owner reference.
    #[must_use]
    pub fn with_owner(mut self, owner: OwnerRef) -> Self {
        self.owners.push(owner);
        self
    }

    /// Sets the phase.
    #[must_use]
    pub fn with_phase(mut self, phase: PodPhase) -> Self {
        self.phase = phase;
        self
    }

    /// Binds the pod to a node.
    #[must_use]
    pub fn with_node(mut self, node: &str) -> Self {
        self.node_name = Some(node.to_owned());
        self
    }

    /// Sets the creation time.
    #[must_use]
    pub fn created_at(mut self, at: Timestamp) -> Self {
        self.created_at = Some(at);
        self
    }

    /// Sets `status.startTime`.
    #[must_use]
    pub fn started_at(mut self, at: Timestamp) -> Self {
        self.started_at = Some(at);
        self
    }

    /// Sets the conditions, container states and scheduler name.
    #[must_use]
    pub fn with_signals(mut self, signals: PodSignals) -> Self {
        self.signals = signals;
        self
    }

    /// Sets the resource requests.
    #[must_use]
    pub fn with_requests(mut self, cpu_millis: u64, memory_mib: u64) -> Self {
        self.requests = PodRequests {
            cpu_millis,
            memory_mib,
        };
        self
    }
}

/// One delete call the store accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeletionRecord {
    /// The pod deleted.
    pub key: PodKey,
    /// The grace period asked for.
    pub grace_seconds: Option<u32>,
    /// What happened.
    pub outcome: DeleteOutcome,
    /// When (store clock).
    pub at: Timestamp,
}

/// A failure to inject into [`InMemoryPods`] calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// HTTP 429.
    Throttled,
    /// HTTP 403.
    PermissionDenied,
    /// Connection refused / 5xx.
    Unavailable,
}

/// How many calls each operation received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CallCounts {
    /// `list_pods` calls.
    pub lists: u64,
    /// Pages served (one per `limit`/`continue` round trip).
    pub list_pages: u64,
    /// `get_pod` calls.
    pub gets: u64,
    /// `delete_pod` calls (including failed ones).
    pub deletes: u64,
}

#[derive(Debug, Default)]
struct State {
    pods: BTreeMap<(String, String), PodInfo>,
    /// Pods given a deletion timestamp, by that timestamp: what [`State::settle`] may remove,
    /// found without walking every pod (a call per API request would make a big fleet's cost
    /// grow with the pods squared).
    terminating: BTreeSet<(Timestamp, String, String)>,
    next_uid: u64,
    deletions: Vec<DeletionRecord>,
    clock: Option<Arc<dyn Clock>>,
    latency: Duration,
    kubelets: bool,
    dead_nodes: BTreeSet<String>,
    list_fault: Option<Fault>,
    delete_faults: BTreeMap<String, Fault>,
    calls: CallCounts,
    deletion_events: Option<tokio::sync::broadcast::Sender<DeletionRecord>>,
    /// Events about pods, by namespace. Like the API server's, they outlive their pod (kept for
    /// `--event-ttl`, default 1h, kube-apiserver `options.go`); this store never expires them.
    events: BTreeMap<String, Vec<PodEvent>>,
}

impl State {
    fn now(&self) -> Timestamp {
        match &self.clock {
            Some(clock) => clock.now(),
            None => SystemClock.now(),
        }
    }

    /// With live kubelets, Terminating pods on healthy nodes disappear once their grace is over.
    fn settle(&mut self) {
        if !self.kubelets {
            return;
        }
        let now = self.now();
        while let Some(first) = self.terminating.first() {
            if first.0 > now {
                break;
            }
            let (at, namespace, name) = self.terminating.pop_first().expect("checked above");
            let id = (namespace, name);
            // Gone since, given another deletion timestamp (indexed again), unbound, or on a node
            // whose kubelet is gone (nodes never come back): nothing to do for this entry.
            let done = self.pods.get(&id).is_some_and(|p| {
                p.deletion_timestamp == Some(at)
                    && p.node_name
                        .as_ref()
                        .is_some_and(|node| !self.dead_nodes.contains(node))
            });
            if done {
                self.pods.remove(&id);
            }
        }
    }
}

/// An in-memory pod store implementing [`PodApi`] with the API server's semantics the janitor relies
/// on: server-side label selection, pagination (one round trip per page of `page_size`), UID
/// preconditions (409 Conflict), immediate deletion of unbound and of Succeeded/Failed pods, and
/// other bound pods going Terminating until their kubelet confirms (or a force delete).
///
/// By default there are no kubelets, as on the test apiserver: bound pods stay Terminating forever.
/// [`InMemoryPods::with_kubelets`] makes them go away once their grace period ends, except on nodes
/// marked dead with [`InMemoryPods::kill_node`]. Time comes from the injected [`Clock`]
/// (e.g. [`crate::clock::TokioClock`] on a paused tokio runtime); latency uses `tokio::time::sleep`.
#[derive(Debug, Clone, Default)]
pub struct InMemoryPods {
    state: Arc<Mutex<State>>,
}

impl InMemoryPods {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `clock` for creation and deletion timestamps.
    #[must_use]
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        self.lock().clock = Some(clock);
        self
    }

    /// Simulates live kubelets (see the type's docs).
    #[must_use]
    pub fn with_kubelets(self, kubelets: bool) -> Self {
        self.lock().kubelets = kubelets;
        self
    }

    /// Makes every API call take `latency` (tokio time).
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Inserts a pod, assigning a UID (and the creation time if unset), and returns its key.
    /// Fails with [`Error::AlreadyExists`] if a pod with that name exists.
    pub fn insert(&self, pod: NewPod) -> Result<PodKey> {
        let mut guard = self.lock();
        let st = &mut *guard;
        let created_at = pod.created_at.unwrap_or_else(|| st.now());
        let entry = match st.pods.entry((pod.namespace, pod.name)) {
            Entry::Occupied(e) => {
                let (namespace, name) = e.key();
                return Err(Error::AlreadyExists {
                    action: "create pod".into(),
                    resource: format!("pod {namespace}/{name}"),
                });
            }
            Entry::Vacant(e) => e,
        };
        st.next_uid += 1;
        let (namespace, name) = entry.key().clone();
        let key = PodKey {
            namespace: namespace.clone(),
            name: name.clone(),
            uid: format!("mem-{:08}", st.next_uid),
        };
        entry.insert(PodInfo {
            uid: key.uid.clone(),
            created_at,
            namespace,
            name,
            labels: pod.labels,
            annotations: pod.annotations,
            owners: pod.owners,
            phase: pod.phase,
            node_name: pod.node_name,
            started_at: pod.started_at,
            deletion_timestamp: None,
            requests: pod.requests,
            signals: pod.signals,
        });
        Ok(key)
    }

    /// Changes a pod in place (phase, labels, annotations, owners, node, times...). The UID and
    /// name are restored after `change` runs. Fails with [`Error::NotFound`].
    pub fn update(
        &self,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut PodInfo),
    ) -> Result<()> {
        let mut guard = self.lock();
        let st = &mut *guard;
        let pod = st
            .pods
            .get_mut(&(namespace.to_owned(), name.to_owned()))
            .ok_or_else(|| Error::NotFound {
                action: "update pod".into(),
                resource: format!("pod {namespace}/{name}"),
            })?;
        let uid = pod.uid.clone();
        change(pod);
        namespace.clone_into(&mut pod.namespace);
        name.clone_into(&mut pod.name);
        pod.uid = uid;
        if let Some(at) = pod.deletion_timestamp {
            st.terminating
                .insert((at, namespace.to_owned(), name.to_owned()));
        }
        Ok(())
    }

    /// Sets a pod's phase (and `startTime` when it starts running).
    pub fn set_phase(&self, namespace: &str, name: &str, phase: PodPhase) -> Result<()> {
        let now = self.lock().now();
        self.update(namespace, name, |p| {
            if phase == PodPhase::Running && p.started_at.is_none() {
                p.started_at = Some(now);
            }
            p.phase = phase;
        })
    }

    /// Removes a pod outright, as a kubelet confirming termination or the runner cleaning up would.
    /// Not recorded in [`InMemoryPods::deletions`].
    pub fn remove(&self, namespace: &str, name: &str) -> Option<PodInfo> {
        self.lock()
            .pods
            .remove(&(namespace.to_owned(), name.to_owned()))
    }

    /// Marks a node's kubelet as gone: its Terminating pods stay Terminating.
    pub fn kill_node(&self, node: &str) {
        self.lock().dead_nodes.insert(node.to_owned());
    }

    /// A snapshot of every pod, ordered by namespace and name.
    pub fn pods(&self) -> Vec<PodInfo> {
        let mut st = self.lock();
        st.settle();
        st.pods.values().cloned().collect()
    }

    /// One pod, if it exists.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<PodInfo> {
        let mut st = self.lock();
        st.settle();
        st.pods
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Records an Event about a pod, as a scheduler or kubelet would.
    pub fn record_event(&self, event: PodEvent) {
        self.lock()
            .events
            .entry(event.namespace.clone())
            .or_default()
            .push(event);
    }

    /// Every delete call accepted so far.
    pub fn deletions(&self) -> Vec<DeletionRecord> {
        self.lock().deletions.clone()
    }

    /// Returns and forgets the delete calls accepted so far.
    pub fn take_deletions(&self) -> Vec<DeletionRecord> {
        std::mem::take(&mut self.lock().deletions)
    }

    /// A stream of accepted delete calls from now on (lagging receivers lose the oldest records).
    pub fn subscribe_deletions(&self) -> tokio::sync::broadcast::Receiver<DeletionRecord> {
        let mut st = self.lock();
        st.deletion_events
            .get_or_insert_with(|| tokio::sync::broadcast::channel(1024).0)
            .subscribe()
    }

    /// How many calls each operation received.
    pub fn calls(&self) -> CallCounts {
        self.lock().calls
    }

    /// Makes every `list_pods` call fail (or succeed again with `None`).
    pub fn fail_lists(&self, fault: Option<Fault>) {
        self.lock().list_fault = fault;
    }

    /// Makes deletes of the pod named `name` (any namespace) fail (or succeed again with `None`).
    pub fn fail_deletes_of(&self, name: &str, fault: Option<Fault>) {
        let mut st = self.lock();
        match fault {
            Some(f) => st.delete_faults.insert(name.to_owned(), f),
            None => st.delete_faults.remove(name),
        };
    }

    async fn delay(&self) {
        let latency = self.lock().latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }
}

fn fault_error(fault: Fault, action: &str, resource: String) -> Error {
    let action = action.to_owned();
    match fault {
        Fault::Throttled => Error::Throttled { action, resource },
        Fault::PermissionDenied => Error::PermissionDenied {
            action,
            resource,
            message: "injected fault (HTTP 403)".into(),
        },
        Fault::Unavailable => Error::Backend {
            backend: BACKEND,
            action,
            resource,
            message: "injected fault: API server unavailable".into(),
            source: None,
        },
    }
}

/// One term of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Exists(String),
    NotExists(String),
    Equals(String, String),
    NotEquals(String, String),
}

fn parse_selector(selector: &str) -> Result<Vec<Term>> {
    let invalid = |why: &str| {
        Error::invalid(
            "label selector",
            format!(
                "{selector:?}: {why}; the memory backend supports key, !key, key=value, key!=value"
            ),
        )
    };
    selector
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            if let Some(key) = t.strip_prefix('!') {
                Ok(Term::NotExists(key.trim().to_owned()))
            } else if let Some((k, v)) = t.split_once("!=") {
                Ok(Term::NotEquals(k.trim().to_owned(), v.trim().to_owned()))
            } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
                Ok(Term::Equals(k.trim().to_owned(), v.trim().to_owned()))
            } else if t.contains(' ') || t.contains('(') {
                Err(invalid("set-based selectors are not supported"))
            } else {
                Ok(Term::Exists(t.to_owned()))
            }
        })
        .collect()
}

fn matches(terms: &[Term], labels: &BTreeMap<String, String>) -> bool {
    terms.iter().all(|t| match t {
        Term::Exists(k) => labels.contains_key(k),
        Term::NotExists(k) => !labels.contains_key(k),
        Term::Equals(k, v) => labels.get(k) == Some(v),
        Term::NotEquals(k, v) => labels.get(k) != Some(v),
    })
}

#[async_trait]
impl PodApi for InMemoryPods {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn list_pods(&self, query: &ListQuery) -> Result<Vec<PodInfo>> {
        let terms = parse_selector(query.label_selector.as_deref().unwrap_or(""))?;
        // The first page fixes the snapshot, as the API server serves every `continue` page
        // from the resource version of the first one.
        self.delay().await;
        let found: Vec<PodInfo> = {
            let mut st = self.lock();
            st.calls.lists += 1;
            if let Some(fault) = st.list_fault {
                return Err(fault_error(
                    fault,
                    "list pods",
                    format!("namespace {}", query.namespace),
                ));
            }
            st.settle();
            st.calls.list_pages += 1;
            st.pods
                .range((query.namespace.clone(), String::new())..)
                .take_while(|((ns, _), _)| *ns == query.namespace)
                .map(|(_, p)| p)
                .filter(|p| matches(&terms, &p.labels))
                .cloned()
                .collect()
        };
        // One round trip (and one latency) per further page of `page_size` items.
        let page_size = usize::try_from(query.page_size.max(1)).unwrap_or(usize::MAX);
        for _ in 1..found.len().div_ceil(page_size) {
            self.delay().await;
            self.lock().calls.list_pages += 1;
        }
        Ok(found)
    }

    async fn get_pod(&self, namespace: &str, name: &str) -> Result<Option<PodInfo>> {
        self.delay().await;
        let mut st = self.lock();
        st.calls.gets += 1;
        st.settle();
        Ok(st
            .pods
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned())
    }

    async fn list_pod_events(&self, namespace: &str) -> Result<Vec<PodEvent>> {
        self.delay().await;
        let st = self.lock();
        if let Some(fault) = st.list_fault {
            return Err(fault_error(
                fault,
                "list events",
                format!("namespace {namespace}"),
            ));
        }
        Ok(st.events.get(namespace).cloned().unwrap_or_default())
    }

    async fn delete_pod(&self, key: &PodKey, mode: DeleteMode) -> Result<DeleteOutcome> {
        self.delay().await;
        let mut st = self.lock();
        st.calls.deletes += 1;
        let resource = key.to_string();
        if let Some(&fault) = st.delete_faults.get(&key.name) {
            return Err(fault_error(fault, "delete pod", resource));
        }
        st.settle();
        let now = st.now();
        let id = (key.namespace.clone(), key.name.clone());
        let Some(pod) = st.pods.get_mut(&id) else {
            return Err(Error::NotFound {
                action: "delete pod".into(),
                resource,
            });
        };
        if pod.uid != key.uid {
            return Err(Error::Conflict {
                action: "delete pod".into(),
                resource,
                message: format!("UID precondition failed: the pod now has UID {}", pod.uid),
            });
        }
        let grace = mode.grace_seconds.unwrap_or(DEFAULT_GRACE_SECONDS);
        // As the API server's pod strategy (CheckGracefulDelete): a pod not bound to a node, or
        // already Succeeded/Failed, is deleted at once whatever grace period was asked for.
        let outcome = if grace == 0 || pod.node_name.is_none() || pod.phase.is_finished() {
            st.pods.remove(&id);
            DeleteOutcome::Deleted
        } else {
            if pod.deletion_timestamp.is_none() {
                let at = now
                    .saturating_add(SignedDuration::from_secs(i64::from(grace)))
                    .unwrap_or(now);
                pod.deletion_timestamp = Some(at);
                st.terminating
                    .insert((at, key.namespace.clone(), key.name.clone()));
            }
            DeleteOutcome::Terminating
        };
        let record = DeletionRecord {
            key: key.clone(),
            grace_seconds: mode.grace_seconds,
            outcome,
            at: now,
        };
        if let Some(tx) = &st.deletion_events {
            let _ = tx.send(record.clone());
        }
        st.deletions.push(record);
        Ok(outcome)
    }
}

/// An in-memory [`JobStatusSource`]: statuses set by the caller; unknown jobs are
/// [`JobStatus::NotFound`].
#[derive(Debug, Clone, Default)]
pub struct InMemoryJobStatus {
    state: Arc<Mutex<JobState>>,
}

#[derive(Debug, Default)]
struct JobState {
    statuses: BTreeMap<(u64, u64), JobStatus>,
    fault: Option<Fault>,
    lookups: u64,
}

impl InMemoryJobStatus {
    /// An empty source.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, JobState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the status of a job.
    pub fn set(&self, project_id: u64, job_id: u64, status: JobStatus) {
        self.lock().statuses.insert((project_id, job_id), status);
    }

    /// Makes every lookup fail (or succeed again with `None`).
    pub fn fail(&self, fault: Option<Fault>) {
        self.lock().fault = fault;
    }

    /// How many lookups were made.
    pub fn lookups(&self) -> u64 {
        self.lock().lookups
    }
}

#[async_trait]
impl JobStatusSource for InMemoryJobStatus {
    async fn job_status(&self, project_id: u64, job_id: u64) -> Result<JobStatus> {
        let mut st = self.lock();
        st.lookups += 1;
        if let Some(fault) = st.fault {
            return Err(fault_error(
                fault,
                "get GitLab job",
                format!("job {job_id} of project {project_id}"),
            ));
        }
        Ok(st
            .statuses
            .get(&(project_id, job_id))
            .cloned()
            .unwrap_or(JobStatus::NotFound))
    }
}

/// Adds Pending job pods stuck for reasons `reap explain` names, each with the status and the
/// Events a real cluster shows (messages from tests/fixtures/pending_pods.json, with sources):
/// a privileged build refused by fargate-scheduler, a Docker Hub rate-limited pull, a missing
/// Secret. Job IDs 60-62 of project 4242.
pub fn seed_pending_demo(pods: &InMemoryPods, namespace: &str, now: Timestamp) -> Result<()> {
    use crate::classify::{ContainerSignal, PodEvent};
    let ago = |secs: i64| {
        now.saturating_sub(SignedDuration::from_secs(secs))
            .unwrap_or(now)
    };
    let fargate = PodSignals {
        scheduler_name: Some(crate::classify::FARGATE_SCHEDULER.into()),
        ..PodSignals::default()
    };
    let waiting = |reason: &str, message: &str| PodSignals {
        containers: vec![ContainerSignal {
            name: "build".into(),
            init: false,
            reason: Some(reason.into()),
            message: Some(message.into()),
        }],
        ..fargate.clone()
    };
    let cases = [
        (
            60,
            fargate.clone(),
            (
                "FailedScheduling",
                "fargate-scheduler",
                "Pod not supported on Fargate: invalid SecurityContext fields: Privileged",
            ),
        ),
        (
            61,
            waiting(
                "ImagePullBackOff",
                "Back-off pulling image \"docker:24-dind\"",
            ),
            (
                "Failed",
                "kubelet",
                "Failed to pull image \"docker:24-dind\": rpc error: code = Unknown desc = failed to pull and unpack image \"docker.io/library/docker:24-dind\": failed to copy: httpReadSeeker: failed open: unexpected status code https://registry-1.docker.io/v2/library/docker/manifests/24-dind: 429 Too Many Requests - Server message: toomanyrequests: You have reached your pull rate limit. You may increase the limit by authenticating and upgrading: https://www.docker.com/increase-rate-limit",
            ),
        ),
        (
            62,
            waiting(
                "CreateContainerConfigError",
                "secret \"runner-ci-credentials\" not found",
            ),
            (
                "Failed",
                "kubelet",
                "Error: secret \"runner-ci-credentials\" not found",
            ),
        ),
    ];
    for (job_id, signals, (reason, source, message)) in cases {
        let key = pods.insert(
            NewPod::job(
                namespace,
                "gitlab-runner-gitlab-runner-5fd7489954-jx682",
                4242,
                job_id,
            )
            .with_requests(500, 1024)
            .with_signals(signals)
            .created_at(ago(240)),
        )?;
        pods.record_event(PodEvent {
            namespace: namespace.to_owned(),
            pod_name: key.name,
            pod_uid: Some(key.uid),
            reason: reason.into(),
            message: message.into(),
            source: source.into(),
            event_type: "Warning".into(),
            count: 3,
            last_seen: Some(ago(30)),
        });
    }
    Ok(())
}

/// Seeds a small, realistic fleet into `pods` (and GitLab statuses into `jobs`) at time `now`:
/// two runner-manager pods, healthy job pods, hung ones (Pending past the poll timeout, running
/// past their timeout, finished but not deleted, stuck Terminating on a dead node, one whose job
/// GitLab has canceled), a name-alike pod without the executor's labels, and job pods in another
/// namespace. Used by the `reap` example's sandbox and by the sandbox world.
pub fn seed_demo(
    pods: &InMemoryPods,
    jobs: &InMemoryJobStatus,
    namespace: &str,
    now: Timestamp,
) -> Result<()> {
    let ago = |secs: i64| {
        now.saturating_sub(SignedDuration::from_secs(secs))
            .unwrap_or(now)
    };
    let m1 =
        pods.insert(NewPod::manager(namespace, "gitlab-runner", "jx682").created_at(ago(86_400)))?;
    pods.insert(NewPod::manager(namespace, "runner-b", "q7w2e").created_at(ago(86_400)))?;
    let job = |job_id: u64| NewPod::job(namespace, &m1.name, 4242, job_id).with_requests(500, 1024);
    // Healthy: running within their 1 h timeout, and one that just started pending.
    for id in 1..=6 {
        let p = job(id)
            .with_phase(PodPhase::Running)
            .with_node(&format!("fargate-ip-10-0-1-{id}"));
        pods.insert(p.created_at(ago(600)).started_at(ago(540)))?;
        jobs.set(4242, id, JobStatus::Running);
    }
    pods.insert(job(7).created_at(ago(20)))?;
    jobs.set(4242, 7, JobStatus::Queued);
    // Hung Pending: the runner gave up after poll_timeout; Fargate nodes were started for them.
    for id in 10..=12 {
        pods.insert(
            job(id)
                .with_node(&format!("fargate-ip-10-0-2-{id}"))
                .created_at(ago(1_800)),
        )?;
    }
    // Running past their 1 h timeout.
    for id in 20..=21 {
        let p = job(id)
            .with_phase(PodPhase::Running)
            .with_node(&format!("fargate-ip-10-0-3-{id}"));
        pods.insert(
            p.with_requests(2000, 4096)
                .created_at(ago(3 * 3600))
                .started_at(ago(3 * 3600 - 60)),
        )?;
    }
    // Finished long ago but never deleted.
    for (id, phase) in [(30, PodPhase::Succeeded), (31, PodPhase::Failed)] {
        let p = job(id)
            .with_phase(phase)
            .with_node(&format!("fargate-ip-10-0-4-{id}"));
        pods.insert(p.created_at(ago(7_200)).started_at(ago(7_100)))?;
    }
    // Stuck Terminating on a node whose kubelet is gone.
    let stuck = job(40)
        .with_phase(PodPhase::Running)
        .with_node("fargate-ip-10-0-5-40");
    let stuck = pods.insert(stuck.created_at(ago(5_400)).started_at(ago(5_300)))?;
    pods.update(namespace, &stuck.name, |p| {
        p.deletion_timestamp = Some(ago(3_600))
    })?;
    pods.kill_node("fargate-ip-10-0-5-40");
    // Running, within its timeout, but GitLab canceled the job (caught only with the GitLab cross-check).
    let canceled = job(50)
        .with_phase(PodPhase::Running)
        .with_node("fargate-ip-10-0-6-50");
    pods.insert(canceled.created_at(ago(1_200)).started_at(ago(1_100)))?;
    jobs.set(4242, 50, JobStatus::Canceled);
    // A name-alike without the executor's labels, and hung job pods of another namespace.
    pods.insert(
        NewPod::new(
            namespace,
            "runner-lookalike-project-1-concurrent-0-abcdefgh",
        )
        .created_at(ago(7_200)),
    )?;
    let other = if namespace == "other-team" {
        "other-team-2"
    } else {
        "other-team"
    };
    for id in 60..=61 {
        pods.insert(NewPod::job(other, "their-runner", 77, id).created_at(ago(7_200)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        let labels = BTreeMap::from([("a".to_owned(), "1".to_owned())]);
        let ok = |s: &str| matches(&parse_selector(s).unwrap(), &labels);
        assert!(ok("a"));
        assert!(ok("a=1"));
        assert!(ok("a==1,!b"));
        assert!(ok("b!=2"));
        assert!(!ok("b"));
        assert!(!ok("a!=1"));
        assert!(parse_selector("a in (1,2)").is_err());
    }

    #[tokio::test]
    async fn memory_conformance() {
        let api = InMemoryPods::new();
        crate::conformance::run_all(&api, &api, "mem").await;
    }

    #[tokio::test(start_paused = true)]
    async fn every_page_is_a_round_trip() {
        let api = InMemoryPods::new();
        for i in 0..7 {
            api.insert(NewPod::job("ns", "mgr", 1, i)).unwrap();
        }
        api.set_latency(Duration::from_millis(50));
        let query = ListQuery::job_pods("ns").with_page_size(2);
        let started = tokio::time::Instant::now();
        let listed = api.list_pods(&query).await.unwrap();
        assert_eq!(listed.len(), 7);
        // 7 pods in pages of 2: 4 round trips of 50 ms each on tokio's (paused) clock.
        assert_eq!(started.elapsed(), Duration::from_millis(200));
        assert_eq!(api.calls().list_pages, 4);
        let started = tokio::time::Instant::now();
        api.list_pods(&ListQuery::job_pods("ns").with_page_size(250))
            .await
            .unwrap();
        assert_eq!(started.elapsed(), Duration::from_millis(50));
        assert_eq!(api.calls().list_pages, 5);
    }

    #[tokio::test]
    async fn kubelets_finish_terminating_pods_unless_node_is_dead() {
        let clock = crate::clock::ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
        let api = InMemoryPods::new()
            .with_clock(Arc::new(clock.clone()))
            .with_kubelets(true);
        let a = api.insert(NewPod::new("ns", "a").with_node("n1")).unwrap();
        let b = api.insert(NewPod::new("ns", "b").with_node("n2")).unwrap();
        api.kill_node("n2");
        for p in [&a, &b] {
            assert_eq!(
                api.delete_pod(p, DeleteMode::graceful(Some(10)))
                    .await
                    .unwrap(),
                DeleteOutcome::Terminating
            );
        }
        clock.advance(Duration::from_secs(11));
        let mut events = api.subscribe_deletions();
        let c = api.insert(NewPod::new("ns", "c")).unwrap();
        api.delete_pod(&c, DeleteMode::graceful(None))
            .await
            .unwrap();
        assert_eq!(events.recv().await.unwrap().key, c);
        let left: Vec<_> = api.pods().into_iter().map(|p| p.name).collect();
        assert_eq!(left, ["b"]);
    }
}
