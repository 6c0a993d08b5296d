//! A bounded sample of a load test's job logs: which image each sampled job ran, and its shard's cache hits and misses.
//!
//! After the watch, [`read_traces`] reads a few job logs per image (and per shard with the
//! cache workload) through [`GitLabApi::job_trace`], one request each, never more than the
//! watch's request budget has left ([`crate::watch::WatchConfig::max_requests`]) nor
//! [`TraceSampling::max_traces`]. Each log is read by [`crate::trace`]: a job whose
//! `/etc/os-release` is not its image's is an [`ImageMismatch`] naming the job, its image and
//! the image (or system) it ran, and [`Report::has_failures`](crate::Report::has_failures)
//! then fails the run.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::api::GitLabApi;
use crate::ci::LoadTestSpec;
use crate::error::{Error, Result};
use crate::report::{JobTiming, Percentiles};
use crate::trace::{CacheTrace, ImageRef, OsExpectation, OsRelease, RestoreOutcome, SaveOutcome};
use crate::types::ProjectRef;

/// How many logs to read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TraceSampling {
    /// Logs per image of the matrix (spread over the image's jobs: first, last, between).
    pub per_image: usize,
    /// Logs per shard with the cache workload (its hits and misses are counted on these).
    pub per_shard: usize,
    /// Logs in all.
    pub max_traces: usize,
}

impl Default for TraceSampling {
    fn default() -> Self {
        Self {
            per_image: 3,
            per_shard: 10,
            max_traces: 60,
        }
    }
}

/// Whether the sampled jobs of one image ran it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageVerdict {
    /// Every sampled job printed the os-release the image ships.
    Proved,
    /// A sampled job ran something else (see [`TraceReport::mismatches`]).
    Failed,
    /// The image's os-release is not known from its reference: its sampled jobs agree with
    /// each other, which is all that can be said.
    Unverified,
    /// No job of the image could be sampled (none succeeded, or the budget ran out).
    NotSampled,
}

/// The image proof of one image of the matrix.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImageResult {
    /// The image reference, as the CI file names it.
    pub image: String,
    /// Jobs of the load test with this image.
    pub jobs: usize,
    /// Of them, logs read.
    pub sampled: usize,
    /// Sampled jobs that printed what the image ships.
    pub matched: usize,
    /// What the image's os-release must say, when its reference tells.
    pub expected: Option<OsExpectation>,
    /// The systems the sampled jobs printed (`ID VERSION_ID (PRETTY_NAME)`), distinct.
    pub observed: Vec<String>,
    /// The verdict.
    pub verdict: ImageVerdict,
}

/// A job that ran another image than its own.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImageMismatch {
    /// Job id.
    pub job_id: u64,
    /// Job name.
    pub job_name: String,
    /// The job's own image (its `image:`).
    pub expected_image: String,
    /// What it ran: another image of the matrix whose os-release it printed, else the system
    /// it printed, else `no /etc/os-release`.
    pub ran: String,
    /// The os-release it printed.
    pub observed: Option<OsRelease>,
}

impl std::fmt::Display for ImageMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "job {} ({}) ran {} instead of its image {}",
            self.job_id, self.job_name, self.ran, self.expected_image
        )
    }
}

/// Cache hits and misses of one shard, counted on its sampled jobs' logs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ShardCache {
    /// The shard (runner tag).
    pub shard: String,
    /// The cache key its jobs share.
    pub key: Option<String>,
    /// Logs read.
    pub sampled: usize,
    /// Restores served by the shared cache.
    pub hits: usize,
    /// Restores that found nothing.
    pub misses: usize,
    /// Restores with no shared cache configured (a miss on Fargate: a new pod has no local copy).
    pub local_only: usize,
    /// Seconds of the `restore_cache` section, hits.
    pub hit_secs: Option<Percentiles>,
    /// Seconds of the `restore_cache` section, misses (local-only included).
    pub miss_secs: Option<Percentiles>,
    /// Saves uploaded to the shared cache.
    pub uploads: usize,
    /// Saves that stayed on the pod (no shared cache), or failed.
    pub saves_not_uploaded: usize,
    /// Seconds of the `archive_cache` section of uploads.
    pub upload_secs: Option<Percentiles>,
}

/// What the sampled logs showed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TraceReport {
    /// Logs read.
    pub traces_read: usize,
    /// Logs the sampling wanted.
    pub traces_wanted: usize,
    /// Fewer were read than wanted: the request budget had no more room.
    pub budget_limited: bool,
    /// Logs that could not be read (the error of each is logged).
    pub read_errors: usize,
    /// Requests the reads cost (transport retries included).
    pub requests: u64,
    /// Per image of the matrix, in the matrix's order (empty without a matrix).
    pub images: Vec<ImageResult>,
    /// Jobs that ran another image than their own.
    pub mismatches: Vec<ImageMismatch>,
    /// Per shard, with the cache workload (empty without it).
    pub cache: Vec<ShardCache>,
}

impl TraceReport {
    /// One line per mismatch, for an error message.
    pub fn describe_mismatches(&self) -> String {
        self.mismatches
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The image of each CI job of `specs` (one per pipeline part), by CI job name.
pub fn images_by_ci_job(specs: &[LoadTestSpec]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for spec in specs {
        for job in spec.plan()? {
            out.insert(job.name, job.image);
        }
    }
    Ok(out)
}

/// The CI job a concrete job came from: `name i/N` → `name`.
fn ci_job_of(name: &str) -> &str {
    match name.rsplit_once(' ') {
        Some((base, index))
            if index
                .split_once('/')
                .is_some_and(|(i, n)| i.parse::<u32>().is_ok() && n.parse::<u32>().is_ok()) =>
        {
            base
        }
        _ => name,
    }
}

/// `n` items of `ids` (sorted), spread from the first to the last.
fn spread(ids: &[u64], n: usize) -> Vec<u64> {
    if ids.len() <= n {
        return ids.to_vec();
    }
    if n == 1 {
        return vec![ids[0]];
    }
    let mut out: Vec<u64> = (0..n).map(|k| ids[k * (ids.len() - 1) / (n - 1)]).collect();
    out.dedup();
    out
}

/// What to read: jobs per image first, then per shard (cache), in rounds so that a short
/// budget still covers every image once before any gets a second job.
pub fn choose(
    jobs: &[JobTiming],
    image_of_job: &BTreeMap<u64, String>,
    matrix: &[String],
    cache_shards: bool,
    sampling: &TraceSampling,
) -> Vec<u64> {
    let succeeded: Vec<&JobTiming> = jobs.iter().filter(|j| j.status == "success").collect();
    let mut groups: Vec<Vec<u64>> = Vec::new();
    for image in matrix {
        let mut ids: Vec<u64> = succeeded
            .iter()
            .filter(|j| image_of_job.get(&j.id) == Some(image))
            .map(|j| j.id)
            .collect();
        ids.sort_unstable();
        groups.push(spread(&ids, sampling.per_image));
    }
    if cache_shards {
        let shards: BTreeSet<&str> = succeeded.iter().map(|j| j.shard.as_str()).collect();
        for shard in shards {
            let mut ids: Vec<u64> = succeeded
                .iter()
                .filter(|j| j.shard == shard)
                .map(|j| j.id)
                .collect();
            ids.sort_unstable();
            groups.push(spread(&ids, sampling.per_shard));
        }
    }
    let mut chosen = Vec::new();
    let mut seen = BTreeSet::new();
    let rounds = groups.iter().map(Vec::len).max().unwrap_or(0);
    for round in 0..rounds {
        for group in &groups {
            if let Some(id) = group.get(round)
                && seen.insert(*id)
            {
                chosen.push(*id);
            }
        }
    }
    chosen.truncate(sampling.max_traces);
    chosen
}

/// Reads the chosen logs (at most `budget` requests) and judges them: each sampled job's
/// os-release against its image ([`ImageRef::expected_os`]; an image whose release is not
/// known is judged by its jobs agreeing), and each shard's cache steps.
#[allow(clippy::too_many_arguments)]
pub async fn read_traces(
    api: &dyn GitLabApi,
    project: &ProjectRef,
    jobs: &[JobTiming],
    specs: &[LoadTestSpec],
    sampling: &TraceSampling,
    budget: u64,
) -> Result<TraceReport> {
    let by_ci_job = images_by_ci_job(specs)?;
    let image_of_job: BTreeMap<u64, String> = jobs
        .iter()
        .filter_map(|j| by_ci_job.get(ci_job_of(&j.name)).map(|i| (j.id, i.clone())))
        .collect();
    let mut matrix: Vec<String> = Vec::new();
    for spec in specs {
        for image in &spec.images {
            if !matrix.contains(image) {
                matrix.push(image.clone());
            }
        }
    }
    let cache_shards = specs.iter().any(|s| s.cache_megabytes.is_some());
    let wanted = choose(jobs, &image_of_job, &matrix, cache_shards, sampling);
    let start = api.requests_sent();
    let mut logs: BTreeMap<u64, String> = BTreeMap::new();
    let mut read_errors = 0usize;
    let mut budget_limited = false;
    for &id in &wanted {
        if api.requests_sent().saturating_sub(start) >= budget {
            budget_limited = true;
            break;
        }
        match api.job_trace(project, id).await {
            Ok(text) => {
                logs.insert(id, text);
            }
            Err(e @ Error::Throttled { .. }) => {
                tracing::warn!(job = id, error = %e, "GitLab throttled the log reads; stopping them");
                read_errors += 1;
                budget_limited = true;
                break;
            }
            Err(e) => {
                tracing::warn!(job = id, error = %e, "a job log could not be read");
                read_errors += 1;
            }
        }
    }
    let requests = api.requests_sent().saturating_sub(start);
    let name_of: BTreeMap<u64, &str> = jobs.iter().map(|j| (j.id, j.name.as_str())).collect();
    let expectations: Vec<(String, Option<OsExpectation>)> = matrix
        .iter()
        .map(|i| {
            (
                i.clone(),
                ImageRef::parse(i).ok().and_then(|r| r.expected_os()),
            )
        })
        .collect();
    let mut images = Vec::new();
    let mut mismatches = Vec::new();
    for (image, expected) in &expectations {
        let mine: Vec<(u64, Option<OsRelease>)> = logs
            .iter()
            .filter(|(id, _)| image_of_job.get(id) == Some(image))
            .map(|(id, log)| (*id, OsRelease::from_trace(log)))
            .collect();
        let mut observed: Vec<String> = Vec::new();
        for (_, os) in &mine {
            let d = os
                .as_ref()
                .map_or_else(|| "no /etc/os-release".to_owned(), OsRelease::describe);
            if !observed.contains(&d) {
                observed.push(d);
            }
        }
        let mut matched = 0;
        let mut failed = false;
        for (id, os) in &mine {
            let ok = match (expected, os) {
                (Some(e), Some(os)) => e.matches(os),
                (Some(_), None) => false,
                // Unknown image: its jobs must agree with the first sampled one.
                (None, os) => os == &mine[0].1,
            };
            if ok {
                matched += 1;
                continue;
            }
            failed = true;
            let ran = match os {
                Some(os) => expectations
                    .iter()
                    .find(|(other, e)| other != image && e.as_ref().is_some_and(|e| e.matches(os)))
                    .map_or_else(|| os.describe(), |(other, _)| other.clone()),
                None => "no /etc/os-release".to_owned(),
            };
            mismatches.push(ImageMismatch {
                job_id: *id,
                job_name: name_of.get(id).copied().unwrap_or_default().to_owned(),
                expected_image: image.clone(),
                ran,
                observed: os.clone(),
            });
        }
        let verdict = if mine.is_empty() {
            ImageVerdict::NotSampled
        } else if failed {
            ImageVerdict::Failed
        } else if expected.is_none() {
            ImageVerdict::Unverified
        } else {
            ImageVerdict::Proved
        };
        images.push(ImageResult {
            image: image.clone(),
            jobs: image_of_job.values().filter(|i| *i == image).count(),
            sampled: mine.len(),
            matched,
            expected: expected.clone(),
            observed,
            verdict,
        });
    }
    let cache = if cache_shards {
        shard_cache(jobs, &logs)
    } else {
        Vec::new()
    };
    Ok(TraceReport {
        traces_read: logs.len(),
        traces_wanted: wanted.len(),
        budget_limited,
        read_errors,
        requests,
        images,
        mismatches,
        cache,
    })
}

/// Per shard: the cache steps of its sampled jobs' logs.
pub fn shard_cache(jobs: &[JobTiming], logs: &BTreeMap<u64, String>) -> Vec<ShardCache> {
    let shard_of: BTreeMap<u64, &str> = jobs.iter().map(|j| (j.id, j.shard.as_str())).collect();
    let mut by_shard: BTreeMap<&str, Vec<CacheTrace>> = BTreeMap::new();
    for (id, log) in logs {
        if let Some(shard) = shard_of.get(id) {
            by_shard
                .entry(shard)
                .or_default()
                .push(CacheTrace::from_trace(log));
        }
    }
    by_shard
        .into_iter()
        .map(|(shard, traces)| {
            let count = |o: RestoreOutcome| traces.iter().filter(|t| t.restore == Some(o)).count();
            let secs = |f: &dyn Fn(&CacheTrace) -> Option<f64>| {
                Percentiles::of(traces.iter().filter_map(f).collect())
            };
            ShardCache {
                shard: shard.to_owned(),
                key: traces.iter().find_map(|t| t.restore_key.clone()),
                sampled: traces.len(),
                hits: count(RestoreOutcome::Hit),
                misses: count(RestoreOutcome::Miss),
                local_only: count(RestoreOutcome::LocalOnly),
                hit_secs: secs(&|t| {
                    (t.restore == Some(RestoreOutcome::Hit))
                        .then_some(t.restore_secs)
                        .flatten()
                }),
                miss_secs: secs(&|t| {
                    matches!(
                        t.restore,
                        Some(RestoreOutcome::Miss | RestoreOutcome::LocalOnly)
                    )
                    .then_some(t.restore_secs)
                    .flatten()
                }),
                uploads: traces
                    .iter()
                    .filter(|t| t.save == Some(SaveOutcome::Uploaded))
                    .count(),
                saves_not_uploaded: traces
                    .iter()
                    .filter(|t| {
                        matches!(t.save, Some(SaveOutcome::LocalOnly | SaveOutcome::Failed))
                    })
                    .count(),
                upload_secs: secs(&|t| {
                    (t.save == Some(SaveOutcome::Uploaded))
                        .then_some(t.save_secs)
                        .flatten()
                }),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_names_map_to_their_ci_job() {
        assert_eq!(ci_job_of("loadtest-a-2 17/67"), "loadtest-a-2");
        assert_eq!(ci_job_of("loadtest-a"), "loadtest-a");
        assert_eq!(ci_job_of("deploy prod"), "deploy prod");
    }

    #[test]
    fn spread_covers_first_and_last() {
        let ids: Vec<u64> = (10..20).collect();
        assert_eq!(spread(&ids, 3), vec![10, 14, 19]);
        assert_eq!(spread(&ids[..2], 3), vec![10, 11]);
        assert_eq!(spread(&ids, 1), vec![10]);
    }
}
