//! The `loadtest` example's command: generate the load-test CI file, run one pipeline, watch it, report.

use std::time::Duration;

use clap::{Args, Subcommand};
use glrunner_gitlab_client::ci::{self, LoadTestSpec, ShardTarget};
use glrunner_gitlab_client::http::parse_gitlab_url;
use glrunner_gitlab_client::memory::{
    InMemoryGitLab, SimulatedRunner, SimulationConfig, simulate_runners,
};
use glrunner_gitlab_client::watch::{WatchConfig, WatchEvent, watch_pipeline};
use glrunner_gitlab_client::{
    Error, GitLabApi, GitLabApiExt, HttpGitLab, NewPipeline, NewRunner, ProjectRef, Report,
    SecretToken,
};

use crate::cli::signals::{CancellationToken, Interrupt, hold};
use crate::cli::{self, Backend, CliError, GlobalArgs, OutputFormat};

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

    /// Number of runner shards; tags are `<stack>-shard-<i>` (default: one per 200 jobs).
    #[arg(long, global = true, conflicts_with = "tags")]
    pub shards: Option<u32>,

    /// Explicit shard tags, comma-separated (jobs are split evenly over them).
    #[arg(long, global = true, value_delimiter = ',')]
    pub tags: Vec<String>,

    /// Image of every job.
    #[arg(long, global = true, default_value = ci::DEFAULT_IMAGE)]
    pub image: String,

    /// Several images, comma-separated: CI jobs cycle through them (shows `image:` is honoured).
    #[arg(long, global = true, value_delimiter = ',', conflicts_with = "image")]
    pub images: Vec<String>,

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

    /// On SIGINT/SIGTERM, leave the pipeline running instead of cancelling it.
    #[arg(long, global = true)]
    pub keep_pipeline: bool,

    /// Sandbox only: jobs each simulated runner runs at once.
    #[arg(long, global = true, default_value_t = 200)]
    pub sandbox_concurrent: usize,

    /// Sandbox only: make every n-th job fail with `script_failure`.
    #[arg(long, global = true)]
    pub sandbox_fail_every: Option<u64>,
}

/// Everything checked before any request.
#[derive(Debug)]
pub struct Plan {
    /// The jobs, shards, images and scripts of the pipeline.
    pub spec: LoadTestSpec,
    /// The project to commit to and run in.
    pub project: ProjectRef,
    /// How the pipeline is watched.
    pub watch: WatchConfig,
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
        spec = spec.with_images(args.images.clone());
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
                "--image/--images"
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
    let watch = WatchConfig::default()
        .with_timeout(args.timeout)
        .with_max_requests_per_minute(args.max_requests_per_minute);
    Ok(Plan {
        spec,
        project,
        watch,
    })
}

/// The GitLab client for `--backend aws`, checked without sending anything.
/// With `dry_run`, only the URL is checked (a dry run needs no token) and `None` is returned.
pub fn http_client(args: &RunArgs, dry_run: bool) -> Result<Option<HttpGitLab>, CliError> {
    let url = args
        .gitlab_url
        .clone()
        .or_else(|| std::env::var("GITLAB_URL").ok())
        .or_else(|| std::env::var("CI_SERVER_URL").ok())
        .ok_or_else(|| {
            CliError::invalid(
                "no GitLab URL: pass --gitlab-url https://gitlab.example.com or set GITLAB_URL",
            )
        })?;
    parse_gitlab_url(&url, args.allow_insecure_http).map_err(|e| {
        let hint = if url.starts_with("http://") {
            " (or pass --allow-insecure-http)"
        } else {
            ""
        };
        CliError::invalid(format!("--gitlab-url: {e}{hint}"))
    })?;
    if dry_run {
        return Ok(None);
    }
    let token = std::env::var("GITLAB_TOKEN").ok().filter(|t| !t.trim().is_empty()).ok_or_else(|| {
        CliError::invalid("GITLAB_TOKEN is not set: export a personal access token with the `api` scope (never pass it as a flag)")
    })?;
    HttpGitLab::builder()
        .with_url(url)
        .with_token(SecretToken::new(token))
        .allow_insecure_http(args.allow_insecure_http)
        .build()
        .map(Some)
        .map_err(|e| CliError::invalid(e.to_string()))
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

/// Commit the CI file, trigger one pipeline, watch it, return the report.
pub async fn run_pipeline(
    api: &dyn GitLabApi,
    plan: &Plan,
    args: &RunArgs,
    output: OutputFormat,
) -> Result<Report, CliError> {
    run_pipeline_until(api, plan, args, output, &CancellationToken::new()).await
}

/// [`run_pipeline`] that stops watching when `stop` fires: the pipeline is cancelled unless
/// `--keep-pipeline`, and the report covers the jobs so far ([`WatchOutcome::Interrupted`]).
///
/// [`WatchOutcome::Interrupted`]: glrunner_gitlab_client::WatchOutcome::Interrupted
pub async fn run_pipeline_until(
    api: &dyn GitLabApi,
    plan: &Plan,
    args: &RunArgs,
    output: OutputFormat,
    stop: &CancellationToken,
) -> Result<Report, CliError> {
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
    let project_ref = ProjectRef::Id(project.id);
    let branch = args
        .ref_name
        .clone()
        .or(project.default_branch.clone())
        .unwrap_or_else(|| "main".into());
    let yaml = plan.spec.to_yaml().map_err(failure)?;
    let message = format!("glrunner load test: {} jobs", plan.spec.total_jobs());
    api.put_file(&project_ref, &branch, ".gitlab-ci.yml", &yaml, &message)
        .await
        .map_err(failure)?;
    let pipeline = api
        .create_pipeline(
            &project_ref,
            &NewPipeline::new(&branch).variable("GLRUNNER_LOADTEST", "1"),
        )
        .await
        .map_err(failure)?;
    tracing::info!(pipeline = pipeline.id, url = %pipeline.web_url, "pipeline created");
    hold("pipeline-created");
    let mut on_event = progress(output);
    let started = tokio::time::Instant::now();
    tokio::select! {
        biased;
        () = stop.cancelled() => {}
        report = watch_pipeline(api, &project_ref, pipeline.id, &plan.watch, &mut on_event) => {
            return report.map_err(failure);
        }
    }
    // Stopped: cancel the pipeline (unless kept), then report what ran so far.
    let pipeline = if args.keep_pipeline {
        eprintln!(
            "keeping pipeline {} running (--keep-pipeline): {}",
            pipeline.id, pipeline.web_url
        );
        api.get_pipeline(&project_ref, pipeline.id)
            .await
            .map_err(failure)?
    } else {
        let canceled = api
            .cancel_pipeline(&project_ref, pipeline.id)
            .await
            .map_err(failure)?;
        eprintln!("canceled pipeline {} ({})", canceled.id, canceled.status);
        canceled
    };
    let jobs = api
        .all_pipeline_jobs(&project_ref, pipeline.id)
        .await
        .map_err(failure)?;
    Ok(Report::compute(
        &pipeline,
        &jobs,
        glrunner_gitlab_client::WatchOutcome::Interrupted,
        0,
        started.elapsed().as_secs_f64(),
    ))
}

/// Runs the load test on the sandbox: an in-memory GitLab, one simulated runner per shard tag, on a paused clock.
pub async fn run_sandbox(
    plan: &Plan,
    args: &RunArgs,
    output: OutputFormat,
) -> Result<Report, CliError> {
    run_sandbox_until(plan, args, output, &CancellationToken::new()).await
}

/// [`run_sandbox`] that stops like [`run_pipeline_until`].
pub async fn run_sandbox_until(
    plan: &Plan,
    args: &RunArgs,
    output: OutputFormat,
    stop: &CancellationToken,
) -> Result<Report, CliError> {
    let gitlab = InMemoryGitLab::default();
    // The sandbox starts empty: create the project (and its group) the run asks for.
    let path = match &plan.project {
        ProjectRef::Path(path) => path.clone(),
        ProjectRef::Id(_) => "sandbox/loadtest".to_owned(),
    };
    if let Some((group, _)) = path.rsplit_once('/') {
        gitlab.add_group(group);
    }
    let project = gitlab.get_or_create_project(&path).await.map_err(failure)?;
    let mut runners = Vec::new();
    for shard in plan.spec.shards.iter().filter(|s| s.jobs > 0) {
        let ShardTarget { tag, .. } = shard;
        let new = NewRunner::project(project.id, format!("sandbox-{tag}"), vec![tag.clone()]);
        let created = gitlab.create_runner(&new).await.map_err(failure)?;
        runners.push(SimulatedRunner {
            runner_id: created.id,
            concurrent: args.sandbox_concurrent.max(1),
        });
    }
    let _simulator = simulate_runners(
        gitlab.clone(),
        SimulationConfig::new(runners).with_fail_every(args.sandbox_fail_every),
    );
    let plan = Plan {
        project: ProjectRef::Id(project.id),
        spec: plan.spec.clone(),
        watch: plan.watch.clone(),
    };
    run_pipeline_until(&gitlab, &plan, args, output, stop).await
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
        "(plan) would commit .gitlab-ci.yml to {} and run one pipeline of {} jobs:",
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

/// Runs the `loadtest` command: validate, then print the CI file, the dry-run plan, or run one
/// pipeline (GitLab on `--backend aws`, simulated runners on the sandbox) and report it.
/// Exits 1 when a job failed.
pub async fn run(
    global: &GlobalArgs,
    command: Option<Command>,
    args: &RunArgs,
) -> Result<(), CliError> {
    run_until(global, command, args, &Interrupt::detached()).await
}

/// [`run`] that stops cleanly on `interrupt` (SIGINT/SIGTERM): the pipeline is cancelled unless
/// `--keep-pipeline`, the partial report is printed, and the error exits 130/143.
pub async fn run_until(
    global: &GlobalArgs,
    command: Option<Command>,
    args: &RunArgs,
    interrupt: &Interrupt,
) -> Result<(), CliError> {
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
    let report = match http {
        Some(http) => run_pipeline_until(&http, &plan, args, global.output, &stop).await?,
        None => run_sandbox_until(&plan, args, global.output, &stop).await?,
    };
    print_report(&report, global.output)?;
    if report.outcome == glrunner_gitlab_client::WatchOutcome::Interrupted
        && let Some(err) = interrupt.error(format!(
            "pipeline {} {} with {} of {} job(s) succeeded",
            report.pipeline_id,
            if args.keep_pipeline {
                "kept running (--keep-pipeline)"
            } else {
                "canceled"
            },
            report.by_status.get("success").copied().unwrap_or(0),
            report.total_jobs
        ))
    {
        return Err(err);
    }
    if report.has_failures() {
        let failed: usize = report.failures_by_reason.values().sum();
        return Err(CliError::failure(format!(
            "pipeline {} ended {} ({:?}) with {failed} failed job(s)",
            report.pipeline_id, report.pipeline_status, report.outcome
        )));
    }
    Ok(())
}
