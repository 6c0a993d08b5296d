//! The preflight against the in-memory account, network and GitLab.

use std::sync::Arc;

use glrunner_gitlab_client::memory::{InMemoryGitLab, MemoryConfig};
use glrunner_infra::memory::InMemoryCloud;
use glrunner_infra::{InMemoryAccount, NetworkProvisioner, PriceQuote, StackName, StackSpec};

use super::*;
use crate::flow::FlowConfig;

fn plan(jobs: u32) -> PreflightPlan {
    let spec = StackSpec::new(StackName::new("pre").unwrap(), "us-east-1");
    let config = FlowConfig::new(spec, "sandbox/loadtest", jobs);
    PreflightPlan::from_flow(&config, "https://gitlab.example.com/").unwrap()
}

struct World {
    account: InMemoryAccount,
    cloud: InMemoryCloud,
    gitlab: Arc<InMemoryGitLab>,
}

fn world() -> World {
    World {
        account: InMemoryAccount::new(),
        cloud: InMemoryCloud::new("us-east-1"),
        gitlab: Arc::new(InMemoryGitLab::new(MemoryConfig::default())),
    }
}

async fn run_on(w: &World, plan: &PreflightPlan) -> PreflightReport {
    let sources = PreflightSources {
        account: &w.account,
        network: &w.cloud,
        gitlab: Some(w.gitlab.as_ref()),
    };
    run(plan, &sources).await
}

fn check<'a>(report: &'a PreflightReport, id: &str) -> &'a Check {
    report
        .checks
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no check {id} in {:#?}", report.checks))
}

#[tokio::test]
async fn a_fargate_quota_below_the_peak_fails_naming_quota_need_and_fix() {
    let w = world();
    w.account.set_quota("fargate", "L-3032A538", 8.0);
    let report = run_on(&w, &plan(400)).await;
    assert!(report.failed());
    let c = check(&report, "quota.fargate-vcpu");
    assert_eq!(c.status, Status::Fail, "{c:?}");
    // 400 job pods of 0.5 vCPU + 2 managers of 2 vCPU (sized for 200 concurrent jobs each).
    assert!(c.needed.contains("= 204 vCPUs"), "{}", c.needed);
    assert!(
        c.found.contains("L-3032A538") && c.found.contains(" 8"),
        "{}",
        c.found
    );
    assert!(c.fix.contains("at least 204"), "{}", c.fix);
    assert!(report.failure_summary().contains("quota.fargate-vcpu"));
    // And nothing was created.
    let stack = StackName::new("pre").unwrap();
    assert!(w.cloud.discover(&stack).await.unwrap().is_empty());
}

#[tokio::test]
async fn enough_quota_passes() {
    let w = world();
    w.account.set_quota("fargate", "L-3032A538", 256.0);
    let report = run_on(&w, &plan(400)).await;
    assert!(!report.failed(), "{}", report.render_text());
    assert_eq!(check(&report, "quota.fargate-vcpu").status, Status::Ok);
    // AWS's default of 6 vCPUs does not hold 400 jobs.
    let report = run_on(&world(), &plan(400)).await;
    assert_eq!(check(&report, "quota.fargate-vcpu").status, Status::Fail);
}

#[tokio::test]
async fn usage_counts_against_the_other_quotas() {
    let w = world();
    w.account.set_quota("fargate", "L-3032A538", 1000.0);
    w.account.set_usage(glrunner_infra::AccountUsage {
        vpcs: 5,
        elastic_ips: 2,
        nat_gateways_max_per_az: 0,
        eks_clusters: 3,
    });
    let report = run_on(&w, &plan(10)).await;
    let vpcs = check(&report, "quota.vpcs");
    assert_eq!(vpcs.status, Status::Fail, "{vpcs:?}");
    assert!(vpcs.found.contains("5 in use"), "{}", vpcs.found);
    assert_eq!(check(&report, "quota.elastic-ips").status, Status::Ok);
    assert_eq!(check(&report, "quota.eks-clusters").status, Status::Ok);
}

#[tokio::test]
async fn a_denied_action_fails_and_a_denied_simulation_warns() {
    let w = world();
    w.account
        .set_quota("fargate", "L-3032A538", 1000.0)
        .deny("eks:CreateCluster")
        .deny("iam:PassRole");
    let report = run_on(&w, &plan(10)).await;
    let c = check(&report, "aws.permissions");
    assert_eq!(c.status, Status::Fail);
    assert!(
        c.found.contains("eks:CreateCluster") && c.found.contains("iam:PassRole"),
        "{}",
        c.found
    );
    w.account.deny_simulation(true);
    let report = run_on(&w, &plan(10)).await;
    let c = check(&report, "aws.permissions");
    assert_eq!(c.status, Status::Warn);
    assert!(c.fix.contains("iam:SimulatePrincipalPolicy"), "{}", c.fix);
    assert!(!report.failed(), "{}", report.render_text());
}

#[tokio::test]
async fn the_budget_guard_fails_when_the_projection_exceeds_it() {
    let w = world();
    w.account.set_quota("fargate", "L-3032A538", 1000.0);
    let mut p = plan(400);
    p.budget_usd = Some(0.01);
    let report = run_on(&w, &p).await;
    let c = check(&report, "cost.budget");
    assert_eq!(c.status, Status::Fail);
    assert!(report.projection.total_usd > 0.01);
    p.budget_usd = Some(report.projection.total_usd + 0.01);
    let report = run_on(&w, &p).await;
    assert_eq!(check(&report, "cost.budget").status, Status::Ok);
    assert!(!report.failed());
}

#[tokio::test]
async fn prices_come_from_the_price_list_api_when_it_answers() {
    let w = world();
    let report = run_on(&w, &plan(10)).await;
    assert!(!report.projection.price_list_api);
    w.account.set_prices(Some(PriceQuote {
        region: String::new(),
        fargate_vcpu_hour: Some(0.08),
        fargate_gb_hour: Some(0.009),
        eks_cluster_hour: Some(0.2),
    }));
    let dearer = run_on(&w, &plan(10)).await;
    assert!(dearer.projection.price_list_api);
    assert!(dearer.projection.total_usd > report.projection.total_usd);
    assert!(dearer.render_text().contains("Price List API"));
}

#[tokio::test(start_paused = true)]
async fn an_existing_stack_is_a_warning_and_gitlab_is_checked() {
    let w = world();
    w.account.set_quota("fargate", "L-3032A538", 1000.0);
    let spec = StackSpec::new(StackName::new("pre").unwrap(), "us-east-1");
    let engine = glrunner_infra::Engine::new(&w.cloud, &w.cloud);
    let plan_ = glrunner_infra::plan_stack(&spec, &w.cloud).await.unwrap();
    engine.apply(&plan_).await.unwrap();
    let report = run_on(&w, &plan(10)).await;
    assert_eq!(check(&report, "stack.existing").status, Status::Warn);
    assert_eq!(check(&report, "gitlab.token").status, Status::Ok);
    assert_eq!(check(&report, "gitlab.project").status, Status::Ok);
}

#[tokio::test]
async fn a_docker_hub_image_is_a_warning_with_the_mirror_to_use() {
    let spec = StackSpec::new(StackName::new("pre").unwrap(), "us-east-1");
    let mut config = FlowConfig::new(spec, "sandbox/loadtest", 400);
    config.image = Some("alpine:3".into());
    let p = PreflightPlan::from_flow(&config, "https://gitlab.example.com/").unwrap();
    let w = world();
    let report = run_on(&w, &p).await;
    let c = check(&report, "images.docker-hub");
    assert_eq!(c.status, Status::Warn);
    assert!(c.fix.contains("public.ecr.aws"), "{}", c.fix);
}
