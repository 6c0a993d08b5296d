//! Bring your own cluster on the sandbox world: the flow skips provisioning and the
//! infrastructure teardown, reads the cluster's Fargate profiles through the (in-memory) EKS API,
//! and refuses a namespace no profile covers, RBAC it lacks, or a cluster without CoreDNS.

use glrunner::flow::{self, ClusterSource, FlowConfig, FlowEvent, Phase, PhaseStatus};
use glrunner::infra::{ResourceKind, StackName, StackSpec};
use glrunner::sandbox::{SandboxConfig, SandboxWorld};

const PROJECT: &str = "sandbox/loadtest";

fn spec(stack: &str) -> StackSpec {
    StackSpec::new(StackName::new(stack).unwrap(), "us-east-1")
}

/// A world with an existing EKS cluster (stack `existing`, kept), as a team would have one.
async fn world_with_a_cluster() -> (SandboxWorld, String) {
    let world = SandboxWorld::new("us-east-1", SandboxConfig::default());
    let existing = FlowConfig::new(spec("existing"), PROJECT, 10).with_phases([Phase::Provision]);
    let _runners = world.start_runners();
    let report = flow::run(&existing, &world.backends(), &|_: &FlowEvent<'_>| {})
        .await
        .unwrap();
    assert!(report.is_success(), "{}", report.render_text());
    (world, existing.spec.cluster.name.clone())
}

async fn infra_count(world: &SandboxWorld) -> usize {
    world.cloud.all_resources().len()
}

#[tokio::test(start_paused = true)]
async fn an_eks_cluster_brought_by_the_user_is_used_and_left_alone() {
    let (world, cluster) = world_with_a_cluster().await;
    let before = infra_count(&world).await;
    let mut config = FlowConfig::new(spec("byo"), PROJECT, 400).with_cluster(ClusterSource::Eks {
        name: cluster.clone(),
    });
    // The runner namespace of the existing cluster's profile.
    config.spec.cluster.runner_namespace = spec("existing").cluster.runner_namespace;
    // Job roles are the stack's: refused on a brought cluster, before anything is done.
    let mut with_roles = config.clone();
    with_roles.spec.job_roles = glrunner::infra::job_roles::group([(
        "deploy".to_owned(),
        "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess".to_owned(),
    )]);
    let refused = flow::run(&with_roles, &world.backends(), &|_: &FlowEvent<'_>| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("--job-role") && refused.contains("brought"),
        "{refused}"
    );
    let _runners = world.start_runners();
    let report = flow::run(&config, &world.backends(), &|_: &FlowEvent<'_>| {})
        .await
        .unwrap();
    assert!(report.is_success(), "{}", report.render_text());
    let provision = &report.phases[0];
    assert_eq!(provision.phase, Phase::Provision);
    assert_eq!(provision.status, PhaseStatus::Skipped);
    assert!(
        provision.summary.contains("brought by the user"),
        "{provision:?}"
    );
    assert!(report.cluster.contains(&format!("EKS cluster {cluster}")));
    assert!(report.render_text().contains("brought by the user"));
    // The registry's rules (the other stack's) serve the brought cluster's images (#24).
    let paths = &report.fleet.as_ref().unwrap().image_paths;
    assert!(
        paths.iter().any(|p| matches!(
            p,
            glrunner::flow::image_cache::ImagePath::Cache { cached, .. }
                if cached.contains("/existing/ecr-public/")
        )),
        "{paths:?}"
    );
    assert_eq!(report.load_test.as_ref().unwrap().total_jobs, 400);
    let teardown = report.teardown.as_ref().unwrap();
    assert_eq!(teardown.infra_deleted, 0, "{teardown:?}");
    assert_eq!(teardown.leftovers.total, 0);
    assert_eq!(
        infra_count(&world).await,
        before,
        "nothing outside the runner namespace was created or deleted"
    );
    assert_eq!(
        world
            .cloud
            .all_resources()
            .iter()
            .filter(|r| r.kind == ResourceKind::Cluster)
            .count(),
        1,
        "the user's cluster is still there"
    );
}

#[tokio::test(start_paused = true)]
async fn a_namespace_outside_every_fargate_selector_is_refused_with_the_selectors_shown() {
    let (world, cluster) = world_with_a_cluster().await;
    let mut config = FlowConfig::new(spec("byo"), PROJECT, 10)
        .with_cluster(ClusterSource::Eks { name: cluster });
    config.spec.cluster.runner_namespace = "not-on-fargate".into();
    let _runners = world.start_runners();
    let report = flow::run(&config, &world.backends(), &|_: &FlowEvent<'_>| {})
        .await
        .unwrap();
    let failure = report.failure.as_ref().expect("refused");
    // Refused before the first GitLab runner is created for a cluster that could not run it.
    assert_eq!(failure.phase, Phase::Runners);
    assert_eq!(world.gitlab.runner_count(), 0);
    assert!(
        failure.error.contains("namespace not-on-fargate"),
        "{failure:?}"
    );
    assert!(failure.error.contains("selectors:"), "{failure:?}");
    assert!(
        failure.error.contains("namespace=kube-system"),
        "{failure:?}"
    );
    assert_eq!(world.releases.runners().len(), 0, "nothing was installed");
}

#[tokio::test(start_paused = true)]
async fn missing_rbac_and_coredns_are_named_before_anything_is_installed() {
    let (world, cluster) = world_with_a_cluster().await;
    let mut config = FlowConfig::new(spec("byo"), PROJECT, 10)
        .with_cluster(ClusterSource::Eks { name: cluster });
    config.spec.cluster.runner_namespace = spec("existing").cluster.runner_namespace;
    let ns = config.spec.cluster.runner_namespace.clone();
    world.cluster_checks.deny("create", "roles", &ns);
    world.cluster_checks.stop_coredns();
    let _runners = world.start_runners();
    let report = flow::run(&config, &world.backends(), &|_: &FlowEvent<'_>| {})
        .await
        .unwrap();
    let failure = report.failure.as_ref().expect("refused");
    assert_eq!(failure.phase, Phase::Runners);
    assert_eq!(world.gitlab.runner_count(), 0);
    assert!(
        failure.error.contains(&format!(
            "create roles.rbac.authorization.k8s.io in namespace {ns}"
        )),
        "{failure:?}"
    );
    assert!(failure.error.contains("CoreDNS"), "{failure:?}");
    assert_eq!(world.releases.runners().len(), 0);
}
