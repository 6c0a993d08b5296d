//! What an AWS account allows before anything is created: who is calling, which actions the
//! caller may use, Service Quotas against current usage, and list prices.
//!
//! [`AccountInspector`] is read-only: every call is a Get/List/Describe/Simulate, so the
//! preflight (`doctor`) can run it against an account without creating or changing anything.
//! Backends: [`crate::aws::AwsAccount`] (STS, IAM, Service Quotas, the Price List API, EC2/EKS
//! counts), [`InMemoryAccount`], and a mockall mock (feature `mock`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The caller of the AWS APIs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallerIdentity {
    /// The 12-digit account id.
    pub account: String,
    /// The ARN STS reports (an assumed-role session for SSO users).
    pub arn: String,
    /// The IAM principal ARN that gets cluster access and whose policies are simulated.
    pub principal_arn: String,
    /// The partition (`aws`, `aws-cn`, `aws-us-gov`), from the ARN.
    pub partition: String,
}

impl CallerIdentity {
    /// From an STS ARN: the principal is the role behind an assumed-role session (named
    /// without its path: [`crate::aws::AwsAccount`] reads the path with `iam:GetRole`). A caller
    /// that cannot be a principal (account root, federated user) keeps its own ARN;
    /// [`crate::identity::classify_caller`] says why.
    pub fn from_arn(account: impl Into<String>, arn: impl Into<String>) -> Self {
        use crate::identity::{Caller, classify_caller};
        let arn = arn.into();
        let partition = arn.split(':').nth(1).unwrap_or("aws").to_owned();
        let principal_arn = match classify_caller(&arn) {
            Ok(Caller::AssumedRole {
                partition,
                account,
                role_name,
            }) => format!("arn:{partition}:iam::{account}:role/{role_name}"),
            _ => arn.clone(),
        };
        Self {
            account: account.into(),
            principal_arn,
            arn,
            partition,
        }
    }
}

/// One condition key of the request context a real call carries, as
/// `iam:SimulatePrincipalPolicy` takes it (`ContextEntries`: key name, values, and whether the
/// key is multivalued, like `aws:TagKeys`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ContextValue {
    /// The condition key, e.g. `iam:PassedToService` or `aws:RequestTag/glrunner.io/stack`.
    pub key: String,
    /// Its values (one for a single-valued key).
    pub values: Vec<String>,
    /// Whether the key is multivalued (`stringList`), e.g. `aws:TagKeys`.
    pub list: bool,
}

impl ContextValue {
    /// A single-valued string key.
    pub fn string(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            values: vec![value.into()],
            list: false,
        }
    }

    /// A multivalued string key.
    pub fn list(key: impl Into<String>, values: impl IntoIterator<Item = String>) -> Self {
        Self {
            key: key.into(),
            values: values.into_iter().collect(),
            list: true,
        }
    }
}

/// One IAM action as glrunner will use it: on these resources, with this request context. The
/// permission check simulates each; the action is allowed when every resource is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionCheck {
    /// The IAM action, e.g. `eks:TagResource`.
    pub action: String,
    /// The resource ARNs (or ARN patterns, `*` where AWS authorises the action on no resource).
    pub resources: Vec<String>,
    /// The condition keys the real call carries.
    pub context: Vec<ContextValue>,
}

/// What IAM's policy simulation decided for one [`PermissionCheck`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionDecision {
    /// The IAM action, e.g. `eks:CreateCluster`.
    pub action: String,
    /// `allowed`, `explicitDeny` or `implicitDeny`: the worst over the check's resources.
    pub decision: String,
    /// The resource the decision is about: the first one not allowed, else the first one.
    pub resource: String,
}

impl ActionDecision {
    /// Whether the action is allowed.
    pub fn allowed(&self) -> bool {
        self.decision == "allowed"
    }
}

/// One Service Quotas value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaValue {
    /// Service code, e.g. `fargate`.
    pub service_code: String,
    /// Quota code, e.g. `L-3032A538`.
    pub quota_code: String,
    /// The quota's name as AWS gives it.
    pub name: String,
    /// The value in force (the applied value, else AWS's default).
    pub value: f64,
    /// Whether the quota can be raised through Service Quotas.
    pub adjustable: bool,
}

/// How much of the quota-limited resources the account uses now, in the inspected region.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountUsage {
    /// VPCs.
    pub vpcs: u32,
    /// Elastic IP addresses.
    pub elastic_ips: u32,
    /// NAT gateways that are not deleted, in the busiest availability zone.
    pub nat_gateways_max_per_az: u32,
    /// EKS clusters.
    pub eks_clusters: u32,
}

/// List prices read from the AWS Price List API for one region; a price it did not return is
/// `None` (the caller falls back to its table and says so).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PriceQuote {
    /// The region priced.
    pub region: String,
    /// Fargate (Linux/x86) USD per vCPU-hour.
    pub fargate_vcpu_hour: Option<f64>,
    /// Fargate (Linux/x86) USD per GB-hour.
    pub fargate_gb_hour: Option<f64>,
    /// EKS control plane USD per cluster-hour.
    pub eks_cluster_hour: Option<f64>,
}

/// Read-only questions about an AWS account, asked before anything billable exists.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait AccountInspector: Send + Sync {
    /// Who is calling (`sts:GetCallerIdentity`).
    async fn caller(&self) -> Result<CallerIdentity>;

    /// `iam:SimulatePrincipalPolicy` of each check for `principal_arn` (its action on its
    /// resources with its context): one decision per check, in the order given.
    /// [`Error::PermissionDenied`] when the caller may not simulate.
    async fn simulate(
        &self,
        principal_arn: &str,
        checks: &[PermissionCheck],
    ) -> Result<Vec<ActionDecision>>;

    /// The Service Quotas value in force for `quota_code` of `service_code` in the region.
    /// [`Error::NotFound`] when AWS does not know the quota.
    async fn quota(&self, service_code: &str, quota_code: &str) -> Result<QuotaValue>;

    /// Current usage of the quota-limited resources in the region.
    async fn usage(&self) -> Result<AccountUsage>;

    /// List prices for `region` from the Price List API.
    async fn prices(&self, region: &str) -> Result<PriceQuote>;
}

/// An account in memory: a caller, actions it is denied, quotas, usage and prices, all set by
/// the test or the sandbox. Quotas it was not given take AWS's defaults ([`default_quota`]).
#[derive(Debug, Clone)]
pub struct InMemoryAccount {
    state: Arc<Mutex<AccountState>>,
}

#[derive(Debug, Clone)]
struct AccountState {
    caller: CallerIdentity,
    denied: BTreeSet<String>,
    simulation_denied: bool,
    simulated: Vec<PermissionCheck>,
    quotas: BTreeMap<(String, String), f64>,
    usage: AccountUsage,
    prices: Option<PriceQuote>,
}

/// One Service Quotas quota glrunner checks: its codes, AWS's name and AWS's default value
/// (Service Quotas console, 2025). The one place these codes are written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KnownQuota {
    /// Service code, e.g. `fargate`.
    pub service_code: &'static str,
    /// Quota code, e.g. `L-3032A538`.
    pub quota_code: &'static str,
    /// The quota's name as AWS gives it.
    pub name: &'static str,
    /// AWS's default value.
    pub default: f64,
}

impl KnownQuota {
    /// `(service code, quota code)`.
    pub const fn codes(&self) -> (&'static str, &'static str) {
        (self.service_code, self.quota_code)
    }
}

/// Fargate On-Demand vCPU resource count (the vCPUs of every running Fargate pod).
pub const FARGATE_VCPU: KnownQuota = KnownQuota {
    service_code: "fargate",
    quota_code: "L-3032A538",
    name: "Fargate On-Demand vCPU resource count",
    default: 6.0,
};
/// EC2-VPC Elastic IPs per Region.
pub const ELASTIC_IPS: KnownQuota = KnownQuota {
    service_code: "ec2",
    quota_code: "L-0263D0A3",
    name: "EC2-VPC Elastic IPs",
    default: 5.0,
};
/// VPCs per Region.
pub const VPCS: KnownQuota = KnownQuota {
    service_code: "vpc",
    quota_code: "L-F678F1CE",
    name: "VPCs per Region",
    default: 5.0,
};
/// NAT gateways per Availability Zone.
pub const NAT_GATEWAYS_PER_AZ: KnownQuota = KnownQuota {
    service_code: "vpc",
    quota_code: "L-FE5A380F",
    name: "NAT gateways per Availability Zone",
    default: 5.0,
};
/// EKS clusters per Region.
pub const EKS_CLUSTERS: KnownQuota = KnownQuota {
    service_code: "eks",
    quota_code: "L-1194D53C",
    name: "Clusters",
    default: 100.0,
};

/// Every quota glrunner checks.
pub const KNOWN_QUOTAS: [KnownQuota; 5] = [
    FARGATE_VCPU,
    ELASTIC_IPS,
    VPCS,
    NAT_GATEWAYS_PER_AZ,
    EKS_CLUSTERS,
];

/// AWS's default value of the quotas glrunner checks, with the quota's name.
pub fn default_quota(service_code: &str, quota_code: &str) -> Option<(&'static str, f64)> {
    KNOWN_QUOTAS
        .iter()
        .find(|q| q.service_code == service_code && q.quota_code == quota_code)
        .map(|q| (q.name, q.default))
}

impl Default for InMemoryAccount {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryAccount {
    /// An account `123456789012` whose caller is an IAM user allowed everything, with AWS's
    /// default quotas, nothing in use, and no Price List API answer.
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(AccountState {
                caller: CallerIdentity::from_arn(
                    "123456789012",
                    "arn:aws:iam::123456789012:user/glrunner",
                ),
                denied: BTreeSet::new(),
                simulation_denied: false,
                simulated: Vec::new(),
                quotas: BTreeMap::new(),
                usage: AccountUsage::default(),
                prices: None,
            })),
        }
    }

    fn with_state(&self, f: impl FnOnce(&mut AccountState)) -> &Self {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()));
        self
    }

    /// The caller's STS ARN.
    pub fn set_caller(&self, account: &str, arn: &str) -> &Self {
        self.with_state(|s| s.caller = CallerIdentity::from_arn(account, arn))
    }

    /// Denies `action` to the caller (policy simulation reports `implicitDeny`).
    pub fn deny(&self, action: &str) -> &Self {
        self.with_state(|s| {
            s.denied.insert(action.to_owned());
        })
    }

    /// Whether `iam:SimulatePrincipalPolicy` itself is denied.
    pub fn deny_simulation(&self, denied: bool) -> &Self {
        self.with_state(|s| s.simulation_denied = denied)
    }

    /// The checks of the last simulation, as the caller sent them.
    pub fn simulated(&self) -> Vec<PermissionCheck> {
        self.read(|s| s.simulated.clone())
    }

    /// Sets a quota's applied value.
    pub fn set_quota(&self, service_code: &str, quota_code: &str, value: f64) -> &Self {
        self.with_state(|s| {
            s.quotas
                .insert((service_code.to_owned(), quota_code.to_owned()), value);
        })
    }

    /// Sets the applied value of one of the quotas glrunner checks.
    pub fn set_known_quota(&self, quota: KnownQuota, value: f64) -> &Self {
        self.set_quota(quota.service_code, quota.quota_code, value)
    }

    /// Sets the current usage.
    pub fn set_usage(&self, usage: AccountUsage) -> &Self {
        self.with_state(|s| s.usage = usage)
    }

    /// Serves these prices (as the Price List API would); `None` models an unreachable API.
    pub fn set_prices(&self, prices: Option<PriceQuote>) -> &Self {
        self.with_state(|s| s.prices = prices)
    }

    fn read<T>(&self, f: impl FnOnce(&AccountState) -> T) -> T {
        f(&self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[async_trait]
impl AccountInspector for InMemoryAccount {
    async fn caller(&self) -> Result<CallerIdentity> {
        Ok(self.read(|s| s.caller.clone()))
    }

    async fn simulate(
        &self,
        principal_arn: &str,
        checks: &[PermissionCheck],
    ) -> Result<Vec<ActionDecision>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.simulation_denied {
            return Err(Error::PermissionDenied {
                action: format!("simulate principal policy ({principal_arn})"),
                message: format!(
                    "{} is not authorized to perform: iam:SimulatePrincipalPolicy",
                    state.caller.arn
                ),
            });
        }
        state.simulated = checks.to_vec();
        Ok(checks
            .iter()
            .map(|c| ActionDecision {
                action: c.action.clone(),
                decision: if state.denied.contains(&c.action) {
                    "implicitDeny".into()
                } else {
                    "allowed".into()
                },
                resource: c.resources.first().cloned().unwrap_or_else(|| "*".into()),
            })
            .collect())
    }

    async fn quota(&self, service_code: &str, quota_code: &str) -> Result<QuotaValue> {
        let (name, default) =
            default_quota(service_code, quota_code).ok_or_else(|| Error::NotFound {
                action: "get service quota".into(),
                resource: format!("quota {service_code}/{quota_code}"),
            })?;
        let applied = self.read(|s| {
            s.quotas
                .get(&(service_code.to_owned(), quota_code.to_owned()))
                .copied()
        });
        Ok(QuotaValue {
            service_code: service_code.to_owned(),
            quota_code: quota_code.to_owned(),
            name: name.to_owned(),
            value: applied.unwrap_or(default),
            adjustable: true,
        })
    }

    async fn usage(&self) -> Result<AccountUsage> {
        Ok(self.read(|s| s.usage))
    }

    async fn prices(&self, region: &str) -> Result<PriceQuote> {
        self.read(|s| s.prices.clone())
            .map(|p| PriceQuote {
                region: region.to_owned(),
                ..p
            })
            .ok_or_else(|| Error::Backend {
                action: format!("get products (Price List API, {region})"),
                backend: "memory",
                source: "the Price List API is unreachable in this world".into(),
            })
    }
}

/// The conformance suite of [`AccountInspector`]: every backend must pass it after the test set
/// up its world as [`ConformanceWorld`] describes.
pub mod conformance {
    use super::*;

    /// What the test set up before calling [`run`].
    #[derive(Debug, Clone)]
    pub struct ConformanceWorld {
        /// An action the caller is denied.
        pub denied_action: String,
        /// The applied value of the Fargate On-Demand vCPU quota (`fargate`/`L-3032A538`).
        pub fargate_vcpu_quota: f64,
        /// The Fargate vCPU-hour price served for `region`.
        pub fargate_vcpu_hour: f64,
        /// The region whose prices were served.
        pub region: String,
    }

    /// Checks the backend against `world`; the error says which expectation failed.
    pub async fn run(
        account: &dyn AccountInspector,
        world: &ConformanceWorld,
    ) -> std::result::Result<(), String> {
        let caller = account.caller().await.map_err(|e| e.to_string())?;
        if caller.account.len() != 12 || !caller.principal_arn.starts_with("arn:") {
            return Err(format!("caller identity looks wrong: {caller:?}"));
        }
        let check = |action: &str, resource: &str| PermissionCheck {
            action: action.to_owned(),
            resources: vec![resource.to_owned()],
            context: vec![ContextValue::string("aws:RequestedRegion", &world.region)],
        };
        let checks = vec![
            check("ec2:CreateVpc", "*"),
            check(&world.denied_action, "*"),
            check(
                "eks:DescribeCluster",
                &format!(
                    "arn:{}:eks:{}:{}:cluster/conformance",
                    caller.partition, world.region, caller.account
                ),
            ),
        ];
        let decisions = account
            .simulate(&caller.principal_arn, &checks)
            .await
            .map_err(|e| e.to_string())?;
        let got: Vec<(&str, bool)> = decisions
            .iter()
            .map(|d| (d.action.as_str(), d.allowed()))
            .collect();
        let want = vec![
            ("ec2:CreateVpc", true),
            (world.denied_action.as_str(), false),
            ("eks:DescribeCluster", true),
        ];
        if got != want {
            return Err(format!("simulation: got {got:?}, want {want:?}"));
        }
        let quota = account
            .quota(FARGATE_VCPU.service_code, FARGATE_VCPU.quota_code)
            .await
            .map_err(|e| e.to_string())?;
        if quota.value != world.fargate_vcpu_quota || quota.quota_code != FARGATE_VCPU.quota_code {
            return Err(format!(
                "Fargate vCPU quota: got {quota:?}, want {}",
                world.fargate_vcpu_quota
            ));
        }
        let eips = account
            .quota(ELASTIC_IPS.service_code, ELASTIC_IPS.quota_code)
            .await
            .map_err(|e| e.to_string())?;
        if eips.value < 1.0 {
            return Err(format!("Elastic IP quota: got {eips:?}"));
        }
        match account.quota("fargate", "L-00000000").await {
            Err(Error::NotFound { .. }) => {}
            other => return Err(format!("unknown quota: want NotFound, got {other:?}")),
        }
        account.usage().await.map_err(|e| e.to_string())?;
        let prices = account
            .prices(&world.region)
            .await
            .map_err(|e| e.to_string())?;
        if prices.fargate_vcpu_hour != Some(world.fargate_vcpu_hour)
            || prices.fargate_gb_hour.is_none()
        {
            return Err(format!(
                "prices: got {prices:?}, want Fargate {} per vCPU-hour",
                world.fargate_vcpu_hour
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> conformance::ConformanceWorld {
        conformance::ConformanceWorld {
            denied_action: "eks:CreateCluster".into(),
            fargate_vcpu_quota: 8.0,
            fargate_vcpu_hour: 0.05,
            region: "eu-west-1".into(),
        }
    }

    #[tokio::test]
    async fn memory_passes_the_conformance_suite() {
        let account = InMemoryAccount::new();
        let w = world();
        account
            .deny(&w.denied_action)
            .set_known_quota(FARGATE_VCPU, w.fargate_vcpu_quota)
            .set_prices(Some(PriceQuote {
                region: String::new(),
                fargate_vcpu_hour: Some(w.fargate_vcpu_hour),
                fargate_gb_hour: Some(0.005),
                eks_cluster_hour: Some(0.1),
            }));
        conformance::run(&account, &w).await.unwrap();
        // The suite fails when the world is not what it expects.
        account.set_known_quota(FARGATE_VCPU, 6.0);
        assert!(conformance::run(&account, &w).await.is_err());
    }

    #[tokio::test]
    async fn denied_simulation_is_permission_denied() {
        let account = InMemoryAccount::new();
        account.deny_simulation(true);
        let err = account
            .simulate(
                "arn:aws:iam::123456789012:user/x",
                &[PermissionCheck {
                    action: "ec2:CreateVpc".into(),
                    resources: vec!["*".into()],
                    context: Vec::new(),
                }],
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
    }

    #[test]
    fn an_sso_session_is_simulated_as_its_role() {
        let c = CallerIdentity::from_arn(
            "123456789012",
            "arn:aws:sts::123456789012:assumed-role/Admin/me@example.com",
        );
        assert_eq!(c.principal_arn, "arn:aws:iam::123456789012:role/Admin");
        assert_eq!(c.partition, "aws");
    }
}
