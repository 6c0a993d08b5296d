//! The backends a flow run composes: AWS or sandbox infrastructure, GitLab, the cluster's clients.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use glrunner_gitlab_client::GitLabApi;
use glrunner_infra::{ClusterProvisioner, NetworkProvisioner, StackSpec, WaitPolicy};
use glrunner_janitor::{Clock, PodApi};
use glrunner_runner_chart::{ReleaseManager, TokenSecrets};

use super::{ClusterChecks, ClusterTarget, Error};
use crate::Backend;

/// Kubernetes-side clients of the provisioned cluster.
#[derive(Clone)]
pub struct ClusterClients {
    /// Helm releases.
    pub releases: Arc<dyn ReleaseManager>,
    /// Token Secrets.
    pub secrets: Arc<dyn TokenSecrets>,
    /// Pods (the janitor).
    pub pods: Arc<dyn PodApi>,
    /// The clock the janitor judges pod ages with.
    pub clock: Arc<dyn Clock>,
    /// RBAC and CoreDNS checks before anything is installed.
    pub checks: Arc<dyn ClusterChecks>,
    /// Installs and removes the in-cluster janitor (`--janitor in-cluster`).
    pub janitor: Arc<dyn glrunner_janitor::deploy::JanitorInstaller>,
    /// Applies and removes the job ServiceAccounts of IRSA job roles
    /// ([`crate::FlowConfig::job_accounts`]).
    pub job_accounts: Arc<dyn glrunner_runner_chart::ServiceAccountInstaller>,
}

impl fmt::Debug for ClusterClients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterClients")
            .field("pods", &self.pods.backend())
            .finish_non_exhaustive()
    }
}

/// Connects to the cluster once it exists (real: kube client + helm; sandbox: the world).
#[async_trait]
pub trait ClusterConnector: Send + Sync + fmt::Debug {
    /// Clients for the cluster `target` names (the stack's own, or one the user brought).
    async fn connect(
        &self,
        spec: &StackSpec,
        target: ClusterTarget<'_>,
    ) -> Result<ClusterClients, Error>;
}

/// Every backend the flow uses.
pub struct Backends {
    /// Which world.
    pub kind: Backend,
    /// EC2 side.
    pub network: Arc<dyn NetworkProvisioner>,
    /// EKS + IAM side.
    pub cluster: Arc<dyn ClusterProvisioner>,
    /// Infra wait policy.
    pub waits: WaitPolicy,
    /// Infra state cache directory (`None`: nothing on disk).
    pub state_dir: Option<PathBuf>,
    /// GitLab.
    pub gitlab: Arc<dyn GitLabApi>,
    /// GitLab URL the runners register against.
    pub gitlab_url: String,
    /// The cluster's clients, once it exists.
    pub connector: Arc<dyn ClusterConnector>,
}

impl fmt::Debug for Backends {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backends")
            .field("kind", &self.kind)
            .field("gitlab_url", &self.gitlab_url)
            .finish_non_exhaustive()
    }
}
