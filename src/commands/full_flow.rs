//! The `full_flow` command: flags, backend wiring, progress rendering and output.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use clap::Args;

use glrunner_flow::artifacts::ArtifactFiles;
use glrunner_flow::aws::Environment;
use glrunner_flow::{
    ClusterSource, DryRun, FlowConfig, FlowEvent, FlowProgress, FlowReport, JanitorMode, Phase,
    PreflightGate, RunnerProfile,
};
use glrunner_sandbox::{Fault, SandboxWorld};

use super::provision::{ProgressRenderer, ProvisionArgs, stack_spec};
use crate::cli::signals::{Interrupt, hold};
use crate::cli::{Backend, CliError, GlobalArgs, OutputFormat, print_json};

pub use glrunner_sandbox::SANDBOX_PROJECT;

/// Flags of `full_flow`.
#[derive(Debug, Clone, Args)]
pub struct FlowArgs {
    /// Jobs in the load-test pipeline, all meant to run at once. The fleet plan shards them
    /// over runner releases of at most --max-per-release each.
    #[arg(long, default_value_t = 400)]
    pub jobs: u32,

    /// At most this many jobs per runner release.
    #[arg(long, default_value_t = glrunner_runner_chart::fleet::DEFAULT_MAX_PER_RELEASE)]
    pub max_per_release: u32,

    /// At most this many helm installs/upgrades at once (1..=32).
    #[arg(long, default_value_t = glrunner_flow::DEFAULT_HELM_CONCURRENCY)]
    pub helm_concurrency: usize,

    /// GitLab project path (`group/project`) or id; created if missing. Required with
    /// `--backend aws`; the sandbox uses `sandbox/loadtest`.
    #[arg(long)]
    pub project: Option<String>,

    /// GitLab base URL (default: $GITLAB_URL, else $CI_SERVER_URL). `--backend aws` only; the
    /// token comes from $GITLAB_TOKEN, never from a flag.
    #[arg(long)]
    pub gitlab_url: Option<String>,

    /// Phases to run, comma-separated (default: all): provision, project, plan, runners,
    /// releases, load-test, reap, teardown.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub phases: Vec<Phase>,

    /// Keep the infrastructure at the end.
    #[arg(long)]
    pub keep_infra: bool,

    /// Keep the runner releases and GitLab runners (and the infrastructure) at the end.
    #[arg(long)]
    pub keep_runners: bool,

    /// On failure, keep what was created for inspection instead of cleaning up.
    #[arg(long)]
    pub keep: bool,

    /// Job image (default: public.ecr.aws/docker/library/bash).
    #[arg(long, conflicts_with = "images")]
    pub image: Option<String>,

    /// The load test's image matrix, comma-separated: jobs spread over the images, each
    /// prints its `/etc/os-release`, and a sample of job logs proves each ran its own image.
    /// `--images` alone: alpine, debian and ubuntu from ECR Public.
    #[arg(
        long,
        value_delimiter = ',',
        num_args = 0..=1,
        default_missing_value = "public.ecr.aws/docker/library/alpine:3.20,public.ecr.aws/docker/library/debian:bookworm-slim,public.ecr.aws/docker/library/ubuntu:24.04"
    )]
    pub images: Vec<String>,

    /// Every load-test job restores and saves a cache of this many MB (default 4), one key
    /// per shard; the report shows hits, misses and their time per shard.
    #[arg(long, value_name = "MB", num_args = 0..=1, default_missing_value = "4")]
    pub cache_workload: Option<u32>,

    /// Sandbox only: the n-th job to run runs another image than its own (tests the image proof).
    #[arg(long, value_name = "N")]
    pub sandbox_wrong_image_job: Option<u64>,

    /// helm binary (`--backend aws`; default: $GLRUNNER_HELM, else `helm` on PATH).
    #[arg(long)]
    pub helm: Option<PathBuf>,

    /// Bring your own EKS cluster (`--backend aws`): its endpoint, CA and Fargate profiles come
    /// from the EKS API, credentials from glrunner's token generator. Provisioning and the
    /// infrastructure teardown are skipped; nothing outside the runner namespace is touched.
    #[arg(long, value_name = "NAME", conflicts_with = "kubeconfig")]
    pub cluster: Option<String>,

    /// Bring your own cluster through a kubeconfig (`--backend aws`; any conformant cluster).
    /// Provisioning and the infrastructure teardown are skipped.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context (default: its current context).
    #[arg(long, value_name = "NAME", requires = "kubeconfig")]
    pub context: Option<String>,

    /// The runner chart: a directory, a .tgz or oci://HOST/PATH (default: gitlab/gitlab-runner
    /// from charts.gitlab.io, pinned).
    #[arg(long, value_name = "REF")]
    pub chart: Option<String>,

    /// Sandbox: seed of every random choice.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Sandbox: fraction of job pods the simulated runners leave hung (0.0–1.0).
    #[arg(long, default_value_t = 0.05)]
    pub hung_fraction: f64,

    /// Sandbox: inject a failure into one phase (to watch the cleanup).
    #[arg(long, value_enum)]
    pub inject_fault: Option<Fault>,

    /// Runner configuration to install: `reference` reproduces the reference tutorial's (the
    /// `bash` image from Docker Hub, `request_concurrency = 1`, `poll_timeout` 180 s, one
    /// release per 200 jobs); `tuned` is glrunner's (public ECR image, request concurrency
    /// derived from `concurrent`, the fleet plan's poll timeout, sized managers). On the sandbox
    /// the runner simulator reads what was installed; every timing it reports is a model.
    #[arg(long, value_enum, default_value_t = RunnerProfile::Tuned)]
    pub runner_profile: RunnerProfile,

    /// Bound of the cleanup after a failure or a stop (SIGINT/SIGTERM), a Go-style duration;
    /// past it, the report says what is left and how to finish.
    #[arg(long, default_value = "45m", value_parser = crate::cli::duration::positive)]
    pub cleanup_timeout: Duration,

    /// Network and cluster flags.
    #[command(flatten)]
    pub infra: ProvisionArgs,

    /// `--report-html`, `--junit`, `--metrics`: the load test as a page, JUnit and GitLab
    /// metrics, with the phases and their durations.
    #[command(flatten)]
    pub artifacts: ArtifactFiles,

    /// Preflight and cost projection flags (`--budget`, `--expected-job-duration`, ...).
    #[command(flatten)]
    pub preflight: super::doctor::PreflightArgs,

    /// Skip the preflight checks (quotas, permissions, GitLab, --budget) before provisioning.
    #[arg(long)]
    pub skip_preflight: bool,

    /// Where the janitor runs besides the flow's own reap phase: `local` (only the flow's
    /// rounds) or `in-cluster` (also `reap run` as a Deployment with a Lease and least-privilege
    /// RBAC in the runner namespace, installed after the releases and removed by teardown; the
    /// same objects `reap deploy` prints). A teardown run on its own (`--phases teardown`)
    /// removes it only when given `--janitor in-cluster` too.
    #[arg(long, value_enum, default_value_t = JanitorArg::Local)]
    pub janitor: JanitorArg,

    /// The janitor image for `--janitor in-cluster` (the repository's Containerfile, pushed to a
    /// registry the cluster pulls from; see the README). Required with --backend aws.
    #[arg(long, value_name = "IMAGE")]
    pub janitor_image: Option<String>,
}

/// `--janitor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum JanitorArg {
    /// Only the flow's reap phase.
    Local,
    /// Also a controller in the cluster.
    InCluster,
}

/// The image the sandbox's in-cluster janitor is "installed" with when none is given (the
/// sandbox pulls nothing).
pub const SANDBOX_JANITOR_IMAGE: &str = "glrunner-janitor:sandbox";

/// Builds the flow configuration from the flags. Makes no call.
pub fn flow_config(global: &GlobalArgs, args: &FlowArgs) -> Result<FlowConfig, CliError> {
    let spec = stack_spec(global, &args.infra)?;
    let project = match (&args.project, global.backend) {
        (Some(p), _) => p.clone(),
        (None, Backend::Sandbox) => SANDBOX_PROJECT.to_owned(),
        (None, Backend::Aws) => {
            return Err(CliError::invalid(
                "--project: required with --backend aws (e.g. my-group/loadtest)",
            ));
        }
    };
    if !(0.0..=1.0).contains(&args.hung_fraction) {
        return Err(CliError::invalid(
            "--hung-fraction: must be between 0.0 and 1.0",
        ));
    }
    if global.backend == Backend::Aws && args.inject_fault.is_some() {
        return Err(CliError::invalid("--inject-fault: sandbox only"));
    }
    if let Some(quota) = args.preflight.fargate_vcpu_quota {
        if global.backend == Backend::Aws {
            return Err(CliError::invalid(
                "--fargate-vcpu-quota: sandbox only (on AWS the account's quota applies)",
            ));
        }
        if quota == 0 {
            return Err(CliError::invalid(
                "--fargate-vcpu-quota: must be at least 1 vCPU (e.g. 52 or 4000)",
            ));
        }
    }
    args.artifacts
        .validate()
        .map_err(|e| CliError::invalid(e.to_string()))?;
    let cluster = cluster_source(args)?;
    let mut config = FlowConfig::new(spec, project, args.jobs)
        .with_max_per_release(args.max_per_release)
        .with_helm_concurrency(args.helm_concurrency)
        .with_keep(args.keep_infra, args.keep_runners, args.keep);
    if !args.phases.is_empty() {
        config = config.with_phases(args.phases.iter().copied());
    }
    config.image = args.image.clone();
    config.images = args.images.iter().map(|i| i.trim().to_owned()).collect();
    config.cache_workload = args.cache_workload;
    // The sandbox's fleet has its modelled S3 cache; on AWS the stack says (wired where the
    // cache is provisioned).
    config.fleet_has_cache = global.backend == Backend::Sandbox;
    if args.sandbox_wrong_image_job.is_some() && global.backend == Backend::Aws {
        return Err(CliError::invalid("--sandbox-wrong-image-job: sandbox only"));
    }
    config.cleanup_timeout = args.cleanup_timeout;
    config.cluster = cluster;
    if let Some(chart) = &args.chart {
        config.chart = chart_source(chart)?;
    }
    config.janitor = janitor_mode(global, args)?;
    Ok(config.with_runner_profile(args.runner_profile))
}

/// `--janitor` / `--janitor-image`.
fn janitor_mode(global: &GlobalArgs, args: &FlowArgs) -> Result<JanitorMode, CliError> {
    match (args.janitor, &args.janitor_image, global.backend) {
        (JanitorArg::Local, Some(_), _) => Err(CliError::invalid(
            "--janitor-image: only with --janitor in-cluster",
        )),
        (JanitorArg::Local, None, _) => Ok(JanitorMode::Local),
        (JanitorArg::InCluster, None, Backend::Aws) => Err(CliError::invalid(
            "--janitor in-cluster: pass --janitor-image IMAGE (build the repository's Containerfile \
             and push it to ECR; see the README)",
        )),
        (JanitorArg::InCluster, image, _) => {
            let image = image
                .clone()
                .unwrap_or_else(|| SANDBOX_JANITOR_IMAGE.into());
            if image.trim().is_empty() || image.chars().any(char::is_whitespace) {
                return Err(CliError::invalid(format!(
                    "--janitor-image: {image:?} is not an image reference (e.g. \
                     123456789012.dkr.ecr.us-east-1.amazonaws.com/glrunner-janitor:1)"
                )));
            }
            Ok(JanitorMode::InCluster { image })
        }
    }
}

/// `--cluster` / `--kubeconfig [--context]`: a cluster the user brings. These name a real target:
/// on the sandbox the examples refuse them before any of this runs ([`crate::cli::targets`]).
fn cluster_source(args: &FlowArgs) -> Result<ClusterSource, CliError> {
    Ok(match (&args.cluster, &args.kubeconfig) {
        (Some(name), _) => {
            if name.trim().is_empty() {
                return Err(CliError::invalid("--cluster: empty cluster name"));
            }
            ClusterSource::Eks { name: name.clone() }
        }
        (None, Some(path)) => {
            if !path.is_file() {
                return Err(CliError::invalid(format!(
                    "--kubeconfig: {} is not a readable file",
                    path.display()
                )));
            }
            ClusterSource::Kubeconfig {
                path: path.clone(),
                context: args.context.clone(),
            }
        }
        (None, None) => ClusterSource::Provisioned,
    })
}

/// `--chart`: a directory or .tgz on disk, or an `oci://` reference at the pinned version.
fn chart_source(chart: &str) -> Result<glrunner_runner_chart::ChartSource, CliError> {
    use glrunner_runner_chart::ChartSource;
    if chart.starts_with("oci://") {
        return Ok(ChartSource::Oci {
            reference: chart.to_owned(),
            version: Default::default(),
        });
    }
    let path = PathBuf::from(chart);
    if !path.exists() {
        return Err(CliError::invalid(format!(
            "--chart: {chart} is neither an oci:// reference nor an existing chart directory or .tgz"
        )));
    }
    Ok(ChartSource::Path { path })
}

/// The flow's own validation, as its message reads (`invalid FIELD: …`).
fn invalid_or_failure(e: glrunner_flow::Error) -> CliError {
    if e.is_invalid_input() {
        CliError::invalid(e.to_string())
    } else {
        CliError::failure(e.to_string())
    }
}

/// Runs `full_flow`: the sandbox world (default) or AWS + GitLab + Kubernetes, then prints the
/// report. A failed phase is exit 1 (after cleanup); invalid input exit 2.
pub async fn full_flow(global: &GlobalArgs, args: &FlowArgs) -> Result<(), CliError> {
    full_flow_until(global, args, &Interrupt::detached()).await
}

/// The report of a finished run: the sandbox's carries the model.
enum Finished {
    Sandbox(Box<glrunner_sandbox::SandboxReport>),
    Aws(Box<FlowReport>),
}

impl Finished {
    fn flow(&self) -> &FlowReport {
        match self {
            Finished::Sandbox(r) => &r.flow,
            Finished::Aws(r) => r,
        }
    }

    fn print(&self, output: OutputFormat) -> Result<(), CliError> {
        match (self, output) {
            (Finished::Sandbox(r), OutputFormat::Json) => print_json(r),
            (Finished::Aws(r), OutputFormat::Json) => print_json(r),
            (Finished::Sandbox(r), OutputFormat::Human) => {
                print!("{}", r.render_text());
                Ok(())
            }
            (Finished::Aws(r), OutputFormat::Human) => {
                print!("{}", r.render_text());
                Ok(())
            }
        }
    }
}

/// The preflight gate the flags ask for; `--skip-preflight` is said loudly.
fn gate(args: &FlowArgs) -> PreflightGate {
    if args.skip_preflight {
        eprintln!(
            "WARNING: --skip-preflight: quotas, permissions, GitLab and --budget were NOT checked before creating billable resources"
        );
        PreflightGate::Skip
    } else {
        PreflightGate::Check
    }
}

/// A failed preflight: its report on stdout, and the error that exits 1.
fn preflight_failed(e: glrunner_flow::CheckedError, output: OutputFormat) -> CliError {
    let report = match e {
        glrunner_flow::CheckedError::Preflight(report) => report,
        glrunner_flow::CheckedError::Flow(e) => return invalid_or_failure(e),
        other => return CliError::failure(other.to_string()),
    };
    let printed = match output {
        OutputFormat::Json => print_json(&serde_json::json!({ "preflight": &report })),
        OutputFormat::Human => {
            print!("{}", report.render_text());
            Ok(())
        }
    };
    printed.err().unwrap_or_else(|| {
        CliError::failure(format!(
            "preflight failed, nothing was created: {} (fix these, or pass --skip-preflight to bypass)",
            report.failure_summary()
        ))
    })
}

/// [`full_flow`] that stops cleanly on `interrupt` (SIGINT/SIGTERM): the running phase ends, what
/// this run created is cleaned up (unless `--keep`) within `--cleanup-timeout`, the report is
/// printed and the exit code is 130/143. A second signal stops at once and prints the command
/// that finishes the cleanup.
pub async fn full_flow_until(
    global: &GlobalArgs,
    args: &FlowArgs,
    interrupt: &Interrupt,
) -> Result<(), CliError> {
    let config = flow_config(global, args)?;
    let options = args.preflight.options(global.backend)?;
    interrupt.set_abort_hint(match global.backend {
        Backend::Sandbox => "the sandbox world ends with the process: nothing is left".to_owned(),
        Backend::Aws => format!(
            "finish the cleanup with: cargo run --example full_flow -- --backend aws --stack {} \
             --region {} --project {} --phases teardown",
            config.spec.stack, config.spec.region, config.project
        ),
    });
    let stop = interrupt.token();
    let renderer = FlowRenderer::new(global.output);
    let report = match global.backend {
        Backend::Sandbox => {
            // One quota for the preflight's account and the runner simulator's model.
            let mut images = glrunner_sandbox::images::ImageModel::default();
            images.wrong_image_job = args.sandbox_wrong_image_job;
            let sandbox = super::doctor::sandbox_config(args)
                .with_hung_fraction(args.hung_fraction)
                .with_fault(args.inject_fault)
                .with_images(images);
            let world = SandboxWorld::new(&config.spec.region, sandbox);
            config
                .validate(glrunner_sandbox::SANDBOX_GITLAB_URL)
                .map_err(invalid_or_failure)?;
            let pre = world.preflight_plan(&config, &options)?;
            if global.dry_run {
                return print_dry_run(global, &DryRun::new(&config, &pre));
            }
            if global.output == OutputFormat::Human {
                eprintln!(
                    "full flow: stack {} in {} on the sandbox (virtual clock; timings are a model, runner profile {}), {} jobs",
                    config.spec.stack, config.spec.region, config.runner_profile, config.jobs
                );
            }
            let report = world
                .run_checked(&config, &pre, gate(args), &renderer, &stop)
                .await
                .map_err(|e| preflight_failed(e, global.output))?;
            Finished::Sandbox(Box::new(report))
        }
        Backend::Aws => {
            let env = Environment::from_env(
                args.gitlab_url.as_deref(),
                args.helm.clone(),
                global.region.as_deref(),
                global.state_dir.clone(),
            )?;
            let mut pre = options.plan(&config, env.gitlab_url())?;
            if global.dry_run {
                config
                    .validate(env.gitlab_url())
                    .map_err(invalid_or_failure)?;
                return print_dry_run(global, &DryRun::new(&config, &pre));
            }
            pre.helm = Some(
                env.helm()
                    .map_or_else(|| PathBuf::from("helm"), ToOwned::to_owned),
            );
            let backends = env.connect().await?;
            config
                .validate(&backends.gitlab_url)
                .map_err(invalid_or_failure)?;
            let clients = env.preflight_clients().await;
            if global.output == OutputFormat::Human {
                if config.cluster.brought_by_user() {
                    eprintln!(
                        "full flow: stack {} on a cluster {} — its job pods are billable",
                        config.spec.stack,
                        config.cluster.describe()
                    );
                } else {
                    eprintln!(
                        "full flow: stack {} in {} on AWS — this creates billable resources (EKS, NAT gateway, Fargate)",
                        config.spec.stack, config.spec.region
                    );
                }
            }
            let report = glrunner_flow::run_checked(
                &config,
                &backends,
                &pre,
                &clients.sources(&backends),
                gate(args),
                &renderer,
                &stop,
            )
            .await
            .map_err(|e| preflight_failed(e, global.output))?;
            Finished::Aws(Box::new(report))
        }
    };
    renderer.finish();
    // Before the exit code: the files matter most when a phase failed.
    write_artifacts(&args.artifacts, report.flow(), global.output)?;
    report.print(global.output)?;
    let report = report.flow();
    if let Some(f) = &report.failure
        && let Some(err) = interrupt.error(format!(
            "the {} phase was stopped; {}",
            f.phase,
            if config.keep {
                "everything was kept (--keep)".to_owned()
            } else if f.cleaned_up {
                "everything this run created was removed".to_owned()
            } else {
                format!(
                    "the cleanup left {} resource(s); see the report",
                    report.leftovers().unwrap_or(0)
                )
            }
        ))
    {
        return Err(err);
    }
    match &report.failure {
        None => Ok(()),
        Some(f) => Err(CliError::failure(format!(
            "the {} phase failed: {}{}",
            f.phase,
            f.error,
            if f.cleaned_up {
                " (everything this run created was removed)"
            } else {
                ""
            }
        ))),
    }
}

/// Writes the artifact files the flags ask for, when the load test ran far enough to have a
/// timeline; otherwise says which files were not written and why.
fn write_artifacts(
    artifacts: &ArtifactFiles,
    report: &FlowReport,
    output: OutputFormat,
) -> Result<(), CliError> {
    if !artifacts.any() {
        return Ok(());
    }
    match &report.load_test_report {
        Some(load_test) => super::loadtest::write_artifacts(
            artifacts,
            load_test,
            &report.artifact_context(),
            output,
        ),
        None => {
            eprintln!(
                "no load-test timeline (the load-test phase did not watch a pipeline): --report-html/--junit/--metrics not written"
            );
            Ok(())
        }
    }
}

fn print_dry_run(global: &GlobalArgs, plan: &DryRun) -> Result<(), CliError> {
    match global.output {
        OutputFormat::Json => print_json(plan),
        OutputFormat::Human => {
            print!("{}", plan.render_text());
            Ok(())
        }
    }
}

/// Renders flow events on stderr: lines (and infra spinners on a terminal), or JSON lines.
pub struct FlowRenderer {
    output: OutputFormat,
    infra: Mutex<Option<ProgressRenderer>>,
    last_pipeline_line: Mutex<Option<f64>>,
}

impl std::fmt::Debug for FlowRenderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowRenderer")
            .field("output", &self.output)
            .finish_non_exhaustive()
    }
}

impl FlowRenderer {
    /// A renderer for `output`.
    pub fn new(output: OutputFormat) -> Self {
        Self {
            output,
            infra: Mutex::new(None),
            last_pipeline_line: Mutex::new(None),
        }
    }

    fn end_infra(&self) {
        if let Some(r) = self.infra.lock().unwrap_or_else(|e| e.into_inner()).take() {
            r.finish();
        }
    }

    /// Clears any spinner.
    pub fn finish(&self) {
        self.end_infra();
    }

    fn json(&self, value: serde_json::Value) {
        eprintln!("{value}");
    }
}

fn secs(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs_f64().round() as u64)).to_string()
}

impl FlowProgress for FlowRenderer {
    fn event(&self, event: &FlowEvent<'_>) {
        use serde_json::json;
        let human = self.output == OutputFormat::Human;
        match event {
            FlowEvent::PhaseStarted { phase } => {
                if human {
                    eprintln!("▶ {phase}");
                } else {
                    self.json(json!({"event": "phase-started", "phase": phase}));
                }
            }
            FlowEvent::Step { phase, message } => {
                if human {
                    eprintln!("  · {message}");
                } else {
                    self.json(json!({"event": "step", "phase": phase, "message": message}));
                }
                hold(&format!("step:{phase}:{message}"));
            }
            FlowEvent::PhaseDone {
                phase,
                elapsed,
                summary,
            } => {
                self.end_infra();
                if human {
                    eprintln!("✓ {phase} ({}): {summary}", secs(*elapsed));
                } else {
                    self.json(json!({"event": "phase-done", "phase": phase, "secs": elapsed.as_secs_f64(), "summary": summary}));
                }
                hold(&format!("phase-done:{phase}"));
            }
            FlowEvent::PhaseSkipped { phase } => {
                if human {
                    eprintln!("– {phase} (not selected)");
                } else {
                    self.json(json!({"event": "phase-skipped", "phase": phase}));
                }
            }
            FlowEvent::PhaseFailed { phase, error } => {
                self.end_infra();
                if human {
                    eprintln!("✗ {phase}: {error}");
                } else {
                    self.json(json!({"event": "phase-failed", "phase": phase, "error": error}));
                }
            }
            FlowEvent::CleanupStarted => {
                if human {
                    eprintln!("▶ cleanup: removing what this run created");
                } else {
                    self.json(json!({"event": "cleanup-started"}));
                }
            }
            FlowEvent::Infra(e) => {
                // The spinner starts with the first infrastructure event and ends with the phase,
                // so the flow's own lines never interleave with it.
                let mut infra = self.infra.lock().unwrap_or_else(|e| e.into_inner());
                let renderer = infra.get_or_insert_with(|| ProgressRenderer::new(self.output, 16));
                glrunner_infra::Progress::event(renderer, e);
            }
            FlowEvent::Preflight(report) if human => {
                let warnings = report
                    .checks
                    .iter()
                    .filter(|c| c.status == glrunner_flow::preflight::Status::Warn)
                    .count();
                eprintln!(
                    "preflight: {} checks passed ({warnings} warning(s)); projected cost ${:.2}",
                    report.checks.len() - warnings,
                    report.projection.total_usd
                );
            }
            FlowEvent::Pipeline(p) => {
                if !human {
                    if let Ok(v) = serde_json::to_value(p) {
                        self.json(json!({"event": "pipeline", "progress": v}));
                    }
                    return;
                }
                // At most one line per 15 s of flow time.
                let mut last = self
                    .last_pipeline_line
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                let done = p.finished_jobs == p.total_jobs && p.total_jobs > 0;
                if done || last.is_none_or(|t| p.elapsed_secs - t >= 15.0) {
                    *last = Some(p.elapsed_secs);
                    let active: Vec<String> = p
                        .active_by_status
                        .iter()
                        .map(|(k, v)| format!("{v} {k}"))
                        .collect();
                    eprintln!(
                        "  · pipeline {}: {}/{} finished [{}] at {:.0}s",
                        p.pipeline_status,
                        p.finished_jobs,
                        p.total_jobs,
                        active.join(", "),
                        p.elapsed_secs
                    );
                }
            }
            // Events a newer library adds: nothing to render.
            _ => {}
        }
    }
}
