//! Resources as the provisioners see them: kinds, discovered resources and creation requests.

use std::collections::BTreeMap;
use std::fmt;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::spec::{FargateSelector, SubnetTier};

/// Every kind of resource glrunner creates or cleans up, in teardown order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResourceKind {
    /// EKS managed add-on (CoreDNS).
    Addon,
    /// EKS access entry with its associated access policy.
    AccessEntry,
    /// EKS Fargate profile.
    FargateProfile,
    /// EKS cluster (control plane).
    Cluster,
    /// Elastic network interface left in the VPC (EKS, NAT).
    NetworkInterface,
    /// Non-default security group in the VPC (EKS cluster security group).
    SecurityGroup,
    /// NAT gateway.
    NatGateway,
    /// Elastic IP address.
    ElasticIp,
    /// Route table with its default route and subnet associations.
    RouteTable,
    /// Internet gateway (attached to the VPC).
    InternetGateway,
    /// Subnet.
    Subnet,
    /// VPC.
    Vpc,
    /// IAM role with its managed policies.
    IamRole,
    /// IAM OpenID Connect provider for an EKS cluster's issuer (IRSA).
    OidcProvider,
    /// VPC gateway endpoint (S3, for ECR layer downloads off the NAT gateway).
    VpcEndpoint,
    /// ECR pull-through cache rule (id: its repository prefix; ECR rules carry no tags).
    PullThroughCacheRule,
    /// Secrets Manager secret glrunner stored (an upstream registry credential).
    CacheSecret,
    /// Inline policy of an IAM role (id: `<role>/<policy>`; key from its role's and its name).
    RolePolicy,
    /// ECR repository a pull-through cache rule created (untagged; found by the rule's prefix).
    CacheRepository,
    /// S3 bucket of the runners' distributed cache.
    CacheBucket,
}

impl ResourceKind {
    /// Human name, e.g. "NAT gateway".
    pub fn label(self) -> &'static str {
        match self {
            Self::Addon => "EKS add-on",
            Self::AccessEntry => "EKS access entry",
            Self::FargateProfile => "Fargate profile",
            Self::Cluster => "EKS cluster",
            Self::NetworkInterface => "network interface",
            Self::SecurityGroup => "security group",
            Self::NatGateway => "NAT gateway",
            Self::ElasticIp => "Elastic IP",
            Self::RouteTable => "route table",
            Self::InternetGateway => "internet gateway",
            Self::Subnet => "subnet",
            Self::Vpc => "VPC",
            Self::IamRole => "IAM role",
            Self::OidcProvider => "IAM OIDC provider",
            Self::VpcEndpoint => "VPC endpoint",
            Self::PullThroughCacheRule => "ECR pull-through cache rule",
            Self::CacheSecret => "Secrets Manager secret",
            Self::RolePolicy => "IAM inline policy",
            Self::CacheRepository => "ECR cache repository",
            Self::CacheBucket => "S3 cache bucket",
        }
    }

    /// Whether the network provisioner (EC2) owns this kind; otherwise the cluster provisioner does.
    pub fn is_network(self) -> bool {
        matches!(
            self,
            Self::NetworkInterface
                | Self::SecurityGroup
                | Self::NatGateway
                | Self::ElasticIp
                | Self::RouteTable
                | Self::InternetGateway
                | Self::Subnet
                | Self::Vpc
                | Self::VpcEndpoint
        )
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Lifecycle state, normalised across EC2, EKS and IAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResourceState {
    /// Being created (EKS CREATING, NAT pending).
    Creating,
    /// Ready to use (ACTIVE, available, attached).
    Available,
    /// Being deleted (DELETING, NAT deleting).
    Deleting,
    /// Gone but still listed (NAT `deleted`, kept visible by AWS for about an hour).
    Deleted,
    /// Failed (CREATE_FAILED, NAT failed, DEGRADED).
    Failed,
}

impl ResourceState {
    /// Whether a resource in this state still exists for teardown purposes.
    pub fn is_present(self) -> bool {
        !matches!(self, Self::Deleted)
    }
}

/// A resource found in the backend (by tag or by name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// Kind.
    pub kind: ResourceKind,
    /// Backend id: `vpc-…`, `subnet-…`, a role or cluster name, `<cluster>/<profile>`.
    pub id: String,
    /// Logical key (the plan step that owns it), from the [`crate::spec::KEY_TAG`] tag; empty for
    /// resources glrunner did not create itself (EKS-created ENIs and security groups).
    pub key: String,
    /// ARN where the backend has one (IAM roles, clusters, Fargate profiles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// Current state.
    pub state: ResourceState,
}

impl Resource {
    /// Whether the resource still exists for apply and teardown: not gone, and not a NAT
    /// gateway in `failed` state (AWS deletes those by itself; DeleteNatGateway has nothing to do).
    pub fn exists(&self) -> bool {
        self.state.is_present()
            && !(self.kind == ResourceKind::NatGateway && self.state == ResourceState::Failed)
    }

    /// `NAT gateway nat-0abc (nat/us-east-1a)`.
    pub fn describe(&self) -> String {
        if self.key.is_empty() {
            format!("{} {}", self.kind, self.id)
        } else {
            format!("{} {} ({})", self.kind, self.id, self.key)
        }
    }
}

/// Where a route table sends 0.0.0.0/0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DefaultRoute {
    /// Through the internet gateway with this id.
    InternetGateway(String),
    /// Through the NAT gateway with this id.
    NatGateway(String),
}

/// Which AWS service may assume an IAM role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoleTrust {
    /// `eks.amazonaws.com`: the cluster role.
    EksCluster,
    /// `eks-fargate-pods.amazonaws.com`: the Fargate pod execution role.
    FargatePods,
}

impl RoleTrust {
    /// The IAM path glrunner creates the role at: the cluster role under
    /// [`crate::aws::ROLE_PATH`], the Fargate pod execution role at `/`, as EKS requires ("The
    /// role ARN can't include a path other than /": EKS User Guide, "Get started with AWS
    /// Fargate for your cluster", step 4).
    pub fn path(self) -> &'static str {
        match self {
            Self::EksCluster => crate::aws::ROLE_PATH,
            Self::FargatePods => "/",
        }
    }

    /// The trusted service principal.
    pub fn service(self) -> &'static str {
        match self {
            Self::EksCluster => "eks.amazonaws.com",
            Self::FargatePods => "eks-fargate-pods.amazonaws.com",
        }
    }
}

/// A request to create one resource, with every reference already resolved to a backend id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum CreateRequest {
    /// VPC with DNS support and hostnames enabled.
    Vpc {
        /// CIDR block.
        cidr: Ipv4Net,
    },
    /// Subnet, tagged for load balancer discovery by tier.
    Subnet {
        /// VPC id.
        vpc_id: String,
        /// Availability zone.
        az: String,
        /// CIDR block.
        cidr: Ipv4Net,
        /// Public or private.
        tier: SubnetTier,
        /// Cluster name for the `kubernetes.io/cluster/<name>=shared` tag.
        cluster_name: String,
    },
    /// Internet gateway, attached to the VPC.
    InternetGateway {
        /// VPC id.
        vpc_id: String,
    },
    /// Elastic IP for a NAT gateway.
    ElasticIp,
    /// Public NAT gateway.
    NatGateway {
        /// Public subnet id.
        subnet_id: String,
        /// Elastic IP allocation id.
        allocation_id: String,
    },
    /// Route table with a default route, associated with subnets.
    RouteTable {
        /// VPC id.
        vpc_id: String,
        /// Where 0.0.0.0/0 goes.
        default_route: DefaultRoute,
        /// Subnets to associate.
        subnet_ids: Vec<String>,
    },
    /// IAM role with a trust policy and managed policies.
    IamRole {
        /// Role name.
        name: String,
        /// Who may assume it.
        trust: RoleTrust,
        /// Managed policy ARNs to attach.
        policy_arns: Vec<String>,
        /// `aws:SourceArn` condition of the trust policy (the confused-deputy guard EKS
        /// recommends for the Fargate pod execution role), e.g.
        /// `arn:aws:eks:us-east-1:123456789012:fargateprofile/<cluster>/*`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source_arn: Option<String>,
    },
    /// EKS cluster with API (access entry) authentication, endpoint public + private.
    Cluster {
        /// Cluster name.
        name: String,
        /// Kubernetes version.
        version: String,
        /// Cluster role ARN.
        role_arn: String,
        /// Private subnet ids.
        subnet_ids: Vec<String>,
        /// CIDR blocks allowed to reach the public endpoint.
        #[serde(default = "crate::spec::open_public_access")]
        public_access_cidrs: Vec<String>,
    },
    /// Fargate profile (private subnets only).
    FargateProfile {
        /// Cluster name.
        cluster: String,
        /// Profile name.
        name: String,
        /// Pod execution role ARN.
        pod_execution_role_arn: String,
        /// Private subnet ids.
        subnet_ids: Vec<String>,
        /// Up to five selectors.
        selectors: Vec<FargateSelector>,
    },
    /// EKS managed add-on.
    Addon {
        /// Cluster name.
        cluster: String,
        /// Add-on name (`coredns`).
        name: String,
        /// Configuration values as JSON (`{"computeType":"Fargate"}`).
        configuration: String,
    },
    /// Access entry plus an associated cluster-scoped access policy.
    AccessEntry {
        /// Cluster name.
        cluster: String,
        /// IAM principal ARN.
        principal_arn: String,
        /// Access policy ARN (cluster admin).
        policy_arn: String,
    },
    /// IAM OIDC provider for the issuer the cluster's DescribeCluster returns
    /// (`cluster.identity.oidc.issuer`), with the client id `sts.amazonaws.com`.
    OidcProvider {
        /// Cluster name.
        cluster: String,
    },
    /// VPC gateway endpoint on route tables.
    VpcEndpoint {
        /// VPC id.
        vpc_id: String,
        /// Service name (`com.amazonaws.<region>.s3`).
        service_name: String,
        /// Route tables that get the endpoint's prefix-list route.
        route_table_ids: Vec<String>,
    },
    /// ECR pull-through cache rule.
    PullThroughCacheRule {
        /// `ecrRepositoryPrefix`.
        prefix: String,
        /// Upstream registry.
        upstream: crate::image_cache::Upstream,
        /// Secrets Manager ARN of the upstream credential.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credential_arn: Option<String>,
    },
    /// Secrets Manager secret holding an upstream credential (value redacted everywhere).
    CacheSecret {
        /// Secret name (`ecr-pullthroughcache/<stack>/<registry>`).
        name: String,
        /// The credential; never serialised.
        #[serde(skip)]
        value: crate::image_cache::Credential,
    },
    /// Inline policy on an IAM role.
    RolePolicy {
        /// Role name.
        role: String,
        /// Policy name.
        name: String,
        /// Policy document (JSON).
        document: String,
    },
    /// S3 bucket for the runner cache: tagged, public access blocked, SSE-S3, objects expiring,
    /// TLS-only policy ([`crate::cache`]).
    CacheBucket {
        /// Bucket name ([`crate::cache::bucket_name`]).
        name: String,
        /// Days after which objects expire.
        expire_days: u16,
    },
    /// IAM role one Kubernetes ServiceAccount assumes through the cluster's OIDC provider
    /// (IRSA), with one inline policy. Discovered and deleted as an [`ResourceKind::IamRole`].
    IrsaRole {
        /// Role name.
        name: String,
        /// Trust policy JSON ([`crate::oidc::irsa_trust_policy`]).
        trust_policy: String,
        /// The inline policy `(name, JSON)`, if any (the cache role's bucket policy).
        inline_policy: Option<(String, String)>,
        /// Managed policies attached to it (a job role's `--job-role` policies).
        policy_arns: Vec<String>,
    },
}

impl CreateRequest {
    /// Ids and ARNs of other resources this request names (a subnet's VPC, a NAT's EIP, a
    /// cluster's role and subnets...): what eventual consistency may not show yet.
    pub fn referenced_ids(&self) -> Vec<&str> {
        match self {
            Self::Vpc { .. }
            | Self::ElasticIp
            | Self::IamRole { .. }
            | Self::CacheSecret { .. } => Vec::new(),
            // A secret made moments ago: ECR may answer SecretNotFoundException for a while.
            Self::PullThroughCacheRule { credential_arn, .. } => {
                credential_arn.iter().map(String::as_str).collect()
            }
            Self::RolePolicy { role, .. } => vec![role],
            Self::VpcEndpoint {
                vpc_id,
                route_table_ids,
                ..
            } => {
                let mut ids = vec![vpc_id.as_str()];
                ids.extend(route_table_ids.iter().map(String::as_str));
                ids
            }
            Self::CacheBucket { .. } | Self::IrsaRole { .. } => Vec::new(),
            Self::Subnet { vpc_id, .. } | Self::InternetGateway { vpc_id } => vec![vpc_id],
            Self::NatGateway {
                subnet_id,
                allocation_id,
            } => vec![subnet_id, allocation_id],
            Self::RouteTable {
                vpc_id,
                default_route,
                subnet_ids,
            } => {
                let target = match default_route {
                    DefaultRoute::InternetGateway(id) | DefaultRoute::NatGateway(id) => id,
                };
                let mut ids = vec![vpc_id.as_str(), target.as_str()];
                ids.extend(subnet_ids.iter().map(String::as_str));
                ids
            }
            Self::Cluster {
                role_arn,
                subnet_ids,
                ..
            } => {
                let mut ids = vec![role_arn.as_str()];
                ids.extend(subnet_ids.iter().map(String::as_str));
                ids
            }
            Self::FargateProfile {
                cluster,
                pod_execution_role_arn,
                subnet_ids,
                ..
            } => {
                let mut ids = vec![cluster.as_str(), pod_execution_role_arn.as_str()];
                ids.extend(subnet_ids.iter().map(String::as_str));
                ids
            }
            Self::Addon { cluster, .. }
            | Self::AccessEntry { cluster, .. }
            | Self::OidcProvider { cluster } => vec![cluster],
        }
    }

    /// The id the resource will have when the backend derives it from the request (names of
    /// roles and clusters, `<cluster>/<name>` of profiles, add-ons and access entries); `None`
    /// for EC2 resources, whose ids AWS assigns.
    pub fn known_id(&self) -> Option<String> {
        match self {
            Self::IamRole { name, .. }
            | Self::Cluster { name, .. }
            | Self::CacheBucket { name, .. }
            | Self::IrsaRole { name, .. } => Some(name.clone()),
            Self::FargateProfile { cluster, name, .. } | Self::Addon { cluster, name, .. } => {
                Some(format!("{cluster}/{name}"))
            }
            Self::AccessEntry {
                cluster,
                principal_arn,
                ..
            } => Some(format!("{cluster}/{principal_arn}")),
            Self::PullThroughCacheRule { prefix, .. } => Some(prefix.clone()),
            Self::CacheSecret { name, .. } => Some(name.clone()),
            Self::RolePolicy { role, name, .. } => Some(format!("{role}/{name}")),
            _ => None,
        }
    }

    /// The kind this request creates.
    pub fn kind(&self) -> ResourceKind {
        match self {
            Self::Vpc { .. } => ResourceKind::Vpc,
            Self::Subnet { .. } => ResourceKind::Subnet,
            Self::InternetGateway { .. } => ResourceKind::InternetGateway,
            Self::ElasticIp => ResourceKind::ElasticIp,
            Self::NatGateway { .. } => ResourceKind::NatGateway,
            Self::RouteTable { .. } => ResourceKind::RouteTable,
            Self::IamRole { .. } => ResourceKind::IamRole,
            Self::Cluster { .. } => ResourceKind::Cluster,
            Self::FargateProfile { .. } => ResourceKind::FargateProfile,
            Self::Addon { .. } => ResourceKind::Addon,
            Self::AccessEntry { .. } => ResourceKind::AccessEntry,
            Self::OidcProvider { .. } => ResourceKind::OidcProvider,
            Self::VpcEndpoint { .. } => ResourceKind::VpcEndpoint,
            Self::PullThroughCacheRule { .. } => ResourceKind::PullThroughCacheRule,
            Self::CacheSecret { .. } => ResourceKind::CacheSecret,
            Self::RolePolicy { .. } => ResourceKind::RolePolicy,
            Self::CacheBucket { .. } => ResourceKind::CacheBucket,
            Self::IrsaRole { .. } => ResourceKind::IamRole,
        }
    }
}

/// Tags applied to a created resource: stack, key, `Name` and the user's extra tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceTags {
    /// Stack name ([`crate::spec::STACK_TAG`]).
    pub stack: String,
    /// Logical key ([`crate::spec::KEY_TAG`]).
    pub key: String,
    /// Extra user tags.
    pub extra: BTreeMap<String, String>,
}

impl ResourceTags {
    /// All tags as pairs, including `Name = <stack>-<key with / as ->`.
    pub fn pairs(&self) -> BTreeMap<String, String> {
        let mut tags = self.extra.clone();
        tags.insert(crate::spec::STACK_TAG.to_string(), self.stack.clone());
        tags.insert(crate::spec::KEY_TAG.to_string(), self.key.clone());
        tags.insert(
            "Name".to_string(),
            format!("{}-{}", self.stack, self.key.replace('/', "-")),
        );
        tags
    }
}

/// One availability zone: its name (which differs per account) and its zone ID (which does not).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AvailabilityZone {
    /// Zone name, e.g. `us-east-1a`.
    pub name: String,
    /// Zone ID, e.g. `use1-az6`: the same physical zone in every account.
    pub id: String,
}

impl AvailabilityZone {
    /// A zone from its name and ID.
    pub fn new(name: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            id: id.into(),
        }
    }
}

/// What `ClusterProvisioner::cluster_access` returns: what a kubeconfig needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterAccess {
    /// Cluster name.
    pub name: String,
    /// Cluster ARN.
    pub arn: String,
    /// API server endpoint URL.
    pub endpoint: String,
    /// Base64 PEM of the cluster CA, as EKS returns it.
    pub certificate_authority: String,
    /// The cluster's Fargate profiles and their selectors (which namespaces run on Fargate).
    #[serde(default)]
    pub fargate_profiles: Vec<FargateProfileSelectors>,
    /// The cluster's OpenID Connect issuer URL (`cluster.identity.oidc.issuer` of
    /// DescribeCluster), e.g. `https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE`: what an IAM
    /// OIDC provider and IRSA trust policies name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_issuer: Option<String>,
}

/// One Fargate profile of a cluster and its selectors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FargateProfileSelectors {
    /// Profile name.
    pub name: String,
    /// Its selectors.
    pub selectors: Vec<crate::spec::FargateSelector>,
}
