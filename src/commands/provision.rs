//! The `provision` and `teardown` commands: flags, backend wiring, progress and output.

use std::time::Duration;

use clap::{Args, ValueEnum};
use glrunner_flow::aws::InfraBackend;
use glrunner_infra::{Progress, ProgressEvent, StackName, StackOptions, StackSpec};

use crate::cli::signals::{Interrupt, hold};
use crate::cli::{Backend, CliError, GlobalArgs, OutputFormat, print_json};

/// The examples' runtime, at the path the examples import it from.
pub use crate::cli::runtime;

/// NAT layout flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NatArg {
    /// One NAT gateway shared by all AZs (cheapest).
    Single,
    /// One NAT gateway per AZ (survives an AZ outage).
    PerAz,
}

/// Runner cache flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CacheArg {
    /// An S3 bucket the runners reach through IRSA (the default).
    S3,
    /// No distributed cache.
    None,
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
    /// Another IAM role or user ARN (path included) that gets cluster-admin besides the
    /// caller, e.g. your CI role or an IAM Identity Center role. Repeatable.
    #[arg(long = "admin-principal", value_name = "ARN")]
    pub admin_principals: Vec<String>,
    /// CIDR blocks allowed to reach the cluster's public API endpoint, comma-separated
    /// (default: 0.0.0.0/0, with a warning). Include the address glrunner runs from.
    #[arg(long, value_name = "CIDR,...", value_delimiter = ',')]
    pub public_access_cidrs: Vec<String>,
    /// The ECR pull-through cache (on by default): rules for ECR Public, Quay and
    /// registry.k8s.io, the pod execution role's pull-through permissions and an S3 gateway
    /// endpoint, so image layers skip the NAT gateway.
    #[arg(long, overrides_with = "no_image_cache")]
    pub image_cache: bool,
    /// No pull-through cache.
    #[arg(long, overrides_with = "image_cache")]
    pub no_image_cache: bool,
    /// Docker Hub credential for the cache: the ARN of a Secrets Manager secret named
    /// ecr-pullthroughcache/…, or env:VAR (an environment variable holding
    /// USERNAME:ACCESS_TOKEN, stored as ecr-pullthroughcache/<stack>/docker-hub). Never the
    /// value itself.
    #[arg(long, value_name = "ARN|env:VAR")]
    pub docker_hub_credential: Option<String>,
    /// GitLab container registry credential for the cache, as --docker-hub-credential.
    #[arg(long, value_name = "ARN|env:VAR")]
    pub gitlab_registry_credential: Option<String>,
    /// The runners' distributed cache: an S3 bucket reached through IRSA, or none.
    #[arg(long, value_enum, default_value = "s3")]
    pub cache: CacheArg,
    /// Days after which cached objects expire (1-3650).
    #[arg(long, default_value_t = glrunner_infra::cache::DEFAULT_EXPIRE_DAYS)]
    pub cache_expire_days: u16,
    /// An AWS identity for jobs, NAME=POLICY_ARN: an IAM role (<stack>-<region>-job-NAME) with
    /// that managed policy, which the job ServiceAccount NAME in the runner namespace assumes
    /// through IRSA (Fargate has no EKS Pod Identity). With one job role every job runs as it;
    /// with several a job picks one with KUBERNETES_SERVICE_ACCOUNT_OVERWRITE=NAME. Repeatable;
    /// a NAME given twice gets both policies.
    #[arg(long = "job-role", value_name = "NAME=POLICY_ARN")]
    pub job_roles: Vec<String>,
}

/// A credential flag's value: a secret ARN, or `env:VAR` read now (the value never in argv).
fn credential_source(
    flag: &str,
    value: Option<&str>,
) -> Result<Option<glrunner_infra::image_cache::CredentialSource>, CliError> {
    use glrunner_infra::image_cache::{Credential, CredentialSource};
    let Some(value) = value else { return Ok(None) };
    if value.starts_with("arn:") {
        return Ok(Some(CredentialSource::SecretArn(value.to_string())));
    }
    let Some(var) = value.strip_prefix("env:").filter(|v| !v.is_empty()) else {
        return Err(CliError::invalid(format!(
            "{flag}: give the ARN of a Secrets Manager secret (arn:aws:secretsmanager:…:secret:ecr-pullthroughcache/…) or env:VAR naming an environment variable that holds USERNAME:ACCESS_TOKEN; never the credential itself"
        )));
    };
    let text = std::env::var(var).map_err(|_| {
        CliError::invalid(format!(
            "{flag}: environment variable {var} is not set (or not UTF-8); export it with USERNAME:ACCESS_TOKEN"
        ))
    })?;
    Credential::parse(&format!("environment variable {var}"), &text)
        .map(|c| Some(CredentialSource::Provided(c)))
        .map_err(|e| CliError::invalid(format!("{flag}: {e}")))
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
    spec.cluster.admin_principals = args.admin_principals.clone();
    spec.cache = match args.cache {
        CacheArg::S3 => Some(glrunner_infra::cache::CacheSpec {
            expire_days: args.cache_expire_days,
            ..Default::default()
        }),
        CacheArg::None => None,
    };
    if !args.public_access_cidrs.is_empty() {
        spec.cluster.public_access_cidrs = args
            .public_access_cidrs
            .iter()
            .map(|c| {
                c.trim().parse().map_err(|_| {
                    CliError::invalid(format!(
                        "--public-access-cidrs: {c:?} is not an IPv4 CIDR block; write it like 203.0.113.0/24"
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
    }
    if args.no_image_cache {
        spec.image_cache = glrunner_infra::image_cache::ImageCacheSpec::off();
    }
    spec.image_cache.docker_hub = credential_source(
        "--docker-hub-credential",
        args.docker_hub_credential.as_deref(),
    )?;
    spec.image_cache.gitlab = credential_source(
        "--gitlab-registry-credential",
        args.gitlab_registry_credential.as_deref(),
    )?;
    spec.job_roles = glrunner_infra::job_roles::group(
        args.job_roles
            .iter()
            .map(|flag| glrunner_infra::job_roles::parse_flag(flag))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CliError::invalid(flag_hint(e)))?,
    );
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
            "admin_principals" => "--admin-principal",
            "public_access_cidrs" => "--public-access-cidrs",
            "image_cache.docker_hub" => "--docker-hub-credential",
            "image_cache.gitlab" => "--gitlab-registry-credential",
            "cache-expire-days" => "--cache-expire-days",
            "job_roles" => "--job-role",
            "caller" => "AWS credentials",
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

/// The region from `--region`, else aws-config's environment and profile Region providers;
/// us-east-1 on the sandbox (see [`glrunner_flow::aws::resolve_region`]).
pub fn resolve_region(global: &GlobalArgs) -> Result<String, CliError> {
    Ok(glrunner_flow::aws::resolve_region(
        global.region.as_deref(),
        global.backend,
    )?)
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
            ProgressEvent::Warning { key, message } => self.line(format!("  ! {key}: {message}")),
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
        if spec.cluster.public_endpoint_is_open() {
            eprintln!(
                "warning: the cluster's public API endpoint will be open to 0.0.0.0/0; restrict it with --public-access-cidrs"
            );
        }
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
                for line in &report.drift {
                    println!("drift (left as is): {line}");
                }
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
