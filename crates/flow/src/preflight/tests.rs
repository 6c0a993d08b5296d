//! The preflight against the in-memory account, network and GitLab.

use std::sync::Arc;

use glrunner_gitlab_client::limits::PlanLimits;
use glrunner_gitlab_client::memory::{InMemoryGitLab, MemoryConfig};
use glrunner_gitlab_client::{GitLabApi as _, GitLabApiExt as _};
use glrunner_infra::account::FARGATE_VCPU;
use glrunner_infra::memory::InMemoryCloud;
use glrunner_infra::{InMemoryAccount, NetworkProvisioner, PriceQuote, StackName, StackSpec};

use super::*;
use crate::FlowConfig;

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
        eks_tokens: None,
        cluster: None,
        connector: None,
        pod_identity: None,
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
    w.account.set_known_quota(FARGATE_VCPU, 8.0);
    let report = run_on(&w, &plan(400)).await;
    assert!(report.failed());
    let c = check(&report, "quota.fargate-vcpu");
    assert_eq!(c.status, Status::Fail, "{c:?}");
    // 400 job pods of 0.25 vCPU (the flow's job pod) + 2 managers of 2 vCPU (sized for 200
    // concurrent jobs each) + 2 CoreDNS pods of 0.25 vCPU.
    assert!(c.needed.contains("= 104.5 vCPUs"), "{}", c.needed);
    assert!(
        c.found.contains(FARGATE_VCPU.quota_code) && c.found.contains(" 8"),
        "{}",
        c.found
    );
    assert!(c.fix.contains("at least 105"), "{}", c.fix);
    assert!(report.failure_summary().contains("quota.fargate-vcpu"));
    // And nothing was created.
    let stack = StackName::new("pre").unwrap();
    assert!(
        NetworkProvisioner::discover(&w.cloud, &stack)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn enough_quota_passes() {
    let w = world();
    w.account.set_known_quota(FARGATE_VCPU, 256.0);
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
    w.account.set_known_quota(FARGATE_VCPU, 1000.0);
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
        .set_known_quota(FARGATE_VCPU, 1000.0)
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
    w.account.set_known_quota(FARGATE_VCPU, 1000.0);
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
    w.account.set_known_quota(FARGATE_VCPU, 1000.0);
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

fn world_with(config: MemoryConfig) -> World {
    World {
        gitlab: Arc::new(InMemoryGitLab::new(config)),
        ..world()
    }
}

fn plan_for(project: &str, jobs: u32) -> PreflightPlan {
    let spec = StackSpec::new(StackName::new("pre").unwrap(), "us-east-1");
    let config = FlowConfig::new(spec, project, jobs);
    PreflightPlan::from_flow(&config, "https://gitlab.example.com/").unwrap()
}

#[tokio::test]
async fn gitlab_checks_pass_against_a_gitlab_that_allows_the_run() {
    let w = world();
    let report = run_on(&w, &plan(400)).await;
    for id in [
        "gitlab.reachable",
        "gitlab.version",
        "gitlab.token",
        "gitlab.token-scopes",
        "gitlab.project",
        "gitlab.role",
        "gitlab.pipeline-variables",
        "gitlab.pipeline-size",
    ] {
        let c = check(&report, id);
        assert_eq!(c.status, Status::Ok, "{c:?}");
    }
    assert!(check(&report, "gitlab.version").found.contains("18.9"));
}

#[tokio::test]
async fn a_gitlab_older_than_15_10_fails_the_version_check() {
    let w = world_with(MemoryConfig::default().with_version("15.9.3-ee"));
    // The double answers like GitLab before 15.10: there is no POST /user/runners.
    let project = w.gitlab.get_or_create_project("sandbox/p").await.unwrap();
    let refused = w
        .gitlab
        .create_runner(&glrunner_gitlab_client::NewRunner::project(
            project.id,
            "r",
            vec!["t".into()],
        ))
        .await
        .unwrap_err();
    assert!(refused.is_not_found(), "{refused}");
    let report = run_on(&w, &plan(10)).await;
    let c = check(&report, "gitlab.version");
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(
        c.found.contains("15.9.3") && c.needed.contains("15.10"),
        "{c:?}"
    );
    assert!(c.fix.contains("upgrade"), "{}", c.fix);
    let w = world_with(MemoryConfig::default().with_version("15.10.0"));
    let report = run_on(&w, &plan(10)).await;
    assert_eq!(check(&report, "gitlab.version").status, Status::Ok);
}

/// GitLab's `API::API` allows `api` on every route; `lib/api/user_runners.rb` only adds
/// `create_runner` as a narrower alternative for `POST /user/runners` (issue 22, item 1): an
/// ordinary `api` token passes, a `create_runner`-only token lacks `api`.
#[tokio::test]
async fn an_api_token_passes_and_a_create_runner_only_token_lacks_api() {
    let w = world_with(MemoryConfig::default().with_token_scopes(&["api"]));
    let project = w.gitlab.get_or_create_project("sandbox/p").await.unwrap();
    w.gitlab
        .create_runner(&glrunner_gitlab_client::NewRunner::project(
            project.id,
            "r",
            vec!["t".into()],
        ))
        .await
        .expect("an api token creates runners");
    let report = run_on(&w, &plan(10)).await;
    let c = check(&report, "gitlab.token-scopes");
    assert_eq!(c.status, Status::Ok, "{c:?}");
    // Without `api`, GitLab refuses `GET /version` already (403 listing the scopes the route
    // takes): the token check fails and names `api`.
    let w = world_with(MemoryConfig::default().with_token_scopes(&["create_runner"]));
    let report = run_on(&w, &plan(10)).await;
    let c = check(&report, "gitlab.token");
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(format!("{} {}", c.found, c.fix).contains("api"), "{c:?}");
}

#[tokio::test]
async fn the_role_on_the_project_or_its_group_must_be_maintainer() {
    use glrunner_gitlab_client::access_level;
    // A new project in a group where the user is a Reporter: fail.
    let w = world_with(MemoryConfig::default().with_access_level(access_level::REPORTER));
    w.gitlab.add_group("team");
    let report = run_on(&w, &plan_for("team/loadtest", 10)).await;
    let c = check(&report, "gitlab.role");
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(c.found.contains("Reporter on group team"), "{}", c.found);
    assert!(c.needed.contains("Maintainer"), "{}", c.needed);
    // An existing project where the user is a Developer: fail, as POST /user/runners would.
    let w = world_with(MemoryConfig::default().with_access_level(access_level::DEVELOPER));
    w.gitlab.add_group("team");
    let project = w
        .gitlab
        .get_or_create_project("team/loadtest")
        .await
        .unwrap();
    assert!(
        w.gitlab
            .create_runner(&glrunner_gitlab_client::NewRunner::project(
                project.id,
                "r",
                vec!["t".into()],
            ))
            .await
            .is_err()
    );
    let c = check(
        &run_on(&w, &plan_for("team/loadtest", 10)).await,
        "gitlab.role",
    )
    .clone();
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(
        c.found.contains("Developer on project team/loadtest"),
        "{}",
        c.found
    );
    // Maintainer on the group: ok; a missing group: fail with the fix.
    let w = world_with(MemoryConfig::default().with_access_level(access_level::MAINTAINER));
    w.gitlab.add_group("team");
    let c = check(
        &run_on(&w, &plan_for("team/loadtest", 10)).await,
        "gitlab.role",
    )
    .clone();
    assert_eq!(c.status, Status::Ok, "{c:?}");
    let c = check(
        &run_on(&w, &plan_for("nowhere/loadtest", 10)).await,
        "gitlab.role",
    )
    .clone();
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(c.fix.contains("create the group nowhere"), "{}", c.fix);
}

#[tokio::test]
async fn refused_pipeline_variables_fail_only_when_the_run_passes_some() {
    let w = world_with(MemoryConfig::default().with_refuse_pipeline_variables(true));
    w.gitlab
        .get_or_create_project("sandbox/loadtest")
        .await
        .unwrap();
    let mut p = plan(10);
    let c = check(&run_on(&w, &p).await, "gitlab.pipeline-variables").clone();
    assert_eq!(c.status, Status::Ok, "{c:?}");
    assert!(c.found.contains("no_one_allowed"), "{}", c.found);
    p.pipeline_variables = true;
    let c = check(&run_on(&w, &p).await, "gitlab.pipeline-variables").clone();
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(c.fix.contains("Minimum role"), "{}", c.fix);
}

#[tokio::test]
async fn the_gitlab_com_jobs_per_pipeline_limit_is_held_against_the_jobs() {
    let w = world_with(MemoryConfig::default().with_plan(Some("free")));
    let c = check(&run_on(&w, &plan(600)).await, "gitlab.pipeline-size").clone();
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(c.found.contains("at most 500"), "{}", c.found);
    assert!(c.needed.contains("600 jobs"), "{}", c.needed);
    assert!(c.fix.contains("at most 500 --jobs"), "{}", c.fix);
    let c = check(&run_on(&w, &plan(400)).await, "gitlab.pipeline-size").clone();
    assert_eq!(c.status, Status::Ok, "{c:?}");
    let w = world_with(MemoryConfig::default().with_plan(Some("ultimate")));
    let c = check(&run_on(&w, &plan(1000)).await, "gitlab.pipeline-size").clone();
    assert_eq!(c.status, Status::Ok, "{c:?}");
    // A plan the table does not know is judged by Free's limits, the lowest: a run within them
    // fits any plan; one above them may not (a warning, as the plan may allow it).
    let w = world_with(MemoryConfig::default().with_plan(Some("platinum-ish")));
    let c = check(&run_on(&w, &plan(10)).await, "gitlab.pipeline-size").clone();
    assert_eq!(c.status, Status::Ok, "{c:?}");
    assert!(c.found.contains("unknown"), "{}", c.found);
    let c = check(&run_on(&w, &plan(600)).await, "gitlab.pipeline-size").clone();
    assert_eq!(c.status, Status::Warn, "{c:?}");
}

/// GitLab.com's Free plan: fewer than 500 jobs in the project's active pipelines together
/// (doc/user/gitlab_com/_index.md "Maximum jobs in active pipelines"; `>=` refuses:
/// lib/gitlab/ci/pipeline/chain/limit/active_jobs.rb), and 500 per pipeline. A single pipeline of
/// 500 reaches it; 800 jobs in pipelines of 400 run as two waves, said before starting.
#[tokio::test]
async fn the_active_jobs_limit_is_said_before_starting_and_waves_are_counted() {
    let w = world_with(MemoryConfig::default().with_plan(Some("free")));
    let c = check(&run_on(&w, &plan(500)).await, "gitlab.pipeline-size").clone();
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(c.found.contains("fewer than 500 jobs"), "{}", c.found);
    assert!(c.fix.contains("at most 499 --jobs"), "{}", c.fix);
    let mut p = plan(800);
    p.pipeline_jobs = 400;
    let c = check(&run_on(&w, &p).await, "gitlab.pipeline-size").clone();
    assert_eq!(c.status, Status::Warn, "{c:?}");
    assert!(c.found.contains("2 waves"), "{}", c.found);
    assert_eq!(
        super::waves(1000, 250, 500),
        4,
        "one 250-job pipeline per wave"
    );
    assert_eq!(
        super::waves(1000, 100, 500),
        3,
        "four 100-job pipelines per wave"
    );
}

/// A self-managed EE instance answers `default` for every namespace: the instance's limits,
/// unlimited unless an administrator set them (was mapped to GitLab.com Free's 500: a false
/// failure). On GitLab.com a hidden plan is judged by Free's limits, never passed blindly.
#[tokio::test]
async fn a_self_managed_default_plan_is_unlimited_and_a_hidden_gitlab_com_plan_is_not_a_pass() {
    let w = world_with(MemoryConfig::default().with_plan(Some("default")));
    let c = check(&run_on(&w, &plan(1000)).await, "gitlab.pipeline-size").clone();
    assert_eq!(c.status, Status::Ok, "{c:?}");
    let hidden = PlanLimits::for_plan(None, true);
    assert!(!hidden.known);
    let limits = super::plan_limits(w.gitlab.as_ref(), "https://gitlab.com", "sandbox/loadtest")
        .await
        .unwrap();
    assert!(!limits.known, "GitLab.com without a plan shown: {limits:?}");
}

async fn gitlab_checks_over(gitlab: &dyn glrunner_gitlab_client::GitLabApi) -> PreflightReport {
    let w = world();
    let sources = PreflightSources {
        account: &w.account,
        network: &w.cloud,
        gitlab: Some(gitlab),
        eks_tokens: None,
        cluster: None,
        connector: None,
        pod_identity: None,
    };
    run(&plan(10), &sources).await
}

#[tokio::test]
async fn an_unreachable_gitlab_and_a_refused_token_fail_with_their_fix() {
    use glrunner_gitlab_client::{HttpGitLab, RetryPolicy, SecretToken};
    // Nothing listens on the discard port.
    let nowhere = HttpGitLab::builder()
        .with_url("http://127.0.0.1:9")
        .with_token(SecretToken::new("glpat-preflight"))
        .with_retry_policy(RetryPolicy::default().with_max_retries(0))
        .build()
        .unwrap();
    let report = gitlab_checks_over(&nowhere).await;
    let c = check(&report, "gitlab.reachable");
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(c.fix.contains("--gitlab-url"), "{}", c.fix);
    assert!(report.checks.iter().all(|c| c.id != "gitlab.token"));

    // GitLab's REST routes over HTTP, with another token than the one sent: 401.
    let server = glrunner_gitlab_client::testing::serve(
        InMemoryGitLab::new(MemoryConfig::default()),
        "glpat-the-right-one",
    )
    .await;
    let refused = HttpGitLab::builder()
        .with_url(server.uri())
        .with_token(SecretToken::new("glpat-preflight"))
        .build()
        .unwrap();
    let report = gitlab_checks_over(&refused).await;
    assert_eq!(check(&report, "gitlab.reachable").status, Status::Ok);
    let c = check(&report, "gitlab.token");
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(c.fix.contains("GITLAB_TOKEN"), "{}", c.fix);
    assert!(
        !format!("{report:?}").contains("glpat-preflight"),
        "no token in the report"
    );

    // The same double with the right token, scopes read over HTTP: an `api`-only token passes,
    // a `create_runner`-only one lacks `api`.
    let server = glrunner_gitlab_client::testing::serve(
        InMemoryGitLab::new(MemoryConfig::default().with_token_scopes(&["api"])),
        "glpat-preflight",
    )
    .await;
    let http = HttpGitLab::builder()
        .with_url(server.uri())
        .with_token(SecretToken::new("glpat-preflight"))
        .build()
        .unwrap();
    let report = gitlab_checks_over(&http).await;
    assert_eq!(check(&report, "gitlab.token-scopes").status, Status::Ok);
    let server = glrunner_gitlab_client::testing::serve(
        InMemoryGitLab::new(MemoryConfig::default().with_token_scopes(&["create_runner"])),
        "glpat-preflight",
    )
    .await;
    let http = HttpGitLab::builder()
        .with_url(server.uri())
        .with_token(SecretToken::new("glpat-preflight"))
        .build()
        .unwrap();
    let report = gitlab_checks_over(&http).await;
    let c = check(&report, "gitlab.token");
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(format!("{} {}", c.found, c.fix).contains("api"), "{c:?}");
}

fn write_kubeconfig(dir: &std::path::Path, user: serde_json::Value) -> std::path::PathBuf {
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "ctx",
        "users": [{"name": "u", "user": user}],
    });
    let path = dir.join("kubeconfig");
    std::fs::write(&path, serde_norway::to_string(&doc).unwrap()).unwrap();
    path
}

#[test]
fn a_kubeconfig_that_runs_the_aws_cli_needs_aws_on_path() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let exec = serde_json::json!({"exec": {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "command": "aws",
        "args": ["eks", "get-token", "--cluster-name", "c"],
    }});
    let kubeconfig = write_kubeconfig(dir.path(), exec);
    let c = kubeconfig_credentials(&kubeconfig, None, Some(bin.as_os_str()), "creds");
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(
        c.found.contains("aws eks get-token") && c.found.contains("not on PATH"),
        "{}",
        c.found
    );
    assert!(
        c.fix.contains("install the aws CLI") && c.fix.contains("--cluster"),
        "{}",
        c.fix
    );
    std::fs::write(bin.join("aws"), "#!/bin/sh\n").unwrap();
    let c = kubeconfig_credentials(&kubeconfig, None, Some(bin.as_os_str()), "creds");
    assert_eq!(c.status, Status::Ok, "{c:?}");
    // A token in the kubeconfig needs no program at all.
    let token = write_kubeconfig(dir.path(), serde_json::json!({"token": "abc"}));
    let c = kubeconfig_credentials(&token, None, None, "creds");
    assert_eq!(c.status, Status::Ok, "{c:?}");
    assert!(
        !c.found.contains("abc"),
        "no token in the report: {}",
        c.found
    );
    // A context that does not exist names the flag to fix it.
    let c = kubeconfig_credentials(&token, Some("other"), None, "creds");
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(c.fix.contains("--context"), "{}", c.fix);
}

#[tokio::test]
async fn helm_on_eks_gets_a_kubeconfig_running_glrunner_itself_as_its_plugin() {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .test_credentials()
        .load()
        .await;
    let tokens = glrunner_infra::kubeconfig::EksTokenGenerator::new(&sdk).unwrap();
    let w = world();
    let mut p = plan(10);
    p.helm = Some("/bin/true".into());
    let sources = PreflightSources {
        account: &w.account,
        network: &w.cloud,
        gitlab: Some(w.gitlab.as_ref()),
        eks_tokens: Some(&tokens),
        cluster: None,
        connector: None,
        pod_identity: None,
    };
    let report = run(&p, &sources).await;
    let c = check(&report, "tools.helm-credentials");
    assert_eq!(c.status, Status::Ok, "{c:?}");
    let own = std::env::current_exe().unwrap();
    assert!(
        c.found.contains("exec credential plugin") && c.found.contains(&own.display().to_string()),
        "{}",
        c.found
    );
    assert!(
        !format!("{report:?}").contains("k8s-aws-v1"),
        "no token in the report"
    );
    // Without credentials to sign with, the check says it could not look.
    let sources = PreflightSources {
        eks_tokens: None,
        ..sources
    };
    let report = run(&p, &sources).await;
    assert_eq!(
        check(&report, "tools.helm-credentials").status,
        Status::Warn
    );
}

fn plan_in(region: &str) -> PreflightPlan {
    let spec = StackSpec::new(StackName::new("pre").unwrap(), region);
    let config = FlowConfig::new(spec, "sandbox/loadtest", 10);
    PreflightPlan::from_flow(&config, "https://gitlab.example.com/").unwrap()
}

#[tokio::test]
async fn a_region_without_fargate_for_eks_fails_naming_region_and_fix() {
    let w = world();
    let c = check(
        &run_on(&w, &plan_in("us-gov-west-1")).await,
        "region.eks-fargate",
    )
    .clone();
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(
        c.found.contains("us-gov-west-1") && c.found.contains("no Fargate"),
        "{}",
        c.found
    );
    assert!(c.fix.contains("--region"), "{}", c.fix);
    let c = check(
        &run_on(&w, &plan_in("eu-west-1")).await,
        "region.eks-fargate",
    )
    .clone();
    assert_eq!(c.status, Status::Ok, "{c:?}");
    let c = check(
        &run_on(&w, &plan_in("xx-nowhere-9")).await,
        "region.eks-fargate",
    )
    .clone();
    assert_eq!(c.status, Status::Warn, "{c:?}");
    assert!(c.found.contains("xx-nowhere-9"), "{}", c.found);
}

#[tokio::test]
async fn a_kubeconfig_cluster_skips_the_aws_account_checks() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(dir.path(), serde_json::json!({"token": "abc"}));
    // An account whose default quota (6 vCPU) and prices would fail and change the run.
    let w = world();
    w.account.set_prices(Some(PriceQuote {
        region: String::new(),
        fargate_vcpu_hour: Some(1.0),
        fargate_gb_hour: Some(1.0),
        eks_cluster_hour: Some(1.0),
    }));
    assert!(run_on(&w, &plan(400)).await.failed());
    let mut p = plan(400);
    p.cluster = crate::ClusterSource::Kubeconfig {
        path: kubeconfig,
        context: None,
    };
    p.helm = Some("/bin/true".into());
    let report = run_on(&w, &p).await;
    assert!(!report.failed(), "{}", report.render_text());
    assert_eq!(check(&report, "aws.account").status, Status::Ok);
    for id in [
        "aws.identity",
        "aws.permissions",
        "quota.fargate-vcpu",
        "stack.existing",
        "region.eks-fargate",
    ] {
        assert!(report.checks.iter().all(|c| c.id != id), "{id} was checked");
    }
    assert!(!report.projection.price_list_api, "no AWS call for prices");
    assert_eq!(check(&report, "tools.helm-credentials").status, Status::Ok);
    assert_eq!(check(&report, "gitlab.token-scopes").status, Status::Ok);
}

#[tokio::test]
async fn a_quota_below_the_peak_queues_job_pods_in_waves_and_warns_until_they_would_time_out() {
    // 400 job pods of 0.25 vCPU + 2 managers of 2 vCPU + 2 CoreDNS pods of 0.25: 104.5 vCPUs at peak. At 60, 222 job pods
    // fit beside the managers and CoreDNS: two waves, the second runs within poll_timeout.
    let p = plan(400);
    let q = p.fargate_queue(60.0).unwrap();
    assert_eq!((q.job_pods_at_once, q.waves), (222, 2));
    assert!(
        q.last_wave_running < p.poll_timeout,
        "{q:?} {:?}",
        p.poll_timeout
    );
    let w = world();
    w.account.set_known_quota(FARGATE_VCPU, 60.0);
    let report = run_on(&w, &p).await;
    let c = check(&report, "quota.fargate-vcpu");
    assert_eq!(c.status, Status::Warn, "{c:?}");
    assert!(c.found.contains("2 waves"), "{}", c.found);
    assert!(!report.failed(), "{}", report.render_text());
    // At 8, 14 fit at once: the last of 29 waves waits far past poll_timeout.
    let q = p.fargate_queue(8.0).unwrap();
    assert_eq!((q.job_pods_at_once, q.waves), (14, 29));
    assert!(q.last_wave_waits > p.poll_timeout);
    // Nothing fits beside the managers and CoreDNS at 4.5 vCPUs.
    assert_eq!(p.fargate_queue(4.5), None);
    w.account.set_known_quota(FARGATE_VCPU, 4.0);
    let c = check(&run_on(&w, &p).await, "quota.fargate-vcpu").clone();
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(c.found.contains("no room for a job pod"), "{}", c.found);
}

fn brought_plan(name: &str) -> PreflightPlan {
    let mut p = plan(10);
    p.cluster = crate::ClusterSource::Eks { name: name.into() };
    p
}

#[tokio::test]
async fn a_brought_eks_cluster_is_checked_only_for_what_its_flow_calls() {
    // A principal that may not create anything, in an account with every VPC in use: provisioning
    // would fail both, a run on a brought cluster needs neither.
    let w = world();
    w.account
        .set_known_quota(FARGATE_VCPU, 1000.0)
        .deny("ec2:CreateVpc")
        .deny("eks:CreateCluster")
        .set_usage(glrunner_infra::AccountUsage {
            vpcs: 5,
            elastic_ips: 5,
            nat_gateways_max_per_az: 5,
            eks_clusters: 100,
        });
    let provisioned = run_on(&w, &plan(10)).await;
    assert_eq!(check(&provisioned, "aws.permissions").status, Status::Fail);
    assert_eq!(check(&provisioned, "quota.vpcs").status, Status::Fail);

    let report = run_on(&w, &brought_plan("shared")).await;
    assert!(!report.failed(), "{}", report.render_text());
    assert_eq!(check(&report, "aws.permissions").status, Status::Ok);
    assert_eq!(check(&report, "quota.fargate-vcpu").status, Status::Ok);
    for id in [
        "quota.vpcs",
        "quota.elastic-ips",
        "quota.nat-per-az",
        "quota.eks-clusters",
        "stack.existing",
        "aws.usage",
    ] {
        assert!(
            report.checks.iter().all(|c| c.id != id),
            "{id} checked for a brought cluster: {}",
            report.render_text()
        );
    }
    let simulated: Vec<(String, Vec<String>)> = w
        .account
        .simulated()
        .into_iter()
        .map(|c| (c.action, c.resources))
        .collect();
    let cluster = "arn:aws:eks:us-east-1:123456789012:cluster/shared".to_string();
    assert_eq!(
        simulated,
        [
            ("eks:DescribeCluster".to_string(), vec![cluster.clone()]),
            ("eks:ListFargateProfiles".to_string(), vec![cluster]),
            (
                "eks:DescribeFargateProfile".to_string(),
                vec!["arn:aws:eks:us-east-1:123456789012:fargateprofile/shared/*".to_string()]
            ),
        ]
    );
    // What the flow does call is still checked.
    w.account.deny("eks:DescribeCluster");
    let report = run_on(&w, &brought_plan("shared")).await;
    let c = check(&report, "aws.permissions");
    assert_eq!(c.status, Status::Fail);
    assert!(
        c.found
            .contains("eks:DescribeCluster on arn:aws:eks:us-east-1:123456789012:cluster/shared"),
        "{}",
        c.found
    );
}

#[tokio::test]
async fn permissions_are_simulated_on_the_stacks_arns_and_name_the_denied_resource() {
    let w = world();
    w.account
        .set_known_quota(FARGATE_VCPU, 1000.0)
        .deny("eks:TagResource");
    let report = run_on(&w, &plan(10)).await;
    let c = check(&report, "aws.permissions");
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(
        c.found
            .contains("eks:TagResource on arn:aws:eks:us-east-1:123456789012:cluster/pre"),
        "{}",
        c.found
    );
    assert!(c.needed.contains("cluster/pre"), "{}", c.needed);
    let simulated = w.account.simulated();
    assert!(
        simulated
            .iter()
            .all(|c| c.action != "sts:GetCallerIdentity"),
        "GetCallerIdentity needs no permission"
    );
    let create_role = simulated
        .iter()
        .find(|c| c.action == "iam:CreateRole")
        .unwrap();
    assert_eq!(
        create_role.resources,
        [
            "arn:aws:iam::123456789012:role/glrunner/pre-us-east-1-eks-cluster",
            "arn:aws:iam::123456789012:role/pre-us-east-1-fargate-pods"
        ]
    );
    assert!(
        create_role
            .context
            .iter()
            .any(|v| v.key == "aws:RequestTag/glrunner.io/stack" && v.values == ["pre"])
    );
}

#[tokio::test]
async fn a_root_or_federated_caller_is_told_to_run_as_an_iam_role() {
    for (arn, kind) in [
        ("arn:aws:iam::123456789012:root", "root user"),
        (
            "arn:aws:sts::123456789012:federated-user/bob",
            "federated user",
        ),
    ] {
        let w = world();
        w.account.set_caller("123456789012", arn);
        let report = run_on(&w, &plan(10)).await;
        let c = check(&report, "aws.identity");
        assert_eq!(c.status, Status::Fail, "{arn}");
        assert!(c.found.contains(kind), "{arn}: {}", c.found);
        assert!(c.fix.contains("run glrunner as an IAM role"), "{}", c.fix);
        assert!(c.fix.contains("assume"), "{}", c.fix);
        assert!(!c.fix.contains("--admin-principal"), "{}", c.fix);
        // Nothing to simulate for a caller that cannot be a principal.
        assert!(report.checks.iter().all(|c| c.id != "aws.permissions"));
    }
    // An SSO session is simulated as its role.
    let w = world();
    w.account.set_caller(
        "123456789012",
        "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Admin_0123/me@example.com",
    );
    let report = run_on(&w, &plan(10)).await;
    let c = check(&report, "aws.permissions");
    assert!(
        c.found
            .starts_with("arn:aws:iam::123456789012:role/AWSReservedSSO_Admin_0123 "),
        "{}",
        c.found
    );
}

/// Hands the preflight `checks` as the clients of any cluster it reaches.
#[derive(Debug)]
struct ChecksConnector(Arc<crate::MemoryClusterChecks>);

#[async_trait::async_trait]
impl crate::ClusterConnector for ChecksConnector {
    async fn connect(
        &self,
        _spec: &StackSpec,
        _target: crate::ClusterTarget<'_>,
    ) -> Result<crate::ClusterClients, crate::Error> {
        Ok(crate::ClusterClients {
            releases: Arc::new(glrunner_runner_chart::InMemoryReleases::new()),
            secrets: Arc::new(glrunner_runner_chart::InMemoryTokenSecrets::new()),
            pods: Arc::new(glrunner_janitor::memory::InMemoryPods::new()),
            clock: Arc::new(glrunner_janitor::SystemClock),
            checks: self.0.clone(),
            janitor: Arc::new(glrunner_janitor::deploy::InMemoryJanitorInstaller::default()),
            job_accounts: Arc::new(glrunner_runner_chart::InMemoryServiceAccounts::default()),
        })
    }
}

/// The preflight with the cluster side too: the stack's cluster is looked for, and its pods
/// read through `checks`.
async fn run_reaching(
    w: &World,
    plan: &PreflightPlan,
    checks: &Arc<crate::MemoryClusterChecks>,
) -> PreflightReport {
    let connector = ChecksConnector(checks.clone());
    let sources = PreflightSources {
        account: &w.account,
        network: &w.cloud,
        gitlab: Some(w.gitlab.as_ref()),
        eks_tokens: None,
        cluster: Some(&w.cloud),
        connector: Some(&connector),
        pod_identity: None,
    };
    run(plan, &sources).await
}

async fn provisioned(w: &World) {
    let spec = StackSpec::new(StackName::new("pre").unwrap(), "us-east-1");
    let engine = glrunner_infra::Engine::new(&w.cloud, &w.cloud);
    let plan_ = glrunner_infra::plan_stack(&spec, &w.cloud).await.unwrap();
    engine.apply(&plan_).await.unwrap();
}

fn fargate_pod(
    namespace: &str,
    name: &str,
    labels: &[(&str, &str)],
    size: &str,
) -> crate::FargatePod {
    crate::FargatePod {
        namespace: namespace.into(),
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        size: glrunner_fargate::FargateSize::from_capacity_provisioned(size).unwrap(),
    }
}

#[tokio::test]
async fn the_peak_counts_the_coredns_pods_at_their_fargate_size() {
    // 400 job pods × 0.25 + 2 managers × 2 = 104, and CoreDNS's two pods of 0.25 vCPU / 0.5 GB
    // (100m and 70Mi + Fargate's 256 MiB, rounded up) run on Fargate too: 104.5.
    let p = plan(400);
    assert_eq!(p.peak_vcpus(), 104.5);
    let w = world();
    w.account.set_known_quota(FARGATE_VCPU, 104.0);
    let c = check(&run_on(&w, &p).await, "quota.fargate-vcpu").clone();
    assert_ne!(
        c.status,
        Status::Ok,
        "104 vCPUs do not hold the peak: {c:?}"
    );
    assert!(
        c.needed
            .contains("2 CoreDNS pods × 0.25 vCPU / 0.5 GB = 104.5 vCPUs"),
        "{}",
        c.needed
    );
    assert!(c.fix.contains("at least 105"), "{}", c.fix);
    w.account.set_known_quota(FARGATE_VCPU, 104.5);
    let c = check(&run_on(&w, &p).await, "quota.fargate-vcpu").clone();
    assert_eq!(c.status, Status::Ok, "{c:?}");
}

#[tokio::test(start_paused = true)]
async fn a_resumed_stack_asks_for_no_second_vpc_elastic_ip_nat_gateway_or_cluster() {
    let w = world();
    provisioned(&w).await;
    // Every quota is used up, the stack's own resources included.
    w.account.set_usage(AccountUsage {
        vpcs: 5,
        elastic_ips: 5,
        nat_gateways_max_per_az: 5,
        eks_clusters: 100,
    });
    let checks = Arc::new(crate::MemoryClusterChecks::default());
    let report = run_reaching(&w, &plan(10), &checks).await;
    for id in [
        "quota.vpcs",
        "quota.elastic-ips",
        "quota.nat-per-az",
        "quota.eks-clusters",
    ] {
        let c = check(&report, id);
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert!(c.needed.contains("stack pre has already"), "{}", c.needed);
    }
    // A new stack in the same account needs one of each, and the account has none left.
    let spec = StackSpec::new(StackName::new("other").unwrap(), "us-east-1");
    let config = FlowConfig::new(spec, "sandbox/loadtest", 10);
    let other = PreflightPlan::from_flow(&config, "https://gitlab.example.com/").unwrap();
    let report = run_reaching(&w, &other, &checks).await;
    for id in [
        "quota.vpcs",
        "quota.elastic-ips",
        "quota.nat-per-az",
        "quota.eks-clusters",
    ] {
        assert_eq!(check(&report, id).status, Status::Fail, "{id}");
    }
}

#[tokio::test(start_paused = true)]
async fn fargate_pods_already_on_the_cluster_hold_their_vcpus_beside_the_peak() {
    let w = world();
    provisioned(&w).await;
    let checks = Arc::new(crate::MemoryClusterChecks::default());
    // Someone else's 4-vCPU pod, and the pods the run's peak already counts: CoreDNS and a
    // runner manager of this stack's releases (replaced, not added to).
    checks.add_fargate_pod(fargate_pod("data", "etl-0", &[], "4vCPU 8GB"));
    for name in ["coredns-a", "coredns-b"] {
        checks.add_fargate_pod(fargate_pod(
            "kube-system",
            name,
            &[("k8s-app", "kube-dns")],
            "0.25vCPU 0.5GB",
        ));
    }
    checks.add_fargate_pod(fargate_pod(
        "gitlab-runner",
        "pre-runner-1-gitlab-runner-abc",
        &[("release", "pre-runner-1")],
        "2vCPU 4GB",
    ));
    let p = plan(10);
    // Room for the peak, but not for the peak and the other pod.
    let quota = p.peak_vcpus() + 2.0;
    w.account.set_known_quota(FARGATE_VCPU, quota);
    assert_eq!(
        check(&run_on(&w, &p).await, "quota.fargate-vcpu").status,
        Status::Ok,
        "without the cluster's pods the peak fits"
    );
    let c = check(&run_reaching(&w, &p, &checks).await, "quota.fargate-vcpu").clone();
    assert_ne!(c.status, Status::Ok, "{c:?}");
    assert!(
        c.found
            .contains("4 in use by 1 other Fargate pod(s) on cluster pre"),
        "{}",
        c.found
    );
    assert!(
        c.fix
            .contains(&format!("at least {}", (p.peak_vcpus() + 4.0).ceil())),
        "{}",
        c.fix
    );
    // With room for both, it passes and still says what is in use.
    w.account.set_known_quota(FARGATE_VCPU, quota + 2.0);
    let c = check(&run_reaching(&w, &p, &checks).await, "quota.fargate-vcpu").clone();
    assert_eq!(c.status, Status::Ok, "{c:?}");
    assert!(c.found.contains("4 in use"), "{}", c.found);
}

#[tokio::test]
async fn the_projection_prices_the_kubernetes_version_the_plan_creates() {
    let w = world();
    let day = jiff::civil::date(2026, 12, 3);
    let mut standard = plan(10);
    standard.priced_on = day;
    standard.spec.cluster.kubernetes_version = "1.35".into();
    let mut extended = standard.clone();
    // 1.34 left standard support on 2026-12-02: $0.60 per cluster-hour, not $0.10.
    extended.spec.cluster.kubernetes_version = "1.34".into();
    let eks = |p: &CostProjection| p.lines[0].usd;
    let cheap = run_on(&w, &standard).await.projection;
    let dear = run_on(&w, &extended).await.projection;
    assert!((eks(&dear) - 6.0 * eks(&cheap)).abs() < 1e-12, "{dear:?}");
    assert!(dear.lines[0].price_source.contains("extended support"));
    // The Price List's standard price does not hide it, and --dry-run's table projection agrees.
    w.account.set_prices(Some(PriceQuote {
        region: String::new(),
        fargate_vcpu_hour: Some(0.04048),
        fargate_gb_hour: Some(0.004445),
        eks_cluster_hour: Some(0.10),
    }));
    let listed = run_on(&w, &extended).await.projection;
    assert_eq!(listed.prices.eks_cluster_hour, 0.60);
    assert_eq!(extended.table_projection().prices.eks_cluster_hour, 0.60);
    assert_eq!(standard.table_projection().prices.eks_cluster_hour, 0.10);
    // A budget between the two prices fails only the extended-support plan.
    let budget = (cheap.total_usd + dear.total_usd) / 2.0;
    extended.budget_usd = Some(budget);
    standard.budget_usd = Some(budget);
    assert_eq!(
        check(&run_on(&w, &standard).await, "cost.budget").status,
        Status::Ok
    );
    assert_eq!(
        check(&run_on(&w, &extended).await, "cost.budget").status,
        Status::Fail
    );
}
