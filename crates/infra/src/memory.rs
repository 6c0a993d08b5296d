//! In-memory EC2 + EKS + IAM with AWS's timing and rules, on tokio's clock.
//!
//! Models what the engine depends on: CREATING/DELETING states with realistic durations
//! (so a paused tokio clock replays a 12-minute cluster creation in milliseconds), NotFound,
//! AlreadyExists, DependencyViolation on deleting what still has dependents, EKS's
//! one-Fargate-profile-operation-at-a-time rule, and the ENIs and security group EKS leaves in
//! the VPC after a cluster is deleted (which is what blocks VPC deletion in real teardowns).
//!
//! It also refuses what real AWS refuses: an IAM role younger than IAM's propagation delay
//! cannot be used by EKS yet, and an EC2 id younger than EC2's consistency delay is NotFound
//! to calls that name it; IAM is global to the account while everything else is regional
//! ([`InMemoryCloud::in_region`]); zones have IDs that differ from their names, the region
//! lists an opted-in Local Zone, and EKS refuses some zone IDs; an access entry names an
//! existing IAM role or user (path included), and managed-policy ARNs must be in the region's
//! partition. An Elastic IP cannot be released for a while after its NAT gateway is deleted,
//! GetRole does not see a role another run created a moment ago, a Fargate profile's pod
//! execution role ARN has no path, and a Fargate profile brings its own EKS-managed access entry.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::identity::{Caller, classify_caller};
use crate::provider::{ClusterProvisioner, NetworkProvisioner};
use crate::resource::{
    AvailabilityZone, ClusterAccess, CreateRequest, DefaultRoute, Resource, ResourceKind,
    ResourceState, ResourceTags, RoleTrust,
};
use crate::spec::{KEY_TAG, REGION_TAG, STACK_TAG, StackName, partition};

const ACCOUNT: &str = "123456789012";

/// How long asynchronous operations take in the in-memory cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Durations {
    /// EKS cluster CREATING → ACTIVE.
    pub cluster_create: Duration,
    /// EKS cluster DELETING → gone.
    pub cluster_delete: Duration,
    /// Fargate profile CREATING → ACTIVE.
    pub fargate_profile_create: Duration,
    /// Fargate profile DELETING → gone.
    pub fargate_profile_delete: Duration,
    /// NAT gateway pending → available.
    pub nat_create: Duration,
    /// NAT gateway deleting → deleted.
    pub nat_delete: Duration,
    /// Add-on CREATING → ACTIVE.
    pub addon_create: Duration,
    /// Add-on DELETING → gone.
    pub addon_delete: Duration,
    /// How long after CreateRole EKS still cannot assume the role (IAM propagation).
    pub iam_propagation: Duration,
    /// How long after its creation an EC2 id is NotFound to calls that name it.
    pub ec2_propagation: Duration,
    /// How long after CreateRole the role is missing from GetRole and ListRoles (IAM is
    /// eventually consistent: IAM User Guide, "Troubleshoot IAM", "Changes that I make are not
    /// always immediately visible"). CreateRole of the same name already answers
    /// EntityAlreadyExists meanwhile.
    pub iam_read_propagation: Duration,
    /// How long after its NAT gateway is deleted ReleaseAddress of the gateway's Elastic IP still
    /// answers AuthFailure (terraform-aws-modules/terraform-aws-vpc#64,
    /// hashicorp/terraform-provider-aws#13763, eformat/sno-for-100#9: "a small pause" after the
    /// NAT gateway is `deleted` was enough there; nobody measured it).
    pub eip_release_after_nat: Duration,
}

impl Default for Durations {
    /// Published and commonly measured durations (see the reference notes): cluster 12 min to
    /// create and 8 to delete, Fargate profile 3 min each way, NAT 2 min / 1 min, add-on 1 min.
    fn default() -> Self {
        Self {
            cluster_create: Duration::from_secs(12 * 60),
            cluster_delete: Duration::from_secs(8 * 60),
            fargate_profile_create: Duration::from_secs(3 * 60),
            fargate_profile_delete: Duration::from_secs(3 * 60),
            nat_create: Duration::from_secs(2 * 60),
            nat_delete: Duration::from_secs(60),
            addon_create: Duration::from_secs(60),
            addon_delete: Duration::from_secs(30),
            iam_propagation: Duration::from_secs(8),
            ec2_propagation: Duration::from_secs(2),
            iam_read_propagation: Duration::from_secs(5),
            eip_release_after_nat: Duration::from_secs(20),
        }
    }
}

impl Durations {
    /// Every operation completes at once and is visible at once (like moto without the
    /// project's strict shim).
    pub fn instant() -> Self {
        Self {
            cluster_create: Duration::ZERO,
            cluster_delete: Duration::ZERO,
            fargate_profile_create: Duration::ZERO,
            fargate_profile_delete: Duration::ZERO,
            nat_create: Duration::ZERO,
            nat_delete: Duration::ZERO,
            addon_create: Duration::ZERO,
            addon_delete: Duration::ZERO,
            iam_propagation: Duration::ZERO,
            ec2_propagation: Duration::ZERO,
            iam_read_propagation: Duration::ZERO,
            eip_release_after_nat: Duration::ZERO,
        }
    }
}

/// EKS's answer while a new cluster role has not propagated (or does not exist, or does not
/// trust EKS): the message the AWS backend recognises.
const ROLE_NOT_ASSUMABLE: &str =
    "could not be assumed because it does not exist or the trusted entity is not correct";
const NO_MANAGED_POLICIES: &str =
    "The provided role doesn't have the Amazon EKS Managed Policies associated with it";
const FARGATE_ROLE_BAD: &str = "Misconfigured PodExecutionRole Trust Property; Please add the eks-fargate-pods.amazonaws.com Service Principal";

#[derive(Debug, Clone)]
struct Entry {
    kind: ResourceKind,
    id: String,
    arn: Option<String>,
    tags: BTreeMap<String, String>,
    /// `None` for IAM (global); the region of everything else.
    region: Option<String>,
    /// VPC of network resources; cluster name of profiles, add-ons and access entries.
    parent: Option<String>,
    /// Ids this resource uses (subnet of a NAT, EIP of a NAT, subnets of a route table...).
    uses: Vec<String>,
    ready_at: Instant,
    /// Eventual consistency: other calls see this resource from then on.
    visible_at: Instant,
    /// IAM roles: GetRole and ListRoles return the role from then on.
    readable_at: Instant,
    deleting_until: Option<Instant>,
    /// ENIs created by EKS: attached while their cluster lives.
    attached_to: Option<String>,
    /// Selectors of a Fargate profile.
    selectors: Vec<crate::spec::FargateSelector>,
    /// Subnets: their availability zone name.
    zone: Option<String>,
    /// Roles: who may assume them.
    trust: Option<RoleTrust>,
    /// Roles: attached managed policies; access entries: associated access policies.
    policies: Vec<String>,
    /// Set by [`InMemoryCloud::mark_failed`].
    failed: bool,
    /// Access entries: `FARGATE_LINUX` for the one EKS makes for a Fargate profile's role.
    entry_type: Option<&'static str>,
    /// Fargate profiles: the pod execution role ARN.
    role: Option<String>,
}

impl Entry {
    fn new(kind: ResourceKind, region: Option<String>, now: Instant) -> Self {
        Self {
            kind,
            id: String::new(),
            arn: None,
            tags: BTreeMap::new(),
            region,
            parent: None,
            uses: Vec::new(),
            ready_at: now,
            visible_at: now,
            readable_at: now,
            deleting_until: None,
            attached_to: None,
            zone: None,
            trust: None,
            policies: Vec::new(),
            failed: false,
            selectors: Vec::new(),
            entry_type: None,
            role: None,
        }
    }

    fn state(&self, now: Instant) -> Option<ResourceState> {
        match self.deleting_until {
            Some(until) if now >= until => {
                (self.kind == ResourceKind::NatGateway).then_some(ResourceState::Deleted)
            }
            Some(_) => Some(ResourceState::Deleting),
            None if self.failed => Some(ResourceState::Failed),
            None if now < self.ready_at => Some(ResourceState::Creating),
            None => Some(ResourceState::Available),
        }
    }

    fn to_resource(&self, now: Instant) -> Option<Resource> {
        Some(Resource {
            kind: self.kind,
            id: self.id.clone(),
            key: self.tags.get(KEY_TAG).cloned().unwrap_or_default(),
            arn: self.arn.clone(),
            state: self.state(now)?,
        })
    }

    fn is_present(&self, now: Instant) -> bool {
        self.state(now).is_some_and(|s| s.is_present())
    }
}

#[derive(Debug, Default)]
struct World {
    entries: Vec<Entry>,
    /// Every resource `create` made, in order, gone ones included ([`InMemoryCloud::created`]).
    created: Vec<Resource>,
    next_id: u64,
    calls: Vec<String>,
    /// IAM users of the account (ARNs, path included).
    users: Vec<String>,
    /// Fargate profiles whose pod execution role lost its access entry while they existed.
    fargate_auth_broken: Vec<String>,
    /// ARNs of Secrets Manager secrets someone else made ([`InMemoryCloud::add_external_secret`]).
    external_secrets: Vec<String>,
}

impl World {
    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{:017x}", self.next_id)
    }

    /// Drops entries whose deletion has completed (NAT gateways stay listed as `deleted`);
    /// detaches EKS ENIs of clusters that are gone.
    fn settle(&mut self, now: Instant) {
        self.entries.retain(|e| e.state(now).is_some());
        let live_clusters: Vec<(Option<String>, String)> = self
            .entries
            .iter()
            .filter(|e| e.kind == ResourceKind::Cluster)
            .map(|e| (e.region.clone(), e.id.clone()))
            .collect();
        for entry in &mut self.entries {
            if entry.attached_to.as_ref().is_some_and(|c| {
                !live_clusters
                    .iter()
                    .any(|(r, id)| *r == entry.region && id == c)
            }) {
                entry.attached_to = None;
            }
        }
    }
}

mod cache;
mod image_cache;
mod oidc;
mod records;

/// One in-memory AWS account seen from one region, implementing both [`NetworkProvisioner`]
/// and [`ClusterProvisioner`]. Clones share the same world; [`InMemoryCloud::in_region`] gives
/// another region of the same account (same IAM, separate EC2 and EKS).
#[derive(Debug, Clone)]
pub struct InMemoryCloud {
    world: Arc<Mutex<World>>,
    durations: Durations,
    region: String,
    /// The region's zones; `false` marks Local/Wavelength Zones.
    zones: Vec<(AvailabilityZone, bool)>,
    eks_refused_zone_ids: Vec<String>,
    /// What STS GetCallerIdentity answers.
    caller: String,
}

impl Default for InMemoryCloud {
    fn default() -> Self {
        Self::new("us-east-1")
    }
}

fn not_found(action: &str, kind: ResourceKind, id: &str) -> Error {
    Error::NotFound {
        action: action.to_string(),
        resource: format!("{kind} {id}"),
    }
}

fn dependency(action: &str, kind: ResourceKind, id: &str, message: String) -> Error {
    Error::DependencyViolation {
        action: action.to_string(),
        resource: format!("{kind} {id}"),
        message,
    }
}

fn invalid_parameter(action: &str, message: String) -> Error {
    Error::Backend {
        action: action.to_string(),
        backend: "memory",
        source: format!("InvalidParameterException: {message}").into(),
    }
}

/// Whether an IAM role ARN has a path other than `/` (`arn:aws:iam::1:role/team/name`).
fn role_has_path(arn: &str) -> bool {
    arn.split_once(":role/")
        .is_some_and(|(_, rest)| rest.contains('/'))
}

/// Zones of a region in this account: us-east-1 as moto lists it (us-east-1e is use1-az3, the
/// zone ID EKS refuses), elsewhere four zones; plus one opted-in Local Zone.
fn default_zones(region: &str) -> Vec<(AvailabilityZone, bool)> {
    let mut zones: Vec<(AvailabilityZone, bool)> = if region == "us-east-1" {
        [
            ("a", "use1-az6"),
            ("b", "use1-az1"),
            ("c", "use1-az2"),
            ("d", "use1-az4"),
            ("e", "use1-az3"),
        ]
        .iter()
        .map(|(l, id)| (AvailabilityZone::new(format!("{region}{l}"), *id), true))
        .collect()
    } else {
        ["a", "b", "c", "d"]
            .iter()
            .enumerate()
            .map(|(i, l)| {
                (
                    AvailabilityZone::new(format!("{region}{l}"), format!("{region}-az{}", i + 1)),
                    true,
                )
            })
            .collect()
    };
    zones.push((
        AvailabilityZone::new(format!("{region}-lcl-1a"), format!("{region}-lcl1-az1")),
        false,
    ));
    zones
}

impl InMemoryCloud {
    /// A fresh, empty account seen from `region`, with the default durations, zones, and an
    /// IAM user `sandbox` as the caller.
    pub fn new(region: impl Into<String>) -> Self {
        let region = region.into();
        let caller = format!("arn:{}:iam::{ACCOUNT}:user/sandbox", partition(&region));
        let world = World {
            users: vec![caller.clone()],
            ..World::default()
        };
        Self {
            world: Arc::new(Mutex::new(world)),
            durations: Durations::default(),
            zones: default_zones(&region),
            eks_refused_zone_ids: crate::plan::EKS_UNSUPPORTED_ZONE_IDS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            region,
            caller,
        }
    }

    /// The same account seen from another region: IAM is shared, EC2 and EKS are not.
    pub fn in_region(&self, region: impl Into<String>) -> Self {
        let region = region.into();
        Self {
            world: self.world.clone(),
            durations: self.durations.clone(),
            zones: default_zones(&region),
            eks_refused_zone_ids: self.eks_refused_zone_ids.clone(),
            region,
            caller: self.caller.clone(),
        }
    }

    /// Replaces the operation durations.
    #[must_use]
    pub fn with_durations(mut self, durations: Durations) -> Self {
        self.durations = durations;
        self
    }

    /// Replaces the region's availability zones (all of type `availability-zone`).
    #[must_use]
    pub fn with_zones(mut self, zones: Vec<AvailabilityZone>) -> Self {
        self.zones = zones.into_iter().map(|z| (z, true)).collect();
        self
    }

    /// Replaces the zone IDs this EKS refuses for control planes.
    #[must_use]
    pub fn with_eks_refused_zone_ids(mut self, ids: Vec<String>) -> Self {
        self.eks_refused_zone_ids = ids;
        self
    }

    /// Sets what STS GetCallerIdentity answers: an IAM user ARN (the user is added to the
    /// account) or an `arn:aws:sts::…:assumed-role/NAME/SESSION` of a role added with
    /// [`InMemoryCloud::add_role`], or anything else AWS could answer (root, federated users).
    #[must_use]
    pub fn with_caller(mut self, arn: impl Into<String>) -> Self {
        self.caller = arn.into();
        if let Ok(Caller::IamUser { arn }) = classify_caller(&self.caller) {
            let mut world = self.world.lock().expect("world");
            if !world.users.contains(&arn) {
                world.users.push(arn);
            }
        }
        self
    }

    /// Adds an IAM role that exists outside glrunner (an IAM Identity Center role, say) with
    /// its path, e.g. `/aws-reserved/sso.amazonaws.com/us-east-1/`; returns its ARN.
    pub fn add_role(&self, path: &str, name: &str) -> String {
        let now = Instant::now();
        let arn = format!(
            "arn:{}:iam::{ACCOUNT}:role{path}{name}",
            partition(&self.region)
        );
        let mut entry = Entry::new(ResourceKind::IamRole, None, now);
        entry.id = name.to_string();
        entry.arn = Some(arn.clone());
        self.world.lock().expect("world").entries.push(entry);
        arn
    }

    /// Puts a resource in a failed state, as AWS does (a NAT gateway that could not be
    /// created, a cluster that failed). Returns whether it was found.
    pub fn mark_failed(&self, kind: ResourceKind, id: &str) -> bool {
        let mut world = self.world.lock().expect("world");
        let region = self.region.clone();
        match world.entries.iter_mut().find(|e| {
            e.kind == kind && e.id == id && e.region.as_deref().is_none_or(|r| r == region)
        }) {
            Some(entry) => {
                entry.failed = true;
                true
            }
            None => false,
        }
    }

    /// Fargate profiles that lost the access entry of their pod execution role while they still
    /// existed (their Fargate nodes can no longer authenticate). Empty when teardown keeps the
    /// EKS-managed entry until the profile is gone.
    pub fn fargate_auth_broken(&self) -> Vec<String> {
        self.world
            .lock()
            .expect("world")
            .fargate_auth_broken
            .clone()
    }

    /// Every call made so far, as `operation kind` strings (e.g. `create NAT gateway`).
    pub fn calls(&self) -> Vec<String> {
        self.world.lock().expect("world").calls.clone()
    }

    /// Calls that change something (create/delete).
    pub fn mutating_calls(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| c.starts_with("create") || c.starts_with("delete"))
            .collect()
    }

    /// Every resource present in the account, whatever its tags and region (for leftover
    /// assertions).
    pub fn all_resources(&self) -> Vec<Resource> {
        let now = Instant::now();
        let mut world = self.world.lock().expect("world");
        world.settle(now);
        world
            .entries
            .iter()
            .filter(|e| e.is_present(now))
            .filter_map(|e| e.to_resource(now))
            .collect()
    }

    fn log(&self, world: &mut World, call: String) {
        tracing::trace!(%call, "in-memory cloud call");
        world.calls.push(call);
    }

    /// Whether an entry is visible from this region (IAM is global).
    fn here(&self, e: &Entry) -> bool {
        e.region.as_deref().is_none_or(|r| r == self.region)
    }

    fn find<'w>(
        &self,
        world: &'w World,
        kind: ResourceKind,
        id: &str,
        now: Instant,
    ) -> Option<&'w Entry> {
        world
            .entries
            .iter()
            .find(|e| e.kind == kind && e.id == id && self.here(e) && e.is_present(now))
    }

    fn discover_impl(&self, stack: &StackName, network: bool) -> Vec<Resource> {
        let now = Instant::now();
        let mut world = self.world.lock().expect("world");
        world.settle(now);
        self.log(
            &mut world,
            format!("discover {}", if network { "network" } else { "cluster" }),
        );
        let ours = |e: &Entry| e.tags.get(STACK_TAG).map(String::as_str) == Some(stack.as_str());
        let stack_vpcs: Vec<String> = world
            .entries
            .iter()
            .filter(|e| e.kind == ResourceKind::Vpc && self.here(e) && ours(e))
            .map(|e| e.id.clone())
            .collect();
        let mut found: Vec<Resource> = world
            .entries
            .iter()
            .filter(|e| e.kind.is_network() == network && self.here(e))
            // ListRoles does not list a role IAM has not propagated yet.
            .filter(|e| e.kind != ResourceKind::IamRole || e.readable_at <= now)
            .filter(|e| {
                // Roles and OIDC providers are global: only those of this region's stack.
                if matches!(e.kind, ResourceKind::IamRole | ResourceKind::OidcProvider) {
                    return ours(e)
                        && e.tags.get(REGION_TAG).map(String::as_str)
                            == Some(self.region.as_str());
                }
                ours(e)
                    || (matches!(
                        e.kind,
                        ResourceKind::NetworkInterface | ResourceKind::SecurityGroup
                    ) && e.parent.as_ref().is_some_and(|v| stack_vpcs.contains(v)))
            })
            .filter_map(|e| e.to_resource(now))
            .collect();
        if !network {
            let roles: Vec<(String, String)> = found
                .iter()
                .filter(|r| r.kind == ResourceKind::IamRole)
                .map(|r| (r.id.clone(), r.key.clone()))
                .collect();
            found.extend(self.discover_cache(&world, stack, &roles, now));
        }
        found
    }

    fn describe_impl(&self, kind: ResourceKind, id: &str) -> Option<Resource> {
        let now = Instant::now();
        let mut world = self.world.lock().expect("world");
        world.settle(now);
        self.log(&mut world, format!("describe {kind}"));
        world
            .entries
            .iter()
            .find(|e| e.kind == kind && e.id == id && self.here(e))
            // GetRole answers NoSuchEntity for a role IAM has not propagated yet.
            .filter(|e| e.kind != ResourceKind::IamRole || e.readable_at <= now)
            .and_then(|e| e.to_resource(now))
    }

    fn create_impl(&self, request: &CreateRequest, tags: &ResourceTags) -> Result<Resource> {
        let now = Instant::now();
        let kind = request.kind();
        let action = format!("create {kind}");
        let mut world = self.world.lock().expect("world");
        world.settle(now);
        self.log(&mut world, action.clone());
        let d = &self.durations;
        let partition = partition(&self.region);
        // IAM (roles, OIDC providers) is global.
        let regional = (!matches!(kind, ResourceKind::IamRole | ResourceKind::OidcProvider))
            .then(|| self.region.clone());
        let mut entry = Entry::new(kind, regional, now);
        entry.tags = tags.pairs();
        if kind.is_network() {
            entry.visible_at = now + d.ec2_propagation;
        }
        // EC2 references: NotFound while the named resource has not propagated yet.
        let need = |world: &World, k: ResourceKind, id: &str| -> Result<()> {
            match self.find(world, k, id, now) {
                Some(e) if e.visible_at <= now => Ok(()),
                _ => Err(not_found(&action, k, id)),
            }
        };
        // IAM role references by EKS: refused until the role has propagated.
        let usable_role = |world: &World, arn: &str, trust: RoleTrust| -> bool {
            world.entries.iter().any(|e| {
                e.kind == ResourceKind::IamRole
                    && e.arn.as_deref() == Some(arn)
                    && e.is_present(now)
                    && e.trust == Some(trust)
                    && e.visible_at <= now
            })
        };
        match request {
            CreateRequest::Vpc { .. } => entry.id = world.id("vpc"),
            CreateRequest::Subnet { vpc_id, az, .. } => {
                need(&world, ResourceKind::Vpc, vpc_id)?;
                if !self.zones.iter().any(|(z, _)| &z.name == az) {
                    return Err(Error::Backend {
                        action,
                        backend: "memory",
                        source: format!(
                            "InvalidParameterValue: Value ({az}) for parameter availabilityZone is invalid"
                        )
                        .into(),
                    });
                }
                entry.id = world.id("subnet");
                entry.parent = Some(vpc_id.clone());
                entry.zone = Some(az.clone());
            }
            CreateRequest::InternetGateway { vpc_id } => {
                need(&world, ResourceKind::Vpc, vpc_id)?;
                entry.id = world.id("igw");
                entry.parent = Some(vpc_id.clone());
            }
            CreateRequest::ElasticIp => entry.id = world.id("eipalloc"),
            CreateRequest::NatGateway {
                subnet_id,
                allocation_id,
            } => {
                need(&world, ResourceKind::Subnet, subnet_id)?;
                need(&world, ResourceKind::ElasticIp, allocation_id)?;
                if world.entries.iter().any(|e| {
                    e.kind == ResourceKind::NatGateway
                        && self.here(e)
                        && e.uses.contains(allocation_id)
                        && matches!(
                            e.state(now),
                            Some(ResourceState::Creating | ResourceState::Available)
                        )
                }) {
                    return Err(Error::Conflict {
                        action,
                        resource: format!("Elastic IP {allocation_id}"),
                        message: "Resource.AlreadyAssociated: the address is already used by a NAT gateway".into(),
                    });
                }
                entry.id = world.id("nat");
                entry.parent = self
                    .find(&world, ResourceKind::Subnet, subnet_id, now)
                    .and_then(|s| s.parent.clone());
                entry.uses = vec![subnet_id.clone(), allocation_id.clone()];
                entry.ready_at = now + d.nat_create;
            }
            CreateRequest::RouteTable {
                vpc_id,
                default_route,
                subnet_ids,
            } => {
                need(&world, ResourceKind::Vpc, vpc_id)?;
                match default_route {
                    DefaultRoute::InternetGateway(id) => {
                        need(&world, ResourceKind::InternetGateway, id)?
                    }
                    DefaultRoute::NatGateway(id) => need(&world, ResourceKind::NatGateway, id)?,
                }
                for subnet in subnet_ids {
                    need(&world, ResourceKind::Subnet, subnet)?;
                }
                entry.id = world.id("rtb");
                entry.parent = Some(vpc_id.clone());
                entry.uses = subnet_ids.clone();
            }
            CreateRequest::IamRole {
                name,
                trust,
                policy_arns,
                ..
            } => {
                if self
                    .find(&world, ResourceKind::IamRole, name, now)
                    .is_some()
                {
                    return Err(Error::AlreadyExists {
                        action,
                        resource: format!("IAM role {name}"),
                    });
                }
                let prefix = format!("arn:{partition}:iam::aws:policy/");
                if let Some(bad) = policy_arns.iter().find(|p| !p.starts_with(&prefix)) {
                    // IAM: NoSuchEntity, "Policy … does not exist or is not attachable."
                    return Err(Error::NotFound {
                        action: format!("attach role policy to {name}"),
                        resource: format!("managed policy {bad} (not in partition {partition})"),
                    });
                }
                entry.id = name.clone();
                entry.arn = Some(format!(
                    "arn:{partition}:iam::{ACCOUNT}:role{}{name}",
                    trust.path()
                ));
                entry
                    .tags
                    .insert(REGION_TAG.to_string(), self.region.clone());
                entry.trust = Some(*trust);
                entry.policies = policy_arns.clone();
                entry.visible_at = now + d.iam_propagation;
                entry.readable_at = now + d.iam_read_propagation;
            }
            CreateRequest::Cluster {
                name,
                role_arn,
                subnet_ids,
                ..
            } => {
                if self
                    .find(&world, ResourceKind::Cluster, name, now)
                    .is_some()
                {
                    return Err(Error::AlreadyExists {
                        action,
                        resource: format!("EKS cluster {name}"),
                    });
                }
                if !usable_role(&world, role_arn, RoleTrust::EksCluster) {
                    return Err(Error::Propagating {
                        action,
                        resource: format!("IAM role {role_arn}"),
                        message: format!(
                            "InvalidParameterException: Role with arn: {role_arn}, {ROLE_NOT_ASSUMABLE}"
                        ),
                    });
                }
                let cluster_policy =
                    format!("arn:{partition}:iam::aws:policy/AmazonEKSClusterPolicy");
                if !world.entries.iter().any(|e| {
                    e.kind == ResourceKind::IamRole
                        && e.arn.as_deref() == Some(role_arn.as_str())
                        && e.policies.contains(&cluster_policy)
                }) {
                    return Err(Error::Propagating {
                        action,
                        resource: format!("IAM role {role_arn}"),
                        message: format!("InvalidParameterException: {NO_MANAGED_POLICIES}"),
                    });
                }
                let mut vpc = None;
                let mut refused = Vec::new();
                for subnet in subnet_ids {
                    need(&world, ResourceKind::Subnet, subnet)?;
                    let found = self.find(&world, ResourceKind::Subnet, subnet, now);
                    vpc = found.and_then(|s| s.parent.clone());
                    let zone = found.and_then(|s| s.zone.clone()).unwrap_or_default();
                    let ok = self.zones.iter().any(|(z, is_az)| {
                        z.name == zone && *is_az && !self.eks_refused_zone_ids.contains(&z.id)
                    });
                    if !ok {
                        refused.push(zone);
                    }
                }
                if !refused.is_empty() {
                    let mut valid: Vec<String> = self
                        .zones
                        .iter()
                        .filter(|(z, is_az)| *is_az && !self.eks_refused_zone_ids.contains(&z.id))
                        .map(|(z, _)| z.name.clone())
                        .collect();
                    valid.sort();
                    return Err(Error::UnsupportedZones {
                        action,
                        message: format!(
                            "Cannot create cluster '{name}' because {}, the targeted availability zone, does not currently have sufficient capacity to support the cluster. Retry and choose from these availability zones: {}",
                            refused.join(", "),
                            valid.join(", ")
                        ),
                        valid_zones: valid,
                    });
                }
                entry.id = name.clone();
                entry.arn = Some(format!(
                    "arn:{partition}:eks:{}:{ACCOUNT}:cluster/{name}",
                    self.region
                ));
                entry.ready_at = now + d.cluster_create;
                entry.uses = subnet_ids.clone();
                // What EKS itself puts in the VPC: the cluster security group and one
                // control-plane ENI per subnet. Neither carries our tags.
                if let Some(vpc) = vpc {
                    let sg = world.id("sg");
                    let mut group =
                        Entry::new(ResourceKind::SecurityGroup, Some(self.region.clone()), now);
                    group.id = sg.clone();
                    group.tags =
                        BTreeMap::from([("aws:eks:cluster-name".to_string(), name.clone())]);
                    group.parent = Some(vpc.clone());
                    world.entries.push(group);
                    for subnet in subnet_ids {
                        let mut eni = Entry::new(
                            ResourceKind::NetworkInterface,
                            Some(self.region.clone()),
                            now,
                        );
                        eni.id = world.id("eni");
                        eni.parent = Some(vpc.clone());
                        eni.uses = vec![subnet.clone(), sg.clone()];
                        eni.attached_to = Some(name.clone());
                        world.entries.push(eni);
                    }
                }
            }
            CreateRequest::FargateProfile {
                cluster,
                name,
                subnet_ids,
                pod_execution_role_arn,
                selectors,
                ..
            } => {
                self.require_active_cluster(&world, cluster, &action, now)?;
                if crate::regions::offer(&self.region) != crate::regions::Offer::EksAndFargate {
                    // "AWS Fargate with Amazon EKS isn't available in AWS GovCloud (US-East) and
                    // AWS GovCloud (US-West)" (EKS User Guide, AWS Fargate). EKS's exact answer
                    // is not documented; what matters is that it comes after the network and
                    // the control plane were built and billed.
                    return Err(invalid_parameter(
                        &action,
                        format!("Fargate is not available for Amazon EKS in {}", self.region),
                    ));
                }
                let id = format!("{cluster}/{name}");
                if self
                    .find(&world, ResourceKind::FargateProfile, &id, now)
                    .is_some()
                {
                    return Err(Error::AlreadyExists {
                        action,
                        resource: format!("Fargate profile {id}"),
                    });
                }
                // EKS User Guide, "Get started with AWS Fargate for your cluster", step 4: "The
                // role ARN can't include a path other than /". How EKS fails is not documented;
                // refused here, as in the moto shim (scripts/moto_shim.py, role_paths).
                if role_has_path(pod_execution_role_arn) {
                    return Err(invalid_parameter(
                        &action,
                        format!(
                            "The Pod execution role ARN can't include a path other than /: {pod_execution_role_arn}"
                        ),
                    ));
                }
                if !usable_role(&world, pod_execution_role_arn, RoleTrust::FargatePods) {
                    return Err(Error::Propagating {
                        action,
                        resource: format!("IAM role {pod_execution_role_arn}"),
                        message: format!("InvalidParameterException: {FARGATE_ROLE_BAD}"),
                    });
                }
                for subnet in subnet_ids {
                    need(&world, ResourceKind::Subnet, subnet)?;
                }
                self.one_profile_operation_at_a_time(&world, cluster, &action, now)?;
                entry.id = id;
                entry.arn = Some(format!(
                    "arn:{partition}:eks:{}:{ACCOUNT}:fargateprofile/{cluster}/{name}/0",
                    self.region
                ));
                entry.parent = Some(cluster.clone());
                entry.uses = subnet_ids.clone();
                entry.selectors = selectors.clone();
                entry.ready_at = now + d.fargate_profile_create;
                entry.role = Some(pod_execution_role_arn.clone());
                // EKS makes an access entry of type FARGATE_LINUX for the pod execution role
                // (EKS User Guide, "Grant IAM users access to Kubernetes with EKS access
                // entries": the FARGATE_LINUX type, and "Amazon EKS adds entries for these
                // roles"); it carries none of our tags, and EKS does not remove it with the
                // profile (aws/containers-roadmap#2441): it goes with the cluster.
                let entry_id = format!("{cluster}/{pod_execution_role_arn}");
                if self
                    .find(&world, ResourceKind::AccessEntry, &entry_id, now)
                    .is_none()
                {
                    let mut managed =
                        Entry::new(ResourceKind::AccessEntry, Some(self.region.clone()), now);
                    managed.id = entry_id;
                    managed.parent = Some(cluster.clone());
                    managed.entry_type = Some("FARGATE_LINUX");
                    world.entries.push(managed);
                }
            }
            CreateRequest::Addon { cluster, name, .. } => {
                self.require_active_cluster(&world, cluster, &action, now)?;
                let id = format!("{cluster}/{name}");
                if self.find(&world, ResourceKind::Addon, &id, now).is_some() {
                    return Err(Error::AlreadyExists {
                        action,
                        resource: format!("EKS add-on {id}"),
                    });
                }
                entry.id = id;
                entry.parent = Some(cluster.clone());
                entry.ready_at = now + d.addon_create;
            }
            CreateRequest::AccessEntry {
                cluster,
                principal_arn,
                policy_arn,
            } => {
                self.require_active_cluster(&world, cluster, &action, now)?;
                let id = format!("{cluster}/{principal_arn}");
                if self
                    .find(&world, ResourceKind::AccessEntry, &id, now)
                    .is_some()
                {
                    return Err(Error::AlreadyExists {
                        action,
                        resource: format!("EKS access entry {id}"),
                    });
                }
                let known = world.users.contains(principal_arn)
                    || world.entries.iter().any(|e| {
                        e.kind == ResourceKind::IamRole
                            && e.arn.as_deref() == Some(principal_arn.as_str())
                            && e.is_present(now)
                    });
                if !known {
                    return Err(invalid_parameter(
                        &action,
                        format!(
                            "The specified principalArn is invalid: invalid principal ({principal_arn})"
                        ),
                    ));
                }
                if !policy_arn
                    .starts_with(&format!("arn:{partition}:eks::aws:cluster-access-policy/"))
                {
                    return Err(invalid_parameter(
                        &action,
                        format!("The specified policyArn is invalid: {policy_arn}"),
                    ));
                }
                entry.id = id;
                entry.parent = Some(cluster.clone());
                entry.policies = vec![policy_arn.clone()];
            }
            CreateRequest::OidcProvider { cluster } => {
                self.create_oidc_provider(&world, &mut entry, cluster, &action, now)?
            }
            CreateRequest::VpcEndpoint { .. }
            | CreateRequest::PullThroughCacheRule { .. }
            | CreateRequest::CacheSecret { .. }
            | CreateRequest::RolePolicy { .. } => {
                self.create_cache_entry(&mut world, &mut entry, request, &action, now)?;
            }
            CreateRequest::CacheBucket { name, expire_days } => {
                self.create_cache_bucket(&world, &mut entry, name, *expire_days, &action, now)?
            }
            CreateRequest::IrsaRole {
                name, policy_arns, ..
            } => {
                self.create_irsa_role(&world, &mut entry, name, &action, now)?;
                // Managed policies are attached as IAM attaches them (IAM API Reference,
                // AttachRolePolicy, Errors: NoSuchEntity for a policy that does not exist), and
                // the half-made role is rolled back as the AWS backend does.
                if let Some(bad) = policy_arns
                    .iter()
                    .find(|p| !self.managed_policy_exists(p, partition))
                {
                    return Err(Error::NotFound {
                        action: format!("attach role policy to {name}"),
                        resource: format!("managed policy {bad}"),
                    });
                }
                entry.policies = policy_arns.clone();
            }
        }
        let mut resource = entry.to_resource(now).expect("new entry is present");
        // Untagged kinds (ECR rules, inline policies) answer with the step's key too.
        resource.key = tags.key.clone();
        world.created.push(resource.clone());
        world.entries.push(entry);
        Ok(resource)
    }

    fn require_active_cluster(
        &self,
        world: &World,
        cluster: &str,
        action: &str,
        now: Instant,
    ) -> Result<()> {
        match self
            .find(world, ResourceKind::Cluster, cluster, now)
            .and_then(|c| c.state(now))
        {
            None => Err(not_found(action, ResourceKind::Cluster, cluster)),
            Some(ResourceState::Available) => Ok(()),
            Some(state) => Err(Error::Conflict {
                action: action.to_string(),
                resource: format!("EKS cluster {cluster}"),
                message: format!("cluster is {state:?}, not ACTIVE"),
            }),
        }
    }

    fn one_profile_operation_at_a_time(
        &self,
        world: &World,
        cluster: &str,
        action: &str,
        now: Instant,
    ) -> Result<()> {
        let busy = world.entries.iter().find(|e| {
            e.kind == ResourceKind::FargateProfile
                && self.here(e)
                && e.parent.as_deref() == Some(cluster)
                && matches!(
                    e.state(now),
                    Some(ResourceState::Creating | ResourceState::Deleting)
                )
        });
        match busy {
            Some(other) => Err(Error::Conflict {
                action: action.to_string(),
                resource: format!("EKS cluster {cluster}"),
                message: format!(
                    "ResourceInUseException: cluster currently has Fargate profile {} in status {:?}",
                    other.id,
                    other.state(now).expect("present")
                ),
            }),
            None => Ok(()),
        }
    }

    fn delete_impl(&self, resource: &Resource) -> Result<()> {
        let now = Instant::now();
        let kind = resource.kind;
        let id = resource.id.as_str();
        let action = format!("delete {kind}");
        let mut world = self.world.lock().expect("world");
        world.settle(now);
        self.log(&mut world, action.clone());
        let Some(index) = world
            .entries
            .iter()
            .position(|e| e.kind == kind && e.id == id && self.here(e) && e.is_present(now))
        else {
            return Err(not_found(&action, kind, id));
        };
        let entry = world.entries[index].clone();
        if entry.state(now) == Some(ResourceState::Deleting) {
            return Ok(());
        }
        let d = &self.durations;
        let dependents = |pred: &dyn Fn(&Entry) -> bool| -> Vec<String> {
            world
                .entries
                .iter()
                .filter(|e| self.here(e) && e.is_present(now) && pred(e))
                .map(|e| format!("{} {}", e.kind, e.id))
                .collect()
        };
        let live_nat = |e: &Entry| e.kind == ResourceKind::NatGateway && !e.failed;
        let blocked: Vec<String> = match kind {
            ResourceKind::Vpc => dependents(&|e| {
                e.kind != ResourceKind::Vpc
                    && e.kind.is_network()
                    && e.parent.as_deref() == Some(id)
                    && e.kind != ResourceKind::NatGateway
            }),
            ResourceKind::Subnet => dependents(&|e| {
                (live_nat(e) || e.kind == ResourceKind::NetworkInterface)
                    && e.uses.iter().any(|u| u == id)
            }),
            ResourceKind::InternetGateway => {
                // AWS refuses to detach while public addresses (NAT EIPs) are mapped in the VPC.
                let vpc = entry.parent.clone().unwrap_or_default();
                dependents(&|e| live_nat(e) && e.parent.as_deref() == Some(vpc.as_str()))
            }
            ResourceKind::ElasticIp => {
                dependents(&|e| live_nat(e) && e.uses.iter().any(|u| u == id))
            }
            ResourceKind::SecurityGroup => dependents(&|e| {
                e.kind == ResourceKind::NetworkInterface && e.uses.iter().any(|u| u == id)
            }),
            ResourceKind::NetworkInterface => entry
                .attached_to
                .iter()
                .map(|c| format!("EKS cluster {c} (attached)"))
                .collect(),
            _ => Vec::new(),
        };
        if !blocked.is_empty() {
            return Err(dependency(
                &action,
                kind,
                id,
                format!("used by {}", blocked.join(", ")),
            ));
        }
        if kind == ResourceKind::ElasticIp
            && let Some(nat) = world.entries.iter().find(|e| {
                e.kind == ResourceKind::NatGateway
                    && self.here(e)
                    && e.uses.iter().any(|u| u == id)
                    && e.deleting_until.is_some_and(|gone| {
                        now >= gone && now < gone + self.durations.eip_release_after_nat
                    })
            })
        {
            // ReleaseAddress answers AuthFailure for a while after the address's NAT gateway
            // is deleted (see Durations::eip_release_after_nat); the AWS backend reports it as
            // eventual consistency, as this does.
            return Err(Error::Propagating {
                action,
                resource: format!("Elastic IP {id}"),
                message: format!(
                    "AuthFailure: You do not have permission to access the specified resource. (its NAT gateway {} was deleted moments ago)",
                    nat.id
                ),
            });
        }
        let mut broken_profiles = Vec::new();
        if kind == ResourceKind::AccessEntry {
            // Deleting the EKS-managed entry of a profile's role while the profile exists
            // unmaps the Fargate nodes: "identity is not mapped" (aws/containers-roadmap#2441),
            // "Pod execution role is not found in auth config" and the profile "blocked for new
            // launches" (terraform-aws-modules/terraform-aws-eks#2972).
            let cluster = entry.parent.clone().unwrap_or_default();
            let principal = id.strip_prefix(&format!("{cluster}/")).unwrap_or_default();
            let broken: Vec<String> = world
                .entries
                .iter()
                .filter(|e| {
                    e.kind == ResourceKind::FargateProfile
                        && self.here(e)
                        && e.is_present(now)
                        && e.parent.as_deref() == Some(cluster.as_str())
                        && e.role.as_deref() == Some(principal)
                })
                .map(|e| e.id.clone())
                .collect();
            broken_profiles = broken;
        }
        let until = match kind {
            ResourceKind::Cluster => {
                let profiles = dependents(&|e| {
                    e.kind == ResourceKind::FargateProfile && e.parent.as_deref() == Some(id)
                });
                if !profiles.is_empty() {
                    return Err(Error::Conflict {
                        action,
                        resource: format!("EKS cluster {id}"),
                        message: format!(
                            "ResourceInUseException: delete its Fargate profiles first ({})",
                            profiles.join(", ")
                        ),
                    });
                }
                now + d.cluster_delete
            }
            ResourceKind::FargateProfile => {
                let cluster = entry.parent.clone().unwrap_or_default();
                self.one_profile_operation_at_a_time(&world, &cluster, &action, now)?;
                now + d.fargate_profile_delete
            }
            ResourceKind::NatGateway => now + d.nat_delete,
            ResourceKind::Addon => now + d.addon_delete,
            _ => now,
        };
        if kind == ResourceKind::Cluster {
            // Add-ons and access entries go with the cluster.
            let region = self.region.clone();
            for e in world.entries.iter_mut() {
                if matches!(e.kind, ResourceKind::Addon | ResourceKind::AccessEntry)
                    && e.region.as_deref() == Some(region.as_str())
                    && e.parent.as_deref() == Some(id)
                    && e.deleting_until.is_none()
                {
                    e.deleting_until = Some(until);
                }
            }
        }
        world.fargate_auth_broken.extend(broken_profiles);
        if kind == ResourceKind::IamRole {
            // The backends delete a role's inline policies before the role (DeleteRole answers
            // DeleteConflict while it has any: IAM API Reference, DeleteRole).
            for e in world.entries.iter_mut() {
                if e.kind == ResourceKind::RolePolicy && e.parent.as_deref() == Some(id) {
                    e.deleting_until = Some(now);
                }
            }
        }
        world.entries[index].deleting_until = Some(until);
        world.settle(now);
        Ok(())
    }

    fn drift_impl(&self, request: &CreateRequest, found: &Resource) -> Vec<String> {
        let now = Instant::now();
        let world = self.world.lock().expect("world");
        let Some(entry) = self.find(&world, found.kind, &found.id, now) else {
            return Vec::new();
        };
        match request {
            CreateRequest::IamRole {
                trust, policy_arns, ..
            } => {
                let mut lines: Vec<String> = policy_arns
                    .iter()
                    .filter(|p| !entry.policies.contains(p))
                    .map(|p| format!("managed policy {p} is not attached"))
                    .collect();
                if entry.trust != Some(*trust) {
                    lines.push(format!(
                        "its trust policy does not let {} assume it",
                        trust.service()
                    ));
                }
                lines
            }
            CreateRequest::AccessEntry { policy_arn, .. } => {
                if entry.policies.contains(policy_arn) {
                    Vec::new()
                } else {
                    vec![format!("access policy {policy_arn} is not associated")]
                }
            }
            _ => Vec::new(),
        }
    }
}

#[async_trait]
impl NetworkProvisioner for InMemoryCloud {
    async fn availability_zones(&self) -> Result<Vec<AvailabilityZone>> {
        let mut world = self.world.lock().expect("world");
        self.log(&mut world, "describe availability zones".into());
        // DescribeAvailabilityZones filtered on zone-type=availability-zone, as the AWS
        // backend asks for it: the Local Zone stays out.
        let mut zones: Vec<AvailabilityZone> = self
            .zones
            .iter()
            .filter(|(_, is_az)| *is_az)
            .map(|(z, _)| z.clone())
            .collect();
        zones.sort();
        Ok(zones)
    }

    async fn discover(&self, stack: &StackName) -> Result<Vec<Resource>> {
        Ok(self.discover_impl(stack, true))
    }

    async fn create(&self, request: &CreateRequest, tags: &ResourceTags) -> Result<Resource> {
        self.create_impl(request, tags)
    }

    async fn describe(&self, kind: ResourceKind, id: &str) -> Result<Option<Resource>> {
        Ok(self.describe_impl(kind, id))
    }

    async fn delete(&self, resource: &Resource) -> Result<()> {
        self.delete_impl(resource)
    }
}

#[async_trait]
impl ClusterProvisioner for InMemoryCloud {
    async fn caller_arn(&self) -> Result<String> {
        let now = Instant::now();
        let mut world = self.world.lock().expect("world");
        self.log(&mut world, "describe caller identity".into());
        match classify_caller(&self.caller)? {
            Caller::IamUser { arn } => Ok(arn),
            Caller::AssumedRole { role_name, .. } => self
                .find(&world, ResourceKind::IamRole, &role_name, now)
                .and_then(|e| e.arn.clone())
                .ok_or_else(|| not_found("get IAM role", ResourceKind::IamRole, &role_name)),
        }
    }

    async fn discover(&self, stack: &StackName) -> Result<Vec<Resource>> {
        Ok(self.discover_impl(stack, false))
    }

    async fn create(&self, request: &CreateRequest, tags: &ResourceTags) -> Result<Resource> {
        self.create_impl(request, tags)
    }

    async fn describe(&self, kind: ResourceKind, id: &str) -> Result<Option<Resource>> {
        Ok(self.describe_impl(kind, id))
    }

    async fn delete(&self, resource: &Resource) -> Result<()> {
        self.delete_impl(resource)
    }

    async fn drift(&self, request: &CreateRequest, found: &Resource) -> Result<Vec<String>> {
        Ok(self.drift_impl(request, found))
    }

    async fn cache_rules(&self) -> Result<Vec<crate::image_cache::CacheRule>> {
        Ok(self.cache_rules_impl())
    }

    async fn cluster_access(&self, name: &str) -> Result<ClusterAccess> {
        use base64::Engine as _;
        let cluster = self
            .describe_impl(ResourceKind::Cluster, name)
            .ok_or_else(|| not_found("read cluster endpoint", ResourceKind::Cluster, name))?;
        if cluster.state != ResourceState::Available {
            return Err(Error::Conflict {
                action: "read cluster endpoint".into(),
                resource: format!("EKS cluster {name}"),
                message: "cluster is not ACTIVE yet".into(),
            });
        }
        Ok(ClusterAccess {
            name: name.to_string(),
            arn: cluster.arn.unwrap_or_default(),
            endpoint: format!(
                "https://{:X}.gr7.{}.eks.amazonaws.com",
                fxhash(name),
                self.region
            ),
            certificate_authority: base64::engine::general_purpose::STANDARD
                .encode("-----BEGIN CERTIFICATE-----\nc2FuZGJveA==\n-----END CERTIFICATE-----\n"),
            fargate_profiles: self.fargate_profiles(name),
            oidc_issuer: Some(oidc::issuer(&self.region, name)),
        })
    }
}

impl InMemoryCloud {
    /// The live Fargate profiles of `cluster` with their selectors.
    fn fargate_profiles(&self, cluster: &str) -> Vec<crate::FargateProfileSelectors> {
        let now = Instant::now();
        let world = self.world.lock().expect("world");
        world
            .entries
            .iter()
            .filter(|e| {
                e.kind == ResourceKind::FargateProfile
                    && e.parent.as_deref() == Some(cluster)
                    && e.region.as_deref() == Some(self.region.as_str())
            })
            .filter(|e| e.to_resource(now).is_some())
            .map(|e| crate::FargateProfileSelectors {
                name: e.id.rsplit('/').next().unwrap_or(&e.id).to_owned(),
                selectors: e.selectors.clone(),
            })
            .collect()
    }
}

fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}
