//! The two capability traits every backend implements: network (EC2) and cluster (EKS + IAM).

use async_trait::async_trait;

use crate::error::Result;
use crate::resource::{ClusterAccess, CreateRequest, Resource, ResourceKind, ResourceTags};
use crate::spec::StackName;

/// Creates, finds and deletes the network resources of a stack (VPC, subnets, gateways, routes).
///
/// Implementations: [`crate::aws::AwsNetwork`], [`crate::memory::InMemoryCloud`], and
/// `MockNetworkProvisioner` with the `mock` feature.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait NetworkProvisioner: Send + Sync {
    /// Availability zones of the region, sorted by name (read-only; dry-run may call it).
    async fn availability_zones(&self) -> Result<Vec<String>>;

    /// Every network resource of the stack: tagged resources, plus the ENIs and non-default
    /// security groups inside the stack's VPCs (EKS creates those untagged by us).
    async fn discover(&self, stack: &StackName) -> Result<Vec<Resource>>;

    /// Creates one resource with the given tags. Does not wait for it to become available.
    async fn create(&self, request: &CreateRequest, tags: &ResourceTags) -> Result<Resource>;

    /// Current view of one resource, `None` once it is gone.
    async fn describe(&self, kind: ResourceKind, id: &str) -> Result<Option<Resource>>;

    /// Deletes one resource, detaching/disassociating what it needs first (IGW attachment,
    /// route table associations). NotFound is reported as [`crate::Error::NotFound`].
    async fn delete(&self, resource: &Resource) -> Result<()>;
}

/// Creates, finds and deletes the EKS and IAM resources of a stack.
///
/// Implementations: [`crate::aws::AwsCluster`], [`crate::memory::InMemoryCloud`], and
/// `MockClusterProvisioner` with the `mock` feature.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait ClusterProvisioner: Send + Sync {
    /// ARN of the IAM principal making the calls (the access entry grants it cluster-admin).
    async fn caller_arn(&self) -> Result<String>;

    /// Every IAM role, cluster, Fargate profile, add-on and access entry of the stack.
    async fn discover(&self, stack: &StackName) -> Result<Vec<Resource>>;

    /// Creates one resource with the given tags. Does not wait for it to become active.
    async fn create(&self, request: &CreateRequest, tags: &ResourceTags) -> Result<Resource>;

    /// Current view of one resource, `None` once it is gone.
    async fn describe(&self, kind: ResourceKind, id: &str) -> Result<Option<Resource>>;

    /// Starts deleting one resource (detaching role policies first). NotFound is reported as
    /// [`crate::Error::NotFound`]; a busy cluster as [`crate::Error::Conflict`].
    async fn delete(&self, resource: &Resource) -> Result<()>;

    /// Endpoint and CA of an ACTIVE cluster, for kubeconfig.
    async fn cluster_access(&self, name: &str) -> Result<ClusterAccess>;
}
