//! `RunnerValues`: a typed, validated model of the gitlab-runner chart's values, rendered to YAML.
//!
//! Only what this project sets is modelled; everything else keeps the chart default. The chart
//! keys `runnerToken`, `runnerRegistrationToken`, `runners.tags`, `runners.runUntagged`,
//! `runners.locked` and `runners.protected` are never emitted: GitLab Runner 18+ refuses to start
//! with the deprecated ones, and the token lives in the Secret named by `runners.secret`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Invalid, Result};
use crate::fargate::{FargateSize, NearMiss, Resource};
use crate::identity::JobIdentity;
use crate::job_disk::{EphemeralStorage, OverwriteCeilings};
use crate::stop::{ManagerImage, StopSignal};
use crate::validate;

/// Annotation on the runner Deployment recording the runner's GitLab tags (comma-separated), so a
/// release can be matched to the jobs routed to it. The tags themselves are set on the GitLab
/// runner when it is created (`tag_list`), not in the chart.
pub const RUNNER_TAGS_ANNOTATION: &str = "glrunner.io/runner-tags";

/// Default job image: Docker's official alpine through the ECR Public mirror, which has no Docker
/// Hub pull rate limit and is close to EKS.
pub const DEFAULT_JOB_IMAGE: &str = "public.ecr.aws/docker/library/alpine:3.22";

/// Default `poll_timeout`: Fargate job pods take a minute or more to start (new node, empty image cache).
pub const DEFAULT_POLL_TIMEOUT: Duration = Duration::from_secs(300);

/// The `namespace` the chart's `tpl` turns into the release namespace.
const RELEASE_NAMESPACE_TEMPLATE: &str = "{{ .Release.Namespace }}";

/// Runner feature flag that lets `request_concurrency` adapt between 1 and its configured cap
/// (raised 10% per job taken, lowered when requests come back empty), so a high cap costs GitLab
/// nothing while the runner is idle.
pub const ADAPTIVE_REQUEST_CONCURRENCY_FLAG: &str = "FF_USE_ADAPTIVE_REQUEST_CONCURRENCY";

/// Upper bound of the derived `request_concurrency` (GitLab.com allows 2,000 job requests per
/// minute per runner token).
pub const MAX_REQUEST_CONCURRENCY: u32 = 50;

/// The `request_concurrency` glrunner derives from `concurrent`: one job request in flight per 10
/// job slots, at least 1 and at most [`MAX_REQUEST_CONCURRENCY`].
///
/// Why: GitLab Runner's default of 1 lets a manager with `concurrent = 200` take one job per
/// request round trip (GitLab's long-polling docs list it as the cause of slow job pick-up), and
/// the adaptive feature flag ([`ADAPTIVE_REQUEST_CONCURRENCY_FLAG`], set alongside) keeps an
/// idle runner at one request.
pub fn recommended_request_concurrency(concurrent: u32) -> u32 {
    concurrent.div_ceil(10).clamp(1, MAX_REQUEST_CONCURRENCY)
}

/// The manager pod's requests = limits for a runner with `concurrent` job slots.
///
/// Rule: the chart's own example `resources` (100m CPU and 128Mi for its default `concurrent` of
/// 10, in the chart's values.yaml) scaled linearly per job slot (10m and 12.8Mi each), never
/// below glrunner's floor of 500m / 768Mi. A manager streams the log of every running job from
/// the API server, so its load grows with the jobs it drives. For `concurrent = 200` that is
/// 2 vCPU / 2560Mi (a 2 vCPU / 4 GB Fargate pod).
pub fn manager_resources_for(concurrent: u32) -> ContainerResources {
    let cpu_millis = (10 * u64::from(concurrent)).max(500);
    let memory_mib = (128 * u64::from(concurrent)).div_ceil(10).max(768);
    ContainerResources::new(format!("{cpu_millis}m"), format!("{memory_mib}Mi"))
}

/// Default bound on the manager's drain when its pod is replaced: GitLab's default job timeout
/// (60 minutes) and the chart's default `terminationGracePeriodSeconds` (3600).
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(3600);

/// Default `shutdown_timeout`: GitLab Runner's own default (30 s) for cleaning up after it aborted
/// its builds (the chart's `0` means the same default).
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest drain accepted (one day).
pub const MAX_DRAIN_TIMEOUT: Duration = Duration::from_secs(86_400);

/// Seconds added to the termination grace period after the drain and `shutdown_timeout`, so the
/// runner's own cleanup finishes before the kubelet's SIGKILL.
const TERMINATION_MARGIN: Duration = Duration::from_secs(15);

/// Deployment annotation recording the drain bound glrunner rendered (seconds), so a deployed
/// release can be read back as one whose manager stops gracefully.
pub const DRAIN_TIMEOUT_ANNOTATION: &str = "glrunner.io/drain-timeout-secs";

/// How the runner manager pod stops when Kubernetes replaces it (any upgrade that changes the
/// pod, a token rotation, a node drain): gracefully, so running jobs finish, and within a bound.
///
/// GitLab Runner takes SIGQUIT as "take no new jobs and exit when the running ones finish" and
/// SIGTERM as "abort all running builds" (GitLab Runner docs, `commands/_index.md#signals`;
/// `commands/multi.go` `handleGracefulShutdown`). The official image's stop signal is SIGQUIT
/// ([`crate::stop`]), so the kubelet's stop alone drains, but without end: a second SIGQUIT keeps
/// the runner graceful, and the grace period's SIGKILL then leaves its job pods running with no
/// runner to clean them up. So glrunner renders a preStop hook (the chart renders
/// `deploymentLifecycle` as the manager container's `lifecycle` and
/// `terminationGracePeriodSeconds` as the pod's: chart 0.86.0 `templates/deployment.yaml`) that
/// sends SIGQUIT to PID 1 (the image's `dumb-init`, which forwards it to the runner), waits up to
/// [`GracefulStop::drain_timeout`] while the runner lives, and when the drain bound passes sends
/// SIGTERM, so the runner aborts what is left and cleans up its job pods within
/// `shutdown_timeout`; the grace period covers all of it
/// ([`GracefulStop::termination_grace_period`]).
///
/// The chart runs its own preStop hook (`unregister --all-runners`) only when
/// `deploymentLifecycle` is empty, so this replaces it: with a `glrt-` token that hook only
/// deleted the runner *manager* record, which GitLab also drops when the manager goes stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GracefulStop {
    /// How long running jobs may take to finish after SIGQUIT (serialised as seconds).
    #[serde(rename = "drain_timeout_secs", with = "secs")]
    pub drain_timeout: Duration,
    /// `shutdown_timeout`: how long the runner cleans up after the SIGTERM that follows an
    /// unfinished drain (serialised as seconds).
    #[serde(rename = "shutdown_timeout_secs", with = "secs")]
    pub shutdown_timeout: Duration,
}

impl Default for GracefulStop {
    fn default() -> Self {
        Self {
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }
}

impl GracefulStop {
    /// A graceful stop that lets jobs run for up to `drain_timeout`.
    pub fn new(drain_timeout: Duration) -> Self {
        Self {
            drain_timeout,
            ..Self::default()
        }
    }

    /// The pod's `terminationGracePeriodSeconds`: the drain, then `shutdown_timeout`, plus a
    /// 15 s margin before the kubelet's SIGKILL.
    pub fn termination_grace_period(&self) -> Duration {
        self.drain_timeout + self.shutdown_timeout + TERMINATION_MARGIN
    }

    /// The preStop hook's command: SIGQUIT to the runner (through PID 1, the image's
    /// `dumb-init`), then wait while it lives, at most the drain timeout; if it still lives,
    /// SIGTERM (the runner's forced shutdown: it aborts its builds and deletes their pods), then
    /// wait while it lives, at most `shutdown_timeout`. All of it ends inside
    /// [`GracefulStop::termination_grace_period`].
    pub fn pre_stop_command(&self) -> Vec<String> {
        self.pre_stop_command_for_pid(1)
    }

    /// [`GracefulStop::pre_stop_command`] aimed at `pid` (a test runs it against a stand-in).
    pub fn pre_stop_command_for_pid(&self, pid: u32) -> Vec<String> {
        let drain = self.drain_timeout.as_secs();
        let shutdown = self.shutdown_timeout.as_secs();
        let wait = |var: &str, bound: u64| {
            format!(
                "{var}=0; while [ \"${var}\" -lt {bound} ] && kill -0 {pid} 2>/dev/null; do sleep 1; {var}=$(({var}+1)); done"
            )
        };
        vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            format!(
                "kill -QUIT {pid}; {}; if kill -0 {pid} 2>/dev/null; then kill -TERM {pid}; {}; fi",
                wait("i", drain),
                wait("j", shutdown),
            ),
        ]
    }

    fn check(&self, issues: &mut Vec<Invalid>) {
        if self.drain_timeout < Duration::from_secs(1) || self.drain_timeout > MAX_DRAIN_TIMEOUT {
            issues.push(Invalid::new(
                "graceful_stop.drain_timeout",
                format!(
                    "{}s is outside 1s..{}s",
                    self.drain_timeout.as_secs(),
                    MAX_DRAIN_TIMEOUT.as_secs()
                ),
                format!(
                    "use at least your longest job's timeout, e.g. {}s",
                    DEFAULT_DRAIN_TIMEOUT.as_secs()
                ),
            ));
        }
        if self.shutdown_timeout < Duration::from_secs(1)
            || self.shutdown_timeout > Duration::from_secs(3600)
        {
            issues.push(Invalid::new(
                "graceful_stop.shutdown_timeout",
                format!("{}s is outside 1s..3600s", self.shutdown_timeout.as_secs()),
                format!(
                    "use the runner default of {}s",
                    DEFAULT_SHUTDOWN_TIMEOUT.as_secs()
                ),
            ));
        }
    }
}

/// `Duration` as whole seconds.
mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs(u64::deserialize(d)?))
    }
}

/// CPU and memory for one container; used as both request and limit (Fargate runs pods as
/// Guaranteed and bills by requests, rounded up to a valid size, plus 256 MB).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerResources {
    /// CPU quantity, e.g. `"500m"` or `"1"`.
    pub cpu: String,
    /// Memory quantity, e.g. `"512Mi"` or `"2Gi"`.
    pub memory: String,
}

impl ContainerResources {
    /// Requests = limits = `cpu` / `memory`.
    pub fn new(cpu: impl Into<String>, memory: impl Into<String>) -> Self {
        Self {
            cpu: cpu.into(),
            memory: memory.into(),
        }
    }

    /// The Fargate size a pod of this one container runs at (requests rounded up to the
    /// next size Fargate offers); `None` when a quantity does not parse or exceeds the largest.
    pub fn fargate_size(&self) -> Option<FargateSize> {
        let (cpu, memory) = self.check("", &mut Vec::new())?;
        FargateSize::for_requests(u64::from(cpu), memory)
    }

    fn check(&self, field: &str, issues: &mut Vec<Invalid>) -> Option<(u32, u64)> {
        let cpu = validate::cpu_millis(&format!("{field}.cpu"), &self.cpu)
            .map_err(|i| issues.push(i))
            .ok();
        let mem = validate::memory_mib(&format!("{field}.memory"), &self.memory)
            .map_err(|i| issues.push(i))
            .ok();
        Some((cpu?, mem?))
    }
}

/// One RBAC rule of the runner's namespace Role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    /// API groups (`""` is the core group).
    pub api_groups: Vec<String>,
    /// Resources, e.g. `pods/exec`.
    pub resources: Vec<String>,
    /// Verbs, e.g. `create`.
    pub verbs: Vec<String>,
}

impl PolicyRule {
    fn core(resources: &[&str], verbs: &[&str]) -> Self {
        Self {
            api_groups: vec![String::new()],
            resources: resources.iter().map(|s| (*s).to_string()).collect(),
            verbs: verbs.iter().map(|s| (*s).to_string()).collect(),
        }
    }
}

/// The namespace-scoped permissions the Kubernetes executor needs (attach strategy, no
/// namespace-per-job), instead of the chart's `resources: ["*"], verbs: ["*"]` default.
pub fn least_privilege_rules() -> Vec<PolicyRule> {
    vec![
        PolicyRule::core(&["events"], &["list", "watch"]),
        PolicyRule::core(&["pods"], &["create", "delete", "get", "list", "watch"]),
        PolicyRule::core(
            &["pods/attach", "pods/exec"],
            &["create", "delete", "get", "patch"],
        ),
        PolicyRule::core(&["pods/log"], &["get", "list"]),
        PolicyRule::core(&["secrets"], &["create", "delete", "get", "update"]),
        PolicyRule::core(&["serviceaccounts"], &["get"]),
        PolicyRule::core(&["services"], &["create", "get"]),
    ]
}

/// RBAC for the runner manager: a namespace Role (never cluster-wide).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rbac {
    /// Whether the chart creates the Role and RoleBinding.
    pub create: bool,
    /// The Role's rules; [`least_privilege_rules`] by default.
    pub rules: Vec<PolicyRule>,
}

impl Default for Rbac {
    fn default() -> Self {
        Self {
            create: true,
            rules: least_privilege_rules(),
        }
    }
}

/// The runner manager's service account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAccount {
    /// Name to use; the chart derives one from the release when `None`.
    pub name: Option<String>,
    /// Annotations, e.g. `eks.amazonaws.com/role-arn` for IRSA.
    pub annotations: BTreeMap<String, String>,
    /// The ServiceAccount [`ServiceAccount::name`] names is another release's (the first of the
    /// fleet's): this release renders none (`serviceAccount.create: false`) and runs as it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}

/// One plain environment variable of the runner manager (`envVars`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    /// Variable name.
    pub name: String,
    /// Value. Never a secret: values are stored in Helm's release history.
    pub value: String,
}

/// Settings of the Kubernetes executor (`[runners.kubernetes]` in `runners.config`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KubernetesExecutor {
    /// Namespace for job pods; the release namespace when `None`. It must match a Fargate profile.
    pub namespace: Option<String>,
    /// Default job image.
    pub image: String,
    /// Helper image override; the runner picks the matching one when `None`.
    pub helper_image: Option<String>,
    /// How often the runner polls a new job pod (`poll_interval`).
    pub poll_interval: Duration,
    /// How long the runner waits for a job pod to start (`poll_timeout`).
    pub poll_timeout: Duration,
    /// Build container requests = limits.
    pub build: ContainerResources,
    /// Helper container requests = limits.
    pub helper: ContainerResources,
    /// Service containers requests = limits.
    pub service: ContainerResources,
    /// Privileged job containers. Fargate refuses them, so validation requires `false`.
    pub privileged: bool,
    /// Extra labels on job pods (keys in `runner.gitlab.com` are ignored by the runner).
    pub pod_labels: BTreeMap<String, String>,
    /// Extra annotations on job pods.
    pub pod_annotations: BTreeMap<String, String>,
    /// When job images are pulled (`pull_policy`); empty: the cluster's default (Kubernetes:
    /// `Always` for `:latest` or an untagged image, else `IfNotPresent`).
    #[serde(default)]
    pub pull_policy: Vec<PullPolicy>,
    /// Which ServiceAccount job pods run as: `service_account` and
    /// `service_account_overwrite_allowed`, from the job roles ([`crate::identity`]).
    #[serde(default, skip_serializing_if = "JobIdentity::is_empty")]
    pub identity: JobIdentity,
    /// The build container's ephemeral storage (`ephemeral_storage_request` = `_limit`);
    /// `None`: Fargate's included 20 GiB ([`crate::job_disk`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage: Option<EphemeralStorage>,
    /// The `*_overwrite_max_allowed` ceilings of CPU, memory and ephemeral storage; empty: the
    /// runner ignores the jobs' `KUBERNETES_*` resource variables ([`crate::job_disk`]).
    #[serde(default, skip_serializing_if = "OverwriteCeilings::is_empty")]
    pub overwrite_max: OverwriteCeilings,
}

/// One of GitLab Runner's Kubernetes `pull_policy` values: `pull_policy` in
/// `[runners.kubernetes]`, a list (`StringOrArray`) of "never, if-not-present, always"
/// (gitlab-runner common/config.go, `KubernetesConfig.PullPolicy`, env `KUBERNETES_PULL_POLICY`).
/// Charts before the typed `runners.config` had `runners.imagePullPolicy`, which their
/// registration passed on as `KUBERNETES_PULL_POLICY`; chart 0.86.0 has no such key, so the
/// policy goes into `runners.config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PullPolicy {
    /// `always`: pull on every pod start.
    Always,
    /// `if-not-present`: pull only when the node has no copy (Fargate nodes never do).
    IfNotPresent,
    /// `never`: use what the node has.
    Never,
}

impl PullPolicy {
    /// The runner's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "always",
            PullPolicy::IfNotPresent => "if-not-present",
            PullPolicy::Never => "never",
        }
    }
}

impl Default for KubernetesExecutor {
    fn default() -> Self {
        Self {
            namespace: None,
            image: DEFAULT_JOB_IMAGE.to_string(),
            helper_image: None,
            poll_interval: Duration::from_secs(3),
            poll_timeout: DEFAULT_POLL_TIMEOUT,
            build: ContainerResources::new("250m", "512Mi"),
            helper: ContainerResources::new("250m", "256Mi"),
            service: ContainerResources::new("250m", "256Mi"),
            privileged: false,
            pod_labels: BTreeMap::new(),
            pod_annotations: BTreeMap::new(),
            pull_policy: Vec::new(),
            identity: JobIdentity::default(),
            ephemeral_storage: None,
            overwrite_max: OverwriteCeilings::default(),
        }
    }
}

impl KubernetesExecutor {
    /// The Fargate size of a job pod with build + helper and `services` service containers;
    /// `None` when the requests do not parse or exceed the largest size.
    pub fn job_pod_size(&self, services: u32) -> Option<FargateSize> {
        let mut ignore = Vec::new();
        let (bc, bm) = self.build.check("", &mut ignore)?;
        let (hc, hm) = self.helper.check("", &mut ignore)?;
        let (sc, sm) = self.service.check("", &mut ignore)?;
        FargateSize::for_requests(
            u64::from(bc + hc + sc * services),
            bm + hm + sm * u64::from(services),
        )
    }

    /// The `[runners.kubernetes]` table.
    fn toml_table(&self) -> KubernetesToml {
        let quantities = |r: &ContainerResources| (r.cpu.clone(), r.memory.clone());
        let (cpu, memory) = quantities(&self.build);
        let (helper_cpu, helper_memory) = quantities(&self.helper);
        let (service_cpu, service_memory) = quantities(&self.service);
        let disk: BTreeMap<&str, String> = self.job_disk_toml().into_iter().collect();
        let disk = |key: &str| disk.get(key).cloned();
        KubernetesToml {
            namespace: Some(match &self.namespace {
                Some(ns) => ns.clone(),
                // Evaluated by the chart's `tpl`: the release namespace.
                None => RELEASE_NAMESPACE_TEMPLATE.to_string(),
            }),
            image: Some(self.image.clone()),
            helper_image: self.helper_image.clone(),
            privileged: Some(self.privileged),
            poll_interval: Some(self.poll_interval.as_secs()),
            poll_timeout: Some(self.poll_timeout.as_secs()),
            cpu_request: Some(cpu.clone()),
            cpu_limit: Some(cpu),
            memory_request: Some(memory.clone()),
            memory_limit: Some(memory),
            helper_cpu_request: Some(helper_cpu.clone()),
            helper_cpu_limit: Some(helper_cpu),
            helper_memory_request: Some(helper_memory.clone()),
            helper_memory_limit: Some(helper_memory),
            service_cpu_request: Some(service_cpu.clone()),
            service_cpu_limit: Some(service_cpu),
            service_memory_request: Some(service_memory.clone()),
            service_memory_limit: Some(service_memory),
            pod_labels: self.pod_labels.clone(),
            pod_annotations: self.pod_annotations.clone(),
            pull_policy: self
                .pull_policy
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect(),
            service_account: self.identity.service_account.clone(),
            service_account_overwrite_allowed: self.identity.overwrite_allowed.clone(),
            ephemeral_storage_request: disk("ephemeral_storage_request"),
            ephemeral_storage_limit: disk("ephemeral_storage_limit"),
            cpu_request_overwrite_max_allowed: disk("cpu_request_overwrite_max_allowed"),
            cpu_limit_overwrite_max_allowed: disk("cpu_limit_overwrite_max_allowed"),
            memory_request_overwrite_max_allowed: disk("memory_request_overwrite_max_allowed"),
            memory_limit_overwrite_max_allowed: disk("memory_limit_overwrite_max_allowed"),
            ephemeral_storage_request_overwrite_max_allowed: disk(
                "ephemeral_storage_request_overwrite_max_allowed",
            ),
            ephemeral_storage_limit_overwrite_max_allowed: disk(
                "ephemeral_storage_limit_overwrite_max_allowed",
            ),
        }
    }

    fn check(&self, issues: &mut Vec<Invalid>) {
        if let Some(ns) = &self.namespace {
            issues.extend(validate::namespace("executor.namespace", ns).err());
        }
        check_image("executor.image", &self.image, issues);
        if let Some(helper) = &self.helper_image {
            check_image("executor.helper_image", helper, issues);
        }
        if self.poll_interval < Duration::from_secs(1) {
            issues.push(Invalid::new(
                "executor.poll_interval",
                "must be at least 1s",
                "use the runner default of 3s",
            ));
        }
        if self.poll_timeout < Duration::from_secs(30) || self.poll_timeout < self.poll_interval {
            issues.push(Invalid::new(
                "poll_timeout",
                format!(
                    "{}s is too short for a Fargate job pod to start",
                    self.poll_timeout.as_secs()
                ),
                format!(
                    "use at least 30s; {}s is recommended on Fargate",
                    DEFAULT_POLL_TIMEOUT.as_secs()
                ),
            ));
        }
        let build = self.build.check("executor.build", issues);
        let helper = self.helper.check("executor.helper", issues);
        self.service.check("executor.service", issues);
        if let (Some((bc, bm)), Some((hc, hm))) = (build, helper)
            && FargateSize::for_requests(u64::from(bc + hc), bm + hm).is_none()
        {
            issues.push(Invalid::new(
                "executor.build",
                "build + helper requests exceed the largest Fargate pod (16 vCPU, 120 GB)",
                "lower --cpu / --memory",
            ));
        }
        // Sources: Fargate refuses privileged containers (EKS User Guide, Fargate
        // considerations); Kaniko was archived in June 2025 (GoogleContainerTools/kaniko);
        // Buildah fails on Fargate since March 2026, user namespaces being disabled there
        // (containers/buildah#6718). So no in-cluster builder is the answer: another runner is.
        if self.privileged {
            issues.push(Invalid::new(
                "executor.privileged",
                "Fargate does not run privileged containers (EKS User Guide, Fargate considerations)",
                "set privileged = false and route image builds to a runner that is not on Fargate by tag; \
                 in-cluster builders are no way out: Kaniko is archived (June 2025) and Buildah fails on \
                 Fargate, whose user namespaces are disabled (containers/buildah#6718)",
            ));
        }
        check_labels("executor.pod_labels", &self.pod_labels, true, issues);
        check_labels(
            "executor.pod_annotations",
            &self.pod_annotations,
            false,
            issues,
        );
        issues.extend(self.identity.issues("executor"));
        issues.extend(self.job_disk_issues());
    }
}

fn check_image(field: &str, image: &str, issues: &mut Vec<Invalid>) {
    if image.is_empty() || image.chars().any(|c| c.is_whitespace() || c == '"') {
        issues.push(Invalid::new(
            field,
            format!("{image:?} is not an image reference"),
            "use e.g. \"alpine:3.22\"",
        ));
    }
    issues.extend(validate::no_template(field, image).err());
    issues.extend(validate::no_token(field, image).err());
}

fn check_labels(
    field: &str,
    map: &BTreeMap<String, String>,
    values_are_labels: bool,
    issues: &mut Vec<Invalid>,
) {
    for (k, v) in map {
        let f = format!("{field}[{k}]");
        issues.extend(validate::label_key(&f, k).err());
        if values_are_labels {
            issues.extend(validate::label_value(&f, v).err());
        }
        issues.extend(validate::no_template(&f, v).err());
        issues.extend(validate::no_token(&f, v).err());
    }
}

/// Environment variables this crate refuses in `envVars`: tokens and the settings runner 18+ rejects.
const FORBIDDEN_ENV: [&str; 8] = [
    "CI_SERVER_TOKEN",
    "RUNNER_TOKEN",
    "REGISTRATION_TOKEN",
    "RUNNER_TAG_LIST",
    "REGISTER_RUN_UNTAGGED",
    "REGISTER_LOCKED",
    "REGISTER_ACCESS_LEVEL",
    "REGISTER_MAXIMUM_TIMEOUT",
];

/// Typed values of the official gitlab-runner chart. Build with [`RunnerValues::new`], adjust the
/// public fields or the setters, [`validate`](Self::validate), then [`to_yaml`](Self::to_yaml).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunnerValues {
    /// GitLab instance URL (`gitlabUrl`).
    pub gitlab_url: String,
    /// Allow `http://` to a non-loopback host.
    pub allow_insecure_url: bool,
    /// Maximum concurrent jobs of this runner (`concurrent`); at least the largest batch routed to it.
    pub concurrent: u32,
    /// How often the runner asks GitLab for jobs (`checkInterval`).
    pub check_interval: Duration,
    /// Job requests in flight to GitLab (`request_concurrency` in `runners.config`); `None` derives
    /// it from `concurrent` with [`recommended_request_concurrency`]. Read the value in force
    /// with [`RunnerValues::effective_request_concurrency`].
    pub request_concurrency: Option<u32>,
    /// Secret holding `runner-token` and `runner-registration-token` (`runners.secret`).
    pub secret_name: String,
    /// Namespace Role for the manager.
    pub rbac: Rbac,
    /// The manager's service account (`serviceAccount`).
    pub service_account: ServiceAccount,
    /// Labels on the manager pod (`podLabels`).
    pub pod_labels: BTreeMap<String, String>,
    /// Annotations on the manager pod (`podAnnotations`).
    pub pod_annotations: BTreeMap<String, String>,
    /// The manager pod's requests = limits (`resources`), a floor: what is rendered is the larger
    /// of this and [`manager_resources_for`] `concurrent` (see [`RunnerValues::manager_resources`]).
    pub resources: ContainerResources,
    /// Plain environment of the manager (`envVars`). Never secrets.
    pub env_vars: Vec<EnvVar>,
    /// Kubernetes executor settings, rendered into `runners.config`.
    pub executor: KubernetesExecutor,
    /// The GitLab tags of this runner, recorded in [`RUNNER_TAGS_ANNOTATION`] (not chart `tags`).
    pub runner_tags: Vec<String>,
    /// How the manager pod stops when it is replaced; `None` renders the chart's defaults: the
    /// image's stop signal (SIGQUIT for the official image: an unbounded drain) and SIGKILL at the
    /// chart's 3600 s grace period, which leaves running job pods behind.
    #[serde(default)]
    pub graceful_stop: Option<GracefulStop>,
    /// The manager's image (chart `image`); `None` keeps the chart's official image, whose stop
    /// signal is SIGQUIT ([`crate::stop`]).
    #[serde(default)]
    pub manager_image: Option<ManagerImage>,
    /// The runner's own Prometheus metrics (chart `metrics`); `None` leaves them off.
    #[serde(default)]
    pub metrics: Option<RunnerMetrics>,
    /// The distributed cache on S3 through IRSA (`[runners.cache]`); `None`: no cache.
    #[serde(default)]
    pub cache: Option<crate::cache::S3Cache>,
}

/// The runner manager's embedded metrics server (`/metrics`: jobs, API requests, failures).
///
/// The chart's values.yaml (gitlab-runner 0.86.0) has `metrics.enabled: false`, `port: 9252`,
/// `portName: metrics`; with `enabled` its deployment names the container port and its pod
/// template carries `prometheus.io/scrape: "true"` and `prometheus.io/port`, the annotations a
/// Prometheus `kubernetes_sd_configs` pod job keeps. The runner only listens when a listen
/// address is set: `listen_address` in config.toml or `LISTEN_ADDRESS` in its environment
/// (gitlab-runner `commands/config.go`, `configOptionsWithListenAddress`; "Listen address not
/// defined, metrics server disabled" in `commands/multi.go`), so the environment gets one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerMetrics {
    /// The port (`metrics.port`, the runner's default 9252).
    pub port: u16,
}

impl Default for RunnerMetrics {
    fn default() -> Self {
        Self { port: 9252 }
    }
}

impl RunnerValues {
    /// Values for a runner of `gitlab_url` with this project's defaults: concurrent 10, least-privilege
    /// Role, Secret `gitlab-runner-token`, Fargate-sized requests = limits, poll timeout 300s.
    pub fn new(gitlab_url: impl Into<String>) -> Self {
        Self {
            gitlab_url: gitlab_url.into(),
            allow_insecure_url: false,
            concurrent: 10,
            check_interval: Duration::from_secs(3),
            request_concurrency: None,
            secret_name: "gitlab-runner-token".to_string(),
            rbac: Rbac::default(),
            service_account: ServiceAccount::default(),
            pod_labels: BTreeMap::new(),
            pod_annotations: BTreeMap::new(),
            resources: ContainerResources::new("500m", "768Mi"),
            env_vars: Vec::new(),
            executor: KubernetesExecutor::default(),
            runner_tags: Vec::new(),
            graceful_stop: Some(GracefulStop::default()),
            manager_image: None,
            metrics: Some(RunnerMetrics::default()),
            cache: None,
        }
    }

    /// Sets the runner's own metrics (`None`: off).
    #[must_use]
    pub fn with_metrics(mut self, metrics: Option<RunnerMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The stop signal of the manager's image: SIGQUIT for the chart's official image
    /// ([`ManagerImage::stop_signal`] for any other).
    pub fn manager_stop_signal(&self) -> StopSignal {
        self.manager_image
            .as_ref()
            .map_or(StopSignal::Sigquit, ManagerImage::stop_signal)
    }

    /// Sets the manager's image (`None`: the chart's official image).
    #[must_use]
    pub fn with_manager_image(mut self, image: Option<ManagerImage>) -> Self {
        self.manager_image = image;
        self
    }

    /// Sets how the manager pod stops when replaced (`None`: the chart's defaults, which stop
    /// the manager with its image's stop signal and SIGKILL after an hour).
    #[must_use]
    pub fn with_graceful_stop(mut self, stop: Option<GracefulStop>) -> Self {
        self.graceful_stop = stop;
        self
    }

    /// Sets `concurrent`.
    #[must_use]
    pub fn with_concurrent(mut self, concurrent: u32) -> Self {
        self.concurrent = concurrent;
        self
    }

    /// Sets `request_concurrency` explicitly (instead of deriving it from `concurrent`).
    #[must_use]
    pub fn with_request_concurrency(mut self, requests: u32) -> Self {
        self.request_concurrency = Some(requests);
        self
    }

    /// The `request_concurrency` in force: the explicit value, else the one derived from
    /// `concurrent` ([`recommended_request_concurrency`]).
    pub fn effective_request_concurrency(&self) -> u32 {
        self.request_concurrency
            .unwrap_or_else(|| recommended_request_concurrency(self.concurrent))
    }

    /// The manager pod's requests = limits as rendered: per resource, the larger of
    /// [`RunnerValues::resources`] and [`manager_resources_for`] `concurrent`.
    pub fn manager_resources(&self) -> ContainerResources {
        let sized = manager_resources_for(self.concurrent);
        let cpu = match (
            validate::cpu_millis("resources.cpu", &self.resources.cpu),
            validate::cpu_millis("resources.cpu", &sized.cpu),
        ) {
            (Ok(mine), Ok(rule)) if rule > mine => sized.cpu,
            _ => self.resources.cpu.clone(),
        };
        let memory = match (
            validate::memory_mib("resources.memory", &self.resources.memory),
            validate::memory_mib("resources.memory", &sized.memory),
        ) {
            (Ok(mine), Ok(rule)) if rule > mine => sized.memory,
            _ => self.resources.memory.clone(),
        };
        ContainerResources::new(cpu, memory)
    }

    /// The Fargate size of the runner-manager pod as rendered ([`RunnerValues::manager_resources`]).
    pub fn manager_pod_size(&self) -> Option<FargateSize> {
        self.manager_resources().fargate_size()
    }

    /// Sets the Secret name (`runners.secret`).
    #[must_use]
    pub fn with_secret_name(mut self, name: impl Into<String>) -> Self {
        self.secret_name = name.into();
        self
    }

    /// Sets `poll_timeout`.
    #[must_use]
    pub fn with_poll_timeout(mut self, timeout: Duration) -> Self {
        self.executor.poll_timeout = timeout;
        self
    }

    /// Sets the build container's CPU and memory (requests = limits).
    #[must_use]
    pub fn with_build_resources(
        mut self,
        cpu: impl Into<String>,
        memory: impl Into<String>,
    ) -> Self {
        self.executor.build = ContainerResources::new(cpu, memory);
        self
    }

    /// Sets the build container's ephemeral storage (`None`: Fargate's included 20 GiB).
    #[must_use]
    pub fn with_ephemeral_storage(mut self, storage: Option<EphemeralStorage>) -> Self {
        self.executor.ephemeral_storage = storage;
        self
    }

    /// Sets the `*_overwrite_max_allowed` ceilings of the build container.
    #[must_use]
    pub fn with_overwrite_ceilings(mut self, ceilings: OverwriteCeilings) -> Self {
        self.executor.overwrite_max = ceilings;
        self
    }

    /// Sets the job namespace.
    #[must_use]
    pub fn with_job_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.executor.namespace = Some(namespace.into());
        self
    }

    /// Sets the default job image.
    #[must_use]
    pub fn with_image(mut self, image: impl Into<String>) -> Self {
        self.executor.image = image.into();
        self
    }

    /// Sets the runner's GitLab tags.
    #[must_use]
    pub fn with_runner_tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.runner_tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// Runs the manager as the named ServiceAccount another release of the fleet creates
    /// ([`ServiceAccount::shared`]); a no-op without a named ServiceAccount.
    #[must_use]
    pub fn with_shared_service_account(mut self) -> Self {
        self.service_account.shared = self.service_account.name.is_some();
        self
    }

    /// Job pods run as these job ServiceAccounts (created in the job namespace with their IAM
    /// roles): one is the default `service_account`; several are admitted by an anchored
    /// `service_account_overwrite_allowed` ([`JobIdentity::for_accounts`]).
    #[must_use]
    pub fn with_job_service_accounts<I, S>(mut self, accounts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.executor.identity = JobIdentity::for_accounts(accounts);
        self
    }

    /// Allows plain `http://` to a non-loopback GitLab.
    #[must_use]
    pub fn allow_insecure_url(mut self, allow: bool) -> Self {
        self.allow_insecure_url = allow;
        self
    }

    /// Every problem with these values, each naming the field and the fix.
    pub fn issues(&self) -> Vec<Invalid> {
        let mut issues = Vec::new();
        issues.extend(
            validate::gitlab_url("gitlab_url", &self.gitlab_url, self.allow_insecure_url).err(),
        );
        issues.extend(validate::no_template("gitlab_url", &self.gitlab_url).err());
        issues.extend(validate::no_token("gitlab_url", &self.gitlab_url).err());
        if self.concurrent == 0 {
            issues.push(Invalid::new(
                "concurrent",
                "must be at least 1 (GitLab Runner refuses 0)",
                "pass --concurrent 1 or more",
            ));
        } else if self.concurrent > 10_000 {
            issues.push(Invalid::new(
                "concurrent",
                format!("{} is more than one runner can drive", self.concurrent),
                "split the jobs over several releases with plan-fleet",
            ));
        }
        if self.check_interval < Duration::from_secs(1) {
            issues.push(Invalid::new(
                "check_interval",
                "must be at least 1s",
                "use the chart default of 3s",
            ));
        }
        if let Some(requests) = self.request_concurrency
            && (requests == 0 || requests > self.concurrent.max(1))
        {
            issues.push(Invalid::new(
                "request_concurrency",
                format!(
                    "{requests} is outside 1..={} (at most one job request per job slot)",
                    self.concurrent.max(1)
                ),
                format!(
                    "leave it unset to derive it from concurrent ({})",
                    recommended_request_concurrency(self.concurrent)
                ),
            ));
        }
        issues.extend(validate::object_name("runners.secret", &self.secret_name).err());
        if self.rbac.create && self.rbac.rules.is_empty() {
            issues.push(Invalid::new(
                "rbac.rules",
                "is empty, which makes the chart grant every verb on every resource",
                "keep least_privilege_rules()",
            ));
        }
        if let Some(name) = &self.service_account.name {
            issues.extend(validate::object_name("service_account.name", name).err());
        }
        for (k, v) in &self.service_account.annotations {
            let f = format!("service_account.annotations[{k}]");
            issues.extend(validate::label_key(&f, k).err());
            issues.extend(validate::no_template(&f, v).err());
            issues.extend(validate::no_token(&f, v).err());
        }
        check_labels("pod_labels", &self.pod_labels, true, &mut issues);
        check_labels("pod_annotations", &self.pod_annotations, false, &mut issues);
        self.resources.check("resources", &mut issues);
        for (i, var) in self.env_vars.iter().enumerate() {
            let f = format!("env_vars[{i}]");
            let name_ok = !var.name.is_empty()
                && var
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !var.name.as_bytes()[0].is_ascii_digit();
            if !name_ok {
                issues.push(Invalid::new(
                    &f,
                    format!("{:?} is not an environment variable name", var.name),
                    "use letters, digits and '_', not starting with a digit",
                ));
            }
            if FORBIDDEN_ENV.contains(&var.name.as_str()) {
                issues.push(Invalid::new(
                    &f,
                    format!("{} is a token or a registration setting that GitLab Runner 18+ rejects", var.name),
                    "remove it: the token comes from runners.secret, tags and locking are set when the runner is created in GitLab",
                ));
            }
            issues.extend(validate::no_token(&f, &var.value).err());
            issues.extend(validate::no_template(&f, &var.value).err());
        }
        self.executor.check(&mut issues);
        if let Some(image) = &self.manager_image {
            check_image("manager_image", &image.repository(), &mut issues);
            if let Some(tag) = &image.tag {
                check_image("manager_image.tag", tag, &mut issues);
            }
        }
        if let Some(stop) = &self.graceful_stop {
            stop.check(&mut issues);
        }
        for tag in &self.runner_tags {
            issues.extend(validate::runner_tag("runner_tags", tag).err());
        }
        issues
    }

    /// Checks every field; the error lists every problem.
    pub fn validate(&self) -> Result<()> {
        Error::check(self.issues())
    }

    /// Checks these values for a runner that receives `routed_jobs` jobs at once, whose job pods
    /// take about `expected_pod_start` to start: `concurrent` must cover the batch and
    /// `poll_timeout` must outlast the start.
    pub fn validate_for(&self, routed_jobs: u32, expected_pod_start: Duration) -> Result<()> {
        let mut issues = self.issues();
        if self.concurrent != 0 && self.concurrent < routed_jobs {
            issues.push(Invalid::new(
                "concurrent",
                format!("{} is below the {routed_jobs} jobs routed to this runner; the extra jobs would queue or fail", self.concurrent),
                format!("pass --concurrent {routed_jobs} or more, or split the jobs with plan-fleet"),
            ));
        }
        if self.executor.poll_timeout < expected_pod_start {
            issues.push(Invalid::new(
                "poll_timeout",
                format!(
                    "{}s is shorter than the expected Fargate pod start of {}s; jobs would fail with \"timed out waiting for pod to start\"",
                    self.executor.poll_timeout.as_secs(),
                    expected_pod_start.as_secs()
                ),
                format!(
                    "pass --poll-timeout {}s or more ({}s recommended)",
                    expected_pod_start.as_secs(),
                    crate::fleet::recommend_poll_timeout(expected_pod_start).as_secs()
                ),
            ));
        }
        Error::check(issues)
    }

    /// The release's pods whose requests land just past a Fargate size, each naming the request
    /// that would fit the smaller size (e.g. `--cpu 1` plus the 250m helper is 1.25 vCPU, billed
    /// as 2 vCPU / 4 GB). Requests that do not parse are left to [`Self::validate`].
    pub fn fargate_rounding(&self) -> Vec<FargateRounding> {
        let mut ignore = Vec::new();
        let mut found = Vec::new();
        let e = &self.executor;
        if let (Some(build), Some(helper)) = (
            e.build.check("", &mut ignore),
            e.helper.check("", &mut ignore),
        ) && let Some(miss) = NearMiss::find(u64::from(build.0 + helper.0), build.1 + helper.1)
        {
            // Lower the build container (the one --cpu/--memory set) when it can give enough.
            let (field, current) = match miss.resource {
                Resource::Cpu if u64::from(build.0) > miss.excess => {
                    ("executor.build.cpu", u64::from(build.0))
                }
                Resource::Cpu => ("executor.helper.cpu", u64::from(helper.0)),
                Resource::Memory if build.1 > miss.excess => ("executor.build.memory", build.1),
                Resource::Memory => ("executor.helper.memory", helper.1),
            };
            found.push(FargateRounding::new("job", field, current, miss));
        }
        if let Some((cpu, mem)) = self.manager_resources().check("", &mut ignore)
            && let Some(miss) = NearMiss::find(u64::from(cpu), mem)
        {
            let (field, current) = match miss.resource {
                Resource::Cpu => ("resources.cpu", u64::from(cpu)),
                Resource::Memory => ("resources.memory", mem),
            };
            found.push(FargateRounding::new("manager", field, current, miss));
        }
        found
    }

    /// The `runners.config` TOML this renders (one `[[runners]]` entry, serialised by the `toml` crate).
    pub fn runners_config(&self) -> String {
        let config = RunnersConfig {
            runners: vec![RunnerEntry {
                request_concurrency: Some(self.effective_request_concurrency()),
                feature_flags: BTreeMap::from([(
                    ADAPTIVE_REQUEST_CONCURRENCY_FLAG.to_string(),
                    true,
                )]),
                kubernetes: self.executor.toml_table(),
                cache: self.cache.as_ref().map(crate::cache::S3Cache::toml),
            }],
        };
        // Plain data with string keys: serialising it cannot fail.
        toml::to_string(&config).unwrap_or_default()
    }

    /// The chart values as a JSON tree (what `helm get values` would return).
    pub fn to_chart_values(&self) -> Result<serde_json::Value> {
        self.validate()?;
        serde_json::to_value(self.chart_values()).map_err(|e| Error::Backend {
            backend: "values",
            resource: "chart values".into(),
            action: "serialise".into(),
            source: Box::new(e),
        })
    }

    /// Validates, then renders the values YAML for `helm --values`. Never contains a token.
    pub fn to_yaml(&self) -> Result<String> {
        self.validate()?;
        let yaml = serde_norway::to_string(&self.chart_values()).map_err(|e| Error::Backend {
            backend: "values",
            resource: "chart values".into(),
            action: "serialise to YAML".into(),
            source: Box::new(e),
        })?;
        // Defence in depth: validation already refuses token-shaped text anywhere.
        if crate::secret::looks_like_token(&yaml) {
            return Err(Error::invalid(
                "values",
                "rendered values contain a token",
                "remove the token; it belongs in the Secret",
            ));
        }
        Ok(yaml)
    }

    fn chart_values(&self) -> ChartValues<'_> {
        let manager = self.manager_resources();
        let mut deployment_annotations = BTreeMap::new();
        if !self.runner_tags.is_empty() {
            deployment_annotations.insert(
                RUNNER_TAGS_ANNOTATION.to_string(),
                self.runner_tags.join(","),
            );
        }
        let (shutdown_timeout, termination_grace_period_seconds, deployment_lifecycle) =
            match &self.graceful_stop {
                Some(stop) => {
                    deployment_annotations.insert(
                        DRAIN_TIMEOUT_ANNOTATION.to_string(),
                        stop.drain_timeout.as_secs().to_string(),
                    );
                    (
                        Some(stop.shutdown_timeout.as_secs()),
                        Some(stop.termination_grace_period().as_secs()),
                        Some(ChartLifecycle {
                            pre_stop: ChartHook {
                                exec: ChartExec {
                                    command: stop.pre_stop_command(),
                                },
                            },
                        }),
                    )
                }
                None => (None, None, None),
            };
        ChartValues {
            image: self.manager_image.as_ref(),
            gitlab_url: &self.gitlab_url,
            concurrent: self.concurrent,
            check_interval: self.check_interval.as_secs(),
            shutdown_timeout,
            termination_grace_period_seconds,
            deployment_lifecycle,
            rbac: ChartRbac {
                create: self.rbac.create,
                cluster_wide_access: false,
                rules: &self.rbac.rules,
            },
            service_account: ChartServiceAccount {
                // The chart only applies `serviceAccount.annotations` (IRSA's role ARN) to a
                // service account it creates: create one whenever there are annotations, even
                // with rbac.create = false, or the role is silently lost.
                // A shared account is another release's: the chart renders a ServiceAccount
                // when serviceAccount.create is true, or rbac.create is true and
                // serviceAccount.create is unset (gitlab-runner chart 0.86.0,
                // templates/service-account.yaml:2), so an explicit false is what leaves it out.
                create: !self.service_account.shared
                    && (self.rbac.create || !self.service_account.annotations.is_empty()),
                name: self.service_account.name.as_deref(),
                annotations: &self.service_account.annotations,
            },
            deployment_annotations,
            pod_labels: &self.pod_labels,
            pod_annotations: &self.pod_annotations,
            resources: ChartResources {
                requests: manager.clone(),
                limits: manager,
            },
            env_vars: {
                let mut env = self.env_vars.clone();
                if let Some(m) = &self.metrics
                    && !env.iter().any(|e| e.name == "LISTEN_ADDRESS")
                {
                    env.push(EnvVar {
                        name: "LISTEN_ADDRESS".into(),
                        value: format!(":{}", m.port),
                    });
                }
                env
            },
            metrics: self.metrics.map(|m| ChartMetrics {
                enabled: true,
                port: m.port,
                port_name: "metrics",
            }),
            runners: ChartRunners {
                secret: &self.secret_name,
                // The chart puts the executor's Role and RoleBinding in `runners.jobNamespace`
                // (falling back to the release namespace): without it the runner may not create
                // job pods in another namespace.
                job_namespace: self.executor.namespace.as_deref(),
                config: self.runners_config(),
            },
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChartValues<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<&'a ManagerImage>,
    gitlab_url: &'a str,
    concurrent: u32,
    check_interval: u64,
    /// The chart writes it into the global section of config.toml.
    #[serde(rename = "shutdown_timeout", skip_serializing_if = "Option::is_none")]
    shutdown_timeout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    termination_grace_period_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deployment_lifecycle: Option<ChartLifecycle>,
    rbac: ChartRbac<'a>,
    service_account: ChartServiceAccount<'a>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    deployment_annotations: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pod_labels: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pod_annotations: &'a BTreeMap<String, String>,
    resources: ChartResources,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    env_vars: Vec<EnvVar>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics: Option<ChartMetrics>,
    runners: ChartRunners<'a>,
}

/// `metrics`: the chart's switch for the runner's metrics port and scrape annotations.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChartMetrics {
    enabled: bool,
    port: u16,
    port_name: &'static str,
}

/// `deploymentLifecycle`: the manager container's `lifecycle`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChartLifecycle {
    pre_stop: ChartHook,
}

#[derive(Serialize)]
struct ChartHook {
    exec: ChartExec,
}

#[derive(Serialize)]
struct ChartExec {
    command: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChartRbac<'a> {
    create: bool,
    cluster_wide_access: bool,
    rules: &'a [PolicyRule],
}

#[derive(Serialize)]
struct ChartServiceAccount<'a> {
    create: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct ChartResources {
    requests: ContainerResources,
    limits: ContainerResources,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChartRunners<'a> {
    secret: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    job_namespace: Option<&'a str>,
    config: String,
}

/// `runners.config`: GitLab Runner's `config.toml` entries (only what glrunner sets or reads).
#[derive(Debug, Default, Serialize, Deserialize)]
struct RunnersConfig {
    #[serde(default)]
    runners: Vec<RunnerEntry>,
}

/// One `[[runners]]` entry.
#[derive(Debug, Default, Serialize, Deserialize)]
struct RunnerEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request_concurrency: Option<u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    feature_flags: BTreeMap<String, bool>,
    #[serde(default)]
    kubernetes: KubernetesToml,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cache: Option<crate::cache::CacheToml>,
}

/// `[runners.kubernetes]`: the Kubernetes executor's settings.
#[derive(Debug, Default, Serialize, Deserialize)]
struct KubernetesToml {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    helper_image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    privileged: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    poll_interval: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    poll_timeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cpu_request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cpu_limit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    memory_request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    memory_limit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    helper_cpu_request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    helper_cpu_limit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    helper_memory_request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    helper_memory_limit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    service_cpu_request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    service_cpu_limit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    service_memory_request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    service_memory_limit: Option<String>,
    /// A list: GitLab Runner reads a string or an array (`StringOrArray`), older runners an
    /// array (`[]string`); both read this.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pull_policy: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pod_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pod_annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    service_account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    service_account_overwrite_allowed: Option<String>,
    // The job disk and the overwrite ceilings (crate::job_disk; gitlab-runner common/config.go
    // `KubernetesConfig`, the `toml:` tags of the same names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ephemeral_storage_request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ephemeral_storage_limit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cpu_request_overwrite_max_allowed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cpu_limit_overwrite_max_allowed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    memory_request_overwrite_max_allowed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    memory_limit_overwrite_max_allowed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ephemeral_storage_request_overwrite_max_allowed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ephemeral_storage_limit_overwrite_max_allowed: Option<String>,
}

/// What a release's values say about its runner, as read back from Helm (or the in-memory store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerSummary {
    /// `concurrent`.
    pub concurrent: u32,
    /// Tags from [`RUNNER_TAGS_ANNOTATION`].
    pub tags: Vec<String>,
    /// The Secret named by `runners.secret`.
    pub secret_name: Option<String>,
    /// `poll_timeout` from `runners.config`, when present (serialised as seconds).
    #[serde(rename = "poll_timeout_secs", with = "opt_secs")]
    pub poll_timeout: Option<Duration>,
    /// Job namespace (`runners.jobNamespace`, else `runners.config`), when set explicitly.
    pub job_namespace: Option<String>,
    /// `request_concurrency` from `runners.config`, when present.
    #[serde(default)]
    pub request_concurrency: Option<u32>,
    /// glrunner's bounded graceful stop ([`GracefulStop`]), when its preStop hook is rendered.
    #[serde(default)]
    pub graceful_stop: Option<GracefulStop>,
    /// The manager image's stop signal ([`crate::stop::manager_stop_signal`]): with SIGQUIT (the
    /// official image) a replaced manager drains even without glrunner's hook.
    #[serde(default = "official_stop_signal")]
    pub stop_signal: StopSignal,
}

fn official_stop_signal() -> StopSignal {
    StopSignal::Sigquit
}

impl RunnerSummary {
    /// Summarises typed values.
    pub fn of(values: &RunnerValues) -> Self {
        Self {
            concurrent: values.concurrent,
            tags: values.runner_tags.clone(),
            secret_name: Some(values.secret_name.clone()),
            poll_timeout: Some(values.executor.poll_timeout),
            job_namespace: values.executor.namespace.clone(),
            request_concurrency: Some(values.effective_request_concurrency()),
            graceful_stop: values.graceful_stop,
            stop_signal: values.manager_stop_signal(),
        }
    }

    /// Whether a replaced manager lets its running jobs finish: glrunner's hook, or an image
    /// whose stop signal is SIGQUIT.
    pub fn stops_gracefully(&self) -> bool {
        self.graceful_stop.is_some() || self.stop_signal == StopSignal::Sigquit
    }

    /// Reads a summary from user-supplied chart values (`helm get values -o json`, or a release's `config`).
    pub fn from_chart_values(values: &serde_json::Value) -> Option<Self> {
        let concurrent = u32::try_from(values.get("concurrent")?.as_u64()?).ok()?;
        let tags = values
            .pointer("/deploymentAnnotations")
            .and_then(|a| a.get(RUNNER_TAGS_ANNOTATION))
            .and_then(|t| t.as_str())
            .map(|t| {
                t.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let secret_name = values
            .pointer("/runners/secret")
            .and_then(|s| s.as_str())
            .map(str::to_string);
        let config: RunnersConfig = values
            .pointer("/runners/config")
            .and_then(|c| c.as_str())
            .and_then(|c| toml::from_str(c).ok())
            .unwrap_or_default();
        let entry = config.runners.into_iter().next().unwrap_or_default();
        let poll_timeout = entry.kubernetes.poll_timeout.map(Duration::from_secs);
        let job_namespace = values
            .pointer("/runners/jobNamespace")
            .and_then(|n| n.as_str())
            .map(str::to_string)
            .or(entry.kubernetes.namespace)
            .filter(|v| !v.contains("{{"));
        let request_concurrency = entry.request_concurrency;
        // Graceful only when glrunner's preStop hook is there (the annotation alone could be stale).
        let sends_sigquit = values
            .pointer("/deploymentLifecycle/preStop/exec/command")
            .and_then(|c| c.as_array())
            .is_some_and(|c| {
                c.iter()
                    .any(|a| a.as_str().is_some_and(|a| a.contains("kill -QUIT")))
            });
        let graceful_stop = values
            .pointer("/deploymentAnnotations")
            .and_then(|a| a.get(DRAIN_TIMEOUT_ANNOTATION))
            .and_then(|t| t.as_str())
            .and_then(|t| t.parse::<u64>().ok())
            .filter(|_| sends_sigquit)
            .map(|drain| GracefulStop {
                drain_timeout: Duration::from_secs(drain),
                shutdown_timeout: values
                    .get("shutdown_timeout")
                    .and_then(serde_json::Value::as_u64)
                    .filter(|s| *s > 0)
                    .map_or(DEFAULT_SHUTDOWN_TIMEOUT, Duration::from_secs),
            });
        Some(Self {
            concurrent,
            tags,
            secret_name,
            poll_timeout,
            job_namespace,
            request_concurrency,
            graceful_stop,
            stop_signal: crate::stop::manager_stop_signal(values),
        })
    }
}

/// `Option<Duration>` as whole seconds.
mod opt_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> RunnerValues {
        RunnerValues::new("https://gitlab.example.com/")
            .with_concurrent(200)
            .with_runner_tags(["glrunner-1"])
    }

    #[test]
    fn defaults_are_valid_and_render() {
        let v = values();
        v.validate().unwrap();
        let yaml = v.to_yaml().unwrap();
        assert!(yaml.contains("concurrent: 200"));
        assert!(yaml.contains("secret: gitlab-runner-token"));
        for forbidden in [
            "runnerToken",
            "runnerRegistrationToken",
            "runUntagged",
            "locked",
            "glrt-",
        ] {
            assert!(!yaml.contains(forbidden), "{forbidden} in {yaml}");
        }
        assert!(
            !yaml.lines().any(|l| l.trim_start().starts_with("tags:")),
            "{yaml}"
        );
        let cfg = v.runners_config();
        assert!(cfg.contains("poll_timeout = 300"));
        assert!(cfg.contains("privileged = false"));
        assert!(cfg.contains("helper_cpu_request = \"250m\""));
        assert!(cfg.contains("helper_cpu_limit = \"250m\""));
        assert!(cfg.contains("namespace = \"{{ .Release.Namespace }}\""));
    }

    #[test]
    fn summary_round_trips_through_chart_values() {
        let v = values()
            .with_job_namespace("ci-jobs")
            .with_poll_timeout(Duration::from_secs(420));
        let json = v.to_chart_values().unwrap();
        let s = RunnerSummary::from_chart_values(&json).unwrap();
        assert_eq!(s, RunnerSummary::of(&v));
    }

    #[test]
    fn every_error_names_field_and_fix() {
        let mut v = RunnerValues::new("gitlab.example.com")
            .with_concurrent(0)
            .with_build_resources("lots", "2Gb");
        v.executor.privileged = true;
        v.env_vars.push(EnvVar {
            name: "RUNNER_TAG_LIST".into(),
            value: "a".into(),
        });
        v.env_vars.push(EnvVar {
            name: "X".into(),
            value: "glrt-oops".into(),
        });
        v.pod_annotations
            .insert("a".into(), "{{ .Values.x }}".into());
        v.runner_tags.push("a,b".into());
        let e = v.validate().unwrap_err();
        let fields: Vec<&str> = e.issues().iter().map(|i| i.field.as_str()).collect();
        for f in [
            "gitlab_url",
            "concurrent",
            "executor.build.cpu",
            "executor.build.memory",
            "executor.privileged",
            "env_vars[0]",
            "env_vars[1]",
            "pod_annotations[a]",
            "runner_tags",
        ] {
            assert!(fields.contains(&f), "{f} missing from {fields:?}");
        }
        assert!(e.issues().iter().all(|i| !i.fix.is_empty()));
        assert!(!e.to_string().contains("glrt-oops"));
    }

    #[test]
    fn the_privileged_fix_routes_image_builds_off_fargate() {
        let mut v = RunnerValues::new("https://gitlab.example.com");
        v.executor.privileged = true;
        let e = v.validate().unwrap_err();
        let issue = e
            .issues()
            .iter()
            .find(|i| i.field == "executor.privileged")
            .expect("privileged is refused");
        assert!(
            issue
                .fix
                .contains("route image builds to a runner that is not on Fargate"),
            "{}",
            issue.fix
        );
        // Neither in-cluster builder is offered as the way out any more.
        assert!(issue.fix.contains("Kaniko is archived"));
        assert!(issue.fix.contains("containers/buildah#6718"));
        assert!(!issue.fix.contains("with kaniko or buildah"));
    }

    #[test]
    fn validate_for_routing() {
        let v = values().with_concurrent(150);
        let e = v.validate_for(200, Duration::from_secs(60)).unwrap_err();
        assert!(e.to_string().contains("below the 200 jobs"), "{e}");
        let e = values()
            .with_poll_timeout(Duration::from_secs(60))
            .validate_for(10, Duration::from_secs(90))
            .unwrap_err();
        assert_eq!(e.issues()[0].field, "poll_timeout");
        values().validate_for(200, Duration::from_secs(90)).unwrap();
    }

    #[test]
    fn runners_config_is_toml_that_round_trips_awkward_strings() {
        let mut v = values();
        v.executor.pod_annotations.insert(
            "glrunner.io/note".into(),
            "quote \" backslash \\ newline \n = x".into(),
        );
        let parsed: RunnersConfig = toml::from_str(&v.runners_config()).unwrap();
        assert_eq!(
            parsed.runners[0].kubernetes.pod_annotations["glrunner.io/note"],
            "quote \" backslash \\ newline \n = x"
        );
    }

    #[test]
    fn request_concurrency_follows_concurrent_and_is_rendered() {
        assert_eq!(recommended_request_concurrency(1), 1);
        assert_eq!(recommended_request_concurrency(10), 1);
        assert_eq!(recommended_request_concurrency(200), 20);
        assert_eq!(
            recommended_request_concurrency(10_000),
            MAX_REQUEST_CONCURRENCY
        );
        let v = values();
        assert_eq!(v.effective_request_concurrency(), 20);
        let parsed: RunnersConfig = toml::from_str(&v.runners_config()).unwrap();
        assert_eq!(parsed.runners[0].request_concurrency, Some(20));
        assert_eq!(
            parsed.runners[0]
                .feature_flags
                .get(ADAPTIVE_REQUEST_CONCURRENCY_FLAG),
            Some(&true)
        );
        let explicit = values().with_request_concurrency(4);
        assert_eq!(explicit.effective_request_concurrency(), 4);
        let e = values().with_request_concurrency(0).validate().unwrap_err();
        assert_eq!(e.issues()[0].field, "request_concurrency");
        let e = values()
            .with_concurrent(5)
            .with_request_concurrency(6)
            .validate()
            .unwrap_err();
        assert_eq!(e.issues()[0].field, "request_concurrency");
    }

    #[test]
    fn the_manager_pod_grows_with_concurrent() {
        let small = RunnerValues::new("https://gitlab.example.com/").with_concurrent(10);
        assert_eq!(small.manager_resources(), small.resources);
        let big = values();
        assert_eq!(
            big.manager_resources(),
            ContainerResources::new("2000m", "2560Mi")
        );
        let tree = big.to_chart_values().unwrap();
        assert_eq!(tree["resources"]["requests"]["cpu"], "2000m");
        assert_eq!(tree["resources"]["limits"]["memory"], "2560Mi");
        let mut generous = values();
        generous.resources = ContainerResources::new("4", "8Gi");
        assert_eq!(generous.manager_resources(), generous.resources);
    }

    #[test]
    fn a_job_namespace_moves_the_executor_role_there() {
        let tree = values()
            .with_job_namespace("ci-jobs")
            .to_chart_values()
            .unwrap();
        assert_eq!(tree["runners"]["jobNamespace"], "ci-jobs");
        let tree = values().to_chart_values().unwrap();
        assert!(tree["runners"].get("jobNamespace").is_none(), "{tree}");
    }

    #[test]
    fn irsa_annotations_survive_rbac_create_false() {
        let mut v = values();
        v.rbac.create = false;
        v.service_account.annotations.insert(
            "eks.amazonaws.com/role-arn".into(),
            "arn:aws:iam::123456789012:role/runner".into(),
        );
        let tree = v.to_chart_values().unwrap();
        assert_eq!(tree["serviceAccount"]["create"], true);
        assert_eq!(
            tree["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"],
            "arn:aws:iam::123456789012:role/runner"
        );
        assert_eq!(tree["rbac"]["create"], false);
        let mut plain = values();
        plain.rbac.create = false;
        assert_eq!(
            plain.to_chart_values().unwrap()["serviceAccount"]["create"],
            false
        );
    }

    #[test]
    fn the_manager_stops_gracefully_and_the_grace_period_covers_drain_and_cleanup() {
        let v = values().with_graceful_stop(Some(GracefulStop::new(Duration::from_secs(600))));
        let tree = v.to_chart_values().unwrap();
        assert_eq!(tree["terminationGracePeriodSeconds"], 600 + 30 + 15);
        assert_eq!(tree["shutdown_timeout"], 30);
        let command = tree["deploymentLifecycle"]["preStop"]["exec"]["command"]
            .as_array()
            .unwrap();
        assert_eq!(command[0], "/bin/sh");
        let script = command[2].as_str().unwrap();
        assert!(script.starts_with("kill -QUIT 1;"), "{script}");
        assert!(script.contains("-lt 600 "), "{script}");
        assert_eq!(
            tree["deploymentAnnotations"][DRAIN_TIMEOUT_ANNOTATION],
            "600"
        );
        let summary = RunnerSummary::from_chart_values(&tree).unwrap();
        assert_eq!(summary.graceful_stop, v.graceful_stop);
        // Without it: the chart's defaults (the official image's SIGQUIT, unbounded), and the
        // summary says so; a custom image is taken to stop with SIGTERM.
        let abrupt = values().with_graceful_stop(None);
        let tree = abrupt.to_chart_values().unwrap();
        for key in [
            "terminationGracePeriodSeconds",
            "shutdown_timeout",
            "deploymentLifecycle",
        ] {
            assert!(tree.get(key).is_none(), "{key} in {tree}");
        }
        let summary = RunnerSummary::from_chart_values(&tree).unwrap();
        assert_eq!(summary.graceful_stop, None);
        assert_eq!(summary.stop_signal, StopSignal::Sigquit);
        assert!(summary.stops_gracefully());
        let custom = abrupt.with_manager_image(Some(ManagerImage {
            registry: "123456789012.dkr.ecr.us-east-1.amazonaws.com".into(),
            image: "ci/runner".into(),
            tag: Some("v1".into()),
        }));
        let tree = custom.to_chart_values().unwrap();
        assert_eq!(
            tree["image"]["registry"],
            "123456789012.dkr.ecr.us-east-1.amazonaws.com"
        );
        let summary = RunnerSummary::from_chart_values(&tree).unwrap();
        assert_eq!(summary, RunnerSummary::of(&custom));
        assert_eq!(summary.stop_signal, StopSignal::Sigterm);
        assert!(!summary.stops_gracefully());
        let e = values()
            .with_graceful_stop(Some(GracefulStop::new(Duration::ZERO)))
            .validate()
            .unwrap_err();
        assert_eq!(e.issues()[0].field, "graceful_stop.drain_timeout");
    }

    /// Runs the rendered preStop script against a stand-in for the runner that logs the
    /// signals it gets: `trap` for QUIT and TERM as GitLab Runner handles them (SIGQUIT: keep
    /// going, finish the jobs; SIGTERM: abort and exit), `exits_on_quit` for a drain that ends.
    fn run_hook_against_stand_in(exits_on_quit: bool) -> String {
        let dir = std::env::temp_dir().join(format!(
            "glrunner-prestop-{}-{exits_on_quit}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("signals");
        let on_quit = if exits_on_quit {
            "echo QUIT >> \"$LOG\"; exit 0"
        } else {
            "echo QUIT >> \"$LOG\""
        };
        let stand_in = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!(
                "trap '{on_quit}' QUIT; trap 'echo TERM >> \"$LOG\"; exit 0' TERM; \
                 echo ready > \"$LOG.ready\"; while :; do sleep 0.1; done"
            ))
            .env("LOG", &log)
            .spawn()
            .unwrap();
        let pid = stand_in.id();
        // Reaped as soon as it exits, as a container's end would be: `kill -0` sees a zombie.
        let (exited_tx, exited_rx) = std::sync::mpsc::channel();
        let mut reaper = stand_in;
        std::thread::spawn(move || {
            let _ = exited_tx.send(reaper.wait());
        });
        while !dir.join("signals.ready").exists() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let stop = GracefulStop {
            drain_timeout: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(5),
        };
        let command = stop.pre_stop_command_for_pid(pid);
        let status = std::process::Command::new(&command[0])
            .args(&command[1..])
            .status()
            .unwrap();
        assert!(status.success(), "the hook exits 0: {status}");
        // The hook returns once the stand-in is gone (or its bounds passed: then it still runs).
        let exited = exited_rx.recv_timeout(Duration::from_secs(2)).is_ok();
        if !exited {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        assert!(exited, "the runner stand-in is gone when the hook ends");
        let signals = std::fs::read_to_string(&log).unwrap_or_default();
        std::fs::remove_dir_all(&dir).unwrap();
        signals
    }

    #[test]
    fn the_pre_stop_hook_sends_sigterm_only_when_the_drain_bound_passes() {
        // The job "never ends" within the 1 s drain: QUIT, then the hook's TERM (the runner's
        // forced shutdown) rather than leaving it to the kubelet's second SIGQUIT and SIGKILL.
        assert_eq!(run_hook_against_stand_in(false), "QUIT\nTERM\n");
        // The drain ends in time: no SIGTERM.
        assert_eq!(run_hook_against_stand_in(true), "QUIT\n");
        // Every wait of the hook fits in the grace period, with the margin left for the kubelet.
        let stop = GracefulStop::default();
        assert!(stop.drain_timeout + stop.shutdown_timeout < stop.termination_grace_period());
        assert_eq!(stop.pre_stop_command(), stop.pre_stop_command_for_pid(1));
        assert!(stop.pre_stop_command()[2].contains("kill -TERM 1"));
    }

    #[test]
    fn job_pod_size() {
        let e = KubernetesExecutor::default();
        assert_eq!(e.job_pod_size(0), FargateSize::for_requests(500, 768));
        assert_eq!(e.job_pod_size(0).unwrap().vcpu_millis, 500);
    }
}

/// A pod of a release whose requests land just past a Fargate size, and the request that would
/// fit the smaller (cheaper) size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FargateRounding {
    /// `job` (build + helper containers) or `manager` (the runner manager pod).
    pub pod: String,
    /// The values field to lower, e.g. `executor.build.cpu`.
    pub field: String,
    /// The value that fits the smaller size, e.g. `750m` or `1792Mi`.
    pub fits: String,
    /// The sizes and the excess.
    #[serde(flatten)]
    pub near_miss: NearMiss,
}

impl FargateRounding {
    fn new(pod: &str, field: &str, current: u64, near_miss: NearMiss) -> Self {
        let lowered = current - near_miss.excess;
        let fits = match near_miss.resource {
            Resource::Cpu => format!("{lowered}m"),
            Resource::Memory => format!("{lowered}Mi"),
        };
        Self {
            pod: pod.to_owned(),
            field: field.to_owned(),
            fits,
            near_miss,
        }
    }
}

impl std::fmt::Display for FargateRounding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = &self.near_miss;
        let (what, unit) = match m.resource {
            Resource::Cpu => ("CPU", "m"),
            Resource::Memory => ("memory", "Mi (+256Mi Fargate overhead)"),
        };
        write!(
            f,
            "{} pods request {}{unit} of {what}, {}{} past a Fargate size, so each is billed as {}; \
             set {} to {} to fit {}",
            self.pod,
            m.total,
            m.excess,
            if m.resource == Resource::Cpu {
                "m"
            } else {
                "Mi"
            },
            m.billed,
            self.field,
            self.fits,
            m.smaller
        )
    }
}
