//! The runner cache on aws-sdk-s3 (the bucket) and aws-sdk-iam (its IRSA role).
//!
//! The bucket: CreateBucket (with a `LocationConstraint` outside us-east-1: S3 API Reference,
//! CreateBucket, "If you don't specify a Region, the bucket is created in US East (N.
//! Virginia)"), then PutBucketTagging, PutPublicAccessBlock (all four settings on),
//! PutBucketEncryption (SSE-S3, `AES256`), PutBucketLifecycleConfiguration (current objects
//! and noncurrent versions expire after the spec's days, incomplete multipart uploads are
//! aborted after a day) and PutBucketPolicy (deny `aws:SecureTransport` = false); a failed
//! follow-up deletes the bucket again. Teardown empties it first, every object version and
//! delete marker (ListObjectVersions lists the objects of an unversioned bucket too, with the
//! version id `null`; DeleteObjects takes up to 1,000 keys: S3 API Reference), then
//! DeleteBucket ("All objects (including all object versions and delete markers) in the bucket
//! must be deleted before the bucket itself can be deleted", DeleteBucket).
//!
//! The role: CreateRole with the IRSA trust policy ([`crate::oidc::irsa_trust_policy`]) and
//! the stack's tags, then PutRolePolicy with the bucket-only policy; it is an ordinary
//! [`ResourceKind::IamRole`] for discovery and deletion.

use std::collections::HashMap;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketLocationConstraint,
    CreateBucketConfiguration, Delete, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter, NoncurrentVersionExpiration, ObjectIdentifier,
    PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, Tag, Tagging,
};

use super::eks::AwsCluster;
use super::map_sdk_error;
use crate::error::{Error, Result};
use crate::resource::{Resource, ResourceKind, ResourceState, ResourceTags};
use crate::spec::{KEY_TAG, REGION_TAG, STACK_TAG, StackName, partition};

/// DeleteObjects takes at most this many keys per call (S3 API Reference, DeleteObjects).
const DELETE_BATCH: usize = 1000;

impl AwsCluster {
    fn s3(&self) -> Result<&aws_sdk_s3::Client> {
        self.s3.as_ref().ok_or_else(|| {
            Error::invalid(
                "cache",
                "this AWS backend was built without an S3 client (AwsCluster::with_s3); use --cache none",
            )
        })
    }

    fn bucket_resource(&self, name: &str, key: String) -> Resource {
        Resource {
            kind: ResourceKind::CacheBucket,
            id: name.to_string(),
            key,
            arn: Some(format!("arn:{}:s3:::{name}", partition(&self.region))),
            state: ResourceState::Available,
        }
    }

    pub(super) async fn create_cache_bucket(
        &self,
        name: &str,
        expire_days: u16,
        tags: &ResourceTags,
    ) -> Result<Resource> {
        let kind = ResourceKind::CacheBucket;
        let action = format!("create {kind}");
        let mut create = self.s3()?.create_bucket().bucket(name);
        if self.region != "us-east-1" {
            create = create.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(self.region.as_str()))
                    .build(),
            );
        }
        if let Err(e) = create.send().await {
            // BucketAlreadyExists: another account owns the name (names are global);
            // BucketAlreadyOwnedByYou: ours already (a re-run), reused.
            if e.code() == Some("BucketAlreadyExists") {
                return Err(Error::invalid(
                    "stack",
                    format!(
                        "S3 bucket name {name} belongs to another account; choose another --stack (or --cache none)"
                    ),
                ));
            }
            if e.code() == Some("BucketAlreadyOwnedByYou") {
                return Err(Error::AlreadyExists {
                    action,
                    resource: format!("S3 bucket {name}"),
                });
            }
            return Err(map_sdk_error(&action, name, "s3", e));
        }
        let bucket = self.bucket_resource(name, tags.key.clone());
        match self.configure_bucket(name, expire_days, tags).await {
            Ok(()) => Ok(bucket),
            Err(err) => {
                tracing::warn!(bucket = name, error = %err, "rolling back a half-configured cache bucket");
                if let Err(e) = self.delete_cache_bucket(name).await {
                    tracing::error!(bucket = name, error = %e, "rollback failed; teardown will find it by name and tag");
                }
                Err(err)
            }
        }
    }

    async fn configure_bucket(
        &self,
        name: &str,
        expire_days: u16,
        tags: &ResourceTags,
    ) -> Result<()> {
        let what = format!("S3 bucket {name}");
        let build = |e: aws_sdk_s3::error::BuildError| Error::Backend {
            action: format!("configure {what}"),
            backend: "s3",
            source: Box::new(e),
        };
        let mut pairs: HashMap<String, String> = tags.pairs().into_iter().collect();
        pairs.insert(REGION_TAG.to_string(), self.region.clone());
        let tag_set = pairs
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(build)?;
        self.s3()?
            .put_bucket_tagging()
            .bucket(name)
            .tagging(
                Tagging::builder()
                    .set_tag_set(Some(tag_set))
                    .build()
                    .map_err(build)?,
            )
            .send()
            .await
            .map_err(|e| map_sdk_error("tag S3 bucket", &what, "s3", e))?;
        self.s3()?
            .put_public_access_block()
            .bucket(name)
            .public_access_block_configuration(
                PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .ignore_public_acls(true)
                    .block_public_policy(true)
                    .restrict_public_buckets(true)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| map_sdk_error("block public access to S3 bucket", &what, "s3", e))?;
        self.s3()?
            .put_bucket_encryption()
            .bucket(name)
            .server_side_encryption_configuration(
                ServerSideEncryptionConfiguration::builder()
                    .rules(
                        ServerSideEncryptionRule::builder()
                            .apply_server_side_encryption_by_default(
                                ServerSideEncryptionByDefault::builder()
                                    .sse_algorithm(ServerSideEncryption::Aes256)
                                    .build()
                                    .map_err(build)?,
                            )
                            .build(),
                    )
                    .build()
                    .map_err(build)?,
            )
            .send()
            .await
            .map_err(|e| map_sdk_error("set default encryption of S3 bucket", &what, "s3", e))?;
        let days = i32::from(expire_days);
        self.s3()?
            .put_bucket_lifecycle_configuration()
            .bucket(name)
            .lifecycle_configuration(
                BucketLifecycleConfiguration::builder()
                    .rules(
                        LifecycleRule::builder()
                            .id("glrunner-cache-expiry")
                            .status(ExpirationStatus::Enabled)
                            .filter(LifecycleRuleFilter::builder().prefix("").build())
                            .expiration(LifecycleExpiration::builder().days(days).build())
                            .noncurrent_version_expiration(
                                NoncurrentVersionExpiration::builder()
                                    .noncurrent_days(days)
                                    .build(),
                            )
                            .abort_incomplete_multipart_upload(
                                AbortIncompleteMultipartUpload::builder()
                                    .days_after_initiation(1)
                                    .build(),
                            )
                            .build()
                            .map_err(build)?,
                    )
                    .build()
                    .map_err(build)?,
            )
            .send()
            .await
            .map_err(|e| map_sdk_error("set lifecycle of S3 bucket", &what, "s3", e))?;
        self.s3()?
            .put_bucket_policy()
            .bucket(name)
            .policy(crate::cache::tls_only_policy(partition(&self.region), name))
            .send()
            .await
            .map_err(|e| map_sdk_error("set TLS-only policy of S3 bucket", &what, "s3", e))?;
        Ok(())
    }

    /// The bucket's tags; `None` when the bucket is gone.
    async fn bucket_tags(&self, name: &str) -> Result<Option<HashMap<String, String>>> {
        match self.s3()?.get_bucket_tagging().bucket(name).send().await {
            Ok(out) => Ok(Some(
                out.tag_set()
                    .iter()
                    .map(|t| (t.key().to_string(), t.value().to_string()))
                    .collect(),
            )),
            Err(e) if e.code() == Some("NoSuchTagSet") => Ok(Some(HashMap::new())),
            Err(e) if e.code() == Some("NoSuchBucket") => Ok(None),
            Err(e) => Err(map_sdk_error("read tags of S3 bucket", name, "s3", e)),
        }
    }

    pub(super) async fn describe_cache_bucket(&self, name: &str) -> Result<Option<Resource>> {
        match self.s3()?.head_bucket().bucket(name).send().await {
            Ok(_) => {}
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => return Ok(None),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {
                return Ok(None);
            }
            Err(e) => return Err(map_sdk_error("read S3 bucket", name, "s3", e)),
        }
        Ok(self
            .bucket_tags(name)
            .await?
            .map(|tags| self.bucket_resource(name, tags.get(KEY_TAG).cloned().unwrap_or_default())))
    }

    /// The stack's cache buckets in this Region: by name (`<stack>-…-<region>-cache`), then by
    /// the stack and Region tags.
    pub(super) async fn discover_cache_buckets(&self, stack: &StackName) -> Result<Vec<Resource>> {
        if self.s3.is_none() {
            return Ok(Vec::new());
        }
        let out = self
            .s3()?
            .list_buckets()
            .send()
            .await
            .map_err(|e| map_sdk_error("list S3 buckets", "account", "s3", e))?;
        let prefix = format!("{stack}-");
        let suffix = format!("-{}-cache", self.region);
        let mut found = Vec::new();
        for name in out
            .buckets()
            .iter()
            .filter_map(|b| b.name())
            .filter(|n| n.starts_with(&prefix) && n.ends_with(&suffix))
        {
            if let Some(tags) = self.bucket_tags(name).await?
                && tags.get(STACK_TAG).map(String::as_str) == Some(stack.as_str())
                && tags.get(REGION_TAG) == Some(&self.region)
            {
                found.push(
                    self.bucket_resource(name, tags.get(KEY_TAG).cloned().unwrap_or_default()),
                );
            }
        }
        Ok(found)
    }

    /// Drops the bucket's policy, empties the bucket (every version and delete marker), then
    /// deletes it. The policy goes first: a bucket policy can deny the deletion of its own
    /// objects (a deny someone added, or the TLS-only condition on a plain-HTTP endpoint such as
    /// a local moto, which evaluates bucket policies per key of DeleteObjects), and the bucket is
    /// going away.
    pub(super) async fn delete_cache_bucket(&self, name: &str) -> Result<()> {
        let what = format!("S3 bucket {name}");
        match self.s3()?.delete_bucket_policy().bucket(name).send().await {
            Ok(_) => {}
            Err(e) if e.code() == Some("NoSuchBucket") => {
                return Err(Error::NotFound {
                    action: "delete S3 bucket policy".into(),
                    resource: what,
                });
            }
            Err(e) => return Err(map_sdk_error("delete S3 bucket policy", &what, "s3", e)),
        }
        loop {
            let page = match self.s3()?.list_object_versions().bucket(name).send().await {
                Ok(page) => page,
                Err(e) if e.code() == Some("NoSuchBucket") => {
                    return Err(Error::NotFound {
                        action: "empty S3 bucket".into(),
                        resource: what,
                    });
                }
                Err(e) => return Err(map_sdk_error("list object versions", &what, "s3", e)),
            };
            let mut ids = Vec::new();
            for (key, version) in page
                .versions()
                .iter()
                .map(|v| (v.key(), v.version_id()))
                .chain(
                    page.delete_markers()
                        .iter()
                        .map(|m| (m.key(), m.version_id())),
                )
            {
                let Some(key) = key else { continue };
                ids.push(
                    ObjectIdentifier::builder()
                        .key(key)
                        .set_version_id(version.map(str::to_owned))
                        .build()
                        .map_err(|e| Error::Backend {
                            action: format!("empty {what}"),
                            backend: "s3",
                            source: Box::new(e),
                        })?,
                );
            }
            if ids.is_empty() {
                break;
            }
            for batch in ids.chunks(DELETE_BATCH) {
                let out = self
                    .s3()?
                    .delete_objects()
                    .bucket(name)
                    .delete(
                        Delete::builder()
                            .set_objects(Some(batch.to_vec()))
                            .quiet(true)
                            .build()
                            .map_err(|e| Error::Backend {
                                action: format!("empty {what}"),
                                backend: "s3",
                                source: Box::new(e),
                            })?,
                    )
                    .send()
                    .await
                    .map_err(|e| map_sdk_error("delete objects", &what, "s3", e))?;
                if let Some(first) = out.errors().first() {
                    return Err(Error::Failed {
                        resource: what.clone(),
                        message: format!(
                            "{} object(s) could not be deleted, e.g. {:?}: {:?} {:?}",
                            out.errors().len(),
                            first.key(),
                            first.code(),
                            first.message()
                        ),
                    });
                }
            }
        }
        match self.s3()?.delete_bucket().bucket(name).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("BucketNotEmpty") => Err(Error::DependencyViolation {
                action: "delete S3 bucket".into(),
                resource: what,
                message: "objects were written while it was being emptied".into(),
            }),
            Err(e) => Err(map_sdk_error("delete S3 bucket", &what, "s3", e)),
        }
    }
}
