//! JUnit XML for GitLab's `artifacts:reports:junit`: one test suite per shard, one test case per job.
//!
//! The layout validates against the JUnit schema of Jenkins' xunit plugin (`junit-10.xsd`, the
//! one pytest checks its own output with), which GitLab's parser reads: `testsuites` >
//! `testsuite` (name, tests, failures, errors, skipped, time, timestamp) > `testcase` (name,
//! classname, time) with `failure` for a failed job (GitLab's `failure_reason` as message and
//! type), `skipped` for a canceled or skipped one, and `error` for a job still unfinished when
//! the watch ended.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use glrunner_gitlab_client::{JobTiming, Report};

use super::{RunContext, escape};

/// Statuses that mean the job never ran to an end of its own.
const SKIPPED: [&str; 3] = ["canceled", "skipped", "manual"];

/// A `time` attribute in the schema's SUREFIRE_TIME form (digits, at most three decimals).
fn time(secs: f64) -> String {
    format!("{:.3}", secs.max(0.0))
}

enum Outcome<'a> {
    Passed,
    Failed(&'a str),
    Skipped(&'a str),
    Unfinished(&'a str),
}

fn outcome(job: &JobTiming) -> Outcome<'_> {
    if let Some(reason) = &job.failure_reason {
        Outcome::Failed(reason)
    } else if job.status == "success" {
        Outcome::Passed
    } else if SKIPPED.contains(&job.status.as_str()) {
        Outcome::Skipped(&job.status)
    } else {
        Outcome::Unfinished(&job.status)
    }
}

fn describe(job: &JobTiming) -> String {
    let mut out = format!("job {} on shard {}", job.id, job.shard);
    if let Some(r) = job.runner_id {
        let _ = write!(out, ", runner {r}");
    }
    match job.queue_secs() {
        Some(q) => {
            let _ = write!(out, ", queued {q:.1} s");
        }
        None => out.push_str(", never started"),
    }
    if let Some(r) = job.run_secs() {
        let _ = write!(out, ", ran {r:.1} s");
    }
    out
}

/// The JUnit document of a load-test run.
pub fn render(report: &Report, context: &RunContext) -> String {
    let mut shards: BTreeMap<&str, Vec<&JobTiming>> = BTreeMap::new();
    for job in &report.jobs {
        shards.entry(&job.shard).or_default().push(job);
    }
    let count = |jobs: &[&JobTiming], f: fn(&Outcome<'_>) -> bool| {
        jobs.iter().filter(|j| f(&outcome(j))).count()
    };
    let is_failed = |o: &Outcome<'_>| matches!(o, Outcome::Failed(_));
    let is_error = |o: &Outcome<'_>| matches!(o, Outcome::Unfinished(_));
    let is_skipped = |o: &Outcome<'_>| matches!(o, Outcome::Skipped(_));
    let all: Vec<&JobTiming> = report.jobs.iter().collect();
    let timestamp = report.created_at.strftime("%Y-%m-%dT%H:%M:%S").to_string();

    let mut out = String::with_capacity(300 + report.jobs.len() * 220);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" time=\"{}\">",
        escape(&format!(
            "{} — pipeline {}",
            context.title, report.pipeline_id
        )),
        all.len(),
        count(&all, is_failed),
        count(&all, is_error),
        time(report.makespan_secs.unwrap_or(0.0)),
    );
    for (shard, jobs) in &shards {
        let start = jobs
            .iter()
            .map(|j| j.created_secs)
            .fold(f64::INFINITY, f64::min);
        let end = jobs
            .iter()
            .filter_map(|j| j.finished_secs)
            .fold(f64::NEG_INFINITY, f64::max);
        let span = if end.is_finite() && start.is_finite() {
            end - start
        } else {
            0.0
        };
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{}\" timestamp=\"{timestamp}\">",
            escape(shard),
            jobs.len(),
            count(jobs, is_failed),
            count(jobs, is_error),
            count(jobs, is_skipped),
            time(span),
        );
        out.push_str("    <properties>\n");
        for (name, value) in [
            ("pipeline_id", report.pipeline_id.to_string()),
            ("pipeline_url", report.web_url.clone()),
            ("pipeline_status", report.pipeline_status.clone()),
            ("backend", context.backend.clone()),
            ("clock", context.clock.clone()),
        ] {
            let _ = writeln!(
                out,
                "      <property name=\"{name}\" value=\"{}\"/>",
                escape(&value)
            );
        }
        out.push_str("    </properties>\n");
        for job in jobs {
            let _ = write!(
                out,
                "    <testcase name=\"{}\" classname=\"{}\" time=\"{}\">",
                escape(&job.name),
                escape(&job.shard),
                time(job.run_secs().unwrap_or(0.0)),
            );
            match outcome(job) {
                Outcome::Passed => {}
                Outcome::Failed(reason) => {
                    let _ = write!(
                        out,
                        "<failure message=\"{r}\" type=\"{r}\">{} failed: {r}</failure>",
                        escape(&describe(job)),
                        r = escape(reason),
                    );
                }
                Outcome::Skipped(status) => {
                    let _ = write!(out, "<skipped message=\"{}\"/>", escape(status));
                }
                Outcome::Unfinished(status) => {
                    let _ = write!(
                        out,
                        "<error message=\"still {s} when the watch ended\" type=\"unfinished\">{} was still {s}</error>",
                        escape(&describe(job)),
                        s = escape(status),
                    );
                }
            }
            let _ = writeln!(
                out,
                "<system-out>{}</system-out></testcase>",
                escape(&describe(job))
            );
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
