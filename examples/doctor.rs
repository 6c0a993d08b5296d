//! `doctor`: know before you spend. Checks the AWS identity, permissions and quotas, an existing
//! stack, GitLab, helm and the job image against the plan `full_flow` would run, and projects
//! what the run will cost. Creates nothing.
//!
//! ```text
//! cargo run --example doctor                                        # sandbox: the default 400-job plan
//! cargo run --example doctor -- --fargate-vcpu-quota 8              # sandbox: a quota too small (exit 1)
//! cargo run --example doctor -- --jobs 1000 --budget 5 --output json
//! GITLAB_TOKEN=glpat-… cargo run --example doctor -- --backend aws --region us-east-1 \
//!     --gitlab-url https://gitlab.com --project my-group/loadtest
//! ```
//!
//! Takes the same flags as `full_flow`, so it checks exactly the plan `full_flow` would run.
//! Exit codes: 0 nothing failed (warnings allowed), 1 a check failed, 2 invalid input.
//!
//! `--ci-file PATH` lints a project's `.gitlab-ci.yml` against that plan's fleet instead: which
//! jobs cannot run on Fargate, each finding with its line, the constraint and its source, and
//! the fix (exit 1 when a job cannot run, 2 when the file cannot be read or parsed):
//!
//! ```text
//! cargo run --example doctor -- --ci-file path/to/repo/.gitlab-ci.yml
//! cargo run --example doctor -- --ci-file .gitlab-ci.yml --runner-profile reference --output json
//! ```

use std::process::ExitCode;

use clap::Parser;
use glrunner::cli::{self, CliError, GlobalArgs};
use glrunner::commands::doctor::{DoctorArgs, doctor, lint_ci_file};
use glrunner::commands::full_flow::FlowArgs;

/// Preflight checks and the cost projection of a glrunner run, on the sandbox (default) or AWS.
#[derive(Debug, Parser)]
#[command(name = "doctor", version)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,

    #[command(flatten)]
    doctor: DoctorArgs,

    /// full_flow's flags, the preflight's among them.
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
    // The same rule as every example: a real-target flag on the sandbox is refused (exit 2).
    let result =
        cli::start(&cli.global, &matches).and_then(|_interrupt| match &cli.doctor.ci_file {
            // The lint reads a file and calls nothing: no runtime.
            Some(path) => lint_ci_file(&cli.global, &cli.flow, path),
            None => glrunner::cli::runtime(cli.global.backend)
                .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))
                .and_then(|rt| rt.block_on(doctor(&cli.global, &cli.flow))),
        });
    cli::finish(result, cli.global.output)
}
