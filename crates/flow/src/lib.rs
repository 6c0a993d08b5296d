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
//! ```no_run
//! # async fn demo() -> Result<(), glrunner_flow::Error> {
//! use glrunner_flow::{self as flow, FlowConfig};
//! use glrunner_flow::aws::Environment;
//! use glrunner_infra::{StackName, StackSpec};
//!
//! let env = Environment::from_env(None, None, Some("us-east-1"), ".glrunner".into())?;
//! let spec = StackSpec::new(StackName::new("demo").unwrap(), env.region());
//! let config = FlowConfig::new(spec, "my-group/loadtest", 400);
//! let backends = env.connect().await?;
//! let report = flow::run(&config, &backends, &|_: &flow::FlowEvent<'_>| {}).await?;
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
pub mod cost;
pub mod drain;
mod error;
mod events;
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
    ClusterCheckReport, ClusterChecks, ClusterTarget, KubeClusterChecks, MemoryClusterChecks,
    Permission, check_cluster, fargate_coverage_errors, required_permissions,
};
pub use config::{
    ClusterSource, DEFAULT_HELM_CONCURRENCY, FlowConfig, MAX_HELM_CONCURRENCY, fargate_selects,
};
pub use error::Error;
pub use events::{FlowEvent, FlowProgress};
pub use phase::Phase;
pub use phases::{STOPPED, run, run_until};
pub use plan::RunPlan;
pub use profile::{REFERENCE_JOB_IMAGE, RUNNER_DEFAULT_POLL_TIMEOUT, RunnerProfile};
pub use report::{
    Failure, FleetSummary, FlowReport, Leftovers, LoadTestSummary, PhaseRecord, PhaseStatus,
    ProvisioningSummary, ReapSummary, ShardSummary, TeardownSummary,
};

#[cfg(test)]
mod layers;
