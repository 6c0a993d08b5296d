//! The runner's distributed cache on S3 with IAM authentication: `[runners.cache]` in
//! `runners.config`, and the manager ServiceAccount's IRSA annotation.
//!
//! Keys as GitLab Runner reads them (gitlab-runner `cache/cacheconfig/cacheconfig.go` at
//! d79f3e7: `Config.Type` `toml:"Type"`, `Shared` `toml:"Shared"`, `S3` `toml:"s3"`;
//! `CacheS3Config.BucketName`, `BucketLocation` ("Name of S3 region"), `AuthenticationType`
//! `S3AuthTypeIAM = "iam"`; docs/configuration/advanced-configuration.md, "The
//! `[runners.cache.s3]` section"). With `iam` the runner uses the AWS SDK's default credential
//! chain, which reads the web identity token EKS projects for a ServiceAccount annotated
//! `eks.amazonaws.com/role-arn` (the chart's `serviceAccount.annotations`). No access key,
//! secret key or session token is ever set.

use serde::{Deserialize, Serialize};

use crate::identity::ROLE_ARN_ANNOTATION;
use crate::values::RunnerValues;

/// An S3 cache shared by every runner of the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Cache {
    /// Bucket name (`BucketName`).
    pub bucket: String,
    /// Its Region (`BucketLocation`).
    pub region: String,
}

/// `[runners.cache]`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CacheToml {
    #[serde(rename = "Type", default, skip_serializing_if = "Option::is_none")]
    pub(crate) kind: Option<String>,
    #[serde(rename = "Shared", default, skip_serializing_if = "Option::is_none")]
    pub(crate) shared: Option<bool>,
    #[serde(rename = "s3", default, skip_serializing_if = "Option::is_none")]
    pub(crate) s3: Option<S3Toml>,
}

/// `[runners.cache.s3]`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct S3Toml {
    #[serde(rename = "BucketName", default)]
    pub(crate) bucket_name: String,
    #[serde(rename = "BucketLocation", default)]
    pub(crate) bucket_location: String,
    #[serde(rename = "AuthenticationType", default)]
    pub(crate) authentication_type: String,
}

impl S3Cache {
    /// The `[runners.cache]` table: type s3, shared between the fleet's runners, IAM.
    pub(crate) fn toml(&self) -> CacheToml {
        CacheToml {
            kind: Some("s3".into()),
            shared: Some(true),
            s3: Some(S3Toml {
                bucket_name: self.bucket.clone(),
                bucket_location: self.region.clone(),
                authentication_type: "iam".into(),
            }),
        }
    }
}

impl RunnerValues {
    /// Uses `cache` through IRSA: the manager runs as `service_account`, annotated with
    /// `role_arn` (the role that ServiceAccount alone may assume). Every release of a fleet
    /// names the same ServiceAccount; only the first creates it
    /// ([`crate::FleetPlan::release_values`]).
    #[must_use]
    pub fn with_s3_cache(mut self, cache: S3Cache, role_arn: &str, service_account: &str) -> Self {
        self.cache = Some(cache);
        self.service_account.name = Some(service_account.to_string());
        self.service_account
            .annotations
            .insert(ROLE_ARN_ANNOTATION.to_string(), role_arn.to_string());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_section_is_s3_shared_iam_and_carries_no_credentials() {
        let values = RunnerValues::new("https://gitlab.example.com").with_s3_cache(
            S3Cache {
                bucket: "ci-123456789012-us-east-1-cache".into(),
                region: "us-east-1".into(),
            },
            "arn:aws:iam::123456789012:role/ci-us-east-1-runner-cache",
            "glrunner-manager",
        );
        let config = values.runners_config();
        let parsed: toml::Value = toml::from_str(&config).unwrap();
        let cache = &parsed["runners"][0]["cache"];
        assert_eq!(cache["Type"].as_str(), Some("s3"));
        assert_eq!(cache["Shared"].as_bool(), Some(true));
        assert_eq!(
            cache["s3"]["BucketName"].as_str(),
            Some("ci-123456789012-us-east-1-cache")
        );
        assert_eq!(cache["s3"]["BucketLocation"].as_str(), Some("us-east-1"));
        assert_eq!(cache["s3"]["AuthenticationType"].as_str(), Some("iam"));
        for secret in ["AccessKey", "SecretKey", "SessionToken"] {
            assert!(!config.contains(secret), "{config}");
        }
        let tree = values.to_chart_values().unwrap();
        assert_eq!(
            tree["serviceAccount"]["annotations"][ROLE_ARN_ANNOTATION],
            "arn:aws:iam::123456789012:role/ci-us-east-1-runner-cache"
        );
        assert_eq!(tree["serviceAccount"]["name"], "glrunner-manager");
        assert_eq!(tree["serviceAccount"]["create"], true);
        let shared = values.clone().with_shared_service_account();
        let tree = shared.to_chart_values().unwrap();
        assert_eq!(tree["serviceAccount"]["create"], false);
        assert_eq!(tree["serviceAccount"]["name"], "glrunner-manager");
    }
}
