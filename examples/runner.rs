//! `runner`: GitLab Runner Helm releases — values, fleet plans, install/upgrade/uninstall, status, list.
//!
//! ```text
//! cargo run --example runner -- values --gitlab-url https://gitlab.example.com --concurrent 200
//! cargo run --example runner -- plan-fleet --jobs 1000 --output json
//! cargo run --example runner -- install --release gitlab-runner-1 --tag glrunner-1   # sandbox
//! GLRUNNER_RUNNER_TOKEN=glrt-… cargo run --example runner -- --backend aws install \
//!     --gitlab-url https://gitlab.com --kubeconfig ~/.kube/eks --context my-eks --concurrent 200
//! cargo run --example runner -- --backend aws status --release gitlab-runner-1
//! ```
//!
//! The runner token (`glrt-…`) comes only from `GLRUNNER_RUNNER_TOKEN`, never from a flag; it is
//! stored in the Kubernetes Secret named by `--secret-name` and never reaches helm. The sandbox
//! (default) uses the in-memory backends and keeps no state between runs.
//!
//! Exit codes: 0 done, 1 failure (helm, Kubernetes), 2 invalid input (nothing was installed).

use std::process::ExitCode;

use clap::Parser;
use glrunner::cli::{self, GlobalArgs};
use glrunner::commands::runner::{Command, run};

/// Manage GitLab Runner Helm releases on EKS Fargate: typed values, the token Secret, fleet plans.
#[derive(Debug, Parser)]
#[command(name = "runner", version)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,

    #[command(subcommand)]
    command: Command,
}

// A multi-threaded runtime on a real clock on every backend, as before the move.
#[tokio::main]
async fn main() -> ExitCode {
    // helm's credential plugin for an EKS cluster is this binary (see `cli::exec_credential_plugin`).
    if let Some(code) = cli::exec_credential_plugin() {
        return code;
    }
    let (cli, matches) = cli::parse::<Cli>();
    cli::init_tracing(cli.global.output);
    let result = match cli::targets::check(&cli.global, &matches) {
        Ok(()) => run(&cli.global, cli.command).await,
        Err(e) => Err(e),
    };
    cli::finish(result, cli.global.output)
}
