//! Adapters for phone systems that do not speak the floorwatch protocol: each turns the
//! platform's native events into protocol [`Event`]s and sends them down the same path as
//! WebSocket ingest (journal, engine, metrics), so replay and audit work the same.
//!
//! Owns: per platform, a pure mapper (native message in, protocol events out; no I/O, no
//! clock) and the I/O task that reads the platform and feeds an [`EngineSink`].
//! Must not: apply rules (the engine does) or bypass the engine task.

pub mod ami;
pub mod esl;
pub mod queue_log;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::{AdapterKind, Config, SourceClock};
use crate::event::{Event, Id};
use crate::limits::{Bucket, Limiter};
use crate::metrics::Metrics;
use crate::owner::{BatchReply, ConnId, EngineClient, EngineStopped, Proof, Prover};
use crate::time::Millis;

/// A native identifier as a protocol one, or `None` when empty or longer than the protocol
/// allows (an event with it could not be decoded again, so not replayed from the journal).
pub(crate) fn protocol_id(v: &str) -> Option<Id> {
    (!v.is_empty() && v.len() <= crate::event::MAX_ID_LEN).then(|| Id::from(v))
}

/// A native pause reason cut to the protocol's identifier length at a character boundary (a
/// reason that long is in no `reasons` table, so it stays an unknown reason either way).
pub(crate) fn protocol_reason(r: &str) -> Id {
    let mut end = r.len().min(crate::event::MAX_ID_LEN);
    while !r.is_char_boundary(end) {
        end -= 1;
    }
    Id::from(&r[..end])
}

/// Where an adapter's events go: the engine task, as one source connection.
///
/// Like a WebSocket source, an adapter is held to `limits.max_events_per_second`: over it,
/// [`EngineSink::send`] waits before handing the events on, so the adapter reads the platform
/// more slowly (TCP back-pressure on AMI and ESL, a slower tail of queue_log). Nothing is
/// dropped for rate.
///
/// The engine clock follows the daemon's clock only as far as every source has proved it
/// handed over what it read ([`Proof`]): the AMI and event-socket clients answer the owner
/// task's requests with [`EngineSink::prover`] (their read buffer found empty), the
/// queue_log tail proves with [`Proof::Through`] each time it reads to the end of the file.
///
/// A native message stamped more than the source's `max_future` ahead of the daemon's clock
/// is refused before it is mapped ([`EngineSink::refuse_future`]), so that it changes no
/// adapter state either (a `queue_log` line from next year would hold the reorder window
/// open for a year); the owner task would refuse its events anyway.
pub struct EngineSink {
    engine: EngineClient,
    clock: Clock,
    source: Id,
    /// The source's `max_future` (`None` with `source.clock = "receipt"`: nothing to check).
    max_future: Option<Millis>,
    metrics: Arc<Metrics>,
    conn: Option<ConnId>,
    /// The owner task's requests for proofs, of the current connection.
    wanted: Option<tokio::sync::watch::Receiver<u64>>,
    limiter: Arc<Limiter>,
    bucket: Arc<std::sync::Mutex<Bucket>>,
    shutdown: CancellationToken,
}

impl EngineSink {
    pub fn new(
        engine: EngineClient,
        clock: Clock,
        source: &str,
        max_future: Option<Millis>,
        limiter: Arc<Limiter>,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> EngineSink {
        let source = Id::from(source);
        EngineSink {
            engine,
            clock,
            bucket: limiter.bucket(&source),
            source,
            max_future,
            metrics,
            conn: None,
            wanted: None,
            limiter,
            shutdown,
        }
    }

    /// The wall time, from the daemon's clock (adapters must not read the system clock).
    pub fn now(&self) -> crate::time::Timestamp {
        self.clock.now()
    }

    /// The source name events are journaled under.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether a native message stamped `ts` lies more than the source's `max_future` ahead
    /// of the daemon's clock; if so it is counted (`floorwatch_events_future_total{source}`,
    /// `reason="ts_in_future"`) and logged (rate-limited), and the caller skips it.
    pub fn refuse_future(&self, ts: crate::time::Timestamp) -> bool {
        let Some(max) = self.max_future else {
            return false;
        };
        let ahead = ts.since(self.clock.now());
        if ahead <= max {
            return false;
        }
        self.metrics.count_future(&self.source);
        self.limiter.log.hit("max_future", || {
            tracing::warn!(
                source = %self.source,
                ahead_ms = ahead,
                max_future_ms = max,
                "message refused: its time lies ahead of the daemon's clock by more than max_future; check the phone system's clock (NTP) or set source.clock = \"receipt\""
            );
        });
        true
    }

    /// The platform is connected: registers the source connection (counted by
    /// `floorwatch_source_connected`). Returns the highest `seq` of this source already
    /// stored, for adapters that number their events (a file offset, say).
    pub async fn connected(&mut self) -> Result<Option<u64>, EngineStopped> {
        if let Some(c) = self.conn.take() {
            self.engine.disconnect(c).await;
        }
        let link = self.engine.link(&self.source, self.max_future).await?;
        self.conn = Some(link.conn);
        self.wanted = Some(link.wanted);
        Ok(link.resume)
    }

    /// A [`Prover`] answering the owner task's requests on the current connection (one that
    /// is never asked before [`EngineSink::connected`]).
    pub fn prover(&self) -> Prover {
        match &self.wanted {
            Some(w) => Prover::new(self.clock, w.clone()),
            None => Prover::idle(self.clock),
        }
    }

    /// Hands the owner task a proof of what this source has handed over (after every batch
    /// sent before it). Nothing to do while not connected.
    pub async fn prove(&self, proof: Proof) -> Result<(), EngineStopped> {
        match self.conn {
            Some(conn) => self.engine.prove(conn, proof).await,
            None => Ok(()),
        }
    }

    /// Applies `events` (in time order), received now. Connects first if needed. Waits first
    /// when the source is over `limits.max_events_per_second`.
    pub async fn send(&mut self, events: Vec<Event>) -> Result<BatchReply, EngineStopped> {
        let since = self.clock.now();
        let wait = self
            .limiter
            .rate_wait(&self.source, &self.bucket, events.len());
        if !wait.is_zero() {
            tokio::select! {
                // The engine refuses the batch below once it has stopped.
                _ = self.shutdown.cancelled() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        let conn = match self.conn {
            Some(c) => c,
            None => {
                self.connected().await?;
                self.conn.ok_or(EngineStopped)?
            }
        };
        self.engine
            .apply_held(conn, since, self.clock.now(), events)
            .await
    }

    /// The platform connection is gone (the engine clock stops following the wall clock
    /// for this source, as for a WebSocket source).
    pub async fn disconnected(&mut self) {
        if let Some(c) = self.conn.take() {
            self.engine.disconnect(c).await;
        }
        self.wanted = None;
    }
}

/// What every adapter task gets besides its own settings.
pub struct AdapterContext {
    /// The source name (journal, `seq` scope, metric label).
    pub name: String,
    pub sink: EngineSink,
    pub metrics: Arc<Metrics>,
    pub shutdown: CancellationToken,
    /// `store.dir`, for adapters that keep a little state of their own next to the journal
    /// (the `queue_log` tail's file identity).
    pub store_dir: PathBuf,
    /// `[source] max_lag` and `idle`, for an adapter that judges itself whether its source is
    /// caught up (the `queue_log` tail, whose events the reorder window holds back).
    pub max_lag: Millis,
    pub idle: Millis,
}

impl AdapterContext {
    /// Counts one native message by outcome: `mapped`, `ignored` or `malformed`.
    pub fn count(&self, outcome: &str) {
        self.metrics
            .adapter_messages
            .with_label_values(&[self.name.as_str(), outcome])
            .inc();
    }

    pub fn set_connected(&self, up: bool) {
        self.metrics
            .adapter_connected
            .with_label_values(&[self.name.as_str()])
            .set(i64::from(up));
    }

    pub fn count_reconnect(&self) {
        self.metrics
            .adapter_reconnects
            .with_label_values(&[self.name.as_str()])
            .inc();
    }
}

/// Spawns one task per adapter of `config` (`config.adapters`, with `[source]` timing and
/// `store.dir`); each runs until `shutdown`.
pub fn spawn_all(
    config: &Config,
    engine: &EngineClient,
    clock: Clock,
    metrics: &Arc<Metrics>,
    limiter: &Arc<Limiter>,
    shutdown: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    let source = &config.source;
    config
        .adapters
        .iter()
        .map(|a| {
            let max_future = (source.clock == SourceClock::Event)
                .then(|| a.max_future.unwrap_or(source.max_future));
            let cx = AdapterContext {
                name: a.name.clone(),
                sink: EngineSink::new(
                    engine.clone(),
                    clock,
                    &a.name,
                    max_future,
                    limiter.clone(),
                    metrics.clone(),
                    shutdown.clone(),
                ),
                metrics: metrics.clone(),
                shutdown: shutdown.clone(),
                store_dir: config.store.dir.clone(),
                max_lag: source.max_lag,
                idle: source.idle,
            };
            cx.set_connected(false);
            let kind = a.kind.clone();
            tokio::spawn(async move {
                tracing::info!(source = %cx.name, kind = kind.kind().as_str(), "adapter started");
                match kind {
                    AdapterKind::AsteriskAmi(c) => ami::client::run(c, cx).await,
                    AdapterKind::AsteriskQueueLog(c) => queue_log::tail::run(c, cx).await,
                    AdapterKind::FreeswitchEsl(c) => esl::client::run(c, cx).await,
                }
            })
        })
        .collect()
}
