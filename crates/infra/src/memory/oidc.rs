//! The in-memory account's IAM OIDC providers and its clusters' OIDC issuers.
//!
//! Every EKS cluster has an issuer `https://oidc.eks.<region>.amazonaws.com/id/<32 hex>`
//! (DescribeCluster `cluster.identity.oidc.issuer`: EKS API Reference, `OIDC` data type; the
//! id's shape as the EKS User Guide's "Create an IAM OIDC provider for your cluster" shows
//! it, `EXAMPLED539D4633E53DE1B71EXAMPLE`). IAM OIDC providers are global to the account, one
//! per URL (CreateOpenIDConnectProvider answers EntityAlreadyExists for a URL that has one:
//! IAM API Reference, Errors), their ARN `arn:<partition>:iam::<account>:oidc-provider/<url
//! without https://>`, and CreateOpenIDConnectProvider needs the cluster's issuer, which
//! needs the cluster (the AWS backend reads it with DescribeCluster: NotFound without it).

use tokio::time::Instant;

use super::{ACCOUNT, Entry, InMemoryCloud, World, fxhash, not_found};
use crate::error::{Error, Result};
use crate::resource::ResourceKind;
use crate::spec::{REGION_TAG, partition};

/// The issuer of cluster `name` in `region` (stable for one cluster name and region).
pub(super) fn issuer(region: &str, name: &str) -> String {
    let id = fxhash(&format!("{region}/{name}"));
    format!(
        "https://oidc.eks.{region}.amazonaws.com/id/{id:016X}{:016X}",
        id.rotate_left(17)
    )
}

impl InMemoryCloud {
    /// Fills `entry` as the OIDC provider of `cluster`'s issuer.
    pub(super) fn create_oidc_provider(
        &self,
        world: &World,
        entry: &mut Entry,
        cluster: &str,
        action: &str,
        now: Instant,
    ) -> Result<()> {
        if self
            .find(world, ResourceKind::Cluster, cluster, now)
            .is_none()
        {
            return Err(not_found(action, ResourceKind::Cluster, cluster));
        }
        let arn = crate::oidc::provider_arn(
            partition(&self.region),
            ACCOUNT,
            &issuer(&self.region, cluster),
        );
        if self
            .find(world, ResourceKind::OidcProvider, &arn, now)
            .is_some()
        {
            return Err(Error::AlreadyExists {
                action: action.to_string(),
                resource: format!("IAM OIDC provider {arn}"),
            });
        }
        entry.id = arn.clone();
        entry.arn = Some(arn);
        entry.parent = Some(cluster.to_string());
        entry
            .tags
            .insert(REGION_TAG.to_string(), self.region.clone());
        Ok(())
    }

    /// Adds an IAM OIDC provider made outside glrunner (by eksctl, say: untagged) for the
    /// issuer of cluster `cluster` in this region; returns its ARN.
    pub fn add_oidc_provider(&self, cluster: &str) -> String {
        let arn = crate::oidc::provider_arn(
            partition(&self.region),
            ACCOUNT,
            &issuer(&self.region, cluster),
        );
        let mut entry = Entry::new(ResourceKind::OidcProvider, None, Instant::now());
        entry.id = arn.clone();
        entry.arn = Some(arn.clone());
        self.world.lock().expect("world").entries.push(entry);
        arn
    }

    /// Adds an EKS cluster made outside glrunner (untagged, ACTIVE) in this region, as a
    /// brought cluster; returns its ARN.
    pub fn add_cluster(&self, name: &str) -> String {
        let arn = format!(
            "arn:{}:eks:{}:{ACCOUNT}:cluster/{name}",
            partition(&self.region),
            self.region
        );
        let mut entry = Entry::new(
            ResourceKind::Cluster,
            Some(self.region.clone()),
            Instant::now(),
        );
        entry.id = name.to_string();
        entry.arn = Some(arn.clone());
        self.world.lock().expect("world").entries.push(entry);
        arn
    }
}

#[cfg(test)]
mod tests {
    use crate::apply::Engine;
    use crate::memory::InMemoryCloud;
    use crate::resource::ResourceKind;
    use crate::spec::{StackName, StackSpec};

    #[tokio::test(start_paused = true)]
    async fn a_provisioned_stack_has_its_tagged_provider_and_teardown_removes_it() {
        let cloud = InMemoryCloud::default();
        let spec = StackSpec::new(StackName::new("irsa").unwrap(), "us-east-1");
        let plan = crate::plan_stack(&spec, &cloud).await.unwrap();
        let engine = Engine::new(&cloud, &cloud);
        let report = engine.apply(&plan).await.unwrap();
        let provider = &report.resources[crate::oidc::OIDC_PROVIDER_KEY];
        let issuer = super::issuer("us-east-1", "irsa");
        assert_eq!(
            provider.id,
            crate::oidc::provider_arn("aws", "123456789012", &issuer)
        );
        // A re-run finds it by tag and creates nothing.
        let again = engine.apply(&plan).await.unwrap();
        assert_eq!(again.created(), 0);
        assert_eq!(
            again.resources[crate::oidc::OIDC_PROVIDER_KEY].id,
            provider.id
        );
        let torn = engine.teardown(&spec.stack).await.unwrap();
        assert!(
            torn.deleted
                .iter()
                .any(|r| r.kind == ResourceKind::OidcProvider)
        );
        assert!(
            cloud.all_resources().is_empty(),
            "{:?}",
            cloud.all_resources()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_brought_clusters_provider_is_found_and_never_deleted() {
        let cloud = InMemoryCloud::default();
        cloud.add_cluster("shared");
        let missing = crate::oidc::brought_provider(&cloud, "shared")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("eksctl utils associate-iam-oidc-provider --cluster shared"),
            "{missing}"
        );
        let arn = cloud.add_oidc_provider("shared");
        let found = crate::oidc::brought_provider(&cloud, "shared")
            .await
            .unwrap();
        assert_eq!((found.id.as_str(), found.key.as_str()), (arn.as_str(), ""));
        // A teardown (of a stack of that name, even) finds nothing of it by tag.
        let stack = StackName::new("shared").unwrap();
        Engine::new(&cloud, &cloud).teardown(&stack).await.unwrap();
        assert!(
            cloud
                .all_resources()
                .iter()
                .any(|r| r.kind == ResourceKind::OidcProvider && r.id == arn)
        );
    }
}
