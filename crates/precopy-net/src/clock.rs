//! Where a migration's time comes from. The engine is told every time explicitly; the sender reads
//! it from a [`Clock`]: the monotonic clock in a real migration ([`MonotonicClock`]), simulated
//! time under test (`simulated::SimClock`), where waiting and transfers advance it.

use std::time::{Duration, Instant};

/// Seconds since the migration began, and a way to let them pass.
pub trait Clock {
    /// Now, seconds since the migration began.
    fn now(&self) -> f64;
    /// Returns once `now() >= at` (at once if it already is).
    fn wait_until(&mut self, at: f64);
}

/// The monotonic clock: time passes by itself, waiting sleeps.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    start: Instant,
}

impl MonotonicClock {
    /// A clock that reads 0 now.
    pub fn start() -> MonotonicClock {
        MonotonicClock {
            start: Instant::now(),
        }
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    fn wait_until(&mut self, at: f64) {
        let left = at - self.now();
        if left > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(left));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_reaches_the_time_asked_for() {
        let mut clock = MonotonicClock::start();
        clock.wait_until(0.02);
        assert!(clock.now() >= 0.02);
        // A time already past returns at once.
        clock.wait_until(0.0);
    }
}
