//! The full flow: provision → GitLab project → fleet plan → GitLab runners → token Secrets + helm
//! releases → load-test pipeline → reap hung pods → teardown, with a summary report.
//!
//! The flow composes the four crates through their traits only, so the same code runs on the
//! sandbox world ([`crate::sandbox::SandboxWorld::backends`]) and on AWS + GitLab + Kubernetes
//! ([`aws::connect`]). Each phase is selectable ([`FlowConfig::phases`]) and resumable: a re-run
//! finds the infrastructure by tag, the project by path, runners by description (reusing their
//! token from the release's Secret) and releases by name. When a phase fails, the flow still
//! removes what it created (releases, GitLab runners, infrastructure) unless [`FlowConfig::keep`].
//!
//! The library never prints: progress goes to a [`FlowProgress`], results into a [`FlowReport`].
//! Tokens (GitLab's, the runners') never reach logs, events or the report.
//!
//! ```no_run
//! # async fn demo() -> Result<(), glrunner::flow::Error> {
//! use glrunner::flow::{self, FlowConfig};
//! use glrunner::sandbox::{SandboxConfig, SandboxWorld};
//! use glrunner::infra::{StackName, StackSpec};
//!
//! let world = SandboxWorld::new("us-east-1", SandboxConfig::default());
//! let _runners = world.start_runners();
//! let spec = StackSpec::new(StackName::new("demo").unwrap(), "us-east-1");
//! let config = FlowConfig::new(spec, "sandbox/loadtest", 400);
//! let report = flow::run(&config, &world.backends(), &|_: &flow::FlowEvent<'_>| {}).await?;
//! println!("{}", report.render_text());
//! # Ok(()) }
//! ```

pub mod aws;
pub mod command;
mod report;

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use glrunner_gitlab_client::ci::{LoadTestSpec, ShardTarget};
use glrunner_gitlab_client::watch::{WatchConfig, WatchEvent, WatchProgress, watch_pipeline};
use glrunner_gitlab_client::{
    GitLabApi, GitLabApiExt, NewPipeline, NewRunner, Project, ProjectRef, WatchOutcome,
};
use glrunner_infra::{
    ClusterAccess, ClusterProvisioner, Engine, NetworkProvisioner, ProgressEvent, StackOptions,
    StackSpec, WaitPolicy,
};
use glrunner_janitor::policy::Policy;
use glrunner_janitor::{Clock, ListQuery, PodApi, Reaper, ReaperConfig};
use glrunner_runner_chart::{
    FleetPlan, FleetRequest, ReleaseId, ReleaseManager, ReleaseSpec, RunnerToken, RunnerValues,
    SecretRef, TokenSecrets,
};
use serde::Serialize;
use tokio::time::Instant;

pub use report::{
    Failure, FleetSummary, FlowReport, Leftovers, LoadTestSummary, PhaseRecord, PhaseStatus,
    ProvisioningSummary, ReapSummary, ShardSummary, TeardownSummary,
};

use crate::cli::Backend;

/// The phases of the flow, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Network + EKS-on-Fargate cluster (infra).
    Provision,
    /// Get or create the GitLab project.
    Project,
    /// Plan the runner fleet (shards, tags, `concurrent`).
    Plan,
    /// One GitLab runner per shard (glrt tokens).
    Runners,
    /// Token Secrets and helm releases.
    Releases,
    /// Commit the load-test CI file, run one pipeline and watch it.
    LoadTest,
    /// Reap hung job pods.
    Reap,
    /// Uninstall releases, delete the runners in GitLab, tear down the infrastructure.
    Teardown,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 8] = [
        Phase::Provision,
        Phase::Project,
        Phase::Plan,
        Phase::Runners,
        Phase::Releases,
        Phase::LoadTest,
        Phase::Reap,
        Phase::Teardown,
    ];

    /// Short name (`load-test`).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Provision => "provision",
            Phase::Project => "project",
            Phase::Plan => "plan",
            Phase::Runners => "runners",
            Phase::Releases => "releases",
            Phase::LoadTest => "load-test",
            Phase::Reap => "reap",
            Phase::Teardown => "teardown",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The flow's error: invalid input (nothing was done) or a phase that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Invalid input: nothing was created, changed or deleted.
    #[error("invalid {field}: {message}")]
    InvalidInput {
        /// The field or flag.
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A phase failed.
    #[error("{phase}: {message}")]
    Phase {
        /// The phase.
        phase: Phase,
        /// What failed, naming the resource and the action.
        message: String,
    },
}

impl Error {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidInput {
            field: field.into(),
            message: message.into(),
        }
    }

    fn phase(phase: Phase, message: impl fmt::Display) -> Self {
        Self::Phase {
            phase,
            message: message.to_string(),
        }
    }
}

/// Maps an error of a phase into [`Error::Phase`].
fn at<E: fmt::Display>(phase: Phase) -> impl FnOnce(E) -> Error {
    move |e| Error::phase(phase, e)
}

/// What to run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FlowConfig {
    /// The stack: name, region, network and cluster.
    pub spec: StackSpec,
    /// GitLab project path (`group/project`) or numeric id.
    pub project: String,
    /// Jobs in the load-test pipeline (all meant to run at once).
    pub jobs: u32,
    /// At most this many jobs per runner release (the fleet plan shards beyond it).
    pub max_per_release: u32,
    /// Expected Fargate start of a job pod (sets the runners' poll timeout).
    pub expected_pod_start: Duration,
    /// Job image (default: the CI generator's bash image).
    pub image: Option<String>,
    /// Phases to run.
    pub phases: BTreeSet<Phase>,
    /// Teardown (and the cleanup after a failure) keeps the infrastructure.
    pub keep_infra: bool,
    /// Teardown (and the cleanup after a failure) keeps the runner releases and GitLab runners,
    /// and therefore the infrastructure they run on.
    pub keep_runners: bool,
    /// On failure, keep everything for inspection instead of cleaning up.
    pub keep: bool,
    /// How the pipeline is watched.
    pub watch: WatchConfig,
    /// The janitor's grace period.
    pub reap_grace: Duration,
    /// Pause between janitor rounds.
    pub reap_interval: Duration,
    /// Stop reaping after this long even if job pods remain.
    pub reap_deadline: Duration,
    /// Bound of each helm install/uninstall.
    pub release_timeout: Duration,
}

impl FlowConfig {
    /// All phases for `jobs` jobs in `project` on `spec`'s stack, with defaults.
    pub fn new(spec: StackSpec, project: impl Into<String>, jobs: u32) -> Self {
        Self {
            spec,
            project: project.into(),
            jobs,
            max_per_release: glrunner_runner_chart::fleet::DEFAULT_MAX_PER_RELEASE,
            expected_pod_start: glrunner_runner_chart::fleet::DEFAULT_EXPECTED_POD_START,
            image: None,
            phases: Phase::ALL.into_iter().collect(),
            keep_infra: false,
            keep_runners: false,
            keep: false,
            watch: WatchConfig::default(),
            reap_grace: Duration::from_secs(60),
            reap_interval: Duration::from_secs(30),
            reap_deadline: Duration::from_secs(20 * 60),
            release_timeout: Duration::from_secs(600),
        }
    }

    /// Runs only these phases.
    #[must_use]
    pub fn with_phases(mut self, phases: impl IntoIterator<Item = Phase>) -> Self {
        self.phases = phases.into_iter().collect();
        self
    }

    /// Sets the keep flags.
    #[must_use]
    pub fn with_keep(mut self, keep_infra: bool, keep_runners: bool, keep: bool) -> Self {
        self.keep_infra = keep_infra;
        self.keep_runners = keep_runners;
        self.keep = keep;
        self
    }

    /// Sets the cap of jobs per release.
    #[must_use]
    pub fn with_max_per_release(mut self, cap: u32) -> Self {
        self.max_per_release = cap;
        self
    }

    fn runs(&self, phase: Phase) -> bool {
        self.phases.contains(&phase)
    }

    /// Release names are `<stack>-runner-<i>`.
    pub fn release_prefix(&self) -> String {
        format!("{}-runner", self.spec.stack)
    }

    /// GitLab runner descriptions are `<stack>/<release>`.
    fn runner_description(&self, release: &str) -> String {
        format!("{}/{release}", self.spec.stack)
    }

    fn fleet_request(&self, template: &RunnerValues) -> FleetRequest {
        FleetRequest::new(self.jobs)
            .with_release_prefix(self.release_prefix())
            .with_tag_prefix(self.spec.stack.to_string())
            .with_max_per_release(self.max_per_release)
            .with_expected_pod_start(self.expected_pod_start)
            .with_values(template)
    }

    /// Checks everything checkable before any call.
    pub fn validate(&self, gitlab_url: &str) -> Result<(), Error> {
        self.spec
            .validate()
            .map_err(|e| Error::invalid("stack", e.to_string()))?;
        if self.phases.is_empty() {
            return Err(Error::invalid("--phases", "no phase selected"));
        }
        ProjectRef::parse(&self.project).map_err(|e| Error::invalid("--project", e.to_string()))?;
        FleetPlan::new(&self.fleet_request(&self.template(gitlab_url)))
            .map_err(|e| Error::invalid("--jobs", e.to_string()))?;
        if self.reap_interval.is_zero() {
            return Err(Error::invalid("reap_interval", "must be above zero"));
        }
        Ok(())
    }

    fn template(&self, gitlab_url: &str) -> RunnerValues {
        let ns = &self.spec.cluster.runner_namespace;
        let mut values = RunnerValues::new(gitlab_url).with_job_namespace(ns);
        if let Some(image) = &self.image {
            values = values.with_image(image);
        }
        values
    }
}

/// Kubernetes-side clients of the provisioned cluster.
#[derive(Clone)]
pub struct ClusterClients {
    /// Helm releases.
    pub releases: Arc<dyn ReleaseManager>,
    /// Token Secrets.
    pub secrets: Arc<dyn TokenSecrets>,
    /// Pods (the janitor).
    pub pods: Arc<dyn PodApi>,
    /// The clock the janitor judges pod ages with.
    pub clock: Arc<dyn Clock>,
}

impl fmt::Debug for ClusterClients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterClients")
            .field("pods", &self.pods.backend())
            .finish_non_exhaustive()
    }
}

/// Connects to the cluster once it exists (real: kube client + helm; sandbox: the world).
#[async_trait]
pub trait ClusterConnector: Send + Sync + fmt::Debug {
    /// Clients for the stack's cluster; `access` is its endpoint and CA when known.
    async fn connect(
        &self,
        spec: &StackSpec,
        access: Option<&ClusterAccess>,
    ) -> Result<ClusterClients, Error>;
}

/// Every backend the flow uses.
pub struct Backends {
    /// Which world.
    pub kind: Backend,
    /// EC2 side.
    pub network: Arc<dyn NetworkProvisioner>,
    /// EKS + IAM side.
    pub cluster: Arc<dyn ClusterProvisioner>,
    /// Infra wait policy.
    pub waits: WaitPolicy,
    /// Infra state cache directory (`None`: nothing on disk).
    pub state_dir: Option<PathBuf>,
    /// GitLab.
    pub gitlab: Arc<dyn GitLabApi>,
    /// GitLab URL the runners register against.
    pub gitlab_url: String,
    /// The cluster's clients, once it exists.
    pub connector: Arc<dyn ClusterConnector>,
}

impl fmt::Debug for Backends {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backends")
            .field("kind", &self.kind)
            .field("gitlab_url", &self.gitlab_url)
            .finish_non_exhaustive()
    }
}

/// Something that happened during the flow, for progress rendering.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum FlowEvent<'a> {
    /// A phase started.
    PhaseStarted {
        /// The phase.
        phase: Phase,
    },
    /// A step inside a phase.
    Step {
        /// The phase.
        phase: Phase,
        /// What happened.
        message: String,
    },
    /// A phase finished.
    PhaseDone {
        /// The phase.
        phase: Phase,
        /// Flow-clock time it took.
        elapsed: Duration,
        /// One-line summary.
        summary: String,
    },
    /// A phase was not selected.
    PhaseSkipped {
        /// The phase.
        phase: Phase,
    },
    /// A phase failed.
    PhaseFailed {
        /// The phase.
        phase: Phase,
        /// The error.
        error: String,
    },
    /// Cleanup after a failure started.
    CleanupStarted,
    /// Infrastructure progress.
    Infra(&'a ProgressEvent),
    /// Pipeline progress.
    Pipeline(&'a WatchProgress),
}

/// Receives [`FlowEvent`]s. Implemented for closures.
pub trait FlowProgress: Send + Sync {
    /// Called for every event.
    fn event(&self, event: &FlowEvent<'_>);
}

impl<F: Fn(&FlowEvent<'_>) + Send + Sync> FlowProgress for F {
    fn event(&self, event: &FlowEvent<'_>) {
        self(event)
    }
}

struct InfraProgress<'a>(&'a dyn FlowProgress);

impl glrunner_infra::Progress for InfraProgress<'_> {
    fn event(&self, event: &ProgressEvent) {
        self.0.event(&FlowEvent::Infra(event));
    }
}

/// GitLab's view of a job for the janitor's cross-check.
struct GitLabJobStatus(Arc<dyn GitLabApi>);

#[async_trait]
impl glrunner_janitor::JobStatusSource for GitLabJobStatus {
    async fn job_status(
        &self,
        project_id: u64,
        job_id: u64,
    ) -> glrunner_janitor::Result<glrunner_janitor::JobStatus> {
        match self.0.get_job(&ProjectRef::Id(project_id), job_id).await {
            Ok(job) => Ok(glrunner_janitor::JobStatus::from_gitlab(
                job.status.as_str(),
            )),
            Err(glrunner_gitlab_client::Error::NotFound { .. }) => {
                Ok(glrunner_janitor::JobStatus::NotFound)
            }
            Err(e) => Err(glrunner_janitor::Error::Backend {
                backend: "gitlab",
                action: "get job".into(),
                resource: format!("job {job_id} of project {project_id}"),
                message: e.to_string(),
                source: None,
            }),
        }
    }
}

/// A GitLab runner of one shard, and its token while this run holds it.
struct ShardRunner {
    release: String,
    runner_id: u64,
    token: RunnerToken,
}

/// What this run created (the scope of the cleanup after a failure).
#[derive(Default)]
struct Created {
    infra: bool,
    runners: bool,
    releases: bool,
    pipeline: Option<u64>,
}

struct Run<'a> {
    config: &'a FlowConfig,
    backends: &'a Backends,
    progress: &'a dyn FlowProgress,
    report: FlowReport,
    access: Option<ClusterAccess>,
    clients: Option<ClusterClients>,
    project: Option<Project>,
    plan: Option<FleetPlan>,
    runners: Vec<ShardRunner>,
    created: Created,
}

/// Runs the flow. `Err` only for invalid input (nothing was done); otherwise the report says
/// whether a phase failed ([`FlowReport::failure`]) and what the cleanup left (nothing, normally).
pub async fn run(
    config: &FlowConfig,
    backends: &Backends,
    progress: &dyn FlowProgress,
) -> Result<FlowReport, Error> {
    config.validate(&backends.gitlab_url)?;
    let wall = std::time::Instant::now();
    let start = Instant::now();
    let mut run = Run {
        config,
        backends,
        progress,
        report: FlowReport::new(config, backends.kind),
        access: None,
        clients: None,
        project: None,
        plan: None,
        runners: Vec::new(),
        created: Created::default(),
    };
    tracing::info!(stack = %config.spec.stack, jobs = config.jobs, backend = ?backends.kind, "flow started");
    let mut failed = None;
    for phase in Phase::ALL {
        if !config.runs(phase) {
            run.report.phases.push(PhaseRecord {
                phase,
                status: PhaseStatus::Skipped,
                secs: 0.0,
                summary: String::new(),
            });
            progress.event(&FlowEvent::PhaseSkipped { phase });
            continue;
        }
        progress.event(&FlowEvent::PhaseStarted { phase });
        let t0 = Instant::now();
        let result = run.phase(phase).await;
        let elapsed = t0.elapsed();
        match result {
            Ok(summary) => {
                tracing::info!(%phase, secs = elapsed.as_secs_f64(), "phase done");
                progress.event(&FlowEvent::PhaseDone {
                    phase,
                    elapsed,
                    summary: summary.clone(),
                });
                run.report.phases.push(PhaseRecord {
                    phase,
                    status: PhaseStatus::Done,
                    secs: elapsed.as_secs_f64(),
                    summary,
                });
            }
            Err(e) => {
                let message = match e {
                    Error::Phase { message, .. } => message,
                    other => other.to_string(),
                };
                tracing::info!(%phase, error = %message, "phase failed");
                progress.event(&FlowEvent::PhaseFailed {
                    phase,
                    error: message.clone(),
                });
                run.report.phases.push(PhaseRecord {
                    phase,
                    status: PhaseStatus::Failed,
                    secs: elapsed.as_secs_f64(),
                    summary: message.clone(),
                });
                failed = Some(Failure {
                    phase,
                    error: message,
                    cleaned_up: false,
                });
                break;
            }
        }
    }
    if let Some(mut failure) = failed {
        if !config.keep {
            progress.event(&FlowEvent::CleanupStarted);
            // What this run created, minus what --keep-runners / --keep-infra keep.
            let keep_runners = config.keep_runners;
            let scope = Scope {
                releases: (run.created.releases || run.created.runners) && !keep_runners,
                runners: run.created.runners && !keep_runners,
                infra: run.created.infra && !keep_runners && !config.keep_infra,
                trigger: "cleanup after failure",
            };
            let summary = run.teardown(scope).await;
            failure.cleaned_up = summary.errors.is_empty();
            run.report.teardown = Some(summary);
        }
        run.report.failure = Some(failure);
    }
    run.report.total_secs = start.elapsed().as_secs_f64();
    run.report.wall_secs = wall.elapsed().as_secs_f64();
    Ok(run.report)
}

/// What a teardown covers.
struct Scope {
    releases: bool,
    runners: bool,
    infra: bool,
    trigger: &'static str,
}

impl Run<'_> {
    fn step(&self, phase: Phase, message: impl Into<String>) {
        self.progress.event(&FlowEvent::Step {
            phase,
            message: message.into(),
        });
    }

    async fn phase(&mut self, phase: Phase) -> Result<String, Error> {
        match phase {
            Phase::Provision => self.provision().await,
            Phase::Project => {
                let project = self.project(true).await?;
                Ok(format!(
                    "project {} (id {})",
                    project.path_with_namespace, project.id
                ))
            }
            Phase::Plan => {
                let plan = self.plan()?;
                Ok(format!(
                    "{} job(s) over {} shard(s) of at most {} (poll timeout {}s)",
                    plan.total_jobs,
                    plan.shards.len(),
                    plan.largest_batch(),
                    plan.recommended_poll_timeout.as_secs()
                ))
            }
            Phase::Runners => self.create_runners().await,
            Phase::Releases => self.install_releases().await,
            Phase::LoadTest => self.load_test().await,
            Phase::Reap => self.reap().await,
            Phase::Teardown => {
                if self.config.keep_runners || self.config.keep_infra {
                    self.step(
                        Phase::Teardown,
                        "keeping what --keep-runners/--keep-infra asked to keep",
                    );
                }
                let scope = Scope {
                    releases: !self.config.keep_runners,
                    runners: !self.config.keep_runners,
                    infra: !self.config.keep_infra && !self.config.keep_runners,
                    trigger: "teardown phase",
                };
                let summary = self.teardown(scope).await;
                let line = summary.one_line();
                let errors = summary.errors.clone();
                self.report.teardown = Some(summary);
                if errors.is_empty() {
                    Ok(line)
                } else {
                    Err(Error::phase(Phase::Teardown, errors.join("; ")))
                }
            }
        }
    }

    async fn provision(&mut self) -> Result<String, Error> {
        let b = self.backends;
        let progress = InfraProgress(self.progress);
        let options = StackOptions {
            dry_run: false,
            state_dir: b.state_dir.clone(),
            waits: b.waits.clone(),
            progress: &progress,
        };
        self.created.infra = true;
        let outcome = glrunner_infra::provision(
            &self.config.spec,
            b.network.as_ref(),
            b.cluster.as_ref(),
            &options,
        )
        .await
        .map_err(at(Phase::Provision))?;
        let applied = outcome
            .applied
            .as_ref()
            .ok_or_else(|| Error::phase(Phase::Provision, "nothing was applied"))?;
        let summary = ProvisioningSummary {
            makespan_secs: applied.makespan_s,
            steps: applied.steps.len(),
            created: applied.created(),
            kubeconfig: outcome.kubeconfig.clone(),
        };
        let line = format!(
            "{} resource(s), {} created, makespan {:.0}s",
            summary.steps, summary.created, summary.makespan_secs
        );
        self.report.provisioning = Some(summary);
        self.access = Some(
            b.cluster
                .cluster_access(&self.config.spec.cluster.name)
                .await
                .map_err(at(Phase::Provision))?,
        );
        Ok(line)
    }

    /// The cluster's clients, connecting on first use.
    async fn clients(&mut self, phase: Phase) -> Result<ClusterClients, Error> {
        if let Some(c) = &self.clients {
            return Ok(c.clone());
        }
        if self.access.is_none() {
            self.access = Some(
                self.backends
                    .cluster
                    .cluster_access(&self.config.spec.cluster.name)
                    .await
                    .map_err(at(phase))?,
            );
        }
        let clients = self
            .backends
            .connector
            .connect(&self.config.spec, self.access.as_ref())
            .await?;
        self.clients = Some(clients.clone());
        Ok(clients)
    }

    /// The project: created when `create` (the project phase), else it must exist.
    async fn project(&mut self, create: bool) -> Result<Project, Error> {
        if let Some(p) = &self.project {
            return Ok(p.clone());
        }
        let gitlab = &self.backends.gitlab;
        let project = if create {
            gitlab
                .get_or_create_project(&self.config.project)
                .await
                .map_err(at(Phase::Project))?
        } else {
            let r = ProjectRef::parse(&self.config.project).map_err(at(Phase::Project))?;
            gitlab.get_project(&r).await.map_err(at(Phase::Project))?
        };
        self.project = Some(project.clone());
        Ok(project)
    }

    fn plan(&mut self) -> Result<FleetPlan, Error> {
        if let Some(p) = &self.plan {
            return Ok(p.clone());
        }
        let template = self.config.template(&self.backends.gitlab_url);
        let plan =
            FleetPlan::new(&self.config.fleet_request(&template)).map_err(at(Phase::Plan))?;
        for warning in &plan.warnings {
            tracing::warn!(?warning, "fleet plan warning");
            self.step(Phase::Plan, format!("warning: {warning:?}"));
        }
        self.report.fleet = Some(FleetSummary {
            total_jobs: plan.total_jobs,
            poll_timeout_secs: plan.recommended_poll_timeout.as_secs(),
            shards: plan
                .shards
                .iter()
                .map(|s| ShardSummary {
                    release: s.release.clone(),
                    tag: s.tag.clone(),
                    jobs: s.jobs,
                    concurrent: s.concurrent,
                    parallel: s.parallel.clone(),
                    runner_id: None,
                })
                .collect(),
        });
        self.plan = Some(plan.clone());
        Ok(plan)
    }

    fn secret_name(release: &str) -> String {
        format!("{release}-token")
    }

    /// One GitLab runner per shard; a runner whose token is still in its Secret is reused.
    async fn create_runners(&mut self) -> Result<String, Error> {
        let phase = Phase::Runners;
        let plan = self.plan()?;
        let project = self.project(false).await?;
        let gitlab = self.backends.gitlab.clone();
        let existing = gitlab
            .list_runners(&ProjectRef::Id(project.id))
            .await
            .map_err(at(phase))?;
        let namespace = self.config.spec.cluster.runner_namespace.clone();
        let (mut created, mut reused) = (0, 0);
        self.runners.clear();
        for shard in &plan.shards {
            let description = self.config.runner_description(&shard.release);
            let found = existing
                .iter()
                .find(|r| r.description.as_deref() == Some(description.as_str()));
            if let Some(runner) = found {
                let clients = self.clients(phase).await?;
                let secret = SecretRef::new(&namespace, Self::secret_name(&shard.release));
                // GitLab's list entries carry no tags: read them from the runner's details.
                let tags = gitlab
                    .get_runner(runner.id)
                    .await
                    .map_err(at(phase))?
                    .tag_list;
                if let Some(stored) = clients.secrets.get(&secret).await.map_err(at(phase))?
                    && tags.contains(&shard.tag)
                {
                    self.runners.push(ShardRunner {
                        release: shard.release.clone(),
                        runner_id: runner.id,
                        token: stored.token,
                    });
                    reused += 1;
                    continue;
                }
                // Its token is lost (or its tags are stale): replace it.
                gitlab.delete_runner(runner.id).await.map_err(at(phase))?;
            }
            self.created.runners = true;
            let new = NewRunner::project(project.id, description, vec![shard.tag.clone()]);
            let runner = gitlab.create_runner(&new).await.map_err(at(phase))?;
            let token = RunnerToken::new(runner.token.expose()).map_err(at(phase))?;
            self.step(
                phase,
                format!(
                    "runner {} for tag {} ({})",
                    runner.id, shard.tag, shard.release
                ),
            );
            self.runners.push(ShardRunner {
                release: shard.release.clone(),
                runner_id: runner.id,
                token,
            });
            created += 1;
        }
        if let Some(fleet) = &mut self.report.fleet {
            for s in &mut fleet.shards {
                s.runner_id = self
                    .runners
                    .iter()
                    .find(|r| r.release == s.release)
                    .map(|r| r.runner_id);
            }
        }
        Ok(format!("{created} runner(s) created, {reused} reused"))
    }

    /// Token Secret + release per shard (tokens from the runners phase, else from the Secrets).
    async fn install_releases(&mut self) -> Result<String, Error> {
        let phase = Phase::Releases;
        let plan = self.plan()?;
        let clients = self.clients(phase).await?;
        let namespace = self.config.spec.cluster.runner_namespace.clone();
        let template = self.config.template(&self.backends.gitlab_url);
        let values = plan.release_values(&template).map_err(at(phase))?;
        // Install the shards concurrently: the ~45 s manager pod starts overlap.
        let mut installs = Vec::new();
        for (shard, values) in values {
            let token = match self.runners.iter().find(|r| r.release == shard.release) {
                Some(r) => r.token.clone(),
                None => {
                    let secret = SecretRef::new(&namespace, Self::secret_name(&shard.release));
                    clients
                        .secrets
                        .get(&secret)
                        .await
                        .map_err(at(phase))?
                        .map(|s| s.token)
                        .ok_or_else(|| {
                            Error::phase(
                                phase,
                                format!(
                                    "no runner token for {} (run the runners phase first)",
                                    shard.release
                                ),
                            )
                        })?
                }
            };
            let spec = ReleaseSpec::new(
                &shard.release,
                &namespace,
                values.with_secret_name(Self::secret_name(&shard.release)),
            )
            .with_timeout(self.config.release_timeout);
            installs.push((spec, token));
        }
        self.created.releases = true;
        let results = futures::future::join_all(installs.iter().map(|(spec, token)| {
            glrunner_runner_chart::deploy_runner(
                clients.secrets.as_ref(),
                clients.releases.as_ref(),
                spec,
                token,
            )
        }))
        .await;
        let mut errors = Vec::new();
        for ((spec, _), result) in installs.iter().zip(results) {
            match result {
                Ok(d) => self.step(
                    phase,
                    format!(
                        "release {} {} (revision {})",
                        d.release.name, d.release.state, d.release.revision
                    ),
                ),
                Err(e) => errors.push(format!("release {}: {e}", spec.name)),
            }
        }
        if !errors.is_empty() {
            return Err(Error::phase(phase, errors.join("; ")));
        }
        Ok(format!(
            "{} release(s) deployed in {namespace}",
            installs.len()
        ))
    }

    async fn load_test(&mut self) -> Result<String, Error> {
        let phase = Phase::LoadTest;
        let plan = self.plan()?;
        let project = self.project(false).await?;
        let gitlab = self.backends.gitlab.clone();
        let mut spec = LoadTestSpec::new(
            plan.shards
                .iter()
                .map(|s| ShardTarget::new(&s.tag, s.jobs))
                .collect(),
        );
        if let Some(image) = &self.config.image {
            spec = spec.with_image(image);
        }
        let yaml = spec.to_yaml().map_err(at(phase))?;
        let project_ref = ProjectRef::Id(project.id);
        let branch = project
            .default_branch
            .clone()
            .unwrap_or_else(|| "main".into());
        let commit = gitlab
            .put_file(
                &project_ref,
                &branch,
                ".gitlab-ci.yml",
                &yaml,
                &format!("glrunner: load test of {} jobs", plan.total_jobs),
            )
            .await
            .map_err(at(phase))?;
        self.step(
            phase,
            format!(
                "committed .gitlab-ci.yml ({})",
                &commit.id[..commit.id.len().min(8)]
            ),
        );
        let pipeline = gitlab
            .create_pipeline(&project_ref, &NewPipeline::new(&branch))
            .await
            .map_err(at(phase))?;
        self.created.pipeline = Some(pipeline.id);
        self.step(
            phase,
            format!("pipeline {} created: {}", pipeline.id, pipeline.web_url),
        );
        let progress = self.progress;
        let mut on_event = |event: &WatchEvent| {
            if let WatchEvent::Progress(p) = event {
                progress.event(&FlowEvent::Pipeline(p));
            }
        };
        let report = watch_pipeline(
            gitlab.as_ref(),
            &project_ref,
            pipeline.id,
            &self.config.watch,
            &mut on_event,
        )
        .await
        .map_err(at(phase))?;
        let summary = LoadTestSummary::from_report(&report);
        let line = summary.one_line();
        self.report.load_test = Some(summary);
        if report.outcome != WatchOutcome::Finished {
            return Err(Error::phase(
                phase,
                format!(
                    "pipeline {} did not finish: {:?}",
                    pipeline.id, report.outcome
                ),
            ));
        }
        self.created.pipeline = None;
        if report.has_failures() || report.pipeline_status != "success" {
            return Err(Error::phase(
                phase,
                format!(
                    "pipeline {} ended {}: failures {:?}",
                    pipeline.id, report.pipeline_status, report.failures_by_reason
                ),
            ));
        }
        Ok(line)
    }

    /// Janitor rounds until no job pod is left or the deadline passes.
    async fn reap(&mut self) -> Result<String, Error> {
        let phase = Phase::Reap;
        let clients = self.clients(phase).await?;
        let namespace = self.config.spec.cluster.runner_namespace.clone();
        let pending_timeout = self
            .plan
            .as_ref()
            .map_or(Policy::DEFAULT_PENDING_TIMEOUT, |p| {
                p.recommended_poll_timeout
            });
        let policy = Policy::new([namespace.clone()])
            .with_grace(self.config.reap_grace)
            .with_pending_timeout(pending_timeout);
        let mut reaper = Reaper::new(clients.pods.clone(), ReaperConfig::new(policy))
            .map_err(at(phase))?
            .with_clock(clients.clock.clone());
        if self.project.is_some() {
            reaper =
                reaper.with_job_status(Arc::new(GitLabJobStatus(self.backends.gitlab.clone())));
        }
        let t0 = Instant::now();
        let mut summary = ReapSummary::default();
        loop {
            let round = reaper.run_once().await.map_err(at(phase))?;
            summary.add_round(&round);
            if round.deleted() > 0 {
                self.step(
                    phase,
                    format!(
                        "round {}: reaped {} pod(s)",
                        summary.rounds,
                        round.deleted()
                    ),
                );
            }
            let left = clients
                .pods
                .list_pods(&ListQuery::job_pods(&namespace))
                .await
                .map_err(at(phase))?;
            summary.remaining_job_pods = left.len();
            if left.is_empty() || t0.elapsed() >= self.config.reap_deadline {
                break;
            }
            tokio::time::sleep(self.config.reap_interval).await;
        }
        summary.secs = t0.elapsed().as_secs_f64();
        let line = summary.one_line();
        self.report.reap = Some(summary);
        Ok(line)
    }

    /// Removes releases, GitLab runners and infrastructure per `scope`, best effort (every step
    /// is tried; errors are collected), then checks for leftovers.
    async fn teardown(&mut self, scope: Scope) -> TeardownSummary {
        let phase = Phase::Teardown;
        let mut summary = TeardownSummary {
            trigger: scope.trigger.to_owned(),
            ..TeardownSummary::default()
        };
        let prefix = format!("{}-", self.config.release_prefix());
        let namespace = self.config.spec.cluster.runner_namespace.clone();
        let gitlab = self.backends.gitlab.clone();

        if let Some(pipeline) = self.created.pipeline.take()
            && let Some(project) = &self.project
        {
            match gitlab
                .cancel_pipeline(&ProjectRef::Id(project.id), pipeline)
                .await
            {
                Ok(_) => {
                    self.step(phase, format!("canceled pipeline {pipeline}"));
                    summary.pipeline_canceled = Some(pipeline);
                }
                Err(e) => summary
                    .errors
                    .push(format!("cancel pipeline {pipeline}: {e}")),
            }
        }

        let mut clients = None;
        if scope.releases {
            match self.clients(phase).await {
                Ok(c) => {
                    match retry("list releases", || c.releases.list(Some(&namespace))).await {
                        Ok(list) => {
                            for release in list.into_iter().filter(|r| r.name.starts_with(&prefix))
                            {
                                let id = ReleaseId::new(&namespace, &release.name);
                                let secret = Self::secret_name(&release.name);
                                let removed =
                                    retry(&format!("uninstall {}", id.describe()), || {
                                        glrunner_runner_chart::remove_runner(
                                            c.secrets.as_ref(),
                                            c.releases.as_ref(),
                                            &id,
                                            &secret,
                                            self.config.release_timeout,
                                        )
                                    })
                                    .await;
                                match removed {
                                    Ok(_) => {
                                        self.step(phase, format!("uninstalled {}", id.describe()));
                                        summary.releases_removed += 1;
                                    }
                                    Err(e) => summary.errors.push(e),
                                }
                            }
                        }
                        Err(e) => summary.errors.push(e),
                    }
                    // Secrets written for releases that never got installed.
                    let shards = self
                        .plan
                        .as_ref()
                        .map(|p| p.shards.clone())
                        .unwrap_or_default();
                    for shard in shards {
                        let secret = SecretRef::new(&namespace, Self::secret_name(&shard.release));
                        match retry(&format!("delete {}", secret.describe()), || {
                            c.secrets.delete(&secret)
                        })
                        .await
                        {
                            Ok(true) => self.step(phase, format!("deleted {}", secret.describe())),
                            Ok(false) => {}
                            Err(e) => summary.errors.push(e),
                        }
                    }
                    clients = Some(c);
                }
                // No cluster (never created, or already gone): no release can exist.
                Err(e) => tracing::info!(error = %e, "no cluster to uninstall releases from"),
            }
        }

        let project = match &self.project {
            Some(p) => Some(p.clone()),
            None if scope.runners => self.project(false).await.ok(),
            None => None,
        };
        if scope.runners
            && let Some(project) = &project
        {
            let mine = format!("{}/", self.config.spec.stack);
            let project_ref = ProjectRef::Id(project.id);
            match retry("list runners", || gitlab.list_runners(&project_ref)).await {
                Ok(list) => {
                    for runner in list.into_iter().filter(|r| {
                        r.description
                            .as_deref()
                            .is_some_and(|d| d.starts_with(&mine))
                    }) {
                        let deleted = retry(&format!("delete runner {}", runner.id), || async {
                            match gitlab.delete_runner(runner.id).await {
                                Err(glrunner_gitlab_client::Error::NotFound { .. }) => Ok(()),
                                other => other,
                            }
                        })
                        .await;
                        match deleted {
                            Ok(()) => {
                                self.step(phase, format!("deleted GitLab runner {}", runner.id));
                                summary.runners_deleted += 1;
                            }
                            Err(e) => summary.errors.push(e),
                        }
                    }
                }
                Err(e) => summary.errors.push(e),
            }
        }

        // Leftovers of the cluster side are checked before the cluster goes away.
        if scope.releases
            && let Some(c) = &clients
        {
            match c.releases.list(Some(&namespace)).await {
                Ok(list) => {
                    summary.leftovers.releases = list
                        .into_iter()
                        .filter(|r| r.name.starts_with(&prefix))
                        .map(|r| r.name)
                        .collect()
                }
                Err(e) => summary
                    .errors
                    .push(format!("list releases after teardown: {e}")),
            }
        }
        if scope.runners
            && let Some(project) = &project
        {
            let mine = format!("{}/", self.config.spec.stack);
            match gitlab.list_runners(&ProjectRef::Id(project.id)).await {
                Ok(list) => {
                    summary.leftovers.runners = list
                        .into_iter()
                        .filter(|r| {
                            r.description
                                .as_deref()
                                .is_some_and(|d| d.starts_with(&mine))
                        })
                        .map(|r| format!("runner {}", r.id))
                        .collect();
                }
                Err(e) => summary
                    .errors
                    .push(format!("list runners after teardown: {e}")),
            }
        }

        if scope.infra {
            let b = self.backends;
            let progress = InfraProgress(self.progress);
            let options = StackOptions {
                dry_run: false,
                state_dir: b.state_dir.clone(),
                waits: b.waits.clone(),
                progress: &progress,
            };
            let spec = &self.config.spec;
            match glrunner_infra::teardown(
                &spec.stack,
                &spec.region,
                b.network.as_ref(),
                b.cluster.as_ref(),
                &options,
            )
            .await
            {
                Ok(report) => summary.infra_deleted = report.deleted.len(),
                Err(e) => summary.errors.push(format!("infrastructure teardown: {e}")),
            }
            let engine = Engine::new(b.network.as_ref(), b.cluster.as_ref());
            match engine.leftovers(&spec.stack).await {
                Ok(left) => summary.leftovers.infra = left.iter().map(|r| r.describe()).collect(),
                Err(e) => summary.errors.push(format!("leftover scan: {e}")),
            }
            self.clients = None;
            self.access = None;
        }
        summary.leftovers.total = summary.leftovers.infra.len()
            + summary.leftovers.releases.len()
            + summary.leftovers.runners.len();
        if summary.leftovers.total > 0 {
            summary.errors.push(format!(
                "{} resource(s) left after teardown",
                summary.leftovers.total
            ));
        }
        summary
    }
}

/// Tries `f` up to three times, pausing 5 s (flow clock) between attempts.
async fn retry<T, E, F, Fut>(what: &str, mut f: F) -> Result<T, String>
where
    E: fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt < 3 => {
                tracing::warn!(%what, attempt, error = %e, "cleanup step failed; retrying");
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            Err(e) => return Err(format!("{what}: {e}")),
        }
    }
}
