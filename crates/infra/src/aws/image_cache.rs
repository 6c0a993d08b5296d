//! The pull-through cache on AWS: the S3 gateway endpoint (aws-sdk-ec2), ECR pull-through cache
//! rules and the repositories they create (aws-sdk-ecr), upstream credential secrets
//! (aws-sdk-secretsmanager) and the pod execution role's inline policy (aws-sdk-iam).
//!
//! ECR rules and repositories carry no glrunner tags (CreatePullThroughCacheRule has no `tags`
//! member; the repositories are ECR's), so they are found by the prefixes the stack's name
//! gives ([`crate::image_cache::rule_prefix`]); inline policies by their role and name.
//! Secrets are tagged and found by their `ecr-pullthroughcache/<stack>/` name and tags.

use aws_sdk_ec2::types::{Filter, ResourceType, State as EndpointState, VpcEndpointType};
use aws_sdk_secretsmanager::types::{
    Filter as SecretFilter, FilterNameStringType, Tag as SecretTag,
};

use super::ec2::{key_of, stack_filter, tag_spec};
use super::{AwsCluster, AwsNetwork, map_sdk_error, until_visible};
use crate::error::{Error, Result};
use crate::image_cache::{SECRET_PREFIX, Upstream, inline_policy_key, rule_key, rule_prefix};
use crate::resource::{Resource, ResourceKind, ResourceState, ResourceTags};
use crate::spec::{KEY_TAG, REGION_TAG, STACK_TAG, StackName};

/// EC2's VPC endpoint states, normalised (EC2 API Reference, `VpcEndpoint.State`). The model
/// spells them `Available`, `Deleted`…, EC2 answers `available`, `deleted`… (as moto does), so
/// they are compared without case.
fn endpoint_state(state: Option<&EndpointState>) -> ResourceState {
    let state = state.map(|s| s.as_str().to_ascii_lowercase());
    match state.as_deref() {
        Some("available") => ResourceState::Available,
        Some("deleting") => ResourceState::Deleting,
        Some("deleted") => ResourceState::Deleted,
        Some("failed" | "rejected" | "expired") => ResourceState::Failed,
        _ => ResourceState::Creating,
    }
}

impl AwsNetwork {
    /// VPC endpoints; with `stack`, only those tagged with it (checked here as well as by the
    /// filter, as for NAT gateways).
    pub(super) async fn vpc_endpoints(
        &self,
        filters: Vec<Filter>,
        ids: Vec<String>,
        stack: Option<&StackName>,
    ) -> Result<Vec<Resource>> {
        let endpoints: Vec<_> = self
            .ec2
            .describe_vpc_endpoints()
            .set_filters(Some(filters))
            .set_vpc_endpoint_ids((!ids.is_empty()).then_some(ids))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| map_sdk_error("describe VPC endpoints", "VPC endpoints", "ec2", e))?;
        Ok(endpoints
            .iter()
            .filter(|e| {
                stack.is_none_or(|s| {
                    e.tags()
                        .iter()
                        .any(|t| t.key() == Some(STACK_TAG) && t.value() == Some(s.as_str()))
                })
            })
            .filter_map(|e| {
                Some(Resource {
                    kind: ResourceKind::VpcEndpoint,
                    id: e.vpc_endpoint_id()?.to_string(),
                    key: key_of(e.tags()),
                    arn: None,
                    state: endpoint_state(e.state()),
                })
            })
            .collect())
    }

    /// The stack's VPC endpoints.
    pub(super) async fn discover_endpoints(&self, stack: &StackName) -> Result<Vec<Resource>> {
        self.vpc_endpoints(vec![stack_filter(stack)], vec![], Some(stack))
            .await
    }

    /// A gateway endpoint on route tables (EC2 API Reference, CreateVpcEndpoint:
    /// `VpcEndpointType=Gateway`, `RouteTableIds`; no subnets or security groups for gateways).
    pub(super) async fn create_vpc_endpoint(
        &self,
        vpc_id: &str,
        service_name: &str,
        route_table_ids: &[String],
        tags: &ResourceTags,
    ) -> Result<Resource> {
        let action = format!("create {}", ResourceKind::VpcEndpoint);
        let create = || {
            self.ec2
                .create_vpc_endpoint()
                .vpc_endpoint_type(VpcEndpointType::Gateway)
                .vpc_id(vpc_id)
                .service_name(service_name)
                .set_route_table_ids(Some(route_table_ids.to_vec()))
                .tag_specifications(tag_spec(ResourceType::VpcEndpoint, tags, &[]))
                .send()
        };
        let out = until_visible(&action, self.consistency_window, create)
            .await
            .map_err(|e| map_sdk_error(&action, service_name, "ec2", e))?;
        let endpoint = out.vpc_endpoint();
        Ok(Resource {
            kind: ResourceKind::VpcEndpoint,
            id: endpoint
                .and_then(|e| e.vpc_endpoint_id())
                .unwrap_or_default()
                .to_string(),
            key: tags.key.clone(),
            arn: None,
            state: endpoint_state(endpoint.and_then(|e| e.state())),
        })
    }

    /// DeleteVpcEndpoints answers 200 with the endpoints it could not delete listed in
    /// `Unsuccessful` (EC2 API Reference): those are errors here.
    pub(super) async fn delete_vpc_endpoint(&self, resource: &Resource) -> Result<()> {
        let what = resource.describe();
        let action = format!("delete {}", resource.kind);
        let out = self
            .ec2
            .delete_vpc_endpoints()
            .vpc_endpoint_ids(&resource.id)
            .send()
            .await
            .map_err(|e| map_sdk_error(&action, &what, "ec2", e))?;
        match out.unsuccessful().first().and_then(|u| u.error()) {
            None => Ok(()),
            Some(err) => {
                let code = err.code().unwrap_or_default();
                let message = err.message().unwrap_or_default().to_string();
                if code.ends_with(".NotFound") {
                    Err(Error::NotFound {
                        action,
                        resource: what,
                    })
                } else {
                    Err(Error::Backend {
                        action: format!("{action} ({what})"),
                        backend: "ec2",
                        source: format!("{code}: {message}").into(),
                    })
                }
            }
        }
    }
}

/// The key of a rule from its prefix, when the prefix is one of the stack's.
fn rule_of(stack: &StackName, prefix: &str) -> Option<Upstream> {
    Upstream::ALL
        .into_iter()
        .find(|u| rule_prefix(stack, *u) == prefix)
}

/// The key of a rule from its prefix alone (`…/<short>`).
fn key_of_prefix(prefix: &str) -> String {
    prefix
        .rsplit('/')
        .next()
        .and_then(Upstream::from_short)
        .map(rule_key)
        .unwrap_or_default()
}

impl AwsCluster {
    /// Refuses cache calls on a backend built without its ECR and Secrets Manager clients
    /// ([`AwsCluster::from_clients`] without [`AwsCluster::with_cache_clients`]).
    pub(super) fn need_cache_clients(&self) -> Result<()> {
        if self.cache_clients {
            Ok(())
        } else {
            Err(Error::invalid(
                "image_cache",
                "this cluster backend has no ECR and Secrets Manager clients",
            ))
        }
    }

    /// Every pull-through cache rule of the registry (`DescribePullThroughCacheRules`, every
    /// page): the stack's and anyone else's.
    pub(super) async fn registry_rules(&self) -> Result<Vec<crate::image_cache::CacheRule>> {
        let rules: Vec<_> = self
            .ecr
            .describe_pull_through_cache_rules()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| map_sdk_error("describe pull-through cache rules", "ECR", "ecr", e))?;
        Ok(rules
            .iter()
            .filter_map(|r| {
                Some(crate::image_cache::CacheRule {
                    prefix: r.ecr_repository_prefix()?.to_string(),
                    upstream_url: r.upstream_registry_url()?.to_string(),
                })
            })
            .collect())
    }

    /// The stack's cache resources: rules, the repositories under them, glrunner's secrets and
    /// the inline policies of `roles` (the stack's roles). Nothing without the cache clients.
    pub(super) async fn discover_cache(
        &self,
        stack: &StackName,
        roles: &[Resource],
    ) -> Result<Vec<Resource>> {
        if !self.cache_clients {
            return Ok(Vec::new());
        }
        let mut found = Vec::new();
        let prefixes: Vec<String> = Upstream::ALL
            .into_iter()
            .map(|u| rule_prefix(stack, u))
            .collect();
        for rule in self.registry_rules().await? {
            if let Some(upstream) = rule_of(stack, &rule.prefix) {
                found.push(Resource {
                    kind: ResourceKind::PullThroughCacheRule,
                    key: rule_key(upstream),
                    id: rule.prefix,
                    arn: None,
                    state: ResourceState::Available,
                });
            }
        }
        let repositories: Vec<_> = self
            .ecr
            .describe_repositories()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| map_sdk_error("describe ECR repositories", "ECR", "ecr", e))?;
        for repo in &repositories {
            let Some(name) = repo.repository_name() else {
                continue;
            };
            if prefixes.iter().any(|p| name.starts_with(&format!("{p}/"))) {
                found.push(Resource {
                    kind: ResourceKind::CacheRepository,
                    id: name.to_string(),
                    key: String::new(),
                    arn: repo.repository_arn().map(str::to_owned),
                    state: ResourceState::Available,
                });
            }
        }
        let listed: Vec<_> = self
            .secrets
            .list_secrets()
            .filters(
                SecretFilter::builder()
                    .key(FilterNameStringType::Name)
                    .values(format!("{SECRET_PREFIX}{stack}/"))
                    .build(),
            )
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| map_sdk_error("list secrets", "Secrets Manager", "secretsmanager", e))?;
        for secret in listed.iter().flat_map(|page| page.secret_list()) {
            let tag = |key: &str| {
                secret
                    .tags()
                    .iter()
                    .find(|t| t.key() == Some(key))
                    .and_then(|t| t.value())
            };
            // The name filter matches prefixes of words too: the tags say whose it is.
            if tag(STACK_TAG) != Some(stack.as_str())
                || tag(REGION_TAG).is_some_and(|r| r != self.region)
            {
                continue;
            }
            if let (Some(name), None) = (secret.name(), secret.deleted_date()) {
                found.push(Resource {
                    kind: ResourceKind::CacheSecret,
                    id: name.to_string(),
                    key: tag(KEY_TAG).unwrap_or_default().to_string(),
                    arn: secret.arn().map(str::to_owned),
                    state: ResourceState::Available,
                });
            }
        }
        for role in roles.iter().filter(|r| r.kind == ResourceKind::IamRole) {
            for name in self.inline_policy_names(&role.id).await? {
                if let Some(key) = inline_policy_key(&role.key, &name) {
                    found.push(Resource {
                        kind: ResourceKind::RolePolicy,
                        id: format!("{}/{name}", role.id),
                        key,
                        arn: None,
                        state: ResourceState::Available,
                    });
                }
            }
        }
        Ok(found)
    }

    pub(super) async fn create_rule(
        &self,
        prefix: &str,
        upstream: Upstream,
        credential_arn: Option<&str>,
        tags: &ResourceTags,
    ) -> Result<Resource> {
        let action = format!("create {}", ResourceKind::PullThroughCacheRule);
        self.need_cache_clients()?;
        self.ecr
            .create_pull_through_cache_rule()
            .ecr_repository_prefix(prefix)
            .upstream_registry_url(upstream.url())
            .upstream_registry(upstream.api_name().into())
            .set_credential_arn(credential_arn.map(str::to_owned))
            .send()
            .await
            .map_err(|e| map_sdk_error(&action, prefix, "ecr", e))?;
        Ok(Resource {
            kind: ResourceKind::PullThroughCacheRule,
            id: prefix.to_string(),
            key: tags.key.clone(),
            arn: None,
            state: ResourceState::Available,
        })
    }

    /// Stores a credential. The value goes only into the request (the SDK's Debug of the input
    /// redacts `SecretString`, a sensitive member in the model).
    pub(super) async fn create_secret(
        &self,
        name: &str,
        value: &crate::image_cache::Credential,
        tags: &ResourceTags,
    ) -> Result<Resource> {
        let action = format!("create {}", ResourceKind::CacheSecret);
        let mut pairs = tags.pairs();
        pairs.insert(REGION_TAG.to_string(), self.region.clone());
        self.need_cache_clients()?;
        let out = self
            .secrets
            .create_secret()
            .name(name)
            .description(
                "Upstream registry credential for an ECR pull-through cache rule (glrunner)",
            )
            .secret_string(value.secret_value())
            .set_tags(Some(
                pairs
                    .into_iter()
                    .map(|(k, v)| SecretTag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| map_sdk_error(&action, name, "secretsmanager", e))?;
        Ok(Resource {
            kind: ResourceKind::CacheSecret,
            id: name.to_string(),
            key: tags.key.clone(),
            arn: out.arn().map(str::to_owned),
            state: ResourceState::Available,
        })
    }

    pub(super) async fn put_role_policy(
        &self,
        role: &str,
        name: &str,
        document: &str,
        tags: &ResourceTags,
    ) -> Result<Resource> {
        let id = format!("{role}/{name}");
        self.iam
            .put_role_policy()
            .role_name(role)
            .policy_name(name)
            .policy_document(document)
            .send()
            .await
            .map_err(|e| map_sdk_error("put inline role policy", &id, "iam", e))?;
        Ok(Resource {
            kind: ResourceKind::RolePolicy,
            id,
            key: tags.key.clone(),
            arn: None,
            state: ResourceState::Available,
        })
    }

    pub(super) async fn describe_cache(
        &self,
        kind: ResourceKind,
        id: &str,
    ) -> Result<Option<Resource>> {
        let gone = |err: Error| {
            if err.is_not_found() {
                Ok(None)
            } else {
                Err(err)
            }
        };
        if kind != ResourceKind::RolePolicy {
            self.need_cache_clients()?;
        }
        match kind {
            ResourceKind::PullThroughCacheRule => {
                match self
                    .ecr
                    .describe_pull_through_cache_rules()
                    .ecr_repository_prefixes(id)
                    .send()
                    .await
                    .map_err(|e| map_sdk_error("describe pull-through cache rule", id, "ecr", e))
                {
                    Ok(out) => Ok(out
                        .pull_through_cache_rules()
                        .iter()
                        .find(|r| r.ecr_repository_prefix() == Some(id))
                        .map(|_| Resource {
                            kind,
                            id: id.to_string(),
                            key: key_of_prefix(id),
                            arn: None,
                            state: ResourceState::Available,
                        })),
                    Err(err) => gone(err),
                }
            }
            ResourceKind::CacheRepository => {
                match self
                    .ecr
                    .describe_repositories()
                    .repository_names(id)
                    .send()
                    .await
                    .map_err(|e| map_sdk_error("describe ECR repository", id, "ecr", e))
                {
                    Ok(out) => Ok(out.repositories().first().map(|r| Resource {
                        kind,
                        id: id.to_string(),
                        key: String::new(),
                        arn: r.repository_arn().map(str::to_owned),
                        state: ResourceState::Available,
                    })),
                    Err(err) => gone(err),
                }
            }
            ResourceKind::CacheSecret => {
                match self
                    .secrets
                    .describe_secret()
                    .secret_id(id)
                    .send()
                    .await
                    .map_err(|e| map_sdk_error("describe secret", id, "secretsmanager", e))
                {
                    Ok(out) => Ok(Some(Resource {
                        kind,
                        id: id.to_string(),
                        key: out
                            .tags()
                            .iter()
                            .find(|t| t.key() == Some(KEY_TAG))
                            .and_then(|t| t.value())
                            .unwrap_or_default()
                            .to_string(),
                        arn: out.arn().map(str::to_owned),
                        state: if out.deleted_date().is_some() {
                            ResourceState::Deleted
                        } else {
                            ResourceState::Available
                        },
                    })),
                    Err(err) => gone(err),
                }
            }
            ResourceKind::RolePolicy => {
                let (role, name) = id
                    .split_once('/')
                    .ok_or_else(|| Error::invalid("id", format!("{id} is not <role>/<policy>")))?;
                match self
                    .iam
                    .get_role_policy()
                    .role_name(role)
                    .policy_name(name)
                    .send()
                    .await
                    .map_err(|e| map_sdk_error("get inline role policy", id, "iam", e))
                {
                    Ok(_) => Ok(Some(Resource {
                        kind,
                        id: id.to_string(),
                        key: String::new(),
                        arn: None,
                        state: ResourceState::Available,
                    })),
                    Err(err) => gone(err),
                }
            }
            other => Err(Error::invalid(
                "kind",
                format!("{other} is not a cache resource"),
            )),
        }
    }

    pub(super) async fn delete_cache(&self, resource: &Resource) -> Result<()> {
        let id = resource.id.as_str();
        let what = resource.describe();
        let action = format!("delete {}", resource.kind);
        if resource.kind != ResourceKind::RolePolicy {
            self.need_cache_clients()?;
        }
        match resource.kind {
            ResourceKind::PullThroughCacheRule => self
                .ecr
                .delete_pull_through_cache_rule()
                .ecr_repository_prefix(id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| map_sdk_error(&action, &what, "ecr", e)),
            // `force`: with its cached images (ECR API Reference, DeleteRepository).
            ResourceKind::CacheRepository => self
                .ecr
                .delete_repository()
                .repository_name(id)
                .force(true)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| map_sdk_error(&action, &what, "ecr", e)),
            // Without the recovery window, so the name can be used again at once (Secrets
            // Manager API Reference, DeleteSecret: ForceDeleteWithoutRecovery).
            ResourceKind::CacheSecret => self
                .secrets
                .delete_secret()
                .secret_id(id)
                .force_delete_without_recovery(true)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| map_sdk_error(&action, &what, "secretsmanager", e)),
            ResourceKind::RolePolicy => {
                let (role, name) = id
                    .split_once('/')
                    .ok_or_else(|| Error::invalid("id", format!("{id} is not <role>/<policy>")))?;
                self.iam
                    .delete_role_policy()
                    .role_name(role)
                    .policy_name(name)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| map_sdk_error(&action, &what, "iam", e))
            }
            other => Err(Error::invalid(
                "kind",
                format!("{other} is not a cache resource"),
            )),
        }
    }
}
