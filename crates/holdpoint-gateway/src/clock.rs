//! The time source, injected so that timeouts, expiries and change windows are testable.

use std::fmt::Debug;
use std::sync::Mutex;

/// Tells the time.
pub trait Clock: Send + Sync + Debug {
    /// Now.
    fn now(&self) -> jiff::Timestamp;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
    }
}

/// A clock tests set by hand.
#[derive(Debug)]
pub struct ManualClock(Mutex<jiff::Timestamp>);

impl ManualClock {
    /// A clock stopped at `at`.
    pub fn new(at: jiff::Timestamp) -> Self {
        Self(Mutex::new(at))
    }
    /// Moves the clock.
    pub fn set(&self, at: jiff::Timestamp) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> jiff::Timestamp {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
