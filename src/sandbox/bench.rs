//! What the sandbox benchmark measures (`cargo run --example sandbox_bench`): modelled makespans of both runner profiles beside the published figures, the sensitivity of the 400-job makespan to each model parameter, and the simulator's wall time per 1,000 jobs.

use std::time::Instant;

use glrunner_infra::{StackName, StackSpec};

use super::model::{FleetModel, published};
use super::{Limit, RunnerProfile, SandboxConfig, SandboxWorld};
use crate::flow::{FlowConfig, FlowEvent};

/// One modelled run.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelledRun {
    /// Jobs.
    pub jobs: u32,
    /// Profile.
    pub profile: RunnerProfile,
    /// Job makespan, seconds (modelled).
    pub makespan_secs: Option<f64>,
    /// Queue time p50, seconds (modelled).
    pub queue_p50_secs: Option<f64>,
    /// Queue time p95, seconds (modelled).
    pub queue_p95_secs: Option<f64>,
    /// Jobs that did not succeed.
    pub failed_jobs: usize,
    /// What limited it.
    pub limit: Option<Limit>,
    /// The published makespan for this many jobs, seconds.
    pub published_secs: Option<f64>,
    /// Wall-clock seconds the run took.
    pub wall_secs: f64,
}

/// Runs the whole flow on a fresh world (no hung pods) and summarises it. Call inside a paused
/// tokio runtime ([`crate::provisioning::runtime`] with the sandbox backend).
pub async fn modelled_run(jobs: u32, profile: RunnerProfile, model: FleetModel) -> ModelledRun {
    modelled_run_with(
        jobs,
        profile,
        model,
        glrunner_gitlab_client::ci::DEFAULT_MAX_JOBS,
    )
    .await
}

async fn modelled_run_with(
    jobs: u32,
    profile: RunnerProfile,
    model: FleetModel,
    max_pipeline_jobs: u32,
) -> ModelledRun {
    let started = Instant::now();
    let world = SandboxWorld::new(
        "us-east-1",
        SandboxConfig::default()
            .with_profile(profile)
            .with_model(model)
            .with_hung_fraction(0.0),
    );
    let config = FlowConfig::new(
        StackSpec::new(StackName::new("bench").expect("valid name"), "us-east-1"),
        "sandbox/loadtest",
        jobs,
    )
    .with_runner_profile(profile);
    let config = FlowConfig {
        max_pipeline_jobs,
        ..config
    };
    let report = super::run_flow(&world, &config, &|_: &FlowEvent<'_>| {}).await;
    let (load, limit) = match &report {
        Ok(r) => (r.load_test.clone(), r.model.as_ref().map(|m| m.limit)),
        Err(_) => (None, None),
    };
    ModelledRun {
        jobs,
        profile,
        makespan_secs: load.as_ref().and_then(|l| l.job_makespan_secs),
        queue_p50_secs: load.as_ref().and_then(|l| l.queue_p50_secs),
        queue_p95_secs: load.as_ref().and_then(|l| l.queue_p95_secs),
        failed_jobs: load.as_ref().map_or(jobs as usize, |l| {
            l.total_jobs - l.by_status.get("success").copied().unwrap_or(0)
        }),
        limit,
        published_secs: published(jobs).map(|p| p.makespan_secs),
        wall_secs: started.elapsed().as_secs_f64(),
    }
}

/// One row of the sensitivity table: the 400-job reference makespan with one parameter at
/// half and at one and a half times its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sensitivity {
    /// Parameter name ([`FleetModel::SCALABLE`]).
    pub parameter: &'static str,
    /// Makespan at 0.5×, seconds.
    pub at_half: Option<f64>,
    /// Makespan at 1.5×, seconds.
    pub at_one_and_a_half: Option<f64>,
    /// Largest change against the baseline, seconds.
    pub swing_secs: f64,
}

/// The sensitivity of the `jobs`-job makespan of `profile` to every scalable parameter, largest
/// swing first, with the baseline makespan.
pub async fn sensitivity(jobs: u32, profile: RunnerProfile) -> (Option<f64>, Vec<Sensitivity>) {
    let base_model = FleetModel::default();
    let baseline = modelled_run(jobs, profile, base_model.clone())
        .await
        .makespan_secs;
    let mut rows = Vec::new();
    for parameter in FleetModel::SCALABLE {
        let mut at = [None, None];
        for (slot, factor) in at.iter_mut().zip([0.5, 1.5]) {
            if let Some(model) = base_model.scaled(parameter, factor) {
                *slot = modelled_run(jobs, profile, model).await.makespan_secs;
            }
        }
        let swing = at
            .iter()
            .flatten()
            .zip(std::iter::repeat(baseline.unwrap_or(0.0)))
            .map(|(v, b)| (v - b).abs())
            .fold(0.0, f64::max);
        rows.push(Sensitivity {
            parameter,
            at_half: at[0],
            at_one_and_a_half: at[1],
            swing_secs: swing,
        });
    }
    rows.sort_by(|a, b| b.swing_secs.total_cmp(&a.swing_secs));
    (baseline, rows)
}

/// Wall-clock seconds of a whole sandbox flow of `jobs` jobs on an account whose quota and launch
/// rate do not bind (the cost of the simulation itself, not a modelled figure), and its failed jobs.
pub async fn wall_time(jobs: u32) -> (f64, usize) {
    let mut model = FleetModel::default();
    model.fargate.vcpu_quota = 1_000_000.0;
    model.fargate.launch_burst = 1_000_000.0;
    model.fargate.launch_per_second = 1_000_000.0;
    // One pipeline of all the jobs, as a self-managed GitLab that allows it would run.
    let run = modelled_run_with(jobs, RunnerProfile::Tuned, model, jobs.max(1)).await;
    (run.wall_secs, run.failed_jobs)
}
