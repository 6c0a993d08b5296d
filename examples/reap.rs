//! `reap`: delete hung GitLab Runner job pods — and nothing else.
//!
//! ```text
//! cargo run --example reap                                  # sandbox: a demo fleet, reaped offline
//! cargo run --example reap -- --dry-run --output json
//! cargo run --example reap -- --backend aws --context my-eks --namespace gitlab-runner --once
//! cargo run --example reap -- --backend aws --watch --interval 5m --grace 10m
//! cargo run --example reap -- rbac --namespace gitlab-runner | kubectl apply -f -
//! ```
//!
//! Exit codes: 0 done (also `--watch` stopped by SIGINT/SIGTERM: the round in flight finishes and
//! is reported), 1 failure (API server unreachable, deletes failed), 2 invalid input.

use std::process::ExitCode;

use clap::Parser;
use glrunner::cli::{self, GlobalArgs};
use glrunner::commands::reap::{Command, RunArgs, run_until};

/// Reap hung GitLab Runner job pods (Kubernetes executor) safely: identified by the executor's
/// labels and annotations, never by name; deleted with a UID precondition; dry-run first if unsure.
#[derive(Debug, Parser)]
#[command(name = "reap", version)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,

    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    run: RunArgs,
}

// A multi-threaded runtime on a real clock on every backend: the janitor compares pod ages with
// the system clock, and `--watch` waits real intervals.
#[tokio::main]
async fn main() -> ExitCode {
    // helm's credential plugin for an EKS cluster is this binary (see `cli::exec_credential_plugin`).
    if let Some(code) = cli::exec_credential_plugin() {
        return code;
    }
    let (cli, matches) = cli::parse::<Cli>();
    cli::init_tracing(cli.global.output);
    let result = match cli::start(&cli.global, &matches) {
        Ok(interrupt) => run_until(&cli.global, cli.command, &cli.run, &interrupt).await,
        Err(e) => Err(e),
    };
    cli::finish(result, cli.global.output)
}
