//! `HelmCli`: the [`ReleaseManager`] backed by the `helm` binary through `tokio::process`.
//!
//! Values travel in a temporary file (mode 0600, removed when the command ends, also on error);
//! the runner token never does: it is in the Secret named by `runners.secret`.
//!
//! Helm versions: the client asks `helm version --short` once and refuses anything older than
//! [`MIN_HELM_VERSION`] (3.8, the first with OCI charts by default). Each major gets only the
//! flags its cobra commands define (the tests check every command line against tables derived
//! from Helm's source at v3.8.0, v3.19.0, v4.0.0 and v4.2.4, `scripts/helm_flags.json`): Helm 4
//! gets `--wait=watcher` (its `--wait` takes a strategy; Helm 3's is a plain switch) and no
//! `helm list --all`, which it removed when it made `list` show every state (helm/helm
//! 8a73d9798); Helm 4 keeps its server-side apply default (`--server-side=auto`: the method of
//! the release's previous revision). The official chart is fetched with `--repo URL` on the
//! command itself, so the user's own helm repositories (a `gitlab` entry pointing elsewhere, say)
//! are never rewritten.
//!
//! A release left `pending-install`, `pending-upgrade` or `pending-rollback` by a helm that was
//! killed mid-operation refuses every later upgrade ("another operation (install/upgrade/rollback)
//! is in progress": helm v4.2.4 pkg/action/upgrade.go:246-248, the same since v3.8.0) until a
//! rollback or an uninstall. An install or upgrade meeting that waits while the pending
//! operation may still be running (up to the spec's timeout after it started), then rolls a
//! pending upgrade or rollback back to the last deployed revision, or uninstalls a pending
//! install, and goes on.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use crate::cmd::HelmCmd;
use crate::error::{Error, Result};
use crate::release::{
    CHART_NAME, ChartSource, GITLAB_REPO_URL, ReleaseId, ReleaseManager, ReleaseSpec, ReleaseState,
    ReleaseStatus, Removal,
};
use crate::values::RunnerSummary;

/// Environment variable naming the helm binary.
pub const HELM_ENV: &str = "GLRUNNER_HELM";
/// Revisions Helm keeps per release.
const HISTORY_MAX: &str = "10";
/// How often a release another helm operation holds is looked at again.
const PENDING_POLL: Duration = Duration::from_secs(2);
/// Oldest helm this client drives.
pub const MIN_HELM_VERSION: semver::Version = semver::Version::new(3, 8, 0);
/// First helm with `helm get metadata`.
const GET_METADATA_SINCE: semver::Version = semver::Version::new(3, 13, 0);

/// The helm CLI's version, as `helm version --short` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelmVersion(pub semver::Version);

impl HelmVersion {
    /// Parses `helm version --short` output such as `v3.16.2+g13654a5` or `v4.0.1+g1a2b3c4`.
    pub fn parse(output: &str) -> Option<Self> {
        let token = output.split_whitespace().next()?;
        let token = token.strip_prefix('v').unwrap_or(token);
        let core = token.split('+').next()?;
        semver::Version::parse(core).ok().map(Self)
    }

    /// Whether this is Helm 4 or later.
    pub fn is_helm4(&self) -> bool {
        self.0.major >= 4
    }

    /// The `--wait` argument for install, upgrade and uninstall.
    fn wait_flag(&self) -> &'static str {
        if self.is_helm4() {
            "--wait=watcher"
        } else {
            "--wait"
        }
    }

    /// `helm list`'s switch for releases in every state, where there is one: without it Helm 3
    /// lists only deployed and failed releases (helm v3.19.0 pkg/action/list.go `SetStateMask`,
    /// "Apply a default"); Helm 4 removed it (helm/helm 8a73d9798, v4.0.0 pkg/cmd/list.go) and
    /// lists every state unless a state filter is given (v4.0.0 pkg/action/list.go `SetStateMask`).
    fn list_all_states(&self) -> Option<&'static str> {
        (!self.is_helm4()).then_some("--all")
    }

    /// Whether `helm get metadata` exists.
    fn has_get_metadata(&self) -> bool {
        self.0 >= GET_METADATA_SINCE
    }
}

/// Builds a [`HelmCli`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct HelmCliBuilder {
    program: Option<PathBuf>,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    repo_url: Option<String>,
}

impl HelmCliBuilder {
    /// An empty builder: `helm` from `PATH`, helm's own kubeconfig discovery.
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder reading `GLRUNNER_HELM` (the helm binary). Nothing else is read from the environment.
    pub fn from_env() -> Self {
        Self {
            program: std::env::var_os(HELM_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            ..Self::default()
        }
    }

    /// The helm binary.
    pub fn with_program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = Some(program.into());
        self
    }

    /// The kubeconfig passed as `--kubeconfig`.
    pub fn with_kubeconfig(mut self, path: impl Into<PathBuf>) -> Self {
        self.kubeconfig = Some(path.into());
        self
    }

    /// The context passed as `--kube-context`.
    pub fn with_context(mut self, context: impl Into<String>) -> Self {
        self.context = Some(context.into());
        self
    }

    /// A mirror of the gitlab chart repository (default <https://charts.gitlab.io>).
    pub fn with_repo_url(mut self, url: impl Into<String>) -> Self {
        self.repo_url = Some(url.into());
        self
    }

    /// Checks the settings and builds the client.
    pub fn build(self) -> Result<HelmCli> {
        let mut issues = Vec::new();
        if let Some(k) = &self.kubeconfig
            && !k.is_file()
        {
            issues.push(crate::Invalid::new(
                "kubeconfig",
                format!("{} is not a readable file", k.display()),
                "pass the path of an existing kubeconfig with --kubeconfig",
            ));
        }
        if let Some(c) = &self.context
            && (c.is_empty() || c.starts_with('-'))
        {
            issues.push(crate::Invalid::new(
                "context",
                format!("{c:?} is not a context name"),
                "pass a context from the kubeconfig",
            ));
        }
        if let Some(p) = &self.program
            && p.as_os_str().is_empty()
        {
            issues.push(crate::Invalid::new(
                "helm",
                "the helm path is empty",
                "pass --helm PATH or set GLRUNNER_HELM",
            ));
        }
        let repo_url = self.repo_url.unwrap_or_else(|| GITLAB_REPO_URL.to_string());
        issues.extend(crate::validate::gitlab_url("repo_url", &repo_url, false).err());
        Error::check(issues)?;
        Ok(HelmCli {
            program: self.program.unwrap_or_else(|| PathBuf::from("helm")),
            kubeconfig: self.kubeconfig,
            context: self.context,
            repo_url,
            version: tokio::sync::OnceCell::new(),
        })
    }
}

/// The helm CLI as a [`ReleaseManager`].
#[derive(Debug)]
pub struct HelmCli {
    program: PathBuf,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    repo_url: String,
    version: tokio::sync::OnceCell<HelmVersion>,
}

impl HelmCli {
    /// Starts a builder.
    pub fn builder() -> HelmCliBuilder {
        HelmCliBuilder::new()
    }

    /// The helm binary in use.
    pub fn program(&self) -> &Path {
        &self.program
    }

    fn cmd(&self, purpose: impl Into<String>) -> HelmCmd {
        let mut cmd = HelmCmd::new(&self.program, purpose);
        if let Some(k) = &self.kubeconfig {
            cmd = cmd.args([
                std::ffi::OsString::from("--kubeconfig"),
                k.as_os_str().to_owned(),
            ]);
        }
        if let Some(c) = &self.context {
            cmd = cmd.args(["--kube-context", c.as_str()]);
        }
        cmd
    }

    /// The helm CLI's version, asked once per client; versions before [`MIN_HELM_VERSION`] are refused.
    pub async fn version(&self) -> Result<HelmVersion> {
        self.version
            .get_or_try_init(|| async {
                let out = HelmCmd::new(&self.program, "read the helm CLI's version")
                    .about("the helm CLI", "read the version of")
                    .args(["version", "--short"])
                    .run()
                    .await?;
                let version = HelmVersion::parse(&out).ok_or_else(|| Error::Backend {
                    backend: "helm",
                    resource: format!("the helm CLI {}", self.program.display()),
                    action: "read the version of".into(),
                    source: format!("unexpected `helm version --short` output {:?}", out.trim())
                        .into(),
                })?;
                if version.0 < MIN_HELM_VERSION {
                    return Err(Error::invalid(
                        "helm",
                        format!(
                            "{} is helm {}, older than the {MIN_HELM_VERSION} this tool needs",
                            self.program.display(),
                            version.0
                        ),
                        "install Helm 3.8 or newer (Helm 4 works too) and point --helm / GLRUNNER_HELM at it",
                    ));
                }
                tracing::debug!(version = %version.0, "helm CLI version");
                Ok(version)
            })
            .await
            .cloned()
    }

    fn chart_args(&self, chart: &ChartSource) -> Vec<std::ffi::OsString> {
        match chart {
            // `--repo` fetches from the URL directly: no `helm repo add`, so a user's own
            // repository named `gitlab` is left alone.
            ChartSource::Repo { version } => vec![
                CHART_NAME.into(),
                "--repo".into(),
                self.repo_url.as_str().into(),
                "--version".into(),
                version.as_str().into(),
            ],
            ChartSource::Path { path } => vec![path.as_os_str().to_owned()],
            ChartSource::Oci { reference, version } => {
                vec![
                    reference.into(),
                    "--version".into(),
                    version.as_str().into(),
                ]
            }
        }
    }

    /// The chart version and app version of a release.
    async fn chart_of(
        &self,
        id: &ReleaseId,
        helm: &HelmVersion,
    ) -> Result<(Option<String>, Option<String>)> {
        if helm.has_get_metadata() {
            let stdout = self
                .cmd(format!("read the chart metadata of {}", id.describe()))
                .about(id.describe(), "read the chart metadata of")
                .args([
                    "get",
                    "metadata",
                    id.name.as_str(),
                    "--namespace",
                    id.namespace.as_str(),
                    "--output",
                    "json",
                ])
                .run()
                .await?;
            let meta: HelmMetadata = serde_json::from_str(stdout.trim())
                .map_err(|e| bad_output(id.describe(), "read the chart metadata of", e))?;
            return Ok((
                meta.version.filter(|v| !v.is_empty()),
                meta.app_version.filter(|v| !v.is_empty()),
            ));
        }
        let filter = format!("^{}$", id.name);
        let stdout = self
            .cmd(format!("find {} in helm list", id.describe()))
            .about(id.describe(), "list")
            .args(["list"])
            .args(helm.list_all_states())
            .args([
                "--max",
                "0",
                "--filter",
                filter.as_str(),
                "--namespace",
                id.namespace.as_str(),
                "--output",
                "json",
            ])
            .run()
            .await?;
        Ok(parse_list(&stdout, &id.namespace)?
            .into_iter()
            .find(|r| r.name == id.name)
            .map(|r| (r.chart_version, r.app_version))
            .unwrap_or_default())
    }

    async fn deploy(&self, spec: &ReleaseSpec, install: bool) -> Result<ReleaseStatus> {
        spec.validate()?;
        let helm = self.version().await?;
        let first = self.run_upgrade(spec, install, &helm).await;
        if !matches!(first, Err(Error::Conflict { .. })) {
            return first;
        }
        // "another operation (install/upgrade/rollback) is in progress", or a write conflict:
        // only a pending release is waited for or cleared, then the upgrade runs again.
        if self.clear_pending(&spec.id(), spec.timeout, &helm).await? {
            self.run_upgrade(spec, install, &helm).await
        } else {
            first
        }
    }

    /// `helm upgrade [--install]` with the spec's values, once.
    async fn run_upgrade(
        &self,
        spec: &ReleaseSpec,
        install: bool,
        helm: &HelmVersion,
    ) -> Result<ReleaseStatus> {
        let yaml = spec.values.to_yaml()?;
        let id = spec.id();
        let action = if install {
            "install or upgrade"
        } else {
            "upgrade"
        };
        let chart = self.chart_args(&spec.chart);
        let values_file = ValuesFile::write(&yaml)?;
        let timeout = format!("{}s", spec.timeout.as_secs());
        let mut cmd = self
            .cmd(format!(
                "{action} {} with chart {}",
                id.describe(),
                spec.chart
            ))
            .about(id.describe(), action)
            .args(["upgrade"]);
        if install {
            cmd = cmd.args(["--install", "--create-namespace"]);
        }
        let result = cmd
            .args([id.name.as_str()])
            .args(chart)
            .args([
                "--namespace",
                id.namespace.as_str(),
                "--reset-values",
                "--values",
            ])
            .args([values_file.path().as_os_str()])
            .args([
                helm.wait_flag(),
                "--timeout",
                timeout.as_str(),
                "--history-max",
                HISTORY_MAX,
                "--output",
                "json",
            ])
            .bounded(spec.timeout)
            .run()
            .await;
        values_file.remove();
        let stdout = result?;
        // Only what helm reported: no field is filled in from the request.
        let status = parse_release(&stdout, &id, action)?;
        tracing::info!(release = %id, revision = status.revision, state = %status.state, "helm release {action} done");
        Ok(status)
    }

    /// `helm status NAME --namespace NS --output json`: the release as Helm stores it (an
    /// absent release is [`Error::NotFound`]).
    async fn status_json(&self, id: &ReleaseId) -> Result<String> {
        self.cmd(format!("read the status of {}", id.describe()))
            .about(id.describe(), "read the status of")
            .args([
                "status",
                id.name.as_str(),
                "--namespace",
                id.namespace.as_str(),
                "--output",
                "json",
            ])
            .run()
            .await
    }

    /// The release's pending state, its revision, and how long ago the pending operation began
    /// (`info.last_deployed`, which Helm sets when it starts one: helm v4.2.4 pkg/action/upgrade.go
    /// `prepareUpgrade`, pkg/action/rollback.go `prepareRollback`); `None` when it is absent or
    /// not pending.
    async fn pending(&self, id: &ReleaseId) -> Result<Option<Pending>> {
        let result = self.status_json(id).await;
        let stdout = match result {
            Ok(stdout) => stdout,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let release: HelmRelease = serde_json::from_str(stdout.trim())
            .map_err(|e| bad_output(id.describe(), "read the status of", e))?;
        let state = ReleaseState::parse(&release.info.status);
        // Helm's `IsPending` (helm v4.2.4 pkg/release/common/status.go:47): what errPending refuses.
        if !matches!(
            state,
            ReleaseState::PendingInstall
                | ReleaseState::PendingUpgrade
                | ReleaseState::PendingRollback
        ) {
            return Ok(None);
        }
        let age = release
            .info
            .last_deployed
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|t| {
                let secs = jiff::Timestamp::now().duration_since(t).as_secs_f64();
                Duration::from_secs_f64(secs.max(0.0))
            });
        Ok(Some(Pending {
            state,
            revision: release.version,
            age,
        }))
    }

    /// Waits while `id` is pending and the operation that made it so may still run (until
    /// `timeout` after it began: a live helm ends its wait by then), then clears it: a pending
    /// install is uninstalled, a pending upgrade or rollback rolled back to the last deployed
    /// revision. `true` when the release was pending (an upgrade may now go ahead), `false`
    /// when it never was.
    async fn clear_pending(
        &self,
        id: &ReleaseId,
        timeout: Duration,
        helm: &HelmVersion,
    ) -> Result<bool> {
        let first_look = tokio::time::Instant::now();
        let mut seen = false;
        loop {
            let Some(pending) = self.pending(id).await? else {
                return Ok(seen);
            };
            seen = true;
            // Without a readable start time, count from the first look.
            let age = pending.age.unwrap_or_else(|| first_look.elapsed());
            if age < timeout {
                tracing::info!(release = %id, state = %pending.state, revision = pending.revision,
                    age_secs = age.as_secs(), timeout_secs = timeout.as_secs(),
                    "release held by another helm operation; waiting for it to end or time out");
                tokio::time::sleep((timeout - age).min(PENDING_POLL)).await;
                continue;
            }
            tracing::warn!(release = %id, state = %pending.state, revision = pending.revision,
                age_secs = age.as_secs(), "release left pending by a helm operation that is gone; clearing it");
            match pending.state {
                ReleaseState::PendingInstall => {
                    self.uninstall(id, timeout).await?;
                }
                _ => self.roll_back_to_last_deployed(id, timeout, helm).await?,
            }
            return Ok(true);
        }
    }

    /// `helm rollback` to the newest deployed revision (during an upgrade the previous revision
    /// stays `deployed` until the new one succeeds: helm v4.2.4 pkg/action/upgrade.go
    /// `releasingUpgrade`); a release that was never deployed is uninstalled instead.
    async fn roll_back_to_last_deployed(
        &self,
        id: &ReleaseId,
        timeout: Duration,
        helm: &HelmVersion,
    ) -> Result<()> {
        let stdout = self
            .cmd(format!("read the history of {}", id.describe()))
            .about(id.describe(), "read the history of")
            .args([
                "history",
                id.name.as_str(),
                "--namespace",
                id.namespace.as_str(),
                "--output",
                "json",
            ])
            .run()
            .await?;
        let history: Vec<HelmRevision> = serde_json::from_str(stdout.trim())
            .map_err(|e| bad_output(id.describe(), "read the history of", e))?;
        let Some(target) = history
            .iter()
            .filter(|r| r.status == "deployed")
            .map(|r| r.revision)
            .max()
        else {
            tracing::warn!(release = %id, "no deployed revision to roll back to; uninstalling");
            self.uninstall(id, timeout).await?;
            return Ok(());
        };
        let revision = target.to_string();
        let secs = format!("{}s", timeout.as_secs().max(1));
        self.cmd(format!(
            "roll {} back to revision {revision}",
            id.describe()
        ))
        .about(id.describe(), "roll back")
        .args([
            "rollback",
            id.name.as_str(),
            revision.as_str(),
            "--namespace",
            id.namespace.as_str(),
            helm.wait_flag(),
            "--timeout",
            secs.as_str(),
            "--history-max",
            HISTORY_MAX,
        ])
        .bounded(timeout)
        .run()
        .await?;
        tracing::info!(release = %id, revision = target, "helm release rolled back");
        Ok(())
    }
}

/// A release some helm operation left pending.
struct Pending {
    state: ReleaseState,
    revision: u32,
    /// Since the operation began, when helm says.
    age: Option<Duration>,
}

/// The temporary values file: created 0600, removed on [`ValuesFile::remove`] or drop.
struct ValuesFile(tempfile::NamedTempFile);

impl ValuesFile {
    fn write(yaml: &str) -> Result<Self> {
        let io_err = |e: std::io::Error| Error::Backend {
            backend: "helm",
            resource: "temporary values file".into(),
            action: "write".into(),
            source: Box::new(e),
        };
        let mut file = tempfile::Builder::new()
            .prefix("glrunner-values-")
            .suffix(".yaml")
            .tempfile()
            .map_err(io_err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            file.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(io_err)?;
        }
        file.write_all(yaml.as_bytes()).map_err(io_err)?;
        file.flush().map_err(io_err)?;
        Ok(Self(file))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn remove(self) {
        let path = self.0.path().to_path_buf();
        if let Err(e) = self.0.close() {
            tracing::warn!(path = %path.display(), error = %e, "could not remove the temporary values file");
        }
    }
}

#[async_trait]
impl ReleaseManager for HelmCli {
    async fn ensure(&self, spec: &ReleaseSpec) -> Result<ReleaseStatus> {
        self.deploy(spec, true).await
    }

    async fn upgrade(&self, spec: &ReleaseSpec) -> Result<ReleaseStatus> {
        self.deploy(spec, false).await
    }

    async fn uninstall(&self, id: &ReleaseId, timeout: Duration) -> Result<Removal> {
        id.validate()?;
        let helm = self.version().await?;
        let secs = format!("{}s", timeout.as_secs().max(1));
        let result = self
            .cmd(format!("uninstall {}", id.describe()))
            .about(id.describe(), "uninstall")
            .args([
                "uninstall",
                id.name.as_str(),
                "--namespace",
                id.namespace.as_str(),
                helm.wait_flag(),
                "--timeout",
                secs.as_str(),
            ])
            .bounded(timeout)
            .run()
            .await;
        match result {
            Ok(_) => {
                tracing::info!(release = %id, "helm release uninstalled");
                Ok(Removal::Removed)
            }
            Err(Error::NotFound { .. }) => {
                tracing::info!(release = %id, "helm release already absent");
                Ok(Removal::AlreadyAbsent)
            }
            Err(e) => Err(e),
        }
    }

    async fn status(&self, id: &ReleaseId) -> Result<Option<ReleaseStatus>> {
        id.validate()?;
        let helm = self.version().await?;
        let result = self.status_json(id).await;
        let mut status = match result {
            Ok(stdout) => parse_release(&stdout, id, "read the status of")?,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        // `helm status -o json` strips the chart: read its version from the release metadata
        // (helm 3.13+) or from `helm list --filter` (older helm).
        if status.chart_version.is_none() {
            let (chart_version, app_version) = self.chart_of(id, &helm).await?;
            status.chart_version = chart_version;
            status.app_version = app_version;
        }
        Ok(Some(status))
    }

    async fn list<'a>(&self, namespace: Option<&'a str>) -> Result<Vec<ReleaseStatus>> {
        if let Some(ns) = namespace {
            crate::validate::namespace("namespace", ns)
                .map_err(|i| Error::InvalidInput { issues: vec![i] })?;
        }
        let scope = match namespace {
            Some(ns) => format!("namespace {ns:?}"),
            None => "all namespaces".to_string(),
        };
        let helm = self.version().await?;
        let mut cmd = self
            .cmd(format!("list gitlab-runner releases in {scope}"))
            .about(format!("helm releases in {scope}"), "list")
            .args(["list"])
            // Every state: pending and uninstalling releases are ours to see too.
            .args(helm.list_all_states())
            // `--max 0`: every release (helm's default stops at 256).
            .args(["--max", "0", "--output", "json"]);
        cmd = match namespace {
            Some(ns) => cmd.args(["--namespace", ns]),
            None => cmd.args(["--all-namespaces"]),
        };
        let stdout = cmd.run().await?;
        parse_list(&stdout, &scope)
    }
}

#[derive(Deserialize)]
struct HelmRelease {
    name: String,
    namespace: String,
    #[serde(default)]
    version: u32,
    #[serde(default)]
    info: HelmInfo,
    #[serde(default)]
    chart: Option<HelmChart>,
    #[serde(default)]
    config: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct HelmInfo {
    #[serde(default)]
    status: String,
    /// When the revision's operation began (RFC 3339).
    #[serde(default)]
    last_deployed: Option<String>,
}

/// One row of `helm history --output json` (helm v4.2.4 pkg/cmd/history.go `releaseInfo`).
#[derive(Deserialize)]
struct HelmRevision {
    revision: u32,
    #[serde(default)]
    status: String,
}

#[derive(Deserialize)]
struct HelmChart {
    metadata: HelmChartMetadata,
}

#[derive(Deserialize)]
struct HelmChartMetadata {
    #[serde(default)]
    version: Option<String>,
    #[serde(default, rename = "appVersion")]
    app_version: Option<String>,
}

/// `helm get metadata --output json`.
#[derive(Deserialize)]
struct HelmMetadata {
    #[serde(default)]
    version: Option<String>,
    #[serde(default, rename = "appVersion")]
    app_version: Option<String>,
}

#[derive(Deserialize)]
struct HelmListItem {
    name: String,
    namespace: String,
    #[serde(default)]
    revision: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    chart: String,
    #[serde(default)]
    app_version: Option<String>,
}

fn bad_output(resource: String, action: &str, e: serde_json::Error) -> Error {
    Error::Backend {
        backend: "helm",
        resource,
        action: format!("parse helm's JSON output to {action}"),
        source: Box::new(e),
    }
}

/// Parses the release JSON printed by `helm status|upgrade --output json`.
pub(crate) fn parse_release(stdout: &str, id: &ReleaseId, action: &str) -> Result<ReleaseStatus> {
    let release: HelmRelease =
        serde_json::from_str(stdout.trim()).map_err(|e| bad_output(id.describe(), action, e))?;
    let (chart_version, app_version) = match release.chart {
        Some(c) => (c.metadata.version, c.metadata.app_version),
        None => (None, None),
    };
    Ok(ReleaseStatus {
        name: release.name,
        namespace: release.namespace,
        revision: release.version,
        state: ReleaseState::parse(&release.info.status),
        chart_version,
        app_version,
        runner: release
            .config
            .as_ref()
            .and_then(RunnerSummary::from_chart_values),
    })
}

/// Parses `helm list --output json`, keeping only gitlab-runner releases.
pub(crate) fn parse_list(stdout: &str, scope: &str) -> Result<Vec<ReleaseStatus>> {
    let text = stdout.trim();
    let items: Vec<HelmListItem> = if text.is_empty() {
        Vec::new()
    } else {
        serde_json::from_str(text)
            .map_err(|e| bad_output(format!("helm releases in {scope}"), "list", e))?
    };
    let prefix = format!("{CHART_NAME}-");
    let mut out: Vec<ReleaseStatus> = items
        .into_iter()
        .filter_map(|item| {
            let version = item.chart.strip_prefix(&prefix)?;
            // "gitlab-runner-0.86.0", not some other chart whose name starts the same way.
            if !version.starts_with(|c: char| c.is_ascii_digit()) {
                return None;
            }
            Some(ReleaseStatus {
                name: item.name,
                namespace: item.namespace,
                revision: item.revision.parse().unwrap_or(0),
                state: ReleaseState::parse(&item.status),
                chart_version: Some(version.to_string()),
                app_version: item.app_version.filter(|v| !v.is_empty()),
                runner: None,
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_helm_status_json() {
        let json = r#"{"name":"runner-1","namespace":"ci","version":3,
            "info":{"first_deployed":"2026-11-28T00:00:00Z","status":"deployed","description":"Upgrade complete"},
            "chart":{"metadata":{"name":"gitlab-runner","version":"0.86.0","appVersion":"18.9.0"}},
            "config":{"concurrent":200,"deploymentAnnotations":{"glrunner.io/runner-tags":"glrunner-1"},
                      "runners":{"secret":"tok","config":"[[runners]]\n  [runners.kubernetes]\n    namespace = \"jobs\"\n    poll_timeout = 300\n"}}}"#;
        let s = parse_release(json, &ReleaseId::new("ci", "runner-1"), "read").unwrap();
        assert_eq!(s.revision, 3);
        assert_eq!(s.state, ReleaseState::Deployed);
        assert_eq!(s.chart_version.as_deref(), Some("0.86.0"));
        let r = s.runner.unwrap();
        assert_eq!(r.concurrent, 200);
        assert_eq!(r.tags, ["glrunner-1"]);
        assert_eq!(r.job_namespace.as_deref(), Some("jobs"));
        assert_eq!(r.poll_timeout, Some(Duration::from_secs(300)));
        let e = parse_release("not json", &ReleaseId::new("ci", "runner-1"), "read").unwrap_err();
        assert!(
            e.to_string()
                .contains("helm release \"runner-1\" in namespace \"ci\""),
            "{e}"
        );
    }

    #[test]
    fn parses_helm_list_json_and_keeps_runner_charts() {
        let json = r#"[{"name":"b","namespace":"ci","revision":"2","updated":"x","status":"deployed","chart":"gitlab-runner-0.86.0","app_version":"18.9.0"},
            {"name":"a","namespace":"ci","revision":"1","updated":"x","status":"failed","chart":"gitlab-runner-0.85.1","app_version":""},
            {"name":"db","namespace":"ci","revision":"1","updated":"x","status":"deployed","chart":"postgresql-12.1.0","app_version":"15"},
            {"name":"c","namespace":"ci","revision":"1","updated":"x","status":"deployed","chart":"gitlab-runner-operator-1.0.0","app_version":"1"}]"#;
        let l = parse_list(json, "ci").unwrap();
        assert_eq!(
            l.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(l[0].state, ReleaseState::Failed);
        assert_eq!(l[0].app_version, None);
        assert_eq!(l[1].revision, 2);
        assert!(parse_list("", "ci").unwrap().is_empty());
    }

    #[test]
    fn builder_checks_inputs() {
        let e = HelmCli::builder()
            .with_kubeconfig("/nonexistent/kubeconfig")
            .with_context("")
            .build()
            .unwrap_err();
        let fields: Vec<&str> = e.issues().iter().map(|i| i.field.as_str()).collect();
        assert_eq!(fields, ["kubeconfig", "context"]);
        assert_eq!(
            HelmCli::builder().build().unwrap().program(),
            Path::new("helm")
        );
    }
}
