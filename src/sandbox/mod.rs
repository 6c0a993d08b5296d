//! The sandbox world: the in-memory backends of all four crates on one virtual clock, plus a
//! runner simulator playing GitLab Runner's Kubernetes executor.
//!
//! Everything runs on tokio's clock. Under a paused runtime
//! ([`crate::provisioning::runtime`] with [`crate::cli::Backend::Sandbox`]) a 12-minute EKS
//! creation, Fargate pod starts of tens of seconds and minutes of janitor grace pass in
//! milliseconds of wall time. All randomness comes from one seeded RNG, so a run is reproducible.
//!
//! # The runner simulator
//!
//! For each installed, ready release in the in-memory [`InMemoryReleases`] it reads the runner
//! token from the release's Secret (as the chart's runner does), maps it to the GitLab runner,
//! and every `check_interval`:
//!
//! - asks GitLab for pending jobs matching its tags, at most `concurrent` minus what it runs;
//! - creates one job pod per job in the job namespace with the executor's labels and
//!   annotations (`job.runner.gitlab.com/pod`, `job.runner.gitlab.com/id`, ...), Pending and unbound;
//! - binds and starts it after a Fargate start latency (base + seeded spread), runs the script,
//!   finishes the job in GitLab and deletes the pod;
//! - leaves a configurable fraction hung: an orphaned Pending pod (a create call that timed out
//!   client-side but succeeded server-side; the runner retried with a second pod), or a pod stuck
//!   Terminating because its Fargate node's kubelet is gone.
//!
//! It also keeps one runner-manager pod per release (chart labels, owned by a ReplicaSet), which
//! the janitor must never touch.

mod faults;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use glrunner_gitlab_client::memory::{InMemoryGitLab, JobOutcome, MemoryConfig, VirtualClock};
use glrunner_gitlab_client::{GitLabApi, ProjectRef, SecretToken};
use glrunner_infra::memory::InMemoryCloud;
use glrunner_infra::{Engine, StackName, WaitPolicy};
use glrunner_janitor::memory::{InMemoryPods, NewPod};
use glrunner_janitor::model::keys;
use glrunner_janitor::{Clock, DeleteMode, PodApi, PodPhase, TokioClock};
use glrunner_runner_chart::{
    InMemoryReleases, InMemoryTokenSecrets, InstalledRunner, ReleaseId, SecretRef, TokenSecrets,
};
use serde::Serialize;

pub use faults::Fault;

use crate::flow::{Backends, ClusterClients, ClusterConnector, Error as FlowError};

/// Knobs of the sandbox world.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SandboxConfig {
    /// Seed of every random choice (start latency spread, job run time, which pods hang).
    pub seed: u64,
    /// How often each runner asks GitLab for jobs (GitLab Runner's `check_interval`).
    pub check_interval: Duration,
    /// Fargate job pod start latency, lower bound.
    pub pod_start: Duration,
    /// Extra start latency, uniformly spread over `0..pod_start_spread`.
    pub pod_start_spread: Duration,
    /// Fargate pod launches per second across the cluster; a burst queues behind it.
    pub launches_per_second: f64,
    /// Script run time, lower bound.
    pub job_duration: Duration,
    /// Extra run time, uniformly spread over `0..job_duration_spread`.
    pub job_duration_spread: Duration,
    /// Fraction of jobs (0.0..=1.0) that leave a hung pod behind.
    pub hung_fraction: f64,
    /// Helm install duration of a runner release (manager pod on Fargate).
    pub release_install: Duration,
    /// A failure to inject (tests of the cleanup path).
    pub fault: Option<Fault>,
}

impl Default for SandboxConfig {
    /// Fargate-like timings: 10 pod launches/s, pods start in 35–65 s after launch, hello-world
    /// scripts run 3–8 s, 5 % of pods hang.
    fn default() -> Self {
        Self {
            seed: 42,
            check_interval: Duration::from_secs(3),
            pod_start: Duration::from_secs(35),
            pod_start_spread: Duration::from_secs(30),
            launches_per_second: 10.0,
            job_duration: Duration::from_secs(3),
            job_duration_spread: Duration::from_secs(5),
            hung_fraction: 0.05,
            release_install: Duration::from_secs(45),
            fault: None,
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

    /// Injects a failure.
    #[must_use]
    pub fn with_fault(mut self, fault: Option<Fault>) -> Self {
        self.fault = fault;
        self
    }
}

/// Per-release counters of the runner simulator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunnerStats {
    /// The release's `concurrent`.
    pub concurrent: u32,
    /// Jobs taken from GitLab.
    pub jobs_taken: u64,
    /// Jobs finished.
    pub jobs_finished: u64,
    /// Most jobs in flight at once.
    pub max_in_flight: u32,
    /// Jobs in flight now.
    pub in_flight: u32,
}

/// What the runner simulator did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
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
    region: String,
    config: SandboxConfig,
    stats: Arc<Mutex<SimulatorStats>>,
    /// The AWS account as the preflight sees it: quotas, permissions, prices.
    pub account: glrunner_infra::InMemoryAccount,
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
        Self {
            cloud: InMemoryCloud::new(region.clone()),
            gitlab: InMemoryGitLab::with_clock(MemoryConfig::default(), VirtualClock::new(base)),
            releases,
            secrets,
            pods,
            clock,
            region,
            config,
            stats: Arc::default(),
            account: sandbox_account(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// The flow's backends over this world (with the configured fault, if any).
    pub fn backends(&self) -> Backends {
        let (network, cluster, gitlab) = faults::wrap(self);
        Backends {
            kind: crate::cli::Backend::Sandbox,
            network,
            cluster,
            waits: WaitPolicy::default(),
            state_dir: None,
            gitlab,
            gitlab_url: "https://gitlab.sandbox.invalid/".into(),
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

    async fn simulate(self) {
        let mut rng = fastrand::Rng::with_seed(self.config.seed);
        let mut jobs = tokio::task::JoinSet::new();
        let mut runner_ids: HashMap<(ReleaseId, u32), u64> = HashMap::new();
        let mut managers: BTreeMap<ReleaseId, String> = BTreeMap::new();
        let mut node_seq: u64 = 0;
        let mut next_launch = tokio::time::Instant::now();
        let launch_gap = Duration::from_secs_f64(1.0 / self.config.launches_per_second.max(0.001));
        loop {
            while jobs.try_join_next().is_some() {}
            let installed = self.releases.runners();
            self.sync_managers(&installed, &mut managers);
            for runner in installed.iter().filter(|r| r.is_ready()) {
                let Some(runner_id) = self.runner_id(runner, &mut runner_ids).await else {
                    continue;
                };
                let name = runner.id.describe();
                let free = {
                    let in_flight = self.with_stats(|s| {
                        let entry = s.runners.entry(name.clone()).or_default();
                        entry.concurrent = runner.concurrent;
                        entry.in_flight
                    });
                    runner.concurrent.saturating_sub(in_flight) as usize
                };
                if free == 0 {
                    continue;
                }
                let assigned = match self.gitlab.request_jobs(runner_id, free) {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::debug!(runner = runner_id, error = %e, "simulated runner could not request jobs");
                        continue;
                    }
                };
                for job in assigned {
                    node_seq += 1;
                    let plan = JobPlan {
                        release: name.clone(),
                        namespace: runner.job_namespace.clone(),
                        manager: format!("{}-gitlab-runner", runner.id.name),
                        runner_id,
                        project_id: job.project_id,
                        job_id: job.job_id,
                        node: format!(
                            "fargate-ip-10-0-{}-{}.ec2.internal",
                            (node_seq / 250) % 250,
                            node_seq % 250 + 1
                        ),
                        start: {
                            // Queue behind Fargate's launch rate, then the pod's own start.
                            let now = tokio::time::Instant::now();
                            let slot = next_launch.max(now);
                            next_launch = slot + launch_gap;
                            (slot - now)
                                + self.config.pod_start
                                + self.config.pod_start_spread.mul_f64(rng.f64())
                        },
                        run: self.config.job_duration
                            + self.config.job_duration_spread.mul_f64(rng.f64()),
                        hang: if rng.f64() < self.config.hung_fraction {
                            if rng.bool() {
                                Hang::OrphanPending
                            } else {
                                Hang::StuckTerminating
                            }
                        } else {
                            Hang::None
                        },
                        requests: runner
                            .job_pod_size
                            .map(|s| (u64::from(s.vcpu_millis), s.memory_mib))
                            .unwrap_or((250, 512)),
                    };
                    self.with_stats(|s| {
                        let entry = s.runners.entry(name.clone()).or_default();
                        entry.jobs_taken += 1;
                        entry.in_flight += 1;
                        entry.max_in_flight = entry.max_in_flight.max(entry.in_flight);
                    });
                    let world = self.clone();
                    jobs.spawn(async move { world.run_job(plan).await });
                }
            }
            // Runners do not poll in lockstep with anything: ±20 % around check_interval.
            tokio::time::sleep(self.config.check_interval.mul_f64(0.8 + 0.4 * rng.f64())).await;
        }
    }

    /// The GitLab runner of a release, read from its token Secret like the chart's runner does.
    async fn runner_id(
        &self,
        runner: &InstalledRunner,
        cache: &mut HashMap<(ReleaseId, u32), u64>,
    ) -> Option<u64> {
        let key = (runner.id.clone(), runner.revision);
        if let Some(id) = cache.get(&key) {
            return Some(*id);
        }
        let secret = SecretRef::new(&runner.id.namespace, &runner.values.secret_name);
        let stored = self.secrets.get(&secret).await.ok().flatten()?;
        let id = self
            .gitlab
            .runner_id_for_token(&SecretToken::new(stored.token.expose_secret()))?;
        cache.insert(key, id);
        Some(id)
    }

    /// One runner-manager pod per ready release; removed with the release.
    fn sync_managers(
        &self,
        installed: &[InstalledRunner],
        managers: &mut BTreeMap<ReleaseId, String>,
    ) {
        for runner in installed.iter().filter(|r| r.is_ready()) {
            if !managers.contains_key(&runner.id) {
                let pod = NewPod::manager(&runner.id.namespace, &runner.id.name, "x7k2p");
                let name = pod.name.clone();
                if self.pods.insert(pod).is_ok() {
                    managers.insert(runner.id.clone(), name);
                }
            }
        }
        managers.retain(|id, name| {
            let present = installed.iter().any(|r| &r.id == id);
            if !present {
                self.pods.remove(&id.namespace, name);
            }
            present
        });
    }

    async fn run_job(self, plan: JobPlan) {
        let prefix = format!(
            "runner-{}-project-{}-concurrent-{}",
            plan.runner_id,
            plan.project_id,
            plan.job_id % 200
        );
        let job_pod = |suffix: &str| {
            NewPod::new(&plan.namespace, format!("{prefix}-{suffix}"))
                .with_label(keys::LABEL_JOB_POD, &prefix)
                .with_label("pod", &prefix)
                .with_label(keys::ANNOTATION_PROJECT_ID, &plan.project_id.to_string())
                .with_label(keys::LABEL_MANAGER_NAME, &plan.manager)
                .with_annotation(keys::ANNOTATION_JOB_ID, &plan.job_id.to_string())
                .with_annotation(keys::ANNOTATION_PROJECT_ID, &plan.project_id.to_string())
                .with_annotation(keys::ANNOTATION_JOB_TIMEOUT, "1h0m0s")
                .with_annotation(
                    keys::ANNOTATION_JOB_URL,
                    &format!("https://gitlab.sandbox.invalid/-/jobs/{}", plan.job_id),
                )
                .with_requests(plan.requests.0, plan.requests.1)
        };
        let suffix = format!(
            "{:08x}",
            plan.job_id.wrapping_mul(0x9e37_79b9) & 0xffff_ffff
        );
        if plan.hang == Hang::OrphanPending {
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
        let pod = match self.pods.insert(job_pod(&suffix)) {
            Ok(pod) => pod,
            Err(e) => {
                tracing::warn!(error = %e, job = plan.job_id, "simulated runner could not create the job pod");
                let _ = self.gitlab.finish_job(
                    plan.job_id,
                    JobOutcome::Failed {
                        reason: "runner_system_failure".into(),
                    },
                );
                self.job_done(&plan.release);
                return;
            }
        };
        self.with_stats(|s| s.pods_created += 1);
        tokio::time::sleep(plan.start).await;
        let now = self.clock.now();
        let node = plan.node.clone();
        let _ = self.pods.update(&pod.namespace, &pod.name, |p| {
            p.node_name = Some(node);
            p.phase = PodPhase::Running;
            p.started_at = Some(now);
        });
        tokio::time::sleep(plan.run).await;
        // Canceled meanwhile (the flow cleaning up): the runner still removes its pod.
        let _ = self.gitlab.finish_job(plan.job_id, JobOutcome::Success);
        if plan.hang == Hang::StuckTerminating {
            // The Fargate node's kubelet is gone: the runner's delete never completes.
            self.pods.kill_node(&plan.node);
            if self
                .pods
                .delete_pod(&pod.key(), DeleteMode::graceful(None))
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
        self.job_done(&plan.release);
    }

    fn job_done(&self, release: &str) {
        self.with_stats(|s| {
            let entry = s.runners.entry(release.to_owned()).or_default();
            entry.jobs_finished += 1;
            entry.in_flight = entry.in_flight.saturating_sub(1);
        });
    }

    /// The region of the world.
    pub fn region(&self) -> &str {
        &self.region
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hang {
    None,
    OrphanPending,
    StuckTerminating,
}

#[derive(Debug)]
struct JobPlan {
    release: String,
    namespace: String,
    manager: String,
    runner_id: u64,
    project_id: u64,
    job_id: u64,
    node: String,
    start: Duration,
    run: Duration,
    hang: Hang,
    requests: (u64, u64),
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
        _spec: &glrunner_infra::StackSpec,
        _access: Option<&glrunner_infra::ClusterAccess>,
    ) -> Result<ClusterClients, FlowError> {
        let releases = faults::releases(&self.world);
        Ok(ClusterClients {
            releases,
            secrets: Arc::new(self.world.secrets.clone()),
            pods: Arc::new(self.world.pods.clone()) as Arc<dyn PodApi>,
            clock: Arc::new(self.world.clock),
        })
    }
}

/// The sandbox's account: AWS's defaults, except a Fargate vCPU quota raised to 1000 (the
/// default of 6 would not run the default 400 jobs); `--fargate-vcpu-quota` lowers it.
fn sandbox_account() -> glrunner_infra::InMemoryAccount {
    let account = glrunner_infra::InMemoryAccount::new();
    account.set_quota(
        "fargate",
        "L-3032A538",
        f64::from(crate::preflight::command::SANDBOX_FARGATE_VCPU_QUOTA),
    );
    account
}
