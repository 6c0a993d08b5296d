//! [`PodApi`] for `Arc<T>` and `Box<T>`, so shared and boxed backends (`Arc<dyn PodApi>`) can be
//! passed and decorated (`testing::Faulty<Arc<dyn PodApi>>`) as they are.

use std::sync::Arc;

use async_trait::async_trait;

use crate::api::PodApi;
use crate::classify::PodEvent;
use crate::error::Result;
use crate::model::{DeleteMode, DeleteOutcome, ListQuery, PodInfo, PodKey};

/// One forwarding body for every pointer type.
macro_rules! forward {
    ($($pointer:ident),+) => {$(
        #[async_trait]
        #[deny(clippy::missing_trait_methods)]
        impl<T: PodApi + ?Sized> PodApi for $pointer<T> {
            fn backend(&self) -> &'static str {
                (**self).backend()
            }
            async fn list_pods(&self, query: &ListQuery) -> Result<Vec<PodInfo>> {
                (**self).list_pods(query).await
            }
            async fn get_pod(&self, namespace: &str, name: &str) -> Result<Option<PodInfo>> {
                (**self).get_pod(namespace, name).await
            }
            async fn delete_pod(&self, key: &PodKey, mode: DeleteMode) -> Result<DeleteOutcome> {
                (**self).delete_pod(key, mode).await
            }
            async fn list_pod_events(&self, namespace: &str) -> Result<Vec<PodEvent>> {
                (**self).list_pod_events(namespace).await
            }
        }
    )+};
}

forward!(Arc, Box);
