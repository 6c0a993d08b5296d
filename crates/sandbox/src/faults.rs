//! Failures the sandbox can inject, one per flow phase, to prove the cleanup path: rules on
//! the capability crates' fault decorators (`testing::Faulty`), or the in-memory backends' own
//! fault switches.

use std::sync::Arc;

use glrunner_gitlab_client::GitLabApi;
use glrunner_gitlab_client::faulty::{self as gitlab, GitLabArgs, GitLabCall, GitLabRule};
use glrunner_infra::testing::{self as infra, InfraCall, InfraRule};
use glrunner_infra::{ClusterProvisioner, NetworkProvisioner, ResourceKind};
use glrunner_runner_chart::ReleaseManager;
use glrunner_runner_chart::testing::{FaultyReleases, ReleaseArgs, ReleaseCall, ReleaseRule};
use serde::Serialize;

use super::SandboxWorld;

/// A failure injected into one phase of the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// Creating the Fargate profile is denied (the VPC, roles and cluster already exist).
    Provision,
    /// Creating the GitLab project is denied.
    Project,
    /// Creating the second GitLab runner is denied (the first one exists).
    Runners,
    /// Installing the second runner release fails (the first one is installed).
    Releases,
    /// GitLab fails while the pipeline runs (job listing answers 500 from the seventh call on).
    LoadTest,
    /// The Kubernetes API server refuses to list pods.
    Reap,
    /// The first uninstall hits a concurrent helm operation (a retryable conflict).
    Teardown,
}

type Wrapped = (
    Arc<dyn NetworkProvisioner>,
    Arc<dyn ClusterProvisioner>,
    Arc<dyn GitLabApi>,
);

/// The world's infra and GitLab backends, behind a fault decorator when the fault targets them.
/// Each call makes fresh decorators: their counts start again (a new connection).
pub(super) fn wrap(world: &SandboxWorld) -> Wrapped {
    let fault = world.config.fault;
    let network: Arc<dyn NetworkProvisioner> = Arc::new(world.cloud.clone());
    let cluster: Arc<dyn ClusterProvisioner> = match fault {
        Some(Fault::Provision) => Arc::new(
            infra::Faulty::new(world.cloud.clone()).with_rule(
                InfraRule::on(InfraCall::Create, |_| {
                    glrunner_infra::Error::PermissionDenied {
                        action: "create Fargate profile".into(),
                        message:
                            "injected fault: not authorized to perform eks:CreateFargateProfile"
                                .into(),
                    }
                })
                .when(|args| args.kind() == Some(ResourceKind::FargateProfile)),
            ),
        ),
        _ => Arc::new(world.cloud.clone()),
    };
    let gitlab: Arc<dyn GitLabApi> = match fault.and_then(gitlab_rule) {
        Some(rule) => Arc::new(gitlab::Faulty::new(world.gitlab.clone()).with_rule(rule)),
        None => Arc::new(world.gitlab.clone()),
    };
    (network, cluster, gitlab)
}

/// The rule of a fault that targets GitLab.
fn gitlab_rule(fault: Fault) -> Option<GitLabRule> {
    Some(match fault {
        Fault::Project => GitLabRule::on(GitLabCall::CreateProject, |args| match args {
            GitLabArgs::CreateProject { new } => denied(format!("project {}", new.path), "api"),
            _ => unreachable!("the rule is on project creation"),
        }),
        // The first runner is created, every later one denied.
        Fault::Runners => GitLabRule::on(GitLabCall::CreateRunner, |args| match args {
            GitLabArgs::CreateRunner { new } => {
                denied(format!("runner {}", new.description), "create_runner")
            }
            _ => unreachable!("the rule is on runner creation"),
        })
        .skip(1),
        // Job listings answer 500 from the seventh on.
        Fault::LoadTest => GitLabRule::on(GitLabCall::ListPipelineJobs, |args| match args {
            GitLabArgs::ListPipelineJobs { pipeline_id, .. } => {
                glrunner_gitlab_client::Error::Backend {
                    action: "list jobs of",
                    resource: format!("pipeline {pipeline_id}"),
                    status: Some(500),
                    message: "injected fault: 500 Internal Server Error".into(),
                    source: None,
                }
            }
            _ => unreachable!("the rule is on job listings"),
        })
        .skip(6),
        _ => return None,
    })
}

fn denied(resource: String, scope: &str) -> glrunner_gitlab_client::Error {
    glrunner_gitlab_client::Error::PermissionDenied {
        action: "create",
        resource,
        scope: scope.into(),
        message: "injected fault (HTTP 403)".into(),
    }
}

/// The world's release manager, behind a fault decorator when the fault targets it (fresh for
/// every connection, as [`wrap`]'s).
pub(super) fn releases(world: &SandboxWorld) -> Arc<dyn ReleaseManager> {
    let rule = match world.config.fault {
        // The first release installs, every later one times out.
        Some(Fault::Releases) => ReleaseRule::on(ReleaseCall::Ensure, |args| match args {
            ReleaseArgs::Ensure { spec } => glrunner_runner_chart::Error::Timeout {
                resource: spec.id().describe(),
                action: "install or upgrade".into(),
                waited: spec.timeout,
            },
            _ => unreachable!("the rule is on installs"),
        })
        .skip(1),
        // The first uninstall hits a concurrent helm operation.
        Some(Fault::Teardown) => ReleaseRule::on(ReleaseCall::Uninstall, |args| match args {
            ReleaseArgs::Uninstall { id, .. } => glrunner_runner_chart::Error::Conflict {
                resource: id.describe(),
                action: "uninstall".into(),
                detail:
                    "injected fault: another operation (install/upgrade/rollback) is in progress"
                        .into(),
            },
            _ => unreachable!("the rule is on uninstalls"),
        })
        .times(1),
        _ => return Arc::new(world.releases.clone()),
    };
    Arc::new(FaultyReleases::new(world.releases.clone()).with_rule(rule))
}
