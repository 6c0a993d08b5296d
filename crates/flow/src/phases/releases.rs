//! Phase 5, releases: the token Secret and the helm release of every shard.

use futures::StreamExt as _;
use glrunner_runner_chart::{
    Deployed, ReleaseManager, ReleaseSpec, RunnerToken, SecretRef, TokenSecrets,
};

use super::{ClusterClients, ClusterSource, Error, Phase, Run, at, check_cluster};
use crate::Ownership;

impl Run<'_> {
    /// Token Secret + release per shard (tokens from the runners phase, else from the Secrets).
    pub(super) async fn install_releases(&mut self) -> Result<String, Error> {
        let phase = Phase::Releases;
        let plan = self.run_plan()?;
        let clients = self.checked_clients(phase).await?;
        let namespace = self.config.spec.cluster.runner_namespace.clone();
        // Install the shards concurrently, at most `helm_concurrency` at once: the ~45 s manager
        // pod starts overlap without starting every `helm --wait` of a large fleet together.
        let mut installs = Vec::new();
        for (shard, values) in plan.releases {
            let token = match self.runners.iter().find(|r| r.release == shard.release) {
                Some(r) => r.token.clone(),
                None => {
                    let secret = SecretRef::new(&namespace, Ownership::secret_name(&shard.release));
                    clients
                        .secrets
                        .get(&secret)
                        .await
                        .map_err(at(phase))?
                        .map(|s| s.token)
                        .ok_or_else(|| {
                            Error::phase(
                                phase,
                                format!(
                                    "no runner token for {} (run the runners phase first)",
                                    shard.release
                                ),
                            )
                        })?
                }
            };
            let spec = ReleaseSpec::new(
                &shard.release,
                &namespace,
                values.with_secret_name(Ownership::secret_name(&shard.release)),
            )
            .with_timeout(self.config.release_timeout)
            .with_chart(self.config.chart.clone());
            installs.push((spec, token));
        }
        self.created.releases = true;
        // A manager this deploy starts (or one still serving) contacts GitLab after this instant;
        // a reused runner whose manager is gone last did before it.
        self.releases_deployed_at = Some(clients.clock.now());
        let results = deploy_all(
            clients.secrets.as_ref(),
            clients.releases.as_ref(),
            &installs,
            self.config.helm_concurrency,
        )
        .await;
        let mut errors = Vec::new();
        for ((spec, _), result) in installs.iter().zip(results) {
            match result {
                Ok(d) => self.step(
                    phase,
                    format!(
                        "release {} {} (revision {})",
                        d.release.name, d.release.state, d.release.revision
                    ),
                ),
                Err(e) => errors.push(format!("release {}: {e}", spec.name)),
            }
        }
        if !errors.is_empty() {
            return Err(Error::phase(phase, errors.join("; ")));
        }
        let accounts = self.install_job_accounts(&clients).await?;
        let janitor = self.install_janitor(&clients).await?;
        Ok(format!(
            "{} release(s) deployed in {namespace}{accounts}{janitor}",
            installs.len()
        ))
    }

    /// The job ServiceAccounts of the IRSA job roles ([`crate::FlowConfig::job_accounts`]),
    /// applied in the job namespace once the releases created it and before any job runs;
    /// returns the summary's suffix.
    async fn install_job_accounts(&mut self, clients: &ClusterClients) -> Result<String, Error> {
        if self.config.job_accounts.is_empty() {
            return Ok(String::new());
        }
        let phase = Phase::Releases;
        let namespace = self.config.job_namespace(&self.backends.gitlab_url);
        let applied = clients
            .job_accounts
            .apply(&namespace, &self.config.job_accounts)
            .await
            .map_err(at(phase))?;
        for name in &applied {
            self.step(
                phase,
                format!("job ServiceAccount {namespace}/{name} applied"),
            );
        }
        Ok(format!(", {} job ServiceAccount(s)", applied.len()))
    }

    /// `--janitor in-cluster`: applies the janitor's objects (a Deployment of `reap run` with its
    /// Lease and least-privilege RBAC) once the releases run; returns the summary's suffix.
    async fn install_janitor(&mut self, clients: &ClusterClients) -> Result<String, Error> {
        let phase = Phase::Releases;
        let poll_timeout = self.run_plan()?.poll_timeout;
        let Some(objects) = self
            .config
            .janitor_objects(&self.backends.gitlab_url, poll_timeout)?
        else {
            return Ok(String::new());
        };
        let applied = clients.janitor.apply(&objects).await.map_err(at(phase))?;
        for object in &applied {
            self.step(phase, format!("janitor: applied {object}"));
        }
        Ok(format!(", janitor in-cluster ({} objects)", applied.len()))
    }

    /// The cluster's clients, once it passed the checks made before anything is created for it
    /// (in GitLab or in the cluster): Fargate covers the namespaces (known on EKS), the caller may
    /// create what a release needs, CoreDNS runs. Every miss is one line of `phase`'s error.
    pub(super) async fn checked_clients(&mut self, phase: Phase) -> Result<ClusterClients, Error> {
        let clients = self.clients(phase).await?;
        if self.cluster_checked {
            return Ok(clients);
        }
        let namespace = self.config.spec.cluster.runner_namespace.clone();
        let fargate = match &self.config.cluster {
            ClusterSource::Kubeconfig { .. } => None,
            _ => self.access.as_ref().map(|a| a.fargate_profiles.as_slice()),
        };
        let report = check_cluster(clients.checks.as_ref(), fargate, &namespace, &namespace).await;
        for warning in &report.warnings {
            tracing::warn!(%warning, "cluster check");
            self.step(phase, format!("warning: {warning}"));
        }
        if !report.errors.is_empty() {
            return Err(Error::phase(phase, report.errors.join("; ")));
        }
        self.step(
            phase,
            "cluster checks passed (Fargate coverage, RBAC, CoreDNS)",
        );
        self.cluster_checked = true;
        Ok(clients)
    }
}

/// Deploys every `(spec, token)`, at most `concurrency` at once; the results come back in the
/// order of `installs` whatever order they finish in.
pub(super) async fn deploy_all(
    secrets: &dyn TokenSecrets,
    releases: &dyn ReleaseManager,
    installs: &[(ReleaseSpec, RunnerToken)],
    concurrency: usize,
) -> Vec<glrunner_runner_chart::Result<Deployed>> {
    futures::stream::iter(
        installs.iter().map(|(spec, token)| {
            glrunner_runner_chart::deploy_runner(secrets, releases, spec, token)
        }),
    )
    .buffered(concurrency.max(1))
    .collect()
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use async_trait::async_trait;
    use glrunner_runner_chart::{
        InMemoryReleases, InMemoryTokenSecrets, ReleaseId, ReleaseStatus, Removal, RunnerValues,
        Timing,
    };

    use super::*;

    /// Counts the installs in flight, and makes later shards finish first.
    struct Counting {
        inner: InMemoryReleases,
        in_flight: AtomicUsize,
        peak: AtomicUsize,
    }

    #[async_trait]
    impl ReleaseManager for Counting {
        async fn ensure(&self, spec: &ReleaseSpec) -> glrunner_runner_chart::Result<ReleaseStatus> {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            // Shard i waits 100 - i seconds: later shards finish first.
            let index: u64 = spec.name.rsplit('-').next().unwrap().parse().unwrap();
            tokio::time::sleep(Duration::from_secs(100 - index)).await;
            let result = self.inner.ensure(spec).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            result
        }
        async fn upgrade(
            &self,
            spec: &ReleaseSpec,
        ) -> glrunner_runner_chart::Result<ReleaseStatus> {
            self.inner.upgrade(spec).await
        }
        async fn uninstall(
            &self,
            id: &ReleaseId,
            timeout: Duration,
        ) -> glrunner_runner_chart::Result<Removal> {
            self.inner.uninstall(id, timeout).await
        }
        async fn status(
            &self,
            id: &ReleaseId,
        ) -> glrunner_runner_chart::Result<Option<ReleaseStatus>> {
            self.inner.status(id).await
        }
        async fn list<'a>(
            &self,
            namespace: Option<&'a str>,
        ) -> glrunner_runner_chart::Result<Vec<ReleaseStatus>> {
            self.inner.list(namespace).await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_n_helm_operations_run_at_once_and_results_keep_the_shard_order() {
        let secrets = InMemoryTokenSecrets::new();
        let releases = Arc::new(Counting {
            inner: InMemoryReleases::new()
                .with_timing(Timing::instant())
                .with_secrets(secrets.clone()),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        });
        let installs: Vec<(ReleaseSpec, RunnerToken)> = (1..=10)
            .map(|i| {
                (
                    ReleaseSpec::new(
                        format!("runner-{i}"),
                        "ci",
                        RunnerValues::new("https://gitlab.example.com/")
                            .with_secret_name(format!("runner-{i}-token")),
                    ),
                    RunnerToken::new(format!("glrt-token-{i:04}")).unwrap(),
                )
            })
            .collect();
        let results = deploy_all(&secrets, releases.as_ref(), &installs, 4).await;
        assert_eq!(releases.peak.load(Ordering::SeqCst), 4);
        let names: Vec<String> = results
            .into_iter()
            .map(|r| r.unwrap().release.name)
            .collect();
        let expected: Vec<String> = (1..=10).map(|i| format!("runner-{i}")).collect();
        assert_eq!(names, expected);
    }
}
