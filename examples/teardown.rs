//! Deletes everything a glrunner stack created, found by tag (no state file needed), in
//! dependency order, then fails if anything tagged with the stack is left. SIGINT/SIGTERM
//! finish the deletion in flight, save progress and exit 130/143; running it again continues.

use clap::Parser;
use glrunner::cli::runtime;
use glrunner::cli::{self, CliError, GlobalArgs, finish, init_tracing};
use glrunner::commands::provision::teardown_until;

/// Tear down a glrunner stack: add-ons, Fargate profiles (one at a time), the cluster, EKS's
/// leftover ENIs and security groups, NAT, EIPs, routes, IGW, subnets, VPC, IAM roles.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = "Exit codes: 0 nothing left, 1 failure or leftovers (named), 2 invalid input, \
                  130/143 stopped by SIGINT/SIGTERM (run again to continue)."
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
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
            .and_then(|rt| rt.block_on(teardown_until(&cli.global, &interrupt)))
    });
    finish(result, cli.global.output)
}
