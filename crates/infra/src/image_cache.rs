//! The stack's ECR pull-through cache: which upstream registries it mirrors, the repository
//! prefix of each rule, the Secrets Manager name of an upstream credential, the pod execution
//! role's extra permissions and the S3 gateway endpoint that keeps layer downloads off the NAT.
//!
//! Pure functions and validated inputs only; the calls live in `crate::aws::image_cache`.
//!
//! Sources:
//! - ECR API `CreatePullThroughCacheRule` (botocore `ecr` service model, 2015-09-21):
//!   `ecrRepositoryPrefix` 2-30 characters matching [`PREFIX_PATTERN`]; `upstreamRegistry` one
//!   of `ecr`, `ecr-public`, `quay`, `k8s`, `docker-hub`, `github-container-registry`,
//!   `azure-container-registry`, `gitlab-container-registry`, `chainguard`; `credentialArn`
//!   50-612 characters matching [`CREDENTIAL_ARN_PATTERN`] (the secret's name must start with
//!   `ecr-pullthroughcache/`).
//! - ECR User Guide, "Creating a pull through cache rule": Docker Hub and GitLab Container
//!   Registry need an upstream credential, stored as a secret whose value is
//!   `{"username":"…","accessToken":"…"}`; ECR Public, Quay and registry.k8s.io do not.
//! - ECR User Guide, "IAM permissions required to sync an upstream registry with an Amazon ECR
//!   private registry": the puller needs `ecr:BatchImportUpstreamImage` and, for the first pull
//!   of an image (its repository does not exist yet), `ecr:CreateRepository`; both may come
//!   from an identity-based policy (no registry policy needed).
//! - Amazon VPC User Guide, "Gateway endpoints for Amazon S3": service
//!   `com.amazonaws.<region>.s3`, type Gateway, no charge; ECR stores layers in S3, so pulls
//!   through the endpoint do not cross the NAT gateway (ECR User Guide, "Amazon ECR interface
//!   VPC endpoints (AWS PrivateLink)", "Create the Amazon S3 gateway endpoint").

use std::fmt;

use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::plan::{RuleCredential, StepAction, StepRef};
use crate::resource::ResourceKind;
use crate::spec::StackName;

/// `ecrRepositoryPrefix`'s pattern in the ECR service model.
pub const PREFIX_PATTERN: &str =
    r"^([a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*\/?|ROOT)$";
/// `ecrRepositoryPrefix`'s length bounds in the ECR service model.
pub const PREFIX_LEN: std::ops::RangeInclusive<usize> = 2..=30;
/// `credentialArn`'s pattern in the ECR service model.
pub const CREDENTIAL_ARN_PATTERN: &str = r"^arn:aws(-\w+)*:secretsmanager:[a-zA-Z0-9-:]+:secret:ecr\-pullthroughcache\/[a-zA-Z0-9\/_+=.@-]+$";
/// `credentialArn`'s length bounds in the ECR service model.
pub const CREDENTIAL_ARN_LEN: std::ops::RangeInclusive<usize> = 50..=612;
/// The name prefix ECR requires of an upstream credential's secret.
pub const SECRET_PREFIX: &str = "ecr-pullthroughcache/";
/// Name of the inline policy glrunner puts on the Fargate pod execution role.
pub const ROLE_POLICY_NAME: &str = "glrunner-image-cache";
/// Key of the inline policy step (an inline policy has no tags; its key is derived from its
/// role's key and its name, see [`inline_policy_key`]).
pub const ROLE_POLICY_KEY: &str = "role/fargate/image-cache";
/// Key of the S3 gateway endpoint step.
pub const ENDPOINT_KEY: &str = "vpce/s3";
/// What the pod execution role gets beyond AmazonEKSFargatePodExecutionRolePolicy (which
/// already grants GetAuthorizationToken, BatchCheckLayerAvailability, GetDownloadUrlForLayer and
/// BatchGetImage on every repository).
pub const POD_ROLE_ACTIONS: &[&str] = &["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"];

/// An upstream registry the cache can mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Upstream {
    /// Amazon ECR Public (`public.ecr.aws`).
    EcrPublic,
    /// Quay (`quay.io`).
    Quay,
    /// The Kubernetes registry (`registry.k8s.io`).
    K8s,
    /// Docker Hub (`registry-1.docker.io`); needs a credential.
    DockerHub,
    /// GitLab's container registry (`registry.gitlab.com`); needs a credential.
    GitLab,
}

impl Upstream {
    /// Every upstream, in plan order.
    pub const ALL: [Upstream; 5] = [
        Self::EcrPublic,
        Self::Quay,
        Self::K8s,
        Self::DockerHub,
        Self::GitLab,
    ];

    /// The `upstreamRegistry` enum value of the ECR API.
    pub fn api_name(self) -> &'static str {
        match self {
            Self::EcrPublic => "ecr-public",
            Self::Quay => "quay",
            Self::K8s => "k8s",
            Self::DockerHub => "docker-hub",
            Self::GitLab => "gitlab-container-registry",
        }
    }

    /// The `upstreamRegistryUrl` ECR expects for it.
    pub fn url(self) -> &'static str {
        match self {
            Self::EcrPublic => "public.ecr.aws",
            Self::Quay => "quay.io",
            Self::K8s => "registry.k8s.io",
            Self::DockerHub => "registry-1.docker.io",
            Self::GitLab => "registry.gitlab.com",
        }
    }

    /// Short name: the last component of the rule's prefix, of the secret's name and of keys.
    pub fn short(self) -> &'static str {
        match self {
            Self::EcrPublic => "ecr-public",
            Self::Quay => "quay",
            Self::K8s => "k8s",
            Self::DockerHub => "docker-hub",
            Self::GitLab => "gitlab",
        }
    }

    /// Whether ECR refuses a rule for it without an upstream credential.
    pub fn needs_credential(self) -> bool {
        matches!(self, Self::DockerHub | Self::GitLab)
    }

    /// The upstream whose [`Upstream::short`] name this is.
    pub fn from_short(short: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|u| u.short() == short)
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url())
    }
}

/// A pull-through cache rule of the account's registry (ECR API `DescribePullThroughCacheRules`,
/// `PullThroughCacheRule`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheRule {
    /// `ecrRepositoryPrefix`.
    pub prefix: String,
    /// `upstreamRegistryUrl`.
    pub upstream_url: String,
}

impl CacheRule {
    /// The upstream glrunner knows it as, by the URL ECR stores for it ([`Upstream::url`]);
    /// `None` for another registry.
    pub fn upstream(&self) -> Option<Upstream> {
        Upstream::ALL
            .into_iter()
            .find(|u| u.url() == self.upstream_url)
    }
}

/// FNV-1a: a stable hash for shortening names (not for security).
fn fnv1a(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// The `ecrRepositoryPrefix` of the stack's rule for `upstream`: `<stack>/<short>` when that
/// fits ECR's 30 characters, else the stack name cut short plus four hex digits of its hash
/// (`<stack-start>-<hash>/<short>`), so two long stack names never share a prefix.
pub fn rule_prefix(stack: &StackName, upstream: Upstream) -> String {
    let stack = stack.as_str();
    let short = upstream.short();
    let room = PREFIX_LEN.end() - 1 - short.len();
    if stack.len() <= room {
        return format!("{stack}/{short}");
    }
    let head = stack[..room - 5].trim_end_matches('-');
    format!("{head}-{:04x}/{short}", fnv1a(stack) & 0xffff)
}

/// The key of the rule step of `upstream`.
pub fn rule_key(upstream: Upstream) -> String {
    format!("image-cache/{}", upstream.short())
}

/// The key of the credential secret step of `upstream`.
pub fn secret_key(upstream: Upstream) -> String {
    format!("image-cache/secret/{}", upstream.short())
}

/// The Secrets Manager name of the credential glrunner stores for `upstream`:
/// `ecr-pullthroughcache/<stack>/<short>`.
pub fn secret_name(stack: &StackName, upstream: Upstream) -> String {
    format!("{SECRET_PREFIX}{stack}/{}", upstream.short())
}

/// The key of an inline policy of a role that glrunner plans as a step of its own (only
/// [`ROLE_POLICY_NAME`], put on the pod execution role): `<role key>/<name without glrunner->`.
/// `None` for any other policy: someone else's, or one glrunner puts on a role it creates with
/// it (the IRSA roles' policies), which is created and deleted with its role.
pub fn inline_policy_key(role_key: &str, policy_name: &str) -> Option<String> {
    if policy_name != ROLE_POLICY_NAME || role_key.is_empty() {
        return None;
    }
    let rest = policy_name.strip_prefix("glrunner-")?;
    Some(format!("{role_key}/{rest}"))
}

/// The S3 gateway endpoint's service name in a region (`cn.com.amazonaws.` in China, Amazon VPC
/// User Guide, "Gateway endpoints for Amazon S3").
pub fn s3_service_name(region: &str) -> String {
    if region.starts_with("cn-") {
        format!("cn.com.amazonaws.{region}.s3")
    } else {
        format!("com.amazonaws.{region}.s3")
    }
}

/// The inline policy of the pod execution role: [`POD_ROLE_ACTIONS`] on the repositories under
/// the stack's rule prefixes.
pub fn pod_role_policy(
    partition: &str,
    region: &str,
    account: &str,
    prefixes: &[String],
) -> String {
    let resources: Vec<String> = prefixes
        .iter()
        .map(|p| format!("arn:{partition}:ecr:{region}:{account}:repository/{p}/*"))
        .collect();
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "PullThroughCache",
            "Effect": "Allow",
            "Action": POD_ROLE_ACTIONS,
            "Resource": resources,
        }]
    })
    .to_string()
}

/// Whether `prefix` is an `ecrRepositoryPrefix` ECR accepts (length and
/// [`PREFIX_PATTERN`], written out by hand: the crate has no regex engine at run time; a test
/// checks it against the pattern itself).
pub fn prefix_is_valid(prefix: &str) -> bool {
    if !PREFIX_LEN.contains(&prefix.len()) {
        return false;
    }
    if prefix == "ROOT" {
        return true;
    }
    let body = prefix.strip_suffix('/').unwrap_or(prefix);
    body.split('/').all(component_is_valid)
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn component_is_valid(part: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let bytes: Vec<char> = part.chars().collect();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(*bytes.last().expect("non-empty")) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep: String = bytes[start..i].iter().collect();
        let ok = sep == "." || sep == "_" || sep == "__" || sep.chars().all(|c| c == '-');
        if !ok {
            return false;
        }
    }
    true
}

/// An upstream registry credential: a user name and an access token, as ECR reads it from the
/// secret. The token lives in a [`SecretString`] (wiped on drop); Debug and Display show neither
/// part's value, and it serialises as `"<redacted>"`.
#[derive(Clone)]
pub struct Credential {
    username: String,
    token: SecretString,
}

impl Credential {
    /// Parses `USERNAME:ACCESS_TOKEN` (the token may contain ':'). `source` names where it came
    /// from (an environment variable) in the error, which never contains the value.
    pub fn parse(source: &str, text: &str) -> Result<Self> {
        match text.trim_end_matches(['\r', '\n']).split_once(':') {
            Some((user, token)) if !user.is_empty() && !token.is_empty() => Ok(Self {
                username: user.to_string(),
                token: SecretString::from(token.to_string()),
            }),
            _ => Err(Error::invalid(
                "image_cache.credential",
                format!(
                    "{source} must hold USERNAME:ACCESS_TOKEN (a Docker Hub or GitLab user and an access token); it does not (its value is not shown)"
                ),
            )),
        }
    }

    /// The secret's value ECR reads: `{"username":"…","accessToken":"…"}`. Hand it only to
    /// Secrets Manager.
    pub fn secret_value(&self) -> String {
        serde_json::json!({"username": self.username, "accessToken": self.token.expose_secret()})
            .to_string()
    }

    /// Whether no value was given (what a deserialised credential holds).
    pub fn is_empty(&self) -> bool {
        self.token.expose_secret().is_empty()
    }
}

impl Default for Credential {
    fn default() -> Self {
        Self {
            username: String::new(),
            token: SecretString::from(String::new()),
        }
    }
}

impl PartialEq for Credential {
    fn eq(&self, other: &Self) -> bool {
        self.username == other.username && self.token.expose_secret() == other.token.expose_secret()
    }
}

impl Eq for Credential {}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}

impl Serialize for Credential {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

impl<'de> Deserialize<'de> for Credential {
    /// A credential is never read back from a file: whatever is there becomes an empty one.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let _ = serde::de::IgnoredAny::deserialize(d)?;
        Ok(Self::default())
    }
}

/// Where the credential of an upstream comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialSource {
    /// A Secrets Manager secret the user made (its name starts with `ecr-pullthroughcache/`):
    /// glrunner names it in the rule and never reads, changes or deletes it.
    SecretArn(String),
    /// A value given at provision time (from an environment variable): glrunner stores it as
    /// the secret [`secret_name`] and deletes that secret at teardown.
    Provided(Credential),
}

/// The pull-through cache of a stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageCacheSpec {
    /// Whether the stack has the cache (rules, role permissions, S3 gateway endpoint).
    pub enabled: bool,
    /// Docker Hub's credential; without one there is no Docker Hub rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_hub: Option<CredentialSource>,
    /// GitLab container registry's credential; without one there is no GitLab rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitlab: Option<CredentialSource>,
}

impl Default for ImageCacheSpec {
    /// On, with the three upstreams that need no credential.
    fn default() -> Self {
        Self {
            enabled: true,
            docker_hub: None,
            gitlab: None,
        }
    }
}

impl ImageCacheSpec {
    /// Off.
    pub fn off() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// The credential of an upstream, if one was given.
    pub fn credential(&self, upstream: Upstream) -> Option<&CredentialSource> {
        match upstream {
            Upstream::DockerHub => self.docker_hub.as_ref(),
            Upstream::GitLab => self.gitlab.as_ref(),
            _ => None,
        }
    }

    /// The upstreams the stack gets a rule for: those needing no credential, plus those with one.
    pub fn upstreams(&self) -> Vec<Upstream> {
        if !self.enabled {
            return Vec::new();
        }
        Upstream::ALL
            .into_iter()
            .filter(|u| !u.needs_credential() || self.credential(*u).is_some())
            .collect()
    }

    /// Checks the credentials: an ARN must be a secret ECR accepts (the model's pattern and
    /// length), in the stack's partition and region; a provided value must not be empty.
    pub fn validate(&self, partition: &str, region: &str) -> Result<()> {
        for upstream in [Upstream::DockerHub, Upstream::GitLab] {
            let field = match upstream {
                Upstream::DockerHub => "image_cache.docker_hub",
                _ => "image_cache.gitlab",
            };
            match self.credential(upstream) {
                Some(_) if !self.enabled => {
                    return Err(Error::invalid(
                        field,
                        format!(
                            "a {upstream} credential was given but the image cache is off; drop the credential or the --no-image-cache"
                        ),
                    ));
                }
                Some(CredentialSource::SecretArn(arn)) => {
                    validate_credential_arn(field, arn, partition, region)?
                }
                Some(CredentialSource::Provided(c)) if c.is_empty() => {
                    return Err(Error::invalid(
                        field,
                        format!("the {upstream} credential is empty; give USERNAME:ACCESS_TOKEN"),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Checks a user-supplied secret ARN against `credentialArn` in the ECR model (by hand, see
/// [`prefix_is_valid`]) and the stack's partition and region.
pub fn validate_credential_arn(
    field: &str,
    arn: &str,
    partition: &str,
    region: &str,
) -> Result<()> {
    let fix = format!(
        "give the ARN of a Secrets Manager secret in {region} whose name starts with {SECRET_PREFIX}, e.g. arn:{partition}:secretsmanager:{region}:123456789012:secret:{SECRET_PREFIX}docker-hub-AbCdEf"
    );
    let prefix = format!("arn:{partition}:secretsmanager:{region}:");
    let Some(rest) = arn.strip_prefix(&prefix) else {
        return Err(Error::invalid(
            field,
            format!("{arn:?} is not a Secrets Manager ARN in {region} ({partition}); {fix}"),
        ));
    };
    let name = rest
        .split_once(":secret:")
        .filter(|(account, _)| account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))
        .map(|(_, name)| name);
    let name_ok = name.is_some_and(|n| {
        n.strip_prefix(SECRET_PREFIX).is_some_and(|tail| {
            !tail.is_empty()
                && tail
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c))
        })
    });
    if !name_ok || !CREDENTIAL_ARN_LEN.contains(&arn.len()) {
        return Err(Error::invalid(
            field,
            format!(
                "{arn:?} is not a secret ECR's pull-through cache can use (its name must start with {SECRET_PREFIX}; the ARN is 50-612 characters); {fix}"
            ),
        ));
    }
    Ok(())
}

/// Adds the cache's steps to a plan being built (nothing when the cache is off): the S3
/// gateway endpoint on the private route tables, the pod execution role's inline policy, one
/// secret per provided credential and one rule per upstream.
pub(crate) fn plan_steps(
    spec: &crate::spec::StackSpec,
    private_route_tables: &[String],
    add: &mut dyn FnMut(String, ResourceKind, String, Vec<String>, StepAction),
) {
    let cache = &spec.image_cache;
    if !cache.enabled {
        return;
    }
    let stack = &spec.stack;
    let service = s3_service_name(&spec.region);
    let mut deps = vec!["vpc".to_string()];
    deps.extend(private_route_tables.iter().cloned());
    add(
        ENDPOINT_KEY.into(),
        ResourceKind::VpcEndpoint,
        format!(
            "create S3 gateway endpoint {service} on the private route tables (ECR image layers skip the NAT gateway)"
        ),
        deps,
        StepAction::VpcEndpoint {
            vpc: StepRef("vpc".into()),
            service,
            route_tables: private_route_tables.iter().cloned().map(StepRef).collect(),
        },
    );
    let upstreams = cache.upstreams();
    let prefixes: Vec<String> = upstreams.iter().map(|u| rule_prefix(stack, *u)).collect();
    add(
        ROLE_POLICY_KEY.into(),
        ResourceKind::RolePolicy,
        format!(
            "put inline policy {ROLE_POLICY_NAME} on the Fargate pod execution role ({} on {}/*)",
            POD_ROLE_ACTIONS.join(", "),
            prefixes.join("/*, ")
        ),
        vec!["role/fargate".into()],
        StepAction::RolePolicy {
            role: StepRef("role/fargate".into()),
            name: ROLE_POLICY_NAME.into(),
            prefixes: prefixes.clone(),
        },
    );
    for (upstream, prefix) in upstreams.into_iter().zip(prefixes) {
        let mut deps = Vec::new();
        let credential = match cache.credential(upstream) {
            None => None,
            Some(CredentialSource::SecretArn(arn)) => Some(RuleCredential::SecretArn(arn.clone())),
            Some(CredentialSource::Provided(value)) => {
                let name = secret_name(stack, upstream);
                let key = secret_key(upstream);
                add(
                    key.clone(),
                    ResourceKind::CacheSecret,
                    format!("store the {upstream} credential as Secrets Manager secret {name}"),
                    vec![],
                    StepAction::CacheSecret {
                        name,
                        value: value.clone(),
                    },
                );
                deps.push(key.clone());
                Some(RuleCredential::Step(StepRef(key)))
            }
        };
        add(
            rule_key(upstream),
            ResourceKind::PullThroughCacheRule,
            format!(
                "create ECR pull-through cache rule {prefix} for {upstream}{}",
                if credential.is_some() {
                    " (with its credential)"
                } else {
                    ""
                }
            ),
            deps,
            StepAction::PullThroughCacheRule {
                prefix,
                upstream,
                credential,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn model_prefix(prefix: &str) -> bool {
        let re = regex::Regex::new(PREFIX_PATTERN).unwrap();
        PREFIX_LEN.contains(&prefix.len()) && re.is_match(prefix)
    }

    #[test]
    fn prefixes_fit_ecr_for_every_stack_length() {
        for len in 1..=StackName::MAX_LEN {
            let name = StackName::new(format!("a{}", "b".repeat(len - 1))).unwrap();
            let mut seen = std::collections::HashSet::new();
            for upstream in Upstream::ALL {
                let prefix = rule_prefix(&name, upstream);
                assert!(model_prefix(&prefix), "{prefix}");
                assert!(prefix_is_valid(&prefix), "{prefix}");
                assert!(prefix.ends_with(&format!("/{}", upstream.short())));
                assert!(seen.insert(prefix));
            }
        }
        let ci = StackName::new("ci").unwrap();
        assert_eq!(rule_prefix(&ci, Upstream::DockerHub), "ci/docker-hub");
        // Long names that share their start still get distinct prefixes.
        let a = StackName::new("glrunner-production-east-aa").unwrap();
        let b = StackName::new("glrunner-production-east-ab").unwrap();
        assert_ne!(
            rule_prefix(&a, Upstream::EcrPublic),
            rule_prefix(&b, Upstream::EcrPublic)
        );
    }

    proptest! {
        #[test]
        fn hand_written_prefix_check_agrees_with_the_model(prefix in "[a-z0-9._/-]{0,34}") {
            prop_assert_eq!(prefix_is_valid(&prefix), model_prefix(&prefix), "{}", prefix);
        }

        #[test]
        fn every_valid_stack_gets_valid_prefixes(stack in "[a-z]([a-z0-9]|-[a-z0-9]){0,13}") {
            if let Ok(name) = StackName::new(stack) {
                for upstream in Upstream::ALL {
                    prop_assert!(model_prefix(&rule_prefix(&name, upstream)));
                }
            }
        }
    }

    #[test]
    fn credential_arns_follow_the_model() {
        let re = regex::Regex::new(CREDENTIAL_ARN_PATTERN).unwrap();
        let good =
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:ecr-pullthroughcache/hub-AbCdEf";
        assert!(re.is_match(good));
        assert!(validate_credential_arn("f", good, "aws", "us-east-1").is_ok());
        for bad in [
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:hub-AbCdEf",
            "arn:aws:secretsmanager:us-west-2:123456789012:secret:ecr-pullthroughcache/hub-AbCdEf",
            "arn:aws:secretsmanager:us-east-1:1234:secret:ecr-pullthroughcache/hub-AbCdEf",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:ecr-pullthroughcache/",
            "not-an-arn",
        ] {
            let err = validate_credential_arn("image_cache.docker_hub", bad, "aws", "us-east-1")
                .unwrap_err()
                .to_string();
            assert!(err.contains("ecr-pullthroughcache/"), "{err}");
        }
    }

    #[test]
    fn credential_never_shows_its_token() {
        let c =
            Credential::parse("GLRUNNER_DOCKER_HUB_CREDENTIAL", "me:dckr_pat_S3CRET:x\n").unwrap();
        assert!(!format!("{c:?}").contains("S3CRET"));
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"<redacted>\"");
        let source = CredentialSource::Provided(c.clone());
        assert!(!format!("{source:?}").contains("S3CRET"));
        assert!(!serde_json::to_string(&source).unwrap().contains("S3CRET"));
        let value: serde_json::Value = serde_json::from_str(&c.secret_value()).unwrap();
        assert_eq!(value["username"], "me");
        assert_eq!(value["accessToken"], "dckr_pat_S3CRET:x");
        let err = Credential::parse("VAR", "S3CRET").unwrap_err().to_string();
        assert!(err.contains("VAR") && !err.contains("S3CRET"), "{err}");
        let back: Credential = serde_json::from_str("\"<redacted>\"").unwrap();
        assert!(back.is_empty());
    }

    #[test]
    fn upstreams_need_their_credentials() {
        let mut spec = ImageCacheSpec::default();
        assert_eq!(
            spec.upstreams(),
            [Upstream::EcrPublic, Upstream::Quay, Upstream::K8s]
        );
        spec.docker_hub = Some(CredentialSource::Provided(
            Credential::parse("V", "u:t").unwrap(),
        ));
        assert_eq!(spec.upstreams().len(), 4);
        assert!(spec.validate("aws", "us-east-1").is_ok());
        spec.enabled = false;
        assert!(spec.upstreams().is_empty());
        assert!(spec.validate("aws", "us-east-1").is_err());
        assert_eq!(s3_service_name("eu-west-1"), "com.amazonaws.eu-west-1.s3");
        assert_eq!(
            inline_policy_key("role/fargate", ROLE_POLICY_NAME).as_deref(),
            Some(ROLE_POLICY_KEY)
        );
        assert_eq!(inline_policy_key("role/fargate", "someone-else"), None);
        // The cache role's bucket policy goes with its role: no step of its own.
        assert_eq!(
            inline_policy_key("role/cache", crate::cache::CACHE_POLICY_NAME),
            None
        );
    }
}
