//! EKS (cluster, Fargate profile, add-on, access entry), IAM roles and the STS caller identity.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_eks::types::{
    AccessScope, AccessScopeType, AddonStatus, AuthenticationMode, ClusterStatus,
    CreateAccessConfigRequest, FargateProfileSelector, FargateProfileStatus, ResolveConflicts,
    VpcConfigRequest,
};

use super::map_sdk_error;
use crate::error::{Error, Result};
use crate::identity::{Caller, classify_caller};
use crate::provider::ClusterProvisioner;
use crate::resource::{
    ClusterAccess, CreateRequest, Resource, ResourceKind, ResourceState, ResourceTags,
};
use crate::spec::{FargateSelector, KEY_TAG, REGION_TAG, STACK_TAG, StackName};

/// IAM path of the EKS cluster role glrunner creates. The Fargate pod execution role lives at
/// `/` ([`crate::resource::RoleTrust::path`]); discovery lists every path (older stacks made
/// both roles under this one).
pub const ROLE_PATH: &str = "/glrunner/";

/// [`ClusterProvisioner`] on aws-sdk-eks, aws-sdk-iam and STS.
#[derive(Debug, Clone)]
pub struct AwsCluster {
    pub(super) eks: aws_sdk_eks::Client,
    pub(super) iam: aws_sdk_iam::Client,
    sts: aws_sdk_sts::Client,
    /// The EKS client's region: IAM is global, so roles are told apart by region.
    pub(super) region: String,
    /// ECR (pull-through cache rules and their repositories).
    pub(super) ecr: aws_sdk_ecr::Client,
    /// Secrets Manager (upstream registry credentials).
    pub(super) secrets: aws_sdk_secretsmanager::Client,
    /// Whether `ecr` and `secrets` are real clients (else the cache is neither discovered nor made).
    pub(super) cache_clients: bool,
    /// S3, for the runner cache's bucket ([`AwsCluster::with_s3`]); `None` finds no bucket and
    /// refuses to create one.
    pub(super) s3: Option<aws_sdk_s3::Client>,
}

impl AwsCluster {
    /// From a loaded [`aws_config::SdkConfig`] (see [`super::load_config`]).
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        // An endpoint override (moto, LocalStack) serves buckets by path, not by host name.
        let s3 = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(config.endpoint_url().is_some())
            .build();
        Self::from_clients(
            aws_sdk_eks::Client::new(config),
            aws_sdk_iam::Client::new(config),
            aws_sdk_sts::Client::new(config),
        )
        .with_cache_clients(
            aws_sdk_ecr::Client::new(config),
            aws_sdk_secretsmanager::Client::new(config),
        )
        .with_s3(aws_sdk_s3::Client::from_conf(s3))
    }

    /// With the ECR and Secrets Manager clients of the pull-through cache (without them, the
    /// cache's resources are neither discovered nor created).
    #[must_use]
    pub fn with_cache_clients(
        mut self,
        ecr: aws_sdk_ecr::Client,
        secrets: aws_sdk_secretsmanager::Client,
    ) -> Self {
        self.ecr = ecr;
        self.secrets = secrets;
        self.cache_clients = true;
        self
    }

    /// Adds the S3 client the runner cache's bucket is made with.
    #[must_use]
    pub fn with_s3(mut self, s3: aws_sdk_s3::Client) -> Self {
        self.s3 = Some(s3);
        self
    }

    /// From existing clients (tests pass mocked clients here). The region is the EKS client's.
    pub fn from_clients(
        eks: aws_sdk_eks::Client,
        iam: aws_sdk_iam::Client,
        sts: aws_sdk_sts::Client,
    ) -> Self {
        let region = eks
            .config()
            .region()
            .map(|r| r.to_string())
            .unwrap_or_default();
        // Placeholders, never called until with_cache_clients (cache_clients is false).
        let placeholder = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.clone()))
            .build();
        Self {
            eks,
            iam,
            sts,
            ecr: aws_sdk_ecr::Client::new(&placeholder),
            secrets: aws_sdk_secretsmanager::Client::new(&placeholder),
            cache_clients: false,
            region,
            s3: None,
        }
    }
}

fn cluster_state(status: Option<&ClusterStatus>) -> ResourceState {
    match status {
        Some(ClusterStatus::Active | ClusterStatus::Updating) => ResourceState::Available,
        Some(ClusterStatus::Deleting) => ResourceState::Deleting,
        Some(ClusterStatus::Failed) => ResourceState::Failed,
        _ => ResourceState::Creating,
    }
}

fn profile_state(status: Option<&FargateProfileStatus>) -> ResourceState {
    match status {
        Some(FargateProfileStatus::Active) => ResourceState::Available,
        Some(FargateProfileStatus::Deleting) => ResourceState::Deleting,
        Some(FargateProfileStatus::CreateFailed | FargateProfileStatus::DeleteFailed) => {
            ResourceState::Failed
        }
        _ => ResourceState::Creating,
    }
}

fn addon_state(status: Option<&AddonStatus>) -> ResourceState {
    match status {
        Some(AddonStatus::Active | AddonStatus::Updating) => ResourceState::Available,
        Some(AddonStatus::Deleting) => ResourceState::Deleting,
        Some(AddonStatus::CreateFailed | AddonStatus::DeleteFailed | AddonStatus::UpdateFailed) => {
            ResourceState::Failed
        }
        // DEGRADED right after creation means CoreDNS pods are still being scheduled on Fargate.
        _ => ResourceState::Creating,
    }
}

fn key_of(tags: Option<&HashMap<String, String>>) -> String {
    tags.and_then(|t| t.get(KEY_TAG))
        .cloned()
        .unwrap_or_default()
}

fn is_ours(tags: Option<&HashMap<String, String>>, stack: &StackName) -> bool {
    tags.and_then(|t| t.get(STACK_TAG)).map(String::as_str) == Some(stack.as_str())
}

/// Splits `cluster/name` ids of profiles, add-ons and access entries.
fn split_id(kind: ResourceKind, id: &str) -> Result<(&str, &str)> {
    id.split_once('/').ok_or_else(|| {
        Error::invalid(
            "id",
            format!("{kind} id {id:?} must look like <cluster>/<name>"),
        )
    })
}

/// The trust policy of a role glrunner creates; with `source_arn`, the `aws:SourceArn`
/// condition EKS recommends against the confused-deputy problem.
pub fn trust_policy(service: &str, source_arn: Option<&str>) -> String {
    let mut statement = serde_json::json!({
        "Effect": "Allow",
        "Principal": { "Service": service },
        "Action": "sts:AssumeRole"
    });
    if let Some(arn) = source_arn {
        statement["Condition"] = serde_json::json!({ "ArnLike": { "aws:SourceArn": arn } });
    }
    serde_json::json!({ "Version": "2012-10-17", "Statement": [statement] }).to_string()
}

/// Whether a (possibly URL-encoded) trust policy lets `service` assume the role.
fn trusts(document: &str, service: &str) -> bool {
    let decoded = percent_decode(document);
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(&decoded) else {
        return false;
    };
    let statements = match &doc["Statement"] {
        serde_json::Value::Array(list) => list.clone(),
        other => vec![other.clone()],
    };
    statements.iter().any(|s| {
        s["Effect"] == "Allow"
            && match &s["Principal"]["Service"] {
                serde_json::Value::String(one) => one == service,
                serde_json::Value::Array(many) => many.iter().any(|v| v == service),
                _ => false,
            }
    })
}

/// IAM returns policy documents URL-encoded.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl AwsCluster {
    async fn describe_cluster_resource(
        &self,
        name: &str,
    ) -> Result<Option<(Resource, Option<HashMap<String, String>>)>> {
        match self.eks.describe_cluster().name(name).send().await {
            Ok(out) => Ok(out.cluster().map(|c| {
                (
                    Resource {
                        kind: ResourceKind::Cluster,
                        id: name.to_string(),
                        key: key_of(c.tags()),
                        arn: c.arn().map(str::to_string),
                        state: cluster_state(c.status()),
                    },
                    c.tags().cloned(),
                )
            })),
            Err(e) => match map_sdk_error("describe EKS cluster", name, "eks", e) {
                err if err.is_not_found() => Ok(None),
                err => Err(err),
            },
        }
    }

    async fn describe_profile(&self, cluster: &str, name: &str) -> Result<Option<Resource>> {
        match self
            .eks
            .describe_fargate_profile()
            .cluster_name(cluster)
            .fargate_profile_name(name)
            .send()
            .await
        {
            Ok(out) => Ok(out.fargate_profile().map(|p| Resource {
                kind: ResourceKind::FargateProfile,
                id: format!("{cluster}/{name}"),
                key: key_of(p.tags()),
                arn: p.fargate_profile_arn().map(str::to_string),
                state: profile_state(p.status()),
            })),
            Err(e) => gone(map_sdk_error(
                "describe Fargate profile",
                format!("{cluster}/{name}"),
                "eks",
                e,
            )),
        }
    }

    async fn describe_addon(&self, cluster: &str, name: &str) -> Result<Option<Resource>> {
        match self
            .eks
            .describe_addon()
            .cluster_name(cluster)
            .addon_name(name)
            .send()
            .await
        {
            Ok(out) => Ok(out.addon().map(|a| Resource {
                kind: ResourceKind::Addon,
                id: format!("{cluster}/{name}"),
                key: key_of(a.tags()),
                arn: a.addon_arn().map(str::to_string),
                state: addon_state(a.status()),
            })),
            Err(e) => gone(map_sdk_error(
                "describe EKS add-on",
                format!("{cluster}/{name}"),
                "eks",
                e,
            )),
        }
    }

    async fn describe_access_entry(
        &self,
        cluster: &str,
        principal: &str,
    ) -> Result<Option<Resource>> {
        match self
            .eks
            .describe_access_entry()
            .cluster_name(cluster)
            .principal_arn(principal)
            .send()
            .await
        {
            Ok(out) => Ok(out.access_entry().map(|a| Resource {
                kind: ResourceKind::AccessEntry,
                id: format!("{cluster}/{principal}"),
                key: key_of(a.tags()),
                arn: a.access_entry_arn().map(str::to_string),
                state: ResourceState::Available,
            })),
            Err(e) => gone(map_sdk_error(
                "describe EKS access entry",
                format!("{cluster}/{principal}"),
                "eks",
                e,
            )),
        }
    }

    async fn describe_role(&self, name: &str) -> Result<Option<(Resource, Vec<(String, String)>)>> {
        match self.iam.get_role().role_name(name).send().await {
            Ok(out) => Ok(out.role().map(|r| {
                let tags: Vec<(String, String)> = r
                    .tags()
                    .iter()
                    .map(|t| (t.key().to_string(), t.value().to_string()))
                    .collect();
                let key = tags
                    .iter()
                    .find(|(k, _)| k == KEY_TAG)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                (
                    Resource {
                        kind: ResourceKind::IamRole,
                        id: name.to_string(),
                        key,
                        arn: Some(r.arn().to_string()),
                        state: ResourceState::Available,
                    },
                    tags,
                )
            })),
            Err(e) => match map_sdk_error("get IAM role", name, "iam", e) {
                err if err.is_not_found() => Ok(None),
                err => Err(err),
            },
        }
    }

    async fn discover_roles(&self, stack: &StackName) -> Result<Vec<Resource>> {
        let roles = self
            .iam
            .list_roles()
            .path_prefix("/")
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| map_sdk_error("list IAM roles", "/", "iam", e))?;
        let mut found = Vec::new();
        let prefix = format!("{stack}-");
        for role in roles.iter().filter(|r| r.role_name().starts_with(&prefix)) {
            // ListRoles does not return tags; GetRole does. IAM is global: the same stack
            // name in another region has its own roles, told apart by the region tag.
            if let Some((resource, tags)) = self.describe_role(role.role_name()).await?
                && tags
                    .iter()
                    .any(|(k, v)| k == STACK_TAG && v == stack.as_str())
                && tags
                    .iter()
                    .any(|(k, v)| k == REGION_TAG && *v == self.region)
            {
                found.push(resource);
            }
        }
        Ok(found)
    }

    async fn discover_in_cluster(&self, cluster: &str) -> Result<Vec<Resource>> {
        /// Every name a paginated EKS List call returns for the cluster.
        macro_rules! list_all {
            ($op:ident, $what:literal) => {
                self.eks
                    .$op()
                    .cluster_name(cluster)
                    .into_paginator()
                    .items()
                    .send()
                    .try_collect()
                    .await
                    .map_err(|e| map_sdk_error(concat!("list ", $what), cluster, "eks", e))?
            };
        }
        let mut found = Vec::new();
        // A cluster deleted since ListClusters answers ClientException "No cluster found".
        let profiles: Result<Vec<String>> =
            async { Ok(list_all!(list_fargate_profiles, "Fargate profiles")) }.await;
        let profiles = match profiles {
            Ok(names) => names,
            Err(err) if Error::is_not_found(&err) => return Ok(found),
            Err(err) => return Err(err),
        };
        for name in profiles {
            found.extend(self.describe_profile(cluster, &name).await?);
        }
        for name in list_all!(list_addons, "EKS add-ons") {
            found.extend(self.describe_addon(cluster, &name).await?);
        }
        for principal in list_all!(list_access_entries, "EKS access entries") {
            found.extend(self.describe_access_entry(cluster, &principal).await?);
        }
        Ok(found)
    }

    /// The ARNs of the managed policies attached to role `name` (every page).
    async fn attached_policy_arns(&self, name: &str) -> Result<Vec<String>> {
        let attached: Vec<_> = self
            .iam
            .list_attached_role_policies()
            .role_name(name)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| {
                map_sdk_error(
                    "list attached role policies",
                    format!("IAM role {name}"),
                    "iam",
                    e,
                )
            })?;
        Ok(attached
            .iter()
            .filter_map(|p| p.policy_arn().map(str::to_owned))
            .collect())
    }

    /// The names of role `name`'s inline policies (every page).
    pub(super) async fn inline_policy_names(&self, name: &str) -> Result<Vec<String>> {
        self.iam
            .list_role_policies()
            .role_name(name)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| {
                map_sdk_error(
                    "list inline role policies",
                    format!("IAM role {name}"),
                    "iam",
                    e,
                )
            })
    }

    pub(super) async fn delete_role(&self, name: &str) -> Result<()> {
        let attached = self.attached_policy_arns(name).await?;
        for arn in &attached {
            match self
                .iam
                .detach_role_policy()
                .role_name(name)
                .policy_arn(arn)
                .send()
                .await
                .map_err(|e| {
                    map_sdk_error("detach role policy", format!("IAM role {name}"), "iam", e)
                }) {
                Err(err) if !err.is_not_found() => return Err(err),
                _ => {}
            }
        }
        for policy in self.inline_policy_names(name).await? {
            match self
                .iam
                .delete_role_policy()
                .role_name(name)
                .policy_name(policy)
                .send()
                .await
                .map_err(|e| {
                    map_sdk_error(
                        "delete inline role policy",
                        format!("IAM role {name}"),
                        "iam",
                        e,
                    )
                }) {
                Err(err) if !err.is_not_found() => return Err(err),
                _ => {}
            }
        }
        self.iam
            .delete_role()
            .role_name(name)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| map_sdk_error("delete IAM role", format!("IAM role {name}"), "iam", e))
    }

    async fn rollback(&self, resource: Resource, cause: Error) -> Error {
        tracing::warn!(resource = %resource.describe(), error = %cause, "rolling back a half-created resource");
        if let Err(e) = self.delete(&resource).await {
            tracing::error!(resource = %resource.describe(), error = %e, "rollback failed; teardown will find it by tag");
        }
        cause
    }
}

fn gone(err: Error) -> Result<Option<Resource>> {
    if err.is_not_found() {
        Ok(None)
    } else {
        Err(err)
    }
}

/// One `create` per kind of IAM and EKS resource: the call, its follow-up calls (policy
/// attachments, access policy associations), and a rollback when a follow-up fails.
impl AwsCluster {
    /// Creates a tagged role at `path` trusting `trust_document`, puts `inline_policy` on it and
    /// attaches `policy_arns`; a failed follow-up deletes the half-made role again.
    pub(super) async fn create_role(
        &self,
        name: &str,
        path: &str,
        trust_document: &str,
        inline_policy: Option<&(String, String)>,
        policy_arns: &[String],
        tags: &ResourceTags,
    ) -> Result<Resource> {
        let kind = ResourceKind::IamRole;
        let action = format!("create {kind}");
        let mut role_tags: HashMap<String, String> = tags.pairs().into_iter().collect();
        role_tags.insert(REGION_TAG.to_string(), self.region.clone());
        let out = self
            .iam
            .create_role()
            .role_name(name)
            .path(path)
            .assume_role_policy_document(trust_document)
            .set_tags(Some(
                role_tags
                    .iter()
                    .map(|(k, v)| aws_sdk_iam::types::Tag::builder().key(k).value(v).build())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| Error::Backend {
                        action: action.clone(),
                        backend: "iam",
                        source: Box::new(e),
                    })?,
            ))
            .send()
            .await
            .map_err(|e| map_sdk_error(&action, name, "iam", e))?;
        let role = Resource {
            kind,
            id: name.to_string(),
            key: tags.key.clone(),
            arn: out.role().map(|r| r.arn().to_string()),
            state: ResourceState::Available,
        };
        if let Some((policy_name, policy)) = inline_policy
            && let Err(e) = self
                .iam
                .put_role_policy()
                .role_name(name)
                .policy_name(policy_name)
                .policy_document(policy)
                .send()
                .await
        {
            let err = map_sdk_error(
                "put role policy",
                format!("{policy_name} on {name}"),
                "iam",
                e,
            );
            return Err(self.rollback(role, err).await);
        }
        for policy in policy_arns {
            if let Err(e) = self
                .iam
                .attach_role_policy()
                .role_name(name)
                .policy_arn(policy)
                .send()
                .await
            {
                let err = map_sdk_error(
                    "attach role policy",
                    format!("{policy} to {name}"),
                    "iam",
                    e,
                );
                return Err(self.rollback(role, err).await);
            }
        }
        Ok(role)
    }

    async fn create_cluster(
        &self,
        name: &str,
        version: &str,
        role_arn: &str,
        subnet_ids: &[String],
        public_access_cidrs: &[String],
        tags: &ResourceTags,
    ) -> Result<Resource> {
        let kind = ResourceKind::Cluster;
        let action = format!("create {kind}");
        let tag_map: HashMap<String, String> = tags.pairs().into_iter().collect();
        let out = self
            .eks
            .create_cluster()
            .name(name)
            .version(version)
            .role_arn(role_arn)
            .resources_vpc_config(
                VpcConfigRequest::builder()
                    .set_subnet_ids(Some(subnet_ids.to_vec()))
                    .endpoint_public_access(true)
                    .endpoint_private_access(true)
                    .set_public_access_cidrs(Some(public_access_cidrs.to_vec()))
                    .build(),
            )
            // Access entries only: no aws-auth ConfigMap, and no implicit admin for the
            // creator (we grant it explicitly, visibly, as a step of the plan).
            .access_config(
                CreateAccessConfigRequest::builder()
                    .authentication_mode(AuthenticationMode::Api)
                    .bootstrap_cluster_creator_admin_permissions(false)
                    .build(),
            )
            .set_tags(Some(tag_map))
            .send()
            .await
            .map_err(|e| {
                use aws_sdk_eks::operation::create_cluster::CreateClusterError;
                // EKS names the zones it accepts; the stack re-plans on them.
                if let Some(CreateClusterError::UnsupportedAvailabilityZoneException(z)) =
                    e.as_service_error()
                {
                    return Error::UnsupportedZones {
                        action: format!("{action} {name}"),
                        message: z.message().unwrap_or_default().to_string(),
                        valid_zones: z.valid_zones().to_vec(),
                    };
                }
                map_sdk_error(&action, name, "eks", e)
            })?;
        let cluster = out.cluster();
        Ok(Resource {
            kind,
            id: name.to_string(),
            key: tags.key.clone(),
            arn: cluster.and_then(|c| c.arn()).map(str::to_string),
            state: cluster_state(cluster.and_then(|c| c.status())),
        })
    }

    async fn create_fargate_profile(
        &self,
        cluster: &str,
        name: &str,
        pod_execution_role_arn: &str,
        subnet_ids: &[String],
        selectors: &[FargateSelector],
        tags: &ResourceTags,
    ) -> Result<Resource> {
        let kind = ResourceKind::FargateProfile;
        let action = format!("create {kind}");
        let tag_map: HashMap<String, String> = tags.pairs().into_iter().collect();
        let selectors = selectors
            .iter()
            .map(|s| {
                FargateProfileSelector::builder()
                    .namespace(&s.namespace)
                    .set_labels(
                        (!s.labels.is_empty()).then(|| s.labels.clone().into_iter().collect()),
                    )
                    .build()
            })
            .collect();
        let out = self
            .eks
            .create_fargate_profile()
            .cluster_name(cluster)
            .fargate_profile_name(name)
            .pod_execution_role_arn(pod_execution_role_arn)
            .set_subnets(Some(subnet_ids.to_vec()))
            .set_selectors(Some(selectors))
            .set_tags(Some(tag_map))
            .send()
            .await
            .map_err(|e| map_sdk_error(&action, format!("{cluster}/{name}"), "eks", e))?;
        let profile = out.fargate_profile();
        Ok(Resource {
            kind,
            id: format!("{cluster}/{name}"),
            key: tags.key.clone(),
            arn: profile
                .and_then(|p| p.fargate_profile_arn())
                .map(str::to_string),
            state: profile_state(profile.and_then(|p| p.status())),
        })
    }

    async fn create_addon(
        &self,
        cluster: &str,
        name: &str,
        configuration: &str,
        tags: &ResourceTags,
    ) -> Result<Resource> {
        let kind = ResourceKind::Addon;
        let action = format!("create {kind}");
        let tag_map: HashMap<String, String> = tags.pairs().into_iter().collect();
        let out = self
            .eks
            .create_addon()
            .cluster_name(cluster)
            .addon_name(name)
            .configuration_values(configuration)
            .resolve_conflicts(ResolveConflicts::Overwrite)
            .set_tags(Some(tag_map))
            .send()
            .await
            .map_err(|e| map_sdk_error(&action, format!("{cluster}/{name}"), "eks", e))?;
        let addon = out.addon();
        Ok(Resource {
            kind,
            id: format!("{cluster}/{name}"),
            key: tags.key.clone(),
            arn: addon.and_then(|a| a.addon_arn()).map(str::to_string),
            state: addon_state(addon.and_then(|a| a.status())),
        })
    }

    async fn create_access_entry(
        &self,
        cluster: &str,
        principal_arn: &str,
        policy_arn: &str,
        tags: &ResourceTags,
    ) -> Result<Resource> {
        let kind = ResourceKind::AccessEntry;
        let action = format!("create {kind}");
        let tag_map: HashMap<String, String> = tags.pairs().into_iter().collect();
        let out = self
            .eks
            .create_access_entry()
            .cluster_name(cluster)
            .principal_arn(principal_arn)
            .r#type("STANDARD")
            .set_tags(Some(tag_map))
            .send()
            .await
            .map_err(|e| map_sdk_error(&action, format!("{cluster}/{principal_arn}"), "eks", e))?;
        let entry = Resource {
            kind,
            id: format!("{cluster}/{principal_arn}"),
            key: tags.key.clone(),
            arn: out
                .access_entry()
                .and_then(|a| a.access_entry_arn())
                .map(str::to_string),
            state: ResourceState::Available,
        };
        let associate = self
            .eks
            .associate_access_policy()
            .cluster_name(cluster)
            .principal_arn(principal_arn)
            .policy_arn(policy_arn)
            .access_scope(
                AccessScope::builder()
                    .r#type(AccessScopeType::Cluster)
                    .build(),
            )
            .send()
            .await;
        if let Err(e) = associate {
            let err = map_sdk_error(
                "associate access policy",
                format!("{policy_arn} with {principal_arn}"),
                "eks",
                e,
            );
            return Err(self.rollback(entry, err).await);
        }
        Ok(entry)
    }
}

#[async_trait]
impl ClusterProvisioner for AwsCluster {
    async fn caller_arn(&self) -> Result<String> {
        let out = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| map_sdk_error("get caller identity", "STS", "sts", e))?;
        let arn = out.arn().ok_or_else(|| Error::PermissionDenied {
            action: "get caller identity".into(),
            message: "STS returned no ARN".into(),
        })?;
        match classify_caller(arn)? {
            Caller::IamUser { arn } => Ok(arn),
            // The assumed-role ARN drops the role's path; the access entry needs it.
            Caller::AssumedRole { role_name, .. } => {
                let out = self
                    .iam
                    .get_role()
                    .role_name(&role_name)
                    .send()
                    .await
                    .map_err(|e| {
                        map_sdk_error(
                            "get IAM role of the caller (iam:GetRole, to name it with its path in the access entry)",
                            format!("IAM role {role_name}"),
                            "iam",
                            e,
                        )
                    })?;
                out.role()
                    .map(|r| r.arn().to_string())
                    .ok_or_else(|| Error::NotFound {
                        action: "get IAM role of the caller".into(),
                        resource: format!("IAM role {role_name}"),
                    })
            }
        }
    }

    async fn discover(&self, stack: &StackName) -> Result<Vec<Resource>> {
        let mut found = self.discover_roles(stack).await?;
        found.extend(self.discover_oidc_providers(stack).await?);
        let cache = self.discover_cache(stack, &found).await?;
        found.extend(cache);
        found.extend(self.discover_cache_buckets(stack).await?);
        let clusters = self
            .eks
            .list_clusters()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| map_sdk_error("list EKS clusters", "region", "eks", e))?;
        // A stack's cluster is named after it (StackSpec::validate). In a shared account the
        // caller may list every cluster of the Region but not describe the others' (a policy
        // scoped to `arn:aws:eks:*:*:cluster/<stack>` answers AccessDeniedException), so only
        // the stack's own name is described. An error on that one is not skipped: the cluster
        // may be ours, and teardown keeps the network while it may exist.
        for name in clusters.into_iter().filter(|n| n == stack.as_str()) {
            if let Some((cluster, tags)) = self.describe_cluster_resource(&name).await?
                && is_ours(tags.as_ref(), stack)
            {
                if cluster.state != ResourceState::Deleting {
                    found.extend(self.discover_in_cluster(&name).await?);
                }
                found.push(cluster);
            }
        }
        Ok(found)
    }

    async fn create(&self, request: &CreateRequest, tags: &ResourceTags) -> Result<Resource> {
        match request {
            CreateRequest::IamRole {
                name,
                trust,
                policy_arns,
                source_arn,
            } => {
                let document = trust_policy(trust.service(), source_arn.as_deref());
                self.create_role(name, trust.path(), &document, None, policy_arns, tags)
                    .await
            }
            CreateRequest::Cluster {
                name,
                version,
                role_arn,
                subnet_ids,
                public_access_cidrs,
            } => {
                self.create_cluster(
                    name,
                    version,
                    role_arn,
                    subnet_ids,
                    public_access_cidrs,
                    tags,
                )
                .await
            }
            CreateRequest::FargateProfile {
                cluster,
                name,
                pod_execution_role_arn,
                subnet_ids,
                selectors,
            } => {
                self.create_fargate_profile(
                    cluster,
                    name,
                    pod_execution_role_arn,
                    subnet_ids,
                    selectors,
                    tags,
                )
                .await
            }
            CreateRequest::Addon {
                cluster,
                name,
                configuration,
            } => self.create_addon(cluster, name, configuration, tags).await,
            CreateRequest::AccessEntry {
                cluster,
                principal_arn,
                policy_arn,
            } => {
                self.create_access_entry(cluster, principal_arn, policy_arn, tags)
                    .await
            }
            CreateRequest::OidcProvider { cluster } => {
                self.create_oidc_provider(cluster, tags).await
            }
            CreateRequest::PullThroughCacheRule {
                prefix,
                upstream,
                credential_arn,
            } => {
                self.create_rule(prefix, *upstream, credential_arn.as_deref(), tags)
                    .await
            }
            CreateRequest::CacheSecret { name, value } => {
                self.create_secret(name, value, tags).await
            }
            CreateRequest::RolePolicy {
                role,
                name,
                document,
            } => self.put_role_policy(role, name, document, tags).await,
            CreateRequest::CacheBucket { name, expire_days } => {
                self.create_cache_bucket(name, *expire_days, tags).await
            }
            // IRSA roles sit at `/`, as the cache and job roles' ARNs say.
            CreateRequest::IrsaRole {
                name,
                trust_policy,
                inline_policy,
                policy_arns,
            } => {
                self.create_role(
                    name,
                    "/",
                    trust_policy,
                    inline_policy.as_ref(),
                    policy_arns,
                    tags,
                )
                .await
            }
            other => Err(Error::invalid(
                "request",
                format!("{} is not a cluster resource", other.kind()),
            )),
        }
    }

    async fn describe(&self, kind: ResourceKind, id: &str) -> Result<Option<Resource>> {
        match kind {
            ResourceKind::Cluster => Ok(self.describe_cluster_resource(id).await?.map(|(r, _)| r)),
            ResourceKind::FargateProfile => {
                let (cluster, name) = split_id(kind, id)?;
                self.describe_profile(cluster, name).await
            }
            ResourceKind::Addon => {
                let (cluster, name) = split_id(kind, id)?;
                self.describe_addon(cluster, name).await
            }
            ResourceKind::AccessEntry => {
                let (cluster, principal) = split_id(kind, id)?;
                self.describe_access_entry(cluster, principal).await
            }
            ResourceKind::IamRole => Ok(self.describe_role(id).await?.map(|(r, _)| r)),
            ResourceKind::OidcProvider => self.describe_oidc_provider(id).await,
            ResourceKind::PullThroughCacheRule
            | ResourceKind::CacheRepository
            | ResourceKind::CacheSecret
            | ResourceKind::RolePolicy => self.describe_cache(kind, id).await,
            ResourceKind::CacheBucket => self.describe_cache_bucket(id).await,
            other => Err(Error::invalid(
                "kind",
                format!("{other} is not a cluster resource"),
            )),
        }
    }

    async fn delete(&self, resource: &Resource) -> Result<()> {
        let id = resource.id.as_str();
        let action = format!("delete {}", resource.kind);
        let what = resource.describe();
        match resource.kind {
            ResourceKind::Cluster => self
                .eks
                .delete_cluster()
                .name(id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| map_sdk_error(&action, &what, "eks", e)),
            ResourceKind::FargateProfile => {
                let (cluster, name) = split_id(resource.kind, id)?;
                self.eks
                    .delete_fargate_profile()
                    .cluster_name(cluster)
                    .fargate_profile_name(name)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| map_sdk_error(&action, &what, "eks", e))
            }
            ResourceKind::Addon => {
                let (cluster, name) = split_id(resource.kind, id)?;
                self.eks
                    .delete_addon()
                    .cluster_name(cluster)
                    .addon_name(name)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| map_sdk_error(&action, &what, "eks", e))
            }
            ResourceKind::AccessEntry => {
                let (cluster, principal) = split_id(resource.kind, id)?;
                self.eks
                    .delete_access_entry()
                    .cluster_name(cluster)
                    .principal_arn(principal)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| map_sdk_error(&action, &what, "eks", e))
            }
            ResourceKind::IamRole => self.delete_role(id).await,
            ResourceKind::OidcProvider => self.delete_oidc_provider(id).await,
            ResourceKind::PullThroughCacheRule
            | ResourceKind::CacheRepository
            | ResourceKind::CacheSecret
            | ResourceKind::RolePolicy => self.delete_cache(resource).await,
            ResourceKind::CacheBucket => self.delete_cache_bucket(id).await,
            other => Err(Error::invalid(
                "kind",
                format!("{other} is not a cluster resource"),
            )),
        }
    }

    async fn drift(&self, request: &CreateRequest, found: &Resource) -> Result<Vec<String>> {
        match request {
            CreateRequest::IamRole {
                name,
                trust,
                policy_arns,
                ..
            } => {
                let attached = self.attached_policy_arns(name).await?;
                let attached: Vec<&str> = attached.iter().map(String::as_str).collect();
                let mut lines: Vec<String> = policy_arns
                    .iter()
                    .filter(|p| !attached.contains(&p.as_str()))
                    .map(|p| format!("managed policy {p} is not attached"))
                    .collect();
                let role = self
                    .iam
                    .get_role()
                    .role_name(name)
                    .send()
                    .await
                    .map_err(|e| map_sdk_error("get IAM role", found.describe(), "iam", e))?;
                let document = role
                    .role()
                    .and_then(|r| r.assume_role_policy_document())
                    .unwrap_or_default();
                if !trusts(document, trust.service()) {
                    lines.push(format!(
                        "its trust policy does not let {} assume it",
                        trust.service()
                    ));
                }
                Ok(lines)
            }
            CreateRequest::AccessEntry {
                cluster,
                principal_arn,
                policy_arn,
            } => {
                // Every page (maxResults/nextToken: EKS API reference,
                // ListAssociatedAccessPolicies).
                let policies: Vec<_> = self
                    .eks
                    .list_associated_access_policies()
                    .cluster_name(cluster)
                    .principal_arn(principal_arn)
                    .into_paginator()
                    .items()
                    .send()
                    .try_collect()
                    .await
                    .map_err(|e| {
                        map_sdk_error(
                            "list associated access policies",
                            found.describe(),
                            "eks",
                            e,
                        )
                    })?;
                let associated = policies
                    .iter()
                    .any(|p| p.policy_arn() == Some(policy_arn.as_str()));
                Ok(if associated {
                    Vec::new()
                } else {
                    vec![format!("access policy {policy_arn} is not associated")]
                })
            }
            _ => Ok(Vec::new()),
        }
    }

    async fn cache_rules(&self) -> Result<Vec<crate::image_cache::CacheRule>> {
        self.need_cache_clients()?;
        self.registry_rules().await
    }

    async fn cluster_access(&self, name: &str) -> Result<ClusterAccess> {
        let out = self
            .eks
            .describe_cluster()
            .name(name)
            .send()
            .await
            .map_err(|e| map_sdk_error("read cluster endpoint", name, "eks", e))?;
        let cluster = out.cluster().ok_or_else(|| Error::NotFound {
            action: "read cluster endpoint".into(),
            resource: format!("EKS cluster {name}"),
        })?;
        let profiles: Vec<String> = self
            .eks
            .list_fargate_profiles()
            .cluster_name(name)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| map_sdk_error("list Fargate profiles", name, "eks", e))?;
        let mut fargate_profiles = Vec::new();
        for profile in profiles {
            let out = self
                .eks
                .describe_fargate_profile()
                .cluster_name(name)
                .fargate_profile_name(&profile)
                .send()
                .await
                .map_err(|e| {
                    map_sdk_error(
                        "describe Fargate profile",
                        format!("{name}/{profile}"),
                        "eks",
                        e,
                    )
                })?;
            let selectors = out
                .fargate_profile()
                .map(|p| p.selectors())
                .unwrap_or_default()
                .iter()
                .map(|s| crate::FargateSelector {
                    namespace: s.namespace().unwrap_or_default().to_owned(),
                    labels: s
                        .labels()
                        .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                        .unwrap_or_default(),
                })
                .collect();
            fargate_profiles.push(crate::FargateProfileSelectors {
                name: profile,
                selectors,
            });
        }
        Ok(ClusterAccess {
            oidc_issuer: cluster
                .identity()
                .and_then(|i| i.oidc())
                .and_then(|o| o.issuer())
                .map(str::to_owned),
            fargate_profiles,
            name: name.to_string(),
            arn: cluster.arn().unwrap_or_default().to_string(),
            endpoint: cluster.endpoint().unwrap_or_default().to_string(),
            certificate_authority: cluster
                .certificate_authority()
                .and_then(|c| c.data())
                .unwrap_or_default()
                .to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fargate_trust_policy_carries_the_source_arn_condition() {
        let arn = "arn:aws:eks:us-east-1:123456789012:fargateprofile/c/*";
        let doc: serde_json::Value =
            serde_json::from_str(&trust_policy("eks-fargate-pods.amazonaws.com", Some(arn)))
                .unwrap();
        assert_eq!(
            doc["Statement"][0]["Condition"]["ArnLike"]["aws:SourceArn"],
            arn
        );
        assert!(trusts(
            "%7B%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22Service%22%3A%22eks.amazonaws.com%22%7D%7D%5D%7D",
            "eks.amazonaws.com"
        ));
        assert!(!trusts(
            &trust_policy("eks.amazonaws.com", None),
            "eks-fargate-pods.amazonaws.com"
        ));
    }
}
