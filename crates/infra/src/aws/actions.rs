//! Every AWS action glrunner calls, as IAM action names, kept next to the code that calls them.
//!
//! `doctor`'s permissions check simulates this list with `iam:SimulatePrincipalPolicy` for the
//! caller. A test reads this module's siblings (every `self.<client>.<operation>(` call and
//! every operation handed to a call macro) and fails when a call is missing here, so a new
//! call cannot be forgotten.

use crate::account::{ContextValue, PermissionCheck};

/// The IAM actions of every AWS API call glrunner makes (service prefix + operation name).
pub const CALLED_ACTIONS: &[&str] = &[
    // Network (aws-sdk-ec2).
    "ec2:AllocateAddress",
    "ec2:AssociateRouteTable",
    "ec2:AttachInternetGateway",
    "ec2:CreateInternetGateway",
    "ec2:CreateNatGateway",
    "ec2:CreateRoute",
    "ec2:CreateRouteTable",
    "ec2:CreateSubnet",
    "ec2:CreateVpc",
    "ec2:DeleteInternetGateway",
    "ec2:DeleteNatGateway",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteRouteTable",
    "ec2:DeleteSecurityGroup",
    "ec2:DeleteSubnet",
    "ec2:DeleteVpc",
    "ec2:DescribeAddresses",
    "ec2:DescribeAvailabilityZones",
    "ec2:DescribeInternetGateways",
    "ec2:DescribeNatGateways",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeRouteTables",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
    "ec2:DetachInternetGateway",
    "ec2:DisassociateRouteTable",
    "ec2:ModifyVpcAttribute",
    "ec2:ReleaseAddress",
    // Cluster (aws-sdk-eks).
    "eks:AssociateAccessPolicy",
    "eks:CreateAccessEntry",
    "eks:CreateAddon",
    "eks:CreateCluster",
    "eks:CreateFargateProfile",
    "eks:DeleteAccessEntry",
    "eks:DeleteAddon",
    "eks:DeleteCluster",
    "eks:DeleteFargateProfile",
    "eks:DescribeAccessEntry",
    "eks:DescribeAddon",
    "eks:DescribeCluster",
    "eks:DescribeFargateProfile",
    "eks:ListAccessEntries",
    "eks:ListAddons",
    "eks:ListAssociatedAccessPolicies",
    "eks:ListClusters",
    "eks:ListFargateProfiles",
    // The doctor's Pod Identity guard (aws/pod_identity.rs).
    "eks:ListPodIdentityAssociations",
    // Roles (aws-sdk-iam).
    "iam:AttachRolePolicy",
    "iam:CreateRole",
    "iam:DeleteRole",
    "iam:DeleteRolePolicy",
    "iam:DetachRolePolicy",
    "iam:GetRole",
    "iam:ListAttachedRolePolicies",
    "iam:ListRolePolicies",
    "iam:ListRoles",
    "iam:SimulatePrincipalPolicy",
    // The cluster's OIDC provider (aws-sdk-iam; aws/oidc.rs).
    "iam:CreateOpenIDConnectProvider",
    "iam:DeleteOpenIDConnectProvider",
    "iam:GetOpenIDConnectProvider",
    "iam:ListOpenIDConnectProviders",
    // The runner cache (aws-sdk-s3 and aws-sdk-iam; aws/cache.rs), as IAM names the S3 calls
    // ([`S3_OPERATION_ACTIONS`]).
    "iam:PutRolePolicy",
    "s3:CreateBucket",
    "s3:DeleteBucket",
    "s3:DeleteBucketPolicy",
    "s3:DeleteObject",
    "s3:GetBucketTagging",
    "s3:ListAllMyBuckets",
    "s3:ListBucket",
    "s3:ListBucketVersions",
    "s3:PutBucketPolicy",
    "s3:PutBucketPublicAccessBlock",
    "s3:PutBucketTagging",
    "s3:PutEncryptionConfiguration",
    "s3:PutLifecycleConfiguration",
    // Identity (aws-sdk-sts).
    "sts:GetCallerIdentity",
    // Quotas and prices, read by the preflight (aws-sdk-servicequotas, aws-sdk-pricing).
    "servicequotas:GetServiceQuota",
    "servicequotas:GetAWSDefaultServiceQuota",
    "pricing:GetProducts",
    // The pull-through cache (aws/image_cache.rs): S3 gateway endpoint, ECR rules and the
    // repositories they create, upstream credential secrets, the pod role's inline policy.
    "ec2:CreateVpcEndpoint",
    "ec2:DeleteVpcEndpoints",
    "ec2:DescribeVpcEndpoints",
    "ecr:CreatePullThroughCacheRule",
    "ecr:DeletePullThroughCacheRule",
    "ecr:DescribePullThroughCacheRules",
    "ecr:DeleteRepository",
    "ecr:DescribeRepositories",
    "secretsmanager:CreateSecret",
    "secretsmanager:DeleteSecret",
    "secretsmanager:DescribeSecret",
    "secretsmanager:ListSecrets",
    "iam:GetRolePolicy",
];

/// Permissions AWS checks without a call of that name: `eks:CreateCluster` and
/// `eks:CreateFargateProfile` hand roles to EKS (`iam:PassRole`), EKS creates its
/// service-linked roles on first use in an account, and a create that carries tags is also
/// authorised for the service's tagging action: `ec2:CreateTags` (EC2 User Guide, "Grant
/// permission to tag Amazon EC2 resources during creation": "If tags are specified in the
/// resource-creating action, Amazon performs additional authorization on the ec2:CreateTags
/// action"), `iam:TagRole` (IAM User Guide, "Permissions required to tag IAM entities": a role
/// created with tags needs iam:TagRole), `eks:TagResource` (Service Authorization Reference,
/// Amazon EKS, "API operations": CreateCluster, CreateFargateProfile, CreateAddon and
/// CreateAccessEntry each authorise eks:TagResource), `iam:TagOpenIDConnectProvider` (IAM
/// User Guide, "Permissions required to tag IAM entities": an OIDC provider created with tags
/// needs it).
pub const IMPLIED_ACTIONS: &[&str] = &[
    "iam:PassRole",
    "iam:CreateServiceLinkedRole",
    "ec2:CreateTags",
    "iam:TagRole",
    "eks:TagResource",
    "iam:TagOpenIDConnectProvider",
    // CreateSecret with tags (Secrets Manager User Guide, "Tag secrets": "To add tags when
    // you create a secret, you need secretsmanager:TagResource").
    "secretsmanager:TagResource",
    // DeleteObjects of a version id needs it besides s3:DeleteObject (S3 API Reference,
    // DeleteObjects, "Permissions").
    "s3:DeleteObjectVersion",
];

/// S3 operations whose IAM action has another name (S3 API Reference, each operation's
/// "Permissions"; Service Authorization Reference, Amazon S3): HeadBucket is authorised as
/// s3:ListBucket, ListBuckets as s3:ListAllMyBuckets, and so on. Every other S3 operation
/// glrunner calls is its own action.
pub const S3_OPERATION_ACTIONS: &[(&str, &str)] = &[
    ("DeleteObjects", "s3:DeleteObject"),
    ("HeadBucket", "s3:ListBucket"),
    ("ListBuckets", "s3:ListAllMyBuckets"),
    ("ListObjectVersions", "s3:ListBucketVersions"),
    ("PutBucketEncryption", "s3:PutEncryptionConfiguration"),
    (
        "PutBucketLifecycleConfiguration",
        "s3:PutLifecycleConfiguration",
    ),
    ("PutPublicAccessBlock", "s3:PutBucketPublicAccessBlock"),
];

/// The IAM action of an SDK operation of the service with this prefix.
pub fn action_of_operation(prefix: &str, operation: &str) -> String {
    if prefix == "s3"
        && let Some((_, action)) = S3_OPERATION_ACTIONS.iter().find(|(op, _)| *op == operation)
    {
        return (*action).to_string();
    }
    format!("{prefix}:{operation}")
}

/// Calls AWS authorises without any permission: "No permissions are required to perform this
/// operation" (STS API reference, GetCallerIdentity); even an explicit Deny does not stop it.
/// Simulating them would fail a principal for nothing.
pub const UNAUTHORISED_ACTIONS: &[&str] = &["sts:GetCallerIdentity"];

/// What `provision`, `teardown` and the flow need: [`CALLED_ACTIONS`] plus [`IMPLIED_ACTIONS`],
/// without the read-only calls `doctor` itself makes to check the account and without the calls
/// that need no permission ([`UNAUTHORISED_ACTIONS`]).
pub fn required_actions() -> Vec<&'static str> {
    CALLED_ACTIONS
        .iter()
        .chain(IMPLIED_ACTIONS)
        .copied()
        .filter(|a| !DOCTOR_ONLY_ACTIONS.contains(a) && !UNAUTHORISED_ACTIONS.contains(a))
        .collect()
}

/// Calls only the preflight makes (it reports their denial itself, as a warning).
pub const DOCTOR_ONLY_ACTIONS: &[&str] = &[
    "iam:SimulatePrincipalPolicy",
    "servicequotas:GetServiceQuota",
    "servicequotas:GetAWSDefaultServiceQuota",
    "pricing:GetProducts",
    "eks:ListPodIdentityAssociations",
];

/// Which flow the permission check is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PermissionFlow {
    /// glrunner provisions the stack and tears it down: every [`required_actions`] entry.
    Provision,
    /// A cluster the user brought by name (`--cluster`): glrunner only reads its endpoint and
    /// Fargate profiles (`eks:DescribeCluster`, `eks:ListFargateProfiles`,
    /// `eks:DescribeFargateProfile`) and signs EKS tokens (a pre-signed
    /// `sts:GetCallerIdentity`, which needs no permission); it creates nothing in AWS.
    BroughtEksCluster,
}

/// What a run acts on, so that each action is simulated on the resources of the real calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionScope {
    /// The partition, e.g. `aws`.
    pub partition: String,
    /// The 12-digit account id.
    pub account: String,
    /// The stack's Region.
    pub region: String,
    /// The stack's name (the value of the `glrunner.io/stack` tag).
    pub stack: String,
    /// The EKS cluster: the stack's own, or the one brought with `--cluster`.
    pub cluster: String,
    /// The user's extra tags (`--tag`), put on every resource glrunner creates.
    pub extra_tags: Vec<String>,
    /// The caller's IAM role ARN (with its path) when it runs as an assumed role: provisioning
    /// reads it with `iam:GetRole` to name the role in its access entry.
    pub caller_role: Option<String>,
    /// The flow.
    pub flow: PermissionFlow,
}

/// EKS's service-linked roles glrunner's creates may make EKS create (EKS User Guide, "Using
/// service-linked roles for Amazon EKS": `AWSServiceRoleForAmazonEKS` for clusters, trusted by
/// eks.amazonaws.com; "Using roles for Amazon EKS Fargate profiles":
/// `AWSServiceRoleForAmazonEKSForFargate`, trusted by eks-fargate.amazonaws.com).
const SERVICE_LINKED_ROLES: &[(&str, &str)] = &[
    ("eks.amazonaws.com", "AWSServiceRoleForAmazonEKS"),
    (
        "eks-fargate.amazonaws.com",
        "AWSServiceRoleForAmazonEKSForFargate",
    ),
    // ECR User Guide, "Amazon ECR service-linked role for pull through cache".
    (
        "pullthroughcache.ecr.amazonaws.com",
        "AWSServiceRoleForECRPullThroughCache",
    ),
];

/// The EKS add-ons glrunner creates (the plan's `addon/coredns` step).
const ADDONS: &[&str] = &["coredns"];

/// The EC2 creates that carry tags (`TagSpecifications`), each also authorised for
/// `ec2:CreateTags` with `ec2:CreateAction` naming it.
const EC2_TAGGED_CREATES: &[&str] = &[
    "ec2:CreateVpc",
    "ec2:CreateSubnet",
    "ec2:CreateInternetGateway",
    "ec2:AllocateAddress",
    "ec2:CreateNatGateway",
    "ec2:CreateRouteTable",
    "ec2:CreateVpcEndpoint",
];

/// The EKS creates that carry tags, with the resource their `eks:TagResource` is on.
fn eks_tagged_creates(scope: &PermissionScope) -> Vec<(&'static str, String)> {
    let eks = scope.eks_prefix();
    let cluster = &scope.cluster;
    let mut out = vec![
        ("eks:CreateCluster", scope.cluster_arn()),
        (
            "eks:CreateFargateProfile",
            format!(
                "{eks}:fargateprofile/{cluster}/{}/*",
                crate::plan::fargate_profile_name(&scope.stack)
            ),
        ),
        (
            "eks:CreateAccessEntry",
            format!("{eks}:access-entry/{cluster}/*"),
        ),
    ];
    for addon in ADDONS {
        out.push((
            "eks:CreateAddon",
            format!("{eks}:addon/{cluster}/{addon}/*"),
        ));
    }
    out
}

impl PermissionScope {
    fn eks_prefix(&self) -> String {
        format!(
            "arn:{}:eks:{}:{}",
            self.partition, self.region, self.account
        )
    }

    /// `arn:<partition>:eks:<region>:<account>:cluster/<cluster>`.
    pub fn cluster_arn(&self) -> String {
        format!("{}:cluster/{}", self.eks_prefix(), self.cluster)
    }

    /// The ARNs of the two roles the stack creates: the cluster role under
    /// [`super::ROLE_PATH`] and the Fargate pod execution role at `/`
    /// ([`crate::resource::RoleTrust::path`]).
    pub fn role_arns(&self) -> [String; 2] {
        let iam = format!("arn:{}:iam::{}:role", self.partition, self.account);
        [
            format!(
                "{iam}{}{}",
                super::ROLE_PATH,
                crate::plan::cluster_role_name(&self.stack, &self.region)
            ),
            format!(
                "{iam}/{}",
                crate::plan::fargate_role_name(&self.stack, &self.region)
            ),
        ]
    }

    /// The ARNs of the OIDC providers of this Region's EKS clusters (the stack's cluster's
    /// issuer is not known before the cluster exists): `…:oidc-provider/oidc.eks.<region>.amazonaws.com/id/*`.
    pub fn oidc_provider_arns(&self) -> String {
        format!(
            "arn:{}:iam::{}:oidc-provider/oidc.eks.{}.amazonaws.com/id/*",
            self.partition, self.account, self.region
        )
    }

    /// The ECR repositories the stack's pull-through cache rules create (one pattern per rule
    /// prefix, [`crate::image_cache::rule_prefix`]).
    pub fn cache_repository_arns(&self) -> Vec<String> {
        let Ok(stack) = crate::spec::StackName::new(self.stack.clone()) else {
            return vec![format!(
                "arn:{}:ecr:{}:{}:repository/{}/*",
                self.partition, self.region, self.account, self.stack
            )];
        };
        crate::image_cache::Upstream::ALL
            .into_iter()
            .map(|u| {
                format!(
                    "arn:{}:ecr:{}:{}:repository/{}/*",
                    self.partition,
                    self.region,
                    self.account,
                    crate::image_cache::rule_prefix(&stack, u)
                )
            })
            .collect()
    }

    /// The secrets glrunner stores for the stack (`ecr-pullthroughcache/<stack>/…`).
    pub fn cache_secret_arns(&self) -> String {
        format!(
            "arn:{}:secretsmanager:{}:{}:secret:{}{}/*",
            self.partition,
            self.region,
            self.account,
            crate::image_cache::SECRET_PREFIX,
            self.stack
        )
    }

    /// The ARN of the stack's cache bucket ([`crate::cache::bucket_name`]).
    pub fn cache_bucket_arn(&self) -> String {
        format!(
            "arn:{}:s3:::{}-{}-{}-cache",
            self.partition, self.stack, self.account, self.region
        )
    }

    /// The Region IAM's requests are made in: IAM is global, and `aws:RequestedRegion` of a
    /// global service is its endpoint's Region, us-east-1 in the `aws` partition (IAM User
    /// Guide, AWS global condition context keys, aws:RequestedRegion).
    fn iam_region(&self) -> &'static str {
        match self.partition.as_str() {
            "aws-cn" => "cn-north-1",
            "aws-us-gov" => "us-gov-west-1",
            _ => "us-east-1",
        }
    }

    /// The tag context of a create: `aws:RequestTag/glrunner.io/stack` and `aws:TagKeys` (every
    /// key the call sends: [`crate::resource::ResourceTags::pairs`], the Region tag the apply
    /// engine adds, the user's tags, and `extra_keys`).
    fn tag_context(&self, region: &str, extra_keys: &[String]) -> Vec<ContextValue> {
        use crate::spec::{KEY_TAG, REGION_TAG, STACK_TAG};
        let mut keys: Vec<String> = [STACK_TAG, KEY_TAG, REGION_TAG, "Name"]
            .iter()
            .map(|k| (*k).to_owned())
            .chain(self.extra_tags.iter().cloned())
            .chain(extra_keys.iter().cloned())
            .collect();
        keys.sort();
        keys.dedup();
        vec![
            ContextValue::string("aws:RequestedRegion", region),
            ContextValue::string(format!("aws:RequestTag/{STACK_TAG}"), &self.stack),
            ContextValue::list("aws:TagKeys", keys),
        ]
    }
}

/// Every permission the flow needs, each on the resources of the real calls and with the
/// condition context they carry: what the preflight simulates (`iam:SimulatePrincipalPolicy`
/// with `ResourceArns` and `ContextEntries`), so that a principal whose policy is scoped to the
/// stack (`arn:…:role/<stack>-*`, `arn:…:cluster/<stack>`) and conditioned on the stack's tags
/// is judged as AWS will judge the calls. Resources follow the Service Authorization Reference
/// (resource types of each action); where an action has none, or EC2 cannot name the resource
/// before it exists, the resource is `*`.
pub fn permission_checks(scope: &PermissionScope) -> Vec<PermissionCheck> {
    let region = ContextValue::string("aws:RequestedRegion", &scope.region);
    let check =
        |action: &str, resources: Vec<String>, context: Vec<ContextValue>| PermissionCheck {
            action: action.to_owned(),
            resources,
            context,
        };
    let eks = scope.eks_prefix();
    let cluster_arn = scope.cluster_arn();
    let profiles = format!("{eks}:fargateprofile/{}/*", scope.cluster);
    if scope.flow == PermissionFlow::BroughtEksCluster {
        return vec![
            check(
                "eks:DescribeCluster",
                vec![cluster_arn.clone()],
                vec![region.clone()],
            ),
            check(
                "eks:ListFargateProfiles",
                vec![cluster_arn],
                vec![region.clone()],
            ),
            check("eks:DescribeFargateProfile", vec![profiles], vec![region]),
        ];
    }
    let roles = scope.role_arns().to_vec();
    let iam_region = ContextValue::string("aws:RequestedRegion", scope.iam_region());
    let subnet_keys = vec![
        "kubernetes.io/role/elb".to_owned(),
        "kubernetes.io/role/internal-elb".to_owned(),
        format!("kubernetes.io/cluster/{}", scope.cluster),
    ];
    let mut out = Vec::new();
    for action in required_actions() {
        let (service, _) = action.split_once(':').unwrap_or((action, ""));
        match (service, action) {
            ("ec2", "ec2:CreateTags") => {
                for create in EC2_TAGGED_CREATES {
                    let extra = if *create == "ec2:CreateSubnet" {
                        subnet_keys.clone()
                    } else {
                        Vec::new()
                    };
                    let mut context = scope.tag_context(&scope.region, &extra);
                    context.push(ContextValue::string(
                        "ec2:CreateAction",
                        create.trim_start_matches("ec2:"),
                    ));
                    out.push(check(action, vec!["*".into()], context));
                }
            }
            ("ec2", a) if EC2_TAGGED_CREATES.contains(&a) => {
                let extra = if a == "ec2:CreateSubnet" {
                    subnet_keys.clone()
                } else {
                    Vec::new()
                };
                out.push(check(
                    a,
                    vec!["*".into()],
                    scope.tag_context(&scope.region, &extra),
                ));
            }
            ("ec2", a) => out.push(check(a, vec!["*".into()], vec![region.clone()])),
            ("eks", "eks:ListClusters") => {
                out.push(check(action, vec!["*".into()], vec![region.clone()]));
            }
            ("eks", "eks:TagResource") => {
                for (_, tagged) in eks_tagged_creates(scope) {
                    out.push(check(
                        action,
                        vec![tagged],
                        scope.tag_context(&scope.region, &[]),
                    ));
                }
            }
            // No resource type: "you must specify all resources ("*")" (Service Authorization
            // Reference, Amazon EKS, CreateCluster).
            ("eks", "eks:CreateCluster") => out.push(check(
                action,
                vec!["*".into()],
                scope.tag_context(&scope.region, &[]),
            )),
            ("eks", "eks:CreateFargateProfile" | "eks:CreateAddon" | "eks:CreateAccessEntry") => {
                out.push(check(
                    action,
                    vec![cluster_arn.clone()],
                    scope.tag_context(&scope.region, &[]),
                ))
            }
            (
                "eks",
                "eks:DeleteCluster"
                | "eks:DescribeCluster"
                | "eks:ListAccessEntries"
                | "eks:ListAddons"
                | "eks:ListFargateProfiles",
            ) => out.push(check(
                action,
                vec![cluster_arn.clone()],
                vec![region.clone()],
            )),
            ("eks", "eks:DeleteFargateProfile" | "eks:DescribeFargateProfile") => {
                out.push(check(action, vec![profiles.clone()], vec![region.clone()]));
            }
            ("eks", "eks:DeleteAddon" | "eks:DescribeAddon") => out.push(check(
                action,
                ADDONS
                    .iter()
                    .map(|a| format!("{eks}:addon/{}/{a}/*", scope.cluster))
                    .collect(),
                vec![region.clone()],
            )),
            // AssociateAccessPolicy, DeleteAccessEntry, DescribeAccessEntry,
            // ListAssociatedAccessPolicies: the `access-entry` resource type.
            ("eks", a) => out.push(check(
                a,
                vec![format!("{eks}:access-entry/{}/*", scope.cluster)],
                vec![region.clone()],
            )),
            ("iam", "iam:ListRoles") => {
                out.push(check(action, vec!["*".into()], vec![iam_region.clone()]));
            }
            ("iam", "iam:CreateRole" | "iam:TagRole") => out.push(check(
                action,
                roles.clone(),
                scope.tag_context(scope.iam_region(), &[]),
            )),
            // "iam:PassedToService": the service the role is handed to. EKS's operations table
            // names eks.amazonaws.com for CreateCluster; for CreateFargateProfile no AWS page we
            // found names the value, so the pod execution role is checked with both the EKS
            // and the Fargate pods principal: a policy that allows only one fails here rather
            // than at CreateFargateProfile, with the control plane and NAT gateway billing.
            ("iam", "iam:PassRole") => {
                let [cluster_role, pod_role] = scope.role_arns();
                let passed = |service: &str| {
                    vec![
                        iam_region.clone(),
                        ContextValue::string("iam:PassedToService", service),
                    ]
                };
                out.push(check(
                    action,
                    vec![cluster_role],
                    passed("eks.amazonaws.com"),
                ));
                out.push(check(
                    action,
                    vec![pod_role.clone()],
                    passed("eks.amazonaws.com"),
                ));
                out.push(check(
                    action,
                    vec![pod_role],
                    passed("eks-fargate-pods.amazonaws.com"),
                ));
            }
            ("iam", "iam:CreateServiceLinkedRole") => {
                for (service, role) in SERVICE_LINKED_ROLES {
                    out.push(check(
                        action,
                        vec![format!(
                            "arn:{}:iam::{}:role/aws-service-role/{service}/{role}",
                            scope.partition, scope.account
                        )],
                        vec![
                            iam_region.clone(),
                            ContextValue::string("iam:AWSServiceName", *service),
                        ],
                    ));
                }
            }
            ("iam", "iam:GetRole") => {
                let mut resources = roles.clone();
                resources.extend(scope.caller_role.iter().cloned());
                out.push(check(action, resources, vec![iam_region.clone()]));
            }
            // ListOpenIDConnectProviders has no resource type (Service Authorization
            // Reference, IAM, "Actions defined by AWS Identity and Access Management").
            ("iam", "iam:ListOpenIDConnectProviders") => {
                out.push(check(action, vec!["*".into()], vec![iam_region.clone()]));
            }
            ("iam", "iam:CreateOpenIDConnectProvider" | "iam:TagOpenIDConnectProvider") => out
                .push(check(
                    action,
                    vec![scope.oidc_provider_arns()],
                    scope.tag_context(scope.iam_region(), &[]),
                )),
            // The cache bucket: account-level listing on `*` (no resource type), object
            // actions on its objects, the rest on the bucket.
            ("s3", "s3:ListAllMyBuckets") => {
                out.push(check(action, vec!["*".into()], vec![region.clone()]));
            }
            ("s3", "s3:DeleteObject" | "s3:DeleteObjectVersion") => out.push(check(
                action,
                vec![format!("{}/*", scope.cache_bucket_arn())],
                vec![region.clone()],
            )),
            ("s3", a) => out.push(check(
                a,
                vec![scope.cache_bucket_arn()],
                vec![region.clone()],
            )),
            ("iam", a) if a.ends_with("OpenIDConnectProvider") => out.push(check(
                a,
                vec![scope.oidc_provider_arns()],
                vec![iam_region.clone()],
            )),
            ("iam", a) => out.push(check(a, roles.clone(), vec![iam_region.clone()])),
            // The repositories under the stack's rule prefixes.
            ("ecr", "ecr:DeleteRepository") => out.push(check(
                action,
                scope.cache_repository_arns(),
                vec![region.clone()],
            )),
            // Pull-through cache rules and DescribeRepositories of the registry: no resource
            // type to scope them to.
            ("ecr", a) => out.push(check(a, vec!["*".into()], vec![region.clone()])),
            ("secretsmanager", "secretsmanager:ListSecrets") => {
                out.push(check(action, vec!["*".into()], vec![region.clone()]));
            }
            ("secretsmanager", "secretsmanager:CreateSecret" | "secretsmanager:TagResource") => out
                .push(check(
                    action,
                    vec![scope.cache_secret_arns()],
                    scope.tag_context(&scope.region, &[]),
                )),
            ("secretsmanager", a) => out.push(check(
                a,
                vec![scope.cache_secret_arns()],
                vec![region.clone()],
            )),
            (_, a) => out.push(check(a, vec!["*".into()], vec![region.clone()])),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The field name of each SDK client in this module's siblings, and its IAM service prefix.
    const CLIENTS: &[(&str, &str)] = &[
        ("ec2", "ec2"),
        ("eks", "eks"),
        ("iam", "iam"),
        ("sts", "sts"),
        ("quotas", "servicequotas"),
        ("pricing", "pricing"),
        ("ecr", "ecr"),
        ("secrets", "secretsmanager"),
        // aws/cache.rs calls S3 through `self.s3()?` (the client is optional).
        ("s3()?", "s3"),
    ];

    fn pascal(snake: &str) -> String {
        snake
            .split('_')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect()
    }

    fn ident_at(s: &str) -> &str {
        let end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
            .unwrap_or(s.len());
        &s[..end]
    }

    /// Every `(service prefix, operation)` called in `source` (whitespace removed first, so
    /// calls split over lines count): direct calls, and operations passed to a macro whose
    /// body calls `.<client>.$op(`.
    fn calls_in(source: &str) -> BTreeSet<String> {
        let code: String = source
            .lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect::<String>()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let mut found = BTreeSet::new();
        for (field, prefix) in CLIENTS {
            let needle = format!(".{field}.");
            for (i, _) in code.match_indices(&needle) {
                let op = ident_at(&code[i + needle.len()..]);
                if op.is_empty() || !code[i + needle.len() + op.len()..].starts_with('(') {
                    continue;
                }
                if let Some(param) = op.strip_prefix('$') {
                    // A macro: find its name, then the operation of each invocation.
                    let head = &code[..i];
                    let Some(def) = head.rfind("macro_rules!") else {
                        continue;
                    };
                    let name = ident_at(&head[def + "macro_rules!".len()..]);
                    let invocation = format!("{name}!(");
                    for (j, _) in code.match_indices(&invocation) {
                        let args = &code[j + invocation.len()..];
                        let args = args
                            .strip_prefix("self.")
                            .or_else(|| args.strip_prefix("$self."))
                            .unwrap_or(args);
                        let called = ident_at(args);
                        if called != param && !called.is_empty() {
                            found.insert(action_of_operation(prefix, &pascal(called)));
                        }
                    }
                } else {
                    found.insert(action_of_operation(prefix, &pascal(op)));
                }
            }
        }
        found
    }

    #[test]
    fn the_list_covers_every_call_in_the_aws_backend() {
        // The checkout's directory at run time: the build cache is shared between checkouts, so this
        // binary may have been built in another one.
        let dir = std::path::PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("src/aws");
        let mut called = BTreeSet::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("actions.rs") {
                called.extend(calls_in(&std::fs::read_to_string(&path).unwrap()));
            }
        }
        // Sanity: the scan sees the calls it must (direct, split over lines, and in macros).
        for sure in [
            "ec2:CreateVpc",
            "ec2:DescribeVpcs",
            "eks:ListAddons",
            "eks:ListAssociatedAccessPolicies",
            "sts:GetCallerIdentity",
        ] {
            assert!(called.contains(sure), "scan missed {sure}: {called:?}");
        }
        // IAM action names are case-insensitive (`GetAWSDefaultServiceQuota` is the SDK's
        // `get_aws_default_service_quota`).
        let called: BTreeSet<String> = called.iter().map(|a| a.to_lowercase()).collect();
        let listed: BTreeSet<String> = CALLED_ACTIONS.iter().map(|a| a.to_lowercase()).collect();
        assert_eq!(
            listed.len(),
            CALLED_ACTIONS.len(),
            "CALLED_ACTIONS has duplicates"
        );
        let missing: Vec<_> = called.difference(&listed).collect();
        assert!(
            missing.is_empty(),
            "AWS calls missing from CALLED_ACTIONS: {missing:?}"
        );
        let stale: Vec<_> = listed.difference(&called).collect();
        assert!(
            stale.is_empty(),
            "CALLED_ACTIONS lists actions nothing calls: {stale:?}"
        );
    }

    #[test]
    fn the_scan_finds_calls_split_over_lines_and_in_macros() {
        let source = r#"
            macro_rules! list_all { ($op:ident) => { self.eks.$op().send() }; }
            fn f(&self) {
                self.ec2
                    .create_vpc()     // a comment with .iam.get_role( in it
                    .send();
                list_all!(list_addons);
                self.quotas.get_service_quota().send();
            }
        "#;
        let found: Vec<_> = calls_in(source).into_iter().collect();
        assert_eq!(
            found,
            [
                "ec2:CreateVpc",
                "eks:ListAddons",
                "servicequotas:GetServiceQuota"
            ]
        );
    }

    #[test]
    fn required_actions_are_unique_and_include_pass_role_and_the_tag_actions() {
        let all = required_actions();
        let unique: BTreeSet<_> = all.iter().collect();
        assert_eq!(unique.len(), all.len());
        for needed in [
            "iam:PassRole",
            "eks:CreateCluster",
            "ec2:CreateTags",
            "iam:TagRole",
            "eks:TagResource",
        ] {
            assert!(all.contains(&needed), "{needed}");
        }
        assert!(!all.contains(&"pricing:GetProducts"));
        // GetCallerIdentity needs no permission (STS API reference): never simulated.
        assert!(!all.contains(&"sts:GetCallerIdentity"));
        for a in DOCTOR_ONLY_ACTIONS.iter().chain(UNAUTHORISED_ACTIONS) {
            assert!(CALLED_ACTIONS.contains(a), "{a}");
        }
    }

    fn scope(flow: PermissionFlow) -> PermissionScope {
        PermissionScope {
            partition: "aws".into(),
            account: "123456789012".into(),
            region: "eu-west-1".into(),
            stack: "ci".into(),
            cluster: "ci".into(),
            extra_tags: vec!["team".into()],
            caller_role: Some("arn:aws:iam::123456789012:role/ci/deployer".into()),
            flow,
        }
    }

    fn checks_of<'a>(checks: &'a [PermissionCheck], action: &str) -> Vec<&'a PermissionCheck> {
        checks.iter().filter(|c| c.action == action).collect()
    }

    fn context<'a>(check: &'a PermissionCheck, key: &str) -> Option<&'a [String]> {
        check
            .context
            .iter()
            .find(|c| c.key == key)
            .map(|c| c.values.as_slice())
    }

    #[test]
    fn provisioning_checks_every_required_action_and_nothing_else() {
        let checks = permission_checks(&scope(PermissionFlow::Provision));
        let checked: BTreeSet<&str> = checks.iter().map(|c| c.action.as_str()).collect();
        let required: BTreeSet<&str> = required_actions().into_iter().collect();
        assert_eq!(checked, required);
        for c in &checks {
            assert!(!c.resources.is_empty(), "{c:?}");
            assert!(
                context(c, "aws:RequestedRegion").is_some(),
                "{} carries no aws:RequestedRegion",
                c.action
            );
        }
    }

    #[test]
    fn actions_are_checked_on_the_stacks_own_arns_with_the_calls_context() {
        let checks = permission_checks(&scope(PermissionFlow::Provision));
        let roles = [
            "arn:aws:iam::123456789012:role/glrunner/ci-eu-west-1-eks-cluster",
            "arn:aws:iam::123456789012:role/ci-eu-west-1-fargate-pods",
        ];
        for action in [
            "iam:CreateRole",
            "iam:TagRole",
            "iam:DeleteRole",
            "iam:AttachRolePolicy",
        ] {
            let c = checks_of(&checks, action);
            assert_eq!(c.len(), 1, "{action}");
            assert_eq!(c[0].resources, roles, "{action}");
        }
        // The caller's own role is read to name it in its access entry.
        assert!(
            checks_of(&checks, "iam:GetRole")[0]
                .resources
                .contains(&"arn:aws:iam::123456789012:role/ci/deployer".to_string())
        );
        let cluster = "arn:aws:eks:eu-west-1:123456789012:cluster/ci";
        for action in [
            "eks:DescribeCluster",
            "eks:DeleteCluster",
            "eks:CreateFargateProfile",
        ] {
            assert_eq!(
                checks_of(&checks, action)[0].resources,
                [cluster],
                "{action}"
            );
        }
        // CreateCluster has no resource type: `*`, with the tags it sends.
        let create = checks_of(&checks, "eks:CreateCluster")[0];
        assert_eq!(create.resources, ["*"]);
        assert_eq!(
            context(create, "aws:RequestTag/glrunner.io/stack"),
            Some(&["ci".to_string()][..])
        );
        let keys = context(create, "aws:TagKeys").unwrap();
        for key in ["glrunner.io/stack", "glrunner.io/key", "Name", "team"] {
            assert!(keys.contains(&key.to_string()), "{keys:?}");
        }
        // eks:TagResource on each tagged resource: the cluster, its profile, entries, add-on.
        let tagged: Vec<&str> = checks_of(&checks, "eks:TagResource")
            .iter()
            .map(|c| c.resources[0].as_str())
            .collect();
        assert_eq!(
            tagged,
            [
                cluster,
                "arn:aws:eks:eu-west-1:123456789012:fargateprofile/ci/ci-fargate/*",
                "arn:aws:eks:eu-west-1:123456789012:access-entry/ci/*",
                "arn:aws:eks:eu-west-1:123456789012:addon/ci/coredns/*",
            ]
        );
        // ec2:CreateTags once per tagged create, with ec2:CreateAction naming it.
        let creates: Vec<&str> = checks_of(&checks, "ec2:CreateTags")
            .iter()
            .map(|c| context(c, "ec2:CreateAction").unwrap()[0].as_str())
            .collect();
        assert_eq!(
            creates,
            [
                "CreateVpc",
                "CreateSubnet",
                "CreateInternetGateway",
                "AllocateAddress",
                "CreateNatGateway",
                "CreateRouteTable",
                "CreateVpcEndpoint"
            ]
        );
        // PassRole names the role and the service it is passed to.
        let passed: Vec<(&str, &str)> = checks_of(&checks, "iam:PassRole")
            .iter()
            .map(|c| {
                (
                    c.resources[0].as_str(),
                    context(c, "iam:PassedToService").unwrap()[0].as_str(),
                )
            })
            .collect();
        assert_eq!(
            passed,
            [
                (roles[0], "eks.amazonaws.com"),
                (roles[1], "eks.amazonaws.com"),
                (roles[1], "eks-fargate-pods.amazonaws.com"),
            ]
        );
        let linked: Vec<&str> = checks_of(&checks, "iam:CreateServiceLinkedRole")
            .iter()
            .map(|c| context(c, "iam:AWSServiceName").unwrap()[0].as_str())
            .collect();
        assert_eq!(
            linked,
            [
                "eks.amazonaws.com",
                "eks-fargate.amazonaws.com",
                "pullthroughcache.ecr.amazonaws.com"
            ]
        );
        // IAM is global: its calls are made in us-east-1.
        assert_eq!(
            context(
                checks_of(&checks, "iam:CreateRole")[0],
                "aws:RequestedRegion"
            ),
            Some(&["us-east-1".to_string()][..])
        );
    }

    #[test]
    fn a_brought_cluster_is_checked_only_for_what_its_flow_reads() {
        let mut s = scope(PermissionFlow::BroughtEksCluster);
        s.cluster = "shared".into();
        let checks = permission_checks(&s);
        let got: Vec<(&str, &str)> = checks
            .iter()
            .map(|c| (c.action.as_str(), c.resources[0].as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "eks:DescribeCluster",
                    "arn:aws:eks:eu-west-1:123456789012:cluster/shared"
                ),
                (
                    "eks:ListFargateProfiles",
                    "arn:aws:eks:eu-west-1:123456789012:cluster/shared"
                ),
                (
                    "eks:DescribeFargateProfile",
                    "arn:aws:eks:eu-west-1:123456789012:fargateprofile/shared/*"
                ),
            ]
        );
    }

    /// The README's least-privilege policy (the JSON block after its marker comment), with
    /// placeholders left in.
    pub(crate) fn readme_policy() -> serde_json::Value {
        let readme = std::path::PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("../../README.md");
        let text = std::fs::read_to_string(&readme).unwrap();
        let after = text
            .split_once("<!-- glrunner-least-privilege-policy -->")
            .expect("README.md has no least-privilege policy marker")
            .1;
        let block = after
            .split_once("```json")
            .and_then(|(_, rest)| rest.split_once("```"))
            .expect("no ```json block after the marker")
            .0;
        serde_json::from_str(block).expect("the README policy is JSON")
    }

    #[test]
    fn the_readme_policy_grants_exactly_the_action_list() {
        let policy = readme_policy();
        let mut granted = BTreeSet::new();
        for statement in policy["Statement"].as_array().unwrap() {
            assert_eq!(statement["Effect"], "Allow", "{statement}");
            match &statement["Action"] {
                serde_json::Value::String(a) => {
                    granted.insert(a.clone());
                }
                serde_json::Value::Array(list) => {
                    granted.extend(list.iter().map(|a| a.as_str().unwrap().to_owned()));
                }
                other => panic!("Action {other}"),
            }
            // Nothing on `*` but what AWS cannot scope (no resource type in the Service
            // Authorization Reference, or EC2, whose resources have no ARN before they exist).
            if statement["Resource"] == "*" {
                let actions: Vec<String> = match &statement["Action"] {
                    serde_json::Value::String(a) => vec![a.clone()],
                    serde_json::Value::Array(l) => {
                        l.iter().map(|a| a.as_str().unwrap().to_owned()).collect()
                    }
                    _ => unreachable!(),
                };
                for a in actions {
                    assert!(
                        a.starts_with("ec2:")
                            || [
                                "eks:CreateCluster",
                                "eks:ListClusters",
                                "iam:ListRoles",
                                "iam:ListOpenIDConnectProviders",
                                "s3:ListAllMyBuckets",
                                "servicequotas:GetAWSDefaultServiceQuota",
                                "pricing:GetProducts",
                                // No resource type (Service Authorization Reference, ECR
                                // and Secrets Manager).
                                "ecr:CreatePullThroughCacheRule",
                                "ecr:DeletePullThroughCacheRule",
                                "ecr:DescribePullThroughCacheRules",
                                "ecr:DescribeRepositories",
                                "secretsmanager:ListSecrets",
                            ]
                            .contains(&a.as_str()),
                        "{a} is granted on * in the README"
                    );
                }
            }
        }
        let wanted: BTreeSet<String> = required_actions()
            .into_iter()
            .chain(DOCTOR_ONLY_ACTIONS.iter().copied())
            .map(str::to_owned)
            .collect();
        let missing: Vec<_> = wanted.difference(&granted).collect();
        let extra: Vec<_> = granted.difference(&wanted).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "README policy vs glrunner's actions: missing {missing:?}, not used {extra:?}"
        );
    }
}
