//! Takes an AWS account from nothing to an EKS cluster whose every pod runs on Fargate.
//!
//! `cargo run --example provision` plans and applies on the in-memory sandbox (virtual clock);
//! `--backend aws` spends money. `--dry-run` prints the plan (a tree, or JSON with `--output json`).
//! SIGINT/SIGTERM stop cleanly: no new step starts, the state is saved, what exists is printed,
//! exit 130/143; running it again resumes.

use clap::Parser;
use glrunner::cli::runtime;
use glrunner::cli::{self, CliError, GlobalArgs, finish, init_tracing};
use glrunner::commands::provision::{ProvisionArgs, provision_until};

/// Provision the VPC, IAM roles, EKS cluster, Fargate profile, CoreDNS add-on and admin access
/// entry of a glrunner stack. Re-running converges; nothing is duplicated.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = "Exit codes: 0 success, 1 failure, 2 invalid input (nothing created), \
                  130/143 stopped by SIGINT/SIGTERM (run again to resume)."
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(flatten)]
    args: ProvisionArgs,
}

fn main() -> std::process::ExitCode {
    // helm's credential plugin for an EKS cluster is this binary (see `cli::exec_credential_plugin`).
    if let Some(code) = cli::exec_credential_plugin() {
        return code;
    }
    let (cli, matches) = cli::parse::<Cli>();
    init_tracing(cli.global.output);
    let result = cli::start(&cli.global, &matches).and_then(|interrupt| {
        runtime(cli.global.backend)
            .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))
            .and_then(|rt| rt.block_on(provision_until(&cli.global, &cli.args, &interrupt)))
    });
    finish(result, cli.global.output)
}
