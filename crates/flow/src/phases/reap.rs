//! Phase 7, reap: janitor rounds until no job pod is left, cross-checked with GitLab.

use std::sync::Arc;

use glrunner_janitor::policy::Policy;
use glrunner_janitor::{ListQuery, Reaper, ReaperConfig};
use tokio::time::Instant;

use super::{Error, Phase, ReapSummary, Run, at};
use crate::janitor::GitLabJobStatus;

impl Run<'_> {
    /// Sleeps one reap interval; a stop ends the phase (`Err`).
    async fn pause_or_stop(&self, phase: Phase) -> Result<(), Error> {
        tokio::select! {
            biased;
            () = self.stop.cancelled() => Err(Error::stopped(phase, super::STOPPED)),
            () = tokio::time::sleep(self.config.reap_interval) => Ok(()),
        }
    }

    /// Janitor rounds until no job pod is left or the deadline passes.
    pub(super) async fn reap(&mut self) -> Result<String, Error> {
        let phase = Phase::Reap;
        let clients = self.clients(phase).await?;
        let namespace = self.config.spec.cluster.runner_namespace.clone();
        // A job pod Pending past the runners' poll timeout is one its runner gave up on.
        let pending_timeout = self
            .plan
            .as_ref()
            .map_or(Policy::DEFAULT_PENDING_TIMEOUT, |p| p.poll_timeout);
        let policy = Policy::new([namespace.clone()])
            .with_grace(self.config.reap_grace)
            .with_pending_timeout(pending_timeout);
        let mut reaper = Reaper::new(clients.pods.clone(), ReaperConfig::new(policy))
            .map_err(at(phase))?
            .with_clock(clients.clock.clone());
        if self.project.is_some() {
            reaper = reaper
                .with_job_status(Arc::new(GitLabJobStatus::new(self.backends.gitlab.clone())));
        }
        let t0 = Instant::now();
        let mut summary = ReapSummary::default();
        let mut last_error: Option<glrunner_janitor::Error>;
        loop {
            // A failed round (the API server restarting, throttling) is retried next interval,
            // as `reap --watch` does; only a deadline with no successful round fails the phase.
            let round = match reaper.run_once().await {
                Ok(round) => {
                    last_error = None;
                    round
                }
                Err(e) => {
                    self.step(
                        phase,
                        format!(
                            "round failed, retrying in {:?}: {e}",
                            self.config.reap_interval
                        ),
                    );
                    tracing::warn!(error = %e, "reap round failed; retrying next interval");
                    let deadline_passed = t0.elapsed() >= self.config.reap_deadline;
                    last_error = Some(e);
                    if deadline_passed {
                        break;
                    }
                    self.pause_or_stop(phase).await?;
                    continue;
                }
            };
            summary.add_round(&round);
            if round.deleted() > 0 {
                self.step(
                    phase,
                    format!(
                        "round {}: reaped {} pod(s)",
                        summary.rounds,
                        round.deleted()
                    ),
                );
            }
            let left = match clients
                .pods
                .list_pods(&ListQuery::job_pods(&namespace))
                .await
            {
                Ok(left) => left,
                Err(e) => {
                    self.step(phase, format!("listing job pods failed, retrying: {e}"));
                    let deadline_passed = t0.elapsed() >= self.config.reap_deadline;
                    last_error = Some(e);
                    if deadline_passed {
                        break;
                    }
                    self.pause_or_stop(phase).await?;
                    continue;
                }
            };
            summary.remaining_job_pods = left.len();
            if left.is_empty() || t0.elapsed() >= self.config.reap_deadline {
                break;
            }
            self.pause_or_stop(phase).await?;
        }
        if let Some(e) = last_error {
            return Err(Error::phase(
                phase,
                format!("no janitor round succeeded before the deadline: {e}"),
            ));
        }
        summary.secs = t0.elapsed().as_secs_f64();
        let line = summary.one_line();
        self.report.reap = Some(summary);
        Ok(line)
    }
}
