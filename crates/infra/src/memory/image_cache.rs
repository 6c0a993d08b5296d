//! The in-memory account's pull-through cache side: S3 gateway endpoints, ECR pull-through
//! cache rules and the repositories their first pulls create, Secrets Manager secrets and IAM
//! inline role policies, with the rules AWS applies to them.
//!
//! Modelled (sources next to each rule): a rule's prefix and credential follow the ECR model
//! (`crate::image_cache`), one rule per prefix (`PullThroughCacheRuleAlreadyExistsException`),
//! Docker Hub and GitLab refuse a rule without a credential (ECR User Guide, "Creating a pull
//! through cache rule"); rules carry no tags (CreatePullThroughCacheRule has no `tags` member);
//! deleting a rule keeps the repositories it created (ECR User Guide, "Deleting a pull through
//! cache rule": "the repositories ... are not deleted"); a route table has at most one gateway
//! endpoint route per service (EC2 `RouteAlreadyExists`); PutRolePolicy overwrites a policy of
//! the same name; a secret name is unique in the region (`ResourceExistsException`).

use tokio::time::Instant;

use super::{ACCOUNT, Entry, InMemoryCloud, World, invalid_parameter, not_found};
use crate::error::{Error, Result};
use crate::image_cache::{
    Upstream, inline_policy_key, prefix_is_valid, rule_key, rule_prefix, validate_credential_arn,
};
use crate::resource::{CreateRequest, Resource, ResourceKind};
use crate::spec::{StackName, partition};

impl InMemoryCloud {
    /// Fills `entry` for a cache request; `Ok(false)` when `request` is not one.
    pub(super) fn create_cache_entry(
        &self,
        world: &mut World,
        entry: &mut Entry,
        request: &CreateRequest,
        action: &str,
        now: Instant,
    ) -> Result<()> {
        let partition = partition(&self.region);
        match request {
            CreateRequest::VpcEndpoint {
                vpc_id,
                service_name,
                route_table_ids,
            } => {
                for (kind, id) in std::iter::once((ResourceKind::Vpc, vpc_id)).chain(
                    route_table_ids
                        .iter()
                        .map(|r| (ResourceKind::RouteTable, r)),
                ) {
                    match self.find(world, kind, id, now) {
                        Some(e) if e.visible_at <= now => {}
                        _ => return Err(not_found(action, kind, id)),
                    }
                }
                if let Some(taken) = world.entries.iter().find(|e| {
                    e.kind == ResourceKind::VpcEndpoint
                        && self.here(e)
                        && e.is_present(now)
                        && e.zone.as_deref() == Some(service_name.as_str())
                        && e.uses.iter().any(|u| route_table_ids.contains(u))
                }) {
                    return Err(Error::AlreadyExists {
                        action: action.to_string(),
                        resource: format!(
                            "route to {service_name} in a route table of {} (RouteAlreadyExists)",
                            taken.id
                        ),
                    });
                }
                entry.id = world.id("vpce");
                entry.parent = Some(vpc_id.clone());
                entry.uses = route_table_ids.clone();
                // The service name, kept where subnets keep their zone.
                entry.zone = Some(service_name.clone());
            }
            CreateRequest::PullThroughCacheRule {
                prefix,
                upstream,
                credential_arn,
            } => {
                if !prefix_is_valid(prefix) {
                    return Err(invalid_parameter(
                        action,
                        format!(
                            "ValidationException: ecrRepositoryPrefix {prefix:?} does not match the model's pattern or length"
                        ),
                    ));
                }
                match credential_arn {
                    None if upstream.needs_credential() => {
                        return Err(invalid_parameter(
                            action,
                            format!("a credentialArn is required for {upstream}"),
                        ));
                    }
                    Some(arn) => {
                        validate_credential_arn("credentialArn", arn, partition, &self.region)?;
                        let ours = world.entries.iter().any(|e| {
                            e.kind == ResourceKind::CacheSecret && e.arn.as_deref() == Some(arn)
                        });
                        let known = ours || world.external_secrets.contains(arn);
                        if !known {
                            return Err(Error::Backend {
                                action: action.to_string(),
                                backend: "memory",
                                source: format!("SecretNotFoundException: {arn}").into(),
                            });
                        }
                    }
                    None => {}
                }
                if self
                    .find(world, ResourceKind::PullThroughCacheRule, prefix, now)
                    .is_some()
                {
                    return Err(Error::AlreadyExists {
                        action: action.to_string(),
                        resource: format!("ECR pull-through cache rule {prefix}"),
                    });
                }
                entry.id = prefix.clone();
                entry.tags.clear();
                entry.zone = Some(upstream.url().to_string());
            }
            CreateRequest::CacheSecret { name, .. } => {
                if self
                    .find(world, ResourceKind::CacheSecret, name, now)
                    .is_some()
                {
                    return Err(Error::AlreadyExists {
                        action: action.to_string(),
                        resource: format!("Secrets Manager secret {name}"),
                    });
                }
                entry.id = name.clone();
                let suffix = world.id("s");
                entry.arn = Some(format!(
                    "arn:{partition}:secretsmanager:{}:{ACCOUNT}:secret:{name}-{}",
                    self.region,
                    &suffix[suffix.len() - 6..]
                ));
            }
            CreateRequest::RolePolicy { role, name, .. } => {
                if self.find(world, ResourceKind::IamRole, role, now).is_none() {
                    return Err(not_found(action, ResourceKind::IamRole, role));
                }
                let id = format!("{role}/{name}");
                // PutRolePolicy replaces a policy of the same name.
                world
                    .entries
                    .retain(|e| !(e.kind == ResourceKind::RolePolicy && e.id == id));
                entry.id = id;
                entry.region = None;
                entry.tags.clear();
                entry.parent = Some(role.clone());
            }
            _ => {}
        }
        Ok(())
    }

    /// The stack's untagged cache resources: its rules (by the prefixes the stack's name gives),
    /// the repositories under them, and the inline policies of its roles (`roles`: role name →
    /// key).
    pub(super) fn discover_cache(
        &self,
        world: &World,
        stack: &StackName,
        roles: &[(String, String)],
        now: Instant,
    ) -> Vec<Resource> {
        let prefixes: Vec<(Upstream, String)> = Upstream::ALL
            .into_iter()
            .map(|u| (u, rule_prefix(stack, u)))
            .collect();
        world
            .entries
            .iter()
            .filter(|e| self.here(e) && e.is_present(now))
            .filter_map(|e| {
                let key = match e.kind {
                    ResourceKind::PullThroughCacheRule => prefixes
                        .iter()
                        .find(|(_, p)| *p == e.id)
                        .map(|(u, _)| rule_key(*u))?,
                    ResourceKind::CacheRepository => {
                        prefixes
                            .iter()
                            .find(|(_, p)| e.id.starts_with(&format!("{p}/")))?;
                        String::new()
                    }
                    ResourceKind::RolePolicy => {
                        let (role, name) = e.id.split_once('/')?;
                        let (_, role_key) = roles.iter().find(|(r, _)| r == role)?;
                        inline_policy_key(role_key, name)?
                    }
                    _ => return None,
                };
                let mut res = e.to_resource(now)?;
                res.key = key;
                Some(res)
            })
            .collect()
    }

    /// The rules of this Region's registry, any stack's or a user's (ECR API Reference,
    /// `DescribePullThroughCacheRules`, `ecrRepositoryPrefixes`: "If no repository prefix value
    /// is specified, all pull through cache rules are returned").
    pub(super) fn cache_rules_impl(&self) -> Vec<crate::image_cache::CacheRule> {
        let now = Instant::now();
        let mut world = self.world.lock().expect("world");
        world.settle(now);
        self.log(&mut world, "describe pull-through cache rules".into());
        world
            .entries
            .iter()
            .filter(|e| {
                e.kind == ResourceKind::PullThroughCacheRule && self.here(e) && e.is_present(now)
            })
            .map(|e| crate::image_cache::CacheRule {
                prefix: e.id.clone(),
                // The rule's upstream URL, kept where the entry keeps it at creation.
                upstream_url: e.zone.clone().unwrap_or_default(),
            })
            .collect()
    }

    /// A pull of `repository` (`<prefix>/<upstream path>`) through the cache, as a Fargate pod
    /// does it: the first one creates the repository when a rule covers its prefix (ECR User
    /// Guide, "Pulling an image with a pull through cache rule"). `Ok(false)` when no rule covers
    /// it (the pull would fail: the repository does not exist).
    pub fn pull_through_cache(&self, repository: &str) -> Result<bool> {
        let now = Instant::now();
        let mut world = self.world.lock().expect("world");
        world.settle(now);
        self.log(&mut world, "pull through cache".into());
        let covered = world.entries.iter().any(|e| {
            e.kind == ResourceKind::PullThroughCacheRule
                && self.here(e)
                && e.is_present(now)
                && repository.starts_with(&format!("{}/", e.id))
        });
        if !covered {
            return Ok(false);
        }
        if self
            .find(&world, ResourceKind::CacheRepository, repository, now)
            .is_none()
        {
            let mut entry = Entry::new(
                ResourceKind::CacheRepository,
                Some(self.region.clone()),
                now,
            );
            entry.id = repository.to_string();
            world.entries.push(entry);
        }
        Ok(true)
    }

    /// Adds a Secrets Manager secret someone else made (a user's upstream credential); returns
    /// its ARN.
    pub fn add_external_secret(&self, name: &str) -> String {
        let arn = format!(
            "arn:{}:secretsmanager:{}:{ACCOUNT}:secret:{name}-AbCdEf",
            partition(&self.region),
            self.region
        );
        self.world
            .lock()
            .expect("world")
            .external_secrets
            .push(arn.clone());
        arn
    }
}
