//! `loadtest`: generate the load-test `.gitlab-ci.yml`, run one pipeline, watch it, report.
//!
//! ```text
//! cargo run --example loadtest                                   # sandbox: 400 jobs offline, on full_flow's calibrated runner simulator
//! cargo run --example loadtest -- --jobs 1000 --shards 5 --output json
//! cargo run --example loadtest -- ci-yaml --jobs 400 --tags shard-1,shard-2
//! GITLAB_TOKEN=glpat-… cargo run --example loadtest -- --backend aws \
//!     --gitlab-url https://gitlab.com --project my-group/loadtest --create-project --jobs 400 --tags shard-1,shard-2
//! ```
//!
//! The token comes only from the environment (`GITLAB_TOKEN`), never from a flag. The URL
//! comes from `--gitlab-url`, else `GITLAB_URL`, else `CI_SERVER_URL`. Exactly the pipeline it
//! watches is created (the CI file is committed with `[skip ci]` and runs only API
//! pipelines); above `--max-jobs-per-pipeline` several, watched as one. No pipeline variable
//! is sent unless `--variable KEY=VALUE`. An early end (`--timeout`, request budget, error)
//! cancels the pipeline(s) unless `--keep-pipeline`.
//!
//! Exit codes: 0 every job passed, 1 a job failed, the run ended early or GitLab failed, 2
//! invalid input (no request was sent), 130/143 stopped by SIGINT/SIGTERM (the pipeline is
//! cancelled unless `--keep-pipeline`, and the partial report is printed).

use std::process::ExitCode;

use clap::Parser;
use glrunner::cli::runtime;
use glrunner::cli::{self, CliError, GlobalArgs};
use glrunner::commands::loadtest::{Command, RunArgs, run_until};

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

fn main() -> ExitCode {
    // helm's credential plugin for an EKS cluster is this binary (see `cli::exec_credential_plugin`).
    if let Some(code) = cli::exec_credential_plugin() {
        return code;
    }
    let (cli, matches) = cli::parse::<Cli>();
    cli::init_tracing(cli.global.output);
    // Sandbox: a paused clock, so simulated minutes pass in milliseconds of wall time.
    let result = cli::start(&cli.global, &matches).and_then(|interrupt| {
        runtime(cli.global.backend)
            .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))
            .and_then(|rt| rt.block_on(run_until(&cli.global, cli.command, &cli.run, &interrupt)))
    });
    cli::finish(result, cli.global.output)
}
