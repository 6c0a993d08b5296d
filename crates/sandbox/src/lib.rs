//! The sandbox world: the in-memory backends of all four crates on one virtual clock, plus a
//! runner simulator playing GitLab Runner's Kubernetes executor on EKS Fargate.
//!
//! Everything runs on tokio's clock. Under a paused runtime ([`runtime`]) a 12-minute EKS
//! creation, Fargate pod starts of tens of seconds and minutes of janitor grace pass in
//! milliseconds of wall time. All randomness comes from one seed, so a run is reproducible.
//!
//! **Every timing the sandbox reports is a model.** [`model`] lists what decides a fleet's
//! makespan, each parameter with its source (documented, measured, fitted to the reference
//! tutorial's published makespans, or assumed); [`RunnerProfile`] is the runner configuration
//! under test (the tutorial's or glrunner's).
//!
//! # The runner simulator
//!
//! For each installed, ready release in the in-memory [`InMemoryReleases`] it reads the runner
//! token from the release's Secret (as the chart's runner does), maps it to the GitLab runner and
//! starts a runner manager that, as GitLab Runner does:
//!
//! - every `check_interval` (from the release's values) feeds its runner entry to idle workers,
//!   each asking GitLab for one job; a worker that gets one requeues the entry at once, so jobs
//!   are taken one request round trip apart, at most `request_concurrency` requests in flight
//!   and `concurrent` jobs running;
//! - creates one job pod per job in the job namespace with the executor's labels and
//!   annotations (`job.runner.gitlab.com/pod`, `job.runner.gitlab.com/id`, ...), Pending;
//! - the pod waits for room under the account's Fargate vCPU quota (a pod that finds none gets
//!   `fargate-scheduler`'s `FailedScheduling` Warning Event, [`FARGATE_POD_LIMIT_MESSAGE`], so the
//!   janitor's classifier sees why it is Pending) and for a launch-rate token,
//!   then starts on a new node (node start, pod setup, helper and job image pulls by registry);
//!   the runner sees it at its next `poll_interval` and fails the job when it is not running
//!   after `poll_timeout`;
//! - runs the script, finishes the job in GitLab and deletes the pod;
//! - leaves a configurable fraction hung: an orphaned Pending pod (a create call that timed out
//!   client-side but succeeded server-side; the runner retried with a second pod), or a pod stuck
//!   Terminating because its Fargate node's kubelet is gone.
//!
//! It also keeps one runner-manager pod per release (chart labels, owned by a ReplicaSet), which
//! the janitor must never touch, and whose vCPUs count against the quota.
//!
//! An upgrade that changes the release rolls the manager as the chart's Deployment does
//! (RollingUpdate, one replica: the new pod first, then the old one is terminated): the old
//! manager keeps taking jobs while the upgrade is pending; once the new revision is ready the
//! old pod is stopped as the kubelet stops it: the preStop hook, then the image's stop signal, then
//! SIGKILL at the end of the grace period. With glrunner's graceful stop (preStop SIGQUIT) it
//! takes no new jobs and its running jobs finish, for up to the drain timeout; then the hook's
//! SIGTERM makes GitLab Runner abort the rest, which fail with `runner_system_failure` and whose
//! pods it deletes. Without the hook the official image's SIGQUIT drains until the chart's
//! 3600 s grace period; an image that stops with SIGTERM aborts at once.
//!
//! The simulator's cost grows linearly with the jobs: every job is five timer waits (its request's
//! round trip, the executor's preparation, the pod start, the poll + script + report, the capacity
//! release; stretches nobody else observes are one timer each) and O(log n) calls into the
//! in-memory backends; an idle manager costs nothing per poll (see `SandboxWorld::park`).
//!
//! # In an embedder's tests
//!
//! ```no_run
//! use glrunner_flow::{FlowConfig, FlowEvent};
//! use glrunner_infra::{StackName, StackSpec};
//! use glrunner_sandbox::{SandboxConfig, SandboxWorld};
//!
//! // A paused clock: the 12-minute cluster creation takes milliseconds of wall time.
//! let runtime = glrunner_sandbox::runtime().unwrap();
//! let report = runtime.block_on(async {
//!     let world = SandboxWorld::new("us-east-1", SandboxConfig::default());
//!     let spec = StackSpec::new(StackName::new("demo").unwrap(), "us-east-1");
//!     let config = FlowConfig::new(spec, glrunner_sandbox::SANDBOX_PROJECT, 400);
//!     world.run_flow(&config, &|_: &FlowEvent<'_>| {}).await
//! });
//! let report = report.unwrap();
//! assert!(report.is_success());
//! println!("{}", report.render_text()); // the flow's summary, then the model's account
//! ```

pub mod bench;
pub mod fault_suite;
mod faults;
pub mod images;
pub mod loadtest;
pub mod model;
pub mod profile;
mod report;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use glrunner_gitlab_client::memory::{
    AssignedJob, InMemoryGitLab, JobOutcome, MemoryConfig, VirtualClock,
};
use glrunner_gitlab_client::{GitLabApi, ProjectRef, SecretToken};
use glrunner_infra::memory::InMemoryCloud;
use glrunner_infra::{Engine, StackName, WaitPolicy};
use glrunner_janitor::memory::{InMemoryPods, NewPod};
use glrunner_janitor::model::keys;
use glrunner_janitor::{Clock, DeleteMode, PodApi, PodPhase, TokioClock};
use glrunner_runner_chart::{
    InMemoryReleases, InMemoryTokenSecrets, InstalledRunner, JOB_POD_MANAGER_ID_LABEL, ReleaseId,
    ReleaseState, SecretRef, StopSignal, TokenSecrets,
};
use serde::Serialize;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use faults::Fault;
pub use glrunner_flow::RunnerProfile;
pub use loadtest::{LoadTestRunner, LoadTestSetupError};
pub use model::FleetModel;
pub use report::{Limit, ModelReport, SandboxReport, WaitSummary};

use glrunner_flow::{Backends, ClusterClients, ClusterConnector, Error as FlowError};
use model::TokenBucket;
use profile::RequestConcurrency;

/// The sandbox GitLab's base URL (`.invalid`: no request can leave the process).
pub const SANDBOX_GITLAB_URL: &str = "https://gitlab.sandbox.invalid/";

/// The GitLab project the sandbox flow uses when none is named.
pub const SANDBOX_PROJECT: &str = "sandbox/loadtest";

/// What Fargate's scheduler says on a pod the account's Fargate quota has no room for (a
/// `FailedScheduling` Warning Event from `fargate-scheduler`), word for word as
/// terraform-aws-modules/terraform-aws-eks#1758 quotes it (its title; the janitor's fixture
/// `crates/janitor/tests/fixtures/pending_pods.json`, case `pod-limit`, carries it with that
/// source). That report predates Fargate's vCPU-based quotas (2022); that Fargate still words
/// a vCPU-quota refusal this way is **assumed** (no later capture is in the fixtures). The
/// janitor classifies it as `fargate_pod_limit`.
pub const FARGATE_POD_LIMIT_MESSAGE: &str =
    "Your AWS account has reached the limit on the number of Fargate pods it can run concurrently";

/// Knobs of the sandbox world.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SandboxConfig {
    /// Seed of every random choice (latencies, run times, which pods hang).
    pub seed: u64,
    /// The runner configuration under test (the flow installs it; the simulator uses it only
    /// to size the reference's manager pod, see [`profile::manager_millis`], and to name it).
    pub profile: RunnerProfile,
    /// Every timing parameter, with its source.
    pub model: FleetModel,
    /// Fraction of jobs (0.0..=1.0) that leave a hung pod behind.
    pub hung_fraction: f64,
    /// Helm install duration of a runner release (manager pod on Fargate).
    pub release_install: Duration,
    /// A failure to inject (tests of the cleanup path).
    pub fault: Option<Fault>,
    /// Whether an idle runner manager parks (plays its empty polls without a task each, until a
    /// job for it becomes pending; same outcome, see `SandboxWorld::park`). Off only to measure
    /// what parking saves.
    pub idle_parking: bool,
    /// Every n-th job whose script runs ends with `script_failure` (`None`: every script
    /// passes): for tests and reports of failed jobs; not part of the timing model.
    pub script_failure_every: Option<u64>,
    /// Job images (cold and warm pulls), the shared cache and its STS calls, and the
    /// wrong-image fault ([`images::ImageModel`]).
    pub images: images::ImageModel,
}

impl Default for SandboxConfig {
    /// The calibrated [`FleetModel`], the tuned profile, 5 % of pods left hung.
    fn default() -> Self {
        Self {
            seed: 42,
            profile: RunnerProfile::default(),
            model: FleetModel::default(),
            hung_fraction: 0.05,
            release_install: Duration::from_secs(45),
            fault: None,
            idle_parking: true,
            script_failure_every: None,
            images: images::ImageModel::default(),
        }
    }
}

impl SandboxConfig {
    /// Sets the seed.
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the runner profile.
    #[must_use]
    pub fn with_profile(mut self, profile: RunnerProfile) -> Self {
        self.profile = profile;
        self
    }

    /// Replaces the timing model.
    #[must_use]
    pub fn with_model(mut self, model: FleetModel) -> Self {
        self.model = model;
        self
    }

    /// Sets the account's Fargate vCPU quota (ignored unless positive and finite).
    #[must_use]
    pub fn with_fargate_vcpu_quota(mut self, vcpus: f64) -> Self {
        if vcpus.is_finite() && vcpus > 0.0 {
            self.model.fargate.vcpu_quota = vcpus;
        }
        self
    }

    /// Sets the fraction of jobs leaving a hung pod (clamped to 0..=1).
    #[must_use]
    pub fn with_hung_fraction(mut self, fraction: f64) -> Self {
        self.hung_fraction = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// Turns idle parking of runner managers on or off.
    #[must_use]
    pub fn with_idle_parking(mut self, on: bool) -> Self {
        self.idle_parking = on;
        self
    }

    /// Injects a failure.
    #[must_use]
    pub fn with_fault(mut self, fault: Option<Fault>) -> Self {
        self.fault = fault;
        self
    }

    /// Sets the images and cache model.
    #[must_use]
    pub fn with_images(mut self, images: images::ImageModel) -> Self {
        self.images = images;
        self
    }

    /// Makes every n-th job's script fail (`script_failure`); `None` or 0: none fails.
    #[must_use]
    pub fn with_script_failure_every(mut self, every: Option<u64>) -> Self {
        self.script_failure_every = every.filter(|n| *n > 0);
        self
    }
}

/// Per-release counters of the runner simulator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunnerStats {
    /// The release's `concurrent`.
    pub concurrent: u32,
    /// Its `request_concurrency`.
    pub request_concurrency: u32,
    /// Job requests sent to GitLab.
    pub requests: u64,
    /// Jobs taken from GitLab.
    pub jobs_taken: u64,
    /// Jobs finished (any outcome).
    pub jobs_finished: u64,
    /// Most jobs in flight at once.
    pub max_in_flight: u32,
    /// Jobs in flight now.
    pub in_flight: u32,
}

/// What the simulator did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SimulatorStats {
    /// Per release (`namespace/name`).
    pub runners: BTreeMap<String, RunnerStats>,
    /// Job pods created.
    pub pods_created: u64,
    /// Pods left hung on purpose (orphaned Pending plus stuck Terminating).
    pub hung_pods: u64,
    /// Of which orphaned Pending.
    pub hung_pending: u64,
    /// Of which stuck Terminating.
    pub hung_terminating: u64,
    /// Jobs failed because their pod was not running after `poll_timeout`.
    pub jobs_timed_out: u64,
    /// Jobs aborted because their runner manager got SIGTERM (a replaced manager whose image
    /// stops with SIGTERM, or whose drain bound ran out): failed with `runner_system_failure`.
    pub jobs_aborted: u64,
    /// Runner manager pods replaced by an upgrade (each stopped as its release's values say).
    pub managers_replaced: u64,
    /// Replaced managers still running at the end of their grace period, SIGKILLed: their job
    /// pods are left running.
    pub managers_killed: u64,
    /// Job requests that found nothing and were played with a task and a timer each (a parked
    /// manager plays its idle polls without: they count in each runner's `requests` only).
    /// With parking this grows linearly with the jobs; without, with the jobs squared.
    pub empty_request_tasks: u64,
    /// Per started pod: seconds it waited for room under the vCPU quota.
    pub quota_waits: Vec<f64>,
    /// Job pods the vCPU quota had no room for at once (each got the `fargate-scheduler`
    /// Warning Event [`FARGATE_POD_LIMIT_MESSAGE`]), started or not.
    pub quota_refusals: u64,
    /// Per started pod: seconds it waited for a launch-rate token.
    pub launch_waits: Vec<f64>,
    /// Per started pod: seconds from creation to running.
    pub pod_starts: Vec<f64>,
    /// Most Fargate vCPUs held at once (system pods, managers, job pods).
    pub peak_vcpus: f64,
}

impl SimulatorStats {
    /// The counters of a release (looked up without allocating: this runs once per request).
    fn runner(&mut self, release: &str) -> &mut RunnerStats {
        if !self.runners.contains_key(release) {
            self.runners
                .insert(release.to_owned(), RunnerStats::default());
        }
        self.runners.get_mut(release).expect("inserted above")
    }
}

/// Resources still present in the sandbox world.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WorldLeftovers {
    /// Infrastructure resources tagged with the stack.
    pub infra: Vec<String>,
    /// Helm releases.
    pub releases: Vec<String>,
    /// Token Secrets.
    pub secrets: Vec<String>,
    /// GitLab runners.
    pub runners: Vec<u64>,
    /// Pods in the cluster (0 once the cluster is deleted: its pods go with it).
    pub pods: Vec<String>,
}

impl WorldLeftovers {
    /// Total count.
    pub fn total(&self) -> usize {
        self.infra.len()
            + self.releases.len()
            + self.secrets.len()
            + self.runners.len()
            + self.pods.len()
    }
}

/// The account's Fargate capacity: the vCPU quota (a fair, first-come-first-served semaphore of
/// millicores) and the launch-rate token bucket.
#[derive(Debug)]
struct FargateAccount {
    capacity: Arc<Semaphore>,
    launches: Mutex<TokenBucket>,
    held_millis: AtomicU32,
}

impl FargateAccount {
    fn new(model: &model::FargateModel) -> Self {
        let quota_millis = (model.vcpu_quota * 1000.0)
            .round()
            .clamp(0.0, f64::from(u32::MAX >> 4)) as u32;
        let system = (model.system_vcpu * 1000.0).round().max(0.0) as u32;
        Self {
            capacity: Arc::new(Semaphore::new(quota_millis.saturating_sub(system) as usize)),
            launches: Mutex::new(TokenBucket::new(
                model.launch_burst,
                model.launch_per_second,
            )),
            held_millis: AtomicU32::new(system.min(quota_millis)),
        }
    }

    /// Records `millis` more (or fewer) vCPU millicores held; returns the new total.
    fn hold(&self, millis: u32) -> u32 {
        self.held_millis.fetch_add(millis, Ordering::Relaxed) + millis
    }

    fn release(&self, millis: u32) {
        self.held_millis.fetch_sub(millis, Ordering::Relaxed);
    }
}

/// The in-memory backends of all four crates, sharing tokio's clock. Clones share state.
///
/// Build it inside the runtime that will run the flow (the clocks start at construction).
#[derive(Debug, Clone)]
pub struct SandboxWorld {
    /// AWS: EC2, EKS, IAM.
    pub cloud: InMemoryCloud,
    /// GitLab.
    pub gitlab: InMemoryGitLab,
    /// Helm releases.
    pub releases: InMemoryReleases,
    /// Kubernetes Secrets holding runner tokens.
    pub secrets: InMemoryTokenSecrets,
    /// Kubernetes pods.
    pub pods: InMemoryPods,
    /// Wall time of the janitor and pod store (virtual).
    pub clock: TokioClock,
    /// RBAC and CoreDNS answers of the cluster (all allowed, CoreDNS running, unless told).
    pub cluster_checks: Arc<glrunner_flow::MemoryClusterChecks>,
    /// The in-cluster janitor's objects (`--janitor in-cluster`).
    pub janitor: glrunner_janitor::deploy::InMemoryJanitorInstaller,
    /// The job ServiceAccounts of IRSA job roles, in the runner namespace.
    pub job_accounts: glrunner_runner_chart::InMemoryServiceAccounts,
    region: String,
    config: SandboxConfig,
    fargate: Arc<FargateAccount>,
    stats: Arc<Mutex<SimulatorStats>>,
    /// Scripts run so far, for [`SandboxConfig::script_failure_every`].
    scripts_run: Arc<AtomicU64>,
    /// Job images and the shared cache ([`images::SandboxImages`]).
    images: Arc<images::SandboxImages>,
    /// The AWS account as the preflight sees it: quotas, permissions, prices.
    pub account: glrunner_infra::InMemoryAccount,
    /// EKS Pod Identity associations, for the doctor's guard (none unless a test adds one).
    pub pod_identity: glrunner_infra::InMemoryPodIdentity,
}

impl SandboxWorld {
    /// A fresh world in `region`.
    pub fn new(region: impl Into<String>, config: SandboxConfig) -> Self {
        let region = region.into();
        let base = jiff::Timestamp::now();
        let clock = TokioClock::starting_at(base);
        let secrets = InMemoryTokenSecrets::new();
        let releases = InMemoryReleases::new()
            .with_timing(
                glrunner_runner_chart::Timing::default().with_install(config.release_install),
            )
            .with_secrets(secrets.clone());
        let pods = InMemoryPods::new()
            .with_clock(Arc::new(clock))
            .with_kubelets(true);
        if config.fault == Some(Fault::Reap) {
            pods.fail_lists(Some(glrunner_janitor::memory::Fault::Unavailable));
        }
        let account = sandbox_account(config.model.fargate.vcpu_quota);
        Self {
            cloud: InMemoryCloud::new(region.clone()),
            gitlab: InMemoryGitLab::with_clock(MemoryConfig::default(), VirtualClock::new(base)),
            releases,
            secrets,
            pods,
            clock,
            cluster_checks: Arc::default(),
            janitor: glrunner_janitor::deploy::InMemoryJanitorInstaller::default(),
            job_accounts: glrunner_runner_chart::InMemoryServiceAccounts::default(),
            region,
            fargate: Arc::new(FargateAccount::new(&config.model.fargate)),
            images: Arc::new(images::SandboxImages::new(config.images.clone())),
            config,
            stats: Arc::default(),
            scripts_run: Arc::default(),
            account,
            pod_identity: glrunner_infra::InMemoryPodIdentity::default(),
        }
    }

    /// What the job images and the shared cache did so far: pulls per image (cold, warm),
    /// cache hits, misses, uploads, the STS calls they cost, and wrong-image faults.
    pub fn image_stats(&self) -> images::ImageStats {
        self.images.stats()
    }

    /// The configuration.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// The flow's backends over this world (with the configured fault, if any).
    pub fn backends(&self) -> Backends {
        let (network, cluster, gitlab) = faults::wrap(self);
        Backends {
            kind: glrunner_flow::Backend::Sandbox,
            network,
            cluster,
            waits: WaitPolicy::default(),
            state_dir: None,
            gitlab,
            gitlab_url: SANDBOX_GITLAB_URL.into(),
            connector: Arc::new(SandboxConnector {
                world: self.clone(),
            }),
        }
    }

    /// Starts the runner simulator on a background task; it stops when the handle is dropped.
    pub fn start_runners(&self) -> RunnerSimulator {
        let world = self.clone();
        RunnerSimulator {
            task: tokio::spawn(async move { world.simulate().await }),
        }
    }

    /// What the simulator did so far.
    pub fn stats(&self) -> SimulatorStats {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// What the model says about this run: the profile, every parameter with its source, the
    /// waits per constraint and what limited the makespan. `queue_p95_secs` is the load test's
    /// queue-time p95 (job created → picked up), from GitLab's timestamps.
    pub fn model_report(&self, queue_p95_secs: Option<f64>) -> ModelReport {
        ModelReport::new(&self.config, &self.stats(), queue_p95_secs)
            .with_images(&self.config.images, self.images.stats())
    }

    /// A flow report of a run on this world, with the model's account of the run attached.
    pub fn with_model(&self, report: glrunner_flow::FlowReport) -> SandboxReport {
        let queue_p95 = report.load_test.as_ref().and_then(|l| l.queue_p95_secs);
        SandboxReport {
            model: self.model_report(queue_p95),
            flow: report,
        }
    }

    /// The preflight plan of `config` on this world: a job pod's start and (unless
    /// `options.expected_job_duration` is given) a job's duration are the timing model's, so the
    /// preflight expects what the simulated runners will do.
    pub fn preflight_plan(
        &self,
        config: &glrunner_flow::FlowConfig,
        options: &glrunner_flow::PreflightOptions,
    ) -> Result<glrunner_flow::preflight::PreflightPlan, FlowError> {
        let mut plan = options.plan(config, SANDBOX_GITLAB_URL)?;
        let model = &self.config.model;
        let image = config
            .job_image()
            .unwrap_or_else(|| glrunner_gitlab_client::ci::DEFAULT_IMAGE.to_owned());
        plan.durations.pod_start = model.expected_pod_start(&image);
        if options.expected_job_duration.is_none() {
            plan.durations.job = model.expected_job();
        }
        Ok(plan)
    }

    /// The preflight's sources on this world: its account, and `backends`' network and GitLab.
    pub fn preflight_sources<'a>(
        &'a self,
        backends: &'a Backends,
    ) -> glrunner_flow::preflight::PreflightSources<'a> {
        glrunner_flow::preflight::PreflightSources {
            account: &self.account,
            network: backends.network.as_ref(),
            gitlab: Some(backends.gitlab.as_ref()),
            eks_tokens: None,
            cluster: Some(backends.cluster.as_ref()),
            connector: Some(backends.connector.as_ref()),
            pod_identity: Some(&self.pod_identity),
        }
    }

    /// [`glrunner_flow::run_checked`] on this world with its runner simulator: the preflight
    /// gate, the flow, the cost, and the model's account of the run.
    pub async fn run_checked(
        &self,
        config: &glrunner_flow::FlowConfig,
        plan: &glrunner_flow::preflight::PreflightPlan,
        gate: glrunner_flow::PreflightGate,
        progress: &dyn glrunner_flow::FlowProgress,
        stop: &CancellationToken,
    ) -> Result<SandboxReport, glrunner_flow::CheckedError> {
        let backends = self.backends();
        let sources = self.preflight_sources(&backends);
        let _runners = self.start_runners();
        let report =
            glrunner_flow::run_checked(config, &backends, plan, &sources, gate, progress, stop)
                .await?;
        Ok(self.with_model(report))
    }

    /// Runs the flow on this world with its runner simulator, and attaches the model's account
    /// of the run ([`ModelReport`]) to the report.
    pub async fn run_flow(
        &self,
        config: &glrunner_flow::FlowConfig,
        progress: &dyn glrunner_flow::FlowProgress,
    ) -> Result<SandboxReport, FlowError> {
        self.run_flow_until(config, progress, &CancellationToken::new())
            .await
    }

    /// [`SandboxWorld::run_flow`] that stops cleanly when `stop` is cancelled (the running
    /// phase ends, then the cleanup runs as after a failure).
    pub async fn run_flow_until(
        &self,
        config: &glrunner_flow::FlowConfig,
        progress: &dyn glrunner_flow::FlowProgress,
        stop: &CancellationToken,
    ) -> Result<SandboxReport, FlowError> {
        let _runners = self.start_runners();
        let report = glrunner_flow::run_until(config, &self.backends(), progress, stop).await?;
        Ok(self.with_model(report))
    }

    /// Everything still present that the flow creates: infrastructure of `stack`, releases,
    /// Secrets, the runners of project `project`, and pods (while a cluster exists).
    pub async fn leftovers(&self, stack: &StackName, project: &str) -> WorldLeftovers {
        let engine = Engine::new(&self.cloud, &self.cloud);
        let infra: Vec<String> = engine
            .leftovers(stack)
            .await
            .unwrap_or_default()
            .iter()
            .map(|r| r.describe())
            .collect();
        let cluster_alive = self
            .cloud
            .all_resources()
            .iter()
            .any(|r| r.kind == glrunner_infra::ResourceKind::Cluster);
        let runners = match self
            .gitlab
            .get_project(&ProjectRef::Path(project.to_owned()))
            .await
        {
            Ok(p) => self
                .gitlab
                .list_runners(&ProjectRef::Id(p.id))
                .await
                .unwrap_or_default()
                .iter()
                .map(|r| r.id)
                .collect(),
            Err(_) => Vec::new(),
        };
        WorldLeftovers {
            infra,
            releases: self
                .releases
                .runners()
                .iter()
                .map(|r| r.id.describe())
                .collect(),
            secrets: self
                .secrets
                .refs()
                .iter()
                .map(SecretRef::describe)
                .collect(),
            runners,
            pods: if cluster_alive {
                self.pods
                    .pods()
                    .iter()
                    .map(|p| p.qualified_name())
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    fn with_stats<R>(&self, f: impl FnOnce(&mut SimulatorStats) -> R) -> R {
        f(&mut self.stats.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Starts a manager per ready release and stops it when the release goes. Woken by release
    /// changes (not by polling, so its cost does not grow with the run's length), and every
    /// second while a ready release has no token Secret or GitLab runner yet.
    async fn simulate(self) {
        let mut managers: BTreeMap<ReleaseId, Manager> = BTreeMap::new();
        let mut retiring = tokio::task::JoinSet::new();
        let mut changes = self.releases.subscribe();
        loop {
            let mut unresolved = false;
            while retiring.try_join_next().is_some() {}
            // Identities and revisions only: a change to one release does not copy every
            // release's values (a big fleet changes as many times as it has releases).
            let states = self.releases.states();
            let ready = states
                .iter()
                .filter(|(_, _, state)| *state == ReleaseState::Deployed);
            for (id, revision, _) in ready {
                // Read from the Secret every time, as a new manager pod would: a release
                // uninstalled and installed again (a re-run after a killed teardown) is at
                // revision 1 again, with another runner's token.
                if let Some(m) = managers.get(id)
                    && m.revision == *revision
                {
                    let secret = SecretRef::new(&id.namespace, &m.values.secret_name);
                    if self
                        .runner_id_in(&secret)
                        .await
                        .is_some_and(|(runner_id, _)| runner_id == m.runner_id)
                    {
                        continue;
                    }
                }
                let Some(runner) = self.releases.runner(id).filter(|r| r.is_ready()) else {
                    continue;
                };
                let runner = &runner;
                let Some((runner_id, short_id)) = self.runner_id(runner).await else {
                    unresolved = true;
                    continue;
                };
                if let Some(m) = managers.get_mut(&runner.id)
                    && m.runner_id == runner_id
                {
                    if m.revision == runner.revision {
                        continue;
                    }
                    if m.values == runner.values {
                        // Same values, same pod template: Kubernetes rolls nothing.
                        m.revision = runner.revision;
                        continue;
                    }
                }
                let replaced = managers.remove(&runner.id);
                managers.insert(
                    runner.id.clone(),
                    self.start_manager(runner, runner_id, short_id),
                );
                if let Some(old) = replaced {
                    // The Deployment's rolling update: the new manager pod is up, the old one stops.
                    self.with_stats(|s| s.managers_replaced += 1);
                    retiring.spawn(self.clone().retire_manager(old));
                }
            }
            // While an upgrade is pending the old manager pod still serves (the new one starts first).
            let serving: std::collections::BTreeSet<&ReleaseId> = states
                .iter()
                .filter(|(_, _, state)| {
                    *state == ReleaseState::Deployed || *state == ReleaseState::PendingUpgrade
                })
                .map(|(id, _, _)| id)
                .collect();
            let gone: Vec<ReleaseId> = managers
                .keys()
                .filter(|id| !serving.contains(id))
                .cloned()
                .collect();
            for id in gone {
                if let Some(m) = managers.remove(&id) {
                    self.stop_manager(m);
                }
            }
            let retry = if unresolved {
                Duration::from_secs(1)
            } else {
                Duration::from_secs(600)
            };
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep(retry).await;
                    }
                }
                () = tokio::time::sleep(retry) => {}
            }
        }
    }

    /// The GitLab runner of a release, read from its token Secret like the chart's runner does.
    /// Also returns the token's short id, which the runner puts on its job pods.
    async fn runner_id(&self, runner: &InstalledRunner) -> Option<(u64, String)> {
        let secret = SecretRef::new(&runner.id.namespace, &runner.values.secret_name);
        self.runner_id_in(&secret).await
    }

    /// The GitLab runner whose token the Secret holds, and the token's short id.
    async fn runner_id_in(&self, secret: &SecretRef) -> Option<(u64, String)> {
        let stored = self.secrets.get(secret).await.ok().flatten()?;
        let id = self
            .gitlab
            .runner_id_for_token(&SecretToken::new(stored.token.expose_secret()))?;
        Some((id, stored.token.short_id()))
    }

    /// The manager pod (chart labels, ReplicaSet owner, its vCPUs held from the quota) and the
    /// manager task taking jobs for the release.
    fn start_manager(&self, runner: &InstalledRunner, runner_id: u64, short_id: String) -> Manager {
        // A started manager contacts GitLab: only now does GitLab report its runner online.
        let _ = self.gitlab.runner_contacted(runner_id);
        // Each revision's pod has its own name: old and new overlap during a rolling update.
        let suffix = if runner.revision <= 1 {
            "x7k2p".to_string()
        } else {
            format!("r{}x7k2p", runner.revision)
        };
        let pod = NewPod::manager(&runner.id.namespace, &runner.id.name, &suffix);
        let pod_name = self.pods.insert(pod).ok().map(|p| p.name);
        let size = profile::manager_millis(self.config.profile, &runner.values);
        let millis = match self.fargate.capacity.try_acquire_many(size) {
            Ok(permit) => {
                permit.forget();
                self.note_held(size);
                size
            }
            Err(_) => {
                tracing::warn!(release = %runner.id.describe(), "no Fargate vCPU left for the runner manager pod; it runs outside the quota in the model");
                0
            }
        };
        let concurrency = profile::request_concurrency(&runner.values);
        let name = runner.id.describe();
        self.with_stats(|s| {
            let entry = s.runners.entry(name.clone()).or_default();
            entry.concurrent = runner.concurrent;
            entry.request_concurrency = concurrency.max;
        });
        let seed = self.config.seed ^ runner_id.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let setup = ManagerSetup {
            release: name,
            namespace: runner.job_namespace.clone(),
            manager_name: format!("{}-gitlab-runner", runner.id.name),
            runner_id,
            short_id,
            concurrent: runner.concurrent,
            concurrency,
            check_interval: runner.values.check_interval.max(Duration::from_millis(100)),
            poll_interval: runner
                .values
                .executor
                .poll_interval
                .max(Duration::from_millis(100)),
            poll_timeout: runner.poll_timeout,
            pod_millis: runner.job_pod_size.map_or(250, |s| s.vcpu_millis),
            pod_memory_mib: runner.job_pod_size.map_or(512, |s| s.memory_mib),
            default_image: runner.values.executor.image.clone(),
            seed,
        };
        let world = self.clone();
        let (control, stop) = watch::channel(Stop::Run);
        Manager {
            revision: runner.revision,
            runner_id,
            namespace: runner.id.namespace.clone(),
            pod_name,
            held_millis: millis,
            values: runner.values.clone(),
            stop: PodStop::of(&runner.values),
            control,
            task: tokio::spawn(async move { world.run_manager(setup, stop).await }),
        }
    }

    /// Stops a replaced manager as the kubelet stops its container (Kubernetes docs, "Pod
    /// Lifecycle", termination of Pods): the preStop hook runs first; when it ends the runtime
    /// sends the image's stop signal (containerd/cri#83; SIGQUIT for the official runner image,
    /// [`glrunner_runner_chart::stop`]); at the end of the grace period, SIGKILL. glrunner's hook
    /// ([`glrunner_runner_chart::GracefulStop::pre_stop_command`], read from the rendered values) sends SIGQUIT, waits up to
    /// the drain bound, then SIGTERM and waits up to `shutdown_timeout`. GitLab Runner drains on
    /// SIGQUIT, stays draining on a second one, and aborts its builds on SIGTERM
    /// (`commands/multi.go` `handleGracefulShutdown`). A SIGKILLed runner cleans up nothing: its
    /// job pods stay running, counted in [`SimulatorStats::managers_killed`].
    async fn retire_manager(self, mut manager: Manager) {
        let stop = manager.stop;
        let killed_at = Instant::now() + stop.grace_period;
        // A signal never takes the runner back: after SIGTERM, SIGQUIT changes nothing.
        let signal = |control: &watch::Sender<Stop>, to: Stop| {
            control.send_if_modified(|now| {
                let raise = to > *now;
                if raise {
                    *now = to;
                }
                raise
            });
        };
        if let Some(hook) = stop.hook {
            signal(&manager.control, Stop::Drain);
            let drained = tokio::time::timeout(hook.drain_timeout, &mut manager.task).await;
            if drained.is_ok() {
                self.stop_manager(manager);
                return;
            }
            if hook.forces_shutdown {
                signal(&manager.control, Stop::Abort);
                let shut = tokio::time::timeout(hook.shutdown_timeout, &mut manager.task).await;
                if shut.is_ok() {
                    self.stop_manager(manager);
                    return;
                }
            }
        }
        signal(
            &manager.control,
            match stop.signal {
                StopSignal::Sigquit => Stop::Drain,
                StopSignal::Sigterm => Stop::Abort,
            },
        );
        if tokio::time::timeout_at(killed_at, &mut manager.task)
            .await
            .is_err()
        {
            tracing::warn!(namespace = %manager.namespace, "runner manager SIGKILLed at the end of its grace period: its job pods stay running");
            self.with_stats(|s| s.managers_killed += 1);
        }
        self.stop_manager(manager);
    }

    fn stop_manager(&self, manager: Manager) {
        manager.task.abort();
        if let Some(name) = &manager.pod_name {
            self.pods.remove(&manager.namespace, name);
        }
        if manager.held_millis > 0 {
            self.fargate
                .capacity
                .add_permits(manager.held_millis as usize);
            self.fargate.release(manager.held_millis);
        }
    }

    fn note_held(&self, millis: u32) {
        let held = self.fargate.hold(millis);
        let vcpus = f64::from(held) / 1000.0;
        self.with_stats(|s| s.peak_vcpus = s.peak_vcpus.max(vcpus));
    }

    /// One runner manager: feeds its runner entry to idle workers every `check_interval`; each
    /// worker chain takes jobs one request round trip apart until a request comes back empty.
    async fn run_manager(self, setup: ManagerSetup, mut stop: watch::Receiver<Stop>) {
        // One shared world for this manager's tasks: a clone per job would copy the whole world
        // (cloud, config, model) thousands of times in a big load test.
        let world = Arc::new(self);
        let setup = Arc::new(setup);
        let shared = Arc::new(Mutex::new(ManagerState {
            busy_workers: 0,
            requests_in_flight: 0,
            allowed_requests: 1.0,
        }));
        let (taken, mut jobs_rx) = tokio::sync::mpsc::unbounded_channel::<AssignedJob>();
        let mut chains = tokio::task::JoinSet::new();
        let mut jobs = tokio::task::JoinSet::new();
        let mut rng = fastrand::Rng::with_seed(setup.seed);
        let mut idle_polls = IdlePolls {
            signal: world.gitlab.pending_signal(setup.runner_id).ok(),
            grid: Instant::now(),
        };
        // A manager does not feed in step with the pipeline: its first feed comes at a random phase.
        // One timer for the feeds, its deadline the next feed, moved on after each (not a timer
        // per turn of the loop: a turn per job taken, in a big load test).
        let feed =
            tokio::time::sleep_until(Instant::now() + setup.check_interval.mul_f64(rng.f64()));
        tokio::pin!(feed);
        loop {
            let feeding = *stop.borrow() == Stop::Run;
            if !feeding {
                // Jobs taken by requests that were in flight when the signal came still run.
                while let Ok(job) = jobs_rx.try_recv() {
                    Self::spawn_job(&world, &mut jobs, &setup, &shared, &stop, job);
                }
                if jobs.is_empty() && chains.is_empty() {
                    // SIGQUIT and every job finished (or aborted): the runner exits.
                    return;
                }
            }
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() {
                        // The simulator is gone: nothing will stop this manager gracefully.
                        std::future::pending::<()>().await;
                    }
                }
                Some(_) = chains.join_next(), if !feeding => {}
                Some(_) = jobs.join_next(), if !feeding => {}
                () = &mut feed, if feeding => {
                    let next_feed = feed.deadline() + setup.check_interval;
                    feed.as_mut().reset(next_feed);
                    while chains.try_join_next().is_some() {}
                    while jobs.try_join_next().is_some() {}
                    let idle = {
                        let st = lock(&shared);
                        let allowed = if setup.concurrency.adaptive {
                            (st.allowed_requests.floor() as u32).clamp(1, setup.concurrency.max)
                        } else {
                            setup.concurrency.max
                        };
                        allowed.saturating_sub(st.requests_in_flight)
                    };
                    let new_chain = |stop: &watch::Receiver<Stop>, rng: fastrand::Rng, first_request_at: Option<Instant>| WorkerChain {
                        world: world.clone(),
                        setup: setup.clone(),
                        shared: shared.clone(),
                        taken: taken.clone(),
                        stop: stop.clone(),
                        rng,
                        first_request_at,
                    };
                    if world.parkable(&setup, &shared, idle, jobs.is_empty() && chains.is_empty(), &idle_polls) {
                        let (resume_at, in_flight) = world
                            .park(&setup, idle, &mut idle_polls, &mut stop, &mut rng, next_feed)
                            .await;
                        feed.as_mut().reset(resume_at);
                        lock(&shared).requests_in_flight += in_flight.len() as u32;
                        for (at, chain_rng) in in_flight {
                            chains.spawn(new_chain(&stop, chain_rng, Some(at)).run());
                        }
                        continue;
                    }
                    for _ in 0..idle {
                        chains.spawn(new_chain(&stop, fastrand::Rng::with_seed(rng.u64(..)), None).run());
                    }
                }
                Some(job) = jobs_rx.recv() => {
                    Self::spawn_job(&world, &mut jobs, &setup, &shared, &stop, job);
                }
            }
        }
    }

    /// Whether a feed of `idle` chains may be played without tasks ([`SandboxWorld::park`]): the
    /// manager runs nothing and has nothing in flight, its request concurrency would not change
    /// after an empty request, a request's round trip ends before the next feed, and GitLab has no
    /// job for it now.
    fn parkable(
        &self,
        setup: &ManagerSetup,
        shared: &Mutex<ManagerState>,
        idle: u32,
        no_tasks: bool,
        idle_polls: &IdlePolls,
    ) -> bool {
        let rtt = &self.config.model.runner.request_round_trip;
        let stable = {
            let st = lock(shared);
            st.busy_workers == 0
                && st.requests_in_flight == 0
                && (!setup.concurrency.adaptive || st.allowed_requests == 1.0)
        };
        self.config.idle_parking
            && no_tasks
            && stable
            && idle > 0
            && idle_polls.signal.is_some()
            && idle_polls.on_grid(Instant::now())
            && rtt.low.max(rtt.high) + Duration::from_millis(2) < setup.check_interval
            && !self.gitlab.has_jobs_for(setup.runner_id)
    }

    /// Plays the feeds of an idle manager from the one due now (`next_feed` is the one after it)
    /// without a task or a timer per request: each feed still draws its chains' seeds and round
    /// trips from the manager's random stream, and each request that found nothing is counted and
    /// recorded as a contact, as GitLab Runner's polling does. It returns when a job this runner
    /// may take becomes pending or the manager is signalled, with the next feed still to play and
    /// the requests then in flight (when each reaches GitLab, and its chain's random stream).
    ///
    /// Without it, every manager of a big fleet polls every `check_interval` while the other
    /// releases install, a cost that grows with releases × install time, i.e. with the jobs squared.
    /// tokio's paused clock moves in whole milliseconds, so a request sent at a virtual instant
    /// reaches GitLab at the millisecond tick its timer would have fired at.
    async fn park(
        &self,
        setup: &ManagerSetup,
        idle: u32,
        idle_polls: &mut IdlePolls,
        stop: &mut watch::Receiver<Stop>,
        rng: &mut fastrand::Rng,
        next_feed: Instant,
    ) -> (Instant, Vec<(Instant, fastrand::Rng)>) {
        let mut parked = Parked {
            world: self,
            setup,
            idle,
            grid: idle_polls.grid,
            rng,
            next_feed,
            in_flight: Vec::new(),
            resumed: false,
        };
        parked.draw(Instant::now());
        loop {
            let catch_up = Instant::now() + IDLE_CATCH_UP;
            let signal = idle_polls.signal.as_mut();
            let woke = tokio::select! {
                _ = stop.changed() => Wake::Stop,
                _ = async { match signal { Some(s) => s.changed().await, None => std::future::pending().await } } => Wake::Work,
                () = tokio::time::sleep_until(catch_up) => Wake::CatchUp,
            };
            let now = Instant::now();
            parked.advance(now);
            let resume = match woke {
                Wake::Stop => true,
                Wake::Work => self.gitlab.has_jobs_for(setup.runner_id),
                Wake::CatchUp => false,
            };
            if resume || !idle_polls.on_grid(now) {
                parked.resumed = true;
                return (parked.next_feed, std::mem::take(&mut parked.in_flight));
            }
        }
    }

    /// Runs one taken job on `jobs`, until it ends or the manager aborts its builds.
    fn spawn_job(
        world: &Arc<Self>,
        jobs: &mut tokio::task::JoinSet<()>,
        setup: &Arc<ManagerSetup>,
        shared: &Arc<Mutex<ManagerState>>,
        stop: &watch::Receiver<Stop>,
        job: AssignedJob,
    ) {
        let world = world.clone();
        let setup = setup.clone();
        let shared = shared.clone();
        let mut abort = stop.clone();
        jobs.spawn(async move {
            let job_id = job.job_id;
            let slot = Mutex::new(JobSlot::default());
            tokio::select! {
                () = world.run_job(&setup, job, &slot) => {}
                () = aborted(&mut abort) => world.abort_job(&setup, job_id, &slot),
            }
            lock(&shared).busy_workers -= 1;
        });
    }

    /// A job from pickup to the pod's deletion: prepare, create the pod, wait for Fargate
    /// capacity and a launch token, start the node, pull, run, report, delete.
    async fn run_job(&self, setup: &ManagerSetup, job: AssignedJob, slot: &Mutex<JobSlot>) {
        let job_id = job.job_id;
        let model = &self.config.model;
        // One seeded stream per job; its draws keep this order (hang, prepare, pod start, script).
        let mut rng =
            fastrand::Rng::with_seed(self.config.seed ^ job_id.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let hang = self.draw_hang(&mut rng);
        // The job's `image:`, else the runner's default image; the wrong-image fault swaps it.
        let own_image = job
            .image
            .clone()
            .unwrap_or_else(|| setup.default_image.clone());
        let image = self.images.image_to_run(job_id, &own_image);
        // "Preparing the kubernetes executor", then the API calls before the pod exists.
        tokio::time::sleep(model.runner.executor_prepare.sample(&mut rng)).await;
        let Some(pod) = self.create_job_pods(setup, job_id, job.project_id, hang) else {
            self.fail_job(setup, job_id);
            return;
        };
        lock(slot).pod = Some((pod.namespace.clone(), pod.name.clone()));
        let created = Instant::now();
        let Some(start) = self
            .wait_until_running(setup, &pod, &image, &mut rng, created, slot)
            .await
        else {
            // "Job failed (system failure): timed out waiting for pod to start": the runner
            // deletes the pod (unbound, so the API server removes it at once).
            self.pods.remove(&pod.namespace, &pod.name);
            self.with_stats(|s| s.jobs_timed_out += 1);
            self.fail_job(setup, job_id);
            return;
        };
        self.mark_running(&pod, &start, created);
        let started = self.gitlab.clock().now().as_microsecond() as f64 / 1e6;
        let restore = self.restore_cache(&job).await;
        self.run_script(setup, &mut rng, created).await;
        self.save_cache_and_log(setup, &job, &image, started, restore)
            .await;
        // Canceled meanwhile (the flow cleaning up): the runner still removes its pod.
        let _ = self.gitlab.finish_job(job_id, self.script_outcome());
        lock(slot).finished = true;
        self.delete_job_pod(&pod, &start.node, hang).await;
        self.job_done(&setup.release);
        {
            let mut slot = lock(slot);
            slot.pod = None;
            slot.done = true;
        }
        tokio::time::sleep(model.fargate.capacity_release).await;
        lock(slot).held = false;
        self.fargate.release(setup.pod_millis);
        drop(start.permit);
    }

    /// Whether this job leaves a hung pod behind (a share of [`SandboxConfig::hung_fraction`]).
    fn draw_hang(&self, rng: &mut fastrand::Rng) -> Hang {
        if rng.f64() < self.config.hung_fraction {
            if rng.bool() {
                Hang::OrphanPending
            } else {
                Hang::StuckTerminating
            }
        } else {
            Hang::None
        }
    }

    /// Creates the job's pod with the executor's labels and annotations (and, for an orphan
    /// hang, the pod a timed-out first create left behind); `None` when the API refused it.
    fn create_job_pods(
        &self,
        setup: &ManagerSetup,
        job_id: u64,
        project_id: u64,
        hang: Hang,
    ) -> Option<glrunner_janitor::PodKey> {
        let prefix = format!(
            "runner-{}-project-{}-concurrent-{}",
            setup.runner_id,
            project_id,
            job_id % 200
        );
        let job_pod = |suffix: &str| {
            NewPod::new(&setup.namespace, format!("{prefix}-{suffix}"))
                .with_label(keys::LABEL_JOB_POD, &prefix)
                .with_label("pod", &prefix)
                .with_label(keys::ANNOTATION_PROJECT_ID, &project_id.to_string())
                .with_label(keys::LABEL_MANAGER_NAME, &setup.manager_name)
                .with_label(JOB_POD_MANAGER_ID_LABEL, &setup.short_id)
                .with_annotation(keys::ANNOTATION_JOB_ID, &job_id.to_string())
                .with_annotation(keys::ANNOTATION_PROJECT_ID, &project_id.to_string())
                .with_annotation(keys::ANNOTATION_JOB_TIMEOUT, "1h0m0s")
                .with_annotation(
                    keys::ANNOTATION_JOB_URL,
                    &format!("https://gitlab.sandbox.invalid/-/jobs/{job_id}"),
                )
                .with_requests(u64::from(setup.pod_millis), setup.pod_memory_mib)
        };
        let suffix = format!("{:08x}", job_id.wrapping_mul(0x9e37_79b9) & 0xffff_ffff);
        if hang == Hang::OrphanPending {
            // The first create timed out client-side but reached the API server; never scheduled.
            if self
                .pods
                .insert(job_pod(&format!("{suffix}-orphan")))
                .is_ok()
            {
                self.with_stats(|s| {
                    s.pods_created += 1;
                    s.hung_pods += 1;
                    s.hung_pending += 1;
                });
            }
        }
        match self.pods.insert(job_pod(&suffix)) {
            Ok(pod) => {
                self.with_stats(|s| s.pods_created += 1);
                Some(pod)
            }
            Err(e) => {
                tracing::warn!(error = %e, job = job_id, "simulated runner could not create the job pod");
                None
            }
        }
    }

    /// Waits until the pod created at `created` runs, or until the runner's `poll_timeout`
    /// after its creation (then `None`: the runner fails the job).
    async fn wait_until_running(
        &self,
        setup: &ManagerSetup,
        pod: &glrunner_janitor::PodKey,
        image: &str,
        rng: &mut fastrand::Rng,
        created: Instant,
        slot: &Mutex<JobSlot>,
    ) -> Option<PodStart> {
        let deadline = created + setup.poll_timeout;
        match self.start_pod(setup, pod, image, rng, deadline, slot).await {
            Some(start) if start.running_at <= deadline => {
                tokio::time::sleep_until(start.running_at).await;
                Some(start)
            }
            late => {
                tokio::time::sleep_until(deadline).await;
                if late.is_some() {
                    // Room was found but the pod would not run in time: its vCPUs go back with
                    // the permit when the runner deletes it.
                    lock(slot).held = false;
                    self.fargate.release(setup.pod_millis);
                }
                None
            }
        }
    }

    /// Records the pod's start (waits for quota room, a launch token, the whole start) and
    /// binds it to its Fargate node, Running.
    fn mark_running(&self, pod: &glrunner_janitor::PodKey, start: &PodStart, created: Instant) {
        let running = Instant::now();
        self.with_stats(|s| {
            s.quota_waits.push((start.got_room - created).as_secs_f64());
            s.launch_waits.push(start.launch_wait.as_secs_f64());
            s.pod_starts.push((running - created).as_secs_f64());
        });
        let now = self.clock.now();
        let bound = start.node.clone();
        let _ = self.pods.update(&pod.namespace, &pod.name, |p| {
            p.node_name = Some(bound);
            p.phase = PodPhase::Running;
            p.started_at = Some(now);
        });
    }

    /// The runner notices the running pod at its next poll of it, then the script runs and the
    /// runner reports: nothing anyone sees happens between, so one timer plays the three waits.
    async fn run_script(&self, setup: &ManagerSetup, rng: &mut fastrand::Rng, created: Instant) {
        let model = &self.config.model;
        let running = Instant::now();
        let polls = (running - created)
            .as_secs_f64()
            .div_euclid(setup.poll_interval.as_secs_f64())
            + 1.0;
        let noticed = created + whole_millis(setup.poll_interval.mul_f64(polls));
        let script = model.runner.script.sample(rng);
        tokio::time::sleep_until(
            noticed + whole_millis(script) + whole_millis(model.runner.finish),
        )
        .await;
    }

    /// The runner deletes the job's pod; with a stuck-Terminating hang the node's kubelet is
    /// gone first, so the delete never completes.
    async fn delete_job_pod(&self, pod: &glrunner_janitor::PodKey, node: &str, hang: Hang) {
        if hang == Hang::StuckTerminating {
            self.pods.kill_node(node);
            if self
                .pods
                .delete_pod(pod, DeleteMode::graceful(None))
                .await
                .is_ok()
            {
                self.with_stats(|s| {
                    s.hung_pods += 1;
                    s.hung_terminating += 1;
                });
            }
        } else {
            self.pods.remove(&pod.namespace, &pod.name);
        }
    }

    /// The runner's forceful shutdown of one job: failed in GitLab unless it already finished,
    /// its pod deleted, its Fargate capacity back.
    fn abort_job(&self, setup: &ManagerSetup, job_id: u64, slot: &Mutex<JobSlot>) {
        let slot = std::mem::take(&mut *lock(slot));
        if !slot.finished {
            let _ = self.gitlab.finish_job(
                job_id,
                JobOutcome::Failed {
                    reason: "runner_system_failure".into(),
                },
            );
            self.with_stats(|s| s.jobs_aborted += 1);
        }
        if !slot.done {
            self.job_done(&setup.release);
        }
        if let Some((namespace, name)) = &slot.pod {
            self.pods.remove(namespace, name);
        }
        if slot.held {
            self.fargate.release(setup.pod_millis);
        }
    }

    /// Fargate's side of a pod start: room under the vCPU quota (waited for until `deadline`, the
    /// runner's `poll_timeout` after the pod's creation, else `None`), then a launch-rate token, node start, pod setup and the
    /// image pulls, which nothing else observes: they are drawn at once and the caller waits
    /// for [`PodStart::running_at`] (or gives up at the deadline).
    async fn start_pod(
        &self,
        setup: &ManagerSetup,
        pod: &glrunner_janitor::PodKey,
        image: &str,
        rng: &mut fastrand::Rng,
        deadline: Instant,
        slot: &Mutex<JobSlot>,
    ) -> Option<PodStart> {
        let model = &self.config.model;
        let capacity = &self.fargate.capacity;
        let permit = match capacity.clone().try_acquire_many_owned(setup.pod_millis) {
            Ok(permit) => permit,
            Err(_) => {
                self.record_quota_refusal(pod);
                let wait = capacity.clone().acquire_many_owned(setup.pod_millis);
                match tokio::time::timeout_at(deadline, wait).await {
                    Ok(Ok(permit)) => permit,
                    Ok(Err(_)) | Err(_) => return None,
                }
            }
        };
        self.note_held(setup.pod_millis);
        lock(slot).held = true;
        let got_room = Instant::now();
        let launch_wait = lock(&self.fargate.launches).reserve(got_room);
        let start = model.fargate.node_start.sample(rng)
            + model.fargate.pod_setup.sample(rng)
            + model.pulls.helper_image()
            + images::image_megabytes(image).map_or_else(
                || model.pulls.job_image(image),
                |mb| model.pulls.job_image_megabytes(image, mb),
            )
            + self.images.pull_extra(image);
        let node_seq = rng.u32(..);
        Some(PodStart {
            permit,
            node: format!(
                "fargate-ip-10-0-{}-{}.ec2.internal",
                (node_seq >> 8) % 250,
                node_seq % 250 + 1
            ),
            got_room,
            launch_wait,
            running_at: got_room + whole_millis(launch_wait) + whole_millis(start),
        })
    }

    /// The Warning Event Fargate's scheduler records on a pod the account's quota has no room
    /// for, while the pod waits (Pending) for room: reason `FailedScheduling`, source
    /// `fargate-scheduler`, the message [`FARGATE_POD_LIMIT_MESSAGE`]. One Event per pod, the
    /// first time it finds no room (assumed: how often the real scheduler repeats it is not
    /// modelled; the classifier reads the newest Warning, so the count does not matter).
    fn record_quota_refusal(&self, pod: &glrunner_janitor::PodKey) {
        self.pods.record_event(glrunner_janitor::PodEvent {
            namespace: pod.namespace.clone(),
            pod_name: pod.name.clone(),
            pod_uid: Some(pod.uid.clone()),
            reason: "FailedScheduling".into(),
            message: FARGATE_POD_LIMIT_MESSAGE.into(),
            source: glrunner_janitor::classify::FARGATE_SCHEDULER.into(),
            event_type: "Warning".into(),
            count: 1,
            last_seen: Some(self.clock.now()),
        });
        self.with_stats(|s| s.quota_refusals += 1);
    }

    /// The outcome of the next script to end: `script_failure` for every n-th one when
    /// [`SandboxConfig::script_failure_every`] asks for it.
    /// The job's cache restore before its script (`restore_cache`): its time on the clock.
    async fn restore_cache(&self, job: &AssignedJob) -> Option<images::Restore> {
        let c = job.cache.as_ref()?;
        let restore = if c.policy.pulls() {
            self.images.restore(&c.key)
        } else {
            images::Restore {
                hit: false,
                time: Duration::ZERO,
            }
        };
        tokio::time::sleep(restore.time).await;
        Some(restore)
    }

    /// The job's cache save after its script (`archive_cache`, its time on the clock) and its
    /// log, written to GitLab as the runner streams it ([`images::job_log`]).
    async fn save_cache_and_log(
        &self,
        setup: &ManagerSetup,
        job: &AssignedJob,
        image: &str,
        started: f64,
        restore: Option<images::Restore>,
    ) {
        let script_secs = (self.gitlab.clock().now().as_microsecond() as f64 / 1e6)
            - started
            - restore.map_or(0.0, |r| r.time.as_secs_f64());
        let cache = match (&job.cache, restore) {
            (Some(c), Some(restore)) => {
                let save = if c.policy.pushes() {
                    self.images.save(&c.key, cache_megabytes(&job.script))
                } else {
                    Duration::ZERO
                };
                tokio::time::sleep(save).await;
                Some(images::CacheLog {
                    key: &c.key,
                    restore,
                    save,
                    paths: &c.paths,
                })
            }
            _ => None,
        };
        let log = images::job_log(&images::JobLog {
            runner: &setup.release,
            image,
            script: &job.script,
            started,
            script_secs: script_secs.max(0.0),
            cache,
            shared_cache: self.images.model().shared_cache,
        });
        let _ = self.gitlab.append_trace(job.job_id, &log);
    }

    fn script_outcome(&self) -> JobOutcome {
        let run = self.scripts_run.fetch_add(1, Ordering::Relaxed) + 1;
        match self.config.script_failure_every {
            Some(n) if run.is_multiple_of(n) => JobOutcome::Failed {
                reason: "script_failure".into(),
            },
            _ => JobOutcome::Success,
        }
    }

    fn fail_job(&self, setup: &ManagerSetup, job_id: u64) {
        let _ = self.gitlab.finish_job(
            job_id,
            JobOutcome::Failed {
                reason: "runner_system_failure".into(),
            },
        );
        self.job_done(&setup.release);
    }

    fn job_done(&self, release: &str) {
        self.with_stats(|s| {
            let entry = s.runner(release);
            entry.jobs_finished += 1;
            entry.in_flight = entry.in_flight.saturating_sub(1);
        });
    }

    /// The region of the world.
    pub fn region(&self) -> &str {
        &self.region
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `d` rounded up to whole milliseconds: how far tokio's paused clock moves for a `sleep(d)`
/// begun on its millisecond grid (a timer fires at the first tick at or after its deadline).
/// Consecutive waits of one job that nothing else observes are played as one timer to the sum
/// of their rounded lengths: the same instant as one timer each, at a fraction of the cost.
fn whole_millis(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX))
}

/// A job pod Fargate found room for ([`SandboxWorld::start_pod`]).
struct PodStart {
    /// Its share of the vCPU quota, held until the capacity is released after the pod.
    permit: tokio::sync::OwnedSemaphorePermit,
    /// The Fargate node it runs on.
    node: String,
    /// When the quota had room for it.
    got_room: Instant,
    /// Its wait for a launch-rate token after that.
    launch_wait: Duration,
    /// When it runs: after the launch token, node start, pod setup and pulls.
    running_at: Instant,
}

/// A running manager of one release.
#[derive(Debug)]
struct Manager {
    revision: u32,
    /// The GitLab runner whose token the manager read at its start.
    runner_id: u64,
    namespace: String,
    pod_name: Option<String>,
    held_millis: u32,
    /// The values its pod was started with (other values roll it).
    values: glrunner_runner_chart::RunnerValues,
    /// How its pod stops when replaced (from the release's values).
    stop: PodStop,
    control: watch::Sender<Stop>,
    task: tokio::task::JoinHandle<()>,
}

/// How often a parked manager records its idle polls (GitLab's "last contact" of its runner
/// lags by at most this; a runner is online for two hours after a contact).
const IDLE_CATCH_UP: Duration = Duration::from_secs(300);

/// The idle polls of a parked manager ([`SandboxWorld::park`]). Dropped without resuming (the
/// manager stopped), it records the polls sent until then.
struct Parked<'a> {
    world: &'a SandboxWorld,
    setup: &'a ManagerSetup,
    idle: u32,
    grid: Instant,
    rng: &'a mut fastrand::Rng,
    /// The next feed not yet played.
    next_feed: Instant,
    /// Requests sent and not yet at GitLab: when they get there, and their chain's stream.
    in_flight: Vec<(Instant, fastrand::Rng)>,
    resumed: bool,
}

impl Parked<'_> {
    fn tick(&self, at: Instant) -> Instant {
        IdlePolls::tick_on(self.grid, at)
    }

    /// One feed at `wake`: each chain's seed from the manager's stream, and its round trip.
    fn draw(&mut self, wake: Instant) {
        let rtt = self.world.config.model.runner.request_round_trip;
        for i in 0..self.idle {
            let seed = self.rng.u64(..);
            // A chain finding `concurrent` requests already in flight sends none.
            if i < self.setup.concurrent {
                let mut chain = fastrand::Rng::with_seed(seed);
                let at = wake + rtt.sample(&mut chain);
                self.in_flight.push((at, chain));
            }
        }
    }

    /// Plays the feeds due by `now` and records the requests that reached GitLab before it (they
    /// found nothing: no job for this runner became pending meanwhile, or the manager would have
    /// been woken).
    fn advance(&mut self, now: Instant) {
        while self.tick(self.next_feed) <= now {
            let wake = self.tick(self.next_feed);
            self.draw(wake);
            self.next_feed += self.setup.check_interval;
        }
        let mut found_nothing = 0u64;
        let mut last_contact = None;
        let grid = self.grid;
        self.in_flight.retain(|(at, _)| {
            let fired = IdlePolls::tick_on(grid, *at);
            if fired < now {
                found_nothing += 1;
                last_contact = Some(fired);
                false
            } else {
                true
            }
        });
        if found_nothing > 0 {
            let release = &self.setup.release;
            self.world
                .with_stats(|s| s.runner(release).requests += found_nothing);
        }
        if let Some(at) = last_contact {
            let gitlab = &self.world.gitlab;
            let _ = gitlab.runner_contacted_at(self.setup.runner_id, gitlab.clock().at(at));
        }
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        if !self.resumed {
            self.advance(Instant::now());
        }
    }
}

/// What woke a parked manager.
enum Wake {
    Stop,
    Work,
    CatchUp,
}

/// What a manager needs to play its idle polls without tasks ([`SandboxWorld::park`]).
struct IdlePolls {
    /// Changes when a job becomes pending in the runner's project.
    signal: Option<watch::Receiver<u64>>,
    /// An instant on the paused clock's millisecond grid (the manager's start).
    grid: Instant,
}

impl IdlePolls {
    /// The instant a timer due at `at` fires: the next millisecond tick of tokio's paused clock.
    fn tick_on(grid: Instant, at: Instant) -> Instant {
        grid + whole_millis(at.saturating_duration_since(grid))
    }

    /// Whether `now` is on the grid (if tokio's clock ever moved by a fraction of a millisecond,
    /// the ticks above would be wrong, and the manager polls with tasks again).
    fn on_grid(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.grid)
            .as_nanos()
            .is_multiple_of(1_000_000)
    }
}

/// How a manager's pod stops when it is replaced, read from the values it was started with.
#[derive(Debug, Clone, Copy)]
struct PodStop {
    /// glrunner's preStop hook, when rendered.
    hook: Option<StopHook>,
    /// The image's stop signal, sent when the hook has ended.
    signal: StopSignal,
    /// `terminationGracePeriodSeconds`: SIGKILL at its end.
    grace_period: Duration,
}

/// What glrunner's rendered preStop hook does.
#[derive(Debug, Clone, Copy)]
struct StopHook {
    drain_timeout: Duration,
    /// Whether the hook ends an unfinished drain with SIGTERM (read from its command).
    forces_shutdown: bool,
    shutdown_timeout: Duration,
}

/// The chart's `terminationGracePeriodSeconds` default (chart 0.86.0 `values.yaml`: 3600).
const CHART_TERMINATION_GRACE_PERIOD: Duration = Duration::from_secs(3600);

impl PodStop {
    fn of(values: &glrunner_runner_chart::RunnerValues) -> Self {
        let signal = values.manager_stop_signal();
        match values.graceful_stop {
            Some(stop) => Self {
                hook: Some(StopHook {
                    drain_timeout: stop.drain_timeout,
                    forces_shutdown: stop
                        .pre_stop_command()
                        .iter()
                        .any(|part| part.contains("kill -TERM 1")),
                    shutdown_timeout: stop.shutdown_timeout,
                }),
                signal,
                grace_period: stop.termination_grace_period(),
            },
            None => Self {
                hook: None,
                signal,
                grace_period: CHART_TERMINATION_GRACE_PERIOD,
            },
        }
    }
}

/// The signal a manager got: none, SIGQUIT (graceful), or SIGTERM (abort all builds); ordered,
/// as a runner never goes back from aborting to draining.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stop {
    Run,
    Drain,
    Abort,
}

/// Resolves once the manager is told to abort its builds (never, if its control is gone).
async fn aborted(stop: &mut watch::Receiver<Stop>) {
    if stop.wait_for(|s| *s == Stop::Abort).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// What a running job holds, for the runner's cleanup when it is aborted.
#[derive(Debug, Default)]
struct JobSlot {
    /// Its job pod (namespace, name), once created.
    pod: Option<(String, String)>,
    /// Whether its pod's vCPUs are counted as held.
    held: bool,
    /// Whether GitLab already has its outcome.
    finished: bool,
    /// Whether the simulator's counters already saw it end.
    done: bool,
}

/// What a manager knows about its release.
#[derive(Debug)]
struct ManagerSetup {
    release: String,
    namespace: String,
    manager_name: String,
    runner_id: u64,
    /// The `manager.runner.gitlab.com/id-short` label on its job pods.
    short_id: String,
    concurrent: u32,
    concurrency: RequestConcurrency,
    check_interval: Duration,
    poll_interval: Duration,
    poll_timeout: Duration,
    pod_millis: u32,
    pod_memory_mib: u64,
    default_image: String,
    seed: u64,
}

/// A manager's workers: jobs running and requests in flight.
#[derive(Debug)]
struct ManagerState {
    busy_workers: u32,
    requests_in_flight: u32,
    /// With adaptive request concurrency: the requests allowed in flight now.
    allowed_requests: f64,
}

/// One chain of job requests: request, and on a job, requeue at once.
struct WorkerChain {
    world: Arc<SandboxWorld>,
    setup: Arc<ManagerSetup>,
    shared: Arc<Mutex<ManagerState>>,
    taken: tokio::sync::mpsc::UnboundedSender<AssignedJob>,
    /// After SIGQUIT (or SIGTERM) the runner asks for no more jobs.
    stop: watch::Receiver<Stop>,
    rng: fastrand::Rng,
    /// For a request already in flight when the manager resumed from parking: when it reaches
    /// GitLab (its round trip already drawn from `rng`, `requests_in_flight` already counted).
    first_request_at: Option<Instant>,
}

impl WorkerChain {
    async fn run(mut self) {
        let model = &self.world.config.model.runner;
        let mut first_request_at = self.first_request_at.take();
        loop {
            if let Some(at) = first_request_at.take() {
                tokio::time::sleep_until(at).await;
            } else {
                {
                    // A worker is free only while fewer than `concurrent` jobs run.
                    let mut st = lock(&self.shared);
                    if st.busy_workers + st.requests_in_flight >= self.setup.concurrent
                        || *self.stop.borrow() != Stop::Run
                    {
                        return;
                    }
                    st.requests_in_flight += 1;
                }
                tokio::time::sleep(model.request_round_trip.sample(&mut self.rng)).await;
            }
            let job = self
                .world
                .gitlab
                .request_jobs(self.setup.runner_id, 1)
                .ok()
                .and_then(|mut jobs| jobs.pop());
            let release = &self.setup.release;
            self.world.with_stats(|s| {
                if job.is_none() {
                    s.empty_request_tasks += 1;
                }
                let entry = s.runner(release);
                entry.requests += 1;
                if job.is_some() {
                    entry.jobs_taken += 1;
                    entry.in_flight += 1;
                    entry.max_in_flight = entry.max_in_flight.max(entry.in_flight);
                }
            });
            let mut st = lock(&self.shared);
            st.requests_in_flight -= 1;
            match job {
                Some(job) => {
                    st.busy_workers += 1;
                    if self.setup.concurrency.adaptive {
                        st.allowed_requests = (st.allowed_requests * (1.0 + model.adaptive_growth))
                            .max(st.allowed_requests + model.adaptive_growth)
                            .min(f64::from(self.setup.concurrency.max));
                    }
                    drop(st);
                    if self.taken.send(job).is_err() {
                        return;
                    }
                }
                None => {
                    if self.setup.concurrency.adaptive {
                        st.allowed_requests = 1.0;
                    }
                    return;
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hang {
    None,
    OrphanPending,
    StuckTerminating,
}

/// A tokio runtime for the sandbox: one thread with a paused (virtual) clock, so a 12-minute EKS
/// creation takes milliseconds of wall time.
///
/// It has timers only: the sandbox is offline by construction (no socket, no child process),
/// and without an I/O driver each turn of the virtual clock skips a poll of the operating
/// system (a few per cent of a big simulation's cost).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
}

/// Runs the flow on `world` with its runner simulator, and attaches the model's account of the
/// run ([`ModelReport`]) to the report.
#[deprecated(note = "use `SandboxWorld::run_flow`")]
pub async fn run_flow(
    world: &SandboxWorld,
    config: &glrunner_flow::FlowConfig,
    progress: &dyn glrunner_flow::FlowProgress,
) -> Result<SandboxReport, FlowError> {
    world.run_flow(config, progress).await
}

/// The running runner simulator; dropping it stops every simulated runner and job.
#[derive(Debug)]
pub struct RunnerSimulator {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RunnerSimulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Hands the flow the world's in-memory cluster once "provisioned".
#[derive(Debug)]
struct SandboxConnector {
    world: SandboxWorld,
}

#[async_trait::async_trait]
impl ClusterConnector for SandboxConnector {
    async fn connect(
        &self,
        spec: &glrunner_infra::StackSpec,
        _target: glrunner_flow::ClusterTarget<'_>,
    ) -> Result<ClusterClients, FlowError> {
        let releases = faults::releases(&self.world);
        // The runner namespace exists on the cluster the flow reaches: the releases create it
        // (`helm install --create-namespace`) before the janitor is installed into it.
        self.world
            .janitor
            .declare_namespace(&spec.cluster.runner_namespace);
        self.world
            .job_accounts
            .declare_namespace(&spec.cluster.runner_namespace);
        Ok(ClusterClients {
            releases,
            secrets: Arc::new(self.world.secrets.clone()),
            pods: Arc::new(self.world.pods.clone()) as Arc<dyn PodApi>,
            clock: Arc::new(self.world.clock),
            checks: self.world.cluster_checks.clone(),
            janitor: Arc::new(self.world.janitor.clone()),
            job_accounts: Arc::new(self.world.job_accounts.clone()),
        })
    }
}

/// The sandbox's account: AWS's defaults, except the Fargate vCPU quota, which is the timing
/// model's (fitted, see [`model::FleetModel`]; `--fargate-vcpu-quota` sets both): one value, so
/// the preflight judges the quota the simulated runners wait for.
fn sandbox_account(fargate_vcpu_quota: f64) -> glrunner_infra::InMemoryAccount {
    let account = glrunner_infra::InMemoryAccount::new();
    let (service, code) = glrunner_flow::preflight::FARGATE_VCPU_QUOTA;
    account.set_quota(service, code, fargate_vcpu_quota);
    account
}

/// The size of the cache the load test's script writes (`head -c BYTES`, the cache workload's
/// line, [`glrunner_gitlab_client::ci::LoadTestSpec::job_script`]), MB; 1 MB when no line says.
fn cache_megabytes(script: &[String]) -> f64 {
    script
        .iter()
        .find_map(|l| {
            let rest = &l[l.find("head -c ")? + 8..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u64>().ok()
        })
        .map_or(1.0, |bytes| bytes as f64 / (1024.0 * 1024.0))
}
