//! Clean stops on SIGINT (Ctrl-C) and SIGTERM (GitLab CI cancelling a job), for every example.
//!
//! [`Interrupt::install`] listens on a thread of its own (so a paused sandbox clock or a busy
//! runtime cannot delay it). The first signal cancels a [`CancellationToken`] that the commands
//! hand to the library (the provision engine, teardown, the pipeline watch, the janitor's watch
//! loop), which stop starting new work, let what is in flight finish and report; the process
//! then exits 130 (SIGINT) or 143 (SIGTERM). A second signal stops at once, after printing the
//! command's hint (for `full_flow`: the command that finishes the cleanup).

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use tokio_util::sync::CancellationToken;

use super::{CliError, OutputFormat};

/// Environment variable naming points where the binary waits until a signal arrives (comma
/// separated, matched as prefixes, see [`hold`]). Test support: lets a test deliver a signal at
/// an exact point of a run that would otherwise finish too fast on the sandbox's virtual clock.
pub const HOLD_ENV: &str = "GLRUNNER_TEST_HOLD_AT";

/// Set once a first stop signal arrived (read by [`hold`]).
static SIGNALLED: AtomicBool = AtomicBool::new(false);

/// Which stop signal arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM (GitLab CI cancelling the job, `kill`).
    Terminate,
}

impl StopSignal {
    /// The shell convention: 128 + the signal number (130 for SIGINT, 143 for SIGTERM).
    pub fn exit_code(self) -> u8 {
        match self {
            StopSignal::Interrupt => 130,
            StopSignal::Terminate => 143,
        }
    }

    /// `SIGINT` or `SIGTERM`.
    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Interrupt => "SIGINT",
            StopSignal::Terminate => "SIGTERM",
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            130 => Some(StopSignal::Interrupt),
            143 => Some(StopSignal::Terminate),
            _ => None,
        }
    }
}

/// The stop requests of one process: a token for the library, and which signal arrived.
#[derive(Debug, Clone)]
pub struct Interrupt {
    token: CancellationToken,
    received: Arc<AtomicU8>,
    abort_hint: Arc<Mutex<Option<String>>>,
}

impl Default for Interrupt {
    fn default() -> Self {
        Self::detached()
    }
}

impl Interrupt {
    /// An interrupt that no signal reaches (library use, tests); [`Interrupt::trigger`] stops it.
    pub fn detached() -> Self {
        Self {
            token: CancellationToken::new(),
            received: Arc::new(AtomicU8::new(0)),
            abort_hint: Arc::new(Mutex::new(None)),
        }
    }

    /// Listens for SIGINT and SIGTERM on a dedicated thread. The first one cancels
    /// [`Interrupt::token`] and prints one line on stderr; a second one prints the abort hint
    /// (see [`Interrupt::set_abort_hint`]) and exits the process at once with 130/143.
    pub fn install(output: OutputFormat) -> std::io::Result<Self> {
        let interrupt = Self::detached();
        let this = interrupt.clone();
        // The handlers are registered on the thread before `install` returns, so no signal is
        // lost between here and the work (and a caller's own runtime is never nested).
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("glrunner-signals".into())
            .spawn(move || {
                let registered = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build()
                    .and_then(|runtime| {
                        let signals = runtime.block_on(async {
                            use tokio::signal::unix::{SignalKind, signal};
                            Ok::<_, std::io::Error>((
                                signal(SignalKind::interrupt())?,
                                signal(SignalKind::terminate())?,
                            ))
                        })?;
                        Ok((runtime, signals))
                    });
                let (runtime, (mut sigint, mut sigterm)) = match registered {
                    Ok(ok) => {
                        let _ = ready_tx.send(Ok(()));
                        ok
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    loop {
                        let signal = tokio::select! {
                            Some(()) = sigint.recv() => StopSignal::Interrupt,
                            Some(()) = sigterm.recv() => StopSignal::Terminate,
                            else => return,
                        };
                        if this.trigger(signal) {
                            announce(output, signal);
                        } else {
                            this.abort(output, signal);
                        }
                    }
                });
            })?;
        ready_rx
            .recv()
            .map_err(|_| std::io::Error::other("the signal thread ended before registering"))??;
        Ok(interrupt)
    }

    /// Records `signal` and cancels the token. True for the first stop request.
    pub fn trigger(&self, signal: StopSignal) -> bool {
        let first = self
            .received
            .compare_exchange(0, signal.exit_code(), Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        SIGNALLED.store(true, Ordering::SeqCst);
        self.token.cancel();
        first
    }

    fn abort(&self, output: OutputFormat, signal: StopSignal) -> ! {
        let hint = self
            .abort_hint
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let message = match hint {
            Some(hint) => format!("second {}: stopping at once; {hint}", signal.name()),
            None => format!("second {}: stopping at once", signal.name()),
        };
        match output {
            OutputFormat::Human => eprintln!("{message}"),
            OutputFormat::Json => eprintln!(
                "{}",
                serde_json::json!({"event": "aborted", "signal": signal.name(), "message": message})
            ),
        }
        std::process::exit(i32::from(signal.exit_code()))
    }

    /// The token to hand to the library: cancelled by the first stop signal.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// The first stop signal, once one arrived.
    pub fn received(&self) -> Option<StopSignal> {
        StopSignal::from_code(self.received.load(Ordering::SeqCst))
    }

    /// What a second signal prints before exiting (e.g. the command that finishes a cleanup).
    pub fn set_abort_hint(&self, hint: impl Into<String>) {
        *self.abort_hint.lock().unwrap_or_else(|e| e.into_inner()) = Some(hint.into());
    }

    /// The error that ends an interrupted command: exit 130/143 and `message` (what exists, how
    /// to resume). `None` when no signal arrived.
    pub fn error(&self, message: impl std::fmt::Display) -> Option<CliError> {
        self.received().map(|signal| CliError {
            code: signal.exit_code(),
            message: format!("stopped by {}: {message}", signal.name()),
        })
    }
}

fn announce(output: OutputFormat, signal: StopSignal) {
    match output {
        OutputFormat::Human => eprintln!(
            "{}: stopping cleanly (in-flight work finishes, nothing new starts); send it again to stop at once",
            signal.name()
        ),
        OutputFormat::Json => eprintln!(
            "{}",
            serde_json::json!({"event": "stopping", "signal": signal.name()})
        ),
    }
}

/// Test support: when [`HOLD_ENV`] lists a prefix of `point`, prints `holding at <point>` on
/// stderr and blocks this thread until a stop signal arrives (at most ten minutes). Blocking is
/// deliberate: it freezes a sandbox run, virtual clock included, exactly at `point`.
pub fn hold(point: &str) {
    let Ok(wanted) = std::env::var(HOLD_ENV) else {
        return;
    };
    if !wanted
        .split(',')
        .map(str::trim)
        .any(|w| !w.is_empty() && point.starts_with(w))
        || SIGNALLED.load(Ordering::SeqCst)
    {
        return;
    }
    eprintln!("holding at {point} until a stop signal arrives ({HOLD_ENV})");
    let give_up = std::time::Instant::now() + Duration::from_secs(600);
    while !SIGNALLED.load(Ordering::SeqCst) && std::time::Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_signal_cancels_and_sets_the_exit_code() {
        let interrupt = Interrupt::detached();
        assert!(interrupt.received().is_none() && interrupt.error("x").is_none());
        assert!(interrupt.trigger(StopSignal::Terminate));
        assert!(interrupt.token().is_cancelled());
        assert!(!interrupt.trigger(StopSignal::Interrupt), "second request");
        assert_eq!(interrupt.received(), Some(StopSignal::Terminate));
        let err = interrupt.error("2 resources exist").unwrap();
        assert_eq!(err.code, 143);
        assert!(
            err.message
                .starts_with("stopped by SIGTERM: 2 resources exist")
        );
    }
}
