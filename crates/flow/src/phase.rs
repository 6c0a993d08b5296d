//! The phases of the flow, in order, and their names.

use std::fmt;

use serde::Serialize;

/// The phases of the flow, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Network + EKS-on-Fargate cluster (infra).
    Provision,
    /// Get or create the GitLab project.
    Project,
    /// Plan the runner fleet (shards, tags, `concurrent`).
    Plan,
    /// One GitLab runner per shard (glrt tokens).
    Runners,
    /// Token Secrets and helm releases.
    Releases,
    /// Commit the load-test CI file, run one pipeline and watch it.
    LoadTest,
    /// Reap hung job pods.
    Reap,
    /// Uninstall releases, delete the runners in GitLab, tear down the infrastructure.
    Teardown,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 8] = [
        Phase::Provision,
        Phase::Project,
        Phase::Plan,
        Phase::Runners,
        Phase::Releases,
        Phase::LoadTest,
        Phase::Reap,
        Phase::Teardown,
    ];

    /// Short name (`load-test`).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Provision => "provision",
            Phase::Project => "project",
            Phase::Plan => "plan",
            Phase::Runners => "runners",
            Phase::Releases => "releases",
            Phase::LoadTest => "load-test",
            Phase::Reap => "reap",
            Phase::Teardown => "teardown",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
