//! Domain types shared by every backend: pods as the janitor sees them, and well-known label keys.

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Label and annotation keys set by GitLab Runner's Kubernetes executor and by the gitlab-runner chart.
pub mod keys {
    /// Label on every job pod (value: the project-unique pod name prefix). Part of the job-pod identity.
    pub const LABEL_JOB_POD: &str = "job.runner.gitlab.com/pod";
    /// Annotation on every job pod: the GitLab job ID. Part of the job-pod identity.
    pub const ANNOTATION_JOB_ID: &str = "job.runner.gitlab.com/id";
    /// Annotation: the job timeout as a Go duration (`2h3m0.5s`).
    pub const ANNOTATION_JOB_TIMEOUT: &str = "job.runner.gitlab.com/timeout";
    /// Annotation: the job's web URL.
    pub const ANNOTATION_JOB_URL: &str = "job.runner.gitlab.com/url";
    /// Annotation (and label): the GitLab project ID.
    pub const ANNOTATION_PROJECT_ID: &str = "project.runner.gitlab.com/id";
    /// Label: the runner manager's name; under the Helm chart, the runner-manager pod's name.
    pub const LABEL_MANAGER_NAME: &str = "manager.runner.gitlab.com/name";
    /// Chart label on runner-manager pods (`app=<release>-gitlab-runner`).
    pub const LABEL_CHART_APP: &str = "app";
    /// Chart label on runner-manager pods (`release=<release>`).
    pub const LABEL_CHART_RELEASE: &str = "release";
    /// Chart label on runner-manager pods (`chart=gitlab-runner-<version>`).
    pub const LABEL_CHART: &str = "chart";
}

/// A pod's lifecycle phase as reported by `status.phase`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub enum PodPhase {
    /// Accepted, not all containers running yet (includes image pulls and unschedulable pods).
    Pending,
    /// Bound to a node, at least one container running.
    Running,
    /// All containers terminated successfully.
    Succeeded,
    /// All containers terminated, at least one in failure.
    Failed,
    /// Anything else, including a missing phase.
    Unknown,
}

impl PodPhase {
    /// Parses `status.phase`; anything unrecognised is [`PodPhase::Unknown`].
    pub fn parse(phase: Option<&str>) -> Self {
        match phase {
            Some("Pending") => Self::Pending,
            Some("Running") => Self::Running,
            Some("Succeeded") => Self::Succeeded,
            Some("Failed") => Self::Failed,
            _ => Self::Unknown,
        }
    }

    /// The phase as Kubernetes spells it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Unknown => "Unknown",
        }
    }

    /// Succeeded or Failed.
    pub fn is_finished(&self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

impl fmt::Display for PodPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An owner reference (`metadata.ownerReferences[]`), reduced to what the policy needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerRef {
    /// The owner's kind (`ReplicaSet`, `Deployment`, `StatefulSet`, `DaemonSet`, `Job`...).
    pub kind: String,
    /// The owner's name.
    pub name: String,
    /// Whether the owner is a controller (`controller: true`).
    pub controller: bool,
}

impl OwnerRef {
    /// A controller owner reference.
    pub fn controller(kind: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            name: name.into(),
            controller: true,
        }
    }
}

/// Resource requests of a pod, as Fargate sizes it: `max(largest init container, sum of containers)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRequests {
    /// CPU in millicores.
    pub cpu_millis: u64,
    /// Memory in MiB.
    pub memory_mib: u64,
}

/// A pod as the janitor sees it: identity, metadata and the status fields the policy reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodInfo {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Server-assigned UID: deletes are conditioned on it.
    pub uid: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `metadata.ownerReferences`.
    pub owners: Vec<OwnerRef>,
    /// `status.phase`.
    pub phase: PodPhase,
    /// `spec.nodeName`: set once the pod is bound (on Fargate, once a Fargate node was started for it).
    pub node_name: Option<String>,
    /// `metadata.creationTimestamp`.
    pub created_at: Timestamp,
    /// `status.startTime`: when the kubelet accepted the pod.
    pub started_at: Option<Timestamp>,
    /// `metadata.deletionTimestamp`: set while the pod is Terminating.
    pub deletion_timestamp: Option<Timestamp>,
    /// Resource requests, for the Fargate cost estimate.
    pub requests: PodRequests,
    /// Conditions, container states and scheduler: what [`crate::classify`] reads.
    #[serde(default)]
    pub signals: crate::classify::PodSignals,
}

impl PodInfo {
    /// The pod's key: namespace, name and UID.
    pub fn key(&self) -> PodKey {
        PodKey {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
        }
    }

    /// Whether the pod is Terminating (deletion requested, not yet gone).
    pub fn is_terminating(&self) -> bool {
        self.deletion_timestamp.is_some()
    }

    /// `namespace/name`.
    pub fn qualified_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Identifies one incarnation of a pod: a pod recreated under the same name has another UID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PodKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
}

impl fmt::Display for PodKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pod {}/{} (uid {})", self.namespace, self.name, self.uid)
    }
}

/// Which pods to list: one namespace, a server-side label selector, and a page size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// The namespace to list. Never all namespaces.
    pub namespace: String,
    /// A label selector (`key`, `!key`, `key=value`, `key!=value`, comma-separated).
    pub label_selector: Option<String>,
    /// Page size (`limit`); backends follow `continue` tokens until the list is complete.
    pub page_size: u32,
}

impl ListQuery {
    /// The query the reaper uses: pods carrying the executor's [`keys::LABEL_JOB_POD`] label.
    pub fn job_pods(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            label_selector: Some(keys::LABEL_JOB_POD.to_owned()),
            page_size: 250,
        }
    }

    /// Sets the page size.
    #[must_use]
    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size.max(1);
        self
    }
}

/// How to delete a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteMode {
    /// The grace period in seconds; `None` uses the pod's own; `Some(0)` force-deletes
    /// (needed for pods stuck Terminating on a node whose kubelet is gone).
    pub grace_seconds: Option<u32>,
}

impl DeleteMode {
    /// Graceful deletion with the given grace period.
    pub fn graceful(grace_seconds: Option<u32>) -> Self {
        Self { grace_seconds }
    }

    /// Force deletion: grace period 0.
    pub fn force() -> Self {
        Self {
            grace_seconds: Some(0),
        }
    }

    /// Whether this is a force deletion.
    pub fn is_force(&self) -> bool {
        self.grace_seconds == Some(0)
    }
}

/// What a delete call achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteOutcome {
    /// The pod is gone.
    Deleted,
    /// The pod is Terminating: the kubelet must still confirm (or a later force delete is needed).
    Terminating,
}

/// Checks a Kubernetes namespace name (RFC 1123 label: lowercase alphanumerics and `-`, at most 63).
pub fn validate_namespace(namespace: &str) -> crate::Result<()> {
    let ok = !namespace.is_empty()
        && namespace.len() <= 63
        && namespace
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !namespace.starts_with('-')
        && !namespace.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(crate::Error::invalid(
            "namespace",
            format!(
                "{namespace:?} is not a valid Kubernetes namespace name: use 1-63 lowercase letters, digits \
                 and '-', starting and ending with a letter or digit (e.g. gitlab-runner)"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_names() {
        for good in ["gitlab-runner", "a", "ns1", "x-1-y"] {
            validate_namespace(good).unwrap();
        }
        for bad in ["", "Gitlab", "-a", "a-", "a_b", "a.b", &"a".repeat(64)] {
            let err = validate_namespace(bad).unwrap_err();
            assert_eq!(err.category(), "invalid_input", "{bad}");
        }
    }

    #[test]
    fn phase_parsing() {
        assert_eq!(PodPhase::parse(Some("Running")), PodPhase::Running);
        assert_eq!(PodPhase::parse(None), PodPhase::Unknown);
        assert!(PodPhase::Failed.is_finished());
    }
}
