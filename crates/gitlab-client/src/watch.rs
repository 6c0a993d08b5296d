//! Watching a pipeline to the end with an adaptive interval and a request budget.
//!
//! Each cycle costs one pipeline request plus `ceil(active jobs / 100)` job pages: the first
//! cycle lists every job (to learn the total), later cycles list only jobs still in
//! `created`/`waiting_for_resource`/`pending`/`running` (`scope[]`), and once the pipeline
//! is final one last full listing reads every job's timestamps for the [`Report`]. The
//! interval shrinks while jobs move and grows while nothing changes, never below what
//! `max_requests_per_minute` allows. Sleeping uses `tokio::time`, so watches run on a
//! paused clock in tests and in the sandbox.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::api::GitLabApi;
use crate::error::{Error, Result};
use crate::report::{Report, WatchOutcome};
use crate::types::{Job, JobStatus, JobsQuery, Pipeline, ProjectRef};

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
    /// Total request budget of the watch, including the final listing.
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
    /// Pipeline status.
    pub pipeline_status: String,
    /// Jobs in the pipeline.
    pub total_jobs: usize,
    /// Jobs that have finished.
    pub finished_jobs: usize,
    /// Unfinished jobs per status.
    pub active_by_status: BTreeMap<String, usize>,
    /// Requests made so far.
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

/// Issues one API call, waiting out 429s (each attempt counts as a request).
macro_rules! call {
    ($st:expr, $fut:expr) => {{
        loop {
            $st.requests += 1;
            match $fut.await {
                Err(Error::Throttled { retry_after, .. }) if $st.start.elapsed() < $st.cfg.timeout => {
                    let wait = retry_after.unwrap_or($st.cfg.initial_interval);
                    tracing::warn!(wait_secs = wait.as_secs_f64(), "GitLab throttled the watcher; waiting");
                    ($st.on_event)(&WatchEvent::Throttled { retry_after_secs: wait.as_secs_f64() });
                    tokio::time::sleep(wait).await;
                }
                other => break other,
            }
        }
    }};
}

struct State<'a> {
    api: &'a dyn GitLabApi,
    project: &'a ProjectRef,
    pipeline_id: u64,
    cfg: &'a WatchConfig,
    on_event: &'a mut (dyn FnMut(&WatchEvent) + Send),
    start: Instant,
    requests: u64,
}

impl State<'_> {
    fn pages(&self, jobs: usize) -> u64 {
        (jobs as u64).div_ceil(u64::from(self.cfg.per_page.clamp(1, crate::MAX_PER_PAGE))).max(1)
    }

    async fn list(&mut self, scope: &[JobStatus]) -> Result<Vec<Job>> {
        let mut query = JobsQuery { page: 1, per_page: self.cfg.per_page.clamp(1, crate::MAX_PER_PAGE), scope: scope.to_vec() };
        let mut jobs = Vec::new();
        loop {
            let (api, project, id) = (self.api, self.project, self.pipeline_id);
            let page = call!(self, api.list_pipeline_jobs(project, id, &query))?;
            jobs.extend(page.items);
            match page.next_page {
                Some(next) if next > query.page => query.page = next,
                _ => return Ok(jobs),
            }
        }
    }
}

/// Watches a pipeline until it is final, the timeout passes or the budget runs out, and
/// returns the report. `on_event` receives progress after every cycle; the library never prints.
pub async fn watch_pipeline(
    api: &dyn GitLabApi,
    project: &ProjectRef,
    pipeline_id: u64,
    cfg: &WatchConfig,
    on_event: &mut (dyn FnMut(&WatchEvent) + Send),
) -> Result<Report> {
    let mut st = State { api, project, pipeline_id, cfg, on_event, start: Instant::now(), requests: 0 };
    let mut interval = cfg.initial_interval;
    let mut total: Option<usize> = None;
    let mut active = 0usize;
    let mut last_signature: Option<BTreeMap<String, usize>> = None;
    let mut pipeline: Pipeline;
    let outcome = loop {
        pipeline = call!(st, api.get_pipeline(project, pipeline_id))?;
        if pipeline.status.is_finished() {
            break WatchOutcome::Finished;
        }
        if st.start.elapsed() >= cfg.timeout {
            break WatchOutcome::TimedOut;
        }
        // Keep enough budget for this cycle's listing and for the final full listing.
        let known_total = total.unwrap_or(0);
        let cycle_cost = st.pages(if total.is_some() { active } else { 0 });
        let final_cost = st.pages(known_total);
        if st.requests + cycle_cost + final_cost > cfg.max_requests {
            break WatchOutcome::BudgetExhausted;
        }
        let (jobs, scope_all) = match total {
            None => (st.list(&[]).await?, true),
            Some(_) => (st.list(&JobStatus::ACTIVE_SCOPE).await?, false),
        };
        let mut active_by_status = BTreeMap::new();
        for job in jobs.iter().filter(|j| !j.status.is_finished()) {
            *active_by_status.entry(job.status.as_str().to_owned()).or_insert(0) += 1;
        }
        active = active_by_status.values().sum();
        if scope_all {
            total = Some(jobs.len());
        }
        let total_jobs = total.unwrap_or(0).max(active);
        // Adapt: faster while jobs move, slower while nothing changes, never above the rate ceiling.
        if last_signature.as_ref() == Some(&active_by_status) {
            interval = (interval.mul_f64(1.5)).min(cfg.max_interval);
        } else {
            interval = (interval.mul_f64(2.0 / 3.0)).max(cfg.min_interval);
        }
        let next_cycle_requests = 1 + st.pages(active);
        let floor = Duration::from_secs_f64(next_cycle_requests as f64 * 60.0 / f64::from(cfg.max_requests_per_minute.max(1)));
        interval = interval.max(floor);
        last_signature = Some(active_by_status.clone());
        let progress = WatchProgress {
            elapsed_secs: st.start.elapsed().as_secs_f64(),
            pipeline_status: pipeline.status.as_str().to_owned(),
            total_jobs,
            finished_jobs: total_jobs - active,
            active_by_status,
            requests: st.requests,
            next_interval_secs: interval.as_secs_f64(),
        };
        tracing::debug!(
            status = %pipeline.status,
            finished = progress.finished_jobs,
            total = progress.total_jobs,
            requests = st.requests,
            "pipeline progress"
        );
        (st.on_event)(&WatchEvent::Progress(progress));
        let remaining = cfg.timeout.saturating_sub(st.start.elapsed());
        tokio::time::sleep(interval.min(remaining)).await;
    };
    let jobs = st.list(&[]).await?;
    let watch_secs = st.start.elapsed().as_secs_f64();
    tracing::info!(pipeline = pipeline_id, status = %pipeline.status, requests = st.requests, ?outcome, "watch ended");
    Ok(Report::compute(&pipeline, &jobs, outcome, st.requests, watch_secs))
}
