//! `reap`: delete hung GitLab Runner job pods — and nothing else.
//!
//! ```text
//! cargo run --example reap                                  # sandbox: a demo fleet, reaped offline
//! cargo run --example reap -- --dry-run --output json
//! cargo run --example reap -- --backend aws --context my-eks --namespace gitlab-runner --once
//! cargo run --example reap -- --backend aws --watch --interval 5m --grace 10m
//! cargo run --example reap -- rbac --namespace gitlab-runner | kubectl apply -f -
//! ```
//!
//! Exit codes: 0 done, 1 failure (API server unreachable, deletes failed), 2 invalid input.

use std::num::NonZeroUsize;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use glrunner::cli::{self, Backend, CliError, GlobalArgs, OutputFormat};
use glrunner::janitor::cost::FargatePricing;
use glrunner::janitor::k8s::KubePodApi;
use glrunner::janitor::memory::{InMemoryJobStatus, InMemoryPods, seed_demo};
use glrunner::janitor::policy::{Policy, parse_duration_flag};
use glrunner::janitor::{
    Clock, Error, PodApi, Reaper, ReaperConfig, Report, SystemClock, model, rbac,
};

/// Reap hung GitLab Runner job pods (Kubernetes executor) safely: identified by the executor's
/// labels and annotations, never by name; deleted with a UID precondition; dry-run first if unsure.
#[derive(Debug, Parser)]
#[command(name = "reap", version)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,

    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
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

#[derive(Debug, Args)]
struct RunArgs {
    /// Namespace to reap in (repeatable). Pods elsewhere are never touched.
    #[arg(long = "namespace", short = 'n', default_value = "gitlab-runner")]
    namespaces: Vec<String>,

    /// Kubeconfig file (default: $KUBECONFIG or ~/.kube/config). `--backend aws` only.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,

    /// Kubeconfig context (default: the current context). `--backend aws` only.
    #[arg(long)]
    context: Option<String>,

    /// Use the in-cluster service account (when running as a CronJob). `--backend aws` only.
    #[arg(long, conflicts_with_all = ["kubeconfig", "context"])]
    in_cluster: bool,

    /// Run one round and exit (the default).
    #[arg(long, conflicts_with = "watch")]
    once: bool,

    /// Keep running, one round every --interval.
    #[arg(long)]
    watch: bool,

    /// Time between rounds with --watch (`30s`, `5m`).
    #[arg(
        long,
        default_value = "1m",
        requires = "watch",
        allow_hyphen_values = true
    )]
    interval: String,

    /// Stop --watch after this many rounds (default: run until killed).
    #[arg(long, requires = "watch")]
    rounds: Option<u64>,

    /// How long a job pod may stay Pending: the runner's poll_timeout (`180s`).
    #[arg(long, default_value = "180s", allow_hyphen_values = true)]
    pending_timeout: String,

    /// Extra time past every deadline before a pod is reaped (`90s`, `5m`, `1h`).
    #[arg(long, default_value = "5m", allow_hyphen_values = true)]
    grace: String,

    /// Job timeout assumed for running pods without a `job.runner.gitlab.com/timeout` annotation
    /// (default: keep them).
    #[arg(long)]
    default_job_timeout: Option<String>,

    /// At most this many deletes in flight.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,

    /// Also reap job pods whose runner-manager pod no longer exists in the namespaces.
    #[arg(long)]
    check_manager: bool,

    /// Cross-check with GitLab: also reap pods whose job GitLab says is finished.
    /// The token is read from the GITLAB_TOKEN environment variable, never from the command line.
    #[arg(long)]
    gitlab_url: Option<String>,

    /// Fargate price per vCPU-hour in USD (default: us-east-1 Linux/x86).
    #[arg(long)]
    vcpu_hour_usd: Option<f64>,

    /// Fargate price per GB-hour in USD (default: us-east-1 Linux/x86).
    #[arg(long)]
    gb_hour_usd: Option<f64>,
}

fn invalid(e: Error) -> CliError {
    CliError::invalid(e.to_string())
}

fn flag_error(flag: &str, e: Error) -> CliError {
    match e {
        Error::InvalidInput { message, .. } => {
            CliError::invalid(format!("invalid {flag}: {message}"))
        }
        other => invalid(other),
    }
}

fn duration(flag: &str, value: &str) -> Result<Duration, CliError> {
    parse_duration_flag(flag, value).map_err(|e| flag_error(flag, e))
}

fn config(run: &RunArgs, global: &GlobalArgs) -> Result<ReaperConfig, CliError> {
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
        .with_grace(duration("--grace", &run.grace)?)
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
        )
        .map_err(|e| flag_error("--vcpu-hour-usd/--gb-hour-usd", e))?,
    };
    Ok(ReaperConfig::new(policy)
        .with_dry_run(global.dry_run)
        .with_concurrency(concurrency)
        .with_manager_check(run.check_manager)
        .with_pricing(pricing))
}

fn print_report(report: &Report, output: OutputFormat) -> Result<(), CliError> {
    match output {
        OutputFormat::Human => {
            println!("{report}");
            Ok(())
        }
        OutputFormat::Json => cli::print_json(report),
    }
}

fn round_result(report: &Report) -> Result<(), CliError> {
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

async fn run(cli: Cli) -> Result<(), CliError> {
    let global = &cli.global;
    if let Some(Command::Rbac {
        namespaces,
        service_account,
    }) = &cli.command
    {
        let yaml = rbac::rbac_manifest(namespaces, service_account).map_err(invalid)?;
        print!("{yaml}");
        return Ok(());
    }
    let run = &cli.run;
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
        .watch(interval, std::future::pending(), |result| {
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
    outcome
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let output = cli.global.output;
    cli::init_tracing(output);
    let result = run(cli).await;
    cli::finish(result, output)
}
