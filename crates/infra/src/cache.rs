//! The runner's distributed cache on S3: the bucket (named for the stack, its account and
//! Region), its safety settings, and the IAM role the runner manager assumes through IRSA.
//!
//! GitLab Runner's S3 cache with `AuthenticationType = "iam"` takes its credentials from the
//! AWS SDK's default chain (gitlab-runner `docs/configuration/advanced-configuration.md`, "The
//! `[runners.cache.s3]` section" and "AWS SDK default credential chain"), which on EKS reads the
//! web identity token IRSA projects into the pod of a ServiceAccount annotated with
//! `eks.amazonaws.com/role-arn` (EKS User Guide, "Assign IAM roles to Kubernetes service
//! accounts"). No key or secret is ever created.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The plan step (and `glrunner.io/key` tag) of the cache bucket.
pub const CACHE_BUCKET_KEY: &str = "cache/bucket";
/// The plan step of the cache role.
pub const CACHE_ROLE_KEY: &str = "role/cache";
/// Days after which cached objects expire when `--cache-expire-days` is not given.
pub const DEFAULT_EXPIRE_DAYS: u16 = 14;
/// The ServiceAccount the runner managers run as when none is named: the one subject the
/// cache role trusts.
pub const DEFAULT_MANAGER_SERVICE_ACCOUNT: &str = "glrunner-manager";
/// The name of the role's inline policy.
pub const CACHE_POLICY_NAME: &str = "glrunner-cache-bucket";
/// Longest `--cache-expire-days`: ten years, far beyond any cache (S3 takes any positive
/// integer of days: S3 API Reference, `LifecycleExpiration.Days`).
pub const MAX_EXPIRE_DAYS: u16 = 3650;

/// The cache a provisioned stack gets (`--cache s3`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheSpec {
    /// Days after which S3 expires cached objects (`--cache-expire-days`).
    pub expire_days: u16,
    /// The runner managers' ServiceAccount in the runner namespace (the role's one subject).
    pub manager_service_account: String,
}

impl Default for CacheSpec {
    fn default() -> Self {
        Self {
            expire_days: DEFAULT_EXPIRE_DAYS,
            manager_service_account: DEFAULT_MANAGER_SERVICE_ACCOUNT.to_string(),
        }
    }
}

impl CacheSpec {
    /// Checks the expiry and the ServiceAccount name.
    pub fn validate(&self) -> Result<()> {
        validate_expire_days(self.expire_days)?;
        validate_service_account_name(
            "cache.manager_service_account",
            &self.manager_service_account,
        )
    }
}

/// A ServiceAccount name: a DNS-1123 subdomain (Kubernetes API conventions, "Object names and
/// IDs": at most 253 characters of lowercase letters, digits, `-` and `.`, starting and ending
/// with a letter or digit).
pub fn validate_service_account_name(field: &str, name: &str) -> Result<()> {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.chars().all(|c| alnum(c) || c == '-' || c == '.')
        && name.starts_with(alnum)
        && name.ends_with(alnum);
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!(
                "{name:?} is not a ServiceAccount name; use up to 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
            ),
        ))
    }
}

/// `--cache-expire-days`: 1 to [`MAX_EXPIRE_DAYS`] (S3 refuses 0: "'Days' for Expiration action
/// must be a positive integer", S3 User Guide, "Lifecycle configuration elements").
pub fn validate_expire_days(days: u16) -> Result<()> {
    if days == 0 || days > MAX_EXPIRE_DAYS {
        return Err(Error::invalid(
            "cache-expire-days",
            format!(
                "{days} is out of range; use 1-{MAX_EXPIRE_DAYS} days (default {DEFAULT_EXPIRE_DAYS})"
            ),
        ));
    }
    Ok(())
}

/// The cache bucket of a stack: `<stack>-<account>-<region>-cache`, at most 62 characters
/// (stack 28, account 12, Region 14). S3's rules (S3 User Guide, "General purpose bucket naming
/// rules"): 3-63 characters of lowercase letters, digits, `.` and `-`, beginning and ending
/// with a letter or digit; not beginning with `xn--`, `sthree-` or `amzn-s3-demo-`; not ending
/// with `-s3alias`, `--ol-s3`, `.mrap`, `--x-s3` or `--table-s3`; not shaped like an IP
/// address. Bucket names are global across accounts, hence the account and Region.
pub fn bucket_name(stack: &str, account: &str, region: &str) -> Result<String> {
    let name = format!("{stack}-{account}-{region}-cache");
    validate_bucket_name(&name)?;
    Ok(name)
}

/// S3's naming rules for a general purpose bucket (see [`bucket_name`]).
pub fn validate_bucket_name(name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::invalid(
            "stack",
            format!(
                "the cache bucket name {name:?} {why}; choose another --stack (or --cache none)"
            ),
        ))
    };
    if !(3..=63).contains(&name.len()) {
        return bad("must be 3-63 characters");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '.' || *c == '-'))
    {
        return bad(&format!("contains {c:?}"));
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !alnum(name.chars().next()) || !alnum(name.chars().last()) {
        return bad("must begin and end with a letter or digit");
    }
    if name.contains("..") {
        return bad("has two adjacent periods");
    }
    if ["xn--", "sthree-", "amzn-s3-demo-"]
        .iter()
        .any(|p| name.starts_with(p))
    {
        return bad("begins with a prefix S3 reserves");
    }
    if ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"]
        .iter()
        .any(|s| name.ends_with(s))
    {
        return bad("ends with a suffix S3 reserves");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return bad("is shaped like an IP address");
    }
    Ok(())
}

/// Name of the cache role of a stack in a Region (at most 56 characters).
pub fn cache_role_name(stack: &str, region: &str) -> String {
    format!("{stack}-{region}-runner-cache")
}

/// The bucket policy: deny every request not made over TLS (S3 User Guide, "Security best
/// practices for Amazon S3": a policy denying `aws:SecureTransport` `false`).
pub fn tls_only_policy(partition: &str, bucket: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [
                format!("arn:{partition}:s3:::{bucket}"),
                format!("arn:{partition}:s3:::{bucket}/*"),
            ],
            "Condition": { "Bool": { "aws:SecureTransport": "false" } }
        }]
    })
    .to_string()
}

/// The cache role's policy: the objects of the one bucket (get, put, delete) and listing it;
/// nothing else (the runner's S3 cache reads, writes and stats objects: `GetObject`,
/// `PutObject`; `DeleteObject` for the cache's own clean-up).
pub fn bucket_access_policy(partition: &str, bucket: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "CacheObjects",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                "Resource": format!("arn:{partition}:s3:::{bucket}/*")
            },
            {
                "Sid": "ListCacheBucket",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": format!("arn:{partition}:s3:::{bucket}")
            }
        ]
    })
    .to_string()
}

/// Where the runner finds its cache after provisioning: what the runner chart's values need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheOutputs {
    /// Bucket name (`BucketName`).
    pub bucket: String,
    /// Its Region (`BucketLocation`).
    pub region: String,
    /// The role the managers' ServiceAccount is annotated with (`eks.amazonaws.com/role-arn`).
    pub role_arn: String,
    /// The ServiceAccount that role trusts.
    pub service_account: String,
    /// Its namespace.
    pub namespace: String,
}

/// The cache a provisioned stack has, from the apply report (`None` without `--cache s3`).
pub fn outputs(
    spec: &crate::spec::StackSpec,
    report: &crate::apply::ApplyReport,
) -> Option<CacheOutputs> {
    let cache = spec.cache.as_ref()?;
    let bucket = report.resources.get(CACHE_BUCKET_KEY)?;
    let role = report.resources.get(CACHE_ROLE_KEY)?;
    Some(CacheOutputs {
        bucket: bucket.id.clone(),
        region: spec.region.clone(),
        role_arn: role.arn.clone()?,
        service_account: cache.manager_service_account.clone(),
        namespace: spec.cluster.runner_namespace.clone(),
    })
}

/// The cache a stack glrunner provisions has in `account`, from the names provisioning gives
/// the bucket ([`bucket_name`]) and the role ([`cache_role_name`], at path `/`); `None` without
/// `--cache s3` or for a name the spec's validation would refuse.
pub fn outputs_for(spec: &crate::spec::StackSpec, account: &str) -> Option<CacheOutputs> {
    let cache = spec.cache.as_ref()?;
    let stack = spec.stack.as_str();
    Some(CacheOutputs {
        bucket: bucket_name(stack, account, &spec.region).ok()?,
        region: spec.region.clone(),
        role_arn: format!(
            "arn:{}:iam::{account}:role/{}",
            spec.partition(),
            cache_role_name(stack, &spec.region)
        ),
        service_account: cache.manager_service_account.clone(),
        namespace: spec.cluster.runner_namespace.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_fit_s3_for_the_longest_stack_and_region() {
        let stack = "a".repeat(crate::spec::StackName::MAX_LEN);
        for region in crate::regions::with_eks_fargate() {
            let name = bucket_name(&stack, "123456789012", region).unwrap();
            assert!(name.len() <= 63, "{name}");
        }
        for bad in ["xn--ci", "sthree-ci"] {
            let err = bucket_name(bad, "123456789012", "us-east-1")
                .unwrap_err()
                .to_string();
            assert!(err.contains("--stack"), "{err}");
        }
        assert!(validate_bucket_name("192.168.1.1").is_err());
        assert!(validate_bucket_name("a..b").is_err());
        assert!(validate_bucket_name("Ab-c").is_err());
        assert!(validate_bucket_name("abc-s3alias").is_err());
    }

    #[test]
    fn expiry_is_bounded_and_names_the_flag() {
        assert!(validate_expire_days(14).is_ok());
        for bad in [0, MAX_EXPIRE_DAYS + 1] {
            let err = validate_expire_days(bad).unwrap_err().to_string();
            assert!(err.contains("cache-expire-days"), "{err}");
        }
    }

    #[test]
    fn the_policies_name_only_the_bucket_and_refuse_plain_http() {
        let doc: serde_json::Value = serde_json::from_str(&tls_only_policy("aws", "b")).unwrap();
        assert_eq!(
            doc["Statement"][0]["Condition"]["Bool"]["aws:SecureTransport"],
            "false"
        );
        assert_eq!(doc["Statement"][0]["Effect"], "Deny");
        let access: serde_json::Value =
            serde_json::from_str(&bucket_access_policy("aws", "b")).unwrap();
        assert_eq!(access["Statement"][0]["Resource"], "arn:aws:s3:::b/*");
        assert_eq!(access["Statement"][1]["Resource"], "arn:aws:s3:::b");
        assert_eq!(access["Statement"].as_array().unwrap().len(), 2);
    }
}
