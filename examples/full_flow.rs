//! `full_flow`: provision → GitLab project → fleet plan → runners → releases → load test →
//! reap hung pods → teardown, in one command, with a summary report.
//!
//! ```text
//! cargo run --example full_flow                              # sandbox: 400 jobs, offline, seconds of wall time
//! cargo run --example full_flow -- --jobs 1000               # the fleet plan shards automatically
//! cargo run --example full_flow -- --output json             # one JSON document on stdout
//! cargo run --example full_flow -- --inject-fault releases   # watch the cleanup after a failure
//! GITLAB_TOKEN=glpat-… cargo run --example full_flow -- --backend aws --region us-east-1 \
//!     --gitlab-url https://gitlab.com --project my-group/loadtest          # real AWS: costs money
//! ```
//!
//! Exit codes: 0 success, 1 a phase failed (after cleaning up unless --keep), 2 invalid input,
//! 130/143 stopped by SIGINT/SIGTERM (after cleaning up unless --keep, within
//! --cleanup-timeout; a second signal stops at once and prints the command that finishes).

use std::process::ExitCode;

use clap::Parser;
use glrunner::cli::{self, CliError, GlobalArgs};
use glrunner::commands::full_flow::{FlowArgs, full_flow_until};

/// The whole glrunner flow on the sandbox (default) or on AWS + GitLab (`--backend aws`).
#[derive(Debug, Parser)]
#[command(name = "full_flow", version)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,

    #[command(flatten)]
    flow: FlowArgs,
}

fn main() -> ExitCode {
    // helm's credential plugin for an EKS cluster is this binary (see `cli::exec_credential_plugin`).
    if let Some(code) = cli::exec_credential_plugin() {
        return code;
    }
    let (cli, matches) = cli::parse::<Cli>();
    cli::init_tracing(cli.global.output);
    let result = cli::start(&cli.global, &matches).and_then(|interrupt| {
        glrunner::cli::runtime(cli.global.backend)
            .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))
            .and_then(|rt| rt.block_on(full_flow_until(&cli.global, &cli.flow, &interrupt)))
    });
    cli::finish(result, cli.global.output)
}
