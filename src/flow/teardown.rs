//! Phase 8, teardown (also the cleanup after a failure): releases, GitLab runners, infrastructure.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use glrunner_gitlab_client::ProjectRef;
use glrunner_infra::{Engine, StackOptions};
use glrunner_runner_chart::{ReleaseId, SecretRef};

use super::events::InfraProgress;
use super::{Phase, Run, TeardownSummary};

/// What a teardown covers.
pub(super) struct Scope {
    pub(super) releases: bool,
    pub(super) runners: bool,
    pub(super) infra: bool,
    pub(super) trigger: &'static str,
}

impl Run<'_> {
    /// Removes releases, GitLab runners and infrastructure per `scope`, best effort (every step
    /// is tried; errors are collected), then checks for leftovers.
    pub(super) async fn teardown(&mut self, scope: Scope) -> TeardownSummary {
        let phase = Phase::Teardown;
        let mut summary = TeardownSummary {
            trigger: scope.trigger.to_owned(),
            ..TeardownSummary::default()
        };
        let prefix = format!("{}-", self.config.release_prefix());
        let namespace = self.config.spec.cluster.runner_namespace.clone();
        let gitlab = self.backends.gitlab.clone();

        if let Some(pipeline) = self.created.pipeline.take()
            && let Some(project) = &self.project
        {
            match gitlab
                .cancel_pipeline(&ProjectRef::Id(project.id), pipeline)
                .await
            {
                Ok(_) => {
                    self.step(phase, format!("canceled pipeline {pipeline}"));
                    summary.pipeline_canceled = Some(pipeline);
                }
                Err(e) => summary
                    .errors
                    .push(format!("cancel pipeline {pipeline}: {e}")),
            }
        }

        let mut clients = None;
        if scope.releases {
            match self.clients(phase).await {
                Ok(c) => {
                    match retry("list releases", || c.releases.list(Some(&namespace))).await {
                        Ok(list) => {
                            for release in list.into_iter().filter(|r| r.name.starts_with(&prefix))
                            {
                                let id = ReleaseId::new(&namespace, &release.name);
                                let secret = Self::secret_name(&release.name);
                                let removed =
                                    retry(&format!("uninstall {}", id.describe()), || {
                                        glrunner_runner_chart::remove_runner(
                                            c.secrets.as_ref(),
                                            c.releases.as_ref(),
                                            &id,
                                            &secret,
                                            self.config.release_timeout,
                                        )
                                    })
                                    .await;
                                match removed {
                                    Ok(_) => {
                                        self.step(phase, format!("uninstalled {}", id.describe()));
                                        summary.releases_removed += 1;
                                    }
                                    Err(e) => summary.errors.push(e),
                                }
                            }
                        }
                        Err(e) => summary.errors.push(e),
                    }
                    // Secrets written for releases that never got installed.
                    let shards = self
                        .plan
                        .as_ref()
                        .map(|p| p.shards.clone())
                        .unwrap_or_default();
                    for shard in shards {
                        let secret = SecretRef::new(&namespace, Self::secret_name(&shard.release));
                        match retry(&format!("delete {}", secret.describe()), || {
                            c.secrets.delete(&secret)
                        })
                        .await
                        {
                            Ok(true) => self.step(phase, format!("deleted {}", secret.describe())),
                            Ok(false) => {}
                            Err(e) => summary.errors.push(e),
                        }
                    }
                    clients = Some(c);
                }
                // No cluster (never created, or already gone): no release can exist.
                Err(e) => tracing::info!(error = %e, "no cluster to uninstall releases from"),
            }
        }

        let project = match &self.project {
            Some(p) => Some(p.clone()),
            None if scope.runners => self.project(false).await.ok(),
            None => None,
        };
        if scope.runners
            && let Some(project) = &project
        {
            let mine = format!("{}/", self.config.spec.stack);
            let project_ref = ProjectRef::Id(project.id);
            match retry("list runners", || gitlab.list_runners(&project_ref)).await {
                Ok(list) => {
                    for runner in list.into_iter().filter(|r| {
                        r.description
                            .as_deref()
                            .is_some_and(|d| d.starts_with(&mine))
                    }) {
                        let deleted = retry(&format!("delete runner {}", runner.id), || async {
                            match gitlab.delete_runner(runner.id).await {
                                Err(glrunner_gitlab_client::Error::NotFound { .. }) => Ok(()),
                                other => other,
                            }
                        })
                        .await;
                        match deleted {
                            Ok(()) => {
                                self.step(phase, format!("deleted GitLab runner {}", runner.id));
                                summary.runners_deleted += 1;
                            }
                            Err(e) => summary.errors.push(e),
                        }
                    }
                }
                Err(e) => summary.errors.push(e),
            }
        }

        // Leftovers of the cluster side are checked before the cluster goes away.
        if scope.releases
            && let Some(c) = &clients
        {
            match c.releases.list(Some(&namespace)).await {
                Ok(list) => {
                    summary.leftovers.releases = list
                        .into_iter()
                        .filter(|r| r.name.starts_with(&prefix))
                        .map(|r| r.name)
                        .collect()
                }
                Err(e) => summary
                    .errors
                    .push(format!("list releases after teardown: {e}")),
            }
        }
        if scope.runners
            && let Some(project) = &project
        {
            let mine = format!("{}/", self.config.spec.stack);
            match gitlab.list_runners(&ProjectRef::Id(project.id)).await {
                Ok(list) => {
                    summary.leftovers.runners = list
                        .into_iter()
                        .filter(|r| {
                            r.description
                                .as_deref()
                                .is_some_and(|d| d.starts_with(&mine))
                        })
                        .map(|r| format!("runner {}", r.id))
                        .collect();
                }
                Err(e) => summary
                    .errors
                    .push(format!("list runners after teardown: {e}")),
            }
        }

        if scope.infra {
            let b = self.backends;
            let progress = InfraProgress(self.progress);
            let options = StackOptions {
                dry_run: false,
                state_dir: b.state_dir.clone(),
                waits: b.waits.clone(),
                progress: &progress,
            };
            let spec = &self.config.spec;
            match glrunner_infra::teardown(
                &spec.stack,
                &spec.region,
                b.network.as_ref(),
                b.cluster.as_ref(),
                &options,
            )
            .await
            {
                Ok(report) => summary.infra_deleted = report.deleted.len(),
                Err(e) => summary.errors.push(format!("infrastructure teardown: {e}")),
            }
            let engine = Engine::new(b.network.as_ref(), b.cluster.as_ref());
            match engine.leftovers(&spec.stack).await {
                Ok(left) => summary.leftovers.infra = left.iter().map(|r| r.describe()).collect(),
                Err(e) => summary.errors.push(format!("leftover scan: {e}")),
            }
            self.clients = None;
            self.access = None;
        }
        summary.leftovers.total = summary.leftovers.infra.len()
            + summary.leftovers.releases.len()
            + summary.leftovers.runners.len();
        if summary.leftovers.total > 0 {
            summary.errors.push(format!(
                "{} resource(s) left after teardown",
                summary.leftovers.total
            ));
        }
        summary
    }
}

/// Tries `f` up to three times, pausing 5 s (flow clock) between attempts.
async fn retry<T, E, F, Fut>(what: &str, mut f: F) -> Result<T, String>
where
    E: fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt < 3 => {
                tracing::warn!(%what, attempt, error = %e, "cleanup step failed; retrying");
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            Err(e) => return Err(format!("{what}: {e}")),
        }
    }
}
