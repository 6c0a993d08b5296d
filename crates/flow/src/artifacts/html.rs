//! The HTML report: one self-contained page (inline CSS and SVG, no script, no font, no request).
//!
//! Three charts, all readable without hovering (every series carries a text label and a line
//! style of its own, so nothing depends on colour alone) in the Okabe–Ito colour-blind-safe
//! palette:
//! - jobs over time: pending, running and finished counts, with the makespan marked;
//! - one lane per shard (`<g class="lane">`), one bar per job (`<g class="job">`): queued
//!   (thin, orange) then running (full height, blue); failed jobs are grouped at the bottom of
//!   their lane under a "failed" label and drawn in vermillion;
//! - queue-time and run-time histograms with p50, p95 and max marked and labelled.
//!
//! Then the summary table (jobs, failures by reason, jobs per minute, API requests), the queue
//! time by Pending class (the full flow's), the cost section when there is one, the flow's phases, the failed jobs and the run's parameters.
//! A Content-Security-Policy forbids every script and every network request, so the page
//! behaves the same with JavaScript disabled and offline.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use glrunner_gitlab_client::{JobTiming, Percentiles, Report};

use super::{RunContext, escape, human_secs};

/// Okabe & Ito (2008), "Color Universal Design": distinguishable with every common colour
/// vision deficiency.
mod palette {
    pub const ORANGE: &str = "#E69F00";
    pub const GREEN: &str = "#009E73";
    pub const BLUE: &str = "#0072B2";
    pub const VERMILLION: &str = "#D55E00";
}

/// Width of every chart's viewBox, and the plot area inside it.
const WIDTH: f64 = 960.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 30.0;
const PLOT_W: f64 = WIDTH - LEFT - RIGHT;
/// Height budget of the lanes' job rows (rows shrink as the run grows).
const LANES_ROWS_HEIGHT: f64 = 720.0;
/// Failed jobs listed one by one in the table (the JUnit file has all of them).
const MAX_FAILED_ROWS: usize = 100;

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:0 auto;max-width:1000px;padding:1rem 1.5rem;color:#1a1a1a;background:#fff;line-height:1.4}\
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.2rem;margin:1.6rem 0 .4rem;border-bottom:1px solid #ccc}\
.sub{color:#444;margin:0 0 1rem}table{border-collapse:collapse;margin:.4rem 0}\
th,td{text-align:left;padding:.2rem .8rem .2rem 0;border-bottom:1px solid #e4e4e4;vertical-align:top}\
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}\
figure{margin:.4rem 0}figcaption{color:#333;font-size:.9rem}svg{width:100%;height:auto;display:block}\
svg text{font-size:12px;fill:#1a1a1a}svg .axis{stroke:#555;stroke-width:1}svg .grid{stroke:#e4e4e4;stroke-width:1}\
.status-failed,.status-FAILED{color:#a33a00;font-weight:600}.pair{display:flex;gap:1rem;flex-wrap:wrap}.pair figure{flex:1 1 440px}\
svg .q{fill:#E69F00}svg .r{fill:#0072B2}svg .f .r{fill:#D55E00}svg .lane-bg{fill:#f3f3f3}\
svg .bar{fill:#56B4E9;stroke:#0072B2;stroke-width:.5}";

/// Maps seconds to x in the plot area.
#[derive(Clone, Copy)]
struct TimeAxis {
    max: f64,
}

impl TimeAxis {
    fn x(self, t: f64) -> f64 {
        LEFT + (t.clamp(0.0, self.max) / self.max) * PLOT_W
    }
}

/// A step of 1, 2 or 5 × 10^k (or a clock-friendly step for seconds) giving at most `max_ticks`.
fn nice_step(max: f64, max_ticks: usize, clock: bool) -> f64 {
    let raw = (max / max_ticks as f64).max(f64::MIN_POSITIVE);
    if clock && raw >= 1.0 {
        const STEPS: [f64; 16] = [
            1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
            7200.0, 14400.0, 28800.0,
        ];
        if let Some(s) = STEPS.iter().find(|s| **s >= raw) {
            return *s;
        }
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude)
}

/// A tick label on a time axis: `45s`, `2m`, `1m30s`, `1h`.
fn clock_label(secs: f64) -> String {
    let s = secs.round() as u64;
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

fn count_label(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// Vertical grid lines and labels of a time axis along `y_bottom`.
fn time_ticks(out: &mut String, axis: TimeAxis, y_top: f64, y_bottom: f64) {
    let step = nice_step(axis.max, 10, true);
    let mut t = 0.0;
    while t <= axis.max + 1e-9 {
        let x = axis.x(t);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{y_top:.1}\" x2=\"{x:.1}\" y2=\"{y_bottom:.1}\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            y_bottom + 15.0,
            clock_label(t)
        );
        t += step;
    }
    let _ = write!(
        out,
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{y_bottom:.1}\" x2=\"{:.1}\" y2=\"{y_bottom:.1}\"/>",
        LEFT + PLOT_W
    );
}

fn svg_open(out: &mut String, id: &str, height: f64, title: &str, desc: &str) {
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"{id}\" viewBox=\"0 0 {WIDTH} {height:.0}\" role=\"img\" aria-labelledby=\"{id}-t {id}-d\">\
         <title id=\"{id}-t\">{}</title><desc id=\"{id}-d\">{}</desc>",
        escape(title),
        escape(desc)
    );
}

/// Counts of jobs at time `t`, from sorted event times.
struct Timeline {
    queued: Vec<f64>,
    started: Vec<f64>,
    finished_after_start: Vec<f64>,
    finished_unstarted: Vec<f64>,
    finished: Vec<f64>,
}

fn upto(sorted: &[f64], t: f64) -> usize {
    sorted.partition_point(|v| *v <= t)
}

impl Timeline {
    fn new(jobs: &[JobTiming]) -> Self {
        let sorted = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v
        };
        Self {
            queued: sorted(jobs.iter().map(|j| j.queued_secs).collect()),
            started: sorted(jobs.iter().filter_map(|j| j.started_secs).collect()),
            finished_after_start: sorted(
                jobs.iter()
                    .filter(|j| j.started_secs.is_some())
                    .filter_map(|j| j.finished_secs)
                    .collect(),
            ),
            finished_unstarted: sorted(
                jobs.iter()
                    .filter(|j| j.started_secs.is_none())
                    .filter_map(|j| j.finished_secs)
                    .collect(),
            ),
            finished: sorted(jobs.iter().filter_map(|j| j.finished_secs).collect()),
        }
    }

    /// (pending, running, finished) at `t`.
    fn at(&self, t: f64) -> [usize; 3] {
        let started = upto(&self.started, t);
        let pending = upto(&self.queued, t)
            .saturating_sub(started)
            .saturating_sub(upto(&self.finished_unstarted, t));
        let running = started.saturating_sub(upto(&self.finished_after_start, t));
        [pending, running, upto(&self.finished, t)]
    }
}

fn time_max(report: &Report) -> f64 {
    report
        .jobs
        .iter()
        .flat_map(|j| [Some(j.queued_secs), j.started_secs, j.finished_secs])
        .flatten()
        .chain(report.makespan_secs)
        .fold(0.0, f64::max)
        .max(1.0)
}

fn jobs_over_time(out: &mut String, report: &Report, axis: TimeAxis) {
    const TOP: f64 = 46.0;
    const BOTTOM: f64 = 270.0;
    let timeline = Timeline::new(&report.jobs);
    let total = report.jobs.len().max(1) as f64;
    let y_step = nice_step(total, 5, false);
    let y_max = (total / y_step).ceil() * y_step;
    let y = |n: f64| BOTTOM - n / y_max * (BOTTOM - TOP);
    // 480 samples: finer than a pixel of most screens across the plot, a few KB per line.
    const SAMPLES: usize = 480;
    let mut lines = [String::new(), String::new(), String::new()];
    let mut peaks = [(0usize, 0.0f64); 3];
    for i in 0..=SAMPLES {
        let t = axis.max * i as f64 / SAMPLES as f64;
        let counts = timeline.at(t);
        for (k, n) in counts.iter().enumerate() {
            let _ = write!(lines[k], "{:.1},{:.1} ", axis.x(t), y(*n as f64));
            if *n > peaks[k].0 {
                peaks[k] = (*n, t);
            }
        }
    }
    let finished_end = timeline.finished.len();
    let desc = format!(
        "Pending, running and finished job counts over {} of pipeline time. Peak {} pending at {}, peak {} running at {}, {} of {} finished{}.",
        human_secs(axis.max),
        peaks[0].0,
        clock_label(peaks[0].1),
        peaks[1].0,
        clock_label(peaks[1].1),
        finished_end,
        report.jobs.len(),
        report
            .makespan_secs
            .map(|m| format!(", makespan {}", human_secs(m)))
            .unwrap_or_default()
    );
    svg_open(
        out,
        "jobs-over-time",
        BOTTOM + 30.0,
        "Jobs over time",
        &desc,
    );
    // y grid and labels
    let mut n = 0.0;
    while n <= y_max + 1e-9 {
        let yy = y(n);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT + PLOT_W,
            LEFT - 6.0,
            yy + 4.0,
            count_label(n)
        );
        n += y_step;
    }
    let _ = write!(
        out,
        "<text x=\"12\" y=\"{:.1}\" transform=\"rotate(-90 12 {:.1})\" text-anchor=\"middle\">jobs</text>",
        (TOP + BOTTOM) / 2.0,
        (TOP + BOTTOM) / 2.0
    );
    time_ticks(out, axis, TOP, BOTTOM);
    // Series: colour, dash pattern and label each differ, so no series depends on colour.
    let series = [
        ("pending", palette::ORANGE, "8 4", 0),
        ("running", palette::BLUE, "", 1),
        ("finished", palette::GREEN, "2 3", 2),
    ];
    let mut legend_x = LEFT;
    for (name, colour, dash, k) in series {
        let dash_attr = if dash.is_empty() {
            String::new()
        } else {
            format!(" stroke-dasharray=\"{dash}\"")
        };
        let _ = write!(
            out,
            "<polyline class=\"series\" data-series=\"{name}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2.5\"{dash_attr} points=\"{}\"/>",
            lines[k].trim_end()
        );
        let label = if k == 2 {
            format!("{name} ({finished_end} at the end)")
        } else {
            format!("{name} (peak {})", peaks[k].0)
        };
        let _ = write!(
            out,
            "<line x1=\"{legend_x:.1}\" y1=\"16\" x2=\"{:.1}\" y2=\"16\" stroke=\"{colour}\" stroke-width=\"3\"{dash_attr}/><text x=\"{:.1}\" y=\"20\">{}</text>",
            legend_x + 30.0,
            legend_x + 36.0,
            escape(&label)
        );
        legend_x += 46.0 + 7.0 * label.len() as f64;
    }
    if let Some(m) = report.makespan_secs {
        let x = axis.x(m);
        let anchor = if x > LEFT + PLOT_W * 0.8 {
            "end"
        } else {
            "start"
        };
        let dx = if anchor == "end" { -4.0 } else { 4.0 };
        let _ = write!(
            out,
            "<line class=\"makespan\" x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{BOTTOM:.1}\" stroke=\"#000\" stroke-width=\"1.5\" stroke-dasharray=\"4 3\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">makespan {}</text>",
            TOP - 8.0,
            x + dx,
            TOP + 4.0,
            escape(&human_secs(m))
        );
    }
    out.push_str("</svg>");
}

fn lanes(out: &mut String, report: &Report, axis: TimeAxis) {
    let mut shards: BTreeMap<&str, Vec<&JobTiming>> = BTreeMap::new();
    for job in &report.jobs {
        shards.entry(&job.shard).or_default().push(job);
    }
    let total = report.jobs.len().max(1) as f64;
    let row = (LANES_ROWS_HEIGHT / total).clamp(0.6, 8.0);
    const LANE_HEAD: f64 = 22.0;
    const LANE_GAP: f64 = 10.0;
    const TOP: f64 = 34.0;
    let height: f64 = TOP
        + shards
            .values()
            .map(|jobs| LANE_HEAD + jobs.len() as f64 * row + LANE_GAP)
            .sum::<f64>()
        + 24.0;
    let failed_total = report
        .jobs
        .iter()
        .filter(|j| j.failure_reason.is_some())
        .count();
    let desc = format!(
        "{} lane(s), one per shard (runner tag), {} job bar(s): each bar is thin while the job waits for a runner and full height while it runs; {} failed job(s) are grouped at the bottom of their lane.",
        shards.len(),
        report.jobs.len(),
        failed_total
    );
    svg_open(out, "shard-lanes", height, "Jobs per shard", &desc);
    // Legend: shape and text, not colour alone.
    let _ = write!(
        out,
        "<rect class=\"q\" x=\"{LEFT}\" y=\"11\" width=\"26\" height=\"4\"/><text x=\"{:.1}\" y=\"17\">queued (thin)</text>\
         <rect class=\"r\" x=\"{:.1}\" y=\"7\" width=\"26\" height=\"12\"/><text x=\"{:.1}\" y=\"17\">running (full height)</text>\
         <g class=\"f\"><rect class=\"r\" x=\"{:.1}\" y=\"7\" width=\"26\" height=\"12\"/></g><text x=\"{:.1}\" y=\"17\">failed (grouped at the bottom of its lane)</text>",
        LEFT + 32.0,
        LEFT + 150.0,
        LEFT + 182.0,
        LEFT + 345.0,
        LEFT + 377.0
    );
    let mut y = TOP;
    for (i, (shard, jobs)) in shards.iter().enumerate() {
        let mut ordered = jobs.clone();
        ordered.sort_by(|a, b| {
            (
                a.failure_reason.is_some(),
                a.queued_secs,
                a.started_secs,
                a.id,
            )
                .partial_cmp(&(
                    b.failure_reason.is_some(),
                    b.queued_secs,
                    b.started_secs,
                    b.id,
                ))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let failed = ordered
            .iter()
            .filter(|j| j.failure_reason.is_some())
            .count();
        let last = jobs
            .iter()
            .filter_map(|j| j.finished_secs)
            .fold(f64::NEG_INFINITY, f64::max);
        let rows_h = jobs.len() as f64 * row;
        let label = format!(
            "{shard} · {} job(s) · {failed} failed{}",
            jobs.len(),
            if last.is_finite() {
                format!(" · last finished at {}", human_secs(last))
            } else {
                String::new()
            }
        );
        let _ = write!(
            out,
            "<g class=\"lane\" data-shard=\"{}\" data-jobs=\"{}\" data-failed=\"{failed}\">\
             <text x=\"{LEFT}\" y=\"{:.1}\" font-weight=\"600\">{}</text>",
            escape(shard),
            jobs.len(),
            y + 15.0,
            escape(&label)
        );
        let top = y + LANE_HEAD;
        if i % 2 == 0 {
            let _ = write!(
                out,
                "<rect class=\"lane-bg\" x=\"{LEFT}\" y=\"{top:.1}\" width=\"{PLOT_W}\" height=\"{rows_h:.1}\"/>"
            );
        }
        for (k, job) in ordered.iter().enumerate() {
            let ry = top + k as f64 * row;
            let end_of_queue = job.started_secs.or(job.finished_secs).unwrap_or(axis.max);
            let qx = axis.x(job.queued_secs);
            let qw = (axis.x(end_of_queue) - qx).max(0.0);
            let class = if job.failure_reason.is_some() {
                "job f"
            } else {
                "job"
            };
            let mut tip = format!("{}: ", job.name);
            match job.queue_secs() {
                Some(q) => {
                    let _ = write!(tip, "queued {q:.1} s");
                }
                None => tip.push_str("never started"),
            }
            if let Some(r) = job.run_secs() {
                let _ = write!(tip, ", ran {r:.1} s");
            }
            if let Some(reason) = &job.failure_reason {
                let _ = write!(tip, ", failed: {reason}");
            }
            let _ = write!(
                out,
                "<g class=\"{class}\"><title>{}</title><rect class=\"q\" x=\"{qx:.1}\" y=\"{:.2}\" width=\"{qw:.1}\" height=\"{:.2}\"/>",
                escape(&tip),
                ry + row * 0.3,
                row * 0.4
            );
            if let Some(started) = job.started_secs {
                let end = job.finished_secs.unwrap_or(axis.max);
                let rx = axis.x(started);
                let rw = (axis.x(end) - rx).max(0.8);
                let _ = write!(
                    out,
                    "<rect class=\"r\" x=\"{rx:.1}\" y=\"{ry:.2}\" width=\"{rw:.1}\" height=\"{:.2}\"/>",
                    (row * 0.9).max(0.5)
                );
            }
            out.push_str("</g>");
        }
        if failed > 0 {
            let fy = top + (jobs.len() - failed) as f64 * row;
            let fh = failed as f64 * row;
            let _ = write!(
                out,
                "<line x1=\"{:.1}\" y1=\"{fy:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{}\" stroke-width=\"3\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">failed</text>",
                LEFT - 4.0,
                LEFT - 4.0,
                fy + fh.max(2.0),
                palette::VERMILLION,
                LEFT - 8.0,
                fy + fh.max(2.0) / 2.0 + 4.0
            );
        }
        out.push_str("</g>");
        y = top + rows_h + LANE_GAP;
    }
    time_ticks(out, axis, TOP, y);
    out.push_str("</svg>");
}

fn histogram(out: &mut String, id: &str, what: &str, samples: &[f64], p: Option<&Percentiles>) {
    const W: f64 = 470.0;
    const L: f64 = 48.0;
    const R: f64 = 16.0;
    const TOP: f64 = 52.0;
    const BOTTOM: f64 = 220.0;
    const BINS: usize = 20;
    let max = samples.iter().copied().fold(0.0, f64::max).max(1e-9);
    let mut bins = [0usize; BINS];
    for s in samples {
        let i = ((s / max) * BINS as f64).floor() as usize;
        bins[i.min(BINS - 1)] += 1;
    }
    let top_count = bins.iter().copied().max().unwrap_or(0).max(1) as f64;
    let y_step = nice_step(top_count, 4, false);
    let y_max = (top_count / y_step).ceil() * y_step;
    let x = |v: f64| L + v / max * (W - L - R);
    let y = |n: f64| BOTTOM - n / y_max * (BOTTOM - TOP);
    let desc = match p {
        Some(p) => format!(
            "Histogram of {} {what} samples in {BINS} bins from 0 to {}: p50 {}, p95 {}, max {}.",
            p.count,
            human_secs(max),
            human_secs(p.p50),
            human_secs(p.p95),
            human_secs(p.max)
        ),
        None => format!("No {what} samples."),
    };
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"{id}\" viewBox=\"0 0 {W} {:.0}\" role=\"img\" aria-labelledby=\"{id}-t {id}-d\"><title id=\"{id}-t\">{} distribution</title><desc id=\"{id}-d\">{}</desc>",
        BOTTOM + 34.0,
        escape(what),
        escape(&desc)
    );
    let mut n = 0.0;
    while n <= y_max + 1e-9 {
        let yy = y(n);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{L}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - R,
            L - 5.0,
            yy + 4.0,
            count_label(n)
        );
        n += y_step;
    }
    let bin_w = (W - L - R) / BINS as f64;
    for (i, count) in bins.iter().enumerate() {
        if *count == 0 {
            continue;
        }
        let _ = write!(
            out,
            "<rect class=\"bar\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>{count} job(s)</title></rect>",
            L + i as f64 * bin_w,
            y(*count as f64),
            bin_w - 1.0,
            BOTTOM - y(*count as f64)
        );
    }
    let _ = write!(
        out,
        "<line class=\"axis\" x1=\"{L}\" y1=\"{BOTTOM}\" x2=\"{:.1}\" y2=\"{BOTTOM}\"/><text x=\"{L}\" y=\"{:.1}\">0</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{} ({what})</text>",
        W - R,
        BOTTOM + 15.0,
        W - R,
        BOTTOM + 15.0,
        escape(&human_secs(max))
    );
    if let Some(p) = p {
        for (k, (name, v, dash)) in [
            ("p50", p.p50, ""),
            ("p95", p.p95, "5 3"),
            ("max", p.max, "1.5 2.5"),
        ]
        .into_iter()
        .enumerate()
        {
            let xx = x(v);
            let ly = 14.0 + 13.0 * k as f64;
            let anchor = if xx > W * 0.7 { "end" } else { "start" };
            let dash_attr = if dash.is_empty() {
                String::new()
            } else {
                format!(" stroke-dasharray=\"{dash}\"")
            };
            let _ = write!(
                out,
                "<line class=\"marker\" data-marker=\"{name}\" x1=\"{xx:.1}\" y1=\"{:.1}\" x2=\"{xx:.1}\" y2=\"{BOTTOM}\" stroke=\"#000\" stroke-width=\"1.5\"{dash_attr}/><text x=\"{:.1}\" y=\"{ly:.1}\" text-anchor=\"{anchor}\">{name} {}</text>",
                ly + 3.0,
                if anchor == "end" { xx - 3.0 } else { xx + 3.0 },
                escape(&human_secs(v))
            );
        }
    }
    out.push_str("</svg>");
}

fn row(out: &mut String, key: &str, value: &str) {
    let _ = write!(
        out,
        "<tr><th scope=\"row\">{}</th><td>{}</td></tr>",
        escape(key),
        escape(value)
    );
}

fn percentiles_text(p: Option<&Percentiles>) -> String {
    p.map_or_else(
        || "-".into(),
        |p| {
            format!(
                "p50 {} · p95 {} · max {} ({} jobs)",
                human_secs(p.p50),
                human_secs(p.p95),
                human_secs(p.max),
                p.count
            )
        },
    )
}

fn summary(out: &mut String, report: &Report, context: &RunContext) {
    out.push_str("<section id=\"summary\"><h2>Summary</h2><table class=\"summary\"><tbody>");
    row(
        out,
        "pipeline",
        &format!(
            "{} — {} (watch {:?})",
            report.pipeline_id, report.pipeline_status, report.outcome
        ),
    );
    let by_status: Vec<String> = report
        .by_status
        .iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    row(
        out,
        "jobs",
        &format!("{} ({})", report.total_jobs, by_status.join(", ")),
    );
    let failures: usize = report.failures_by_reason.values().sum();
    if failures == 0 {
        row(out, "failures", "0");
    } else {
        let reasons: Vec<String> = report
            .failures_by_reason
            .iter()
            .map(|(r, n)| format!("{n} {r}"))
            .collect();
        row(
            out,
            "failures",
            &format!("{failures} ({})", reasons.join(", ")),
        );
    }
    row(
        out,
        "makespan",
        &report.makespan_secs.map_or("-".into(), human_secs),
    );
    row(
        out,
        "jobs per minute",
        &report
            .jobs_per_minute
            .map_or("-".into(), |j| format!("{j:.1}")),
    );
    row(out, "queue time", &percentiles_text(report.queue.as_ref()));
    row(out, "run time", &percentiles_text(report.run.as_ref()));
    row(out, "GitLab API requests", &report.requests.to_string());
    if let Some(n) = context.reaped_pods {
        row(out, "hung pods reaped", &n.to_string());
    }
    if let Some(cost) = &context.cost {
        let usd = |v: Option<f64>| v.map_or("-".into(), |v| format!("${v:.4}"));
        row(
            out,
            "cost",
            &format!(
                "projected {} · estimated {}",
                usd(cost.projected_total()),
                usd(cost.estimated_total())
            ),
        );
    }
    out.push_str("</tbody></table>");
    if !report.web_url.is_empty() {
        let _ = write!(
            out,
            "<p>Pipeline: <a href=\"{u}\">{u}</a></p>",
            u = escape(&report.web_url)
        );
    }
    out.push_str("</section>");
}

/// The "queue time by Pending class" table: one row per class, most jobs first.
fn queue_by_class(out: &mut String, context: &RunContext) {
    if context.queue_by_class.is_empty() {
        return;
    }
    let secs = |v: Option<f64>| v.map_or("-".into(), human_secs);
    out.push_str("<section id=\"queue-by-class\"><h2>Queue time by Pending class</h2><table><thead><tr><th>class</th><th class=\"n\">jobs</th><th class=\"n\">seen Pending</th><th class=\"n\">p50</th><th class=\"n\">p95</th><th class=\"n\">max</th></tr></thead><tbody>");
    for c in &context.queue_by_class {
        let _ = write!(
            out,
            "<tr class=\"pending-class\" data-class=\"{code}\" data-jobs=\"{}\"><td>{code}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            c.jobs,
            c.jobs,
            c.observed,
            secs(c.queue_p50_secs),
            secs(c.queue_p95_secs),
            secs(c.queue_max_secs),
            code = escape(c.class.code()),
        );
    }
    let every = context
        .pending_sample_interval_secs
        .map_or_else(String::new, |s| format!(" every {}", human_secs(s)));
    let _ = write!(
        out,
        "</tbody></table><p class=\"sub\">Each job is grouped by the first cause other than <code>starting</code> that a sample of the Pending job pods{} found for its pod (the classifier of <code>reap explain</code>); a job whose pod no sample saw held up is <code>starting</code>. Queue time is created → started, as above: GitLab counts a job running once a runner takes it, so a pod's own Pending time is part of the job's run time, and a class shows here through the jobs that queued behind its pods.</p></section>",
        escape(&every)
    );
}

/// The image proof per image and the cache per shard, from the sampled job logs.
fn traces_section(out: &mut String, report: &Report) {
    use glrunner_gitlab_client::sample::ImageVerdict;
    let Some(t) = &report.traces else {
        return;
    };
    if !t.images.is_empty() {
        out.push_str("<section id=\"images\"><h2>Images (sampled job logs' /etc/os-release)</h2><table><thead><tr><th>image</th><th>verdict</th><th class=\"n\">jobs</th><th class=\"n\">sampled</th><th class=\"n\">matched</th><th>seen</th></tr></thead><tbody>");
        for i in &t.images {
            let verdict = match i.verdict {
                ImageVerdict::Proved => "proved",
                ImageVerdict::Failed => "failed",
                ImageVerdict::Unverified => "unverified",
                ImageVerdict::NotSampled => "not sampled",
            };
            let _ = write!(
                out,
                "<tr class=\"image\" data-verdict=\"{verdict}\"><td>{}</td><td>{verdict}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                escape(&i.image),
                i.jobs,
                i.sampled,
                i.matched,
                escape(&i.observed.join(", "))
            );
        }
        out.push_str("</tbody></table>");
        for m in &t.mismatches {
            let _ = write!(out, "<p class=\"mismatch\">{}</p>", escape(&m.to_string()));
        }
        out.push_str("</section>");
    }
    if !t.cache.is_empty() {
        let p50 = |p: &Option<glrunner_gitlab_client::Percentiles>| {
            p.map_or_else(|| "-".to_owned(), |p| human_secs(p.p50))
        };
        out.push_str("<section id=\"cache\"><h2>Cache per shard (sampled job logs)</h2><table><thead><tr><th>shard</th><th>key</th><th class=\"n\">sampled</th><th class=\"n\">hits</th><th class=\"n\">misses</th><th class=\"n\">no shared cache</th><th class=\"n\">hit p50</th><th class=\"n\">miss p50</th><th class=\"n\">uploads</th><th class=\"n\">upload p50</th></tr></thead><tbody>");
        for c in &t.cache {
            let _ = write!(
                out,
                "<tr class=\"cache\" data-shard=\"{s}\"><td>{s}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                escape(c.key.as_deref().unwrap_or("-")),
                c.sampled,
                c.hits,
                c.misses,
                c.local_only,
                p50(&c.hit_secs),
                p50(&c.miss_secs),
                c.uploads,
                p50(&c.upload_secs),
                s = escape(&c.shard),
            );
        }
        out.push_str("</tbody></table></section>");
    }
}

fn cost_section(out: &mut String, context: &RunContext) {
    let Some(cost) = &context.cost else {
        return;
    };
    let usd = |v: Option<f64>| v.map_or("-".into(), |v| format!("${v:.4}"));
    out.push_str("<section id=\"cost\"><h2>Cost</h2><table><thead><tr><th>item</th><th>how</th><th class=\"n\">projected</th><th class=\"n\">estimated</th></tr></thead><tbody>");
    for line in &cost.lines {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(&line.item),
            escape(&line.detail),
            usd(line.projected_usd),
            usd(line.estimated_usd)
        );
    }
    let _ = write!(
        out,
        "<tr><th scope=\"row\">total</th><td></td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr></tbody></table><p class=\"sub\">Prices: {}</p></section>",
        usd(cost.projected_total()),
        usd(cost.estimated_total()),
        escape(&cost.price_source)
    );
}

fn phases(out: &mut String, context: &RunContext) {
    if context.phases.is_empty() {
        return;
    }
    out.push_str("<section id=\"phases\"><h2>Phases</h2><table><thead><tr><th>phase</th><th>status</th><th class=\"n\">duration</th><th>summary</th></tr></thead><tbody>");
    for p in &context.phases {
        let _ = write!(
            out,
            "<tr class=\"phase\"><td>{}</td><td class=\"status-{s}\">{s}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            escape(&p.name),
            p.secs
                .filter(|_| p.status != "skipped")
                .map_or("-".into(), human_secs),
            escape(&p.summary),
            s = escape(&p.status),
        );
    }
    out.push_str("</tbody></table></section>");
}

fn failed_jobs(out: &mut String, report: &Report) {
    let failed: Vec<&JobTiming> = report
        .jobs
        .iter()
        .filter(|j| j.failure_reason.is_some())
        .collect();
    if failed.is_empty() {
        return;
    }
    let _ = write!(
        out,
        "<section id=\"failed-jobs\"><h2>Failed jobs ({})</h2><table><thead><tr><th>job</th><th>shard</th><th>reason</th><th class=\"n\">queued</th><th class=\"n\">ran</th></tr></thead><tbody>",
        failed.len()
    );
    for j in failed.iter().take(MAX_FAILED_ROWS) {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"status-failed\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(&j.name),
            escape(&j.shard),
            escape(j.failure_reason.as_deref().unwrap_or("unknown")),
            j.queue_secs().map_or("-".into(), human_secs),
            j.run_secs().map_or("-".into(), human_secs)
        );
    }
    out.push_str("</tbody></table>");
    if failed.len() > MAX_FAILED_ROWS {
        let _ = write!(
            out,
            "<p>… and {} more (the JUnit report lists every job).</p>",
            failed.len() - MAX_FAILED_ROWS
        );
    }
    out.push_str("</section>");
}

/// The HTML report of a load-test run.
pub fn render(report: &Report, context: &RunContext) -> String {
    let axis = TimeAxis {
        max: time_max(report),
    };
    let mut out = String::with_capacity(40_000 + report.jobs.len() * 240);
    let title = format!(
        "{} — pipeline {} {}",
        context.title, report.pipeline_id, report.pipeline_status
    );
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"generator\" content=\"glrunner {}\"><title>{}</title><style>{STYLE}</style></head><body>\
         <header><h1>{}</h1><p class=\"sub\">{} jobs on {} shard(s) · {} backend · {} clock · pipeline created {}</p></header>",
        env!("CARGO_PKG_VERSION"),
        escape(&title),
        escape(&title),
        report.total_jobs,
        report
            .jobs
            .iter()
            .map(|j| j.shard.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        escape(&context.backend),
        escape(&context.clock),
        report.created_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
    );
    summary(&mut out, report, context);
    queue_by_class(&mut out, context);
    traces_section(&mut out, report);
    cost_section(&mut out, context);
    phases(&mut out, context);

    out.push_str("<section id=\"charts\"><h2>Jobs over time</h2><figure>");
    jobs_over_time(&mut out, report, axis);
    out.push_str("<figcaption>Jobs waiting for a runner (pending, dashed), running (solid) and finished (dotted); the vertical dashed line marks the makespan (pipeline created → last job finished).</figcaption></figure>");

    out.push_str("<h2>Jobs per shard</h2><figure>");
    lanes(&mut out, report, axis);
    out.push_str("<figcaption>One lane per shard (runner tag). Each row is one job: the thin part is the time it waited for a runner, the full-height part the time it ran (Fargate pod start included). Hover a bar for the job's name.</figcaption></figure>");

    out.push_str("<h2>Queue and run times</h2><div class=\"pair\"><figure>");
    let queue: Vec<f64> = report.jobs.iter().filter_map(|j| j.queue_secs()).collect();
    let run: Vec<f64> = report.jobs.iter().filter_map(|j| j.run_secs()).collect();
    histogram(
        &mut out,
        "queue-histogram",
        "queue time",
        &queue,
        report.queue.as_ref(),
    );
    let _ = write!(
        out,
        "<figcaption>Queue time (created → started): {}</figcaption></figure><figure>",
        escape(&percentiles_text(report.queue.as_ref()))
    );
    histogram(
        &mut out,
        "run-histogram",
        "run time",
        &run,
        report.run.as_ref(),
    );
    let _ = write!(
        out,
        "<figcaption>Run time (started → finished): {}</figcaption></figure></div></section>",
        escape(&percentiles_text(report.run.as_ref()))
    );

    failed_jobs(&mut out, report);
    if !context.parameters.is_empty() {
        out.push_str("<section id=\"parameters\"><h2>Parameters</h2><table><tbody>");
        for (k, v) in &context.parameters {
            row(&mut out, k, v);
        }
        out.push_str("</tbody></table></section>");
    }
    let _ = writeln!(
        out,
        "<footer><p class=\"sub\">Durations on the {} clock. Generated by glrunner {}.</p></footer></body></html>",
        escape(&context.clock),
        env!("CARGO_PKG_VERSION")
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round() {
        assert_eq!(nice_step(112.0, 10, true), 15.0);
        assert_eq!(nice_step(1000.0, 5, false), 200.0);
        assert_eq!(nice_step(3.0, 4, false), 1.0);
        assert_eq!(nice_step(7200.0, 10, true), 900.0);
    }

    #[test]
    fn clock_labels() {
        assert_eq!(clock_label(45.0), "45s");
        assert_eq!(clock_label(120.0), "2m");
        assert_eq!(clock_label(90.0), "1m30s");
        assert_eq!(clock_label(3600.0), "1h");
    }
}
