//! The `loadtest` example's command: generate the load-test CI file, run its pipeline(s), watch them, report.

use std::time::Duration;

use clap::{Args, Subcommand};
use glrunner_gitlab_client::ci::{self, LoadTestSpec};
use glrunner_gitlab_client::http::parse_gitlab_url;
use glrunner_gitlab_client::loadtest::{self, CancelSummary, LoadTestRun, RunningPipelines};
use glrunner_gitlab_client::watch::{WatchConfig, WatchEvent};
use glrunner_gitlab_client::{
    AuthScheme, Error, GitLabApi, GitLabApiExt, HttpGitLab, PipelineVariable, ProjectRef, Report,
    WatchOutcome,
};
use glrunner_sandbox::{SandboxConfig, SandboxWorld};

use crate::cli::signals::{CancellationToken, Interrupt, hold};
use crate::cli::{self, Backend, CliError, GlobalArgs, OutputFormat};
use glrunner_flow::artifacts::{ArtifactFiles, RunContext};

/// The `loadtest` subcommands (none: run the load test).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the generated `.gitlab-ci.yml` and exit (no GitLab access).
    CiYaml,
}

/// Flags of the load test run (global: they also apply to `ci-yaml`).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// GitLab base URL (default: $GITLAB_URL, else $CI_SERVER_URL). `--backend aws` only.
    #[arg(long, global = true)]
    pub gitlab_url: Option<String>,

    /// Allow plain http:// to a non-loopback GitLab (the token would travel unencrypted).
    #[arg(long, global = true)]
    pub allow_insecure_http: bool,

    /// How GITLAB_TOKEN is sent: auto (from its shape), private-token (access tokens),
    /// bearer (OAuth 2.0 tokens), job-token (CI_JOB_TOKEN).
    #[arg(long, global = true, default_value = "auto")]
    pub gitlab_auth: String,

    /// Project path (`group/project`) or numeric id. Required with `--backend aws`;
    /// the sandbox defaults to `sandbox/loadtest`.
    #[arg(long, global = true)]
    pub project: Option<String>,

    /// Create the project (private, with a README) if it does not exist.
    #[arg(long, global = true)]
    pub create_project: bool,

    /// Number of jobs in the pipeline.
    #[arg(long, global = true, default_value_t = 400)]
    pub jobs: u32,

    /// Refuse more jobs than this.
    #[arg(long, global = true, default_value_t = ci::DEFAULT_MAX_JOBS)]
    pub max_jobs: u32,

    /// Split the load test into pipelines of at most this many jobs, started together and
    /// reported as one (GitLab.com limits jobs per pipeline: 500 on Free, up to 2,000 on
    /// Ultimate; self-managed has no limit by default).
    #[arg(long, global = true)]
    pub max_jobs_per_pipeline: Option<u32>,

    /// A pipeline variable KEY=VALUE (repeatable). None is sent by default: GitLab.com
    /// refuses pipeline variables in new namespaces unless the project allows them.
    #[arg(long = "variable", global = true, value_name = "KEY=VALUE")]
    pub variables: Vec<String>,

    /// Leave the pipeline(s) running when the load test ends early (timeout, request
    /// budget, error, SIGINT/SIGTERM); by default they are canceled.
    #[arg(long, global = true)]
    pub keep_pipeline: bool,

    /// Number of runner shards; tags are `<stack>-shard-<i>` (default: one per 200 jobs).
    #[arg(long, global = true, conflicts_with = "tags")]
    pub shards: Option<u32>,

    /// Explicit shard tags, comma-separated (jobs are split evenly over them).
    #[arg(long, global = true, value_delimiter = ',')]
    pub tags: Vec<String>,

    /// Image of every job.
    #[arg(long, global = true, default_value = ci::DEFAULT_IMAGE)]
    pub image: String,

    /// Several images, comma-separated: CI jobs cycle through them, each job prints its
    /// `/etc/os-release`, and a sample of job logs per image proves each job ran its own image
    /// (the run fails naming a job that did not). `--images` alone: alpine, debian and ubuntu
    /// from ECR Public.
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        num_args = 0..=1,
        default_missing_value = DEFAULT_MATRIX_ARG,
        conflicts_with = "image"
    )]
    pub images: Vec<String>,

    /// Every job restores and saves a cache of this many MB (default 4), one key per shard,
    /// through `.gitlab-ci.yml` `cache:`; the report shows hits, misses and their time per shard.
    #[arg(long, global = true, value_name = "MB", num_args = 0..=1, default_missing_value = "4")]
    pub cache_workload: Option<u32>,

    /// Sandbox only: the n-th job to run runs another image than its own (tests the image proof).
    #[arg(long, global = true, value_name = "N")]
    pub sandbox_wrong_image_job: Option<u64>,

    /// Sandbox only: the fleet has no shared cache (every restore misses: "No URL provided").
    #[arg(long, global = true)]
    pub sandbox_no_shared_cache: bool,

    /// Script line of every job (repeatable; default: a hello-world echo).
    #[arg(long, global = true)]
    pub script: Vec<String>,

    /// Branch to commit the CI file to and run (default: the project's default branch, or main).
    #[arg(long = "ref", global = true)]
    pub ref_name: Option<String>,

    /// Give up watching after this long (Go-style duration, e.g. 30m, 2h, 1h30m).
    #[arg(long, global = true, default_value = "1h", value_parser = cli::duration::positive)]
    pub timeout: Duration,

    /// Ceiling on the watcher's API requests per minute (GitLab.com allows 2,000 per user in total).
    #[arg(long, global = true, default_value_t = 300)]
    pub max_requests_per_minute: u32,

    /// Sandbox only: `concurrent` of each shard's runner release (jobs it runs at once).
    #[arg(long, global = true, default_value_t = 200)]
    pub sandbox_concurrent: usize,

    /// Sandbox only: make every n-th job fail with `script_failure`.
    #[arg(long, global = true)]
    pub sandbox_fail_every: Option<u64>,

    /// Sandbox only: the simulated account's Fargate On-Demand vCPU quota (default: the
    /// runner simulator's model, fitted to the reference tutorial's makespans). The sandbox
    /// runs the same calibrated simulator as `full_flow`.
    #[arg(long, global = true, value_name = "VCPUS")]
    pub fargate_vcpu_quota: Option<u32>,

    /// `--report-html`, `--junit`, `--metrics`: files for people and for GitLab's reports.
    #[command(flatten)]
    pub artifacts: ArtifactFiles,
}

/// `--images` without a value: [`ci::DEFAULT_IMAGE_MATRIX`].
const DEFAULT_MATRIX_ARG: &str = "public.ecr.aws/docker/library/alpine:3.20,public.ecr.aws/docker/library/debian:bookworm-slim,public.ecr.aws/docker/library/ubuntu:24.04";

/// Everything checked before any request.
#[derive(Debug)]
pub struct Plan {
    /// The jobs, shards, images and scripts of the pipeline.
    pub spec: LoadTestSpec,
    /// The project to commit to and run in.
    pub project: ProjectRef,
    /// How the pipeline is watched.
    pub watch: WatchConfig,
    /// Pipeline variables from `--variable`.
    pub variables: Vec<PipelineVariable>,
}

/// Parses `--variable KEY=VALUE` values: keys of letters, digits and `_`.
fn parse_variables(raw: &[String]) -> Result<Vec<PipelineVariable>, CliError> {
    raw.iter()
        .map(|v| {
            let (key, value) = v.split_once('=').ok_or_else(|| {
                CliError::invalid(format!(
                    "--variable {v:?}: expected KEY=VALUE, e.g. --variable LOADTEST_LABEL=nightly"
                ))
            })?;
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(CliError::invalid(format!(
                    "--variable {v:?}: the key must be letters, digits and `_`"
                )));
            }
            Ok(PipelineVariable {
                key: key.to_owned(),
                value: value.to_owned(),
                variable_type: "env_var".into(),
            })
        })
        .collect()
}

/// Validates the flags into a [`Plan`]; sends nothing.
pub fn plan(global: &GlobalArgs, args: &RunArgs) -> Result<Plan, CliError> {
    if args.jobs == 0 || args.jobs > args.max_jobs {
        return Err(CliError::invalid(format!(
            "--jobs must be between 1 and --max-jobs ({}); got {}",
            args.max_jobs, args.jobs
        )));
    }
    let tags: Vec<String> = if !args.tags.is_empty() {
        args.tags.iter().map(|t| t.trim().to_owned()).collect()
    } else {
        let shards = args
            .shards
            .unwrap_or_else(|| args.jobs.div_ceil(ci::MAX_PARALLEL));
        if shards == 0 || shards > args.jobs {
            return Err(CliError::invalid(format!(
                "--shards must be between 1 and --jobs ({}); got {shards}",
                args.jobs
            )));
        }
        (1..=shards)
            .map(|i| format!("{}-shard-{i}", global.stack))
            .collect()
    };
    let mut spec = LoadTestSpec::even(args.jobs, &tags).with_max_jobs(args.max_jobs);
    if args.images.is_empty() {
        spec = spec.with_image(args.image.clone());
    } else {
        let images: Vec<String> = args.images.iter().map(|i| i.trim().to_owned()).collect();
        if images.len() < 2 {
            return Err(CliError::invalid(format!(
                "--images: {images:?} is one image; the matrix needs at least two (e.g. --images with no value for alpine, debian and ubuntu from ECR Public), or use --image"
            )));
        }
        spec = spec.with_images(images);
    }
    spec = spec.with_cache_workload(args.cache_workload);
    if global.backend == Backend::Aws
        && (args.sandbox_wrong_image_job.is_some() || args.sandbox_no_shared_cache)
    {
        return Err(CliError::invalid(
            "--sandbox-wrong-image-job/--sandbox-no-shared-cache: sandbox only",
        ));
    }
    if !args.script.is_empty() {
        spec = spec.with_script(args.script.clone());
    }
    spec.validate().map_err(|e| {
        let flag = match &e {
            Error::InvalidInput { resource, .. }
                if resource.contains("tag") || resource.contains("shards") =>
            {
                "--tags"
            }
            Error::InvalidInput { resource, .. } if resource.contains("image") => {
                if args.images.is_empty() {
                    "--image"
                } else {
                    "--images"
                }
            }
            Error::InvalidInput { resource, .. } if resource.contains("cache") => {
                "--cache-workload"
            }
            Error::InvalidInput { resource, .. } if resource.contains("script") => "--script",
            _ => "--jobs",
        };
        CliError::invalid(format!("{flag}: {e}"))
    })?;
    let project = match (&args.project, global.backend) {
        (Some(p), _) => p.as_str(),
        (None, Backend::Sandbox) => "sandbox/loadtest",
        (None, Backend::Aws) => {
            return Err(CliError::invalid(
                "--project is required with --backend aws: pass a path like my-group/loadtest (add --create-project to create it) or a numeric id",
            ));
        }
    };
    let project =
        ProjectRef::parse(project).map_err(|e| CliError::invalid(format!("--project: {e}")))?;
    if args.max_requests_per_minute == 0 {
        return Err(CliError::invalid(
            "--max-requests-per-minute must be at least 1",
        ));
    }
    if let Some(quota) = args.fargate_vcpu_quota {
        if global.backend == Backend::Aws {
            return Err(CliError::invalid(
                "--fargate-vcpu-quota: sandbox only (on AWS the account's quota applies)",
            ));
        }
        if quota == 0 {
            return Err(CliError::invalid(
                "--fargate-vcpu-quota must be at least 1 (vCPUs)",
            ));
        }
    }
    if args.max_jobs_per_pipeline == Some(0) {
        return Err(CliError::invalid(
            "--max-jobs-per-pipeline must be at least 1 (GitLab.com Free allows 500)",
        ));
    }
    AuthScheme::parse(&args.gitlab_auth)
        .map_err(|e| CliError::invalid(format!("--gitlab-auth: {e}")))?;
    let variables = parse_variables(&args.variables)?;
    args.artifacts
        .validate()
        .map_err(|e| CliError::invalid(e.to_string()))?;
    let watch = WatchConfig::default()
        .with_timeout(args.timeout)
        .with_max_requests_per_minute(args.max_requests_per_minute);
    Ok(Plan {
        spec,
        project,
        watch,
        variables,
    })
}

/// GitLab.com's jobs-per-pipeline limit on the Free tier.
const GITLAB_COM_FREE_JOBS_PER_PIPELINE: u64 = 500;

/// The warning for a load test above GitLab.com's Free limit without `--max-jobs-per-pipeline`.
pub fn jobs_limit_warning(
    url: &str,
    jobs: u64,
    max_jobs_per_pipeline: Option<u32>,
) -> Option<String> {
    let host = parse_gitlab_url(url, true)
        .ok()?
        .host_str()?
        .to_ascii_lowercase();
    (host == "gitlab.com" && jobs > GITLAB_COM_FREE_JOBS_PER_PIPELINE && max_jobs_per_pipeline.is_none()).then(|| {
        format!(
            "{jobs} jobs in one pipeline: GitLab.com limits jobs per pipeline (500 on Free, up to 2,000 on Ultimate); \
             if pipeline creation is refused, pass --max-jobs-per-pipeline 500"
        )
    })
}

/// The GitLab client for `--backend aws`, checked without sending anything
/// ([`super::gitlab::http_client`]). With `dry_run`, only the URL is checked (a dry run needs no
/// token) and `None` is returned.
pub fn http_client(args: &RunArgs, dry_run: bool) -> Result<Option<HttpGitLab>, CliError> {
    let target = super::gitlab::GitLabTarget {
        url: args.gitlab_url.as_deref(),
        allow_insecure_http: args.allow_insecure_http,
        auth: &args.gitlab_auth,
        scope: "api",
    };
    let client = super::gitlab::http_client(&target, dry_run)?;
    if client.is_some() {
        let url = super::gitlab::resolve_url(args.gitlab_url.as_deref()).unwrap_or_default();
        if let Some(warning) =
            jobs_limit_warning(&url, u64::from(args.jobs), args.max_jobs_per_pipeline)
        {
            tracing::warn!("{warning}");
        }
    }
    Ok(client)
}

/// A GitLab error as a failure (exit 1), with its whole source chain.
pub fn failure(e: Error) -> CliError {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    CliError::failure(message)
}

/// Prints watch events on stderr: one line per progress tick, or JSON lines.
pub fn progress(output: OutputFormat) -> impl FnMut(&WatchEvent) + Send {
    move |event| match output {
        OutputFormat::Json => eprintln!("{}", serde_json::to_string(event).unwrap_or_default()),
        OutputFormat::Human => match event {
            WatchEvent::Progress(p) => {
                let active: Vec<String> = p
                    .active_by_status
                    .iter()
                    .map(|(s, n)| format!("{n} {s}"))
                    .collect();
                eprintln!(
                    "[{:>7.1} s] pipeline {}: {}/{} finished{}{} · {} requests",
                    p.elapsed_secs,
                    p.pipeline_status,
                    p.finished_jobs,
                    p.total_jobs,
                    if active.is_empty() { "" } else { ", " },
                    active.join(", "),
                    p.requests
                );
            }
            WatchEvent::Throttled { retry_after_secs } => {
                eprintln!("GitLab throttled us (429); waiting {retry_after_secs:.0} s")
            }
            _ => {}
        },
    }
}

/// What a load test produced: the report, and what was canceled because it ended early.
#[derive(Debug)]
pub struct RunOutcome {
    /// The report over every pipeline.
    pub report: Report,
    /// Pipelines canceled after an early end (timeout, budget).
    pub cancel: CancelSummary,
}

/// Commits the CI file(s) with `[skip ci]`, creates exactly the pipeline(s) it watches (split
/// under `--max-jobs-per-pipeline`), watches them as one and returns the report. On an early
/// end the pipelines are canceled unless `--keep-pipeline`; `running` lets a signal handler
/// cancel them too.
pub async fn run_pipeline(
    api: &dyn GitLabApi,
    plan: &Plan,
    args: &RunArgs,
    output: OutputFormat,
    running: &RunningPipelines,
) -> Result<RunOutcome, CliError> {
    run_pipeline_until(api, plan, args, output, running, &CancellationToken::new()).await
}

/// [`run_pipeline`] that stops when `stop` fires: the pipeline(s) are canceled unless
/// `--keep-pipeline`, and the report covers the jobs so far ([`WatchOutcome::Interrupted`]).
pub async fn run_pipeline_until(
    api: &dyn GitLabApi,
    plan: &Plan,
    args: &RunArgs,
    output: OutputFormat,
    running: &RunningPipelines,
    stop: &CancellationToken,
) -> Result<RunOutcome, CliError> {
    let project = match (&plan.project, args.create_project) {
        (ProjectRef::Path(path), true) => api.get_or_create_project(path).await,
        (project, _) => api.get_project(project).await,
    }
    .map_err(|e| match e {
        Error::NotFound { .. } => {
            CliError::failure(format!("{e}; pass --create-project to create it"))
        }
        other => failure(other),
    })?;
    let run = LoadTestRun::new(plan.spec.clone())
        .with_branch(args.ref_name.clone())
        .with_variables(plan.variables.clone())
        .with_max_jobs_per_pipeline(args.max_jobs_per_pipeline)
        .with_keep_pipeline(args.keep_pipeline)
        .with_keep_on_stop(args.keep_pipeline);
    let mut print = progress(output);
    let mut held = false;
    let mut on_event = |event: &WatchEvent| {
        if !held {
            // The pipeline(s) exist from the first watch event on.
            hold("pipeline-created");
            held = true;
        }
        print(event);
    };
    let result = loadtest::run_until(
        api,
        &project,
        &run,
        &plan.watch,
        running,
        &mut on_event,
        stop.cancelled(),
    )
    .await;
    match result {
        Ok(outcome) => {
            if outcome.report.outcome == WatchOutcome::Interrupted {
                if args.keep_pipeline {
                    let ids: Vec<u64> = outcome.report.pipelines.iter().map(|p| p.id).collect();
                    eprintln!("keeping pipeline(s) {ids:?} running (--keep-pipeline)");
                } else {
                    eprintln!("{}", outcome.cancel.describe());
                }
            }
            Ok(RunOutcome {
                report: outcome.report,
                cancel: outcome.cancel,
            })
        }
        Err(f) => {
            let mut message = failure(f.error).to_string();
            if !f.pipelines.is_empty() {
                message.push_str(&format!("; {}", f.cancel.describe()));
                if args.keep_pipeline {
                    message.push_str(" (--keep-pipeline)");
                }
            }
            Err(CliError::failure(message))
        }
    }
}

/// Runs the load test on the sandbox world (its in-memory GitLab and calibrated runner simulator), on a paused clock.
pub async fn run_sandbox(
    plan: &Plan,
    args: &RunArgs,
    output: OutputFormat,
) -> Result<RunOutcome, CliError> {
    run_sandbox_until(plan, args, output, &CancellationToken::new()).await
}

/// [`run_sandbox`] that stops like [`run_pipeline_until`]: the load test runs on a
/// [`SandboxWorld`], whose calibrated runner simulator (the one `full_flow` reports) takes the
/// jobs of one runner release per shard ([`SandboxWorld::prepare_load_test`]).
pub async fn run_sandbox_until(
    plan: &Plan,
    args: &RunArgs,
    output: OutputFormat,
    stop: &CancellationToken,
) -> Result<RunOutcome, CliError> {
    let mut images = glrunner_sandbox::images::ImageModel::default();
    images.wrong_image_job = args.sandbox_wrong_image_job;
    images.shared_cache = !args.sandbox_no_shared_cache;
    let mut config = SandboxConfig::default()
        .with_hung_fraction(0.0)
        .with_script_failure_every(args.sandbox_fail_every)
        .with_images(images);
    if let Some(quota) = args.fargate_vcpu_quota {
        config = config.with_fargate_vcpu_quota(f64::from(quota));
    }
    let world = SandboxWorld::new("us-east-1", config);
    let _simulator = world.start_runners();
    // The sandbox starts empty: create the project (and its group) the run asks for.
    let path = match &plan.project {
        ProjectRef::Path(path) => path.clone(),
        ProjectRef::Id(_) => glrunner_sandbox::SANDBOX_PROJECT.to_owned(),
    };
    let concurrent = u32::try_from(args.sandbox_concurrent).unwrap_or(u32::MAX);
    let (project, _runners) = world
        .prepare_load_test(&path, &plan.spec.shards, concurrent)
        .await
        .map_err(|e| CliError::failure(e.to_string()))?;
    let plan = Plan {
        project: ProjectRef::Id(project.id),
        spec: plan.spec.clone(),
        watch: plan.watch.clone(),
        variables: plan.variables.clone(),
    };
    run_pipeline_until(
        &world.gitlab,
        &plan,
        args,
        output,
        &RunningPipelines::default(),
        stop,
    )
    .await
}

/// Prints the generated `.gitlab-ci.yml` (`ci-yaml`).
pub fn print_ci_yaml(spec: &LoadTestSpec) -> Result<(), CliError> {
    print!("{}", spec.to_yaml().map_err(failure)?);
    Ok(())
}

/// Prints what a `--dry-run` would commit and run.
pub fn print_dry_run(plan: &Plan, output: OutputFormat) -> Result<(), CliError> {
    let entries = plan.spec.plan().map_err(failure)?;
    if output == OutputFormat::Json {
        return cli::print_json(&serde_json::json!({
            "dry_run": true, "project": plan.project, "jobs": plan.spec.total_jobs(), "ci_jobs": entries,
        }));
    }
    println!(
        "(plan) would commit .gitlab-ci.yml (with [skip ci]) to {} and run {} job(s) in exactly the pipeline(s) it watches:",
        plan.project,
        plan.spec.total_jobs()
    );
    for e in &entries {
        println!(
            "  {} (tag {}, parallel {}, image {})",
            e.name, e.tag, e.parallel, e.image
        );
    }
    println!("no changes were applied; rerun without --dry-run");
    Ok(())
}

/// Prints the final report: a table, or JSON.
pub fn print_report(report: &Report, output: OutputFormat) -> Result<(), CliError> {
    match output {
        OutputFormat::Json => cli::print_json(report)?,
        OutputFormat::Human => println!("{}", report.render_table()),
    }
    Ok(())
}

/// What the artifacts show besides the report: the run's parameters.
pub fn artifact_context(global: &GlobalArgs, args: &RunArgs, plan: &Plan) -> RunContext {
    let backend = match global.backend {
        Backend::Sandbox => "sandbox",
        Backend::Aws => "aws",
    };
    let clock = match global.backend {
        Backend::Sandbox => "virtual",
        Backend::Aws => "wall",
    };
    let shards: Vec<String> = plan
        .spec
        .shards
        .iter()
        .map(|s| format!("{} ({} jobs)", s.tag, s.jobs))
        .collect();
    let mut context = RunContext::new("glrunner load test", backend, clock)
        .parameter("stack", &global.stack)
        .parameter("project", &plan.project)
        .parameter("jobs", plan.spec.total_jobs())
        .parameter("shards", shards.join(", "))
        .parameter(
            "images",
            if args.images.is_empty() {
                args.image.clone()
            } else {
                args.images.join(", ")
            },
        )
        .parameter("timeout", humantime::format_duration(args.timeout))
        .parameter("max requests per minute", args.max_requests_per_minute);
    if global.backend == Backend::Sandbox {
        context = context
            .parameter("sandbox concurrent per runner", args.sandbox_concurrent)
            .parameter(
                "sandbox fail every",
                args.sandbox_fail_every
                    .map_or("never".into(), |n| format!("{n}th job")),
            );
    }
    context
}

/// Writes the artifacts the flags ask for; says where on stderr (stdout stays the report).
pub fn write_artifacts(
    artifacts: &ArtifactFiles,
    report: &Report,
    context: &RunContext,
    output: OutputFormat,
) -> Result<(), CliError> {
    let written = artifacts
        .write(report, context)
        .map_err(|e| CliError::failure(e.to_string()))?;
    for w in &written {
        match output {
            OutputFormat::Json => eprintln!(
                "{}",
                serde_json::json!({"event": "artifact_written", "kind": w.kind, "path": w.path, "bytes": w.bytes})
            ),
            OutputFormat::Human => {
                eprintln!("wrote {} ({} bytes): {}", w.kind, w.bytes, w.path.display())
            }
        }
    }
    Ok(())
}

/// Runs the `loadtest` command: validate, then print the CI file, the dry-run plan, or run the
/// load test (GitLab on `--backend aws`, simulated runners on the sandbox) and report it.
/// Exits 1 when a job failed or the run ended early (its pipelines canceled unless
/// `--keep-pipeline`).
pub async fn run(
    global: &GlobalArgs,
    command: Option<Command>,
    args: &RunArgs,
) -> Result<(), CliError> {
    run_until(global, command, args, &Interrupt::detached()).await
}

/// [`run`] that stops cleanly on `interrupt` (SIGINT/SIGTERM): the pipeline(s) are canceled
/// unless `--keep-pipeline`, the partial report is printed, and the error exits 130/143.
pub async fn run_until(
    global: &GlobalArgs,
    command: Option<Command>,
    args: &RunArgs,
    interrupt: &Interrupt,
) -> Result<(), CliError> {
    let running = RunningPipelines::default();
    let plan = plan(global, args)?;
    if matches!(command, Some(Command::CiYaml)) {
        return print_ci_yaml(&plan.spec);
    }
    let http = match global.backend {
        Backend::Aws => http_client(args, global.dry_run)?,
        Backend::Sandbox => None,
    };
    if global.dry_run {
        return print_dry_run(&plan, global.output);
    }
    let stop = interrupt.token();
    let outcome = match http {
        Some(http) => {
            run_pipeline_until(&http, &plan, args, global.output, &running, &stop).await?
        }
        None => run_sandbox_until(&plan, args, global.output, &stop).await?,
    };
    let report = &outcome.report;
    // Written before the exit code is decided: a failed run is when the files matter most.
    write_artifacts(
        &args.artifacts,
        report,
        &artifact_context(global, args, &plan),
        global.output,
    )?;
    print_report(report, global.output)?;
    if report.outcome == WatchOutcome::Interrupted
        && let Some(err) = interrupt.error(format!(
            "pipeline(s) {:?} {} with {} of {} job(s) succeeded",
            report.pipelines.iter().map(|p| p.id).collect::<Vec<_>>(),
            if args.keep_pipeline {
                "kept running (--keep-pipeline)".to_owned()
            } else {
                outcome.cancel.describe()
            },
            report.by_status.get("success").copied().unwrap_or(0),
            report.total_jobs
        ))
    {
        return Err(err);
    }
    let pipelines = report
        .pipelines
        .iter()
        .map(|p| p.id.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if report.outcome != WatchOutcome::Finished {
        let what = if args.keep_pipeline {
            "left running (--keep-pipeline)".to_owned()
        } else {
            outcome.cancel.describe()
        };
        return Err(CliError::failure(format!(
            "pipeline(s) {pipelines} did not finish ({:?}); {what}",
            report.outcome
        )));
    }
    if !report.image_mismatches().is_empty() {
        return Err(CliError::failure(format!(
            "pipeline(s) {pipelines}: {}",
            report
                .traces
                .as_ref()
                .map(|t| t.describe_mismatches())
                .unwrap_or_default()
        )));
    }
    if report.has_failures() {
        let failed: usize = report.failures_by_reason.values().sum();
        return Err(CliError::failure(format!(
            "pipeline(s) {pipelines} ended {} with {failed} failed job(s)",
            report.pipeline_status
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(flatten)]
        run: RunArgs,
    }

    fn plan_of(args: &[&str]) -> Result<Plan, CliError> {
        let cli = Cli::try_parse_from(std::iter::once("loadtest").chain(args.iter().copied()))
            .expect("clap accepts the flags");
        plan(&cli.global, &cli.run)
    }

    fn invalid(args: &[&str], needle: &str) {
        let err = plan_of(args).expect_err("invalid input");
        let text = format!("{err:?}");
        assert!(text.contains(needle), "{args:?}: {text}");
    }

    #[test]
    fn no_pipeline_variable_unless_asked() {
        assert!(plan_of(&["--jobs", "10"]).unwrap().variables.is_empty());
        let plan = plan_of(&[
            "--jobs",
            "10",
            "--variable",
            "LABEL=a=b",
            "--variable",
            "X=",
        ])
        .unwrap();
        let pairs: Vec<(&str, &str)> = plan
            .variables
            .iter()
            .map(|v| (v.key.as_str(), v.value.as_str()))
            .collect();
        assert_eq!(pairs, vec![("LABEL", "a=b"), ("X", "")]);
    }

    #[test]
    fn bad_flags_name_the_flag() {
        invalid(&["--variable", "LABEL"], "--variable");
        invalid(&["--variable", "BAD-KEY=1"], "--variable");
        invalid(&["--max-jobs-per-pipeline", "0"], "--max-jobs-per-pipeline");
        invalid(&["--gitlab-auth", "basic"], "--gitlab-auth");
    }

    #[test]
    fn warns_above_gitlab_com_free_limit_without_the_flag() {
        assert!(jobs_limit_warning("https://gitlab.com", 501, None).is_some());
        assert!(jobs_limit_warning("https://gitlab.com", 500, None).is_none());
        assert!(jobs_limit_warning("https://gitlab.com", 1200, Some(500)).is_none());
        assert!(jobs_limit_warning("https://gitlab.example.com", 5000, None).is_none());
    }
}
