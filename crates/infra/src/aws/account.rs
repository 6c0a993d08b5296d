//! [`AccountInspector`] on STS, IAM (policy simulation), Service Quotas, the Price List API and
//! read-only EC2/EKS listings. Nothing here creates or changes anything.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ec2::error::ProvideErrorMetadata;

use super::map_sdk_error;
use crate::account::QuotaValue;
use crate::account::{
    AccountInspector, AccountUsage, ActionDecision, CallerIdentity, ContextValue, PermissionCheck,
    PriceQuote,
};
use crate::error::{Error, Result};

/// The Price List API answers in us-east-1 (and eu-central-1, ap-south-1) for every region.
pub const PRICING_API_REGION: &str = "us-east-1";

/// Pages of one Price List query read at most (a region's Fargate or EKS products fit in one or two).
const MAX_PRICE_PAGES: usize = 10;

/// [`AccountInspector`] on the AWS SDK.
#[derive(Debug, Clone)]
pub struct AwsAccount {
    sts: aws_sdk_sts::Client,
    iam: aws_sdk_iam::Client,
    quotas: aws_sdk_servicequotas::Client,
    pricing: aws_sdk_pricing::Client,
    ec2: aws_sdk_ec2::Client,
    eks: aws_sdk_eks::Client,
}

impl AwsAccount {
    /// From a loaded [`aws_config::SdkConfig`] (see [`super::load_config`]); the Price List API
    /// is asked in [`PRICING_API_REGION`] whatever the stack's region.
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        let pricing = aws_sdk_pricing::config::Builder::from(config)
            .region(aws_config::Region::new(PRICING_API_REGION))
            .build();
        Self {
            sts: aws_sdk_sts::Client::new(config),
            iam: aws_sdk_iam::Client::new(config),
            quotas: aws_sdk_servicequotas::Client::new(config),
            pricing: aws_sdk_pricing::Client::from_conf(pricing),
            ec2: aws_sdk_ec2::Client::new(config),
            eks: aws_sdk_eks::Client::new(config),
        }
    }

    /// Every product document (JSON) of `service_code` in `region`.
    async fn products(&self, service_code: &str, region: &str) -> Result<Vec<serde_json::Value>> {
        use aws_sdk_pricing::types::{Filter, FilterType};
        let filter = Filter::builder()
            .r#type(FilterType::TermMatch)
            .field("regionCode")
            .value(region)
            .build()
            .map_err(|e| Error::invalid("region", e.to_string()))?;
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PRICE_PAGES {
            let page = self
                .pricing
                .get_products()
                .service_code(service_code)
                .filters(filter.clone())
                .format_version("aws_v1")
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| {
                    map_sdk_error(
                        "get products (Price List API)",
                        format!("{service_code} in {region}"),
                        "pricing",
                        e,
                    )
                })?;
            for doc in page.price_list() {
                match serde_json::from_str(doc) {
                    Ok(v) => out.push(v),
                    Err(e) => {
                        tracing::warn!(%service_code, error = %e, "skipping a price list entry that is not JSON")
                    }
                }
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => break,
            }
        }
        Ok(out)
    }
}

/// Whether a NAT gateway in this state counts against "NAT gateways per Availability Zone":
/// "A NAT gateway in the pending, active, or deleting state counts against your quota" (Amazon
/// VPC User Guide, Amazon VPC quotas). `available` is the API's name for active.
fn counts_towards_nat_quota(state: Option<&str>) -> bool {
    !matches!(state, Some("deleted" | "failed"))
}

/// The on-demand USD price of the first product whose `usagetype` is one of `usage_types`
/// exactly ([`crate::regions::usage_types`]). A suffix match is not enough: Fargate Spot's
/// `USE1-SpotUsage-Fargate-vCPU-Hours:perCPU` ends like On-Demand's
/// `USE1-Fargate-vCPU-Hours:perCPU` at about a third of its price, and EKS runs no pod on Fargate
/// Spot (the FARGATE_SPOT capacity provider is Amazon ECS's; a Fargate profile cannot ask for it:
/// aws/containers-roadmap#622, still open). Usage types: AWS Region billing codes, see
/// [`crate::regions::BILLING_CODES_SOURCE`].
pub fn on_demand_usd(products: &[serde_json::Value], usage_types: &[String]) -> Option<f64> {
    products.iter().find_map(|p| {
        let usage = p.pointer("/product/attributes/usagetype")?.as_str()?;
        if !usage_types.iter().any(|u| u == usage) {
            return None;
        }
        let terms = p.pointer("/terms/OnDemand")?.as_object()?;
        terms.values().find_map(|term| {
            term.get("priceDimensions")?
                .as_object()?
                .values()
                .find_map(|d| d.pointer("/pricePerUnit/USD")?.as_str()?.parse().ok())
        })
    })
}

/// Keeps the worst decision seen for one (call, action, resource): an explicit deny over an
/// implicit one over an allow.
fn record(
    decided: &mut BTreeMap<(usize, String, String), String>,
    key: (usize, String, String),
    decision: &str,
) {
    let rank = |d: &str| match d {
        "allowed" => 0,
        "implicitDeny" => 1,
        _ => 2,
    };
    let entry = decided.entry(key).or_insert_with(|| decision.to_owned());
    if rank(decision) > rank(entry) {
        *entry = decision.to_owned();
    }
}

#[async_trait]
impl AccountInspector for AwsAccount {
    async fn caller(&self) -> Result<CallerIdentity> {
        let out = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| map_sdk_error("get caller identity", "STS", "sts", e))?;
        let (Some(account), Some(arn)) = (out.account(), out.arn()) else {
            return Err(Error::PermissionDenied {
                action: "get caller identity".into(),
                message: "STS returned no account or ARN".into(),
            });
        };
        let mut caller = CallerIdentity::from_arn(account, arn);
        // The assumed-role ARN drops the role's path; simulation and access entries need it.
        if let Ok(crate::identity::Caller::AssumedRole { role_name, .. }) =
            crate::identity::classify_caller(arn)
        {
            match self.iam.get_role().role_name(&role_name).send().await {
                Ok(out) => {
                    if let Some(role) = out.role() {
                        caller.principal_arn = role.arn().to_owned();
                    }
                }
                Err(e) => tracing::warn!(
                    role = %role_name,
                    error = %map_sdk_error("get IAM role of the caller", &role_name, "iam", e),
                    "cannot read the caller's role path; using its ARN without path"
                ),
            }
        }
        Ok(caller)
    }

    async fn simulate(
        &self,
        principal_arn: &str,
        checks: &[PermissionCheck],
    ) -> Result<Vec<ActionDecision>> {
        // One call per distinct (resources, context): "Each API in the ActionNames parameter is
        // evaluated for each resource in this list" and the context entries apply to every
        // action of the call (IAM API reference, SimulatePrincipalPolicy). Without ResourceArns
        // AWS simulates on `*`, which no resource-scoped Allow matches (cloud-custodian#3383,
        // #4612), so every check names its resources.
        let mut groups: Vec<(&[String], &[ContextValue], Vec<String>)> = Vec::new();
        for check in checks {
            let group = match groups.iter_mut().find(|(r, c, _)| {
                *r == check.resources.as_slice() && *c == check.context.as_slice()
            }) {
                Some(g) => g,
                None => {
                    groups.push((&check.resources, &check.context, Vec::new()));
                    groups.last_mut().expect("just pushed")
                }
            };
            if !group.2.contains(&check.action) {
                group.2.push(check.action.clone());
            }
        }
        let mut decided: BTreeMap<(usize, String, String), String> = BTreeMap::new();
        for (index, (resources, context, actions)) in groups.iter().enumerate() {
            let entries = context
                .iter()
                .map(|c| {
                    aws_sdk_iam::types::ContextEntry::builder()
                        .context_key_name(&c.key)
                        .set_context_key_values(Some(c.values.clone()))
                        .context_key_type(if c.list {
                            aws_sdk_iam::types::ContextKeyTypeEnum::StringList
                        } else {
                            aws_sdk_iam::types::ContextKeyTypeEnum::String
                        })
                        .build()
                })
                .collect::<Vec<_>>();
            let mut marker: Option<String> = None;
            loop {
                let out = self
                    .iam
                    .simulate_principal_policy()
                    .policy_source_arn(principal_arn)
                    .set_action_names(Some(actions.clone()))
                    .set_resource_arns(Some(resources.to_vec()))
                    .set_context_entries((!entries.is_empty()).then(|| entries.clone()))
                    .set_marker(marker.take())
                    .send()
                    .await
                    .map_err(|e| {
                        map_sdk_error("simulate principal policy", principal_arn, "iam", e)
                    })?;
                for r in out.evaluation_results() {
                    let action = r.eval_action_name().to_lowercase();
                    let resource = r.eval_resource_name().unwrap_or("*").to_owned();
                    record(
                        &mut decided,
                        (index, action.clone(), resource),
                        r.eval_decision().as_str(),
                    );
                    for specific in r.resource_specific_results() {
                        record(
                            &mut decided,
                            (
                                index,
                                action.clone(),
                                specific.eval_resource_name().to_owned(),
                            ),
                            specific.eval_resource_decision().as_str(),
                        );
                    }
                }
                match out.marker() {
                    Some(m) if out.is_truncated() => marker = Some(m.to_owned()),
                    _ => break,
                }
            }
        }
        Ok(checks
            .iter()
            .map(|check| {
                let index = groups
                    .iter()
                    .position(|(r, c, _)| {
                        *r == check.resources.as_slice() && *c == check.context.as_slice()
                    })
                    .expect("every check has its group");
                let action = check.action.to_lowercase();
                // A resource the answer does not name is not allowed: the side that cannot
                // let a denied create start after others have begun billing.
                let decisions: Vec<(&String, String)> = check
                    .resources
                    .iter()
                    .map(|resource| {
                        let decision = decided
                            .get(&(index, action.clone(), resource.clone()))
                            .cloned()
                            .unwrap_or_else(|| "implicitDeny".into());
                        (resource, decision)
                    })
                    .collect();
                let denied = decisions.iter().find(|(_, d)| d != "allowed");
                let (resource, decision) = denied
                    .or(decisions.first())
                    .map(|(r, d)| ((*r).clone(), d.clone()))
                    .unwrap_or_else(|| ("*".into(), "implicitDeny".into()));
                ActionDecision {
                    action: check.action.clone(),
                    decision,
                    resource,
                }
            })
            .collect())
    }

    async fn quota(&self, service_code: &str, quota_code: &str) -> Result<QuotaValue> {
        let resource = format!("quota {service_code}/{quota_code}");
        let no_such = |code: Option<&str>| code == Some("NoSuchResourceException");
        let quota = match self
            .quotas
            .get_service_quota()
            .service_code(service_code)
            .quota_code(quota_code)
            .send()
            .await
        {
            Ok(out) => out.quota,
            // No applied value: AWS's default is in force.
            Err(e) if no_such(e.code()) => {
                match self
                    .quotas
                    .get_aws_default_service_quota()
                    .service_code(service_code)
                    .quota_code(quota_code)
                    .send()
                    .await
                {
                    Ok(out) => out.quota,
                    Err(e) if no_such(e.code()) => {
                        return Err(Error::NotFound {
                            action: "get service quota".into(),
                            resource,
                        });
                    }
                    Err(e) => {
                        return Err(map_sdk_error(
                            "get default service quota",
                            resource,
                            "servicequotas",
                            e,
                        ));
                    }
                }
            }
            Err(e) => {
                return Err(map_sdk_error(
                    "get service quota",
                    resource,
                    "servicequotas",
                    e,
                ));
            }
        };
        let quota = quota.ok_or_else(|| Error::NotFound {
            action: "get service quota".into(),
            resource: format!("quota {service_code}/{quota_code}"),
        })?;
        Ok(QuotaValue {
            service_code: service_code.to_owned(),
            quota_code: quota_code.to_owned(),
            name: quota.quota_name().unwrap_or(quota_code).to_owned(),
            value: quota.value().unwrap_or(0.0),
            adjustable: quota.adjustable(),
        })
    }

    async fn usage(&self) -> Result<AccountUsage> {
        let vpcs: Vec<_> = self
            .ec2
            .describe_vpcs()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| map_sdk_error("describe VPCs", "region", "ec2", e))?;
        let addresses = self
            .ec2
            .describe_addresses()
            .send()
            .await
            .map_err(|e| map_sdk_error("describe Elastic IPs", "region", "ec2", e))?;
        let nats: Vec<_> = self
            .ec2
            .describe_nat_gateways()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| map_sdk_error("describe NAT gateways", "region", "ec2", e))?;
        let live_subnets: Vec<String> = nats
            .iter()
            .filter(|n| counts_towards_nat_quota(n.state().map(|s| s.as_str())))
            .filter_map(|n| n.subnet_id().map(str::to_owned))
            .collect();
        let mut per_az: BTreeMap<String, u32> = BTreeMap::new();
        if !live_subnets.is_empty() {
            let subnets = self
                .ec2
                .describe_subnets()
                .set_subnet_ids(Some(live_subnets.clone()))
                .send()
                .await
                .map_err(|e| map_sdk_error("describe subnets", "NAT gateway subnets", "ec2", e))?;
            let az_of: BTreeMap<&str, &str> = subnets
                .subnets()
                .iter()
                .filter_map(|s| Some((s.subnet_id()?, s.availability_zone()?)))
                .collect();
            for subnet in &live_subnets {
                let az = az_of.get(subnet.as_str()).copied().unwrap_or("unknown");
                *per_az.entry(az.to_owned()).or_default() += 1;
            }
        }
        let clusters: Vec<String> = self
            .eks
            .list_clusters()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| map_sdk_error("list EKS clusters", "region", "eks", e))?;
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Ok(AccountUsage {
            vpcs: count(vpcs.len()),
            elastic_ips: count(addresses.addresses().len()),
            nat_gateways_max_per_az: per_az.values().copied().max().unwrap_or(0),
            eks_clusters: count(clusters.len()),
        })
    }

    async fn prices(&self, region: &str) -> Result<PriceQuote> {
        let fargate = self.products("AmazonECS", region).await?;
        let eks = self.products("AmazonEKS", region).await?;
        let usage = |name: &str| crate::regions::usage_types(region, name);
        Ok(PriceQuote {
            region: region.to_owned(),
            fargate_vcpu_hour: on_demand_usd(&fargate, &usage("Fargate-vCPU-Hours:perCPU")),
            fargate_gb_hour: on_demand_usd(&fargate, &usage("Fargate-GB-Hours")),
            eks_cluster_hour: on_demand_usd(&eks, &usage("AmazonEKS-Hours:perCluster")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleting_nat_gateways_count_towards_the_quota() {
        for state in ["pending", "available", "deleting"] {
            assert!(counts_towards_nat_quota(Some(state)), "{state}");
        }
        for state in ["deleted", "failed"] {
            assert!(!counts_towards_nat_quota(Some(state)), "{state}");
        }
    }

    fn product(usagetype: &str, usd: &str) -> serde_json::Value {
        serde_json::json!({
            "product": {"productFamily": "Compute", "attributes": {"usagetype": usagetype, "regionCode": "us-east-1"}, "sku": usagetype},
            "serviceCode": "AmazonECS",
            "terms": {"OnDemand": {"S.T": {"priceDimensions": {"S.T.D": {"unit": "hours", "pricePerUnit": {"USD": usd}}}}}}
        })
    }

    #[test]
    fn reads_the_on_demand_price_of_a_usage_type() {
        let products = [
            product("USE1-Fargate-ARM-vCPU-Hours:perCPU", "0.03238"),
            product("USE1-Fargate-vCPU-Hours:perCPU", "0.0404800000"),
        ];
        let vcpu = crate::regions::usage_types("us-east-1", "Fargate-vCPU-Hours:perCPU");
        assert_eq!(on_demand_usd(&products, &vcpu), Some(0.04048));
        let gb = crate::regions::usage_types("us-east-1", "Fargate-GB-Hours");
        assert_eq!(on_demand_usd(&products, &gb), None);
    }

    #[test]
    fn fargate_spot_rows_are_not_the_on_demand_price() {
        // The Spot rows come first and end with the On-Demand usage type's name: a suffix match
        // priced EKS's Fargate pods at Spot's price (about a third).
        let products = [
            product("USE2-SpotUsage-Fargate-vCPU-Hours:perCPU", "0.0127"),
            product("USE2-SpotUsage-Fargate-GB-Hours", "0.0014"),
            product("USE2-Fargate-vCPU-Hours:perCPU", "0.04048"),
            product("USE2-Fargate-GB-Hours", "0.004445"),
        ];
        let usage = |name| crate::regions::usage_types("us-east-2", name);
        assert_eq!(
            on_demand_usd(&products, &usage("Fargate-vCPU-Hours:perCPU")),
            Some(0.04048)
        );
        assert_eq!(
            on_demand_usd(&products, &usage("Fargate-GB-Hours")),
            Some(0.004445)
        );
        // Another Region's row is not this Region's price.
        let other = crate::regions::usage_types("eu-west-1", "Fargate-GB-Hours");
        assert_eq!(on_demand_usd(&products, &other), None);
    }
}
