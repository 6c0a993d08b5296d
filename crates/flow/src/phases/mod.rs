//! The phases of a run, one file each, and the run that drives them in order: provision →
//! project → plan → runners → releases → load test → reap → teardown, then the cleanup after a
//! failure.

mod load_test;
mod plan;
mod project;
mod provision;
mod reap;
mod releases;
mod runners;
mod teardown;

use glrunner_gitlab_client::Project;
use glrunner_infra::ClusterAccess;
use glrunner_runner_chart::RunnerToken;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::at;
use crate::{
    Backends, ClusterClients, ClusterSource, ClusterTarget, Error, Failure, FleetSummary,
    FlowConfig, FlowEvent, FlowProgress, FlowReport, LoadTestSummary, Phase, PhaseRecord,
    PhaseStatus, ProvisioningSummary, ReapSummary, ShardSummary, TeardownSummary, check_cluster,
};
use teardown::Scope;

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
    /// Whether the cluster passed its pre-install checks in this run.
    cluster_checked: bool,
    project: Option<Project>,
    plan: Option<crate::RunPlan>,
    runners: Vec<ShardRunner>,
    /// When this run's releases phase began deploying (the clients' clock): the load test wants a
    /// runner contact after it, not GitLab's two-hour "online".
    releases_deployed_at: Option<jiff::Timestamp>,
    created: Created,
    stop: CancellationToken,
}

/// Runs the flow. `Err` only for invalid input (nothing was done); otherwise the report says
/// whether a phase failed ([`FlowReport::failure`]) and what the cleanup left (nothing, normally).
pub async fn run(
    config: &FlowConfig,
    backends: &Backends,
    progress: &dyn FlowProgress,
) -> Result<FlowReport, Error> {
    run_until(config, backends, progress, &CancellationToken::new()).await
}

/// The configuration with what the stack makes in the caller's account (image cache paths, the
/// S3 cache, job ServiceAccounts: [`FlowConfig::with_stack_outputs`]), when the run needs them;
/// `None` when it does not, or when the account cannot be read (logged: provisioning then fails
/// on the same credentials, and a run without provisioning pulls images directly).
async fn with_stack_outputs(config: &FlowConfig, backends: &Backends) -> Option<FlowConfig> {
    let brought_without_cache = config.cluster.brought_by_user() && config.image_cache.is_none();
    if !config.needs_stack_outputs() && !brought_without_cache {
        return None;
    }
    let arn = match backends.cluster.caller_arn().await {
        Ok(arn) => arn,
        Err(e) => {
            tracing::warn!(error = %e, "the caller's account is unknown: the stack's image cache, S3 cache and job roles are left out of the runners' values");
            return None;
        }
    };
    let Some(account) = glrunner_infra::plan::account_of(&arn) else {
        tracing::warn!(caller = %arn, "no account in the caller's ARN: the stack's outputs are left out");
        return None;
    };
    if brought_without_cache {
        // A cluster the user brought pulls through whatever rules the account's registry has.
        return match backends.cluster.cache_rules().await {
            Ok(rules) => {
                let mut resolved = config.clone();
                resolved.image_cache = Some(crate::image_cache::ImageCache::from_rules(
                    account,
                    &config.spec.region,
                    &rules,
                ));
                Some(resolved)
            }
            Err(e) => {
                tracing::warn!(error = %e, "the registry's pull-through cache rules are unknown: images are pulled directly");
                None
            }
        };
    }
    Some(config.clone().with_stack_outputs(account))
}

/// What a stopped phase reports as its error.
pub const STOPPED: &str = "stopped (SIGINT/SIGTERM)";

/// [`run`] that stops when `stop` fires (SIGINT/SIGTERM in the examples): provisioning starts no
/// new step, the pipeline watch and the janitor's rounds end, no further phase starts, and the
/// cleanup removes what this run created (unless [`FlowConfig::keep`]) within
/// [`FlowConfig::cleanup_timeout`]; the report's failure says the run was stopped.
pub async fn run_until(
    config: &FlowConfig,
    backends: &Backends,
    progress: &dyn FlowProgress,
    stop: &CancellationToken,
) -> Result<FlowReport, Error> {
    config.validate(&backends.gitlab_url)?;
    let resolved = with_stack_outputs(config, backends).await;
    if let Some(resolved) = &resolved {
        resolved.validate(&backends.gitlab_url)?;
    }
    let config = resolved.as_ref().unwrap_or(config);
    let wall = std::time::Instant::now();
    let start = Instant::now();
    let mut run = Run {
        config,
        backends,
        progress,
        report: FlowReport::new(config, backends.kind),
        access: None,
        clients: None,
        cluster_checked: false,
        project: None,
        plan: None,
        runners: Vec::new(),
        releases_deployed_at: None,
        created: Created::default(),
        stop: stop.clone(),
    };
    tracing::info!(stack = %config.spec.stack, jobs = config.jobs, backend = ?backends.kind, "flow started");
    let mut failed = None;
    for phase in Phase::ALL {
        if !config.runs(phase) {
            let summary = if phase == Phase::Provision && config.cluster.brought_by_user() {
                format!("cluster {}", config.cluster.describe())
            } else {
                String::new()
            };
            run.report.phases.push(PhaseRecord {
                phase,
                status: PhaseStatus::Skipped,
                secs: 0.0,
                summary,
            });
            progress.event(&FlowEvent::PhaseSkipped { phase });
            continue;
        }
        progress.event(&FlowEvent::PhaseStarted { phase });
        let t0 = Instant::now();
        // A stop ends the phases that wait (provision, load test, reap) early; the others are
        // bounded and finish. The teardown phase is itself a cleanup, so it goes on.
        let result = if stop.is_cancelled() && phase != Phase::Teardown {
            Err(Error::stopped(phase, STOPPED))
        } else {
            run.phase(phase).await
        };
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
                let category = e.category();
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
                    category,
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
                infra: run.created.infra
                    && !keep_runners
                    && !config.keep_infra
                    && !config.cluster.brought_by_user(),
                trigger: "cleanup after failure",
            };
            let summary =
                match tokio::time::timeout(config.cleanup_timeout, run.teardown(scope)).await {
                    Ok(summary) => summary,
                    Err(_) => run.cleanup_timed_out().await,
                };
            failure.cleaned_up = summary.errors.is_empty();
            run.report.teardown = Some(summary);
        }
        run.report.failure = Some(failure);
    }
    run.report.total_secs = start.elapsed().as_secs_f64();
    run.report.wall_secs = wall.elapsed().as_secs_f64();
    Ok(run.report)
}

impl Run<'_> {
    /// The infra crate's options for this run's provisioning and teardown: never a dry run,
    /// the backends' state directory and waits, progress to `progress`.
    fn stack_options<'p>(
        &self,
        progress: &'p crate::events::InfraProgress<'_>,
    ) -> glrunner_infra::StackOptions<'p> {
        glrunner_infra::StackOptions {
            dry_run: false,
            state_dir: self.backends.state_dir.clone(),
            waits: self.backends.waits.clone(),
            progress,
        }
    }

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
                let plan = self.run_plan()?;
                Ok(format!(
                    "{} job(s) over {} shard(s) of at most {} (poll timeout {}s)",
                    plan.fleet.total_jobs,
                    plan.fleet.shards.len(),
                    plan.fleet.largest_batch(),
                    plan.poll_timeout.as_secs()
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
                    // A cluster the user brought is never torn down.
                    infra: !self.config.keep_infra
                        && !self.config.keep_runners
                        && !self.config.cluster.brought_by_user(),
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

    /// The cluster's clients, connecting on first use.
    async fn clients(&mut self, phase: Phase) -> Result<ClusterClients, Error> {
        if let Some(c) = &self.clients {
            return Ok(c.clone());
        }
        let target = match &self.config.cluster {
            ClusterSource::Kubeconfig { path, context } => ClusterTarget::Kubeconfig {
                path,
                context: context.as_deref(),
            },
            _ => {
                if self.access.is_none() {
                    let name = self.config.eks_cluster_name().unwrap_or_default();
                    self.access = Some(
                        self.backends
                            .cluster
                            .cluster_access(name)
                            .await
                            .map_err(at(phase))?,
                    );
                }
                ClusterTarget::Eks(self.access.as_ref().expect("access was just read"))
            }
        };
        let clients = self
            .backends
            .connector
            .connect(&self.config.spec, target)
            .await?;
        self.clients = Some(clients.clone());
        Ok(clients)
    }
}
