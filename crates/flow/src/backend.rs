//! Which world a run acts on: the in-memory sandbox or real AWS, GitLab and Kubernetes.

use serde::Serialize;

/// Which world the flow acts on. Nothing switches backend silently: spending money is explicit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The embedded in-memory world with a virtual clock: offline, free, seconds of wall time.
    #[default]
    Sandbox,
    /// Real AWS (aws-config's standard chain, `AWS_ENDPOINT_URL` honoured), GitLab, helm and Kubernetes.
    Aws,
}
