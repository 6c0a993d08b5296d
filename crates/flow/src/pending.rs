//! Queue time by Pending class: which cause each load-test job's pod spent Pending under, sampled
//! while the load test runs, and the queue-time percentiles per cause.
//!
//! # Sampling
//!
//! [`PendingSampler::sample`] is one [`glrunner_janitor::classify::explain_pending`] over the job
//! namespaces: one pod list per namespace, plus one Event list per namespace that has a Pending
//! job pod, whatever the number of jobs (never a call per job). The load-test phase calls it
//! every [`crate::FlowConfig::pending_sample_interval`] of the run's clock (at least
//! [`MIN_SAMPLE_INTERVAL`]), so the rate is bounded by the interval and the namespaces alone.
//! These are Kubernetes calls: they do not count against the GitLab watch's request budget.
//!
//! Per GitLab job id (the pod's `job.runner.gitlab.com/id` annotation) the sampler keeps one
//! class: the first class other than `starting` it saw the job's pod Pending under, else
//! `starting`. At most [`MAX_TRACKED_JOBS`] jobs are kept; later ones are counted as untracked
//! (and group under `starting`).
//!
//! # A job never seen Pending
//!
//! A pod that goes from creation to Running between two samples is never seen Pending. Nothing
//! held it up for longer than the interval, so its job groups under `starting` (the classifier's
//! "nothing wrong seen yet"); the table's `observed` column says how many of a class's jobs were
//! actually seen Pending. A class other than `starting` is only ever reported from a sample.
//!
//! # What "queue time" is here
//!
//! The per-class percentiles are over the same per-job queue time as the report's own (job
//! created → started, GitLab's timestamps, [`glrunner_gitlab_client::JobTiming::queue_secs`]).
//! GitLab marks a job `running` when a runner picks it up, before the runner creates the pod,
//! so a pod's own Pending time is part of its job's *run* time; a class shows in queue time
//! through the jobs queued behind the runner slots that its Pending pods held.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::time::Duration;

use glrunner_gitlab_client::{JobTiming, Percentiles};
use glrunner_janitor::{Clock, PendingClass, PodApi};
use serde::Serialize;

pub use crate::config::{
    DEFAULT_PENDING_SAMPLE_INTERVAL as DEFAULT_SAMPLE_INTERVAL,
    MIN_PENDING_SAMPLE_INTERVAL as MIN_SAMPLE_INTERVAL,
};

/// The most jobs whose class is remembered (a `u64` and a class each).
pub const MAX_TRACKED_JOBS: usize = 100_000;

/// The classes of the jobs seen Pending during one load test.
#[derive(Debug, Clone)]
pub struct PendingSampler {
    namespaces: Vec<String>,
    interval: Duration,
    max_jobs: usize,
    classes: BTreeMap<u64, PendingClass>,
    samples: u64,
    failed_samples: u64,
    untracked: u64,
}

impl PendingSampler {
    /// A sampler of the job pods of `namespaces`, every `interval` (raised to
    /// [`MIN_SAMPLE_INTERVAL`]).
    pub fn new(namespaces: Vec<String>, interval: Duration) -> Self {
        Self {
            namespaces,
            interval: interval.max(MIN_SAMPLE_INTERVAL),
            max_jobs: MAX_TRACKED_JOBS,
            classes: BTreeMap::new(),
            samples: 0,
            failed_samples: 0,
            untracked: 0,
        }
    }

    /// Remembers at most `max_jobs` jobs (default [`MAX_TRACKED_JOBS`]).
    #[must_use]
    pub fn with_max_jobs(mut self, max_jobs: usize) -> Self {
        self.max_jobs = max_jobs;
        self
    }

    /// The interval between two samples.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// One sample: the Pending job pods of every namespace, explained, their classes
    /// remembered. A failed sample (the API server unavailable, throttled) is logged and
    /// counted; the next one may succeed.
    pub async fn sample(&mut self, pods: &dyn PodApi, clock: &dyn Clock) {
        match glrunner_janitor::classify::explain_pending(pods, &self.namespaces, clock.now()).await
        {
            Ok(pending) => {
                self.samples += 1;
                for pod in pending {
                    if let Some(job) = pod.job_id {
                        self.note(job, pod.class);
                    }
                }
            }
            Err(e) => {
                self.failed_samples += 1;
                tracing::warn!(error = %e, "cannot sample the Pending job pods; the next sample may");
            }
        }
    }

    /// Samples every [`PendingSampler::interval`] of tokio's clock, forever (it never returns):
    /// run it beside the load test and drop it when the load test ends.
    pub async fn run(&mut self, pods: &dyn PodApi, clock: &dyn Clock) -> std::convert::Infallible {
        loop {
            self.sample(pods, clock).await;
            tokio::time::sleep(self.interval).await;
        }
    }

    /// Remembers that `job`'s pod was seen Pending under `class`: the first class other than
    /// `starting` wins.
    pub fn note(&mut self, job: u64, class: PendingClass) {
        let full = self.classes.len() >= self.max_jobs;
        match self.classes.entry(job) {
            Entry::Vacant(_) if full => self.untracked += 1,
            Entry::Vacant(e) => {
                e.insert(class);
            }
            Entry::Occupied(mut e) => {
                if *e.get() == PendingClass::Starting && class != PendingClass::Starting {
                    e.insert(class);
                }
            }
        }
    }

    /// The class `job`'s pod was seen Pending under, if it was seen.
    pub fn class_of(&self, job: u64) -> Option<PendingClass> {
        self.classes.get(&job).copied()
    }

    /// What the sampling did, for the report.
    pub fn summary(&self) -> PendingSampling {
        PendingSampling {
            interval_secs: self.interval.as_secs_f64(),
            samples: self.samples,
            failed_samples: self.failed_samples,
            jobs_seen: self.classes.len(),
            untracked_jobs: self.untracked,
        }
    }

    /// The load test's jobs grouped by class ([`queue_by_class`]); empty when no sample
    /// succeeded (the classes are unknown then, not `starting`).
    pub fn queue_by_class(&self, jobs: &[JobTiming]) -> Vec<ClassQueue> {
        if self.samples == 0 {
            return Vec::new();
        }
        queue_by_class(jobs, |id| self.class_of(id))
    }
}

/// What the Pending sampling of a load test did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PendingSampling {
    /// Seconds between two samples (the run's clock).
    pub interval_secs: f64,
    /// Samples that succeeded.
    pub samples: u64,
    /// Samples that failed (logged).
    pub failed_samples: u64,
    /// Jobs whose pod was seen Pending at least once.
    pub jobs_seen: usize,
    /// Jobs seen Pending after [`MAX_TRACKED_JOBS`] were remembered (grouped under `starting`).
    pub untracked_jobs: u64,
}

/// One row of the "queue time by Pending class" table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassQueue {
    /// The class (`starting` for jobs whose pod was never seen held up).
    pub class: PendingClass,
    /// Jobs of the load test in the class.
    pub jobs: usize,
    /// Of which the pod was seen Pending by a sample (the rest were never seen Pending).
    pub observed: usize,
    /// Queue time p50 (nearest rank) of the class's jobs that started, seconds.
    pub queue_p50_secs: Option<f64>,
    /// Queue time p95, seconds.
    pub queue_p95_secs: Option<f64>,
    /// Longest queue time, seconds.
    pub queue_max_secs: Option<f64>,
}

/// Groups `jobs` by the class `class_of` gives their id (`None`: never seen Pending, grouped
/// under `starting`), with each class's queue-time percentiles (created → started, as the
/// report's own); rows sorted by job count, most first, then by class.
pub fn queue_by_class(
    jobs: &[JobTiming],
    class_of: impl Fn(u64) -> Option<PendingClass>,
) -> Vec<ClassQueue> {
    let mut groups: BTreeMap<PendingClass, (usize, usize, Vec<f64>)> = BTreeMap::new();
    for job in jobs {
        let seen = class_of(job.id);
        let group = groups
            .entry(seen.unwrap_or(PendingClass::Starting))
            .or_default();
        group.0 += 1;
        group.1 += usize::from(seen.is_some());
        group.2.extend(job.queue_secs());
    }
    let mut rows: Vec<ClassQueue> = groups
        .into_iter()
        .map(|(class, (jobs, observed, queue))| {
            let p = Percentiles::of(queue);
            ClassQueue {
                class,
                jobs,
                observed,
                queue_p50_secs: p.map(|p| p.p50),
                queue_p95_secs: p.map(|p| p.p95),
                queue_max_secs: p.map(|p| p.max),
            }
        })
        .collect();
    rows.sort_by(|a, b| b.jobs.cmp(&a.jobs).then_with(|| a.class.cmp(&b.class)));
    rows
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use glrunner_janitor::PodEvent;
    use glrunner_janitor::clock::ManualClock;
    use glrunner_janitor::memory::{InMemoryPods, NewPod};

    use super::*;

    fn job(id: u64, queue: Option<f64>) -> JobTiming {
        JobTiming {
            id,
            name: format!("job {id}"),
            shard: "s".into(),
            status: "success".into(),
            created_secs: 1.0,
            queued_secs: 1.0,
            started_secs: queue.map(|q| 1.0 + q),
            finished_secs: queue.map(|q| 2.0 + q),
            failure_reason: None,
            runner_id: None,
        }
    }

    #[test]
    fn percentiles_per_class_and_unseen_jobs_start() {
        // Jobs 1..=20 queued 1..=20 s under the pod limit; 21..=23 never seen; 24 seen
        // `starting`; 25 under the pod limit but never started.
        let mut jobs: Vec<JobTiming> = (1..=20).map(|i| job(i, Some(i as f64))).collect();
        jobs.extend([
            job(21, Some(0.5)),
            job(22, Some(1.5)),
            job(23, Some(2.5)),
            job(24, Some(9.0)),
        ]);
        jobs.push(job(25, None));
        let class_of = |id: u64| match id {
            1..=20 | 25 => Some(PendingClass::FargatePodLimit),
            24 => Some(PendingClass::Starting),
            _ => None,
        };
        let rows = queue_by_class(&jobs, class_of);
        assert_eq!(rows.len(), 2, "{rows:?}");
        let limit = &rows[0];
        assert_eq!(limit.class, PendingClass::FargatePodLimit);
        assert_eq!((limit.jobs, limit.observed), (21, 21));
        // Nearest rank over the 20 started jobs: p50 = 10th, p95 = 19th; job 25 has no time.
        assert_eq!(
            (
                limit.queue_p50_secs,
                limit.queue_p95_secs,
                limit.queue_max_secs
            ),
            (Some(10.0), Some(19.0), Some(20.0))
        );
        let starting = &rows[1];
        assert_eq!(starting.class, PendingClass::Starting);
        assert_eq!((starting.jobs, starting.observed), (4, 1));
        assert_eq!(
            (
                starting.queue_p50_secs,
                starting.queue_p95_secs,
                starting.queue_max_secs
            ),
            (Some(1.5), Some(9.0), Some(9.0))
        );
    }

    #[test]
    fn rows_sort_by_job_count_then_class_and_a_class_without_times_has_none() {
        let jobs = [job(1, None), job(2, Some(3.0)), job(3, Some(4.0))];
        let rows = queue_by_class(&jobs, |id| {
            Some(match id {
                1 => PendingClass::ImagePullNotFound,
                _ => PendingClass::FargateCapacity,
            })
        });
        let order: Vec<(PendingClass, usize)> = rows.iter().map(|r| (r.class, r.jobs)).collect();
        assert_eq!(
            order,
            [
                (PendingClass::FargateCapacity, 2),
                (PendingClass::ImagePullNotFound, 1)
            ]
        );
        assert_eq!(rows[1].queue_p50_secs, None);
        // Equal counts: by class, so the order does not depend on the map.
        let rows = queue_by_class(&jobs[..2], |id| {
            Some(if id == 1 {
                PendingClass::Unknown
            } else {
                PendingClass::FargateCapacity
            })
        });
        assert_eq!(rows[0].class, PendingClass::FargateCapacity);
        assert!(queue_by_class(&[], |_| None).is_empty());
    }

    #[test]
    fn the_first_class_other_than_starting_wins_and_memory_is_bounded() {
        let mut sampler = PendingSampler::new(vec!["ns".into()], Duration::ZERO).with_max_jobs(2);
        assert_eq!(sampler.interval(), MIN_SAMPLE_INTERVAL);
        sampler.note(1, PendingClass::Starting);
        sampler.note(1, PendingClass::FargatePodLimit);
        sampler.note(1, PendingClass::ImagePullRateLimited);
        sampler.note(1, PendingClass::Starting);
        assert_eq!(sampler.class_of(1), Some(PendingClass::FargatePodLimit));
        sampler.note(2, PendingClass::Starting);
        sampler.note(3, PendingClass::FargateCapacity);
        assert_eq!(sampler.class_of(3), None, "the third job is past the bound");
        sampler.note(2, PendingClass::FargateCapacity);
        assert_eq!(sampler.class_of(2), Some(PendingClass::FargateCapacity));
        let summary = sampler.summary();
        assert_eq!((summary.jobs_seen, summary.untracked_jobs), (2, 1));
        // No sample succeeded: the classes are unknown, no table.
        assert!(sampler.queue_by_class(&[job(1, Some(1.0))]).is_empty());
    }

    #[tokio::test]
    async fn a_sample_lists_once_per_namespace_and_classifies_from_events() {
        let t0: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let clock = ManualClock::new(t0);
        let pods = InMemoryPods::new().with_clock(Arc::new(clock.clone()));
        let held = pods.insert(NewPod::job("ns", "mgr", 1, 7)).unwrap();
        pods.insert(NewPod::job("ns", "mgr", 1, 8)).unwrap();
        pods.insert(NewPod::job("ns", "mgr", 1, 9).with_phase(glrunner_janitor::PodPhase::Running))
            .unwrap();
        pods.record_event(PodEvent {
            namespace: "ns".into(),
            pod_name: held.name.clone(),
            pod_uid: Some(held.uid.clone()),
            reason: "FailedScheduling".into(),
            message: "Your AWS account has reached the limit on the number of Fargate pods it can run concurrently".into(),
            source: "fargate-scheduler".into(),
            event_type: "Warning".into(),
            count: 1,
            last_seen: Some(t0),
        });
        let mut sampler =
            PendingSampler::new(vec!["ns".into(), "empty".into()], DEFAULT_SAMPLE_INTERVAL);
        let before = pods.calls().lists;
        sampler.sample(&pods, &clock).await;
        assert_eq!(pods.calls().lists - before, 2, "one pod list per namespace");
        assert_eq!(sampler.class_of(7), Some(PendingClass::FargatePodLimit));
        assert_eq!(sampler.class_of(8), Some(PendingClass::Starting));
        assert_eq!(sampler.class_of(9), None, "a running pod is not Pending");

        pods.fail_lists(Some(glrunner_janitor::memory::Fault::Unavailable));
        sampler.sample(&pods, &clock).await;
        let summary = sampler.summary();
        assert_eq!((summary.samples, summary.failed_samples), (1, 1));
        assert_eq!(summary.jobs_seen, 2);
    }
}
