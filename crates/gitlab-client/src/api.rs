//! The `GitLabApi` trait every backend implements, and `GitLabApiExt` helpers built on it.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::types::{
    Bounded, Branch, Commit, CommitAction, CreatedRunner, FileAction, Job, JobStatus, JobsQuery,
    Member, MemberScope, Namespace, NewCommit, NewPipeline, NewProject, NewRunner, Page, Pipeline,
    Project, ProjectRef, Runner, RunnerDetails, ServerVersion, TokenInfo, User,
};

/// The GitLab operations glrunner needs, over this crate's own types.
///
/// Implemented by [`crate::HttpGitLab`] (GitLab's REST API v4), [`crate::memory::InMemoryGitLab`]
/// (an in-memory model with a runner simulator) and, with the `mock` feature, `MockGitLabApi`.
/// Object safe: use `&dyn GitLabApi` / `Arc<DynGitLabApi>`.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait GitLabApi: Send + Sync {
    /// The token's user (`GET /user`): the cheapest token check.
    async fn current_user(&self) -> Result<User>;

    /// GitLab's version (`GET /version`); runner creation through `POST /user/runners` needs 15.10+.
    async fn version(&self) -> Result<ServerVersion>;

    /// The access token in use and its scopes (`GET /personal_access_tokens/self`).
    async fn token_info(&self) -> Result<TokenInfo>;

    /// A user's effective role in a project or group, inherited memberships included
    /// (`GET /projects/:id/members/all/:user_id`, `GET /groups/:id/members/all/:user_id`);
    /// `None` when the user is not a member.
    async fn member(&self, scope: &MemberScope, user_id: u64) -> Result<Option<Member>>;

    /// A namespace (user or group) by full path (`GET /namespaces/:id`).
    async fn get_namespace(&self, path: &str) -> Result<Namespace>;

    /// A project by id or path (`GET /projects/:id`).
    async fn get_project(&self, project: &ProjectRef) -> Result<Project>;

    /// Creates a project (`POST /projects`).
    async fn create_project(&self, new: &NewProject) -> Result<Project>;

    /// Deletes a project (`DELETE /projects/:id`).
    async fn delete_project(&self, project: &ProjectRef) -> Result<()>;

    /// Creates a runner (`POST /user/runners`; the token needs `api` or, for this call only,
    /// `create_runner`: see [`crate::permissions`]).
    async fn create_runner(&self, new: &NewRunner) -> Result<CreatedRunner>;

    /// All project runners of a project (`GET /projects/:id/runners?type=project_type`, every
    /// page). List entries carry no tags: read them with [`GitLabApi::get_runner`].
    async fn list_runners(&self, project: &ProjectRef) -> Result<Vec<Runner>>;

    /// A runner's details: tags, status and last contact (`GET /runners/:id`).
    async fn get_runner(&self, runner_id: u64) -> Result<RunnerDetails>;

    /// Deletes a runner (`DELETE /runners/:id`).
    async fn delete_runner(&self, runner_id: u64) -> Result<()>;

    /// Whether a file exists on a ref (`HEAD /projects/:id/repository/files/:file_path`).
    async fn file_exists(
        &self,
        project: &ProjectRef,
        file_path: &str,
        ref_name: &str,
    ) -> Result<bool>;

    /// A branch (`GET /projects/:id/repository/branches/:branch`); [`Error::NotFound`] when
    /// it does not exist.
    async fn get_branch(&self, project: &ProjectRef, branch: &str) -> Result<Branch>;

    /// Deletes a branch (`DELETE /projects/:id/repository/branches/:branch`); [`Error::NotFound`]
    /// when it does not exist. GitLab refuses the default branch and protected branches.
    async fn delete_branch(&self, project: &ProjectRef, branch: &str) -> Result<()>;

    /// Commits file actions atomically (`POST /projects/:id/repository/commits`).
    async fn commit_files(&self, project: &ProjectRef, commit: &NewCommit) -> Result<Commit>;

    /// Creates a pipeline (`POST /projects/:id/pipeline`).
    async fn create_pipeline(&self, project: &ProjectRef, new: &NewPipeline) -> Result<Pipeline>;

    /// The newest pipelines of a ref, newest first (`GET /projects/:id/pipelines?ref=`, one
    /// page of up to 100).
    async fn list_pipelines(&self, project: &ProjectRef, ref_name: &str) -> Result<Vec<Pipeline>>;

    /// A pipeline (`GET /projects/:id/pipelines/:pipeline_id`).
    async fn get_pipeline(&self, project: &ProjectRef, pipeline_id: u64) -> Result<Pipeline>;

    /// One page of a pipeline's jobs, newest first (`GET /projects/:id/pipelines/:pipeline_id/jobs`).
    async fn list_pipeline_jobs(
        &self,
        project: &ProjectRef,
        pipeline_id: u64,
        query: &JobsQuery,
    ) -> Result<Page<Job>>;

    /// One page of a project's jobs (builds of every pipeline), newest first
    /// (`GET /projects/:id/jobs` with `scope[]`: GitLab REST docs, "Jobs API → List project
    /// jobs"; token scope `read_api`). GitLab counts nothing on this route
    /// (`paginate_with_strategies(builds, …, without_count: true)`, lib/api/ci/jobs.rb): the
    /// page has [`Page::next_page`] but no `total`/`total_pages`. The route has a rate limit of
    /// its own, 600 requests a minute per user by default (`jobs_index`,
    /// `project_jobs_api_rate_limit`, doc/api/settings.md).
    async fn list_project_jobs(&self, project: &ProjectRef, query: &JobsQuery)
    -> Result<Page<Job>>;

    /// One job (`GET /projects/:id/jobs/:job_id`).
    async fn get_job(&self, project: &ProjectRef, job_id: u64) -> Result<Job>;

    /// Cancels a pipeline's unfinished jobs (`POST /projects/:id/pipelines/:pipeline_id/cancel`).
    async fn cancel_pipeline(&self, project: &ProjectRef, pipeline_id: u64) -> Result<Pipeline>;

    /// A job's log (`GET /projects/:id/jobs/:job_id/trace`: GitLab REST docs, "Jobs API → Get
    /// a log file"; token scope `read_api`). GitLab answers `text/plain` with the raw trace, or
    /// an empty body while the job has none (`trace = build.trace.raw || ''`, lib/api/ci/jobs.rb);
    /// another project's job or an unknown id is [`Error::NotFound`]. At most
    /// [`crate::MAX_TRACE_BYTES`] are read (a longer log is cut there), invalid UTF-8 replaced.
    async fn job_trace(&self, project: &ProjectRef, job_id: u64) -> Result<String>;

    /// Requests this client has sent so far, the transport's own retries included (callers
    /// with a request budget count with it).
    fn requests_sent(&self) -> u64;
}

/// A `dyn GitLabApi`.
pub type DynGitLabApi = dyn GitLabApi;

/// Multi-call helpers on top of [`GitLabApi`], for every implementation.
#[async_trait]
pub trait GitLabApiExt: GitLabApi {
    /// Every job of a pipeline: pages of 100 until `x-next-page` is empty.
    async fn all_pipeline_jobs(&self, project: &ProjectRef, pipeline_id: u64) -> Result<Vec<Job>> {
        let mut jobs = Vec::new();
        let mut query = JobsQuery::page(1);
        loop {
            let page = self
                .list_pipeline_jobs(project, pipeline_id, &query)
                .await?;
            jobs.extend(page.items);
            match page.next_page {
                Some(next) if next > query.page => query.page = next,
                _ => return Ok(jobs),
            }
        }
    }

    /// Up to `max_jobs` of a project's jobs in `scope` (all statuses when empty), newest first
    /// ([`GitLabApi::list_project_jobs`]): pages of `min(max_jobs, 100)` until `x-next-page` is
    /// empty or `max_jobs` are read, so at most `ceil(max_jobs / 100)` requests (transport
    /// retries aside) whatever the project holds. [`Bounded::truncated`] says the project had
    /// more. A bound at the plan's jobs in active pipelines
    /// ([`crate::limits::PlanLimits::max_jobs_at_once`]: 499 on GitLab.com Free) reads every
    /// pending or running job the project can have.
    ///
    /// Pages are offsets into a list that moves while it is read: a job created meanwhile pushes
    /// the older ones down a place, so a job already read is skipped when it comes again (ids
    /// only fall along the list); a job that leaves `scope` meanwhile may make one job of the
    /// next page go unread.
    async fn project_jobs_up_to(
        &self,
        project: &ProjectRef,
        scope: &[JobStatus],
        max_jobs: usize,
    ) -> Result<Bounded<Job>> {
        let max_jobs = max_jobs.max(1);
        let per_page = u32::try_from(max_jobs)
            .unwrap_or(u32::MAX)
            .min(crate::MAX_PER_PAGE);
        let mut query = JobsQuery {
            page: 1,
            per_page,
            scope: scope.to_vec(),
        };
        let mut jobs: Vec<Job> = Vec::new();
        loop {
            let page = self.list_project_jobs(project, &query).await?;
            for job in page.items {
                if jobs.last().is_some_and(|last| job.id >= last.id) {
                    continue;
                }
                if jobs.len() == max_jobs {
                    return Ok(Bounded {
                        items: jobs,
                        truncated: true,
                    });
                }
                jobs.push(job);
            }
            match page.next_page {
                Some(next) if next > query.page => {
                    if jobs.len() == max_jobs {
                        tracing::debug!(%project, max_jobs, "stopping at the bound of jobs to read");
                        return Ok(Bounded {
                            items: jobs,
                            truncated: true,
                        });
                    }
                    query.page = next;
                }
                _ => {
                    return Ok(Bounded {
                        items: jobs,
                        truncated: false,
                    });
                }
            }
        }
    }

    /// Returns the project at `path`, creating it (private, with a README) when it does not
    /// exist. The namespace part of the path must exist; without one, the user's namespace is used.
    async fn get_or_create_project(&self, path: &str) -> Result<Project> {
        let project_ref = ProjectRef::parse(path)?;
        let path = match &project_ref {
            ProjectRef::Id(_) => return self.get_project(&project_ref).await,
            ProjectRef::Path(p) => p.clone(),
        };
        match self.get_project(&project_ref).await {
            Err(Error::NotFound { .. }) => {}
            other => return other,
        }
        let (namespace, name) = match path.rsplit_once('/') {
            Some((ns, name)) => (Some(ns), name),
            None => (None, path.as_str()),
        };
        let mut new = NewProject::new(name);
        if let Some(ns) = namespace {
            new = new.in_namespace(self.get_namespace(ns).await?.id);
        }
        tracing::info!(project = %path, "creating project");
        match self.create_project(&new).await {
            // Lost a race with another creator: read what they made.
            Err(Error::AlreadyExists { .. }) => self.get_project(&project_ref).await,
            other => other,
        }
    }

    /// Creates a runner (`POST /user/runners`) without ever leaving two for one description.
    ///
    /// When the answer is lost ([`Error::may_have_taken_effect`]: a 502 from a proxy after
    /// GitLab acted, a timeout), the POST is not repeated blindly: the project's runners are
    /// listed, and a runner with this description that was not there before the call is the
    /// one it made. GitLab shows a runner's token only in the creation answer, so that runner
    /// cannot be used: it is deleted, then the runner is created once more. Other errors
    /// (and a second lost answer) are returned as they are.
    async fn create_runner_checked(&self, new: &NewRunner) -> Result<CreatedRunner> {
        let project = ProjectRef::Id(new.project_id);
        let mine = |r: &Runner| r.description.as_deref() == Some(new.description.as_str());
        let before: Vec<u64> = self
            .list_runners(&project)
            .await?
            .iter()
            .filter(|r| mine(r))
            .map(|r| r.id)
            .collect();
        let first = match self.create_runner(new).await {
            Err(e) if e.may_have_taken_effect() => e,
            other => return other,
        };
        let made: Vec<u64> = match self.list_runners(&project).await {
            Ok(list) => list
                .iter()
                .filter(|r| mine(r) && !before.contains(&r.id))
                .map(|r| r.id)
                .collect(),
            Err(check) => {
                tracing::warn!(error = %check, "cannot check whether the runner was created");
                return Err(first);
            }
        };
        for id in made {
            tracing::warn!(runner = id, description = %new.description, error = %first,
                "the runner was created but its answer (and token) was lost; deleting it");
            match self.delete_runner(id).await {
                Ok(()) | Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        tracing::info!(description = %new.description, error = %first, "creating the runner once more");
        self.create_runner(new).await
    }

    /// Creates a pipeline (`POST /projects/:id/pipeline`) without ever starting two, looking
    /// for a lost answer's pipeline as long as GitLab's default request timeout allows
    /// ([`LostAnswerPolicy::default`]); see [`GitLabApiExt::create_pipeline_checked_with`].
    async fn create_pipeline_checked(
        &self,
        project: &ProjectRef,
        new: &NewPipeline,
    ) -> Result<Pipeline> {
        self.create_pipeline_checked_with(project, new, &LostAnswerPolicy::default())
            .await
    }

    /// Creates a pipeline (`POST /projects/:id/pipeline`) without ever starting two.
    ///
    /// When the answer is lost ([`Error::may_have_taken_effect`]), the ref's pipelines are
    /// listed: a pipeline that was not there before the call (and not a push pipeline) is the
    /// one it made, and is returned. When the server may still be working on the request
    /// ([`Error::effect_may_follow_late`]: a timeout, a transport failure, a proxy's 502-504),
    /// the listing is repeated every [`LostAnswerPolicy::poll_interval`] until
    /// [`LostAnswerPolicy::window`] has passed since the POST was sent: GitLab goes on creating
    /// the pipeline after the client gave up, until its own request timeout. Only when the last
    /// listing, after that window, shows no new pipeline is the POST sent once more.
    async fn create_pipeline_checked_with(
        &self,
        project: &ProjectRef,
        new: &NewPipeline,
        policy: &LostAnswerPolicy,
    ) -> Result<Pipeline> {
        let before: Vec<u64> = self
            .list_pipelines(project, &new.ref_name)
            .await?
            .iter()
            .map(|p| p.id)
            .collect();
        let sent = tokio::time::Instant::now();
        let first = match self.create_pipeline(project, new).await {
            Err(e) if e.may_have_taken_effect() => e,
            other => return other,
        };
        let deadline = if first.effect_may_follow_late() {
            sent + policy.window()
        } else {
            tokio::time::Instant::now()
        };
        if first.effect_may_follow_late() {
            tracing::info!(error = %first, window_secs = policy.window().as_secs_f64(),
                "the pipeline's answer was lost while GitLab may still be creating it; looking for it until GitLab's request timeout has passed");
        }
        loop {
            let last_look_ok = match self.list_pipelines(project, &new.ref_name).await {
                Ok(list) => {
                    let made = list
                        .into_iter()
                        .filter(|p| !before.contains(&p.id) && p.source.as_deref() != Some("push"))
                        .max_by_key(|p| p.id);
                    if let Some(pipeline) = made {
                        tracing::warn!(pipeline = pipeline.id, error = %first,
                            "the pipeline was created but its answer was lost; using it");
                        return Ok(pipeline);
                    }
                    true
                }
                Err(check) => {
                    tracing::warn!(error = %check, "cannot check whether the pipeline was created");
                    false
                }
            };
            let now = tokio::time::Instant::now();
            if now >= deadline {
                if !last_look_ok {
                    return Err(first);
                }
                break;
            }
            tokio::time::sleep(policy.poll_interval.min(deadline - now)).await;
        }
        tracing::info!(error = %first, "the pipeline was not created; creating it once more");
        self.create_pipeline(project, new).await
    }

    /// Creates or updates one file in a single commit on `branch`. A `branch` that does not
    /// exist yet is created from the project's default branch (`start_branch`).
    ///
    /// When the commit's answer is lost ([`Error::may_have_taken_effect`]), the commit is not
    /// sent again blindly: if the branch's head moved (or the branch appeared) since it was
    /// read just before, the commit took effect and the new head is returned; otherwise it is
    /// sent once more.
    async fn put_file(
        &self,
        project: &ProjectRef,
        branch: &str,
        file_path: &str,
        content: &str,
        message: &str,
    ) -> Result<Commit> {
        let (start_branch, before) = match self.get_branch(project, branch).await {
            Ok(b) => (None, Head::At(b.commit.map(|c| c.id))),
            Err(Error::NotFound { .. }) => (
                self.get_project(project).await?.default_branch,
                Head::Missing,
            ),
            Err(e) => return Err(e),
        };
        // On a new branch the file's current state is the start branch's.
        let read_from = start_branch.as_deref().unwrap_or(branch);
        let action = if self.file_exists(project, file_path, read_from).await? {
            FileAction::Update
        } else {
            FileAction::Create
        };
        let commit = NewCommit {
            branch: branch.to_owned(),
            start_branch,
            commit_message: message.to_owned(),
            actions: vec![CommitAction {
                action,
                file_path: file_path.to_owned(),
                content: Some(content.to_owned()),
            }],
        };
        let first = match self.commit_files(project, &commit).await {
            Err(e) if e.may_have_taken_effect() => e,
            other => return other,
        };
        let after = match self.get_branch(project, branch).await {
            Ok(b) => Head::At(b.commit.map(|c| c.id)),
            Err(Error::NotFound { .. }) => Head::Missing,
            Err(check) => {
                tracing::warn!(error = %check, "cannot check whether the commit was made");
                return Err(first);
            }
        };
        match (&before, after) {
            // GitLab named no head commit: whether the commit happened cannot be told.
            (_, Head::At(None)) | (Head::At(None), _) => Err(first),
            (Head::Missing, Head::At(Some(id))) => Ok(made_commit(id, message, &first)),
            (Head::At(Some(old)), Head::At(Some(id))) if *old != id => {
                Ok(made_commit(id, message, &first))
            }
            _ => {
                tracing::info!(error = %first, branch, "the commit was not made; committing once more");
                self.commit_files(project, &commit).await
            }
        }
    }
}

/// A branch's head as read before and after a commit.
enum Head {
    /// The branch does not exist.
    Missing,
    /// The branch's head commit, if GitLab named it.
    At(Option<String>),
}

/// The commit a lost answer would have returned: the branch's new head.
fn made_commit(id: String, message: &str, lost: &Error) -> Commit {
    tracing::warn!(commit = %id, error = %lost, "the commit was made but its answer was lost; using the branch's new head");
    Commit {
        id,
        title: message.lines().next().unwrap_or_default().to_owned(),
        created_at: None,
    }
}

impl<T: GitLabApi + ?Sized> GitLabApiExt for T {}

/// How long the effect of a POST whose answer was lost may still appear on GitLab, and how
/// often to look for it meanwhile ([`GitLabApiExt::create_pipeline_checked_with`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LostAnswerPolicy {
    /// GitLab's request timeout: a request still running then is ended by GitLab.
    pub server_timeout: Duration,
    /// Added to the timeout for the time a request may wait for a Puma worker first.
    pub margin: Duration,
    /// How often to list while waiting.
    pub poll_interval: Duration,
}

impl LostAnswerPolicy {
    /// GitLab's default request timeout, which GitLab.com keeps: 60 s ("The default Puma
    /// timeout is 60 seconds", `config/initializers/rack_timeout.rb`,
    /// doc/administration/operations/puma.md "Change the worker timeout"; "GitLab.com uses the
    /// default of 60 seconds for Puma request timeouts", doc/user/gitlab_com/_index.md "Puma").
    /// A self-managed instance may raise it (`GITLAB_RAILS_RACK_TIMEOUT`).
    pub const GITLAB_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

    /// Sets the server's request timeout.
    #[must_use]
    pub fn with_server_timeout(mut self, timeout: Duration) -> Self {
        self.server_timeout = timeout;
        self
    }

    /// Sets the margin.
    #[must_use]
    pub fn with_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// Sets the listing interval.
    #[must_use]
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// How long after the POST was sent its effect may still appear.
    pub fn window(&self) -> Duration {
        self.server_timeout + self.margin
    }
}

impl Default for LostAnswerPolicy {
    /// GitLab's default request timeout plus 15 s, listing every 5 s.
    fn default() -> Self {
        Self {
            server_timeout: Self::GITLAB_REQUEST_TIMEOUT,
            margin: Duration::from_secs(15),
            poll_interval: Duration::from_secs(5),
        }
    }
}
