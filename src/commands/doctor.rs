//! The `doctor` command (and the preflight flags `full_flow` shares): flags, backend wiring
//! and output.

use std::path::{Path, PathBuf};

use clap::Args;
use glrunner_flow::PreflightOptions;
use glrunner_flow::aws::Environment;
use glrunner_flow::lint::{self, LintError, LintFleet};
use glrunner_flow::preflight::{self, PreflightReport, Status};
use glrunner_sandbox::{SandboxConfig, SandboxWorld};

use super::full_flow::{FlowArgs, flow_config};
use crate::cli::{Backend, CliError, GlobalArgs, OutputFormat, print_json};

/// `doctor`'s own flags (beside `full_flow`'s, which say what fleet is checked).
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Lint a project's `.gitlab-ci.yml` instead of running the preflight: list, per job, what
    /// cannot run on the Fargate fleet the other flags plan (--jobs, --max-per-release,
    /// --runner-profile, --stack): privileged Docker-in-Docker, docker build / buildah / kaniko,
    /// requests beyond Fargate's sizes or the runners' overwrite ceilings, GPUs, Docker Hub
    /// images past the pull-through cache, tags no runner serves. Local `include:` files are
    /// read relative to the file's directory (the repository root); remote, template, project
    /// and component includes are named as not checked. Calls nothing. Exit 1 when a job cannot
    /// run, 0 when every job can (warnings allowed), 2 when the file cannot be read or parsed.
    #[arg(long, value_name = "PATH")]
    pub ci_file: Option<PathBuf>,
}

/// Flags of the preflight and the cost projection.
#[derive(Debug, Clone, Args)]
pub struct PreflightArgs {
    /// Stop before anything billable exists when the projected cost exceeds this many USD.
    #[arg(long, value_name = "USD", allow_negative_numbers = true)]
    pub budget: Option<f64>,

    /// How long one load-test job runs once its pod is up, for the cost projection and the
    /// quota's queueing estimate (e.g. 30s, 5m). Default: 30s on AWS (the default load-test
    /// script only echoes); on the sandbox, the timing model's own mean.
    #[arg(long)]
    pub expected_job_duration: Option<String>,

    /// Sandbox only: the simulated account's Fargate On-Demand vCPU quota (L-3032A538), one value
    /// for the preflight and the runner simulator's model (default: the model's, fitted to the
    /// reference tutorial's makespans: 80).
    #[arg(long, value_name = "VCPUS")]
    pub fargate_vcpu_quota: Option<u32>,
}

impl PreflightArgs {
    /// The flags as the library's options; invalid input names the flag.
    pub fn options(&self, backend: Backend) -> Result<PreflightOptions, CliError> {
        if backend == Backend::Aws && self.fargate_vcpu_quota.is_some() {
            return Err(CliError::invalid(
                "--fargate-vcpu-quota: sandbox only (on AWS the preflight reads the real quota)",
            ));
        }
        let expected_job_duration = match &self.expected_job_duration {
            None => None,
            Some(raw) => Some(humantime::parse_duration(raw).map_err(|e| {
                CliError::invalid(format!(
                    "--expected-job-duration: {raw:?} is not a duration ({e}; fix: e.g. 30s or 5m)"
                ))
            })?),
        };
        let options = PreflightOptions {
            budget_usd: self.budget,
            expected_job_duration,
        };
        options.validate()?;
        Ok(options)
    }
}

/// The sandbox configuration `full_flow`'s and `doctor`'s flags ask for: seed, runner profile and
/// `--fargate-vcpu-quota` (one quota for the preflight's account and the model).
pub fn sandbox_config(flow: &FlowArgs) -> SandboxConfig {
    let mut sandbox = SandboxConfig::default()
        .with_seed(flow.seed)
        .with_profile(flow.runner_profile);
    if let Some(quota) = flow.preflight.fargate_vcpu_quota {
        sandbox = sandbox.with_fargate_vcpu_quota(f64::from(quota));
    }
    sandbox
}

/// Runs the preflight for `full_flow`'s flags on the chosen backend and returns the report.
/// Creates nothing.
pub async fn preflight(global: &GlobalArgs, flow: &FlowArgs) -> Result<PreflightReport, CliError> {
    let config = flow_config(global, flow)?;
    let options = flow.preflight.options(global.backend)?;
    match global.backend {
        Backend::Sandbox => {
            let world = SandboxWorld::new(&config.spec.region, sandbox_config(flow));
            let backends = world.backends();
            let plan = world.preflight_plan(&config, &options)?;
            Ok(preflight::run(&plan, &world.preflight_sources(&backends)).await)
        }
        Backend::Aws => {
            let env = Environment::from_env(
                flow.gitlab_url.as_deref(),
                flow.helm.clone(),
                global.region.as_deref(),
                global.state_dir.clone(),
            )?;
            let backends = env.connect().await?;
            let mut plan = options.plan(&config, &backends.gitlab_url)?;
            plan.helm = Some(
                env.helm()
                    .map_or_else(|| std::path::PathBuf::from("helm"), ToOwned::to_owned),
            );
            let clients = env.preflight_clients().await;
            Ok(preflight::run(&plan, &clients.sources(&backends)).await)
        }
    }
}

/// `doctor`: prints the checks and the projection; exit 1 when a check fails.
pub async fn doctor(global: &GlobalArgs, flow: &FlowArgs) -> Result<(), CliError> {
    if flow.skip_preflight {
        return Err(CliError::invalid(
            "--skip-preflight: doctor is the preflight; the flag belongs to full_flow",
        ));
    }
    let report = preflight(global, flow).await?;
    match global.output {
        OutputFormat::Json => print_json(&report)?,
        OutputFormat::Human => print!("{}", report.render_text()),
    }
    if report.failed() {
        let n = report
            .checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .count();
        return Err(CliError::failure(format!(
            "{n} preflight check(s) failed: {}",
            report.failure_summary()
        )));
    }
    Ok(())
}

/// `doctor --ci-file PATH`: lints the CI file against the fleet `full_flow`'s flags plan, prints
/// the report; exit 1 when a job cannot run on it, 2 when the file is bad input.
pub fn lint_ci_file(global: &GlobalArgs, flow: &FlowArgs, path: &Path) -> Result<(), CliError> {
    // The project and the GitLab URL change neither the runners' tags nor their pod sizes; the
    // plan needs both, so a lint on `--backend aws` does not ask for them.
    let mut flow = flow.clone();
    flow.project
        .get_or_insert_with(|| "lint/ci-file".to_owned());
    let config = flow_config(global, &flow)?;
    let gitlab_url = flow
        .gitlab_url
        .as_deref()
        .unwrap_or(glrunner_sandbox::SANDBOX_GITLAB_URL);
    let fleet = LintFleet::from_plan(&config.plan(gitlab_url)?);
    let report = lint::lint_file(path, &fleet).map_err(|e| {
        let fix = match e {
            LintError::Read { .. } => {
                "fix: pass the path of a readable .gitlab-ci.yml (its local includes are read relative to its directory)"
            }
            _ => {
                "fix: correct the file's YAML; it must be a mapping of keywords and jobs (GitLab's pipeline editor validates it too)"
            }
        };
        CliError::invalid(format!("--ci-file: {e} ({fix})"))
    })?;
    match global.output {
        OutputFormat::Json => print_json(&report)?,
        OutputFormat::Human => print!("{}", report.render_text()),
    }
    let failing = report.jobs_that_cannot_run();
    if !failing.is_empty() {
        return Err(CliError::failure(format!(
            "{} job(s) of {} cannot run on this Fargate fleet: {}",
            failing.len(),
            path.display(),
            failing.join(", ")
        )));
    }
    Ok(())
}
