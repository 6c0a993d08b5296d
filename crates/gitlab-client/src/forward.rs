//! [`GitLabApi`] for `Arc<T>` and `Box<T>`, so shared and boxed backends (`Arc<dyn GitLabApi>`)
//! can be passed and decorated (`testing::Faulty<Arc<dyn GitLabApi>>`) as they are.

use std::sync::Arc;

use async_trait::async_trait;

use crate::api::GitLabApi;
use crate::error::Result;
use crate::types::{
    Branch, Commit, CreatedRunner, Job, JobsQuery, Member, MemberScope, Namespace, NewCommit,
    NewPipeline, NewProject, NewRunner, Page, Pipeline, Project, ProjectRef, Runner, RunnerDetails,
    ServerVersion, TokenInfo, User,
};

/// One forwarding body for every pointer type.
macro_rules! forward {
    ($($pointer:ident),+) => {$(
        #[async_trait]
        #[deny(clippy::missing_trait_methods)]
        impl<T: GitLabApi + ?Sized> GitLabApi for $pointer<T> {
            async fn current_user(&self) -> Result<User> {
                (**self).current_user().await
            }
            async fn version(&self) -> Result<ServerVersion> {
                (**self).version().await
            }
            async fn token_info(&self) -> Result<TokenInfo> {
                (**self).token_info().await
            }
            async fn member(&self, scope: &MemberScope, user_id: u64) -> Result<Option<Member>> {
                (**self).member(scope, user_id).await
            }
            async fn get_namespace(&self, path: &str) -> Result<Namespace> {
                (**self).get_namespace(path).await
            }
            async fn get_project(&self, project: &ProjectRef) -> Result<Project> {
                (**self).get_project(project).await
            }
            async fn create_project(&self, new: &NewProject) -> Result<Project> {
                (**self).create_project(new).await
            }
            async fn delete_project(&self, project: &ProjectRef) -> Result<()> {
                (**self).delete_project(project).await
            }
            async fn create_runner(&self, new: &NewRunner) -> Result<CreatedRunner> {
                (**self).create_runner(new).await
            }
            async fn list_runners(&self, project: &ProjectRef) -> Result<Vec<Runner>> {
                (**self).list_runners(project).await
            }
            async fn get_runner(&self, runner_id: u64) -> Result<RunnerDetails> {
                (**self).get_runner(runner_id).await
            }
            async fn delete_runner(&self, runner_id: u64) -> Result<()> {
                (**self).delete_runner(runner_id).await
            }
            async fn file_exists(
                &self,
                project: &ProjectRef,
                file_path: &str,
                ref_name: &str,
            ) -> Result<bool> {
                (**self).file_exists(project, file_path, ref_name).await
            }
            async fn get_branch(&self, project: &ProjectRef, branch: &str) -> Result<Branch> {
                (**self).get_branch(project, branch).await
            }
            async fn delete_branch(&self, project: &ProjectRef, branch: &str) -> Result<()> {
                (**self).delete_branch(project, branch).await
            }
            async fn commit_files(
                &self,
                project: &ProjectRef,
                commit: &NewCommit,
            ) -> Result<Commit> {
                (**self).commit_files(project, commit).await
            }
            async fn create_pipeline(
                &self,
                project: &ProjectRef,
                new: &NewPipeline,
            ) -> Result<Pipeline> {
                (**self).create_pipeline(project, new).await
            }
            async fn list_pipelines(
                &self,
                project: &ProjectRef,
                ref_name: &str,
            ) -> Result<Vec<Pipeline>> {
                (**self).list_pipelines(project, ref_name).await
            }
            async fn get_pipeline(
                &self,
                project: &ProjectRef,
                pipeline_id: u64,
            ) -> Result<Pipeline> {
                (**self).get_pipeline(project, pipeline_id).await
            }
            async fn list_pipeline_jobs(
                &self,
                project: &ProjectRef,
                pipeline_id: u64,
                query: &JobsQuery,
            ) -> Result<Page<Job>> {
                (**self).list_pipeline_jobs(project, pipeline_id, query).await
            }
            async fn list_project_jobs(
                &self,
                project: &ProjectRef,
                query: &JobsQuery,
            ) -> Result<Page<Job>> {
                (**self).list_project_jobs(project, query).await
            }
            async fn get_job(&self, project: &ProjectRef, job_id: u64) -> Result<Job> {
                (**self).get_job(project, job_id).await
            }
            async fn job_trace(&self, project: &ProjectRef, job_id: u64) -> Result<String> {
                (**self).job_trace(project, job_id).await
            }
            async fn cancel_pipeline(
                &self,
                project: &ProjectRef,
                pipeline_id: u64,
            ) -> Result<Pipeline> {
                (**self).cancel_pipeline(project, pipeline_id).await
            }
            fn requests_sent(&self) -> u64 {
                (**self).requests_sent()
            }
        }
    )+};
}

forward!(Arc, Box);
