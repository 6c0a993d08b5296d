//! Phase 1, provision: network + EKS-on-Fargate cluster through the infra crate.

use super::{Error, Phase, ProvisioningSummary, Run, at};
use crate::events::InfraProgress;

impl Run<'_> {
    /// Provisions the stack and records the cluster's endpoint and CA.
    pub(super) async fn provision(&mut self) -> Result<String, Error> {
        let b = self.backends;
        let progress = InfraProgress(self.progress);
        let options = self.stack_options(&progress);
        self.created.infra = true;
        let outcome = glrunner_infra::provision_until(
            &self.config.spec,
            b.network.as_ref(),
            b.cluster.as_ref(),
            &options,
            &self.stop,
        )
        .await
        .map_err(at(Phase::Provision))?;
        let applied = outcome
            .applied
            .as_ref()
            .ok_or_else(|| Error::phase(Phase::Provision, "nothing was applied"))?;
        let summary = ProvisioningSummary {
            makespan_secs: applied.makespan_s,
            steps: applied.steps.len(),
            created: applied.created(),
            kubeconfig: outcome.kubeconfig.clone(),
        };
        let line = format!(
            "{} resource(s), {} created, makespan {:.0}s",
            summary.steps, summary.created, summary.makespan_secs
        );
        self.report.provisioning = Some(summary);
        self.access = Some(
            b.cluster
                .cluster_access(&self.config.spec.cluster.name)
                .await
                .map_err(at(Phase::Provision))?,
        );
        Ok(line)
    }
}
