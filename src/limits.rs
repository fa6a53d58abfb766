//! The I/O shell's side of `[limits]` ([`ShellLimits`]): connection permits for `/ingest` and
//! `/ws/floor`, the per-source event rate (a token bucket whose excess waits), and the
//! accounting of every limit reached: `floorwatch_limit_hits_total{limit}` plus a log line at
//! most once per [`LOG_EVERY`] per limit.
//!
//! Owns: the [`Limiter`] that connections and adapters share, its [`Bucket`]s, and the
//! [`LimitLog`].
//!
//! Must not: refuse or drop events for rate (a fast source is read more slowly instead, so
//! nothing is lost or counted twice), or hold a lock across an `.await`. The engine's own
//! limits (agents, calls, queues) live in the engine; the owner task reports them here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::ShellLimits;
use crate::event::Id;
use crate::metrics::Metrics;

/// A limit reached is logged at most this often (each one is counted).
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Counts limit hits and rate-limits their log lines. Cheap to share.
pub struct LimitLog {
    metrics: Arc<Metrics>,
    last: Mutex<HashMap<&'static str, Instant>>,
}

impl LimitLog {
    pub fn new(metrics: Arc<Metrics>) -> LimitLog {
        LimitLog {
            metrics,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a hit of `limit` (a [`crate::metrics::LIMIT_LABELS`] value) and calls `log`
    /// unless it was called for this limit within [`LOG_EVERY`].
    pub fn hit(&self, limit: &'static str, log: impl FnOnce()) {
        self.metrics.limit_hits.with_label_values(&[limit]).inc();
        let now = Instant::now();
        let due = {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            match last.get(limit) {
                Some(t) if now.duration_since(*t) < LOG_EVERY => false,
                _ => {
                    last.insert(limit, now);
                    true
                }
            }
        };
        if due {
            log();
        }
    }
}

/// A token bucket: `rate` tokens a second, holding at most one second's worth. Taking more
/// than it holds goes into debt, which is the wait before the taker may go on.
#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub fn new(rate: u32, now: Instant) -> Bucket {
        let rate = f64::from(rate.max(1));
        Bucket {
            rate,
            tokens: rate,
            at: now,
        }
    }

    /// Takes `n` tokens at `now`; returns how long the taker must wait (zero when the
    /// bucket held them).
    pub fn take(&mut self, n: usize, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.tokens -= n as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

/// Enforces the shell's `[limits]` ([`ShellLimits`]) for every connection and adapter:
/// connection permits, rate buckets, and the count and log of each limit reached.
pub struct Limiter {
    pub config: ShellLimits,
    ingest: Arc<Semaphore>,
    floor: Arc<Semaphore>,
    /// One bucket per source name while a connection of it holds it.
    buckets: Mutex<HashMap<Id, Weak<Mutex<Bucket>>>>,
    pub log: LimitLog,
}

impl Limiter {
    pub fn new(config: ShellLimits, metrics: Arc<Metrics>) -> Limiter {
        Limiter {
            config,
            ingest: Arc::new(Semaphore::new(config.max_ingest_connections)),
            floor: Arc::new(Semaphore::new(config.max_floor_connections)),
            buckets: Mutex::new(HashMap::new()),
            log: LimitLog::new(metrics),
        }
    }

    /// A permit for one more `/ingest` connection, or `None` at `max_ingest_connections`
    /// (counted and logged).
    pub fn ingest_permit(&self) -> Option<OwnedSemaphorePermit> {
        let p = self.ingest.clone().try_acquire_owned().ok();
        if p.is_none() {
            let max = self.config.max_ingest_connections;
            self.log.hit("max_ingest_connections", || {
                tracing::warn!(
                    max,
                    "ingest connection refused: limits.max_ingest_connections reached"
                );
            });
        }
        p
    }

    /// A permit for one more `/ws/floor` connection, or `None` at `max_floor_connections`.
    pub fn floor_permit(&self) -> Option<OwnedSemaphorePermit> {
        let p = self.floor.clone().try_acquire_owned().ok();
        if p.is_none() {
            let max = self.config.max_floor_connections;
            self.log.hit("max_floor_connections", || {
                tracing::warn!(
                    max,
                    "wallboard connection refused: limits.max_floor_connections reached"
                );
            });
        }
        p
    }

    /// The rate bucket of `source`, shared by all its connections while any holds it.
    pub fn bucket(&self, source: &Id) -> Arc<Mutex<Bucket>> {
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = map.get(source).and_then(Weak::upgrade) {
            return b;
        }
        // Names whose connections are all gone go with the next new one.
        map.retain(|_, w| w.strong_count() > 0);
        let b = Arc::new(Mutex::new(Bucket::new(
            self.config.max_events_per_second,
            Instant::now(),
        )));
        map.insert(source.clone(), Arc::downgrade(&b));
        b
    }

    /// How long a source must wait before `n` more events are read from it; a non-zero
    /// wait is counted as a hit of `max_events_per_second`.
    pub fn rate_wait(&self, source: &Id, bucket: &Mutex<Bucket>, n: usize) -> Duration {
        let wait = bucket
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(n, Instant::now());
        if !wait.is_zero() {
            let max = self.config.max_events_per_second;
            self.log.hit("max_events_per_second", || {
                tracing::warn!(source = %source, max, wait_ms = wait.as_millis() as u64,
                    "source faster than limits.max_events_per_second: reading it more slowly");
            });
        }
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_lets_a_second_through_then_makes_the_rest_wait() {
        let t0 = Instant::now();
        let mut b = Bucket::new(100, t0);
        assert_eq!(b.take(100, t0), Duration::ZERO);
        // 50 more at once: half a second of debt.
        assert_eq!(b.take(50, t0), Duration::from_millis(500));
        // After that half second the debt is paid; 10 more wait 0.1 s.
        let t1 = t0 + Duration::from_millis(500);
        let w = b.take(10, t1);
        assert!((w.as_secs_f64() - 0.1).abs() < 1e-9, "{w:?}");
        // Idle for long: at most one second's worth is saved up.
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!(b.take(100, t2), Duration::ZERO);
        assert!(b.take(1, t2) > Duration::ZERO);
    }

    #[test]
    fn connections_of_one_source_share_a_bucket() {
        let metrics = Arc::new(Metrics::new().unwrap_or_else(|e| panic!("{e}")));
        let limiter = Limiter::new(ShellLimits::default(), metrics);
        let a = limiter.bucket(&Id::from("pbx"));
        let b = limiter.bucket(&Id::from("pbx"));
        let c = limiter.bucket(&Id::from("other"));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        drop((a, b));
        let d = limiter.bucket(&Id::from("new"));
        assert!(Arc::ptr_eq(&d, &limiter.bucket(&Id::from("new"))));
        assert_eq!(
            limiter
                .buckets
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .len(),
            2,
            "the bucket of a source with no connection is forgotten"
        );
    }

    #[test]
    fn connection_permits_run_out_and_come_back() {
        let metrics = Arc::new(Metrics::new().unwrap_or_else(|e| panic!("{e}")));
        let config = ShellLimits {
            max_ingest_connections: 2,
            ..ShellLimits::default()
        };
        let limiter = Limiter::new(config, metrics.clone());
        let a = limiter.ingest_permit();
        let b = limiter.ingest_permit();
        assert!(a.is_some() && b.is_some());
        assert!(limiter.ingest_permit().is_none());
        assert_eq!(
            metrics
                .limit_hits
                .with_label_values(&["max_ingest_connections"])
                .get(),
            1
        );
        drop(a);
        assert!(limiter.ingest_permit().is_some());
    }
}
