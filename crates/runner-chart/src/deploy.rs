//! Putting a runner up and down: the token Secret first, then the release; removal in reverse.

use std::time::Duration;

use serde::Serialize;

use crate::error::Result;
use crate::release::{ReleaseId, ReleaseManager, ReleaseSpec, ReleaseStatus, Removal};
use crate::secret::{Ownership, RunnerToken, SecretOutcome, SecretRef, TokenSecrets};

/// What [`deploy_runner`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployed {
    /// What happened to the token Secret.
    pub secret: SecretOutcome,
    /// The release after `--wait`.
    pub release: ReleaseStatus,
}

/// Pod annotation on the runner manager carrying a short fingerprint of the token, so that a
/// rotated token rolls the manager pod (the chart only checksums Secrets it renders itself).
/// The fingerprint is 32 bits of a hash: it cannot give back a token of 100+ random bits.
pub const TOKEN_FINGERPRINT_ANNOTATION: &str = "glrunner.io/token-fingerprint";

/// A short, stable, non-reversible fingerprint of the token (FNV-1a 64, folded to 32 bits).
pub fn token_fingerprint(token: &RunnerToken) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in token.expose_secret().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:08x}", (hash >> 32) as u32 ^ hash as u32)
}

/// Validates `spec`, stores `token` in the Secret its values reference (in the release
/// namespace; a Secret of that name that glrunner did not create is refused, nothing changed),
/// creates the job namespace when it is a separate one (Helm does not; the chart puts the
/// executor's Role there), then installs or upgrades the release with the token's fingerprint
/// as a manager pod annotation ([`TOKEN_FINGERPRINT_ANNOTATION`]). Nothing runs when validation
/// fails.
pub async fn deploy_runner(
    secrets: &dyn TokenSecrets,
    releases: &dyn ReleaseManager,
    spec: &ReleaseSpec,
    token: &RunnerToken,
) -> Result<Deployed> {
    spec.validate()?;
    let mut spec = spec.clone();
    spec.values.pod_annotations.insert(
        TOKEN_FINGERPRINT_ANNOTATION.to_string(),
        token_fingerprint(token),
    );
    let secret = secrets.ensure(&spec.secret(), token).await?;
    if let Some(job_ns) = spec.separate_job_namespace() {
        secrets.ensure_namespace(job_ns).await?;
    }
    let release = releases.ensure(&spec).await?;
    Ok(Deployed { secret, release })
}

/// Like [`deploy_runner`], but only for an existing release: [`crate::Error::NotFound`] (and no
/// Secret written) when it is absent.
pub async fn upgrade_runner(
    secrets: &dyn TokenSecrets,
    releases: &dyn ReleaseManager,
    spec: &ReleaseSpec,
    token: &RunnerToken,
) -> Result<Deployed> {
    spec.validate()?;
    if releases.status(&spec.id()).await?.is_none() {
        return Err(crate::Error::NotFound {
            resource: spec.id().describe(),
            action: "upgrade".into(),
        });
    }
    let mut spec = spec.clone();
    spec.values.pod_annotations.insert(
        TOKEN_FINGERPRINT_ANNOTATION.to_string(),
        token_fingerprint(token),
    );
    let secret = secrets.ensure(&spec.secret(), token).await?;
    if let Some(job_ns) = spec.separate_job_namespace() {
        secrets.ensure_namespace(job_ns).await?;
    }
    let release = releases.upgrade(&spec).await?;
    Ok(Deployed { secret, release })
}

/// Uninstalls the release, then deletes its token Secret. Idempotent. A Secret of that name that
/// glrunner did not create is refused before anything is uninstalled.
pub async fn remove_runner(
    secrets: &dyn TokenSecrets,
    releases: &dyn ReleaseManager,
    id: &ReleaseId,
    secret_name: &str,
    timeout: Duration,
) -> Result<Removal> {
    id.validate()?;
    let secret = SecretRef::new(&id.namespace, secret_name).for_release(&id.name);
    secret.validate()?;
    if secrets.ownership(&secret).await? == Ownership::Foreign {
        return Err(secret.foreign_error("delete"));
    }
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
        let up = upgrade_runner(&secrets, &releases, &spec, &token)
            .await
            .unwrap();
        assert_eq!(
            (up.secret, up.release.revision),
            (SecretOutcome::Unchanged, 2)
        );
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
        let e = upgrade_runner(&secrets, &releases, &spec, &token)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::NotFound);
        assert!(
            !secrets.contains(&spec.secret()),
            "no Secret written for a missing release"
        );
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

    #[tokio::test(start_paused = true)]
    async fn a_rotated_token_changes_the_manager_pod_annotation() {
        let secrets = InMemoryTokenSecrets::new();
        let releases = InMemoryReleases::new().with_secrets(secrets.clone());
        let spec = ReleaseSpec::new("r", "ci", RunnerValues::new("https://gitlab.example.com"));
        let a = RunnerToken::new("glrt-aaaaaaaaaaaaaaaaaaaa").unwrap();
        let b = RunnerToken::new("glrt-bbbbbbbbbbbbbbbbbbbb").unwrap();
        deploy_runner(&secrets, &releases, &spec, &a).await.unwrap();
        let first =
            releases.runners()[0].values.pod_annotations[TOKEN_FINGERPRINT_ANNOTATION].clone();
        let again = deploy_runner(&secrets, &releases, &spec, &a).await.unwrap();
        assert_eq!(again.secret, SecretOutcome::Unchanged);
        assert_eq!(
            releases.runners()[0].values.pod_annotations[TOKEN_FINGERPRINT_ANNOTATION],
            first,
            "stable"
        );
        let rotated = deploy_runner(&secrets, &releases, &spec, &b).await.unwrap();
        assert_eq!(rotated.secret, SecretOutcome::Updated);
        let second =
            releases.runners()[0].values.pod_annotations[TOKEN_FINGERPRINT_ANNOTATION].clone();
        assert_ne!(first, second);
        assert_eq!(first.len(), 8);
        assert!(!"glrt-aaaaaaaaaaaaaaaaaaaa".contains(&first));
        assert!(
            spec.values
                .to_yaml()
                .unwrap()
                .lines()
                .all(|l| !l.contains(TOKEN_FINGERPRINT_ANNOTATION))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_foreign_secret_is_neither_written_nor_deleted_and_nothing_is_installed() {
        let secrets = InMemoryTokenSecrets::new();
        let releases = InMemoryReleases::new().with_secrets(secrets.clone());
        let spec = ReleaseSpec::new("r", "ci", RunnerValues::new("https://gitlab.example.com"));
        secrets.insert_foreign(&spec.secret());
        let token = RunnerToken::new("glrt-abc").unwrap();
        let e = deploy_runner(&secrets, &releases, &spec, &token)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Conflict);
        assert!(e.to_string().contains("--secret-name"), "{e}");
        assert!(releases.runners().is_empty(), "nothing installed");
        assert!(!secrets.contains(&spec.secret()), "still the foreign one");
        let e = remove_runner(
            &secrets,
            &releases,
            &spec.id(),
            "gitlab-runner-token",
            Duration::from_secs(60),
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Conflict);
        assert_eq!(
            secrets.refs(),
            [spec.secret()],
            "the foreign Secret is still there"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_separate_job_namespace_is_created_before_the_release() {
        let secrets = InMemoryTokenSecrets::new();
        let releases = InMemoryReleases::new().with_secrets(secrets.clone());
        let spec = ReleaseSpec::new(
            "r",
            "ci",
            RunnerValues::new("https://gitlab.example.com").with_job_namespace("ci-jobs"),
        );
        // The double refuses a job namespace nobody created, as Helm does.
        let e = releases.ensure(&spec).await.unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::NotFound);
        assert!(e.to_string().contains("ci-jobs"), "{e}");
        let token = RunnerToken::new("glrt-abc").unwrap();
        let d = deploy_runner(&secrets, &releases, &spec, &token)
            .await
            .unwrap();
        assert_eq!(d.release.state, crate::ReleaseState::Deployed);
        assert!(secrets.has_namespace("ci-jobs"));
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
