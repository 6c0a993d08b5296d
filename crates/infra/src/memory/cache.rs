//! The in-memory account's S3 cache buckets and IRSA roles.
//!
//! Bucket names are global (S3 User Guide, "General purpose bucket naming rules": "Bucket
//! names must be unique across all AWS accounts in all the AWS Regions within a partition"):
//! CreateBucket of a name this account holds in any Region answers BucketAlreadyOwnedByYou
//! (here AlreadyExists); names breaking S3's rules are InvalidBucketName; a lifecycle
//! expiration of 0 days is refused ("'Days' for Expiration action must be a positive
//! integer": S3 User Guide, "Lifecycle configuration elements"). A deleted bucket goes at
//! once: the AWS backend empties it first, so DeleteBucket never meets objects here. IRSA
//! roles are IAM roles (global, eventually consistent like the others), named uniquely.

use tokio::time::Instant;

use super::{ACCOUNT, Entry, InMemoryCloud, World};
use crate::error::{Error, Result};
use crate::resource::ResourceKind;
use crate::spec::{REGION_TAG, partition};

impl InMemoryCloud {
    /// Fills `entry` as the cache bucket `name`.
    pub(super) fn create_cache_bucket(
        &self,
        world: &World,
        entry: &mut Entry,
        name: &str,
        expire_days: u16,
        action: &str,
        now: Instant,
    ) -> Result<()> {
        if world
            .entries
            .iter()
            .any(|e| e.kind == ResourceKind::CacheBucket && e.id == name && e.is_present(now))
        {
            return Err(Error::AlreadyExists {
                action: action.to_string(),
                resource: format!("S3 bucket {name} (BucketAlreadyOwnedByYou)"),
            });
        }
        if let Err(err) = crate::cache::validate_bucket_name(name) {
            return Err(Error::Backend {
                action: action.to_string(),
                backend: "memory",
                source: format!("InvalidBucketName: {err}").into(),
            });
        }
        if expire_days == 0 {
            return Err(Error::Backend {
                action: action.to_string(),
                backend: "memory",
                source: "InvalidArgument: 'Days' for Expiration action must be a positive integer"
                    .into(),
            });
        }
        entry.id = name.to_string();
        entry.arn = Some(format!("arn:{}:s3:::{name}", partition(&self.region)));
        entry.policies = vec![format!("expire-days:{expire_days}")];
        entry
            .tags
            .insert(REGION_TAG.to_string(), self.region.clone());
        Ok(())
    }

    /// Fills `entry` as the IRSA role `name`.
    /// Whether the managed policy `arn` exists in this world: AWS's own (`iam::aws:policy/`)
    /// and the world account's (`iam::<ACCOUNT>:policy/`) in the Region's partition; the model
    /// keeps no catalogue of policy names, so any name there counts.
    pub(super) fn managed_policy_exists(&self, arn: &str, partition: &str) -> bool {
        [
            format!("arn:{partition}:iam::aws:policy/"),
            format!("arn:{partition}:iam::{ACCOUNT}:policy/"),
        ]
        .iter()
        .any(|prefix| {
            arn.strip_prefix(prefix.as_str())
                .is_some_and(|n| !n.is_empty())
        })
    }

    pub(super) fn create_irsa_role(
        &self,
        world: &World,
        entry: &mut Entry,
        name: &str,
        action: &str,
        now: Instant,
    ) -> Result<()> {
        if self.find(world, ResourceKind::IamRole, name, now).is_some() {
            return Err(Error::AlreadyExists {
                action: action.to_string(),
                resource: format!("IAM role {name}"),
            });
        }
        entry.id = name.to_string();
        entry.arn = Some(format!(
            "arn:{}:iam::{ACCOUNT}:role/{name}",
            partition(&self.region)
        ));
        entry
            .tags
            .insert(REGION_TAG.to_string(), self.region.clone());
        entry.visible_at = now + self.durations.iam_propagation;
        entry.readable_at = now + self.durations.iam_read_propagation;
        Ok(())
    }
}
