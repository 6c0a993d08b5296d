//! The flow's summary report, as a table for people and as JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use super::{FlowConfig, Phase};
use crate::Backend;
use crate::RunnerProfile;
use crate::artifacts::{PhaseRow, RunContext};
use crate::pending::{ClassQueue, PendingSampler, PendingSampling};

/// How a phase went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PhaseStatus {
    /// Finished.
    Done,
    /// Not selected.
    Skipped,
    /// Failed.
    Failed,
}

/// One phase in the report.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseRecord {
    /// The phase.
    pub phase: Phase,
    /// How it went.
    pub status: PhaseStatus,
    /// Flow-clock seconds.
    pub secs: f64,
    /// One-line summary, or the error.
    pub summary: String,
}

/// The provisioning phase.
#[derive(Debug, Clone, Serialize)]
pub struct ProvisioningSummary {
    /// Critical path of the apply, seconds.
    pub makespan_secs: f64,
    /// Steps of the plan.
    pub steps: usize,
    /// Steps that created a resource (the rest existed).
    pub created: usize,
    /// Kubeconfig written, if any.
    pub kubeconfig: Option<PathBuf>,
}

/// One shard of the fleet.
#[derive(Debug, Clone, Serialize)]
pub struct ShardSummary {
    /// Helm release.
    pub release: String,
    /// Runner tag.
    pub tag: String,
    /// Jobs routed to it.
    pub jobs: u32,
    /// Its `concurrent`.
    pub concurrent: u32,
    /// `parallel` of each of its CI jobs.
    pub parallel: Vec<u32>,
    /// GitLab runner id.
    pub runner_id: Option<u64>,
}

/// The fleet plan.
#[derive(Debug, Clone, Serialize)]
pub struct FleetSummary {
    /// Jobs.
    pub total_jobs: u32,
    /// Runners' poll timeout, seconds.
    pub poll_timeout_secs: u64,
    /// Shards.
    pub shards: Vec<ShardSummary>,
    /// With the stack's pull-through cache: where each job image and the helper image come
    /// from ([`crate::FlowConfig::image_paths`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub image_paths: Vec<crate::image_cache::ImagePath>,
}

/// The load test.
#[derive(Debug, Clone, Serialize)]
pub struct LoadTestSummary {
    /// Pipeline id.
    pub pipeline_id: u64,
    /// Pipeline URL.
    pub web_url: String,
    /// Final pipeline status.
    pub pipeline_status: String,
    /// Jobs.
    pub total_jobs: usize,
    /// Jobs by final status.
    pub by_status: BTreeMap<String, usize>,
    /// First job created → last job finished, seconds.
    pub job_makespan_secs: Option<f64>,
    /// Queue time p50, seconds.
    pub queue_p50_secs: Option<f64>,
    /// Queue time p95, seconds.
    pub queue_p95_secs: Option<f64>,
    /// Jobs per minute over the makespan.
    pub jobs_per_minute: Option<f64>,
    /// Failed jobs by reason.
    pub failures_by_reason: BTreeMap<String, usize>,
    /// GitLab API requests of the watch.
    pub requests: u64,
    /// The jobs grouped by the class their pod spent Pending under, with each class's
    /// queue-time percentiles; sorted by job count. Empty when no sample of the Pending job
    /// pods succeeded (see [`crate::pending`]).
    pub queue_by_class: Vec<ClassQueue>,
    /// How the Pending job pods were sampled (`None`: the cluster could not be reached).
    pub pending_sampling: Option<PendingSampling>,
    /// With an image matrix: per image, whether its sampled jobs' logs proved it ran.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<glrunner_gitlab_client::sample::ImageResult>,
    /// Sampled jobs that ran another image than their own.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub image_mismatches: Vec<glrunner_gitlab_client::sample::ImageMismatch>,
    /// With the cache workload: per shard, the sampled jobs' cache hits, misses and times.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cache: Vec<glrunner_gitlab_client::sample::ShardCache>,
}

impl LoadTestSummary {
    pub(super) fn from_report(r: &glrunner_gitlab_client::Report) -> Self {
        Self {
            pipeline_id: r.pipeline_id,
            web_url: r.web_url.clone(),
            pipeline_status: r.pipeline_status.clone(),
            total_jobs: r.total_jobs,
            by_status: r.by_status.clone(),
            job_makespan_secs: r.makespan_secs,
            queue_p50_secs: r.queue.as_ref().map(|q| q.p50),
            queue_p95_secs: r.queue.as_ref().map(|q| q.p95),
            jobs_per_minute: r.jobs_per_minute,
            failures_by_reason: r.failures_by_reason.clone(),
            requests: r.requests,
            queue_by_class: Vec::new(),
            pending_sampling: None,
            images: r
                .traces
                .as_ref()
                .map(|t| t.images.clone())
                .unwrap_or_default(),
            image_mismatches: r.image_mismatches().to_vec(),
            cache: r
                .traces
                .as_ref()
                .map(|t| t.cache.clone())
                .unwrap_or_default(),
        }
    }

    /// Adds the "queue time by Pending class" table of `sampler`'s samples over `r`'s jobs.
    pub(super) fn with_pending(
        mut self,
        r: &glrunner_gitlab_client::Report,
        sampler: &PendingSampler,
    ) -> Self {
        self.queue_by_class = sampler.queue_by_class(&r.jobs);
        self.pending_sampling = Some(sampler.summary());
        self
    }

    pub(super) fn one_line(&self) -> String {
        format!(
            "pipeline {} {}: {} job(s), makespan {}, {} jobs/min",
            self.pipeline_id,
            self.pipeline_status,
            self.total_jobs,
            secs(self.job_makespan_secs),
            self.jobs_per_minute
                .map_or("-".into(), |v| format!("{v:.0}"))
        )
    }
}

/// The janitor.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReapSummary {
    /// Rounds run.
    pub rounds: u32,
    /// Pods deleted.
    pub reaped: usize,
    /// Deleted pods by reason.
    pub by_reason: BTreeMap<String, usize>,
    /// What the reaped pods were costing, USD per hour (Fargate price).
    pub usd_per_hour_avoided: f64,
    /// What they had burned while hung, USD.
    pub usd_burned: f64,
    /// Per-pod errors across rounds.
    pub errors: usize,
    /// Job pods still present at the end.
    pub remaining_job_pods: usize,
    /// Flow-clock seconds.
    pub secs: f64,
    /// UIDs of the pods already counted: a pod deleted gracefully in one round (Terminating) and
    /// force-deleted as stuck in a later one is one pod reaped, not two.
    #[serde(skip)]
    counted: BTreeSet<String>,
}

impl ReapSummary {
    pub(super) fn add_round(&mut self, r: &glrunner_janitor::Report) {
        use glrunner_janitor::Action;
        self.rounds += 1;
        for pod in &r.reaped {
            let acted = matches!(pod.action, Action::Deleted | Action::Terminating);
            if !acted || !self.counted.insert(pod.uid.clone()) {
                continue;
            }
            self.reaped += 1;
            // The reason and cost of the round that first deleted it.
            *self
                .by_reason
                .entry(pod.reason.code().to_owned())
                .or_default() += 1;
            self.usd_per_hour_avoided += pod.cost.usd_per_hour;
            self.usd_burned += pod.cost.usd_burned;
        }
        self.errors += r.errors.len();
    }

    pub(super) fn one_line(&self) -> String {
        format!(
            "{} pod(s) reaped in {} round(s) (${:.3}/h avoided), {} job pod(s) left",
            self.reaped, self.rounds, self.usd_per_hour_avoided, self.remaining_job_pods
        )
    }
}

/// What is left after teardown.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Leftovers {
    /// Infrastructure resources tagged with the stack.
    pub infra: Vec<String>,
    /// Runner releases.
    pub releases: Vec<String>,
    /// GitLab runners of the stack.
    pub runners: Vec<String>,
    /// Total (0 after a clean teardown).
    pub total: usize,
}

/// The teardown (phase or cleanup after a failure).
#[derive(Debug, Clone, Default, Serialize)]
pub struct TeardownSummary {
    /// `teardown phase` or `cleanup after failure`.
    pub trigger: String,
    /// Pipeline canceled during cleanup.
    pub pipeline_canceled: Option<u64>,
    /// Releases uninstalled (with their Secrets).
    pub releases_removed: usize,
    /// GitLab runners deleted.
    pub runners_deleted: usize,
    /// Infrastructure resources deleted.
    pub infra_deleted: usize,
    /// What remains.
    pub leftovers: Leftovers,
    /// Steps that failed.
    pub errors: Vec<String>,
}

impl TeardownSummary {
    pub(super) fn one_line(&self) -> String {
        format!(
            "{} release(s), {} runner(s), {} infrastructure resource(s) removed; {} left",
            self.releases_removed, self.runners_deleted, self.infra_deleted, self.leftovers.total
        )
    }
}

/// The phase that failed.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// The phase.
    pub phase: Phase,
    /// The error.
    pub error: String,
    /// The error's category (the capability crate's own, kept through the phase).
    pub category: crate::Category,
    /// Whether the cleanup removed everything it created.
    pub cleaned_up: bool,
}

/// The flow's report.
#[derive(Debug, Clone, Serialize)]
pub struct FlowReport {
    /// Which world.
    pub backend: Backend,
    /// `virtual` (sandbox) or `wall` clock for every duration below.
    pub clock: &'static str,
    /// Stack.
    pub stack: String,
    /// Region.
    pub region: String,
    /// GitLab project.
    pub project: String,
    /// Where the cluster came from (`provisioned by glrunner`, `brought by the user (…)`).
    pub cluster: String,
    /// Jobs asked for.
    pub jobs: u32,
    /// Every phase.
    pub phases: Vec<PhaseRecord>,
    /// Provisioning.
    pub provisioning: Option<ProvisioningSummary>,
    /// Fleet plan.
    pub fleet: Option<FleetSummary>,
    /// Load test.
    pub load_test: Option<LoadTestSummary>,
    /// Janitor.
    pub reap: Option<ReapSummary>,
    /// Teardown or cleanup.
    pub teardown: Option<TeardownSummary>,
    /// The failed phase, if any.
    pub failure: Option<Failure>,
    /// Flow-clock seconds of the whole run.
    pub total_secs: f64,
    /// Wall-clock seconds of the whole run.
    pub wall_secs: f64,
    /// The runner profile installed.
    pub runner_profile: RunnerProfile,
    /// On the sandbox: says that every timing above comes from a model (`None` on AWS).
    pub modelled: Option<String>,
    /// The load test's full report with its per-job timeline, for the artifact files
    /// (`--report-html`, `--junit`, `--metrics`); left out of the JSON document, which keeps
    /// the summary in `load_test`.
    #[serde(skip)]
    pub load_test_report: Option<glrunner_gitlab_client::Report>,
    /// The cost projected before the run and estimated from its measured durations.
    pub cost: Option<crate::cost::CostComparison>,
}

/// The "queue time by Pending class" table under the load test's rows: one line per class.
fn render_queue_by_class(out: &mut String, l: &LoadTestSummary) {
    let Some(sampling) = &l.pending_sampling else {
        row(
            out,
            "queue time by Pending class",
            "not sampled (the cluster could not be reached)".into(),
        );
        return;
    };
    if l.queue_by_class.is_empty() {
        row(
            out,
            "queue time by Pending class",
            format!(
                "unknown: none of {} sample(s) of the Pending job pods succeeded",
                sampling.failed_samples
            ),
        );
        return;
    }
    row(
        out,
        "queue time by Pending class",
        format!(
            "(pods sampled every {:.0}s, {} sample(s); seen = jobs whose pod a sample saw Pending)",
            sampling.interval_secs, sampling.samples
        ),
    );
    let q = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |s| format!("{s:.1}s"));
    let _ = writeln!(
        out,
        "    {:<30} {:>6} {:>6} {:>9} {:>9} {:>9}",
        "class", "jobs", "seen", "p50", "p95", "max"
    );
    for c in &l.queue_by_class {
        let _ = writeln!(
            out,
            "    {:<30} {:>6} {:>6} {:>9} {:>9} {:>9}",
            c.class.code(),
            c.jobs,
            c.observed,
            q(c.queue_p50_secs),
            q(c.queue_p95_secs),
            q(c.queue_max_secs)
        );
    }
}

/// The image proof per image and the cache per shard under the load test's rows.
fn render_images_and_cache(out: &mut String, l: &LoadTestSummary) {
    use glrunner_gitlab_client::sample::ImageVerdict;
    for i in &l.images {
        let verdict = match i.verdict {
            ImageVerdict::Proved => "proved",
            ImageVerdict::Failed => "FAILED",
            ImageVerdict::Unverified => "unverified (os-release not known from the reference)",
            ImageVerdict::NotSampled => "not sampled",
        };
        row(
            out,
            "image",
            format!(
                "{}: {verdict}, {}/{} sampled job log(s) of {} job(s) matched ({})",
                i.image,
                i.matched,
                i.sampled,
                i.jobs,
                i.observed.join(", ")
            ),
        );
    }
    for m in &l.image_mismatches {
        row(out, "image MISMATCH", m.to_string());
    }
    let p50 = |p: &Option<glrunner_gitlab_client::Percentiles>| {
        p.map_or_else(|| "-".to_owned(), |p| format!("{:.1}s", p.p50))
    };
    for c in &l.cache {
        row(
            out,
            "cache",
            format!(
                "{} (key {}): {} hit(s) p50 {}, {} miss(es) p50 {}, {} without a shared cache; {} upload(s) p50 {} ({} sampled)",
                c.shard,
                c.key.as_deref().unwrap_or("-"),
                c.hits,
                p50(&c.hit_secs),
                c.misses,
                p50(&c.miss_secs),
                c.local_only,
                c.uploads,
                p50(&c.upload_secs),
                c.sampled
            ),
        );
    }
}

/// One `key value` line of the summary.
fn row(out: &mut String, k: &str, v: String) {
    let _ = writeln!(out, "  {k:<26} {v}");
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(
        || "-".to_owned(),
        |s| {
            humantime::format_duration(std::time::Duration::from_secs(s.round() as u64)).to_string()
        },
    )
}

impl FlowReport {
    pub(super) fn new(config: &FlowConfig, backend: Backend) -> Self {
        Self {
            backend,
            clock: if backend == Backend::Sandbox {
                "virtual"
            } else {
                "wall"
            },
            stack: config.spec.stack.to_string(),
            region: config.spec.region.clone(),
            project: config.project.clone(),
            cluster: config.cluster.describe(),
            jobs: config.jobs,
            phases: Vec::new(),
            provisioning: None,
            fleet: None,
            load_test: None,
            reap: None,
            teardown: None,
            failure: None,
            total_secs: 0.0,
            wall_secs: 0.0,
            runner_profile: config.runner_profile,
            modelled: (backend == Backend::Sandbox).then(|| {
                format!(
                    "every timing in this report comes from the sandbox's model (runner profile \
                     {}), not from a measurement",
                    config.runner_profile
                )
            }),
            load_test_report: None,
            cost: None,
        }
    }

    /// What the artifact files show besides the load-test timeline: the run's parameters, the
    /// phases with their durations and the reaped pods. The cost section stays empty until a
    /// cost projection exists (set `cost` on the returned context).
    pub fn artifact_context(&self) -> RunContext {
        let mut context = RunContext::new(
            "glrunner full flow",
            match self.backend {
                Backend::Sandbox => "sandbox",
                Backend::Aws => "aws",
            },
            self.clock,
        )
        .parameter("stack", &self.stack)
        .parameter("region", &self.region)
        .parameter("project", &self.project)
        .parameter("jobs", self.jobs);
        if let Some(fleet) = &self.fleet {
            let shards: Vec<String> = fleet
                .shards
                .iter()
                .map(|s| format!("{} ({} jobs, concurrent {})", s.tag, s.jobs, s.concurrent))
                .collect();
            context = context.parameter("shards", shards.join(", ")).parameter(
                "runner poll timeout",
                format!("{} s", fleet.poll_timeout_secs),
            );
        }
        context = context.parameter(
            "total time",
            format!("{} ({} clock)", secs(Some(self.total_secs)), self.clock),
        );
        context.phases = self
            .phases
            .iter()
            .map(|p| PhaseRow {
                name: p.phase.as_str().to_owned(),
                status: match p.status {
                    PhaseStatus::Done => "done",
                    PhaseStatus::Skipped => "skipped",
                    PhaseStatus::Failed => "failed",
                }
                .to_owned(),
                secs: (p.status != PhaseStatus::Skipped).then_some(p.secs),
                summary: p.summary.clone(),
            })
            .collect();
        context.reaped_pods = self.reap.as_ref().map(|r| r.reaped);
        if let Some(l) = &self.load_test {
            context.queue_by_class = l.queue_by_class.clone();
            context.pending_sample_interval_secs =
                l.pending_sampling.as_ref().map(|p| p.interval_secs);
        }
        context
    }

    /// Whether every selected phase finished and nothing was left behind by a teardown.
    pub fn is_success(&self) -> bool {
        self.failure.is_none()
    }

    /// Leftovers counted by the last teardown (`None` when none ran).
    pub fn leftovers(&self) -> Option<usize> {
        self.teardown.as_ref().map(|t| t.leftovers.total)
    }

    /// The report as a table for a terminal: [`FlowReport::render_summary`], then
    /// [`FlowReport::render_failure`].
    pub fn render_text(&self) -> String {
        let mut out = self.render_summary();
        out.push_str(&self.render_failure());
        out
    }

    /// The run's parameters, its phases and the totals (everything but the failure), one
    /// section after another.
    pub fn render_summary(&self) -> String {
        let mut out = String::new();
        self.render_header(&mut out);
        self.render_phases(&mut out);
        let _ = writeln!(out);
        self.render_provisioning(&mut out);
        self.render_fleet(&mut out);
        self.render_load_test(&mut out);
        self.render_reap(&mut out);
        self.render_teardown(&mut out);
        self.render_cost(&mut out);
        self.render_total(&mut out);
        out
    }

    /// The title, runner profile, the model note and the cluster.
    fn render_header(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "glrunner full flow — stack {} in {} on the {} backend ({} clock), {} jobs",
            self.stack,
            self.region,
            match self.backend {
                Backend::Sandbox => "sandbox",
                Backend::Aws => "aws",
            },
            self.clock,
            self.jobs
        );
        let _ = writeln!(out, "runner profile: {}", self.runner_profile);
        if let Some(note) = &self.modelled {
            let _ = writeln!(out, "NOTE: {note}");
        }
        let _ = writeln!(out, "  cluster: {}", self.cluster);
    }

    /// One line per phase: status, time, summary.
    fn render_phases(&self, out: &mut String) {
        let _ = writeln!(out, "\n  phase       status   time      summary");
        for p in &self.phases {
            let status = match p.status {
                PhaseStatus::Done => "done",
                PhaseStatus::Skipped => "skipped",
                PhaseStatus::Failed => "FAILED",
            };
            let time = if p.status == PhaseStatus::Skipped {
                "-".into()
            } else {
                secs(Some(p.secs))
            };
            let _ = writeln!(
                out,
                "  {:<11} {:<8} {:<9} {}",
                p.phase.as_str(),
                status,
                time,
                p.summary
            );
        }
    }

    /// The provisioning makespan.
    fn render_provisioning(&self, out: &mut String) {
        if let Some(p) = &self.provisioning {
            row(
                out,
                "provisioning makespan",
                format!(
                    "{}{} ({} of {} resources created)",
                    secs(Some(p.makespan_secs)),
                    if self.modelled.is_some() {
                        " (modelled: published AWS durations)"
                    } else {
                        ""
                    },
                    p.created,
                    p.steps
                ),
            );
        }
    }

    /// The fleet plan.
    fn render_fleet(&self, out: &mut String) {
        if let Some(f) = &self.fleet {
            let shards: Vec<String> = f
                .shards
                .iter()
                .map(|s| format!("{}={}", s.tag, s.concurrent))
                .collect();
            row(
                out,
                "fleet",
                format!("{} shard(s): {}", f.shards.len(), shards.join(", ")),
            );
            for path in &f.image_paths {
                let line = match path {
                    crate::image_cache::ImagePath::Cache {
                        original, cached, ..
                    } => format!("{original} through the pull-through cache: {cached}"),
                    crate::image_cache::ImagePath::Direct { original, reason } => {
                        format!("{original} from its registry: {reason}")
                    }
                };
                row(out, "image", line);
            }
        }
    }

    /// The load test.
    fn render_load_test(&self, out: &mut String) {
        if let Some(l) = &self.load_test {
            let by: Vec<String> = l
                .by_status
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect();
            row(
                out,
                "pipeline",
                format!(
                    "{} {} ({})",
                    l.pipeline_id,
                    l.pipeline_status,
                    by.join(", ")
                ),
            );
            row(out, "job makespan", secs(l.job_makespan_secs));
            let q = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |s| format!("{s:.1}s"));
            row(
                out,
                "queue time p50 / p95",
                format!("{} / {}", q(l.queue_p50_secs), q(l.queue_p95_secs)),
            );
            render_queue_by_class(out, l);
            render_images_and_cache(out, l);
            row(
                out,
                "jobs per minute",
                l.jobs_per_minute.map_or("-".into(), |v| format!("{v:.0}")),
            );
            if !l.failures_by_reason.is_empty() {
                row(out, "failures", format!("{:?}", l.failures_by_reason));
            }
        }
    }

    /// The janitor.
    fn render_reap(&self, out: &mut String) {
        if let Some(r) = &self.reap {
            let by: Vec<String> = r
                .by_reason
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect();
            row(
                out,
                "pods reaped",
                format!(
                    "{} ({})",
                    r.reaped,
                    if by.is_empty() {
                        "none hung".into()
                    } else {
                        by.join(", ")
                    }
                ),
            );
            row(
                out,
                "cost avoided",
                format!(
                    "${:.3}/hour (${:.4} burned while hung)",
                    r.usd_per_hour_avoided, r.usd_burned
                ),
            );
        }
    }

    /// The teardown or cleanup.
    fn render_teardown(&self, out: &mut String) {
        if let Some(t) = &self.teardown {
            row(out, "teardown", format!("{}: {}", t.trigger, t.one_line()));
            row(
                out,
                "leftovers after teardown",
                t.leftovers.total.to_string(),
            );
            for e in &t.errors {
                row(out, "teardown error", e.clone());
            }
        }
    }

    /// The projected and estimated cost.
    fn render_cost(&self, out: &mut String) {
        if let Some(c) = &self.cost {
            row(
                out,
                "projected cost",
                format!(
                    "${:.2} before the run ({})",
                    c.projected.total_usd,
                    if c.projected.price_list_api {
                        "AWS Price List API prices"
                    } else {
                        "price tables in the code"
                    }
                ),
            );
            if let Some(pod) = &c.projected.priced_job_pod {
                row(
                    out,
                    "priced job pod",
                    format!("{pod} (the largest the runners' overwrite ceilings allow)"),
                );
            }
            if let Some(saved) = c.projected.nat_data_saved_usd {
                row(
                    out,
                    "saved by image cache",
                    format!("${saved:.2} of NAT data the image pulls would cost without it"),
                );
            }
            row(
                out,
                "estimated cost",
                format!(
                    "${:.2} from the measured phase durations ({} clock; an estimate, not a bill)",
                    c.estimated.total_usd, self.clock
                ),
            );
        }
    }

    /// The run's total time.
    fn render_total(&self, out: &mut String) {
        row(
            out,
            "total",
            format!(
                "{} {} time, {:.2}s wall time",
                secs(Some(self.total_secs)),
                self.clock,
                self.wall_secs
            ),
        );
    }

    /// The failed phase and what its cleanup left (empty when the run succeeded).
    pub fn render_failure(&self) -> String {
        let mut out = String::new();
        if let Some(f) = &self.failure {
            let _ = writeln!(
                out,
                "\nFAILED in {}: {}\n{}",
                f.phase,
                f.error,
                if f.cleaned_up {
                    "cleanup removed everything this run created"
                } else {
                    "cleanup was skipped or incomplete: see above"
                }
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use glrunner_janitor::clock::ManualClock;
    use glrunner_janitor::memory::{InMemoryPods, NewPod};
    use glrunner_janitor::{PodPhase, Policy, Reaper, ReaperConfig};

    use super::ReapSummary;

    #[tokio::test]
    async fn a_pod_terminated_then_force_deleted_counts_once() {
        let t0: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let clock = ManualClock::new(t0);
        // No kubelet: a graceful delete leaves the bound pod Terminating, as on a dead Fargate node.
        let pods = InMemoryPods::new().with_clock(Arc::new(clock.clone()));
        let late = NewPod::job("ns", "mgr", 1, 1)
            .with_phase(PodPhase::Running)
            .with_node("fargate-1")
            .with_requests(1000, 2048)
            .started_at(t0);
        pods.insert(late).unwrap();
        let policy = Policy::new(["ns"]).with_grace(Duration::from_secs(60));
        let reaper = Reaper::new(Arc::new(pods.clone()), ReaperConfig::new(policy))
            .unwrap()
            .with_clock(Arc::new(clock.clone()));
        let mut summary = ReapSummary::default();

        clock.advance(Duration::from_secs(2 * 3600));
        let first = reaper.run_once().await.unwrap();
        assert_eq!(first.deleted(), 1, "{first}");
        summary.add_round(&first);
        clock.advance(Duration::from_secs(600));
        let second = reaper.run_once().await.unwrap();
        let stuck: Vec<_> = second.reaped.iter().map(|p| p.reason.code()).collect();
        assert_eq!(stuck, ["stuck_terminating"], "{second}");
        summary.add_round(&second);

        assert!(pods.pods().is_empty());
        assert_eq!(summary.rounds, 2);
        assert_eq!(summary.reaped, 1);
        let by_reason: Vec<_> = summary.by_reason.iter().collect();
        assert_eq!(by_reason, [(&"past_job_timeout".to_owned(), &1)]);
        assert!(
            (summary.usd_per_hour_avoided - first.cost.usd_per_hour).abs() < 1e-12,
            "cost counted once: {summary:?}"
        );
    }
}
