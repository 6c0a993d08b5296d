//! The provisioning plan: a DAG of described steps, rendered as a tree or JSON before anything runs.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::resource::{
    AvailabilityZone, CreateRequest, DefaultRoute, Resource, ResourceKind, RoleTrust,
};
use crate::spec::{FargateSelector, NatMode, StackSpec, SubnetTier, partition};

/// Managed policies of the cluster role (as the eks Terraform module and eksctl attach them).
pub const CLUSTER_ROLE_POLICIES: &[&str] =
    &["AmazonEKSClusterPolicy", "AmazonEKSVPCResourceController"];
/// Managed policy of the Fargate pod execution role.
pub const FARGATE_ROLE_POLICIES: &[&str] = &["AmazonEKSFargatePodExecutionRolePolicy"];
/// EKS access policy granting cluster-admin.
pub const CLUSTER_ADMIN_POLICY: &str = "AmazonEKSClusterAdminPolicy";
/// CoreDNS add-on configuration that schedules it on Fargate.
pub const COREDNS_FARGATE_CONFIG: &str = r#"{"computeType":"Fargate"}"#;

/// ARN of an AWS managed IAM policy in a partition: `arn:<partition>:iam::aws:policy/<name>`.
pub fn managed_policy_arn(partition: &str, name: &str) -> String {
    format!("arn:{partition}:iam::aws:policy/{name}")
}

/// ARN of an EKS access policy in a partition.
pub fn access_policy_arn(partition: &str, name: &str) -> String {
    format!("arn:{partition}:eks::aws:cluster-access-policy/{name}")
}

/// Zone IDs EKS refuses for control planes (UnsupportedAvailabilityZoneException), from the
/// EKS user guide. Keyed by ID: names map to IDs differently in every account.
pub const EKS_UNSUPPORTED_ZONE_IDS: &[&str] = &["use1-az3", "usw1-az2", "cac1-az3"];

/// A reference to another step's resource, resolved at apply time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRef(pub String);

/// What a step creates, with references to the steps it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum StepAction {
    /// VPC.
    Vpc {
        /// CIDR block.
        cidr: ipnet::Ipv4Net,
    },
    /// Subnet in the VPC.
    Subnet {
        /// VPC step.
        vpc: StepRef,
        /// Availability zone.
        az: String,
        /// CIDR block.
        cidr: ipnet::Ipv4Net,
        /// Tier.
        tier: SubnetTier,
    },
    /// Internet gateway attached to the VPC.
    InternetGateway {
        /// VPC step.
        vpc: StepRef,
    },
    /// Elastic IP.
    ElasticIp,
    /// NAT gateway.
    NatGateway {
        /// Public subnet step.
        subnet: StepRef,
        /// Elastic IP step.
        eip: StepRef,
    },
    /// Route table.
    RouteTable {
        /// VPC step.
        vpc: StepRef,
        /// Internet gateway or NAT step for 0.0.0.0/0.
        target: StepRef,
        /// Whether `target` is a NAT gateway (else an internet gateway).
        via_nat: bool,
        /// Subnet steps to associate.
        subnets: Vec<StepRef>,
    },
    /// IAM role.
    IamRole {
        /// Role name.
        name: String,
        /// Trusted service.
        trust: RoleTrust,
        /// Managed policies.
        policy_arns: Vec<String>,
        /// For the Fargate pod execution role: the cluster whose Fargate profiles alone may
        /// assume it (an `aws:SourceArn` condition, completed with the caller's account).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source_cluster: Option<String>,
    },
    /// EKS cluster.
    Cluster {
        /// Cluster name.
        name: String,
        /// Kubernetes version.
        version: String,
        /// Cluster role step.
        role: StepRef,
        /// Private subnet steps.
        subnets: Vec<StepRef>,
        /// CIDR blocks allowed to reach the public endpoint.
        #[serde(default = "crate::spec::open_public_access")]
        public_access_cidrs: Vec<String>,
    },
    /// Fargate profile.
    FargateProfile {
        /// Cluster step.
        cluster: StepRef,
        /// Profile name.
        name: String,
        /// Pod execution role step.
        role: StepRef,
        /// Private subnet steps.
        subnets: Vec<StepRef>,
        /// Selectors.
        selectors: Vec<FargateSelector>,
    },
    /// Managed add-on.
    Addon {
        /// Cluster step.
        cluster: StepRef,
        /// Add-on name.
        name: String,
        /// Configuration JSON.
        configuration: String,
    },
    /// Access entry with an access policy, for the caller or a named principal.
    AccessEntry {
        /// Cluster step.
        cluster: StepRef,
        /// Access policy ARN.
        policy_arn: String,
        /// IAM role or user ARN; `None` for the caller's own IAM principal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        principal: Option<String>,
    },
    /// IAM OIDC provider for the cluster's issuer.
    OidcProvider {
        /// Cluster step.
        cluster: StepRef,
    },
    /// VPC gateway endpoint on route tables.
    VpcEndpoint {
        /// VPC step.
        vpc: StepRef,
        /// Service name.
        service: String,
        /// Route table steps.
        route_tables: Vec<StepRef>,
    },
    /// ECR pull-through cache rule.
    PullThroughCacheRule {
        /// Repository prefix.
        prefix: String,
        /// Upstream registry.
        upstream: crate::image_cache::Upstream,
        /// Where its upstream credential is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credential: Option<RuleCredential>,
    },
    /// Secrets Manager secret with an upstream credential.
    CacheSecret {
        /// Secret name.
        name: String,
        /// The credential (never serialised: a plan printed or read back has none).
        #[serde(skip)]
        value: crate::image_cache::Credential,
    },
    /// Inline policy of a role: the pull-through cache actions on the rules' repositories.
    RolePolicy {
        /// Role step.
        role: StepRef,
        /// Policy name.
        name: String,
        /// Repository prefixes the policy covers.
        prefixes: Vec<String>,
    },
    /// The runner cache's S3 bucket, named for the stack, the caller's account and the Region.
    CacheBucket {
        /// Stack name.
        stack: String,
        /// Days after which objects expire.
        expire_days: u16,
    },
    /// A role one ServiceAccount assumes through the OIDC provider, limited to the bucket.
    CacheRole {
        /// Role name.
        name: String,
        /// OIDC provider step.
        provider: StepRef,
        /// Bucket step.
        bucket: StepRef,
        /// The ServiceAccount's namespace.
        namespace: String,
        /// The ServiceAccount.
        service_account: String,
    },
    /// A job role (`--job-role`): the job ServiceAccount assumes it through the OIDC provider;
    /// the user's managed policies are attached.
    JobRole {
        /// Role name ([`crate::job_roles::role_name`]).
        name: String,
        /// OIDC provider step.
        provider: StepRef,
        /// The ServiceAccount's namespace.
        namespace: String,
        /// The job ServiceAccount.
        service_account: String,
        /// Managed policy ARNs.
        policy_arns: Vec<String>,
    },
}

/// Where a pull-through cache rule's upstream credential is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleCredential {
    /// A secret the user made.
    SecretArn(String),
    /// The secret of this step.
    Step(StepRef),
}

/// Whether a step will create its resource or found it already there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum StepStatus {
    /// Nothing with this key exists: apply creates it.
    Create,
    /// A resource with this key exists: apply reuses it.
    Exists {
        /// Its id.
        id: String,
    },
}

/// One described step of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Unique key; also the value of the resource's `glrunner.io/key` tag.
    pub key: String,
    /// Kind created.
    pub kind: ResourceKind,
    /// Imperative description, e.g. `create NAT gateway in us-east-1a`.
    pub description: String,
    /// Keys of the steps that must finish first.
    pub depends_on: Vec<String>,
    /// What to create.
    pub action: StepAction,
    /// Filled by [`Plan::mark_existing`].
    pub status: StepStatus,
}

/// A DAG of steps for one stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Stack name.
    pub stack: String,
    /// Region.
    pub region: String,
    /// Steps in a topological order.
    pub steps: Vec<Step>,
    /// Things worth knowing before applying (an endpoint open to the internet...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Chooses the AZs for the stack: the first `count` (sorted by name) that EKS accepts for
/// control planes, judged by zone ID.
pub fn choose_azs(available: &[AvailabilityZone], count: u8) -> Result<Vec<String>> {
    let mut usable: Vec<&String> = available
        .iter()
        .filter(|az| !EKS_UNSUPPORTED_ZONE_IDS.contains(&az.id.as_str()))
        .map(|az| &az.name)
        .collect();
    usable.sort();
    usable.dedup();
    if usable.len() < count as usize {
        return Err(Error::invalid(
            "azs",
            format!(
                "{count} availability zones requested but the region offers {} usable ones ({}); lower --azs",
                usable.len(),
                usable
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(usable.into_iter().take(count as usize).cloned().collect())
}

/// Name of the cluster IAM role of a stack in a region. IAM is global: the region keeps the
/// same stack name in two regions from sharing (and tearing down) one role. At most 55
/// characters (stack 28 + region 14 + suffix), within IAM's 64.
pub fn cluster_role_name(stack: &str, region: &str) -> String {
    format!("{stack}-{region}-eks-cluster")
}

/// Name of the Fargate pod execution role of a stack in a region (at most 56 characters).
pub fn fargate_role_name(stack: &str, region: &str) -> String {
    format!("{stack}-{region}-fargate-pods")
}

/// Key of the access entry step of an IAM principal: an access entry belongs to a principal,
/// so two principals that provision one stack get one entry each.
pub fn access_entry_key(principal_arn: &str) -> String {
    format!("access/principal/{principal_arn}")
}

/// Key of the caller's access entry step before [`Plan::bind_caller`] names the caller.
pub const CALLER_ACCESS_KEY: &str = "access/caller";

/// Name of the stack's single Fargate profile.
pub fn fargate_profile_name(stack: &str) -> String {
    format!("{stack}-fargate")
}

fn r(key: impl Into<String>) -> StepRef {
    StepRef(key.into())
}

impl Plan {
    /// Builds the plan for a validated spec in the given availability zones.
    ///
    /// Shape: the VPC, roles and EIPs start at once; subnets and the IGW follow the VPC; the
    /// cluster waits only for the private subnets and its role, so the NAT and routes finish
    /// while the control plane is created. The one Fargate profile (kube-system + runner
    /// namespace) follows the cluster and the private route tables; CoreDNS follows the profile.
    pub fn build(spec: &StackSpec, azs: &[String]) -> Result<Self> {
        spec.validate()?;
        if azs.len() != spec.network.az_count as usize {
            return Err(Error::invalid(
                "azs",
                format!(
                    "expected {} availability zones, got {}",
                    spec.network.az_count,
                    azs.len()
                ),
            ));
        }
        let stack = spec.stack.as_str();
        let net = &spec.network;
        let cluster = &spec.cluster;
        let mut steps = Vec::new();
        let mut add = |key: String, kind, description: String, depends_on: Vec<String>, action| {
            steps.push(Step {
                key,
                kind,
                description,
                depends_on,
                action,
                status: StepStatus::Create,
            });
        };

        add(
            "vpc".into(),
            ResourceKind::Vpc,
            format!("create VPC {} with DNS support and hostnames", net.vpc_cidr),
            vec![],
            StepAction::Vpc { cidr: net.vpc_cidr },
        );
        for (i, az) in azs.iter().enumerate() {
            for tier in [SubnetTier::Public, SubnetTier::Private] {
                let cidr = net.subnet_cidr(tier, i);
                add(
                    format!("subnet/{tier}/{az}"),
                    ResourceKind::Subnet,
                    format!("create {tier} subnet {cidr} in {az}"),
                    vec!["vpc".into()],
                    StepAction::Subnet {
                        vpc: r("vpc"),
                        az: az.clone(),
                        cidr,
                        tier,
                    },
                );
            }
        }
        add(
            "igw".into(),
            ResourceKind::InternetGateway,
            "create internet gateway and attach it to the VPC".into(),
            vec!["vpc".into()],
            StepAction::InternetGateway { vpc: r("vpc") },
        );
        let nat_azs: Vec<&String> = match net.nat {
            NatMode::Single => azs.iter().take(1).collect(),
            NatMode::PerAz => azs.iter().collect(),
        };
        for az in &nat_azs {
            add(
                format!("eip/{az}"),
                ResourceKind::ElasticIp,
                format!("allocate Elastic IP for the NAT gateway in {az}"),
                vec![],
                StepAction::ElasticIp,
            );
            add(
                format!("nat/{az}"),
                ResourceKind::NatGateway,
                format!("create NAT gateway in {az} and wait until available (~1-3 min)"),
                // The IGW must be attached before a public NAT gateway can route.
                vec![
                    format!("subnet/public/{az}"),
                    format!("eip/{az}"),
                    "igw".into(),
                ],
                StepAction::NatGateway {
                    subnet: r(format!("subnet/public/{az}")),
                    eip: r(format!("eip/{az}")),
                },
            );
        }
        let public_subnets: Vec<String> =
            azs.iter().map(|az| format!("subnet/public/{az}")).collect();
        let mut deps = vec!["vpc".to_string(), "igw".to_string()];
        deps.extend(public_subnets.iter().cloned());
        add(
            "rt/public".into(),
            ResourceKind::RouteTable,
            format!(
                "create public route table (0.0.0.0/0 via internet gateway) for {} subnets",
                public_subnets.len()
            ),
            deps,
            StepAction::RouteTable {
                vpc: r("vpc"),
                target: r("igw"),
                via_nat: false,
                subnets: public_subnets.iter().cloned().map(StepRef).collect(),
            },
        );
        let mut private_rt_keys = Vec::new();
        match net.nat {
            NatMode::Single => {
                let nat = format!("nat/{}", azs[0]);
                let subnets: Vec<String> = azs
                    .iter()
                    .map(|az| format!("subnet/private/{az}"))
                    .collect();
                let mut deps = vec!["vpc".to_string(), nat.clone()];
                deps.extend(subnets.iter().cloned());
                add(
                    "rt/private".into(),
                    ResourceKind::RouteTable,
                    format!(
                        "create private route table (0.0.0.0/0 via NAT in {}) for {} subnets",
                        azs[0],
                        subnets.len()
                    ),
                    deps,
                    StepAction::RouteTable {
                        vpc: r("vpc"),
                        target: r(nat),
                        via_nat: true,
                        subnets: subnets.into_iter().map(StepRef).collect(),
                    },
                );
                private_rt_keys.push("rt/private".to_string());
            }
            NatMode::PerAz => {
                for az in azs {
                    let key = format!("rt/private/{az}");
                    let nat = format!("nat/{az}");
                    let subnet = format!("subnet/private/{az}");
                    add(
                        key.clone(),
                        ResourceKind::RouteTable,
                        format!("create private route table for {az} (0.0.0.0/0 via NAT in {az})"),
                        vec!["vpc".into(), nat.clone(), subnet.clone()],
                        StepAction::RouteTable {
                            vpc: r("vpc"),
                            target: r(nat),
                            via_nat: true,
                            subnets: vec![r(subnet)],
                        },
                    );
                    private_rt_keys.push(key);
                }
            }
        }
        let partition = partition(&spec.region);
        let cluster_role = cluster_role_name(stack, &spec.region);
        add(
            "role/cluster".into(),
            ResourceKind::IamRole,
            format!("create IAM role {cluster_role} for the EKS control plane"),
            vec![],
            StepAction::IamRole {
                name: cluster_role,
                trust: RoleTrust::EksCluster,
                policy_arns: CLUSTER_ROLE_POLICIES
                    .iter()
                    .map(|name| managed_policy_arn(partition, name))
                    .collect(),
                source_cluster: None,
            },
        );
        let fargate_role = fargate_role_name(stack, &spec.region);
        add(
            "role/fargate".into(),
            ResourceKind::IamRole,
            format!(
                "create IAM role {fargate_role} for Fargate pod execution (assumable only by the Fargate profiles of cluster {})",
                cluster.name
            ),
            vec![],
            StepAction::IamRole {
                name: fargate_role,
                trust: RoleTrust::FargatePods,
                policy_arns: FARGATE_ROLE_POLICIES
                    .iter()
                    .map(|name| managed_policy_arn(partition, name))
                    .collect(),
                source_cluster: Some(cluster.name.clone()),
            },
        );
        let private_subnets: Vec<String> = azs
            .iter()
            .map(|az| format!("subnet/private/{az}"))
            .collect();
        let mut deps = vec!["role/cluster".to_string()];
        deps.extend(private_subnets.iter().cloned());
        add(
            "cluster".into(),
            ResourceKind::Cluster,
            format!(
                "create EKS cluster {} (Kubernetes {}, access entries, private subnets) and wait until ACTIVE (~10-15 min)",
                cluster.name, cluster.kubernetes_version
            ),
            deps,
            StepAction::Cluster {
                name: cluster.name.clone(),
                version: cluster.kubernetes_version.clone(),
                role: r("role/cluster"),
                subnets: private_subnets.iter().cloned().map(StepRef).collect(),
                public_access_cidrs: cluster
                    .public_access_cidrs
                    .iter()
                    .map(|c| c.to_string())
                    .collect(),
            },
        );
        add(
            CALLER_ACCESS_KEY.into(),
            ResourceKind::AccessEntry,
            "grant the caller's IAM role or user cluster-admin through an EKS access entry".into(),
            vec!["cluster".into()],
            StepAction::AccessEntry {
                cluster: r("cluster"),
                policy_arn: access_policy_arn(partition, CLUSTER_ADMIN_POLICY),
                principal: None,
            },
        );
        let mut principals = cluster.admin_principals.clone();
        principals.sort();
        principals.dedup();
        for principal in principals {
            add(
                access_entry_key(&principal),
                ResourceKind::AccessEntry,
                format!("grant {principal} cluster-admin through an EKS access entry"),
                vec!["cluster".into()],
                StepAction::AccessEntry {
                    cluster: r("cluster"),
                    policy_arn: access_policy_arn(partition, CLUSTER_ADMIN_POLICY),
                    principal: Some(principal),
                },
            );
        }
        let selectors = cluster.fargate_selectors();
        let profile = fargate_profile_name(stack);
        let mut deps = vec!["cluster".to_string(), "role/fargate".to_string()];
        deps.extend(private_rt_keys.iter().cloned());
        add(
            "fargate-profile".into(),
            ResourceKind::FargateProfile,
            format!(
                "create Fargate profile {profile} for namespaces {} and wait until ACTIVE (~2-5 min)",
                selectors
                    .iter()
                    .map(|s| s.namespace.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            deps,
            StepAction::FargateProfile {
                cluster: r("cluster"),
                name: profile,
                role: r("role/fargate"),
                subnets: private_subnets.into_iter().map(StepRef).collect(),
                selectors,
            },
        );
        add(
            "addon/coredns".into(),
            ResourceKind::Addon,
            "install the coredns add-on on Fargate ({\"computeType\":\"Fargate\"}) and wait until ACTIVE (~1 min)".into(),
            vec!["fargate-profile".into()],
            StepAction::Addon { cluster: r("cluster"), name: "coredns".into(), configuration: COREDNS_FARGATE_CONFIG.into() },
        );
        add(
            crate::oidc::OIDC_PROVIDER_KEY.into(),
            ResourceKind::OidcProvider,
            format!(
                "create the IAM OIDC provider for the issuer of cluster {} (client id {}), for IAM roles for service accounts",
                cluster.name,
                crate::oidc::STS_AUDIENCE
            ),
            vec!["cluster".into()],
            StepAction::OidcProvider {
                cluster: r("cluster"),
            },
        );
        crate::image_cache::plan_steps(spec, &private_rt_keys, &mut add);
        if let Some(cache) = &spec.cache {
            add(
                crate::cache::CACHE_BUCKET_KEY.into(),
                ResourceKind::CacheBucket,
                format!(
                    "create S3 bucket {stack}-<account>-{}-cache for the runner cache (public access blocked, SSE-S3, objects expire after {} days, TLS only)",
                    spec.region, cache.expire_days
                ),
                vec![],
                StepAction::CacheBucket {
                    stack: stack.to_string(),
                    expire_days: cache.expire_days,
                },
            );
            let role = crate::cache::cache_role_name(stack, &spec.region);
            add(
                crate::cache::CACHE_ROLE_KEY.into(),
                ResourceKind::IamRole,
                format!(
                    "create IAM role {role} for ServiceAccount {}/{} (IRSA, audience {}) limited to the cache bucket",
                    cluster.runner_namespace,
                    cache.manager_service_account,
                    crate::oidc::STS_AUDIENCE
                ),
                vec![
                    crate::oidc::OIDC_PROVIDER_KEY.into(),
                    crate::cache::CACHE_BUCKET_KEY.into(),
                ],
                StepAction::CacheRole {
                    name: role,
                    provider: r(crate::oidc::OIDC_PROVIDER_KEY),
                    bucket: r(crate::cache::CACHE_BUCKET_KEY),
                    namespace: cluster.runner_namespace.clone(),
                    service_account: cache.manager_service_account.clone(),
                },
            );
        }
        for job in &spec.job_roles {
            let role = crate::job_roles::role_name(stack, &spec.region, &job.name);
            add(
                crate::job_roles::key(&job.name),
                ResourceKind::IamRole,
                format!(
                    "create IAM role {role} for job ServiceAccount {}/{} (IRSA, audience {}) with {}",
                    cluster.runner_namespace,
                    job.name,
                    crate::oidc::STS_AUDIENCE,
                    job.policy_arns.join(", ")
                ),
                vec![crate::oidc::OIDC_PROVIDER_KEY.into()],
                StepAction::JobRole {
                    name: role,
                    provider: r(crate::oidc::OIDC_PROVIDER_KEY),
                    namespace: cluster.runner_namespace.clone(),
                    service_account: job.name.clone(),
                    policy_arns: job.policy_arns.clone(),
                },
            );
        }
        let mut warnings = Vec::new();
        if cluster.public_endpoint_is_open() {
            warnings.push(
                "the cluster's public API endpoint is open to 0.0.0.0/0 (every address on the internet; access still needs IAM credentials); restrict it with --public-access-cidrs".to_string(),
            );
        }
        let plan = Self {
            stack: stack.to_string(),
            region: spec.region.clone(),
            steps,
            warnings,
        };
        plan.check_acyclic()?;
        Ok(plan)
    }

    /// Names the caller in its access entry step: the step becomes
    /// [`access_entry_key`]`(caller_arn)`, the key its entry is tagged with, so another caller
    /// of the same stack gets a step (and an entry) of its own instead of reusing this one's.
    /// When the caller is also one of the named admin principals, its step already exists and
    /// the caller step goes away.
    pub fn bind_caller(&mut self, caller_arn: &str) {
        let key = access_entry_key(caller_arn);
        let is_caller = |s: &Step| {
            matches!(
                s.action,
                StepAction::AccessEntry {
                    principal: None,
                    ..
                }
            )
        };
        if self.step(&key).is_some() {
            self.steps.retain(|s| !is_caller(s));
            return;
        }
        for step in self.steps.iter_mut().filter(|s| is_caller(s)) {
            step.key = key.clone();
            step.description =
                format!("grant the caller {caller_arn} cluster-admin through an EKS access entry");
            if let StepAction::AccessEntry { principal, .. } = &mut step.action {
                *principal = Some(caller_arn.to_string());
            }
        }
    }

    /// Whether the plan still has a caller access entry step that [`Plan::bind_caller`] has not named.
    pub fn needs_caller(&self) -> bool {
        self.steps.iter().any(|s| {
            matches!(
                s.action,
                StepAction::AccessEntry {
                    principal: None,
                    ..
                }
            )
        })
    }

    /// Marks the steps whose resources already exist (by `glrunner.io/key`).
    pub fn mark_existing(&mut self, existing: &HashMap<String, Resource>) {
        for step in &mut self.steps {
            step.status = match existing.get(&step.key) {
                Some(found) => StepStatus::Exists {
                    id: found.id.clone(),
                },
                None => StepStatus::Create,
            };
        }
    }

    /// Steps grouped into waves: every step of a wave depends only on earlier waves.
    pub fn waves(&self) -> Vec<Vec<&Step>> {
        let mut level: HashMap<&str, usize> = HashMap::new();
        for step in &self.steps {
            let l = step
                .depends_on
                .iter()
                .map(|d| level.get(d.as_str()).map_or(0, |l| l + 1))
                .max()
                .unwrap_or(0);
            level.insert(&step.key, l);
        }
        let mut waves: Vec<Vec<&Step>> = Vec::new();
        for step in &self.steps {
            let l = level[step.key.as_str()];
            if waves.len() <= l {
                waves.resize_with(l + 1, Vec::new);
            }
            waves[l].push(step);
        }
        waves
    }

    /// The plan as a tree of waves, for people.
    pub fn render_tree(&self) -> String {
        let mut out = String::new();
        let waves = self.waves();
        let creates = self
            .steps
            .iter()
            .filter(|s| s.status == StepStatus::Create)
            .count();
        let _ = writeln!(
            out,
            "plan for stack {} in {}: {} steps in {} waves, {} to create, {} already exist",
            self.stack,
            self.region,
            self.steps.len(),
            waves.len(),
            creates,
            self.steps.len() - creates
        );
        for (i, wave) in waves.iter().enumerate() {
            let last_wave = i + 1 == waves.len();
            let _ = writeln!(
                out,
                "{} wave {}{}",
                if last_wave { "└─" } else { "├─" },
                i + 1,
                if i == 0 { " (starts at once)" } else { "" }
            );
            for (j, step) in wave.iter().enumerate() {
                let stem = if last_wave { "   " } else { "│  " };
                let branch = if j + 1 == wave.len() {
                    "└─"
                } else {
                    "├─"
                };
                let status = match &step.status {
                    StepStatus::Create => String::new(),
                    StepStatus::Exists { id } => format!(" [exists: {id}]"),
                };
                let after = if step.depends_on.is_empty() {
                    String::new()
                } else {
                    format!("  (after {})", step.depends_on.join(", "))
                };
                let _ = writeln!(out, "{stem}{branch} {}{status}{after}", step.description);
            }
        }
        for warning in &self.warnings {
            let _ = writeln!(out, "warning: {warning}");
        }
        out
    }

    /// The step with this key.
    pub fn step(&self, key: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.key == key)
    }

    fn check_acyclic(&self) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        for step in &self.steps {
            for dep in &step.depends_on {
                if !seen.contains(dep.as_str()) {
                    return Err(Error::invalid(
                        "plan",
                        format!(
                            "step {} depends on {dep}, which is not an earlier step",
                            step.key
                        ),
                    ));
                }
            }
            if !seen.insert(step.key.as_str()) {
                return Err(Error::invalid(
                    "plan",
                    format!("duplicate step key {}", step.key),
                ));
            }
        }
        Ok(())
    }
}

impl StepAction {
    /// Resolves step references into a concrete [`CreateRequest`].
    ///
    /// `caller_arn` is the caller's IAM principal (its account completes the Fargate role's
    /// `aws:SourceArn` condition); `region` is the stack's.
    pub fn resolve(
        &self,
        done: &HashMap<String, Resource>,
        caller_arn: &str,
        cluster_name: &str,
        region: &str,
    ) -> Result<CreateRequest> {
        let id = |r: &StepRef| -> Result<String> {
            done.get(&r.0).map(|res| res.id.clone()).ok_or_else(|| {
                Error::invalid("plan", format!("step {} has not produced a resource", r.0))
            })
        };
        let arn = |r: &StepRef| -> Result<String> {
            done.get(&r.0)
                .and_then(|res| res.arn.clone())
                .ok_or_else(|| {
                    Error::invalid(
                        "plan",
                        format!("step {} has not produced a resource with an ARN", r.0),
                    )
                })
        };
        let ids = |refs: &[StepRef]| refs.iter().map(id).collect::<Result<Vec<_>>>();
        // The trust of a role one ServiceAccount assumes through the OIDC provider (IRSA).
        let irsa_trust = |provider: &StepRef, namespace: &str, service_account: &str| {
            crate::oidc::irsa_trust_policy(
                &arn(provider)?,
                &crate::oidc::service_account_subject(namespace, service_account),
            )
        };
        Ok(match self {
            Self::Vpc { cidr } => CreateRequest::Vpc { cidr: *cidr },
            Self::Subnet {
                vpc,
                az,
                cidr,
                tier,
            } => CreateRequest::Subnet {
                vpc_id: id(vpc)?,
                az: az.clone(),
                cidr: *cidr,
                tier: *tier,
                cluster_name: cluster_name.to_string(),
            },
            Self::InternetGateway { vpc } => CreateRequest::InternetGateway { vpc_id: id(vpc)? },
            Self::ElasticIp => CreateRequest::ElasticIp,
            Self::NatGateway { subnet, eip } => CreateRequest::NatGateway {
                subnet_id: id(subnet)?,
                allocation_id: id(eip)?,
            },
            Self::RouteTable {
                vpc,
                target,
                via_nat,
                subnets,
            } => CreateRequest::RouteTable {
                vpc_id: id(vpc)?,
                default_route: if *via_nat {
                    DefaultRoute::NatGateway(id(target)?)
                } else {
                    DefaultRoute::InternetGateway(id(target)?)
                },
                subnet_ids: ids(subnets)?,
            },
            Self::IamRole {
                name,
                trust,
                policy_arns,
                source_cluster,
            } => CreateRequest::IamRole {
                name: name.clone(),
                trust: *trust,
                policy_arns: policy_arns.clone(),
                source_arn: match (source_cluster, account_of(caller_arn)) {
                    (Some(cluster), Some(account)) => Some(format!(
                        "arn:{}:eks:{region}:{account}:fargateprofile/{cluster}/*",
                        partition(region)
                    )),
                    _ => None,
                },
            },
            Self::Cluster {
                name,
                version,
                role,
                subnets,
                public_access_cidrs,
            } => CreateRequest::Cluster {
                name: name.clone(),
                version: version.clone(),
                role_arn: arn(role)?,
                subnet_ids: ids(subnets)?,
                public_access_cidrs: public_access_cidrs.clone(),
            },
            Self::FargateProfile {
                cluster,
                name,
                role,
                subnets,
                selectors,
            } => CreateRequest::FargateProfile {
                cluster: id(cluster)?,
                name: name.clone(),
                pod_execution_role_arn: arn(role)?,
                subnet_ids: ids(subnets)?,
                selectors: selectors.clone(),
            },
            Self::Addon {
                cluster,
                name,
                configuration,
            } => CreateRequest::Addon {
                cluster: id(cluster)?,
                name: name.clone(),
                configuration: configuration.clone(),
            },
            Self::AccessEntry {
                cluster,
                policy_arn,
                principal,
            } => CreateRequest::AccessEntry {
                cluster: id(cluster)?,
                principal_arn: principal.clone().unwrap_or_else(|| caller_arn.to_string()),
                policy_arn: policy_arn.clone(),
            },
            Self::OidcProvider { cluster } => CreateRequest::OidcProvider {
                cluster: id(cluster)?,
            },
            Self::VpcEndpoint {
                vpc,
                service,
                route_tables,
            } => CreateRequest::VpcEndpoint {
                vpc_id: id(vpc)?,
                service_name: service.clone(),
                route_table_ids: ids(route_tables)?,
            },
            Self::PullThroughCacheRule {
                prefix,
                upstream,
                credential,
            } => CreateRequest::PullThroughCacheRule {
                prefix: prefix.clone(),
                upstream: *upstream,
                credential_arn: match credential {
                    None => None,
                    Some(RuleCredential::SecretArn(a)) => Some(a.clone()),
                    Some(RuleCredential::Step(step)) => Some(arn(step)?),
                },
            },
            Self::CacheSecret { name, value } => {
                if value.is_empty() {
                    return Err(Error::invalid(
                        "image_cache.credential",
                        format!(
                            "the credential for secret {name} was not given to this run; give it again (it is never stored in the plan)"
                        ),
                    ));
                }
                CreateRequest::CacheSecret {
                    name: name.clone(),
                    value: value.clone(),
                }
            }
            Self::RolePolicy {
                role,
                name,
                prefixes,
            } => CreateRequest::RolePolicy {
                role: id(role)?,
                name: name.clone(),
                document: crate::image_cache::pod_role_policy(
                    partition(region),
                    region,
                    account_of(caller_arn).unwrap_or("*"),
                    prefixes,
                ),
            },
            Self::CacheBucket { stack, expire_days } => CreateRequest::CacheBucket {
                name: crate::cache::bucket_name(
                    stack,
                    account_of(caller_arn).ok_or_else(|| {
                        Error::invalid(
                            "caller",
                            format!("no account in the caller's ARN {caller_arn:?}"),
                        )
                    })?,
                    region,
                )?,
                expire_days: *expire_days,
            },
            Self::CacheRole {
                name,
                provider,
                bucket,
                namespace,
                service_account,
            } => CreateRequest::IrsaRole {
                name: name.clone(),
                trust_policy: irsa_trust(provider, namespace, service_account)?,
                inline_policy: Some((
                    crate::cache::CACHE_POLICY_NAME.into(),
                    crate::cache::bucket_access_policy(partition(region), &id(bucket)?),
                )),
                policy_arns: Vec::new(),
            },
            Self::JobRole {
                name,
                provider,
                namespace,
                service_account,
                policy_arns,
            } => CreateRequest::IrsaRole {
                name: name.clone(),
                trust_policy: irsa_trust(provider, namespace, service_account)?,
                inline_policy: None,
                policy_arns: policy_arns.clone(),
            },
        })
    }
}

/// The account id inside an ARN (`arn:aws:iam::123456789012:role/x` → `123456789012`).
pub fn account_of(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|a| !a.is_empty())
}

/// Counts of steps by kind, for summaries.
pub fn count_by_kind(plan: &Plan) -> BTreeMap<ResourceKind, usize> {
    let mut counts = BTreeMap::new();
    for step in &plan.steps {
        *counts.entry(step.kind).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{StackName, StackSpec};

    fn spec(azs: u8, nat: NatMode) -> StackSpec {
        let mut spec = StackSpec::new(StackName::new("glrunner").unwrap(), "us-east-1");
        spec.network.az_count = azs;
        spec.network.nat = nat;
        // The core shape; the cache's steps have their own tests.
        spec.image_cache = crate::image_cache::ImageCacheSpec::off();
        spec
    }

    fn zones(names_ids: &[(&str, &str)]) -> Vec<AvailabilityZone> {
        names_ids
            .iter()
            .map(|(n, i)| AvailabilityZone::new(*n, *i))
            .collect()
    }

    fn azs(n: usize) -> Vec<String> {
        ["us-east-1a", "us-east-1b", "us-east-1c"][..n]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn single_nat_plan_has_the_expected_steps() {
        let plan = Plan::build(&spec(2, NatMode::Single), &azs(2)).unwrap();
        let counts = count_by_kind(&plan);
        assert_eq!(counts[&ResourceKind::Subnet], 4);
        assert_eq!(counts[&ResourceKind::NatGateway], 1);
        assert_eq!(counts[&ResourceKind::ElasticIp], 1);
        assert_eq!(counts[&ResourceKind::RouteTable], 2);
        assert_eq!(counts[&ResourceKind::FargateProfile], 1);
        // The cluster role, the Fargate pod execution role and the cache role.
        assert_eq!(counts[&ResourceKind::IamRole], 3);
        assert_eq!(counts[&ResourceKind::CacheBucket], 1);
        assert_eq!(plan.steps.len(), 19);
        assert!(
            plan.step("nat/us-east-1a")
                .unwrap()
                .description
                .contains("NAT gateway in us-east-1a")
        );
    }

    #[test]
    fn per_az_nat_plan() {
        let plan = Plan::build(&spec(3, NatMode::PerAz), &azs(3)).unwrap();
        let counts = count_by_kind(&plan);
        assert_eq!(counts[&ResourceKind::NatGateway], 3);
        assert_eq!(counts[&ResourceKind::RouteTable], 4);
        let profile = plan.step("fargate-profile").unwrap();
        assert!(
            profile
                .depends_on
                .contains(&"rt/private/us-east-1c".to_string())
        );
    }

    #[test]
    fn cluster_does_not_wait_for_nat() {
        let plan = Plan::build(&spec(2, NatMode::Single), &azs(2)).unwrap();
        let cluster = plan.step("cluster").unwrap();
        assert!(
            cluster
                .depends_on
                .iter()
                .all(|d| !d.starts_with("nat") && !d.starts_with("rt"))
        );
        // The first wave starts the VPC, both roles and the EIP together.
        let first: Vec<&str> = plan.waves()[0].iter().map(|s| s.key.as_str()).collect();
        assert_eq!(
            first,
            [
                "vpc",
                "eip/us-east-1a",
                "role/cluster",
                "role/fargate",
                "cache/bucket"
            ]
        );
    }

    #[test]
    fn tree_rendering_mentions_every_step() {
        let plan = Plan::build(&spec(2, NatMode::Single), &azs(2)).unwrap();
        let tree = plan.render_tree();
        for step in &plan.steps {
            assert!(tree.contains(&step.description), "{}", step.key);
        }
        assert!(tree.starts_with("plan for stack glrunner in us-east-1: 19 steps"));
    }

    #[test]
    fn choose_azs_skips_unsupported_and_reports_shortage() {
        let all = zones(&[
            ("us-east-1e", "use1-az3"),
            ("us-east-1b", "use1-az1"),
            ("us-east-1a", "use1-az6"),
        ]);
        assert_eq!(choose_azs(&all, 2).unwrap(), ["us-east-1a", "us-east-1b"]);
        let err = choose_azs(&all, 3).unwrap_err().to_string();
        assert!(err.contains("azs") && err.contains("lower --azs"), "{err}");
    }

    #[test]
    fn unsupported_zones_are_judged_by_id_not_name() {
        // In this account us-east-1a is use1-az3, the zone EKS refuses; us-east-1e is fine.
        let all = zones(&[
            ("us-east-1a", "use1-az3"),
            ("us-east-1b", "use1-az1"),
            ("us-east-1e", "use1-az6"),
        ]);
        assert_eq!(choose_azs(&all, 2).unwrap(), ["us-east-1b", "us-east-1e"]);
    }

    #[test]
    fn role_names_carry_the_region_and_fit_iam() {
        let stack = "a".repeat(crate::spec::StackName::MAX_LEN);
        for region in crate::regions::with_eks_fargate() {
            for name in [
                cluster_role_name(&stack, region),
                fargate_role_name(&stack, region),
            ] {
                assert!(name.len() <= 64 && name.contains(region), "{name}");
            }
        }
        assert_ne!(
            cluster_role_name("ci", "us-east-1"),
            cluster_role_name("ci", "us-west-2")
        );
    }

    #[test]
    fn arns_follow_the_partition_of_the_region() {
        // GovCloud has no EKS Fargate (crate::regions), so no stack is planned there; the ARNs
        // glrunner builds still carry the partition.
        assert_eq!(
            managed_policy_arn("aws-us-gov", "AmazonEKSClusterPolicy"),
            "arn:aws-us-gov:iam::aws:policy/AmazonEKSClusterPolicy"
        );
        let mut arns = Vec::new();
        for step in &Plan::build(&spec(2, NatMode::Single), &azs(2))
            .unwrap()
            .steps
        {
            match &step.action {
                StepAction::IamRole { policy_arns, .. } => arns.extend(policy_arns.clone()),
                StepAction::AccessEntry { policy_arn, .. } => arns.push(policy_arn.clone()),
                _ => {}
            }
        }
        assert_eq!(arns.len(), 4);
        assert!(arns.iter().all(|a| a.starts_with("arn:aws:")), "{arns:?}");
        let commercial = Plan::build(&spec(2, NatMode::Single), &azs(2)).unwrap();
        let role = commercial.step("role/fargate").unwrap();
        let request = role
            .action
            .resolve(
                &HashMap::new(),
                "arn:aws:iam::123456789012:user/ci",
                "glrunner",
                "us-east-1",
            )
            .unwrap();
        assert!(
            matches!(request, CreateRequest::IamRole { source_arn: Some(ref a), .. }
                if a == "arn:aws:eks:us-east-1:123456789012:fargateprofile/glrunner/*"),
            "{request:?}"
        );
    }

    #[test]
    fn extra_principals_get_their_own_access_entries_and_open_endpoints_warn() {
        let mut spec = spec(2, NatMode::Single);
        spec.cluster.admin_principals = vec![
            "arn:aws:iam::123456789012:role/ci".into(),
            "arn:aws:iam::123456789012:role/ci".into(),
        ];
        let plan = Plan::build(&spec, &azs(2)).unwrap();
        assert!(
            plan.step("access/principal/arn:aws:iam::123456789012:role/ci")
                .is_some()
        );
        assert_eq!(plan.steps.len(), 20);
        // The caller is named in its own step; a caller that is also an admin principal has one.
        let mut bound = plan.clone();
        bound.bind_caller("arn:aws:iam::123456789012:user/dev");
        assert!(!bound.needs_caller());
        assert!(
            bound
                .step("access/principal/arn:aws:iam::123456789012:user/dev")
                .is_some()
        );
        assert_eq!(bound.steps.len(), 20);
        let mut same = plan.clone();
        same.bind_caller("arn:aws:iam::123456789012:role/ci");
        assert_eq!(same.steps.len(), 19);
        assert!(!same.needs_caller() && same.step(CALLER_ACCESS_KEY).is_none());
        assert!(
            plan.render_tree()
                .contains("warning: the cluster's public API endpoint is open")
        );
        spec.cluster.public_access_cidrs = vec!["203.0.113.0/24".parse().unwrap()];
        assert!(Plan::build(&spec, &azs(2)).unwrap().warnings.is_empty());
    }

    #[test]
    fn image_cache_steps_follow_their_dependencies_and_keep_credentials_out() {
        use crate::image_cache::{Credential, CredentialSource};
        let mut spec = spec(2, NatMode::PerAz);
        spec.image_cache = crate::image_cache::ImageCacheSpec::default();
        spec.image_cache.docker_hub = Some(CredentialSource::Provided(
            Credential::parse("ENV", "me:S3CRET-token").unwrap(),
        ));
        let plan = Plan::build(&spec, &azs(2)).unwrap();
        let endpoint = plan.step("vpce/s3").unwrap();
        assert_eq!(
            endpoint.depends_on,
            ["vpc", "rt/private/us-east-1a", "rt/private/us-east-1b"]
        );
        assert!(endpoint.description.contains("com.amazonaws.us-east-1.s3"));
        let rule = plan.step("image-cache/docker-hub").unwrap();
        assert_eq!(rule.depends_on, ["image-cache/secret/docker-hub"]);
        for key in [
            "image-cache/ecr-public",
            "image-cache/quay",
            "image-cache/k8s",
        ] {
            assert!(plan.step(key).unwrap().depends_on.is_empty(), "{key}");
        }
        assert!(plan.step("image-cache/gitlab").is_none());
        assert_eq!(
            plan.step("role/fargate/image-cache").unwrap().depends_on,
            ["role/fargate"]
        );
        let json = serde_json::to_string(&plan).unwrap();
        assert!(!json.contains("S3CRET") && !format!("{plan:?}").contains("S3CRET"));
        assert!(!plan.render_tree().contains("S3CRET"));
        // Resolved: the rule names the secret's ARN, the policy the caller's account.
        let mut done = HashMap::new();
        done.insert(
            "image-cache/secret/docker-hub".to_string(),
            Resource {
                kind: ResourceKind::CacheSecret,
                id: "ecr-pullthroughcache/glrunner/docker-hub".into(),
                key: "image-cache/secret/docker-hub".into(),
                arn: Some("arn:aws:secretsmanager:us-east-1:123456789012:secret:ecr-pullthroughcache/glrunner/docker-hub-AbCdEf".into()),
                state: crate::resource::ResourceState::Available,
            },
        );
        done.insert(
            "role/fargate".to_string(),
            Resource {
                kind: ResourceKind::IamRole,
                id: "glrunner-us-east-1-fargate-pods".into(),
                key: "role/fargate".into(),
                arn: None,
                state: crate::resource::ResourceState::Available,
            },
        );
        let caller = "arn:aws:iam::123456789012:user/ci";
        let request = rule
            .action
            .resolve(&done, caller, "glrunner", "us-east-1")
            .unwrap();
        assert!(
            matches!(&request, CreateRequest::PullThroughCacheRule { credential_arn: Some(a), prefix, .. }
                if a.ends_with("docker-hub-AbCdEf") && prefix == "glrunner/docker-hub"),
            "{request:?}"
        );
        let secret = plan.step("image-cache/secret/docker-hub").unwrap();
        let request = secret
            .action
            .resolve(&done, caller, "glrunner", "us-east-1")
            .unwrap();
        assert!(!format!("{request:?}").contains("S3CRET"));
        assert!(!serde_json::to_string(&request).unwrap().contains("S3CRET"));
        let policy = plan.step("role/fargate/image-cache").unwrap();
        let CreateRequest::RolePolicy { document, role, .. } = policy
            .action
            .resolve(&done, caller, "glrunner", "us-east-1")
            .unwrap()
        else {
            panic!("not a role policy");
        };
        assert_eq!(role, "glrunner-us-east-1-fargate-pods");
        assert!(
            document
                .contains("arn:aws:ecr:us-east-1:123456789012:repository/glrunner/docker-hub/*")
        );
        assert!(document.contains("ecr:BatchImportUpstreamImage"));
        // A plan read back has no credential: resolving its secret step says to give it again.
        let back: Plan = serde_json::from_str(&json).unwrap();
        let err = back
            .step("image-cache/secret/docker-hub")
            .unwrap()
            .action
            .resolve(&done, caller, "glrunner", "us-east-1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("give it again"), "{err}");
        // Off: none of it.
        spec.image_cache = crate::image_cache::ImageCacheSpec::off();
        let plan = Plan::build(&spec, &azs(2)).unwrap();
        assert!(
            plan.steps
                .iter()
                .all(|s| !s.key.contains("image-cache") && s.key != "vpce/s3")
        );
    }
}
