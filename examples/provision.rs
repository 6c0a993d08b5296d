//! Takes an AWS account from nothing to an EKS cluster whose every pod runs on Fargate.
//!
//! `cargo run --example provision` plans and applies on the in-memory sandbox (virtual clock);
//! `--backend aws` spends money. `--dry-run` prints the plan (a tree, or JSON with `--output json`).

use clap::Parser;
use glrunner::cli::{GlobalArgs, finish, init_tracing};
use glrunner::provisioning::{ProvisionArgs, provision, runtime};

/// Provision the VPC, IAM roles, EKS cluster, Fargate profile, CoreDNS add-on and admin access
/// entry of a glrunner stack. Re-running converges; nothing is duplicated.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = "Exit codes: 0 success, 1 failure, 2 invalid input (nothing created)."
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(flatten)]
    args: ProvisionArgs,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.global.output);
    let result = runtime(cli.global.backend)
        .map_err(|e| {
            glrunner::cli::CliError::failure(format!("cannot start the async runtime: {e}"))
        })
        .and_then(|rt| rt.block_on(provision(&cli.global, &cli.args)));
    finish(result, cli.global.output)
}
