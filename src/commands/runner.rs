//! The `runner` example's command: GitLab Runner Helm releases (values, fleet plans,
//! install/upgrade/uninstall, status, list).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use glrunner_janitor::PodApi;
use glrunner_janitor::k8s::KubePodApi;
use glrunner_janitor::memory::InMemoryPods;
use glrunner_runner_chart::helm::HELM_ENV;
use glrunner_runner_chart::memory::Timing;
use glrunner_runner_chart::{
    ChartSource, ChartVersion, DEFAULT_CHART_VERSION, Error, FleetPlan, FleetRequest, GracefulStop,
    HelmCli, InMemoryReleases, InMemoryTokenSecrets, KubeTokenSecrets, ReleaseId, ReleaseManager,
    ReleaseSpec, ReleaseStatus, Removal, RunnerToken, RunnerValues, TokenSecrets, deploy_runner,
    remove_runner, upgrade_runner,
};
use serde::Serialize;

use crate::cli::{self, Backend, CliError, GlobalArgs, OutputFormat};
use glrunner_flow::drain::{
    DrainError, DrainOutcome, DrainPolicy, DrainProgress, DrainReport, drain_before_upgrade,
};

/// Environment variable holding the runner authentication token for `install` / `upgrade`.
pub const TOKEN_ENV: &str = "GLRUNNER_RUNNER_TOKEN";

/// The `runner` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the chart values YAML for the given flags (never contains a token).
    Values(ReleaseArgs),
    /// Split N concurrent jobs into runner releases, each with its own tag and `concurrent`.
    PlanFleet(PlanArgs),
    /// Store the token Secret, then install or upgrade the release (`helm upgrade --install --wait`).
    ///
    /// An existing release is drained first, as with `upgrade`.
    Install(DeployArgs),
    /// Drain the shard, store the token Secret, then upgrade an existing release (`helm upgrade --wait`).
    ///
    /// Any values change (a token rotation too) replaces the runner manager pod. The official
    /// runner image stops with SIGQUIT (no new jobs, running ones finish), and glrunner's values
    /// bound that: a preStop hook sends SIGQUIT, waits up to --drain-timeout, then SIGTERM so the
    /// runner aborts what is left and deletes its job pods within shutdown_timeout 30s
    /// (terminationGracePeriodSeconds = drain + 30s + 15s). A deployed release whose manager
    /// image glrunner does not know to stop with SIGQUIT (a custom image) is drained first: the
    /// upgrade waits, up to --drain-timeout, until the shard runs no job pod (its job namespace's
    /// pods labelled manager.runner.gitlab.com/id-short with the runner's short token). --force
    /// upgrades at once.
    Upgrade(DeployArgs),
    /// Uninstall the release and delete its token Secret (idempotent).
    Uninstall(RemoveArgs),
    /// Show one release.
    Status(StatusArgs),
    /// List gitlab-runner releases.
    List(ListArgs),
}

/// Which release a command acts on.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Helm release name.
    #[arg(long, default_value = "gitlab-runner")]
    pub release: String,
    /// Release namespace (also where the token Secret lives).
    #[arg(long, default_value = "gitlab-runner")]
    pub namespace: String,
}

/// Flags that describe a release: chart values, token Secret, chart source, timeout.
#[derive(Debug, Clone, Args)]
pub struct ReleaseArgs {
    /// Release name and namespace.
    #[command(flatten)]
    pub target: Target,
    /// GitLab URL (default: $CI_SERVER_URL).
    #[arg(long, env = "CI_SERVER_URL", default_value = "https://gitlab.com/")]
    pub gitlab_url: String,
    /// Allow plain http:// to a non-loopback GitLab.
    #[arg(long)]
    pub allow_insecure_url: bool,
    /// Maximum concurrent jobs of this runner; at least the jobs routed to it.
    #[arg(long, default_value_t = 10, allow_negative_numbers = true)]
    pub concurrent: i64,
    /// Jobs routed to this runner at once (checks --concurrent and --poll-timeout against it).
    #[arg(long)]
    pub jobs: Option<u32>,
    /// How long the runner waits for a job pod to start, e.g. 300s or 5m.
    #[arg(long, default_value = "300s")]
    pub poll_timeout: String,
    /// Expected Fargate job pod start, e.g. 90s (checks --poll-timeout).
    #[arg(long, default_value = "90s")]
    pub expected_pod_start: String,
    /// Build container CPU (requests = limits), e.g. 500m or 1.
    #[arg(long, default_value = "250m")]
    pub cpu: String,
    /// Build container memory (requests = limits), e.g. 512Mi or 2Gi.
    #[arg(long, default_value = "512Mi")]
    pub memory: String,
    /// Build container ephemeral storage (requests = limits), e.g. 30Gi; at most 175Gi on
    /// Fargate (default: Fargate's included 20 GiB).
    #[arg(long)]
    pub ephemeral_storage: Option<String>,
    /// Highest CPU a job may ask with KUBERNETES_CPU_REQUEST/_LIMIT (cpu_request/limit_overwrite_max_allowed); unset: ignored.
    #[arg(long)]
    pub cpu_overwrite_max: Option<String>,
    /// Highest memory a job may ask with KUBERNETES_MEMORY_REQUEST/_LIMIT; unset: ignored.
    #[arg(long)]
    pub memory_overwrite_max: Option<String>,
    /// Highest ephemeral storage a job may ask with KUBERNETES_EPHEMERAL_STORAGE_REQUEST/_LIMIT; unset: ignored.
    #[arg(long)]
    pub ephemeral_storage_overwrite_max: Option<String>,
    /// Default job image.
    #[arg(long)]
    pub image: Option<String>,
    /// Namespace for job pods (default: the release namespace). Created when missing; the
    /// executor's Role goes there. A Fargate profile must select it.
    #[arg(long)]
    pub job_namespace: Option<String>,
    /// Job requests in flight to GitLab (default: one per 10 of --concurrent, at most 50, with
    /// the runner's adaptive request concurrency on).
    #[arg(long)]
    pub request_concurrency: Option<u32>,
    /// The runner's GitLab tag(s), recorded on the release (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Secret holding the token (default: <release>-token).
    #[arg(long)]
    pub secret_name: Option<String>,
    /// Chart version from the gitlab repository (exact, e.g. 0.86.0).
    #[arg(long, default_value = DEFAULT_CHART_VERSION)]
    pub chart_version: String,
    /// Use this chart instead of the gitlab repository: a directory, a .tgz, or oci://HOST/PATH.
    #[arg(long)]
    pub chart: Option<String>,
    /// Bound on the whole install/upgrade, e.g. 10m.
    #[arg(long, default_value = "10m")]
    pub timeout: String,
    /// How long running jobs may take to finish when the manager pod is replaced (preStop
    /// SIGQUIT; the pod's termination grace period is this + 45s), and the longest wait of an
    /// upgrade for the shard's running jobs, e.g. 1h. Use at least your longest job's timeout.
    #[arg(long, default_value = "1h")]
    pub drain_timeout: String,
}

/// How to reach helm and the cluster (`--backend aws`).
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The helm binary.
    #[arg(long = "helm", env = HELM_ENV, default_value = "helm")]
    pub helm: PathBuf,
    /// Kubeconfig passed to helm and kube-rs.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context.
    #[arg(long)]
    pub context: Option<String>,
    /// An EKS cluster found through the EKS API of --region: its endpoint, CA and Fargate
    /// profiles are read there, and helm and kube-rs authenticate with glrunner's own EKS tokens
    /// (no kubeconfig, no aws CLI). The release and job namespaces must be Fargate-selected.
    #[arg(long, conflicts_with_all = ["kubeconfig", "context"])]
    pub cluster: Option<String>,
}

/// Flags of `install` and `upgrade`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The release to deploy.
    #[command(flatten)]
    pub release: ReleaseArgs,
    /// Upgrade at once without draining the shard first (jobs of a manager without graceful
    /// stop are aborted).
    #[arg(long)]
    pub force: bool,
    /// Wait for the shard's running jobs before upgrading even when the deployed manager stops
    /// gracefully by itself.
    #[arg(long, conflicts_with = "force")]
    pub wait_for_idle: bool,
    /// How to reach helm and the cluster.
    #[command(flatten)]
    pub connection: Connection,
}

/// Flags of `uninstall`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// Release name and namespace.
    #[command(flatten)]
    pub target: Target,
    /// Secret holding the token (default: <release>-token).
    #[arg(long)]
    pub secret_name: Option<String>,
    /// Bound on the uninstall, e.g. 5m.
    #[arg(long, default_value = "5m")]
    pub timeout: String,
    /// How to reach helm and the cluster.
    #[command(flatten)]
    pub connection: Connection,
}

/// Flags of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Release name and namespace.
    #[command(flatten)]
    pub target: Target,
    /// How to reach helm and the cluster.
    #[command(flatten)]
    pub connection: Connection,
}

/// Flags of `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this namespace (default: all namespaces).
    #[arg(long)]
    pub namespace: Option<String>,
    /// How to reach helm and the cluster.
    #[command(flatten)]
    pub connection: Connection,
}

/// Flags of `plan-fleet`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Jobs that should run at the same time.
    #[arg(long, allow_negative_numbers = true)]
    pub jobs: i64,
    /// At most this many jobs per release.
    #[arg(long, default_value_t = 200, allow_negative_numbers = true)]
    pub max_per_release: i64,
    /// Release names are <prefix>-1..K.
    #[arg(long, default_value = "gitlab-runner")]
    pub release_prefix: String,
    /// Runner tags are <prefix>-1..K.
    #[arg(long, default_value = "glrunner")]
    pub tag_prefix: String,
    /// Expected Fargate job pod start, e.g. 90s.
    #[arg(long, default_value = "90s")]
    pub expected_pod_start: String,
    /// Job image (warns about Docker Hub pull limits).
    #[arg(long)]
    pub image: Option<String>,
    /// Build container CPU, to size job pods for the quota check.
    #[arg(long, default_value = "250m")]
    pub cpu: String,
    /// Build container memory, to size job pods for the quota check.
    #[arg(long, default_value = "512Mi")]
    pub memory: String,
    /// The account's Fargate vCPU quota (warns when the fleet needs more).
    #[arg(long)]
    pub fargate_vcpu_quota: Option<u32>,
}

/// The command-line flag (or variable) a validation field comes from.
pub fn flag_for(field: &str) -> String {
    let flag = match field {
        "gitlab_url" => "--gitlab-url",
        "concurrent" => "--concurrent",
        "poll_timeout" => "--poll-timeout",
        "expected_pod_start" => "--expected-pod-start",
        "release" => "--release",
        "namespace" => "--namespace",
        "executor.namespace" => "--job-namespace",
        "executor.image" => "--image",
        "executor.build.cpu" => "--cpu",
        "executor.build.memory" => "--memory",
        "executor.ephemeral_storage"
        | "executor.overwrite_max.cpu"
        | "executor.overwrite_max.memory"
        | "executor.overwrite_max.ephemeral_storage" => glrunner_flow::job_disk::flag_for(field),
        "runner_tags" => "--tag",
        "runners.secret" => "--secret-name",
        "request_concurrency" => "--request-concurrency",
        "chart" => "--chart",
        "chart_version" => "--chart-version",
        "timeout" => "--timeout",
        "graceful_stop.drain_timeout" => "--drain-timeout",
        "jobs" => "--jobs",
        "max_per_release" => "--max-per-release",
        "release_prefix" => "--release-prefix",
        "tag_prefix" => "--tag-prefix",
        "kubeconfig" => "--kubeconfig",
        "context" => "--context",
        "helm" => "--helm",
        "runner_token" => TOKEN_ENV,
        other => return other.to_string(),
    };
    flag.to_string()
}

/// Library errors as the CLI reports them: invalid input names the flag (exit 2), the rest exit 1.
pub fn cli_error(e: Error) -> CliError {
    match &e {
        Error::InvalidInput { issues } => CliError::invalid(
            issues
                .iter()
                .map(|i| format!("{}: {} (fix: {})", flag_for(&i.field), i.problem, i.fix))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        _ => CliError::failure(e.to_string()),
    }
}

/// Parses a duration flag with the examples' one grammar (`90s`, `5m`, `1h30m`; see
/// [`crate::cli::duration`]); zero is refused.
pub fn duration(flag: &str, raw: &str) -> Result<Duration, CliError> {
    cli::duration::parse(flag, raw, cli::duration::Zero::Refused)
}

/// The chart to install from `--chart` / `--chart-version`.
pub fn chart_source(args: &ReleaseArgs) -> Result<ChartSource, CliError> {
    let version = ChartVersion::parse("chart_version", &args.chart_version)
        .map_err(|i| cli_error(Error::InvalidInput { issues: vec![i] }))?;
    Ok(match &args.chart {
        None => ChartSource::Repo { version },
        Some(r) if r.starts_with("oci://") => ChartSource::Oci {
            reference: r.clone(),
            version,
        },
        Some(path) => ChartSource::Path {
            path: PathBuf::from(path),
        },
    })
}

/// Builds and validates the release spec from the flags; nothing runs before this succeeds.
pub fn spec(args: &ReleaseArgs) -> Result<ReleaseSpec, CliError> {
    let concurrent = u32::try_from(args.concurrent).map_err(|_| {
        CliError::invalid(format!(
            "--concurrent: {} is not a job count (fix: pass --concurrent 1 or more)",
            args.concurrent
        ))
    })?;
    let mut values = RunnerValues::new(&args.gitlab_url)
        .allow_insecure_url(args.allow_insecure_url)
        .with_concurrent(concurrent)
        .with_poll_timeout(duration("--poll-timeout", &args.poll_timeout)?)
        .with_build_resources(&args.cpu, &args.memory)
        .with_runner_tags(args.tags.clone())
        .with_secret_name(
            args.secret_name
                .clone()
                .unwrap_or_else(|| glrunner_flow::Ownership::secret_name(&args.target.release)),
        );
    if let Some(image) = &args.image {
        values = values.with_image(image);
    }
    values = glrunner_flow::job_disk::JobDisk::new(
        args.ephemeral_storage.as_deref(),
        args.cpu_overwrite_max.as_deref(),
        args.memory_overwrite_max.as_deref(),
        args.ephemeral_storage_overwrite_max.as_deref(),
    )
    .apply(values);
    if let Some(ns) = &args.job_namespace {
        values = values.with_job_namespace(ns);
    }
    if let Some(requests) = args.request_concurrency {
        values = values.with_request_concurrency(requests);
    }
    values = values.with_graceful_stop(Some(GracefulStop::new(duration(
        "--drain-timeout",
        &args.drain_timeout,
    )?)));
    let spec = ReleaseSpec::new(&args.target.release, &args.target.namespace, values)
        .with_chart(chart_source(args)?)
        .with_timeout(duration("--timeout", &args.timeout)?);
    let mut issues = spec.issues();
    let expected = duration("--expected-pod-start", &args.expected_pod_start)?;
    if let Err(e) = spec.values.validate_for(args.jobs.unwrap_or(0), expected) {
        for issue in e.issues() {
            if !issues.contains(issue) {
                issues.push(issue.clone());
            }
        }
    }
    Error::check(issues).map_err(cli_error)?;
    Ok(spec)
}

/// The runner token from `GLRUNNER_RUNNER_TOKEN` (a placeholder on the sandbox).
pub fn token(backend: Backend) -> Result<RunnerToken, CliError> {
    token_from(std::env::var(TOKEN_ENV).ok(), backend)
}

/// The runner token from the value of `GLRUNNER_RUNNER_TOKEN` (`None` when unset): surrounding
/// whitespace (a trailing newline from a file) is dropped; an empty or unset variable is a
/// placeholder on the sandbox and invalid input on `aws`.
pub fn token_from(raw: Option<String>, backend: Backend) -> Result<RunnerToken, CliError> {
    match raw.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(token) => RunnerToken::new(token).map_err(cli_error),
        None if backend == Backend::Sandbox => {
            RunnerToken::new("glrt-sandbox-0000000000000000").map_err(cli_error)
        }
        None => Err(CliError::invalid(format!(
            "{TOKEN_ENV}: not set (fix: create the runner in GitLab (POST /user/runners) and export its glrt-... token as {TOKEN_ENV})"
        ))),
    }
}

/// The warning for a job namespace that a Fargate profile may not select: the `runner` command
/// does not know the cluster's profiles (the full flow checks them).
pub fn job_namespace_warning(spec: &ReleaseSpec) -> Option<String> {
    spec.separate_job_namespace().map(|ns| {
        format!(
            "cannot tell whether a Fargate profile selects job namespace {ns:?}; unless one does, job pods stay Pending (add the namespace to the profile's selectors)"
        )
    })
}

/// The backends the commands need.
pub struct Backends {
    /// Helm releases.
    pub releases: Box<dyn ReleaseManager>,
    /// Token Secrets.
    pub secrets: Box<dyn TokenSecrets>,
    /// Pods, to see a shard's running job pods before an upgrade.
    pub pods: Box<dyn PodApi>,
}

/// The namespaces a release's pods run in: its own and a separate job namespace.
fn pod_namespaces(spec: &ReleaseSpec) -> Vec<&str> {
    std::iter::once(spec.namespace.as_str())
        .chain(spec.separate_job_namespace())
        .collect()
}

/// Wires the backends for `connection`: with `--cluster NAME` (on `aws`) the EKS cluster found
/// through the EKS API, after checking that Fargate selects `namespaces` (when given); else
/// [`backends`].
pub async fn connect(
    global: &GlobalArgs,
    connection: &Connection,
    namespaces: &[&str],
) -> Result<Backends, CliError> {
    let (Backend::Aws, Some(name)) = (global.backend, &connection.cluster) else {
        return backends(global.backend, connection).await;
    };
    let region = super::provision::resolve_region(global)?;
    let cluster = glrunner_flow::aws::EksCluster::find(&region, name).await?;
    let uncovered =
        glrunner_flow::fargate_coverage_errors(&cluster.access().fargate_profiles, namespaces);
    if !uncovered.is_empty() {
        return Err(CliError::failure(format!(
            "EKS cluster {name}: {}",
            uncovered.join("; ")
        )));
    }
    let releases = cluster
        .releases(Some(connection.helm.clone()))
        .map_err(|e| CliError::failure(format!("--helm: {e}")))?;
    Ok(Backends {
        releases: Box::new(releases),
        secrets: Box::new(cluster.secrets()),
        pods: Box::new(cluster.pods()),
    })
}

/// Wires the release and Secret backends: in-memory on the sandbox, helm + kube-rs on `aws`.
pub async fn backends(backend: Backend, connection: &Connection) -> Result<Backends, CliError> {
    match backend {
        Backend::Sandbox => {
            let secrets = InMemoryTokenSecrets::new();
            let releases = InMemoryReleases::new()
                .with_timing(Timing::instant())
                .with_secrets(secrets.clone());
            Ok(Backends {
                releases: Box::new(releases),
                secrets: Box::new(secrets),
                pods: Box::new(InMemoryPods::new()),
            })
        }
        Backend::Aws => {
            let mut builder = HelmCli::builder().with_program(&connection.helm);
            if let Some(k) = &connection.kubeconfig {
                builder = builder.with_kubeconfig(k);
            }
            if let Some(c) = &connection.context {
                builder = builder.with_context(c);
            }
            let helm = builder.build().map_err(cli_error)?;
            let secrets = KubeTokenSecrets::connect(
                connection.kubeconfig.as_deref(),
                connection.context.as_deref(),
            )
            .await
            .map_err(cli_error)?;
            let pods = KubePodApi::from_kubeconfig(
                connection.kubeconfig.as_deref(),
                connection.context.as_deref(),
            )
            .await
            .map_err(|e| {
                CliError::failure(format!("connect to the cluster to list job pods: {e}"))
            })?;
            Ok(Backends {
                releases: Box::new(helm),
                secrets: Box::new(secrets),
                pods: Box::new(pods),
            })
        }
    }
}

/// Prints one release: a line (plus the runner summary) or JSON.
pub fn print_status(status: &ReleaseStatus, output: OutputFormat) -> Result<(), CliError> {
    match output {
        OutputFormat::Json => cli::print_json(status),
        OutputFormat::Human => {
            println!(
                "{}/{}: {} (revision {}, chart {})",
                status.namespace,
                status.name,
                status.state,
                status.revision,
                status.chart_version.as_deref().unwrap_or("?")
            );
            if let Some(r) = &status.runner {
                println!(
                    "  concurrent {}, tags [{}], secret {}",
                    r.concurrent,
                    r.tags.join(", "),
                    r.secret_name.as_deref().unwrap_or("?")
                );
            }
            Ok(())
        }
    }
}

/// What `install` / `upgrade` print: the release as Helm reports it, and the drain before it.
#[derive(Debug, Serialize)]
pub struct DeployOutput<'a> {
    /// The release after the install or upgrade.
    #[serde(flatten)]
    pub release: &'a ReleaseStatus,
    /// What was drained or waited for first.
    pub drain: &'a DrainReport,
}

/// Prints the deployed release and its drain: lines, or one JSON document (the release's fields
/// plus `drain`).
pub fn print_deployed(
    release: &ReleaseStatus,
    drain: &DrainReport,
    output: OutputFormat,
) -> Result<(), CliError> {
    match output {
        OutputFormat::Json => cli::print_json(&DeployOutput { release, drain }),
        OutputFormat::Human => {
            print_status(release, output)?;
            println!("  drain: {}", describe_drain(drain));
            Ok(())
        }
    }
}

/// One line about a drain.
pub fn describe_drain(drain: &DrainReport) -> String {
    let ns = drain.job_namespace.as_deref().unwrap_or("?");
    let running = drain.running_at_start.unwrap_or(0);
    match drain.outcome {
        DrainOutcome::NotInstalled => "new release, nothing to drain".to_string(),
        DrainOutcome::Forced => format!(
            "--force: upgraded at once with {} job pod(s) running in {ns}",
            drain
                .running_at_upgrade
                .map_or_else(|| "an unknown number of".to_string(), |n| n.to_string())
        ),
        DrainOutcome::GracefulStop => {
            let how = drain.deployed_graceful_stop.map_or_else(
                || "the image's SIGQUIT, until the pod's grace period".to_string(),
                |g| format!("SIGQUIT, up to {}s", g.drain_timeout.as_secs()),
            );
            format!(
                "the deployed manager stops gracefully ({how}): its {running} running job(s) in {ns} finish while the new manager takes new ones"
            )
        }
        DrainOutcome::Idle => format!("no job pod running in {ns}"),
        DrainOutcome::Drained => format!(
            "waited {:.0}s until the {running} running job pod(s) in {ns} ended",
            drain.waited_secs
        ),
    }
}

/// Reports each look at a draining shard on stderr: a line, or a JSON line.
pub fn drain_progress(output: OutputFormat) -> impl Fn(&DrainProgress) + Send + Sync {
    move |p: &DrainProgress| match output {
        OutputFormat::Json => eprintln!(
            "{}",
            serde_json::json!({"event": "drain_wait", "progress": p})
        ),
        OutputFormat::Human => eprintln!(
            "waiting for {} job pod(s) of {} in namespace {} to finish before the upgrade ({:.0}s of {}s; --force skips this)",
            p.running, p.release, p.job_namespace, p.waited_secs, p.timeout_secs
        ),
    }
}

/// The drain policy of `install` / `upgrade` from their flags.
pub fn drain_policy(args: &DeployArgs) -> Result<DrainPolicy, CliError> {
    Ok(DrainPolicy {
        force: args.force,
        wait_for_idle: args.wait_for_idle,
        ..DrainPolicy::new(duration("--drain-timeout", &args.release.drain_timeout)?)
    })
}

/// A drain that stopped the upgrade: exit 1, nothing changed.
pub fn drain_error(e: DrainError) -> CliError {
    match e {
        DrainError::Release(e) => cli_error(e),
        other => CliError::failure(other.to_string()),
    }
}

/// Prints the chart values: YAML, or the values document as JSON.
pub fn print_values(values: &RunnerValues, output: OutputFormat) -> Result<(), CliError> {
    match output {
        OutputFormat::Human => print!("{}", values.to_yaml().map_err(cli_error)?),
        OutputFormat::Json => cli::print_json(&values.to_chart_values().map_err(cli_error)?)?,
    }
    Ok(())
}

/// Prints a fleet plan: one line per release plus warnings, or JSON.
pub fn print_fleet_plan(plan: &FleetPlan, output: OutputFormat) -> Result<(), CliError> {
    match output {
        OutputFormat::Json => cli::print_json(&plan),
        OutputFormat::Human => {
            println!(
                "{} jobs -> {} release(s); poll_timeout {}s recommended",
                plan.total_jobs,
                plan.shards.len(),
                plan.recommended_poll_timeout.as_secs()
            );
            for s in &plan.shards {
                let parallel: Vec<String> = s.parallel.iter().map(ToString::to_string).collect();
                println!(
                    "  {:<24} tag {:<16} jobs {:>5} (#{}..#{})  concurrent {:>5}  parallel [{}]",
                    s.release,
                    s.tag,
                    s.jobs,
                    s.first_job,
                    s.first_job + s.jobs - 1,
                    s.concurrent,
                    parallel.join(", ")
                );
            }
            for w in &plan.warnings {
                println!("warning: {w}");
            }
            Ok(())
        }
    }
}

/// Prints what `install` / `upgrade --dry-run` would do.
pub fn print_deploy_plan(spec: &ReleaseSpec, policy: &DrainPolicy) {
    if policy.force {
        println!("(plan) --force: would not drain the shard before upgrading an existing release");
    } else {
        println!(
            "(plan) if the release exists and its deployed manager has no graceful stop, would wait up to {}s until the shard runs no job pod",
            policy.timeout.as_secs()
        );
    }
    println!(
        "(plan) would create or update {} with the runner token",
        spec.secret().describe()
    );
    println!(
        "(plan) would install or upgrade {} with chart {} (helm --wait, timeout {}s)",
        spec.id().describe(),
        spec.chart,
        spec.timeout.as_secs()
    );
    println!("no changes were applied");
}

/// Prints what `uninstall --dry-run` would do.
pub fn print_uninstall_plan(id: &ReleaseId, secret_name: &str) {
    println!(
        "(plan) would helm uninstall --wait {}, then delete secret {secret_name:?}",
        id.describe()
    );
    println!("no changes were applied");
}

/// Prints the outcome of `uninstall`.
pub fn print_removal(
    id: &ReleaseId,
    removal: &Removal,
    output: OutputFormat,
) -> Result<(), CliError> {
    match output {
        OutputFormat::Json => {
            cli::print_json(&serde_json::json!({ "release": id, "removal": removal }))
        }
        OutputFormat::Human => {
            println!("{}: {removal:?}", id.describe());
            Ok(())
        }
    }
}

/// Prints the releases found by `list`.
pub fn print_releases(releases: &[ReleaseStatus], output: OutputFormat) -> Result<(), CliError> {
    match output {
        OutputFormat::Json => cli::print_json(&releases),
        OutputFormat::Human => {
            if releases.is_empty() {
                println!("no gitlab-runner releases");
            }
            for r in releases {
                print_status(r, output)?;
            }
            Ok(())
        }
    }
}

/// `install` (`upgrade` false: installs, or upgrades an existing release) and `upgrade`: drains
/// the shard first unless the deployed manager stops gracefully (or `--force`), then deploys.
async fn deploy(global: &GlobalArgs, args: &DeployArgs, upgrade: bool) -> Result<(), CliError> {
    let spec = spec(&args.release)?;
    let policy = drain_policy(args)?;
    let token = token(global.backend)?;
    if !upgrade
        && args.connection.cluster.is_none()
        && let Some(warning) = job_namespace_warning(&spec)
    {
        tracing::warn!("{warning}");
    }
    let b = connect(global, &args.connection, &pod_namespaces(&spec)).await?;
    let drain = drain_before_upgrade(
        b.releases.as_ref(),
        b.secrets.as_ref(),
        b.pods.as_ref(),
        &spec,
        &token,
        &policy,
        &drain_progress(global.output),
    )
    .await
    .map_err(drain_error)?;
    let (secrets, releases) = (b.secrets.as_ref(), b.releases.as_ref());
    let deployed = if upgrade {
        upgrade_runner(secrets, releases, &spec, &token).await
    } else {
        deploy_runner(secrets, releases, &spec, &token).await
    }
    .map_err(cli_error)?;
    tracing::info!(secret = ?deployed.secret, "token secret stored");
    print_deployed(&deployed.release, &drain, global.output)
}

/// Runs one `runner` subcommand.
pub async fn run(global: &GlobalArgs, command: Command) -> Result<(), CliError> {
    let output = global.output;
    let backend = global.backend;
    let dry_run = global.dry_run;
    match command {
        Command::Values(args) => {
            let spec = spec(&args)?;
            // Warnings go to stderr: stdout is the values document.
            for r in spec.values.fargate_rounding() {
                match output {
                    OutputFormat::Human => {
                        eprintln!("warning: {r} ({})", flag_for(&r.field));
                    }
                    OutputFormat::Json => eprintln!(
                        "{}",
                        serde_json::json!({"warning": "fargate_rounding", "detail": r, "message": r.to_string()})
                    ),
                }
            }
            print_values(&spec.values, output)
        }
        Command::PlanFleet(args) => {
            let jobs = u32::try_from(args.jobs).map_err(|_| {
                CliError::invalid(format!(
                    "--jobs: {} is not a job count (fix: pass --jobs 1 or more)",
                    args.jobs
                ))
            })?;
            let cap = u32::try_from(args.max_per_release).map_err(|_| {
                CliError::invalid(format!(
                    "--max-per-release: {} is not a job count (fix: use e.g. 200)",
                    args.max_per_release
                ))
            })?;
            let mut template = RunnerValues::new("https://gitlab.com/")
                .with_build_resources(&args.cpu, &args.memory);
            if let Some(image) = &args.image {
                template = template.with_image(image);
            }
            let mut request = FleetRequest::new(jobs)
                .with_max_per_release(cap)
                .with_release_prefix(&args.release_prefix)
                .with_tag_prefix(&args.tag_prefix)
                .with_expected_pod_start(duration(
                    "--expected-pod-start",
                    &args.expected_pod_start,
                )?)
                .with_values(&template);
            if let Some(quota) = args.fargate_vcpu_quota {
                request = request.with_fargate_vcpu_quota(quota);
            }
            let plan = FleetPlan::new(&request).map_err(cli_error)?;
            print_fleet_plan(&plan, output)
        }
        Command::Install(args) | Command::Upgrade(args) if dry_run => {
            let spec = spec(&args.release)?;
            let policy = drain_policy(&args)?;
            token(backend)?;
            print_deploy_plan(&spec, &policy);
            Ok(())
        }
        Command::Install(args) => deploy(global, &args, false).await,
        Command::Upgrade(args) => deploy(global, &args, true).await,
        Command::Uninstall(args) => {
            let id = ReleaseId::new(&args.target.namespace, &args.target.release);
            id.validate().map_err(cli_error)?;
            let timeout = duration("--timeout", &args.timeout)?;
            let secret_name = args
                .secret_name
                .clone()
                .unwrap_or_else(|| glrunner_flow::Ownership::secret_name(&args.target.release));
            if dry_run {
                print_uninstall_plan(&id, &secret_name);
                return Ok(());
            }
            let b = connect(global, &args.connection, &[]).await?;
            let removal = remove_runner(
                b.secrets.as_ref(),
                b.releases.as_ref(),
                &id,
                &secret_name,
                timeout,
            )
            .await
            .map_err(cli_error)?;
            print_removal(&id, &removal, output)
        }
        Command::Status(args) => {
            let id = ReleaseId::new(&args.target.namespace, &args.target.release);
            id.validate().map_err(cli_error)?;
            let b = connect(global, &args.connection, &[]).await?;
            match b.releases.status(&id).await.map_err(cli_error)? {
                Some(status) => print_status(&status, output),
                None => Err(CliError::failure(format!(
                    "{} not found{}",
                    id.describe(),
                    if backend == Backend::Sandbox {
                        " (the sandbox keeps no state between runs)"
                    } else {
                        ""
                    }
                ))),
            }
        }
        Command::List(args) => {
            let b = connect(global, &args.connection, &[]).await?;
            let releases = b
                .releases
                .list(args.namespace.as_deref())
                .await
                .map_err(cli_error)?;
            print_releases(&releases, output)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(subcommand)]
        command: Command,
    }

    fn parse(args: &[&str]) -> TestCli {
        TestCli::try_parse_from(std::iter::once("runner").chain(args.iter().copied()))
            .expect("arguments parse")
    }

    fn release_args(args: &[&str]) -> ReleaseArgs {
        let mut full = vec!["values"];
        full.extend_from_slice(args);
        match parse(&full).command {
            Command::Values(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tokens_come_from_the_environment_value_trimmed_and_never_echoed() {
        let t = token_from(Some("glrt-abcDEF123456\n".into()), Backend::Aws).unwrap();
        assert_eq!(t.expose_secret(), "glrt-abcDEF123456");
        let e = token_from(None, Backend::Aws).unwrap_err();
        assert_eq!(e.code, 2);
        assert!(e.message.contains(TOKEN_ENV), "{}", e.message);
        let e = token_from(Some("   ".into()), Backend::Aws).unwrap_err();
        assert_eq!(e.code, 2, "an empty variable is as good as unset");
        let e = token_from(Some("GR1348941legacySecret99".into()), Backend::Aws).unwrap_err();
        assert_eq!(e.code, 2);
        assert!(e.message.contains(TOKEN_ENV), "{}", e.message);
        assert!(!e.message.contains("legacySecret99"), "{}", e.message);
        assert!(
            token_from(None, Backend::Sandbox).is_ok(),
            "a placeholder on the sandbox"
        );
    }

    #[test]
    fn flags_become_a_validated_spec() {
        let spec = spec(&release_args(&[
            "--release",
            "runner-a",
            "--namespace",
            "ci",
            "--job-namespace",
            "ci-jobs",
            "--concurrent",
            "200",
            "--tag",
            "t1",
        ]))
        .unwrap();
        assert_eq!(spec.id(), ReleaseId::new("ci", "runner-a"));
        assert_eq!(spec.values.secret_name, "runner-a-token");
        assert_eq!(spec.values.executor.namespace.as_deref(), Some("ci-jobs"));
        assert_eq!(spec.values.effective_request_concurrency(), 20);
        assert!(job_namespace_warning(&spec).unwrap().contains("ci-jobs"));
        let same = spec_for(&["--namespace", "ci", "--job-namespace", "ci"]);
        assert!(job_namespace_warning(&same).is_none());
        let explicit = spec_for(&["--concurrent", "50", "--request-concurrency", "2"]);
        assert_eq!(explicit.values.effective_request_concurrency(), 2);
    }

    #[test]
    fn the_drain_timeout_sets_the_graceful_stop_and_the_wait() {
        let spec = spec_for(&["--drain-timeout", "20m"]);
        let stop = spec.values.graceful_stop.unwrap();
        assert_eq!(stop.drain_timeout, Duration::from_secs(1200));
        let cli = parse(&["upgrade", "--drain-timeout", "20m", "--force"]);
        let Command::Upgrade(args) = cli.command else {
            panic!()
        };
        let policy = drain_policy(&args).unwrap();
        assert_eq!(policy.timeout, Duration::from_secs(1200));
        assert!(policy.force && !policy.wait_for_idle);
        assert!(
            TestCli::try_parse_from(["runner", "upgrade", "--force", "--wait-for-idle"]).is_err(),
            "--force and --wait-for-idle exclude each other"
        );
    }

    fn spec_for(args: &[&str]) -> ReleaseSpec {
        spec(&release_args(args)).unwrap()
    }

    #[test]
    fn bad_flags_are_exit_2_and_name_the_flag() {
        for (args, flag) in [
            (&["--concurrent", "-1"][..], "--concurrent"),
            (&["--job-namespace", "Not_Valid"][..], "--job-namespace"),
            (&["--secret-name", "Bad Name"][..], "--secret-name"),
            (&["--chart-version", "v0.86"][..], "--chart-version"),
            (&["--poll-timeout", "soon"][..], "--poll-timeout"),
            (
                &["--concurrent", "5", "--request-concurrency", "9"][..],
                "--request-concurrency",
            ),
            (&["--drain-timeout", "soon"][..], "--drain-timeout"),
            (&["--drain-timeout", "48h"][..], "--drain-timeout"),
        ] {
            let Err(e) = spec(&release_args(args)) else {
                panic!("{args:?} must be invalid")
            };
            assert_eq!(e.code, 2, "{args:?}");
            assert!(e.message.contains(flag), "{args:?}: {}", e.message);
        }
    }

    #[tokio::test]
    async fn install_then_uninstall_on_the_sandbox_wires_secret_and_release() {
        let cli = parse(&["install", "--release", "runner-a", "--namespace", "ci"]);
        let Command::Install(args) = cli.command else {
            panic!()
        };
        let b = backends(Backend::Sandbox, &args.connection).await.unwrap();
        let spec = spec(&args.release).unwrap();
        let token = token_from(None, Backend::Sandbox).unwrap();
        let deployed = deploy_runner(b.secrets.as_ref(), b.releases.as_ref(), &spec, &token)
            .await
            .unwrap();
        assert_eq!(deployed.release.revision, 1);
        assert!(b.secrets.get(&spec.secret()).await.unwrap().is_some());
        let removal = remove_runner(
            b.secrets.as_ref(),
            b.releases.as_ref(),
            &spec.id(),
            &spec.values.secret_name,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        assert_eq!(removal, Removal::Removed);
        assert!(b.secrets.get(&spec.secret()).await.unwrap().is_none());
        assert!(b.releases.status(&spec.id()).await.unwrap().is_none());
    }
}
