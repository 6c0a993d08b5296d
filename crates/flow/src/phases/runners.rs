//! Phase 4, runners: one GitLab runner per shard, reused while its token is in its Secret.

use glrunner_gitlab_client::{GitLabApiExt, NewRunner, ProjectRef};
use glrunner_runner_chart::{RunnerToken, SecretRef};

use super::{Error, Phase, Run, ShardRunner, at};
use crate::Ownership;

impl Run<'_> {
    /// One GitLab runner per shard; a runner whose token is still in its Secret is reused.
    pub(super) async fn create_runners(&mut self) -> Result<String, Error> {
        let phase = Phase::Runners;
        let plan = self.plan()?;
        // A runner is only worth creating on a cluster that can run it.
        self.checked_clients(phase).await?;
        let project = self.project(false).await?;
        let gitlab = self.backends.gitlab.clone();
        let existing = gitlab
            .list_runners(&ProjectRef::Id(project.id))
            .await
            .map_err(at(phase))?;
        let namespace = self.config.spec.cluster.runner_namespace.clone();
        let (mut created, mut reused) = (0, 0);
        self.runners.clear();
        for shard in &plan.shards {
            let description = self.config.ownership().runner_description(&shard.release);
            let found = existing
                .iter()
                .find(|r| r.description.as_deref() == Some(description.as_str()));
            if let Some(runner) = found {
                let clients = self.checked_clients(phase).await?;
                let secret = SecretRef::new(&namespace, Ownership::secret_name(&shard.release));
                // GitLab's list entries carry no tags: read them from the runner's details.
                let details = gitlab.get_runner(runner.id).await.map_err(at(phase))?;
                if let Some(stored) = clients.secrets.get(&secret).await.map_err(at(phase))?
                    && details.tag_list.contains(&shard.tag)
                    && details.run_untagged == shard.run_untagged
                {
                    self.runners.push(ShardRunner {
                        release: shard.release.clone(),
                        runner_id: runner.id,
                        token: stored.token,
                    });
                    reused += 1;
                    continue;
                }
                // Its token is lost (or its tags or run_untagged are stale): replace it.
                gitlab.delete_runner(runner.id).await.map_err(at(phase))?;
            }
            self.created.runners = true;
            let new = NewRunner::project(project.id, description, vec![shard.tag.clone()])
                .run_untagged(shard.run_untagged);
            let runner = gitlab
                .create_runner_checked(&new)
                .await
                .map_err(at(phase))?;
            let token = RunnerToken::new(runner.token.expose()).map_err(at(phase))?;
            self.step(
                phase,
                format!(
                    "runner {} for tag {} ({})",
                    runner.id, shard.tag, shard.release
                ),
            );
            self.runners.push(ShardRunner {
                release: shard.release.clone(),
                runner_id: runner.id,
                token,
            });
            created += 1;
        }
        if let Some(fleet) = &mut self.report.fleet {
            for s in &mut fleet.shards {
                s.runner_id = self
                    .runners
                    .iter()
                    .find(|r| r.release == s.release)
                    .map(|r| r.runner_id);
            }
        }
        Ok(format!("{created} runner(s) created, {reused} reused"))
    }
}
