//! `fault_suite`: the whole flow on the sandbox under injected faults (a failure in each phase,
//! AWS throttling and 5xx bursts, GitLab 502s before and after the runner/commit/pipeline POSTs
//! and a 429 storm, the apiserver restarting mid-reap, the flow killed inside provision,
//! releases and teardown then run again, two runs of one stack at once), with a
//! benchmark-style summary for CI: cases, faults injected, leftovers, duplicates.
//!
//! ```text
//! cargo run --example fault_suite                    # table + `name value` summary lines
//! cargo run --example fault_suite -- --output json   # one JSON document
//! ```
//!
//! Exit codes: 0 every case left nothing and duplicated nothing, 1 otherwise, 2 invalid input.

use std::process::ExitCode;

use clap::Parser;
use glrunner::cli::{self, CliError, GlobalArgs, OutputFormat};
use glrunner::fault_suite::run_suite;

/// Run the fault suite on the sandbox world (virtual clock: seconds of wall time).
#[derive(Debug, Parser)]
#[command(name = "fault_suite", version)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    /// Jobs in each case's load-test pipeline (400: two shards, so the runners and releases
    /// faults, which hit the second shard, are injected).
    #[arg(long, default_value_t = 400)]
    jobs: u32,
    /// Seed of every random choice (which calls are throttled, timings).
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

fn main() -> ExitCode {
    // helm's credential plugin for an EKS cluster is this binary (see `cli::exec_credential_plugin`).
    if let Some(code) = cli::exec_credential_plugin() {
        return code;
    }
    let (cli, matches) = cli::parse::<Cli>();
    cli::init_tracing(cli.global.output);
    let result = cli::targets::check(&cli.global, &matches).and_then(|()| {
        if cli.global.backend != cli::Backend::Sandbox {
            return Err(CliError::invalid(
                "--backend: the fault suite runs on the sandbox only (it injects faults into its doubles)",
            ));
        }
        let rt = glrunner::cli::runtime(cli::Backend::Sandbox)
            .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))?;
        let report = rt.block_on(run_suite(cli.jobs, cli.seed));
        match cli.global.output {
            OutputFormat::Json => cli::print_json(&report)?,
            OutputFormat::Human => print!("{}", report.render_text()),
        }
        if report.passed() {
            Ok(())
        } else {
            Err(CliError::failure(format!(
                "{} leftover(s) and {} duplicate(s) across {} case(s)",
                report.leftovers,
                report.duplicates,
                report.cases.len()
            )))
        }
    });
    cli::finish(result, cli.global.output)
}
