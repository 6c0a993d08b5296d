//! One behavioural suite for every [`GitLabApi`] backend (not API-stable; creates and deletes projects).
//!
//! Each case is a plain `async fn` taking `&dyn GitLabApi` and a unique project name prefix.
//! The in-memory backend runs them always; the HTTP backend runs them against a real
//! GitLab only when `GITLAB_URL` and `GITLAB_TOKEN` are set (ignored tests). Cases that
//! need a runner to take jobs are not here: a real GitLab needs a real runner for that.
//!
//! Push pipelines are created asynchronously on a real GitLab (Sidekiq): cases that check
//! for them (or their absence) take a `settle` time to wait; the in-memory backend needs none.

use crate::api::{GitLabApi, GitLabApiExt};
use crate::ci::{LoadTestSpec, ShardTarget};
use crate::error::{Error, Result};
use crate::types::{
    JobStatus, JobsQuery, NewPipeline, NewRunner, Pipeline, PipelineStatus, ProjectRef,
};

/// Waits up to `settle` (polling every 2 s) for the ref's pipelines to satisfy `done`.
async fn pipelines_after(
    api: &dyn GitLabApi,
    project: &ProjectRef,
    ref_name: &str,
    settle: std::time::Duration,
    done: impl Fn(&[Pipeline]) -> bool,
) -> Result<Vec<Pipeline>> {
    let deadline = tokio::time::Instant::now() + settle;
    loop {
        let pipelines = api.list_pipelines(project, ref_name).await?;
        if done(&pipelines) || tokio::time::Instant::now() >= deadline {
            return Ok(pipelines);
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

/// A project of the signed-in user named `<prefix>-<name>` (created when missing), as a
/// reference and its default branch (`main` when GitLab names none yet).
async fn scratch_project(
    api: &dyn GitLabApi,
    prefix: &str,
    name: &str,
) -> Result<(ProjectRef, String)> {
    let user = api.current_user().await?;
    let project = api
        .get_or_create_project(&format!("{}/{prefix}-{name}", user.username))
        .await?;
    let branch = project.default_branch.unwrap_or_else(|| "main".into());
    Ok((ProjectRef::Id(project.id), branch))
}

fn check(cond: bool, what: impl Into<String>) -> Result<()> {
    if cond {
        Ok(())
    } else {
        Err(Error::backend("check", "conformance", what.into()))
    }
}

/// The token resolves to a user.
pub async fn token_identifies_user(api: &dyn GitLabApi) -> Result<()> {
    let user = api.current_user().await?;
    check(!user.username.is_empty(), "current user has a username")
}

/// Unknown projects, pipelines and runners are [`Error::NotFound`].
pub async fn missing_things_are_not_found(api: &dyn GitLabApi, prefix: &str) -> Result<()> {
    let user = api.current_user().await?;
    let missing = ProjectRef::Path(format!("{}/{prefix}-does-not-exist", user.username));
    check(
        matches!(api.get_project(&missing).await, Err(Error::NotFound { .. })),
        "missing project is NotFound",
    )?;
    check(
        matches!(
            api.delete_runner(u64::MAX / 2).await,
            Err(Error::NotFound { .. })
        ),
        "missing runner is NotFound",
    )
}

/// `get_or_create_project` creates once and then returns the same project.
pub async fn project_get_or_create_is_idempotent(api: &dyn GitLabApi, prefix: &str) -> Result<()> {
    let user = api.current_user().await?;
    let path = format!("{}/{prefix}-project", user.username);
    let a = api.get_or_create_project(&path).await?;
    let b = api.get_or_create_project(&path).await?;
    check(
        a.id == b.id,
        "second get_or_create returns the same project",
    )?;
    check(
        a.path_with_namespace.eq_ignore_ascii_case(&path),
        "project has the requested path",
    )?;
    let by_path = api.get_project(&ProjectRef::Path(path)).await?;
    check(by_path.id == a.id, "get by path finds it")?;
    api.delete_project(&ProjectRef::Id(a.id)).await
}

/// Runners: create (token redacted, `glrt-`), list, delete, delete again is NotFound.
pub async fn runner_lifecycle(api: &dyn GitLabApi, prefix: &str) -> Result<()> {
    let user = api.current_user().await?;
    let project = api
        .get_or_create_project(&format!("{}/{prefix}-runners", user.username))
        .await?;
    let new = NewRunner::project(
        project.id,
        format!("{prefix}-runner"),
        vec![format!("{prefix}-a")],
    );
    let created = api.create_runner(&new).await?;
    check(
        created.token.expose().starts_with("glrt-"),
        "runner token is a glrt- token",
    )?;
    check(
        !format!("{created:?}").contains(created.token.expose()),
        "Debug of the runner hides the token",
    )?;
    let runners = api.list_runners(&ProjectRef::Id(project.id)).await?;
    check(
        runners.iter().any(|r| r.id == created.id),
        "the new runner is listed",
    )?;
    let details = api.get_runner(created.id).await?;
    check(
        details.tag_list == vec![format!("{prefix}-a")],
        format!("runner details carry the tags, got {:?}", details.tag_list),
    )?;
    check(
        !details.is_online() && details.contacted_at.is_none(),
        format!(
            "a runner no manager has contacted GitLab with is not online, got {:?}",
            details.status
        ),
    )?;
    api.delete_runner(created.id).await?;
    check(
        matches!(
            api.delete_runner(created.id).await,
            Err(Error::NotFound { .. })
        ),
        "deleting twice is NotFound",
    )?;
    api.delete_project(&ProjectRef::Id(project.id)).await
}

/// Commit a CI file (create, then update), run a pipeline, list every job across pages of
/// 100, cancel it.
pub async fn pipeline_jobs_are_paginated_and_cancelable(
    api: &dyn GitLabApi,
    prefix: &str,
) -> Result<()> {
    let (pref, branch) = scratch_project(api, prefix, "pipeline").await?;
    let spec = LoadTestSpec::new(vec![
        ShardTarget::new(format!("{prefix}-a"), 150),
        ShardTarget::new(format!("{prefix}-b"), 101),
    ]);
    let first = LoadTestSpec::new(vec![ShardTarget::new(format!("{prefix}-a"), 1)]);
    api.put_file(
        &pref,
        &branch,
        ".gitlab-ci.yml",
        &first.to_yaml()?,
        "load test: 1 job",
    )
    .await?;
    check(
        api.file_exists(&pref, ".gitlab-ci.yml", &branch).await?,
        "the CI file exists after the commit",
    )?;
    api.put_file(
        &pref,
        &branch,
        ".gitlab-ci.yml",
        &spec.to_yaml()?,
        "load test: 251 jobs",
    )
    .await?;
    let pipeline = api
        .create_pipeline(&pref, &NewPipeline::new(&branch))
        .await?;
    let got = api.get_pipeline(&pref, pipeline.id).await?;
    check(got.id == pipeline.id, "get_pipeline returns it")?;
    let first_page = api
        .list_pipeline_jobs(&pref, pipeline.id, &JobsQuery::page(1))
        .await?;
    check(
        first_page.items.len() == 100 && first_page.next_page == Some(2),
        "first page has 100 jobs and a next page",
    )?;
    let jobs = api.all_pipeline_jobs(&pref, pipeline.id).await?;
    check(
        jobs.len() == 251,
        format!("all 251 jobs listed, got {}", jobs.len()),
    )?;
    let mut ids: Vec<u64> = jobs.iter().map(|j| j.id).collect();
    check(
        ids.windows(2).all(|w| w[0] > w[1]),
        "jobs are sorted by id descending",
    )?;
    ids.dedup();
    check(ids.len() == 251, "no job listed twice")?;
    check(
        jobs.iter().all(|j| j.tag_list.len() == 1),
        "each job carries exactly one shard tag",
    )?;
    let one = api.get_job(&pref, jobs[0].id).await?;
    check(one.id == jobs[0].id, "get_job returns the job")?;
    let canceled = api.cancel_pipeline(&pref, pipeline.id).await?;
    check(
        matches!(
            canceled.status,
            PipelineStatus::Canceled | PipelineStatus::Canceling
        ),
        format!(
            "canceled pipeline status is canceled, got {}",
            canceled.status
        ),
    )?;
    let active = api
        .list_pipeline_jobs(
            &pref,
            pipeline.id,
            &JobsQuery::page(1).scope(&[JobStatus::Pending]),
        )
        .await?;
    check(
        active.items.is_empty() || active.items.iter().all(|j| j.status == JobStatus::Pending),
        "scope filters by status",
    )?;
    api.delete_project(&pref).await
}

/// A project's jobs (`GET /projects/:id/jobs`): newest first across its pipelines, filtered by
/// `scope[]`, pages of at most 100 with a next page until the last; the bounded walk stops at
/// its bound in as few requests as it promises and says it stopped.
pub async fn project_jobs_are_listed_newest_first_by_scope(
    api: &dyn GitLabApi,
    prefix: &str,
) -> Result<()> {
    let (pref, branch) = scratch_project(api, prefix, "project-jobs").await?;
    let spec = LoadTestSpec::new(vec![
        ShardTarget::new(format!("{prefix}-a"), 80),
        ShardTarget::new(format!("{prefix}-b"), 40),
    ]);
    api.put_file(
        &pref,
        &branch,
        ".gitlab-ci.yml",
        &spec.to_yaml()?,
        "load test: 120 jobs",
    )
    .await?;
    let first = api
        .create_pipeline(&pref, &NewPipeline::new(&branch))
        .await?;
    let second = api
        .create_pipeline(&pref, &NewPipeline::new(&branch))
        .await?;
    // The first pipeline's jobs end; the second's stay pending (no runner here).
    api.cancel_pipeline(&pref, first.id).await?;
    let pending = [JobStatus::Pending];
    let page = api
        .list_project_jobs(&pref, &JobsQuery::page(1).scope(&pending))
        .await?;
    check(
        page.items.len() == 100 && page.next_page == Some(2),
        format!(
            "the first page of pending jobs has 100 and a next page, got {} and {:?}",
            page.items.len(),
            page.next_page
        ),
    )?;
    let all = api.project_jobs_up_to(&pref, &pending, 1_000).await?;
    check(
        all.items.len() == 120 && !all.truncated,
        format!(
            "all 120 pending jobs read, got {} (truncated: {})",
            all.items.len(),
            all.truncated
        ),
    )?;
    check(
        all.items.windows(2).all(|w| w[0].id > w[1].id),
        "project jobs are sorted by id descending",
    )?;
    check(
        all.items.iter().all(|j| j.status == JobStatus::Pending),
        "scope[]=pending lists pending jobs only",
    )?;
    let second_jobs = api.all_pipeline_jobs(&pref, second.id).await?;
    let mut second_ids: Vec<u64> = second_jobs.iter().map(|j| j.id).collect();
    let mut listed: Vec<u64> = all.items.iter().map(|j| j.id).collect();
    second_ids.sort_unstable();
    listed.sort_unstable();
    check(
        listed == second_ids,
        "the pending jobs are exactly the uncanceled pipeline's",
    )?;
    let tags = |tag: &str| {
        all.items
            .iter()
            .filter(|j| j.tag_list == [tag.to_owned()])
            .count()
    };
    check(
        tags(&format!("{prefix}-a")) == 80 && tags(&format!("{prefix}-b")) == 40,
        "project jobs carry their tags",
    )?;
    let before = api.requests_sent();
    let bounded = api.project_jobs_up_to(&pref, &pending, 50).await?;
    let spent = api.requests_sent() - before;
    check(
        bounded.items.len() == 50 && bounded.truncated && bounded.items[0].id == all.items[0].id,
        format!(
            "a bound of 50 reads the newest 50 and says there were more, got {} (truncated: {})",
            bounded.items.len(),
            bounded.truncated
        ),
    )?;
    check(
        spent == 1,
        format!("a bound of 50 costs one request, took {spent}"),
    )?;
    let canceled = api
        .project_jobs_up_to(&pref, &[JobStatus::Canceled], 1_000)
        .await?;
    check(
        canceled.items.len() == 120
            && canceled
                .items
                .iter()
                .all(|j| j.status == JobStatus::Canceled),
        format!(
            "the canceled pipeline's 120 jobs are listed by scope[]=canceled, got {}",
            canceled.items.len()
        ),
    )?;
    let everything = api.project_jobs_up_to(&pref, &[], 1_000).await?;
    check(
        everything.items.len() == 240,
        format!(
            "no scope lists every job of both pipelines, got {}",
            everything.items.len()
        ),
    )?;
    api.cancel_pipeline(&pref, second.id).await?;
    api.delete_project(&pref).await
}

/// A job's log (`GET /projects/:id/jobs/:job_id/trace`): a job no runner took yet has none and
/// GitLab answers an empty body (`build.trace.raw || ''`, lib/api/ci/jobs.rb), not an error; an
/// unknown job, and a job asked for through another project, are not found.
pub async fn job_logs_are_served_by_project(api: &dyn GitLabApi, prefix: &str) -> Result<()> {
    let (pref, branch) = scratch_project(api, prefix, "job-logs").await?;
    let (other, _) = scratch_project(api, prefix, "job-logs-other").await?;
    let spec = LoadTestSpec::new(vec![ShardTarget::new(format!("{prefix}-logs"), 2)]);
    api.put_file(
        &pref,
        &branch,
        ".gitlab-ci.yml",
        &spec.to_yaml()?,
        "load test: 2 jobs",
    )
    .await?;
    let pipeline = api
        .create_pipeline(&pref, &NewPipeline::new(&branch))
        .await?;
    let jobs = api.all_pipeline_jobs(&pref, pipeline.id).await?;
    check(jobs.len() == 2, format!("2 jobs, got {}", jobs.len()))?;
    let log = api.job_trace(&pref, jobs[0].id).await?;
    check(
        log.is_empty(),
        format!("a pending job's log is empty, got {} bytes", log.len()),
    )?;
    let missing = api.job_trace(&pref, jobs[0].id + 1_000_000).await;
    check(
        matches!(missing, Err(Error::NotFound { .. })),
        format!("an unknown job's log is not found, got {missing:?}"),
    )?;
    let elsewhere = api.job_trace(&other, jobs[0].id).await;
    check(
        matches!(elsewhere, Err(Error::NotFound { .. })),
        format!("a job asked for through another project is not found, got {elsewhere:?}"),
    )?;
    api.cancel_pipeline(&pref, pipeline.id).await?;
    api.delete_project(&other).await?;
    api.delete_project(&pref).await
}

/// Push pipelines: the generated CI file (api-only `workflow: rules`) committed without
/// `[skip ci]` starts none, and `POST /pipeline` then starts exactly one; a plain CI file
/// committed with `[skip ci]` starts none, and without it starts a push pipeline; a commit to
/// a new branch works (`start_branch`), and deleting it again too (never the default branch).
pub async fn commits_start_only_the_pipelines_glrunner_watches(
    api: &dyn GitLabApi,
    prefix: &str,
    settle: std::time::Duration,
) -> Result<()> {
    let (pref, branch) = scratch_project(api, prefix, "push").await?;
    let spec = LoadTestSpec::new(vec![ShardTarget::new(format!("{prefix}-a"), 2)]);
    api.put_file(
        &pref,
        &branch,
        ".gitlab-ci.yml",
        &spec.to_yaml()?,
        "load test",
    )
    .await?;
    let api_pipeline = api
        .create_pipeline(&pref, &NewPipeline::new(&branch))
        .await?;
    let seen = pipelines_after(api, &pref, &branch, settle, |p| p.len() > 1).await?;
    check(
        seen.len() == 1 && seen[0].id == api_pipeline.id,
        format!(
            "exactly the API pipeline exists, got {:?}",
            seen.iter()
                .map(|p| (p.id, p.source.clone()))
                .collect::<Vec<_>>()
        ),
    )?;
    api.cancel_pipeline(&pref, api_pipeline.id).await?;

    let plain = format!("plain:\n  tags: [{prefix}-a]\n  script: [echo]\n");
    let new_branch = format!("{prefix}-new-branch");
    api.put_file(
        &pref,
        &new_branch,
        ".gitlab-ci.yml",
        &plain,
        "plain file [skip ci]",
    )
    .await?;
    check(
        api.get_branch(&pref, &new_branch).await.is_ok(),
        "a commit to a new branch creates it",
    )?;
    let skipped = pipelines_after(api, &pref, &new_branch, settle, |p| !p.is_empty()).await?;
    check(
        skipped.is_empty(),
        format!("[skip ci] starts no pipeline, got {}", skipped.len()),
    )?;
    api.put_file(
        &pref,
        &new_branch,
        ".gitlab-ci.yml",
        &format!("{plain}# again\n"),
        "plain file",
    )
    .await?;
    let pushed = pipelines_after(
        api,
        &pref,
        &new_branch,
        settle.max(std::time::Duration::from_secs(1)) * 6,
        |p| !p.is_empty(),
    )
    .await?;
    check(
        pushed.len() == 1 && pushed[0].source.as_deref() == Some("push"),
        format!(
            "a commit without [skip ci] starts a push pipeline, got {:?}",
            pushed
                .iter()
                .map(|p| (p.id, p.source.clone()))
                .collect::<Vec<_>>()
        ),
    )?;
    for p in pushed {
        api.cancel_pipeline(&pref, p.id).await?;
    }
    api.delete_branch(&pref, &new_branch).await?;
    check(
        matches!(
            api.get_branch(&pref, &new_branch).await,
            Err(Error::NotFound { .. })
        ),
        "a deleted branch is gone",
    )?;
    check(
        matches!(
            api.delete_branch(&pref, &new_branch).await,
            Err(Error::NotFound { .. })
        ),
        "deleting a missing branch is NotFound",
    )?;
    check(
        api.delete_branch(&pref, &branch).await.is_err(),
        "the default branch cannot be deleted",
    )?;
    api.delete_project(&pref).await
}

/// The preflight's reads: a version string with major and minor, the token's scopes, and the
/// user's role in its own project (found; a stranger is not a member).
pub async fn preflight_reads_answer(api: &dyn GitLabApi, prefix: &str) -> Result<()> {
    let version = api.version().await?;
    check(
        version.major_minor().is_some(),
        format!("GET /version answers MAJOR.MINOR: {:?}", version.version),
    )?;
    let token = api.token_info().await?;
    check(
        token.scopes.iter().any(|s| s == "api"),
        format!("the token has the api scope: {:?}", token.scopes),
    )?;
    let user = api.current_user().await?;
    let project = api
        .get_or_create_project(&format!("{}/{prefix}-members", user.username))
        .await?;
    let scope = crate::types::MemberScope::Project(ProjectRef::Id(project.id));
    let me = api.member(&scope, user.id).await?;
    check(
        me.is_some_and(|m| m.access_level >= crate::types::access_level::MAINTAINER),
        "the project's creator is at least Maintainer",
    )?;
    let stranger = api.member(&scope, u64::from(u32::MAX) - 7).await?;
    check(stranger.is_none(), "a stranger is no member")?;
    api.delete_project(&ProjectRef::Id(project.id)).await
}

/// Every case, in order.
pub async fn run_all(api: &dyn GitLabApi, prefix: &str) -> Result<()> {
    run_all_settling(api, prefix, std::time::Duration::ZERO).await
}

/// Every case, in order, waiting `settle` for asynchronous push pipelines (a real GitLab).
pub async fn run_all_settling(
    api: &dyn GitLabApi,
    prefix: &str,
    settle: std::time::Duration,
) -> Result<()> {
    token_identifies_user(api).await?;
    preflight_reads_answer(api, prefix).await?;
    missing_things_are_not_found(api, prefix).await?;
    project_get_or_create_is_idempotent(api, prefix).await?;
    runner_lifecycle(api, prefix).await?;
    pipeline_jobs_are_paginated_and_cancelable(api, prefix).await?;
    project_jobs_are_listed_newest_first_by_scope(api, prefix).await?;
    job_logs_are_served_by_project(api, prefix).await?;
    commits_start_only_the_pipelines_glrunner_watches(api, prefix, settle).await
}
