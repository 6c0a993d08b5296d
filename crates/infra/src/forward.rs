//! [`NetworkProvisioner`] and [`ClusterProvisioner`] for `Arc<T>`, `Box<T>` and `&T`, so shared,
//! boxed and borrowed backends (`Arc<dyn ClusterProvisioner>`, the `&dyn` a conformance case
//! is given) can be passed and decorated (`testing::Faulty<&dyn ClusterProvisioner>`) as they
//! are.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;
use crate::provider::{ClusterProvisioner, NetworkProvisioner};
use crate::resource::{
    AvailabilityZone, ClusterAccess, CreateRequest, Resource, ResourceKind, ResourceTags,
};
use crate::spec::StackName;

/// One forwarding body per trait for every pointer type.
macro_rules! forward {
    ($([$($lifetime:lifetime)?] $pointer:ty),+) => {$(
        #[async_trait]
        #[deny(clippy::missing_trait_methods)]
        impl<$($lifetime,)? T: NetworkProvisioner + ?Sized> NetworkProvisioner for $pointer {
            async fn availability_zones(&self) -> Result<Vec<AvailabilityZone>> {
                (**self).availability_zones().await
            }
            async fn discover(&self, stack: &StackName) -> Result<Vec<Resource>> {
                NetworkProvisioner::discover(&**self, stack).await
            }
            async fn create(
                &self,
                request: &CreateRequest,
                tags: &ResourceTags,
            ) -> Result<Resource> {
                NetworkProvisioner::create(&**self, request, tags).await
            }
            async fn describe(&self, kind: ResourceKind, id: &str) -> Result<Option<Resource>> {
                NetworkProvisioner::describe(&**self, kind, id).await
            }
            async fn delete(&self, resource: &Resource) -> Result<()> {
                NetworkProvisioner::delete(&**self, resource).await
            }
        }

        #[async_trait]
        #[deny(clippy::missing_trait_methods)]
        impl<$($lifetime,)? T: ClusterProvisioner + ?Sized> ClusterProvisioner for $pointer {
            async fn caller_arn(&self) -> Result<String> {
                (**self).caller_arn().await
            }
            async fn discover(&self, stack: &StackName) -> Result<Vec<Resource>> {
                ClusterProvisioner::discover(&**self, stack).await
            }
            async fn create(
                &self,
                request: &CreateRequest,
                tags: &ResourceTags,
            ) -> Result<Resource> {
                ClusterProvisioner::create(&**self, request, tags).await
            }
            async fn describe(&self, kind: ResourceKind, id: &str) -> Result<Option<Resource>> {
                ClusterProvisioner::describe(&**self, kind, id).await
            }
            async fn delete(&self, resource: &Resource) -> Result<()> {
                ClusterProvisioner::delete(&**self, resource).await
            }
            async fn cluster_access(&self, name: &str) -> Result<ClusterAccess> {
                (**self).cluster_access(name).await
            }
            async fn cache_rules(&self) -> Result<Vec<crate::image_cache::CacheRule>> {
                (**self).cache_rules().await
            }
            async fn drift(
                &self,
                request: &CreateRequest,
                found: &Resource,
            ) -> Result<Vec<String>> {
                (**self).drift(request, found).await
            }
        }
    )+};
}

forward!([] Arc<T>, [] Box<T>, ['a] &'a T);
