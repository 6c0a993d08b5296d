//! The conformance suite and timing behaviour on the in-memory cloud (paused tokio clock).

use std::time::Duration;

use glrunner_infra::conformance::{self, Capabilities};
use glrunner_infra::memory::InMemoryCloud;
use glrunner_infra::resource::{CreateRequest, ResourceKind, ResourceTags};
use glrunner_infra::spec::{FargateSelector, NatMode, StackName, StackSpec};
use glrunner_infra::{Engine, Error, WaitPolicy};

fn spec(name: &str) -> StackSpec {
    StackSpec::new(StackName::new(name).unwrap(), "us-east-1")
}

#[tokio::test(start_paused = true)]
async fn network_lifecycle() {
    let cloud = InMemoryCloud::default();
    conformance::network_lifecycle(
        &cloud,
        &StackName::new("net").unwrap(),
        Capabilities {
            vpc_dependency_check: true,
        },
    )
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn cluster_lifecycle() {
    let cloud = InMemoryCloud::default();
    conformance::cluster_lifecycle(
        &cloud,
        &cloud,
        &StackName::new("clu").unwrap(),
        &WaitPolicy::default(),
    )
    .await
    .unwrap();
    assert!(
        cloud
            .all_resources()
            .iter()
            .all(|r| r.kind == ResourceKind::NatGateway),
        "{:?}",
        cloud.all_resources()
    );
}

#[tokio::test(start_paused = true)]
async fn provision_converges_and_teardown_leaves_nothing() {
    let cloud = InMemoryCloud::default();
    for nat in [NatMode::Single, NatMode::PerAz] {
        let mut spec = spec("conv");
        spec.network.nat = nat;
        spec.network.az_count = 3;
        conformance::provision_converges_and_teardown_leaves_nothing(
            &cloud,
            &cloud,
            &spec,
            &WaitPolicy::default(),
        )
        .await
        .unwrap();
    }
    // EKS's ENIs and cluster security group were swept too: nothing at all is left.
    assert!(
        cloud.all_resources().iter().all(|r| !r.state.is_present()),
        "{:?}",
        cloud.all_resources()
    );
}

#[tokio::test(start_paused = true)]
async fn interrupted_provision_converges() {
    let cloud = InMemoryCloud::default();
    conformance::interrupted_provision_converges(
        &cloud,
        &cloud,
        &spec("crash"),
        &WaitPolicy::default(),
    )
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn dry_run_mutates_nothing() {
    let cloud = InMemoryCloud::default();
    let plan = conformance::dry_run_mutates_nothing(&cloud, &cloud, &spec("dry"))
        .await
        .unwrap();
    assert_eq!(plan.steps.len(), 16);
    assert!(cloud.mutating_calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn apply_takes_the_published_time_on_the_critical_path() {
    let cloud = InMemoryCloud::default();
    let spec = spec("timing");
    let plan = glrunner_infra::plan_stack(&spec, &cloud).await.unwrap();
    let report = Engine::new(&cloud, &cloud).apply(&plan).await.unwrap();
    // cluster 12 min + Fargate profile 3 min + CoreDNS 1 min, plus poll granularity.
    let critical = 16.0 * 60.0;
    assert!(
        report.makespan_s >= critical && report.makespan_s < critical + 120.0,
        "makespan {}",
        report.makespan_s
    );
    let nat = report
        .steps
        .iter()
        .find(|s| s.key == "nat/us-east-1a")
        .unwrap();
    let cluster = report.steps.iter().find(|s| s.key == "cluster").unwrap();
    assert!(
        nat.finished_s < cluster.finished_s,
        "the NAT wait hides behind the control plane"
    );
    assert!(
        cluster.started_s < 60.0,
        "the cluster starts right after its subnets and role, not after the NAT"
    );
}

#[tokio::test(start_paused = true)]
async fn fargate_profile_operations_are_serialized_and_retried() {
    let cloud = InMemoryCloud::default();
    let stack = StackName::new("serial").unwrap();
    let tags = |key: &str| ResourceTags {
        stack: stack.to_string(),
        key: key.into(),
        extra: Default::default(),
    };
    let plan = glrunner_infra::plan_stack(&spec("serial"), &cloud)
        .await
        .unwrap();
    Engine::new(&cloud, &cloud).apply(&plan).await.unwrap();
    let role = glrunner_infra::ClusterProvisioner::describe(
        &cloud,
        ResourceKind::IamRole,
        "serial-fargate-pod-execution",
    )
    .await
    .unwrap()
    .unwrap();
    let subnets: Vec<String> = glrunner_infra::NetworkProvisioner::discover(&cloud, &stack)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.key.starts_with("subnet/private"))
        .map(|r| r.id)
        .collect();
    let profile = |name: &str| CreateRequest::FargateProfile {
        cluster: "serial".into(),
        name: name.into(),
        pod_execution_role_arn: role.arn.clone().unwrap(),
        subnet_ids: subnets.clone(),
        selectors: vec![FargateSelector::namespace(name)],
    };
    glrunner_infra::ClusterProvisioner::create(&cloud, &profile("extra-a"), &tags("extra-a"))
        .await
        .unwrap();
    let busy =
        glrunner_infra::ClusterProvisioner::create(&cloud, &profile("extra-b"), &tags("extra-b"))
            .await
            .unwrap_err();
    assert!(
        matches!(busy, Error::Conflict { ref message, .. } if message.contains("ResourceInUseException")),
        "{busy}"
    );
    // Teardown deletes both profiles one at a time, retrying while the cluster is busy.
    let start = tokio::time::Instant::now();
    let report = Engine::new(&cloud, &cloud).teardown(&stack).await.unwrap();
    assert!(report.leftovers.is_empty());
    let profiles = report
        .deleted
        .iter()
        .filter(|r| r.kind == ResourceKind::FargateProfile)
        .count();
    assert_eq!(profiles, 2);
    // Two profile deletions at 3 min each, strictly one after the other, plus the cluster's 8.
    assert!(
        start.elapsed() >= Duration::from_secs(14 * 60),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn teardown_without_sweeping_eks_enis_would_be_blocked() {
    // Deleting the subnets while EKS's ENIs remain fails with DependencyViolation: the reason
    // the sweep exists and runs before the subnets.
    let cloud = InMemoryCloud::default();
    let spec = spec("orphan");
    let plan = glrunner_infra::plan_stack(&spec, &cloud).await.unwrap();
    Engine::new(&cloud, &cloud).apply(&plan).await.unwrap();
    let subnet = glrunner_infra::NetworkProvisioner::discover(&cloud, &spec.stack)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.key.starts_with("subnet/private"))
        .unwrap();
    let err = glrunner_infra::NetworkProvisioner::delete(&cloud, &subnet)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DependencyViolation { .. }), "{err}");
    Engine::new(&cloud, &cloud)
        .teardown(&spec.stack)
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn leftovers_fail_the_teardown_and_are_named() {
    use glrunner_infra::conformance::Instrumented;
    let cloud = InMemoryCloud::default();
    let spec = spec("left");
    let plan = glrunner_infra::plan_stack(&spec, &cloud).await.unwrap();
    Engine::new(&cloud, &cloud).apply(&plan).await.unwrap();
    // A wrapper that refuses to delete the VPC.
    struct KeepVpc<'a>(Instrumented<'a>);
    #[async_trait::async_trait]
    impl glrunner_infra::NetworkProvisioner for KeepVpc<'_> {
        async fn availability_zones(&self) -> glrunner_infra::Result<Vec<String>> {
            glrunner_infra::NetworkProvisioner::availability_zones(&self.0).await
        }
        async fn discover(
            &self,
            s: &StackName,
        ) -> glrunner_infra::Result<Vec<glrunner_infra::Resource>> {
            glrunner_infra::NetworkProvisioner::discover(&self.0, s).await
        }
        async fn create(
            &self,
            r: &CreateRequest,
            t: &ResourceTags,
        ) -> glrunner_infra::Result<glrunner_infra::Resource> {
            glrunner_infra::NetworkProvisioner::create(&self.0, r, t).await
        }
        async fn describe(
            &self,
            k: ResourceKind,
            id: &str,
        ) -> glrunner_infra::Result<Option<glrunner_infra::Resource>> {
            glrunner_infra::NetworkProvisioner::describe(&self.0, k, id).await
        }
        async fn delete(&self, r: &glrunner_infra::Resource) -> glrunner_infra::Result<()> {
            if r.kind == ResourceKind::Vpc {
                return Err(Error::PermissionDenied {
                    action: "delete VPC".into(),
                    message: "test refuses".into(),
                });
            }
            glrunner_infra::NetworkProvisioner::delete(&self.0, r).await
        }
    }
    let keep = KeepVpc(Instrumented::new(&cloud, &cloud));
    let err = Engine::new(&keep, &cloud)
        .with_waits(WaitPolicy::default())
        .teardown(&spec.stack)
        .await
        .unwrap_err();
    match err {
        Error::Leftovers(left) => assert!(
            left.len() == 1 && left[0].starts_with("VPC vpc-") && left[0].contains("(vpc)"),
            "{left:?}"
        ),
        other => panic!("expected leftovers, got {other}"),
    }
}
