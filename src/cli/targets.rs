//! The sandbox never silently stands in for a real target: flags that name one are refused.
//!
//! A command-line flag that names a real target (a kubeconfig, a GitLab URL, a helm binary…)
//! together with the sandbox backend is invalid input (exit 2, nothing runs): a CI job would
//! otherwise report success for work that never happened. Environment variables are different:
//! people keep `GITLAB_TOKEN` set and GitLab CI sets `CI_SERVER_URL` in every job, so the sandbox
//! ignores them and says once which it ignored.

use clap::ArgMatches;
use clap::parser::ValueSource;

use super::{Backend, CliError, GlobalArgs, OutputFormat};

/// Argument ids (clap's, i.e. the field names) whose value names a real target.
pub const TARGET_FLAGS: &[&str] = &[
    "kubeconfig",
    "context",
    "in_cluster",
    "cluster",
    "gitlab_url",
    "project",
    "create_project",
    "helm",
    "chart",
];

/// Subcommands that reach no backend at all (they only render text), so no flag is refused there.
pub const OFFLINE_SUBCOMMANDS: &[&str] = &["values", "plan-fleet", "ci-yaml", "rbac"];

/// Environment variables a real backend reads and the sandbox ignores.
pub const REAL_TARGET_ENV: &[&str] = &[
    "GITLAB_TOKEN",
    "GITLAB_URL",
    "CI_SERVER_URL",
    "KUBECONFIG",
    "GLRUNNER_HELM",
    "GLRUNNER_RUNNER_TOKEN",
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
];

/// The real-target flags given on the command line, as `--flag` names, in the order declared in
/// [`TARGET_FLAGS`]. Looks into the subcommand too; empty inside an offline subcommand.
pub fn target_flags_given(matches: &ArgMatches) -> Vec<String> {
    let mut levels = vec![matches];
    let mut current = matches;
    while let Some((name, sub)) = current.subcommand() {
        if OFFLINE_SUBCOMMANDS.contains(&name) {
            return Vec::new();
        }
        levels.push(sub);
        current = sub;
    }
    TARGET_FLAGS
        .iter()
        .filter(|id| {
            levels.iter().any(|m| {
                m.ids().any(|present| present.as_str() == **id)
                    && m.value_source(id) == Some(ValueSource::CommandLine)
            })
        })
        .map(|id| format!("--{}", id.replace('_', "-")))
        .collect()
}

/// Refuses real-target flags on the sandbox (exit 2, naming each flag and the fix), and on the
/// sandbox prints one line naming the real-target environment variables it ignores.
pub fn check(global: &GlobalArgs, matches: &ArgMatches) -> Result<(), CliError> {
    if global.backend != Backend::Sandbox {
        return Ok(());
    }
    let flags = target_flags_given(matches);
    if !flags.is_empty() {
        return Err(CliError::invalid(format!(
            "{} name{} a real target, but the backend is the in-memory sandbox (the default), which \
             would not use {}: add `--backend aws` to act on the real target, or drop {} to try \
             the sandbox; nothing was run",
            flags.join(", "),
            if flags.len() == 1 { "s" } else { "" },
            if flags.len() == 1 { "it" } else { "them" },
            if flags.len() == 1 { "it" } else { "them" },
        )));
    }
    let in_subcommand_offline = {
        let mut current = matches;
        let mut offline = false;
        while let Some((name, sub)) = current.subcommand() {
            offline |= OFFLINE_SUBCOMMANDS.contains(&name);
            current = sub;
        }
        offline
    };
    if in_subcommand_offline {
        return Ok(());
    }
    let ignored = ignored_env();
    if !ignored.is_empty() {
        match global.output {
            OutputFormat::Human => eprintln!(
                "sandbox: ignoring {} from the environment (real targets only; add --backend aws to use them)",
                ignored.join(", ")
            ),
            OutputFormat::Json => eprintln!(
                "{}",
                serde_json::json!({"event": "sandbox-ignored-env", "variables": ignored})
            ),
        }
    }
    Ok(())
}

/// The real-target environment variables that are set (and not empty).
pub fn ignored_env() -> Vec<&'static str> {
    REAL_TARGET_ENV
        .iter()
        .copied()
        .filter(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
        .collect()
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        global: GlobalArgs,
        #[arg(long, global = true)]
        gitlab_url: Option<String>,
        #[arg(long, env = "GLRUNNER_TEST_TARGETS_HELM", default_value = "helm")]
        helm: String,
        #[command(subcommand)]
        command: Option<Sub>,
    }

    #[derive(Debug, Subcommand)]
    enum Sub {
        Install {
            #[arg(long)]
            kubeconfig: Option<String>,
        },
        Values,
    }

    fn parse(args: &[&str]) -> (Cli, ArgMatches) {
        let matches = Cli::command()
            .try_get_matches_from(std::iter::once("t").chain(args.iter().copied()))
            .unwrap();
        (Cli::from_arg_matches(&matches).unwrap(), matches)
    }

    #[test]
    fn flags_from_the_command_line_are_refused_on_the_sandbox_only() {
        let (cli, m) = parse(&["--gitlab-url", "https://x", "install", "--kubeconfig", "k"]);
        assert_eq!(target_flags_given(&m), ["--kubeconfig", "--gitlab-url"]);
        let err = check(&cli.global, &m).unwrap_err();
        assert_eq!(err.code, super::super::EXIT_INVALID_INPUT);
        assert!(err.message.contains("--backend aws"), "{}", err.message);
        assert!(err.message.contains("--gitlab-url"), "{}", err.message);

        let (cli, m) = parse(&["--backend", "aws", "--gitlab-url", "https://x"]);
        assert!(check(&cli.global, &m).is_ok());
    }

    #[test]
    fn defaults_offline_subcommands_and_the_environment_are_not_flags() {
        let (_, m) = parse(&["install"]);
        assert!(target_flags_given(&m).is_empty(), "a default is not a flag");
        let (_, m) = parse(&["--gitlab-url", "https://x", "values"]);
        assert!(target_flags_given(&m).is_empty(), "values reaches nothing");
        let (_, m) = parse(&["--helm", "/usr/bin/helm"]);
        assert_eq!(target_flags_given(&m), ["--helm"]);
    }
}
