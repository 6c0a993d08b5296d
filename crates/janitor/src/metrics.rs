//! The janitor's metrics (an OpenMetrics registry) and the `/metrics` server that exports them.
//!
//! Labels are limited to `namespace`, `shard` and `class`/`reason`/`phase` (small, fixed sets),
//! never a pod or job name: one series per shard and class, whatever the fleet's size
//! (actions/actions-runner-controller#3423 asks exactly this of a runner controller's metrics).
//!
//! The metrics are fed by plain calls a caller makes with what it already has:
//! [`JanitorMetrics::observe_pods`] with the pods of a watch store or a list,
//! [`JanitorMetrics::pod_reaped`] per deletion, [`JanitorMetrics::refresh_pending_jobs`] with
//! GitLab's view, [`JanitorMetrics::set_vcpu_quota`] once the account's quota is known.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::Full;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::classify::{PendingClass, PendingPod, PodEvent, explain, is_pending_job_pod, shard};
use crate::controller::ControllerObserver;
use crate::model::{PodInfo, PodPhase, keys};
use crate::policy::ReapReason;
use crate::reaper::Report;
use crate::{Error, Result};

/// The content type of OpenMetrics text (OpenMetrics 1.0 spec, "Overall Structure"; the type
/// prometheus-client's text encoder writes).
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    namespace: String,
    shard: String,
    phase: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    namespace: String,
    shard: String,
    class: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    namespace: String,
    shard: String,
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShardLabels {
    namespace: String,
    shard: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GitLabShardLabels {
    shard: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// GitLab's pending jobs per shard, for the `gitlab_pending_jobs` gauge. The flow implements it
/// with the GitLab client (the janitor knows no GitLab API), as it does [`crate::JobStatusSource`].
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait PendingJobsSource: Send + Sync {
    /// Pending jobs by shard name (the release a runner tag routes to).
    async fn pending_jobs(&self) -> Result<BTreeMap<String, u64>>;
}

/// The janitor's metrics.
pub struct JanitorMetrics {
    registry: Registry,
    job_pods: Family<PhaseLabels, Gauge>,
    pending_pods: Family<ClassLabels, Gauge>,
    oldest_pending: Family<ShardLabels, FloatGauge>,
    vcpus_in_use: Family<ShardLabels, FloatGauge>,
    vcpu_quota: FloatGauge,
    reaped: Family<ReasonLabels, Counter>,
    gitlab_pending: Family<GitLabShardLabels, Gauge>,
    /// Held while the gauges are rebuilt and while they are encoded, so a scrape never sees
    /// half an observation.
    consistency: Mutex<()>,
}

impl std::fmt::Debug for JanitorMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JanitorMetrics").finish_non_exhaustive()
    }
}

impl Default for JanitorMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl JanitorMetrics {
    /// A registry with every metric, prefixed `glrunner_janitor_`.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("glrunner_janitor");
        let job_pods = Family::<PhaseLabels, Gauge>::default();
        registry.register(
            "job_pods",
            "GitLab Runner job pods by phase",
            job_pods.clone(),
        );
        let pending_pods = Family::<ClassLabels, Gauge>::default();
        registry.register(
            "pending_job_pods",
            "Pending job pods by why they have not started (see reap explain)",
            pending_pods.clone(),
        );
        let oldest_pending = Family::<ShardLabels, FloatGauge>::default();
        registry.register(
            "oldest_pending_pod_age_seconds",
            "Age of the oldest Pending job pod",
            oldest_pending.clone(),
        );
        let vcpus_in_use = Family::<ShardLabels, FloatGauge>::default();
        registry.register(
            "fargate_vcpus_in_use",
            "Fargate vCPUs provisioned for unfinished job pods (their CapacityProvisioned annotation)",
            vcpus_in_use.clone(),
        );
        let vcpu_quota = FloatGauge::default();
        registry.register(
            "fargate_vcpu_quota",
            "The account's Fargate On-Demand vCPU quota (L-3032A538), when known",
            vcpu_quota.clone(),
        );
        let reaped = Family::<ReasonLabels, Counter>::default();
        registry.register("pods_reaped", "Job pods reaped, by reason", reaped.clone());
        let gitlab_pending = Family::<GitLabShardLabels, Gauge>::default();
        registry.register(
            "gitlab_pending_jobs",
            "GitLab's pending jobs per shard (when a GitLab token is configured)",
            gitlab_pending.clone(),
        );
        Self {
            registry,
            job_pods,
            pending_pods,
            oldest_pending,
            vcpus_in_use,
            vcpu_quota,
            reaped,
            gitlab_pending,
            consistency: Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.consistency.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the pod gauges with what `pods` (kube Pods, e.g. a watch store's) show at `now`.
    /// Pods that are not job pods are skipped; Pending ones are classified from their status
    /// (no Events: see [`JanitorMetrics::observe`]).
    pub fn observe_pods(&self, pods: &[Arc<Pod>], now: Timestamp) {
        let infos: Vec<PodInfo> = pods
            .iter()
            .filter_map(|p| match crate::k8s::to_pod_info(p) {
                Ok(info) => info,
                Err(e) => {
                    tracing::warn!(error = %e, "pod not counted in the metrics");
                    None
                }
            })
            .collect();
        self.observe(&infos, &[], now);
    }

    /// Replaces the pod gauges with what `pods` show at `now`, classifying Pending job pods with
    /// the `events` of their namespaces.
    pub fn observe(&self, pods: &[PodInfo], events: &[PodEvent], now: Timestamp) {
        let pending: Vec<PendingPod> = pods
            .iter()
            .filter(|p| is_job_pod(p) && is_pending_job_pod(p))
            .map(|p| explain(p, events, now))
            .collect();
        self.observe_explained(pods, &pending, now);
    }

    /// Replaces the pod gauges with what `pods` show at `now`, the Pending job pods counted by
    /// the class of their explanation in `pending` (matched by UID; a Pending job pod without one
    /// counts as `starting`).
    pub fn observe_explained(&self, pods: &[PodInfo], pending: &[PendingPod], now: Timestamp) {
        let classes_by_uid: HashMap<&str, PendingClass> =
            pending.iter().map(|p| (p.uid.as_str(), p.class)).collect();
        let mut phases: HashMap<PhaseLabels, i64> = HashMap::new();
        let mut classes: HashMap<ClassLabels, i64> = HashMap::new();
        let mut oldest: HashMap<ShardLabels, f64> = HashMap::new();
        let mut vcpus: HashMap<ShardLabels, f64> = HashMap::new();
        for pod in pods.iter().filter(|p| is_job_pod(p)) {
            let shard = shard(pod);
            *phases
                .entry(PhaseLabels {
                    namespace: pod.namespace.clone(),
                    shard: shard.clone(),
                    phase: pod.phase.as_str().to_owned(),
                })
                .or_default() += 1;
            let at = ShardLabels {
                namespace: pod.namespace.clone(),
                shard: shard.clone(),
            };
            if !pod.phase.is_finished()
                && let Some(size) = pod
                    .annotations
                    .get(glrunner_fargate::CAPACITY_PROVISIONED_ANNOTATION)
                    .and_then(|t| glrunner_fargate::FargateSize::from_capacity_provisioned(t))
            {
                *vcpus.entry(at.clone()).or_default() += size.vcpus();
            }
            if is_pending_job_pod(pod) {
                let class = classes_by_uid
                    .get(pod.uid.as_str())
                    .copied()
                    .unwrap_or(PendingClass::Starting);
                *classes
                    .entry(ClassLabels {
                        namespace: pod.namespace.clone(),
                        shard,
                        class: class.code().to_owned(),
                    })
                    .or_default() += 1;
                let age = now.duration_since(pod.created_at).as_secs_f64().max(0.0);
                let entry = oldest.entry(at).or_default();
                *entry = entry.max(age);
            }
        }
        let _guard = self.lock();
        self.job_pods.clear();
        for (labels, n) in phases {
            self.job_pods.get_or_create(&labels).set(n);
        }
        self.pending_pods.clear();
        for (labels, n) in classes {
            self.pending_pods.get_or_create(&labels).set(n);
        }
        self.oldest_pending.clear();
        for (labels, age) in oldest {
            self.oldest_pending.get_or_create(&labels).set(age);
        }
        self.vcpus_in_use.clear();
        for (labels, v) in vcpus {
            self.vcpus_in_use.get_or_create(&labels).set(v);
        }
    }

    /// Counts one reaped pod (a kube Pod, as a controller has it).
    pub fn pod_reaped(&self, pod: &Pod, reason: &ReapReason) {
        match crate::k8s::to_pod_info(pod) {
            Ok(Some(info)) => self.reaped_pod(&info, reason.code()),
            Ok(None) | Err(_) => self.count_reaped(
                pod.metadata.namespace.clone().unwrap_or_default(),
                "unknown".to_owned(),
                reason.code(),
            ),
        }
    }

    /// Counts one reaped pod, by its reason's code.
    pub fn reaped_pod(&self, pod: &PodInfo, reason: &str) {
        self.count_reaped(pod.namespace.clone(), shard(pod), reason);
    }

    fn count_reaped(&self, namespace: String, shard: String, reason: &str) {
        self.reaped
            .get_or_create(&ReasonLabels {
                namespace,
                shard,
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts the pods a reaping round deleted (dry runs and failed deletes count nothing);
    /// `listed` are the pods seen before the round, for their shard.
    pub fn observe_report(&self, report: &Report, listed: &[PodInfo]) {
        use crate::reaper::Action;
        for reaped in &report.reaped {
            if !matches!(
                reaped.action,
                Action::Deleted | Action::Terminating | Action::AlreadyGone
            ) {
                continue;
            }
            let shard = listed
                .iter()
                .find(|p| p.uid == reaped.uid)
                .map_or_else(|| "unknown".to_owned(), shard);
            self.count_reaped(reaped.namespace.clone(), shard, reaped.reason.code());
        }
    }

    /// Sets the account's Fargate vCPU quota.
    pub fn set_vcpu_quota(&self, vcpus: f64) {
        self.vcpu_quota.set(vcpus);
    }

    /// Replaces GitLab's pending jobs per shard with `source`'s answer; on error the last
    /// values stay and the error is returned.
    pub async fn refresh_pending_jobs(&self, source: &dyn PendingJobsSource) -> Result<()> {
        let jobs = source.pending_jobs().await?;
        let _guard = self.lock();
        self.gitlab_pending.clear();
        for (shard, n) in jobs {
            self.gitlab_pending
                .get_or_create(&GitLabShardLabels { shard })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        Ok(())
    }

    /// The metrics as OpenMetrics text.
    pub fn encode(&self) -> String {
        let _guard = self.lock();
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The controller feeds the metrics: its store after each change, and each deletion.
impl ControllerObserver for JanitorMetrics {
    fn pods_changed(&self, pods: &[PodInfo], pending: &[PendingPod], now: Timestamp) {
        self.observe_explained(pods, pending, now);
    }

    fn pod_reaped(&self, pod: &Pod, reason: &ReapReason) {
        JanitorMetrics::pod_reaped(self, pod, reason);
    }
}

fn is_job_pod(pod: &PodInfo) -> bool {
    pod.labels.contains_key(keys::LABEL_JOB_POD)
        && pod.annotations.contains_key(keys::ANNOTATION_JOB_ID)
        && pod.owners.iter().all(|o| !o.controller)
        && pod.phase != PodPhase::Unknown
}

/// A bound `/metrics` listener; [`MetricsServer::serve`] answers until cancelled.
#[derive(Debug)]
pub struct MetricsServer {
    listener: tokio::net::TcpListener,
    metrics: Arc<JanitorMetrics>,
}

/// Binds `addr` (port 0 picks a free port; see [`MetricsServer::local_addr`]).
pub async fn bind(addr: SocketAddr, metrics: Arc<JanitorMetrics>) -> Result<MetricsServer> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        Error::invalid(
            "metrics address",
            format!("cannot listen on {addr}: {e}; pass a free --metrics-addr (e.g. 0.0.0.0:9090)"),
        )
    })?;
    Ok(MetricsServer { listener, metrics })
}

/// Serves `/metrics` on `addr` until `shutdown` is cancelled.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<JanitorMetrics>,
    shutdown: CancellationToken,
) -> Result<()> {
    bind(addr, metrics).await?.serve(shutdown).await
}

impl MetricsServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().map_err(|e| Error::Backend {
            backend: "metrics",
            action: "read listen address".into(),
            resource: "metrics server".into(),
            message: e.to_string(),
            source: Some(Box::new(e)),
        })
    }

    /// Answers `GET /metrics` (OpenMetrics text) and 404 elsewhere, one HTTP/1 connection per
    /// task, until `shutdown`: then it stops accepting and closes open connections.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<()> {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = self.listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: accept failed");
                    continue;
                }
            };
            let metrics = self.metrics.clone();
            let shutdown = shutdown.clone();
            connections.spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let metrics = metrics.clone();
                    async move { Ok::<_, Infallible>(respond(&metrics, &request)) }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                // A scrape is one short request: on shutdown an open connection is dropped.
                tokio::select! {
                    result = connection => if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "metrics: connection ended with an error");
                    },
                    () = shutdown.cancelled() => {}
                }
            });
            // Reap finished connection tasks as we go.
            while connections.try_join_next().is_some() {}
        }
        while connections.join_next().await.is_some() {}
        Ok(())
    }
}

fn respond<B>(metrics: &JanitorMetrics, request: &http::Request<B>) -> http::Response<Full<Bytes>> {
    let response = http::Response::builder();
    let built = if request.uri().path() == "/metrics" && request.method() == http::Method::GET {
        response
            .header(http::header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)
            .body(Full::new(Bytes::from(metrics.encode())))
    } else {
        response
            .status(http::StatusCode::NOT_FOUND)
            .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from_static(
                b"not found: the metrics are on GET /metrics\n",
            )))
    };
    built.unwrap_or_else(|_| http::Response::new(Full::new(Bytes::new())))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::memory::NewPod;

    fn pod(job_id: u64, phase: PodPhase) -> PodInfo {
        let pods = crate::memory::InMemoryPods::new();
        let new = NewPod::job("ci", "shard-a-gitlab-runner-5fd7489954-jx682", 1, job_id)
            .with_phase(phase)
            .created_at("2026-01-01T00:00:00Z".parse().unwrap());
        let key = pods.insert(new).unwrap();
        pods.pod(&key.namespace, &key.name).unwrap()
    }

    struct Pending(BTreeMap<String, u64>);

    #[async_trait]
    impl PendingJobsSource for Pending {
        async fn pending_jobs(&self) -> Result<BTreeMap<String, u64>> {
            Ok(self.0.clone())
        }
    }

    #[tokio::test]
    async fn gauges_follow_the_latest_observation_and_counters_add_up() {
        let metrics = JanitorMetrics::new();
        let now: Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
        let mut running = pod(2, PodPhase::Running);
        running.annotations.insert(
            glrunner_fargate::CAPACITY_PROVISIONED_ANNOTATION.into(),
            "2vCPU 4GB".into(),
        );
        let mut manager = pod(3, PodPhase::Running);
        manager
            .owners
            .push(crate::OwnerRef::controller("ReplicaSet", "rs"));
        metrics.observe(
            &[pod(1, PodPhase::Pending), running.clone(), manager],
            &[],
            now,
        );
        metrics.set_vcpu_quota(80.0);
        metrics.reaped_pod(&running, "pending_too_long");
        metrics.reaped_pod(&running, "pending_too_long");
        metrics
            .refresh_pending_jobs(&Pending(BTreeMap::from([("shard-a".into(), 7)])))
            .await
            .unwrap();
        let text = metrics.encode();
        for line in [
            r#"glrunner_janitor_job_pods{namespace="ci",shard="shard-a-gitlab-runner",phase="Pending"} 1"#,
            r#"glrunner_janitor_job_pods{namespace="ci",shard="shard-a-gitlab-runner",phase="Running"} 1"#,
            r#"glrunner_janitor_pending_job_pods{namespace="ci",shard="shard-a-gitlab-runner",class="starting"} 1"#,
            r#"glrunner_janitor_oldest_pending_pod_age_seconds{namespace="ci",shard="shard-a-gitlab-runner"} 600.0"#,
            r#"glrunner_janitor_fargate_vcpus_in_use{namespace="ci",shard="shard-a-gitlab-runner"} 2.0"#,
            "glrunner_janitor_fargate_vcpu_quota 80.0",
            r#"glrunner_janitor_pods_reaped_total{namespace="ci",shard="shard-a-gitlab-runner",reason="pending_too_long"} 2"#,
            r#"glrunner_janitor_gitlab_pending_jobs{shard="shard-a"} 7"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(
            text.ends_with("# EOF\n"),
            "OpenMetrics ends with # EOF:\n{text}"
        );
        // The Pending pod started: the next observation drops its series.
        metrics.observe(&[running], &[], now);
        let text = metrics.encode();
        assert!(!text.contains(r#"phase="Pending""#), "{text}");
        assert!(!text.contains("oldest_pending_pod_age_seconds{"), "{text}");
        assert!(
            text.contains(r#"reason="pending_too_long"} 2"#),
            "counters stay: {text}"
        );
    }

    async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        let content_type = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-type: ")
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        (status, content_type, body.to_owned())
    }

    #[tokio::test]
    async fn the_server_answers_openmetrics_over_a_real_socket_and_stops_on_cancel() {
        let metrics = Arc::new(JanitorMetrics::new());
        metrics.observe(&[pod(1, PodPhase::Pending)], &[], Timestamp::now());
        metrics.reaped_pod(&pod(2, PodPhase::Succeeded), "finished");
        let server = bind("127.0.0.1:0".parse().unwrap(), metrics.clone())
            .await
            .unwrap();
        let addr = server.local_addr().unwrap();
        let token = CancellationToken::new();
        let task = tokio::spawn(server.serve(token.clone()));
        let (status, content_type, body) = get(addr, "/metrics").await;
        assert_eq!(status, 200);
        assert_eq!(content_type, OPENMETRICS_CONTENT_TYPE);
        assert!(body.contains("glrunner_janitor_job_pods{"), "{body}");
        assert!(
            body.contains("# TYPE glrunner_janitor_pods_reaped counter"),
            "{body}"
        );
        let (status, _, _) = get(addr, "/other").await;
        assert_eq!(status, 404);
        token.cancel();
        task.await.unwrap().unwrap();
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "the listener is closed after cancel"
        );
    }

    #[tokio::test]
    async fn a_busy_address_is_invalid_input_naming_the_flag_fix() {
        let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap();
        let err = bind(addr, Arc::new(JanitorMetrics::new()))
            .await
            .unwrap_err();
        assert_eq!(err.category(), "invalid_input");
        assert!(err.to_string().contains("--metrics-addr"), "{err}");
    }
}
