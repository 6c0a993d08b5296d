//! The `provision` and `teardown` commands: flags, backend wiring, progress and output.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use glrunner_infra::{
    ClusterProvisioner, NetworkProvisioner, Progress, ProgressEvent, StackName, StackOptions,
    StackSpec, WaitPolicy,
};

use crate::cli::signals::{Interrupt, hold};
use crate::cli::{Backend, CliError, GlobalArgs, OutputFormat, print_json};

/// NAT layout flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NatArg {
    /// One NAT gateway shared by all AZs (cheapest).
    Single,
    /// One NAT gateway per AZ (survives an AZ outage).
    PerAz,
}

/// Flags of `provision`.
#[derive(Debug, Clone, Args)]
pub struct ProvisionArgs {
    /// VPC CIDR block, /16 to /20 in a private range.
    #[arg(long, default_value = "10.0.0.0/16")]
    pub vpc_cidr: String,
    /// Availability zones to spread subnets over (2 or 3).
    #[arg(long, default_value_t = 2)]
    pub azs: u8,
    /// NAT gateway layout.
    #[arg(long, value_enum, default_value_t = NatArg::Single)]
    pub nat: NatArg,
    /// Kubernetes version of the EKS cluster.
    #[arg(long, default_value = glrunner_infra::spec::DEFAULT_KUBERNETES_VERSION)]
    pub kubernetes_version: String,
    /// Namespace of the runner managers and job pods (covered by the Fargate profile).
    #[arg(long, default_value = "gitlab-runner")]
    pub runner_namespace: String,
}

/// Maps an infra error to the examples' exit codes: invalid input is 2, the rest 1.
pub fn cli_error(err: glrunner_infra::Error) -> CliError {
    match err {
        glrunner_infra::Error::InvalidInput { .. } => CliError::invalid(err.to_string()),
        other => CliError::failure(other.to_string()),
    }
}

/// Builds and validates the stack spec from the flags. Makes no call of any kind.
pub fn stack_spec(global: &GlobalArgs, args: &ProvisionArgs) -> Result<StackSpec, CliError> {
    let stack =
        StackName::new(global.stack.clone()).map_err(|e| CliError::invalid(flag_hint(e)))?;
    let region = resolve_region(global)?;
    let mut spec = StackSpec::new(stack, region);
    spec.network.vpc_cidr = glrunner_infra::NetworkSpec::parse_cidr(&args.vpc_cidr)
        .map_err(|e| CliError::invalid(format!("--vpc-cidr: {e}")))?;
    spec.network.az_count = args.azs;
    spec.network.nat = match args.nat {
        NatArg::Single => glrunner_infra::NatMode::Single,
        NatArg::PerAz => glrunner_infra::NatMode::PerAz,
    };
    spec.cluster.kubernetes_version = args.kubernetes_version.clone();
    spec.cluster.runner_namespace = args.runner_namespace.clone();
    spec.validate()
        .map_err(|e| CliError::invalid(flag_hint(e)))?;
    Ok(spec)
}

/// Prefixes an invalid-input message with the command-line flag for its field.
fn flag_hint(err: glrunner_infra::Error) -> String {
    let flag = match &err {
        glrunner_infra::Error::InvalidInput { field, .. } => match field.as_str() {
            "vpc_cidr" => "--vpc-cidr",
            "azs" => "--azs",
            "kubernetes_version" => "--kubernetes-version",
            "runner_namespace" => "--runner-namespace",
            "region" => "--region",
            "stack" => "--stack",
            _ => "",
        },
        _ => "",
    };
    if flag.is_empty() {
        err.to_string()
    } else {
        format!("{flag}: {err}")
    }
}

/// The region from `--region`, else `AWS_REGION`/`AWS_DEFAULT_REGION`, else the AWS profile;
/// us-east-1 on the sandbox. Never asks the network (no instance metadata lookups).
pub fn resolve_region(global: &GlobalArgs) -> Result<String, CliError> {
    let region = match &global.region {
        Some(region) => Some(region.clone()),
        None => std::env::var("AWS_REGION")
            .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
            .ok()
            .or_else(profile_region),
    };
    let region = match (region, global.backend) {
        (Some(region), _) => region,
        (None, Backend::Sandbox) => "us-east-1".to_string(),
        (None, Backend::Aws) => {
            return Err(CliError::invalid(
                "--region: no AWS region configured; pass --region (e.g. us-east-1) or set AWS_REGION",
            ));
        }
    };
    glrunner_infra::spec::validate_region(&region)
        .map_err(|e| CliError::invalid(format!("--region: {e}")))?;
    Ok(region)
}

/// Reads `region` of the active profile from the AWS config file (no network).
fn profile_region() -> Option<String> {
    let home = std::env::var_os("HOME")?;
    let path = std::env::var_os("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(home).join(".aws/config"));
    let text = std::fs::read_to_string(path).ok()?;
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    let header = if profile == "default" {
        "[default]".to_string()
    } else {
        format!("[profile {profile}]")
    };
    let mut in_section = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_section = line == header;
        } else if in_section
            && let Some((key, value)) = line.split_once('=')
            && key.trim() == "region"
        {
            return Some(value.trim().to_string());
        }
    }
    None
}

/// The network and cluster provisioners of the selected backend.
pub struct InfraBackend {
    /// EC2 side.
    pub network: Box<dyn NetworkProvisioner>,
    /// EKS + IAM side.
    pub cluster: Box<dyn ClusterProvisioner>,
    /// Wait policy fitting the backend.
    pub waits: WaitPolicy,
}

impl std::fmt::Debug for InfraBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InfraBackend")
            .field("waits", &self.waits)
            .finish_non_exhaustive()
    }
}

impl InfraBackend {
    /// Wires the backend: the in-memory cloud on the sandbox, aws-config's chain on `aws`
    /// (`AWS_ENDPOINT_URL` honoured). Loading the configuration makes no AWS call.
    pub async fn connect(backend: Backend, region: &str) -> Self {
        match backend {
            Backend::Sandbox => {
                let cloud = glrunner_infra::memory::InMemoryCloud::new(region);
                Self {
                    network: Box::new(cloud.clone()),
                    cluster: Box::new(cloud),
                    waits: WaitPolicy::default(),
                }
            }
            Backend::Aws => {
                let config = glrunner_infra::aws::load_config(Some(region)).await;
                Self {
                    network: Box::new(glrunner_infra::aws::AwsNetwork::new(&config)),
                    cluster: Box::new(glrunner_infra::aws::AwsCluster::new(&config)),
                    waits: WaitPolicy::default(),
                }
            }
        }
    }
}

/// Renders progress events: a spinner with finished steps above it on a terminal, JSON lines
/// on stderr with `--output json`.
pub struct ProgressRenderer {
    output: OutputFormat,
    bar: Option<indicatif::ProgressBar>,
}

impl std::fmt::Debug for ProgressRenderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgressRenderer")
            .field("output", &self.output)
            .finish_non_exhaustive()
    }
}

impl ProgressRenderer {
    /// A renderer for `total` steps.
    pub fn new(output: OutputFormat, total: usize) -> Self {
        use std::io::IsTerminal as _;
        let bar = (output == OutputFormat::Human && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} [{pos}/{len}] {wide_msg}")
                    .expect("valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self { output, bar }
    }

    fn line(&self, text: String) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    /// Clears the spinner.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for ProgressRenderer {
    fn event(&self, event: &ProgressEvent) {
        self.render(event);
        // Test support: where a test may freeze the run to deliver a signal (see `hold`).
        match event {
            ProgressEvent::StepDone { key, .. } => hold(&format!("step-done:{key}")),
            ProgressEvent::Deleted { resource, .. } => hold(&format!("deleted:{resource}")),
            _ => {}
        }
    }
}

impl ProgressRenderer {
    fn render(&self, event: &ProgressEvent) {
        if self.output == OutputFormat::Json {
            if let Ok(line) = serde_json::to_string(event) {
                eprintln!("{line}");
            }
            return;
        }
        match event {
            ProgressEvent::StepStarted { description, .. } => {
                if let Some(bar) = &self.bar {
                    bar.set_message(description.clone());
                }
            }
            ProgressEvent::StepDone {
                key,
                id,
                created,
                elapsed,
            } => {
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                }
                let verb = if *created { "created" } else { "found" };
                self.line(format!(
                    "  ✓ {key:<24} {verb} {id} ({:.0}s)",
                    elapsed.as_secs_f64()
                ));
            }
            ProgressEvent::Waiting {
                waiting_for,
                elapsed,
                ..
            } => {
                let text = format!("waiting for {waiting_for} ({:.0}s)", elapsed.as_secs_f64());
                match &self.bar {
                    Some(bar) => bar.set_message(text),
                    None => eprintln!("  … {text}"),
                }
            }
            ProgressEvent::Retrying {
                key,
                reason,
                attempt,
            } => self.line(format!("  ↻ {key}: {reason} (attempt {attempt}), retrying")),
            ProgressEvent::StepFailed { key, error } => self.line(format!("  ✗ {key}: {error}")),
            ProgressEvent::Deleting { resource } => {
                if let Some(bar) = &self.bar {
                    bar.set_message(format!("deleting {resource}"));
                }
            }
            ProgressEvent::Deleted { resource, elapsed } => {
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                }
                self.line(format!(
                    "  ✓ deleted {resource} ({:.0}s)",
                    elapsed.as_secs_f64()
                ));
            }
            ProgressEvent::StepFound { .. } => {}
        }
    }
}

/// Runs `provision`: validate, plan, then apply (or print the plan on `--dry-run`).
pub async fn provision(global: &GlobalArgs, args: &ProvisionArgs) -> Result<(), CliError> {
    provision_until(global, args, &Interrupt::detached()).await
}

/// [`provision`] that stops cleanly on `interrupt` (SIGINT/SIGTERM): no new step starts, calls in
/// flight finish, the state is saved, what exists is printed, and the error exits 130/143.
/// A re-run resumes.
pub async fn provision_until(
    global: &GlobalArgs,
    args: &ProvisionArgs,
    interrupt: &Interrupt,
) -> Result<(), CliError> {
    let spec = stack_spec(global, args)?;
    let backend = InfraBackend::connect(global.backend, &spec.region).await;
    let progress = ProgressRenderer::new(global.output, 16);
    let options = StackOptions {
        dry_run: global.dry_run,
        // The sandbox world lives only as long as the process: keep no state for it.
        state_dir: (global.backend == Backend::Aws).then(|| global.state_dir.clone()),
        waits: backend.waits.clone(),
        progress: &progress,
    };
    if global.output == OutputFormat::Human && !global.dry_run {
        eprintln!(
            "provisioning stack {} in {} on the {:?} backend",
            spec.stack, spec.region, global.backend
        );
    }
    let outcome = glrunner_infra::provision_until(
        &spec,
        backend.network.as_ref(),
        backend.cluster.as_ref(),
        &options,
        &interrupt.token(),
    )
    .await;
    progress.finish();
    let outcome = match outcome {
        Err(err @ glrunner_infra::Error::Interrupted { .. }) => {
            let existing =
                glrunner_infra::Engine::new(backend.network.as_ref(), backend.cluster.as_ref())
                    .existing(&spec.stack)
                    .await;
            return Err(interrupted(global, interrupt, err, existing));
        }
        other => other.map_err(cli_error)?,
    };
    match global.output {
        OutputFormat::Json => print_json(&outcome)?,
        OutputFormat::Human => {
            if let Some(report) = &outcome.applied {
                println!(
                    "stack {} ready: {} created, {} already existed, makespan {} ({} clock)",
                    spec.stack,
                    report.created(),
                    report.steps.len() - report.created(),
                    humantime::format_duration(Duration::from_secs(
                        report.makespan_s.round() as u64
                    )),
                    if global.backend == Backend::Sandbox {
                        "virtual"
                    } else {
                        "wall"
                    }
                );
                if let Some(path) = &outcome.kubeconfig {
                    println!(
                        "kubeconfig: {}  (KUBECONFIG={} kubectl get pods -A)",
                        path.display(),
                        path.display()
                    );
                }
            } else {
                print!("{}", outcome.plan.render_tree());
                println!("dry run: nothing was created; run again without --dry-run to apply");
            }
        }
    }
    Ok(())
}

/// Prints what exists after a stopped provision or teardown (a list, or one JSON document) and
/// returns the error that exits 130/143.
fn interrupted(
    global: &GlobalArgs,
    interrupt: &Interrupt,
    err: glrunner_infra::Error,
    existing: glrunner_infra::Result<std::collections::HashMap<String, glrunner_infra::Resource>>,
) -> CliError {
    let mut resources: Vec<_> = existing.unwrap_or_default().into_values().collect();
    resources.sort_by(|a, b| a.key.cmp(&b.key));
    match global.output {
        OutputFormat::Json => {
            let _ = print_json(&serde_json::json!({
                "interrupted": true,
                "signal": interrupt.received().map(|s| s.name()),
                "message": err.to_string(),
                "existing": resources,
            }));
        }
        OutputFormat::Human => {
            println!(
                "stopped: {} resource(s) of stack {} exist",
                resources.len(),
                global.stack
            );
            for res in &resources {
                println!("  - {:<24} {}", res.key, res.describe());
            }
        }
    }
    interrupt.error(&err).unwrap_or_else(|| cli_error(err))
}

/// Runs `teardown`: everything found by tag, in dependency order, then a leftover scan.
pub async fn teardown(global: &GlobalArgs) -> Result<(), CliError> {
    teardown_until(global, &Interrupt::detached()).await
}

/// [`teardown`] that stops cleanly on `interrupt`: the deletion in flight finishes, the state
/// forgets what was deleted, what is left is printed, and the error exits 130/143. A re-run
/// continues.
pub async fn teardown_until(global: &GlobalArgs, interrupt: &Interrupt) -> Result<(), CliError> {
    let stack =
        StackName::new(global.stack.clone()).map_err(|e| CliError::invalid(flag_hint(e)))?;
    let region = resolve_region(global)?;
    let backend = InfraBackend::connect(global.backend, &region).await;
    let progress = ProgressRenderer::new(global.output, 0);
    let options = StackOptions {
        dry_run: global.dry_run,
        state_dir: (global.backend == Backend::Aws).then(|| global.state_dir.clone()),
        waits: backend.waits.clone(),
        progress: &progress,
    };
    let report = glrunner_infra::teardown_until(
        &stack,
        &region,
        backend.network.as_ref(),
        backend.cluster.as_ref(),
        &options,
        &interrupt.token(),
    )
    .await;
    progress.finish();
    let report = match report {
        Err(err @ glrunner_infra::Error::Interrupted { .. }) => {
            let existing =
                glrunner_infra::Engine::new(backend.network.as_ref(), backend.cluster.as_ref())
                    .existing(&stack)
                    .await;
            return Err(interrupted(global, interrupt, err, existing));
        }
        other => other.map_err(cli_error)?,
    };
    match global.output {
        OutputFormat::Json => print_json(&report)?,
        OutputFormat::Human if report.dry_run => {
            println!(
                "teardown of stack {stack} would delete {} resource(s), in this order:",
                report.deleted.len()
            );
            for res in &report.deleted {
                println!("  - {}", res.describe());
            }
            println!("dry run: nothing was deleted");
        }
        OutputFormat::Human => println!(
            "stack {stack} torn down: {} resource(s) deleted, nothing left",
            report.deleted.len()
        ),
    }
    Ok(())
}

/// A tokio runtime for an example: on the sandbox, a paused (virtual) clock, so a 12-minute
/// EKS creation takes milliseconds; on AWS, a normal multi-threaded runtime.
pub fn runtime(backend: Backend) -> std::io::Result<tokio::runtime::Runtime> {
    match backend {
        Backend::Sandbox => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build(),
        Backend::Aws => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    }
}
