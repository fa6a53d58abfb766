//! The daemon's clock: the one place in the crate that reads wall time.
//!
//! A [`Clock`] takes the wall time once, when it is made, and from then on adds the time
//! elapsed on [`tokio::time::Instant`]. Tests that run under `tokio::time::pause()` therefore
//! control it completely, and [`Clock::starting_at`] pins its origin to any [`Timestamp`].
//!
//! Owns: the mapping between wall time ([`Timestamp`]) and tokio's timer ([`Instant`]).
//! Must not: be read by the engine (the engine takes time as an argument), nor be bypassed
//! with `SystemTime::now` elsewhere (clippy's `disallowed-methods` enforces it).

use std::time::Duration;

use tokio::time::Instant;

use crate::time::Timestamp;

/// Wall time derived from tokio's monotonic clock. Cheap to copy.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin_wall: Timestamp,
    origin: Instant,
}

impl Clock {
    /// A clock that reads the system's wall time once, now.
    #[allow(clippy::disallowed_methods)] // the one sanctioned wall-clock read
    pub fn system() -> Clock {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Clock::starting_at(Timestamp(wall))
    }

    /// A clock whose current time is `wall` (for tests and simulations).
    pub fn starting_at(wall: Timestamp) -> Clock {
        Clock {
            origin_wall: wall,
            origin: Instant::now(),
        }
    }

    /// The current wall time, in milliseconds.
    pub fn now(&self) -> Timestamp {
        let elapsed = Instant::now().saturating_duration_since(self.origin);
        self.origin_wall
            .plus(i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX / 4))
    }

    /// The tokio instant at which this clock reads `t` (clamped to the clock's origin).
    pub fn instant_at(&self, t: Timestamp) -> Instant {
        let ms = t.since(self.origin_wall).max(0);
        // Far-future deadlines are capped at a year: tokio's timer wheel needs no more.
        let ms = ms.min(365 * 24 * 3_600_000);
        self.origin + Duration::from_millis(ms as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follows_tokio_time() {
        let c = Clock::starting_at(Timestamp(1_000));
        assert_eq!(c.now(), Timestamp(1_000));
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_eq!(c.now(), Timestamp(2_500));
        tokio::time::sleep_until(c.instant_at(Timestamp(10_000))).await;
        assert_eq!(c.now(), Timestamp(10_000));
    }
}
