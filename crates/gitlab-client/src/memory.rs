//! In-memory GitLab with a runner-simulator interface, pagination and 429s, on tokio's clock.
//!
//! [`InMemoryGitLab`] implements [`GitLabApi`] over shared state (clones share it). It models
//! what glrunner depends on: projects with files on branches, project runners with tags,
//! pipelines created from the committed `.gitlab-ci.yml` (expanded with [`crate::ci::expand`];
//! all jobs start `pending`, stages are not ordered), jobs listed newest first with
//! offset pagination (`per_page` ≤ 100, `x-next-page`/`x-total` equivalents in [`Page`]),
//! and a configurable request rate limit answering [`Error::Throttled`] like a 429.
//!
//! # As strict as GitLab where glrunner depends on it
//!
//! - A commit through the Commits API starts a **push pipeline** when the branch has a
//!   `.gitlab-ci.yml`, unless the message has `[skip ci]`/`[ci skip]` or the file's
//!   `workflow: rules` exclude `CI_PIPELINE_SOURCE == "push"` ([`crate::ci::workflow_allows`]);
//!   `POST /pipeline` is refused when the rules exclude `api`.
//! - A commit to a branch that does not exist needs `start_branch` (except the first commit
//!   of an empty repository).
//! - [`MemoryConfig::with_refuse_pipeline_variables`]: GitLab.com's default for new
//!   namespaces since 17.7 ("Insufficient permissions to set pipeline variables").
//! - [`MemoryConfig::with_max_jobs_per_pipeline`]: GitLab.com's jobs-per-pipeline limit
//!   (500 on Free); a larger pipeline is refused with GitLab's message.
//! - `GET /version`, the token's scopes and the user's role ([`MemoryConfig::with_version`],
//!   [`MemoryConfig::with_token_scopes`], [`MemoryConfig::with_access_level`],
//!   [`MemoryConfig::with_admin`]) answer like GitLab. Every call checks the token's scopes the
//!   way GitLab's API guard does (any scope registered for the route: `api` everywhere,
//!   `read_api` on GET, `read_user` on `GET /user` and `/version`, `create_runner` on
//!   `POST /user/runners`, any scope on `GET /personal_access_tokens/self`; sources in
//!   [`crate::permissions`]) and refuses with GitLab's `insufficient_scope` answer.
//!   `POST /user/runners` is refused before 15.10 and below the Maintainer role, unless the
//!   user is an administrator acting as one.
//! - [`MemoryConfig::with_plan`] gives namespaces a plan, shown only to those who can
//!   administer the namespace (EE's `can_admin_namespace`, see [`crate::limits`]);
//!   [`MemoryConfig::with_max_active_jobs`] is GitLab.com's limit of jobs in active pipelines.
//! - [`InMemoryGitLab::slow_pipeline_creation`]: a pipeline POST whose client gives up while
//!   GitLab goes on and creates the pipeline later (the "slow effect" fault).
//! - List endpoints return GitLab's list shapes: runner list entries carry no tags
//!   ([`GitLabApi::get_runner`] does); `scope[]` accepts only the documented job statuses.
//! - A runner is `never_contacted` until its manager contacts GitLab
//!   ([`InMemoryGitLab::runner_contacted`], or asking for jobs), then `online` for two
//!   hours after each contact (GitLab's `ONLINE_CONTACT_TIMEOUT`), then `offline`.
//!
//! # Runner simulator interface
//!
//! The sandbox world plays GitLab Runner against this backend:
//!
//! 1. [`InMemoryGitLab::runner_id_for_token`] maps the `glrt-…` token a release was
//!    installed with to its runner;
//! 2. [`InMemoryGitLab::request_jobs`]`(runner_id, max)` hands out up to `max` pending jobs
//!    the runner may take (tags ⊆ runner tags; untagged jobs only with `run_untagged`; the
//!    runner's project; within [`InMemoryGitLab::set_runner_limit`]). As on GitLab, a job
//!    becomes `running` with `started_at` when a runner picks it up; pod start latency is
//!    therefore part of run time, not queue time;
//! 3. [`InMemoryGitLab::finish_job`]`(job_id, outcome)` ends it (`success`, `failed` with a
//!    `failure_reason`, or `canceled`) and frees the runner's slot.
//!
//! [`simulate_runners`] is a minimal fake runner driving that interface (fixed pod start,
//! jitter and job duration), for this crate's own tests, the HTTP-double tests of the
//! `loadtest` command and the watch benchmark (which count requests, not time). It is no
//! timing model and no example reports its makespans: the sandbox's calibrated runner
//! simulator (`glrunner-sandbox`, the one `full_flow` and the sandbox `loadtest` run on)
//! plays GitLab Runner on Fargate.
//!
//! # Time
//!
//! Durations use `tokio::time` only; wall timestamps come from a [`VirtualClock`] (a base
//! timestamp plus tokio's elapsed time), so everything runs on a paused tokio clock.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use tokio::time::Instant;

use crate::api::GitLabApi;
use crate::ci;
use crate::error::{Error, Result};
use crate::secret::SecretToken;
use crate::types::{
    Branch, BranchCommit, Commit, CreatedRunner, FileAction, Job, JobRunner, JobStatus, JobsQuery,
    Member, MemberScope, Namespace, NewCommit, NewPipeline, NewProject, NewRunner, Page, Pipeline,
    PipelineStatus, Project, ProjectRef, Runner, RunnerDetails, ServerVersion, TokenInfo, User,
    access_level,
};

/// Wall-clock timestamps for simulated time: `base + (tokio now − origin)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtualClock {
    base: Timestamp,
    origin: Instant,
}

impl VirtualClock {
    /// A clock reading `base` now, advancing with tokio's clock (paused or not).
    pub fn new(base: Timestamp) -> Self {
        Self {
            base,
            origin: Instant::now(),
        }
    }

    /// A clock starting at the current wall time.
    pub fn starting_now() -> Self {
        Self::new(Timestamp::now())
    }

    /// Time elapsed on tokio's clock since the clock was created.
    pub fn elapsed(&self) -> Duration {
        self.origin.elapsed()
    }

    /// The virtual timestamp of a tokio instant (past or future).
    pub fn at(&self, instant: Instant) -> Timestamp {
        let offset = if instant >= self.origin {
            jiff::SignedDuration::try_from(instant - self.origin)
        } else {
            jiff::SignedDuration::try_from(self.origin - instant).map(|d| -d)
        };
        self.base
            .checked_add(offset.unwrap_or(jiff::SignedDuration::MAX))
            .unwrap_or(Timestamp::MAX)
    }

    /// The current virtual timestamp.
    pub fn now(&self) -> Timestamp {
        let elapsed =
            jiff::SignedDuration::try_from(self.elapsed()).unwrap_or(jiff::SignedDuration::MAX);
        self.base.checked_add(elapsed).unwrap_or(Timestamp::MAX)
    }
}

/// Behaviour knobs of the in-memory backend.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct MemoryConfig {
    /// Username of the token's user (and its namespace path).
    pub username: String,
    /// `per_page` when a query asks for 0 (GitLab's default is 20).
    pub default_per_page: u32,
    /// Answer [`Error::Throttled`] past this many API requests per minute (GitLab.com: 2,000).
    pub rate_limit_per_minute: Option<u32>,
    /// Base of `web_url`s.
    pub web_url: String,
    /// Refuse pipeline variables like GitLab.com does by default in new namespaces.
    pub refuse_pipeline_variables: bool,
    /// Refuse pipelines with more jobs than this (`ci_pipeline_size`; GitLab.com: 500 on Free,
    /// 2,000 on Ultimate).
    pub max_jobs_per_pipeline: Option<u32>,
    /// Refuse a pipeline when the project's alive pipelines and it would hold this many jobs
    /// or more (`ci_active_jobs`; GitLab.com: 500 on Free).
    pub max_active_jobs: Option<u32>,
    /// What `GET /version` answers.
    pub version: String,
    /// The token's scopes (`GET /personal_access_tokens/self`).
    pub token_scopes: Vec<String>,
    /// The user's role in every group and in projects outside the user's own namespace (the
    /// user owns its own namespace).
    pub access_level: u32,
    /// The plan of every namespace (`Some("free")`: GitLab.com Free; `Some("default")`: a
    /// self-managed EE instance; `None`: GitLab CE, which has no plans). Shown only to those
    /// who can administer the namespace.
    pub plan: Option<String>,
    /// Whether the token's user is an instance administrator.
    pub is_admin: bool,
    /// Whether the instance has Admin Mode on (an administrator's token then acts as one only
    /// with the `admin_mode` scope).
    pub admin_mode: bool,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            username: "sandbox".into(),
            default_per_page: 20,
            rate_limit_per_minute: None,
            web_url: "https://gitlab.sandbox.invalid".into(),
            refuse_pipeline_variables: false,
            max_jobs_per_pipeline: None,
            max_active_jobs: None,
            version: "18.9.0".into(),
            token_scopes: vec!["api".into(), "create_runner".into()],
            access_level: access_level::OWNER,
            plan: None,
            is_admin: false,
            admin_mode: false,
        }
    }
}

impl MemoryConfig {
    /// Sets the request rate limit.
    #[must_use]
    pub fn with_rate_limit_per_minute(mut self, limit: Option<u32>) -> Self {
        self.rate_limit_per_minute = limit;
        self
    }

    /// Refuses pipeline variables ("Insufficient permissions to set pipeline variables").
    #[must_use]
    pub fn with_refuse_pipeline_variables(mut self, refuse: bool) -> Self {
        self.refuse_pipeline_variables = refuse;
        self
    }

    /// Refuses pipelines with more than `limit` jobs.
    #[must_use]
    pub fn with_max_jobs_per_pipeline(mut self, limit: Option<u32>) -> Self {
        self.max_jobs_per_pipeline = limit;
        self
    }

    /// Sets what `GET /version` answers.
    #[must_use]
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Sets the token's scopes.
    #[must_use]
    pub fn with_token_scopes(mut self, scopes: &[&str]) -> Self {
        self.token_scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// Sets the user's role in groups and in projects outside its own namespace.
    #[must_use]
    pub fn with_access_level(mut self, level: u32) -> Self {
        self.access_level = level;
        self
    }

    /// Gives every namespace a plan (`free`, `premium`, `ultimate`, ... on GitLab.com;
    /// `default` on self-managed EE).
    #[must_use]
    pub fn with_plan(mut self, plan: Option<&str>) -> Self {
        self.plan = plan.map(str::to_owned);
        self
    }

    /// Sets the limit of jobs in active pipelines.
    #[must_use]
    pub fn with_max_active_jobs(mut self, limit: Option<u32>) -> Self {
        self.max_active_jobs = limit;
        self
    }

    /// Makes the token's user an instance administrator.
    #[must_use]
    pub fn with_admin(mut self, is_admin: bool) -> Self {
        self.is_admin = is_admin;
        self
    }

    /// Turns the instance's Admin Mode on or off.
    #[must_use]
    pub fn with_admin_mode(mut self, on: bool) -> Self {
        self.admin_mode = on;
        self
    }
}

/// GitLab counts a runner online while its last contact is younger than this.
pub const ONLINE_CONTACT_TIMEOUT: Duration = Duration::from_secs(2 * 3600);

/// GitLab's description of an `insufficient_scope` refusal (rack-oauth2's
/// `DEFAULT_DESCRIPTION[:insufficient_scope]`, lib/rack/oauth2/server/resource/error.rb, which
/// `API::APIGuard` answers with); the HTTP double answers GitLab's OAuth body for it.
pub const INSUFFICIENT_SCOPE: &str =
    "The request requires higher privileges than provided by the access token.";

/// Which scopes GitLab registers for a route: the endpoint class's, then `API::API`'s
/// (`scopes_registered_for_endpoint`, lib/api/api_guard.rb). Sources in [`crate::permissions`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// GET or HEAD of an endpoint that registers no scope of its own.
    Read,
    /// POST, PUT or DELETE of an endpoint that registers no scope of its own.
    Write,
    /// `GET /user`, `GET /version`: `API::Users` and `API::Version` add `read_user` for GET.
    ReadUser,
    /// `POST /user/runners`: `API::UserRunners` adds `create_runner` for POST.
    CreateRunner,
    /// `GET /personal_access_tokens/self`: `allow_access_with_scope(Gitlab::Auth.all_available_scopes)`
    /// (lib/api/personal_access_tokens/self_information.rb).
    TokenSelf,
}

impl Route {
    /// The registered scopes in GitLab's order, each with whether its `if:` holds here.
    fn registered(self) -> Vec<(&'static str, bool)> {
        let get = matches!(self, Route::Read | Route::ReadUser | Route::TokenSelf);
        let mut own = match self {
            Route::ReadUser => vec![("read_user", true)],
            Route::CreateRunner => vec![("create_runner", true)],
            _ => Vec::new(),
        };
        // `allow_access_with_scope :api` and `:read_api, if: get? || head?` (lib/api/api.rb).
        own.extend([("api", true), ("read_api", get)]);
        own
    }
}

/// A job handed to a runner by [`InMemoryGitLab::request_jobs`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssignedJob {
    /// Job id (pass to [`InMemoryGitLab::finish_job`]).
    pub job_id: u64,
    /// Project id.
    pub project_id: u64,
    /// Pipeline id.
    pub pipeline_id: u64,
    /// Runner that took it.
    pub runner_id: u64,
    /// Job name (`loadtest-a 3/200`).
    pub name: String,
    /// Image to run.
    pub image: Option<String>,
    /// The job's `cache:`, when it has one.
    pub cache: Option<crate::ci::JobCache>,
    /// The job's `script:` lines.
    pub script: Vec<String>,
    /// Tags the job required.
    pub tags: Vec<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When the runner picked it up.
    pub started_at: Timestamp,
}

/// How a simulated job ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobOutcome {
    /// The script passed.
    Success,
    /// The job failed with this `failure_reason` (`script_failure`, `runner_system_failure`…).
    Failed {
        /// GitLab's `failure_reason`.
        reason: String,
    },
    /// The job was canceled.
    Canceled,
}

#[derive(Debug)]
struct ProjectState {
    project: Project,
    branches: BTreeMap<String, BTreeMap<String, String>>,
    heads: BTreeMap<String, String>,
}

#[derive(Debug)]
struct RunnerState {
    runner: Runner,
    tags: Vec<String>,
    /// `tags` as the set a job's required tags must be a subset of.
    tag_set: BTreeSet<String>,
    contacted_at: Option<Timestamp>,
    project_id: u64,
    token: SecretToken,
    run_untagged: bool,
    limit: Option<usize>,
    running: BTreeSet<u64>,
}

#[derive(Debug)]
struct JobState {
    job: Job,
    project_id: u64,
    pipeline_id: u64,
    image: Option<String>,
    runner_id: Option<u64>,
    /// The job's `cache:` (key, policy), for a runner that plays it.
    cache: Option<crate::ci::JobCache>,
    /// The job's `script:`, for a runner that plays it.
    script: Vec<String>,
    /// The job log a runner wrote ([`InMemoryGitLab::append_trace`]), served by
    /// [`GitLabApi::job_trace`].
    trace: String,
    /// Its key in [`State::pending`], computed once (a runner's every pickup looks it up).
    pending_key: PendingKey,
}

/// The jobs of one pipeline and the counts its status derives from, kept up to date by
/// [`State::add_job`], [`State::start_job`] and [`State::end_job`] so that neither a status
/// refresh nor a job listing walks every job of the instance.
#[derive(Debug, Default)]
struct PipelineJobs {
    ids: Vec<u64>,
    by_status: BTreeMap<JobStatus, usize>,
    started: usize,
    first_start: Option<Timestamp>,
    last_finish: Option<Timestamp>,
    failed: usize,
    canceled: usize,
}

/// Pending jobs keyed by (project, required tags sorted and deduplicated), oldest first: a job
/// request looks only at the tag sets its runner can take.
type PendingIndex = BTreeMap<PendingKey, BTreeSet<u64>>;

/// A project and a set of required tags (sorted and deduplicated).
type PendingKey = (u64, Vec<String>);

/// A job's key in the [`PendingIndex`]: tags sorted and deduplicated, so that a runner finds the
/// jobs it may take by looking up the subsets of its own tags.
fn pending_key(project_id: u64, tags: &[String]) -> PendingKey {
    let tags: BTreeSet<&String> = tags.iter().collect();
    (project_id, tags.into_iter().cloned().collect())
}

/// Runners with more tags than this are matched by scanning the project's tag sets instead of
/// looking up each subset of their tags (2^n lookups).
const SUBSET_LOOKUP_MAX_TAGS: usize = 8;

#[derive(Debug, Default)]
struct State {
    next_id: BTreeMap<&'static str, u64>,
    namespaces: Vec<Namespace>,
    projects: BTreeMap<u64, ProjectState>,
    runners: BTreeMap<u64, RunnerState>,
    /// Runner and pipeline creations and runner deletions, in order ([`InMemoryGitLab::history`]).
    history: Vec<history::Event>,
    /// Runners by a hash of their token (never the token itself: this state derives `Debug`);
    /// entries of deleted runners stay and are skipped. A simulator looks a token up once per
    /// release per change of the fleet, so a scan of every runner would cost releases cubed.
    runners_by_token: BTreeMap<u64, Vec<u64>>,
    pipelines: BTreeMap<u64, Pipeline>,
    /// Every job; change a job's status only through `add_job`, `start_job` and `end_job`,
    /// which keep `pending` and `pipeline_jobs` in step.
    jobs: BTreeMap<u64, JobState>,
    pending: PendingIndex,
    pipeline_jobs: BTreeMap<u64, PipelineJobs>,
    /// Each project's job ids in creation order (ids only grow, so this is ascending): a
    /// project listing reads it from the end instead of walking every job of the instance.
    project_jobs: BTreeMap<u64, Vec<u64>>,
    /// Bumped whenever a job becomes pending in a project: a simulated runner that found nothing
    /// to take waits on it instead of polling ([`InMemoryGitLab::pending_signal`]).
    pending_signals: BTreeMap<u64, tokio::sync::watch::Sender<u64>>,
    requests: u64,
    window: Option<(Instant, u32)>,
    forced_throttles: u32,
    forced_retry_after: Duration,
    /// Pending "slow effect" faults of `POST /pipeline`: (client gives up after, effect after).
    slow_pipelines: std::collections::VecDeque<(Duration, Duration)>,
    /// The token's scopes when a test changed them ([`InMemoryGitLab::set_token_scopes`]).
    token_scopes: Option<Vec<String>>,
}

impl State {
    /// The token's scopes now.
    fn scopes<'a>(&'a self, config: &'a MemoryConfig) -> &'a [String] {
        self.token_scopes.as_deref().unwrap_or(&config.token_scopes)
    }
}

impl State {
    fn id(&mut self, kind: &'static str) -> u64 {
        let start = match kind {
            "namespace" => 1,
            "project" => 100,
            "runner" => 500,
            "pipeline" => 1000,
            "commit" => 1,
            _ => 10_000,
        };
        let next = self.next_id.entry(kind).or_insert(start);
        let id = *next;
        *next += 1;
        id
    }

    fn project_id(&self, project: &ProjectRef, action: &'static str) -> Result<u64> {
        let found = match project {
            ProjectRef::Id(id) => self.projects.get(id).map(|p| p.project.id),
            ProjectRef::Path(path) => self
                .projects
                .values()
                .find(|p| p.project.path_with_namespace.eq_ignore_ascii_case(path))
                .map(|p| p.project.id),
        };
        found.ok_or_else(|| Error::not_found(action, project.to_string()))
    }

    fn pipeline_of(
        &self,
        project_id: u64,
        pipeline_id: u64,
        action: &'static str,
    ) -> Result<&Pipeline> {
        self.pipelines
            .get(&pipeline_id)
            .filter(|p| p.project_id == project_id)
            .ok_or_else(|| {
                Error::not_found(
                    action,
                    format!("pipeline {pipeline_id} of project {project_id}"),
                )
            })
    }

    /// The pipelines of a project on a ref, and whether the ref exists (for `POST /pipeline`
    /// and push pipelines alike).
    fn new_pipeline(
        &mut self,
        project_id: u64,
        ref_name: &str,
        source: &str,
        now: Timestamp,
        config: &MemoryConfig,
    ) -> Result<Option<Pipeline>> {
        let resource = || format!("pipeline on ref {ref_name:?} of project {project_id}");
        let p = &self.projects[&project_id];
        let files = p
            .branches
            .get(ref_name)
            .ok_or_else(|| Error::invalid("create", resource(), "Reference not found"))?;
        let yaml = files
            .get(".gitlab-ci.yml")
            .ok_or_else(|| Error::invalid("create", resource(), "Missing CI config file"))?;
        let variables = std::collections::BTreeMap::from([
            ("CI_PIPELINE_SOURCE".to_owned(), source.to_owned()),
            ("CI_COMMIT_BRANCH".to_owned(), ref_name.to_owned()),
            ("CI_COMMIT_REF_NAME".to_owned(), ref_name.to_owned()),
        ]);
        if !ci::workflow_allows(yaml, &variables)? {
            // GitLab creates nothing for a push; the API answers 400.
            return if source == "api" {
                Err(Error::invalid(
                    "create",
                    resource(),
                    "Pipeline filtered out by workflow rules.",
                ))
            } else {
                Ok(None)
            };
        }
        let expanded = ci::expand(yaml)?;
        if expanded.is_empty() {
            return Err(Error::invalid(
                "create",
                resource(),
                "No stages / jobs for this pipeline.",
            ));
        }
        // `Chain::Limit::Size`, then `Chain::Limit::ActiveJobs` (see `crate::limits`).
        if let Some(limit) = config.max_jobs_per_pipeline.filter(|l| *l > 0)
            && expanded.len() > limit as usize
        {
            return Err(Error::invalid(
                "create",
                resource(),
                crate::limits::pipeline_size_exceeded(limit, &config.web_url),
            ));
        }
        if let Some(limit) = config.max_active_jobs.filter(|l| *l > 0) {
            // Every job of the project's alive pipelines created in the last 24 hours, plus
            // the new pipeline's (`count_persisted_jobs_in_all_alive_pipelines +
            // count_current_pipeline_jobs`), against `subject >= limit`.
            let since = now - jiff::SignedDuration::from_hours(24);
            let alive: usize = self
                .pipelines
                .values()
                .filter(|p| p.project_id == project_id && p.created_at >= since)
                .filter(|p| {
                    matches!(
                        p.status,
                        PipelineStatus::Created
                            | PipelineStatus::WaitingForResource
                            | PipelineStatus::Preparing
                            | PipelineStatus::Pending
                            | PipelineStatus::Running
                    )
                })
                .map(|p| self.pipeline_jobs.get(&p.id).map_or(0, |a| a.ids.len()))
                .sum();
            if alive + expanded.len() >= limit as usize {
                return Err(Error::invalid(
                    "create",
                    resource(),
                    crate::limits::ACTIVE_JOBS_EXCEEDED,
                ));
            }
        }
        let sha = p.heads.get(ref_name).cloned().unwrap_or_default();
        let web = p.project.web_url.clone();
        let pipeline_id = self.id("pipeline");
        let iid = self
            .pipelines
            .values()
            .filter(|p| p.project_id == project_id)
            .count() as u64
            + 1;
        let pipeline = Pipeline {
            id: pipeline_id,
            iid,
            project_id,
            status: PipelineStatus::Pending,
            ref_name: ref_name.to_owned(),
            sha,
            source: Some(source.to_owned()),
            created_at: now,
            updated_at: Some(now),
            started_at: None,
            finished_at: None,
            duration: None,
            queued_duration: None,
            web_url: format!("{web}/-/pipelines/{pipeline_id}"),
        };
        self.record_pipeline_created(&pipeline);
        self.pipelines.insert(pipeline_id, pipeline.clone());
        for e in expanded {
            let job_id = self.id("job");
            let job = Job {
                id: job_id,
                name: e.name,
                stage: e.stage,
                status: JobStatus::Pending,
                tag_list: e.tags,
                created_at: now,
                started_at: None,
                finished_at: None,
                duration: None,
                queued_duration: None,
                failure_reason: None,
                allow_failure: false,
                runner: None,
                web_url: format!("{web}/-/jobs/{job_id}"),
            };
            self.add_job(JobState {
                pending_key: pending_key(project_id, &job.tag_list),
                job,
                project_id,
                pipeline_id,
                image: e.image,
                runner_id: None,
                trace: String::new(),
                cache: e.cache,
                script: e.script,
            });
        }
        tracing::debug!(
            pipeline = pipeline_id,
            project = project_id,
            source,
            "sandbox pipeline created"
        );
        Ok(Some(pipeline))
    }

    fn release_runner_slot(&mut self, job_id: u64) {
        if let Some(runner_id) = self.jobs.get(&job_id).and_then(|j| j.runner_id)
            && let Some(r) = self.runners.get_mut(&runner_id)
        {
            r.running.remove(&job_id);
            // A runner at its limit may take a job again.
            if r.limit.is_some()
                && let Some(signal) = self.pending_signals.get(&r.project_id)
            {
                signal.send_modify(|n| *n += 1);
            }
        }
    }

    /// Adds a new job (pending unless already finished) to the indexes.
    fn add_job(&mut self, job: JobState) {
        let id = job.job.id;
        self.project_jobs
            .entry(job.project_id)
            .or_default()
            .push(id);
        let agg = self.pipeline_jobs.entry(job.pipeline_id).or_default();
        agg.ids.push(id);
        *agg.by_status.entry(job.job.status).or_insert(0) += 1;
        if job.job.status == JobStatus::Pending {
            match self.pending.get_mut(&job.pending_key) {
                Some(ids) => {
                    ids.insert(id);
                }
                None => {
                    self.pending
                        .insert(job.pending_key.clone(), BTreeSet::from([id]));
                }
            }
            if let Some(signal) = self.pending_signals.get(&job.project_id) {
                signal.send_modify(|n| *n += 1);
            }
        }
        self.jobs.insert(id, job);
    }

    /// Moves a pending job to running on `runner`.
    fn start_job(&mut self, id: u64, runner: JobRunner, now: Timestamp) -> Option<&JobState> {
        let j = self.jobs.get_mut(&id)?;
        if j.job.status != JobStatus::Pending {
            return None;
        }
        if let Some(set) = self.pending.get_mut(&j.pending_key) {
            set.remove(&id);
        }
        j.job.status = JobStatus::Running;
        j.job.started_at = Some(now);
        j.job.queued_duration = Some(now.duration_since(j.job.created_at).as_secs_f64());
        j.runner_id = Some(runner.id);
        j.job.runner = Some(runner);
        let agg = self.pipeline_jobs.entry(j.pipeline_id).or_default();
        move_status(agg, JobStatus::Pending, JobStatus::Running);
        agg.started += 1;
        agg.first_start = Some(agg.first_start.map_or(now, |t| t.min(now)));
        Some(j)
    }

    /// Ends an unfinished job with `status` (a finished one is left alone).
    fn end_job(
        &mut self,
        id: u64,
        status: JobStatus,
        failure_reason: Option<String>,
        now: Timestamp,
    ) {
        let Some(j) = self.jobs.get_mut(&id) else {
            return;
        };
        let before = j.job.status;
        if before.is_finished() {
            return;
        }
        if before == JobStatus::Pending
            && let Some(set) = self.pending.get_mut(&j.pending_key)
        {
            set.remove(&id);
        }
        j.job.status = status;
        if failure_reason.is_some() {
            j.job.failure_reason = failure_reason;
        }
        j.job.finished_at = Some(now);
        j.job.duration = j
            .job
            .started_at
            .map(|s| now.duration_since(s).as_secs_f64());
        let agg = self.pipeline_jobs.entry(j.pipeline_id).or_default();
        move_status(agg, before, status);
        agg.last_finish = Some(agg.last_finish.map_or(now, |t| t.max(now)));
        if status == JobStatus::Failed && !j.job.allow_failure {
            agg.failed += 1;
        }
        if status == JobStatus::Canceled {
            agg.canceled += 1;
        }
    }

    /// Up to `max` pending jobs runner `r` may take, oldest first: GitLab's `accepting_tags?`
    /// (app/models/ci/runner.rb, lib/gitlab/ci/matching/runner_matcher.rb): `(run_untagged ||
    /// build.has_tags?) && (build.tag_list - tag_list).empty?`.
    fn pickable(
        &self,
        project_id: u64,
        tags: &BTreeSet<String>,
        run_untagged: bool,
        max: usize,
    ) -> Vec<u64> {
        let mut picked: Vec<u64> = Vec::new();
        if tags.len() <= SUBSET_LOOKUP_MAX_TAGS {
            // The tag sets a runner can take are exactly the subsets of its tags: look each up
            // instead of walking every tag set of the project (one per shard in a big fleet).
            let tags: Vec<&String> = tags.iter().collect();
            for mask in 0u32..(1 << tags.len()) {
                if mask == 0 && !run_untagged {
                    continue;
                }
                let subset: Vec<String> = tags
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, t)| (*t).clone())
                    .collect();
                if let Some(ids) = self.pending.get(&(project_id, subset)) {
                    picked.extend(ids.iter().take(max));
                }
            }
        } else {
            let range = (project_id, Vec::new())..(project_id.saturating_add(1), Vec::new());
            for ((_, required), ids) in self.pending.range(range) {
                let fits = if required.is_empty() {
                    run_untagged
                } else {
                    required.iter().all(|t| tags.contains(t))
                };
                if fits {
                    picked.extend(ids.iter().take(max));
                }
            }
        }
        picked.sort_unstable();
        picked.truncate(max);
        picked
    }

    fn refresh_pipeline(&mut self, pipeline_id: u64, now: Timestamp) {
        let Some(agg) = self.pipeline_jobs.get(&pipeline_id) else {
            return;
        };
        let any_active = agg
            .by_status
            .iter()
            .any(|(status, n)| *n > 0 && !status.is_finished());
        let any_started = agg.started > 0;
        let first_start = agg.first_start;
        let last_finish = agg.last_finish;
        let failed = agg.failed > 0;
        let canceled = agg.canceled > 0;
        let Some(p) = self.pipelines.get_mut(&pipeline_id) else {
            return;
        };
        if p.status.is_finished() {
            return;
        }
        p.updated_at = Some(now);
        p.started_at = p.started_at.or(first_start);
        if any_active {
            p.status = if any_started {
                PipelineStatus::Running
            } else {
                PipelineStatus::Pending
            };
            return;
        }
        p.status = if failed {
            PipelineStatus::Failed
        } else if canceled {
            PipelineStatus::Canceled
        } else {
            PipelineStatus::Success
        };
        p.finished_at = last_finish.or(Some(now));
        if let (Some(s), Some(f)) = (p.started_at, p.finished_at) {
            p.duration = Some(f.duration_since(s).as_secs_f64());
        }
        p.queued_duration = p
            .started_at
            .map(|s| s.duration_since(p.created_at).as_secs_f64());
    }
}

struct Inner {
    state: Mutex<State>,
    clock: VirtualClock,
    config: MemoryConfig,
}

mod history;
pub use history::Event;

/// The in-memory GitLab. Clones share state; see the [module docs](self).
#[derive(Clone)]
pub struct InMemoryGitLab {
    inner: Arc<Inner>,
}

impl Default for InMemoryGitLab {
    fn default() -> Self {
        Self::new(MemoryConfig::default())
    }
}

impl std::fmt::Debug for InMemoryGitLab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.lock();
        f.debug_struct("InMemoryGitLab")
            .field("projects", &st.projects.len())
            .field("runners", &st.runners.len())
            .field("pipelines", &st.pipelines.len())
            .field("jobs", &st.jobs.len())
            .field("requests", &st.requests)
            .finish()
    }
}

impl InMemoryGitLab {
    /// A fresh instance with a clock starting at the current wall time.
    pub fn new(config: MemoryConfig) -> Self {
        Self::with_clock(config, VirtualClock::starting_now())
    }

    /// A fresh instance with an injected clock (share one clock across the sandbox world).
    pub fn with_clock(config: MemoryConfig, clock: VirtualClock) -> Self {
        let mut state = State::default();
        let id = state.id("namespace");
        state.namespaces.push(Namespace {
            id,
            full_path: config.username.clone(),
            kind: "user".into(),
            plan: config.plan.clone(),
        });
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                clock,
                config,
            }),
        }
    }

    /// The clock stamping `created_at` / `started_at` / `finished_at`.
    pub fn clock(&self) -> VirtualClock {
        self.inner.clock
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-written in a way that
        // matters for a simulation; keep serving.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// Counts an API request, checks the token's scopes for the route and applies the rate
    /// limit / forced 429s.
    fn admit(
        &self,
        route: Route,
        action: &'static str,
        resource: impl FnOnce() -> String,
    ) -> Result<MutexGuard<'_, State>> {
        let mut st = self.lock();
        st.requests += 1;
        // `include_any_scope?`: the token passes with any registered scope whose `if:` holds
        // (app/services/access_token_validation_service.rb); the refusal lists every
        // registered scope (`InsufficientScopeError.new(scopes)`, lib/gitlab/auth/auth_finders.rb).
        let scopes = st.scopes(&self.inner.config);
        let registered = route.registered();
        let passes = route == Route::TokenSelf
            || registered
                .iter()
                .any(|(name, applies)| *applies && scopes.iter().any(|s| s == name));
        if !passes {
            return Err(Error::PermissionDenied {
                action,
                resource: resource(),
                scope: registered
                    .iter()
                    .map(|(name, _)| *name)
                    .collect::<Vec<_>>()
                    .join(" "),
                message: INSUFFICIENT_SCOPE.into(),
            });
        }
        if st.forced_throttles > 0 {
            st.forced_throttles -= 1;
            return Err(Error::Throttled {
                action,
                resource: resource(),
                retry_after: Some(st.forced_retry_after),
                retried: false,
            });
        }
        if let Some(limit) = self.inner.config.rate_limit_per_minute {
            let now = Instant::now();
            let window = match st.window {
                Some((start, count)) if now.duration_since(start) < Duration::from_secs(60) => {
                    (start, count)
                }
                _ => (now, 0),
            };
            if window.1 >= limit {
                st.window = Some(window);
                let retry_after =
                    Duration::from_secs(60).saturating_sub(now.duration_since(window.0));
                return Err(Error::Throttled {
                    action,
                    resource: resource(),
                    retry_after: Some(retry_after),
                    retried: false,
                });
            }
            st.window = Some((window.0, window.1 + 1));
        }
        Ok(st)
    }

    /// API requests received so far (throttled ones included; simulator calls excluded).
    pub fn requests(&self) -> u64 {
        self.lock().requests
    }

    /// Runners that exist now, in every project.
    pub fn runner_count(&self) -> usize {
        self.lock().runners.len()
    }

    /// Makes the next `count` API requests fail with a 429 asking to wait `retry_after`.
    pub fn throttle_next(&self, count: u32, retry_after: Duration) {
        let mut st = self.lock();
        st.forced_throttles = count;
        st.forced_retry_after = retry_after;
    }

    /// The user's role in a namespace: Owner of its own, the configured role elsewhere.
    fn access_level_in(&self, namespace: &str) -> u32 {
        let own = &self.inner.config.username;
        if namespace.eq_ignore_ascii_case(own) {
            access_level::OWNER
        } else {
            self.inner.config.access_level
        }
    }

    /// Whether the token's user acts as an administrator: an administrator, with Admin Mode
    /// off or a token with `admin_mode` (`bypass_session_for_admin_mode?`, lib/api/api_guard.rb).
    fn acting_admin(&self, st: &State) -> bool {
        let config = &self.inner.config;
        config.is_admin
            && (!config.admin_mode || st.scopes(config).iter().any(|s| s == "admin_mode"))
    }

    /// Whether the user may see a namespace's plan: EE exposes it `if: can_admin_namespace`
    /// (ee/lib/ee/api/entities/namespace.rb), which a group's Owners (`rule { owner }` enables
    /// `:admin_namespace`, app/policies/group_policy.rb), a personal namespace's user and
    /// administrators have.
    fn may_see_plan(&self, st: &State, ns: &Namespace) -> bool {
        self.acting_admin(st)
            || if ns.kind == "user" {
                ns.full_path
                    .eq_ignore_ascii_case(&self.inner.config.username)
            } else {
                self.access_level_in(&ns.full_path) >= access_level::OWNER
            }
    }

    /// `POST /user/runners` as GitLab refuses it once the token's scopes passed: 404 before
    /// 15.10, and `403 Forbidden - Insufficient permissions` without `:create_runners` on the
    /// project (`CreateRunnerService#execute` answers `'Insufficient permissions'` with reason
    /// `:forbidden`, app/services/ci/runners/create_runner_service.rb; lib/api/user_runners.rb
    /// calls `forbidden!(message)`, which lib/api/helpers.rb renders as `"403 Forbidden - " +
    /// reason`): Maintainers and Owners have it, administrators acting as one too.
    fn may_create_runner(&self, st: &State, project_id: u64) -> Result<()> {
        let config = &self.inner.config;
        let version = ServerVersion {
            version: config.version.clone(),
            revision: String::new(),
        };
        if version.at_least(15, 10) == Some(false) {
            return Err(Error::not_found(
                "create",
                "POST /user/runners (GitLab before 15.10)",
            ));
        }
        let path = &st.projects[&project_id].project.path_with_namespace;
        let namespace = path.rsplit_once('/').map_or("", |(ns, _)| ns);
        if self.access_level_in(namespace) < access_level::MAINTAINER && !self.acting_admin(st) {
            return Err(Error::PermissionDenied {
                action: "create",
                resource: format!("runner for project {path:?}"),
                scope: "api".into(),
                message: "403 Forbidden - Insufficient permissions".into(),
            });
        }
        Ok(())
    }

    /// `POST /projects/:id/pipeline`'s effect and answer, without counting a request.
    fn create_pipeline_now(&self, project: &ProjectRef, new: &NewPipeline) -> Result<Pipeline> {
        let now = self.now();
        let mut st = self.lock();
        let id = st.project_id(project, "create pipeline on")?;
        if !new.variables.is_empty() && self.inner.config.refuse_pipeline_variables {
            return Err(Error::invalid(
                "create",
                format!("pipeline on ref {:?} of {project}", new.ref_name),
                "Insufficient permissions to set pipeline variables",
            ));
        }
        st.new_pipeline(id, &new.ref_name, "api", now, &self.inner.config)?
            .ok_or_else(|| Error::backend("create", project.to_string(), "no pipeline"))
    }

    /// Test hook: the token's scopes from now on (a project made with a full token, then
    /// used with a narrower one).
    pub fn set_token_scopes(&self, scopes: &[String]) {
        self.lock().token_scopes = Some(scopes.to_vec());
    }

    /// The "slow effect" fault: the next `create_pipeline` call answers [`Error::Timeout`]
    /// after `client_gives_up_after` (the client's timeout), while GitLab goes on and creates
    /// the pipeline `effect_after` the call arrived (on tokio's clock), as a real GitLab does
    /// until its request timeout. Several calls queue several faults.
    pub fn slow_pipeline_creation(&self, client_gives_up_after: Duration, effect_after: Duration) {
        self.lock()
            .slow_pipelines
            .push_back((client_gives_up_after, effect_after));
    }

    /// Adds a group namespace (projects can be created in it).
    pub fn add_group(&self, full_path: &str) -> Namespace {
        let mut st = self.lock();
        if let Some(ns) = st.namespaces.iter().find(|n| n.full_path == full_path) {
            return ns.clone();
        }
        let id = st.id("namespace");
        let ns = Namespace {
            id,
            full_path: full_path.to_owned(),
            kind: "group".into(),
            plan: self.inner.config.plan.clone(),
        };
        st.namespaces.push(ns.clone());
        ns
    }

    /// The content of a file on a branch.
    pub fn file(&self, project_id: u64, branch: &str, path: &str) -> Option<String> {
        self.lock()
            .projects
            .get(&project_id)?
            .branches
            .get(branch)?
            .get(path)
            .cloned()
    }

    /// The runner registered with this authentication token.
    pub fn runner_id_for_token(&self, token: &SecretToken) -> Option<u64> {
        let st = self.lock();
        st.runners_by_token
            .get(&token_hash(token))?
            .iter()
            .filter_map(|id| st.runners.get(id))
            .find(|r| &r.token == token)
            .map(|r| r.runner.id)
    }

    /// Runner side: a runner manager contacted GitLab (it started, or it polled for jobs).
    /// Until the first contact the runner is `never_contacted`; see [`ONLINE_CONTACT_TIMEOUT`].
    pub fn runner_contacted(&self, runner_id: u64) -> Result<()> {
        let now = self.now();
        let mut st = self.lock();
        let r = st
            .runners
            .get_mut(&runner_id)
            .ok_or_else(|| Error::not_found("contact", format!("runner {runner_id}")))?;
        r.contacted_at = Some(now);
        Ok(())
    }

    /// Every pipeline of a project, oldest first (what GitLab's pipeline list would show).
    pub fn pipelines(&self, project_id: u64) -> Vec<Pipeline> {
        self.lock()
            .pipelines
            .values()
            .filter(|p| p.project_id == project_id)
            .cloned()
            .collect()
    }

    /// Test hook: puts a job into a status GitLab reaches in ways this model does not play
    /// (`preparing`, `scheduled`, `waiting_for_resource`, `canceling`, ...).
    pub fn force_job_status(&self, job_id: u64, status: JobStatus) -> Result<()> {
        let now = self.now();
        let mut guard = self.lock();
        let st = &mut *guard;
        let j = st
            .jobs
            .get_mut(&job_id)
            .ok_or_else(|| Error::not_found("set status of", format!("job {job_id}")))?;
        let before = j.job.status;
        j.job.status = status;
        let pipeline_id = j.pipeline_id;
        // Keep the indexes in step: out of the pending set, into the new status's tally.
        if before == JobStatus::Pending
            && let Some(set) = st.pending.get_mut(&j.pending_key)
        {
            set.remove(&job_id);
        }
        if status == JobStatus::Pending && before != JobStatus::Pending {
            st.pending
                .entry(j.pending_key.clone())
                .or_default()
                .insert(job_id);
        }
        if let Some(agg) = st.pipeline_jobs.get_mut(&pipeline_id) {
            move_status(agg, before, status);
        }
        st.refresh_pipeline(pipeline_id, now);
        Ok(())
    }

    /// Limits how many jobs a runner runs at once (`None`: only the caller's `max` limits it).
    pub fn set_runner_limit(&self, runner_id: u64, limit: Option<usize>) -> Result<()> {
        let mut st = self.lock();
        let r = st
            .runners
            .get_mut(&runner_id)
            .ok_or_else(|| Error::not_found("limit", format!("runner {runner_id}")))?;
        r.limit = limit;
        Ok(())
    }

    /// Jobs a runner is running now.
    pub fn running_jobs(&self, runner_id: u64) -> usize {
        self.lock()
            .runners
            .get(&runner_id)
            .map_or(0, |r| r.running.len())
    }

    /// A receiver whose value changes whenever a job becomes pending in the runner's project, so
    /// that a simulated runner that found nothing to take can wait for work instead of polling.
    pub fn pending_signal(&self, runner_id: u64) -> Result<tokio::sync::watch::Receiver<u64>> {
        let mut st = self.lock();
        let project_id = st
            .runners
            .get(&runner_id)
            .ok_or_else(|| Error::not_found("watch", format!("runner {runner_id}")))?
            .project_id;
        Ok(st
            .pending_signals
            .entry(project_id)
            .or_insert_with(|| tokio::sync::watch::channel(0).0)
            .subscribe())
    }

    /// Whether [`InMemoryGitLab::request_jobs`] would hand the runner a job now (a runner that
    /// does not exist, is paused or at its limit has none). Not an API request, not a contact.
    pub fn has_jobs_for(&self, runner_id: u64) -> bool {
        let st = self.lock();
        let Some(r) = st.runners.get(&runner_id) else {
            return false;
        };
        if r.runner.paused || r.limit.is_some_and(|l| r.running.len() >= l) {
            return false;
        }
        !st.pickable(r.project_id, &r.tag_set, r.run_untagged, 1)
            .is_empty()
    }

    /// Runner side: a contact at `at` (a job request that found nothing, accounted after the
    /// fact by a simulator); an older contact than the last one changes nothing.
    pub fn runner_contacted_at(&self, runner_id: u64, at: Timestamp) -> Result<()> {
        let mut st = self.lock();
        let r = st
            .runners
            .get_mut(&runner_id)
            .ok_or_else(|| Error::not_found("contact", format!("runner {runner_id}")))?;
        r.contacted_at = Some(r.contacted_at.map_or(at, |t| t.max(at)));
        Ok(())
    }

    /// Jobs still pending (not yet taken by any runner), across all pipelines.
    pub fn pending_jobs(&self) -> usize {
        self.lock().pending.values().map(BTreeSet::len).sum()
    }

    /// Runner side: hands up to `max` pending jobs to the runner, oldest first, honouring the
    /// runner's tags, `run_untagged`, project, pause state and limit. Each becomes `running`.
    pub fn request_jobs(&self, runner_id: u64, max: usize) -> Result<Vec<AssignedJob>> {
        let now = self.now();
        let mut st = self.lock();
        let (free, description) = {
            let r = st
                .runners
                .get_mut(&runner_id)
                .ok_or_else(|| Error::not_found("request jobs", format!("runner {runner_id}")))?;
            // Asking for jobs is a contact, as on GitLab.
            r.contacted_at = Some(now);
            if r.runner.paused {
                return Ok(Vec::new());
            }
            let free = r
                .limit
                .map_or(max, |l| l.saturating_sub(r.running.len()).min(max));
            (free, r.runner.description.clone())
        };
        if free == 0 {
            return Ok(Vec::new());
        }
        let r = &st.runners[&runner_id];
        let picked = st.pickable(r.project_id, &r.tag_set, r.run_untagged, free);
        let mut out = Vec::with_capacity(picked.len());
        let mut pipelines = BTreeSet::new();
        for id in picked {
            let runner = JobRunner {
                id: runner_id,
                description: description.clone(),
            };
            let Some(j) = st.start_job(id, runner, now) else {
                continue;
            };
            pipelines.insert(j.pipeline_id);
            out.push(AssignedJob {
                job_id: id,
                project_id: j.project_id,
                pipeline_id: j.pipeline_id,
                runner_id,
                name: j.job.name.clone(),
                image: j.image.clone(),
                cache: j.cache.clone(),
                script: j.script.clone(),
                tags: j.job.tag_list.clone(),
                created_at: j.job.created_at,
                started_at: now,
            });
            if let Some(r) = st.runners.get_mut(&runner_id) {
                r.running.insert(id);
            }
        }
        for p in pipelines {
            st.refresh_pipeline(p, now);
        }
        tracing::trace!(runner = runner_id, picked = out.len(), "runner took jobs");
        Ok(out)
    }

    /// Runner side: appends to a job's log, as a runner's `PATCH /api/v4/jobs/:id/trace`
    /// does; [`GitLabApi::job_trace`] serves it.
    pub fn append_trace(&self, job_id: u64, text: &str) -> Result<()> {
        let mut st = self.lock();
        let j = st
            .jobs
            .get_mut(&job_id)
            .ok_or_else(|| Error::not_found("append to the log of", format!("job {job_id}")))?;
        j.trace.push_str(text);
        Ok(())
    }

    /// Runner side: ends a job and frees its runner slot. Pending jobs may be failed or
    /// canceled too (e.g. `stuck_or_timeout_failure`); finished jobs answer [`Error::Conflict`].
    pub fn finish_job(&self, job_id: u64, outcome: JobOutcome) -> Result<Job> {
        let now = self.now();
        let mut st = self.lock();
        let j = st
            .jobs
            .get_mut(&job_id)
            .ok_or_else(|| Error::not_found("finish", format!("job {job_id}")))?;
        if j.job.status.is_finished() {
            return Err(Error::Conflict {
                action: "finish",
                resource: format!("job {job_id}"),
                message: format!("the job is already {}", j.job.status),
            });
        }
        if outcome == JobOutcome::Success && j.job.status != JobStatus::Running {
            return Err(Error::Conflict {
                action: "finish",
                resource: format!("job {job_id}"),
                message: format!("only a running job can succeed; it is {}", j.job.status),
            });
        }
        let pipeline_id = j.pipeline_id;
        let (status, reason) = match outcome {
            JobOutcome::Success => (JobStatus::Success, None),
            JobOutcome::Failed { reason } => (JobStatus::Failed, Some(reason)),
            JobOutcome::Canceled => (JobStatus::Canceled, None),
        };
        st.end_job(job_id, status, reason, now);
        let job = st.jobs[&job_id].job.clone();
        st.release_runner_slot(job_id);
        st.refresh_pipeline(pipeline_id, now);
        Ok(job)
    }
}

fn move_status(agg: &mut PipelineJobs, from: JobStatus, to: JobStatus) {
    if let Some(n) = agg.by_status.get_mut(&from) {
        *n = n.saturating_sub(1);
    }
    *agg.by_status.entry(to).or_insert(0) += 1;
}

fn token_hash(token: &SecretToken) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    token.expose().hash(&mut hasher);
    hasher.finish()
}

fn sha(n: u64) -> String {
    format!("{n:040x}")
}

/// GitLab's status of a runner from its last contact: `never_contacted`, `online` (contact
/// younger than [`ONLINE_CONTACT_TIMEOUT`]) or `offline`.
fn runner_status(contacted_at: Option<Timestamp>, now: Timestamp) -> (&'static str, bool) {
    match contacted_at {
        None => ("never_contacted", false),
        Some(at) => {
            let age = now.duration_since(at);
            if age < jiff::SignedDuration::try_from(ONLINE_CONTACT_TIMEOUT).unwrap_or_default() {
                ("online", true)
            } else {
                ("offline", false)
            }
        }
    }
}

impl InMemoryGitLab {
    /// The page and page size a jobs list reads, after refusing a `scope` GitLab does not
    /// document (GitLab REST docs, "Jobs API": created, pending, running, failed, success,
    /// canceled, skipped, waiting_for_resource, manual; the list routes answer 400 "scope does
    /// not have a valid value" otherwise). `subject` names the pipeline or project in the error.
    fn jobs_page(&self, query: &JobsQuery, subject: impl FnOnce() -> String) -> Result<(u32, u32)> {
        if let Some(bad) = query
            .scope
            .iter()
            .find(|s| !JobStatus::DOCUMENTED_SCOPES.contains(s))
        {
            return Err(Error::invalid(
                "list jobs of",
                subject(),
                format!("scope does not have a valid value ({bad})"),
            ));
        }
        let per_page = match query.per_page {
            0 => self.inner.config.default_per_page,
            n => n.min(crate::MAX_PER_PAGE),
        };
        Ok((query.page.max(1), per_page))
    }
}

impl RunnerState {
    /// The list entry GitLab returns: no tags, status from the last contact.
    fn list_entry(&self, now: Timestamp) -> Runner {
        let (status, online) = runner_status(self.contacted_at, now);
        Runner {
            status: Some(status.into()),
            online: Some(online),
            ..self.runner.clone()
        }
    }

    fn details(&self, now: Timestamp) -> RunnerDetails {
        let entry = self.list_entry(now);
        RunnerDetails {
            id: entry.id,
            description: entry.description,
            runner_type: entry.runner_type,
            paused: entry.paused,
            status: entry.status,
            online: entry.online,
            contacted_at: self.contacted_at,
            tag_list: self.tags.clone(),
            run_untagged: self.run_untagged,
        }
    }
}

#[async_trait]
impl GitLabApi for InMemoryGitLab {
    async fn current_user(&self) -> Result<User> {
        let _st = self.admit(Route::ReadUser, "get", || "current user".into())?;
        Ok(User {
            id: 1,
            username: self.inner.config.username.clone(),
            name: self.inner.config.username.clone(),
            is_admin: self.inner.config.is_admin,
        })
    }

    async fn version(&self) -> Result<ServerVersion> {
        let _st = self.admit(Route::ReadUser, "get", || "GitLab's version".into())?;
        Ok(ServerVersion {
            version: self.inner.config.version.clone(),
            revision: "memory".into(),
        })
    }

    async fn token_info(&self) -> Result<TokenInfo> {
        let _st = self.admit(Route::TokenSelf, "get", || "the access token in use".into())?;
        Ok(TokenInfo {
            id: 1,
            name: "sandbox".into(),
            scopes: _st.scopes(&self.inner.config).to_vec(),
            active: true,
            expires_at: None,
        })
    }

    async fn member(&self, scope: &MemberScope, user_id: u64) -> Result<Option<Member>> {
        let st = self.admit(Route::Read, "get", || format!("user {user_id} in {scope}"))?;
        let namespace = match scope {
            MemberScope::Project(p) => {
                let id = st.project_id(p, "get members of")?;
                let path = &st.projects[&id].project.path_with_namespace;
                path.rsplit_once('/').map_or("", |(ns, _)| ns).to_owned()
            }
            MemberScope::Group(g) => {
                let found = st
                    .namespaces
                    .iter()
                    .any(|n| n.kind == "group" && n.full_path.eq_ignore_ascii_case(g));
                if !found {
                    return Err(Error::not_found("get members of", format!("group {g:?}")));
                }
                g.clone()
            }
        };
        // The token's user has id 1 (see `current_user`); nobody else is a member.
        let level = self.access_level_in(&namespace);
        Ok((user_id == 1 && level > 0).then(|| Member {
            id: 1,
            username: self.inner.config.username.clone(),
            access_level: level,
        }))
    }

    async fn get_namespace(&self, path: &str) -> Result<Namespace> {
        let st = self.admit(Route::Read, "get", || format!("namespace {path:?}"))?;
        let mut ns = st
            .namespaces
            .iter()
            .find(|n| n.full_path.eq_ignore_ascii_case(path))
            .cloned()
            .ok_or_else(|| Error::not_found("get", format!("namespace {path:?}")))?;
        if !self.may_see_plan(&st, &ns) {
            ns.plan = None;
        }
        Ok(ns)
    }

    async fn get_project(&self, project: &ProjectRef) -> Result<Project> {
        let st = self.admit(Route::Read, "get", || project.to_string())?;
        let id = st.project_id(project, "get")?;
        Ok(st.projects[&id].project.clone())
    }

    async fn create_project(&self, new: &NewProject) -> Result<Project> {
        let mut st = self.admit(Route::Write, "create", || format!("project {:?}", new.path))?;
        ProjectRef::parse(&new.path)?;
        let ns = match new.namespace_id {
            None => st.namespaces[0].clone(),
            Some(id) => st
                .namespaces
                .iter()
                .find(|n| n.id == id)
                .cloned()
                .ok_or_else(|| Error::not_found("create project in", format!("namespace {id}")))?,
        };
        let full = format!("{}/{}", ns.full_path, new.path);
        if st
            .projects
            .values()
            .any(|p| p.project.path_with_namespace.eq_ignore_ascii_case(&full))
        {
            return Err(Error::AlreadyExists {
                action: "create",
                resource: format!("project {full:?}"),
            });
        }
        let id = st.id("project");
        let mut branches = BTreeMap::new();
        let mut heads = BTreeMap::new();
        if new.initialize_with_readme {
            let readme = BTreeMap::from([("README.md".to_owned(), format!("# {}\n", new.path))]);
            branches.insert("main".to_owned(), readme);
            let c = st.id("commit");
            heads.insert("main".to_owned(), sha(c));
        }
        let project = Project {
            id,
            name: new.name.clone().unwrap_or_else(|| new.path.clone()),
            path_with_namespace: full.clone(),
            default_branch: new.initialize_with_readme.then(|| "main".to_owned()),
            web_url: format!("{}/{full}", self.inner.config.web_url),
            ci_pipeline_variables_minimum_override_role: Some(
                if self.inner.config.refuse_pipeline_variables {
                    "no_one_allowed"
                } else {
                    "developer"
                }
                .to_owned(),
            ),
        };
        st.projects.insert(
            id,
            ProjectState {
                project: project.clone(),
                branches,
                heads,
            },
        );
        Ok(project)
    }

    async fn delete_project(&self, project: &ProjectRef) -> Result<()> {
        let mut st = self.admit(Route::Write, "delete", || project.to_string())?;
        let id = st.project_id(project, "delete")?;
        st.projects.remove(&id);
        st.record_project_runners_deleted(id);
        st.runners.retain(|_, r| r.project_id != id);
        st.pipelines.retain(|_, p| p.project_id != id);
        st.jobs.retain(|_, j| j.project_id != id);
        let st = &mut *st;
        let pipelines = &st.pipelines;
        st.pipeline_jobs.retain(|p, _| pipelines.contains_key(p));
        st.pending.retain(|(project, _), _| *project != id);
        st.project_jobs.remove(&id);
        Ok(())
    }

    async fn create_runner(&self, new: &NewRunner) -> Result<CreatedRunner> {
        let mut st = self.admit(Route::CreateRunner, "create", || {
            format!("runner {:?}", new.description)
        })?;
        if new.runner_type != "project_type" {
            return Err(Error::invalid(
                "create",
                "runner",
                "the sandbox supports only runner_type=project_type",
            ));
        }
        let project_id = st.project_id(&ProjectRef::Id(new.project_id), "create runner for")?;
        self.may_create_runner(&st, project_id)?;
        if let Some(t) = new
            .tag_list
            .iter()
            .find(|t| t.trim().is_empty() || t.contains(','))
        {
            return Err(Error::invalid(
                "create",
                "runner",
                format!("tag {t:?} is not valid"),
            ));
        }
        let id = st.id("runner");
        let token = SecretToken::new(format!(
            "glrt-sandbox{id:06}{:014x}",
            fastrand::u64(..) & 0xff_ffff_ffff_ffff
        ));
        let runner = Runner {
            id,
            description: Some(new.description.clone()),
            runner_type: new.runner_type.clone(),
            paused: false,
            status: Some("never_contacted".into()),
            online: Some(false),
        };
        st.runners_by_token
            .entry(token_hash(&token))
            .or_default()
            .push(id);
        st.runners.insert(
            id,
            RunnerState {
                runner,
                tags: new.tag_list.clone(),
                tag_set: new.tag_list.iter().cloned().collect(),
                contacted_at: None,
                project_id: new.project_id,
                token: token.clone(),
                run_untagged: new.run_untagged,
                limit: None,
                running: BTreeSet::new(),
            },
        );
        st.record_runner_created(id, new);
        Ok(CreatedRunner {
            id,
            token,
            token_expires_at: None,
        })
    }

    async fn list_runners(&self, project: &ProjectRef) -> Result<Vec<Runner>> {
        let now = self.now();
        let st = self.admit(Route::Read, "list runners of", || project.to_string())?;
        let id = st.project_id(project, "list runners of")?;
        Ok(st
            .runners
            .values()
            .filter(|r| r.project_id == id)
            .map(|r| r.list_entry(now))
            .collect())
    }

    async fn get_runner(&self, runner_id: u64) -> Result<RunnerDetails> {
        let now = self.now();
        let st = self.admit(Route::Read, "get", || format!("runner {runner_id}"))?;
        st.runners
            .get(&runner_id)
            .map(|r| r.details(now))
            .ok_or_else(|| Error::not_found("get", format!("runner {runner_id}")))
    }

    async fn delete_runner(&self, runner_id: u64) -> Result<()> {
        let mut st = self.admit(Route::Write, "delete", || format!("runner {runner_id}"))?;
        st.runners
            .remove(&runner_id)
            .map(|_| st.record_runner_deleted(runner_id))
            .ok_or_else(|| Error::not_found("delete", format!("runner {runner_id}")))
    }

    async fn file_exists(
        &self,
        project: &ProjectRef,
        file_path: &str,
        ref_name: &str,
    ) -> Result<bool> {
        let st = self.admit(Route::Read, "check", || {
            format!("file {file_path:?} of {project}")
        })?;
        let id = st.project_id(project, "read file of")?;
        Ok(st.projects[&id]
            .branches
            .get(ref_name)
            .is_some_and(|files| files.contains_key(file_path)))
    }

    async fn get_branch(&self, project: &ProjectRef, branch: &str) -> Result<Branch> {
        let st = self.admit(Route::Read, "get", || {
            format!("branch {branch:?} of {project}")
        })?;
        let id = st.project_id(project, "get branch of")?;
        let p = &st.projects[&id];
        p.branches
            .contains_key(branch)
            .then(|| Branch {
                name: branch.to_owned(),
                commit: p
                    .heads
                    .get(branch)
                    .map(|sha| BranchCommit { id: sha.clone() }),
            })
            .ok_or_else(|| Error::not_found("get", format!("branch {branch:?} of {project}")))
    }

    async fn delete_branch(&self, project: &ProjectRef, branch: &str) -> Result<()> {
        let mut st = self.admit(Route::Write, "delete", || {
            format!("branch {branch:?} of {project}")
        })?;
        let id = st.project_id(project, "delete branch of")?;
        let p = st.projects.get_mut(&id).expect("project_id found it");
        if p.project.default_branch.as_deref() == Some(branch) {
            // GitLab: 405 "The default branch of a project cannot be deleted."
            return Err(Error::invalid(
                "delete",
                format!("branch {branch:?} of {project}"),
                "the default branch of a project cannot be deleted",
            ));
        }
        p.heads.remove(branch);
        p.branches
            .remove(branch)
            .map(|_| ())
            .ok_or_else(|| Error::not_found("delete", format!("branch {branch:?} of {project}")))
    }

    async fn commit_files(&self, project: &ProjectRef, commit: &NewCommit) -> Result<Commit> {
        let mut st = self.admit(Route::Write, "commit to", || project.to_string())?;
        let id = st.project_id(project, "commit to")?;
        let resource = || format!("branch {:?} of {project}", commit.branch);
        if commit.actions.is_empty() {
            return Err(Error::invalid(
                "commit to",
                resource(),
                "a commit needs at least one action",
            ));
        }
        let p = &st.projects[&id];
        // GitLab: a missing branch is created from `start_branch`; without one, only the first
        // commit of an empty repository may create a branch.
        let mut files = match (p.branches.get(&commit.branch), &commit.start_branch) {
            (Some(files), _) => files.clone(),
            (None, Some(start)) => p.branches.get(start).cloned().ok_or_else(|| {
                Error::invalid(
                    "commit to",
                    resource(),
                    format!("Invalid start branch {start:?}: the branch does not exist"),
                )
            })?,
            (None, None) if p.branches.is_empty() => BTreeMap::new(),
            (None, None) => {
                return Err(Error::invalid(
                    "commit to",
                    resource(),
                    "You can only create or edit files when you are on a branch",
                ));
            }
        };
        for a in &commit.actions {
            let exists = files.contains_key(&a.file_path);
            match a.action {
                FileAction::Create if exists => {
                    return Err(Error::invalid(
                        "commit to",
                        resource(),
                        format!("A file with this name already exists: {}", a.file_path),
                    ));
                }
                FileAction::Update | FileAction::Delete if !exists => {
                    return Err(Error::invalid(
                        "commit to",
                        resource(),
                        format!("A file with this name doesn't exist: {}", a.file_path),
                    ));
                }
                FileAction::Create | FileAction::Update => {
                    files.insert(a.file_path.clone(), a.content.clone().unwrap_or_default());
                }
                FileAction::Delete => {
                    files.remove(&a.file_path);
                }
            }
        }
        let n = st.id("commit");
        let now = self.now();
        let p = st.projects.get_mut(&id).expect("checked above");
        let has_ci_file = files.contains_key(".gitlab-ci.yml");
        p.branches.insert(commit.branch.clone(), files);
        p.heads.insert(commit.branch.clone(), sha(n));
        p.project
            .default_branch
            .get_or_insert_with(|| commit.branch.clone());
        // The push hooks: a branch pipeline unless the message or workflow:rules skip it. A
        // push pipeline that GitLab cannot create (bad file, size limit) is not the commit's
        // failure.
        if has_ci_file && !ci::message_skips_ci(&commit.commit_message) {
            match st.new_pipeline(id, &commit.branch, "push", now, &self.inner.config) {
                Ok(Some(p)) => tracing::debug!(pipeline = p.id, "push pipeline created"),
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "no push pipeline"),
            }
        }
        Ok(Commit {
            id: sha(n),
            title: commit
                .commit_message
                .lines()
                .next()
                .unwrap_or("")
                .to_owned(),
            created_at: Some(now),
        })
    }

    async fn create_pipeline(&self, project: &ProjectRef, new: &NewPipeline) -> Result<Pipeline> {
        let slow = {
            let mut st = self.admit(Route::Write, "create pipeline on", || project.to_string())?;
            st.slow_pipelines.pop_front()
        };
        let Some((gives_up_after, effect_after)) = slow else {
            return self.create_pipeline_now(project, new);
        };
        // The slow effect: GitLab goes on with the request after its client gave up (Puma does
        // not stop a request whose client left; GitLab ends it only at its request timeout,
        // doc/administration/operations/puma.md), and the pipeline appears later.
        let gitlab = self.clone();
        let (project_later, new_later) = (project.clone(), new.clone());
        tokio::spawn(async move {
            tokio::time::sleep(effect_after).await;
            match gitlab.create_pipeline_now(&project_later, &new_later) {
                Ok(p) => tracing::debug!(pipeline = p.id, "slow pipeline creation took effect"),
                Err(e) => tracing::debug!(error = %e, "slow pipeline creation failed"),
            }
        });
        tokio::time::sleep(gives_up_after).await;
        Err(Error::Timeout {
            action: "create",
            resource: format!("pipeline on ref {:?} of {project}", new.ref_name),
            after: gives_up_after,
        })
    }

    async fn list_pipelines(&self, project: &ProjectRef, ref_name: &str) -> Result<Vec<Pipeline>> {
        let st = self.admit(Route::Read, "list pipelines of", || project.to_string())?;
        let id = st.project_id(project, "list pipelines of")?;
        Ok(st
            .pipelines
            .values()
            .rev()
            .filter(|p| p.project_id == id && p.ref_name == ref_name)
            .take(crate::MAX_PER_PAGE as usize)
            .cloned()
            .collect())
    }

    async fn get_pipeline(&self, project: &ProjectRef, pipeline_id: u64) -> Result<Pipeline> {
        let st = self.admit(Route::Read, "get", || {
            format!("pipeline {pipeline_id} of {project}")
        })?;
        let id = st.project_id(project, "get pipeline of")?;
        st.pipeline_of(id, pipeline_id, "get").cloned()
    }

    async fn list_pipeline_jobs(
        &self,
        project: &ProjectRef,
        pipeline_id: u64,
        query: &JobsQuery,
    ) -> Result<Page<Job>> {
        let st = self.admit(Route::Read, "list jobs of", || {
            format!("pipeline {pipeline_id} of {project}")
        })?;
        let id = st.project_id(project, "list jobs of")?;
        st.pipeline_of(id, pipeline_id, "list jobs of")?;
        let (page, per_page) =
            self.jobs_page(query, || format!("pipeline {pipeline_id} of {project}"))?;
        let Some(agg) = st.pipeline_jobs.get(&pipeline_id) else {
            return Ok(Page {
                items: Vec::new(),
                page,
                per_page,
                next_page: None,
                total: Some(0),
                total_pages: Some(1),
            });
        };
        // Counts come from the pipeline's per-status tallies; the page is read newest first,
        // stopping as soon as it is full (no walk over every job of the instance).
        let in_scope = |status: &JobStatus| query.scope.is_empty() || query.scope.contains(status);
        let total: u64 = agg
            .by_status
            .iter()
            .filter(|(status, _)| in_scope(status))
            .map(|(_, n)| *n as u64)
            .sum();
        let total_pages = (total.div_ceil(u64::from(per_page)).max(1)) as u32;
        let start = (page as usize - 1).saturating_mul(per_page as usize);
        let newest_first = agg.ids.iter().rev().filter_map(|id| st.jobs.get(id));
        let items: Vec<Job> = if start as u64 >= total {
            Vec::new()
        } else if query.scope.is_empty() {
            agg.ids
                .iter()
                .rev()
                .skip(start)
                .take(per_page as usize)
                .filter_map(|id| st.jobs.get(id))
                .map(|j| j.job.clone())
                .collect()
        } else {
            newest_first
                .filter(|j| in_scope(&j.job.status))
                .skip(start)
                .take(per_page as usize)
                .map(|j| j.job.clone())
                .collect()
        };
        Ok(Page {
            items,
            page,
            per_page,
            next_page: (page < total_pages).then_some(page + 1),
            total: Some(total),
            total_pages: Some(total_pages),
        })
    }

    async fn list_project_jobs(
        &self,
        project: &ProjectRef,
        query: &JobsQuery,
    ) -> Result<Page<Job>> {
        let st = self.admit(Route::Read, "list jobs of", || project.to_string())?;
        let id = st.project_id(project, "list jobs of")?;
        let (page, per_page) = self.jobs_page(query, || project.to_string())?;
        let start = (page as usize - 1).saturating_mul(per_page as usize);
        // One more than the page, to tell whether a next page exists: GitLab paginates this
        // route without counting (`paginate_with_strategies(builds, user_project,
        // paginator_params: { without_count: true })`, lib/api/ci/jobs.rb; Kaminari's
        // `without_count` reads `per_page + 1` rows), so `x-total` and `x-total-pages` are
        // absent (`OffsetHeaderBuilder` with `data_without_counts`,
        // lib/gitlab/pagination/offset_pagination.rb) and only `x-next-page` says there is more.
        let want = start.saturating_add(per_page as usize).saturating_add(1);
        let newest_first: Vec<u64> = if query.scope == [JobStatus::Pending] {
            // Pending jobs straight from the pending index (this project's tag sets only).
            let range = (id, Vec::new())..(id.saturating_add(1), Vec::new());
            let mut ids: Vec<u64> = st
                .pending
                .range(range)
                .flat_map(|(_, ids)| ids.iter().copied())
                .collect();
            ids.sort_unstable_by_key(|id| std::cmp::Reverse(*id));
            ids.truncate(want);
            ids
        } else {
            // `user_project.builds.order(id: :desc)`, filtered by `scope` (lib/api/ci/jobs.rb).
            let in_scope =
                |status: &JobStatus| query.scope.is_empty() || query.scope.contains(status);
            st.project_jobs
                .get(&id)
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .rev()
                .filter(|j| st.jobs.get(*j).is_some_and(|j| in_scope(&j.job.status)))
                .take(want)
                .copied()
                .collect()
        };
        let more = newest_first.len() > start + per_page as usize;
        let items: Vec<Job> = newest_first
            .iter()
            .skip(start)
            .take(per_page as usize)
            .filter_map(|j| st.jobs.get(j))
            .map(|j| j.job.clone())
            .collect();
        Ok(Page {
            items,
            page,
            per_page,
            next_page: more.then_some(page + 1),
            total: None,
            total_pages: None,
        })
    }

    async fn get_job(&self, project: &ProjectRef, job_id: u64) -> Result<Job> {
        let st = self.admit(Route::Read, "get", || format!("job {job_id} of {project}"))?;
        let id = st.project_id(project, "get job of")?;
        st.jobs
            .get(&job_id)
            .filter(|j| j.project_id == id)
            .map(|j| j.job.clone())
            .ok_or_else(|| Error::not_found("get", format!("job {job_id} of {project}")))
    }

    async fn job_trace(&self, project: &ProjectRef, job_id: u64) -> Result<String> {
        let st = self.admit(Route::Read, "get the log of", || {
            format!("job {job_id} of {project}")
        })?;
        let id = st.project_id(project, "get a job log of")?;
        // `build.trace.raw || ''` (lib/api/ci/jobs.rb): a job with no log yet answers empty.
        st.jobs
            .get(&job_id)
            .filter(|j| j.project_id == id)
            .map(|j| truncate_utf8(&j.trace, crate::MAX_TRACE_BYTES).to_owned())
            .ok_or_else(|| Error::not_found("get the log of", format!("job {job_id} of {project}")))
    }

    async fn cancel_pipeline(&self, project: &ProjectRef, pipeline_id: u64) -> Result<Pipeline> {
        let now = self.now();
        let mut st = self.admit(Route::Write, "cancel", || {
            format!("pipeline {pipeline_id} of {project}")
        })?;
        let id = st.project_id(project, "cancel pipeline of")?;
        st.pipeline_of(id, pipeline_id, "cancel")?;
        let active: Vec<u64> = st
            .pipeline_jobs
            .get(&pipeline_id)
            .map(|agg| agg.ids.as_slice())
            .unwrap_or_default()
            .iter()
            .copied()
            .filter(|id| st.jobs.get(id).is_some_and(|j| !j.job.status.is_finished()))
            .collect();
        for job_id in &active {
            st.release_runner_slot(*job_id);
            st.end_job(*job_id, JobStatus::Canceled, None, now);
        }
        let p = st.pipelines.get_mut(&pipeline_id).expect("checked above");
        if !p.status.is_finished() {
            p.status = PipelineStatus::Canceled;
            p.finished_at = Some(now);
            p.updated_at = Some(now);
        }
        Ok(p.clone())
    }

    fn requests_sent(&self) -> u64 {
        self.requests()
    }
}

/// One runner the built-in simulator plays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimulatedRunner {
    /// Runner id (from `create_runner` or [`InMemoryGitLab::runner_id_for_token`]).
    pub runner_id: u64,
    /// How many jobs it runs at once (the runner's `concurrent`).
    pub concurrent: usize,
}

/// Timing of the built-in runner simulator.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct SimulationConfig {
    /// Runners to play.
    pub runners: Vec<SimulatedRunner>,
    /// How often each runner asks for jobs (GitLab Runner's `check_interval`, 3 s).
    pub check_interval: Duration,
    /// Job pod start latency (Fargate: 30-60 s).
    pub pod_start: Duration,
    /// Up to this much extra start latency per job (deterministic from `seed`).
    pub pod_start_jitter: Duration,
    /// Script run time.
    pub job_duration: Duration,
    /// Every n-th job taken fails with `script_failure`.
    pub fail_every: Option<u64>,
    /// Seed of the jitter.
    pub seed: u64,
}

impl SimulationConfig {
    /// Fargate-like defaults (40 s ± 20 s pod start, 5 s script) for the given runners.
    pub fn new(runners: Vec<SimulatedRunner>) -> Self {
        Self {
            runners,
            check_interval: Duration::from_secs(3),
            pod_start: Duration::from_secs(30),
            pod_start_jitter: Duration::from_secs(20),
            job_duration: Duration::from_secs(5),
            fail_every: None,
            seed: 7,
        }
    }

    /// Sets the pod start latency and its jitter.
    #[must_use]
    pub fn with_pod_start(mut self, base: Duration, jitter: Duration) -> Self {
        self.pod_start = base;
        self.pod_start_jitter = jitter;
        self
    }

    /// Sets the script run time.
    #[must_use]
    pub fn with_job_duration(mut self, d: Duration) -> Self {
        self.job_duration = d;
        self
    }

    /// Makes every n-th job fail with `script_failure`.
    #[must_use]
    pub fn with_fail_every(mut self, n: Option<u64>) -> Self {
        self.fail_every = n.filter(|n| *n > 0);
        self
    }
}

/// A running simulator; dropping it (or [`SimulatorHandle::stop`]) stops every runner.
#[derive(Debug)]
pub struct SimulatorHandle {
    task: tokio::task::JoinHandle<()>,
}

impl SimulatorHandle {
    /// Stops the simulator.
    pub fn stop(self) {}
}

impl Drop for SimulatorHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A minimal fake of GitLab Runner for tests (see the [module docs](self)), on a background
/// tokio task: every
/// `check_interval` each runner asks for as many jobs as it has free slots, and each job
/// finishes after pod start + jitter + job duration (tokio time, so a paused clock works).
pub fn simulate_runners(gitlab: InMemoryGitLab, config: SimulationConfig) -> SimulatorHandle {
    let task = tokio::spawn(async move {
        let mut rng = fastrand::Rng::with_seed(config.seed);
        let mut jobs = tokio::task::JoinSet::new();
        let mut taken = 0u64;
        // Runners do not poll in lockstep with pipeline creation: start at a random phase.
        tokio::time::sleep(config.check_interval.mul_f64(rng.f64())).await;
        loop {
            while jobs.try_join_next().is_some() {}
            for r in &config.runners {
                let free = r
                    .concurrent
                    .saturating_sub(gitlab.running_jobs(r.runner_id));
                if free == 0 {
                    continue;
                }
                let assigned = match gitlab.request_jobs(r.runner_id, free) {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::debug!(runner = r.runner_id, error = %e, "simulated runner could not request jobs");
                        continue;
                    }
                };
                for job in assigned {
                    taken += 1;
                    let outcome = match config.fail_every {
                        Some(n) if taken.is_multiple_of(n) => JobOutcome::Failed {
                            reason: "script_failure".into(),
                        },
                        _ => JobOutcome::Success,
                    };
                    let delay = config.pod_start
                        + config.pod_start_jitter.mul_f64(rng.f64())
                        + config.job_duration;
                    let gitlab = gitlab.clone();
                    jobs.spawn(async move {
                        tokio::time::sleep(delay).await;
                        // Canceled meanwhile: nothing to finish.
                        let _ = gitlab.finish_job(job.job_id, outcome);
                    });
                }
            }
            tokio::time::sleep(config.check_interval).await;
        }
    });
    SimulatorHandle { task }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
