//! Command-line support shared by every example: global flags, output, tracing and exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

pub mod duration;
pub mod signals;
pub mod targets;

/// Exit code for success.
pub const EXIT_OK: u8 = 0;
/// Exit code for a failure while doing the work (AWS, GitLab, Kubernetes, helm...).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for invalid input: nothing was created, changed or deleted.
pub const EXIT_INVALID_INPUT: u8 = 2;

pub use glrunner_flow::Backend;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// Tables, trees and progress bars for a person at a terminal.
    #[default]
    Human,
    /// One JSON document on stdout (progress as JSON lines on stderr).
    Json,
}

/// The flags every example shares. Flatten it into each example's clap parser.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Stack name: prefixes and tags every resource (`glrunner.io/stack=<stack>`).
    /// Lowercase letters, digits and hyphens, starting with a letter.
    #[arg(
        long,
        global = true,
        env = "GLRUNNER_STACK",
        default_value = "glrunner"
    )]
    pub stack: String,

    /// AWS region. Defaults to the standard AWS configuration (`AWS_REGION`, profile),
    /// or us-east-1 on the sandbox.
    #[arg(long, global = true)]
    pub region: Option<String>,

    /// Which world to act on: the free in-memory sandbox, or real AWS/GitLab/Kubernetes.
    #[arg(long, global = true, value_enum, env = "GLRUNNER_BACKEND", default_value_t = Backend::Sandbox)]
    pub backend: Backend,

    /// Directory of the local state cache (`<state-dir>/<stack>.json`). The cache is never the
    /// truth: everything is rediscovered by tag.
    #[arg(
        long,
        global = true,
        env = "GLRUNNER_STATE_DIR",
        default_value = ".glrunner"
    )]
    pub state_dir: PathBuf,

    /// Output format: `human` or `json` (machine-readable, one document on stdout).
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,

    /// Print what would be done and change nothing.
    #[arg(long, global = true)]
    pub dry_run: bool,
}

/// Parses the command line like `C::parse()` (exiting on `--help` or a usage error, code 2) and
/// keeps clap's matches, so [`targets::check`] can tell a flag given on the command line from a
/// default or an environment variable.
pub fn parse<C: clap::Parser>() -> (C, clap::ArgMatches) {
    let mut command = C::command();
    let matches = command.clone().get_matches();
    match C::from_arg_matches(&matches) {
        Ok(cli) => (cli, matches),
        Err(e) => e.format(&mut command).exit(),
    }
}

/// What every example does before its work: refuse real-target flags on the sandbox (exit 2,
/// see [`targets::check`]), then listen for SIGINT/SIGTERM ([`signals::Interrupt::install`]).
pub fn start(
    global: &GlobalArgs,
    matches: &clap::ArgMatches,
) -> Result<signals::Interrupt, CliError> {
    targets::check(global, matches)?;
    signals::Interrupt::install(global.output)
        .map_err(|e| CliError::failure(format!("cannot listen for SIGINT/SIGTERM: {e}")))
}

/// Installs a tracing subscriber writing to stderr: human-readable, or JSON lines with `--output json`.
/// The default shows warnings only (progress has its own rendering); `RUST_LOG` overrides it
/// (e.g. `RUST_LOG=glrunner_infra=debug`).
pub fn init_tracing(output: OutputFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match output {
        OutputFormat::Human => builder.with_target(false).try_init(),
        OutputFormat::Json => builder.json().try_init(),
    };
}

/// An error as the examples report it: a message and the exit code it maps to.
#[derive(Debug)]
pub struct CliError {
    /// Exit code: [`EXIT_INVALID_INPUT`] or [`EXIT_FAILURE`].
    pub code: u8,
    /// Message for the user, naming the field or resource and what to do.
    pub message: String,
}

impl CliError {
    /// Invalid input (exit 2): nothing was created or changed.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_INVALID_INPUT,
            message: message.into(),
        }
    }

    /// A failure while working (exit 1).
    pub fn failure(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_FAILURE,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Ends an example: prints the error (as JSON with `--output json`) and returns the exit code.
pub fn finish(result: Result<(), CliError>, output: OutputFormat) -> ExitCode {
    match result {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(err) => {
            match output {
                OutputFormat::Human => eprintln!("error: {}", err.message),
                OutputFormat::Json => eprintln!(
                    "{}",
                    serde_json::json!({ "error": err.message, "exit_code": err.code })
                ),
            }
            ExitCode::from(err.code)
        }
    }
}

impl From<glrunner_flow::Error> for CliError {
    /// Invalid input (exit 2) names its flag first, as every other usage error does; anything
    /// else is a failure (exit 1).
    fn from(e: glrunner_flow::Error) -> Self {
        match e {
            glrunner_flow::Error::InvalidInput { field, message } => {
                Self::invalid(format!("{field}: {message}"))
            }
            other => Self::failure(other.to_string()),
        }
    }
}

/// A tokio runtime for an example: on the sandbox, the sandbox's paused (virtual) clock
/// ([`glrunner_sandbox::runtime`]), so a 12-minute EKS creation takes milliseconds; on AWS, a
/// normal multi-threaded runtime.
pub fn runtime(backend: Backend) -> std::io::Result<tokio::runtime::Runtime> {
    match backend {
        Backend::Sandbox => glrunner_sandbox::runtime(),
        Backend::Aws => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    }
}

/// When this process was started as helm's exec credential plugin for an EKS cluster (the
/// kubeconfig glrunner hands helm sets `GLRUNNER_EXEC_CREDENTIAL` in its `exec.env`): prints the
/// ExecCredential the library signs ([`glrunner_flow::aws::exec_credential_from_env`]) on stdout,
/// or the reason on stderr, and returns the exit code; `None` otherwise. Every example calls it
/// first thing in `main`, before parsing arguments (client-go passes none) or starting tracing
/// (stdout carries only the credential).
pub fn exec_credential_plugin() -> Option<ExitCode> {
    use secrecy::ExposeSecret as _;
    std::env::var_os(glrunner_infra::kubeconfig::EXEC_CREDENTIAL_ENV).filter(|v| !v.is_empty())?;
    // On a thread of its own with a private runtime: some mains are already inside one.
    let outcome = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| {
                        format!("glrunner credential plugin: cannot start the async runtime: {e}")
                    })
                    .map(|runtime| runtime.block_on(glrunner_flow::aws::exec_credential_from_env()))
            })
            .join()
            .unwrap_or_else(|_| Err("glrunner credential plugin: panicked".to_owned()))
    });
    Some(match outcome {
        Ok(None) => return None,
        Ok(Some(Ok(credential))) => {
            println!("{}", credential.expose_secret());
            ExitCode::from(EXIT_OK)
        }
        Ok(Some(Err(message))) | Err(message) => {
            eprintln!("{message}");
            ExitCode::from(EXIT_FAILURE)
        }
    })
}

/// Prints a serialisable value as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::failure(format!("cannot serialise output as JSON: {e}")))?;
    println!("{text}");
    Ok(())
}
