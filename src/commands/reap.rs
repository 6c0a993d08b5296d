//! The `reap` example's command: delete hung GitLab Runner job pods, and nothing else.

use std::num::NonZeroUsize;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use glrunner_flow::janitor::{GitLabJobStatus, GitLabPendingJobs, ShardRoute, shard_label};
use glrunner_gitlab_client::{DynGitLabApi, ProjectRef};
use glrunner_janitor::classify::{PendingPod, explain_pending};
use glrunner_janitor::cost::FargatePricing;
use glrunner_janitor::k8s::KubePodApi;
use glrunner_janitor::memory::{InMemoryJobStatus, InMemoryPods, seed_demo, seed_pending_demo};
use glrunner_janitor::metrics::{JanitorMetrics, PendingJobsSource};
use glrunner_janitor::policy::Policy;
use glrunner_janitor::{
    Clock, DynJobStatusSource, Error, PodApi, Reaper, ReaperConfig, Report, SystemClock, model,
    rbac,
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
    /// Run as a controller until SIGTERM: watch the job pods of each namespace, judge them on
    /// every change and at each pod's deadline (no re-listing), record an Event per deletion;
    /// with --lease, only the replica holding the Lease acts.
    Run(Box<ControllerArgs>),
    /// Apply the janitor's in-cluster objects (ServiceAccount, least-privilege Roles and
    /// RoleBindings, a Lease, a Deployment of the smallest Fargate size) and print them.
    Deploy(DeployArgs),
    /// Remove what `deploy` applied (NotFound counts as done).
    Undeploy(DeployArgs),
    /// List each Pending job pod with why it has not started (its class, the message it came
    /// from, how long it has waited, the GitLab job) and the fix. Reads pods and Events only.
    Explain(ExplainArgs),
}

/// Flags of `reap run`: the reaping flags, plus the controller's.
#[derive(Debug, Args)]
pub struct ControllerArgs {
    #[command(flatten)]
    /// The reaping flags (namespaces, cluster access, policy).
    pub run: RunArgs,

    /// Elect a leader on this Lease (in --lease-namespace); only the holder deletes.
    #[arg(long)]
    pub lease: Option<String>,

    /// The Lease's namespace (default: the first --namespace).
    #[arg(long, requires = "lease")]
    pub lease_namespace: Option<String>,

    /// This replica's identity on the Lease and its Events (default: the host name).
    #[arg(long, env = "GLRUNNER_JANITOR_IDENTITY")]
    pub identity: Option<String>,

    /// Record no Kubernetes Event: neither on deleted pods nor the class of Pending ones.
    #[arg(long)]
    pub no_events: bool,

    /// Also delete the executor's per-job registry Secrets whose pod is gone
    /// (gitlab-org/gitlab-runner#4184). Needs list/watch/delete on secrets.
    #[arg(long)]
    pub reap_secrets: bool,

    /// Delete a Pending job pod as soon as its class cannot recover (a fargate-scheduler refusal,
    /// no Fargate profile, an image that does not exist, ...: see `reap explain`), so the runner
    /// fails the job with a clear error instead of waiting out its poll_timeout. Off by default.
    #[arg(long)]
    pub reap_unrecoverable: bool,

    /// The account's Fargate On-Demand vCPU quota (L-3032A538) for the
    /// `fargate_vcpu_quota` metric. Default with --cluster: read from Service Quotas; in a
    /// pod (no AWS identity): unset unless given.
    #[arg(long, value_name = "VCPUS")]
    pub fargate_vcpu_quota: Option<f64>,
}

/// Flags of `reap deploy` / `reap undeploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The janitor image (built from the repository's Containerfile and pushed to ECR).
    #[arg(long)]
    pub image: Option<String>,

    /// Namespace the janitor runs in: one a Fargate profile selects (default: the first
    /// --namespace).
    #[arg(long)]
    pub home: Option<String>,

    /// Namespaces it reaps in (repeatable).
    #[arg(long = "namespace", short = 'n', default_value = "gitlab-runner")]
    pub namespaces: Vec<String>,

    /// Replicas (they elect a leader on the Lease).
    #[arg(long, default_value_t = 1)]
    pub replicas: i32,

    /// Also reap orphaned executor Secrets (adds list/watch/delete on secrets to the Roles).
    #[arg(long)]
    pub reap_secrets: bool,

    /// Kubeconfig file (default: $KUBECONFIG or ~/.kube/config). `--backend aws` only.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,

    /// Kubeconfig context. `--backend aws` only.
    #[arg(long)]
    pub context: Option<String>,
}

/// Flags of `reap explain`: where to look.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Namespace to explain (repeatable).
    #[arg(long = "namespace", short = 'n', default_value = "gitlab-runner")]
    pub namespaces: Vec<String>,

    #[command(flatten)]
    /// Which cluster to read.
    pub access: ClusterAccessArgs,
}

/// How `reap`, `reap run` and `reap explain` reach a real cluster (`--backend aws`).
#[derive(Debug, Args)]
pub struct ClusterAccessArgs {
    /// Kubeconfig file (default: $KUBECONFIG or ~/.kube/config). `--backend aws` only.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,

    /// Kubeconfig context (default: the current context). `--backend aws` only.
    #[arg(long)]
    pub context: Option<String>,

    /// Use the in-cluster service account (the janitor's Deployment, or a CronJob): kube-rs's
    /// in-cluster configuration. `--backend aws` only.
    #[arg(long, conflicts_with_all = ["kubeconfig", "context"])]
    pub in_cluster: bool,

    /// An EKS cluster found through the EKS API of --region, reached with glrunner's own EKS
    /// tokens (no kubeconfig, no aws CLI). `--backend aws` only.
    #[arg(long, conflicts_with_all = ["kubeconfig", "context", "in_cluster"])]
    pub cluster: Option<String>,
}

/// Flags of a reaping run.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Namespace to reap in (repeatable). Pods elsewhere are never touched.
    #[arg(long = "namespace", short = 'n', default_value = "gitlab-runner")]
    pub namespaces: Vec<String>,

    #[command(flatten)]
    /// Which cluster to reap in.
    pub access: ClusterAccessArgs,

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
    /// The token (scope `read_api`) is read from the GITLAB_TOKEN environment variable, never
    /// from the command line. `--backend aws` only.
    #[arg(long)]
    pub gitlab_url: Option<String>,

    /// With --gitlab-url and --metrics-addr: a GitLab project (`group/project` or numeric id)
    /// whose pending jobs the metrics count per shard (`glrunner_janitor_gitlab_pending_jobs`).
    /// Repeatable; needs --shard.
    #[arg(
        long = "gitlab-project",
        value_name = "PATH_OR_ID",
        requires_all = ["gitlab_url", "metrics_addr", "shards"]
    )]
    pub gitlab_projects: Vec<String>,

    /// A runner shard for the pending-jobs metric: its Helm release (or the metrics' shard label,
    /// `<release>-gitlab-runner`) and its runner's tags. GitLab hands a job only to a runner
    /// holding all of the job's tags; jobs no shard takes count as `unmatched`. Repeatable.
    #[arg(
        long = "shard",
        value_name = "RELEASE=TAG[,TAG...]",
        requires = "gitlab_projects"
    )]
    pub shards: Vec<String>,

    /// A shard (as in --shard) whose runner also takes untagged jobs (`run_untagged`); a release
    /// not named by --shard is a shard that takes untagged jobs only. Repeatable.
    #[arg(
        long = "shard-untagged",
        value_name = "RELEASE",
        requires = "gitlab_projects"
    )]
    pub shards_untagged: Vec<String>,

    /// Fargate price per vCPU-hour in USD (default: us-east-1 Linux/x86).
    #[arg(long)]
    pub vcpu_hour_usd: Option<f64>,

    /// Fargate price per GB-hour in USD (default: us-east-1 Linux/x86).
    #[arg(long)]
    pub gb_hour_usd: Option<f64>,

    /// Reap at most this many pods per round, the oldest first (default: no cap).
    #[arg(long)]
    pub max_deletes: Option<usize>,

    /// Serve OpenMetrics on http://ADDR/metrics while reaping (`0.0.0.0:9090`): job pods by
    /// phase and Pending class, pods reaped by reason, Fargate vCPUs, the oldest Pending pod.
    #[arg(long)]
    pub metrics_addr: Option<std::net::SocketAddr>,
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
    let max_deletes = run
        .max_deletes
        .map(|n| {
            NonZeroUsize::new(n).ok_or_else(|| {
                CliError::invalid(
                    "invalid --max-deletes: 0 would never delete anything; use 1 or more, or leave it out",
                )
            })
        })
        .transpose()?;
    Ok(ReaperConfig::new(policy)
        .with_max_deletes(max_deletes)
        .with_dry_run(global.dry_run)
        .with_concurrency(concurrency)
        .with_manager_check(run.check_manager)
        .with_pricing(pricing))
}

/// What the janitor reads from GitLab ([`gitlab_sources`]).
pub struct GitLabSources {
    /// GitLab's view of a job, for the reaper's (and the controller's) cross-check.
    pub job_status: Arc<DynJobStatusSource>,
    /// GitLab's pending jobs per shard for the metrics; `None` without --gitlab-project.
    pub pending_jobs: Option<Arc<dyn PendingJobsSource>>,
}

impl std::fmt::Debug for GitLabSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitLabSources")
            .field("pending_jobs", &self.pending_jobs.is_some())
            .finish_non_exhaustive()
    }
}

/// The shard routes of `--shard RELEASE=TAG[,TAG...]` and `--shard-untagged RELEASE`, labelled as
/// the janitor labels job pods ([`glrunner_flow::janitor::shard_label`]); a release given twice
/// gathers its tags. Bad values are invalid input (exit 2) naming the flag.
pub fn shard_routes(run: &RunArgs) -> Result<Vec<ShardRoute>, CliError> {
    let mut routes: Vec<ShardRoute> = Vec::new();
    let mut route = |release: &str, flag: &str| -> Result<usize, CliError> {
        let release = release.trim();
        if !is_dns_label(release) {
            return Err(CliError::invalid(format!(
                "invalid {flag}: {release:?} is not a Helm release name or shard label (lowercase letters, digits and \
                 '-', at most 63, starting and ending with a letter or digit), e.g. --shard gitlab-runner-1=glrunner-1"
            )));
        }
        let label = shard_label(release);
        Ok(match routes.iter().position(|r| r.label == label) {
            Some(i) => i,
            None => {
                routes.push(ShardRoute::new(label, [], false));
                routes.len() - 1
            }
        })
    };
    let mut pending: Vec<(usize, Vec<String>)> = Vec::new();
    for value in &run.shards {
        let Some((release, tags)) = value.split_once('=') else {
            return Err(CliError::invalid(format!(
                "invalid --shard {value:?}: expected RELEASE=TAG[,TAG...], e.g. --shard gitlab-runner-1=glrunner-1"
            )));
        };
        let tags: Vec<String> = tags.split(',').map(|t| t.trim().to_owned()).collect();
        if tags.iter().any(String::is_empty) {
            return Err(CliError::invalid(format!(
                "invalid --shard {value:?}: a tag is empty; name the runner's tags after '=', comma-separated \
                 (a shard that takes only untagged jobs is --shard-untagged RELEASE)"
            )));
        }
        pending.push((route(release, "--shard")?, tags));
    }
    let mut untagged = Vec::new();
    for release in &run.shards_untagged {
        untagged.push(route(release, "--shard-untagged")?);
    }
    for (i, tags) in pending {
        routes[i].tags.extend(tags);
    }
    for i in untagged {
        routes[i].run_untagged = true;
    }
    Ok(routes)
}

/// A DNS-1123 label: what Helm release names and the chart's fullname are.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// What the janitor reads from GitLab with `--backend aws --gitlab-url URL`: the job-status
/// cross-check, and with `--gitlab-project`/`--shard` the pending jobs per shard. `None` without
/// --gitlab-url, and on the sandbox (its demo fleet has its own job statuses). The token comes
/// from `GITLAB_TOKEN` only; a missing one is invalid input (exit 2) naming the variable, as are
/// bad --gitlab-project and --shard values. Sends nothing.
pub async fn gitlab_sources(
    global: &GlobalArgs,
    run: &RunArgs,
) -> Result<Option<GitLabSources>, CliError> {
    let mut projects = Vec::new();
    for value in &run.gitlab_projects {
        projects.push(ProjectRef::parse(value).map_err(|e| {
            CliError::invalid(format!(
                "invalid --gitlab-project {value:?}: {e}; use `group/project` or the numeric id"
            ))
        })?);
    }
    let routes = shard_routes(run)?;
    if global.backend != Backend::Aws || run.gitlab_url.is_none() {
        return Ok(None);
    }
    let target = super::gitlab::GitLabTarget {
        scope: "read_api",
        ..super::gitlab::GitLabTarget::new(run.gitlab_url.as_deref())
    };
    let Some(client) = super::gitlab::http_client(&target, false)? else {
        return Ok(None);
    };
    let gitlab: Arc<DynGitLabApi> = Arc::new(client);
    let pending_jobs = (!projects.is_empty()).then(|| {
        Arc::new(GitLabPendingJobs::new(gitlab.clone(), projects, routes))
            as Arc<dyn PendingJobsSource>
    });
    Ok(Some(GitLabSources {
        job_status: Arc::new(GitLabJobStatus::new(gitlab)),
        pending_jobs,
    }))
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
    match &command {
        Some(Command::Rbac {
            namespaces,
            service_account,
        }) => return print_rbac(namespaces, service_account),
        Some(Command::Run(args)) => return run_controller(global, args, interrupt).await,
        Some(Command::Deploy(args)) => return deploy(global, args, true).await,
        Some(Command::Undeploy(args)) => return deploy(global, args, false).await,
        Some(Command::Explain(args)) => return explain(global, args).await,
        None => {}
    }
    if run.watch {
        tracing::warn!(
            "--watch re-lists every --interval; `reap run` watches instead (deprecated)"
        );
    }
    let config = config(run, global)?;
    let interval = duration("--interval", &run.interval)?;
    let gitlab = gitlab_sources(global, run).await?;

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (api, jobs) = connect(global, &run.namespaces, &run.access, &clock, false).await?;
    let jobs: Option<Arc<DynJobStatusSource>> = match &gitlab {
        Some(sources) => Some(sources.job_status.clone()),
        None => jobs
            .filter(|_| run.gitlab_url.is_some())
            .map(|j| Arc::new(j) as Arc<DynJobStatusSource>),
    };
    let pending_jobs = gitlab.and_then(|sources| sources.pending_jobs);
    let metrics = match run.metrics_addr {
        Some(addr) => Some(start_metrics(addr, interrupt).await?),
        None => None,
    };

    let mut reaper = Reaper::new(api.clone(), config)
        .map_err(invalid)?
        .with_clock(clock.clone());
    if let Some(jobs) = jobs {
        reaper = reaper.with_job_status(jobs);
    }

    if !run.watch {
        let listed = match &metrics {
            Some(m) => {
                refresh_pending(m, pending_jobs.as_deref()).await;
                observe(m, api.as_ref(), &run.namespaces, clock.now()).await
            }
            None => Vec::new(),
        };
        let report = reaper
            .run_once()
            .await
            .map_err(|e| CliError::failure(e.to_string()))?;
        if let Some(m) = &metrics {
            m.observe_report(&report, &listed);
        }
        print_report(&report, global.output)?;
        return round_result(&report);
    }

    // With metrics, the job pods and their Events are listed every interval beside the rounds
    // (the gauges, and the shards of the pods a round reaps); each round counts its deletions.
    let listed = Arc::new(std::sync::Mutex::new(Vec::new()));
    if let Some(m) = &metrics {
        refresh_pending(m, pending_jobs.as_deref()).await;
        *listed.lock().unwrap_or_else(|e| e.into_inner()) =
            observe(m, api.as_ref(), &run.namespaces, clock.now()).await;
        let (m, api, clock, listed) = (m.clone(), api.clone(), clock.clone(), listed.clone());
        let pending_jobs = pending_jobs.clone();
        let namespaces = run.namespaces.clone();
        let token = interrupt.token();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = token.cancelled() => break,
                    () = tokio::time::sleep(interval) => {}
                }
                refresh_pending(&m, pending_jobs.as_deref()).await;
                let pods = observe(&m, api.as_ref(), &namespaces, clock.now()).await;
                *listed.lock().unwrap_or_else(|e| e.into_inner()) = pods;
            }
        });
    }
    let (rounds, outcome) = watch(
        &reaper,
        interval,
        run.rounds,
        interrupt.token().cancelled_owned(),
        |report| {
            if let Some(m) = &metrics {
                m.observe_report(report, &listed.lock().unwrap_or_else(|e| e.into_inner()));
            }
            print_report(report, global.output)
        },
    )
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

fn cluster_error(e: Error) -> CliError {
    match e {
        Error::InvalidInput { .. } => invalid(e),
        other => CliError::failure(other.to_string()),
    }
}

/// The pod API of `--in-cluster` or `--kubeconfig`/`--context` (`--cluster` is resolved by the
/// callers, which also need the EKS cluster's quota).
async fn kube_api(access: &ClusterAccessArgs) -> Result<KubePodApi, CliError> {
    let api = if access.in_cluster {
        // kube-rs's own in-cluster configuration: KUBERNETES_SERVICE_HOST/PORT and the
        // ServiceAccount token and CA under /var/run/secrets/kubernetes.io/serviceaccount.
        KubePodApi::in_cluster()
    } else {
        KubePodApi::from_kubeconfig(access.kubeconfig.as_deref(), access.context.as_deref()).await
    };
    api.map_err(cluster_error)
}

/// `reap run`: the controller until SIGINT/SIGTERM, then its summary.
pub async fn run_controller(
    global: &GlobalArgs,
    args: &ControllerArgs,
    interrupt: &Interrupt,
) -> Result<(), CliError> {
    use glrunner_janitor::controller::{Controller, ControllerConfig};
    use glrunner_janitor::lease::LeaseConfig;

    let run = &args.run;
    let config = config(run, global)?;
    if global.backend != Backend::Aws {
        return Err(CliError::invalid(
            "`reap run` watches a real cluster: pass --backend aws with --kubeconfig/--context, \
             --in-cluster or --cluster (the sandbox has no apiserver to watch; try `reap --once`)",
        ));
    }
    if let Some(quota) = args.fargate_vcpu_quota
        && !(quota.is_finite() && quota > 0.0)
    {
        return Err(CliError::invalid(format!(
            "--fargate-vcpu-quota: {quota} is not a vCPU count (fix: the applied value of quota \
             L-3032A538, e.g. 256)"
        )));
    }
    let identity = args
        .identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("glrunner-janitor-{}", std::process::id()));
    let lease = match &args.lease {
        Some(name) => {
            let ns = args
                .lease_namespace
                .clone()
                .or_else(|| run.namespaces.first().cloned())
                .unwrap_or_default();
            model::validate_namespace(&ns).map_err(|e| flag_error("--lease-namespace", e))?;
            Some(LeaseConfig::new(ns, name, &identity))
        }
        None => None,
    };
    let (client, quota) = match run.access.cluster.as_deref() {
        Some(name) => {
            let region = super::provision::resolve_region(global)?;
            let cluster = glrunner_flow::aws::EksCluster::find(&region, name).await?;
            let quota = match args.fargate_vcpu_quota {
                Some(q) => Some(q),
                None => cluster.fargate_vcpu_quota().await,
            };
            (cluster.pods().kube_client(), quota)
        }
        None => (
            kube_api(&run.access).await?.kube_client(),
            args.fargate_vcpu_quota,
        ),
    };
    let gitlab = gitlab_sources(global, run).await?;
    let mut observers: Vec<Arc<dyn glrunner_janitor::controller::ControllerObserver>> = Vec::new();
    if let Some(addr) = run.metrics_addr {
        let metrics = start_metrics(addr, interrupt).await?;
        if let Some(quota) = quota {
            metrics.set_vcpu_quota(quota);
        }
        // GitLab's pending jobs are not watched: read every --interval beside the controller.
        if let Some(source) = gitlab.as_ref().and_then(|g| g.pending_jobs.clone()) {
            let interval = duration("--interval", &run.interval)?;
            let (m, token) = (metrics.clone(), interrupt.token());
            tokio::spawn(async move {
                loop {
                    refresh_pending(&m, Some(source.as_ref())).await;
                    tokio::select! {
                        () = token.cancelled() => break,
                        () = tokio::time::sleep(interval) => {}
                    }
                }
            });
        }
        observers.push(metrics);
    }
    let controller = Controller::new(
        client,
        config,
        ControllerConfig::new(identity)
            .with_events(!args.no_events)
            .with_lease(lease)
            .with_secrets(args.reap_secrets)
            .with_reap_unrecoverable(args.reap_unrecoverable),
    )
    .map_err(invalid)?
    .with_observers(observers);
    let controller = match gitlab {
        Some(sources) => controller.with_job_status(sources.job_status),
        None => controller,
    };
    let summary = controller
        .run(interrupt.token().cancelled_owned())
        .await
        .map_err(|e| CliError::failure(e.to_string()))?;
    match global.output {
        OutputFormat::Human => eprintln!(
            "janitor controller stopped: {} round(s), {} pod(s) deleted ({} unrecoverable), {} class Event(s), {} Secret(s) deleted, {} error(s), {} watch error(s), {} list(s)",
            summary.rounds,
            summary.deleted,
            summary.unrecoverable_reaped,
            summary.class_events_recorded,
            summary.secrets_deleted,
            summary.errors,
            summary.watch_errors,
            summary.lists
        ),
        OutputFormat::Json => cli::print_json(&summary)?,
    }
    if summary.errors > 0 {
        return Err(CliError::failure(format!(
            "{} delete(s) or lookup(s) failed; see the log",
            summary.errors
        )));
    }
    Ok(())
}

/// `reap deploy` (`apply`) / `reap undeploy`: prints the objects, then applies or removes
/// exactly those. `--dry-run` prints only.
pub async fn deploy(global: &GlobalArgs, args: &DeployArgs, apply: bool) -> Result<(), CliError> {
    use glrunner_janitor::deploy::{DeploySpec, deploy_objects};

    for ns in &args.namespaces {
        model::validate_namespace(ns).map_err(|e| flag_error("--namespace", e))?;
    }
    let home = args
        .home
        .clone()
        .or_else(|| args.namespaces.first().cloned())
        .unwrap_or_default();
    model::validate_namespace(&home).map_err(|e| flag_error("--home", e))?;
    let image = match (&args.image, apply) {
        (Some(image), _) => image.clone(),
        (None, false) => "unused".to_owned(),
        (None, true) => {
            return Err(CliError::invalid(
                "reap deploy needs --image IMAGE: build the repository's Containerfile and push it                  to ECR (see README, \"The janitor in the cluster\")",
            ));
        }
    };
    let mut spec = DeploySpec::new(image, home, args.namespaces.clone());
    spec.replicas = args.replicas;
    spec.reap_secrets = args.reap_secrets;
    let objects = deploy_objects(&spec).map_err(invalid)?;
    if apply {
        match global.output {
            OutputFormat::Human => print!("{}", objects.manifest().map_err(invalid)?),
            OutputFormat::Json => cli::print_json(&objects.ids())?,
        }
    }
    if global.dry_run {
        return Ok(());
    }
    if global.backend != Backend::Aws {
        return Err(CliError::invalid(
            "reap deploy/undeploy change a real cluster: pass --backend aws (or --dry-run to print only)",
        ));
    }
    let api = KubePodApi::from_kubeconfig(args.kubeconfig.as_deref(), args.context.as_deref())
        .await
        .map_err(cluster_error)?;
    let client = api.kube_client();
    let done = if apply {
        glrunner_janitor::deploy::apply(&client, &objects).await
    } else {
        glrunner_janitor::deploy::remove(&client, &objects).await
    }
    .map_err(|e| CliError::failure(e.to_string()))?;
    let verb = if apply { "applied" } else { "deleted" };
    match global.output {
        OutputFormat::Human => {
            for o in &done {
                eprintln!("{verb} {} {}/{}", o.kind, o.namespace, o.name);
            }
        }
        OutputFormat::Json if !apply => cli::print_json(&done)?,
        OutputFormat::Json => {}
    }
    Ok(())
}

/// The pod API of `--backend`: the sandbox's demo fleet (with Pending pods whose causes
/// `explain` names when `explained`), or the cluster.
async fn connect(
    global: &GlobalArgs,
    namespaces: &[String],
    access: &ClusterAccessArgs,
    clock: &Arc<dyn Clock>,
    explained: bool,
) -> Result<(Arc<dyn PodApi>, Option<InMemoryJobStatus>), CliError> {
    for ns in namespaces {
        model::validate_namespace(ns).map_err(|e| flag_error("--namespace", e))?;
    }
    Ok(match global.backend {
        Backend::Sandbox => {
            let pods = InMemoryPods::new().with_clock(clock.clone());
            let jobs = InMemoryJobStatus::new();
            for ns in namespaces {
                seed_demo(&pods, &jobs, ns, clock.now())
                    .map_err(|e| CliError::failure(e.to_string()))?;
                if explained {
                    seed_pending_demo(&pods, ns, clock.now())
                        .map_err(|e| CliError::failure(e.to_string()))?;
                }
            }
            tracing::info!(
                pods = pods.pods().len(),
                "sandbox: seeded a demo fleet (runner managers, healthy and hung job pods)"
            );
            (Arc::new(pods), Some(jobs))
        }
        Backend::Aws => match access.cluster.as_deref() {
            Some(name) => {
                let region = super::provision::resolve_region(global)?;
                let cluster = glrunner_flow::aws::EksCluster::find(&region, name).await?;
                (Arc::new(cluster.pods()), None)
            }
            None => (Arc::new(kube_api(access).await?), None),
        },
    })
}

/// Binds `--metrics-addr` (bad or busy address: invalid input, exit 2) and serves `/metrics`
/// until the command is interrupted.
async fn start_metrics(
    addr: std::net::SocketAddr,
    interrupt: &Interrupt,
) -> Result<Arc<JanitorMetrics>, CliError> {
    let metrics = Arc::new(JanitorMetrics::new());
    let server = glrunner_janitor::metrics::bind(addr, metrics.clone())
        .await
        .map_err(|e| flag_error("--metrics-addr", e))?;
    let shown = server
        .local_addr()
        .map_or_else(|_| addr.to_string(), |a| a.to_string());
    tracing::info!(addr = %shown, "serving OpenMetrics on /metrics");
    let token = interrupt.token();
    tokio::spawn(async move {
        if let Err(e) = server.serve(token).await {
            tracing::warn!(error = %e, "metrics server stopped");
        }
    });
    Ok(metrics)
}

/// Lists the job pods and pod Events of `namespaces` into `metrics`; returns the pods (a failed
/// list is logged and leaves the gauges as they were).
async fn observe(
    metrics: &JanitorMetrics,
    api: &dyn PodApi,
    namespaces: &[String],
    now: glrunner_janitor::jiff::Timestamp,
) -> Vec<glrunner_janitor::PodInfo> {
    let mut pods = Vec::new();
    let mut events = Vec::new();
    for ns in namespaces {
        let listed = api
            .list_pods(&glrunner_janitor::ListQuery::job_pods(ns.clone()))
            .await;
        let listed_events = api.list_pod_events(ns).await;
        match (listed, listed_events) {
            (Ok(p), Ok(e)) => {
                pods.extend(p);
                events.extend(e);
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(namespace = %ns, error = %e, "metrics: cannot list job pods or Events");
                return pods;
            }
        }
    }
    metrics.observe(&pods, &events, now);
    pods
}

/// Refreshes GitLab's pending jobs per shard in `metrics` (a failure is logged; the last
/// values stay).
async fn refresh_pending(metrics: &JanitorMetrics, source: Option<&dyn PendingJobsSource>) {
    if let Some(source) = source
        && let Err(e) = metrics.refresh_pending_jobs(source).await
    {
        tracing::warn!(error = %e, "metrics: cannot read GitLab's pending jobs");
    }
}

/// `reap explain`: every Pending job pod with its class, message, wait, job and fix.
pub async fn explain(global: &GlobalArgs, args: &ExplainArgs) -> Result<(), CliError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (api, _) = connect(global, &args.namespaces, &args.access, &clock, true).await?;
    let pending = explain_pending(api.as_ref(), &args.namespaces, clock.now())
        .await
        .map_err(|e| CliError::failure(e.to_string()))?;
    print_explained(&pending, global.output)
}

/// Prints `reap explain`'s listing: one block per pod, or JSON `{"pending": [...]}`.
pub fn print_explained(pending: &[PendingPod], output: OutputFormat) -> Result<(), CliError> {
    match output {
        OutputFormat::Json => cli::print_json(&serde_json::json!({ "pending": pending })),
        OutputFormat::Human => {
            if pending.is_empty() {
                println!("no Pending job pods");
            }
            for pod in pending {
                println!("{pod}");
            }
            Ok(())
        }
    }
}

/// Runs `--watch` rounds every `interval` until `max_rounds` (or forever) or `shutdown` (checked
/// between rounds), handing each report to `emit`. A round with failed deletes, or a round that
/// failed outright (API server unreachable), makes the outcome a failure (exit 1) and the watch
/// goes on. Returns how many rounds ran.
pub async fn watch(
    reaper: &Reaper,
    interval: Duration,
    max_rounds: Option<u64>,
    shutdown: impl std::future::Future<Output = ()>,
    mut emit: impl FnMut(&Report) -> Result<(), CliError>,
) -> (u64, Result<(), CliError>) {
    let mut rounds = 0u64;
    let mut outcome = Ok(());
    reaper
        .watch(interval, shutdown, |result| {
            rounds += 1;
            match result {
                Ok(report) => {
                    if let Err(e) = emit(&report).and_then(|()| round_result(&report)) {
                        tracing::warn!("{}", e.message);
                        outcome = Err(e);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "round failed; retrying next interval");
                    outcome = Err(CliError::failure(e.to_string()));
                }
            }
            if max_rounds.is_some_and(|max| rounds >= max) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .await;
    (rounds, outcome)
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use glrunner_janitor::Action;
    use glrunner_janitor::clock::ManualClock;
    use glrunner_janitor::memory::{InMemoryJobStatus, InMemoryPods, seed_demo};

    use super::*;
    use crate::cli::EXIT_INVALID_INPUT;

    /// The `reap` example's command line.
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(subcommand)]
        command: Option<Command>,
        #[command(flatten)]
        run: RunArgs,
    }

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("reap").chain(args.iter().copied())).unwrap()
    }

    fn invalid_message(args: &[&str]) -> String {
        let cli = parse(args);
        let err = config(&cli.run, &cli.global)
            .and_then(|_| duration("--interval", &cli.run.interval))
            .unwrap_err();
        assert_eq!(err.code, EXIT_INVALID_INPUT, "{args:?}: {}", err.message);
        err.message
    }

    #[test]
    fn bad_flags_are_invalid_input_naming_the_flag() {
        for (args, flag) in [
            (&["--namespace", "Bad_NS"][..], "--namespace"),
            (&["--grace", "soon"], "--grace"),
            (&["--pending-timeout", "soon"], "--pending-timeout"),
            (&["--default-job-timeout", "0"], "--default-job-timeout"),
            (&["--concurrency", "0"], "--concurrency"),
            (&["--watch", "--interval", "0s"], "--interval"),
            (&["--vcpu-hour-usd=-1"], "--vcpu-hour-usd"),
        ] {
            let message = invalid_message(args);
            assert!(message.contains(flag), "{args:?}: {message}");
        }
    }

    #[test]
    fn shard_flags_become_routes_labelled_like_the_janitors_shards() {
        let cli = parse(&[
            "--backend",
            "aws",
            "--gitlab-url",
            "https://gitlab.example.com",
            "--metrics-addr",
            "127.0.0.1:0",
            "--gitlab-project",
            "group/ci",
            "--shard",
            "ci-1=a",
            "--shard",
            "ci-1-gitlab-runner=b, c",
            "--shard",
            "gitlab-runner-2=d",
            "--shard-untagged",
            "ci-1",
            "--shard-untagged",
            "only-untagged",
        ]);
        let routes = shard_routes(&cli.run).unwrap();
        let tags = |t: &[&str]| t.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            routes,
            vec![
                ShardRoute::new("ci-1-gitlab-runner", tags(&["a", "b", "c"]), true),
                ShardRoute::new("gitlab-runner-2", tags(&["d"]), false),
                ShardRoute::new("only-untagged-gitlab-runner", tags(&[]), true),
            ]
        );
        for (value, needle) in [
            ("ci-1", "expected RELEASE=TAG"),
            ("=a", "not a Helm release name"),
            ("CI=a", "not a Helm release name"),
            ("ci-1=", "a tag is empty"),
        ] {
            let cli = parse(&[
                "--gitlab-url",
                "https://gitlab.example.com",
                "--metrics-addr",
                "127.0.0.1:0",
                "--gitlab-project",
                "group/ci",
                "--shard",
                value,
            ]);
            let err = shard_routes(&cli.run).unwrap_err();
            assert_eq!(err.code, EXIT_INVALID_INPUT);
            assert!(
                err.message.contains("--shard") && err.message.contains(needle),
                "{value}: {}",
                err.message
            );
        }
    }

    #[tokio::test]
    async fn no_gitlab_sources_without_a_gitlab_url_or_on_the_sandbox() {
        let cli = parse(&["--backend", "aws", "--kubeconfig", "/tmp/kc"]);
        assert!(
            gitlab_sources(&cli.global, &cli.run)
                .await
                .unwrap()
                .is_none()
        );
        let cli = parse(&["--gitlab-url", "https://gitlab.example.com"]);
        assert!(
            gitlab_sources(&cli.global, &cli.run)
                .await
                .unwrap()
                .is_none()
        );
        let cli = parse(&[
            "--backend",
            "aws",
            "--gitlab-url",
            "https://gitlab.example.com",
            "--metrics-addr",
            "127.0.0.1:0",
            "--gitlab-project",
            "not a path!",
            "--shard",
            "ci-1=a",
        ]);
        let err = gitlab_sources(&cli.global, &cli.run).await.unwrap_err();
        assert!(err.message.contains("--gitlab-project"), "{}", err.message);
    }

    #[test]
    fn flags_reach_the_reaper_configuration() {
        let cli = parse(&[
            "--backend",
            "aws",
            "--kubeconfig",
            "/tmp/kc",
            "-n",
            "a",
            "-n",
            "b",
            "--grace",
            "90s",
            "--pending-timeout",
            "10m",
            "--default-job-timeout",
            "2h",
            "--concurrency",
            "3",
            "--check-manager",
            "--dry-run",
        ]);
        let c = config(&cli.run, &cli.global).unwrap();
        assert_eq!(c.policy.namespaces.iter().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(c.policy.grace, Duration::from_secs(90));
        assert_eq!(c.policy.pending_timeout, Duration::from_secs(600));
        assert_eq!(
            c.policy.default_job_timeout,
            Some(Duration::from_secs(7200))
        );
        assert_eq!(c.concurrency.get(), 3);
        assert!(c.check_manager && c.dry_run);
        assert_eq!(c.pricing.region, "us-east-1");
    }

    #[test]
    fn run_deploy_and_max_deletes_parse_and_zero_is_refused() {
        let cli = parse(&[
            "--backend",
            "aws",
            "run",
            "-n",
            "jobs",
            "--lease",
            "glrunner-janitor",
            "--max-deletes",
            "50",
            "--reap-secrets",
        ]);
        let Some(Command::Run(args)) = &cli.command else {
            panic!("{cli:?}");
        };
        assert_eq!(args.lease.as_deref(), Some("glrunner-janitor"));
        assert!(args.reap_secrets && !args.no_events);
        let c = config(&args.run, &cli.global).unwrap();
        assert_eq!(c.max_deletes.map(NonZeroUsize::get), Some(50));
        assert_eq!(c.policy.namespaces.iter().collect::<Vec<_>>(), ["jobs"]);
        let message = invalid_message(&["--max-deletes", "0"]);
        assert!(message.contains("--max-deletes"), "{message}");
        let cli = parse(&["deploy", "--image", "img", "-n", "a", "--replicas", "2"]);
        let Some(Command::Deploy(d)) = &cli.command else {
            panic!("{cli:?}");
        };
        assert_eq!((d.image.as_deref(), d.replicas), (Some("img"), 2));
    }

    #[tokio::test]
    async fn deploy_without_an_image_or_on_the_sandbox_is_invalid_input() {
        let cli = parse(&["deploy", "-n", "gitlab-runner"]);
        let Some(Command::Deploy(d)) = &cli.command else {
            panic!("{cli:?}");
        };
        let err = deploy(&cli.global, d, true).await.unwrap_err();
        assert_eq!(err.code, EXIT_INVALID_INPUT);
        assert!(err.message.contains("--image"), "{}", err.message);
        let cli = parse(&["run", "-n", "gitlab-runner"]);
        let Some(Command::Run(args)) = &cli.command else {
            panic!("{cli:?}");
        };
        let err = run_controller(&cli.global, args, &Interrupt::detached())
            .await
            .unwrap_err();
        assert_eq!(err.code, EXIT_INVALID_INPUT);
        assert!(err.message.contains("--backend aws"), "{}", err.message);
    }

    fn demo_reaper(dry_run: bool) -> (Reaper, InMemoryPods) {
        let now: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let clock = Arc::new(ManualClock::new(now));
        let pods = InMemoryPods::new().with_clock(clock.clone());
        seed_demo(&pods, &InMemoryJobStatus::new(), "gitlab-runner", now).unwrap();
        let config = ReaperConfig::new(glrunner_janitor::Policy::new(["gitlab-runner"]))
            .with_dry_run(dry_run);
        let reaper = Reaper::new(Arc::new(pods.clone()), config)
            .unwrap()
            .with_clock(clock);
        (reaper, pods)
    }

    #[tokio::test]
    async fn explain_names_each_demo_pending_pod_with_its_job_and_fix() {
        let cli = parse(&["explain", "-n", "ci"]);
        let Some(Command::Explain(args)) = &cli.command else {
            panic!("explain parses: {:?}", cli.command);
        };
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let (api, _) = connect(&cli.global, &args.namespaces, &args.access, &clock, true)
            .await
            .unwrap();
        let pending = explain_pending(api.as_ref(), &args.namespaces, clock.now())
            .await
            .unwrap();
        let class_of = |job: u64| {
            pending
                .iter()
                .find(|p| p.job_id == Some(job))
                .map(|p| p.class)
        };
        use glrunner_janitor::PendingClass;
        assert_eq!(class_of(60), Some(PendingClass::FargatePrivileged));
        assert_eq!(class_of(61), Some(PendingClass::ImagePullRateLimited));
        assert_eq!(class_of(62), Some(PendingClass::MissingSecret));
        // The demo's plain Pending pods (no Events yet) are starting; running pods are not listed.
        assert_eq!(class_of(7), Some(PendingClass::Starting));
        assert_eq!(class_of(1), None);
        let privileged = pending.iter().find(|p| p.job_id == Some(60)).unwrap();
        assert!(privileged.unrecoverable && privileged.fix.contains("privileged"));
        assert!(
            privileged.to_string().contains("fargate-scheduler"),
            "{privileged}"
        );
        let json = serde_json::to_value(serde_json::json!({ "pending": pending })).unwrap();
        assert!(json["pending"][0]["class"].is_string(), "{json}");
    }

    #[test]
    fn a_metrics_address_that_is_not_host_port_is_refused_by_the_parser() {
        let err = Cli::try_parse_from(["reap", "--metrics-addr", "localhost"]).unwrap_err();
        assert!(err.to_string().contains("--metrics-addr"), "{err}");
        let cli = parse(&["--metrics-addr", "127.0.0.1:0", "--watch"]);
        assert_eq!(cli.run.metrics_addr, Some("127.0.0.1:0".parse().unwrap()));
    }

    #[tokio::test(start_paused = true)]
    async fn watch_runs_the_asked_rounds_and_emits_each_report() {
        let (reaper, pods) = demo_reaper(false);
        let mut reports = Vec::new();
        let (rounds, outcome) = watch(
            &reaper,
            Duration::from_secs(60),
            Some(3),
            std::future::pending(),
            |r| {
                reports.push(r.clone());
                Ok(())
            },
        )
        .await;
        outcome.unwrap();
        assert_eq!(rounds, 3);
        let deleted: Vec<usize> = reports.iter().map(Report::deleted).collect();
        // The first round reaps the demo fleet's hung pods; graceful deletes leave bound ones
        // Terminating within grace, so the next rounds have nothing new to do.
        assert!(deleted[0] > 0, "{}", reports[0]);
        assert_eq!(&deleted[1..], [0, 0]);
        assert_eq!(pods.calls().lists, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_round_with_failed_deletes_fails_the_watch_but_the_watch_goes_on() {
        let (reaper, pods) = demo_reaper(false);
        for p in pods.pods() {
            pods.fail_deletes_of(
                &p.name,
                Some(glrunner_janitor::memory::Fault::PermissionDenied),
            );
        }
        let mut emitted = 0;
        let (rounds, outcome) = watch(
            &reaper,
            Duration::from_secs(60),
            Some(2),
            std::future::pending(),
            |r| {
                emitted += 1;
                assert!(r.reaped.iter().all(|p| p.action == Action::Failed), "{r}");
                Ok(())
            },
        )
        .await;
        assert_eq!((rounds, emitted), (2, 2));
        let err = outcome.unwrap_err();
        assert_eq!(err.code, crate::cli::EXIT_FAILURE);
        assert!(
            err.message.contains("could not be deleted"),
            "{}",
            err.message
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreachable_cluster_fails_each_round_and_is_reported() {
        let (reaper, pods) = demo_reaper(true);
        pods.fail_lists(Some(glrunner_janitor::memory::Fault::Unavailable));
        let mut emitted = 0;
        let (rounds, outcome) = watch(
            &reaper,
            Duration::from_secs(1),
            Some(2),
            std::future::pending(),
            |_| {
                emitted += 1;
                Ok(())
            },
        )
        .await;
        assert_eq!((rounds, emitted), (2, 0));
        assert!(outcome.unwrap_err().message.contains("list pods"));
    }
}
