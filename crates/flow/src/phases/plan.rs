//! Phase 3, plan: the runner fleet (shards, tags, `concurrent`).

use glrunner_runner_chart::FleetPlan;

use super::{Error, FleetSummary, Phase, Run, ShardSummary, at};

impl Run<'_> {
    /// The fleet plan, computed once and recorded in the report.
    pub(super) fn plan(&mut self) -> Result<FleetPlan, Error> {
        if let Some(p) = &self.plan {
            return Ok(p.clone());
        }
        let template = self.config.template(&self.backends.gitlab_url);
        let plan =
            FleetPlan::new(&self.config.fleet_request(&template)).map_err(at(Phase::Plan))?;
        for warning in &plan.warnings {
            tracing::warn!(?warning, "fleet plan warning");
            self.step(Phase::Plan, format!("warning: {warning:?}"));
        }
        self.report.fleet = Some(FleetSummary {
            total_jobs: plan.total_jobs,
            poll_timeout_secs: plan.recommended_poll_timeout.as_secs(),
            shards: plan
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
        });
        self.plan = Some(plan.clone());
        Ok(plan)
    }
}
