//! [`ReleaseManager`] and [`TokenSecrets`] for `Arc<T>` and `Box<T>`, so shared and boxed
//! backends (`Arc<dyn ReleaseManager>`) can be passed and decorated
//! (`testing::FaultyReleases<Arc<dyn ReleaseManager>>`) as they are.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::release::{ReleaseId, ReleaseManager, ReleaseSpec, ReleaseStatus, Removal};
use crate::secret::{
    Ownership, RunnerToken, SecretOutcome, SecretRef, StoredTokenSecret, TokenSecrets,
};

/// One forwarding body per trait for every pointer type.
macro_rules! forward {
    ($($pointer:ident),+) => {$(
        #[async_trait]
        #[deny(clippy::missing_trait_methods)]
        impl<T: ReleaseManager + ?Sized> ReleaseManager for $pointer<T> {
            async fn ensure(&self, spec: &ReleaseSpec) -> Result<ReleaseStatus> {
                (**self).ensure(spec).await
            }
            async fn upgrade(&self, spec: &ReleaseSpec) -> Result<ReleaseStatus> {
                (**self).upgrade(spec).await
            }
            async fn uninstall(&self, id: &ReleaseId, timeout: Duration) -> Result<Removal> {
                (**self).uninstall(id, timeout).await
            }
            async fn status(&self, id: &ReleaseId) -> Result<Option<ReleaseStatus>> {
                (**self).status(id).await
            }
            async fn list<'a>(&self, namespace: Option<&'a str>) -> Result<Vec<ReleaseStatus>> {
                (**self).list(namespace).await
            }
        }

        #[async_trait]
        #[deny(clippy::missing_trait_methods)]
        impl<T: TokenSecrets + ?Sized> TokenSecrets for $pointer<T> {
            async fn ensure(
                &self,
                secret: &SecretRef,
                token: &RunnerToken,
            ) -> Result<SecretOutcome> {
                (**self).ensure(secret, token).await
            }
            async fn get(&self, secret: &SecretRef) -> Result<Option<StoredTokenSecret>> {
                (**self).get(secret).await
            }
            async fn delete(&self, secret: &SecretRef) -> Result<bool> {
                (**self).delete(secret).await
            }
            async fn ownership(&self, secret: &SecretRef) -> Result<Ownership> {
                (**self).ownership(secret).await
            }
            async fn ensure_namespace(&self, namespace: &str) -> Result<bool> {
                (**self).ensure_namespace(namespace).await
            }
        }
    )+};
}

forward!(Arc, Box);
