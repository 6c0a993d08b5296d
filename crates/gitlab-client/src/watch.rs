//! Watching one or several pipelines to the end with an adaptive interval and a request budget.
//!
//! Each cycle costs, per unfinished pipeline, one pipeline request plus two `per_page=1`
//! counts read from `x-total` (finished jobs, queued jobs); a pipeline of at most one page
//! of jobs is listed in one request instead. Unfinished jobs are *total − finished*, so every
//! active status counts as active (`preparing`, `canceling`, `scheduled`,
//! `waiting_for_resource`, and any GitLab adds later) while the watcher only sends the
//! `scope[]` values GitLab documents. Once every pipeline is final, one full listing (pages of
//! 100) reads every job's timestamps for the [`Report`].
//!
//! # Bounds
//!
//! - **Deadline**: every call runs under the remaining time of [`WatchConfig::timeout`], so
//!   neither a slow GitLab nor a `Retry-After`/`RateLimit-Reset` wait outlives it.
//! - **Request budget**: counted with [`GitLabApi::requests_sent`], which includes the
//!   transport's own retries.
//! - **One retry layer**: a 429 that the transport already retried (`retried: true`, the HTTP
//!   client) ends the watch with the error; only a backend that reports 429s as they come
//!   (the in-memory GitLab) leaves the wait to the watcher, which waits at most until the
//!   deadline.
//!
//! Sleeping uses `tokio::time`, so watches run on a paused clock in tests and in the sandbox.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::api::GitLabApi;
use crate::error::{Error, Result};
use crate::report::{Report, WatchOutcome};
use crate::types::{Job, JobStatus, JobsQuery, Page, Pipeline, ProjectRef};

/// How long the final listing may take after the deadline passed (it is what the report is
/// made of).
const FINAL_LISTING_GRACE: Duration = Duration::from_secs(60);

/// How to watch.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct WatchConfig {
    /// First interval between cycles.
    pub initial_interval: Duration,
    /// Shortest interval (while jobs change).
    pub min_interval: Duration,
    /// Longest interval (while nothing changes).
    pub max_interval: Duration,
    /// Total request budget of the watch, including the final listing and transport retries.
    pub max_requests: u64,
    /// Request-rate ceiling; GitLab.com allows 2,000/min per user, shared with everything else.
    pub max_requests_per_minute: u32,
    /// Give up (with a partial report) after this long.
    pub timeout: Duration,
    /// Page size of job listings (GitLab's maximum is 100).
    pub per_page: u32,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            initial_interval: Duration::from_secs(5),
            min_interval: Duration::from_secs(2),
            max_interval: Duration::from_secs(30),
            max_requests: 20_000,
            max_requests_per_minute: 300,
            timeout: Duration::from_secs(2 * 3600),
            per_page: crate::MAX_PER_PAGE,
        }
    }
}

impl WatchConfig {
    /// Sets the timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the request budget.
    #[must_use]
    pub fn with_max_requests(mut self, max_requests: u64) -> Self {
        self.max_requests = max_requests;
        self
    }

    /// Sets the request-rate ceiling.
    #[must_use]
    pub fn with_max_requests_per_minute(mut self, rpm: u32) -> Self {
        self.max_requests_per_minute = rpm.max(1);
        self
    }

    /// Sets the interval bounds.
    #[must_use]
    pub fn with_intervals(mut self, initial: Duration, min: Duration, max: Duration) -> Self {
        self.initial_interval = initial;
        self.min_interval = min.min(max);
        self.max_interval = max;
        self
    }
}

/// One progress snapshot, emitted after every cycle.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WatchProgress {
    /// Time since the watch started (tokio clock), seconds.
    pub elapsed_secs: f64,
    /// Pipeline status (of the first unfinished pipeline when several are watched).
    pub pipeline_status: String,
    /// Jobs in the pipeline(s).
    pub total_jobs: usize,
    /// Jobs that have finished.
    pub finished_jobs: usize,
    /// Unfinished jobs: `pending` (created, waiting for a resource or a runner) and `running`
    /// (every other unfinished status: running, preparing, canceling, scheduled, ...); per
    /// exact status when the pipeline fits on one page.
    pub active_by_status: BTreeMap<String, usize>,
    /// Requests made so far (transport retries included).
    pub requests: u64,
    /// Seconds until the next cycle.
    pub next_interval_secs: f64,
}

/// What the watcher reports while it runs.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum WatchEvent {
    /// A cycle completed.
    Progress(WatchProgress),
    /// GitLab answered 429; the watcher waits this long.
    Throttled {
        /// Seconds to wait.
        retry_after_secs: f64,
    },
}

/// Why a call did not return a value.
enum Stop {
    /// The deadline passed (during the call or a wait).
    Deadline,
    /// GitLab (or the transport) failed.
    Failed(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Failed(e)
    }
}

/// Issues one API call under the deadline, waiting out 429s the transport left to us.
macro_rules! call {
    ($st:expr, $until:expr, $fut:expr) => {{
        loop {
            let remaining = $until.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break Err(Stop::Deadline);
            }
            match tokio::time::timeout(remaining, $fut).await {
                Err(_) => break Err(Stop::Deadline),
                Ok(Err(Error::Throttled {
                    retry_after,
                    retried: false,
                    ..
                })) => {
                    let wait = retry_after.unwrap_or($st.cfg.initial_interval);
                    let remaining = $until.saturating_duration_since(Instant::now());
                    tracing::warn!(
                        wait_secs = wait.as_secs_f64(),
                        remaining_secs = remaining.as_secs_f64(),
                        "GitLab throttled the watcher; waiting"
                    );
                    ($st.on_event)(&WatchEvent::Throttled {
                        retry_after_secs: wait.as_secs_f64(),
                    });
                    if wait >= remaining {
                        // Waiting would outlive the deadline: sleep to it and stop there.
                        tokio::time::sleep(remaining).await;
                        break Err(Stop::Deadline);
                    }
                    tokio::time::sleep(wait).await;
                }
                Ok(other) => break other.map_err(Stop::Failed),
            }
        }
    }};
}

struct State<'a> {
    api: &'a dyn GitLabApi,
    project: &'a ProjectRef,
    cfg: &'a WatchConfig,
    on_event: &'a mut (dyn FnMut(&WatchEvent) + Send),
    start: Instant,
    deadline: Instant,
    base_requests: u64,
}

impl State<'_> {
    fn requests(&self) -> u64 {
        self.api.requests_sent().saturating_sub(self.base_requests)
    }

    fn per_page(&self) -> u32 {
        self.cfg.per_page.clamp(1, crate::MAX_PER_PAGE)
    }

    fn pages(&self, jobs: usize) -> u64 {
        (jobs as u64).div_ceil(u64::from(self.per_page())).max(1)
    }

    async fn pipeline(&mut self, id: u64, until: Instant) -> Result<Pipeline, Stop> {
        let (api, project) = (self.api, self.project);
        call!(self, until, api.get_pipeline(project, id))
    }

    async fn page(
        &mut self,
        pipeline_id: u64,
        scope: &[JobStatus],
        page: u32,
        per_page: u32,
        until: Instant,
    ) -> Result<Page<Job>, Stop> {
        let query = JobsQuery {
            page,
            per_page,
            scope: scope.to_vec(),
        };
        let (api, project) = (self.api, self.project);
        call!(
            self,
            until,
            api.list_pipeline_jobs(project, pipeline_id, &query)
        )
    }

    /// Every job in `scope`, page by page.
    async fn list(
        &mut self,
        pipeline_id: u64,
        scope: &[JobStatus],
        until: Instant,
    ) -> Result<Vec<Job>, Stop> {
        let per_page = self.per_page();
        let mut jobs = Vec::new();
        let mut page = 1;
        loop {
            let p = self.page(pipeline_id, scope, page, per_page, until).await?;
            jobs.extend(p.items);
            match p.next_page {
                Some(next) if next > page => page = next,
                _ => return Ok(jobs),
            }
        }
    }

    /// How many jobs are in `scope`: one request with `per_page=1` reading `x-total`, or a
    /// full listing when GitLab omits it (above 10,000 records).
    async fn count(&mut self, pipeline_id: u64, scope: &[JobStatus]) -> Result<usize, Stop> {
        let deadline = self.deadline;
        let first = self.page(pipeline_id, scope, 1, 1, deadline).await?;
        match first.total {
            Some(total) => Ok(total as usize),
            None => Ok(self.list(pipeline_id, scope, deadline).await?.len()),
        }
    }

    /// Unfinished jobs of one pipeline per status (see [`WatchProgress::active_by_status`]).
    async fn active(
        &mut self,
        pipeline_id: u64,
        total: usize,
    ) -> Result<BTreeMap<String, usize>, Stop> {
        let mut by_status = BTreeMap::new();
        if total <= self.per_page() as usize {
            let deadline = self.deadline;
            let page = self
                .page(pipeline_id, &[], 1, self.per_page(), deadline)
                .await?;
            if page.next_page.is_none() {
                for job in page.items.iter().filter(|j| !j.status.is_finished()) {
                    *by_status.entry(job.status.as_str().to_owned()).or_insert(0) += 1;
                }
                return Ok(by_status);
            }
        }
        let finished = self.count(pipeline_id, &JobStatus::FINISHED_SCOPE).await?;
        let queued = self.count(pipeline_id, &JobStatus::QUEUED_SCOPE).await?;
        let active = total.saturating_sub(finished);
        let queued = queued.min(active);
        for (status, n) in [("pending", queued), ("running", active - queued)] {
            if n > 0 {
                by_status.insert(status.to_owned(), n);
            }
        }
        Ok(by_status)
    }
}

/// Watches a pipeline until it is final, the timeout passes or the budget runs out, and
/// returns the report. See [`watch_pipelines`].
pub async fn watch_pipeline(
    api: &dyn GitLabApi,
    project: &ProjectRef,
    pipeline_id: u64,
    cfg: &WatchConfig,
    on_event: &mut (dyn FnMut(&WatchEvent) + Send),
) -> Result<Report> {
    watch_pipelines(api, project, &[pipeline_id], cfg, on_event).await
}

/// Watches several pipelines of one load test as one, until every one is final, the timeout
/// passes or the budget runs out, and returns one report covering all of them. `on_event`
/// receives progress after every cycle; the library never prints.
///
/// The interval follows the estimated time to completion (an eighth of it, from the recent
/// finishing rate), grows by half while nothing changes, stays within
/// `[min_interval, max_interval]` and never polls faster than `max_requests_per_minute`
/// allows.
pub async fn watch_pipelines(
    api: &dyn GitLabApi,
    project: &ProjectRef,
    pipeline_ids: &[u64],
    cfg: &WatchConfig,
    on_event: &mut (dyn FnMut(&WatchEvent) + Send),
) -> Result<Report> {
    if pipeline_ids.is_empty() {
        return Err(Error::invalid("watch", "pipelines", "no pipeline to watch"));
    }
    let start = Instant::now();
    let mut st = State {
        api,
        project,
        cfg,
        on_event,
        start,
        deadline: start + cfg.timeout,
        base_requests: api.requests_sent(),
    };
    let mut interval = cfg.initial_interval;
    let mut totals: BTreeMap<u64, usize> = BTreeMap::new();
    let mut last_signature: Option<BTreeMap<String, usize>> = None;
    let mut last_progress: Option<(Instant, usize)> = None;
    let mut rate: Option<f64> = None;
    let mut pipelines: BTreeMap<u64, Pipeline> = BTreeMap::new();
    let outcome = 'watch: loop {
        let deadline = st.deadline;
        for &id in pipeline_ids {
            if pipelines.get(&id).is_some_and(|p| p.status.is_finished()) {
                continue;
            }
            match st.pipeline(id, deadline).await {
                Ok(p) => {
                    pipelines.insert(id, p);
                }
                Err(Stop::Deadline) => break 'watch WatchOutcome::TimedOut,
                Err(Stop::Failed(e)) => return Err(e),
            }
        }
        let unfinished: Vec<u64> = pipeline_ids
            .iter()
            .copied()
            .filter(|id| !pipelines[id].status.is_finished())
            .collect();
        if unfinished.is_empty() {
            break WatchOutcome::Finished;
        }
        if Instant::now() >= st.deadline {
            break WatchOutcome::TimedOut;
        }
        // Keep enough budget for this cycle and for the final full listing.
        let cycle_cost: u64 = unfinished
            .iter()
            .map(|id| if totals.contains_key(id) { 2 } else { 3 })
            .sum();
        let final_cost: u64 = pipeline_ids
            .iter()
            .map(|id| st.pages(totals.get(id).copied().unwrap_or(0)))
            .sum();
        if st.requests() + cycle_cost + final_cost > cfg.max_requests {
            break WatchOutcome::BudgetExhausted;
        }
        let mut active_by_status: BTreeMap<String, usize> = BTreeMap::new();
        for &id in &unfinished {
            let total = match totals.get(&id) {
                Some(t) => *t,
                None => match st.count(id, &[]).await {
                    Ok(t) => *totals.entry(id).or_insert(t),
                    Err(Stop::Deadline) => break 'watch WatchOutcome::TimedOut,
                    Err(Stop::Failed(e)) => return Err(e),
                },
            };
            match st.active(id, total).await {
                Ok(by_status) => {
                    for (status, n) in by_status {
                        *active_by_status.entry(status).or_insert(0) += n;
                    }
                }
                Err(Stop::Deadline) => break 'watch WatchOutcome::TimedOut,
                Err(Stop::Failed(e)) => return Err(e),
            }
        }
        let total_jobs: usize = totals.values().sum();
        let active: usize = active_by_status.values().sum();
        // Finished pipelines are not counted again: all their jobs are done.
        let finished = total_jobs.saturating_sub(active);

        // Adapt the interval to the finishing rate (EWMA of finished jobs per second).
        let now = Instant::now();
        if let Some((t0, f0)) = last_progress {
            let dt = now.duration_since(t0).as_secs_f64();
            if dt > 0.0 && finished > f0 {
                let r = (finished - f0) as f64 / dt;
                rate = Some(rate.map_or(r, |old| 0.5 * old + 0.5 * r));
            }
        }
        last_progress = Some((now, finished));
        interval = if last_signature.as_ref() == Some(&active_by_status) {
            interval.mul_f64(1.5)
        } else if let Some(r) = rate.filter(|r| *r > 0.0) {
            Duration::from_secs_f64((active as f64 / r / 8.0).min(cfg.max_interval.as_secs_f64()))
        } else {
            interval.mul_f64(2.0 / 3.0)
        };
        interval = interval.clamp(cfg.min_interval, cfg.max_interval.max(cfg.min_interval));
        let next_cycle_requests = 3 * unfinished.len() as u64;
        let floor = Duration::from_secs_f64(
            next_cycle_requests as f64 * 60.0 / f64::from(cfg.max_requests_per_minute.max(1)),
        );
        interval = interval.max(floor);
        last_signature = Some(active_by_status.clone());

        let progress = WatchProgress {
            elapsed_secs: st.start.elapsed().as_secs_f64(),
            pipeline_status: pipelines[&unfinished[0]].status.as_str().to_owned(),
            total_jobs,
            finished_jobs: finished,
            active_by_status,
            requests: st.requests(),
            next_interval_secs: interval.as_secs_f64(),
        };
        tracing::debug!(
            status = %progress.pipeline_status,
            finished = progress.finished_jobs,
            total = progress.total_jobs,
            requests = progress.requests,
            "pipeline progress"
        );
        (st.on_event)(&WatchEvent::Progress(progress));
        let remaining = st.deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(interval.min(remaining)).await;
    };
    // The report is made of the final listing: give it at least a short grace after the deadline.
    let until = st.deadline.max(Instant::now() + FINAL_LISTING_GRACE);
    let mut jobs = Vec::new();
    let mut final_pipelines = Vec::new();
    for &id in pipeline_ids {
        let listed = st.list(id, &[], until).await;
        let listed = match listed {
            Ok(j) => j,
            Err(Stop::Failed(e)) => return Err(e),
            Err(Stop::Deadline) => {
                return Err(Error::Timeout {
                    action: "list jobs of",
                    resource: format!("pipeline {id} of {project} for the final report"),
                    after: cfg.timeout + FINAL_LISTING_GRACE,
                });
            }
        };
        jobs.extend(listed);
        match pipelines.remove(&id) {
            Some(p) => final_pipelines.push(p),
            // The deadline passed before this pipeline was ever read.
            None => match st.pipeline(id, until).await {
                Ok(p) => final_pipelines.push(p),
                Err(Stop::Failed(e)) => return Err(e),
                Err(Stop::Deadline) => {
                    return Err(Error::Timeout {
                        action: "get",
                        resource: format!("pipeline {id} of {project}"),
                        after: cfg.timeout + FINAL_LISTING_GRACE,
                    });
                }
            },
        }
    }
    let watch_secs = st.start.elapsed().as_secs_f64();
    let requests = st.requests();
    tracing::info!(pipelines = ?pipeline_ids, requests, ?outcome, "watch ended");
    Ok(Report::compute_many(
        &final_pipelines,
        &jobs,
        outcome,
        requests,
        watch_secs,
    ))
}
