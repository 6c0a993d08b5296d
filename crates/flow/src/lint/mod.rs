//! The Fargate lint of a project's `.gitlab-ci.yml`: which jobs cannot run on this fleet, and why.
//!
//! [`lint_file`] reads a CI file and its local `include:` files (relative to the repository root,
//! the CI file's directory), resolves `default:`, hidden jobs, `extends:`, `!reference` tags and
//! YAML anchors and merge keys, and checks every job against the fleet a [`RunPlan`] installs
//! ([`LintFleet::from_plan`]): what Fargate refuses (privileged Docker-in-Docker, image builds
//! with Docker or Buildah, GPUs, pods beyond its largest size), what the fleet's runners will not
//! do (tags no shard serves, resource overwrites they ignore or refuse) and what works but hurts
//! (Docker Hub images past the pull-through cache, Kaniko, which is archived, the AWS CLI in a
//! job the fleet gives no AWS identity). Every
//! [`Finding`] names the job, the file and line, the constraint with its source and the fix.
//!
//! Other include kinds (remote, template, project, component) are not fetched: the report names
//! them in [`LintReport::unchecked_includes`], so a clean report over a file that includes
//! templates says what it did not see.
//!
//! The types are shared with other lints of this fleet (the doctor's, and later the image lint):
//! a [`Finding`] is a rule, a severity, a location and three sentences.

mod fleet;
mod load;
mod resolve;
mod rules;
#[cfg(test)]
mod tests;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use fleet::{FleetRunner, LintFleet};

use crate::RunPlan;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The job works on this fleet but costs, breaks under load or rests on unmaintained tools.
    Warning,
    /// The job cannot run on this fleet as written.
    Error,
}

impl Severity {
    /// `error` or `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// What a finding is about: one rule of the lint, with a stable kebab-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Rule {
    /// A Docker-in-Docker service (`docker:dind`, `docker:*-dind`): a privileged container.
    DockerInDocker,
    /// `DOCKER_HOST` points at a Docker daemon (tcp:// or a socket) the job expects to reach.
    DockerHost,
    /// `docker build` / `docker buildx` in a script: needs a Docker daemon.
    DockerBuild,
    /// Another `docker` command (run, push, login, compose ...): needs a Docker daemon.
    DockerDaemon,
    /// `buildah` or `podman` in a script: needs user namespaces, which Fargate disabled.
    Buildah,
    /// Kaniko's executor: runs on Fargate today but the project is archived.
    Kaniko,
    /// A GPU image, tag or tool: Fargate has no GPUs.
    Gpu,
    /// A CPU, memory or ephemeral-storage request beyond the largest Fargate pod.
    BeyondFargate,
    /// A `KUBERNETES_*` resource overwrite the runner ignores (no overwrite ceiling set).
    OverwriteIgnored,
    /// A `KUBERNETES_*` resource overwrite above the runner's ceiling: the runner fails the job.
    OverwriteTooHigh,
    /// An image from Docker Hub, pulled past the pull-through cache.
    DockerHubImage,
    /// Tags that no runner of the fleet carries: the job stays pending.
    UnservedTags,
    /// An untagged job while no runner of the fleet takes untagged jobs.
    UntaggedJob,
    /// Tags or resources written with CI variables: the lint cannot evaluate them.
    NotEvaluated,
    /// The AWS CLI while the runner gives the job pod no AWS identity (no job role).
    AwsWithoutIdentity,
}

impl Rule {
    /// The rule's kebab-case name, as in the JSON report.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::DockerInDocker => "docker-in-docker",
            Rule::DockerHost => "docker-host",
            Rule::DockerBuild => "docker-build",
            Rule::DockerDaemon => "docker-daemon",
            Rule::Buildah => "buildah",
            Rule::Kaniko => "kaniko",
            Rule::Gpu => "gpu",
            Rule::BeyondFargate => "beyond-fargate",
            Rule::OverwriteIgnored => "overwrite-ignored",
            Rule::OverwriteTooHigh => "overwrite-too-high",
            Rule::DockerHubImage => "docker-hub-image",
            Rule::UnservedTags => "unserved-tags",
            Rule::UntaggedJob => "untagged-job",
            Rule::NotEvaluated => "not-evaluated",
            Rule::AwsWithoutIdentity => "aws-without-identity",
        }
    }
}

/// One thing a job does that this fleet cannot do, or should not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The job (as GitLab names it, before `parallel` expansion).
    pub job: String,
    /// The file the offending line is in, relative to the repository root.
    pub file: PathBuf,
    /// 1-based line of the offending setting (the job's own line when it has none).
    pub line: usize,
    /// Which rule.
    pub rule: Rule,
    /// Error: the job cannot run; warning: it runs, with a cost or a risk.
    pub severity: Severity,
    /// What the job does, e.g. "service docker:dind runs the Docker daemon privileged".
    pub message: String,
    /// The constraint it hits, e.g. "Fargate does not run privileged containers".
    pub constraint: String,
    /// Where the constraint is documented: a doc page or an issue, with its address.
    pub source: String,
    /// What to do instead.
    pub fix: String,
}

/// A job the lint checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LintedJob {
    /// The job's name.
    pub name: String,
    /// The file defining it, relative to the repository root.
    pub file: PathBuf,
    /// 1-based line of its key.
    pub line: usize,
    /// The releases of the fleet whose runner would take it (by tags).
    pub runners: Vec<String>,
    /// Whether it runs on GitLab rather than a runner (`trigger:`): nothing else is checked.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub trigger: bool,
}

/// An `include:` the lint did not read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UncheckedInclude {
    /// `local`, `remote`, `template`, `project`, `component` or `unknown`.
    pub kind: String,
    /// What was included (path, URL, template name, `project:file`, component address).
    pub target: String,
    /// The file holding the `include:`, relative to the repository root.
    pub file: PathBuf,
    /// Why it was not read, e.g. "remote includes are not fetched".
    pub reason: String,
}

/// The lint's result for one CI file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LintReport {
    /// The CI file that was linted.
    pub file: PathBuf,
    /// Every job checked (hidden jobs excepted), in file order.
    pub jobs: Vec<LintedJob>,
    /// Every finding, by job in file order, errors first.
    pub findings: Vec<Finding>,
    /// The includes that were not read.
    pub unchecked_includes: Vec<UncheckedInclude>,
}

impl LintReport {
    /// Whether some job cannot run on the fleet (an error-severity finding).
    pub fn cannot_run(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    /// The jobs with an error-severity finding, in file order.
    pub fn jobs_that_cannot_run(&self) -> Vec<&str> {
        self.jobs
            .iter()
            .map(|j| j.name.as_str())
            .filter(|name| {
                self.findings
                    .iter()
                    .any(|f| f.job == *name && f.severity == Severity::Error)
            })
            .collect()
    }

    /// The findings of one job.
    pub fn findings_of<'a>(&'a self, job: &'a str) -> impl Iterator<Item = &'a Finding> + 'a {
        self.findings.iter().filter(move |f| f.job == job)
    }

    /// The report for a person: a summary line, then each job with its findings.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let failing = self.jobs_that_cannot_run();
        let warned = self
            .jobs
            .iter()
            .filter(|j| {
                !failing.contains(&j.name.as_str()) && self.findings_of(&j.name).next().is_some()
            })
            .count();
        let _ = writeln!(
            out,
            "{}: {} job(s); {} cannot run on this Fargate fleet, {} with warnings, {} clean",
            self.file.display(),
            self.jobs.len(),
            failing.len(),
            warned,
            self.jobs.len() - failing.len() - warned,
        );
        for job in &self.jobs {
            let findings: Vec<&Finding> = self.findings_of(&job.name).collect();
            let verdict = if failing.contains(&job.name.as_str()) {
                "cannot run"
            } else if !findings.is_empty() {
                "runs, with warnings"
            } else if job.trigger {
                "trigger job (runs on GitLab, not checked)"
            } else {
                "ok"
            };
            let _ = writeln!(
                out,
                "\njob {:?} ({}:{}): {verdict}",
                job.name,
                job.file.display(),
                job.line
            );
            if !job.runners.is_empty() {
                let _ = writeln!(out, "  runs on: {}", job.runners.join(", "));
            }
            for f in findings {
                let _ = writeln!(
                    out,
                    "  {:<7} {} ({}:{}): {}",
                    f.severity.as_str(),
                    f.rule.as_str(),
                    f.file.display(),
                    f.line,
                    f.message
                );
                let _ = writeln!(out, "          constraint: {}", f.constraint);
                let _ = writeln!(out, "          source: {}", f.source);
                let _ = writeln!(out, "          fix: {}", f.fix);
            }
        }
        if !self.unchecked_includes.is_empty() {
            let _ = writeln!(out, "\nnot checked (their jobs are not in this report):");
            for inc in &self.unchecked_includes {
                let _ = writeln!(
                    out,
                    "  include {} {} ({}): {}",
                    inc.kind,
                    inc.target,
                    inc.file.display(),
                    inc.reason
                );
            }
        }
        out
    }
}

/// Why a CI file could not be linted: bad input, nothing was checked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LintError {
    /// The file (or a local include) could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not YAML, or not a CI configuration (a mapping of keywords and jobs).
    #[error("{path} is not a GitLab CI configuration: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said, with its line.
        message: String,
    },
}

/// Lints the CI file at `path` (its directory is the repository root for local includes)
/// against `fleet`.
pub fn lint_file(path: &Path, fleet: &LintFleet) -> Result<LintReport, LintError> {
    let root = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map_or_else(|| path.to_owned(), PathBuf::from);
    let text = std::fs::read_to_string(path).map_err(|source| LintError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut report = lint_source(root, &name, &text, fleet)?;
    report.file = path.to_owned();
    Ok(report)
}

/// Lints `text`, the CI file `name` in the repository at `root`, against `fleet`.
pub fn lint_source(
    root: &Path,
    name: &Path,
    text: &str,
    fleet: &LintFleet,
) -> Result<LintReport, LintError> {
    let config = load::load(root, name, text)?;
    let jobs = resolve::jobs(&config);
    let mut report = LintReport {
        file: name.to_owned(),
        jobs: Vec::new(),
        findings: Vec::new(),
        unchecked_includes: config.unchecked.clone(),
    };
    for job in &jobs {
        let (linted, mut findings) = rules::check(job, &config, fleet);
        findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.line.cmp(&b.line)));
        report.jobs.push(linted);
        report.findings.extend(findings);
    }
    tracing::debug!(
        file = %name.display(),
        jobs = report.jobs.len(),
        findings = report.findings.len(),
        unchecked_includes = report.unchecked_includes.len(),
        "linted CI file"
    );
    Ok(report)
}

impl LintFleet {
    /// The fleet `plan` installs: each release's runner tags, `run_untagged`, executor sizes.
    pub fn from_plan(plan: &RunPlan) -> Self {
        fleet::from_plan(plan)
    }
}
