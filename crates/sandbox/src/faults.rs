//! Failures the sandbox can inject, one per flow phase, to prove the cleanup path.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use glrunner_gitlab_client::{
    Commit, CreatedRunner, GitLabApi, Job, JobsQuery, Namespace, NewCommit, NewPipeline,
    NewProject, NewRunner, Page, Pipeline, Project, ProjectRef, Runner, User,
};
use glrunner_infra::{
    ClusterAccess, ClusterProvisioner, CreateRequest, NetworkProvisioner, Resource, ResourceKind,
    StackName,
};
use glrunner_runner_chart::{ReleaseId, ReleaseManager, ReleaseSpec, ReleaseStatus, Removal};
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

/// The world's infra and GitLab backends, wrapped when the fault targets them.
pub(super) fn wrap(world: &SandboxWorld) -> Wrapped {
    let fault = world.config.fault;
    let network: Arc<dyn NetworkProvisioner> = Arc::new(world.cloud.clone());
    let cluster: Arc<dyn ClusterProvisioner> = match fault {
        Some(Fault::Provision) => Arc::new(FaultyCluster {
            inner: world.cloud.clone(),
        }),
        _ => Arc::new(world.cloud.clone()),
    };
    let gitlab: Arc<dyn GitLabApi> = match fault {
        Some(f @ (Fault::Project | Fault::Runners | Fault::LoadTest)) => Arc::new(FaultyGitLab {
            inner: world.gitlab.clone(),
            fault: f,
            calls: AtomicU32::new(0),
        }),
        _ => Arc::new(world.gitlab.clone()),
    };
    (network, cluster, gitlab)
}

/// The world's release manager, wrapped when the fault targets it.
pub(super) fn releases(world: &SandboxWorld) -> Arc<dyn ReleaseManager> {
    match world.config.fault {
        Some(f @ (Fault::Releases | Fault::Teardown)) => Arc::new(FaultyReleases {
            inner: world.releases.clone(),
            fault: f,
            calls: AtomicU32::new(0),
        }),
        _ => Arc::new(world.releases.clone()),
    }
}

struct FaultyCluster {
    inner: glrunner_infra::memory::InMemoryCloud,
}

#[async_trait]
impl ClusterProvisioner for FaultyCluster {
    async fn caller_arn(&self) -> glrunner_infra::Result<String> {
        self.inner.caller_arn().await
    }
    async fn discover(&self, stack: &StackName) -> glrunner_infra::Result<Vec<Resource>> {
        ClusterProvisioner::discover(&self.inner, stack).await
    }
    async fn create(
        &self,
        request: &CreateRequest,
        tags: &glrunner_infra::resource::ResourceTags,
    ) -> glrunner_infra::Result<Resource> {
        if request.kind() == ResourceKind::FargateProfile {
            return Err(glrunner_infra::Error::PermissionDenied {
                action: "create Fargate profile".into(),
                message: "injected fault: not authorized to perform eks:CreateFargateProfile"
                    .into(),
            });
        }
        ClusterProvisioner::create(&self.inner, request, tags).await
    }
    async fn describe(
        &self,
        kind: ResourceKind,
        id: &str,
    ) -> glrunner_infra::Result<Option<Resource>> {
        ClusterProvisioner::describe(&self.inner, kind, id).await
    }
    async fn delete(&self, resource: &Resource) -> glrunner_infra::Result<()> {
        ClusterProvisioner::delete(&self.inner, resource).await
    }
    async fn cluster_access(&self, name: &str) -> glrunner_infra::Result<ClusterAccess> {
        self.inner.cluster_access(name).await
    }
}

struct FaultyGitLab {
    inner: glrunner_gitlab_client::memory::InMemoryGitLab,
    fault: Fault,
    calls: AtomicU32,
}

impl FaultyGitLab {
    fn denied(
        action: &'static str,
        resource: String,
        scope: &str,
    ) -> glrunner_gitlab_client::Error {
        glrunner_gitlab_client::Error::PermissionDenied {
            action,
            resource,
            scope: scope.into(),
            message: "injected fault (HTTP 403)".into(),
        }
    }
}

#[async_trait]
impl GitLabApi for FaultyGitLab {
    async fn current_user(&self) -> glrunner_gitlab_client::Result<User> {
        self.inner.current_user().await
    }
    async fn version(
        &self,
    ) -> glrunner_gitlab_client::Result<glrunner_gitlab_client::ServerVersion> {
        self.inner.version().await
    }
    async fn token_info(
        &self,
    ) -> glrunner_gitlab_client::Result<glrunner_gitlab_client::TokenInfo> {
        self.inner.token_info().await
    }
    async fn member(
        &self,
        scope: &glrunner_gitlab_client::MemberScope,
        user_id: u64,
    ) -> glrunner_gitlab_client::Result<Option<glrunner_gitlab_client::Member>> {
        self.inner.member(scope, user_id).await
    }
    async fn get_namespace(&self, path: &str) -> glrunner_gitlab_client::Result<Namespace> {
        self.inner.get_namespace(path).await
    }
    async fn get_project(&self, project: &ProjectRef) -> glrunner_gitlab_client::Result<Project> {
        self.inner.get_project(project).await
    }
    async fn create_project(&self, new: &NewProject) -> glrunner_gitlab_client::Result<Project> {
        if self.fault == Fault::Project {
            return Err(Self::denied(
                "create",
                format!("project {}", new.path),
                "api",
            ));
        }
        self.inner.create_project(new).await
    }
    async fn delete_project(&self, project: &ProjectRef) -> glrunner_gitlab_client::Result<()> {
        self.inner.delete_project(project).await
    }
    async fn create_runner(
        &self,
        new: &NewRunner,
    ) -> glrunner_gitlab_client::Result<CreatedRunner> {
        if self.fault == Fault::Runners && self.calls.fetch_add(1, Ordering::SeqCst) >= 1 {
            return Err(Self::denied(
                "create",
                format!("runner {}", new.description),
                "create_runner",
            ));
        }
        self.inner.create_runner(new).await
    }
    async fn list_runners(
        &self,
        project: &ProjectRef,
    ) -> glrunner_gitlab_client::Result<Vec<Runner>> {
        self.inner.list_runners(project).await
    }
    async fn get_runner(
        &self,
        runner_id: u64,
    ) -> glrunner_gitlab_client::Result<glrunner_gitlab_client::RunnerDetails> {
        self.inner.get_runner(runner_id).await
    }
    async fn delete_runner(&self, runner_id: u64) -> glrunner_gitlab_client::Result<()> {
        self.inner.delete_runner(runner_id).await
    }
    async fn get_branch(
        &self,
        project: &ProjectRef,
        branch: &str,
    ) -> glrunner_gitlab_client::Result<glrunner_gitlab_client::Branch> {
        self.inner.get_branch(project, branch).await
    }
    async fn delete_branch(
        &self,
        project: &ProjectRef,
        branch: &str,
    ) -> glrunner_gitlab_client::Result<()> {
        self.inner.delete_branch(project, branch).await
    }
    async fn list_pipelines(
        &self,
        project: &ProjectRef,
        ref_name: &str,
    ) -> glrunner_gitlab_client::Result<Vec<Pipeline>> {
        self.inner.list_pipelines(project, ref_name).await
    }
    async fn file_exists(
        &self,
        project: &ProjectRef,
        file_path: &str,
        ref_name: &str,
    ) -> glrunner_gitlab_client::Result<bool> {
        self.inner.file_exists(project, file_path, ref_name).await
    }
    async fn commit_files(
        &self,
        project: &ProjectRef,
        commit: &NewCommit,
    ) -> glrunner_gitlab_client::Result<Commit> {
        self.inner.commit_files(project, commit).await
    }
    async fn create_pipeline(
        &self,
        project: &ProjectRef,
        new: &NewPipeline,
    ) -> glrunner_gitlab_client::Result<Pipeline> {
        self.inner.create_pipeline(project, new).await
    }
    async fn get_pipeline(
        &self,
        project: &ProjectRef,
        pipeline_id: u64,
    ) -> glrunner_gitlab_client::Result<Pipeline> {
        self.inner.get_pipeline(project, pipeline_id).await
    }
    async fn list_pipeline_jobs(
        &self,
        project: &ProjectRef,
        pipeline_id: u64,
        query: &JobsQuery,
    ) -> glrunner_gitlab_client::Result<Page<Job>> {
        if self.fault == Fault::LoadTest && self.calls.fetch_add(1, Ordering::SeqCst) >= 6 {
            return Err(glrunner_gitlab_client::Error::Backend {
                action: "list jobs of",
                resource: format!("pipeline {pipeline_id}"),
                status: Some(500),
                message: "injected fault: 500 Internal Server Error".into(),
                source: None,
            });
        }
        self.inner
            .list_pipeline_jobs(project, pipeline_id, query)
            .await
    }
    async fn get_job(
        &self,
        project: &ProjectRef,
        job_id: u64,
    ) -> glrunner_gitlab_client::Result<Job> {
        self.inner.get_job(project, job_id).await
    }
    async fn cancel_pipeline(
        &self,
        project: &ProjectRef,
        pipeline_id: u64,
    ) -> glrunner_gitlab_client::Result<Pipeline> {
        self.inner.cancel_pipeline(project, pipeline_id).await
    }
    fn requests_sent(&self) -> u64 {
        self.inner.requests_sent()
    }
}

struct FaultyReleases {
    inner: glrunner_runner_chart::InMemoryReleases,
    fault: Fault,
    calls: AtomicU32,
}

#[async_trait]
impl ReleaseManager for FaultyReleases {
    async fn ensure(&self, spec: &ReleaseSpec) -> glrunner_runner_chart::Result<ReleaseStatus> {
        if self.fault == Fault::Releases && self.calls.fetch_add(1, Ordering::SeqCst) >= 1 {
            return Err(glrunner_runner_chart::Error::Timeout {
                resource: spec.id().describe(),
                action: "install or upgrade".into(),
                waited: spec.timeout,
            });
        }
        self.inner.ensure(spec).await
    }
    async fn upgrade(&self, spec: &ReleaseSpec) -> glrunner_runner_chart::Result<ReleaseStatus> {
        self.inner.upgrade(spec).await
    }
    async fn uninstall(
        &self,
        id: &ReleaseId,
        timeout: Duration,
    ) -> glrunner_runner_chart::Result<Removal> {
        if self.fault == Fault::Teardown && self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(glrunner_runner_chart::Error::Conflict {
                resource: id.describe(),
                action: "uninstall".into(),
                detail:
                    "injected fault: another operation (install/upgrade/rollback) is in progress"
                        .into(),
            });
        }
        self.inner.uninstall(id, timeout).await
    }
    async fn status(&self, id: &ReleaseId) -> glrunner_runner_chart::Result<Option<ReleaseStatus>> {
        self.inner.status(id).await
    }
    async fn list<'a>(
        &self,
        namespace: Option<&'a str>,
    ) -> glrunner_runner_chart::Result<Vec<ReleaseStatus>> {
        self.inner.list(namespace).await
    }
}
