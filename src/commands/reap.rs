//! The `reap` example's command: delete hung GitLab Runner job pods, and nothing else.

use std::num::NonZeroUsize;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use glrunner_janitor::cost::FargatePricing;
use glrunner_janitor::k8s::KubePodApi;
use glrunner_janitor::memory::{InMemoryJobStatus, InMemoryPods, seed_demo};
use glrunner_janitor::policy::Policy;
use glrunner_janitor::{
    Clock, Error, PodApi, Reaper, ReaperConfig, Report, SystemClock, model, rbac,
};

use crate::cli::signals::Interrupt;
use crate::cli::{self, Backend, CliError, GlobalArgs, OutputFormat};

/// The `reap` subcommands (none: reap).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a namespace-scoped ServiceAccount, Role (pods: get, list, watch, delete) and RoleBinding
    /// so the janitor can run in-cluster as a CronJob.
    Rbac {
        /// Namespaces the janitor may reap in (the ServiceAccount lives in the first).
        #[arg(long = "namespace", short = 'n', default_value = "gitlab-runner")]
        namespaces: Vec<String>,
        /// ServiceAccount, Role and RoleBinding name.
        #[arg(long, default_value = "glrunner-janitor")]
        service_account: String,
    },
}

/// Flags of a reaping run.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Namespace to reap in (repeatable). Pods elsewhere are never touched.
    #[arg(long = "namespace", short = 'n', default_value = "gitlab-runner")]
    pub namespaces: Vec<String>,

    /// Kubeconfig file (default: $KUBECONFIG or ~/.kube/config). `--backend aws` only.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,

    /// Kubeconfig context (default: the current context). `--backend aws` only.
    #[arg(long)]
    pub context: Option<String>,

    /// Use the in-cluster service account (when running as a CronJob). `--backend aws` only.
    #[arg(long, conflicts_with_all = ["kubeconfig", "context"])]
    pub in_cluster: bool,

    /// Run one round and exit (the default).
    #[arg(long, conflicts_with = "watch")]
    pub once: bool,

    /// Keep running, one round every --interval.
    #[arg(long)]
    pub watch: bool,

    /// Time between rounds with --watch (`30s`, `5m`).
    #[arg(
        long,
        default_value = "1m",
        requires = "watch",
        allow_hyphen_values = true
    )]
    pub interval: String,

    /// Stop --watch after this many rounds (default: run until killed).
    #[arg(long, requires = "watch")]
    pub rounds: Option<u64>,

    /// How long a job pod may stay Pending: the runner's poll_timeout (`180s`).
    #[arg(long, default_value = "180s", allow_hyphen_values = true)]
    pub pending_timeout: String,

    /// Extra time past every deadline before a pod is reaped (`90s`, `5m`, `1h`).
    #[arg(long, default_value = "5m", allow_hyphen_values = true)]
    pub grace: String,

    /// Job timeout assumed for running pods without a `job.runner.gitlab.com/timeout` annotation
    /// (default: keep them).
    #[arg(long)]
    pub default_job_timeout: Option<String>,

    /// At most this many deletes in flight.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,

    /// Also reap job pods whose runner-manager pod no longer exists in the namespaces.
    #[arg(long)]
    pub check_manager: bool,

    /// Cross-check with GitLab: also reap pods whose job GitLab says is finished.
    /// The token is read from the GITLAB_TOKEN environment variable, never from the command line.
    #[arg(long)]
    pub gitlab_url: Option<String>,

    /// Fargate price per vCPU-hour in USD (default: us-east-1 Linux/x86).
    #[arg(long)]
    pub vcpu_hour_usd: Option<f64>,

    /// Fargate price per GB-hour in USD (default: us-east-1 Linux/x86).
    #[arg(long)]
    pub gb_hour_usd: Option<f64>,
}

/// A janitor error as invalid input (exit 2).
pub fn invalid(e: Error) -> CliError {
    CliError::invalid(e.to_string())
}

/// An invalid-input error prefixed with the flag it came from.
pub fn flag_error(flag: &str, e: Error) -> CliError {
    match e {
        Error::InvalidInput { message, .. } => {
            CliError::invalid(format!("invalid {flag}: {message}"))
        }
        other => invalid(other),
    }
}

/// Parses a duration flag with the examples' one grammar (`30s`, `5m`, `1h`; see
/// [`crate::cli::duration`]); zero is refused.
pub fn duration(flag: &str, value: &str) -> Result<Duration, CliError> {
    cli::duration::parse(flag, value, cli::duration::Zero::Refused)
}

/// Validates the flags into the reaper configuration; touches no cluster.
pub fn config(run: &RunArgs, global: &GlobalArgs) -> Result<ReaperConfig, CliError> {
    for ns in &run.namespaces {
        model::validate_namespace(ns).map_err(|e| flag_error("--namespace", e))?;
    }
    let concurrency = NonZeroUsize::new(run.concurrency).ok_or_else(|| {
        CliError::invalid(
            "invalid --concurrency: 0 would never delete anything; use 1 or more (default 16)",
        )
    })?;
    let default_job_timeout = run
        .default_job_timeout
        .as_deref()
        .map(|v| duration("--default-job-timeout", v))
        .transpose()?;
    let policy = Policy::new(run.namespaces.iter().cloned())
        // Zero grace is meaningful: reap as soon as a deadline passes.
        .with_grace(cli::duration::parse(
            "--grace",
            &run.grace,
            cli::duration::Zero::Allowed,
        )?)
        .with_pending_timeout(duration("--pending-timeout", &run.pending_timeout)?)
        .with_default_job_timeout(default_job_timeout);
    let default = FargatePricing::us_east_1();
    let pricing = match (run.vcpu_hour_usd, run.gb_hour_usd) {
        (None, None) => {
            if let Some(region) = global.region.as_deref().filter(|r| *r != "us-east-1") {
                tracing::warn!(%region, "using us-east-1 Fargate prices; pass --vcpu-hour-usd/--gb-hour-usd for {region}");
            }
            default
        }
        (vcpu, gb) => FargatePricing::new(
            global.region.clone().unwrap_or_else(|| "custom".into()),
            vcpu.unwrap_or(default.vcpu_hour_usd),
            gb.unwrap_or(default.gb_hour_usd),
            "--vcpu-hour-usd/--gb-hour-usd",
        )
        .map_err(|e| CliError::invalid(format!("invalid --vcpu-hour-usd/--gb-hour-usd: {e}")))?,
    };
    Ok(ReaperConfig::new(policy)
        .with_dry_run(global.dry_run)
        .with_concurrency(concurrency)
        .with_manager_check(run.check_manager)
        .with_pricing(pricing))
}

/// Prints one round's report: the summary, or JSON.
pub fn print_report(report: &Report, output: OutputFormat) -> Result<(), CliError> {
    match output {
        OutputFormat::Human => {
            println!("{report}");
            Ok(())
        }
        OutputFormat::Json => cli::print_json(report),
    }
}

/// A round with failed deletes is a failure (exit 1).
pub fn round_result(report: &Report) -> Result<(), CliError> {
    if report.errors.is_empty() {
        Ok(())
    } else {
        Err(CliError::failure(format!(
            "{} of {} reaped pod(s) could not be deleted; see the errors above",
            report.errors.len(),
            report.reaped.len()
        )))
    }
}

/// Prints the janitor's RBAC manifest (`rbac`).
pub fn print_rbac(namespaces: &[String], service_account: &str) -> Result<(), CliError> {
    let yaml = rbac::rbac_manifest(namespaces, service_account).map_err(invalid)?;
    print!("{yaml}");
    Ok(())
}

/// Runs the `reap` command: `rbac` prints the manifest; otherwise one round (or `--watch`
/// rounds) on the sandbox's demo fleet or the cluster, each round reported.
pub async fn run(
    global: &GlobalArgs,
    command: Option<Command>,
    run: &RunArgs,
) -> Result<(), CliError> {
    run_until(global, command, run, &Interrupt::detached()).await
}

/// [`run`] that stops `--watch` cleanly on `interrupt` (SIGINT/SIGTERM): the round in flight
/// finishes its deletes, its report is printed, and the command ends as after its last round
/// (exit 0 when every round succeeded).
pub async fn run_until(
    global: &GlobalArgs,
    command: Option<Command>,
    run: &RunArgs,
    interrupt: &Interrupt,
) -> Result<(), CliError> {
    if let Some(Command::Rbac {
        namespaces,
        service_account,
    }) = &command
    {
        return print_rbac(namespaces, service_account);
    }
    let config = config(run, global)?;
    let interval = duration("--interval", &run.interval)?;
    if run.gitlab_url.is_some() && global.backend == Backend::Aws {
        return Err(CliError::invalid(
            "--gitlab-url with --backend aws needs the root package's GitLab job-status adapter, which is not \
             wired into this example yet; rerun without --gitlab-url",
        ));
    }

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (api, jobs): (Arc<dyn PodApi>, Option<InMemoryJobStatus>) = match global.backend {
        Backend::Sandbox => {
            let pods = InMemoryPods::new().with_clock(clock.clone());
            let jobs = InMemoryJobStatus::new();
            for ns in &run.namespaces {
                seed_demo(&pods, &jobs, ns, clock.now())
                    .map_err(|e| CliError::failure(e.to_string()))?;
            }
            tracing::info!(
                pods = pods.pods().len(),
                "sandbox: seeded a demo fleet (runner managers, healthy and hung job pods)"
            );
            (Arc::new(pods), run.gitlab_url.is_some().then_some(jobs))
        }
        Backend::Aws => {
            let api = if run.in_cluster {
                KubePodApi::in_cluster()
            } else {
                KubePodApi::from_kubeconfig(run.kubeconfig.as_deref(), run.context.as_deref()).await
            };
            (
                Arc::new(api.map_err(|e| match e {
                    Error::InvalidInput { .. } => invalid(e),
                    other => CliError::failure(other.to_string()),
                })?),
                None,
            )
        }
    };

    let mut reaper = Reaper::new(api, config).map_err(invalid)?.with_clock(clock);
    if let Some(jobs) = jobs {
        reaper = reaper.with_job_status(Arc::new(jobs));
    }

    if !run.watch {
        let report = reaper
            .run_once()
            .await
            .map_err(|e| CliError::failure(e.to_string()))?;
        print_report(&report, global.output)?;
        return round_result(&report);
    }

    let mut rounds = 0u64;
    let mut outcome = Ok(());
    reaper
        .watch(interval, interrupt.token().cancelled_owned(), |result| {
            rounds += 1;
            match result {
                Ok(report) => {
                    if let Err(e) =
                        print_report(&report, global.output).and_then(|()| round_result(&report))
                    {
                        tracing::warn!("{e}");
                        outcome = Err(e);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "round failed; retrying next interval");
                    outcome = Err(CliError::failure(e.to_string()));
                }
            }
            if run.rounds.is_some_and(|max| rounds >= max) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .await;
    if let Some(signal) = interrupt.received() {
        match global.output {
            OutputFormat::Human => eprintln!(
                "stopped by {} after {rounds} round(s); in-flight deletes finished",
                signal.name()
            ),
            OutputFormat::Json => eprintln!(
                "{}",
                serde_json::json!({"event": "stopped", "signal": signal.name(), "rounds": rounds})
            ),
        }
    }
    outcome
}
