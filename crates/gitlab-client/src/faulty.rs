//! [`Faulty`]: a [`GitLabApi`] decorator that injects faults by rule (feature `faulty`, also in
//! `testing`; not API-stable). The forwarding of every method is written here once.
//!
//! ```
//! # async fn demo() {
//! use glrunner_gitlab_client::faulty::{Faulty, GitLabArgs, GitLabCall, GitLabRule};
//! use glrunner_gitlab_client::memory::InMemoryGitLab;
//!
//! // The second runner POST reaches GitLab, then its answer is lost behind a 502.
//! let gitlab = Faulty::new(InMemoryGitLab::default()).with_rule(
//!     GitLabRule::on(GitLabCall::CreateRunner, |args| {
//!         let GitLabArgs::CreateRunner { new } = args else { unreachable!() };
//!         glrunner_gitlab_client::Error::Backend {
//!             action: "create",
//!             resource: format!("runner {}", new.description),
//!             status: Some(502),
//!             message: "Bad Gateway".into(),
//!             source: None,
//!         }
//!     })
//!     .skip(1)
//!     .times(1)
//!     .after_effect(),
//! );
//! # let _ = gitlab;
//! # }
//! ```

use async_trait::async_trait;
use serde::Serialize;

use crate::api::GitLabApi;
use crate::error::{Error, Result};
use crate::types::{
    Branch, Commit, CreatedRunner, Job, JobsQuery, Member, MemberScope, Namespace, NewCommit,
    NewPipeline, NewProject, NewRunner, Page, Pipeline, Project, ProjectRef, Runner, RunnerDetails,
    ServerVersion, TokenInfo, User,
};

pub use glrunner_fault::{Call, Timing};

/// A [`GitLabApi`] backend `T` whose calls go through [`GitLabRule`]s.
pub type Faulty<T> = glrunner_fault::Faulty<T, GitLabCall>;

/// A fault rule for [`Faulty`]: by call, arguments, count and timing (see [`glrunner_fault`]).
pub type GitLabRule = glrunner_fault::Rule<GitLabCall>;

/// A fallible [`GitLabApi`] method (all but `requests_sent`), with its route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum GitLabCall {
    /// `GET /user`.
    CurrentUser,
    /// `GET /version`.
    Version,
    /// `GET /personal_access_tokens/self`.
    TokenInfo,
    /// `GET /projects/:id/members/all/:user_id` (or the group's).
    Member,
    /// `GET /namespaces/:id`.
    GetNamespace,
    /// `GET /projects/:id`.
    GetProject,
    /// `POST /projects`.
    CreateProject,
    /// `DELETE /projects/:id`.
    DeleteProject,
    /// `POST /user/runners`.
    CreateRunner,
    /// `GET /projects/:id/runners`.
    ListRunners,
    /// `GET /runners/:id`.
    GetRunner,
    /// `DELETE /runners/:id`.
    DeleteRunner,
    /// `HEAD /projects/:id/repository/files/:file_path`.
    FileExists,
    /// `GET /projects/:id/repository/branches/:branch`.
    GetBranch,
    /// `DELETE /projects/:id/repository/branches/:branch`.
    DeleteBranch,
    /// `POST /projects/:id/repository/commits`.
    CommitFiles,
    /// `POST /projects/:id/pipeline`.
    CreatePipeline,
    /// `GET /projects/:id/pipelines?ref=`.
    ListPipelines,
    /// `GET /projects/:id/pipelines/:pipeline_id`.
    GetPipeline,
    /// `GET /projects/:id/pipelines/:pipeline_id/jobs`.
    ListPipelineJobs,
    /// `GET /projects/:id/jobs`.
    ListProjectJobs,
    /// `GET /projects/:id/jobs/:job_id`.
    GetJob,
    /// `POST /projects/:id/pipelines/:pipeline_id/cancel`.
    CancelPipeline,
    /// `GET /projects/:id/jobs/:job_id/trace`.
    JobTrace,
}

/// The arguments of one [`GitLabApi`] call, for a rule's condition and its error.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
#[allow(missing_docs)] // the fields are the trait method's parameters
pub enum GitLabArgs<'a> {
    CurrentUser,
    Version,
    TokenInfo,
    Member {
        scope: &'a MemberScope,
        user_id: u64,
    },
    GetNamespace {
        path: &'a str,
    },
    GetProject {
        project: &'a ProjectRef,
    },
    CreateProject {
        new: &'a NewProject,
    },
    DeleteProject {
        project: &'a ProjectRef,
    },
    CreateRunner {
        new: &'a NewRunner,
    },
    ListRunners {
        project: &'a ProjectRef,
    },
    GetRunner {
        runner_id: u64,
    },
    DeleteRunner {
        runner_id: u64,
    },
    FileExists {
        project: &'a ProjectRef,
        file_path: &'a str,
        ref_name: &'a str,
    },
    GetBranch {
        project: &'a ProjectRef,
        branch: &'a str,
    },
    DeleteBranch {
        project: &'a ProjectRef,
        branch: &'a str,
    },
    CommitFiles {
        project: &'a ProjectRef,
        commit: &'a NewCommit,
    },
    CreatePipeline {
        project: &'a ProjectRef,
        new: &'a NewPipeline,
    },
    ListPipelines {
        project: &'a ProjectRef,
        ref_name: &'a str,
    },
    GetPipeline {
        project: &'a ProjectRef,
        pipeline_id: u64,
    },
    ListPipelineJobs {
        project: &'a ProjectRef,
        pipeline_id: u64,
        query: &'a JobsQuery,
    },
    ListProjectJobs {
        project: &'a ProjectRef,
        query: &'a JobsQuery,
    },
    GetJob {
        project: &'a ProjectRef,
        job_id: u64,
    },
    CancelPipeline {
        project: &'a ProjectRef,
        pipeline_id: u64,
    },
    JobTrace {
        project: &'a ProjectRef,
        job_id: u64,
    },
}

impl glrunner_fault::Call for GitLabCall {
    type Args<'a> = GitLabArgs<'a>;
    type Error = Error;

    fn of(args: &GitLabArgs<'_>) -> Self {
        use GitLabArgs as A;
        match args {
            A::CurrentUser => Self::CurrentUser,
            A::Version => Self::Version,
            A::TokenInfo => Self::TokenInfo,
            A::Member { .. } => Self::Member,
            A::GetNamespace { .. } => Self::GetNamespace,
            A::GetProject { .. } => Self::GetProject,
            A::CreateProject { .. } => Self::CreateProject,
            A::DeleteProject { .. } => Self::DeleteProject,
            A::CreateRunner { .. } => Self::CreateRunner,
            A::ListRunners { .. } => Self::ListRunners,
            A::GetRunner { .. } => Self::GetRunner,
            A::DeleteRunner { .. } => Self::DeleteRunner,
            A::FileExists { .. } => Self::FileExists,
            A::GetBranch { .. } => Self::GetBranch,
            A::DeleteBranch { .. } => Self::DeleteBranch,
            A::CommitFiles { .. } => Self::CommitFiles,
            A::CreatePipeline { .. } => Self::CreatePipeline,
            A::ListPipelines { .. } => Self::ListPipelines,
            A::GetPipeline { .. } => Self::GetPipeline,
            A::ListPipelineJobs { .. } => Self::ListPipelineJobs,
            A::ListProjectJobs { .. } => Self::ListProjectJobs,
            A::GetJob { .. } => Self::GetJob,
            A::CancelPipeline { .. } => Self::CancelPipeline,
            A::JobTrace { .. } => Self::JobTrace,
        }
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<T: GitLabApi> GitLabApi for Faulty<T> {
    async fn current_user(&self) -> Result<User> {
        self.run(GitLabArgs::CurrentUser, self.inner().current_user())
            .await
    }
    async fn version(&self) -> Result<ServerVersion> {
        self.run(GitLabArgs::Version, self.inner().version()).await
    }
    async fn token_info(&self) -> Result<TokenInfo> {
        self.run(GitLabArgs::TokenInfo, self.inner().token_info())
            .await
    }
    async fn member(&self, scope: &MemberScope, user_id: u64) -> Result<Option<Member>> {
        let args = GitLabArgs::Member { scope, user_id };
        self.run(args, self.inner().member(scope, user_id)).await
    }
    async fn get_namespace(&self, path: &str) -> Result<Namespace> {
        let args = GitLabArgs::GetNamespace { path };
        self.run(args, self.inner().get_namespace(path)).await
    }
    async fn get_project(&self, project: &ProjectRef) -> Result<Project> {
        let args = GitLabArgs::GetProject { project };
        self.run(args, self.inner().get_project(project)).await
    }
    async fn create_project(&self, new: &NewProject) -> Result<Project> {
        let args = GitLabArgs::CreateProject { new };
        self.run(args, self.inner().create_project(new)).await
    }
    async fn delete_project(&self, project: &ProjectRef) -> Result<()> {
        let args = GitLabArgs::DeleteProject { project };
        self.run(args, self.inner().delete_project(project)).await
    }
    async fn create_runner(&self, new: &NewRunner) -> Result<CreatedRunner> {
        let args = GitLabArgs::CreateRunner { new };
        self.run(args, self.inner().create_runner(new)).await
    }
    async fn list_runners(&self, project: &ProjectRef) -> Result<Vec<Runner>> {
        let args = GitLabArgs::ListRunners { project };
        self.run(args, self.inner().list_runners(project)).await
    }
    async fn get_runner(&self, runner_id: u64) -> Result<RunnerDetails> {
        let args = GitLabArgs::GetRunner { runner_id };
        self.run(args, self.inner().get_runner(runner_id)).await
    }
    async fn delete_runner(&self, runner_id: u64) -> Result<()> {
        let args = GitLabArgs::DeleteRunner { runner_id };
        self.run(args, self.inner().delete_runner(runner_id)).await
    }
    async fn file_exists(
        &self,
        project: &ProjectRef,
        file_path: &str,
        ref_name: &str,
    ) -> Result<bool> {
        let args = GitLabArgs::FileExists {
            project,
            file_path,
            ref_name,
        };
        let call = self.inner().file_exists(project, file_path, ref_name);
        self.run(args, call).await
    }
    async fn get_branch(&self, project: &ProjectRef, branch: &str) -> Result<Branch> {
        let args = GitLabArgs::GetBranch { project, branch };
        self.run(args, self.inner().get_branch(project, branch))
            .await
    }
    async fn delete_branch(&self, project: &ProjectRef, branch: &str) -> Result<()> {
        let args = GitLabArgs::DeleteBranch { project, branch };
        self.run(args, self.inner().delete_branch(project, branch))
            .await
    }
    async fn commit_files(&self, project: &ProjectRef, commit: &NewCommit) -> Result<Commit> {
        let args = GitLabArgs::CommitFiles { project, commit };
        self.run(args, self.inner().commit_files(project, commit))
            .await
    }
    async fn create_pipeline(&self, project: &ProjectRef, new: &NewPipeline) -> Result<Pipeline> {
        let args = GitLabArgs::CreatePipeline { project, new };
        self.run(args, self.inner().create_pipeline(project, new))
            .await
    }
    async fn list_pipelines(&self, project: &ProjectRef, ref_name: &str) -> Result<Vec<Pipeline>> {
        let args = GitLabArgs::ListPipelines { project, ref_name };
        self.run(args, self.inner().list_pipelines(project, ref_name))
            .await
    }
    async fn get_pipeline(&self, project: &ProjectRef, pipeline_id: u64) -> Result<Pipeline> {
        let args = GitLabArgs::GetPipeline {
            project,
            pipeline_id,
        };
        self.run(args, self.inner().get_pipeline(project, pipeline_id))
            .await
    }
    async fn list_pipeline_jobs(
        &self,
        project: &ProjectRef,
        pipeline_id: u64,
        query: &JobsQuery,
    ) -> Result<Page<Job>> {
        let args = GitLabArgs::ListPipelineJobs {
            project,
            pipeline_id,
            query,
        };
        let call = self.inner().list_pipeline_jobs(project, pipeline_id, query);
        self.run(args, call).await
    }
    async fn list_project_jobs(
        &self,
        project: &ProjectRef,
        query: &JobsQuery,
    ) -> Result<Page<Job>> {
        let args = GitLabArgs::ListProjectJobs { project, query };
        self.run(args, self.inner().list_project_jobs(project, query))
            .await
    }
    async fn get_job(&self, project: &ProjectRef, job_id: u64) -> Result<Job> {
        let args = GitLabArgs::GetJob { project, job_id };
        self.run(args, self.inner().get_job(project, job_id)).await
    }
    async fn job_trace(&self, project: &ProjectRef, job_id: u64) -> Result<String> {
        let args = GitLabArgs::JobTrace { project, job_id };
        self.run(args, self.inner().job_trace(project, job_id))
            .await
    }
    async fn cancel_pipeline(&self, project: &ProjectRef, pipeline_id: u64) -> Result<Pipeline> {
        let args = GitLabArgs::CancelPipeline {
            project,
            pipeline_id,
        };
        self.run(args, self.inner().cancel_pipeline(project, pipeline_id))
            .await
    }
    fn requests_sent(&self) -> u64 {
        self.inner().requests_sent()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::api::{DynGitLabApi, GitLabApiExt};
    use crate::memory::InMemoryGitLab;

    fn bad_gateway(args: &GitLabArgs<'_>) -> Error {
        Error::Backend {
            action: "call",
            resource: format!("{args:?}"),
            status: Some(502),
            message: "injected".into(),
            source: None,
        }
    }

    async fn project(gl: &InMemoryGitLab) -> Project {
        gl.get_or_create_project("faulty").await.unwrap()
    }

    #[tokio::test]
    async fn a_rule_fires_on_the_nth_call_and_counts_are_right() {
        let gl = InMemoryGitLab::default();
        let p = project(&gl).await;
        let faulty = Faulty::new(gl.clone())
            .with_rule(GitLabRule::on(GitLabCall::CreateRunner, bad_gateway).skip(1));
        let mut results = Vec::new();
        for n in 0..3 {
            let new = NewRunner::project(p.id, format!("r{n}"), vec!["t".into()]);
            results.push(faulty.create_runner(&new).await.is_ok());
        }
        assert_eq!(results, [true, false, false]);
        assert_eq!(faulty.injected(), 2);
        assert_eq!(faulty.calls(GitLabCall::CreateRunner), 3);
        assert_eq!(faulty.calls(GitLabCall::ListRunners), 0);
        // Before the effect: GitLab made only the first runner.
        assert_eq!(gl.runner_count(), 1);
    }

    #[tokio::test]
    async fn an_after_effect_fault_applies_the_effect_and_loses_the_answer() {
        let gl = InMemoryGitLab::default();
        let p = project(&gl).await;
        let faulty = Faulty::new(gl.clone()).with_rule(
            GitLabRule::on(GitLabCall::CreateRunner, bad_gateway)
                .times(1)
                .after_effect(),
        );
        let new = NewRunner::project(p.id, "lost", vec!["t".into()]);
        let err = faulty.create_runner(&new).await.unwrap_err();
        assert!(err.may_have_taken_effect(), "{err}");
        assert_eq!(gl.runner_count(), 1, "the runner was created");
        // Armed again: the checked creation finds the runner whose token was lost, deletes it
        // and makes another, whose answer arrives (the rule is spent).
        faulty.inject(
            GitLabRule::on(GitLabCall::CreateRunner, bad_gateway)
                .times(1)
                .after_effect(),
        );
        let again = NewRunner::project(p.id, "checked", vec!["t".into()]);
        faulty.create_runner_checked(&again).await.unwrap();
        assert_eq!(
            gl.runner_count(),
            2,
            "the first lost runner and the checked one"
        );
        assert_eq!(faulty.calls(GitLabCall::DeleteRunner), 1);
        assert_eq!(faulty.calls(GitLabCall::CreateRunner), 3);
        assert_eq!(faulty.injected(), 2);
    }

    #[tokio::test]
    async fn conditions_pick_calls_by_their_arguments() {
        let gl = InMemoryGitLab::default();
        let p = project(&gl).await;
        let faulty =
            Faulty::new(gl.clone())
                .with_rule(GitLabRule::on(GitLabCall::CreateRunner, bad_gateway).when(
                |args| matches!(args, GitLabArgs::CreateRunner { new } if new.description == "b"),
            ));
        for (d, ok) in [("a", true), ("b", false), ("c", true)] {
            let new = NewRunner::project(p.id, d, vec!["t".into()]);
            assert_eq!(faulty.create_runner(&new).await.is_ok(), ok, "{d}");
        }
        assert_eq!(faulty.injected(), 1);
    }

    #[tokio::test]
    async fn a_pass_through_decorator_passes_the_conformance_suite() {
        let faulty = Faulty::new(InMemoryGitLab::default());
        crate::conformance::run_all(&faulty, "faulty")
            .await
            .unwrap();
        assert_eq!(faulty.injected(), 0);
        assert!(faulty.calls(GitLabCall::CreatePipeline) > 0);
        assert_eq!(faulty.requests_sent(), faulty.inner().requests_sent());
    }

    #[tokio::test]
    async fn shared_pointers_of_a_trait_object_can_be_decorated() {
        let gl: Arc<DynGitLabApi> = Arc::new(InMemoryGitLab::default());
        let boxed: Box<DynGitLabApi> = Box::<InMemoryGitLab>::default();
        let faulty = Faulty::new(gl)
            .with_rule(GitLabRule::on(GitLabCall::CurrentUser, bad_gateway).times(1));
        assert!(faulty.current_user().await.is_err());
        assert!(faulty.current_user().await.is_ok());
        assert!(Faulty::new(boxed).version().await.is_ok());
    }
}
