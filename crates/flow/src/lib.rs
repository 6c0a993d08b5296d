//! glrunner's composition library: the full flow — provision → GitLab project → fleet plan →
//! GitLab runners → token Secrets + helm releases → load-test pipeline → reap hung pods →
//! teardown — with its preflight, cost projection and summary report.
//!
//! The flow composes the capability crates through their traits only, so the same code runs on
//! the sandbox world (`glrunner_sandbox::SandboxWorld::backends`) and on AWS + GitLab + Kubernetes
//! ([`aws::Environment::connect`]). Each phase is selectable ([`FlowConfig::phases`]) and
//! resumable: a re-run finds the infrastructure by tag, the project by path, runners by
//! description (reusing their token from the release's Secret) and releases by name. When a
//! phase fails, the flow still removes what it created (releases, GitLab runners,
//! infrastructure) unless [`FlowConfig::keep`].
//!
//! The library never prints: progress goes to a [`FlowProgress`], results into a [`FlowReport`].
//! Tokens (GitLab's, the runners') never reach logs, events or the report.
//!
//! Modules import downward only (a test of the workspace checks it): the vocabulary
//! ([`Backend`], [`Phase`], [`RunnerProfile`], config) → the plan → ports, cluster checks,
//! drain, reports → [`preflight`] → the phases → [`artifacts`] and the AWS wiring ([`aws`]).
//!
//! An embedder builds an [`aws::Environment`] from explicit values (or from the standard
//! environment with [`aws::Environment::from_env`]), makes a [`FlowConfig`] and calls
//! [`run_checked`]: the preflight gate (a failed check is [`CheckedError::Preflight`] with the
//! report, and nothing is created), the run, and its cost.
//!
//! ```no_run
//! use glrunner_flow::aws::Environment;
//! use glrunner_flow::{FlowConfig, FlowEvent, PreflightGate, PreflightOptions};
//! use glrunner_gitlab_client::SecretToken;
//! use glrunner_infra::{StackName, StackSpec};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn demo(token: String) -> Result<(), glrunner_flow::CheckedError> {
//! let env = Environment::builder()
//!     .gitlab_url("https://gitlab.example.com")
//!     .gitlab_token(SecretToken::new(token))
//!     .region("eu-west-1")
//!     .build()?;
//! let spec = StackSpec::new(StackName::new("ci").unwrap(), env.region());
//! let config = FlowConfig::new(spec, "my-group/loadtest", 400);
//! let options = PreflightOptions { budget_usd: Some(5.0), ..Default::default() };
//! let plan = options.plan(&config, env.gitlab_url())?;
//! let backends = env.connect().await?;
//! let clients = env.preflight_clients().await;
//! let report = glrunner_flow::run_checked(
//!     &config,
//!     &backends,
//!     &plan,
//!     &clients.sources(&backends),
//!     PreflightGate::Check,
//!     &|_: &FlowEvent<'_>| {},
//!     &CancellationToken::new(),
//! )
//! .await?;
//! println!("{}", report.render_text());
//! # Ok(()) }
//! ```

pub mod artifacts;
pub mod aws;
mod backend;
mod backends;
mod checked;
mod cluster;
mod config;
#[cfg(any(test, feature = "testing"))]
pub mod conformance;
pub mod cost;
pub mod drain;
mod error;
mod events;
pub mod image_cache;
pub mod janitor;
pub mod job_disk;
pub mod lint;
mod ownership;
pub mod pending;
mod phase;
mod phases;
mod plan;
pub mod preflight;
mod profile;
mod report;

pub use backend::Backend;
pub use backends::{Backends, ClusterClients, ClusterConnector};
pub use checked::{
    CheckedError, DryRun, PreflightGate, PreflightOptions, compare, preflight_gate, run_checked,
};
#[cfg(feature = "mock")]
pub use cluster::MockClusterChecks;
pub use cluster::{
    ClusterCheckReport, ClusterChecks, ClusterTarget, FargatePod, KubeClusterChecks,
    MemoryClusterChecks, Permission, check_cluster, fargate_coverage_errors, fargate_pod,
    required_permissions,
};
pub use config::{
    ClusterSource, DEFAULT_HELM_CONCURRENCY, DEFAULT_PENDING_SAMPLE_INTERVAL, FlowConfig,
    JanitorMode, MAX_HELM_CONCURRENCY, MIN_PENDING_SAMPLE_INTERVAL, fargate_selects,
};
pub use error::{Category, Error};
pub use events::{FlowEvent, FlowProgress};
pub use ownership::Ownership;
pub use phase::Phase;
pub use phases::{STOPPED, run, run_until};
pub use plan::RunPlan;
pub use profile::{
    REFERENCE_CONCURRENT, REFERENCE_JOB_IMAGE, REFERENCE_POLL_TIMEOUT, REFERENCE_RUNNER_TAG,
    REFERENCE_SCRIPT, RUNNER_DEFAULT_POLL_TIMEOUT, RunnerProfile,
};
pub use report::{
    Failure, FleetSummary, FlowReport, Leftovers, LoadTestSummary, PhaseRecord, PhaseStatus,
    ProvisioningSummary, ReapSummary, ShardSummary, TeardownSummary,
};

#[cfg(test)]
mod layers;
