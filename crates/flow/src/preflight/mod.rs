//! The preflight (`doctor`, and `full_flow` before anything billable): a table of checks, each
//! `ok`, `warn` or `fail` with what was found, what is needed and the fix, plus the cost
//! projection and the budget guard.
//!
//! Every check is read-only: the sources are [`AccountInspector`] (STS, IAM simulation,
//! Service Quotas, Price List), [`NetworkProvisioner::discover`] and GitLab reads, so running
//! the preflight against an account creates nothing. The library never prints: it returns a
//! [`PreflightReport`].

mod footprint;
pub mod pod_identity;

/// The one Region table (EKS, and Fargate for EKS pods), at its old path.
pub use glrunner_infra::regions;

/// The cost projection, at its old path.
pub use crate::cost;

use std::path::PathBuf;
use std::time::Duration;

use glrunner_gitlab_client::limits::{LimitsSource, PlanLimits, is_gitlab_com};
use glrunner_gitlab_client::{GitLabApi, MemberScope, ProjectRef, access_level};
use glrunner_infra::aws::actions;
use glrunner_infra::{AccountInspector, AccountUsage, ClusterProvisioner, NetworkProvisioner};
use glrunner_runner_chart::{FleetPlan, FleetWarning};
use serde::Serialize;

pub use crate::plan::{FargateQueue, PreflightPlan};
pub use cost::{CostComparison, CostInputs, CostProjection, ExpectedDurations, Prices};

/// Service code and quota code of the Fargate On-Demand vCPU quota.
pub const FARGATE_VCPU_QUOTA: (&str, &str) = glrunner_infra::account::FARGATE_VCPU.codes();
/// EC2-VPC Elastic IPs.
pub const ELASTIC_IP_QUOTA: (&str, &str) = glrunner_infra::account::ELASTIC_IPS.codes();
/// VPCs per region.
pub const VPC_QUOTA: (&str, &str) = glrunner_infra::account::VPCS.codes();
/// NAT gateways per availability zone.
pub const NAT_PER_AZ_QUOTA: (&str, &str) = glrunner_infra::account::NAT_GATEWAYS_PER_AZ.codes();
/// EKS clusters per region.
pub const EKS_CLUSTER_QUOTA: (&str, &str) = glrunner_infra::account::EKS_CLUSTERS.codes();

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Fine.
    Ok,
    /// Worth knowing; the run may still work.
    Warn,
    /// The run would fail or overspend: fix it first.
    Fail,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad` honours width and alignment (`{:<4}` in the table).
        f.pad(match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        })
    }
}

/// One check: what was found, what is needed, and how to fix it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// Stable id, e.g. `quota.fargate-vcpu`.
    pub id: String,
    /// The outcome.
    pub status: Status,
    /// What was found.
    pub found: String,
    /// What the plan needs.
    pub needed: String,
    /// How to fix it (empty when ok).
    pub fix: String,
}

impl Check {
    fn new(id: &str, status: Status, found: impl Into<String>, needed: impl Into<String>) -> Self {
        Self {
            id: id.to_owned(),
            status,
            found: found.into(),
            needed: needed.into(),
            fix: String::new(),
        }
    }

    fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = fix.into();
        self
    }
}

/// Where the checks read from. Everything here is read-only.
pub struct PreflightSources<'a> {
    /// The AWS account.
    pub account: &'a dyn AccountInspector,
    /// The network side, to find an existing stack of this name.
    pub network: &'a dyn NetworkProvisioner,
    /// GitLab (`None`: not configured; the check says so).
    pub gitlab: Option<&'a dyn GitLabApi>,
    /// glrunner's EKS token generator, whose tokens helm gets for an EKS cluster (`None` on the
    /// sandbox, where no helm runs).
    pub eks_tokens: Option<&'a glrunner_infra::kubeconfig::EksTokenGenerator>,
    /// The EKS side, to tell whether the run's cluster exists already: a resumed stack's
    /// cluster needs no second one of the quota (`None`: not looked for).
    pub cluster: Option<&'a dyn ClusterProvisioner>,
    /// Reaches that existing cluster to read the Fargate capacity its pods hold
    /// ([`crate::ClusterChecks::fargate_pods`]; `None`: not read).
    pub connector: Option<&'a dyn crate::ClusterConnector>,
    /// The cluster's EKS Pod Identity associations, for the guard against Pod Identity on
    /// Fargate ([`pod_identity`]; `None`: not checked).
    pub pod_identity: Option<&'a dyn glrunner_infra::PodIdentityInspector>,
}

impl std::fmt::Debug for PreflightSources<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreflightSources").finish_non_exhaustive()
    }
}

/// The preflight's result.
#[derive(Debug, Clone, Serialize)]
pub struct PreflightReport {
    /// The checks, in order.
    pub checks: Vec<Check>,
    /// The cost projection.
    pub projection: CostProjection,
    /// The budget it was held against.
    pub budget_usd: Option<f64>,
}

impl PreflightReport {
    /// Whether any check failed.
    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.status == Status::Fail)
    }

    /// The failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == Status::Fail)
    }

    /// One line per failed check: `id: found; needs …; fix: …`.
    pub fn failure_summary(&self) -> String {
        self.failures()
            .map(|c| format!("{}: {} (needs {}; fix: {})", c.id, c.found, c.needed, c.fix))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The table and the projection as text.
    pub fn render_text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(out, "preflight checks:");
        for c in &self.checks {
            let _ = writeln!(out, "  [{:<4}] {:<26} {}", c.status, c.id, c.found);
            if c.status != Status::Ok {
                let _ = writeln!(out, "         {:<26} needs: {}", "", c.needed);
                if !c.fix.is_empty() {
                    let _ = writeln!(out, "         {:<26} fix: {}", "", c.fix);
                }
            }
        }
        let _ = writeln!(out, "projected cost:");
        out.push_str(&self.projection.render_text());
        if let Some(budget) = self.budget_usd {
            let _ = writeln!(out, "  budget                   ${budget:>9.4}");
        }
        out
    }
}

/// Runs every check and the projection. Never creates anything; errors from a source become
/// `warn` or `fail` checks saying what could not be checked.
pub async fn run(plan: &PreflightPlan, sources: &PreflightSources<'_>) -> PreflightReport {
    let mut checks = Vec::new();
    let aws_account = match &plan.cluster {
        // A cluster brought through a kubeconfig: glrunner calls no AWS API, so there is no
        // account to check (and none may be configured).
        crate::ClusterSource::Kubeconfig { path, .. } => {
            checks.push(Check::new(
                "aws.account",
                Status::Ok,
                format!(
                    "not checked: the cluster comes from --kubeconfig {}; glrunner creates nothing in AWS",
                    path.display()
                ),
                "no AWS account (identity, quotas, permissions and existing stacks are for clusters on AWS)",
            ));
            false
        }
        _ => {
            aws_account_checks(plan, sources, &mut checks).await;
            checks.extend(pod_identity::check(plan, sources.cluster, sources.pod_identity).await);
            true
        }
    };
    checks.extend(gitlab(plan, sources.gitlab).await);
    if let Some(helm) = &plan.helm {
        checks.push(helm_tool(helm).await);
        checks.push(helm_credentials(plan, sources.eks_tokens).await);
    }
    checks.extend(fleet_warnings(&plan.fleet));
    let prices = if aws_account {
        match sources.account.prices(&plan.spec.region).await {
            Ok(quote) => Prices::from_quote(&plan.spec.region, &quote),
            Err(e) => {
                tracing::info!(error = %e, "Price List API not reachable; using the price tables");
                Prices::table(&plan.spec.region)
            }
        }
    } else {
        Prices::table(&plan.spec.region)
    };
    // The control plane's price depends on the Kubernetes version's support on the day.
    let prices = plan.prices(prices);
    let projection = cost::project(&plan.cost_inputs(), &plan.durations, &prices);
    if let Some(budget) = plan.budget_usd {
        checks.push(budget_check(&projection, budget));
    }
    PreflightReport {
        checks,
        projection,
        budget_usd: plan.budget_usd,
    }
}

/// The checks of the AWS account a cluster on AWS needs: identity, Region, permissions, quotas
/// against current usage, and an existing stack of this name.
async fn aws_account_checks(
    plan: &PreflightPlan,
    sources: &PreflightSources<'_>,
    checks: &mut Vec<Check>,
) {
    let identity = identity(sources, &plan.spec.region, checks).await;
    checks.push(region(&plan.spec.region));
    if let Some(caller) = &identity {
        checks.push(permissions(sources.account, caller, plan).await);
    }
    if let crate::ClusterSource::Eks { name } = &plan.cluster {
        checks.extend(brought_cluster_quotas(plan, sources, name).await);
        return;
    }
    let usage = sources.account.usage().await;
    if let Err(e) = &usage {
        checks.push(
            Check::new(
                "aws.usage",
                Status::Warn,
                format!("cannot read current usage in {}: {e}", plan.spec.region),
                "ec2:DescribeVpcs/DescribeAddresses/DescribeNatGateways, eks:ListClusters",
            )
            .fix("quota checks below compare the plan alone, without current usage"),
        );
    }
    let usage = usage.ok();
    let footprint = footprint::Footprint::read(plan, sources).await;
    checks.extend(quotas(plan, sources.account, usage, &footprint).await);
    checks.push(existing_stack(plan, sources.network).await);
}

/// Whether the Region offers EKS and Fargate for EKS pods (every glrunner pod runs on Fargate).
fn region(region: &str) -> Check {
    let needed = "a Region with Amazon EKS and AWS Fargate for EKS pods";
    let fix =
        "pick another --region, e.g. us-east-1 or eu-west-1 (every glrunner pod runs on Fargate)";
    match regions::offer(region) {
        regions::Offer::EksAndFargate => Check::new(
            "region.eks-fargate",
            Status::Ok,
            format!("{region} offers EKS and Fargate for EKS pods"),
            needed,
        ),
        regions::Offer::EksWithoutFargate => Check::new(
            "region.eks-fargate",
            Status::Fail,
            format!(
                "{region} offers EKS but no Fargate for EKS pods (source: {})",
                regions::SOURCE
            ),
            needed,
        )
        .fix(fix),
        regions::Offer::Unknown => Check::new(
            "region.eks-fargate",
            Status::Warn,
            format!(
                "{region} is not in glrunner's Region table (source: {}): EKS and Fargate are not confirmed",
                regions::SOURCE
            ),
            needed,
        )
        .fix("check the spelling of --region and the AWS Regional Services List"),
    }
}

async fn identity(
    sources: &PreflightSources<'_>,
    region: &str,
    checks: &mut Vec<Check>,
) -> Option<glrunner_infra::CallerIdentity> {
    match sources.account.caller().await {
        Ok(caller) => {
            if let Err(e) = glrunner_infra::identity::classify_caller(&caller.arn) {
                let message = match e {
                    glrunner_infra::Error::InvalidInput { message, .. } => message,
                    other => other.to_string(),
                };
                checks.push(
                    Check::new(
                        "aws.identity",
                        Status::Fail,
                        format!("{} in account {}: {message}", caller.arn, caller.account),
                        "an IAM role or IAM user: glrunner gives its caller an EKS access entry and simulates its policies",
                    )
                    .fix(glrunner_infra::identity::CALLER_FIX),
                );
                return None;
            }
            let partition_ok = match caller.partition.as_str() {
                "aws" => !region.starts_with("cn-") && !region.starts_with("us-gov-"),
                "aws-cn" => region.starts_with("cn-"),
                "aws-us-gov" => region.starts_with("us-gov-"),
                _ => false,
            };
            let mut check = Check::new(
                "aws.identity",
                if partition_ok {
                    Status::Ok
                } else {
                    Status::Fail
                },
                format!(
                    "{} in account {} (partition {}); cluster access goes to {}",
                    caller.arn, caller.account, caller.partition, caller.principal_arn
                ),
                format!("credentials of the partition that holds {region}"),
            );
            if !partition_ok {
                check = check.fix(format!(
                    "use credentials of the partition of {region}, or a region of partition {}",
                    caller.partition
                ));
            }
            checks.push(check);
            Some(caller)
        }
        Err(e) => {
            checks.push(
                Check::new(
                    "aws.identity",
                    Status::Fail,
                    format!("sts:GetCallerIdentity failed: {e}"),
                    "valid AWS credentials",
                )
                .fix("configure credentials (AWS_PROFILE, aws sso login, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"),
            );
            None
        }
    }
}

/// What the permission check simulates for this plan: every action on the stack's own ARNs when
/// glrunner provisions; only the reads of the cluster's endpoint and Fargate profiles when the
/// user brings an EKS cluster by name (a kubeconfig cluster has no AWS account to check).
pub fn permission_scope(
    plan: &PreflightPlan,
    caller: &glrunner_infra::CallerIdentity,
) -> actions::PermissionScope {
    use actions::PermissionFlow;
    let (flow, cluster) = match &plan.cluster {
        crate::ClusterSource::Eks { name } => (PermissionFlow::BroughtEksCluster, name.clone()),
        _ => (PermissionFlow::Provision, plan.spec.cluster.name.clone()),
    };
    let caller_role = matches!(
        glrunner_infra::identity::classify_caller(&caller.arn),
        Ok(glrunner_infra::identity::Caller::AssumedRole { .. })
    )
    .then(|| caller.principal_arn.clone());
    actions::PermissionScope {
        partition: caller.partition.clone(),
        account: caller.account.clone(),
        region: plan.spec.region.clone(),
        stack: plan.spec.stack.to_string(),
        cluster,
        extra_tags: plan.spec.cluster.tags.keys().cloned().collect(),
        caller_role,
        flow,
    }
}

async fn permissions(
    account: &dyn AccountInspector,
    caller: &glrunner_infra::CallerIdentity,
    plan: &PreflightPlan,
) -> Check {
    let principal = caller.principal_arn.as_str();
    let scope = permission_scope(plan, caller);
    let needed = actions::permission_checks(&scope);
    let actions: std::collections::BTreeSet<&str> =
        needed.iter().map(|c| c.action.as_str()).collect();
    let what = match scope.flow {
        actions::PermissionFlow::Provision => format!(
            "{} IAM actions glrunner uses, on the stack's resources ({} and roles {})",
            actions.len(),
            scope.cluster_arn(),
            scope.role_arns().join(", ")
        ),
        actions::PermissionFlow::BroughtEksCluster => format!(
            "{} IAM actions on the brought cluster {} (its endpoint and Fargate profiles)",
            actions.len(),
            scope.cluster_arn()
        ),
    };
    match account.simulate(principal, &needed).await {
        Ok(decisions) => {
            // One line per denied action, naming the first resource it is denied on.
            let mut denied: Vec<String> = Vec::new();
            let mut named = std::collections::BTreeSet::new();
            for d in decisions.iter().filter(|d| !d.allowed()) {
                if named.insert(d.action.clone()) {
                    denied.push(format!("{} on {}", d.action, d.resource));
                }
            }
            if denied.is_empty() {
                Check::new(
                    "aws.permissions",
                    Status::Ok,
                    format!("{principal} may call all {}", actions.len()),
                    what,
                )
            } else {
                Check::new(
                    "aws.permissions",
                    Status::Fail,
                    format!(
                        "{principal} is denied {}: {}",
                        denied.len(),
                        denied.join(", ")
                    ),
                    what,
                )
                .fix("grant the denied actions on those resources to the principal (README, \"Permissions\", has a least-privilege policy), or run as one that has them")
            }
        }
        Err(glrunner_infra::Error::PermissionDenied { message, .. }) => Check::new(
            "aws.permissions",
            Status::Warn,
            format!("not checked: the caller may not simulate its policies ({message})"),
            what,
        )
        .fix("allow iam:SimulatePrincipalPolicy on the principal to check permissions up front"),
        Err(e) => Check::new(
            "aws.permissions",
            Status::Warn,
            format!("not checked: {e}"),
            what,
        ),
    }
}

/// The quotas a run on a brought EKS cluster can hit: the Fargate vCPU quota its pods use. It
/// creates no VPC, Elastic IP, NAT gateway or cluster, so their quotas (and the account's usage
/// of them, and an existing stack's network) are not checked.
async fn brought_cluster_quotas(
    plan: &PreflightPlan,
    sources: &PreflightSources<'_>,
    cluster: &str,
) -> Vec<Check> {
    // The Fargate vCPUs the brought cluster's pods already hold count against the quota.
    let footprint = footprint::Footprint::read(plan, sources).await;
    let mut checks: Vec<Check> = quotas(plan, sources.account, None, &footprint)
        .await
        .into_iter()
        .filter(|c| c.id == "quota.fargate-vcpu")
        .collect();
    checks.push(Check::new(
        "quota.network",
        Status::Ok,
        format!(
            "not checked: the run uses the brought cluster {cluster} and creates no VPC, Elastic IP, NAT gateway or cluster"
        ),
        "nothing",
    ));
    checks
}

/// One quota check: id, (service code, quota code), what the plan adds, current usage, and the
/// need in words.
type QuotaItem = (&'static str, (&'static str, &'static str), f64, f64, String);

/// What the plan adds of one resource when the stack already has `existing` of the `planned`.
fn still_needed(planned: u32, existing: u32) -> f64 {
    f64::from(planned.saturating_sub(existing))
}

/// The need in words: `planned` of `what`, less what the stack has already.
fn need_words(planned: u32, existing: u32, what: &str, stack: &str) -> String {
    if existing == 0 {
        format!("{planned} {what}")
    } else if existing >= planned {
        format!("{planned} {what}, which stack {stack} has already: none more")
    } else {
        format!(
            "{planned} {what}, of which stack {stack} has {existing}: {} more",
            planned - existing
        )
    }
}

async fn quotas(
    plan: &PreflightPlan,
    account: &dyn AccountInspector,
    usage: Option<AccountUsage>,
    existing: &footprint::Footprint,
) -> Vec<Check> {
    let stack = plan.spec.stack.as_str();
    let nat = plan.nat_gateways();
    let u = usage.unwrap_or_default();
    let peak = plan.peak_vcpus();
    // The stack's own resources are in the account's usage already; a resumed provision
    // creates only what is missing (its NAT gateways sit in the AZs it already counts).
    let nat_missing = u32::from(existing.nat_gateways < nat);
    let cluster = u32::from(existing.cluster.is_some());
    let fargate_used = existing.fargate.vcpus();
    let items: [QuotaItem; 5] = [
        (
            "quota.fargate-vcpu",
            FARGATE_VCPU_QUOTA,
            peak,
            fargate_used,
            format!(
                "{} job pods × {} + {} manager pods × {} + {} CoreDNS pods × {} = {peak} vCPUs at peak",
                plan.fleet.total_jobs,
                plan.job_pod_size,
                plan.fleet.shards.len(),
                plan.manager_pod_size,
                cost::COREDNS_PODS,
                cost::coredns_pod_size()
            ),
        ),
        (
            "quota.elastic-ips",
            ELASTIC_IP_QUOTA,
            still_needed(nat, existing.elastic_ips),
            f64::from(u.elastic_ips),
            need_words(
                nat,
                existing.elastic_ips,
                "Elastic IP(s) for the NAT gateway(s)",
                stack,
            ),
        ),
        (
            "quota.vpcs",
            VPC_QUOTA,
            still_needed(1, existing.vpcs),
            f64::from(u.vpcs),
            need_words(1, existing.vpcs, "VPC", stack),
        ),
        (
            "quota.nat-per-az",
            NAT_PER_AZ_QUOTA,
            still_needed(1, 1 - nat_missing),
            f64::from(u.nat_gateways_max_per_az),
            need_words(
                1,
                1 - nat_missing,
                "NAT gateway per availability zone used",
                stack,
            ),
        ),
        (
            "quota.eks-clusters",
            EKS_CLUSTER_QUOTA,
            still_needed(1, cluster),
            f64::from(u.eks_clusters),
            need_words(1, cluster, "EKS cluster", stack),
        ),
    ];
    let mut checks = Vec::new();
    for (id, (service, code), need, used, needed) in items {
        let is_fargate = id == "quota.fargate-vcpu";
        let check = match account.quota(service, code).await {
            Ok(q) => {
                let used_text = if is_fargate {
                    existing.fargate.describe()
                } else if usage.is_some() && used > 0.0 {
                    format!(", {used} in use")
                } else {
                    String::new()
                };
                let found = format!("{} ({service}/{code}) is {}{used_text}", q.name, q.value);
                if is_fargate && used + need > q.value {
                    fargate_below_peak(plan, q.value, used, found, needed)
                } else if used + need > q.value {
                    Check::new(id, Status::Fail, found, needed).fix(format!(
                        "request an increase of {service}/{code} to at least {} in Service Quotas (or free some)",
                        (used + need).ceil(),
                    ))
                } else {
                    Check::new(id, Status::Ok, found, needed)
                }
            }
            Err(e) => Check::new(id, Status::Warn, format!("not checked: {e}"), needed)
                .fix("allow servicequotas:GetServiceQuota to check quotas up front"),
        };
        checks.push(check);
    }
    checks
}

/// A Fargate vCPU quota (less `in_use` by pods already running) below the plan's peak: job pods
/// queue for it (EKS keeps them Pending until
/// vCPUs free up). A failure when the last wave's pods would still be waiting for room at the
/// runners' `poll_timeout` (their jobs time out for certain), or when no job pod fits at all; a
/// warning otherwise, saying whether the last wave may time out while its pods start. The
/// estimate assumes every pod is created at once; runners create them as they pick jobs, later.
fn fargate_below_peak(
    plan: &PreflightPlan,
    quota: f64,
    in_use: f64,
    found: String,
    needed: String,
) -> Check {
    let id = "quota.fargate-vcpu";
    let (service, code) = FARGATE_VCPU_QUOTA;
    let increase = format!(
        "request an increase of {service}/{code} to at least {} in Service Quotas",
        (in_use + plan.peak_vcpus()).ceil()
    );
    let secs = |d: Duration| humantime::format_duration(Duration::from_secs(d.as_secs()));
    // Pods already running hold their vCPUs throughout: the plan's pods get the rest.
    match plan.fargate_queue(quota - in_use) {
        None => Check::new(
            id,
            Status::Fail,
            format!("{found}: the runner manager and CoreDNS pods leave no room for a job pod"),
            needed,
        )
        .fix(increase),
        Some(q) if q.last_wave_waits > plan.poll_timeout => Check::new(
            id,
            Status::Fail,
            format!(
                "{found}: {} job pods fit at once, so {} jobs start in {} waves and the last wave's pods would wait about {} for room, past the runners' poll_timeout of {}: those jobs fail (\"timed out waiting for pod to start\")",
                q.job_pods_at_once,
                plan.fleet.total_jobs,
                q.waves,
                secs(q.last_wave_waits),
                secs(plan.poll_timeout)
            ),
            needed,
        )
        .fix(format!(
            "{increase} (or plan at most {} --jobs, or smaller job pods)",
            q.jobs_within_poll_timeout
        )),
        Some(q) => {
            let timing = if q.last_wave_running > plan.poll_timeout {
                format!(
                    "the last runs about {} after its pod's creation, past the poll_timeout of {}: its jobs may time out",
                    secs(q.last_wave_running),
                    secs(plan.poll_timeout)
                )
            } else {
                format!(
                    "the last runs about {} after its pod's creation, within the poll_timeout of {}",
                    secs(q.last_wave_running),
                    secs(plan.poll_timeout)
                )
            };
            Check::new(
                id,
                Status::Warn,
                format!(
                    "{found}: {} job pods fit at once, so {} jobs start in {} waves ({timing}): the run is slower than at full concurrency",
                    q.job_pods_at_once, plan.fleet.total_jobs, q.waves
                ),
                needed,
            )
            .fix(format!("{increase} to run every job at once"))
        }
    }
}

async fn existing_stack(plan: &PreflightPlan, network: &dyn NetworkProvisioner) -> Check {
    let stack = &plan.spec.stack;
    let needed = format!("no foreign resources tagged glrunner.io/stack={stack}");
    match network.discover(stack).await {
        Ok(found) if found.is_empty() => Check::new(
            "stack.existing",
            Status::Ok,
            format!("no stack {stack} in {}", plan.spec.region),
            needed,
        ),
        Ok(found) => Check::new(
            "stack.existing",
            Status::Warn,
            format!(
                "stack {stack} already has {} network resource(s) in {}: provision resumes it",
                found.len(),
                plan.spec.region
            ),
            needed,
        )
        .fix(format!(
            "nothing to do if it is yours; otherwise pick another --stack or tear {stack} down first"
        )),
        Err(e) => Check::new(
            "stack.existing",
            Status::Warn,
            format!("not checked: {e}"),
            needed,
        ),
    }
}

/// The token scope glrunner needs: `api` (GitLab's `API::API` allows it on every route; the
/// rule and its source live in [`glrunner_gitlab_client::permissions`]).
#[deprecated(
    note = "glrunner needs `api` only: see glrunner_gitlab_client::permissions::missing_scopes"
)]
pub const REQUIRED_SCOPES: [&str; 1] = ["api"];

/// The oldest GitLab with `POST /user/runners` (runner authentication tokens).
pub const MIN_GITLAB_VERSION: (u32, u32) = (15, 10);

/// GitLab.com's jobs-per-pipeline limit of a plan name. `None` for a plan the table does not
/// know.
#[deprecated(
    since = "0.1.0",
    note = "use glrunner_gitlab_client::limits::PlanLimits (it knows `default` is self-managed and unlimited)"
)]
pub fn gitlab_com_pipeline_limit(plan: &str) -> Option<u32> {
    glrunner_gitlab_client::limits::gitlab_com_limits(plan).map(|(per_pipeline, _)| per_pipeline)
}

/// What a pipeline-variables role name means as an access level (`None`: nobody).
fn variables_role_level(role: &str) -> Option<u32> {
    match role {
        "no_one_allowed" => None,
        "developer" => Some(access_level::DEVELOPER),
        "maintainer" => Some(access_level::MAINTAINER),
        "owner" => Some(access_level::OWNER),
        _ => Some(access_level::DEVELOPER),
    }
}

async fn gitlab(plan: &PreflightPlan, gitlab: Option<&dyn GitLabApi>) -> Vec<Check> {
    let Some(gitlab) = gitlab else {
        return vec![
            Check::new(
                "gitlab.reachable",
                Status::Warn,
                "not checked: no GitLab configured",
                "a GitLab URL and GITLAB_TOKEN",
            )
            .fix("set --gitlab-url (or GITLAB_URL/CI_SERVER_URL) and GITLAB_TOKEN"),
        ];
    };
    let url = &plan.gitlab_url;
    let token_fix =
        "check GITLAB_TOKEN: a personal access token with the api scope, not expired or revoked";
    let mut checks = Vec::new();
    let reachable_need = "GitLab's REST API at --gitlab-url";
    match gitlab.version().await {
        Ok(version) => {
            checks.push(Check::new(
                "gitlab.reachable",
                Status::Ok,
                format!("{url} answers"),
                reachable_need,
            ));
            checks.push(gitlab_version(&version));
        }
        Err(e @ glrunner_gitlab_client::Error::PermissionDenied { .. }) => {
            checks.push(Check::new(
                "gitlab.reachable",
                Status::Ok,
                format!("{url} answers, but refuses the token"),
                reachable_need,
            ));
            checks.push(
                Check::new(
                    "gitlab.token",
                    Status::Fail,
                    format!("GET /version: {e}"),
                    "a valid token",
                )
                .fix(token_fix),
            );
            return checks;
        }
        Err(e) => {
            checks.push(
                Check::new(
                    "gitlab.reachable",
                    Status::Fail,
                    format!("cannot reach {url}: {e}"),
                    reachable_need,
                )
                .fix("check --gitlab-url (the base URL, e.g. https://gitlab.com), the network path and any proxy"),
            );
            return checks;
        }
    }
    let user = match gitlab.current_user().await {
        Ok(user) => {
            checks.push(Check::new(
                "gitlab.token",
                Status::Ok,
                format!("token of {} works", user.username),
                "a token with the api scope",
            ));
            user
        }
        Err(e) => {
            checks.push(
                Check::new(
                    "gitlab.token",
                    Status::Fail,
                    format!("GET /user failed: {e}"),
                    "a reachable GitLab and a valid token",
                )
                .fix(token_fix),
            );
            return checks;
        }
    };
    checks.push(token_scopes(gitlab).await);
    let Some(project) = &plan.project else {
        return checks;
    };
    let reference = match ProjectRef::parse(project) {
        Ok(r) => r,
        Err(e) => {
            checks.push(
                Check::new(
                    "gitlab.project",
                    Status::Fail,
                    e.to_string(),
                    "a project path or id",
                )
                .fix("pass --project group/name"),
            );
            return checks;
        }
    };
    let project_need = "the load-test project, or a namespace to create it in";
    let existing = match gitlab.get_project(&reference).await {
        Ok(p) => {
            checks.push(Check::new(
                "gitlab.project",
                Status::Ok,
                format!("project {} exists", p.path_with_namespace),
                project_need,
            ));
            Some(p)
        }
        Err(e) if e.is_not_found() => {
            checks.push(Check::new(
                "gitlab.project",
                Status::Ok,
                format!("project {project} does not exist yet: the flow creates it"),
                project_need,
            ));
            None
        }
        Err(e) => {
            checks.push(
                Check::new(
                    "gitlab.project",
                    Status::Fail,
                    format!("cannot read project {project}: {e}"),
                    "read access to the project",
                )
                .fix("use a token of a user with at least the Maintainer role on the project"),
            );
            return checks;
        }
    };
    let path = existing
        .as_ref()
        .map(|p| p.path_with_namespace.clone())
        .unwrap_or_else(|| project.clone());
    checks.push(role(gitlab, &user, existing.as_ref(), &path).await);
    checks.push(pipeline_variables(plan, existing.as_ref()));
    checks.push(pipeline_size(plan, gitlab, &path).await);
    checks
}

fn gitlab_version(version: &glrunner_gitlab_client::ServerVersion) -> Check {
    let (major, minor) = MIN_GITLAB_VERSION;
    let needed =
        format!("GitLab {major}.{minor} or newer (runner creation through POST /user/runners)");
    match version.at_least(major, minor) {
        Some(true) => Check::new(
            "gitlab.version",
            Status::Ok,
            format!("GitLab {}", version.version),
            needed,
        ),
        Some(false) => Check::new(
            "gitlab.version",
            Status::Fail,
            format!(
                "GitLab {} has no POST /user/runners (runner authentication tokens came in {major}.{minor})",
                version.version
            ),
            needed,
        )
        .fix(format!(
            "upgrade GitLab to {major}.{minor} or newer (glrunner does not use registration tokens, removed in 18.0)"
        )),
        None => Check::new(
            "gitlab.version",
            Status::Warn,
            format!("GET /version answered {:?}, not a version", version.version),
            needed,
        )
        .fix("check that --gitlab-url points at GitLab"),
    }
}

async fn token_scopes(gitlab: &dyn GitLabApi) -> Check {
    let needed = "the api scope (projects, commits, pipelines and POST /user/runners)";
    match gitlab.token_info().await {
        Ok(token) => {
            let missing = glrunner_gitlab_client::permissions::missing_scopes(&token.scopes);
            let found = format!(
                "token {:?} has the scopes {}",
                token.name,
                token.scopes.join(", ")
            );
            if !token.active {
                Check::new(
                    "gitlab.token-scopes",
                    Status::Fail,
                    format!("token {:?} is not active (revoked or expired)", token.name),
                    needed,
                )
                .fix("create a personal access token with the api scope and put it in GITLAB_TOKEN")
            } else if missing.is_empty() {
                Check::new("gitlab.token-scopes", Status::Ok, found, needed)
            } else {
                Check::new(
                    "gitlab.token-scopes",
                    Status::Fail,
                    format!("{found}; missing: {}", missing.join(", ")),
                    needed,
                )
                .fix(format!(
                    "create a token with the {} scope(s) as well (a token's scopes cannot be changed) and put it in GITLAB_TOKEN",
                    missing.join(" and ")
                ))
            }
        }
        Err(e) => Check::new(
            "gitlab.token-scopes",
            Status::Warn,
            format!("cannot read the token's scopes (GET /personal_access_tokens/self): {e}"),
            needed,
        )
        .fix("use a personal, project or group access token (OAuth and CI job tokens have no scopes to read)"),
    }
}

/// The user's role where the runners are created: Maintainer+ on an existing project (project
/// runners, GitLab's runners_scope docs), or on the group a new project is created in.
async fn role(
    gitlab: &dyn GitLabApi,
    user: &glrunner_gitlab_client::User,
    existing: Option<&glrunner_gitlab_client::Project>,
    path: &str,
) -> Check {
    let maintainer = access_level::name(access_level::MAINTAINER);
    let describe = |level: Option<u32>| level.map_or("not a member", access_level::name);
    if let Some(project) = existing {
        let needed =
            format!("at least {maintainer} on project {path}: creating project runners needs it");
        let scope = MemberScope::Project(ProjectRef::Id(project.id));
        return match gitlab.member(&scope, user.id).await {
            Ok(member) => {
                let level = member.map(|m| m.access_level);
                let found = format!("{} is {} on project {path}", user.username, describe(level));
                if level.unwrap_or(0) >= access_level::MAINTAINER {
                    Check::new("gitlab.role", Status::Ok, found, needed)
                } else {
                    Check::new("gitlab.role", Status::Fail, found, needed).fix(format!(
                        "ask an Owner of {path} to give {} the {maintainer} role, or use a --project where it has it",
                        user.username
                    ))
                }
            }
            Err(e) => Check::new(
                "gitlab.role",
                Status::Warn,
                format!("not checked: {e}"),
                needed,
            ),
        };
    }
    let Some((namespace, _)) = path.rsplit_once('/') else {
        return Check::new(
            "gitlab.role",
            Status::Warn,
            format!("not checked: {path} names no namespace"),
            "a namespace to create the project in",
        )
        .fix("pass --project group/name");
    };
    let needed = format!(
        "at least {maintainer} on group {namespace} (to create the project and its runners), or the user's own namespace"
    );
    match gitlab.get_namespace(namespace).await {
        Ok(ns) if ns.kind == "user" => {
            if ns.full_path.eq_ignore_ascii_case(&user.username) {
                Check::new(
                    "gitlab.role",
                    Status::Ok,
                    format!("{namespace} is {}'s own namespace", user.username),
                    needed,
                )
            } else {
                Check::new(
                    "gitlab.role",
                    Status::Fail,
                    format!(
                        "{namespace} is another user's namespace; {} cannot create projects in it",
                        user.username
                    ),
                    needed,
                )
                .fix(format!("use --project {}/<name> or a group", user.username))
            }
        }
        Ok(_) => match gitlab
            .member(&MemberScope::Group(namespace.to_owned()), user.id)
            .await
        {
            Ok(member) => {
                let level = member.map(|m| m.access_level);
                let found = format!(
                    "{} is {} on group {namespace}",
                    user.username,
                    describe(level)
                );
                match level.unwrap_or(0) {
                    l if l >= access_level::MAINTAINER => {
                        Check::new("gitlab.role", Status::Ok, found, needed)
                    }
                    l if l >= access_level::DEVELOPER => Check::new(
                        "gitlab.role",
                        Status::Warn,
                        found,
                        needed,
                    )
                    .fix(format!(
                        "a Developer creates projects only where the group allows it; ask for {maintainer} on {namespace}, or create the project first and give {} {maintainer} on it",
                        user.username
                    )),
                    _ => Check::new("gitlab.role", Status::Fail, found, needed).fix(format!(
                        "ask an Owner of {namespace} for the {maintainer} role, or use --project {}/<name>",
                        user.username
                    )),
                }
            }
            Err(e) => Check::new(
                "gitlab.role",
                Status::Warn,
                format!("not checked: {e}"),
                needed,
            ),
        },
        Err(e) if e.is_not_found() => Check::new(
            "gitlab.role",
            Status::Fail,
            format!("namespace {namespace} does not exist (or the token cannot see it)"),
            needed,
        )
        .fix(format!(
            "create the group {namespace} first, or use --project {}/<name>",
            user.username
        )),
        Err(e) => Check::new(
            "gitlab.role",
            Status::Warn,
            format!("not checked: {e}"),
            needed,
        ),
    }
}

fn pipeline_variables(
    plan: &PreflightPlan,
    existing: Option<&glrunner_gitlab_client::Project>,
) -> Check {
    let setting = existing.and_then(|p| p.ci_pipeline_variables_minimum_override_role.clone());
    let described = setting
        .as_deref()
        .map(|r| format!("the project's minimum role for pipeline variables is {r}"))
        .unwrap_or_else(|| "the project's pipeline-variables setting is unknown".to_owned());
    if !plan.pipeline_variables {
        return Check::new(
            "gitlab.pipeline-variables",
            Status::Ok,
            format!("glrunner passes no pipeline variables ({described})"),
            "none",
        );
    }
    let needed = "a project that lets the token's role set pipeline variables";
    let fix = "set Settings > CI/CD > Variables > \"Minimum role to use pipeline variables\" to Developer, or run without variables";
    match setting.as_deref() {
        Some(role) => match variables_role_level(role) {
            None => Check::new("gitlab.pipeline-variables", Status::Fail, described, needed)
                .fix(fix),
            Some(level) => Check::new(
                "gitlab.pipeline-variables",
                Status::Ok,
                format!("{described} ({} or above may set them)", access_level::name(level)),
                needed,
            ),
        },
        None if existing.is_none() => Check::new(
            "gitlab.pipeline-variables",
            Status::Warn,
            "the project does not exist yet; GitLab.com refuses pipeline variables in new namespaces since 17.7",
            needed,
        )
        .fix(fix),
        None => Check::new("gitlab.pipeline-variables", Status::Ok, described, needed),
    }
}

/// The namespace's CI limits as the load test will meet them ([`PlanLimits`]): GitLab.com's
/// plan table when GitLab names the plan; a self-managed instance's own limits (none by
/// default) otherwise; GitLab.com Free's, the lowest, when GitLab.com hides the plan from the
/// token's user (it shows it only to those who can administer the namespace).
pub async fn plan_limits(
    gitlab: &dyn GitLabApi,
    gitlab_url: &str,
    project_path: &str,
) -> Result<PlanLimits, String> {
    let root = project_path.split('/').next().unwrap_or(project_path);
    let gitlab_com = url::Url::parse(gitlab_url).is_ok_and(|u| is_gitlab_com(&u));
    let namespace = gitlab
        .get_namespace(root)
        .await
        .map_err(|e| e.to_string())?;
    Ok(PlanLimits::of(&namespace, gitlab_com))
}

/// How many waves of pipelines of `per_pipeline` jobs `total` jobs take when the jobs of the
/// active pipelines together must stay below `active` (at least one pipeline per wave).
fn waves(total: u32, per_pipeline: u32, active: u32) -> u32 {
    let per_pipeline = per_pipeline.max(1);
    let pipelines = total.div_ceil(per_pipeline);
    let per_wave = (active.saturating_sub(1) / per_pipeline).max(1);
    pipelines.div_ceil(per_wave)
}

async fn pipeline_size(plan: &PreflightPlan, gitlab: &dyn GitLabApi, path: &str) -> Check {
    const ID: &str = "gitlab.pipeline-size";
    let jobs = plan.pipeline_jobs;
    let total = plan.fleet.total_jobs;
    let needed = format!("{jobs} jobs in one pipeline");
    let root = path.split('/').next().unwrap_or(path);
    let limits = match plan_limits(gitlab, &plan.gitlab_url, path).await {
        Ok(limits) => limits,
        Err(e) => return Check::new(ID, Status::Warn, format!("not checked: {e}"), needed),
    };
    let (limits, plan_name, judged_by_free) = match &limits.source {
        LimitsSource::SelfManaged => {
            return Check::new(
                ID,
                Status::Ok,
                format!(
                    "namespace {root} reports no GitLab.com plan: the instance's own limit applies (ci_pipeline_size, unlimited by default)"
                ),
                needed,
            );
        }
        LimitsSource::GitLabCom { plan } => {
            (limits.clone(), format!("GitLab.com's {plan} plan"), None)
        }
        LimitsSource::Unknown { reason } => (
            PlanLimits::gitlab_com_free(),
            "GitLab.com's Free plan (the lowest)".to_string(),
            Some(reason.clone()),
        ),
    };
    let about = match &judged_by_free {
        Some(reason) => {
            format!("the plan of namespace {root} is unknown ({reason}); judged by {plan_name}")
        }
        None => format!("namespace {root} is on {plan_name}"),
    };
    // Below Free's limits a run fits every plan; above them an unknown plan may still allow it.
    let refused = if judged_by_free.is_some() {
        Status::Warn
    } else {
        Status::Fail
    };
    let higher = "use a namespace on a plan with a higher limit (Premium 1,500 per pipeline, Ultimate 2,000; GitLab.com CI/CD settings)";
    if let Some(limit) = limits.jobs_per_pipeline
        && jobs > limit
    {
        return Check::new(
            ID,
            refused,
            format!("{about}: at most {limit} jobs per pipeline"),
            needed,
        )
        .fix(format!("run at most {limit} --jobs, or {higher}"));
    }
    if let Some(active) = limits.active_jobs {
        // GitLab refuses a pipeline once the alive pipelines' jobs and its own reach the limit
        // (`>=`: Limit::ActiveJobs, lib/gitlab/ci/pipeline/chain/limit/active_jobs.rb).
        if jobs >= active {
            return Check::new(
                ID,
                refused,
                format!(
                    "{about}: fewer than {active} jobs in the project's active pipelines together (GitLab answers \"{}\")",
                    glrunner_gitlab_client::limits::ACTIVE_JOBS_EXCEEDED
                ),
                needed,
            )
            .fix(format!("run at most {} --jobs, or {higher}", active - 1));
        }
        if total >= active {
            let waves = waves(total, jobs, active);
            return Check::new(
                ID,
                Status::Warn,
                format!(
                    "{about}: fewer than {active} jobs in active pipelines together, so the {total} jobs run as {waves} waves of pipelines one after another, reported as one run"
                ),
                needed,
            )
            .fix(format!("expect about {waves}x the makespan, or {higher}"));
        }
    }
    let per = limits.jobs_per_pipeline.map_or_else(
        || "no per-pipeline limit".to_string(),
        |l| format!("up to {l} jobs per pipeline"),
    );
    Check::new(ID, Status::Ok, format!("{about}: {per}"), needed)
}

/// How long `helm version` may take.
const HELM_VERSION_TIMEOUT: Duration = Duration::from_secs(10);

async fn helm_tool(helm: &std::path::Path) -> Check {
    let needed = "helm 3.8 or newer";
    let run = tokio::process::Command::new(helm)
        .args(["version", "--short"])
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(HELM_VERSION_TIMEOUT, run).await {
        Ok(Ok(out)) if out.status.success() => {
            let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if !version.starts_with('v') {
                return Check::new(
                    "tools.helm",
                    Status::Warn,
                    format!(
                        "{} answered `version --short` with {version:?}, not a helm version",
                        helm.display()
                    ),
                    needed,
                )
                .fix("pass --helm /path/to/helm (helm 3.8+)");
            }
            Check::new(
                "tools.helm",
                Status::Ok,
                format!("{} is {version}", helm.display()),
                needed,
            )
        }
        Ok(Ok(out)) => Check::new(
            "tools.helm",
            Status::Fail,
            format!(
                "{} version failed: {}",
                helm.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            needed,
        )
        .fix("install helm 3.8+ or pass --helm /path/to/helm"),
        Ok(Err(e)) => Check::new(
            "tools.helm",
            Status::Fail,
            format!("cannot run {}: {e}", helm.display()),
            needed,
        )
        .fix("install helm 3.8+ or pass --helm /path/to/helm"),
        Err(_) => Check::new(
            "tools.helm",
            Status::Fail,
            format!(
                "{} version did not answer within {HELM_VERSION_TIMEOUT:?}",
                helm.display()
            ),
            needed,
        ),
    }
}

/// Whether helm's credentials work here: for a kubeconfig the user brought, every program its
/// exec plugin runs (`aws eks get-token`, ...) must be on PATH; for an EKS cluster glrunner hands
/// helm a per-call kubeconfig whose exec plugin is glrunner itself, and signs a token now.
async fn helm_credentials(
    plan: &PreflightPlan,
    tokens: Option<&glrunner_infra::kubeconfig::EksTokenGenerator>,
) -> Check {
    use crate::ClusterSource;
    let needed =
        "credentials helm can use without programs that are missing here (such as the aws CLI)";
    match &plan.cluster {
        ClusterSource::Kubeconfig { path, context } => {
            let search_path = std::env::var_os("PATH");
            kubeconfig_credentials(path, context.as_deref(), search_path.as_deref(), needed)
        }
        ClusterSource::Provisioned | ClusterSource::Eks { .. } => {
            let Some(tokens) = tokens else {
                return Check::new(
                    "tools.helm-credentials",
                    Status::Warn,
                    "not checked: no AWS credentials to sign EKS tokens with",
                    needed,
                );
            };
            let cluster = match &plan.cluster {
                ClusterSource::Eks { name } => name.clone(),
                _ => plan.spec.stack.to_string(),
            };
            token_kubeconfig_credentials(tokens, &cluster, needed).await
        }
    }
}

async fn token_kubeconfig_credentials(
    tokens: &glrunner_infra::kubeconfig::EksTokenGenerator,
    cluster: &str,
    needed: &str,
) -> Check {
    let fail = |found: String| {
        Check::new("tools.helm-credentials", Status::Fail, found, needed).fix(
            "configure AWS credentials glrunner can load (AWS_PROFILE, aws sso login, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)",
        )
    };
    // The plugin signs with the same generator and credentials: one token now proves it can.
    if let Err(e) = tokens.token(cluster).await {
        return fail(format!("glrunner cannot sign an EKS token for helm: {e}"));
    }
    // The same kubeconfig helm gets on every call, for a stand-in endpoint.
    let access = glrunner_infra::ClusterAccess {
        name: cluster.to_owned(),
        arn: String::new(),
        endpoint: "https://preflight.invalid".into(),
        certificate_authority: String::new(),
        fargate_profiles: Vec::new(),
        oidc_issuer: None,
    };
    let program = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            return fail(format!(
                "cannot find this program's own path for helm's credential plugin: {e}"
            ));
        }
    };
    let plugin = glrunner_infra::kubeconfig::ExecPlugin {
        program,
        region: tokens.region().to_owned(),
        token_lifetime: tokens.lifetime(),
    };
    let file = match glrunner_infra::kubeconfig::HelmKubeconfig::new(&access, &plugin) {
        Ok(f) => f,
        Err(e) => return fail(format!("cannot write helm's kubeconfig: {e}")),
    };
    let exec_plugins: Vec<String> = match kube::config::Kubeconfig::read_from(file.path()) {
        Ok(kc) => kc
            .auth_infos
            .iter()
            .filter_map(|a| a.auth_info.as_ref()?.exec.as_ref()?.command.clone())
            .collect(),
        Err(e) => return fail(format!("helm's kubeconfig does not parse: {e}")),
    };
    // The plugin must be this very program (it signs with the same generator), present and
    // executable: client-go runs it for every token.
    let own = plugin.program.display().to_string();
    if exec_plugins != [own.clone()] || !plugin.program.is_file() {
        return Check::new(
            "tools.helm-credentials",
            Status::Fail,
            format!(
                "helm's kubeconfig runs {} for credentials, not glrunner's own {own}",
                exec_plugins.join(", ")
            ),
            needed,
        );
    }
    let search_path = std::env::var_os("PATH");
    let aws = find_program("aws", search_path.as_deref()).map_or_else(
        || "the aws CLI is not installed, and not needed".to_owned(),
        |p| format!("the aws CLI at {} is not used", p.display()),
    );
    Check::new(
        "tools.helm-credentials",
        Status::Ok,
        format!(
            "helm's per-call kubeconfig runs glrunner itself ({own}) as its exec credential plugin, \
             which signs EKS tokens as they expire; no token on disk; {aws}"
        ),
        needed,
    )
}

/// The helm-credentials check of a kubeconfig the user brought, with programs looked up in
/// `search_path` (a `PATH` value).
pub fn kubeconfig_credentials(
    path: &std::path::Path,
    context: Option<&str>,
    search_path: Option<&std::ffi::OsStr>,
    needed: &str,
) -> Check {
    let id = "tools.helm-credentials";
    let kubeconfig = match kube::config::Kubeconfig::read_from(path) {
        Ok(k) => k,
        Err(e) => {
            return Check::new(
                id,
                Status::Fail,
                format!("cannot read --kubeconfig {}: {e}", path.display()),
                needed,
            )
            .fix("pass a readable kubeconfig file");
        }
    };
    let Some(context_name) = context
        .map(str::to_owned)
        .or_else(|| kubeconfig.current_context.clone())
    else {
        return Check::new(
            id,
            Status::Fail,
            format!("{} has no current context", path.display()),
            needed,
        )
        .fix("pass --context NAME");
    };
    let user = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.as_ref()?.user.clone());
    let Some(user) = user else {
        return Check::new(
            id,
            Status::Fail,
            format!(
                "{}: context {context_name:?} is missing or names no user",
                path.display()
            ),
            needed,
        )
        .fix("pass --context with a context that has a user");
    };
    let exec = kubeconfig
        .auth_infos
        .iter()
        .find(|a| a.name == user)
        .and_then(|a| a.auth_info.as_ref()?.exec.clone());
    let Some(exec) = exec else {
        return Check::new(
            id,
            Status::Ok,
            format!(
                "user {user:?} of context {context_name:?} has its credentials in the kubeconfig: helm runs no credential plugin"
            ),
            needed,
        );
    };
    let command = exec.command.unwrap_or_default();
    let args = exec.args.unwrap_or_default().join(" ");
    match find_program(&command, search_path) {
        Some(found) => Check::new(
            id,
            Status::Ok,
            format!(
                "user {user:?} gets credentials from `{command} {args}`; {command} is {}",
                found.display()
            ),
            needed,
        ),
        None => {
            let fix = if command == "aws" || command.ends_with("/aws") {
                "install the aws CLI, or for an EKS cluster use --cluster NAME (glrunner then signs helm's tokens itself, no aws CLI)".to_owned()
            } else {
                format!("install {command}, or use a kubeconfig whose user has a token")
            };
            Check::new(
                id,
                Status::Fail,
                format!(
                    "user {user:?} gets credentials from `{command} {args}`, but {command} is not on PATH"
                ),
                needed,
            )
            .fix(fix)
        }
    }
}

/// `program` as a path, or found in `search_path` (a `PATH` value).
fn find_program(program: &str, search_path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    if program.is_empty() {
        return None;
    }
    if program.contains('/') {
        let path = PathBuf::from(program);
        return path.is_file().then_some(path);
    }
    std::env::split_paths(search_path?)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn fleet_warnings(fleet: &FleetPlan) -> Vec<Check> {
    fleet
        .warnings
        .iter()
        .filter_map(|w| match w {
            FleetWarning::DockerHubImage { image, pulls } => Some(
                Check::new(
                    "images.docker-hub",
                    Status::Warn,
                    format!("{image} comes from Docker Hub; {pulls} Fargate pods pull it at once"),
                    "an image registry without pull rate limits",
                )
                .fix("use the ECR Public mirror, e.g. public.ecr.aws/docker/library/<image>"),
            ),
            FleetWarning::FargateRounding(r) => Some(
                Check::new(
                    "fargate.rounding",
                    Status::Warn,
                    r.to_string(),
                    format!("requests that fit {}", r.near_miss.smaller),
                )
                .fix(format!("set {} to {}", r.field, r.fits)),
            ),
            // The quota check above reads the quota itself.
            _ => None,
        })
        .collect()
}

fn budget_check(projection: &CostProjection, budget: f64) -> Check {
    let found = format!("projected ${:.4}", projection.total_usd);
    let needed = format!("at most the budget of ${budget:.4}");
    if projection.total_usd > budget {
        Check::new("cost.budget", Status::Fail, found, needed).fix(
            "raise --budget, or plan fewer --jobs / smaller pods (the projection lists each line)",
        )
    } else {
        Check::new("cost.budget", Status::Ok, found, needed)
    }
}

#[cfg(test)]
mod tests;
