//! In-memory EC2 + EKS + IAM with AWS's timing and rules, on tokio's clock.
//!
//! Models what the engine depends on: CREATING/DELETING states with realistic durations
//! (so a paused tokio clock replays a 12-minute cluster creation in milliseconds), NotFound,
//! AlreadyExists, DependencyViolation on deleting what still has dependents, EKS's
//! one-Fargate-profile-operation-at-a-time rule, and the ENIs and security group EKS leaves in
//! the VPC after a cluster is deleted (which is what blocks VPC deletion in real teardowns).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::provider::{ClusterProvisioner, NetworkProvisioner};
use crate::resource::{
    ClusterAccess, CreateRequest, DefaultRoute, Resource, ResourceKind, ResourceState, ResourceTags,
};
use crate::spec::{KEY_TAG, STACK_TAG, StackName};

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
        }
    }
}

impl Durations {
    /// Every operation completes at once (like moto).
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
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    kind: ResourceKind,
    id: String,
    arn: Option<String>,
    tags: BTreeMap<String, String>,
    /// VPC of network resources; cluster name of profiles, add-ons and access entries.
    parent: Option<String>,
    /// Ids this resource uses (subnet of a NAT, EIP of a NAT, subnets of a route table...).
    uses: Vec<String>,
    ready_at: Instant,
    deleting_until: Option<Instant>,
    /// ENIs created by EKS: attached while their cluster lives.
    attached_to: Option<String>,
    /// Selectors of a Fargate profile.
    selectors: Vec<crate::spec::FargateSelector>,
}

impl Entry {
    fn state(&self, now: Instant) -> Option<ResourceState> {
        match self.deleting_until {
            Some(until) if now >= until => {
                (self.kind == ResourceKind::NatGateway).then_some(ResourceState::Deleted)
            }
            Some(_) => Some(ResourceState::Deleting),
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
}

#[derive(Debug, Default)]
struct World {
    entries: Vec<Entry>,
    next_id: u64,
    calls: Vec<String>,
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
        let live_clusters: Vec<String> = self
            .entries
            .iter()
            .filter(|e| e.kind == ResourceKind::Cluster)
            .map(|e| e.id.clone())
            .collect();
        for entry in &mut self.entries {
            if entry
                .attached_to
                .as_ref()
                .is_some_and(|c| !live_clusters.contains(c))
            {
                entry.attached_to = None;
            }
        }
    }

    fn find(&self, kind: ResourceKind, id: &str, now: Instant) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.kind == kind && e.id == id && e.state(now).is_some_and(|s| s.is_present()))
    }

    fn present<'a>(&'a self, now: Instant) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries
            .iter()
            .filter(move |e| e.state(now).is_some_and(|s| s.is_present()))
    }

    fn present_not_deleting<'a>(&'a self, now: Instant) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries.iter().filter(move |e| {
            matches!(
                e.state(now),
                Some(ResourceState::Creating | ResourceState::Available)
            )
        })
    }
}

/// One in-memory AWS account and region implementing both [`NetworkProvisioner`] and
/// [`ClusterProvisioner`]. Clones share the same world.
#[derive(Debug, Clone)]
pub struct InMemoryCloud {
    world: Arc<Mutex<World>>,
    durations: Durations,
    region: String,
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

impl InMemoryCloud {
    /// A fresh, empty cloud in `region` with the default durations.
    pub fn new(region: impl Into<String>) -> Self {
        Self {
            world: Arc::default(),
            durations: Durations::default(),
            region: region.into(),
        }
    }

    /// Replaces the operation durations.
    #[must_use]
    pub fn with_durations(mut self, durations: Durations) -> Self {
        self.durations = durations;
        self
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

    /// Every resource present in the account, whatever its tags (for leftover assertions).
    pub fn all_resources(&self) -> Vec<Resource> {
        let now = Instant::now();
        let mut world = self.world.lock().expect("world");
        world.settle(now);
        world
            .present(now)
            .filter_map(|e| e.to_resource(now))
            .collect()
    }

    fn log(&self, world: &mut World, call: String) {
        tracing::trace!(%call, "in-memory cloud call");
        world.calls.push(call);
    }

    fn discover_impl(&self, stack: &StackName, network: bool) -> Vec<Resource> {
        let now = Instant::now();
        let mut world = self.world.lock().expect("world");
        world.settle(now);
        self.log(
            &mut world,
            format!("discover {}", if network { "network" } else { "cluster" }),
        );
        let stack_vpcs: Vec<String> = world
            .entries
            .iter()
            .filter(|e| {
                e.kind == ResourceKind::Vpc
                    && e.tags.get(STACK_TAG).map(String::as_str) == Some(stack.as_str())
            })
            .map(|e| e.id.clone())
            .collect();
        world
            .entries
            .iter()
            .filter(|e| e.kind.is_network() == network)
            .filter(|e| {
                e.tags.get(STACK_TAG).map(String::as_str) == Some(stack.as_str())
                    || (matches!(
                        e.kind,
                        ResourceKind::NetworkInterface | ResourceKind::SecurityGroup
                    ) && e.parent.as_ref().is_some_and(|v| stack_vpcs.contains(v)))
            })
            .filter_map(|e| e.to_resource(now))
            .collect()
    }

    fn describe_impl(&self, kind: ResourceKind, id: &str) -> Option<Resource> {
        let now = Instant::now();
        let mut world = self.world.lock().expect("world");
        world.settle(now);
        self.log(&mut world, format!("describe {kind}"));
        world
            .entries
            .iter()
            .find(|e| e.kind == kind && e.id == id)
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
        let tags = tags.pairs();
        let mut entry = Entry {
            kind,
            id: String::new(),
            arn: None,
            tags,
            parent: None,
            uses: Vec::new(),
            ready_at: now,
            deleting_until: None,
            attached_to: None,
            selectors: Vec::new(),
        };
        let need = |world: &World, k: ResourceKind, id: &str| -> Result<()> {
            world
                .find(k, id, now)
                .map(|_| ())
                .ok_or_else(|| not_found(&action, k, id))
        };
        match request {
            CreateRequest::Vpc { .. } => entry.id = world.id("vpc"),
            CreateRequest::Subnet { vpc_id, .. } => {
                need(&world, ResourceKind::Vpc, vpc_id)?;
                entry.id = world.id("subnet");
                entry.parent = Some(vpc_id.clone());
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
                if world
                    .present_not_deleting(now)
                    .any(|e| e.kind == ResourceKind::NatGateway && e.uses.contains(allocation_id))
                {
                    return Err(Error::Conflict {
                        action,
                        resource: format!("Elastic IP {allocation_id}"),
                        message: "Resource.AlreadyAssociated: the address is already used by a NAT gateway".into(),
                    });
                }
                entry.id = world.id("nat");
                entry.parent = world
                    .find(ResourceKind::Subnet, subnet_id, now)
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
            CreateRequest::IamRole { name, .. } => {
                if world.find(ResourceKind::IamRole, name, now).is_some() {
                    return Err(Error::AlreadyExists {
                        action,
                        resource: format!("IAM role {name}"),
                    });
                }
                entry.id = name.clone();
                entry.arn = Some(format!("arn:aws:iam::{ACCOUNT}:role/glrunner/{name}"));
            }
            CreateRequest::Cluster {
                name, subnet_ids, ..
            } => {
                if world.find(ResourceKind::Cluster, name, now).is_some() {
                    return Err(Error::AlreadyExists {
                        action,
                        resource: format!("EKS cluster {name}"),
                    });
                }
                let mut vpc = None;
                for subnet in subnet_ids {
                    need(&world, ResourceKind::Subnet, subnet)?;
                    vpc = world
                        .find(ResourceKind::Subnet, subnet, now)
                        .and_then(|s| s.parent.clone());
                }
                entry.id = name.clone();
                entry.arn = Some(format!(
                    "arn:aws:eks:{}:{ACCOUNT}:cluster/{name}",
                    self.region
                ));
                entry.ready_at = now + d.cluster_create;
                entry.uses = subnet_ids.clone();
                // What EKS itself puts in the VPC: the cluster security group and one
                // control-plane ENI per subnet. Neither carries our tags.
                if let Some(vpc) = vpc {
                    let sg = world.id("sg");
                    world.entries.push(Entry {
                        kind: ResourceKind::SecurityGroup,
                        id: sg.clone(),
                        arn: None,
                        tags: BTreeMap::from([("aws:eks:cluster-name".to_string(), name.clone())]),
                        parent: Some(vpc.clone()),
                        uses: vec![],
                        ready_at: now,
                        deleting_until: None,
                        attached_to: None,
                        selectors: Vec::new(),
                    });
                    for subnet in subnet_ids {
                        let eni = world.id("eni");
                        world.entries.push(Entry {
                            kind: ResourceKind::NetworkInterface,
                            id: eni,
                            arn: None,
                            tags: BTreeMap::new(),
                            parent: Some(vpc.clone()),
                            uses: vec![subnet.clone(), sg.clone()],
                            ready_at: now,
                            deleting_until: None,
                            attached_to: Some(name.clone()),
                            selectors: Vec::new(),
                        });
                    }
                }
            }
            CreateRequest::FargateProfile {
                cluster,
                name,
                subnet_ids,
                selectors,
                ..
            } => {
                self.require_active_cluster(&world, cluster, &action, now)?;
                let id = format!("{cluster}/{name}");
                if world.find(ResourceKind::FargateProfile, &id, now).is_some() {
                    return Err(Error::AlreadyExists {
                        action,
                        resource: format!("Fargate profile {id}"),
                    });
                }
                self.one_profile_operation_at_a_time(&world, cluster, &action, now)?;
                entry.id = id;
                entry.arn = Some(format!(
                    "arn:aws:eks:{}:{ACCOUNT}:fargateprofile/{cluster}/{name}/0",
                    self.region
                ));
                entry.parent = Some(cluster.clone());
                entry.uses = subnet_ids.clone();
                entry.selectors = selectors.clone();
                entry.ready_at = now + d.fargate_profile_create;
            }
            CreateRequest::Addon { cluster, name, .. } => {
                self.require_active_cluster(&world, cluster, &action, now)?;
                let id = format!("{cluster}/{name}");
                if world.find(ResourceKind::Addon, &id, now).is_some() {
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
                ..
            } => {
                self.require_active_cluster(&world, cluster, &action, now)?;
                let id = format!("{cluster}/{principal_arn}");
                if world.find(ResourceKind::AccessEntry, &id, now).is_some() {
                    return Err(Error::AlreadyExists {
                        action,
                        resource: format!("EKS access entry {id}"),
                    });
                }
                entry.id = id;
                entry.parent = Some(cluster.clone());
            }
        }
        let resource = entry.to_resource(now).expect("new entry is present");
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
        match world
            .find(ResourceKind::Cluster, cluster, now)
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
        let Some(index) = world.entries.iter().position(|e| {
            e.kind == kind && e.id == id && e.state(now).is_some_and(|s| s.is_present())
        }) else {
            return Err(not_found(&action, kind, id));
        };
        let entry = world.entries[index].clone();
        if entry.state(now) == Some(ResourceState::Deleting) {
            return Ok(());
        }
        let d = &self.durations;
        let dependents = |pred: &dyn Fn(&Entry) -> bool| -> Vec<String> {
            world
                .present(now)
                .filter(|e| pred(e))
                .map(|e| format!("{} {}", e.kind, e.id))
                .collect()
        };
        let blocked: Vec<String> = match kind {
            ResourceKind::Vpc => dependents(&|e| {
                e.kind != ResourceKind::Vpc
                    && e.kind.is_network()
                    && e.parent.as_deref() == Some(id)
                    && e.kind != ResourceKind::NatGateway
            }),
            ResourceKind::Subnet => dependents(&|e| {
                matches!(
                    e.kind,
                    ResourceKind::NatGateway | ResourceKind::NetworkInterface
                ) && e.uses.iter().any(|u| u == id)
            }),
            ResourceKind::InternetGateway => {
                // AWS refuses to detach while public addresses (NAT EIPs) are mapped in the VPC.
                let vpc = entry.parent.clone().unwrap_or_default();
                dependents(&|e| {
                    e.kind == ResourceKind::NatGateway && e.parent.as_deref() == Some(vpc.as_str())
                })
            }
            ResourceKind::ElasticIp => dependents(&|e| {
                e.kind == ResourceKind::NatGateway && e.uses.iter().any(|u| u == id)
            }),
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
            for e in world.entries.iter_mut() {
                if matches!(e.kind, ResourceKind::Addon | ResourceKind::AccessEntry)
                    && e.parent.as_deref() == Some(id)
                    && e.deleting_until.is_none()
                {
                    e.deleting_until = Some(until);
                }
            }
        }
        world.entries[index].deleting_until = Some(until);
        world.settle(now);
        Ok(())
    }
}

#[async_trait]
impl NetworkProvisioner for InMemoryCloud {
    async fn availability_zones(&self) -> Result<Vec<String>> {
        let mut world = self.world.lock().expect("world");
        self.log(&mut world, "describe availability zones".into());
        Ok(["a", "b", "c", "d"]
            .iter()
            .map(|s| format!("{}{s}", self.region))
            .collect())
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
        let mut world = self.world.lock().expect("world");
        self.log(&mut world, "describe caller identity".into());
        Ok(format!("arn:aws:iam::{ACCOUNT}:user/sandbox"))
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
                e.kind == ResourceKind::FargateProfile && e.parent.as_deref() == Some(cluster)
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
