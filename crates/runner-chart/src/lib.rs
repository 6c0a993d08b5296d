//! GitLab Runner Helm releases for EKS Fargate: typed chart values, the runner token Secret,
//! fleet planning, and a helm CLI wrapper.
//!
//! # What is here
//!
//! - [`RunnerValues`]: a typed, validated model of the official `gitlab-runner` chart's values
//!   (gitlabUrl, concurrent, checkInterval, least-privilege namespace Role, service account,
//!   `runners.secret`, pod labels/annotations, resources, envVars) with `runners.config` built from
//!   typed Kubernetes-executor settings ([`KubernetesExecutor`]: job namespace, image,
//!   `poll_timeout`, requests = limits for build, helper and services, `privileged = false`).
//!   Rendered to YAML with `serde_norway`. Every validation error names the field and the fix.
//! - [`GracefulStop`]: the manager pod stops gracefully and within a bound when it is replaced
//!   (a preStop hook sends GitLab Runner SIGQUIT, waits up to the drain timeout, then SIGTERM so
//!   the runner aborts what is left and cleans up within `shutdown_timeout`;
//!   `terminationGracePeriodSeconds` to match). [`StopSignal`]: the official image's own stop
//!   signal is SIGQUIT, so a release with the chart's defaults drains too, without a bound.
//! - [`RunnerToken`] and the [`TokenSecrets`] trait: the `glrt-` token lives in a Kubernetes
//!   Secret (`runner-token` plus the empty `runner-registration-token` the chart expects),
//!   labelled `app.kubernetes.io/managed-by: glrunner` and with its release; a Secret without
//!   that label is never written over nor deleted. The token is redacted in `Debug`/`Display`,
//!   never on helm's command line, never in a values file or Helm's stored values, never logged.
//! - The [`ReleaseManager`] trait: `ensure` (`helm upgrade --install --wait`, idempotent, bounded),
//!   `upgrade`, `uninstall` (idempotent), `status`, `list`.
//! - [`FleetPlan`]: N concurrent jobs → K releases `<prefix>-1..K`, each with its own tag and
//!   `concurrent`; the per-shard `(tag, jobs)` routes feed the CI generator.
//! - [`deploy_runner`] / [`upgrade_runner`] / [`remove_runner`]: Secret then release, and back.
//!
//! # Implementations
//!
//! | trait | real | in-memory | mock (feature `mock`) |
//! |---|---|---|---|
//! | [`ReleaseManager`] | [`HelmCli`] (`helm` via `tokio::process`) | [`InMemoryReleases`] | `MockReleaseManager` |
//! | [`TokenSecrets`] | [`KubeTokenSecrets`] (kube-rs) | [`InMemoryTokenSecrets`] | `MockTokenSecrets` |
//! | [`ServiceAccountInstaller`] (job ServiceAccounts for IRSA) | [`KubeServiceAccounts`] (kube-rs) | [`InMemoryServiceAccounts`] | `MockServiceAccountInstaller` |
//!
//! The in-memory backends model Helm's behaviour on tokio's clock (pending states, conflicts,
//! `--wait` timeouts, a runner that never gets ready without its Secret); the sandbox reads
//! installed runners through [`InMemoryReleases::runners`]. [`conformance`] holds the suites every
//! backend passes.
//!
//! # Features
//!
//! | feature | what |
//! |---|---|
//! | `mock` | mockall mocks of [`ReleaseManager`] and [`TokenSecrets`] |
//! | `testing` | `testing::FaultyReleases`, `testing::FaultySecrets`: fault-injecting decorators (not API-stable) |
//!
//! # Why a Secret and a values file, not `--set runnerToken=...`
//!
//! Helm stores every value in the release history (readable by anyone who can read the release
//! Secrets) and `--set` puts it in the process table. The chart reads the token from the Secret
//! named by `runners.secret`, so the values carry only that name.
//!
//! # Example
//!
//! ```no_run
//! use glrunner_runner_chart::{
//!     FleetPlan, FleetRequest, HelmCli, KubeTokenSecrets, ReleaseSpec, RunnerToken, RunnerValues, deploy_runner,
//! };
//!
//! # async fn run() -> glrunner_runner_chart::Result<()> {
//! let template = RunnerValues::new("https://gitlab.example.com/");
//! let plan = FleetPlan::new(&FleetRequest::new(400).with_values(&template))?;
//! let helm = HelmCli::builder().with_kubeconfig("kubeconfig").build()?;
//! let secrets = KubeTokenSecrets::connect(Some("kubeconfig".as_ref()), None).await?;
//! for (shard, values) in plan.release_values(&template)? {
//!     // One GitLab runner per shard, created with tag_list = [shard.tag]; its token:
//!     let token = RunnerToken::new("glrt-...")?;
//!     let spec = ReleaseSpec::new(&shard.release, "gitlab-runner", values);
//!     deploy_runner(&secrets, &helm, &spec, &token).await?;
//! }
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cache;
mod cmd;
pub mod conformance;
pub mod deploy;
pub mod error;
pub mod fargate;
pub mod fleet;
mod forward;
pub mod helm;
pub mod identity;
pub mod job_accounts;
pub mod job_disk;
pub mod k8s;
pub mod memory;
pub mod release;
pub mod secret;
pub mod stop;
#[cfg(feature = "testing")]
pub mod testing;
pub mod validate;
pub mod values;

pub use deploy::{
    Deployed, TOKEN_FINGERPRINT_ANNOTATION, deploy_runner, remove_runner, token_fingerprint,
    upgrade_runner,
};
pub use error::{Error, ErrorKind, Invalid, Result};
pub use fargate::FargateSize;
pub use fleet::{FleetPlan, FleetRequest, FleetWarning, Shard};
pub use helm::{HelmCli, HelmCliBuilder, HelmVersion};
pub use identity::{JobIdentity, ROLE_ARN_ANNOTATION, SERVICE_ACCOUNT_OVERWRITE_VARIABLE};
#[cfg(feature = "mock")]
pub use job_accounts::MockServiceAccountInstaller;
pub use job_accounts::{
    DynServiceAccountInstaller, InMemoryServiceAccounts, JobServiceAccount, KubeServiceAccounts,
    ServiceAccountInstaller,
};
pub use job_disk::{EphemeralStorage, JobPodCeiling, OverwriteCeilings};
pub use k8s::KubeTokenSecrets;
pub use memory::{InMemoryReleases, InMemoryTokenSecrets, InstalledRunner, Timing};
#[cfg(feature = "mock")]
pub use release::MockReleaseManager;
pub use release::{
    ChartSource, DynReleaseManager, ReleaseId, ReleaseManager, ReleaseSpec, ReleaseState,
    ReleaseStatus, Removal,
};
#[cfg(feature = "mock")]
pub use secret::MockTokenSecrets;
pub use secret::{
    DynTokenSecrets, JOB_POD_MANAGER_ID_LABEL, Ownership, RunnerToken, SecretOutcome, SecretRef,
    StoredTokenSecret, TokenSecrets,
};
pub use stop::{ManagerImage, StopSignal, manager_stop_signal};
pub use validate::{ChartVersion, DEFAULT_CHART_VERSION, DEFAULT_RUNNER_VERSION};
pub use values::{
    ContainerResources, DEFAULT_DRAIN_TIMEOUT, EnvVar, FargateRounding, GracefulStop,
    KubernetesExecutor, PolicyRule, PullPolicy, RunnerSummary, RunnerValues, manager_resources_for,
    recommended_request_concurrency,
};
