//! Alerts to team leads: every violation is pushed to Alertmanager (and/or a signed webhook)
//! as it is raised, resolved when it clears, escalated to the supervisor when it stays open,
//! and re-sent until every target has it.
//!
//! Owns: the [`AlertBook`] (pure, in [`book`]), the words of an alert ([`text`]), one delivery
//! task per target ([`deliver`]), the rows of the durable outbox ([`outbox`]), and the
//! handle the engine task feeds ([`Alerts`]).
//! Must not: block the engine task. The engine task only takes the book's lock for
//! microseconds to hand over effects; HTTP happens in the delivery tasks, and a slow or dead
//! target only grows the (bounded) book.
//!
//! Durability: the book's changes ([`OutboxChanges`]) are written to the store's
//! `alert_outbox` table by the engine task together with the violations, before the engine checkpoint that covers them;
//! on start the outbox is loaded and the journal tail replays into it, so an alert survives a
//! restart and an Alertmanager outage. Delivery is at least once; Alertmanager de-duplicates
//! by label set.

pub mod book;
pub mod deliver;
pub mod outbox;
pub mod text;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

pub use book::{Admitted, Alert, AlertBook, Batch, Contacts, Micros, Settings, TargetKind};
pub use deliver::{Target, TargetError};
pub use outbox::OutboxChanges;
pub use text::Language;

use crate::config::Config;
use crate::engine::Violation;
use crate::time::Timestamp;

/// Shared between the engine task (which feeds the book) and the delivery tasks.
pub struct Shared {
    book: Mutex<AlertBook>,
    /// One per target: rung when the book may have something new for it.
    wake: Vec<Notify>,
    /// Delivery lag of first deliveries of a change (µs), all targets.
    lag: Mutex<hdrhistogram::Histogram<u64>>,
    /// A ring of the delivery tasks is queued on the blocking pool ([`Alerts::wake_all`]).
    ringing: AtomicBool,
}

impl Shared {
    fn ring(&self) {
        for w in &self.wake {
            w.notify_one();
        }
    }
}

/// The engine task's handle on the alerts. Cheap to clone.
#[derive(Clone)]
pub struct Alerts {
    shared: Arc<Shared>,
    targets: Arc<Vec<Target>>,
}

impl Alerts {
    /// The book and targets of `config`; `None` when no target is configured. `listen` is the
    /// address the daemon is bound to (the default base of `generatorURL`).
    pub fn from_config(
        config: &Config,
        listen: std::net::SocketAddr,
    ) -> Result<Option<Alerts>, TargetError> {
        let a = &config.alerts;
        if !a.enabled() {
            return Ok(None);
        }
        let mut targets = Vec::new();
        for url in &a.alertmanager {
            targets.push(Target::alertmanager(url)?);
        }
        if let Some(w) = &a.webhook {
            targets.push(Target::webhook(&w.url, w.secret.as_deref())?);
        }
        let contacts: HashMap<String, Contacts> = config
            .teams
            .iter()
            .map(|t| {
                (
                    t.id.clone(),
                    Contacts {
                        lead: t.lead.clone(),
                        supervisor: t.supervisor.clone(),
                    },
                )
            })
            .collect();
        let settings = Settings {
            escalate_after: a.escalate_after,
            resolve_hold: a.resolve_hold,
            resend_every: a.resend_every,
            max_alerts: a.max_pending,
            language: Language::from_config(&config.ui.language),
            external_url: a.external_url.clone().unwrap_or_else(|| {
                let scheme = if config.server.tls.is_some() {
                    "https"
                } else {
                    "http"
                };
                format!("{scheme}://{listen}")
            }),
        };
        let kinds = targets.iter().map(|t| t.kind).collect();
        Ok(Some(Alerts::new(
            AlertBook::new(settings, kinds, contacts),
            targets,
        )))
    }

    pub fn new(book: AlertBook, targets: Vec<Target>) -> Alerts {
        let lag = hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3)
            .unwrap_or_else(|_| hdrhistogram::Histogram::new(3).expect("3 significant figures"));
        Alerts {
            shared: Arc::new(Shared {
                wake: targets.iter().map(|_| Notify::new()).collect(),
                book: Mutex::new(book),
                lag: Mutex::new(lag),
                ringing: AtomicBool::new(false),
            }),
            targets: Arc::new(targets),
        }
    }

    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// The book, for a short look or change. A poisoned lock (a panic elsewhere while it was
    /// held) still gives the book: its state is valid between calls.
    pub fn book(&self) -> MutexGuard<'_, AlertBook> {
        self.shared
            .book
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Rings the delivery tasks. From a runtime worker (the engine task), the ring comes from
    /// a blocking-pool thread: a task woken from a worker waits in that worker's LIFO slot,
    /// which no other worker may take, until the waking task yields, and the engine task may
    /// run for a long while (a burst of violations, then the journal's `fdatasync`). Rung
    /// from outside, the delivery task goes to the shared queue and an idle worker runs it at
    /// once. One ring at a time is in the pool; rings while it is queued are folded into it.
    fn wake_all(&self) {
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                if !self.shared.ringing.swap(true, Ordering::AcqRel) {
                    let shared = self.shared.clone();
                    drop(rt.spawn_blocking(move || {
                        shared.ringing.store(false, Ordering::Release);
                        shared.ring();
                    }));
                }
            }
            Err(_) => self.shared.ring(),
        }
    }

    /// A violation was raised.
    pub fn raise(&self, v: &Violation, wall: Micros) -> Admitted {
        let r = self.book().handle_violation(v, wall);
        if r == Admitted::New {
            self.wake_all();
        }
        r
    }

    /// Violation `id`'s condition cleared at `at`.
    pub fn cleared(&self, id: u64, at: Timestamp, wall: Micros) {
        self.book().handle_cleared(id, at, wall);
        self.wake_all();
    }

    /// The engine clock moved to `now`; runs escalation and hold timers that are due.
    pub fn tick(&self, now: Timestamp, wall: Micros) {
        let mut book = self.book();
        if book.poll_timeout().is_some_and(|t| t <= now) {
            book.handle_timeout(now, wall);
            drop(book);
            self.wake_all();
        }
    }

    /// Percentiles (p50, p90, p99, max) of the delivery lag so far, in µs, and the count.
    pub fn lag_percentiles(&self) -> (u64, u64, u64, u64, u64) {
        let h = self
            .shared
            .lag
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.9),
            h.value_at_quantile(0.99),
            h.max(),
            h.len(),
        )
    }

    fn record_lags(&self, lags: &[Micros]) {
        let mut h = self
            .shared
            .lag
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for &l in lags {
            h.saturating_record(u64::try_from(l).unwrap_or(0).max(1));
        }
    }
}

/// A violation for tests: agent a-0042 of hotline-1, a 15 s ring limit; a call for ring kinds,
/// reason `break` for break kinds.
#[cfg(test)]
pub(crate) fn sample_violation(id: u64, kind: crate::engine::Kind, at: Timestamp) -> Violation {
    use crate::engine::{EventRef, Evidence, Rule, TypeName};
    let rule = kind.rule();
    Violation {
        id,
        rule,
        kind,
        agent: "a-0042".into(),
        team: "hotline-1".into(),
        call: (rule == Rule::RingAnswer).then(|| "c-77".into()),
        reason: (rule == Rule::BreakOverrun).then(|| "break".into()),
        at,
        points: 1,
        deduction: 10.0,
        detected_at: at,
        evidence: Evidence::new(
            EventRef {
                at: at.plus(-15_000),
                source: None,
                seq: None,
                id: None,
                event_type: TypeName("call.ringing"),
            },
            15_000,
            "3 rings x 5s = 15s",
            15_000,
        ),
    }
}
