//! Phase 3, plan: the runner fleet (shards, tags, `concurrent`) and every release's values.

use glrunner_runner_chart::FleetPlan;

use super::{Error, FleetSummary, Phase, Run, ShardSummary};
use crate::RunPlan;

impl Run<'_> {
    /// The run's plan ([`crate::FlowConfig::plan`]), computed once and recorded in the report.
    pub(super) fn run_plan(&mut self) -> Result<RunPlan, Error> {
        if let Some(p) = &self.plan {
            return Ok(p.clone());
        }
        let plan = self
            .config
            .plan(&self.backends.gitlab_url)
            .map_err(|e| match e {
                Error::InvalidInput { message, .. } => Error::phase(Phase::Plan, message),
                other => other,
            })?;
        for warning in &plan.fleet.warnings {
            tracing::warn!(?warning, "fleet plan warning");
            self.step(Phase::Plan, format!("warning: {warning:?}"));
        }
        self.report.fleet = Some(FleetSummary {
            total_jobs: plan.fleet.total_jobs,
            // What the runners are installed with, not the fleet's recommendation (the
            // reference profile keeps GitLab Runner's default).
            poll_timeout_secs: plan.poll_timeout.as_secs(),
            shards: plan
                .fleet
                .shards
                .iter()
                .map(|s| ShardSummary {
                    release: s.release.clone(),
                    tag: s.tag.clone(),
                    jobs: s.jobs,
                    concurrent: s.concurrent,
                    parallel: s.parallel.clone(),
                    runner_id: None,
                })
                .collect(),
            image_paths: self.config.image_paths(),
        });
        self.plan = Some(plan.clone());
        Ok(plan)
    }

    /// The fleet of the run's plan (without copying the releases' values once it is computed).
    pub(super) fn plan(&mut self) -> Result<FleetPlan, Error> {
        match &self.plan {
            Some(p) => Ok(p.fleet.clone()),
            None => Ok(self.run_plan()?.fleet),
        }
    }
}
