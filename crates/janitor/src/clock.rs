//! Wall-clock sources: the real clock, and one driven by tokio's (pausable) clock for simulations.

use std::fmt;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// A source of wall-clock time. The policy never reads the clock itself; the reaper asks this.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// Wall time derived from tokio's clock: `base + (tokio::time::Instant::now() - start)`.
///
/// Under `tokio::time::pause()` the time advances only with `tokio::time::advance` or auto-advance,
/// so a sandbox world can play hours of pod lifetimes in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    base: Timestamp,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock reading `base` now and advancing with tokio's clock.
    pub fn starting_at(base: Timestamp) -> Self {
        Self {
            base,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        let elapsed: Duration = tokio::time::Instant::now().duration_since(self.start);
        let elapsed = SignedDuration::try_from(elapsed).unwrap_or(SignedDuration::MAX);
        self.base.saturating_add(elapsed).unwrap_or(self.base)
    }
}

/// A clock that stands still until told to move; for tests.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    now: std::sync::Arc<std::sync::Mutex<Timestamp>>,
}

impl ManualClock {
    /// A clock reading `now`.
    pub fn new(now: Timestamp) -> Self {
        Self {
            now: std::sync::Arc::new(std::sync::Mutex::new(now)),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        let by = SignedDuration::try_from(by).unwrap_or(SignedDuration::MAX);
        *now = now.saturating_add(by).unwrap_or(*now);
    }

    /// Sets the clock.
    pub fn set(&self, to: Timestamp) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let base: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let clock = TokioClock::starting_at(base);
        assert_eq!(clock.now(), base);
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(
            clock.now(),
            "2026-01-01T01:00:00Z".parse::<Timestamp>().unwrap()
        );
    }
}
