//! The cluster's IAM OIDC provider on aws-sdk-iam (and the issuer from aws-sdk-eks).
//!
//! CreateOpenIDConnectProvider with the issuer DescribeCluster returns
//! (`cluster.identity.oidc.issuer`: EKS API Reference, DescribeCluster → `Identity` → `OIDC`),
//! the client id `sts.amazonaws.com` and no thumbprint (optional: IAM API Reference,
//! CreateOpenIDConnectProvider, `ThumbprintList`), tagged like every resource plus the region
//! (IAM is global; the tags go on the create call: `Tags`, same reference). Found again by
//! ListOpenIDConnectProviders (ARNs only) + GetOpenIDConnectProvider (its `Tags`); only the
//! providers of this Region's EKS issuers (`oidc.eks.<region>.amazonaws.com/…`) are read.

use std::collections::HashMap;

use super::eks::AwsCluster;
use super::map_sdk_error;
use crate::error::{Error, Result};
use crate::resource::{Resource, ResourceKind, ResourceState, ResourceTags};
use crate::spec::{KEY_TAG, REGION_TAG, STACK_TAG, StackName};

impl AwsCluster {
    /// The OIDC issuer URL of cluster `name`, `None` when EKS reports none.
    pub(super) async fn cluster_issuer(&self, name: &str) -> Result<Option<String>> {
        let out = self
            .eks
            .describe_cluster()
            .name(name)
            .send()
            .await
            .map_err(|e| map_sdk_error("describe EKS cluster (its OIDC issuer)", name, "eks", e))?;
        Ok(out
            .cluster()
            .and_then(|c| c.identity())
            .and_then(|i| i.oidc())
            .and_then(|o| o.issuer())
            .map(str::to_owned))
    }

    pub(super) async fn create_oidc_provider(
        &self,
        cluster: &str,
        tags: &ResourceTags,
    ) -> Result<Resource> {
        let kind = ResourceKind::OidcProvider;
        let action = format!("create {kind}");
        let issuer = self
            .cluster_issuer(cluster)
            .await?
            .ok_or_else(|| Error::Failed {
                resource: format!("EKS cluster {cluster}"),
                message: "DescribeCluster returned no identity.oidc.issuer".into(),
            })?;
        let mut pairs: HashMap<String, String> = tags.pairs().into_iter().collect();
        pairs.insert(REGION_TAG.to_string(), self.region.clone());
        let iam_tags = pairs
            .iter()
            .map(|(k, v)| aws_sdk_iam::types::Tag::builder().key(k).value(v).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Backend {
                action: action.clone(),
                backend: "iam",
                source: Box::new(e),
            })?;
        let out = self
            .iam
            .create_open_id_connect_provider()
            .url(&issuer)
            .client_id_list(crate::oidc::STS_AUDIENCE)
            .set_tags(Some(iam_tags))
            .send()
            .await
            .map_err(|e| map_sdk_error(&action, &issuer, "iam", e))?;
        let arn = out
            .open_id_connect_provider_arn()
            .map(str::to_owned)
            .ok_or_else(|| Error::Failed {
                resource: format!("IAM OIDC provider for {issuer}"),
                message: "CreateOpenIDConnectProvider returned no ARN".into(),
            })?;
        Ok(Resource {
            kind,
            id: arn.clone(),
            key: tags.key.clone(),
            arn: Some(arn),
            state: ResourceState::Available,
        })
    }

    /// The provider with this ARN and its tags, `None` once it is gone.
    async fn oidc_provider_with_tags(
        &self,
        arn: &str,
    ) -> Result<Option<(Resource, HashMap<String, String>)>> {
        match self
            .iam
            .get_open_id_connect_provider()
            .open_id_connect_provider_arn(arn)
            .send()
            .await
        {
            Ok(out) => {
                let tags: HashMap<String, String> = out
                    .tags()
                    .iter()
                    .map(|t| (t.key().to_string(), t.value().to_string()))
                    .collect();
                Ok(Some((
                    Resource {
                        kind: ResourceKind::OidcProvider,
                        id: arn.to_string(),
                        key: tags.get(KEY_TAG).cloned().unwrap_or_default(),
                        arn: Some(arn.to_string()),
                        state: ResourceState::Available,
                    },
                    tags,
                )))
            }
            Err(e) => match map_sdk_error("get IAM OIDC provider", arn, "iam", e) {
                err if err.is_not_found() => Ok(None),
                err => Err(err),
            },
        }
    }

    pub(super) async fn describe_oidc_provider(&self, arn: &str) -> Result<Option<Resource>> {
        Ok(self.oidc_provider_with_tags(arn).await?.map(|(r, _)| r))
    }

    /// The stack's providers in this Region.
    pub(super) async fn discover_oidc_providers(&self, stack: &StackName) -> Result<Vec<Resource>> {
        let out = self
            .iam
            .list_open_id_connect_providers()
            .send()
            .await
            .map_err(|e| map_sdk_error("list IAM OIDC providers", "account", "iam", e))?;
        let regional = format!(":oidc-provider/oidc.eks.{}.amazonaws.com/", self.region);
        let mut found = Vec::new();
        for arn in out
            .open_id_connect_provider_list()
            .iter()
            .filter_map(|p| p.arn())
            .filter(|arn| arn.contains(&regional))
        {
            if let Some((resource, tags)) = self.oidc_provider_with_tags(arn).await?
                && tags.get(STACK_TAG).map(String::as_str) == Some(stack.as_str())
                && tags.get(REGION_TAG) == Some(&self.region)
            {
                found.push(resource);
            }
        }
        Ok(found)
    }

    pub(super) async fn delete_oidc_provider(&self, arn: &str) -> Result<()> {
        self.iam
            .delete_open_id_connect_provider()
            .open_id_connect_provider_arn(arn)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| map_sdk_error("delete IAM OIDC provider", arn, "iam", e))
    }
}
