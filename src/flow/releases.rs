//! Phase 5, releases: the token Secret and the helm release of every shard.

use glrunner_runner_chart::{ReleaseSpec, SecretRef};

use super::{Error, Phase, Run, at};

impl Run<'_> {
    /// Token Secret + release per shard (tokens from the runners phase, else from the Secrets).
    pub(super) async fn install_releases(&mut self) -> Result<String, Error> {
        let phase = Phase::Releases;
        let plan = self.plan()?;
        let clients = self.clients(phase).await?;
        let namespace = self.config.spec.cluster.runner_namespace.clone();
        let template = self.config.template(&self.backends.gitlab_url);
        let values = plan.release_values(&template).map_err(at(phase))?;
        // Install the shards concurrently: the ~45 s manager pod starts overlap.
        let mut installs = Vec::new();
        for (shard, values) in values {
            let token = match self.runners.iter().find(|r| r.release == shard.release) {
                Some(r) => r.token.clone(),
                None => {
                    let secret = SecretRef::new(&namespace, Self::secret_name(&shard.release));
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
                values.with_secret_name(Self::secret_name(&shard.release)),
            )
            .with_timeout(self.config.release_timeout);
            installs.push((spec, token));
        }
        self.created.releases = true;
        let results = futures::future::join_all(installs.iter().map(|(spec, token)| {
            glrunner_runner_chart::deploy_runner(
                clients.secrets.as_ref(),
                clients.releases.as_ref(),
                spec,
                token,
            )
        }))
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
        Ok(format!(
            "{} release(s) deployed in {namespace}",
            installs.len()
        ))
    }
}
