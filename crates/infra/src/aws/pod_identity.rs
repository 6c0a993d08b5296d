//! [`PodIdentityInspector`] on aws-sdk-eks: `ListPodIdentityAssociations`, every page.

use async_trait::async_trait;

use super::map_sdk_error;
use crate::error::Result;
use crate::pod_identity::{PodIdentityAssociation, PodIdentityInspector, sort};

/// EKS Pod Identity associations through the EKS API.
#[derive(Debug, Clone)]
pub struct AwsPodIdentity {
    eks: aws_sdk_eks::Client,
}

impl AwsPodIdentity {
    /// A client over `config` (makes no call).
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            eks: aws_sdk_eks::Client::new(config),
        }
    }
}

#[async_trait]
impl PodIdentityInspector for AwsPodIdentity {
    async fn pod_identity_associations(
        &self,
        cluster: &str,
    ) -> Result<Vec<PodIdentityAssociation>> {
        let mut out = Vec::new();
        let mut pages = self
            .eks
            .list_pod_identity_associations()
            .cluster_name(cluster)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                map_sdk_error(
                    "list Pod Identity associations",
                    format!("EKS cluster {cluster}"),
                    "eks",
                    e,
                )
            })?;
            out.extend(page.associations().iter().map(|a| PodIdentityAssociation {
                association_id: a.association_id().unwrap_or_default().to_owned(),
                namespace: a.namespace().unwrap_or_default().to_owned(),
                service_account: a.service_account().unwrap_or_default().to_owned(),
            }));
        }
        sort(&mut out);
        Ok(out)
    }
}
