//! The wall clock runs and schedules read, injectable for tests.

use std::fmt::Debug;

use jiff::Timestamp;

/// Tells the time. The scheduler computes occurrences and run history records start and
/// end times with it.
pub trait Clock: Send + Sync + Debug {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A wall clock that moves with tokio's clock: `start` at the moment it was made, then
/// as much later as [`tokio::time::Instant`] says. Under a paused tokio clock
/// (`tokio::time::pause`, `#[tokio::test(start_paused = true)]`) "now" is virtual too, so
/// a test can run a scheduler across days (and DST changes) in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start: Timestamp,
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// A clock that reads `start` now. Must be called inside a tokio runtime.
    pub fn starting_at(start: Timestamp) -> Self {
        TokioClock {
            start,
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.origin);
        let elapsed = jiff::SignedDuration::try_from(elapsed).unwrap_or(jiff::SignedDuration::MAX);
        self.start.checked_add(elapsed).unwrap_or(Timestamp::MAX)
    }
}
