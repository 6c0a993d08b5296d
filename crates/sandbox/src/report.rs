//! What the model says about one sandbox run: the profile, every parameter with its source, the waits per constraint, and what limited the makespan.

use std::fmt::Write as _;

use glrunner_gitlab_client::Percentiles;
use serde::Serialize;

use glrunner_flow::FlowReport;

use super::model::{Basis, Parameter};
use super::{RunnerProfile, SandboxConfig, SimulatorStats};

/// What limited a run's makespan, as far as the model can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Limit {
    /// Jobs waited to be picked up (request round trips, `request_concurrency`, `concurrent`).
    Pickup,
    /// Pods waited for Fargate's launch-rate tokens.
    LaunchRate,
    /// Pods waited for room under the account's vCPU quota.
    VcpuQuota,
    /// Nothing queued: one pod start plus the job.
    PodStart,
    /// Two constraints weigh about the same; the model cannot tell which one dominates.
    Undetermined,
}

impl Limit {
    /// Kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Pickup => "pickup",
            Limit::LaunchRate => "launch-rate",
            Limit::VcpuQuota => "vcpu-quota",
            Limit::PodStart => "pod-start",
            Limit::Undetermined => "undetermined",
        }
    }
}

/// p50 / p95 / max of one kind of wait, seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WaitSummary {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// Maximum.
    pub max: f64,
}

impl WaitSummary {
    fn of(samples: &[f64]) -> Option<Self> {
        Percentiles::of(samples.to_vec()).map(|p| Self {
            count: p.count,
            p50: p.p50,
            p95: p.p95,
            max: p.max,
        })
    }
}

/// The model's account of a sandbox run; every number in it is modelled.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelReport {
    /// Says that the run's timings are a model, and how its parameters were chosen.
    pub note: String,
    /// The runner profile.
    pub profile: RunnerProfile,
    /// Every parameter with its basis and source.
    pub parameters: Vec<Parameter>,
    /// Queue time p95 of the load test (job created → picked up), seconds.
    pub queue_p95_secs: Option<f64>,
    /// Waits for room under the vCPU quota, per started pod.
    pub quota_wait: Option<WaitSummary>,
    /// Waits for a launch-rate token, per started pod.
    pub launch_wait: Option<WaitSummary>,
    /// Pod creation → running, per started pod.
    pub pod_start: Option<WaitSummary>,
    /// Jobs failed because their pod was not running after `poll_timeout`.
    pub jobs_timed_out: u64,
    /// Most Fargate vCPUs held at once.
    pub peak_vcpus: f64,
    /// The account's vCPU quota in the model.
    pub vcpu_quota: f64,
    /// What limited the makespan.
    pub limit: Limit,
    /// The same in words, with the numbers behind it.
    pub verdict: String,
    /// Job images and the shared cache, when the run used the cache, a pull-through cache or
    /// the wrong-image fault: pulls per image (cold, warm), cache hits, misses and uploads, and
    /// the STS calls they cost ([`crate::images`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images: Option<crate::images::ImageStats>,
}

/// A wait counts as a limit only above this many seconds (one poll interval).
const NEGLIGIBLE_SECS: f64 = 3.0;

impl ModelReport {
    pub(super) fn new(
        config: &SandboxConfig,
        stats: &SimulatorStats,
        queue_p95_secs: Option<f64>,
    ) -> Self {
        let parameters = config.model.parameters();
        let count = |b: Basis| parameters.iter().filter(|p| p.basis == b).count();
        let note = format!(
            "every timing of this sandbox run comes from a model (runner profile {}): {} parameters \
             documented, {} measured by others, {} fitted to the reference tutorial's published \
             makespans, {} assumed",
            config.profile,
            count(Basis::Documented),
            count(Basis::Measured),
            count(Basis::Fitted),
            count(Basis::Assumed)
        );
        let quota_wait = WaitSummary::of(&stats.quota_waits);
        let launch_wait = WaitSummary::of(&stats.launch_waits);
        let pod_start = WaitSummary::of(&stats.pod_starts);
        let quota = config.model.fargate.vcpu_quota;
        let (limit, verdict) = judge(
            stats.jobs_timed_out,
            queue_p95_secs,
            quota_wait,
            launch_wait,
            pod_start,
            quota,
        );
        Self {
            note,
            profile: config.profile,
            parameters,
            queue_p95_secs,
            quota_wait,
            launch_wait,
            pod_start,
            jobs_timed_out: stats.jobs_timed_out,
            peak_vcpus: stats.peak_vcpus,
            vcpu_quota: quota,
            limit,
            verdict,
            images: None,
        }
    }

    /// Attaches what the images and the cache did, when there is anything to say (the cache
    /// was used, pulls went through a pull-through cache, or the wrong-image fault fired).
    #[must_use]
    pub fn with_images(
        mut self,
        model: &crate::images::ImageModel,
        stats: crate::images::ImageStats,
    ) -> Self {
        let used = stats.cache_hits + stats.cache_misses + stats.cache_uploads > 0
            || model.pull_through_cache
            || !stats.wrong_images.is_empty();
        self.images = used.then_some(stats);
        self
    }

    /// Lines for a terminal: the note, the verdict, the waits and each parameter's source.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "  model: {}", self.note);
        let _ = writeln!(
            out,
            "  limited by ({}): {}",
            self.limit.as_str(),
            self.verdict
        );
        let wait = |w: &Option<WaitSummary>| {
            w.map_or_else(
                || "-".to_owned(),
                |w| format!("p50 {:.1}s / p95 {:.1}s / max {:.1}s", w.p50, w.p95, w.max),
            )
        };
        let _ = writeln!(
            out,
            "  modelled waits: vCPU quota {}",
            wait(&self.quota_wait)
        );
        let _ = writeln!(
            out,
            "                  launch rate {}",
            wait(&self.launch_wait)
        );
        let _ = writeln!(
            out,
            "                  pod start   {}",
            wait(&self.pod_start)
        );
        if let Some(i) = &self.images {
            let pulls: Vec<String> = i
                .pulls
                .iter()
                .map(|(image, p)| format!("{image} {} cold/{} warm", p.cold, p.warm))
                .collect();
            let _ = writeln!(out, "  modelled pulls: {}", pulls.join(", "));
            let _ = writeln!(
                out,
                "  modelled cache: {} hit(s), {} miss(es), {} upload(s), {} STS AssumeRole call(s)",
                i.cache_hits, i.cache_misses, i.cache_uploads, i.sts_calls
            );
        }
        let _ = writeln!(
            out,
            "  peak Fargate vCPUs {:.2} of a {:.1} vCPU quota",
            self.peak_vcpus, self.vcpu_quota
        );
        let _ = writeln!(out, "  model parameters (value, basis):");
        for p in &self.parameters {
            let _ = writeln!(
                out,
                "    {:<28} {:<34} {}",
                p.name,
                p.value,
                p.basis.as_str()
            );
        }
        out
    }
}

fn judge(
    timed_out: u64,
    queue_p95: Option<f64>,
    quota: Option<WaitSummary>,
    launch: Option<WaitSummary>,
    start: Option<WaitSummary>,
    vcpu_quota: f64,
) -> (Limit, String) {
    let p95 = |w: Option<WaitSummary>| w.map_or(0.0, |w| w.p95);
    let max = |w: Option<WaitSummary>| w.map_or(0.0, |w| w.max);
    let quota_caveat = format!(
        "the {vcpu_quota:.1} vCPU quota is fitted, not published, so the model cannot tell it \
         from another account-wide cap on running pods"
    );
    if timed_out > 0 {
        return if max(quota) > max(launch) && max(quota) > NEGLIGIBLE_SECS {
            (
                Limit::VcpuQuota,
                format!(
                    "{timed_out} job(s) failed: their pods waited up to {:.0}s for room under the \
                     account's vCPU quota and were not running within poll_timeout; {quota_caveat}",
                    max(quota)
                ),
            )
        } else if max(launch) > NEGLIGIBLE_SECS {
            (
                Limit::LaunchRate,
                format!(
                    "{timed_out} job(s) failed: their pods waited up to {:.0}s for Fargate launch \
                     tokens and were not running within poll_timeout",
                    max(launch)
                ),
            )
        } else {
            (
                Limit::PodStart,
                format!(
                    "{timed_out} job(s) failed: their pods took longer than poll_timeout to start \
                     (p95 {:.0}s)",
                    p95(start)
                ),
            )
        };
    }
    let mut candidates = [
        (
            Limit::Pickup,
            queue_p95.unwrap_or(0.0),
            "queue time (pickup) p95",
        ),
        (Limit::VcpuQuota, p95(quota), "wait for vCPU quota p95"),
        (Limit::LaunchRate, p95(launch), "wait for launch tokens p95"),
    ];
    candidates.sort_by(|a, b| b.1.total_cmp(&a.1));
    let [
        (first, first_secs, first_what),
        (_, second_secs, second_what),
        _,
    ] = candidates;
    if first_secs < NEGLIGIBLE_SECS {
        return (
            Limit::PodStart,
            format!(
                "nothing queued for long: the makespan is about one pod start (p50 {:.0}s) plus \
                 the job",
                start.map_or(0.0, |s| s.p50)
            ),
        );
    }
    if second_secs >= NEGLIGIBLE_SECS && second_secs * 1.25 >= first_secs {
        return (
            Limit::Undetermined,
            format!(
                "the model cannot tell: {first_what} {first_secs:.0}s and {second_what} \
                 {second_secs:.0}s weigh about the same"
            ),
        );
    }
    let mut verdict = format!("{first_what} {first_secs:.0}s, the largest wait");
    if first == Limit::VcpuQuota {
        verdict.push_str("; ");
        verdict.push_str(&quota_caveat);
    }
    (first, verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(p95: f64) -> Option<WaitSummary> {
        Some(WaitSummary {
            count: 10,
            p50: p95 / 2.0,
            p95,
            max: p95 * 1.2,
        })
    }

    #[test]
    fn failures_name_the_constraint_they_waited_for() {
        let (limit, verdict) = judge(12, Some(20.0), w(150.0), w(0.5), w(60.0), 52.0);
        assert_eq!(limit, Limit::VcpuQuota);
        assert!(
            verdict.contains("12 job(s) failed") && verdict.contains("fitted"),
            "{verdict}"
        );
        let (limit, _) = judge(3, Some(20.0), w(0.0), w(40.0), w(60.0), 52.0);
        assert_eq!(limit, Limit::LaunchRate);
        let (limit, _) = judge(3, Some(1.0), w(0.0), w(0.0), w(200.0), 52.0);
        assert_eq!(limit, Limit::PodStart);
    }

    #[test]
    fn the_largest_wait_limits_unless_two_are_close() {
        assert_eq!(
            judge(0, Some(30.0), w(2.0), w(1.0), w(55.0), 52.0).0,
            Limit::Pickup
        );
        assert_eq!(
            judge(0, Some(5.0), w(60.0), w(1.0), w(55.0), 52.0).0,
            Limit::VcpuQuota
        );
        assert_eq!(
            judge(0, Some(50.0), w(45.0), w(1.0), w(55.0), 52.0).0,
            Limit::Undetermined
        );
        assert_eq!(
            judge(0, Some(1.0), w(0.0), w(0.0), w(55.0), 52.0).0,
            Limit::PodStart
        );
    }
}

/// A flow report from the sandbox: the flow's own report (its JSON fields at the top level, as
/// `full_flow --output json` prints them) plus the model's account of the run under `model`.
#[derive(Debug, Clone, Serialize)]
pub struct SandboxReport {
    /// The flow's report.
    #[serde(flatten)]
    pub flow: FlowReport,
    /// What the model says about the run; every number in it is modelled.
    pub model: ModelReport,
}

impl SandboxReport {
    /// The report as a table for a terminal: the flow's summary, the model, then the failure.
    pub fn render_text(&self) -> String {
        let mut out = self.flow.render_summary();
        let _ = writeln!(out);
        out.push_str(&self.model.render_text());
        out.push_str(&self.flow.render_failure());
        out
    }
}

impl std::ops::Deref for SandboxReport {
    type Target = FlowReport;

    fn deref(&self) -> &FlowReport {
        &self.flow
    }
}

impl std::ops::DerefMut for SandboxReport {
    fn deref_mut(&mut self) -> &mut FlowReport {
        &mut self.flow
    }
}
