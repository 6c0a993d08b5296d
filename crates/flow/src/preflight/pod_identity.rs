//! The doctor's guard against EKS Pod Identity on Fargate: every glrunner pod runs on Fargate,
//! and EKS Pod Identity does not work there (EKS User Guide, "Learn how EKS Pod Identity grants
//! pods access to AWS services", EKS Pod Identity considerations: not available for pods running
//! on AWS Fargate; aws/containers-roadmap#2274 asks for it and is open). The Pod Identity agent
//! is a DaemonSet, which Fargate does not run, so a job pod whose ServiceAccount has an
//! association gets no credentials from it. The same trap hit terraform-aws-eks users
//! (terraform-aws-modules/terraform-aws-eks#3489). Jobs on Fargate need IRSA, which glrunner
//! sets up with `--job-role NAME=POLICY_ARN`.
//!
//! The check fails when an association targets a namespace a Fargate profile selects: the
//! cluster's own profiles (read with `DescribeFargateProfile`) and, for a stack glrunner
//! provisions, the profile it will create. A profile's namespace selector may hold the
//! wildcards `*` and `?` ([`glrunner_infra::wildcard_match`]); a selector with labels still
//! takes some pods of the namespace, so it counts.

use glrunner_infra::{
    ClusterProvisioner, FargateProfileSelectors, PodIdentityAssociation, PodIdentityInspector,
    wildcard_match,
};

use super::{Check, PreflightPlan, Status};

/// The check's stable id.
pub const CHECK_ID: &str = "identity.pod-identity";

const NEEDED: &str = "no EKS Pod Identity association on a namespace Fargate runs: EKS Pod Identity does not work on Fargate (EKS User Guide, pod-identities, considerations; aws/containers-roadmap#2274)";

/// One association on a namespace a Fargate profile selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodIdentityOnFargate {
    /// The association.
    pub association: PodIdentityAssociation,
    /// The Fargate profile that selects its namespace.
    pub profile: String,
}

/// The associations whose namespace one of `profiles` selects (the first such profile each).
pub fn on_fargate(
    associations: &[PodIdentityAssociation],
    profiles: &[FargateProfileSelectors],
) -> Vec<PodIdentityOnFargate> {
    associations
        .iter()
        .filter_map(|a| {
            profiles
                .iter()
                .find(|p| {
                    p.selectors
                        .iter()
                        .any(|s| wildcard_match(&s.namespace, &a.namespace))
                })
                .map(|p| PodIdentityOnFargate {
                    association: a.clone(),
                    profile: p.name.clone(),
                })
        })
        .collect()
}

/// The check from what was read: `fail` naming each association, its namespace, the profile and
/// the fix, else `ok`.
pub fn check_from(
    cluster: &str,
    associations: &[PodIdentityAssociation],
    profiles: &[FargateProfileSelectors],
) -> Check {
    let found = on_fargate(associations, profiles);
    if found.is_empty() {
        return Check::new(
            CHECK_ID,
            Status::Ok,
            format!(
                "{} EKS Pod Identity association(s) on cluster {cluster}, none on a namespace a Fargate profile selects",
                associations.len()
            ),
            NEEDED,
        );
    }
    let listed: Vec<String> = found
        .iter()
        .map(|f| {
            format!(
                "association {} (namespace {}, service account {}) targets namespace {}, which Fargate profile {} selects",
                f.association.association_id,
                f.association.namespace,
                f.association.service_account,
                f.association.namespace,
                f.profile
            )
        })
        .collect();
    let deletes: Vec<String> = found
        .iter()
        .map(|f| {
            format!(
                "aws eks delete-pod-identity-association --cluster-name {cluster} --association-id {}",
                f.association.association_id
            )
        })
        .collect();
    Check::new(
        CHECK_ID,
        Status::Fail,
        format!(
            "on cluster {cluster}: {}; pods there get no credentials from it (EKS Pod Identity does not work on Fargate)",
            listed.join("; ")
        ),
        NEEDED,
    )
    .fix(format!(
        "use IRSA instead: give each job role with --job-role NAME=POLICY_ARN (glrunner creates the role and the job ServiceAccount NAME annotated with it, and jobs run as it), then remove the association ({})",
        deletes.join("; ")
    ))
}

/// Reads the cluster's associations and Fargate profiles and checks them; `None` when there is
/// nothing to read from (a cluster from a kubeconfig: no AWS; no inspector wired).
pub async fn check(
    plan: &PreflightPlan,
    cluster: Option<&dyn ClusterProvisioner>,
    inspector: Option<&dyn PodIdentityInspector>,
) -> Option<Check> {
    let (name, planned) = match &plan.cluster {
        crate::ClusterSource::Kubeconfig { .. } => return None,
        crate::ClusterSource::Eks { name } => (name.clone(), None),
        crate::ClusterSource::Provisioned => (
            plan.spec.cluster.name.clone(),
            Some(FargateProfileSelectors {
                name: format!("{} (planned)", plan.spec.cluster.name),
                selectors: plan.spec.cluster.fargate_selectors(),
            }),
        ),
    };
    let (cluster, inspector) = (cluster?, inspector?);
    let associations = match inspector.pod_identity_associations(&name).await {
        Ok(found) => found,
        Err(glrunner_infra::Error::NotFound { .. }) => {
            return Some(Check::new(
                CHECK_ID,
                Status::Ok,
                format!(
                    "cluster {name} does not exist yet: a new cluster has no EKS Pod Identity association"
                ),
                NEEDED,
            ));
        }
        Err(e) => {
            return Some(
                Check::new(
                    CHECK_ID,
                    Status::Warn,
                    format!("cannot list the EKS Pod Identity associations of cluster {name}: {e}"),
                    NEEDED,
                )
                .fix("allow eks:ListPodIdentityAssociations on the cluster, or check by hand that no association targets a namespace a Fargate profile selects"),
            );
        }
    };
    let mut profiles = match cluster.cluster_access(&name).await {
        Ok(access) => access.fargate_profiles,
        Err(e) => {
            return Some(
                Check::new(
                    CHECK_ID,
                    Status::Warn,
                    format!("cannot read the Fargate profiles of cluster {name}: {e}"),
                    NEEDED,
                )
                .fix("allow eks:DescribeCluster, eks:ListFargateProfiles and eks:DescribeFargateProfile on the cluster"),
            );
        }
    };
    profiles.extend(planned);
    Some(check_from(&name, &associations, &profiles))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use glrunner_infra::memory::InMemoryCloud;
    use glrunner_infra::{
        FargateSelector, InMemoryAccount, InMemoryPodIdentity, StackName, StackSpec,
    };

    use super::*;
    use crate::FlowConfig;

    fn association(id: &str, ns: &str, sa: &str) -> PodIdentityAssociation {
        PodIdentityAssociation {
            association_id: id.into(),
            namespace: ns.into(),
            service_account: sa.into(),
        }
    }

    fn profile(name: &str, namespaces: &[&str]) -> FargateProfileSelectors {
        FargateProfileSelectors {
            name: name.into(),
            selectors: namespaces
                .iter()
                .map(|ns| FargateSelector {
                    namespace: (*ns).into(),
                    labels: BTreeMap::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn an_association_on_a_fargate_namespace_fails_naming_it_the_profile_and_the_fix() {
        let check = check_from(
            "ci",
            &[
                association("a-1", "ci-jobs", "deploy"),
                association("a-2", "apps", "web"),
            ],
            &[profile("runners", &["gitlab-runner", "ci-*"])],
        );
        assert_eq!(check.status, Status::Fail);
        for needle in [
            "a-1",
            "namespace ci-jobs",
            "service account deploy",
            "profile runners",
        ] {
            assert!(check.found.contains(needle), "{needle}: {}", check.found);
        }
        assert!(
            !check.found.contains("a-2"),
            "apps is not on Fargate: {}",
            check.found
        );
        assert!(
            check.fix.contains("--job-role NAME=POLICY_ARN"),
            "{}",
            check.fix
        );
        assert!(
            check
                .fix
                .contains("delete-pod-identity-association --cluster-name ci --association-id a-1"),
            "{}",
            check.fix
        );
        assert!(check.needed.contains("containers-roadmap#2274"));
    }

    #[test]
    fn associations_off_fargate_are_fine() {
        let check = check_from(
            "ci",
            &[association("a-2", "apps", "web")],
            &[profile("runners", &["gitlab-runner", "ci-?obs"])],
        );
        assert_eq!(check.status, Status::Ok, "{check:?}");
        assert_eq!(
            on_fargate(
                &[association("a", "ci-jobs", "x")],
                &[profile("p", &["ci-?obs"])]
            )
            .len(),
            1
        );
    }

    fn plan() -> PreflightPlan {
        let spec = StackSpec::new(StackName::new("podid").unwrap(), "us-east-1");
        let config = FlowConfig::new(spec, "sandbox/loadtest", 10);
        PreflightPlan::from_flow(&config, "https://gitlab.example.com/").unwrap()
    }

    /// Through the preflight: the stack's own (planned) Fargate profile selects the runner
    /// namespace, where an association sits on the existing cluster: the doctor fails.
    #[tokio::test(start_paused = true)]
    async fn the_doctor_fails_on_an_association_in_the_runner_namespace() {
        let plan = plan();
        let cloud = InMemoryCloud::new("us-east-1");
        let account = InMemoryAccount::new();
        glrunner_infra::provision(
            &plan.spec,
            &cloud,
            &cloud,
            // AWS's own timings on the paused clock (a NAT gateway takes minutes in memory).
            &glrunner_infra::StackOptions::default(),
        )
        .await
        .unwrap();
        let inspector = InMemoryPodIdentity::default();
        let id = inspector.associate(
            &plan.spec.cluster.name,
            &plan.spec.cluster.runner_namespace,
            "deploy",
        );
        let sources = super::super::PreflightSources {
            account: &account,
            network: &cloud,
            gitlab: None,
            eks_tokens: None,
            cluster: Some(&cloud),
            connector: None,
            pod_identity: Some(&inspector),
        };
        let report = super::super::run(&plan, &sources).await;
        let check = report.checks.iter().find(|c| c.id == CHECK_ID).unwrap();
        assert_eq!(check.status, Status::Fail, "{check:?}");
        assert!(check.found.contains(&id), "{}", check.found);
        assert!(report.failed());

        // A cluster that does not exist yet has no association; a kubeconfig cluster is not read.
        let fresh = InMemoryPodIdentity::default();
        let empty = InMemoryCloud::new("us-east-1");
        let check = super::check(&plan, Some(&empty), Some(&fresh))
            .await
            .unwrap();
        assert_eq!(check.status, Status::Ok, "{check:?}");
        let mut brought = plan.clone();
        brought.cluster = crate::ClusterSource::Kubeconfig {
            path: "kubeconfig".into(),
            context: None,
        };
        assert!(
            super::check(&brought, Some(&cloud), Some(&inspector))
                .await
                .is_none()
        );
    }
}
