//! The two capability traits every backend implements: network (EC2) and cluster (EKS + IAM).

use async_trait::async_trait;

use crate::error::Result;
use crate::resource::{
    AvailabilityZone, ClusterAccess, CreateRequest, Resource, ResourceKind, ResourceTags,
};
use crate::spec::StackName;

/// Creates, finds and deletes the network resources of a stack (VPC, subnets, gateways, routes).
///
/// Implementations: [`crate::aws::AwsNetwork`], [`crate::memory::InMemoryCloud`], and
/// `MockNetworkProvisioner` with the `mock` feature.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait NetworkProvisioner: Send + Sync {
    /// The region's availability zones with their zone IDs, sorted by name: zones of type
    /// `availability-zone` only, never the Local or Wavelength Zones an account opted into
    /// (read-only; dry-run may call it).
    async fn availability_zones(&self) -> Result<Vec<AvailabilityZone>>;

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
    /// IAM ARN of the principal making the calls, path included (the access entry grants it
    /// cluster-admin): an assumed role resolves to its role's ARN. A caller EKS cannot grant
    /// access to (the account root, a federated user) is [`crate::Error::InvalidInput`].
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

    /// Every ECR pull-through cache rule of the account's registry in the Region, whoever made
    /// it: what a cluster the user brought can pull through.
    async fn cache_rules(&self) -> Result<Vec<crate::image_cache::CacheRule>>;

    /// How a resource found and reused differs from what `request` would create (an IAM role
    /// missing a managed policy, an access entry without the admin policy), one line per
    /// difference; empty when it matches. Reported, never changed.
    async fn drift(&self, request: &CreateRequest, found: &Resource) -> Result<Vec<String>> {
        let _ = (request, found);
        Ok(Vec::new())
    }
}
