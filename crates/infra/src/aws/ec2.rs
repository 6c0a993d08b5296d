//! EC2: VPC, subnets, internet and NAT gateways, Elastic IPs, route tables, and the sweep of
//! ENIs and security groups EKS leaves in the VPC.

use async_trait::async_trait;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{
    AttributeBooleanValue, DomainType, Filter, NatGatewayState, ResourceType, Tag, TagSpecification,
};
use ipnet::Ipv4Net;

use super::{CONSISTENCY_WINDOW, map_sdk_error, until_visible};
use crate::error::{Error, Result};
use crate::provider::NetworkProvisioner;
use crate::resource::{
    AvailabilityZone, CreateRequest, DefaultRoute, Resource, ResourceKind, ResourceState,
    ResourceTags,
};
use crate::spec::{KEY_TAG, STACK_TAG, StackName, SubnetTier};
use std::time::Duration;

/// [`NetworkProvisioner`] on aws-sdk-ec2.
#[derive(Debug, Clone)]
pub struct AwsNetwork {
    pub(super) ec2: Client,
    pub(super) consistency_window: Duration,
}

impl AwsNetwork {
    /// From a loaded [`aws_config::SdkConfig`] (see [`super::load_config`]).
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self::from_client(Client::new(config))
    }

    /// From an existing EC2 client (tests pass mocked clients here).
    pub fn from_client(ec2: Client) -> Self {
        Self {
            ec2,
            consistency_window: CONSISTENCY_WINDOW,
        }
    }

    /// How long a creation retries NotFound for an id it has just made (default
    /// [`CONSISTENCY_WINDOW`]).
    #[must_use]
    pub fn with_consistency_window(mut self, window: Duration) -> Self {
        self.consistency_window = window;
        self
    }
}

pub(super) fn tag_spec(
    resource_type: ResourceType,
    tags: &ResourceTags,
    extra: &[(String, String)],
) -> TagSpecification {
    let mut pairs = tags.pairs();
    pairs.extend(extra.iter().cloned());
    TagSpecification::builder()
        .resource_type(resource_type)
        .set_tags(Some(
            pairs
                .into_iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .build()
}

pub(super) fn stack_filter(stack: &StackName) -> Filter {
    Filter::builder()
        .name(format!("tag:{STACK_TAG}"))
        .values(stack.as_str())
        .build()
}

pub(super) fn key_of(tags: &[Tag]) -> String {
    tags.iter()
        .find(|t| t.key() == Some(KEY_TAG))
        .and_then(|t| t.value())
        .unwrap_or_default()
        .to_string()
}

fn nat_state(state: Option<&NatGatewayState>) -> ResourceState {
    match state {
        Some(NatGatewayState::Pending) => ResourceState::Creating,
        Some(NatGatewayState::Available) => ResourceState::Available,
        Some(NatGatewayState::Deleting) => ResourceState::Deleting,
        Some(NatGatewayState::Deleted) => ResourceState::Deleted,
        Some(NatGatewayState::Failed) => ResourceState::Failed,
        _ => ResourceState::Creating,
    }
}

fn res(
    kind: ResourceKind,
    id: Option<&str>,
    key: String,
    state: ResourceState,
) -> Option<Resource> {
    id.map(|id| Resource {
        kind,
        id: id.to_string(),
        key,
        arn: None,
        state,
    })
}

/// Runs a paginated EC2 Describe call with optional filters and ids and collects every item.
macro_rules! describe_all {
    ($self:ident . $op:ident, $set_filters:ident($filters:expr), $set_ids:ident($ids:expr), $what:literal) => {
        $self
            .ec2
            .$op()
            .$set_filters(Some($filters))
            .$set_ids((!$ids.is_empty()).then_some($ids))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| map_sdk_error(concat!("describe ", $what), $what, "ec2", e))?
    };
}

impl AwsNetwork {
    async fn vpcs(&self, filters: Vec<Filter>, ids: Vec<String>) -> Result<Vec<Resource>> {
        let vpcs = describe_all!(
            self.describe_vpcs,
            set_filters(filters),
            set_vpc_ids(ids),
            "VPCs"
        );
        Ok(vpcs
            .iter()
            .filter_map(|v| {
                res(
                    ResourceKind::Vpc,
                    v.vpc_id(),
                    key_of(v.tags()),
                    ResourceState::Available,
                )
            })
            .collect())
    }

    async fn subnets(&self, filters: Vec<Filter>, ids: Vec<String>) -> Result<Vec<Resource>> {
        let subnets = describe_all!(
            self.describe_subnets,
            set_filters(filters),
            set_subnet_ids(ids),
            "subnets"
        );
        Ok(subnets
            .iter()
            .filter_map(|s| {
                res(
                    ResourceKind::Subnet,
                    s.subnet_id(),
                    key_of(s.tags()),
                    ResourceState::Available,
                )
            })
            .collect())
    }

    async fn internet_gateways(
        &self,
        filters: Vec<Filter>,
        ids: Vec<String>,
    ) -> Result<Vec<Resource>> {
        let igws = describe_all!(
            self.describe_internet_gateways,
            set_filters(filters),
            set_internet_gateway_ids(ids),
            "internet gateways"
        );
        Ok(igws
            .iter()
            .filter_map(|g| {
                res(
                    ResourceKind::InternetGateway,
                    g.internet_gateway_id(),
                    key_of(g.tags()),
                    ResourceState::Available,
                )
            })
            .collect())
    }

    async fn route_tables(&self, filters: Vec<Filter>, ids: Vec<String>) -> Result<Vec<Resource>> {
        let tables = describe_all!(
            self.describe_route_tables,
            set_filters(filters),
            set_route_table_ids(ids),
            "route tables"
        );
        Ok(tables
            .iter()
            .filter_map(|t| {
                res(
                    ResourceKind::RouteTable,
                    t.route_table_id(),
                    key_of(t.tags()),
                    ResourceState::Available,
                )
            })
            .collect())
    }

    async fn addresses(&self, filters: Vec<Filter>, ids: Vec<String>) -> Result<Vec<Resource>> {
        let out = self
            .ec2
            .describe_addresses()
            .set_filters(Some(filters))
            .set_allocation_ids((!ids.is_empty()).then_some(ids))
            .send()
            .await
            .map_err(|e| map_sdk_error("describe Elastic IPs", "Elastic IPs", "ec2", e))?;
        Ok(out
            .addresses()
            .iter()
            .filter_map(|a| {
                res(
                    ResourceKind::ElasticIp,
                    a.allocation_id(),
                    key_of(a.tags()),
                    ResourceState::Available,
                )
            })
            .collect())
    }

    /// NAT gateways; with `stack`, only those tagged with it (checked here too, because some
    /// EC2 implementations, moto among them, ignore tag filters on DescribeNatGateways).
    async fn nat_gateways(
        &self,
        filters: Vec<Filter>,
        ids: Vec<String>,
        stack: Option<&StackName>,
    ) -> Result<Vec<Resource>> {
        let nats = describe_all!(
            self.describe_nat_gateways,
            set_filter(filters),
            set_nat_gateway_ids(ids),
            "NAT gateways"
        );
        Ok(nats
            .iter()
            .filter(|n| {
                stack.is_none_or(|stack| {
                    n.tags()
                        .iter()
                        .any(|t| t.key() == Some(STACK_TAG) && t.value() == Some(stack.as_str()))
                })
            })
            .filter_map(|n| {
                res(
                    ResourceKind::NatGateway,
                    n.nat_gateway_id(),
                    key_of(n.tags()),
                    nat_state(n.state()),
                )
            })
            .collect())
    }

    async fn security_groups(
        &self,
        filters: Vec<Filter>,
        ids: Vec<String>,
    ) -> Result<Vec<Resource>> {
        let groups = describe_all!(
            self.describe_security_groups,
            set_filters(filters),
            set_group_ids(ids),
            "security groups"
        );
        Ok(groups
            .iter()
            // Every VPC's `default` group goes with the VPC and cannot be deleted on its own.
            .filter(|g| g.group_name() != Some("default"))
            .filter_map(|g| {
                res(
                    ResourceKind::SecurityGroup,
                    g.group_id(),
                    key_of(g.tags()),
                    ResourceState::Available,
                )
            })
            .collect())
    }

    async fn network_interfaces(
        &self,
        filters: Vec<Filter>,
        ids: Vec<String>,
    ) -> Result<Vec<Resource>> {
        let enis = describe_all!(
            self.describe_network_interfaces,
            set_filters(filters),
            set_network_interface_ids(ids),
            "network interfaces"
        );
        Ok(enis
            .iter()
            // A NAT gateway's own interface goes away with the NAT gateway.
            .filter(|n| n.interface_type().map(|t| t.as_str()) != Some("nat_gateway"))
            .filter_map(|n| {
                res(
                    ResourceKind::NetworkInterface,
                    n.network_interface_id(),
                    key_of(n.tag_set()),
                    ResourceState::Available,
                )
            })
            .collect())
    }

    /// The NAT gateway, deleting or deleted, that used the Elastic IP `allocation_id`.
    async fn deleted_nat_of(&self, allocation_id: &str) -> Result<Option<String>> {
        let nats: Vec<_> = self
            .ec2
            .describe_nat_gateways()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| map_sdk_error("describe NAT gateways", "NAT gateways", "ec2", e))?;
        Ok(nats
            .iter()
            .filter(|n| {
                matches!(
                    n.state(),
                    Some(NatGatewayState::Deleting | NatGatewayState::Deleted)
                )
            })
            .find(|n| {
                n.nat_gateway_addresses()
                    .iter()
                    .any(|a| a.allocation_id() == Some(allocation_id))
            })
            .and_then(|n| n.nat_gateway_id().map(str::to_owned)))
    }

    /// ReleaseAddress; an address whose NAT gateway was just deleted is reported as
    /// [`Error::Propagating`] so that teardown retries it for a bounded window.
    async fn release_address(&self, resource: &Resource, action: &str, what: &str) -> Result<()> {
        let err = match self
            .ec2
            .release_address()
            .allocation_id(&resource.id)
            .send()
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        let code = err.code().unwrap_or_default().to_string();
        // Right after its NAT gateway is deleted, and for a while after DescribeNatGateways says
        // `deleted`, EC2 refuses to release the address with AuthFailure "You do not have
        // permission to access the specified resource." (terraform-aws-modules/terraform-aws-vpc
        // #64, hashicorp/terraform-provider-aws#13763, eformat/sno-for-100#9), or with
        // InvalidNetworkInterfaceID.NotFound naming the gateway's gone interface
        // (hashicorp/terraform-provider-aws#49299), which must not pass for "already released".
        if matches!(
            code.as_str(),
            "AuthFailure" | "InvalidNetworkInterfaceID.NotFound"
        ) && let Some(nat) = self.deleted_nat_of(&resource.id).await?
        {
            return Err(Error::Propagating {
                action: action.to_string(),
                resource: what.to_string(),
                message: format!(
                    "{code}: {} (NAT gateway {nat}, which used this address, was deleted moments ago; EC2 releases the address a little later)",
                    err.message().unwrap_or_default()
                ),
            });
        }
        Err(map_sdk_error(action, what, "ec2", err))
    }

    async fn rollback(&self, resource: Resource, cause: Error) -> Error {
        tracing::warn!(resource = %resource.describe(), error = %cause, "rolling back a half-created resource");
        if let Err(e) = self.delete(&resource).await {
            tracing::error!(resource = %resource.describe(), error = %e, "rollback failed; teardown will find it by tag");
        }
        cause
    }
}

/// Treats NotFound as "gone" for describes.
fn found(result: Result<Vec<Resource>>) -> Result<Option<Resource>> {
    match result {
        Ok(mut list) => Ok(list.pop()),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// One `create` per kind of network resource: the call, its follow-up calls (attributes,
/// attachments, routes), and a rollback when a follow-up fails.
impl AwsNetwork {
    async fn create_vpc(&self, cidr: &Ipv4Net, tags: &ResourceTags) -> Result<Resource> {
        let kind = ResourceKind::Vpc;
        let action = format!("create {kind}");
        let available = |id: &str| available(kind, id, tags);
        let out = self
            .ec2
            .create_vpc()
            .cidr_block(cidr.to_string())
            .tag_specifications(tag_spec(ResourceType::Vpc, tags, &[]))
            .send()
            .await
            .map_err(|e| map_sdk_error(&action, cidr.to_string(), "ec2", e))?;
        let id = out
            .vpc()
            .and_then(|v| v.vpc_id())
            .unwrap_or_default()
            .to_string();
        let vpc = available(&id);
        // DNS hostnames are required for the EKS private endpoint; one attribute per call.
        for hostnames in [false, true] {
            let modify = || {
                let call = self.ec2.modify_vpc_attribute().vpc_id(&id);
                let on = AttributeBooleanValue::builder().value(true).build();
                let call = if hostnames {
                    call.enable_dns_hostnames(on)
                } else {
                    call.enable_dns_support(on)
                };
                call.send()
            };
            if let Err(e) =
                until_visible("modify VPC attribute", self.consistency_window, modify).await
            {
                let err = map_sdk_error("enable DNS on VPC", &id, "ec2", e);
                return Err(self.rollback(vpc, err).await);
            }
        }
        Ok(vpc)
    }

    async fn create_subnet(
        &self,
        vpc_id: &str,
        az: &str,
        cidr: &Ipv4Net,
        tier: SubnetTier,
        cluster_name: &str,
        tags: &ResourceTags,
    ) -> Result<Resource> {
        let kind = ResourceKind::Subnet;
        let action = format!("create {kind}");
        let available = |id: &str| available(kind, id, tags);
        let role_tag = match tier {
            SubnetTier::Public => "kubernetes.io/role/elb",
            SubnetTier::Private => "kubernetes.io/role/internal-elb",
        };
        let extra = [
            (role_tag.to_string(), "1".to_string()),
            (
                format!("kubernetes.io/cluster/{cluster_name}"),
                "shared".to_string(),
            ),
        ];
        let out = self
            .ec2
            .create_subnet()
            .vpc_id(vpc_id)
            .availability_zone(az)
            .cidr_block(cidr.to_string())
            .tag_specifications(tag_spec(ResourceType::Subnet, tags, &extra))
            .send()
            .await
            .map_err(|e| map_sdk_error(&action, format!("{tier} {cidr} in {az}"), "ec2", e))?;
        Ok(available(
            out.subnet().and_then(|s| s.subnet_id()).unwrap_or_default(),
        ))
    }

    async fn create_internet_gateway(&self, vpc_id: &str, tags: &ResourceTags) -> Result<Resource> {
        let kind = ResourceKind::InternetGateway;
        let action = format!("create {kind}");
        let available = |id: &str| available(kind, id, tags);
        let out = self
            .ec2
            .create_internet_gateway()
            .tag_specifications(tag_spec(ResourceType::InternetGateway, tags, &[]))
            .send()
            .await
            .map_err(|e| map_sdk_error(&action, vpc_id, "ec2", e))?;
        let igw = available(
            out.internet_gateway()
                .and_then(|g| g.internet_gateway_id())
                .unwrap_or_default(),
        );
        let attach = || {
            self.ec2
                .attach_internet_gateway()
                .internet_gateway_id(&igw.id)
                .vpc_id(vpc_id)
                .send()
        };
        if let Err(e) =
            until_visible("attach internet gateway", self.consistency_window, attach).await
        {
            let err = map_sdk_error(
                "attach internet gateway",
                format!("{} to {vpc_id}", igw.id),
                "ec2",
                e,
            );
            return Err(self.rollback(igw, err).await);
        }
        Ok(igw)
    }

    async fn allocate_elastic_ip(&self, tags: &ResourceTags) -> Result<Resource> {
        let kind = ResourceKind::ElasticIp;
        let action = format!("create {kind}");
        let available = |id: &str| available(kind, id, tags);
        let out = self
            .ec2
            .allocate_address()
            .domain(DomainType::Vpc)
            .tag_specifications(tag_spec(ResourceType::ElasticIp, tags, &[]))
            .send()
            .await
            .map_err(|e| map_sdk_error(&action, &tags.key, "ec2", e))?;
        Ok(available(out.allocation_id().unwrap_or_default()))
    }

    async fn create_nat_gateway(
        &self,
        subnet_id: &str,
        allocation_id: &str,
        tags: &ResourceTags,
    ) -> Result<Resource> {
        let kind = ResourceKind::NatGateway;
        let action = format!("create {kind}");
        let out = self
            .ec2
            .create_nat_gateway()
            .subnet_id(subnet_id)
            .allocation_id(allocation_id)
            .tag_specifications(tag_spec(ResourceType::Natgateway, tags, &[]))
            .send()
            .await
            .map_err(|e| map_sdk_error(&action, format!("in {subnet_id}"), "ec2", e))?;
        let nat = out.nat_gateway();
        Ok(Resource {
            kind,
            id: nat
                .and_then(|n| n.nat_gateway_id())
                .unwrap_or_default()
                .to_string(),
            key: tags.key.clone(),
            arn: None,
            state: nat_state(nat.and_then(|n| n.state())),
        })
    }

    async fn create_route_table(
        &self,
        vpc_id: &str,
        default_route: &DefaultRoute,
        subnet_ids: &[String],
        tags: &ResourceTags,
    ) -> Result<Resource> {
        let kind = ResourceKind::RouteTable;
        let action = format!("create {kind}");
        let available = |id: &str| available(kind, id, tags);
        let out = self
            .ec2
            .create_route_table()
            .vpc_id(vpc_id)
            .tag_specifications(tag_spec(ResourceType::RouteTable, tags, &[]))
            .send()
            .await
            .map_err(|e| map_sdk_error(&action, vpc_id, "ec2", e))?;
        let table = available(
            out.route_table()
                .and_then(|t| t.route_table_id())
                .unwrap_or_default(),
        );
        let route = || {
            let route = self
                .ec2
                .create_route()
                .route_table_id(&table.id)
                .destination_cidr_block("0.0.0.0/0");
            match default_route {
                DefaultRoute::InternetGateway(id) => route.gateway_id(id),
                DefaultRoute::NatGateway(id) => route.nat_gateway_id(id),
            }
            .send()
        };
        if let Err(e) = until_visible("create default route", self.consistency_window, route).await
        {
            let err = map_sdk_error("create default route", &table.id, "ec2", e);
            return Err(self.rollback(table, err).await);
        }
        for subnet in subnet_ids {
            let associate = || {
                self.ec2
                    .associate_route_table()
                    .route_table_id(&table.id)
                    .subnet_id(subnet)
                    .send()
            };
            if let Err(e) =
                until_visible("associate route table", self.consistency_window, associate).await
            {
                let err = map_sdk_error(
                    "associate route table",
                    format!("{} with {subnet}", table.id),
                    "ec2",
                    e,
                );
                return Err(self.rollback(table, err).await);
            }
        }
        Ok(table)
    }
}

/// A resource `create` made, available at once.
fn available(kind: ResourceKind, id: &str, tags: &ResourceTags) -> Resource {
    Resource {
        kind,
        id: id.to_string(),
        key: tags.key.clone(),
        arn: None,
        state: ResourceState::Available,
    }
}

#[async_trait]
impl NetworkProvisioner for AwsNetwork {
    async fn availability_zones(&self) -> Result<Vec<AvailabilityZone>> {
        // Opted-in Local and Wavelength Zones are listed too unless filtered out (eksctl
        // filters the same way); sorted by name they would come first.
        let out = self
            .ec2
            .describe_availability_zones()
            .filters(Filter::builder().name("state").values("available").build())
            .filters(
                Filter::builder()
                    .name("zone-type")
                    .values("availability-zone")
                    .build(),
            )
            .send()
            .await
            .map_err(|e| map_sdk_error("describe availability zones", "region", "ec2", e))?;
        let mut zones: Vec<AvailabilityZone> = out
            .availability_zones()
            .iter()
            .filter(|z| z.zone_type().is_none_or(|t| t == "availability-zone"))
            .filter_map(|z| Some(AvailabilityZone::new(z.zone_name()?, z.zone_id()?)))
            .collect();
        zones.sort();
        Ok(zones)
    }

    async fn discover(&self, stack: &StackName) -> Result<Vec<Resource>> {
        let f = || vec![stack_filter(stack)];
        let (vpcs, subnets, igws, tables, eips, nats, endpoints) = tokio::try_join!(
            self.vpcs(f(), vec![]),
            self.subnets(f(), vec![]),
            self.internet_gateways(f(), vec![]),
            self.route_tables(f(), vec![]),
            self.addresses(f(), vec![]),
            self.nat_gateways(f(), vec![], Some(stack)),
            self.discover_endpoints(stack),
        )?;
        let mut all = Vec::new();
        if !vpcs.is_empty() {
            let in_vpcs = || {
                vec![
                    Filter::builder()
                        .name("vpc-id")
                        .set_values(Some(vpcs.iter().map(|v| v.id.clone()).collect()))
                        .build(),
                ]
            };
            let (groups, enis) = tokio::try_join!(
                self.security_groups(in_vpcs(), vec![]),
                self.network_interfaces(in_vpcs(), vec![])
            )?;
            all.extend(groups);
            all.extend(enis);
        }
        all.extend(vpcs);
        all.extend(subnets);
        all.extend(igws);
        all.extend(tables);
        all.extend(eips);
        all.extend(nats);
        all.extend(endpoints);
        Ok(all)
    }

    async fn create(&self, request: &CreateRequest, tags: &ResourceTags) -> Result<Resource> {
        match request {
            CreateRequest::Vpc { cidr } => self.create_vpc(cidr, tags).await,
            CreateRequest::Subnet {
                vpc_id,
                az,
                cidr,
                tier,
                cluster_name,
            } => {
                self.create_subnet(vpc_id, az, cidr, *tier, cluster_name, tags)
                    .await
            }
            CreateRequest::InternetGateway { vpc_id } => {
                self.create_internet_gateway(vpc_id, tags).await
            }
            CreateRequest::ElasticIp => self.allocate_elastic_ip(tags).await,
            CreateRequest::NatGateway {
                subnet_id,
                allocation_id,
            } => {
                self.create_nat_gateway(subnet_id, allocation_id, tags)
                    .await
            }
            CreateRequest::RouteTable {
                vpc_id,
                default_route,
                subnet_ids,
            } => {
                self.create_route_table(vpc_id, default_route, subnet_ids, tags)
                    .await
            }
            CreateRequest::VpcEndpoint {
                vpc_id,
                service_name,
                route_table_ids,
            } => {
                self.create_vpc_endpoint(vpc_id, service_name, route_table_ids, tags)
                    .await
            }
            other => Err(Error::invalid(
                "request",
                format!("{} is not a network resource", other.kind()),
            )),
        }
    }

    async fn describe(&self, kind: ResourceKind, id: &str) -> Result<Option<Resource>> {
        let ids = vec![id.to_string()];
        found(match kind {
            ResourceKind::Vpc => self.vpcs(vec![], ids).await,
            ResourceKind::Subnet => self.subnets(vec![], ids).await,
            ResourceKind::InternetGateway => self.internet_gateways(vec![], ids).await,
            ResourceKind::RouteTable => self.route_tables(vec![], ids).await,
            ResourceKind::ElasticIp => self.addresses(vec![], ids).await,
            ResourceKind::NatGateway => self.nat_gateways(vec![], ids, None).await,
            ResourceKind::SecurityGroup => self.security_groups(vec![], ids).await,
            ResourceKind::NetworkInterface => self.network_interfaces(vec![], ids).await,
            ResourceKind::VpcEndpoint => self.vpc_endpoints(vec![], ids, None).await,
            other => Err(Error::invalid(
                "kind",
                format!("{other} is not a network resource"),
            )),
        })
    }

    async fn delete(&self, resource: &Resource) -> Result<()> {
        let id = resource.id.as_str();
        let action = format!("delete {}", resource.kind);
        let what = resource.describe();
        match resource.kind {
            ResourceKind::Vpc => self
                .ec2
                .delete_vpc()
                .vpc_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| map_sdk_error(&action, &what, "ec2", e)),
            ResourceKind::Subnet => self
                .ec2
                .delete_subnet()
                .subnet_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| map_sdk_error(&action, &what, "ec2", e)),
            ResourceKind::InternetGateway => {
                let out = self
                    .ec2
                    .describe_internet_gateways()
                    .internet_gateway_ids(id)
                    .send()
                    .await
                    .map_err(|e| map_sdk_error(&action, &what, "ec2", e))?;
                for igw in out.internet_gateways() {
                    for attachment in igw.attachments() {
                        if let Some(vpc) = attachment.vpc_id() {
                            match self
                                .ec2
                                .detach_internet_gateway()
                                .internet_gateway_id(id)
                                .vpc_id(vpc)
                                .send()
                                .await
                            {
                                Ok(_) => {}
                                Err(e) => {
                                    match map_sdk_error("detach internet gateway", &what, "ec2", e)
                                    {
                                        err if err.is_not_found() => {}
                                        err => return Err(err),
                                    }
                                }
                            }
                        }
                    }
                }
                self.ec2
                    .delete_internet_gateway()
                    .internet_gateway_id(id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| map_sdk_error(&action, &what, "ec2", e))
            }
            ResourceKind::ElasticIp => self.release_address(resource, &action, &what).await,
            ResourceKind::NatGateway => self
                .ec2
                .delete_nat_gateway()
                .nat_gateway_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| map_sdk_error(&action, &what, "ec2", e)),
            ResourceKind::RouteTable => {
                let out = self
                    .ec2
                    .describe_route_tables()
                    .route_table_ids(id)
                    .send()
                    .await
                    .map_err(|e| map_sdk_error(&action, &what, "ec2", e))?;
                for table in out.route_tables() {
                    for assoc in table
                        .associations()
                        .iter()
                        .filter(|a| a.main() != Some(true))
                    {
                        if let Some(assoc_id) = assoc.route_table_association_id()
                            && let Err(e) = self
                                .ec2
                                .disassociate_route_table()
                                .association_id(assoc_id)
                                .send()
                                .await
                        {
                            let err = map_sdk_error("disassociate route table", &what, "ec2", e);
                            if !err.is_not_found() {
                                return Err(err);
                            }
                        }
                    }
                }
                self.ec2
                    .delete_route_table()
                    .route_table_id(id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| map_sdk_error(&action, &what, "ec2", e))
            }
            ResourceKind::SecurityGroup => self
                .ec2
                .delete_security_group()
                .group_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| map_sdk_error(&action, &what, "ec2", e)),
            ResourceKind::NetworkInterface => self
                .ec2
                .delete_network_interface()
                .network_interface_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| map_sdk_error(&action, &what, "ec2", e)),
            ResourceKind::VpcEndpoint => self.delete_vpc_endpoint(resource).await,
            other => Err(Error::invalid(
                "kind",
                format!("{other} is not a network resource"),
            )),
        }
    }
}
