//! The `doctor` command (and the preflight flags `full_flow` shares): flags, backend wiring
//! and output.

use std::time::Duration;

use clap::Args;

use super::{PreflightPlan, PreflightReport, PreflightSources, Status};
use crate::cli::{Backend, CliError, GlobalArgs, OutputFormat, print_json};
use crate::flow::FlowConfig;
use crate::flow::command::{FlowArgs, flow_config};
use crate::sandbox::{SandboxConfig, SandboxWorld};

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
    /// reference tutorial's makespans: 60).
    #[arg(long, value_name = "VCPUS")]
    pub fargate_vcpu_quota: Option<u32>,
}

impl PreflightArgs {
    /// Checks the flags; invalid input names the flag. Returns `--expected-job-duration`.
    pub fn validate(&self, backend: Backend) -> Result<Option<Duration>, CliError> {
        if let Some(b) = self.budget
            && !(b.is_finite() && b >= 0.0)
        {
            return Err(CliError::invalid(format!(
                "--budget: {b} is not an amount of USD (fix: pass e.g. --budget 5)"
            )));
        }
        if backend == Backend::Aws && self.fargate_vcpu_quota.is_some() {
            return Err(CliError::invalid(
                "--fargate-vcpu-quota: sandbox only (on AWS the preflight reads the real quota)",
            ));
        }
        let Some(raw) = &self.expected_job_duration else {
            return Ok(None);
        };
        let d = humantime::parse_duration(raw).map_err(|e| {
            CliError::invalid(format!(
                "--expected-job-duration: {:?} is not a duration ({e}; fix: e.g. 30s or 5m)",
                raw
            ))
        })?;
        if d.is_zero() {
            return Err(CliError::invalid(
                "--expected-job-duration: must be above zero (fix: e.g. 30s)",
            ));
        }
        Ok(Some(d))
    }

    /// The preflight plan of `config`, with these flags applied.
    pub fn plan(
        &self,
        config: &FlowConfig,
        gitlab_url: &str,
        backend: Backend,
    ) -> Result<PreflightPlan, CliError> {
        let job = self.validate(backend)?;
        let mut plan = PreflightPlan::from_flow(config, gitlab_url)
            .map_err(|e| CliError::invalid(format!("--jobs: {e}")))?;
        if let Some(job) = job {
            plan.durations.job = job;
        }
        plan.budget_usd = self.budget;
        Ok(plan)
    }

    /// The preflight plan of `config` on a sandbox `world`: a job pod's start and (unless
    /// `--expected-job-duration` is given) a job's duration are the timing model's, so the
    /// preflight expects what the simulated runners will do.
    pub fn sandbox_plan(
        &self,
        config: &FlowConfig,
        world: &SandboxWorld,
    ) -> Result<PreflightPlan, CliError> {
        let mut plan = self.plan(config, &world.backends().gitlab_url, Backend::Sandbox)?;
        let model = &world.config().model;
        let image = config
            .job_image()
            .unwrap_or_else(|| glrunner_gitlab_client::ci::DEFAULT_IMAGE.to_owned());
        plan.durations.pod_start = model.expected_pod_start(&image);
        if self.expected_job_duration.is_none() {
            plan.durations.job = model.expected_job();
        }
        Ok(plan)
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
    let args = &flow.preflight;
    let config = flow_config(global, flow)?;
    match global.backend {
        Backend::Sandbox => {
            let world = SandboxWorld::new(&config.spec.region, sandbox_config(flow));
            let backends = world.backends();
            let plan = args.sandbox_plan(&config, &world)?;
            let sources = PreflightSources {
                account: &world.account,
                network: backends.network.as_ref(),
                gitlab: Some(backends.gitlab.as_ref()),
                eks_tokens: None,
            };
            Ok(super::run(&plan, &sources).await)
        }
        Backend::Aws => {
            let connection = crate::flow::aws::Connection::from_env(
                flow.gitlab_url.as_deref(),
                flow.helm.clone(),
                global,
            )?;
            let helm = connection
                .helm
                .clone()
                .unwrap_or_else(|| std::path::PathBuf::from("helm"));
            let region = connection.region.clone();
            let backends = crate::flow::aws::connect(&config.spec, connection).await?;
            let mut plan = args.plan(&config, &backends.gitlab_url, Backend::Aws)?;
            plan.helm = Some(helm);
            let sdk = glrunner_infra::aws::load_config(Some(&region)).await;
            let account = glrunner_infra::aws::AwsAccount::new(&sdk);
            // Signing is local: no call until helm runs.
            let eks_tokens = glrunner_infra::kubeconfig::EksTokenGenerator::new(&sdk).ok();
            let sources = PreflightSources {
                account: &account,
                network: backends.network.as_ref(),
                gitlab: Some(backends.gitlab.as_ref()),
                eks_tokens: eks_tokens.as_ref(),
            };
            Ok(super::run(&plan, &sources).await)
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
