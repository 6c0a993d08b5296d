//! The capability traits: [`PodApi`] (Kubernetes pods) and [`JobStatusSource`] (GitLab's view of a job).

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::classify::PodEvent;
use crate::model::{DeleteMode, DeleteOutcome, ListQuery, PodInfo, PodKey};

/// Listing and deleting pods: what the janitor needs from a Kubernetes API server, and nothing more.
///
/// Implementations: [`crate::k8s::KubePodApi`] (kube-rs), [`crate::memory::InMemoryPods`], and
/// `MockPodApi` with the `mock` feature.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait PodApi: Send + Sync {
    /// A short name of the backend for logs and errors (`kubernetes`, `memory`).
    fn backend(&self) -> &'static str;

    /// Lists the pods of one namespace matching the query's label selector, following
    /// pagination to the end. A missing namespace yields an empty list.
    async fn list_pods(&self, query: &ListQuery) -> Result<Vec<PodInfo>>;

    /// Reads one pod; `Ok(None)` when it does not exist.
    async fn get_pod(&self, namespace: &str, name: &str) -> Result<Option<PodInfo>>;

    /// Deletes the pod named by `key` **only if its UID is still `key.uid`**.
    ///
    /// Errors: [`crate::Error::NotFound`] when no pod has that name, [`crate::Error::Conflict`]
    /// when a pod with that name has another UID (deleted and recreated since it was listed).
    async fn delete_pod(&self, key: &PodKey, mode: DeleteMode) -> Result<DeleteOutcome>;

    /// Lists the Events about pods in one namespace (`involvedObject.kind=Pod`), following
    /// pagination; what [`crate::classify`] explains Pending pods from. A missing namespace
    /// yields an empty list.
    ///
    /// The default answers an empty list (a backend without Events: pods are then explained
    /// from their conditions and container states alone); every backend of this crate reads them.
    async fn list_pod_events(&self, namespace: &str) -> Result<Vec<PodEvent>> {
        let _ = namespace;
        Ok(Vec::new())
    }
}

/// `dyn PodApi`, for `Arc<DynPodApi>`.
pub type DynPodApi = dyn PodApi;

/// A GitLab job's status (`GET /projects/:id/jobs/:job_id` → `status`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobStatus {
    /// `created`, `waiting_for_resource`, `preparing`, `pending`, `scheduled`, `manual`, `waiting_for_callback`.
    Queued,
    /// `running`.
    Running,
    /// `canceling`.
    Canceling,
    /// `success`.
    Success,
    /// `failed`.
    Failed,
    /// `canceled`.
    Canceled,
    /// `skipped`.
    Skipped,
    /// GitLab does not know the job (deleted, or another instance's job).
    NotFound,
}

impl JobStatus {
    /// Parses GitLab's status string; unknown strings are treated as still active (`Queued`), the safe side.
    pub fn from_gitlab(status: &str) -> Self {
        match status {
            "running" => Self::Running,
            "canceling" => Self::Canceling,
            "success" => Self::Success,
            "failed" => Self::Failed,
            "canceled" => Self::Canceled,
            "skipped" => Self::Skipped,
            _ => Self::Queued,
        }
    }

    /// Whether the job is over in GitLab's eyes, so its pod has no further use.
    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            Self::Success | Self::Failed | Self::Canceled | Self::Skipped | Self::NotFound
        )
    }

    /// The status as a short lowercase word.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Canceling => "canceling",
            Self::Success => "success",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::Skipped => "skipped",
            Self::NotFound => "not_found",
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// GitLab's view of a job, for the optional cross-check. The root package implements it with the
/// GitLab client; [`crate::memory::InMemoryJobStatus`] and `MockJobStatusSource` exist for tests.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait JobStatusSource: Send + Sync {
    /// The status of job `job_id` of project `project_id`.
    async fn job_status(&self, project_id: u64, job_id: u64) -> Result<JobStatus>;
}

/// `dyn JobStatusSource`, for `Arc<DynJobStatusSource>`.
pub type DynJobStatusSource = dyn JobStatusSource;
