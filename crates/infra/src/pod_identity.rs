//! EKS Pod Identity associations, read for the doctor's guard: EKS Pod Identity does not work on
//! Fargate (EKS User Guide, "Learn how EKS Pod Identity grants pods access to AWS services",
//! `pod-identities.html`, EKS Pod Identity considerations: not available for pods on AWS Fargate;
//! aws/containers-roadmap#2274, "[EKS] Pod Identity support for Fargate", open), so an
//! association on a namespace a Fargate profile selects leaves those pods without the identity
//! it promises; jobs on Fargate need IRSA.
//!
//! The trait [`PodIdentityInspector`] lists a cluster's associations. Backends:
//! [`crate::aws::AwsPodIdentity`] (aws-sdk-eks `ListPodIdentityAssociations`, every page),
//! [`InMemoryPodIdentity`], `MockPodIdentityInspector` (feature `mock`); the conformance suite
//! is [`crate::conformance::pod_identity_lists_what_exists`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One EKS Pod Identity association (what `ListPodIdentityAssociations` returns per item).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PodIdentityAssociation {
    /// The association's ID (`a-…`).
    pub association_id: String,
    /// The Kubernetes namespace it targets.
    pub namespace: String,
    /// The ServiceAccount it targets.
    pub service_account: String,
}

/// Reads a cluster's EKS Pod Identity associations.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait PodIdentityInspector: Send + Sync {
    /// Every association of `cluster`, sorted by namespace, then ServiceAccount.
    /// [`Error::NotFound`] when the cluster does not exist.
    async fn pod_identity_associations(&self, cluster: &str)
    -> Result<Vec<PodIdentityAssociation>>;
}

/// [`PodIdentityInspector`] in memory: clusters and their associations. A cluster it does not
/// know answers [`Error::NotFound`], as EKS answers `ResourceNotFoundException` ("No cluster
/// found for name") under a missing cluster (EKS API reference, ListPodIdentityAssociations,
/// Errors).
#[derive(Debug, Clone, Default)]
pub struct InMemoryPodIdentity {
    clusters: Arc<Mutex<BTreeMap<String, Vec<PodIdentityAssociation>>>>,
}

impl InMemoryPodIdentity {
    /// Declares a cluster (without associations).
    pub fn add_cluster(&self, cluster: &str) {
        self.lock().entry(cluster.to_owned()).or_default();
    }

    /// Adds an association to `cluster` (declaring the cluster); returns its ID.
    pub fn associate(&self, cluster: &str, namespace: &str, service_account: &str) -> String {
        let mut clusters = self.lock();
        let list = clusters.entry(cluster.to_owned()).or_default();
        let id = format!("a-{:017}", list.len() + 1);
        list.push(PodIdentityAssociation {
            association_id: id.clone(),
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
        });
        id
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<PodIdentityAssociation>>> {
        self.clusters.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl PodIdentityInspector for InMemoryPodIdentity {
    async fn pod_identity_associations(
        &self,
        cluster: &str,
    ) -> Result<Vec<PodIdentityAssociation>> {
        let mut found = self
            .lock()
            .get(cluster)
            .cloned()
            .ok_or_else(|| Error::NotFound {
                action: "list Pod Identity associations".into(),
                resource: format!("EKS cluster {cluster}"),
            })?;
        sort(&mut found);
        Ok(found)
    }
}

/// The order both backends return.
pub(crate) fn sort(associations: &mut [PodIdentityAssociation]) {
    associations.sort_by(|a, b| {
        (&a.namespace, &a.service_account, &a.association_id).cmp(&(
            &b.namespace,
            &b.service_account,
            &b.association_id,
        ))
    });
}
