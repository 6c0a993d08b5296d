//! One conformance suite for every backend.
//!
//! Not API-stable; meant for this crate's tests and for embedders checking their own backends.
//! Every case works on its own stack name and deletes what it creates. The cases that crash a
//! run or count its calls go through [`crate::testing::Faulty`] (feature `testing`).

use std::collections::BTreeMap;
#[cfg(feature = "testing")]
use std::collections::HashMap;

use crate::apply::Engine;
use crate::error::{Error, Result};
#[cfg(feature = "testing")]
use crate::plan::Plan;
use crate::progress::NoProgress;
use crate::provider::{ClusterProvisioner, NetworkProvisioner};
use crate::resource::{
    CreateRequest, Resource, ResourceKind, ResourceState, ResourceTags, RoleTrust,
};
use crate::spec::{StackName, StackSpec, SubnetTier};
#[cfg(feature = "testing")]
use crate::testing::{Faulty, InfraCall, InfraRule};
use crate::wait::{WaitPolicy, retry_if, wait_for};

/// What a backend can be asked to prove.
#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    /// Deleting a VPC that still has subnets fails with DependencyViolation (moto does this one).
    pub vpc_dependency_check: bool,
}

fn tags(stack: &StackName, key: &str) -> ResourceTags {
    ResourceTags {
        stack: stack.to_string(),
        key: key.to_string(),
        extra: BTreeMap::new(),
    }
}

/// Creates through `create`, retrying what AWS's eventual consistency causes right after a
/// creation (NotFound for a new id, a role EKS cannot assume yet), as the engine does.
async fn eventually<F, Fut>(waits: &WaitPolicy, what: &str, create: F) -> Result<Resource>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Resource>>,
{
    retry_if(
        what,
        waits.propagation_timeout,
        waits,
        &NoProgress,
        create,
        |e| e.is_retryable() || e.is_not_found() || matches!(e, Error::Propagating { .. }),
    )
    .await
}

fn check(condition: bool, what: impl FnOnce() -> String) -> Result<()> {
    if condition {
        Ok(())
    } else {
        Err(Error::invalid("conformance", what()))
    }
}

/// Network resources: create, discover by tag with keys, describe, dependency check, idempotent delete.
pub async fn network_lifecycle(
    network: &dyn NetworkProvisioner,
    stack: &StackName,
    caps: Capabilities,
    waits: &WaitPolicy,
) -> Result<()> {
    let azs = network.availability_zones().await?;
    check(azs.len() >= 2, || {
        format!("expected at least two availability zones, got {azs:?}")
    })?;
    let vpc = network
        .create(
            &CreateRequest::Vpc {
                cidr: "10.42.0.0/16".parse().expect("literal"),
            },
            &tags(stack, "vpc"),
        )
        .await?;
    let subnet_request = CreateRequest::Subnet {
        vpc_id: vpc.id.clone(),
        az: azs[0].name.clone(),
        cidr: "10.42.0.0/20".parse().expect("literal"),
        tier: SubnetTier::Private,
        cluster_name: stack.to_string(),
    };
    let subnet_tags = tags(stack, "subnet/private/a");
    let subnet = eventually(waits, "subnet", || {
        network.create(&subnet_request, &subnet_tags)
    })
    .await?;
    let found = network.discover(stack).await?;
    for (res, key) in [(&vpc, "vpc"), (&subnet, "subnet/private/a")] {
        check(found.iter().any(|f| f.id == res.id && f.key == key), || {
            format!(
                "discover did not return {} with key {key}: {found:?}",
                res.id
            )
        })?;
    }
    check(
        network
            .describe(ResourceKind::Subnet, &subnet.id)
            .await?
            .is_some(),
        || "describe lost the subnet".into(),
    )?;
    if caps.vpc_dependency_check {
        let err = network.delete(&vpc).await.err();
        check(
            matches!(err, Some(Error::DependencyViolation { .. })),
            || format!("deleting a VPC with a subnet gave {err:?}"),
        )?;
    }
    network.delete(&subnet).await?;
    network.delete(&vpc).await?;
    let again = network.delete(&vpc).await.err();
    check(again.as_ref().is_some_and(Error::is_not_found), || {
        format!("second delete of the VPC gave {again:?}")
    })?;
    check(
        network
            .describe(ResourceKind::Vpc, &vpc.id)
            .await?
            .is_none(),
        || "deleted VPC still described".into(),
    )?;
    let left = network.discover(stack).await?;
    check(left.iter().all(|r| !r.state.is_present()), || {
        format!("resources left: {left:?}")
    })
}

/// IAM roles and the EKS cluster with its profile, add-on and access entry: create, wait,
/// discover, read access, delete in order, nothing left.
pub async fn cluster_lifecycle(
    network: &dyn NetworkProvisioner,
    cluster: &dyn ClusterProvisioner,
    stack: &StackName,
    waits: &WaitPolicy,
) -> Result<()> {
    let azs = network.availability_zones().await?;
    let vpc = network
        .create(
            &CreateRequest::Vpc {
                cidr: "10.43.0.0/16".parse().expect("literal"),
            },
            &tags(stack, "vpc"),
        )
        .await?;
    let mut subnets = Vec::new();
    // Zones EKS accepts for control planes, judged by zone ID.
    let usable = crate::plan::choose_azs(&azs, 2)?;
    for (i, az) in usable.iter().enumerate() {
        let cidr = format!("10.43.{}.0/20", i * 16)
            .parse()
            .expect("valid cidr");
        let req = CreateRequest::Subnet {
            vpc_id: vpc.id.clone(),
            az: az.clone(),
            cidr,
            tier: SubnetTier::Private,
            cluster_name: stack.to_string(),
        };
        let subnet_tags = tags(stack, &format!("subnet/private/{az}"));
        subnets.push(eventually(waits, "subnet", || network.create(&req, &subnet_tags)).await?);
    }
    let subnet_ids: Vec<String> = subnets.iter().map(|s| s.id.clone()).collect();
    let caller = cluster.caller_arn().await?;
    let partition = caller.split(':').nth(1).unwrap_or("aws").to_string();
    let role = |name: String, trust| CreateRequest::IamRole {
        name,
        trust,
        policy_arns: match trust {
            RoleTrust::EksCluster => crate::plan::CLUSTER_ROLE_POLICIES,
            RoleTrust::FargatePods => crate::plan::FARGATE_ROLE_POLICIES,
        }
        .iter()
        .map(|p| crate::plan::managed_policy_arn(&partition, p))
        .collect(),
        source_arn: None,
    };
    let cluster_role = cluster
        .create(
            &role(format!("{stack}-conf-eks-cluster"), RoleTrust::EksCluster),
            &tags(stack, "role/cluster"),
        )
        .await?;
    let pod_role = cluster
        .create(
            &role(format!("{stack}-conf-fargate-pods"), RoleTrust::FargatePods),
            &tags(stack, "role/fargate"),
        )
        .await?;
    let dup = cluster
        .create(
            &role(format!("{stack}-conf-eks-cluster"), RoleTrust::EksCluster),
            &tags(stack, "role/cluster"),
        )
        .await
        .err();
    check(matches!(dup, Some(Error::AlreadyExists { .. })), || {
        format!("creating a role twice gave {dup:?}")
    })?;
    let name = stack.to_string();
    let cluster_request = CreateRequest::Cluster {
        name: name.clone(),
        version: crate::spec::DEFAULT_KUBERNETES_VERSION.into(),
        role_arn: cluster_role.arn.clone().unwrap_or_default(),
        subnet_ids: subnet_ids.clone(),
        public_access_cidrs: crate::spec::open_public_access(),
    };
    let cluster_tags = tags(stack, "cluster");
    // A role created a moment ago: EKS refuses it until IAM has propagated.
    let created = eventually(waits, "cluster", || {
        cluster.create(&cluster_request, &cluster_tags)
    })
    .await?;
    let describe = |kind, id: String| async move { cluster.describe(kind, &id).await };
    let available = |r: Option<&Resource>| r.is_some_and(|r| r.state == ResourceState::Available);
    wait_for(
        "cluster",
        "cluster ACTIVE",
        waits.cluster_timeout,
        waits,
        &NoProgress,
        || describe(ResourceKind::Cluster, created.id.clone()),
        available,
    )
    .await?;
    let profile_request = CreateRequest::FargateProfile {
        cluster: name.clone(),
        name: format!("{stack}-fargate"),
        pod_execution_role_arn: pod_role.arn.clone().unwrap_or_default(),
        subnet_ids,
        selectors: vec![crate::spec::FargateSelector::namespace("kube-system")],
    };
    let profile_tags = tags(stack, "fargate-profile");
    let profile = eventually(waits, "profile", || {
        cluster.create(&profile_request, &profile_tags)
    })
    .await?;
    wait_for(
        "profile",
        "profile ACTIVE",
        waits.fargate_profile_timeout,
        waits,
        &NoProgress,
        || describe(ResourceKind::FargateProfile, profile.id.clone()),
        available,
    )
    .await?;
    let addon = cluster
        .create(
            &CreateRequest::Addon {
                cluster: name.clone(),
                name: "coredns".into(),
                configuration: crate::plan::COREDNS_FARGATE_CONFIG.into(),
            },
            &tags(stack, "addon/coredns"),
        )
        .await?;
    wait_for(
        "addon",
        "add-on ACTIVE",
        waits.addon_timeout,
        waits,
        &NoProgress,
        || describe(ResourceKind::Addon, addon.id.clone()),
        available,
    )
    .await?;
    let entry = cluster
        .create(
            &CreateRequest::AccessEntry {
                cluster: name.clone(),
                principal_arn: caller.clone(),
                policy_arn: crate::plan::access_policy_arn(
                    &partition,
                    crate::plan::CLUSTER_ADMIN_POLICY,
                ),
            },
            &tags(stack, &crate::plan::access_entry_key(&caller)),
        )
        .await?;
    // The cluster's OIDC provider: for the issuer DescribeCluster returns, ARN as IAM names it.
    let provider = cluster
        .create(
            &CreateRequest::OidcProvider {
                cluster: name.clone(),
            },
            &tags(stack, crate::oidc::OIDC_PROVIDER_KEY),
        )
        .await?;
    let issuer = cluster.cluster_access(&name).await?.oidc_issuer;
    let account = crate::plan::account_of(&caller)
        .unwrap_or_default()
        .to_string();
    check(
        issuer.as_deref().is_some_and(|i| {
            i.starts_with("https://")
                && provider.id == crate::oidc::provider_arn(&partition, &account, i)
                && provider.arn.as_deref() == Some(provider.id.as_str())
        }),
        || format!("OIDC provider {provider:?} is not the one of issuer {issuer:?}"),
    )?;
    let again = cluster
        .create(
            &CreateRequest::OidcProvider {
                cluster: name.clone(),
            },
            &tags(stack, crate::oidc::OIDC_PROVIDER_KEY),
        )
        .await
        .err();
    check(matches!(again, Some(Error::AlreadyExists { .. })), || {
        format!("a second OIDC provider for one issuer gave {again:?}")
    })?;
    check(
        cluster
            .describe(ResourceKind::OidcProvider, &provider.id)
            .await?
            .is_some_and(|r| r.key == crate::oidc::OIDC_PROVIDER_KEY),
        || format!("describe lost the OIDC provider {}", provider.id),
    )?;
    let found = cluster.discover(stack).await?;
    for (res, key) in [
        (&cluster_role, "role/cluster"),
        (&created, "cluster"),
        (&profile, "fargate-profile"),
        (&addon, "addon/coredns"),
        (&entry, crate::plan::access_entry_key(&caller).as_str()),
        (&provider, crate::oidc::OIDC_PROVIDER_KEY),
    ] {
        check(
            found
                .iter()
                .any(|f| f.id == res.id && f.key == key && f.kind == res.kind),
            || format!("discover missed {} ({key}): {found:?}", res.id),
        )?;
    }
    let access = cluster.cluster_access(&name).await?;
    check(
        access.endpoint.starts_with("https://") && !access.certificate_authority.is_empty(),
        || format!("bad cluster access {access:?}"),
    )?;
    // The generic teardown does the ordered deletion, including the VPC we made.
    let report = Engine::new(network, cluster)
        .with_waits(waits.clone())
        .teardown(stack)
        .await?;
    check(report.leftovers.is_empty(), || {
        format!("leftovers: {:?}", report.leftovers)
    })?;
    check(
        cluster
            .describe(ResourceKind::OidcProvider, &provider.id)
            .await?
            .is_none(),
        || format!("teardown left the OIDC provider {}", provider.id),
    )
}

/// Whole-stack provision twice (the second creates nothing and returns the same ids), then
/// teardown without any state file leaves nothing tagged.
pub async fn provision_converges_and_teardown_leaves_nothing(
    network: &dyn NetworkProvisioner,
    cluster: &dyn ClusterProvisioner,
    spec: &StackSpec,
    waits: &WaitPolicy,
) -> Result<()> {
    let mut plan = crate::plan_stack(spec, network).await?;
    // The caller's access entry step is keyed by the caller (Plan::bind_caller).
    plan.bind_caller(&cluster.caller_arn().await?);
    let engine = Engine::new(network, cluster).with_waits(waits.clone());
    let first = engine.apply(&plan).await?;
    check(first.created() == plan.steps.len(), || {
        format!(
            "first apply created {} of {} steps",
            first.created(),
            plan.steps.len()
        )
    })?;
    let found = engine.existing(&spec.stack).await?;
    for step in &plan.steps {
        check(
            found.get(&step.key).is_some_and(|r| r.kind == step.kind),
            || format!("step {} has no tagged {} after apply", step.key, step.kind),
        )?;
    }
    let second = engine.apply(&plan).await?;
    check(second.created() == 0, || {
        format!("second apply created {} resources", second.created())
    })?;
    for (key, res) in &first.resources {
        check(
            second.resources.get(key).map(|r| &r.id) == Some(&res.id),
            || format!("step {key} changed id on re-run"),
        )?;
    }
    let report = engine.teardown(&spec.stack).await?;
    check(report.leftovers.is_empty(), || {
        format!("leftovers {:?}", report.leftovers)
    })?;
    let after = engine.existing(&spec.stack).await?;
    check(after.is_empty(), || {
        format!("still tagged after teardown: {after:?}")
    })
}

/// For each step n, a run that crashes right after its n-th create, then a clean re-run,
/// converges to exactly one resource per step; teardown then leaves nothing.
#[cfg(feature = "testing")]
pub async fn interrupted_provision_converges(
    network: &dyn NetworkProvisioner,
    cluster: &dyn ClusterProvisioner,
    spec: &StackSpec,
    waits: &WaitPolicy,
) -> Result<()> {
    let plan = crate::plan_stack(spec, network).await?;
    for n in 1..=plan.steps.len() {
        // The n-th create that took effect (of either trait) loses its answer: a crash between
        // an AWS call and its bookkeeping.
        let crash = InfraRule::on(InfraCall::Create, |args| Error::Backend {
            action: format!(
                "create {}",
                args.kind().map_or("resource".into(), |k| k.to_string())
            ),
            backend: "fault-injector",
            source: "injected crash after the create took effect".into(),
        })
        .skip(n as u64 - 1)
        .times(1)
        .after_effect();
        let faulty_network = Faulty::new(network).with_rule(crash);
        let faulty_cluster = faulty_network.share(cluster);
        let crashed = Engine::new(&faulty_network, &faulty_cluster)
            .with_waits(waits.clone())
            .apply(&plan)
            .await;
        check(crashed.is_err(), || {
            format!("run with a crash after create #{n} did not fail")
        })?;
        let engine = Engine::new(network, cluster).with_waits(waits.clone());
        let rerun = engine.apply(&plan).await?;
        // Steps already running when the crash hit may still have finished, so at most the rest remain.
        check(rerun.created() <= plan.steps.len() - n, || {
            format!(
                "after a crash at create #{n}, the re-run created {} (at most {} expected)",
                rerun.created(),
                plan.steps.len() - n
            )
        })?;
        let all: Vec<Resource> = {
            let (a, b) =
                tokio::try_join!(network.discover(&spec.stack), cluster.discover(&spec.stack))?;
            a.into_iter()
                .chain(b)
                .filter(|r| r.exists() && !r.key.is_empty())
                .collect()
        };
        let mut per_key: HashMap<&str, usize> = HashMap::new();
        for res in &all {
            *per_key.entry(res.key.as_str()).or_default() += 1;
        }
        check(
            per_key.len() == plan.steps.len() && per_key.values().all(|&c| c == 1),
            || format!("crash at #{n}: duplicates or gaps {per_key:?}"),
        )?;
        let report = engine.teardown(&spec.stack).await?;
        check(report.leftovers.is_empty(), || {
            format!("crash at #{n}: leftovers {:?}", report.leftovers)
        })?;
    }
    Ok(())
}

/// A dry-run provision and a dry-run teardown make no mutating call.
#[cfg(feature = "testing")]
pub async fn dry_run_mutates_nothing(
    network: &dyn NetworkProvisioner,
    cluster: &dyn ClusterProvisioner,
    spec: &StackSpec,
) -> Result<Plan> {
    let network = Faulty::new(network);
    let cluster = network.share(cluster);
    let options = crate::stack::StackOptions {
        dry_run: true,
        ..Default::default()
    };
    let outcome = crate::stack::provision(spec, &network, &cluster, &options).await?;
    crate::stack::teardown(&spec.stack, &spec.region, &network, &cluster, &options).await?;
    let mutating = network.calls(InfraCall::Create) + network.calls(InfraCall::Delete);
    check(mutating == 0, || {
        format!("dry-run made mutating calls: {:?}", network.call_counts())
    })?;
    check(outcome.applied.is_none(), || "dry-run applied".into())?;
    Ok(outcome.plan)
}

/// A [`crate::pod_identity::PodIdentityInspector`] lists exactly the associations `cluster` has
/// (`expected` as `(namespace, service account)`, seeded by the caller through the backend's own
/// API), in order, and answers [`Error::NotFound`] for `missing_cluster`.
pub async fn pod_identity_lists_what_exists(
    inspector: &dyn crate::pod_identity::PodIdentityInspector,
    cluster: &str,
    expected: &[(&str, &str)],
    missing_cluster: &str,
) -> Result<()> {
    let found = inspector.pod_identity_associations(cluster).await?;
    let pairs: Vec<(&str, &str)> = found
        .iter()
        .map(|a| (a.namespace.as_str(), a.service_account.as_str()))
        .collect();
    let mut want = expected.to_vec();
    want.sort();
    check(pairs == want, || {
        format!("associations of {cluster}: {pairs:?}, expected {want:?}")
    })?;
    check(
        found.iter().all(|a| a.association_id.starts_with("a-")),
        || format!("association ids: {found:?}"),
    )?;
    match inspector.pod_identity_associations(missing_cluster).await {
        Err(Error::NotFound { .. }) => Ok(()),
        other => Err(Error::invalid(
            "conformance",
            format!("listing under the missing cluster {missing_cluster}: {other:?}"),
        )),
    }
}
