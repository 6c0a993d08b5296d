//! Phase 8, teardown (also the cleanup after a failure): releases, GitLab runners, infrastructure.

use std::future::Future;
use std::time::Duration;

use glrunner_gitlab_client::{Project, ProjectRef};
use glrunner_infra::Engine;
use glrunner_runner_chart::{ErrorKind, ReleaseId, SecretRef};

use super::{Phase, Run, TeardownSummary};
use crate::Ownership;
use crate::backends::ClusterClients;
use crate::events::InfraProgress;

/// What a teardown covers.
pub(super) struct Scope {
    pub(super) releases: bool,
    pub(super) runners: bool,
    pub(super) infra: bool,
    pub(super) trigger: &'static str,
}

impl Run<'_> {
    /// The cleanup's summary when it ran past [`super::FlowConfig::cleanup_timeout`]: what the
    /// infrastructure still holds, and how to finish.
    pub(super) async fn cleanup_timed_out(&mut self) -> TeardownSummary {
        let b = self.backends;
        let spec = &self.config.spec;
        let mut summary = TeardownSummary {
            trigger: "cleanup after failure".to_owned(),
            ..TeardownSummary::default()
        };
        summary.errors.push(format!(
            "cleanup did not finish within {}; finish it with `full_flow --phases teardown` \
             (same --backend, --stack {}, --region {} and --project {})",
            humantime::format_duration(self.config.cleanup_timeout),
            spec.stack,
            spec.region,
            self.config.project
        ));
        match Engine::new(b.network.as_ref(), b.cluster.as_ref())
            .leftovers(&spec.stack)
            .await
        {
            Ok(left) => summary.leftovers.infra = left.iter().map(|r| r.describe()).collect(),
            Err(e) => summary.errors.push(format!("leftover scan: {e}")),
        }
        summary.leftovers.total = summary.leftovers.infra.len();
        summary
    }

    /// Removes releases, GitLab runners and infrastructure per `scope`, best effort (every step
    /// is tried; errors are collected), then checks for leftovers. Order matters: the cluster
    /// side (releases, Secrets) and GitLab's runners are removed and checked while the cluster
    /// still exists, then the infrastructure goes.
    pub(super) async fn teardown(&mut self, scope: Scope) -> TeardownSummary {
        let mut summary = TeardownSummary {
            trigger: scope.trigger.to_owned(),
            ..TeardownSummary::default()
        };
        self.cancel_pipeline(&mut summary).await;
        let clients = if scope.releases {
            self.remove_releases(&mut summary).await
        } else {
            None
        };
        let project = match &self.project {
            Some(p) => Some(p.clone()),
            None if scope.runners => self.project(false).await.ok(),
            None => None,
        };
        let project = project.filter(|_| scope.runners);
        if let Some(project) = &project {
            self.delete_runners(project, &mut summary).await;
        }
        // Leftovers of the cluster side are checked before the cluster goes away.
        if let Some(c) = &clients {
            self.release_leftovers(c, &mut summary).await;
        }
        if let Some(project) = &project {
            self.runner_leftovers(project, &mut summary).await;
        }
        if scope.infra {
            self.remove_infra(&mut summary).await;
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

    /// Cancels the pipeline this run started, if it has one.
    async fn cancel_pipeline(&mut self, summary: &mut TeardownSummary) {
        let Some(pipeline) = self.created.pipeline.take() else {
            return;
        };
        let Some(project) = &self.project else {
            return;
        };
        match self
            .backends
            .gitlab
            .cancel_pipeline(&ProjectRef::Id(project.id), pipeline)
            .await
        {
            Ok(_) => {
                self.step(Phase::Teardown, format!("canceled pipeline {pipeline}"));
                summary.pipeline_canceled = Some(pipeline);
            }
            Err(e) => summary
                .errors
                .push(format!("cancel pipeline {pipeline}: {e}")),
        }
    }

    /// Uninstalls the stack's releases and deletes their token Secrets (also those of releases
    /// that never got installed). `None` when there is no cluster: then no release can exist.
    async fn remove_releases(&mut self, summary: &mut TeardownSummary) -> Option<ClusterClients> {
        let phase = Phase::Teardown;
        let owner = self.config.ownership();
        let namespace = self.config.spec.cluster.runner_namespace.clone();
        let c = match self.clients(phase).await {
            Ok(c) => c,
            // No cluster (never created, or already gone): no release can exist.
            Err(e) => {
                tracing::info!(error = %e, "no cluster to uninstall releases from");
                return None;
            }
        };
        // The in-cluster janitor first: no replica should act while the releases go.
        if let Some(ids) = self.janitor_ids() {
            match c.janitor.remove(&ids).await {
                Ok(removed) => {
                    for object in removed {
                        self.step(phase, format!("janitor: deleted {object}"));
                    }
                }
                Err(e) => summary
                    .errors
                    .push(format!("remove the in-cluster janitor: {e}")),
            }
        }
        self.remove_job_accounts(&c, summary).await;
        match once_more("list releases", || c.releases.list(Some(&namespace))).await {
            Ok(list) => {
                for release in list.into_iter().filter(|r| owner.owns_release(&r.name)) {
                    let id = ReleaseId::new(&namespace, &release.name);
                    let secret = Ownership::secret_name(&release.name);
                    let removed = once_more(&format!("uninstall {}", id.describe()), || {
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
            .map(|p| p.fleet.shards.clone())
            .unwrap_or_default();
        for shard in shards {
            let secret = SecretRef::new(&namespace, Ownership::secret_name(&shard.release));
            match once_more(&format!("delete {}", secret.describe()), || {
                c.secrets.delete(&secret)
            })
            .await
            {
                Ok(true) => self.step(phase, format!("deleted {}", secret.describe())),
                Ok(false) => {}
                Err(e) => summary.errors.push(e),
            }
        }
        Some(c)
    }

    /// Deletes the project's GitLab runners this stack owns. The GitLab client owns the
    /// retries of these calls (429s, 5xx of idempotent calls); the cleanup does not retry them
    /// again. A runner already gone (404) counts as deleted.
    async fn delete_runners(&mut self, project: &Project, summary: &mut TeardownSummary) {
        let owner = self.config.ownership();
        let gitlab = self.backends.gitlab.clone();
        match gitlab.list_runners(&ProjectRef::Id(project.id)).await {
            Ok(list) => {
                for runner in list.into_iter().filter(|r| {
                    r.description
                        .as_deref()
                        .is_some_and(|d| owner.owns_runner(d))
                }) {
                    match gitlab.delete_runner(runner.id).await {
                        Ok(()) | Err(glrunner_gitlab_client::Error::NotFound { .. }) => {
                            self.step(
                                Phase::Teardown,
                                format!("deleted GitLab runner {}", runner.id),
                            );
                            summary.runners_deleted += 1;
                        }
                        Err(e) => summary
                            .errors
                            .push(format!("delete runner {}: {e}", runner.id)),
                    }
                }
            }
            Err(e) => summary.errors.push(format!("list runners: {e}")),
        }
    }

    /// The stack's releases still listed after the teardown.
    /// Deletes the job ServiceAccounts of the run's job roles (only those: another stack's in a
    /// shared namespace stay, and one glrunner did not create is never touched).
    async fn remove_job_accounts(&mut self, c: &ClusterClients, summary: &mut TeardownSummary) {
        if self.config.job_accounts.is_empty() {
            return;
        }
        let namespace = self.config.job_namespace(&self.backends.gitlab_url);
        let names: Vec<String> = self
            .config
            .job_accounts
            .iter()
            .map(|(n, _)| n.clone())
            .collect();
        match once_more("delete job ServiceAccounts", || {
            c.job_accounts.remove(&namespace, &names)
        })
        .await
        {
            Ok(removed) => {
                for name in removed {
                    self.step(
                        Phase::Teardown,
                        format!("deleted job ServiceAccount {namespace}/{name}"),
                    );
                }
            }
            Err(e) => summary.errors.push(e),
        }
    }

    /// The in-cluster janitor's objects when this run installs one (`--janitor in-cluster`).
    fn janitor_ids(&self) -> Option<Vec<glrunner_janitor::deploy::ObjectId>> {
        let poll_timeout = self
            .plan
            .as_ref()
            .map_or(glrunner_janitor::Policy::DEFAULT_PENDING_TIMEOUT, |p| {
                p.poll_timeout
            });
        match self
            .config
            .janitor_objects(&self.backends.gitlab_url, poll_timeout)
        {
            Ok(objects) => objects.map(|o| o.ids()),
            Err(e) => {
                tracing::warn!(error = %e, "no janitor objects to remove");
                None
            }
        }
    }

    async fn release_leftovers(&self, c: &ClusterClients, summary: &mut TeardownSummary) {
        let owner = self.config.ownership();
        let namespace = &self.config.spec.cluster.runner_namespace;
        match c.releases.list(Some(namespace)).await {
            Ok(list) => {
                summary.leftovers.releases = list
                    .into_iter()
                    .filter(|r| owner.owns_release(&r.name))
                    .map(|r| r.name)
                    .collect()
            }
            Err(e) => summary
                .errors
                .push(format!("list releases after teardown: {e}")),
        }
        if let Some(ids) = self.janitor_ids() {
            match c.janitor.existing(&ids).await {
                Ok(left) => summary
                    .leftovers
                    .releases
                    .extend(left.iter().map(|o| format!("janitor {o}"))),
                Err(e) => summary
                    .errors
                    .push(format!("look for the janitor after teardown: {e}")),
            }
        }
    }

    /// The stack's GitLab runners still listed after the teardown.
    async fn runner_leftovers(&self, project: &Project, summary: &mut TeardownSummary) {
        let owner = self.config.ownership();
        match self
            .backends
            .gitlab
            .list_runners(&ProjectRef::Id(project.id))
            .await
        {
            Ok(list) => {
                summary.leftovers.runners = list
                    .into_iter()
                    .filter(|r| {
                        r.description
                            .as_deref()
                            .is_some_and(|d| owner.owns_runner(d))
                    })
                    .map(|r| format!("runner {}", r.id))
                    .collect();
            }
            Err(e) => summary
                .errors
                .push(format!("list runners after teardown: {e}")),
        }
    }

    /// Tears the stack's infrastructure down, then scans for what is left of it.
    async fn remove_infra(&mut self, summary: &mut TeardownSummary) {
        let b = self.backends;
        let progress = InfraProgress(self.progress);
        let options = self.stack_options(&progress);
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
}

/// Runs a cleanup call on the cluster (helm, Kubernetes Secrets) and, when it fails with what
/// clears by itself, once more after a pause.
///
/// Retry layers in the cleanup: GitLab calls are retried by the GitLab client alone (429s
/// with their `Retry-After`, 5xx of idempotent calls), infrastructure calls by the AWS SDK and
/// the infra engine alone; neither is retried here. Helm has no retry layer for its
/// operations and kube-rs retries only throttling and 503/504, so this is the one layer for
/// what those leave: another helm operation in progress ([`ErrorKind::Conflict`]) and
/// transport failures ([`ErrorKind::Backend`], e.g. the apiserver restarting), once. Denied,
/// missing, invalid, timed-out (already waited its bound) and throttled (a lower layer already
/// waited) answers are not retried.
async fn once_more<T, F, Fut>(what: &str, mut f: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, glrunner_runner_chart::Error>>,
{
    match f().await {
        Ok(v) => Ok(v),
        Err(e) if worth_one_more_try(&e) => {
            tracing::warn!(%what, error = %e, "cleanup step failed transiently; trying once more");
            tokio::time::sleep(Duration::from_secs(5)).await;
            f().await.map_err(|e| format!("{what}: {e}"))
        }
        Err(e) => Err(format!("{what}: {e}")),
    }
}

/// Whether a cluster-side cleanup error clears by itself (see [`once_more`]).
fn worth_one_more_try(e: &glrunner_runner_chart::Error) -> bool {
    matches!(e.kind(), ErrorKind::Conflict | ErrorKind::Backend)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use glrunner_runner_chart::Error;

    use super::*;

    fn failing(kind: ErrorKind) -> Error {
        let (resource, action) = (
            "helm release \"r\" in namespace \"n\"".to_owned(),
            "uninstall".to_owned(),
        );
        match kind {
            ErrorKind::Conflict => Error::Conflict {
                resource,
                action,
                detail: "another operation (install/upgrade/rollback) is in progress".into(),
            },
            ErrorKind::Backend => Error::Backend {
                backend: "kube",
                resource,
                action,
                source: "connection refused (the apiserver restarting)".into(),
            },
            ErrorKind::PermissionDenied => Error::PermissionDenied {
                resource,
                action,
                detail: "forbidden".into(),
            },
            ErrorKind::NotFound => Error::NotFound { resource, action },
            ErrorKind::Throttled => Error::Throttled {
                resource,
                action,
                retry_after: None,
            },
            _ => Error::Timeout {
                resource,
                action,
                waited: Duration::from_secs(300),
            },
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_cleanup_call_is_tried_once_more_only_when_its_error_clears_by_itself() {
        for (kind, expected) in [
            (ErrorKind::Conflict, 2),
            (ErrorKind::Backend, 2),
            (ErrorKind::PermissionDenied, 1),
            (ErrorKind::NotFound, 1),
            (ErrorKind::Throttled, 1),
            (ErrorKind::Timeout, 1),
        ] {
            let calls = AtomicU32::new(0);
            let outcome: Result<(), String> = once_more("uninstall r", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(failing(kind))
            })
            .await;
            assert!(outcome.unwrap_err().starts_with("uninstall r: "));
            assert_eq!(calls.load(Ordering::SeqCst), expected, "{kind:?}");
        }
        // A conflict that clears: the second try succeeds.
        let calls = AtomicU32::new(0);
        let outcome = once_more("uninstall r", || async {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(failing(ErrorKind::Conflict))
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(outcome, Ok(7));
    }
}
