//! The `ReleaseManager` trait and its domain types: release specs, chart sources, statuses.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Invalid, Result};
use crate::secret::SecretRef;
use crate::validate::{self, ChartVersion};
use crate::values::{RunnerSummary, RunnerValues};

/// Name of the official chart's Helm repository as this crate adds it.
pub const GITLAB_REPO_NAME: &str = "gitlab";
/// URL of the official chart repository.
pub const GITLAB_REPO_URL: &str = "https://charts.gitlab.io";
/// Name of the official chart.
pub const CHART_NAME: &str = "gitlab-runner";
/// Default bound on one install/upgrade/uninstall (`--timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest bound accepted for one operation.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// Where the chart comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ChartSource {
    /// `gitlab/gitlab-runner` from <https://charts.gitlab.io> (`helm repo add` + `repo update`), pinned.
    Repo {
        /// The exact chart version.
        version: ChartVersion,
    },
    /// A chart directory or `.tgz` on disk (air-gapped installs, tests).
    Path {
        /// The path.
        path: PathBuf,
    },
    /// An OCI reference such as `oci://registry.example.com/charts/gitlab-runner`, pinned.
    Oci {
        /// The `oci://` reference.
        reference: String,
        /// The exact chart version.
        version: ChartVersion,
    },
}

impl Default for ChartSource {
    fn default() -> Self {
        Self::Repo {
            version: ChartVersion::default(),
        }
    }
}

impl ChartSource {
    /// The chart version when pinned (repository and OCI sources).
    pub fn version(&self) -> Option<&ChartVersion> {
        match self {
            Self::Repo { version } | Self::Oci { version, .. } => Some(version),
            Self::Path { .. } => None,
        }
    }

    fn issues(&self) -> Vec<Invalid> {
        match self {
            Self::Repo { .. } => vec![],
            Self::Path { path } if path.as_os_str().is_empty() => {
                vec![Invalid::new(
                    "chart",
                    "the chart path is empty",
                    "pass a chart directory or .tgz",
                )]
            }
            Self::Path { .. } => vec![],
            Self::Oci { reference, .. } => {
                let ok = reference.strip_prefix("oci://").is_some_and(|r| {
                    let last = r.rsplit('/').next().unwrap_or_default();
                    r.contains('/')
                        && !r.chars().any(char::is_whitespace)
                        && !last.is_empty()
                        && !last.contains([':', '@'])
                });
                if ok {
                    vec![]
                } else {
                    vec![Invalid::new(
                        "chart",
                        format!("{reference:?} is not an OCI chart reference"),
                        "use oci://HOST/PATH/gitlab-runner and give the version separately with --chart-version",
                    )]
                }
            }
        }
    }
}

impl fmt::Display for ChartSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Repo { version } => write!(f, "{GITLAB_REPO_NAME}/{CHART_NAME} {version}"),
            Self::Path { path } => write!(f, "{}", path.display()),
            Self::Oci { reference, version } => write!(f, "{reference} {version}"),
        }
    }
}

/// Everything needed to install or upgrade one runner release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ReleaseSpec {
    /// Helm release name.
    pub name: String,
    /// Release namespace (created when missing); also where the token Secret lives.
    pub namespace: String,
    /// Where the chart comes from.
    pub chart: ChartSource,
    /// The chart values.
    pub values: RunnerValues,
    /// Bound on the operation (`--timeout`, and `--wait` until the runner is ready).
    pub timeout: Duration,
}

impl ReleaseSpec {
    /// A spec with the pinned default chart and [`DEFAULT_TIMEOUT`].
    pub fn new(
        name: impl Into<String>,
        namespace: impl Into<String>,
        values: RunnerValues,
    ) -> Self {
        Self {
            name: name.into(),
            namespace: namespace.into(),
            chart: ChartSource::default(),
            values,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Sets the chart source.
    #[must_use]
    pub fn with_chart(mut self, chart: ChartSource) -> Self {
        self.chart = chart;
        self
    }

    /// Sets the operation bound.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The release's identity.
    pub fn id(&self) -> ReleaseId {
        ReleaseId::new(&self.namespace, &self.name)
    }

    /// The token Secret these values reference (labelled with this release).
    pub fn secret(&self) -> SecretRef {
        SecretRef::new(&self.namespace, &self.values.secret_name).for_release(&self.name)
    }

    /// The job namespace when it differs from the release namespace (Helm does not create it).
    pub fn separate_job_namespace(&self) -> Option<&str> {
        self.values
            .executor
            .namespace
            .as_deref()
            .filter(|ns| *ns != self.namespace)
    }

    /// Every problem with the spec, including its values.
    pub fn issues(&self) -> Vec<Invalid> {
        let mut issues = Vec::new();
        issues.extend(validate::release_name("release", &self.name).err());
        issues.extend(validate::namespace("namespace", &self.namespace).err());
        issues.extend(self.chart.issues());
        if self.timeout < Duration::from_secs(1) || self.timeout > MAX_TIMEOUT {
            issues.push(Invalid::new(
                "timeout",
                format!(
                    "{}s is outside 1s..{}s",
                    self.timeout.as_secs(),
                    MAX_TIMEOUT.as_secs()
                ),
                format!("use e.g. {}s", DEFAULT_TIMEOUT.as_secs()),
            ));
        }
        issues.extend(self.values.issues());
        issues
    }

    /// Checks the spec; the error lists every problem.
    pub fn validate(&self) -> Result<()> {
        Error::check(self.issues())
    }
}

/// Namespace + name of a release.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ReleaseId {
    /// Namespace.
    pub namespace: String,
    /// Release name.
    pub name: String,
}

impl ReleaseId {
    /// Release `name` in `namespace`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// Checks both names.
    pub fn validate(&self) -> Result<()> {
        let mut issues = Vec::new();
        issues.extend(validate::release_name("release", &self.name).err());
        issues.extend(validate::namespace("namespace", &self.namespace).err());
        Error::check(issues)
    }

    /// How error messages name it.
    pub fn describe(&self) -> String {
        format!(
            "helm release {:?} in namespace {:?}",
            self.name, self.namespace
        )
    }
}

impl fmt::Display for ReleaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Helm's release states.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReleaseState {
    /// Installed and ready.
    Deployed,
    /// The last operation failed.
    Failed,
    /// First install in progress.
    PendingInstall,
    /// Upgrade in progress.
    PendingUpgrade,
    /// Rollback in progress.
    PendingRollback,
    /// Uninstall in progress.
    Uninstalling,
    /// An older revision.
    Superseded,
    /// Uninstalled with history kept.
    Uninstalled,
    /// Any other state Helm reports.
    #[serde(untagged)]
    Other(String),
}

impl ReleaseState {
    /// Parses Helm's status text (`deployed`, `pending-install`, ...).
    pub fn parse(s: &str) -> Self {
        match s {
            "deployed" => Self::Deployed,
            "failed" => Self::Failed,
            "pending-install" => Self::PendingInstall,
            "pending-upgrade" => Self::PendingUpgrade,
            "pending-rollback" => Self::PendingRollback,
            "uninstalling" => Self::Uninstalling,
            "superseded" => Self::Superseded,
            "uninstalled" => Self::Uninstalled,
            other => Self::Other(other.to_string()),
        }
    }

    /// Helm's text for the state.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Deployed => "deployed",
            Self::Failed => "failed",
            Self::PendingInstall => "pending-install",
            Self::PendingUpgrade => "pending-upgrade",
            Self::PendingRollback => "pending-rollback",
            Self::Uninstalling => "uninstalling",
            Self::Superseded => "superseded",
            Self::Uninstalled => "uninstalled",
            Self::Other(s) => s,
        }
    }

    /// Whether an operation is in progress (another one would conflict).
    pub fn is_pending(&self) -> bool {
        matches!(
            self,
            Self::PendingInstall
                | Self::PendingUpgrade
                | Self::PendingRollback
                | Self::Uninstalling
        )
    }
}

impl fmt::Display for ReleaseState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A release as Helm (or the in-memory store) reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseStatus {
    /// Release name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Revision (1 on first install, +1 per upgrade).
    pub revision: u32,
    /// State.
    pub state: ReleaseState,
    /// Chart version, when known.
    pub chart_version: Option<String>,
    /// GitLab Runner version the chart ships, when known.
    pub app_version: Option<String>,
    /// What the values say about the runner; `None` where the backend does not report values (`list` via helm).
    pub runner: Option<RunnerSummary>,
}

impl ReleaseStatus {
    /// The release's identity.
    pub fn id(&self) -> ReleaseId {
        ReleaseId::new(&self.namespace, &self.name)
    }
}

/// What [`ReleaseManager::uninstall`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Removal {
    /// The release existed and was removed.
    Removed,
    /// There was nothing to remove.
    AlreadyAbsent,
}

/// Manages gitlab-runner Helm releases. Object safe; every method is bounded in time.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait ReleaseManager: Send + Sync {
    /// Installs the release or upgrades it to `spec` (`helm upgrade --install --wait`). Idempotent:
    /// running it twice with the same spec leaves the same deployed release. Validates first.
    async fn ensure(&self, spec: &ReleaseSpec) -> Result<ReleaseStatus>;

    /// Upgrades an existing release to `spec` (`helm upgrade --wait`); [`Error::NotFound`] when absent.
    async fn upgrade(&self, spec: &ReleaseSpec) -> Result<ReleaseStatus>;

    /// Uninstalls the release and waits for its resources to go. Idempotent.
    async fn uninstall(&self, id: &ReleaseId, timeout: Duration) -> Result<Removal>;

    /// The release's status with its runner summary; `None` when absent.
    async fn status(&self, id: &ReleaseId) -> Result<Option<ReleaseStatus>>;

    /// gitlab-runner releases in `namespace`, or in every namespace when `None`, sorted by namespace and name.
    async fn list<'a>(&self, namespace: Option<&'a str>) -> Result<Vec<ReleaseStatus>>;
}

/// `dyn ReleaseManager`, for `Arc<DynReleaseManager>` and friends.
pub type DynReleaseManager = dyn ReleaseManager;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_validation_lists_every_problem() {
        let spec = ReleaseSpec::new(
            "Bad_Name",
            "Bad NS",
            RunnerValues::new("http://gitlab.example.com"),
        )
        .with_timeout(Duration::ZERO);
        let e = spec.validate().unwrap_err();
        let fields: Vec<&str> = e.issues().iter().map(|i| i.field.as_str()).collect();
        assert_eq!(fields, ["release", "namespace", "timeout", "gitlab_url"]);
    }

    #[test]
    fn oci_references() {
        let v = ChartVersion::default();
        let ok = ChartSource::Oci {
            reference: "oci://registry.example.com/charts/gitlab-runner".into(),
            version: v.clone(),
        };
        assert!(ok.issues().is_empty());
        let ok = ChartSource::Oci {
            reference: "oci://localhost:5000/gitlab-runner".into(),
            version: v.clone(),
        };
        assert!(ok.issues().is_empty());
        let bad = ChartSource::Oci {
            reference: "registry.example.com/gitlab-runner".into(),
            version: v,
        };
        assert_eq!(bad.issues()[0].field, "chart");
    }

    #[test]
    fn states_round_trip() {
        for s in [
            "deployed",
            "failed",
            "pending-install",
            "pending-upgrade",
            "uninstalling",
            "weird",
        ] {
            assert_eq!(ReleaseState::parse(s).as_str(), s);
        }
        assert!(ReleaseState::PendingUpgrade.is_pending());
    }
}
