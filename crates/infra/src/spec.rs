//! Validated inputs: stack name, region, network and cluster specifications.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Tag key carried by every resource glrunner creates; its value is the stack name.
pub const STACK_TAG: &str = "glrunner.io/stack";
/// Tag key naming the logical resource (plan step key), so re-runs find what exists.
pub const KEY_TAG: &str = "glrunner.io/key";
/// Tag key carrying the region of the stack. IAM is global: a stack of the same name in two
/// regions tells its roles apart by this tag (and by the region in the role names).
pub const REGION_TAG: &str = "glrunner.io/region";

/// The CIDR list that leaves the public endpoint open to the whole internet (EKS's default).
pub fn open_public_access() -> Vec<String> {
    vec!["0.0.0.0/0".to_string()]
}

/// The AWS partition of a region: `aws`, `aws-us-gov` or `aws-cn`. Every ARN glrunner builds
/// (managed policies, access policies, roles) starts with `arn:<partition>:`.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("cn-") {
        "aws-cn"
    } else {
        "aws"
    }
}

/// Default Kubernetes version for new clusters: the newest one in standard support for the
/// longest while when [`crate::versions::READ_ON`] was read (1.34 entered extended support on
/// 2026-12-02, at six times the control-plane price).
pub const DEFAULT_KUBERNETES_VERSION: &str = "1.35";

/// A stack name: prefixes resource names and is the value of the [`STACK_TAG`] tag.
///
/// Lowercase letters, digits and single hyphens, starting with a letter, at most 28 characters
/// (so that IAM role names such as `<stack>-fargate-pod-execution` stay within IAM's 64).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StackName(String);

impl StackName {
    /// Longest accepted stack name.
    pub const MAX_LEN: usize = 28;

    /// Validates a stack name.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let fix = "use 1-28 lowercase letters, digits and hyphens, starting with a letter (e.g. glrunner-ci)";
        if name.is_empty() || name.len() > Self::MAX_LEN {
            return Err(Error::invalid(
                "stack",
                format!("{name:?} must be 1-{} characters; {fix}", Self::MAX_LEN),
            ));
        }
        if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(Error::invalid(
                "stack",
                format!("{name:?} must start with a lowercase letter; {fix}"),
            ));
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(Error::invalid(
                "stack",
                format!("{name:?} contains {bad:?}; {fix}"),
            ));
        }
        if name.ends_with('-') || name.contains("--") {
            return Err(Error::invalid(
                "stack",
                format!("{name:?} must not end with '-' or contain '--'; {fix}"),
            ));
        }
        if name.starts_with("eks-") || name.starts_with("aws") {
            return Err(Error::invalid(
                "stack",
                format!(
                    "{name:?} starts with a prefix AWS reserves (eks-, aws); choose another name"
                ),
            ));
        }
        Ok(Self(name))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StackName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for StackName {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        Self::new(value)
    }
}

impl From<StackName> for String {
    fn from(value: StackName) -> Self {
        value.0
    }
}

/// Checks a region against [`crate::regions`]: refused unless EKS runs pods on Fargate there,
/// before any AWS call, so `provision` never builds what cannot finish.
pub fn validate_region(region: &str) -> Result<()> {
    if partition(region) == "aws-cn" {
        return Err(Error::invalid(
            "region",
            format!(
                "{region:?} is in the China partition (aws-cn), which glrunner does not support (its service principals and endpoints differ); use a region of the aws or aws-us-gov partition"
            ),
        ));
    }
    match crate::regions::offer(region) {
        crate::regions::Offer::EksAndFargate => Ok(()),
        crate::regions::Offer::EksWithoutFargate => Err(Error::invalid(
            "region",
            format!(
                "{region} offers EKS but no Fargate for EKS pods (\"AWS Fargate with Amazon EKS isn't available in AWS GovCloud\", EKS User Guide), and glrunner runs every pod on Fargate; use a commercial region such as us-east-1, eu-west-1 or ap-southeast-2"
            ),
        )),
        crate::regions::Offer::Unknown => Err(Error::invalid(
            "region",
            format!(
                "{region:?} is not an AWS region with EKS Fargate; use one such as us-east-1, eu-west-1 or ap-southeast-2"
            ),
        )),
    }
}

/// How private subnets reach the internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NatMode {
    /// One NAT gateway in the first AZ shared by all private subnets (cheapest; the reference setup).
    #[default]
    Single,
    /// One NAT gateway per AZ (survives an AZ outage; costs one NAT + EIP per AZ).
    PerAz,
}

/// Public (route to the internet gateway) or private (route through NAT; Fargate runs here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubnetTier {
    /// Routes 0.0.0.0/0 to the internet gateway; holds the NAT gateway(s).
    Public,
    /// Routes 0.0.0.0/0 through NAT; holds the EKS control-plane ENIs and every Fargate pod.
    Private,
}

impl fmt::Display for SubnetTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Public => "public",
            Self::Private => "private",
        })
    }
}

/// The network: a VPC with one public and one private subnet per AZ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    /// VPC CIDR block, /16 to /20 in a private range.
    pub vpc_cidr: Ipv4Net,
    /// Number of availability zones (2 or 3; EKS needs two).
    pub az_count: u8,
    /// NAT layout.
    pub nat: NatMode,
}

impl Default for NetworkSpec {
    fn default() -> Self {
        Self {
            vpc_cidr: "10.0.0.0/16".parse().expect("valid literal"),
            az_count: 2,
            nat: NatMode::Single,
        }
    }
}

impl NetworkSpec {
    /// Parses and validates a CIDR as given on the command line (`--vpc-cidr`).
    pub fn parse_cidr(text: &str) -> Result<Ipv4Net> {
        let net: Ipv4Net = text.trim().parse().map_err(|_| {
            Error::invalid(
                "vpc_cidr",
                format!("{text:?} is not an IPv4 CIDR block; write it like 10.0.0.0/16"),
            )
        })?;
        Ok(net)
    }

    /// Validates the spec: CIDR size, alignment and range, AZ count.
    pub fn validate(&self) -> Result<()> {
        let net = self.vpc_cidr;
        if net.network() != net.addr() {
            return Err(Error::invalid(
                "vpc_cidr",
                format!(
                    "{net} has host bits set; did you mean {}/{}?",
                    net.network(),
                    net.prefix_len()
                ),
            ));
        }
        if net.prefix_len() < 16 {
            return Err(Error::invalid(
                "vpc_cidr",
                format!("{net} is larger than AWS allows for a VPC; use a /16 to /20 block"),
            ));
        }
        if net.prefix_len() > 20 {
            return Err(Error::invalid(
                "vpc_cidr",
                format!(
                    "{net} is too small: every Fargate pod takes one IP of a private subnet; use a /16 to /20 block"
                ),
            ));
        }
        let private_ranges: [Ipv4Net; 4] = [
            "10.0.0.0/8".parse().expect("literal"),
            "172.16.0.0/12".parse().expect("literal"),
            "192.168.0.0/16".parse().expect("literal"),
            "100.64.0.0/10".parse().expect("literal"),
        ];
        if !private_ranges.iter().any(|r| r.contains(&net)) {
            return Err(Error::invalid(
                "vpc_cidr",
                format!(
                    "{net} is not in a private range; use one inside 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 or 100.64.0.0/10"
                ),
            ));
        }
        if !(2..=3).contains(&self.az_count) {
            return Err(Error::invalid(
                "azs",
                format!(
                    "{} availability zones requested; EKS needs at least 2 and glrunner lays out 2 or 3",
                    self.az_count
                ),
            ));
        }
        Ok(())
    }

    /// The subnet CIDR for `tier` in the `index`-th AZ.
    ///
    /// The VPC is cut in quarters: quarters 0..=2 are the private subnets (one per AZ, where
    /// every Fargate pod takes an IP), the last quarter is cut in eighths for the public subnets
    /// (which only hold NAT gateways and load balancers). For 10.0.0.0/16: private /18s
    /// 10.0.0.0, 10.0.64.0, 10.0.128.0; public /21s 10.0.192.0, 10.0.200.0, 10.0.208.0.
    pub fn subnet_cidr(&self, tier: SubnetTier, index: usize) -> Ipv4Net {
        let base = u32::from(self.vpc_cidr.network());
        let quarter_len = self.vpc_cidr.prefix_len() + 2;
        let quarter_size = 1u32 << (32 - u32::from(quarter_len));
        match tier {
            SubnetTier::Private => {
                let addr = Ipv4Addr::from(base + quarter_size * index as u32);
                Ipv4Net::new(addr, quarter_len).expect("prefix within range")
            }
            SubnetTier::Public => {
                let eighth_len = quarter_len + 3;
                let eighth_size = 1u32 << (32 - u32::from(eighth_len));
                let addr = Ipv4Addr::from(base + quarter_size * 3 + eighth_size * index as u32);
                Ipv4Net::new(addr, eighth_len).expect("prefix within range")
            }
        }
    }
}

/// One Fargate profile selector: pods in `namespace` (matching `labels`, if any) run on Fargate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FargateSelector {
    /// Namespace the selector matches.
    pub namespace: String,
    /// Pod labels the selector requires (at most 5).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl FargateSelector {
    /// A selector for every pod of a namespace.
    pub fn namespace(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            labels: BTreeMap::new(),
        }
    }
}

/// The EKS cluster: control plane, one Fargate profile, CoreDNS on Fargate, admin access entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSpec {
    /// Cluster name (defaults to the stack name).
    pub name: String,
    /// Kubernetes version, one EKS creates today ([`crate::versions`]).
    pub kubernetes_version: String,
    /// Namespace the runner managers and job pods run in.
    pub runner_namespace: String,
    /// Extra Fargate selectors beyond `kube-system` and the runner namespace.
    pub extra_selectors: Vec<FargateSelector>,
    /// Extra tags applied to every resource.
    pub tags: BTreeMap<String, String>,
    /// IAM role or user ARNs (path included) that get cluster-admin besides the caller.
    #[serde(default)]
    pub admin_principals: Vec<String>,
    /// CIDR blocks allowed to reach the public API endpoint (default: the whole internet).
    #[serde(default = "default_public_access")]
    pub public_access_cidrs: Vec<Ipv4Net>,
}

fn default_public_access() -> Vec<Ipv4Net> {
    vec![Ipv4Net::default()]
}

impl ClusterSpec {
    /// Defaults for a stack: cluster named after it, current default version, `gitlab-runner` namespace.
    pub fn for_stack(stack: &StackName) -> Self {
        Self {
            name: stack.to_string(),
            kubernetes_version: DEFAULT_KUBERNETES_VERSION.to_string(),
            runner_namespace: "gitlab-runner".to_string(),
            extra_selectors: Vec::new(),
            tags: BTreeMap::new(),
            admin_principals: Vec::new(),
            public_access_cidrs: default_public_access(),
        }
    }

    /// Whether the public endpoint is open to the whole internet (worth a warning).
    pub fn public_endpoint_is_open(&self) -> bool {
        self.public_access_cidrs.iter().any(|c| c.prefix_len() == 0)
    }

    /// All selectors of the single Fargate profile: `kube-system` (CoreDNS), the runner
    /// namespace, then the extra ones, without duplicates.
    pub fn fargate_selectors(&self) -> Vec<FargateSelector> {
        let mut selectors = vec![
            FargateSelector::namespace("kube-system"),
            FargateSelector::namespace(&self.runner_namespace),
        ];
        for extra in &self.extra_selectors {
            if !selectors.contains(extra) {
                selectors.push(extra.clone());
            }
        }
        selectors
    }

    /// Validates version (one EKS creates today), namespace names, selector count and tags.
    pub fn validate(&self) -> Result<()> {
        self.validate_on(crate::versions::today())
    }

    /// [`ClusterSpec::validate`] as of `day`: EKS creates no cluster of a version past its end
    /// of extended support ("on the end of extended support date, you can no longer create new
    /// Amazon EKS clusters with the unsupported version": EKS version lifecycle page).
    pub fn validate_on(&self, day: jiff::civil::Date) -> Result<()> {
        let creatable: Vec<&str> = crate::versions::EKS_VERSIONS
            .iter()
            .filter(|v| v.creatable_on(day))
            .map(|v| v.version)
            .collect();
        match crate::versions::eks_version(&self.kubernetes_version) {
            Some(v) if v.creatable_on(day) => {}
            Some(v) => {
                return Err(Error::invalid(
                    "kubernetes_version",
                    format!(
                        "EKS no longer creates (or does not yet create) clusters of Kubernetes {} on {day}: its support runs from {} to {} ({}); use one of {} (default {DEFAULT_KUBERNETES_VERSION})",
                        v.version,
                        v.eks_release,
                        v.end_of_extended_support,
                        crate::versions::SOURCE,
                        creatable.join(", ")
                    ),
                ));
            }
            None => {
                return Err(Error::invalid(
                    "kubernetes_version",
                    format!(
                        "EKS does not offer Kubernetes {:?}; use one of {} (default {DEFAULT_KUBERNETES_VERSION})",
                        self.kubernetes_version,
                        creatable.join(", ")
                    ),
                ));
            }
        }
        validate_dns_label("runner_namespace", &self.runner_namespace)?;
        let selectors = self.fargate_selectors();
        if selectors.len() > 5 {
            return Err(Error::invalid(
                "fargate_selectors",
                format!(
                    "{} selectors requested; an EKS Fargate profile takes at most 5 (kube-system and the runner namespace included)",
                    selectors.len()
                ),
            ));
        }
        for selector in &selectors {
            validate_dns_label("fargate_selectors.namespace", &selector.namespace)?;
            if selector.labels.len() > 5 {
                return Err(Error::invalid(
                    "fargate_selectors.labels",
                    format!(
                        "selector for namespace {} has {} labels; EKS allows at most 5",
                        selector.namespace,
                        selector.labels.len()
                    ),
                ));
            }
        }
        for principal in &self.admin_principals {
            validate_principal_arn("admin_principals", principal)?;
        }
        if self.public_access_cidrs.is_empty() || self.public_access_cidrs.len() > 40 {
            return Err(Error::invalid(
                "public_access_cidrs",
                format!(
                    "{} CIDR blocks given; EKS takes 1 to 40 (e.g. 203.0.113.0/24)",
                    self.public_access_cidrs.len()
                ),
            ));
        }
        for cidr in &self.public_access_cidrs {
            if cidr.network() != cidr.addr() {
                return Err(Error::invalid(
                    "public_access_cidrs",
                    format!(
                        "{cidr} has host bits set; did you mean {}/{}?",
                        cidr.network(),
                        cidr.prefix_len()
                    ),
                ));
            }
        }
        for (key, value) in &self.tags {
            if key.is_empty() || key.len() > 128 || value.len() > 256 || key.starts_with("aws:") {
                return Err(Error::invalid(
                    "tags",
                    format!(
                        "tag {key:?}={value:?} is invalid; keys are 1-128 characters not starting with aws:, values at most 256"
                    ),
                ));
            }
            if key == STACK_TAG || key == KEY_TAG {
                return Err(Error::invalid(
                    "tags",
                    format!("tag key {key:?} is reserved for glrunner; remove it"),
                ));
            }
        }
        Ok(())
    }
}

/// Checks that `arn` names an IAM role or user (what an EKS access entry accepts), path allowed.
pub fn validate_principal_arn(field: &str, arn: &str) -> Result<()> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && matches!(parts[1], "aws" | "aws-us-gov")
        && parts[2] == "iam"
        && parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && (parts[5].starts_with("role/") || parts[5].starts_with("user/"))
        && !parts[5].ends_with('/');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!(
                "{arn:?} is not an IAM role or user ARN; write it like arn:aws:iam::123456789012:role/ci or arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/us-east-1/AWSReservedSSO_Admin_0123 (path included, not an sts assumed-role ARN)"
            ),
        ))
    }
}

fn validate_dns_label(field: &str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!(
                "{value:?} is not a Kubernetes namespace name; use 1-63 lowercase letters, digits and '-' (e.g. gitlab-runner)"
            ),
        ))
    }
}

/// Everything `provision` needs, validated together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackSpec {
    /// Stack name.
    pub stack: StackName,
    /// AWS region.
    pub region: String,
    /// Network layout.
    pub network: NetworkSpec,
    /// Cluster settings.
    pub cluster: ClusterSpec,
    /// The ECR pull-through cache (on by default).
    #[serde(default)]
    pub image_cache: crate::image_cache::ImageCacheSpec,
    /// The runners' S3 cache (`--cache s3`, the default); `None` for `--cache none`.
    #[serde(default)]
    pub cache: Option<crate::cache::CacheSpec>,
    /// Job roles (`--job-role NAME=POLICY_ARN`): an IRSA role per job ServiceAccount.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub job_roles: Vec<crate::job_roles::JobRole>,
}

impl StackSpec {
    /// Defaults for a stack in a region.
    pub fn new(stack: StackName, region: impl Into<String>) -> Self {
        let cluster = ClusterSpec::for_stack(&stack);
        Self {
            stack,
            region: region.into(),
            network: NetworkSpec::default(),
            cluster,
            image_cache: crate::image_cache::ImageCacheSpec::default(),
            cache: Some(crate::cache::CacheSpec::default()),
            job_roles: Vec::new(),
        }
    }

    /// Validates every field; call before constructing any backend.
    pub fn validate(&self) -> Result<()> {
        validate_region(&self.region)?;
        self.network.validate()?;
        self.cluster.validate()?;
        if let Some(cache) = &self.cache {
            cache.validate()?;
            // The bucket's name fits S3 whatever the account (12 digits).
            crate::cache::bucket_name(self.stack.as_str(), "000000000000", &self.region)?;
        }
        if self.cluster.name != self.stack.as_str() {
            // Discovery describes only the cluster named after the stack: in a shared account
            // the others' clusters may not be described at all.
            return Err(Error::invalid(
                "cluster.name",
                format!(
                    "the cluster of stack {} must be named {} (glrunner finds a stack's cluster by its name), not {}",
                    self.stack, self.stack, self.cluster.name
                ),
            ));
        }
        let partition = partition(&self.region);
        self.image_cache.validate(partition, &self.region)?;
        crate::job_roles::validate(
            &self.job_roles,
            self.stack.as_str(),
            &self.region,
            partition,
        )?;
        for principal in &self.cluster.admin_principals {
            if !principal.starts_with(&format!("arn:{partition}:")) {
                return Err(Error::invalid(
                    "admin_principals",
                    format!(
                        "{principal} is not in the {partition} partition of region {}; use an ARN starting with arn:{partition}:",
                        self.region
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The AWS partition of the stack's region.
    pub fn partition(&self) -> &'static str {
        partition(&self.region)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_names() {
        assert!(StackName::new("glrunner").is_ok());
        assert!(StackName::new("ci-2").is_ok());
        for bad in [
            "",
            "Glrunner",
            "1abc",
            "a_b",
            "abc-",
            "a--b",
            "eks-x",
            "awsome",
            &"a".repeat(29),
        ] {
            let err = StackName::new(bad).unwrap_err();
            assert!(
                matches!(err, Error::InvalidInput { ref field, .. } if field == "stack"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn cidr_validation_names_the_field_and_fix() {
        let mut spec = NetworkSpec::default();
        assert!(spec.validate().is_ok());
        for (cidr, needle) in [
            ("10.0.0.0/24", "too small"),
            ("10.0.0.0/8", "larger than AWS allows"),
            ("10.0.0.1/16", "did you mean 10.0.0.0/16"),
            ("8.8.0.0/16", "private range"),
        ] {
            spec.vpc_cidr = cidr.parse().unwrap();
            let err = spec.validate().unwrap_err().to_string();
            assert!(
                err.contains("vpc_cidr") && err.contains(needle),
                "{cidr}: {err}"
            );
        }
        assert!(NetworkSpec::parse_cidr("10.0.0.0").is_err());
        assert!(
            NetworkSpec::parse_cidr("nonsense")
                .unwrap_err()
                .to_string()
                .contains("10.0.0.0/16")
        );
    }

    #[test]
    fn az_count_is_two_or_three() {
        for (count, ok) in [(1, false), (2, true), (3, true), (4, false)] {
            let spec = NetworkSpec {
                az_count: count,
                ..NetworkSpec::default()
            };
            assert_eq!(spec.validate().is_ok(), ok, "{count}");
        }
    }

    #[test]
    fn subnets_do_not_overlap_and_stay_inside_the_vpc() {
        for cidr in ["10.0.0.0/16", "172.20.0.0/18", "192.168.16.0/20"] {
            let spec = NetworkSpec {
                vpc_cidr: cidr.parse().unwrap(),
                az_count: 3,
                nat: NatMode::PerAz,
            };
            let mut all = Vec::new();
            for i in 0..3 {
                all.push(spec.subnet_cidr(SubnetTier::Private, i));
                all.push(spec.subnet_cidr(SubnetTier::Public, i));
            }
            for (i, a) in all.iter().enumerate() {
                assert!(spec.vpc_cidr.contains(a), "{a} outside {cidr}");
                for b in &all[i + 1..] {
                    assert!(
                        !a.contains(&b.network()) && !b.contains(&a.network()),
                        "{a} overlaps {b}"
                    );
                }
            }
        }
        let spec = NetworkSpec::default();
        assert_eq!(
            spec.subnet_cidr(SubnetTier::Private, 1).to_string(),
            "10.0.64.0/18"
        );
        assert_eq!(
            spec.subnet_cidr(SubnetTier::Public, 0).to_string(),
            "10.0.192.0/21"
        );
    }

    #[test]
    fn cluster_validation() {
        let stack = StackName::new("glrunner").unwrap();
        let mut spec = ClusterSpec::for_stack(&stack);
        assert!(spec.validate().is_ok());
        spec.kubernetes_version = "1.19".into();
        assert!(
            spec.validate()
                .unwrap_err()
                .to_string()
                .contains("kubernetes_version")
        );
        spec.kubernetes_version = DEFAULT_KUBERNETES_VERSION.into();
        spec.extra_selectors = (0..4)
            .map(|i| FargateSelector::namespace(format!("ns{i}")))
            .collect();
        assert!(
            spec.validate()
                .unwrap_err()
                .to_string()
                .contains("at most 5")
        );
        spec.extra_selectors.truncate(3);
        assert!(spec.validate().is_ok());
        spec.runner_namespace = "Bad_NS".into();
        assert!(
            spec.validate()
                .unwrap_err()
                .to_string()
                .contains("runner_namespace")
        );
    }

    #[test]
    fn a_version_past_its_extended_support_is_refused() {
        let stack = StackName::new("glrunner").unwrap();
        let mut spec = ClusterSpec::for_stack(&stack);
        spec.kubernetes_version = "1.30".into();
        let day = jiff::civil::date(2026, 7, 23);
        let err = spec.validate_on(day).unwrap_err().to_string();
        assert!(
            err.contains("kubernetes_version") && err.contains("2026-07-23"),
            "{err}"
        );
        assert!(spec.validate_on(jiff::civil::date(2026, 7, 22)).is_ok());
        // The default is in standard support on the day the table was read.
        spec.kubernetes_version = DEFAULT_KUBERNETES_VERSION.into();
        assert_eq!(
            crate::versions::eks_version(DEFAULT_KUBERNETES_VERSION)
                .unwrap()
                .support_on(crate::versions::READ_ON),
            crate::versions::Support::Standard
        );
        assert!(spec.validate_on(crate::versions::READ_ON).is_ok());
    }

    #[test]
    fn the_cluster_is_named_after_its_stack() {
        let mut spec = StackSpec::new(StackName::new("glrunner").unwrap(), "us-east-1");
        assert!(spec.validate().is_ok());
        spec.cluster.name = "other".into();
        assert!(
            spec.validate()
                .unwrap_err()
                .to_string()
                .contains("cluster.name")
        );
    }

    #[test]
    fn regions() {
        assert!(validate_region("us-east-1").is_ok());
        assert!(validate_region("ap-southeast-6").is_ok());
        let gov = validate_region("us-gov-west-1").unwrap_err().to_string();
        assert!(
            gov.contains("region") && gov.contains("no Fargate"),
            "{gov}"
        );
        assert_eq!(partition("us-gov-west-1"), "aws-us-gov");
        let china = validate_region("cn-north-1").unwrap_err().to_string();
        assert!(
            china.contains("region") && china.contains("aws-cn"),
            "{china}"
        );
        assert!(
            validate_region("us-east-9")
                .unwrap_err()
                .to_string()
                .contains("region")
        );
    }
}
