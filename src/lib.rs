//! glrunner: GitLab Runner on AWS EKS with every pod on Fargate, from an empty AWS account to
//! hundreds of parallel CI jobs and back to nothing.
//!
//! This crate is a facade (as `kube` is for kube-client and kube-runtime): it re-exports the
//! workspace's library crates under short names, and holds the command line the example binaries
//! share ([`cli`], [`commands`]). An embedder that wants no command line depends on the crates
//! directly: [`flow`] (`glrunner-flow`) to compose a run, [`sandbox`] (`glrunner-sandbox`) to
//! test against the in-memory world.
//!
//! | module          | crate                    | what it holds                                        |
//! |-----------------|--------------------------|------------------------------------------------------|
//! | [`fargate`]     | `glrunner-fargate`       | Fargate sizes, prices, exact quantities              |
//! | [`infra`]       | `glrunner-infra`         | network + EKS-on-Fargate provisioning                |
//! | [`runner_chart`]| `glrunner-runner-chart`  | runner Helm releases, the fleet plan                 |
//! | [`gitlab`]      | `glrunner-gitlab-client` | GitLab's REST API, CI generation, pipeline watch     |
//! | [`janitor`]     | `glrunner-janitor`       | finding and reaping hung job pods                    |
//! | [`flow`]        | `glrunner-flow`          | config, plan, preflight, phases, reports, AWS wiring |
//! | [`sandbox`]     | `glrunner-sandbox`       | the in-memory world, runner simulator, fault suite   |

pub mod cli;
pub mod commands;

pub use glrunner_fargate as fargate;
pub use glrunner_flow as flow;
pub use glrunner_gitlab_client as gitlab;
pub use glrunner_infra as infra;
pub use glrunner_janitor as janitor;
pub use glrunner_runner_chart as runner_chart;
pub use glrunner_sandbox as sandbox;

pub use glrunner_flow::{artifacts, preflight};
pub use glrunner_sandbox::fault_suite;

/// The provisioning commands, at their old path.
#[deprecated(note = "moved to `glrunner::commands::provision`")]
pub mod provisioning {
    pub use crate::commands::provision::*;
}
