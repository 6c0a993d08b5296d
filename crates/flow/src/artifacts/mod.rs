//! Load-test artifacts for people and for GitLab: a self-contained HTML report with SVG charts, JUnit XML, GitLab metrics.
//!
//! Every artifact is rendered from the load-test [`Report`] (its per-job timeline in
//! [`Report::jobs`]) plus a [`RunContext`]: the run's parameters and, for the full flow, its
//! phases, the reaped pods and an optional cost section. Rendering is pure (the same inputs give
//! the same bytes: no wall clock, no randomness), so the sandbox's virtual-clock runs give
//! reproducible files.
//!
//! The charts are SVG written by [`html`] itself rather than by a plotting crate: the three
//! charts are a few hundred lines, the report needs exact control over what a browser and a
//! test can read in them (one `<g class="lane">` per shard, one `<g class="job">` per job, text
//! labels beside every series) and over the file size of a 1000-job run, and the root package
//! gains no dependency (plotters' SVG backend would add plotters, plotters-backend,
//! plotters-svg and num-traits for drawing that stays simpler by hand).

pub mod html;
pub mod junit;
pub mod metrics;

use std::path::{Path, PathBuf};

use glrunner_gitlab_client::Report;
use serde::Serialize;

/// One phase of a full flow, as the artifacts show it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PhaseRow {
    /// Phase name (`provision`, `load-test`, …).
    pub name: String,
    /// `done`, `skipped` or `failed`.
    pub status: String,
    /// How long it took, seconds (`None` when skipped).
    pub secs: Option<f64>,
    /// One-line summary or the error.
    pub summary: String,
}

/// One line of the cost section: a projection made before the run and, when known, the
/// estimate from measured durations.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CostLine {
    /// What costs money (`EKS control plane`, `NAT gateway`, `job pods`…).
    pub item: String,
    /// How it was computed (`0.10 USD/h × 0.4 h`).
    pub detail: String,
    /// Projected before the run, USD.
    pub projected_usd: Option<f64>,
    /// Estimated from measured durations, USD.
    pub estimated_usd: Option<f64>,
}

/// The optional cost section (filled in when a cost projection exists).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CostSection {
    /// Where the prices came from (`AWS Price List API`, `built-in table of <date>`).
    pub price_source: String,
    /// The lines.
    pub lines: Vec<CostLine>,
}

impl CostSection {
    /// Sum of the projected lines (`None` when no line has a projection).
    pub fn projected_total(&self) -> Option<f64> {
        sum(self.lines.iter().map(|l| l.projected_usd))
    }

    /// Sum of the estimated lines (`None` when no line has an estimate).
    pub fn estimated_total(&self) -> Option<f64> {
        sum(self.lines.iter().map(|l| l.estimated_usd))
    }
}

fn sum(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    values.fold(None, |acc, v| match (acc, v) {
        (None, v) => v,
        (Some(a), Some(v)) => Some(a + v),
        (a, None) => a,
    })
}

/// What the artifacts show besides the load-test report.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RunContext {
    /// Heading, e.g. `glrunner load test`.
    pub title: String,
    /// `sandbox` or `aws`.
    pub backend: String,
    /// `virtual` (sandbox) or `wall`: the clock of every duration.
    pub clock: String,
    /// The run's parameters, in display order.
    pub parameters: Vec<(String, String)>,
    /// The flow's phases (empty for a plain load test).
    pub phases: Vec<PhaseRow>,
    /// Pods the janitor reaped, when it ran.
    pub reaped_pods: Option<usize>,
    /// Cost lines, when a projection exists.
    pub cost: Option<CostSection>,
    /// The load test's jobs by the class their pod spent Pending under (the flow's "queue time
    /// by Pending class"; empty for a plain load test, which samples no pods).
    pub queue_by_class: Vec<crate::pending::ClassQueue>,
    /// Seconds between the Pending samples the table comes from.
    pub pending_sample_interval_secs: Option<f64>,
}

impl RunContext {
    /// A context with a title, backend and clock and nothing else.
    pub fn new(
        title: impl Into<String>,
        backend: impl Into<String>,
        clock: impl Into<String>,
    ) -> Self {
        Self {
            title: title.into(),
            backend: backend.into(),
            clock: clock.into(),
            ..Self::default()
        }
    }

    /// Adds a parameter row.
    #[must_use]
    pub fn parameter(mut self, name: impl Into<String>, value: impl ToString) -> Self {
        self.parameters.push((name.into(), value.to_string()));
        self
    }
}

/// Why an artifact could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArtifactError {
    /// A flag names a path that cannot be written (checked before the run).
    #[error("{flag} {path}: {reason}")]
    InvalidPath {
        /// The flag.
        flag: &'static str,
        /// The path given.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// Writing failed after the run.
    #[error("cannot write the {what} to {path}: {source}")]
    Write {
        /// Which artifact.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The artifact files a run writes (the `--report-html`, `--junit` and `--metrics` flags of
/// `loadtest` and `full_flow`, with the `clap` feature).
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct ArtifactFiles {
    /// Write a self-contained HTML report (SVG charts of jobs over time, one lane per shard,
    /// queue/run-time distributions, summary and parameters; no scripts, no network) to FILE.
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath))]
    pub report_html: Option<PathBuf>,

    /// Write JUnit XML to FILE: one test case per load-test job, one test suite per shard
    /// (for GitLab's `artifacts:reports:junit`).
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath))]
    pub junit: Option<PathBuf>,

    /// Write GitLab's metrics report to FILE (`name value` lines in OpenMetrics text: makespan,
    /// queue p50/p95, jobs per minute, failures, requests; reaped pods and cost when known),
    /// for `artifacts:reports:metrics`.
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath))]
    pub metrics: Option<PathBuf>,
}

/// An artifact that was written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WrittenArtifact {
    /// `html`, `junit` or `metrics`.
    pub kind: &'static str,
    /// Where.
    pub path: PathBuf,
    /// Size in bytes.
    pub bytes: usize,
}

/// The artifact files at their old name.
#[deprecated(note = "renamed to `ArtifactFiles`")]
pub type ArtifactArgs = ArtifactFiles;

impl ArtifactFiles {
    /// Whether any artifact was asked for.
    pub fn any(&self) -> bool {
        self.report_html.is_some() || self.junit.is_some() || self.metrics.is_some()
    }

    fn requested(&self) -> impl Iterator<Item = (&'static str, &'static str, &Path)> {
        [
            ("--report-html", "html", self.report_html.as_deref()),
            ("--junit", "junit", self.junit.as_deref()),
            ("--metrics", "metrics", self.metrics.as_deref()),
        ]
        .into_iter()
        .filter_map(|(flag, kind, path)| path.map(|p| (flag, kind, p)))
    }

    /// Checks, before anything runs, that every requested file can be created: its directory
    /// exists, it is not a directory, and no two flags name the same file.
    pub fn validate(&self) -> Result<(), ArtifactError> {
        let mut seen: Vec<(&'static str, &Path)> = Vec::new();
        for (flag, _, path) in self.requested() {
            let invalid = |reason: String| ArtifactError::InvalidPath {
                flag,
                path: path.to_owned(),
                reason,
            };
            if path.as_os_str().is_empty() || path.file_name().is_none() {
                return Err(invalid("give a file name, e.g. report.html".into()));
            }
            if path.is_dir() {
                return Err(invalid("is a directory; give a file name inside it".into()));
            }
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            if !dir.is_dir() {
                return Err(invalid(format!(
                    "directory {} does not exist; create it first or choose another path",
                    dir.display()
                )));
            }
            if let Some((other, _)) = seen.iter().find(|(_, p)| *p == path) {
                return Err(invalid(format!(
                    "is also given to {other}; give each artifact its own file"
                )));
            }
            seen.push((flag, path));
        }
        Ok(())
    }

    /// Renders and writes every requested artifact (each atomically: a temporary file in the
    /// same directory, then a rename).
    pub fn write(
        &self,
        report: &Report,
        context: &RunContext,
    ) -> Result<Vec<WrittenArtifact>, ArtifactError> {
        let mut written = Vec::new();
        for (_, kind, path) in self.requested() {
            let (what, body) = match kind {
                "html" => ("HTML report", html::render(report, context)),
                "junit" => ("JUnit report", junit::render(report, context)),
                _ => ("metrics report", metrics::render(report, context)),
            };
            write_atomically(path, body.as_bytes()).map_err(|source| ArtifactError::Write {
                what,
                path: path.to_owned(),
                source,
            })?;
            tracing::info!(kind, path = %path.display(), bytes = body.len(), "artifact written");
            written.push(WrittenArtifact {
                kind,
                path: path.to_owned(),
                bytes: body.len(),
            });
        }
        Ok(written)
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Seconds for people: `42.3 s`, `1m 52s`, `1h 02m`.
pub(crate) fn human_secs(secs: f64) -> String {
    if !secs.is_finite() {
        return "-".into();
    }
    let sign = if secs < 0.0 { "-" } else { "" };
    let s = secs.abs();
    if s < 60.0 {
        format!("{sign}{s:.1} s")
    } else if s < 3600.0 {
        let whole = s.round() as u64;
        format!("{sign}{}m {:02}s", whole / 60, whole % 60)
    } else {
        let minutes = (s / 60.0).round() as u64;
        format!("{sign}{}h {:02}m", minutes / 60, minutes % 60)
    }
}

/// Escapes text for HTML and XML content and attribute values, dropping the control characters
/// XML 1.0 forbids.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        assert_eq!(human_secs(4.25), "4.2 s");
        assert_eq!(human_secs(112.4), "1m 52s");
        assert_eq!(human_secs(3725.0), "1h 02m");
        assert_eq!(human_secs(f64::NAN), "-");
    }

    #[test]
    fn escaping_covers_markup_quotes_and_control_characters() {
        assert_eq!(
            escape("<a href=\"x\">Tom's & \u{1}</a>"),
            "&lt;a href=&quot;x&quot;&gt;Tom&#39;s &amp; &lt;/a&gt;"
        );
    }

    #[test]
    fn cost_totals_skip_missing_values() {
        let line = |p, e| CostLine {
            item: "x".into(),
            detail: String::new(),
            projected_usd: p,
            estimated_usd: e,
        };
        let c = CostSection {
            price_source: "table".into(),
            lines: vec![line(Some(1.5), None), line(Some(0.5), None)],
        };
        assert_eq!(c.projected_total(), Some(2.0));
        assert_eq!(c.estimated_total(), None);
    }

    #[test]
    fn validation_names_the_flag_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let ok = ArtifactFiles {
            report_html: Some(dir.path().join("r.html")),
            junit: Some(dir.path().join("j.xml")),
            metrics: None,
        };
        ok.validate().unwrap();
        let missing = ArtifactFiles {
            junit: Some(dir.path().join("nope/j.xml")),
            ..ArtifactFiles::default()
        };
        let e = missing.validate().unwrap_err().to_string();
        assert!(
            e.starts_with("--junit ") && e.contains("does not exist"),
            "{e}"
        );
        let is_dir = ArtifactFiles {
            metrics: Some(dir.path().to_owned()),
            ..ArtifactFiles::default()
        };
        assert!(
            is_dir
                .validate()
                .unwrap_err()
                .to_string()
                .contains("--metrics")
        );
        let twice = ArtifactFiles {
            report_html: Some(dir.path().join("same")),
            metrics: Some(dir.path().join("same")),
            junit: None,
        };
        let e = twice.validate().unwrap_err().to_string();
        assert!(
            e.contains("--metrics") && e.contains("--report-html"),
            "{e}"
        );
        assert!(
            std::fs::read_dir(dir.path()).unwrap().next().is_none(),
            "nothing created"
        );
    }
}
