//! The kube-rs backend: [`KubePodApi`] over a Kubernetes API server (kubeconfig, in-cluster, or a
//! bearer-token provider such as an EKS token generator).

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, DeleteParams, ListParams, Preconditions};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use secrecy::{ExposeSecret as _, SecretString};

use crate::api::PodApi;
use crate::classify::PodEvent;
use crate::model::{
    DeleteMode, DeleteOutcome, ListQuery, OwnerRef, PodInfo, PodKey, PodPhase, PodRequests,
};
use crate::{Error, Result};

const BACKEND: &str = "kubernetes";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A bearer token and when it stops being valid. The token is a [`SecretString`]: it never shows
/// in `Debug` output and is zeroed when dropped.
#[derive(Clone)]
pub struct BearerToken {
    token: SecretString,
    expires_at: Option<Timestamp>,
}

impl BearerToken {
    /// A token valid until `expires_at` (`None`: until the server rejects it).
    pub fn new(token: impl Into<String>, expires_at: Option<Timestamp>) -> Self {
        Self {
            token: SecretString::from(token.into()),
            expires_at,
        }
    }

    /// When the token expires.
    pub fn expires_at(&self) -> Option<Timestamp> {
        self.expires_at
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerToken")
            .field("token", &self.token)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A source of bearer tokens for the API server, e.g. EKS tokens (`k8s-aws-v1.` presigned STS URLs,
/// valid 15 minutes). The root package implements it with infra's EKS token cache.
///
/// [`refreshing_client`] asks for the token before **every** request and keeps no expiry logic
/// of its own: the source decides when a token is refreshed (and must be cheap while its cached
/// token is still good).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait TokenProvider: Send + Sync {
    /// The token to use now.
    async fn token(&self) -> Result<BearerToken>;
}

/// A kube-rs [`Client`] for `config` (server URL and CA; its own credentials, if any, are
/// ignored) that asks `provider` for the bearer token before **every** request, so one
/// long-lived client (its connection pool, a log tail an hour later) stays authenticated while
/// the provider re-signs tokens as they near their end. Bounded like every client here
/// ([`bounded`]).
///
/// Why a layer of our own rather than kube-rs's exec auth: kube-rs's refreshing tokens
/// (`RefreshableToken` in kube-client 5.0.0 `client/auth/mod.rs`) are not public, and its exec
/// path runs the plugin as a child process on the blocking pool and re-parses the whole
/// `AuthInfo` on each refresh (60 s before `expirationTimestamp`). In-process the token is
/// signed locally by the run's one token cache, so the documented way to extend kube-rs fits
/// better: its default stack from [`kube::client::ClientBuilder`] (base URI, timeouts, tracing)
/// with a tower layer on top that sets `Authorization` (kube-client `ConfigExt`, "See
/// Client::new for an example"). It also works in any binary embedding this library, where no
/// plugin dispatch exists.
pub fn refreshing_client(config: Config, provider: Arc<dyn TokenProvider>) -> Result<Client> {
    let server = config.cluster_url.to_string();
    let mut config = bounded(config);
    // The layer is the only source of credentials.
    config.auth_info = kube::config::AuthInfo::default();
    let builder = kube::client::ClientBuilder::try_from(config)
        .map_err(|e| client_error("connect to API server", &server, e))?;
    Ok(builder.with_layer(&BearerLayer { provider }).build())
}

/// Sets `Authorization: Bearer <the provider's current token>` on each request.
#[derive(Clone)]
struct BearerLayer {
    provider: Arc<dyn TokenProvider>,
}

impl<S> tower::Layer<S> for BearerLayer {
    type Service = BearerService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        BearerService {
            inner,
            provider: self.provider.clone(),
            pending: None,
            fetched: None,
        }
    }
}

type TokenFuture = futures::future::BoxFuture<'static, Result<BearerToken>>;

/// The token is fetched in `poll_ready` (the service is not `Clone`: kube-rs boxes its stack and
/// buffers it behind one worker) and used by the `call` that follows. A provider error does not
/// fail readiness, which would close kube-rs's buffer for good: it is kept and returned by that
/// one request.
struct BearerService<S> {
    inner: S,
    provider: Arc<dyn TokenProvider>,
    pending: Option<TokenFuture>,
    fetched: Option<Result<BearerToken>>,
}

impl<S, B> tower::Service<http::Request<B>> for BearerService<S>
where
    S: tower::Service<http::Request<B>>,
    S::Error: Into<tower::BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = tower::BoxError;
    type Future =
        futures::future::BoxFuture<'static, std::result::Result<S::Response, tower::BoxError>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::result::Result<(), Self::Error>> {
        use std::task::Poll;
        if self.fetched.is_none() {
            let provider = self.provider.clone();
            let pending = self
                .pending
                .get_or_insert_with(|| Box::pin(async move { provider.token().await }));
            match std::future::Future::poll(pending.as_mut(), cx) {
                Poll::Ready(token) => {
                    self.pending = None;
                    self.fetched = Some(token);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let header = match self.fetched.take() {
            Some(Ok(token)) => bearer_header(&token),
            Some(Err(e)) => Err(e),
            None => Err(Error::Backend {
                backend: BACKEND,
                action: "authenticate".into(),
                resource: "API server".into(),
                message: "request sent before the token was fetched (poll_ready not called)".into(),
                source: None,
            }),
        };
        match header {
            Ok(value) => {
                request
                    .headers_mut()
                    .insert(http::header::AUTHORIZATION, value);
                let call = self.inner.call(request);
                Box::pin(async move { call.await.map_err(Into::into) })
            }
            Err(e) => Box::pin(async move { Err(Box::new(e) as tower::BoxError) }),
        }
    }
}

fn bearer_header(token: &BearerToken) -> Result<http::HeaderValue> {
    let mut value = http::HeaderValue::try_from(format!("Bearer {}", token.token.expose_secret()))
        .map_err(|_| {
            Error::invalid(
                "token",
                "the token provider handed out a token that is not a valid HTTP header value",
            )
        })?;
    // Kept out of hyper's and tracing's debug output.
    value.set_sensitive(true);
    Ok(value)
}

/// [`PodApi`] over a real API server with kube-rs.
///
/// Every call is bounded: connect (10 s) and read (60 s) timeouts, and **no retries inside a
/// call** — kube-rs's default retry layer (429/503/504, up to 15 times with delays growing to
/// 1000 s) is turned off for every client this type builds. A throttled call fails at once with
/// [`Error::Throttled`], a 504 with [`Error::Timeout`]; the next reaping round is the retry.
/// [`KubePodApi::from_client`] uses the caller's client as it is. kube-rs does no client-side
/// throttling.
pub struct KubePodApi {
    client: Client,
    server: String,
}

impl fmt::Debug for KubePodApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubePodApi")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// Bounds every call of a client built from `config`: connect and read timeouts, and no kube-rs
/// retry layer (it retries 429/503/504 up to 15 times with delays growing to minutes; see
/// [`KubePodApi`]). The caller decides what to retry.
pub fn bounded(mut config: Config) -> Config {
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(READ_TIMEOUT);
    config.default_retry = false;
    config
}

/// A kube-rs error of a call the janitor makes outside [`PodApi`] (its Lease, the objects `reap
/// deploy` applies): 403 is [`Error::PermissionDenied`] (the Role does not grant it), anything
/// else a backend error.
pub(crate) fn forbidden_or_backend(action: &str, resource: &str, e: kube::Error) -> Error {
    match e {
        kube::Error::Api(s) if s.code == 403 => Error::PermissionDenied {
            action: action.into(),
            resource: resource.into(),
            message: s.message,
        },
        other => client_error(action, resource, other),
    }
}

fn client_error(action: &str, resource: &str, e: kube::Error) -> Error {
    Error::Backend {
        backend: BACKEND,
        action: action.to_owned(),
        resource: resource.to_owned(),
        message: e.to_string(),
        source: Some(Box::new(e)),
    }
}

impl KubePodApi {
    /// Wraps a client built by the caller, as it is: its timeouts and retry layer are the caller's.
    pub fn from_client(client: Client) -> Self {
        Self {
            client,
            server: "(caller-provided client)".into(),
        }
    }

    /// Connects with a kubeconfig: `path` (or `$KUBECONFIG`, or `~/.kube/config`) and `context`
    /// (or the current context). An unknown context is [`Error::InvalidInput`] naming the contexts
    /// the file has.
    pub async fn from_kubeconfig(path: Option<&Path>, context: Option<&str>) -> Result<Self> {
        let (kubeconfig, shown) = match path {
            Some(p) => (Kubeconfig::read_from(p), p.display().to_string()),
            None => (
                Kubeconfig::read(),
                "$KUBECONFIG or ~/.kube/config".to_owned(),
            ),
        };
        let kubeconfig = kubeconfig.map_err(|e| {
            Error::invalid(
                "kubeconfig",
                format!("cannot read kubeconfig {shown}: {e}; pass --kubeconfig PATH"),
            )
        })?;
        if let Some(ctx) = context
            && !kubeconfig.contexts.iter().any(|c| c.name == ctx)
        {
            let known: Vec<&str> = kubeconfig
                .contexts
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            return Err(Error::invalid(
                "context",
                format!(
                    "kubeconfig {shown} has no context {ctx:?}; it has: {}",
                    known.join(", ")
                ),
            ));
        }
        let options = KubeConfigOptions {
            context: context.map(str::to_owned),
            ..Default::default()
        };
        let config = Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| {
                Error::invalid("kubeconfig", format!("cannot use kubeconfig {shown}: {e}"))
            })?;
        Self::from_config(config)
    }

    /// Connects with the in-cluster service-account configuration (when running as a CronJob).
    pub fn in_cluster() -> Result<Self> {
        let config = Config::incluster().map_err(|e| {
            Error::invalid(
                "in-cluster config",
                format!("not running in a pod with a service account: {e}"),
            )
        })?;
        Self::from_config(config)
    }

    /// Connects with an explicit kube-rs configuration.
    pub fn from_config(config: Config) -> Result<Self> {
        let server = config.cluster_url.to_string();
        let client = Client::try_from(bounded(config))
            .map_err(|e| client_error("connect to API server", &server, e))?;
        Ok(Self { client, server })
    }

    /// Connects with `config` (server URL and CA, e.g. from EKS DescribeCluster), authenticating with
    /// the token `provider` hands out before each call (see [`TokenProvider`] and
    /// [`refreshing_client`]).
    pub fn with_token_provider(config: Config, provider: Arc<dyn TokenProvider>) -> Result<Self> {
        let server = config.cluster_url.to_string();
        Ok(Self {
            client: refreshing_client(config, provider)?,
            server,
        })
    }

    async fn client(&self) -> Result<Client> {
        Ok(self.client.clone())
    }

    /// The kube-rs client this backend uses (bounded as built), for the controller's watches.
    pub fn kube_client(&self) -> Client {
        self.client.clone()
    }

    fn map_error(&self, action: &str, resource: &str, e: kube::Error) -> Error {
        let (action, resource) = (action.to_owned(), resource.to_owned());
        match e {
            kube::Error::Api(status) => {
                let message = if status.message.is_empty() {
                    status.reason.clone()
                } else {
                    status.message.clone()
                };
                match status.code {
                    404 => Error::NotFound { action, resource },
                    409 if status.reason == "AlreadyExists" => {
                        Error::AlreadyExists { action, resource }
                    }
                    409 => Error::Conflict {
                        action,
                        resource,
                        message,
                    },
                    429 => Error::Throttled { action, resource },
                    401 | 403 => Error::PermissionDenied {
                        action,
                        resource,
                        message,
                    },
                    400 | 422 => Error::invalid(resource, format!("{action}: {message}")),
                    504 => Error::Timeout {
                        action: format!("{action} {resource}"),
                        waited: READ_TIMEOUT,
                    },
                    _ => Error::Backend {
                        backend: BACKEND,
                        action,
                        resource,
                        message: format!("HTTP {} {}: {message}", status.code, status.reason),
                        source: Some(Box::new(kube::Error::Api(status))),
                    },
                }
            }
            other => {
                let text = format!("{other}");
                let lower = text.to_lowercase();
                if lower.contains("timed out")
                    || lower.contains("timeout")
                    || lower.contains("deadline")
                {
                    Error::Timeout {
                        action: format!("{action} {resource} at {}", self.server),
                        waited: READ_TIMEOUT,
                    }
                } else {
                    Error::Backend {
                        backend: BACKEND,
                        action,
                        resource,
                        message: format!("cannot reach the API server at {}: {text}", self.server),
                        source: Some(Box::new(other)),
                    }
                }
            }
        }
    }
}

#[async_trait]
impl PodApi for KubePodApi {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn list_pods(&self, query: &ListQuery) -> Result<Vec<PodInfo>> {
        let api: Api<Pod> = Api::namespaced(self.client().await?, &query.namespace);
        let resource = format!("pods in namespace {}", query.namespace);
        let mut params = ListParams::default().limit(query.page_size.max(1));
        if let Some(selector) = &query.label_selector {
            params = params.labels(selector);
        }
        let mut out = Vec::new();
        loop {
            let page = api
                .list(&params)
                .await
                .map_err(|e| self.map_error("list", &resource, e))?;
            for pod in &page.items {
                out.extend(pod_info(pod)?);
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params.continue_token = Some(token),
                None => break,
            }
        }
        tracing::debug!(namespace = %query.namespace, count = out.len(), "listed pods");
        Ok(out)
    }

    async fn get_pod(&self, namespace: &str, name: &str) -> Result<Option<PodInfo>> {
        let api: Api<Pod> = Api::namespaced(self.client().await?, namespace);
        let pod = api
            .get_opt(name)
            .await
            .map_err(|e| self.map_error("get pod", &format!("pod {namespace}/{name}"), e))?;
        Ok(pod.as_ref().map(pod_info).transpose()?.flatten())
    }

    async fn delete_pod(&self, key: &PodKey, mode: DeleteMode) -> Result<DeleteOutcome> {
        let api: Api<Pod> = Api::namespaced(self.client().await?, &key.namespace);
        let params = DeleteParams {
            grace_period_seconds: mode.grace_seconds,
            preconditions: Some(Preconditions {
                uid: Some(key.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let resource = key.to_string();
        let action = if mode.is_force() {
            "force-delete pod"
        } else {
            "delete pod"
        };
        let result = api
            .delete(&key.name, &params)
            .await
            .map_err(|e| self.map_error(action, &resource, e))?;
        Ok(match result.left() {
            // The API server answers with the object while it is still there (graceful deletion
            // pending a kubelet); an immediate deletion has no remaining grace period.
            Some(pod)
                if pod.metadata.deletion_timestamp.is_some()
                    && pod.metadata.deletion_grace_period_seconds.unwrap_or(0) > 0 =>
            {
                DeleteOutcome::Terminating
            }
            _ => DeleteOutcome::Deleted,
        })
    }

    async fn list_pod_events(&self, namespace: &str) -> Result<Vec<PodEvent>> {
        let api: Api<Event> = Api::namespaced(self.client().await?, namespace);
        let resource = format!("events in namespace {namespace}");
        // Events support field selectors on involvedObject.* (kubernetes pkg/registry/core/event
        // strategy.go ToSelectableFields: involvedObject.kind, .name, .uid, reason, source, type).
        let mut params = ListParams::default()
            .fields("involvedObject.kind=Pod")
            .limit(500);
        let mut out = Vec::new();
        loop {
            let page = api
                .list(&params)
                .await
                .map_err(|e| self.map_error("list", &resource, e))?;
            out.extend(page.items.iter().filter_map(pod_event));
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params.continue_token = Some(token),
                None => break,
            }
        }
        tracing::debug!(%namespace, count = out.len(), "listed pod events");
        Ok(out)
    }
}

/// A pod's requests as Fargate counts them, parsed exactly ([`glrunner_fargate::quantity`]);
/// a quantity that does not parse is an error, never 0.
fn requests(pod: &Pod) -> std::result::Result<PodRequests, glrunner_fargate::QuantityError> {
    let Some(spec) = &pod.spec else {
        return Ok(PodRequests::default());
    };
    let of = |c: &k8s_openapi::api::core::v1::Container| {
        let req = c.resources.as_ref().and_then(|r| r.requests.as_ref());
        let cpu = req
            .and_then(|r| r.get("cpu"))
            .map(|q| glrunner_fargate::quantity::cpu_millis(&q.0))
            .transpose()?
            .unwrap_or(0);
        let mem = req
            .and_then(|r| r.get("memory"))
            .map(|q| glrunner_fargate::quantity::memory_mib(&q.0))
            .transpose()?
            .unwrap_or(0);
        Ok::<_, glrunner_fargate::QuantityError>((cpu, mem))
    };
    let containers = spec
        .containers
        .iter()
        .map(of)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(of)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let (cpu_millis, memory_mib) = glrunner_fargate::pod_requests(containers, init);
    Ok(PodRequests {
        cpu_millis,
        memory_mib,
    })
}

/// Converts a kube Pod; pods without name, namespace, UID or creation time are skipped (`None`).
/// A resource request that is not a Kubernetes quantity is an error naming the pod.
pub(crate) fn pod_info(pod: &Pod) -> Result<Option<PodInfo>> {
    let meta = &pod.metadata;
    let requests = requests(pod).map_err(|e| {
        Error::invalid(
            format!(
                "resource requests of pod {}/{}",
                meta.namespace.as_deref().unwrap_or_default(),
                meta.name.as_deref().unwrap_or_default()
            ),
            e.to_string(),
        )
    })?;
    Ok(pod_fields(pod, requests))
}

fn pod_fields(pod: &Pod, requests: PodRequests) -> Option<PodInfo> {
    let meta = &pod.metadata;
    let status = pod.status.as_ref();
    Some(PodInfo {
        namespace: meta.namespace.clone()?,
        name: meta.name.clone()?,
        uid: meta.uid.clone()?,
        labels: meta.labels.clone().unwrap_or_default(),
        annotations: meta.annotations.clone().unwrap_or_default(),
        owners: meta
            .owner_references
            .iter()
            .flatten()
            .map(|o| OwnerRef {
                kind: o.kind.clone(),
                name: o.name.clone(),
                controller: o.controller.unwrap_or(false),
            })
            .collect(),
        phase: PodPhase::parse(status.and_then(|s| s.phase.as_deref())),
        node_name: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty()),
        created_at: meta.creation_timestamp.as_ref()?.0,
        started_at: status.and_then(|s| s.start_time.as_ref()).map(|t| t.0),
        deletion_timestamp: meta.deletion_timestamp.as_ref().map(|t| t.0),
        requests,
        signals: crate::classify::PodSignals::from_pod(pod),
    })
}

/// A kube Pod as the janitor sees it ([`PodInfo`]); `Ok(None)` for a pod without name,
/// namespace, UID or creation time. A resource request that is not a quantity is an error.
pub fn to_pod_info(pod: &Pod) -> Result<Option<PodInfo>> {
    pod_info(pod)
}

/// A kube Event about a pod; `None` when it is about another kind of object.
pub fn pod_event(event: &Event) -> Option<PodEvent> {
    let object = &event.involved_object;
    if object.kind.as_deref() != Some("Pod") {
        return None;
    }
    let source = event
        .source
        .as_ref()
        .and_then(|s| s.component.clone())
        .or_else(|| event.reporting_component.clone())
        .unwrap_or_default();
    let last_seen = event
        .last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| event.event_time.as_ref().map(|t| t.0))
        .or_else(|| event.first_timestamp.as_ref().map(|t| t.0));
    Some(PodEvent {
        namespace: object
            .namespace
            .clone()
            .or_else(|| event.metadata.namespace.clone())
            .unwrap_or_default(),
        pod_name: object.name.clone().unwrap_or_default(),
        pod_uid: object.uid.clone().filter(|u| !u.is_empty()),
        reason: event.reason.clone().unwrap_or_default(),
        message: event.message.clone().unwrap_or_default(),
        source,
        event_type: event.type_.clone().unwrap_or_else(|| "Normal".to_owned()),
        count: event.count.and_then(|c| u32::try_from(c).ok()).unwrap_or(1),
        last_seen,
    })
}

#[cfg(any(test, feature = "testing"))]
pub mod fixtures {
    //! Creates namespaces and pods on a real API server, setting status through the status subresource.

    use std::collections::BTreeMap;

    use async_trait::async_trait;
    use k8s_openapi::api::core::v1::{
        Container, ContainerState, ContainerStateTerminated, ContainerStateWaiting,
        ContainerStatus, Event, EventSource, Namespace, ObjectReference, Pod, PodCondition,
        PodSpec, PodStatus, ResourceRequirements,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
    use kube::Client;
    use kube::api::{Api, Patch, PatchParams, PostParams};

    use super::pod_info;
    use crate::classify::{ConditionSignal, PodEvent, PodSignals};
    use crate::conformance::PodFixtures;
    use crate::memory::NewPod;
    use crate::model::{PodInfo, PodPhase};
    use crate::{Error, Result};

    fn err(action: &str, resource: &str, e: kube::Error) -> Error {
        Error::Backend {
            backend: "kubernetes",
            action: action.into(),
            resource: resource.into(),
            message: e.to_string(),
            source: Some(Box::new(e)),
        }
    }

    /// Creates fixtures with a kube client.
    #[derive(Clone)]
    pub struct KubeFixtures {
        client: Client,
    }

    impl KubeFixtures {
        /// Fixtures using `client`.
        pub fn new(client: Client) -> Self {
            Self { client }
        }

        /// Marks a pod Terminating the way a kubelet-less server does (graceful delete of a bound pod).
        pub async fn start_terminating(&self, namespace: &str, name: &str) -> Result<()> {
            let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
            api.delete(name, &kube::api::DeleteParams::default().grace_period(30))
                .await
                .map_err(|e| err("delete pod", name, e))?;
            Ok(())
        }
    }

    fn condition(c: &ConditionSignal) -> PodCondition {
        PodCondition {
            type_: c.kind.clone(),
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
            ..Default::default()
        }
    }

    /// Waiting container states, as a kubelet reports them (the apiserver requires name, ready,
    /// restartCount, image and imageID: core/v1 ContainerStatus).
    fn container_statuses(signals: &PodSignals, init: bool) -> Option<Vec<ContainerStatus>> {
        let statuses: Vec<ContainerStatus> = signals
            .containers
            .iter()
            .filter(|c| c.init == init)
            .map(|c| ContainerStatus {
                name: c.name.clone(),
                image: "alpine:3".into(),
                image_id: String::new(),
                ready: false,
                restart_count: 0,
                // containerd's StartError is a terminated state (the task never ran); every
                // other reason here is the kubelet's waiting state.
                state: Some(if c.reason.as_deref() == Some("StartError") {
                    ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code: 128,
                            reason: c.reason.clone(),
                            message: c.message.clone(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }
                } else {
                    ContainerState {
                        waiting: Some(ContainerStateWaiting {
                            reason: c.reason.clone(),
                            message: c.message.clone(),
                        }),
                        ..Default::default()
                    }
                }),
                ..Default::default()
            })
            .collect();
        (!statuses.is_empty()).then_some(statuses)
    }

    #[async_trait]
    impl PodFixtures for KubeFixtures {
        async fn record_event(&self, event: &PodEvent) -> Result<()> {
            let api: Api<Event> = Api::namespaced(self.client.clone(), &event.namespace);
            let at = event.last_seen.map(Time);
            let object = Event {
                metadata: ObjectMeta {
                    generate_name: Some(format!("{}.", event.pod_name)),
                    namespace: Some(event.namespace.clone()),
                    ..Default::default()
                },
                involved_object: ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: Some(event.pod_name.clone()),
                    namespace: Some(event.namespace.clone()),
                    uid: event.pod_uid.clone(),
                    ..Default::default()
                },
                reason: Some(event.reason.clone()),
                message: Some(event.message.clone()),
                source: Some(EventSource {
                    component: Some(event.source.clone()),
                    host: None,
                }),
                type_: Some(event.event_type.clone()),
                count: Some(i32::try_from(event.count).unwrap_or(i32::MAX)),
                first_timestamp: at.clone(),
                last_timestamp: at,
                ..Default::default()
            };
            api.create(&PostParams::default(), &object)
                .await
                .map_err(|e| err("create event", &event.pod_name, e))?;
            Ok(())
        }

        async fn create_namespace(&self, namespace: &str) -> Result<()> {
            let api: Api<Namespace> = Api::all(self.client.clone());
            let ns = Namespace {
                metadata: ObjectMeta {
                    name: Some(namespace.into()),
                    ..Default::default()
                },
                ..Default::default()
            };
            match api.create(&PostParams::default(), &ns).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                Err(e) => Err(err("create namespace", namespace, e)),
            }
        }

        async fn create_pod(&self, pod: NewPod) -> Result<PodInfo> {
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace);
            let mut requests = BTreeMap::new();
            if pod.requests.cpu_millis > 0 {
                requests.insert(
                    "cpu".to_owned(),
                    Quantity(format!("{}m", pod.requests.cpu_millis)),
                );
            }
            if pod.requests.memory_mib > 0 {
                requests.insert(
                    "memory".to_owned(),
                    Quantity(format!("{}Mi", pod.requests.memory_mib)),
                );
            }
            let owners: Vec<OwnerReference> = pod
                .owners
                .iter()
                .enumerate()
                .map(|(i, o)| OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: o.kind.clone(),
                    name: o.name.clone(),
                    uid: format!("00000000-0000-0000-0000-{i:012}"),
                    controller: Some(o.controller),
                    block_owner_deletion: None,
                })
                .collect();
            let object = Pod {
                metadata: ObjectMeta {
                    name: Some(pod.name.clone()),
                    namespace: Some(pod.namespace.clone()),
                    labels: Some(pod.labels.clone()),
                    annotations: Some(pod.annotations.clone()),
                    owner_references: (!owners.is_empty()).then_some(owners),
                    ..Default::default()
                },
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "build".into(),
                        image: Some("alpine:3".into()),
                        resources: (!requests.is_empty()).then(|| ResourceRequirements {
                            requests: Some(requests),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }],
                    node_name: pod.node_name.clone(),
                    scheduler_name: pod.signals.scheduler_name.clone(),
                    ..Default::default()
                }),
                status: None,
            };
            let resource = format!("pod {}/{}", pod.namespace, pod.name);
            let mut created = api
                .create(&PostParams::default(), &object)
                .await
                .map_err(|e| err("create pod", &resource, e))?;
            let signals = &pod.signals;
            if pod.phase != PodPhase::Pending
                || pod.started_at.is_some()
                || !signals.conditions.is_empty()
                || !signals.containers.is_empty()
            {
                let status = PodStatus {
                    phase: Some(pod.phase.as_str().to_owned()),
                    start_time: pod.started_at.map(Time),
                    conditions: (!signals.conditions.is_empty())
                        .then(|| signals.conditions.iter().map(condition).collect()),
                    init_container_statuses: container_statuses(signals, true),
                    container_statuses: container_statuses(signals, false),
                    ..Default::default()
                };
                let patch = serde_json::json!({ "status": status });
                created = api
                    .patch_status(&pod.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(|e| err("set pod status", &resource, e))?;
            }
            pod_info(&created)?.ok_or_else(|| Error::Backend {
                backend: "kubernetes",
                action: "create pod".into(),
                resource,
                message: "server returned a pod without metadata".into(),
                source: None,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_requesting(cpu: &str, memory: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ci", "uid": "u", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {
                "containers": [
                    {"name": "build", "resources": {"requests": {"cpu": cpu, "memory": memory}}},
                    {"name": "helper", "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}}}
                ],
                "initContainers": [{"name": "init", "resources": {"requests": {"cpu": "3", "memory": "1Mi"}}}]
            }
        }))
        .unwrap()
    }

    #[test]
    fn requests_are_exact_and_init_containers_count_as_the_max() {
        let pod = pod_requesting("2.007", "1.5Gi");
        let info = pod_info(&pod).unwrap().unwrap();
        // 2.007 CPU is 2007m exactly (f64 made it 2008m); 1.5Gi is valid.
        assert_eq!(info.requests.cpu_millis, 3000);
        assert_eq!(info.requests.memory_mib, 1536 + 256);
        let pod = pod_requesting("2.007", "512Mi");
        let r = requests(&pod).unwrap();
        // The init container's 3 cores exceed the containers' 2007m + 250m.
        assert_eq!(r.cpu_millis, 3000);
        let mut pod = pod_requesting("2.007", "512Mi");
        pod.spec.as_mut().unwrap().init_containers = None;
        assert_eq!(requests(&pod).unwrap().cpu_millis, 2257);
    }

    #[test]
    fn an_unparseable_request_is_an_error_naming_the_pod_not_zero() {
        let pod = pod_requesting("500m", "lots");
        let err = pod_info(&pod).unwrap_err().to_string();
        assert!(err.contains("ci/p") && err.contains("\"lots\""), "{err}");
    }

    #[test]
    fn token_debug_is_redacted() {
        let t = BearerToken::new("k8s-aws-v1.hunter2", None);
        assert!(!format!("{t:?}").contains("hunter2"), "{t:?}");
    }

    #[test]
    fn clients_are_built_without_the_retry_layer_and_with_timeouts() {
        let config = bounded(Config::new("https://127.0.0.1:6443".parse().unwrap()));
        assert!(!config.default_retry);
        assert_eq!(config.read_timeout, Some(READ_TIMEOUT));
        assert_eq!(config.connect_timeout, Some(CONNECT_TIMEOUT));
    }
}
