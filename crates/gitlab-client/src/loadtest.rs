//! One load test on GitLab: commit the CI file without a push pipeline, create exactly the
//! pipelines that are watched, watch them as one, and cancel them when the run ends early.
//!
//! - **Exactly one pipeline per part.** The commit message carries `[skip ci]` and the
//!   generated file's `workflow: rules` run only `api` pipelines, so neither the commit nor a
//!   later push, schedule or web run starts the N jobs a second time.
//! - **No pipeline variables** unless asked ([`LoadTestRun::variables`]); GitLab.com refuses
//!   them by default in new namespaces, and that refusal is explained.
//! - **Jobs-per-pipeline limit** ([`LoadTestRun::max_jobs_per_pipeline`]): above it the load
//!   test is split into several pipelines (part `k` ≥ 2 on branch `<branch>-glrunner-part-<k>`,
//!   created from `<branch>`), created together and watched as one report.
//! - **Jobs in active pipelines** ([`LoadTestRun::max_active_jobs`], GitLab.com: 500 on Free):
//!   parts whose jobs together reach the limit cannot run at once (GitLab refuses the later
//!   pipelines), so they run in waves, one after another, and are still reported as one run.
//! - **New branches**: a branch that does not exist is created from the default branch.
//! - **Lost answers** ([`LoadTestRun::lost_answer`]): a pipeline POST whose answer was lost is
//!   looked for until GitLab's request timeout has passed before it is sent again
//!   ([`GitLabApiExt::create_pipeline_checked_with`]), and any pipeline of the load test's
//!   commit that the run did not start (a lost answer's pipeline that GitLab made even later)
//!   is canceled after the pipelines are created and again when the watch ends
//!   ([`cancel_unexpected`]).
//! - **Early end** (timeout, request budget, an error after a pipeline exists): the
//!   pipelines are canceled unless [`LoadTestRun::keep_pipeline`]. [`RunningPipelines`] lets a
//!   signal handler cancel them too.
//! - **Stopped** ([`run_until`], SIGINT/SIGTERM): the pipelines are canceled unless
//!   [`LoadTestRun::keep_on_stop`], and the report covers the jobs so far
//!   ([`WatchOutcome::Interrupted`]).

use std::sync::{Arc, Mutex};

use crate::api::{GitLabApi, GitLabApiExt, LostAnswerPolicy};
use crate::ci::{LoadTestSpec, SKIP_CI};
use crate::error::{Error, Result};
use crate::report::{Report, WatchOutcome};
use crate::types::{NewPipeline, Pipeline, PipelineVariable, Project, ProjectRef};
use crate::watch::{WatchConfig, WatchEvent, watch_pipelines};

/// The file every load test commits.
pub const CI_FILE: &str = ".gitlab-ci.yml";

/// What to run.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct LoadTestRun {
    /// The jobs, shards, images and script.
    pub spec: LoadTestSpec,
    /// Branch to commit to and run (`None`: the project's default branch, else `main`).
    pub branch: Option<String>,
    /// Pipeline variables (none by default: GitLab.com refuses them in new namespaces).
    pub variables: Vec<PipelineVariable>,
    /// Split into pipelines of at most this many jobs (`None`: one pipeline).
    pub max_jobs_per_pipeline: Option<u32>,
    /// Leave the pipelines running when the run ends early.
    pub keep_pipeline: bool,
    /// Leave the pipelines running when the run is stopped ([`run_until`]).
    pub keep_on_stop: bool,
    /// How long a pipeline POST whose answer was lost is looked for before it is sent again.
    pub lost_answer: LostAnswerPolicy,
    /// The project's limit of jobs in active pipelines (`ci_active_jobs`, GitLab.com: 500 on
    /// Free, see [`crate::limits`]): parts whose jobs together would reach it run one after
    /// another ([`LoadTestRun::waves`]) and are reported as one run. `None`: all together.
    pub max_active_jobs: Option<u32>,
    /// How many job logs are read after the watch to prove each job's image (with an image
    /// matrix) and to count the cache's hits (with the cache workload).
    pub trace_sampling: crate::sample::TraceSampling,
}

impl LoadTestRun {
    /// One pipeline of `spec` on the default branch, no variables, canceled on an early end.
    pub fn new(spec: LoadTestSpec) -> Self {
        Self {
            spec,
            branch: None,
            variables: Vec::new(),
            max_jobs_per_pipeline: None,
            keep_pipeline: false,
            keep_on_stop: false,
            lost_answer: LostAnswerPolicy::default(),
            max_active_jobs: None,
            trace_sampling: crate::sample::TraceSampling::default(),
        }
    }

    /// Sets the limit of jobs in active pipelines (parts beyond it run one after another).
    #[must_use]
    pub fn with_max_active_jobs(mut self, limit: Option<u32>) -> Self {
        self.max_active_jobs = limit.filter(|l| *l > 0);
        self
    }

    /// The parts ([`LoadTestRun::parts`] indices) grouped into waves that run one after
    /// another: in order, as many parts per wave as stay below
    /// [`LoadTestRun::max_active_jobs`] together (GitLab refuses a pipeline when the alive
    /// pipelines' jobs and its own reach the limit: `subject >= limit`,
    /// app/models/plan_limits.rb). One wave without a limit. A part that alone reaches the
    /// limit cannot run at all: [`Error::InvalidInput`].
    pub fn waves(&self, default_branch: &str) -> Result<Vec<Vec<usize>>> {
        let parts = self.parts(default_branch)?;
        let Some(limit) = self.max_active_jobs else {
            return Ok(vec![(0..parts.len()).collect()]);
        };
        let mut waves: Vec<Vec<usize>> = Vec::new();
        let mut in_wave = 0u64;
        for (k, (_, part)) in parts.iter().enumerate() {
            let jobs = part.total_jobs();
            if jobs >= u64::from(limit) {
                return Err(Error::invalid(
                    "plan",
                    "load test",
                    format!(
                        "a pipeline of {jobs} jobs reaches the project's limit of {limit} jobs in active pipelines                          (GitLab refuses it: \"{}\"); split it into pipelines of at most {} jobs",
                        crate::limits::ACTIVE_JOBS_EXCEEDED,
                        limit - 1
                    ),
                ));
            }
            match waves.last_mut() {
                Some(wave) if in_wave + jobs < u64::from(limit) => {
                    wave.push(k);
                    in_wave += jobs;
                }
                _ => {
                    waves.push(vec![k]);
                    in_wave = jobs;
                }
            }
        }
        Ok(waves)
    }

    /// Sets how long a lost pipeline answer is looked for (GitLab's request timeout).
    #[must_use]
    pub fn with_lost_answer_policy(mut self, policy: LostAnswerPolicy) -> Self {
        self.lost_answer = policy;
        self
    }

    /// Sets the branch.
    #[must_use]
    pub fn with_branch(mut self, branch: Option<String>) -> Self {
        self.branch = branch;
        self
    }

    /// Sets the pipeline variables.
    #[must_use]
    pub fn with_variables(mut self, variables: Vec<PipelineVariable>) -> Self {
        self.variables = variables;
        self
    }

    /// Sets the jobs-per-pipeline limit.
    #[must_use]
    pub fn with_max_jobs_per_pipeline(mut self, limit: Option<u32>) -> Self {
        self.max_jobs_per_pipeline = limit;
        self
    }

    /// Keeps the pipelines when the run ends early.
    #[must_use]
    pub fn with_keep_pipeline(mut self, keep: bool) -> Self {
        self.keep_pipeline = keep;
        self
    }

    /// Keeps the pipelines when the run is stopped ([`run_until`]).
    #[must_use]
    pub fn with_keep_on_stop(mut self, keep: bool) -> Self {
        self.keep_on_stop = keep;
        self
    }

    /// The parts (one per pipeline) and the branch of each.
    pub fn parts(&self, default_branch: &str) -> Result<Vec<(String, LoadTestSpec)>> {
        let branch = self
            .branch
            .clone()
            .unwrap_or_else(|| default_branch.to_owned());
        let parts = match self.max_jobs_per_pipeline {
            Some(limit) => self.spec.split_into_pipelines(limit)?,
            None => vec![self.spec.clone()],
        };
        Ok(parts
            .into_iter()
            .enumerate()
            .map(|(k, part)| {
                let b = if k == 0 {
                    branch.clone()
                } else {
                    format!("{branch}-glrunner-part-{}", k + 1)
                };
                (b, part)
            })
            .collect())
    }
}

/// The pipelines of a running load test, shared with whoever must cancel them (a signal
/// handler): clones share the list. Empty before the first pipeline exists and after the run
/// ended normally.
#[derive(Clone, Debug, Default)]
pub struct RunningPipelines {
    inner: Arc<Mutex<Option<ProjectPipelines>>>,
}

/// A project and the ids of its pipelines this run started.
type ProjectPipelines = (ProjectRef, Vec<u64>);

/// What [`RunningPipelines::cancel`] / [`cancel_pipelines`] did.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct CancelSummary {
    /// Pipelines GitLab accepted to cancel.
    pub canceled: Vec<u64>,
    /// Pipelines that could not be canceled, with the reason.
    pub failed: Vec<(u64, String)>,
}

impl CancelSummary {
    /// One line for a human: what was canceled and what was not.
    pub fn describe(&self) -> String {
        let ids = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
        let mut out = if self.canceled.is_empty() {
            "no pipeline canceled".to_owned()
        } else {
            format!("canceled pipeline(s) {}", ids(&self.canceled))
        };
        for (id, why) in &self.failed {
            out.push_str(&format!("; pipeline {id} NOT canceled: {why}"));
        }
        out
    }
}

impl RunningPipelines {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(ProjectRef, Vec<u64>)>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self, project: &ProjectRef, id: u64) {
        let mut g = self.lock();
        match g.as_mut() {
            Some((_, ids)) => ids.push(id),
            None => *g = Some((project.clone(), vec![id])),
        }
    }

    fn clear(&self) {
        *self.lock() = None;
    }

    /// The pipelines created so far and not yet finished or canceled.
    pub fn ids(&self) -> Vec<u64> {
        self.lock()
            .as_ref()
            .map(|(_, ids)| ids.clone())
            .unwrap_or_default()
    }

    /// Cancels every registered pipeline (each once: the list is emptied).
    pub async fn cancel(&self, api: &dyn GitLabApi) -> CancelSummary {
        let taken = self.lock().take();
        match taken {
            Some((project, ids)) => cancel_pipelines(api, &project, &ids).await,
            None => CancelSummary::default(),
        }
    }
}

/// Cancels pipelines (`POST .../cancel`, which GitLab answers 200 in any state), one call each,
/// continuing past failures. The client's own retry policy is the only retry.
pub async fn cancel_pipelines(
    api: &dyn GitLabApi,
    project: &ProjectRef,
    pipeline_ids: &[u64],
) -> CancelSummary {
    let mut summary = CancelSummary::default();
    for &id in pipeline_ids {
        match api.cancel_pipeline(project, id).await {
            Ok(p) => {
                tracing::info!(pipeline = id, status = %p.status, "pipeline canceled");
                summary.canceled.push(id);
            }
            Err(e) => {
                tracing::warn!(pipeline = id, error = %e, "pipeline could not be canceled");
                summary.failed.push((id, e.to_string()));
            }
        }
    }
    summary
}

/// The pipelines a load test started.
#[derive(Clone, Debug, PartialEq)]
pub struct Started {
    /// The project (by id).
    pub project: ProjectRef,
    /// One pipeline per part, in order.
    pub pipelines: Vec<Pipeline>,
    /// The branch of each part.
    pub branches: Vec<String>,
    /// The commit (SHA) of each part's CI file.
    pub commits: Vec<String>,
    /// Pipelines of the load test's commits that the run did not start, canceled after the
    /// creation ([`cancel_unexpected`]).
    pub unexpected: CancelSummary,
}

/// Cancels every unfinished pipeline of the load test's commits (on its branches) that the run
/// did not start: one that GitLab created for a POST whose answer was lost, after the client
/// stopped looking (a server slower than [`LoadTestRun::lost_answer`] allows). Pipelines of
/// other commits on those branches are left alone. A branch that cannot be listed is logged.
pub async fn cancel_unexpected(api: &dyn GitLabApi, started: &Started) -> CancelSummary {
    let ours: Vec<u64> = started.pipelines.iter().map(|p| p.id).collect();
    let mut strays = Vec::new();
    for (branch, sha) in started.branches.iter().zip(&started.commits) {
        match api.list_pipelines(&started.project, branch).await {
            Ok(list) => strays.extend(
                list.iter()
                    .filter(|p| &p.sha == sha && !ours.contains(&p.id) && !p.status.is_finished())
                    .map(|p| p.id),
            ),
            Err(e) => {
                tracing::warn!(%branch, error = %e, "cannot look for unexpected pipelines of the load test")
            }
        }
    }
    if strays.is_empty() {
        return CancelSummary::default();
    }
    tracing::warn!(pipelines = ?strays, "pipelines of the load test's commit that this run did not start; canceling them");
    cancel_pipelines(api, &started.project, &strays).await
}

/// GitLab's pipeline-creation refusals, with what they mean and what to do.
fn explain_creation_error(e: Error, run: &LoadTestRun, jobs: u64) -> Error {
    if e.is_pipeline_variables_refused() {
        let names: Vec<&str> = run.variables.iter().map(|v| v.key.as_str()).collect();
        return Error::InvalidInput {
            action: "create",
            resource: "load-test pipeline".into(),
            message: format!(
                "GitLab refused the pipeline variables {names:?} (\"Insufficient permissions to set pipeline variables\"): \
                 the project does not let the token's role set pipeline variables, which is GitLab.com's default for new \
                 namespaces since 17.7; run without variables, or raise the project's \"Minimum role to use pipeline \
                 variables\" (Settings > CI/CD > Variables)"
            ),
        };
    }
    if e.is_active_jobs_limit_exceeded() {
        return Error::InvalidInput {
            action: "create",
            resource: "load-test pipeline".into(),
            message: format!(
                "{e}; the project's alive pipelines and this one of {jobs} jobs reach GitLab's limit of jobs in active \
                 pipelines (GitLab.com: 500 on Free, 1,000 on trials): run the parts one after another \
                 (LoadTestRun::with_max_active_jobs) or wait for the project's other pipelines to end"
            ),
        };
    }
    if e.is_pipeline_size_exceeded() {
        return Error::InvalidInput {
            action: "create",
            resource: "load-test pipeline".into(),
            message: format!(
                "{e}; the pipeline of {jobs} jobs is above GitLab's jobs-per-pipeline limit (GitLab.com: 500 on Free): \
                 split it with a jobs-per-pipeline limit (loadtest --max-jobs-per-pipeline)"
            ),
        };
    }
    e
}

/// Commits each part's CI file (with `[skip ci]`) and then creates one pipeline per part, so
/// the pipelines start together. When a creation fails, the pipelines already created are
/// canceled (they would otherwise run a partial load test unobserved) and the error explains
/// GitLab's refusal. [`LoadTestRun::max_active_jobs`] is not applied here: [`run`] applies it.
pub async fn start(
    api: &dyn GitLabApi,
    project: &Project,
    run: &LoadTestRun,
    running: &RunningPipelines,
) -> Result<Started> {
    let project_ref = ProjectRef::Id(project.id);
    let default_branch = project.default_branch.as_deref().unwrap_or("main");
    let parts = run.parts(default_branch)?;
    let commits = commit_parts(api, &project_ref, &parts).await?;
    let pipelines = create_parts(api, &project_ref, run, running, &parts).await?;
    let mut started = Started {
        project: project_ref,
        branches: parts.into_iter().map(|(b, _)| b).collect(),
        commits,
        pipelines,
        unexpected: CancelSummary::default(),
    };
    started.unexpected = cancel_unexpected(api, &started).await;
    Ok(started)
}

/// Commits each part's CI file with `[skip ci]`; the commits' SHAs, in order.
async fn commit_parts(
    api: &dyn GitLabApi,
    project_ref: &ProjectRef,
    parts: &[(String, LoadTestSpec)],
) -> Result<Vec<String>> {
    let mut commits = Vec::with_capacity(parts.len());
    for (k, (branch, part)) in parts.iter().enumerate() {
        let yaml = part.to_yaml()?;
        let message = if parts.len() == 1 {
            format!("glrunner load test: {} jobs {SKIP_CI}", part.total_jobs())
        } else {
            format!(
                "glrunner load test: part {}/{} ({} jobs) {SKIP_CI}",
                k + 1,
                parts.len(),
                part.total_jobs()
            )
        };
        let commit = api
            .put_file(project_ref, branch, CI_FILE, &yaml, &message)
            .await?;
        commits.push(commit.id);
    }
    Ok(commits)
}

/// Creates one pipeline per part, registering each in `running`; on a failure cancels what
/// `running` holds and explains GitLab's refusal.
async fn create_parts(
    api: &dyn GitLabApi,
    project_ref: &ProjectRef,
    run: &LoadTestRun,
    running: &RunningPipelines,
    parts: &[(String, LoadTestSpec)],
) -> Result<Vec<Pipeline>> {
    let mut pipelines = Vec::new();
    for (branch, part) in parts {
        let mut new = NewPipeline::new(branch);
        new.variables = run.variables.clone();
        match api
            .create_pipeline_checked_with(project_ref, &new, &run.lost_answer)
            .await
        {
            Ok(p) => {
                tracing::info!(pipeline = p.id, branch = %branch, jobs = part.total_jobs(), url = %p.web_url, "pipeline created");
                running.add(project_ref, p.id);
                pipelines.push(p);
            }
            Err(e) => {
                let e = explain_creation_error(e, run, part.total_jobs());
                if !running.ids().is_empty() {
                    let summary = running.cancel(api).await;
                    tracing::warn!(summary = %summary.describe(), "creating a later pipeline failed; canceled the earlier ones");
                }
                return Err(e);
            }
        }
    }
    Ok(pipelines)
}

/// The watch configuration left after `elapsed` and `used` requests of `watch`.
fn remaining(watch: &WatchConfig, since: tokio::time::Instant, used: u64) -> WatchConfig {
    let mut left = watch.clone();
    left.timeout = watch.timeout.saturating_sub(since.elapsed());
    left.max_requests = watch.max_requests.saturating_sub(used);
    left
}

/// [`run`] with several waves: commits every part, then creates and watches the waves one
/// after another (a wave starts once the previous one finished, so the project's alive
/// pipelines stay below the active-jobs limit), then one last watch of every pipeline makes
/// the report of the whole run. Stops at the first wave that does not finish.
async fn run_in_waves(
    api: &dyn GitLabApi,
    project: &Project,
    run: &LoadTestRun,
    waves: &[Vec<usize>],
    watch: &WatchConfig,
    running: &RunningPipelines,
    on_event: &mut (dyn FnMut(&WatchEvent) + Send),
) -> std::result::Result<(Started, Result<Report>), Error> {
    let since = tokio::time::Instant::now();
    let base = api.requests_sent();
    let project_ref = ProjectRef::Id(project.id);
    let default_branch = project.default_branch.as_deref().unwrap_or("main");
    let parts = run.parts(default_branch)?;
    let commits = commit_parts(api, &project_ref, &parts).await?;
    let mut started = Started {
        project: project_ref.clone(),
        branches: parts.iter().map(|(b, _)| b.clone()).collect(),
        commits,
        pipelines: Vec::new(),
        unexpected: CancelSummary::default(),
    };
    for (w, wave) in waves.iter().enumerate() {
        let wave_parts: Vec<(String, LoadTestSpec)> =
            wave.iter().map(|&k| parts[k].clone()).collect();
        let jobs: u64 = wave_parts.iter().map(|(_, p)| p.total_jobs()).sum();
        tracing::info!(
            wave = w + 1,
            waves = waves.len(),
            jobs,
            "starting the next part of the load test (the jobs-in-active-pipelines limit lets the parts run only one after another)"
        );
        let created = create_parts(api, &project_ref, run, running, &wave_parts).await?;
        let ids: Vec<u64> = created.iter().map(|p| p.id).collect();
        started.pipelines.extend(created);
        let strays = cancel_unexpected(api, &started).await;
        started.unexpected.canceled.extend(strays.canceled);
        started.unexpected.failed.extend(strays.failed);
        let used = api.requests_sent().saturating_sub(base);
        let result = watch_pipelines(
            api,
            &project_ref,
            &ids,
            &remaining(watch, since, used),
            on_event,
        )
        .await;
        if !matches!(&result, Ok(r) if r.outcome == WatchOutcome::Finished) {
            return Ok((started, result));
        }
    }
    let all: Vec<u64> = started.pipelines.iter().map(|p| p.id).collect();
    let used = api.requests_sent().saturating_sub(base);
    let result = watch_pipelines(
        api,
        &project_ref,
        &all,
        &remaining(watch, since, used),
        on_event,
    )
    .await;
    Ok((started, result))
}

/// How a load test ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The report over every pipeline.
    pub report: Report,
    /// What was canceled because the run ended early (empty when it finished or
    /// [`LoadTestRun::keep_pipeline`]).
    pub cancel: CancelSummary,
    /// Pipelines of the load test's commits that the run did not start, canceled after the
    /// creation or when the watch ended ([`cancel_unexpected`]).
    pub unexpected: CancelSummary,
}

/// A load test that failed after its pipelines existed: the error and what was canceled.
#[derive(Debug, thiserror::Error)]
#[error("{error} ({})", cancel.describe())]
pub struct Failure {
    /// What failed.
    #[source]
    pub error: Error,
    /// The pipelines the run had started.
    pub pipelines: Vec<u64>,
    /// What was canceled (nothing with [`LoadTestRun::keep_pipeline`]).
    pub cancel: CancelSummary,
}

/// Deletes the branches glrunner made for parts 2.. of a split load test (`<branch>-glrunner-
/// part-<k>`); the first part runs on the user's branch, which stays. A branch that cannot be
/// deleted is logged, not fatal: the load test's result does not depend on it.
async fn delete_part_branches(api: &dyn GitLabApi, project: &ProjectRef, branches: &[String]) {
    for branch in branches.iter().skip(1) {
        match api.delete_branch(project, branch).await {
            Ok(()) => tracing::info!(%branch, "deleted the load test's part branch"),
            Err(Error::NotFound { .. }) => {}
            Err(e) => {
                tracing::warn!(%branch, error = %e, "could not delete the load test's part branch")
            }
        }
    }
}

/// Starts the load test ([`start`]) and watches its pipelines as one. When the watch ends
/// early (timeout, budget) or fails, the pipelines are canceled unless
/// [`LoadTestRun::keep_pipeline`], and the outcome says so.
pub async fn run(
    api: &dyn GitLabApi,
    project: &Project,
    run: &LoadTestRun,
    watch: &WatchConfig,
    running: &RunningPipelines,
    on_event: &mut (dyn FnMut(&WatchEvent) + Send),
) -> std::result::Result<Outcome, Failure> {
    let default_branch = project.default_branch.as_deref().unwrap_or("main");
    let waves = run.waves(default_branch).map_err(|error| Failure {
        error,
        pipelines: Vec::new(),
        cancel: CancelSummary::default(),
    })?;
    let begun = if waves.len() > 1 {
        run_in_waves(api, project, run, &waves, watch, running, on_event)
            .await
            .map(|(started, result)| (started, Some(result)))
    } else {
        start(api, project, run, running)
            .await
            .map(|started| (started, None))
    };
    let (started, result) = match begun {
        Ok(begun) => begun,
        Err(error) => {
            // Parts committed before a creation failed have no pipeline left running.
            let default_branch = project.default_branch.as_deref().unwrap_or("main");
            if let Ok(parts) = run.parts(default_branch) {
                let branches: Vec<String> = parts.into_iter().map(|(b, _)| b).collect();
                delete_part_branches(api, &ProjectRef::Id(project.id), &branches).await;
            }
            return Err(Failure {
                error,
                pipelines: Vec::new(),
                cancel: CancelSummary::default(),
            });
        }
    };
    let ids: Vec<u64> = started.pipelines.iter().map(|p| p.id).collect();
    let result = match result {
        Some(result) => result,
        None => watch_pipelines(api, &started.project, &ids, watch, on_event).await,
    };
    let mut unexpected = started.unexpected.clone();
    let late = cancel_unexpected(api, &started).await;
    unexpected.canceled.extend(late.canceled);
    unexpected.failed.extend(late.failed);
    let ended_early = !matches!(&result, Ok(r) if r.outcome == WatchOutcome::Finished);
    let cancel = if ended_early && !run.keep_pipeline {
        running.cancel(api).await
    } else {
        running.clear();
        CancelSummary::default()
    };
    // A kept pipeline still runs on its part branch; otherwise every pipeline has ended.
    if !(ended_early && run.keep_pipeline) {
        delete_part_branches(api, &started.project, &started.branches).await;
    }
    match result {
        Ok(mut report) => {
            if report.outcome == WatchOutcome::Finished
                && (run.spec.proves_images() || run.spec.cache_megabytes.is_some())
            {
                let parts: Vec<LoadTestSpec> = run
                    .parts(default_branch)
                    .map(|p| p.into_iter().map(|(_, s)| s).collect())
                    .unwrap_or_else(|_| vec![run.spec.clone()]);
                // What the watch left of its budget: the logs never take more.
                let budget = watch.max_requests.saturating_sub(report.requests);
                match crate::sample::read_traces(
                    api,
                    &started.project,
                    &report.jobs,
                    &parts,
                    &run.trace_sampling,
                    budget,
                )
                .await
                {
                    Ok(traces) => {
                        report.requests += traces.requests;
                        report.traces = Some(traces);
                    }
                    Err(e) => tracing::warn!(error = %e, "the job logs could not be sampled"),
                }
            }
            Ok(Outcome {
                report,
                cancel,
                unexpected,
            })
        }
        Err(error) => {
            // The failure names one summary: what the run canceled, strays included.
            let mut cancel = cancel;
            cancel.canceled.extend(unexpected.canceled);
            cancel.failed.extend(unexpected.failed);
            Err(Failure {
                error,
                pipelines: ids,
                cancel,
            })
        }
    }
}

/// [`run`] that ends when `stop` completes first (a signal): the pipelines started so far are
/// canceled unless [`LoadTestRun::keep_on_stop`], and the outcome's report covers their jobs so
/// far ([`WatchOutcome::Interrupted`]), with what was canceled. The one place a stopped load
/// test is handled: the flow's load-test phase and the `loadtest` command both call it.
pub async fn run_until(
    api: &dyn GitLabApi,
    project: &Project,
    load_test: &LoadTestRun,
    watch: &WatchConfig,
    running: &RunningPipelines,
    on_event: &mut (dyn FnMut(&WatchEvent) + Send),
    stop: impl std::future::Future<Output = ()> + Send,
) -> std::result::Result<Outcome, Failure> {
    let started = tokio::time::Instant::now();
    let finished = tokio::select! {
        biased;
        () = stop => None,
        r = run(api, project, load_test, watch, running, on_event) => Some(r),
    };
    if let Some(result) = finished {
        return result;
    }
    let ids = running.ids();
    let cancel = if load_test.keep_on_stop {
        tracing::info!(pipelines = ?ids, "load test stopped; keeping its pipelines running");
        running.clear();
        CancelSummary::default()
    } else {
        let summary = running.cancel(api).await;
        tracing::info!(summary = %summary.describe(), "load test stopped");
        summary
    };
    // A stop stays a stop: a pipeline GitLab does not answer for is left out of the report.
    let project_ref = ProjectRef::Id(project.id);
    let mut pipelines = Vec::new();
    let mut jobs = Vec::new();
    for &id in &ids {
        let read = async {
            let pipeline = api.get_pipeline(&project_ref, id).await?;
            let its_jobs = api.all_pipeline_jobs(&project_ref, id).await?;
            Ok::<_, Error>((pipeline, its_jobs))
        };
        match read.await {
            Ok((pipeline, its_jobs)) => {
                pipelines.push(pipeline);
                jobs.extend(its_jobs);
            }
            Err(e) => {
                tracing::warn!(pipeline = id, error = %e, "cannot read a stopped load test's pipeline; it is left out of the report")
            }
        }
    }
    let report = Report::compute_many(
        &pipelines,
        &jobs,
        WatchOutcome::Interrupted,
        api.requests_sent(),
        started.elapsed().as_secs_f64(),
    );
    Ok(Outcome {
        report,
        cancel,
        unexpected: CancelSummary::default(),
    })
}
