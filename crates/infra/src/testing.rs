//! [`Faulty`]: a [`NetworkProvisioner`] and [`ClusterProvisioner`] decorator that injects
//! faults by rule (feature `testing`; not API-stable). The forwarding of every method of both
//! traits is written here once.
//!
//! One decorator can stand for both traits over a backend that implements both
//! ([`crate::memory::InMemoryCloud`]); over two backends, [`Faulty::share`] gives the second
//! one the same rules and counters (the n-th create of the whole account, say).
//!
//! ```
//! # async fn demo() {
//! use glrunner_infra::memory::InMemoryCloud;
//! use glrunner_infra::testing::{Faulty, InfraCall, InfraRule};
//! use glrunner_infra::{Error, ResourceKind};
//!
//! // Deleting the VPC is refused, every time.
//! let cloud = Faulty::new(InMemoryCloud::default()).with_rule(
//!     InfraRule::on(InfraCall::Delete, |_| Error::PermissionDenied {
//!         action: "delete VPC".into(),
//!         message: "refused by the test".into(),
//!     })
//!     .when(|args| args.kind() == Some(ResourceKind::Vpc)),
//! );
//! # let _ = cloud;
//! # }
//! ```

use async_trait::async_trait;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::provider::{ClusterProvisioner, NetworkProvisioner};
use crate::resource::{
    AvailabilityZone, ClusterAccess, CreateRequest, Resource, ResourceKind, ResourceTags,
};
use crate::spec::StackName;

pub use glrunner_fault::{Call, Timing};

/// A [`NetworkProvisioner`] and/or [`ClusterProvisioner`] backend `T` whose calls go through
/// [`InfraRule`]s.
pub type Faulty<T> = glrunner_fault::Faulty<T, InfraCall>;

/// A fault rule for [`Faulty`]: by call, arguments, count and timing (see [`glrunner_fault`]).
pub type InfraRule = glrunner_fault::Rule<InfraCall>;

/// A method of [`NetworkProvisioner`] or [`ClusterProvisioner`]. `create`, `describe` and
/// `delete` of both traits are one call each: the resource kind tells the two apart
/// ([`ResourceKind::is_network`], [`InfraArgs::kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum InfraCall {
    /// [`NetworkProvisioner::availability_zones`] (`ec2:DescribeAvailabilityZones`).
    AvailabilityZones,
    /// [`NetworkProvisioner::discover`].
    DiscoverNetwork,
    /// [`ClusterProvisioner::caller_arn`] (`sts:GetCallerIdentity`).
    CallerArn,
    /// [`ClusterProvisioner::discover`].
    DiscoverCluster,
    /// `create` of either trait.
    Create,
    /// `describe` of either trait.
    Describe,
    /// `delete` of either trait.
    Delete,
    /// [`ClusterProvisioner::cluster_access`].
    ClusterAccess,
    /// [`ClusterProvisioner::drift`].
    Drift,
    /// [`ClusterProvisioner::cache_rules`] (`ecr:DescribePullThroughCacheRules`).
    CacheRules,
}

/// The arguments of one call, for a rule's condition and its error.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
#[allow(missing_docs)] // the fields are the trait method's parameters
pub enum InfraArgs<'a> {
    AvailabilityZones,
    DiscoverNetwork {
        stack: &'a StackName,
    },
    CallerArn,
    DiscoverCluster {
        stack: &'a StackName,
    },
    Create {
        request: &'a CreateRequest,
        tags: &'a ResourceTags,
    },
    Describe {
        kind: ResourceKind,
        id: &'a str,
    },
    Delete {
        resource: &'a Resource,
    },
    ClusterAccess {
        name: &'a str,
    },
    Drift {
        request: &'a CreateRequest,
        found: &'a Resource,
    },
    CacheRules,
}

impl InfraArgs<'_> {
    /// The kind of resource the call is about (created, described, deleted or compared), if
    /// it is about one.
    pub fn kind(&self) -> Option<ResourceKind> {
        match self {
            Self::Create { request, .. } | Self::Drift { request, .. } => Some(request.kind()),
            Self::Describe { kind, .. } => Some(*kind),
            Self::Delete { resource } => Some(resource.kind),
            Self::AvailabilityZones
            | Self::DiscoverNetwork { .. }
            | Self::CallerArn
            | Self::DiscoverCluster { .. }
            | Self::ClusterAccess { .. }
            | Self::CacheRules => None,
        }
    }
}

impl glrunner_fault::Call for InfraCall {
    type Args<'a> = InfraArgs<'a>;
    type Error = Error;

    fn of(args: &InfraArgs<'_>) -> Self {
        use InfraArgs as A;
        match args {
            A::AvailabilityZones => Self::AvailabilityZones,
            A::DiscoverNetwork { .. } => Self::DiscoverNetwork,
            A::CallerArn => Self::CallerArn,
            A::DiscoverCluster { .. } => Self::DiscoverCluster,
            A::Create { .. } => Self::Create,
            A::Describe { .. } => Self::Describe,
            A::Delete { .. } => Self::Delete,
            A::ClusterAccess { .. } => Self::ClusterAccess,
            A::Drift { .. } => Self::Drift,
            A::CacheRules => Self::CacheRules,
        }
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<T: NetworkProvisioner> NetworkProvisioner for Faulty<T> {
    async fn availability_zones(&self) -> Result<Vec<AvailabilityZone>> {
        let call = self.inner().availability_zones();
        self.run(InfraArgs::AvailabilityZones, call).await
    }
    async fn discover(&self, stack: &StackName) -> Result<Vec<Resource>> {
        let call = NetworkProvisioner::discover(self.inner(), stack);
        self.run(InfraArgs::DiscoverNetwork { stack }, call).await
    }
    async fn create(&self, request: &CreateRequest, tags: &ResourceTags) -> Result<Resource> {
        let call = NetworkProvisioner::create(self.inner(), request, tags);
        self.run(InfraArgs::Create { request, tags }, call).await
    }
    async fn describe(&self, kind: ResourceKind, id: &str) -> Result<Option<Resource>> {
        let call = NetworkProvisioner::describe(self.inner(), kind, id);
        self.run(InfraArgs::Describe { kind, id }, call).await
    }
    async fn delete(&self, resource: &Resource) -> Result<()> {
        let call = NetworkProvisioner::delete(self.inner(), resource);
        self.run(InfraArgs::Delete { resource }, call).await
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<T: ClusterProvisioner> ClusterProvisioner for Faulty<T> {
    async fn caller_arn(&self) -> Result<String> {
        self.run(InfraArgs::CallerArn, self.inner().caller_arn())
            .await
    }
    async fn discover(&self, stack: &StackName) -> Result<Vec<Resource>> {
        let call = ClusterProvisioner::discover(self.inner(), stack);
        self.run(InfraArgs::DiscoverCluster { stack }, call).await
    }
    async fn create(&self, request: &CreateRequest, tags: &ResourceTags) -> Result<Resource> {
        let call = ClusterProvisioner::create(self.inner(), request, tags);
        self.run(InfraArgs::Create { request, tags }, call).await
    }
    async fn describe(&self, kind: ResourceKind, id: &str) -> Result<Option<Resource>> {
        let call = ClusterProvisioner::describe(self.inner(), kind, id);
        self.run(InfraArgs::Describe { kind, id }, call).await
    }
    async fn delete(&self, resource: &Resource) -> Result<()> {
        let call = ClusterProvisioner::delete(self.inner(), resource);
        self.run(InfraArgs::Delete { resource }, call).await
    }
    async fn cluster_access(&self, name: &str) -> Result<ClusterAccess> {
        let call = self.inner().cluster_access(name);
        self.run(InfraArgs::ClusterAccess { name }, call).await
    }
    async fn drift(&self, request: &CreateRequest, found: &Resource) -> Result<Vec<String>> {
        let call = self.inner().drift(request, found);
        self.run(InfraArgs::Drift { request, found }, call).await
    }
    async fn cache_rules(&self) -> Result<Vec<crate::image_cache::CacheRule>> {
        self.run(InfraArgs::CacheRules, self.inner().cache_rules())
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::apply::Engine;
    use crate::memory::InMemoryCloud;
    use crate::spec::StackSpec;

    fn refused(args: &InfraArgs<'_>) -> Error {
        Error::PermissionDenied {
            action: format!(
                "{:?} {:?}",
                <InfraCall as glrunner_fault::Call>::of(args),
                args.kind()
            ),
            message: "injected".into(),
        }
    }

    fn spec(name: &str) -> StackSpec {
        StackSpec::new(StackName::new(name).unwrap(), "us-east-1")
    }

    #[tokio::test(start_paused = true)]
    async fn a_rule_fires_on_the_nth_create_of_a_kind_and_counts_are_right() {
        let cloud = InMemoryCloud::default();
        let faulty = Faulty::new(cloud.clone()).with_rule(
            InfraRule::on(InfraCall::Create, refused)
                .when(|args| args.kind() == Some(ResourceKind::Subnet))
                .skip(1)
                .times(1),
        );
        let plan = crate::plan_stack(&spec("nth"), &faulty).await.unwrap();
        let err = Engine::new(&faulty, &faulty)
            .apply(&plan)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
        assert_eq!(faulty.injected(), 1);
        let subnets = |c: &InMemoryCloud| {
            c.all_resources()
                .iter()
                .filter(|r| r.kind == ResourceKind::Subnet)
                .count()
        };
        // Before the call: the refused subnet does not exist.
        let planned = plan
            .steps
            .iter()
            .filter(|s| s.kind == ResourceKind::Subnet)
            .count();
        assert!(subnets(&cloud) < planned, "{:?}", cloud.all_resources());
        assert_eq!(faulty.calls(InfraCall::AvailabilityZones), 1);
        assert!(faulty.calls(InfraCall::Create) >= 2);
        assert_eq!(
            faulty.calls(InfraCall::Create),
            cloud
                .calls()
                .iter()
                .filter(|c| c.starts_with("create"))
                .count() as u64
                + 1,
            "every create but the refused one reached the cloud"
        );
        Engine::new(&cloud, &cloud)
            .teardown(&spec("nth").stack)
            .await
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn an_after_effect_fault_leaves_the_resource_made() {
        let cloud = InMemoryCloud::default();
        let faulty = Faulty::new(cloud.clone()).with_rule(
            InfraRule::on(InfraCall::Create, refused)
                .when(|args| args.kind() == Some(ResourceKind::Vpc))
                .after_effect(),
        );
        let plan = crate::plan_stack(&spec("lost"), &faulty).await.unwrap();
        assert!(Engine::new(&faulty, &faulty).apply(&plan).await.is_err());
        assert_eq!(faulty.injected(), 1);
        let vpcs: Vec<_> = cloud
            .all_resources()
            .into_iter()
            .filter(|r| r.kind == ResourceKind::Vpc)
            .collect();
        assert_eq!(vpcs.len(), 1, "the VPC was made, its answer lost");
        // A clean re-run finds it by its tags instead of making a second one.
        let report = Engine::new(&cloud, &cloud).apply(&plan).await.unwrap();
        assert_eq!(report.resources["vpc"].id, vpcs[0].id);
        Engine::new(&cloud, &cloud)
            .teardown(&spec("lost").stack)
            .await
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_pass_through_decorator_passes_the_conformance_suite() {
        let cloud = InMemoryCloud::default();
        let network = Faulty::new(cloud.clone());
        // The cluster side through a shared trait object: `Faulty<Arc<dyn …>>`, one counter.
        let cluster = network.share(Arc::new(cloud.clone()) as Arc<dyn ClusterProvisioner>);
        let caps = crate::conformance::Capabilities {
            vpc_dependency_check: true,
        };
        let waits = crate::WaitPolicy::default();
        crate::conformance::network_lifecycle(
            &network,
            &StackName::new("pn").unwrap(),
            caps,
            &waits,
        )
        .await
        .unwrap();
        crate::conformance::cluster_lifecycle(
            &network,
            &cluster,
            &StackName::new("pc").unwrap(),
            &waits,
        )
        .await
        .unwrap();
        crate::conformance::provision_converges_and_teardown_leaves_nothing(
            &network,
            &cluster,
            &spec("pt"),
            &waits,
        )
        .await
        .unwrap();
        crate::conformance::interrupted_provision_converges(
            &network,
            &cluster,
            &spec("pi"),
            &waits,
        )
        .await
        .unwrap();
        crate::conformance::dry_run_mutates_nothing(&network, &cluster, &spec("pd"))
            .await
            .unwrap();
        assert_eq!(network.injected(), 0);
        assert!(
            cluster.calls(InfraCall::Drift) > 0,
            "drift is forwarded, not defaulted"
        );
        assert!(network.calls(InfraCall::DiscoverCluster) > 0);
    }
}
