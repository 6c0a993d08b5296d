//! Why a job pod is Pending: a classifier over the pod's conditions, container states and Events.
//!
//! "Job failed (system failure): timed out waiting for pod to start" is all GitLab Runner says
//! when a job pod never starts. The cause is in the cluster: an Event from `fargate-scheduler`
//! refusing the pod, a `PodScheduled=False` condition, a container waiting in `ErrImagePull` or
//! `CreateContainerConfigError`, a kubelet `Failed` Event naming the registry's answer. Each
//! [`PendingClass`] names one such cause, with the fix and whether the pod can still start
//! ([`PendingClass::unrecoverable`]).
//!
//! The messages matched here are the ones real clusters print; `tests/fixtures/pending/*.json`
//! holds them with the issue or page each was copied from.

use std::fmt;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};
use serde::{Deserialize, Serialize};

use crate::model::{PodInfo, PodPhase, keys};

/// The scheduler name EKS's mutating webhook sets on pods a Fargate profile selects (EKS User
/// Guide, "AWS Fargate profile": "the pod is scheduled on Fargate by the fargate-scheduler").
pub const FARGATE_SCHEDULER: &str = "fargate-scheduler";

/// One `status.conditions[]` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionSignal {
    /// `type` (`PodScheduled`, `Initialized`, `ContainersReady`, `Ready`).
    pub kind: String,
    /// `status` (`True`, `False`, `Unknown`).
    pub status: String,
    /// `reason` (`Unschedulable`, `POD_CPU_MEM_EXCEEDS_MAX_FARGATE_SIZE`, ...).
    pub reason: Option<String>,
    /// `message`.
    pub message: Option<String>,
}

/// One container's state (`status.containerStatuses[]` / `initContainerStatuses[]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSignal {
    /// The container's name.
    pub name: String,
    /// Whether it is an init container.
    pub init: bool,
    /// `state.waiting.reason` or `state.terminated.reason` (`ErrImagePull`, `StartError`, ...).
    pub reason: Option<String>,
    /// The state's `message`.
    pub message: Option<String>,
}

/// What the classifier reads from a pod besides its Events: conditions, container states, the
/// scheduler it was handed to, and the containers whose limits are not their requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodSignals {
    /// `spec.schedulerName` (`fargate-scheduler` once a Fargate profile selected the pod).
    pub scheduler_name: Option<String>,
    /// `status.conditions`.
    pub conditions: Vec<ConditionSignal>,
    /// Init containers' then containers' states.
    pub containers: Vec<ContainerSignal>,
    /// Containers whose CPU or memory limit is set and differs from the request.
    pub limits_not_requests: Vec<String>,
}

impl PodSignals {
    /// Reads the signals of a kube Pod.
    pub fn from_pod(pod: &Pod) -> Self {
        let status = pod.status.as_ref();
        let conditions = status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .map(|c| ConditionSignal {
                kind: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
            })
            .collect();
        let states = |list: Option<&Vec<k8s_openapi::api::core::v1::ContainerStatus>>, init| {
            list.into_iter()
                .flatten()
                .map(move |c| {
                    let state = c.state.as_ref();
                    let (reason, message) = match (
                        state.and_then(|s| s.waiting.as_ref()),
                        state.and_then(|s| s.terminated.as_ref()),
                    ) {
                        (Some(w), _) => (w.reason.clone(), w.message.clone()),
                        (None, Some(t)) => (t.reason.clone(), t.message.clone()),
                        (None, None) => (None, None),
                    };
                    ContainerSignal {
                        name: c.name.clone(),
                        init,
                        reason,
                        message,
                    }
                })
                .collect::<Vec<_>>()
        };
        let mut containers = states(
            status.and_then(|s| s.init_container_statuses.as_ref()),
            true,
        );
        containers.extend(states(
            status.and_then(|s| s.container_statuses.as_ref()),
            false,
        ));
        let spec = pod.spec.as_ref();
        let limits_not_requests = spec
            .into_iter()
            .flat_map(|s| s.init_containers.iter().flatten().chain(&s.containers))
            .filter(|c| limits_differ(c))
            .map(|c| c.name.clone())
            .collect();
        Self {
            scheduler_name: spec.and_then(|s| s.scheduler_name.clone()),
            conditions,
            containers,
            limits_not_requests,
        }
    }
}

/// Whether a container's CPU or memory limit is set and is not its request. Kubernetes copies a
/// limit into a missing request (API reference, ResourceRequirements: "If Requests is omitted for
/// a container, it defaults to Limits"), so a limit with no request counts as equal.
fn limits_differ(container: &Container) -> bool {
    let Some(resources) = &container.resources else {
        return false;
    };
    let (Some(limits), requests) = (&resources.limits, &resources.requests) else {
        return false;
    };
    ["cpu", "memory"].iter().any(|resource| {
        let Some(limit) = limits.get(*resource) else {
            return false;
        };
        let request = requests.as_ref().and_then(|r| r.get(*resource));
        let parse = |q: &str| match *resource {
            "cpu" => glrunner_fargate::quantity::cpu_millis(q).ok(),
            _ => glrunner_fargate::quantity::memory_bytes(q).ok(),
        };
        request.is_some_and(|r| parse(&r.0) != parse(&limit.0))
    })
}

/// A Kubernetes Event about a pod (`core/v1 Event`, `involvedObject.kind=Pod`), reduced to what
/// the classifier reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodEvent {
    /// The Event's namespace (the pod's).
    pub namespace: String,
    /// `involvedObject.name`: the pod's name.
    pub pod_name: String,
    /// `involvedObject.uid`: the pod's UID, when the reporter set it.
    pub pod_uid: Option<String>,
    /// `reason` (`FailedScheduling`, `Failed`, `BackOff`, `Scheduled`, `Pulling`, ...).
    pub reason: String,
    /// `message`.
    pub message: String,
    /// `source.component` (or `reportingComponent`): `fargate-scheduler`, `default-scheduler`, `kubelet`.
    pub source: String,
    /// `type`: `Normal` or `Warning`.
    pub event_type: String,
    /// `count` (1 when unset).
    pub count: u32,
    /// `lastTimestamp` (or `eventTime`, or the first timestamp).
    pub last_seen: Option<Timestamp>,
}

impl PodEvent {
    /// Whether the Event is about `pod` (by UID when the Event has one, else by name).
    pub fn is_about(&self, pod: &PodInfo) -> bool {
        self.namespace == pod.namespace
            && self.pod_name == pod.name
            && self.pod_uid.as_ref().is_none_or(|uid| *uid == pod.uid)
    }

    fn is_warning(&self) -> bool {
        self.event_type == "Warning"
    }
}

/// Why a Pending job pod has not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PendingClass {
    /// `fargate-scheduler`: "invalid SecurityContext fields: Privileged".
    FargatePrivileged,
    /// `fargate-scheduler`: other SecurityContext fields (added capabilities, AllowPrivilegeEscalation).
    FargateSecurityContext,
    /// `fargate-scheduler`: "fields not supported: HostNetwork".
    FargateHostNetwork,
    /// `fargate-scheduler`: "port contains HostIP or HostPort".
    FargateHostPort,
    /// `fargate-scheduler`: "volumes not supported" (hostPath, a missing PVC, ...).
    FargateVolume,
    /// `fargate-scheduler`: any other "Pod not supported on Fargate".
    FargateUnsupported,
    /// `POD_CPU_MEM_EXCEEDS_MAX_FARGATE_SIZE`: requests beyond 16 vCPU / 120 GB.
    FargateTooLarge,
    /// "Misconfigured Fargate Profile": the pod execution role cannot launch pods.
    FargateProfileMisconfigured,
    /// No Fargate profile selects the pod: the default scheduler has no node for it.
    NoFargateProfile,
    /// Fargate has no capacity now, or provisioning timed out (the scheduler retries).
    FargateCapacity,
    /// The account's limit of concurrent Fargate pods (or its vCPU quota) is reached.
    FargatePodLimit,
    /// "Your AWS account is currently blocked": no Fargate pod can launch.
    FargateAccountBlocked,
    /// The registry refused the image pull: 401/403, no credentials.
    ImagePullUnauthorized,
    /// The image or tag does not exist (or the repository is private and anonymous pulls are refused).
    ImagePullNotFound,
    /// The registry rate-limited the pull (`toomanyrequests`, 429).
    ImagePullRateLimited,
    /// Another image pull failure (network, TLS, ...).
    ImagePullFailed,
    /// `CreateContainerConfigError`: a Secret (or a key in one) the pod uses is missing.
    MissingSecret,
    /// `CreateContainerConfigError`: a ConfigMap (or a key in one) the pod uses is missing.
    MissingConfigMap,
    /// The container did not start because a limit is not its request (Fargate runs pods
    /// Guaranteed: the `cpu.cfs_quota_us: invalid argument` start error).
    RequestsNotLimits,
    /// A warning the classifier does not know: read the message.
    Unknown,
    /// Nothing wrong seen yet: scheduled, pulling, starting.
    Starting,
}

impl PendingClass {
    /// Every class, in declaration order.
    pub const ALL: [Self; 21] = [
        Self::FargatePrivileged,
        Self::FargateSecurityContext,
        Self::FargateHostNetwork,
        Self::FargateHostPort,
        Self::FargateVolume,
        Self::FargateUnsupported,
        Self::FargateTooLarge,
        Self::FargateProfileMisconfigured,
        Self::NoFargateProfile,
        Self::FargateCapacity,
        Self::FargatePodLimit,
        Self::FargateAccountBlocked,
        Self::ImagePullUnauthorized,
        Self::ImagePullNotFound,
        Self::ImagePullRateLimited,
        Self::ImagePullFailed,
        Self::MissingSecret,
        Self::MissingConfigMap,
        Self::RequestsNotLimits,
        Self::Unknown,
        Self::Starting,
    ];

    /// A stable snake_case code (reports, JSON, the metrics' `class` label).
    pub fn code(self) -> &'static str {
        match self {
            Self::FargatePrivileged => "fargate_privileged",
            Self::FargateSecurityContext => "fargate_security_context",
            Self::FargateHostNetwork => "fargate_host_network",
            Self::FargateHostPort => "fargate_host_port",
            Self::FargateVolume => "fargate_volume",
            Self::FargateUnsupported => "fargate_unsupported",
            Self::FargateTooLarge => "fargate_too_large",
            Self::FargateProfileMisconfigured => "fargate_profile_misconfigured",
            Self::NoFargateProfile => "no_fargate_profile",
            Self::FargateCapacity => "fargate_capacity",
            Self::FargatePodLimit => "fargate_pod_limit",
            Self::FargateAccountBlocked => "fargate_account_blocked",
            Self::ImagePullUnauthorized => "image_pull_unauthorized",
            Self::ImagePullNotFound => "image_pull_not_found",
            Self::ImagePullRateLimited => "image_pull_rate_limited",
            Self::ImagePullFailed => "image_pull_failed",
            Self::MissingSecret => "missing_secret",
            Self::MissingConfigMap => "missing_config_map",
            Self::RequestsNotLimits => "requests_not_limits",
            Self::Unknown => "unknown",
            Self::Starting => "starting",
        }
    }

    /// Whether a pod of this class cannot start without someone changing something: the
    /// controller may (opt-in) reap it at once, so the runner reports a failure instead of
    /// waiting out `poll_timeout`.
    ///
    /// The fargate-scheduler decides once per pod (aws/containers-roadmap#2654, "Make
    /// fargate-scheduler retry pending pods instead of trying it only once"), so a refused or
    /// unselected pod stays Pending even after the profile or role is fixed. A missing image
    /// or refused credentials do not fix themselves. Capacity, the pod limit and rate limits
    /// pass; a missing Secret may still be created (the kubelet retries).
    pub fn unrecoverable(&self) -> bool {
        match self {
            Self::FargatePrivileged
            | Self::FargateSecurityContext
            | Self::FargateHostNetwork
            | Self::FargateHostPort
            | Self::FargateVolume
            | Self::FargateUnsupported
            | Self::FargateTooLarge
            | Self::FargateProfileMisconfigured
            | Self::NoFargateProfile
            | Self::FargateAccountBlocked
            | Self::ImagePullUnauthorized
            | Self::ImagePullNotFound
            | Self::RequestsNotLimits => true,
            Self::FargateCapacity
            | Self::FargatePodLimit
            | Self::ImagePullRateLimited
            | Self::ImagePullFailed
            | Self::MissingSecret
            | Self::MissingConfigMap
            | Self::Unknown
            | Self::Starting => false,
        }
    }

    /// What to change so jobs start.
    pub fn fix(&self) -> &'static str {
        match self {
            Self::FargatePrivileged => {
                "Fargate runs no privileged containers (EKS user guide, Fargate considerations): remove \
                 `privileged = true` from the runner's [runners.kubernetes] and route jobs that build \
                 images (docker-in-docker) to a runner on EC2 nodes by tag; Kaniko was archived in \
                 June 2025 and Buildah cannot run on Fargate since user namespaces are disabled there \
                 (containers/buildah#6718)"
            }
            Self::FargateSecurityContext => {
                "Fargate refuses added capabilities and allowPrivilegeEscalation: remove \
                 cap_add/allow_privilege_escalation from [runners.kubernetes] and the job's security context"
            }
            Self::FargateHostNetwork => {
                "Fargate has no host network: remove host networking from the runner's pod spec"
            }
            Self::FargateHostPort => {
                "Fargate has no host ports: remove hostPort/hostIP from the job's services and pod spec"
            }
            Self::FargateVolume => {
                "Fargate mounts only emptyDir, Secret, ConfigMap, projected and EFS volumes: remove \
                 host_path (e.g. /var/run/docker.sock) volumes from [runners.kubernetes.volumes], or \
                 create the PersistentVolumeClaim the pod names"
            }
            Self::FargateUnsupported => {
                "the pod uses a field Fargate does not support (see the message): remove it from the runner's pod spec"
            }
            Self::FargateTooLarge => {
                "the job asks for more than Fargate's largest size (16 vCPU / 120 GB, including the \
                 256 MB Fargate adds): lower cpu_request/memory_request (and the helper's and services')"
            }
            Self::FargateProfileMisconfigured => {
                "the Fargate profile's pod execution role is missing from the cluster's access entries \
                 or lacks AmazonEKSFargatePodExecutionRolePolicy: rerun `provision` (it creates the access \
                 entry), then retry the job"
            }
            Self::NoFargateProfile => {
                "no Fargate profile selects the job pod's namespace and labels: add the namespace to the \
                 cluster's Fargate profile (`provision --namespace ...`) or run jobs in a selected namespace; \
                 the scheduler decides once, so retry the job afterwards"
            }
            Self::FargateCapacity => {
                "Fargate has no capacity in the pod's subnets right now; it retries: give the profile \
                 subnets in more Availability Zones, or lower concurrency"
            }
            Self::FargatePodLimit => {
                "the account's Fargate quota (concurrent pods / On-Demand vCPUs) is used up: ask for a \
                 Service Quotas increase (L-3032A538) or lower the runners' concurrent"
            }
            Self::FargateAccountBlocked => {
                "AWS blocked Fargate launches for this account: open an AWS Support case; nothing in the cluster fixes it"
            }
            Self::ImagePullUnauthorized => {
                "the registry refused the credentials: for ECR, grant the Fargate pod execution role \
                 ecr:GetAuthorizationToken and ecr:BatchGetImage; for another registry, set \
                 image_pull_secrets (or DOCKER_AUTH_CONFIG) on the runner"
            }
            Self::ImagePullNotFound => {
                "the image or tag does not exist (or is private): check `image:` in .gitlab-ci.yml and the \
                 registry path; private repositories need image pull credentials"
            }
            Self::ImagePullRateLimited => {
                "the registry rate-limits anonymous pulls (Docker Hub: toomanyrequests): pull through an \
                 ECR pull-through cache (`provision --image-cache`) or authenticate the pulls"
            }
            Self::ImagePullFailed => {
                "the image could not be pulled (see the message): check the registry is reachable from \
                 the Fargate subnets (NAT gateway or VPC endpoints)"
            }
            Self::MissingSecret => {
                "a Secret the job pod reads does not exist (or lacks the key): create it in the job \
                 namespace, or fix the runner's secret references"
            }
            Self::MissingConfigMap => {
                "a ConfigMap the job pod reads does not exist (or lacks the key): create it in the job \
                 namespace, or fix the runner's config map references"
            }
            Self::RequestsNotLimits => {
                "Fargate runs pods Guaranteed (requests must equal limits): set cpu_limit = cpu_request and \
                 memory_limit = memory_request (and the helper's and services') in [runners.kubernetes]"
            }
            Self::Unknown => "read the message; `kubectl describe pod` shows the same Events",
            Self::Starting => {
                "nothing to fix yet: Fargate takes about a minute to start a pod; if it stays here past \
                 poll_timeout, the runner gives up"
            }
        }
    }
}

impl fmt::Display for PendingClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Where a class came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    /// The class.
    pub class: PendingClass,
    /// Where the message was read: `event FailedScheduling from fargate-scheduler`,
    /// `condition PodScheduled`, `container build: ErrImagePull`, or `none`.
    pub source: String,
    /// The message the class came from (empty when nothing was wrong).
    pub message: String,
}

impl Explanation {
    fn new(class: PendingClass, source: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            class,
            source: source.into(),
            message: message.into(),
        }
    }
}

/// Classifies a fargate-scheduler message (`Pod not supported on Fargate: ...` and the others).
/// Field order when several are listed: the one a runner's config most often sets first.
fn fargate_message(message: &str) -> Option<PendingClass> {
    let m = message.to_ascii_lowercase();
    Some(if m.contains("not supported on fargate") {
        if m.contains("privileged") && !m.contains("privilegeescalation") {
            PendingClass::FargatePrivileged
        } else if m.contains("hostnetwork") {
            PendingClass::FargateHostNetwork
        } else if m.contains("hostport") || m.contains("hostip") {
            PendingClass::FargateHostPort
        } else if m.contains("volumes not supported") {
            PendingClass::FargateVolume
        } else if m.contains("securitycontext") {
            PendingClass::FargateSecurityContext
        } else {
            PendingClass::FargateUnsupported
        }
    } else if m.contains("exceed the max fargate")
        || m.contains("pod_cpu_mem_exceeds_max_fargate_size")
    {
        PendingClass::FargateTooLarge
    } else if m.contains("misconfigured fargate profile") {
        PendingClass::FargateProfileMisconfigured
    } else if m.contains("account is currently blocked") {
        PendingClass::FargateAccountBlocked
    } else if m.contains("reached the limit on the number of fargate pods")
        || (m.contains("vcpu") && m.contains("limit"))
    {
        PendingClass::FargatePodLimit
    } else if m.contains("capacity is unavailable") || m.contains("provisioning timed out") {
        PendingClass::FargateCapacity
    } else {
        return None;
    })
}

/// Classifies a kubelet image-pull failure message (`Failed to pull image "...": ...`).
fn image_message(message: &str) -> PendingClass {
    let m = message.to_ascii_lowercase();
    if m.contains("toomanyrequests")
        || m.contains("429 too many requests")
        || m.contains("rate limit")
    {
        PendingClass::ImagePullRateLimited
    } else if m.contains("repository does not exist")
        || m.contains("manifest unknown")
        || m.contains(": not found")
        || m.contains("not found: manifest")
    {
        PendingClass::ImagePullNotFound
    } else if m.contains("unauthorized")
        || m.contains("401")
        || m.contains("403 forbidden")
        || m.contains("no basic auth credentials")
        || m.contains("authorization failed")
        || m.contains("authentication required")
        || m.contains("access denied")
    {
        PendingClass::ImagePullUnauthorized
    } else {
        PendingClass::ImagePullFailed
    }
}

/// Classifies a `CreateContainerConfigError` message (`secret "x" not found`, `couldn't find key
/// K in Secret ns/name`, `configmap "x" not found`).
fn config_message(message: &str) -> PendingClass {
    let m = message.to_ascii_lowercase();
    if m.contains("configmap") {
        PendingClass::MissingConfigMap
    } else if m.contains("secret") {
        PendingClass::MissingSecret
    } else {
        PendingClass::Unknown
    }
}

/// Container waiting reasons of an image pull in trouble (kubelet `pkg/kubelet/images/types.go`:
/// ErrImagePullBackOff = "ImagePullBackOff", ErrImagePull = "ErrImagePull",
/// ErrImageNeverPull = "ErrImageNeverPull", ErrInvalidImageName = "InvalidImageName").
const IMAGE_REASONS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
];

/// Container waiting reasons that are progress, not trouble (kubelet `kuberuntime`).
const PROGRESS_REASONS: &[&str] = &["ContainerCreating", "PodInitializing"];

/// Container reasons of a start that failed (kubelet `pkg/kubelet/container/sync_result.go`
/// ErrRunContainer = "RunContainerError", ErrCreateContainer = "CreateContainerError";
/// containerd's "StartError" on the terminated state).
const START_REASONS: &[&str] = &["StartError", "RunContainerError", "CreateContainerError"];

/// Classifies one Pending pod from its signals and its Events (any order; Events about other
/// pods are ignored by the caller, see [`PodEvent::is_about`]).
///
/// Precedence follows the pod's progress: a container state (the pod got that far) first, then
/// the newest Warning Event, then the `PodScheduled` condition; with nothing wrong the pod is
/// [`PendingClass::Starting`].
pub fn classify(signals: &PodSignals, events: &[PodEvent]) -> Explanation {
    let mut warnings: Vec<&PodEvent> = events.iter().filter(|e| e.is_warning()).collect();
    // Newest first; an Event without a time counts as oldest.
    warnings.sort_by_key(|e| std::cmp::Reverse(e.last_seen));
    let newest_pull_failure = || {
        warnings
            .iter()
            .find(|e| e.message.starts_with("Failed to pull image"))
            .copied()
    };

    for container in &signals.containers {
        let Some(reason) = container.reason.as_deref() else {
            continue;
        };
        let message = container.message.clone().unwrap_or_default();
        let source = format!("container {}: {reason}", container.name);
        if IMAGE_REASONS.contains(&reason) {
            // ImagePullBackOff's own message is only "Back-off pulling image ..."; the cause is
            // in the kubelet's Failed Event.
            return match newest_pull_failure() {
                Some(e) => Explanation::new(image_message(&e.message), event_source(e), &e.message),
                None => Explanation::new(image_message(&message), source, message),
            };
        }
        if reason == "CreateContainerConfigError" {
            return Explanation::new(config_message(&message), source, message);
        }
        if START_REASONS.contains(&reason) {
            let class =
                if message.contains("cfs_quota_us") || !signals.limits_not_requests.is_empty() {
                    PendingClass::RequestsNotLimits
                } else {
                    PendingClass::Unknown
                };
            return Explanation::new(class, source, message);
        }
        if !PROGRESS_REASONS.contains(&reason) {
            return Explanation::new(PendingClass::Unknown, source, message);
        }
    }

    for event in &warnings {
        if let Some(class) = event_class(signals, event) {
            return Explanation::new(class, event_source(event), &event.message);
        }
    }

    for condition in &signals.conditions {
        if condition.kind != "PodScheduled" || condition.status != "False" {
            continue;
        }
        let reason = condition.reason.clone().unwrap_or_default();
        let message = condition.message.clone().unwrap_or_default();
        let class = fargate_message(&reason)
            .or_else(|| fargate_message(&message))
            .or_else(|| (!on_fargate(signals)).then_some(PendingClass::NoFargateProfile))
            .unwrap_or(PendingClass::Unknown);
        return Explanation::new(class, format!("condition PodScheduled: {reason}"), message);
    }

    if let Some(event) = warnings.first() {
        return Explanation::new(PendingClass::Unknown, event_source(event), &event.message);
    }
    Explanation::new(PendingClass::Starting, "none", "")
}

fn on_fargate(signals: &PodSignals) -> bool {
    signals.scheduler_name.as_deref() == Some(FARGATE_SCHEDULER)
}

fn event_source(event: &PodEvent) -> String {
    format!("event {} from {}", event.reason, event.source)
}

fn event_class(signals: &PodSignals, event: &PodEvent) -> Option<PendingClass> {
    if let Some(class) = fargate_message(&event.message) {
        return Some(class);
    }
    if event.message.starts_with("Failed to pull image") {
        return Some(image_message(&event.message));
    }
    // The kubelet's `Failed` "Error: secret ... not found" and `FailedMount` "MountVolume.SetUp
    // failed for volume ...: secrets ... not found" (cloudfoundry/eirini-release#111).
    if (event.message.starts_with("Error: ") || event.reason == "FailedMount")
        && config_message(&event.message) != PendingClass::Unknown
    {
        return Some(config_message(&event.message));
    }
    // The default scheduler got the pod: no profile selected it, so the webhook left its
    // schedulerName alone and only EC2 nodes (none, or tainted Fargate ones) could take it
    // ("0/2 nodes are available: 2 node(s) had untolerated taint {eks.amazonaws.com/compute-type:
    // fargate}", eksctl-io/eksctl#6705).
    if event.reason == "FailedScheduling"
        && event.source != FARGATE_SCHEDULER
        && !on_fargate(signals)
    {
        return Some(PendingClass::NoFargateProfile);
    }
    None
}

/// The runner shard a job pod belongs to: its manager's name (label
/// `manager.runner.gitlab.com/name`, the manager pod `<release>-gitlab-runner-<hash>-<suffix>`
/// under the chart) without the ReplicaSet hash and pod suffix, so it names the release and stays
/// one label value across manager restarts; `unknown` without the label.
pub fn shard(pod: &PodInfo) -> String {
    let Some(manager) = pod.labels.get(keys::LABEL_MANAGER_NAME) else {
        return "unknown".to_owned();
    };
    let parts: Vec<&str> = manager.split('-').collect();
    if parts.len() > 3 && parts.contains(&"runner") {
        parts[..parts.len() - 2].join("-")
    } else {
        manager.clone()
    }
}

/// One Pending job pod, explained: what `reap explain` lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingPod {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The pod's UID (a recreated pod of the same name is another pod).
    #[serde(default)]
    pub uid: String,
    /// The GitLab job (annotation `job.runner.gitlab.com/id`).
    pub job_id: Option<u64>,
    /// The job's web URL (annotation `job.runner.gitlab.com/url`).
    pub job_url: Option<String>,
    /// The runner shard ([`shard`]).
    pub shard: String,
    /// Seconds since the pod was created.
    pub waited_secs: u64,
    /// The class.
    pub class: PendingClass,
    /// Whether the class cannot recover ([`PendingClass::unrecoverable`]).
    pub unrecoverable: bool,
    /// Where the message was read.
    pub source: String,
    /// The message the class came from.
    pub message: String,
    /// What to change ([`PendingClass::fix`]).
    pub fix: String,
}

/// Explains one pod from its signals and the Events of its namespace (those about other pods,
/// or about an earlier pod of the same name, are skipped).
pub fn explain(pod: &PodInfo, events: &[PodEvent], now: Timestamp) -> PendingPod {
    let own: Vec<PodEvent> = events.iter().filter(|e| e.is_about(pod)).cloned().collect();
    let explanation = classify(&pod.signals, &own);
    PendingPod {
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
        uid: pod.uid.clone(),
        job_id: pod
            .annotations
            .get(keys::ANNOTATION_JOB_ID)
            .and_then(|id| id.parse().ok()),
        job_url: pod.annotations.get(keys::ANNOTATION_JOB_URL).cloned(),
        shard: shard(pod),
        waited_secs: now
            .duration_since(pod.created_at)
            .as_secs()
            .try_into()
            .unwrap_or(0),
        class: explanation.class,
        unrecoverable: explanation.class.unrecoverable(),
        source: explanation.source,
        message: explanation.message,
        fix: explanation.class.fix().to_owned(),
    }
}

/// Whether `pod` is a Pending job pod the classifier explains: a job pod by identity (see
/// [`crate::policy::check_identity`]), Pending, not Terminating.
pub fn is_pending_job_pod(pod: &PodInfo) -> bool {
    pod.phase == PodPhase::Pending
        && !pod.is_terminating()
        && pod.labels.contains_key(keys::LABEL_JOB_POD)
        && pod.annotations.contains_key(keys::ANNOTATION_JOB_ID)
        && pod.owners.iter().all(|o| !o.controller)
}

/// Every Pending job pod of `namespaces`, explained, the longest waiting first: one list of job
/// pods and one list of pod Events per namespace.
pub async fn explain_pending(
    api: &dyn crate::PodApi,
    namespaces: &[String],
    now: Timestamp,
) -> crate::Result<Vec<PendingPod>> {
    let mut out = Vec::new();
    for namespace in namespaces {
        let pods = api
            .list_pods(&crate::ListQuery::job_pods(namespace.clone()))
            .await?;
        let pending: Vec<&PodInfo> = pods.iter().filter(|p| is_pending_job_pod(p)).collect();
        if pending.is_empty() {
            continue;
        }
        let events = api.list_pod_events(namespace).await?;
        out.extend(pending.into_iter().map(|p| explain(p, &events, now)));
    }
    out.sort_by(|a, b| {
        b.waited_secs
            .cmp(&a.waited_secs)
            .then_with(|| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)))
    });
    Ok(out)
}

impl fmt::Display for PendingPod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let job = match (&self.job_id, &self.job_url) {
            (_, Some(url)) => url.clone(),
            (Some(id), None) => format!("job {id}"),
            (None, None) => "job ?".to_owned(),
        };
        writeln!(
            f,
            "{}/{} ({job}, shard {}) pending {}s: {}{}",
            self.namespace,
            self.name,
            self.shard,
            self.waited_secs,
            self.class,
            if self.unrecoverable {
                " (will not start)"
            } else {
                ""
            }
        )?;
        if !self.message.is_empty() {
            writeln!(f, "  {}: {}", self.source, self.message)?;
        }
        write!(f, "  fix: {}", self.fix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warning(source: &str, reason: &str, message: &str, at: &str) -> PodEvent {
        PodEvent {
            namespace: "ci".into(),
            pod_name: "p".into(),
            pod_uid: Some("u".into()),
            reason: reason.into(),
            message: message.into(),
            source: source.into(),
            event_type: "Warning".into(),
            count: 1,
            last_seen: Some(at.parse().unwrap()),
        }
    }

    fn on_fargate() -> PodSignals {
        PodSignals {
            scheduler_name: Some(FARGATE_SCHEDULER.into()),
            ..PodSignals::default()
        }
    }

    #[test]
    fn the_newest_warning_wins() {
        let events = [
            warning(
                FARGATE_SCHEDULER,
                "FailedScheduling",
                "Pod provisioning timed out (will retry) for pod: ci/p",
                "2026-01-01T00:00:00Z",
            ),
            warning(
                FARGATE_SCHEDULER,
                "FailedScheduling",
                "Your AWS account has reached the limit on the number of Fargate pods it can run concurrently",
                "2026-01-01T00:01:00Z",
            ),
        ];
        assert_eq!(
            classify(&on_fargate(), &events).class,
            PendingClass::FargatePodLimit
        );
        let reversed = [events[1].clone(), events[0].clone()];
        assert_eq!(
            classify(&on_fargate(), &reversed).class,
            PendingClass::FargatePodLimit
        );
    }

    #[test]
    fn a_container_state_outranks_older_scheduling_warnings() {
        let mut signals = on_fargate();
        signals.containers.push(ContainerSignal {
            name: "build".into(),
            init: false,
            reason: Some("CreateContainerConfigError".into()),
            message: Some("configmap \"ci-env\" not found".into()),
        });
        let events = [warning(
            FARGATE_SCHEDULER,
            "FailedScheduling",
            "Pod provisioning timed out (will retry) for pod: ci/p",
            "2026-01-01T00:00:00Z",
        )];
        let e = classify(&signals, &events);
        assert_eq!(e.class, PendingClass::MissingConfigMap);
        assert_eq!(e.source, "container build: CreateContainerConfigError");
    }

    #[test]
    fn unknown_warnings_are_unknown_and_nothing_is_starting() {
        // Synthetic: a warning no class describes.
        let events = [warning(
            "kubelet",
            "FailedCreatePodSandBox",
            "synthetic: sandbox failed",
            "2026-01-01T00:00:00Z",
        )];
        let e = classify(&on_fargate(), &events);
        assert_eq!(
            (e.class, e.message.as_str()),
            (PendingClass::Unknown, "synthetic: sandbox failed")
        );
        let e = classify(&on_fargate(), &[]);
        assert_eq!(
            (e.class, e.source.as_str()),
            (PendingClass::Starting, "none")
        );
        assert!(!e.class.unrecoverable());
    }

    #[test]
    fn a_start_error_with_limits_unlike_requests_is_requests_not_limits() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"schedulerName": "fargate-scheduler", "containers": [
                {"name": "build", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1024Mi"}}},
                {"name": "helper", "resources": {"limits": {"cpu": "1"}}}
            ]},
            "status": {"phase": "Pending", "containerStatuses": [
                {"name": "build", "ready": false, "restartCount": 0, "image": "a", "imageID": "",
                 "state": {"terminated": {"exitCode": 128, "reason": "StartError", "message": "synthetic"}}}
            ]}
        }))
        .unwrap();
        let signals = PodSignals::from_pod(&pod);
        // 1024Mi is 1Gi: only the CPU differs; the helper's limit alone is its request.
        assert_eq!(signals.limits_not_requests, ["build"]);
        assert_eq!(
            classify(&signals, &[]).class,
            PendingClass::RequestsNotLimits
        );
    }

    #[test]
    fn events_about_an_earlier_pod_of_the_same_name_are_skipped() {
        let pods = crate::memory::InMemoryPods::new();
        let key = pods
            .insert(crate::memory::NewPod::job("ci", "m", 1, 5))
            .unwrap();
        let pod = pods.pod("ci", &key.name).unwrap();
        let mut event = warning(
            FARGATE_SCHEDULER,
            "FailedScheduling",
            "Pod not supported on Fargate: invalid SecurityContext fields: Privileged",
            "2026-01-01T00:00:00Z",
        );
        event.pod_name = pod.name.clone();
        let now = pod.created_at;
        assert_eq!(
            explain(&pod, &[event.clone()], now).class,
            PendingClass::Starting
        );
        event.pod_uid = Some(pod.uid.clone());
        let explained = explain(&pod, &[event], now);
        assert_eq!(explained.class, PendingClass::FargatePrivileged);
        assert!(explained.unrecoverable);
        assert_eq!(explained.job_id, Some(5));
    }

    #[test]
    fn codes_are_unique() {
        let codes: std::collections::BTreeSet<&str> =
            PendingClass::ALL.iter().map(|c| c.code()).collect();
        assert_eq!(codes.len(), PendingClass::ALL.len());
    }
}
