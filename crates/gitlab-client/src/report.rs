//! The load-test report: counts, makespan, queue/run percentiles, throughput, failures; table and JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use jiff::Timestamp;
use serde::Serialize;

use crate::types::{Job, JobStatus, Pipeline, PipelineStatus};

/// p50/p95/max of a set of durations, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Percentiles {
    /// Number of samples.
    pub count: usize,
    /// Median (nearest rank).
    pub p50: f64,
    /// 95th percentile (nearest rank).
    pub p95: f64,
    /// Maximum.
    pub max: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles (`rank = ceil(p/100 × n)`); `None` without samples.
    pub fn of(mut samples: Vec<f64>) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable_by(f64::total_cmp);
        let n = samples.len();
        let rank = |p: f64| samples[((p / 100.0 * n as f64).ceil() as usize).clamp(1, n) - 1];
        Some(Self {
            count: n,
            p50: rank(50.0),
            p95: rank(95.0),
            max: samples[n - 1],
        })
    }
}

/// Why a watch ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchOutcome {
    /// The pipeline reached a final status.
    Finished,
    /// The watch timeout passed first.
    TimedOut,
    /// The request budget ran out first.
    BudgetExhausted,
    /// The caller stopped watching (SIGINT/SIGTERM): the report covers the jobs so far.
    Interrupted,
}

/// One pipeline of a load test that ran as several (GitLab's jobs-per-pipeline limit).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PipelineSummary {
    /// Pipeline id.
    pub id: u64,
    /// Web URL.
    pub web_url: String,
    /// Final (or last seen) status.
    pub status: String,
}

/// One job on the pipeline's timeline: offsets in seconds from the pipeline's creation, so a
/// renderer (HTML chart, JUnit, metrics) needs no clock arithmetic of its own.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JobTiming {
    /// Job id.
    pub id: u64,
    /// Job name, e.g. `loadtest-shard-1 3/200`.
    pub name: String,
    /// The shard that ran it: its first runner tag (`untagged` when it has none).
    pub shard: String,
    /// Final (or last seen) status.
    pub status: String,
    /// Created, seconds after the pipeline was created.
    pub created_secs: f64,
    /// Became pending: started minus GitLab's `queued_duration` when both are known, else created.
    pub queued_secs: f64,
    /// A runner picked it up.
    pub started_secs: Option<f64>,
    /// It ended.
    pub finished_secs: Option<f64>,
    /// GitLab's `failure_reason` of a failed job (`unknown` when GitLab gave none).
    pub failure_reason: Option<String>,
    /// The runner that took it.
    pub runner_id: Option<u64>,
}

impl JobTiming {
    /// The timeline entry of `job` in a pipeline created at `pipeline_created`.
    pub fn of(job: &Job, pipeline_created: Timestamp) -> Self {
        let offset = |t: Timestamp| secs(pipeline_created, t);
        let created_secs = offset(job.created_at);
        let started_secs = job.started_at.map(offset);
        let queued_secs = match (started_secs, job.queued_duration) {
            (Some(started), Some(queued)) if queued >= 0.0 => {
                (started - queued).clamp(created_secs, started)
            }
            _ => created_secs,
        };
        Self {
            id: job.id,
            name: job.name.clone(),
            shard: job
                .tag_list
                .first()
                .cloned()
                .unwrap_or_else(|| "untagged".into()),
            status: job.status.as_str().to_owned(),
            created_secs,
            queued_secs,
            started_secs,
            finished_secs: job.finished_at.map(offset),
            failure_reason: (job.status == JobStatus::Failed).then(|| {
                job.failure_reason
                    .clone()
                    .unwrap_or_else(|| "unknown".into())
            }),
            runner_id: job.runner.as_ref().map(|r| r.id),
        }
    }

    /// Queue time as the report's percentiles count it: created → started.
    pub fn queue_secs(&self) -> Option<f64> {
        self.started_secs.map(|s| s - self.created_secs)
    }

    /// Seconds from start to end.
    pub fn run_secs(&self) -> Option<f64> {
        Some(self.finished_secs? - self.started_secs?)
    }
}

/// The report of one load test (one pipeline, or several watched as one), computed from job
/// timestamps.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// Pipeline id (the first one when there are several).
    pub pipeline_id: u64,
    /// Pipeline web URL (of the first one).
    pub web_url: String,
    /// Final (or last seen) pipeline status; with several pipelines the worst of them.
    pub pipeline_status: String,
    /// Every pipeline of the load test, in creation order.
    pub pipelines: Vec<PipelineSummary>,
    /// Why the watch ended.
    pub outcome: WatchOutcome,
    /// Jobs in the pipeline.
    pub total_jobs: usize,
    /// Jobs per status.
    pub by_status: BTreeMap<String, usize>,
    /// Pipeline creation → last job finished, in seconds.
    pub makespan_secs: Option<f64>,
    /// Queue time (job created → started) percentiles, seconds.
    pub queue: Option<Percentiles>,
    /// GitLab's own `queued_duration` (job pending → running) percentiles, seconds.
    pub gitlab_queued: Option<Percentiles>,
    /// Run time (started → finished) percentiles, seconds.
    pub run: Option<Percentiles>,
    /// Finished jobs per minute of makespan.
    pub jobs_per_minute: Option<f64>,
    /// Failed jobs per `failure_reason` (`unknown` when GitLab gave none).
    pub failures_by_reason: BTreeMap<String, usize>,
    /// API requests the watch made.
    pub requests: u64,
    /// How long the watch took (on the tokio clock), seconds.
    pub watch_secs: f64,
    /// When the (first) pipeline was created (time zero of [`JobTiming`]).
    pub created_at: Timestamp,
    /// Every job's timeline, by job id.
    pub jobs: Vec<JobTiming>,
    /// What the sampled job logs showed: each image proved (with an image matrix) and the
    /// cache's hits and misses per shard (with the cache workload); absent when no log was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traces: Option<crate::sample::TraceReport>,
}

/// `to - from` in seconds (negative when `to` is earlier: clock skew between GitLab's nodes).
fn secs(from: Timestamp, to: Timestamp) -> f64 {
    to.duration_since(from).as_secs_f64()
}

/// The status that speaks for several pipelines: an unfinished one's, else failed, else
/// canceled, else skipped, else success.
fn combined_status(pipelines: &[Pipeline]) -> String {
    if let Some(p) = pipelines.iter().find(|p| !p.status.is_finished()) {
        return p.status.as_str().to_owned();
    }
    for status in [
        PipelineStatus::Failed,
        PipelineStatus::Canceled,
        PipelineStatus::Skipped,
    ] {
        if pipelines.iter().any(|p| p.status == status) {
            return status.as_str().to_owned();
        }
    }
    pipelines
        .first()
        .map_or("unknown", |p| p.status.as_str())
        .to_owned()
}

impl Report {
    /// Computes the report from the pipeline and all its jobs.
    pub fn compute(
        pipeline: &Pipeline,
        jobs: &[Job],
        outcome: WatchOutcome,
        requests: u64,
        watch_secs: f64,
    ) -> Self {
        Self::compute_many(
            std::slice::from_ref(pipeline),
            jobs,
            outcome,
            requests,
            watch_secs,
        )
    }

    /// Computes one report from several pipelines of one load test and all their jobs: the
    /// makespan runs from the first pipeline's creation to the last job's end.
    pub fn compute_many(
        pipelines: &[Pipeline],
        jobs: &[Job],
        outcome: WatchOutcome,
        requests: u64,
        watch_secs: f64,
    ) -> Self {
        let mut by_status = BTreeMap::new();
        let mut gitlab_queued = Vec::new();
        let mut failures_by_reason = BTreeMap::new();
        let mut queue = Vec::new();
        let mut run = Vec::new();
        let mut last_finished: Option<Timestamp> = None;
        let mut finished = 0usize;
        for job in jobs {
            *by_status.entry(job.status.as_str().to_owned()).or_insert(0) += 1;
            if job.status == JobStatus::Failed {
                let reason = job
                    .failure_reason
                    .clone()
                    .unwrap_or_else(|| "unknown".into());
                *failures_by_reason.entry(reason).or_insert(0) += 1;
            }
            if let Some(q) = job.queued_duration {
                gitlab_queued.push(q);
            }
            if let Some(started) = job.started_at {
                queue.push(secs(job.created_at, started));
                if let Some(done) = job.finished_at {
                    run.push(secs(started, done));
                }
            }
            if let Some(done) = job.finished_at
                && job.status.is_finished()
            {
                finished += 1;
                last_finished = Some(last_finished.map_or(done, |l| l.max(done)));
            }
        }
        let first_created = pipelines.iter().map(|p| p.created_at).min();
        let makespan_secs = last_finished.zip(first_created).map(|(l, c)| secs(c, l));
        let jobs_per_minute = makespan_secs
            .filter(|m| *m > 0.0)
            .map(|m| finished as f64 * 60.0 / m);
        Self {
            pipeline_id: pipelines.first().map_or(0, |p| p.id),
            web_url: pipelines
                .first()
                .map(|p| p.web_url.clone())
                .unwrap_or_default(),
            pipeline_status: combined_status(pipelines),
            pipelines: pipelines
                .iter()
                .map(|p| PipelineSummary {
                    id: p.id,
                    web_url: p.web_url.clone(),
                    status: p.status.as_str().to_owned(),
                })
                .collect(),
            outcome,
            total_jobs: jobs.len(),
            by_status,
            makespan_secs,
            queue: Percentiles::of(queue),
            gitlab_queued: Percentiles::of(gitlab_queued),
            run: Percentiles::of(run),
            jobs_per_minute,
            failures_by_reason,
            requests,
            watch_secs,
            created_at: first_created.unwrap_or_default(),
            jobs: {
                let zero = first_created.unwrap_or_default();
                let mut timeline: Vec<JobTiming> =
                    jobs.iter().map(|j| JobTiming::of(j, zero)).collect();
                timeline.sort_by_key(|j| j.id);
                timeline
            },
            traces: None,
        }
    }

    /// True when any job failed, the pipeline did not succeed, or a sampled job ran another
    /// image than its own.
    pub fn has_failures(&self) -> bool {
        !self.failures_by_reason.is_empty()
            || self.pipeline_status != "success"
            || !self.image_mismatches().is_empty()
    }

    /// The sampled jobs that ran another image than their own.
    pub fn image_mismatches(&self) -> &[crate::sample::ImageMismatch] {
        self.traces
            .as_ref()
            .map_or(&[], |t| t.mismatches.as_slice())
    }

    /// The sampled logs' findings as table lines (empty when none was read).
    pub fn render_traces(&self) -> String {
        let mut out = String::new();
        let Some(t) = &self.traces else {
            return out;
        };
        let _ = writeln!(
            out,
            "job logs read           {:>10}{}",
            format!("{}/{}", t.traces_read, t.traces_wanted),
            if t.budget_limited {
                " (request budget reached)"
            } else {
                ""
            }
        );
        if !t.images.is_empty() {
            let _ = writeln!(out, "image proof (sampled job logs' /etc/os-release)");
            for i in &t.images {
                let verdict = match i.verdict {
                    crate::sample::ImageVerdict::Proved => "proved",
                    crate::sample::ImageVerdict::Failed => "FAILED",
                    crate::sample::ImageVerdict::Unverified => "unverified",
                    crate::sample::ImageVerdict::NotSampled => "not sampled",
                };
                let _ = writeln!(
                    out,
                    "  {} — {verdict}: {}/{} sampled of {} jobs matched; saw {}",
                    i.image,
                    i.matched,
                    i.sampled,
                    i.jobs,
                    if i.observed.is_empty() {
                        "-".to_owned()
                    } else {
                        i.observed.join(", ")
                    }
                );
            }
            for m in &t.mismatches {
                let _ = writeln!(out, "  MISMATCH: {m}");
            }
        }
        if !t.cache.is_empty() {
            let _ = writeln!(
                out,
                "cache per shard (sampled)   hits misses local  hit s p50  miss s p50  uploads  upload s p50"
            );
            let p50 =
                |p: &Option<Percentiles>| p.map_or("-".to_owned(), |p| format!("{:.1}", p.p50));
            for c in &t.cache {
                let _ = writeln!(
                    out,
                    "  {:<24} {:>5} {:>6} {:>5} {:>10} {:>11} {:>8} {:>13}",
                    c.shard,
                    c.hits,
                    c.misses,
                    c.local_only,
                    p50(&c.hit_secs),
                    p50(&c.miss_secs),
                    c.uploads,
                    p50(&c.upload_secs)
                );
            }
        }
        out
    }

    /// The report as a human-readable table.
    pub fn render_table(&self) -> String {
        let mut out = String::new();
        let opt = |v: Option<f64>, unit: &str| {
            v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}{unit}"))
        };
        if self.pipelines.len() > 1 {
            let _ = writeln!(
                out,
                "{} pipelines ({}) — {:?}",
                self.pipelines.len(),
                self.pipeline_status,
                self.outcome
            );
            for p in &self.pipelines {
                let _ = writeln!(out, "  pipeline {} ({}) {}", p.id, p.status, p.web_url);
            }
        } else {
            let _ = writeln!(
                out,
                "pipeline {} ({}) — {:?}",
                self.pipeline_id, self.pipeline_status, self.outcome
            );
            if !self.web_url.is_empty() {
                let _ = writeln!(out, "  {}", self.web_url);
            }
        }
        let _ = writeln!(out, "{:<22} {:>10}", "jobs", self.total_jobs);
        for (status, n) in &self.by_status {
            let _ = writeln!(out, "  {status:<20} {n:>10}");
        }
        let _ = writeln!(
            out,
            "{:<22} {:>10}",
            "makespan",
            opt(self.makespan_secs, " s")
        );
        let _ = writeln!(
            out,
            "{:<22} {:>10}",
            "jobs/minute",
            opt(self.jobs_per_minute, "")
        );
        let _ = writeln!(out, "{:<22} {:>10} {:>10} {:>10}", "", "p50", "p95", "max");
        for (name, p) in [
            ("queue time (s)", &self.queue),
            ("queued, GitLab (s)", &self.gitlab_queued),
            ("run time (s)", &self.run),
        ] {
            match p {
                Some(p) => {
                    let _ = writeln!(
                        out,
                        "{name:<22} {:>10.1} {:>10.1} {:>10.1}",
                        p.p50, p.p95, p.max
                    );
                }
                None => {
                    let _ = writeln!(out, "{name:<22} {:>10} {:>10} {:>10}", "-", "-", "-");
                }
            }
        }
        if self.failures_by_reason.is_empty() {
            let _ = writeln!(out, "{:<22} {:>10}", "failures", 0);
        } else {
            let _ = writeln!(out, "failures by reason");
            for (reason, n) in &self.failures_by_reason {
                let _ = writeln!(out, "  {reason:<20} {n:>10}");
            }
        }
        out.push_str(&self.render_traces());
        let _ = writeln!(out, "{:<22} {:>10}", "API requests", self.requests);
        let _ = write!(
            out,
            "{:<22} {:>10}",
            "watched for",
            format!("{:.1} s", self.watch_secs)
        );
        out
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render_table())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let p = Percentiles::of((1..=20).map(f64::from).collect()).unwrap();
        assert_eq!((p.p50, p.p95, p.max), (10.0, 19.0, 20.0));
        let p = Percentiles::of(vec![7.0]).unwrap();
        assert_eq!((p.p50, p.p95, p.max), (7.0, 7.0, 7.0));
        assert!(Percentiles::of(vec![]).is_none());
    }
}
