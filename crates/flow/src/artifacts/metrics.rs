//! GitLab's metrics report (`artifacts:reports:metrics`): `name value` lines in OpenMetrics text.
//!
//! GitLab reads each line, drops everything after `#`, splits on whitespace and keeps the first
//! value of each name as a string; a merge request then shows which values changed against the
//! target branch. So: one gauge per line, names without labels (a label would be compared as part
//! of the name anyway), values formatted the same way every run (a change in the string is a
//! change in the widget), `# HELP`/`# TYPE` comments for OpenMetrics readers and a final `# EOF`.

use std::fmt::Write as _;

use glrunner_gitlab_client::Report;

use super::RunContext;

/// One metric line.
struct Gauge {
    name: String,
    help: String,
    value: String,
}

/// Keeps `[a-z0-9_]` (lowercased) and turns everything else into `_`, so a GitLab
/// `failure_reason` or a phase name becomes part of a valid metric name.
fn name_part(raw: &str) -> String {
    let part: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if part.is_empty() {
        "unknown".into()
    } else {
        part
    }
}

fn secs(v: f64) -> String {
    format!("{v:.1}")
}

/// The metrics report of a load-test run.
pub fn render(report: &Report, context: &RunContext) -> String {
    let mut gauges: Vec<Gauge> = Vec::new();
    let mut push = |name: String, help: &str, value: String| {
        gauges.push(Gauge {
            name,
            help: help.to_owned(),
            value,
        })
    };
    push(
        "glrunner_loadtest_jobs".into(),
        "Jobs in the load-test pipeline.",
        report.total_jobs.to_string(),
    );
    push(
        "glrunner_loadtest_jobs_succeeded".into(),
        "Jobs that ended with status success.",
        report
            .by_status
            .get("success")
            .copied()
            .unwrap_or(0)
            .to_string(),
    );
    let failures: usize = report.failures_by_reason.values().sum();
    push(
        "glrunner_loadtest_failures".into(),
        "Failed jobs, all reasons.",
        failures.to_string(),
    );
    for (reason, n) in &report.failures_by_reason {
        push(
            format!("glrunner_loadtest_failures_{}", name_part(reason)),
            "Failed jobs with this GitLab failure_reason.",
            n.to_string(),
        );
    }
    if let Some(m) = report.makespan_secs {
        push(
            "glrunner_loadtest_makespan_seconds".into(),
            "Pipeline created to last job finished.",
            secs(m),
        );
    }
    if let Some(q) = &report.queue {
        for (stat, v) in [("p50", q.p50), ("p95", q.p95), ("max", q.max)] {
            push(
                format!("glrunner_loadtest_queue_{stat}_seconds"),
                "Queue time (job created to started).",
                secs(v),
            );
        }
    }
    if let Some(r) = &report.run {
        for (stat, v) in [("p50", r.p50), ("p95", r.p95), ("max", r.max)] {
            push(
                format!("glrunner_loadtest_run_{stat}_seconds"),
                "Run time (job started to finished, pod start included).",
                secs(v),
            );
        }
    }
    if let Some(j) = report.jobs_per_minute {
        push(
            "glrunner_loadtest_jobs_per_minute".into(),
            "Finished jobs per minute of makespan.",
            format!("{j:.1}"),
        );
    }
    push(
        "glrunner_loadtest_api_requests".into(),
        "GitLab API requests the pipeline watch made.",
        report.requests.to_string(),
    );
    if let Some(n) = context.reaped_pods {
        push(
            "glrunner_reaped_pods".into(),
            "Hung job pods the janitor deleted.",
            n.to_string(),
        );
    }
    for phase in &context.phases {
        if let Some(s) = phase.secs.filter(|_| phase.status != "skipped") {
            push(
                format!("glrunner_phase_{}_seconds", name_part(&phase.name)),
                "Duration of this full-flow phase.",
                secs(s),
            );
        }
    }
    if let Some(cost) = &context.cost {
        if let Some(p) = cost.projected_total() {
            push(
                "glrunner_cost_projected_usd".into(),
                "Projected cost of the run, USD.",
                format!("{p:.4}"),
            );
        }
        if let Some(e) = cost.estimated_total() {
            push(
                "glrunner_cost_estimated_usd".into(),
                "Cost estimated from measured durations, USD.",
                format!("{e:.4}"),
            );
        }
    }

    let mut out = String::new();
    let mut seen = std::collections::BTreeSet::new();
    for g in gauges {
        // Two reasons may sanitise to one name; GitLab keeps one value per name, so do we.
        if !seen.insert(g.name.clone()) {
            continue;
        }
        let _ = writeln!(out, "# HELP {} {}", g.name, g.help);
        let _ = writeln!(out, "# TYPE {} gauge", g.name);
        let _ = writeln!(out, "{} {}", g.name, g.value);
    }
    out.push_str("# EOF\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_metric_names() {
        assert_eq!(
            name_part("stuck_or_timeout_failure"),
            "stuck_or_timeout_failure"
        );
        assert_eq!(name_part("load-test"), "load_test");
        assert_eq!(name_part("Odd #reason"), "odd__reason");
        assert_eq!(name_part(""), "unknown");
    }
}
