//! The preflight (`doctor`, and `full_flow` before anything billable): a table of checks, each
//! `ok`, `warn` or `fail` with what was found, what is needed and the fix, plus the cost
//! projection and the budget guard.
//!
//! Every check is read-only: the sources are [`AccountInspector`] (STS, IAM simulation,
//! Service Quotas, Price List), [`NetworkProvisioner::discover`] and GitLab reads, so running
//! the preflight against an account creates nothing. The library never prints: it returns a
//! [`PreflightReport`].

pub mod command;
pub mod cost;

use std::path::PathBuf;
use std::time::Duration;

use glrunner_fargate::FargateSize;
use glrunner_gitlab_client::{GitLabApi, ProjectRef};
use glrunner_infra::aws::actions;
use glrunner_infra::{AccountInspector, AccountUsage, NatMode, NetworkProvisioner, StackSpec};
use glrunner_runner_chart::{FleetPlan, FleetWarning};
use serde::Serialize;

pub use cost::{CostComparison, CostInputs, CostProjection, ExpectedDurations, Prices};

/// Service code and quota code of the Fargate On-Demand vCPU quota.
pub const FARGATE_VCPU_QUOTA: (&str, &str) = ("fargate", "L-3032A538");
/// EC2-VPC Elastic IPs.
pub const ELASTIC_IP_QUOTA: (&str, &str) = ("ec2", "L-0263D0A3");
/// VPCs per region.
pub const VPC_QUOTA: (&str, &str) = ("vpc", "L-F678F1CE");
/// NAT gateways per availability zone.
pub const NAT_PER_AZ_QUOTA: (&str, &str) = ("vpc", "L-FE5A380F");
/// EKS clusters per region.
pub const EKS_CLUSTER_QUOTA: (&str, &str) = ("eks", "L-1194D53C");

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

/// What the run will need: derived from the same flags `full_flow` takes.
#[derive(Debug, Clone)]
pub struct PreflightPlan {
    /// The stack (name, region, network, cluster).
    pub spec: StackSpec,
    /// The fleet: releases and their `concurrent`.
    pub fleet: FleetPlan,
    /// A job pod's Fargate size.
    pub job_pod_size: FargateSize,
    /// A runner manager pod's Fargate size.
    pub manager_pod_size: FargateSize,
    /// The GitLab project (path or id); `None` skips the project check.
    pub project: Option<String>,
    /// Modelled durations for the cost projection.
    pub durations: ExpectedDurations,
    /// Abort when the projection exceeds this many USD.
    pub budget_usd: Option<f64>,
    /// The helm binary to check (`None`: no helm needed, e.g. on the sandbox).
    pub helm: Option<PathBuf>,
}

impl PreflightPlan {
    /// The plan `full_flow` would run with `config` against `gitlab_url`: the same fleet plan
    /// and pod sizes. Fails (invalid input) when the fleet cannot be planned.
    pub fn from_flow(config: &crate::flow::FlowConfig, gitlab_url: &str) -> Result<Self, String> {
        let mut template = glrunner_runner_chart::RunnerValues::new(gitlab_url)
            .with_job_namespace(&config.spec.cluster.runner_namespace);
        if let Some(image) = &config.image {
            template = template.with_image(image);
        }
        let request = glrunner_runner_chart::FleetRequest::new(config.jobs)
            .with_max_per_release(config.max_per_release)
            .with_expected_pod_start(config.expected_pod_start)
            .with_values(&template);
        let fleet = FleetPlan::new(&request).map_err(|e| e.to_string())?;
        // The manager is sized for the shard it drives (the largest one bounds the peak).
        let manager = template
            .clone()
            .with_concurrent(fleet.largest_batch())
            .manager_resources();
        let manager_pod_size = glrunner_fargate::quantity::cpu_millis(&manager.cpu)
            .ok()
            .zip(glrunner_fargate::quantity::memory_mib(&manager.memory).ok())
            .and_then(|(c, m)| FargateSize::for_requests(c, m));
        let (Some(job_pod_size), Some(manager_pod_size)) = (request.job_pod_size, manager_pod_size)
        else {
            return Err("the runner values' requests do not fit a Fargate pod".into());
        };
        Ok(Self {
            spec: config.spec.clone(),
            fleet,
            job_pod_size,
            manager_pod_size,
            project: Some(config.project.clone()),
            durations: ExpectedDurations {
                pod_start: config.expected_pod_start,
                ..ExpectedDurations::default()
            },
            budget_usd: None,
            helm: None,
        })
    }

    /// NAT gateways the network needs (each with an Elastic IP).
    pub fn nat_gateways(&self) -> u32 {
        match self.spec.network.nat {
            NatMode::Single => 1,
            NatMode::PerAz => u32::from(self.spec.network.az_count),
        }
    }

    /// Fargate vCPUs at the plan's peak: every job pod at once plus the manager pods.
    pub fn peak_vcpus(&self) -> f64 {
        f64::from(self.fleet.total_jobs) * self.job_pod_size.vcpus()
            + self.fleet.shards.len() as f64 * self.manager_pod_size.vcpus()
    }

    /// The cost projection's inputs.
    pub fn cost_inputs(&self) -> CostInputs {
        CostInputs {
            region: self.spec.region.clone(),
            nat_gateways: self.nat_gateways(),
            manager_pods: u32::try_from(self.fleet.shards.len()).unwrap_or(u32::MAX),
            manager_pod_size: self.manager_pod_size,
            job_pods: self.fleet.total_jobs,
            job_pod_size: self.job_pod_size,
        }
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
    let identity = identity(sources, &plan.spec.region, &mut checks).await;
    if let Some(principal) = &identity {
        checks.push(permissions(sources.account, principal).await);
    }
    let usage = sources.account.usage().await;
    if let Err(e) = &usage {
        checks.push(
            Check::new(
                "region.eks",
                Status::Warn,
                format!("cannot read current usage in {}: {e}", plan.spec.region),
                "ec2:DescribeVpcs/DescribeAddresses/DescribeNatGateways, eks:ListClusters",
            )
            .fix("quota checks below compare the plan alone, without current usage"),
        );
    }
    let usage = usage.ok();
    checks.extend(quotas(plan, sources.account, usage).await);
    checks.push(existing_stack(plan, sources.network).await);
    checks.extend(gitlab(plan, sources.gitlab).await);
    if let Some(helm) = &plan.helm {
        checks.push(helm_tool(helm).await);
    }
    checks.extend(fleet_warnings(&plan.fleet));
    let prices = match sources.account.prices(&plan.spec.region).await {
        Ok(quote) => Prices::from_quote(&plan.spec.region, &quote),
        Err(e) => {
            tracing::info!(error = %e, "Price List API not reachable; using the price tables");
            Prices::table(&plan.spec.region)
        }
    };
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

async fn identity(
    sources: &PreflightSources<'_>,
    region: &str,
    checks: &mut Vec<Check>,
) -> Option<String> {
    match sources.account.caller().await {
        Ok(caller) => {
            if let Err(e) = glrunner_infra::identity::classify_caller(&caller.arn) {
                checks.push(
                    Check::new(
                        "aws.identity",
                        Status::Fail,
                        format!("{} in account {}: {e}", caller.arn, caller.account),
                        "an IAM role or user an EKS access entry can name",
                    )
                    .fix("run as an IAM role or user (or pass --admin-principal)"),
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
            Some(caller.principal_arn)
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

async fn permissions(account: &dyn AccountInspector, principal: &str) -> Check {
    let needed: Vec<String> = actions::required_actions()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let what = format!("{} IAM actions glrunner calls", needed.len());
    match account.simulate(principal, &needed).await {
        Ok(decisions) => {
            let denied: Vec<&str> = decisions
                .iter()
                .filter(|d| !d.allowed())
                .map(|d| d.action.as_str())
                .collect();
            if denied.is_empty() {
                Check::new(
                    "aws.permissions",
                    Status::Ok,
                    format!("{principal} may call all {}", needed.len()),
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
                .fix("grant the denied actions to the principal (or run as one that has them)")
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

/// One quota check: id, (service code, quota code), what the plan needs, current usage, and the
/// need in words.
type QuotaItem = (&'static str, (&'static str, &'static str), f64, f64, String);

async fn quotas(
    plan: &PreflightPlan,
    account: &dyn AccountInspector,
    usage: Option<AccountUsage>,
) -> Vec<Check> {
    let nat = f64::from(plan.nat_gateways());
    let u = usage.unwrap_or_default();
    let peak = plan.peak_vcpus();
    let items: [QuotaItem; 5] = [
        (
            "quota.fargate-vcpu",
            FARGATE_VCPU_QUOTA,
            peak,
            // Fargate usage is not listed here: other workloads' pods count against it too.
            0.0,
            format!(
                "{} job pods × {} + {} manager pods × {} = {peak} vCPUs at peak",
                plan.fleet.total_jobs,
                plan.job_pod_size,
                plan.fleet.shards.len(),
                plan.manager_pod_size
            ),
        ),
        (
            "quota.elastic-ips",
            ELASTIC_IP_QUOTA,
            nat,
            f64::from(u.elastic_ips),
            format!("{nat} Elastic IP(s) for the NAT gateway(s)"),
        ),
        (
            "quota.vpcs",
            VPC_QUOTA,
            1.0,
            f64::from(u.vpcs),
            "1 VPC".into(),
        ),
        (
            "quota.nat-per-az",
            NAT_PER_AZ_QUOTA,
            1.0,
            f64::from(u.nat_gateways_max_per_az),
            "1 NAT gateway per availability zone used".into(),
        ),
        (
            "quota.eks-clusters",
            EKS_CLUSTER_QUOTA,
            1.0,
            f64::from(u.eks_clusters),
            "1 EKS cluster".into(),
        ),
    ];
    let mut checks = Vec::new();
    for (id, (service, code), need, used, needed) in items {
        let check = match account.quota(service, code).await {
            Ok(q) => {
                let used_text = if usage.is_some() && used > 0.0 {
                    format!(", {used} in use")
                } else {
                    String::new()
                };
                let found = format!("{} ({service}/{code}) is {}{used_text}", q.name, q.value);
                if used + need > q.value {
                    Check::new(id, Status::Fail, found, needed).fix(format!(
                        "request an increase of {service}/{code} to at least {} in Service Quotas{}",
                        (used + need).ceil(),
                        if id == "quota.fargate-vcpu" {
                            " (or plan fewer --jobs, or smaller job pods)"
                        } else {
                            " (or free some)"
                        }
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
    let mut checks = Vec::new();
    match gitlab.current_user().await {
        Ok(user) => checks.push(Check::new(
            "gitlab.token",
            Status::Ok,
            format!("token of {} works", user.username),
            "a token with the api and create_runner scopes",
        )),
        Err(e) => {
            checks.push(
                Check::new(
                    "gitlab.token",
                    Status::Fail,
                    format!("GET /user failed: {e}"),
                    "a reachable GitLab and a valid token",
                )
                .fix("check --gitlab-url and GITLAB_TOKEN (a personal access token with api and create_runner)"),
            );
            return checks;
        }
    }
    if let Some(project) = &plan.project {
        let check = match ProjectRef::parse(project) {
            Err(e) => Check::new(
                "gitlab.project",
                Status::Fail,
                e.to_string(),
                "a project path or id",
            )
            .fix("pass --project group/name"),
            Ok(reference) => match gitlab.get_project(&reference).await {
                Ok(p) => Check::new(
                    "gitlab.project",
                    Status::Ok,
                    format!("project {} exists", p.path_with_namespace),
                    "the load-test project, or a namespace to create it in",
                ),
                Err(e) if e.is_not_found() => Check::new(
                    "gitlab.project",
                    Status::Ok,
                    format!("project {project} does not exist yet: the flow creates it"),
                    "the load-test project, or a namespace to create it in",
                ),
                Err(e) => Check::new(
                    "gitlab.project",
                    Status::Fail,
                    format!("cannot read project {project}: {e}"),
                    "read access to the project",
                )
                .fix("use a token of a user with at least the Maintainer role on the project"),
            },
        };
        checks.push(check);
    }
    checks
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
