//! glrunner: GitLab Runner on AWS EKS with every pod on Fargate, from an empty account to
//! hundreds of parallel CI jobs and back to nothing.
//!
//! The root library composes the four crates (re-exported below), holds the shared CLI
//! support of the examples and, as they land, the full flow and the sandbox world.

pub mod artifacts;
pub mod cli;
pub mod commands;
pub mod fault_suite;
pub mod flow;
pub mod preflight;
pub mod provisioning;
pub mod sandbox;

pub use glrunner_fargate as fargate;
pub use glrunner_gitlab_client as gitlab;
pub use glrunner_infra as infra;
pub use glrunner_janitor as janitor;
pub use glrunner_runner_chart as runner_chart;
