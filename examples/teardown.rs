//! Deletes everything a glrunner stack created, found by tag (no state file needed), in
//! dependency order, then fails if anything tagged with the stack is left.

use clap::Parser;
use glrunner::cli::{GlobalArgs, finish, init_tracing};
use glrunner::provisioning::{runtime, teardown};

/// Tear down a glrunner stack: add-ons, Fargate profiles (one at a time), the cluster, EKS's
/// leftover ENIs and security groups, NAT, EIPs, routes, IGW, subnets, VPC, IAM roles.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = "Exit codes: 0 nothing left, 1 failure or leftovers (named), 2 invalid input."
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.global.output);
    let result = runtime(cli.global.backend)
        .map_err(|e| {
            glrunner::cli::CliError::failure(format!("cannot start the async runtime: {e}"))
        })
        .and_then(|rt| rt.block_on(teardown(&cli.global)));
    finish(result, cli.global.output)
}
