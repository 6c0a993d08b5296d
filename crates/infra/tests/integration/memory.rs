//! The conformance suite and timing behaviour on the in-memory cloud (paused tokio clock).

use std::time::Duration;

use glrunner_infra::conformance::{self, Capabilities};
use glrunner_infra::memory::InMemoryCloud;
use glrunner_infra::resource::{CreateRequest, ResourceKind, ResourceTags};
use glrunner_infra::spec::{FargateSelector, NatMode, StackName, StackSpec};
use glrunner_infra::testing::{Faulty, InfraCall, InfraRule};
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
        &WaitPolicy::default(),
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
    // 16, the OIDC provider, the S3 cache's bucket and role, and the image cache's S3 endpoint,
    // role policy and three rules.
    assert_eq!(plan.steps.len(), 24);
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
        &glrunner_infra::plan::fargate_role_name("serial", "us-east-1"),
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
    let cloud = InMemoryCloud::default();
    let spec = spec("left");
    let plan = glrunner_infra::plan_stack(&spec, &cloud).await.unwrap();
    Engine::new(&cloud, &cloud).apply(&plan).await.unwrap();
    // The network side refuses to delete the VPC.
    let keep = Faulty::new(cloud.clone()).with_rule(
        InfraRule::on(InfraCall::Delete, |_| Error::PermissionDenied {
            action: "delete VPC".into(),
            message: "test refuses".into(),
        })
        .when(|args| args.kind() == Some(ResourceKind::Vpc)),
    );
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

// ---------------------------------------------------------------------------------------------
// What a first run on a real account hits (issue 9), modelled by the in-memory cloud.

/// Progress events, recorded.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<glrunner_infra::ProgressEvent>>);

impl glrunner_infra::Progress for Recorder {
    fn event(&self, event: &glrunner_infra::ProgressEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

impl Recorder {
    fn retries(&self, key: &str) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                glrunner_infra::ProgressEvent::Retrying { key: k, reason, .. } if k == key => {
                    Some(reason.clone())
                }
                _ => None,
            })
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn iam_and_ec2_propagation_are_waited_out_with_progress() {
    // The cluster role is a few seconds old when CreateCluster runs; subnets name a VPC a
    // moment old. Both are refused at first, as on AWS, and retried.
    let cloud = InMemoryCloud::default();
    let spec = spec("fresh");
    let plan = glrunner_infra::plan_stack(&spec, &cloud).await.unwrap();
    let progress = Recorder::default();
    Engine::new(&cloud, &cloud)
        .with_progress(&progress)
        .apply(&plan)
        .await
        .unwrap();
    let cluster = progress.retries("cluster");
    assert!(
        cluster.iter().any(|r| r.contains("could not be assumed")),
        "{cluster:?}"
    );
    let subnet = progress.retries("subnet/private/us-east-1a");
    assert!(subnet.iter().any(|r| r.contains("not found")), "{subnet:?}");
}

#[tokio::test(start_paused = true)]
async fn a_role_that_never_works_fails_after_the_propagation_window() {
    use glrunner_infra::memory::Durations;
    let mut durations = Durations::default();
    durations.iam_propagation = Duration::from_secs(3600);
    let cloud = InMemoryCloud::default().with_durations(durations);
    let plan = glrunner_infra::plan_stack(&spec("stuck"), &cloud)
        .await
        .unwrap();
    let start = tokio::time::Instant::now();
    let err = Engine::new(&cloud, &cloud).apply(&plan).await.unwrap_err();
    assert!(matches!(err, Error::Propagating { .. }), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(5 * 60),
        "bounded: {:?}",
        start.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn zones_are_chosen_by_id_and_refused_zones_are_replanned() {
    use glrunner_infra::AvailabilityZone;
    // This account's us-east-1a is use1-az3, the zone ID EKS refuses.
    let cloud = InMemoryCloud::default().with_zones(vec![
        AvailabilityZone::new("us-east-1a", "use1-az3"),
        AvailabilityZone::new("us-east-1b", "use1-az1"),
        AvailabilityZone::new("us-east-1c", "use1-az2"),
    ]);
    let plan = glrunner_infra::plan_stack(&spec("byid"), &cloud)
        .await
        .unwrap();
    assert!(plan.step("subnet/private/us-east-1a").is_none());
    Engine::new(&cloud, &cloud).apply(&plan).await.unwrap();

    // A zone glrunner does not know EKS refuses: CreateCluster names the valid ones and the
    // stack is planned again on them.
    let cloud = InMemoryCloud::default()
        .with_eks_refused_zone_ids(vec!["use1-az6".into(), "use1-az3".into()]);
    let spec = spec("replan");
    let outcome = glrunner_infra::provision(
        &spec,
        &cloud,
        &cloud,
        &glrunner_infra::StackOptions::default(),
    )
    .await
    .unwrap();
    let azs: Vec<&str> = outcome
        .plan
        .steps
        .iter()
        .filter_map(|s| s.key.strip_prefix("subnet/private/"))
        .collect();
    assert_eq!(azs, ["us-east-1b", "us-east-1c"]);
    let report = Engine::new(&cloud, &cloud)
        .teardown(&spec.stack)
        .await
        .unwrap();
    assert!(report.leftovers.is_empty());
    assert!(
        cloud
            .all_resources()
            .iter()
            .all(|r| r.kind == ResourceKind::NatGateway),
        "the subnets of the refused zone were removed too: {:?}",
        cloud.all_resources()
    );
}

#[tokio::test(start_paused = true)]
async fn the_access_entry_names_the_callers_role_with_its_path() {
    let cloud = InMemoryCloud::default();
    let role = cloud.add_role(
        "/aws-reserved/sso.amazonaws.com/us-east-1/",
        "AWSReservedSSO_Admin_0123",
    );
    let mut spec = spec("sso");
    spec.cluster.admin_principals = vec!["arn:aws:iam::123456789012:user/ops".into()];
    // with_caller on an IAM user adds it to the account; the caller is the SSO session.
    let cloud = cloud
        .with_caller("arn:aws:iam::123456789012:user/ops")
        .with_caller(
            "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Admin_0123/me@example.com",
        );
    let plan = glrunner_infra::plan_stack(&spec, &cloud).await.unwrap();
    let report = Engine::new(&cloud, &cloud).apply(&plan).await.unwrap();
    assert_eq!(
        report.resources[&glrunner_infra::plan::access_entry_key(&role)].id,
        format!("sso/{role}"),
        "the role ARN with its path"
    );
    assert!(
        report.resources["access/principal/arn:aws:iam::123456789012:user/ops"]
            .id
            .ends_with(":user/ops")
    );
}

#[tokio::test(start_paused = true)]
async fn root_and_federated_callers_are_refused_before_anything_is_created() {
    for caller in [
        "arn:aws:iam::123456789012:root",
        "arn:aws:sts::123456789012:federated-user/bob",
    ] {
        let cloud = InMemoryCloud::default().with_caller(caller);
        let plan = glrunner_infra::plan_stack(&spec("who"), &cloud)
            .await
            .unwrap();
        let err = Engine::new(&cloud, &cloud).apply(&plan).await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidInput { ref message, .. } if message.contains("run glrunner as an IAM role")),
            "{caller}: {err}"
        );
        assert!(cloud.mutating_calls().is_empty(), "{caller}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_access_entry_that_already_exists_is_reused() {
    let cloud = InMemoryCloud::default();
    let spec = spec("inuse");
    let plan = glrunner_infra::plan_stack(&spec, &cloud).await.unwrap();
    Engine::new(&cloud, &cloud).apply(&plan).await.unwrap();
    // Someone removed our tags' record of it (another run made it, a lost response...): the
    // entry exists, but no resource carries the step's key any more.
    let entry = glrunner_infra::ClusterProvisioner::describe(
        &cloud,
        ResourceKind::AccessEntry,
        "inuse/arn:aws:iam::123456789012:user/sandbox",
    )
    .await
    .unwrap()
    .unwrap();
    // A discovery that misses the entry (another run created it a moment ago): CreateAccessEntry
    // answers "already in use", which means "exists, reuse it".
    struct MissEntries<'a>(&'a InMemoryCloud);
    #[async_trait::async_trait]
    impl glrunner_infra::ClusterProvisioner for MissEntries<'_> {
        async fn caller_arn(&self) -> glrunner_infra::Result<String> {
            glrunner_infra::ClusterProvisioner::caller_arn(self.0).await
        }
        async fn discover(
            &self,
            s: &StackName,
        ) -> glrunner_infra::Result<Vec<glrunner_infra::Resource>> {
            let all = glrunner_infra::ClusterProvisioner::discover(self.0, s).await?;
            Ok(all
                .into_iter()
                .filter(|r| r.kind != ResourceKind::AccessEntry)
                .collect())
        }
        async fn create(
            &self,
            r: &CreateRequest,
            t: &ResourceTags,
        ) -> glrunner_infra::Result<glrunner_infra::Resource> {
            glrunner_infra::ClusterProvisioner::create(self.0, r, t).await
        }
        async fn describe(
            &self,
            k: ResourceKind,
            id: &str,
        ) -> glrunner_infra::Result<Option<glrunner_infra::Resource>> {
            glrunner_infra::ClusterProvisioner::describe(self.0, k, id).await
        }
        async fn delete(&self, r: &glrunner_infra::Resource) -> glrunner_infra::Result<()> {
            glrunner_infra::ClusterProvisioner::delete(self.0, r).await
        }
        async fn cluster_access(
            &self,
            name: &str,
        ) -> glrunner_infra::Result<glrunner_infra::ClusterAccess> {
            glrunner_infra::ClusterProvisioner::cluster_access(self.0, name).await
        }
        async fn cache_rules(
            &self,
        ) -> glrunner_infra::Result<Vec<glrunner_infra::image_cache::CacheRule>> {
            glrunner_infra::ClusterProvisioner::cache_rules(self.0).await
        }
    }
    let report = Engine::new(&cloud, &MissEntries(&cloud))
        .apply(&plan)
        .await
        .unwrap();
    assert_eq!(
        report.resources
            [&glrunner_infra::plan::access_entry_key("arn:aws:iam::123456789012:user/sandbox")]
            .id,
        entry.id
    );
    assert_eq!(report.created(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_same_stack_in_two_regions_is_two_stacks() {
    let east = InMemoryCloud::default();
    let west = east.in_region("us-west-2");
    let name = StackName::new("twin").unwrap();
    for (cloud, region) in [(&east, "us-east-1"), (&west, "us-west-2")] {
        let spec = StackSpec::new(name.clone(), region);
        let plan = glrunner_infra::plan_stack(&spec, cloud).await.unwrap();
        let report = Engine::new(cloud, cloud).apply(&plan).await.unwrap();
        assert_eq!(report.created(), plan.steps.len(), "nothing shared");
    }
    Engine::new(&east, &east).teardown(&name).await.unwrap();
    let left = Engine::new(&west, &west).existing(&name).await.unwrap();
    for key in [
        "cluster",
        "role/cluster",
        "role/fargate",
        "fargate-profile",
        "vpc",
    ] {
        assert!(left.contains_key(key), "west lost {key}: {left:?}");
    }
    Engine::new(&west, &west).teardown(&name).await.unwrap();
    assert!(
        east.all_resources()
            .iter()
            .all(|r| r.kind == ResourceKind::NatGateway),
        "{:?}",
        east.all_resources()
    );
}

#[tokio::test(start_paused = true)]
async fn teardown_keeps_network_and_roles_while_the_cluster_remains() {
    let cloud = InMemoryCloud::default();
    let spec = spec("stays");
    let plan = glrunner_infra::plan_stack(&spec, &cloud).await.unwrap();
    Engine::new(&cloud, &cloud).apply(&plan).await.unwrap();
    // The cluster side refuses to delete the cluster.
    let refuse = Faulty::new(cloud.clone()).with_rule(
        InfraRule::on(InfraCall::Delete, |_| Error::PermissionDenied {
            action: "delete EKS cluster".into(),
            message: "test refuses".into(),
        })
        .when(|args| args.kind() == Some(ResourceKind::Cluster)),
    );
    let err = Engine::new(&cloud, &refuse)
        .teardown(&spec.stack)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("still exists") && err.contains("kept"),
        "{err}"
    );
    let left = Engine::new(&cloud, &cloud)
        .existing(&spec.stack)
        .await
        .unwrap();
    for key in [
        "cluster",
        "role/cluster",
        "vpc",
        "subnet/private/us-east-1a",
        "igw",
    ] {
        assert!(
            left.contains_key(key),
            "{key} was deleted under a live cluster: {left:?}"
        );
    }
    // Once the cluster can go, a second teardown finishes the job.
    Engine::new(&cloud, &cloud)
        .teardown(&spec.stack)
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_failed_nat_gateway_is_gone_for_teardown_and_replaced_on_apply() {
    let cloud = InMemoryCloud::default();
    let spec = spec("natfail");
    let plan = glrunner_infra::plan_stack(&spec, &cloud).await.unwrap();
    let first = Engine::new(&cloud, &cloud).apply(&plan).await.unwrap();
    let nat = first.resources["nat/us-east-1a"].id.clone();
    assert!(cloud.mark_failed(ResourceKind::NatGateway, &nat));
    let again = Engine::new(&cloud, &cloud).apply(&plan).await.unwrap();
    assert_ne!(
        again.resources["nat/us-east-1a"].id, nat,
        "a new NAT gateway"
    );
    assert!(cloud.mark_failed(
        ResourceKind::NatGateway,
        &again.resources["nat/us-east-1a"].id
    ));
    let report = Engine::new(&cloud, &cloud)
        .teardown(&spec.stack)
        .await
        .unwrap();
    assert!(report.errors.is_empty() && report.leftovers.is_empty());
}

#[tokio::test(start_paused = true)]
async fn drift_of_a_reused_role_is_reported() {
    let cloud = InMemoryCloud::default();
    let spec = spec("drift");
    // A role with the step's key but only one of its two policies (someone detached one).
    let name = glrunner_infra::plan::cluster_role_name("drift", "us-east-1");
    glrunner_infra::ClusterProvisioner::create(
        &cloud,
        &CreateRequest::IamRole {
            name: name.clone(),
            trust: glrunner_infra::resource::RoleTrust::EksCluster,
            policy_arns: vec!["arn:aws:iam::aws:policy/AmazonEKSClusterPolicy".into()],
            source_arn: None,
        },
        &ResourceTags {
            stack: "drift".into(),
            key: "role/cluster".into(),
            extra: Default::default(),
        },
    )
    .await
    .unwrap();
    let plan = glrunner_infra::plan_stack(&spec, &cloud).await.unwrap();
    let report = Engine::new(&cloud, &cloud).apply(&plan).await.unwrap();
    assert!(
        report
            .drift
            .iter()
            .any(|d| d.contains(&name) && d.contains("AmazonEKSVPCResourceController")),
        "{:?}",
        report.drift
    );
}

/// Progress events, recorded.
#[derive(Default)]
struct Recorded(std::sync::Mutex<Vec<String>>);

impl glrunner_infra::Progress for Recorded {
    fn event(&self, event: &glrunner_infra::ProgressEvent) {
        if let glrunner_infra::ProgressEvent::Warning { message, .. } = event {
            self.0.lock().unwrap().push(message.clone());
        }
    }
}

/// Two CI jobs provision the same stack at once from two machines (separate state
/// directories, so the local lock cannot help), on one AWS account; the second starts at
/// once, during the first one's network creation, or while its cluster is being created.
/// Both end with one stack: no error, no resource twice, the second reusing the first's.
#[tokio::test(start_paused = true)]
async fn two_concurrent_runs_of_one_stack_end_with_one_stack() {
    for (n, lag) in [0u64, 1, 20, 300].into_iter().enumerate() {
        let cloud = InMemoryCloud::default();
        let spec = spec(&format!("twins{n}"));
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (said_a, said_b) = (Recorded::default(), Recorded::default());
        let a = glrunner_infra::StackOptions {
            state_dir: Some(dir_a.path().to_path_buf()),
            progress: &said_a,
            ..Default::default()
        };
        let b = glrunner_infra::StackOptions {
            state_dir: Some(dir_b.path().to_path_buf()),
            progress: &said_b,
            ..Default::default()
        };
        let (first, second) = tokio::join!(
            glrunner_infra::provision(&spec, &cloud, &cloud, &a),
            async {
                tokio::time::sleep(Duration::from_secs(lag)).await;
                glrunner_infra::provision(&spec, &cloud, &cloud, &b).await
            },
        );
        let mut by_key: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for r in cloud.all_resources() {
            if !r.key.is_empty() && r.exists() {
                by_key.entry(r.key.clone()).or_default().push(r.id.clone());
            }
        }
        let duplicates: Vec<_> = by_key.iter().filter(|(_, ids)| ids.len() > 1).collect();
        let first = first.unwrap_or_else(|e| panic!("lag {lag}s: first run: {e}"));
        let second = second.unwrap_or_else(|e| panic!("lag {lag}s: second run: {e}"));
        assert!(
            duplicates.is_empty(),
            "lag {lag}s: duplicates: {duplicates:?}"
        );
        let (first, second) = (first.applied.unwrap(), second.applied.unwrap());
        assert_eq!(
            first.created() + second.created(),
            first.steps.len(),
            "lag {lag}s: every resource made once between the two runs"
        );
        if lag <= 20 {
            let said: Vec<String> = [&said_a, &said_b]
                .iter()
                .flat_map(|r| r.0.lock().unwrap().clone())
                .collect();
            assert!(
                said.iter()
                    .any(|m| m.contains("another run is provisioning")),
                "lag {lag}s: the waiting run says so: {said:?}"
            );
        }
        glrunner_infra::teardown(&spec.stack, &spec.region, &cloud, &cloud, &a)
            .await
            .unwrap();
    }
}

/// Right after a NAT gateway is deleted EC2 refuses to release its Elastic IP for a while
/// (memory.rs, `Durations::eip_release_after_nat`); the first teardown still ends with nothing.
#[tokio::test(start_paused = true)]
async fn the_first_teardown_releases_the_eip_of_a_just_deleted_nat_gateway() {
    let cloud = InMemoryCloud::default();
    let spec = spec("eipwait");
    let plan = glrunner_infra::plan_stack(&spec, &cloud).await.unwrap();
    Engine::new(&cloud, &cloud).apply(&plan).await.unwrap();
    let report = Engine::new(&cloud, &cloud)
        .teardown(&spec.stack)
        .await
        .unwrap_or_else(|e| panic!("the first teardown failed: {e}"));
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(
        cloud
            .all_resources()
            .iter()
            .all(|r| r.kind == ResourceKind::NatGateway),
        "left: {:?}",
        cloud.all_resources()
    );
}

/// A cluster provisioner whose discovery always fails (a denied or broken ListClusters).
struct BlindDiscovery<'a>(&'a InMemoryCloud);

#[async_trait::async_trait]
impl glrunner_infra::ClusterProvisioner for BlindDiscovery<'_> {
    async fn caller_arn(&self) -> glrunner_infra::Result<String> {
        glrunner_infra::ClusterProvisioner::caller_arn(self.0).await
    }
    async fn discover(
        &self,
        _: &StackName,
    ) -> glrunner_infra::Result<Vec<glrunner_infra::Resource>> {
        Err(Error::PermissionDenied {
            action: "list EKS clusters".into(),
            message: "not authorized to perform: eks:ListClusters".into(),
        })
    }
    async fn create(
        &self,
        r: &CreateRequest,
        t: &ResourceTags,
    ) -> glrunner_infra::Result<glrunner_infra::Resource> {
        glrunner_infra::ClusterProvisioner::create(self.0, r, t).await
    }
    async fn describe(
        &self,
        k: ResourceKind,
        id: &str,
    ) -> glrunner_infra::Result<Option<glrunner_infra::Resource>> {
        glrunner_infra::ClusterProvisioner::describe(self.0, k, id).await
    }
    async fn delete(&self, r: &glrunner_infra::Resource) -> glrunner_infra::Result<()> {
        glrunner_infra::ClusterProvisioner::delete(self.0, r).await
    }
    async fn cluster_access(
        &self,
        name: &str,
    ) -> glrunner_infra::Result<glrunner_infra::ClusterAccess> {
        glrunner_infra::ClusterProvisioner::cluster_access(self.0, name).await
    }
    async fn cache_rules(
        &self,
    ) -> glrunner_infra::Result<Vec<glrunner_infra::image_cache::CacheRule>> {
        glrunner_infra::ClusterProvisioner::cache_rules(self.0).await
    }
}

/// When teardown cannot tell whether the cluster is gone, it keeps the network and the roles:
/// deleting the NAT gateway, routes and internet gateway under a live cluster strands it.
#[tokio::test(start_paused = true)]
async fn a_failed_cluster_discovery_keeps_the_network_for_the_cluster() {
    let cloud = InMemoryCloud::default();
    let spec = spec("blind");
    let plan = glrunner_infra::plan_stack(&spec, &cloud).await.unwrap();
    Engine::new(&cloud, &cloud).apply(&plan).await.unwrap();
    let err = Engine::new(&cloud, &BlindDiscovery(&cloud))
        .teardown(&spec.stack)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("kept"), "{err}");
    let left = Engine::new(&cloud, &cloud)
        .existing(&spec.stack)
        .await
        .unwrap();
    for key in [
        "cluster",
        "nat/us-east-1a",
        "eip/us-east-1a",
        "igw",
        "rt/private",
        "vpc",
        "role/cluster",
    ] {
        assert!(
            left.contains_key(key),
            "{key} was deleted while the cluster may exist: {:?}",
            left.keys().collect::<Vec<_>>()
        );
    }
    Engine::new(&cloud, &cloud)
        .teardown(&spec.stack)
        .await
        .unwrap();
}

/// Cluster access belongs to a principal: a developer who runs after the CI role provisioned
/// gets an access entry of their own, not the CI role's.
#[tokio::test(start_paused = true)]
async fn a_second_principal_after_the_first_provisioned_gets_its_own_entry() {
    let ci = InMemoryCloud::default();
    let spec = spec("twoheads");
    let plan = glrunner_infra::plan_stack(&spec, &ci).await.unwrap();
    Engine::new(&ci, &ci).apply(&plan).await.unwrap();
    let dev = ci.clone().with_caller("arn:aws:iam::123456789012:user/dev");
    let report = Engine::new(&dev, &dev).apply(&plan).await.unwrap();
    for principal in [
        "arn:aws:iam::123456789012:user/sandbox",
        "arn:aws:iam::123456789012:user/dev",
    ] {
        let id = format!("twoheads/{principal}");
        assert!(
            glrunner_infra::ClusterProvisioner::describe(&ci, ResourceKind::AccessEntry, &id)
                .await
                .unwrap()
                .is_some(),
            "no access entry for {principal}"
        );
    }
    assert_eq!(
        report.created(),
        1,
        "the second run creates the developer's entry alone"
    );
}

/// EKS makes a FARGATE_LINUX access entry for the pod execution role; teardown leaves it to go
/// with the cluster, so the Fargate nodes keep authenticating until their profile is gone.
#[tokio::test(start_paused = true)]
async fn teardown_keeps_the_eks_managed_fargate_entry_until_the_profile_is_gone() {
    let cloud = InMemoryCloud::default();
    let spec = spec("fgentry");
    let plan = glrunner_infra::plan_stack(&spec, &cloud).await.unwrap();
    let applied = Engine::new(&cloud, &cloud).apply(&plan).await.unwrap();
    let role = applied.resources["role/fargate"].arn.clone().unwrap();
    assert!(
        glrunner_infra::ClusterProvisioner::describe(
            &cloud,
            ResourceKind::AccessEntry,
            &format!("fgentry/{role}")
        )
        .await
        .unwrap()
        .is_some(),
        "the profile brought its FARGATE_LINUX entry"
    );
    Engine::new(&cloud, &cloud)
        .teardown(&spec.stack)
        .await
        .unwrap();
    assert!(
        cloud.fargate_auth_broken().is_empty(),
        "profiles lost their node access entry: {:?}",
        cloud.fargate_auth_broken()
    );
}

/// The Fargate pod execution role's ARN has no path (EKS's Fargate guide), and EKS refuses one
/// that has.
#[tokio::test(start_paused = true)]
async fn the_fargate_pod_execution_role_has_no_path() {
    let cloud = InMemoryCloud::default();
    let spec = spec("nopath");
    let plan = glrunner_infra::plan_stack(&spec, &cloud).await.unwrap();
    let applied = Engine::new(&cloud, &cloud).apply(&plan).await.unwrap();
    let name = glrunner_infra::plan::fargate_role_name("nopath", "us-east-1");
    assert_eq!(
        applied.resources["role/fargate"].arn.as_deref(),
        Some(format!("arn:aws:iam::123456789012:role/{name}").as_str())
    );
    let refused = glrunner_infra::ClusterProvisioner::create(
        &cloud,
        &CreateRequest::FargateProfile {
            cluster: "nopath".into(),
            name: "other".into(),
            pod_execution_role_arn: "arn:aws:iam::123456789012:role/team/pods".into(),
            subnet_ids: vec![],
            selectors: vec![FargateSelector::namespace("x")],
        },
        &ResourceTags {
            stack: "nopath".into(),
            key: "other".into(),
            extra: Default::default(),
        },
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(refused.contains("path other than /"), "{refused}");
}

/// GovCloud has EKS but no Fargate for it: provision refuses the Region before any call, where
/// the in-memory EKS (like AWS) would refuse only the Fargate profile, after the billed network
/// and control plane.
#[tokio::test(start_paused = true)]
async fn gov_cloud_is_refused_before_anything_is_created() {
    let cloud = InMemoryCloud::new("us-gov-west-1");
    let spec = StackSpec::new(StackName::new("gov").unwrap(), "us-gov-west-1");
    let err = glrunner_infra::provision(
        &spec,
        &cloud,
        &cloud,
        &glrunner_infra::StackOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput { ref field, ref message } if field == "region" && message.contains("Fargate")),
        "{err}"
    );
    assert!(cloud.calls().is_empty(), "{:?}", cloud.calls());
}

/// IAM is eventually consistent: right after a crash that followed CreateRole, GetRole does
/// not see the role yet while CreateRole answers EntityAlreadyExists. The re-run waits for it.
#[tokio::test(start_paused = true)]
async fn a_rerun_right_after_create_role_waits_for_iam_to_show_the_role() {
    use glrunner_infra::testing::{Faulty, InfraCall, InfraRule};
    let cloud = InMemoryCloud::default();
    let spec = spec("iamlag");
    let plan = glrunner_infra::plan_stack(&spec, &cloud).await.unwrap();
    // The first create takes effect, then its answer is lost (a crash after CreateRole).
    let crash = InfraRule::on(InfraCall::Create, |_| glrunner_infra::Error::Backend {
        action: "create".into(),
        backend: "fault-injector",
        source: "injected crash after the create took effect".into(),
    })
    .times(1)
    .after_effect();
    let network = Faulty::new(&cloud as &dyn glrunner_infra::NetworkProvisioner).with_rule(crash);
    let cluster = network.share(&cloud as &dyn glrunner_infra::ClusterProvisioner);
    assert!(Engine::new(&network, &cluster).apply(&plan).await.is_err());
    let rerun = Engine::new(&cloud, &cloud)
        .apply(&plan)
        .await
        .unwrap_or_else(|e| panic!("the re-run failed: {e}"));
    assert_eq!(rerun.created(), plan.steps.len() - 1);
}

/// The Pod Identity conformance case on the in-memory backend.
#[tokio::test]
async fn pod_identity_associations_in_memory() {
    let memory = glrunner_infra::InMemoryPodIdentity::default();
    memory.add_cluster("c");
    memory.associate("c", "ci-jobs", "deploy");
    memory.associate("c", "apps", "web");
    glrunner_infra::conformance::pod_identity_lists_what_exists(
        &memory,
        "c",
        &[("apps", "web"), ("ci-jobs", "deploy")],
        "missing",
    )
    .await
    .unwrap();
}

/// The image cache on the in-memory account with a user's own Docker Hub secret: the rule
/// names it, a first pull makes a repository under the rule's prefix (none without a rule), and
/// teardown removes the rules and that repository but never the user's secret.
#[tokio::test(start_paused = true)]
async fn the_image_cache_goes_with_its_repositories_and_keeps_the_users_secret() {
    use glrunner_infra::image_cache::{CredentialSource, Upstream, rule_prefix};
    let cloud = InMemoryCloud::default();
    let mut spec = spec("cache");
    let arn = cloud.add_external_secret("ecr-pullthroughcache/mine");
    spec.image_cache.docker_hub = Some(CredentialSource::SecretArn(arn));
    let options = glrunner_infra::StackOptions {
        waits: WaitPolicy::default(),
        ..Default::default()
    };
    let outcome = glrunner_infra::provision(&spec, &cloud, &cloud, &options)
        .await
        .unwrap();
    let applied = outcome.applied.unwrap();
    assert!(applied.resources.contains_key("image-cache/docker-hub"));
    assert!(
        !applied
            .resources
            .contains_key("image-cache/secret/docker-hub")
    );
    let hub = rule_prefix(&spec.stack, Upstream::DockerHub);
    // The registry's rules, as a brought cluster sees them: this stack's four, by upstream URL.
    let rules = glrunner_infra::ClusterProvisioner::cache_rules(&cloud)
        .await
        .unwrap();
    let mut upstreams: Vec<_> = rules.iter().filter_map(|r| r.upstream()).collect();
    upstreams.sort();
    assert_eq!(
        upstreams,
        [
            Upstream::EcrPublic,
            Upstream::Quay,
            Upstream::K8s,
            Upstream::DockerHub
        ]
    );
    assert!(rules.iter().any(|r| r.prefix == hub));
    assert!(
        cloud
            .pull_through_cache(&format!("{hub}/library/alpine"))
            .unwrap()
    );
    assert!(
        !cloud
            .pull_through_cache("elsewhere/library/alpine")
            .unwrap()
    );
    let found = Engine::new(&cloud, &cloud)
        .leftovers(&spec.stack)
        .await
        .unwrap();
    assert!(
        found
            .iter()
            .any(|r| r.kind == ResourceKind::CacheRepository && r.id.ends_with("/library/alpine"))
    );
    glrunner_infra::teardown(&spec.stack, &spec.region, &cloud, &cloud, &options)
        .await
        .unwrap();
    let left: Vec<_> = cloud
        .all_resources()
        .into_iter()
        .filter(|r| {
            matches!(
                r.kind,
                ResourceKind::PullThroughCacheRule
                    | ResourceKind::CacheRepository
                    | ResourceKind::CacheSecret
                    | ResourceKind::RolePolicy
                    | ResourceKind::VpcEndpoint
            )
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Job roles on the in-memory cloud (#25): a role per job ServiceAccount at the ARN the flow
/// computes, with its policies; a customer policy of another account is IAM's NoSuchEntity and
/// leaves no role; teardown removes the roles.
#[tokio::test(start_paused = true)]
async fn job_roles_are_created_where_the_flow_expects_them_and_torn_down() {
    let cloud = InMemoryCloud::default();
    let mut spec = spec("jobs");
    spec.job_roles = glrunner_infra::job_roles::group([(
        "deploy".to_string(),
        "arn:aws:iam::123456789012:policy/team/deploy".to_string(),
    )]);
    let outcome = glrunner_infra::provision(&spec, &cloud, &cloud, &Default::default())
        .await
        .unwrap();
    let applied = outcome.applied.unwrap();
    let accounts = glrunner_infra::job_roles::service_accounts(&spec, "123456789012");
    assert_eq!(
        applied.resources[&glrunner_infra::job_roles::key("deploy")]
            .arn
            .as_deref(),
        Some(accounts[0].1.as_str())
    );
    let report = Engine::new(&cloud, &cloud)
        .teardown(&spec.stack)
        .await
        .unwrap();
    assert!(report.leftovers.is_empty(), "{:?}", report.leftovers);
    assert!(
        report
            .deleted
            .iter()
            .any(|r| r.id == glrunner_infra::job_roles::role_name("jobs", "us-east-1", "deploy"))
    );

    let mut bad = spec.clone();
    bad.job_roles = glrunner_infra::job_roles::group([(
        "deploy".to_string(),
        "arn:aws:iam::999999999999:policy/theirs".to_string(),
    )]);
    let err = glrunner_infra::provision(&bad, &cloud, &cloud, &Default::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("999999999999:policy/theirs"), "{err}");
    let report = Engine::new(&cloud, &cloud)
        .teardown(&bad.stack)
        .await
        .unwrap();
    assert!(
        report
            .deleted
            .iter()
            .all(|r| !r.id.ends_with("-job-deploy")),
        "no half-made role: {:?}",
        report.deleted
    );
    assert!(report.leftovers.is_empty());
}
