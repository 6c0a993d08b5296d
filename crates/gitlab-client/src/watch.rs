//! Watching a pipeline to the end with an adaptive interval and a request budget.
//!
//! Each cycle costs at most one pipeline request plus `ceil(active jobs / 100)` job pages,
//! usually far less: active jobs are counted from `x-total` of `scope[]`-filtered listings
//! with `per_page=1` (or listed on one page once at most 100 remain). Once the pipeline is
//! final, one full listing (pages of 100) reads every job's timestamps for the [`Report`].
//! The interval follows the estimated time to completion, grows while nothing changes and
//! never polls faster than `max_requests_per_minute` allows. Sleeping uses `tokio::time`,
//! so watches run on a paused clock in tests and in the sandbox.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::api::GitLabApi;
use crate::error::{Error, Result};
use crate::report::{Report, WatchOutcome};
use crate::types::{Job, JobStatus, JobsQuery, Page, Pipeline, ProjectRef};

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
                Err(Error::Throttled { retry_after, .. })
                    if $st.start.elapsed() < $st.cfg.timeout =>
                {
                    let wait = retry_after.unwrap_or($st.cfg.initial_interval);
                    tracing::warn!(
                        wait_secs = wait.as_secs_f64(),
                        "GitLab throttled the watcher; waiting"
                    );
                    ($st.on_event)(&WatchEvent::Throttled {
                        retry_after_secs: wait.as_secs_f64(),
                    });
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

/// Statuses still waiting for a runner.
const QUEUED: [JobStatus; 3] = [
    JobStatus::Created,
    JobStatus::WaitingForResource,
    JobStatus::Pending,
];

impl State<'_> {
    fn per_page(&self) -> u32 {
        self.cfg.per_page.clamp(1, crate::MAX_PER_PAGE)
    }

    fn pages(&self, jobs: usize) -> u64 {
        (jobs as u64).div_ceil(u64::from(self.per_page())).max(1)
    }

    async fn page(&mut self, scope: &[JobStatus], page: u32, per_page: u32) -> Result<Page<Job>> {
        let query = JobsQuery {
            page,
            per_page,
            scope: scope.to_vec(),
        };
        let (api, project, id) = (self.api, self.project, self.pipeline_id);
        call!(self, api.list_pipeline_jobs(project, id, &query))
    }

    /// Every job in `scope`, page by page.
    async fn list(&mut self, scope: &[JobStatus]) -> Result<Vec<Job>> {
        let per_page = self.per_page();
        let mut jobs = Vec::new();
        let mut page = 1;
        loop {
            let p = self.page(scope, page, per_page).await?;
            jobs.extend(p.items);
            match p.next_page {
                Some(next) if next > page => page = next,
                _ => return Ok(jobs),
            }
        }
    }

    /// How many jobs are in `scope`: one request with `per_page=1` reading `x-total`, or a
    /// full listing when GitLab omits it (above 10,000 records).
    async fn count(&mut self, scope: &[JobStatus]) -> Result<usize> {
        let first = self.page(scope, 1, 1).await?;
        match first.total {
            Some(total) => Ok(total as usize),
            None => Ok(self.list(scope).await?.len()),
        }
    }

    /// Unfinished jobs per status. With at most one page of them, one request lists them
    /// all; otherwise two `x-total` counts (queued, running) replace paging through them.
    async fn active(&mut self, last_active: Option<usize>) -> Result<BTreeMap<String, usize>> {
        let mut by_status = BTreeMap::new();
        if last_active.is_some_and(|a| a <= self.per_page() as usize) {
            let page = self
                .page(&JobStatus::ACTIVE_SCOPE, 1, self.per_page())
                .await?;
            if page.next_page.is_none() {
                for job in page.items.iter().filter(|j| !j.status.is_finished()) {
                    *by_status.entry(job.status.as_str().to_owned()).or_insert(0) += 1;
                }
                return Ok(by_status);
            }
        }
        let queued = self.count(&QUEUED).await?;
        let running = self.count(&[JobStatus::Running]).await?;
        for (status, n) in [("pending", queued), ("running", running)] {
            if n > 0 {
                by_status.insert(status.to_owned(), n);
            }
        }
        Ok(by_status)
    }
}

/// Watches a pipeline until it is final, the timeout passes or the budget runs out, and
/// returns the report. `on_event` receives progress after every cycle; the library never prints.
///
/// Requests per cycle: the pipeline, then either one page of active jobs (when at most
/// `per_page` remain) or two `per_page=1` counts read from `x-total` — never more than one
/// pipeline request plus `ceil(active / 100)` pages. The interval follows the estimated time
/// to completion (an eighth of it, from the recent finishing rate), grows by half while
/// nothing changes, stays within `[min_interval, max_interval]` and never polls faster than
/// `max_requests_per_minute` allows.
pub async fn watch_pipeline(
    api: &dyn GitLabApi,
    project: &ProjectRef,
    pipeline_id: u64,
    cfg: &WatchConfig,
    on_event: &mut (dyn FnMut(&WatchEvent) + Send),
) -> Result<Report> {
    let mut st = State {
        api,
        project,
        pipeline_id,
        cfg,
        on_event,
        start: Instant::now(),
        requests: 0,
    };
    let mut interval = cfg.initial_interval;
    let mut total: Option<usize> = None;
    let mut last_active: Option<usize> = None;
    let mut last_signature: Option<BTreeMap<String, usize>> = None;
    let mut last_progress: Option<(Instant, usize)> = None;
    let mut rate: Option<f64> = None;
    let mut pipeline: Pipeline;
    let outcome = loop {
        pipeline = call!(st, api.get_pipeline(project, pipeline_id))?;
        if pipeline.status.is_finished() {
            break WatchOutcome::Finished;
        }
        if st.start.elapsed() >= cfg.timeout {
            break WatchOutcome::TimedOut;
        }
        // Keep enough budget for this cycle and for the final full listing.
        let cycle_cost = if total.is_none() { 1 } else { 2 };
        let final_cost = st.pages(total.unwrap_or(0));
        if st.requests + cycle_cost + final_cost > cfg.max_requests {
            break WatchOutcome::BudgetExhausted;
        }
        let total_jobs = match total {
            Some(t) => t,
            None => {
                let t = st.count(&[]).await?;
                total = Some(t);
                t
            }
        };
        let active_by_status = st.active(last_active.or(Some(total_jobs))).await?;
        let active: usize = active_by_status.values().sum();
        last_active = Some(active);
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
        let next_cycle_requests = 1 + if active <= st.per_page() as usize {
            1
        } else {
            2
        };
        let floor = Duration::from_secs_f64(
            next_cycle_requests as f64 * 60.0 / f64::from(cfg.max_requests_per_minute.max(1)),
        );
        interval = interval.max(floor);
        last_signature = Some(active_by_status.clone());

        let progress = WatchProgress {
            elapsed_secs: st.start.elapsed().as_secs_f64(),
            pipeline_status: pipeline.status.as_str().to_owned(),
            total_jobs,
            finished_jobs: finished,
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
    Ok(Report::compute(
        &pipeline,
        &jobs,
        outcome,
        st.requests,
        watch_secs,
    ))
}
