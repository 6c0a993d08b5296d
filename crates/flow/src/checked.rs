//! A run with its gate and its bill: the preflight before anything billable exists, the flow,
//! then the cost projected before the run beside the cost of the durations it measured; and the
//! plan a dry run shows, which creates nothing.

use std::time::Duration;

use glrunner_runner_chart::FleetPlan;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::preflight::{
    self, CostComparison, CostProjection, PreflightPlan, PreflightReport, PreflightSources,
};
use crate::{Backends, Error, FlowConfig, FlowEvent, FlowProgress, FlowReport, Phase, PhaseStatus};

/// Why [`run_checked`] did not run: a failed preflight (nothing was created; the report names
/// each failed check and its fix), or the flow's own error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckedError {
    /// The preflight failed: nothing was created.
    #[error("preflight failed, nothing was created: {}", .0.failure_summary())]
    Preflight(Box<PreflightReport>),
    /// Invalid input, or a backend out of reach.
    #[error(transparent)]
    Flow(#[from] Error),
}

/// Whether [`run_checked`] runs the preflight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PreflightGate {
    /// Run every check; a failed one stops the run before anything is created.
    #[default]
    Check,
    /// Skip the checks (quotas, permissions, GitLab, the budget): the projection still comes
    /// from the price table, and a warning is logged.
    Skip,
}

/// The preflight's flags as values: the budget and a job's expected duration.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PreflightOptions {
    /// Stop before anything billable exists when the projection exceeds this many USD.
    pub budget_usd: Option<f64>,
    /// How long one load-test job runs once its pod is up (`None`: the default).
    pub expected_job_duration: Option<Duration>,
}

impl PreflightOptions {
    /// Checks the values; invalid input names the flag.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(b) = self.budget_usd
            && !(b.is_finite() && b >= 0.0)
        {
            return Err(Error::invalid(
                "--budget",
                format!("{b} is not an amount of USD (fix: pass e.g. --budget 5)"),
            ));
        }
        if self.expected_job_duration.is_some_and(|d| d.is_zero()) {
            return Err(Error::invalid(
                "--expected-job-duration",
                "must be above zero (fix: e.g. 30s)",
            ));
        }
        Ok(())
    }

    /// The preflight plan of `config` against `gitlab_url`, with these options applied.
    pub fn plan(&self, config: &FlowConfig, gitlab_url: &str) -> Result<PreflightPlan, Error> {
        self.validate()?;
        let mut plan = PreflightPlan::from_flow(config, gitlab_url)
            .map_err(|e| Error::invalid("--jobs", e))?;
        if let Some(job) = self.expected_job_duration {
            plan.durations.job = job;
        }
        plan.budget_usd = self.budget_usd;
        Ok(plan)
    }
}

/// Runs the preflight (or skips it, see [`PreflightGate`]) and returns the report, if one ran,
/// and the cost projection. A failed check is [`CheckedError::Preflight`]: nothing was created.
pub async fn preflight_gate(
    plan: &PreflightPlan,
    sources: &PreflightSources<'_>,
    gate: PreflightGate,
) -> Result<(Option<PreflightReport>, CostProjection), CheckedError> {
    if gate == PreflightGate::Skip {
        tracing::warn!(
            "preflight skipped: quotas, permissions, GitLab and the budget were not checked"
        );
        return Ok((None, plan.table_projection()));
    }
    let report = preflight::run(plan, sources).await;
    if report.failed() {
        return Err(CheckedError::Preflight(Box::new(report)));
    }
    let projection = report.projection.clone();
    Ok((Some(report), projection))
}

/// The embedder's entry point: the preflight gate ([`preflight_gate`], reported to `progress`
/// as [`FlowEvent::Preflight`]), then the flow ([`crate::run_until`]), then the cost of the
/// run ([`FlowReport::cost`]: the projection beside the estimate from the measured durations).
///
/// `Err` for invalid input or a failed preflight (nothing was created); otherwise the report
/// says whether a phase failed.
pub async fn run_checked(
    config: &FlowConfig,
    backends: &Backends,
    plan: &PreflightPlan,
    sources: &PreflightSources<'_>,
    gate: PreflightGate,
    progress: &dyn FlowProgress,
    stop: &CancellationToken,
) -> Result<FlowReport, CheckedError> {
    config.validate(&backends.gitlab_url)?;
    let (report, projected) = preflight_gate(plan, sources, gate).await?;
    if let Some(report) = &report {
        progress.event(&FlowEvent::Preflight(report));
    }
    let mut flow = crate::run_until(config, backends, progress, stop).await?;
    flow.cost = Some(compare(plan, projected, &flow));
    Ok(flow)
}

/// The projection against the same lines priced from the durations the run measured.
pub fn compare(
    plan: &PreflightPlan,
    projected: CostProjection,
    report: &FlowReport,
) -> CostComparison {
    let measured = |phase: Phase| {
        report
            .phases
            .iter()
            .find(|p| p.phase == phase && p.status == PhaseStatus::Done)
            .map(|p| Duration::from_secs_f64(p.secs))
    };
    let releases = match (measured(Phase::Runners), measured(Phase::Releases)) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or_default() + b.unwrap_or_default()),
    };
    let durations = projected.durations.with_measured(
        measured(Phase::Provision),
        releases,
        measured(Phase::LoadTest),
        measured(Phase::Teardown),
    );
    // The estimate uses the projection's prices: only the durations differ.
    let prices = projected.prices.clone();
    CostComparison {
        estimated: preflight::cost::project(&plan.cost_inputs(), &durations, &prices),
        projected,
    }
}

/// What `--dry-run` shows: the phases, the fleet and the projected cost. Making it calls nothing.
#[derive(Debug, Serialize)]
pub struct DryRun {
    /// Phases that would run.
    pub phases: Vec<Phase>,
    /// Stack.
    pub stack: String,
    /// Region.
    pub region: String,
    /// GitLab project.
    pub project: String,
    /// The fleet plan.
    pub fleet: FleetPlan,
    /// What the run would cost (table prices: a dry run makes no call).
    pub projection: CostProjection,
}

impl DryRun {
    /// The dry-run plan of `config` with its preflight plan `pre` (see [`FlowConfig::plan`]).
    pub fn new(config: &FlowConfig, pre: &PreflightPlan) -> Self {
        Self {
            phases: config.phases.iter().copied().collect(),
            stack: config.spec.stack.to_string(),
            region: config.spec.region.clone(),
            project: config.project.clone(),
            fleet: pre.fleet.clone(),
            projection: pre.table_projection(),
        }
    }

    /// The plan as lines for a terminal.
    pub fn render_text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let phases: Vec<&str> = self.phases.iter().map(|p| p.as_str()).collect();
        let _ = writeln!(
            out,
            "full flow for stack {} in {}: {}",
            self.stack,
            self.region,
            phases.join(" → ")
        );
        for s in &self.fleet.shards {
            let _ = writeln!(
                out,
                "  release {:<28} tag {:<16} concurrent {:<4} parallel {:?}",
                s.release, s.tag, s.concurrent, s.parallel
            );
        }
        let _ = writeln!(out, "projected cost:");
        out.push_str(&self.projection.render_text());
        let _ = writeln!(
            out,
            "dry run: nothing was created; run again without --dry-run"
        );
        out
    }
}
