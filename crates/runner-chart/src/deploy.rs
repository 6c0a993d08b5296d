//! Putting a runner up and down: the token Secret first, then the release; removal in reverse.

use std::time::Duration;

use serde::Serialize;

use crate::error::Result;
use crate::release::{ReleaseId, ReleaseManager, ReleaseSpec, ReleaseStatus, Removal};
use crate::secret::{RunnerToken, SecretOutcome, SecretRef, TokenSecrets};

/// What [`deploy_runner`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployed {
    /// What happened to the token Secret.
    pub secret: SecretOutcome,
    /// The release after `--wait`.
    pub release: ReleaseStatus,
}

/// Validates `spec`, stores `token` in the Secret its values reference (in the release
/// namespace), then installs or upgrades the release. Nothing runs when validation fails.
pub async fn deploy_runner(
    secrets: &dyn TokenSecrets,
    releases: &dyn ReleaseManager,
    spec: &ReleaseSpec,
    token: &RunnerToken,
) -> Result<Deployed> {
    spec.validate()?;
    let secret = secrets.ensure(&spec.secret(), token).await?;
    let release = releases.ensure(spec).await?;
    Ok(Deployed { secret, release })
}

/// Uninstalls the release, then deletes its token Secret. Idempotent.
pub async fn remove_runner(
    secrets: &dyn TokenSecrets,
    releases: &dyn ReleaseManager,
    id: &ReleaseId,
    secret_name: &str,
    timeout: Duration,
) -> Result<Removal> {
    id.validate()?;
    let secret = SecretRef::new(&id.namespace, secret_name);
    secret.validate()?;
    let removal = releases.uninstall(id, timeout).await?;
    secrets.delete(&secret).await?;
    Ok(removal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{InMemoryReleases, InMemoryTokenSecrets};
    use crate::values::RunnerValues;

    #[tokio::test(start_paused = true)]
    async fn deploy_and_remove() {
        let secrets = InMemoryTokenSecrets::new();
        let releases = InMemoryReleases::new().with_secrets(secrets.clone());
        let spec = ReleaseSpec::new("r", "ci", RunnerValues::new("https://gitlab.example.com"));
        let token = RunnerToken::new("glrt-abc").unwrap();
        let d = deploy_runner(&secrets, &releases, &spec, &token)
            .await
            .unwrap();
        assert_eq!(d.secret, SecretOutcome::Created);
        assert!(secrets.contains(&spec.secret()));
        let r = remove_runner(
            &secrets,
            &releases,
            &spec.id(),
            &spec.values.secret_name,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        assert_eq!(r, Removal::Removed);
        assert!(!secrets.contains(&spec.secret()));
        let r = remove_runner(
            &secrets,
            &releases,
            &spec.id(),
            &spec.values.secret_name,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        assert_eq!(r, Removal::AlreadyAbsent);
    }

    #[tokio::test]
    async fn invalid_spec_touches_nothing() {
        let secrets = InMemoryTokenSecrets::new();
        let releases = InMemoryReleases::new();
        let spec = ReleaseSpec::new(
            "r",
            "ci",
            RunnerValues::new("https://gitlab.example.com").with_concurrent(0),
        );
        let token = RunnerToken::new("glrt-abc").unwrap();
        assert!(
            deploy_runner(&secrets, &releases, &spec, &token)
                .await
                .is_err()
        );
        assert!(secrets.refs().is_empty());
        assert!(releases.runners().is_empty());
    }
}
