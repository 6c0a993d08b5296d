//! `loadtest`: generate the load-test `.gitlab-ci.yml`, run one pipeline, watch it, report.
//!
//! ```text
//! cargo run --example loadtest                                   # sandbox: 400 jobs offline, simulated runners
//! cargo run --example loadtest -- --jobs 1000 --shards 5 --output json
//! cargo run --example loadtest -- ci-yaml --jobs 400 --tags shard-1,shard-2
//! GITLAB_TOKEN=glpat-… cargo run --example loadtest -- --backend aws \
//!     --gitlab-url https://gitlab.com --project my-group/loadtest --create-project --jobs 400 --tags shard-1,shard-2
//! ```
//!
//! The token comes only from the environment (`GITLAB_TOKEN`), never from a flag. The URL
//! comes from `--gitlab-url`, else `GITLAB_URL`, else `CI_SERVER_URL`. One pipeline per run
//! (GitLab.com allows 25 pipeline creations per minute).
//!
//! Exit codes: 0 every job passed, 1 a job failed or GitLab failed, 2 invalid input (no
//! request was sent).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use glrunner::cli::{self, Backend, CliError, GlobalArgs, OutputFormat};
use glrunner::gitlab::ci::{self, LoadTestSpec, ShardTarget};
use glrunner::gitlab::http::parse_gitlab_url;
use glrunner::gitlab::memory::{
    InMemoryGitLab, SimulatedRunner, SimulationConfig, simulate_runners,
};
use glrunner::gitlab::watch::{WatchConfig, WatchEvent, watch_pipeline};
use glrunner::gitlab::{
    Error, GitLabApi, GitLabApiExt, HttpGitLab, NewPipeline, NewRunner, ProjectRef, Report,
    SecretToken,
};

/// Run a GitLab CI load test: N hello-world jobs spread over runner shard tags in one pipeline,
/// watched to the end with a bounded request rate, reported as makespan, queue and run times.
#[derive(Debug, Parser)]
#[command(name = "loadtest", version)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,

    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the generated `.gitlab-ci.yml` and exit (no GitLab access).
    CiYaml,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// GitLab base URL (default: $GITLAB_URL, else $CI_SERVER_URL). `--backend aws` only.
    #[arg(long, global = true)]
    gitlab_url: Option<String>,

    /// Allow plain http:// to a non-loopback GitLab (the token would travel unencrypted).
    #[arg(long, global = true)]
    allow_insecure_http: bool,

    /// Project path (`group/project`) or numeric id. Required with `--backend aws`;
    /// the sandbox defaults to `sandbox/loadtest`.
    #[arg(long, global = true)]
    project: Option<String>,

    /// Create the project (private, with a README) if it does not exist.
    #[arg(long, global = true)]
    create_project: bool,

    /// Number of jobs in the pipeline.
    #[arg(long, global = true, default_value_t = 400)]
    jobs: u32,

    /// Refuse more jobs than this.
    #[arg(long, global = true, default_value_t = ci::DEFAULT_MAX_JOBS)]
    max_jobs: u32,

    /// Number of runner shards; tags are `<stack>-shard-<i>` (default: one per 200 jobs).
    #[arg(long, global = true, conflicts_with = "tags")]
    shards: Option<u32>,

    /// Explicit shard tags, comma-separated (jobs are split evenly over them).
    #[arg(long, global = true, value_delimiter = ',')]
    tags: Vec<String>,

    /// Image of every job.
    #[arg(long, global = true, default_value = ci::DEFAULT_IMAGE)]
    image: String,

    /// Several images, comma-separated: CI jobs cycle through them (shows `image:` is honoured).
    #[arg(long, global = true, value_delimiter = ',', conflicts_with = "image")]
    images: Vec<String>,

    /// Script line of every job (repeatable; default: a hello-world echo).
    #[arg(long, global = true)]
    script: Vec<String>,

    /// Branch to commit the CI file to and run (default: the project's default branch, or main).
    #[arg(long = "ref", global = true)]
    ref_name: Option<String>,

    /// Give up watching after this long (e.g. 30m, 2h).
    #[arg(long, global = true, default_value = "1h", value_parser = humantime::parse_duration)]
    timeout: Duration,

    /// Ceiling on the watcher's API requests per minute (GitLab.com allows 2,000 per user in total).
    #[arg(long, global = true, default_value_t = 300)]
    max_requests_per_minute: u32,

    /// Sandbox only: jobs each simulated runner runs at once.
    #[arg(long, global = true, default_value_t = 200)]
    sandbox_concurrent: usize,

    /// Sandbox only: make every n-th job fail with `script_failure`.
    #[arg(long, global = true)]
    sandbox_fail_every: Option<u64>,
}

/// Everything checked before any request.
struct Plan {
    spec: LoadTestSpec,
    project: ProjectRef,
    watch: WatchConfig,
}

fn plan(global: &GlobalArgs, args: &RunArgs) -> Result<Plan, CliError> {
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
fn http_client(args: &RunArgs, dry_run: bool) -> Result<Option<HttpGitLab>, CliError> {
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

fn failure(e: Error) -> CliError {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    CliError::failure(message)
}

fn progress(output: OutputFormat) -> impl FnMut(&WatchEvent) + Send {
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
async fn run(
    api: &dyn GitLabApi,
    plan: &Plan,
    args: &RunArgs,
    output: OutputFormat,
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
    let mut on_event = progress(output);
    watch_pipeline(api, &project_ref, pipeline.id, &plan.watch, &mut on_event)
        .await
        .map_err(failure)
}

/// The sandbox: an in-memory GitLab, one simulated runner per shard tag, on a paused clock.
async fn run_sandbox(
    plan: &Plan,
    args: &RunArgs,
    output: OutputFormat,
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
    run(&gitlab, &plan, args, output).await
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_tracing(cli.global.output);
    let output = cli.global.output;
    cli::finish(real_main(cli), output)
}

fn real_main(cli: Cli) -> Result<(), CliError> {
    let plan = plan(&cli.global, &cli.run)?;
    if matches!(cli.command, Some(Command::CiYaml)) {
        print!("{}", plan.spec.to_yaml().map_err(failure)?);
        return Ok(());
    }
    let http = match cli.global.backend {
        Backend::Aws => http_client(&cli.run, cli.global.dry_run)?,
        Backend::Sandbox => None,
    };
    if cli.global.dry_run {
        let entries = plan.spec.plan().map_err(failure)?;
        if cli.global.output == OutputFormat::Json {
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
        return Ok(());
    }
    let report = match http {
        Some(http) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))?;
            rt.block_on(run(&http, &plan, &cli.run, cli.global.output))?
        }
        None => {
            // Paused clock: simulated minutes pass in milliseconds of wall time.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))?;
            rt.block_on(run_sandbox(&plan, &cli.run, cli.global.output))?
        }
    };
    match cli.global.output {
        OutputFormat::Json => cli::print_json(&report)?,
        OutputFormat::Human => println!("{}", report.render_table()),
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
