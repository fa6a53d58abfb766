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
        // Pair the wall reading with the instant half-way between two monotonic readings
        // around it, and retry if the thread was preempted in between, so that two clocks
        // made at different times agree to about a millisecond.
        let mut best = None;
        for _ in 0..5 {
            let before = Instant::now();
            let wall = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let after = Instant::now();
            let gap = after.saturating_duration_since(before);
            let origin = before + gap / 2;
            if best.is_none_or(|(g, _, _)| gap < g) {
                best = Some((gap, wall, origin));
            }
            if gap < Duration::from_micros(200) {
                break;
            }
        }
        let (_, wall, origin) =
            best.unwrap_or_else(|| (Duration::ZERO, Duration::ZERO, Instant::now()));
        // Keep sub-millisecond precision: the origin is moved back to the last whole
        // millisecond of wall time.
        let sub_ms = Duration::from_nanos(u64::from(wall.subsec_nanos() % 1_000_000));
        Clock {
            origin_wall: Timestamp(i64::try_from(wall.as_millis()).unwrap_or(i64::MAX / 4)),
            origin: origin.checked_sub(sub_ms).unwrap_or(origin),
        }
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

    /// The current wall time, in microseconds since the epoch (for latency measurements).
    pub fn now_micros(&self) -> i64 {
        let elapsed = Instant::now().saturating_duration_since(self.origin);
        self.origin_wall
            .0
            .saturating_mul(1_000)
            .saturating_add(i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX / 4))
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
        assert_eq!(c.now_micros(), 10_000_000);
    }
}
