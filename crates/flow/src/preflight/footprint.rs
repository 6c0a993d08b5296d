//! What the stack (or the cluster the user brought) already holds of the quota-limited
//! resources, so the quota checks ask only for what the run will add.
//!
//! Fargate vCPUs in use are read from the pods of the one cluster glrunner can reach (the
//! stack's own when it exists, or the brought one): each pod Fargate runs carries EKS's
//! `CapacityProvisioned` annotation with the size it bills. The account-wide figure is the
//! CloudWatch metric `AWS/Usage` `ResourceCount` (Service=Fargate, Type=Resource,
//! Resource=vCPU, Class=Standard/OnDemand, which the quota `L-3032A538` names as its usage
//! metric), but reading it needs `aws-sdk-cloudwatch`, not among glrunner's dependencies (Service
//! Quotas' `GetServiceQuota` only names the metric, it returns no value). So other clusters'
//! pods and ECS tasks on Fargate are not seen: the check says so.

use glrunner_infra::{ClusterProvisioner, Resource, ResourceKind, ResourceState};

use super::{PreflightPlan, PreflightSources};
use crate::{ClusterSource, ClusterTarget, FargatePod, Ownership};

/// The stack's own resources that count against the account's quotas, and the Fargate
/// capacity held on the cluster the run will use.
#[derive(Debug, Clone, Default)]
pub(super) struct Footprint {
    /// The stack's VPCs.
    pub vpcs: u32,
    /// The stack's Elastic IPs.
    pub elastic_ips: u32,
    /// The stack's NAT gateways that a resumed provision keeps (pending or available).
    pub nat_gateways: u32,
    /// The cluster the run will use, when it exists (creating or active).
    pub cluster: Option<String>,
    /// Fargate capacity held on that cluster.
    pub fargate: FargateInUse,
}

/// What the reachable cluster's pods hold of the Fargate vCPU quota.
#[derive(Debug, Clone, Default)]
pub(super) enum FargateInUse {
    /// No cluster to read (none exists yet, or none could be reached: the reason).
    #[default]
    NoCluster,
    /// The pods could not be read.
    NotRead {
        /// The cluster.
        cluster: String,
        /// Why.
        reason: String,
    },
    /// Read from the cluster's pods.
    Read {
        /// The cluster.
        cluster: String,
        /// Pods the run does not replace: they hold their vCPUs beside the plan's peak
        /// (CoreDNS and the stack's runner managers are in the peak already).
        others: Vec<FargatePod>,
    },
}

impl FargateInUse {
    /// vCPUs held beside the plan's peak.
    pub fn vcpus(&self) -> f64 {
        match self {
            Self::Read { others, .. } => others.iter().map(|p| p.size.vcpus()).sum(),
            _ => 0.0,
        }
    }

    /// The words for the quota check.
    pub fn describe(&self) -> String {
        match self {
            Self::NoCluster => String::new(),
            Self::NotRead { cluster, reason } => {
                format!("; Fargate pods on cluster {cluster} not read ({reason})")
            }
            Self::Read { cluster, others } if others.is_empty() => {
                format!("; no other Fargate pod on cluster {cluster}")
            }
            Self::Read { cluster, others } => format!(
                ", {} in use by {} other Fargate pod(s) on cluster {cluster} (their CapacityProvisioned)",
                self.vcpus(),
                others.len()
            ),
        }
    }
}

/// Whether the run's peak already counts this pod: a CoreDNS pod (`k8s-app=kube-dns` in
/// `kube-system`, the add-on's label) or a runner manager of the stack's releases (the chart's
/// `release` label), which the run's releases replace rather than add to.
fn in_the_peak(plan: &PreflightPlan, pod: &FargatePod) -> bool {
    let label = |key: &str| pod.labels.get(key).map(String::as_str);
    (pod.namespace == "kube-system" && label("k8s-app") == Some("kube-dns"))
        || label(glrunner_janitor::model::keys::LABEL_CHART_RELEASE)
            .is_some_and(|r| Ownership::of(&plan.spec.stack).owns_release(r))
}

/// A resource a resumed provision reuses rather than creates again.
fn kept(r: &Resource) -> bool {
    r.exists() && !matches!(r.state, ResourceState::Deleting | ResourceState::Failed)
}

impl Footprint {
    /// Reads the stack's network, its cluster, and that cluster's Fargate pods. Read-only;
    /// whatever cannot be read counts as absent (the quota checks then ask for it, which
    /// cannot under-count).
    pub async fn read(plan: &PreflightPlan, sources: &PreflightSources<'_>) -> Self {
        let mut out = Self::default();
        match sources.network.discover(&plan.spec.stack).await {
            Ok(found) => {
                let count = |kind: ResourceKind| {
                    let n = found.iter().filter(|r| r.kind == kind && kept(r)).count();
                    u32::try_from(n).unwrap_or(u32::MAX)
                };
                out.vpcs = count(ResourceKind::Vpc);
                out.elastic_ips = count(ResourceKind::ElasticIp);
                out.nat_gateways = count(ResourceKind::NatGateway);
            }
            Err(e) => {
                tracing::info!(error = %e, "cannot discover the stack's network; quotas ask for all of it")
            }
        }
        let name = match &plan.cluster {
            ClusterSource::Provisioned => plan.spec.cluster.name.clone(),
            ClusterSource::Eks { name } => name.clone(),
            ClusterSource::Kubeconfig { .. } => return out,
        };
        let Some(provisioner) = sources.cluster else {
            return out;
        };
        match provisioner.describe(ResourceKind::Cluster, &name).await {
            Ok(Some(cluster)) if kept(&cluster) => out.cluster = Some(name.clone()),
            Ok(_) => return out,
            Err(e) => {
                tracing::info!(cluster = %name, error = %e, "cannot describe the cluster; quotas ask for one");
                return out;
            }
        }
        if let Some(connector) = sources.connector {
            out.fargate = fargate_in_use(plan, provisioner, connector, &name).await;
        }
        out
    }
}

async fn fargate_in_use(
    plan: &PreflightPlan,
    provisioner: &dyn ClusterProvisioner,
    connector: &dyn crate::ClusterConnector,
    name: &str,
) -> FargateInUse {
    let not_read = |reason: String| FargateInUse::NotRead {
        cluster: name.to_owned(),
        reason,
    };
    // A cluster still being created answers no endpoint yet: it runs no pod either.
    let access = match provisioner.cluster_access(name).await {
        Ok(access) => access,
        Err(e) => return not_read(e.to_string()),
    };
    let clients = match connector
        .connect(&plan.spec, ClusterTarget::Eks(&access))
        .await
    {
        Ok(clients) => clients,
        Err(e) => return not_read(e.to_string()),
    };
    match clients.checks.fargate_pods().await {
        Ok(pods) => {
            let others = pods.into_iter().filter(|p| !in_the_peak(plan, p)).collect();
            FargateInUse::Read {
                cluster: name.to_owned(),
                others,
            }
        }
        Err(e) => not_read(e),
    }
}
