//! Redialing a peer that went away, as every client of the daemon does (connect-mode ingest,
//! the AMI client, the ESL client): capped exponential back-off with jitter, started over by
//! a connection that held.
//!
//! Owns: the schedule ([`backoff`], [`STABLE_CONNECTION`]) and the wait between attempts
//! ([`Redial`]). Must not: dial, log or count anything itself (each client says what it
//! redials, through the callback of [`Redial::pause`]).

use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;

/// The delay before the first redial; it doubles per failed attempt up to [`BACKOFF_CAP`].
pub const BACKOFF_BASE: Duration = Duration::from_millis(200);
/// The longest delay between two attempts.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// A connection that lasted this long starts the back-off over.
pub const STABLE_CONNECTION: Duration = Duration::from_secs(10);

/// Delay before redial number `failures + 1`: base × 2^failures, capped, times a random
/// factor in [0.5, 1).
pub fn backoff(failures: u32) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32.checked_shl(failures.min(16)).unwrap_or(u32::MAX));
    let capped = exp.min(BACKOFF_CAP);
    capped.mul_f64(rand::rng().random_range(0.5..1.0))
}

/// One client's redial loop state: how many attempts failed since the last stable connection.
#[derive(Debug, Default)]
pub struct Redial {
    failures: u32,
    dialed: bool,
}

impl Redial {
    pub fn new() -> Redial {
        Redial::default()
    }

    /// Call before every attempt. The first goes at once; before each later one `announce`
    /// gets the delay (to count and log the redial), then the delay is waited. False when
    /// `shutdown` came first: the client stops.
    pub async fn pause(
        &mut self,
        shutdown: &CancellationToken,
        announce: impl FnOnce(Duration),
    ) -> bool {
        if !std::mem::replace(&mut self.dialed, true) {
            return true;
        }
        let delay = backoff(self.failures);
        announce(delay);
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }

    /// The attempt failed before the peer was connected (refused, unreachable, a handshake or
    /// login that failed).
    pub fn failed(&mut self) {
        self.failures = self.failures.saturating_add(1);
    }

    /// A connection ended after it held for `held`. One that held [`STABLE_CONNECTION`]
    /// starts the back-off over; a shorter one counts as a failed attempt (a peer that
    /// accepts and drops at once is backed off like one that refuses).
    pub fn ended(&mut self, held: Duration) {
        if held >= STABLE_CONNECTION {
            self.failures = 0;
        } else {
            self.failed();
        }
    }

    /// Failed attempts since the last stable connection.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_with_jitter() {
        for f in 0..40 {
            let d = backoff(f);
            assert!(d <= BACKOFF_CAP, "{f}: {d:?}");
            assert!(d >= BACKOFF_BASE / 2, "{f}: {d:?}");
        }
        assert!(backoff(30) >= BACKOFF_CAP / 2);
    }

    #[test]
    fn backoff_doubles_and_jitters_within_half_to_whole_of_its_step() {
        for failures in 0..6 {
            let step = BACKOFF_BASE * (1 << failures);
            let samples: Vec<Duration> = (0..500).map(|_| backoff(failures)).collect();
            for d in &samples {
                assert!(*d >= step / 2 && *d < step, "{failures}: {d:?} of {step:?}");
            }
            let (min, max) = (
                samples.iter().min().copied().unwrap_or_default(),
                samples.iter().max().copied().unwrap_or_default(),
            );
            // 500 draws from [0.5, 1) spread over most of it: a fixed factor would not.
            assert!(max - min > step / 4, "{failures}: {min:?}..{max:?}");
        }
    }

    #[test]
    fn a_short_connection_counts_as_a_failure_and_a_stable_one_starts_over() {
        let mut r = Redial::new();
        r.failed();
        r.failed();
        assert_eq!(r.failures(), 2);
        r.ended(STABLE_CONNECTION - Duration::from_millis(1));
        assert_eq!(r.failures(), 3);
        r.ended(STABLE_CONNECTION);
        assert_eq!(r.failures(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_attempt_goes_at_once_and_later_ones_wait_their_backoff() {
        let shutdown = CancellationToken::new();
        let mut r = Redial::new();
        let start = tokio::time::Instant::now();
        let mut announced = None;
        assert!(r.pause(&shutdown, |d| announced = Some(d)).await);
        assert_eq!(announced, None);
        assert_eq!(start.elapsed(), Duration::ZERO);
        for _ in 0..3 {
            r.failed();
        }
        assert!(r.pause(&shutdown, |d| announced = Some(d)).await);
        let delay = announced.expect("a redial is announced");
        assert!(
            delay >= BACKOFF_BASE * 4 && delay < BACKOFF_BASE * 8,
            "{delay:?}"
        );
        // The timer wheel counts whole milliseconds.
        let waited = start.elapsed();
        assert!(
            waited >= delay && waited <= delay + Duration::from_millis(1),
            "{waited:?} for {delay:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_the_wait() {
        let shutdown = CancellationToken::new();
        let mut r = Redial::new();
        assert!(r.pause(&shutdown, |_| {}).await);
        r.ended(Duration::ZERO);
        shutdown.cancel();
        assert!(!r.pause(&shutdown, |_| {}).await);
    }
}
