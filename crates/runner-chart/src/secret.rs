//! The runner token, its redacted wrapper, and the `TokenSecrets` trait that stores it in a Kubernetes Secret.

use std::fmt;

use async_trait::async_trait;

use crate::error::{Error, Invalid, Result};
use crate::validate;

/// Key of the Secret entry holding the runner authentication token (read by the chart's entrypoint).
pub const RUNNER_TOKEN_KEY: &str = "runner-token";
/// Key the chart still expects in the Secret; always stored as an empty string (registration tokens are gone in runner 18+).
pub const REGISTRATION_TOKEN_KEY: &str = "runner-registration-token";
/// Label put on every Secret this crate writes. A Secret without it was not created by glrunner:
/// it is never written over nor deleted.
pub const MANAGED_BY_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "glrunner");
/// Label naming the Helm release a token Secret belongs to.
pub const RELEASE_LABEL: &str = "glrunner.io/release";
/// Prefix of runner authentication tokens created through `POST /user/runners`.
pub const TOKEN_PREFIX: &str = "glrt-";

/// Whether a string contains something shaped like a runner authentication token.
pub fn looks_like_token(s: &str) -> bool {
    s.contains(TOKEN_PREFIX)
}

/// A GitLab runner authentication token (`glrt-…`), held in a [`secrecy::SecretString`] (zeroed
/// on drop).
///
/// `Debug` and `Display` print `glrt-[REDACTED]`; there is no `Serialize`. The only way to the
/// text is [`RunnerToken::expose_secret`], which this crate calls where it writes the Kubernetes
/// Secret and where it fingerprints the token.
#[derive(Clone)]
pub struct RunnerToken(secrecy::SecretString);

impl PartialEq for RunnerToken {
    fn eq(&self, other: &Self) -> bool {
        self.expose_secret() == other.expose_secret()
    }
}

impl Eq for RunnerToken {}

impl RunnerToken {
    /// Wraps a token, checking its shape. Legacy registration tokens are refused: runner 18+ will not start with them.
    pub fn new(token: impl Into<String>) -> Result<Self> {
        let token = token.into();
        let fix = "create a runner with the GitLab API (POST /user/runners) and use the glrt-... token it returns";
        if !token.starts_with(TOKEN_PREFIX) {
            return Err(Error::invalid(
                "runner_token",
                "does not start with glrt- (legacy registration tokens no longer work with GitLab Runner 18+)",
                fix,
            ));
        }
        if token.len() <= TOKEN_PREFIX.len() || token.len() > 1024 {
            return Err(Error::invalid(
                "runner_token",
                "has no text after glrt- or is implausibly long",
                fix,
            ));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::invalid(
                "runner_token",
                "contains whitespace or non-ASCII characters",
                "pass the token exactly as GitLab returned it, without a trailing newline",
            ));
        }
        Ok(Self(secrecy::SecretString::from(token)))
    }

    /// The token text. Handle with care: never log it, put it in argv or write it to a file.
    pub fn expose_secret(&self) -> &str {
        secrecy::ExposeSecret::expose_secret(&self.0)
    }

    /// The value of the [`JOB_POD_MANAGER_ID_LABEL`] label on this runner's job pods: the token
    /// without its `glrt-` (and partition `t1_`..`t3_`) prefix, first 9 characters, sanitised as
    /// a label value (GitLab Runner's `helpers.ShortenToken` and the Kubernetes executor's
    /// `sanitizeLabel`). GitLab shows it as the runner's public short token
    /// (`CI_RUNNER_SHORT_TOKEN`); glrunner still never prints it.
    pub fn short_id(&self) -> String {
        let text = self.expose_secret();
        let mut rest = text.strip_prefix(TOKEN_PREFIX).unwrap_or(text);
        for partition in ["t1_", "t2_", "t3_"] {
            if let Some(stripped) = rest.strip_prefix(partition) {
                rest = stripped;
                break;
            }
        }
        let short: String = rest
            .chars()
            .take(9)
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        short.trim_matches(['-', '_', '.']).to_string()
    }
}

/// The label GitLab Runner's Kubernetes executor puts on every job pod with the short token of
/// the runner that created it (`manager.runner.gitlab.com/id-short`; it cannot be overridden).
/// glrunner finds a shard's running jobs by it before an upgrade.
pub const JOB_POD_MANAGER_ID_LABEL: &str = "manager.runner.gitlab.com/id-short";

impl fmt::Debug for RunnerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RunnerToken(glrt-[REDACTED])")
    }
}

impl fmt::Display for RunnerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("glrt-[REDACTED]")
    }
}

/// Where a token Secret lives: namespace and name (its identity), plus the release it belongs to
/// (recorded in [`RELEASE_LABEL`]; not part of the identity).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SecretRef {
    /// The namespace (the release namespace: the runner manager reads it from there).
    pub namespace: String,
    /// The Secret's name (the chart's `runners.secret`).
    pub name: String,
    /// The Helm release the Secret belongs to, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
}

impl PartialEq for SecretRef {
    fn eq(&self, other: &Self) -> bool {
        (&self.namespace, &self.name) == (&other.namespace, &other.name)
    }
}

impl Eq for SecretRef {}

impl std::hash::Hash for SecretRef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (&self.namespace, &self.name).hash(state);
    }
}

impl PartialOrd for SecretRef {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SecretRef {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (&self.namespace, &self.name).cmp(&(&other.namespace, &other.name))
    }
}

impl SecretRef {
    /// A reference to Secret `name` in `namespace`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            release: None,
        }
    }

    /// Records the release the Secret belongs to.
    #[must_use]
    pub fn for_release(mut self, release: impl Into<String>) -> Self {
        self.release = Some(release.into());
        self
    }

    /// The error for a Secret glrunner did not create: nothing was changed.
    pub fn foreign_error(&self, action: &str) -> Error {
        Error::Conflict {
            resource: self.describe(),
            action: action.to_string(),
            detail: format!(
                "it was not created by glrunner (no label {}={}), so it is left as it is; choose another --secret-name (runners.secret) or remove the Secret yourself",
                MANAGED_BY_LABEL.0, MANAGED_BY_LABEL.1
            ),
        }
    }

    /// Checks both names.
    pub fn validate(&self) -> Result<()> {
        let mut issues: Vec<Invalid> = Vec::new();
        issues.extend(validate::namespace("namespace", &self.namespace).err());
        issues.extend(validate::object_name("runners.secret", &self.name).err());
        Error::check(issues)
    }

    /// How error messages name it.
    pub fn describe(&self) -> String {
        format!("secret {:?} in namespace {:?}", self.name, self.namespace)
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What [`TokenSecrets::ensure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretOutcome {
    /// The Secret did not exist and was created.
    Created,
    /// The Secret existed with other content and was updated.
    Updated,
    /// The Secret already held exactly this token.
    Unchanged,
}

/// A token Secret as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTokenSecret {
    /// The token under [`RUNNER_TOKEN_KEY`].
    pub token: RunnerToken,
    /// Whether [`REGISTRATION_TOKEN_KEY`] is present and empty, as the chart requires.
    pub registration_key_empty: bool,
    /// Whether the Secret carries [`MANAGED_BY_LABEL`].
    pub managed_by_glrunner: bool,
}

/// Who a Secret of that name belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ownership {
    /// No such Secret.
    Absent,
    /// It carries [`MANAGED_BY_LABEL`]: glrunner created it.
    Glrunner,
    /// It exists without [`MANAGED_BY_LABEL`]: someone else's; never written nor deleted.
    Foreign,
}

/// Stores runner tokens in Kubernetes Secrets (`runner-token` plus an empty `runner-registration-token`).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait TokenSecrets: Send + Sync {
    /// Creates the Secret (labelled [`MANAGED_BY_LABEL`] and [`RELEASE_LABEL`]), or updates it
    /// when its content differs. Creates the namespace when missing. A Secret of that name
    /// without [`MANAGED_BY_LABEL`] is left untouched: [`crate::Error::Conflict`].
    async fn ensure(&self, secret: &SecretRef, token: &RunnerToken) -> Result<SecretOutcome>;

    /// Reads the Secret back; `None` when it does not exist.
    async fn get(&self, secret: &SecretRef) -> Result<Option<StoredTokenSecret>>;

    /// Deletes the Secret; `Ok(false)` when it was already gone. A Secret without
    /// [`MANAGED_BY_LABEL`] is left untouched: [`crate::Error::Conflict`].
    async fn delete(&self, secret: &SecretRef) -> Result<bool>;

    /// Whether the Secret exists and whether glrunner created it. The default reads it with
    /// [`TokenSecrets::get`].
    async fn ownership(&self, secret: &SecretRef) -> Result<Ownership> {
        Ok(match self.get(secret).await? {
            None => Ownership::Absent,
            Some(s) if s.managed_by_glrunner => Ownership::Glrunner,
            Some(_) => Ownership::Foreign,
        })
    }

    /// Creates `namespace` (labelled [`MANAGED_BY_LABEL`]) when it does not exist; `Ok(true)`
    /// when it was created. Used for the job namespace, which Helm does not create. The default
    /// refuses: a backend that can create namespaces overrides it.
    async fn ensure_namespace(&self, namespace: &str) -> Result<bool> {
        Err(Error::Backend {
            backend: "secrets",
            resource: format!("namespace {namespace:?}"),
            action: "create".into(),
            source: "this token Secret backend cannot create namespaces".into(),
        })
    }
}

/// `dyn TokenSecrets`, for `Arc<DynTokenSecrets>` and friends.
pub type DynTokenSecrets = dyn TokenSecrets;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_id_is_the_runners_id_short_label() {
        // The label of a real job pod (reference/gitlab.md): token 3LJ4iHZt1... -> 3LJ4iHZt1.
        let t = RunnerToken::new("glrt-3LJ4iHZt1xxxxxxxxxxxx").unwrap();
        assert_eq!(t.short_id(), "3LJ4iHZt1");
        let t = RunnerToken::new("glrt-t1_AbCdEfGhIjKlMn").unwrap();
        assert_eq!(t.short_id(), "AbCdEfGhI", "partition prefix stripped");
        let t = RunnerToken::new("glrt-_ab").unwrap();
        assert_eq!(
            t.short_id(),
            "ab",
            "label values start and end alphanumeric"
        );
    }

    #[test]
    fn token_is_redacted_everywhere() {
        let t = RunnerToken::new("glrt-abcdef123456").unwrap();
        assert_eq!(format!("{t}"), "glrt-[REDACTED]");
        assert!(!format!("{t:?}").contains("abcdef"));
        assert!(!format!("{:?}", Some(&t)).contains("abcdef"));
        assert_eq!(t.expose_secret(), "glrt-abcdef123456");
    }

    #[test]
    fn token_shape_is_checked_and_errors_do_not_echo_it() {
        for bad in [
            "GR1348941abcdef",
            "glrt-",
            "glrt-abcdef ghi",
            "glrt-abcdef\n",
            "",
        ] {
            let e = RunnerToken::new(bad).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
            if bad.len() > 8 {
                assert!(!e.to_string().contains(&bad[5..]), "{e}");
            }
        }
    }

    #[test]
    fn secret_ref_validation() {
        assert!(SecretRef::new("ci", "runner-token").validate().is_ok());
        let e = SecretRef::new("CI", "runner_token").validate().unwrap_err();
        assert_eq!(e.issues().len(), 2);
    }
}
