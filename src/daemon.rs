//! The daemon: wires config, the engine owner task, ingest and HTTP, and runs them until
//! shutdown.
//!
//! Owns: the one task that owns the [`Engine`] ([`EngineTask`]), its command channel, and the
//! daemon's lifecycle ([`start`], [`run`], [`run_main`]).
//!
//! The owner task `select!`s over commands from ingest connections (connect, event batches,
//! disconnect), a timer and shutdown. After applying it publishes views to [`Floor`] and
//! updates [`Metrics`]; nothing else ever touches the engine. It never writes to a socket:
//! replies go back through oneshot channels, so a slow connection cannot stall it.
//!
//! Engine clock (protocol page, "Ordering and time"): events are applied in arrival order at
//! their `ts` (or their receive time with `source.clock = "receipt"`). The timer moves the
//! engine clock to `now - source.delay` only while at least one source is connected and every
//! connected source is caught up (its latest event arrived within `source.max_lag` of its
//! `ts`, or it has sent nothing for `source.idle`; a connection that has sent nothing yet
//! counts from its connect time). It wakes at `poll_timeout() + delay` and at least every
//! [`TICK`] so that waits move. With no source connected the engine clock stands still.
//!
//! Durability (protocol page, "ack = durably stored"): with a store, every applied event is
//! encoded as a journal record and appended, one write and one `fdatasync` per batch, before
//! the reply; the ack is the highest `seq` per source that is in the journal, tracked apart
//! from the engine's de-duplication point. The owner task does this file I/O itself, blocking
//! for one `fdatasync` per batch: it keeps the order of journal and engine trivially equal.
//! When an append fails, the records stay in a bounded pending queue (arrival order), acks
//! stop, `/readyz` says why, and every tick retries; once the queue holds
//! [`PENDING_CAPACITY`] records the task stops taking commands (sources wait: back-pressure,
//! nothing is dropped). Violation changes go to SQLite after the records that caused them are
//! journaled. Every `store.checkpoint_every` (with nothing pending) the engine's state is
//! checkpointed with the journal end; a restart restores it and replays the journal after it.
//!
//! Must not: read wall time other than through [`Clock`], block on anything but the store's
//! per-batch writes, or hold a lock of the read side across an `.await`.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::alert::{Admitted, Alert, Alerts, Micros};
use crate::cli::RunArgs;
use crate::clock::Clock;
use crate::config::{Config, ConfigError, SourceClock, SourceConfig, SourceMode};
use crate::engine::{Applied, Checkpoint, Effect, Engine, KpiRetention, Limit, QueueOutcome};
use crate::event::{Event, Id};
use crate::floor::Floor;
use crate::metrics::{Metrics, SeriesBook};
use crate::store::{encode_record, read_records, Store, ViolationOp};
use crate::time::{Calendar, Millis, Timestamp};

/// How often the owner task wakes even without deadlines, so that waits and gauges move.
pub const TICK: Millis = 250;

/// Capacity of the engine command channel. When it is full, the connection that wants to
/// send waits (back-pressure on that source); the owner task never waits on a connection.
pub const COMMAND_CAPACITY: usize = 1024;

/// Journal records accepted but not yet stored that make the owner task stop taking
/// commands (a batch may take it past this; nothing is ever dropped).
pub const PENDING_CAPACITY: usize = 100_000;

/// At most this many commands are applied before their records are stored together (group
/// commit): one `fdatasync` for many frames when sources send faster than the disk syncs.
const GROUP_COMMANDS: usize = 256;

/// A batch applied and waiting for the group's write before it is answered.
struct Answered {
    reply: oneshot::Sender<BatchReply>,
    source: Id,
    outcomes: Vec<Outcome>,
}

/// How often retention runs (and once at start).
pub const RETENTION_EVERY: Millis = 3_600_000;

/// How often the month-to-date appraisal gauges are refreshed.
pub const APPRAISAL_EVERY: Millis = 60_000;

/// Days of appraisal accumulators the daemon's engine keeps.
pub const KPI_DAYS: u32 = 62;

/// Shutdown did not finish within `server.shutdown_grace`: the daemon warned and stopped
/// waiting (exit code [`crate::cli::EXIT_GRACE`] from `floorwatch run`).
#[derive(Debug, thiserror::Error)]
#[error("shutdown did not finish within server.shutdown_grace ({0:?}); stopped waiting")]
pub struct GraceExceeded(pub Duration);

/// Identifies one ingest connection to the owner task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(u64);

/// What happened to one event of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied {
        at: Timestamp,
        late: bool,
    },
    Duplicate,
    /// Refused by an engine limit; not applied, not journaled.
    Refused(Limit),
}

/// The owner task's answer to a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchReply {
    /// One per event, in order.
    pub outcomes: Vec<Outcome>,
    /// The highest `seq` processed from the connection's source, after the batch.
    pub ack: Option<u64>,
}

enum Command {
    Connect {
        source: Id,
        reply: oneshot::Sender<(ConnId, Option<u64>, watch::Receiver<Option<u64>>)>,
    },
    Batch {
        conn: ConnId,
        /// Wall time at which the frame arrived.
        received: Timestamp,
        events: Vec<Event>,
        reply: oneshot::Sender<BatchReply>,
    },
    Disconnect {
        conn: ConnId,
    },
    /// An event made by the HTTP API (approvals), from source [`API_SOURCE`].
    Api {
        event: Event,
        reply: oneshot::Sender<Result<ApiReply, Limit>>,
    },
    /// The end of the stored journal (`None` without a store).
    JournalEnd {
        reply: oneshot::Sender<Option<crate::journal::Position>>,
    },
    /// The approvals active at the engine clock.
    Approvals {
        reply: oneshot::Sender<Vec<crate::engine::ApprovalView>>,
    },
}

/// The source name of events made by the HTTP API.
pub const API_SOURCE: &str = "api";

/// What happened to an API event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiReply {
    /// The time the engine applied it at.
    pub at: Timestamp,
    /// Whether it is in the journal already (else pending: the store is failing).
    pub stored: bool,
}

/// A handle for sending commands to the engine owner task. Cheap to clone.
#[derive(Clone)]
pub struct EngineClient {
    tx: mpsc::Sender<Command>,
}

/// The owner task has stopped (shutdown).
#[derive(Debug, thiserror::Error)]
#[error("the engine task has stopped")]
pub struct EngineStopped;

impl EngineClient {
    /// Registers a new connection of `source`; returns its id and the resume point
    /// (`resume_after` of the hello).
    pub async fn connect(&self, source: &str) -> Result<(ConnId, Option<u64>), EngineStopped> {
        let (conn, resume, _) = self.connect_with_acks(source).await?;
        Ok((conn, resume))
    }

    /// [`EngineClient::connect`], plus a watch of the connection's ack (the highest stored
    /// `seq` of its source). It changes whenever a store write advances it, also when that
    /// happens on a retry after a storage fault, with no frame to reply to.
    pub async fn connect_with_acks(
        &self,
        source: &str,
    ) -> Result<(ConnId, Option<u64>, watch::Receiver<Option<u64>>), EngineStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Connect {
                source: Id::from(source),
                reply,
            })
            .await
            .map_err(|_| EngineStopped)?;
        rx.await.map_err(|_| EngineStopped)
    }

    /// Applies `events` (decoded, in arrival order) received at `received`. Waits while the
    /// command channel is full.
    pub async fn apply(
        &self,
        conn: ConnId,
        received: Timestamp,
        events: Vec<Event>,
    ) -> Result<BatchReply, EngineStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Batch {
                conn,
                received,
                events,
                reply,
            })
            .await
            .map_err(|_| EngineStopped)?;
        rx.await.map_err(|_| EngineStopped)
    }

    /// Applies an event made by the API (source [`API_SOURCE`]), journaled like any other;
    /// the inner error is an engine limit that refused it.
    pub async fn apply_api(&self, event: Event) -> Result<Result<ApiReply, Limit>, EngineStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Api { event, reply })
            .await
            .map_err(|_| EngineStopped)?;
        rx.await.map_err(|_| EngineStopped)
    }

    /// The approvals active at the engine clock, by agent, then start.
    pub async fn approvals(&self) -> Result<Vec<crate::engine::ApprovalView>, EngineStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Approvals { reply })
            .await
            .map_err(|_| EngineStopped)?;
        rx.await.map_err(|_| EngineStopped)
    }

    /// The end of what the journal holds durably: readers beside the daemon read up to it.
    pub async fn journal_end(&self) -> Result<Option<crate::journal::Position>, EngineStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::JournalEnd { reply })
            .await
            .map_err(|_| EngineStopped)?;
        rx.await.map_err(|_| EngineStopped)
    }

    /// Tells the owner task that connection `conn` is gone.
    pub async fn disconnect(&self, conn: ConnId) {
        // If the task has stopped there is nothing left to tell.
        let _ = self.tx.send(Command::Disconnect { conn }).await;
    }
}

/// The engine owner task and the read side it publishes.
pub struct EngineTask {
    client: EngineClient,
    floor: Arc<Floor>,
    metrics: Arc<Metrics>,
    join: JoinHandle<()>,
}

impl EngineTask {
    /// Spawns the owner task on the current runtime. It stops when `shutdown` is cancelled.
    ///
    /// Without a store: acks mean "processed", and nothing survives a restart (tests).
    pub fn spawn(
        config: &Config,
        clock: Clock,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> std::io::Result<EngineTask> {
        EngineTask::spawn_with(
            config,
            clock,
            metrics,
            shutdown,
            Engine::new(config.rules.clone()),
            None,
            None,
        )
    }

    /// Spawns the owner task with a restored engine and, if given, the store it journals to.
    pub fn spawn_with(
        config: &Config,
        clock: Clock,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
        engine: Engine,
        store: Option<Store>,
        alerts: Option<Alerts>,
    ) -> std::io::Result<EngineTask> {
        let floor = Arc::new(Floor::new(Calendar::new(config.rules.timezone.clone())));
        let (tx, rx) = mpsc::channel(COMMAND_CAPACITY);
        let waivers = store.as_ref().and_then(|s| match s.reader() {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the store for waivers; appraisal gauges count waived violations");
                None
            }
        });
        let appraiser = crate::appraiser::start(config.rules.clone(), waivers, metrics.clone())?;
        let durable = store.map(|store| Durable {
            acked: engine.sources().into_iter().collect(),
            writer: store
                .checkpoint_writer()
                .inspect_err(|e| {
                    tracing::warn!(error = %e, "no checkpoint thread; checkpoints are written by the engine task")
                })
                .ok(),
            store,
            records: Vec::new(),
            seqs: Vec::new(),
            ops: Vec::new(),
            fault: None,
            checkpoint_every: config.store.checkpoint_every,
            next_checkpoint: clock.now().plus(config.store.checkpoint_every),
            retention: config.store.retention,
            next_retention: clock.now(),
            checkpointed: None,
            alert_rows: std::collections::BTreeMap::new(),
        });
        let mut owner = Owner {
            engine,
            durable,
            clock,
            source: config.source.clone(),
            conns: HashMap::new(),
            next_conn: 0,
            floor: floor.clone(),
            metrics: metrics.clone(),
            book: SeriesBook::default(),
            effects: Vec::new(),
            calendar: Calendar::new(config.rules.timezone.clone()),
            day_end: None,
            alerts,
            appraiser,
            next_appraisal: clock.now(),
            appraisal_month: None,
            limits: crate::limits::LimitLog::new(metrics.clone()),
        };
        owner.publish_restored();
        let join = tokio::spawn(owner.run(rx, shutdown));
        Ok(EngineTask {
            client: EngineClient { tx },
            floor,
            metrics,
            join,
        })
    }

    pub fn client(&self) -> EngineClient {
        self.client.clone()
    }

    pub fn floor(&self) -> Arc<Floor> {
        self.floor.clone()
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Waits for the task to end (after shutdown was cancelled).
    pub async fn join(self) {
        if let Err(e) = self.join.await {
            tracing::error!(error = %e, "engine task failed");
        }
    }
}

struct ConnState {
    source: Id,
    /// Wall time of the latest frame with events, or of the connect.
    last_activity: Timestamp,
    /// Whether the latest event arrived within `max_lag` of its `ts`.
    lag_ok: bool,
    /// The source's ack, for the session to send when it moves without a reply.
    ack: watch::Sender<Option<u64>>,
}

/// The store side of the owner task.
struct Durable {
    store: Store,
    /// Encodes and writes checkpoints off the engine task (`None`: it could not start, and
    /// the task writes them itself).
    writer: Option<crate::store::CheckpointWriter>,
    /// Encoded journal records of applied events not yet stored, in arrival order.
    records: Vec<Vec<u8>>,
    /// Source and `seq` of each of `records`.
    seqs: Vec<(Id, Option<u64>)>,
    /// Violation changes not yet in the database (after the records that caused them).
    ops: Vec<ViolationOp>,
    /// Highest `seq` per source that is in the journal: the ack and `resume_after`.
    acked: HashMap<Id, u64>,
    /// Why the last store write failed, while it keeps failing.
    fault: Option<String>,
    checkpoint_every: Millis,
    next_checkpoint: Timestamp,
    /// `store.retention`, applied at start and then every [`RETENTION_EVERY`].
    retention: Millis,
    next_retention: Timestamp,
    /// Journal end and engine clock of the last checkpoint taken.
    checkpointed: Option<(crate::journal::Position, Option<Timestamp>)>,
    /// Alert outbox changes not yet in the database: the alert as JSON, or `None` to delete.
    alert_rows: std::collections::BTreeMap<u64, Option<String>>,
}

struct Owner {
    engine: Engine,
    durable: Option<Durable>,
    clock: Clock,
    source: SourceConfig,
    conns: HashMap<ConnId, ConnState>,
    next_conn: u64,
    floor: Arc<Floor>,
    metrics: Arc<Metrics>,
    book: SeriesBook,
    effects: Vec<Effect>,
    /// Local calendar for retiring per-agent counters at day rollover.
    calendar: Calendar,
    day_end: Option<Timestamp>,
    /// The alert book's handle, when alert targets are configured.
    alerts: Option<Alerts>,
    /// Computes the month-to-date appraisal gauges (reading waivers, with a store).
    appraiser: crate::appraiser::Appraiser,
    /// When the appraisal gauges are next refreshed (wall time), and the month they show.
    next_appraisal: Timestamp,
    appraisal_month: Option<crate::time::Period>,
    /// Counts and logs events refused by the engine's limits.
    limits: crate::limits::LimitLog,
}

/// The engine's snapshot for this tick: taken once, then shared by the threads that need it.
fn shared_snapshot(engine: &Engine, slot: &mut Option<Arc<Checkpoint>>) -> Arc<Checkpoint> {
    slot.get_or_insert_with(|| Arc::new(engine.checkpoint()))
        .clone()
}

impl Owner {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>, shutdown: CancellationToken) {
        tracing::debug!("engine task started");
        loop {
            let wake = self.next_wake();
            let full = self.pending_full();
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                // While the pending queue is full, commands wait in the channel and senders
                // wait on it: back-pressure on every source.
                cmd = rx.recv(), if !full => match cmd {
                    Some(cmd) => {
                        // Group commit: what else is already waiting is applied too, then
                        // stored with one write and one fdatasync, then every batch of the
                        // group is answered (so an ack never runs ahead of the journal).
                        let mut done = Vec::new();
                        self.handle_command(cmd, &mut done);
                        let mut taken = 1;
                        while taken < GROUP_COMMANDS && !self.pending_full() {
                            match rx.try_recv() {
                                Ok(cmd) => self.handle_command(cmd, &mut done),
                                Err(_) => break,
                            }
                            taken += 1;
                        }
                        self.answer(done);
                    }
                    None => break,
                },
                _ = tokio::time::sleep_until(self.clock.instant_at(wake)) => self.handle_tick(),
            }
        }
        // Drain: what connections handed over before the shutdown is still applied and
        // stored (its acks may not reach the source; it resends, and duplicates are ignored).
        rx.close();
        let mut drained = 0u64;
        let mut done = Vec::new();
        while let Ok(cmd) = rx.try_recv() {
            self.handle_command(cmd, &mut done);
            drained += 1;
        }
        self.answer(done);
        if self.durable.is_some() {
            self.flush();
            // The last checkpoint must not be skipped for one still being written.
            if let Some(w) = self.durable.as_ref().and_then(|d| d.writer.as_ref()) {
                w.wait_idle();
            }
            self.checkpoint();
            if let Some(w) = self.durable.as_mut().and_then(|d| d.writer.as_mut()) {
                w.finish();
            }
        }
        self.appraiser.finish();
        tracing::debug!(drained, "engine task stopped");
    }

    /// Whether the daemon's clock may move the engine clock now.
    fn may_advance(&self, now: Timestamp) -> bool {
        !self.conns.is_empty()
            && self
                .conns
                .values()
                .all(|c| c.lag_ok || now.since(c.last_activity) >= self.source.idle)
    }

    fn next_wake(&self) -> Timestamp {
        let now = self.clock.now();
        let mut wake = now.plus(TICK);
        if self.may_advance(now) {
            let book = self.alerts.as_ref().and_then(|a| a.book().poll_timeout());
            for p in [self.engine.poll_timeout(), book].into_iter().flatten() {
                wake = wake.min(p.plus(self.source.delay));
            }
        }
        wake
    }

    /// Whether the records waiting for the journal reached [`PENDING_CAPACITY`].
    fn pending_full(&self) -> bool {
        self.durable
            .as_ref()
            .is_some_and(|d| d.records.len() >= PENDING_CAPACITY)
    }

    /// Stores what the group of commands left pending, then answers its batches with the
    /// ack as it stands after the write.
    fn answer(&mut self, done: Vec<Answered>) {
        if done.is_empty() {
            return;
        }
        if self.durable.is_some() {
            self.flush();
        }
        for a in done {
            let _ = a.reply.send(BatchReply {
                outcomes: a.outcomes,
                ack: self.acked(&a.source),
            });
        }
    }

    /// `done` collects applied batches; they are answered by [`Owner::answer`] once stored.
    fn handle_command(&mut self, cmd: Command, done: &mut Vec<Answered>) {
        match cmd {
            Command::Connect { source, reply } => {
                let conn = ConnId(self.next_conn);
                self.next_conn += 1;
                let resume = self.acked(&source);
                tracing::info!(source = %source, conn = conn.0, resume_after = ?resume, "source connected");
                let (ack, acks) = watch::channel(resume);
                self.conns.insert(
                    conn,
                    ConnState {
                        source,
                        last_activity: self.clock.now(),
                        lag_ok: false,
                        ack,
                    },
                );
                self.publish_connections();
                // The connection may have gone already; then there is nobody to tell.
                let _ = reply.send((conn, resume, acks));
            }
            Command::Disconnect { conn } => {
                if let Some(c) = self.conns.remove(&conn) {
                    tracing::info!(source = %c.source, conn = conn.0, "source disconnected");
                }
                self.publish_connections();
            }
            Command::Batch {
                conn,
                received,
                events,
                reply,
            } => {
                let (source, outcomes) = self.handle_batch(conn, received, events);
                done.push(Answered {
                    reply,
                    source,
                    outcomes,
                });
            }
            Command::Api { event, reply } => {
                let r = self.handle_api(event);
                let _ = reply.send(r);
            }
            Command::JournalEnd { reply } => {
                let _ = reply.send(self.durable.as_ref().map(|d| d.store.end()));
            }
            Command::Approvals { reply } => {
                let _ = reply.send(self.engine.active_approvals());
            }
        }
    }

    fn publish_connections(&self) {
        self.floor.set_sources_connected(self.conns.len());
        self.floor.bump();
        self.metrics
            .source_connected
            .set(i64::try_from(self.conns.len()).unwrap_or(i64::MAX));
    }

    /// Applies a batch; returns its source and the outcome of each event. Its records wait
    /// in `durable.records` for the group's write.
    fn handle_batch(
        &mut self,
        conn: ConnId,
        received: Timestamp,
        events: Vec<Event>,
    ) -> (Id, Vec<Outcome>) {
        let Some(state) = self.conns.get(&conn) else {
            return (Id::default(), Vec::new());
        };
        let source = state.source.clone();
        let mut outcomes = Vec::with_capacity(events.len());
        let mut last_ts = None;
        let mut queue_changed = false;
        for mut ev in events {
            let lag = received.since(ev.ts);
            self.metrics.observe_lag(lag);
            last_ts = Some(ev.ts);
            let ts = ev.ts;
            if self.source.clock == SourceClock::Receipt {
                ev.ts = received;
            }
            let outcome = match self.engine.handle_event(&source, &ev, &mut self.effects) {
                Applied::Applied { at, late } => {
                    if let Some(d) = self.durable.as_mut() {
                        // The journal keeps the event as sent and the time it was applied at.
                        ev.ts = ts;
                        d.records.push(encode_record(at, &source, &ev));
                        d.seqs.push((source.clone(), ev.seq));
                    }
                    self.metrics.count_event(ev.body.type_name());
                    if late {
                        self.metrics.events_late.inc();
                    }
                    Outcome::Applied { at, late }
                }
                Applied::Duplicate => {
                    self.metrics.events_duplicate.inc();
                    Outcome::Duplicate
                }
                Applied::Refused(limit) => {
                    self.limit_hit(limit);
                    Outcome::Refused(limit)
                }
            };
            outcomes.push(outcome);
            queue_changed |= self.drain_effects();
        }
        if let (Some(ts), Some(c)) = (last_ts, self.conns.get_mut(&conn)) {
            c.last_activity = received;
            // Receipt-stamped events are on time by definition.
            c.lag_ok = self.source.clock == SourceClock::Receipt
                || received.since(ts) <= self.source.max_lag;
        }
        let applied = outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Applied { .. }));
        // Any applied event may move a queue (snapshots replace them without Queue effects).
        self.after_apply(queue_changed || applied, applied);
        (source, outcomes)
    }

    /// Counts and logs (rate-limited) an event refused by an engine limit.
    fn limit_hit(&mut self, limit: Limit) {
        self.metrics.observe_rejected(limit.reason_label());
        self.limits.hit(limit.key(), || {
            tracing::warn!(limit = limit.key(), "{}", limit.message());
        });
    }

    /// Applies one API event (no `seq`: never a duplicate) and stores it.
    fn handle_api(&mut self, event: Event) -> Result<ApiReply, Limit> {
        let at = match self
            .engine
            .handle_event(API_SOURCE, &event, &mut self.effects)
        {
            Applied::Applied { at, .. } => at,
            // Without a seq an event is never a duplicate; keep the engine's time anyway.
            Applied::Duplicate => self.engine.now().unwrap_or(event.ts),
            Applied::Refused(limit) => {
                self.limit_hit(limit);
                return Err(limit);
            }
        };
        self.metrics.count_event(event.body.type_name());
        if let Some(d) = self.durable.as_mut() {
            d.records.push(encode_record(at, API_SOURCE, &event));
            d.seqs.push((Id::const_new(API_SOURCE), None));
        }
        let queue_changed = self.drain_effects();
        self.after_apply(queue_changed, true);
        self.flush();
        Ok(ApiReply {
            at,
            stored: self.durable.as_ref().is_none_or(|d| d.records.is_empty()),
        })
    }

    /// The highest `seq` of `source` that may be acknowledged: stored, with a store.
    fn acked(&self, source: &str) -> Option<u64> {
        match &self.durable {
            Some(d) => d.acked.get(source).copied(),
            None => self.engine.highest_seq(source),
        }
    }

    /// Journals the pending records (one write, one `fdatasync`), then writes the pending
    /// violation changes. On failure everything stays pending for the next try; the first
    /// failure is logged and published for `/readyz`, and so is the recovery.
    fn flush(&mut self) {
        let Some(d) = self.durable.as_mut() else {
            return;
        };
        let result = (|| {
            if !d.records.is_empty() {
                d.store
                    .append(&d.records)
                    .map_err(|e| format!("journal append failed: {e}"))?;
                d.records.clear();
                for (source, seq) in d.seqs.drain(..) {
                    if let Some(seq) = seq {
                        let h = d.acked.entry(source).or_insert(seq);
                        *h = (*h).max(seq);
                    }
                }
                for c in self.conns.values() {
                    let now = d.acked.get(&c.source).copied();
                    c.ack.send_if_modified(|v| {
                        let moved = *v != now;
                        *v = now;
                        moved
                    });
                }
            }
            if !d.ops.is_empty() {
                d.store
                    .write_violations(&d.ops)
                    .map_err(|e| format!("database write failed: {e}"))?;
                d.ops.clear();
            }
            write_alert_rows(d, self.alerts.as_ref())?;
            Ok::<(), String>(())
        })();
        match result {
            Ok(()) => {
                if let Some(was) = d.fault.take() {
                    tracing::info!(was = %was, "store recovered; acknowledging again");
                    self.floor.set_store_fault(None);
                }
            }
            Err(e) => {
                if d.fault.is_none() {
                    tracing::error!(
                        error = %e,
                        pending = d.records.len(),
                        "store write failed; not acknowledging, retrying every tick"
                    );
                    self.floor.set_store_fault(Some(e.clone()));
                }
                d.fault = Some(e);
            }
        }
    }

    /// Stores the engine's checkpoint with the journal end, if nothing is pending and the
    /// engine moved since the last one.
    fn checkpoint(&mut self) {
        self.checkpoint_with(&mut None);
    }

    /// [`Owner::checkpoint`], with the snapshot already taken on this tick, if any.
    fn checkpoint_with(&mut self, snapshot: &mut Option<Arc<Checkpoint>>) {
        let Some(d) = self.durable.as_mut() else {
            return;
        };
        // Outbox changes since the flush (deliveries that finished) go first, so that they do
        // not hold the checkpoint back.
        if d.records.is_empty() && d.ops.is_empty() {
            if let Err(e) = write_alert_rows(d, self.alerts.as_ref()) {
                tracing::warn!(error = %e, "cannot store alert outbox changes; will retry");
            }
        }
        // The checkpoint must not run ahead of what the database holds: a restart replays
        // only the journal after it.
        if !d.records.is_empty() || !d.ops.is_empty() || !d.alert_rows.is_empty() {
            return;
        }
        let end = d.store.end();
        let clock = self.engine.now();
        if d.checkpointed == Some((end, clock)) {
            return;
        }
        let day = clock
            .map(|c| self.calendar.day_of(c).date.to_string())
            .unwrap_or_default();
        if let Some(w) = &d.writer {
            if w.is_busy() {
                // The previous one is still being written: try again next time.
                return;
            }
            let job = crate::store::CheckpointJob {
                checkpoint: shared_snapshot(&self.engine, snapshot),
                clock,
                position: end,
                day,
            };
            if w.submit(job) {
                d.checkpointed = Some((end, clock));
            }
            return;
        }
        let json = match serde_json::to_string(&self.engine.checkpoint()) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode the engine checkpoint");
                return;
            }
        };
        match d.store.save_checkpoint(clock, end, &day, &json) {
            Ok(()) => {
                d.checkpointed = Some((end, clock));
                tracing::debug!(
                    bytes = json.len(),
                    segment = end.segment,
                    offset = end.offset,
                    "checkpoint stored"
                );
            }
            Err(e) => tracing::warn!(error = %e, "cannot store a checkpoint; will retry"),
        }
    }

    /// Publishes the state of a restored engine to the read side.
    fn publish_restored(&mut self) {
        for view in self.engine.agent_views() {
            self.book.agent_changed(&self.metrics, &view);
            self.floor.put_agent(view);
        }
        for v in self.engine.open_violations() {
            self.floor.push_violation(v);
        }
        self.after_apply(true, true);
    }

    fn handle_tick(&mut self) {
        let now = self.clock.now();
        let mut moved = false;
        if self.may_advance(now) {
            let target = now.plus(-self.source.delay);
            if self.engine.now().is_none_or(|t| target > t) {
                self.engine.handle_timeout(target, &mut self.effects);
                self.drain_effects();
                moved = true;
            }
        }
        // Queue views (waits, the 15-minute window) move only with the engine clock.
        self.after_apply(moved, moved);
        // One snapshot serves the appraisal and the checkpoint of the same tick.
        let mut snapshot = None;
        self.refresh_appraisal(now, &mut snapshot);
        let Some(d) = self.durable.as_mut() else {
            return;
        };
        let alerts_changed = self.alerts.as_ref().is_some_and(|a| a.book().has_changes());
        let retry = d.fault.is_some()
            || !d.ops.is_empty()
            || !d.records.is_empty()
            || !d.alert_rows.is_empty()
            || alerts_changed;
        let due = now >= d.next_checkpoint;
        if due {
            d.next_checkpoint = now.plus(d.checkpoint_every);
        }
        let expire = now >= d.next_retention;
        if expire {
            d.next_retention = now.plus(RETENTION_EVERY);
        }
        if retry {
            self.flush();
        }
        if due {
            self.checkpoint_with(&mut snapshot);
        }
        if expire {
            self.expire(now);
        }
    }

    /// Sets the month-to-date appraisal gauges every [`APPRAISAL_EVERY`] and as soon as the
    /// engine clock enters a new month. The rows are computed on the appraisal thread from a
    /// snapshot; if the previous refresh is still running, this one waits for a later tick.
    fn refresh_appraisal(&mut self, wall: Timestamp, snapshot: &mut Option<Arc<Checkpoint>>) {
        let Some(now) = self.engine.now() else {
            return;
        };
        let date = self.calendar.day_of(now).date;
        let month = crate::time::Period::Month(date.year(), date.month());
        if wall < self.next_appraisal && self.appraisal_month == Some(month) {
            return;
        }
        if self.appraiser.is_busy() {
            return;
        }
        let job = crate::appraiser::AppraisalJob {
            snapshot: shared_snapshot(&self.engine, snapshot),
            month,
            end: now,
        };
        if self.appraiser.submit(job) {
            self.next_appraisal = wall.plus(APPRAISAL_EVERY);
            self.appraisal_month = Some(month);
        }
    }

    /// Deletes checkpoints and journal segments older than `store.retention` (wall time).
    /// Removing whole files is quick; it runs on the tick, between batches.
    fn expire(&mut self, now: Timestamp) {
        let Some(d) = self.durable.as_mut() else {
            return;
        };
        match d.store.apply_retention(now, d.retention) {
            Ok(0) => {}
            Ok(bytes) => tracing::info!(bytes, "retention removed old journal segments"),
            Err(e) => tracing::warn!(error = %e, "retention failed; will retry"),
        }
    }

    /// Publishes what changed after events or a timeout.
    fn after_apply(&mut self, refresh_queues: bool, changed: bool) {
        let now = self.engine.now();
        if let (Some(alerts), Some(now)) = (&self.alerts, now) {
            alerts.tick(now, self.clock.now_micros());
            self.metrics
                .alerts_outbox
                .set(i64::try_from(alerts.book().len()).unwrap_or(i64::MAX));
        }
        if changed || now != self.floor.engine_clock() {
            self.floor.bump();
        }
        self.floor.set_engine_clock(now);
        if let Some(now) = now {
            self.roll_day(now);
        }
        if refresh_queues {
            let queues = self.engine.queue_views();
            self.book.queues(&self.metrics, &queues, now);
            self.floor.set_queues(queues);
        }
    }

    fn roll_day(&mut self, now: Timestamp) {
        self.floor.roll_day(now);
        match self.day_end {
            Some(end) if now < end => {}
            previous => {
                self.day_end = Some(self.calendar.day(now).end);
                if previous.is_some() {
                    self.book.retire_logged_out(&self.metrics);
                }
            }
        }
    }

    /// Publishes the engine's current view of `agent`.
    fn refresh_agent(&mut self, agent: &str) {
        if let Some(view) = self.engine.agent_view(agent) {
            self.book.agent_changed(&self.metrics, &view);
            self.floor.put_agent(view);
        }
    }

    /// Applies the pending effects to the read side and metrics; returns whether any queue
    /// moved.
    fn drain_effects(&mut self) -> bool {
        let now = self.engine.now().unwrap_or_default();
        let mut queue_changed = false;
        let metrics = self.metrics.clone();
        let metrics = &*metrics;
        let mut effects = std::mem::take(&mut self.effects);
        for effect in effects.drain(..) {
            match effect {
                Effect::Violation(v) => {
                    tracing::info!(
                        id = v.id,
                        rule = v.rule.as_str(),
                        kind = v.kind.as_str(),
                        agent = %v.agent,
                        team = %v.team,
                        at = %v.at,
                        "violation"
                    );
                    self.book.violation(metrics, &v);
                    if let Some(alerts) = &self.alerts {
                        if alerts.raise(&v, self.clock.now_micros()) == Admitted::Dropped {
                            metrics.alerts_dropped.inc();
                            tracing::warn!(
                                id = v.id,
                                "alert outbox full of firing alerts; no alert for this violation"
                            );
                        }
                    }
                    if let Some(d) = self.durable.as_mut() {
                        d.ops.push(ViolationOp::Raised(v.clone()));
                    }
                    let agent = v.agent.clone();
                    self.floor.push_violation(*v);
                    // The agent's open-violation count changed; the engine says so only
                    // through the view.
                    self.refresh_agent(&agent);
                }
                Effect::Cleared { id, at, ended_by } => {
                    if let Some(alerts) = &self.alerts {
                        alerts.cleared(id, at, self.clock.now_micros());
                    }
                    if let Some(d) = self.durable.as_mut() {
                        d.ops.push(ViolationOp::Cleared {
                            id,
                            at,
                            ended_by: ended_by.clone(),
                        });
                    }
                    if let Some((rule, team, agent)) = self.floor.close_violation(id, at, ended_by)
                    {
                        self.book.cleared(metrics, rule.as_str(), &team);
                        self.refresh_agent(&agent);
                    }
                }
                Effect::AgentChanged { agent } => self.refresh_agent(&agent),
                Effect::Queue { queue, outcome } => {
                    queue_changed = true;
                    match outcome {
                        QueueOutcome::Offered => {
                            metrics.calls_offered.with_label_values(&[&queue]).inc();
                        }
                        QueueOutcome::Answered { wait } => {
                            metrics.calls_answered.with_label_values(&[&queue]).inc();
                            metrics
                                .answer_wait_seconds
                                .with_label_values(&[&queue])
                                .observe(wait.max(0) as f64 / 1000.0);
                            self.floor.record_wait(now, &queue, wait);
                        }
                        QueueOutcome::Abandoned { .. } => {
                            metrics.calls_abandoned.with_label_values(&[&queue]).inc();
                        }
                    }
                }
                Effect::RingEnded { team, ring, .. } => {
                    metrics
                        .ring_seconds
                        .with_label_values(&[&team])
                        .observe(ring.max(0) as f64 / 1000.0);
                    self.floor.record_ring(now, &team, ring);
                }
            }
        }
        // Keep the buffer's capacity for the next batch.
        self.effects = effects;
        queue_changed
    }
}

/// Writes the alert book's changes (with any left from a failed write) to the outbox table.
fn write_alert_rows(d: &mut Durable, alerts: Option<&Alerts>) -> Result<(), String> {
    if let Some(alerts) = alerts {
        collect_alert_rows(alerts, &mut d.alert_rows);
    }
    if d.alert_rows.is_empty() {
        return Ok(());
    }
    let mut put = Vec::new();
    let mut delete = Vec::new();
    for (id, row) in &d.alert_rows {
        match row {
            Some(json) => put.push((*id, json.clone())),
            None => delete.push(*id),
        }
    }
    d.store
        .write_alerts(&put, &delete)
        .map_err(|e| format!("alert outbox write failed: {e}"))?;
    d.alert_rows.clear();
    Ok(())
}

/// Moves the alert book's changes into `rows` (the latest state of each alert wins).
fn collect_alert_rows(alerts: &Alerts, rows: &mut std::collections::BTreeMap<u64, Option<String>>) {
    let (put, removed) = alerts.book().take_changes();
    for a in put {
        match serde_json::to_string(&a) {
            Ok(json) => {
                rows.insert(a.id(), Some(json));
            }
            Err(e) => {
                tracing::error!(id = a.id(), error = %e, "cannot encode an alert for the outbox")
            }
        }
    }
    for id in removed {
        rows.insert(id, None);
    }
}

/// Checks what the daemon needs of a config beyond what `config` validates.
pub fn validate(config: &Config) -> Result<(), ConfigError> {
    let err = |key: &str, message: String| ConfigError {
        message,
        key: Some(key.to_string()),
        line: None,
        column: None,
    };
    // Also here, not only in the file's validation: `demo --listen` and embedders set it.
    if let Some(message) = config.server.exposure() {
        return Err(err("server.listen", message));
    }
    if config.source.mode == SourceMode::Connect {
        match config.source.url.as_deref() {
            None | Some("") => {
                return Err(err(
                    "source.url",
                    "source.url: required when source.mode = \"connect\"".into(),
                ))
            }
            Some(u) if !(u.starts_with("ws://") || u.starts_with("wss://")) => {
                return Err(err(
                    "source.url",
                    format!("source.url: want a ws:// or wss:// URL, not {u:?}"),
                ))
            }
            Some(_) => {}
        }
    }
    if let (SourceMode::Connect, Some(ca)) = (config.source.mode, config.source.ca.as_deref()) {
        if let Err(e) = crate::ingest::load_ca(ca) {
            return Err(err("source.ca", e.to_string()));
        }
    }
    if config.source.max_frame == 0 {
        return Err(err(
            "source.max_frame",
            "source.max_frame: must be > 0".into(),
        ));
    }
    Ok(())
}

/// A running daemon.
pub struct DaemonHandle {
    local_addr: SocketAddr,
    shutdown: CancellationToken,
    engine: EngineTask,
    server: JoinHandle<()>,
    dialer: Option<JoinHandle<()>>,
    adapters: Vec<JoinHandle<()>>,
    deliveries: Vec<JoinHandle<()>>,
    alerts: Option<Alerts>,
    /// `server.shutdown_grace`.
    grace: Duration,
    /// Resolves once every ingest and wallboard connection has closed.
    sockets_closed: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl DaemonHandle {
    /// The alerts' handle (book and delivery lag), when targets are configured.
    pub fn alerts(&self) -> Option<&Alerts> {
        self.alerts.as_ref()
    }

    /// The address the HTTP server is bound to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The published read side.
    pub fn floor(&self) -> Arc<Floor> {
        self.engine.floor()
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.engine.metrics()
    }

    /// Stops accepting, closes ingest and wallboard connections (close code 1001), drains and
    /// stops the engine task (journal flushed, checkpoint taken), ends alert delivery (the
    /// outbox is in the store); bounded by `server.shutdown_grace`. Returns false when the
    /// grace passed first: then it warns and stops waiting.
    pub async fn shutdown(self) -> bool {
        let grace = self.grace;
        self.shutdown.cancel();
        let all = async {
            if let Err(e) = self.server.await {
                tracing::error!(error = %e, "http server task failed");
            }
            if let Some(d) = self.dialer {
                if let Err(e) = d.await {
                    tracing::error!(error = %e, "dialer task failed");
                }
            }
            // Upgraded connections outlive the server task: wait for their close frames.
            self.sockets_closed.await;
            for a in self.adapters {
                if let Err(e) = a.await {
                    tracing::error!(error = %e, "adapter task failed");
                }
            }
            self.engine.join().await;
            for d in self.deliveries {
                if let Err(e) = d.await {
                    tracing::error!(error = %e, "alert delivery task failed");
                }
            }
        };
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!(grace = ?grace, "shutdown took longer than server.shutdown_grace; stopped waiting");
            return false;
        }
        tracing::info!("daemon stopped");
        true
    }
}

/// A store opened and an engine brought up to its journal's end.
pub struct Restored {
    pub store: Store,
    pub engine: Engine,
    /// Journal records replayed after the checkpoint.
    pub replayed: u64,
    /// Whether a checkpoint was restored.
    pub from_checkpoint: bool,
}

/// Opens the store in `store.dir` (a torn journal tail is truncated and logged), restores the
/// newest checkpoint (or starts a fresh engine) and replays the journal after it, upserting
/// the violations raised. Blocks on file I/O; runs before anything is served.
///
/// With `alerts`, the store's alert outbox is loaded into the book first, and the violations
/// the tail raises and clears go to the book as well (`wall`: the time of the start).
pub fn restore(config: &Config, alerts: Option<&Alerts>, wall: Micros) -> anyhow::Result<Restored> {
    let started = std::time::Instant::now();
    let dir = &config.store.dir;
    let (mut store, recovery) =
        Store::open(dir).with_context(|| format!("cannot open the store in {}", dir.display()))?;
    if recovery.truncated_bytes > 0 {
        tracing::warn!(
            bytes = recovery.truncated_bytes,
            segment = recovery.end.segment,
            offset = recovery.end.offset,
            "journal had a torn tail; truncated to the last good record (the cut bytes are kept in a quarantine file)"
        );
    }
    let retention = KpiRetention::LastDays(KPI_DAYS);
    let checkpoint = store
        .latest_checkpoint()
        .context("cannot read checkpoints")?;
    let from_checkpoint = checkpoint.is_some();
    let (mut engine, from) = match checkpoint {
        Some(cp) => {
            let parsed: Checkpoint = serde_json::from_str(&cp.json)
                .with_context(|| format!("checkpoint {} does not decode", cp.id))?;
            let engine = Engine::restore(config.rules.clone(), retention, parsed)
                .with_context(|| format!("checkpoint {}", cp.id))?;
            (engine, Some(cp.position))
        }
        None => (
            Engine::with_retention(config.rules.clone(), retention),
            None,
        ),
    };
    if let Some(alerts) = alerts {
        let rows = store
            .alert_outbox()
            .context("cannot read the alert outbox")?;
        let mut loaded = Vec::with_capacity(rows.len());
        for (id, json) in rows {
            match serde_json::from_str::<Alert>(&json) {
                Ok(a) => loaded.push(a),
                Err(e) => {
                    tracing::warn!(id, error = %e, "alert outbox row does not decode; skipped")
                }
            }
        }
        alerts.book().restore(loaded);
    }
    let mut effects = Vec::new();
    let mut ops = Vec::new();
    let mut replayed = 0u64;
    let mut refused = 0u64;
    let reader = store
        .read_journal(from)
        .context("cannot read the journal")?;
    for r in read_records(reader) {
        let (_, rec) = r.context("cannot replay the journal")?;
        if let Applied::Refused(limit) =
            engine.handle_event(&rec.source, &rec.applied_event(), &mut effects)
        {
            // Only when [limits] was lowered since the record was journaled.
            refused += 1;
            if refused == 1 {
                tracing::warn!(
                    limit = limit.key(),
                    "journal record refused on restore: {}",
                    limit.message()
                );
            }
        }
        replayed += 1;
        if let Some(alerts) = alerts {
            for e in &effects {
                match e {
                    Effect::Violation(v) => {
                        alerts.raise(v, wall);
                    }
                    Effect::Cleared { id, at, .. } => alerts.cleared(*id, *at, wall),
                    _ => {}
                }
            }
        }
        ops.extend(effects.drain(..).filter_map(ViolationOp::from_effect));
        if ops.len() >= 10_000 {
            store
                .write_violations(&ops)
                .context("cannot store violations")?;
            ops.clear();
        }
    }
    store
        .write_violations(&ops)
        .context("cannot store violations")?;
    if let (Some(alerts), Some(now)) = (alerts, engine.now()) {
        alerts.tick(now, wall);
    }
    tracing::info!(
        dir = %dir.display(),
        from_checkpoint,
        replayed,
        engine_clock = ?engine.now(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "store restored"
    );
    Ok(Restored {
        store,
        engine,
        replayed,
        from_checkpoint,
    })
}

/// Validates `config`, binds the HTTP port (port 0 allowed), spawns the engine task, the
/// server and (in connect mode) the dialer, with the system clock.
pub async fn start(config: Config) -> anyhow::Result<DaemonHandle> {
    start_with_clock(config, Clock::system()).await
}

/// [`start`] with a given clock (tests under `tokio::time::pause()`).
pub async fn start_with_clock(config: Config, clock: Clock) -> anyhow::Result<DaemonHandle> {
    validate(&config)?;
    let tls = match &config.server.tls {
        Some(files) => Some(
            crate::tls::server_config(&files.cert, &files.key).map_err(|e| ConfigError {
                message: e.message,
                key: Some(e.key.to_string()),
                line: None,
                column: None,
            })?,
        ),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let local_addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let shutdown = CancellationToken::new();
    let metrics = match &config.metrics.pseudonym_key {
        Some(key) => Metrics::new()?.pseudonymize_agents(key.0.as_bytes()),
        None => Metrics::new()?,
    };
    let metrics = Arc::new(metrics);
    let alerts = Alerts::from_config(&config, local_addr)?;
    let restored = restore(&config, alerts.as_ref(), clock.now_micros())?;
    let reader = restored
        .store
        .reader()
        .context("cannot open the store for reading")?;
    let engine = EngineTask::spawn_with(
        &config,
        clock,
        metrics.clone(),
        shutdown.clone(),
        restored.engine,
        Some(restored.store),
        alerts.clone(),
    )
    .context("cannot start the appraisal thread")?;
    let deliveries = match &alerts {
        Some(a) => crate::alert::deliver::spawn(
            a,
            clock,
            metrics.clone(),
            Duration::from_millis(config.alerts.timeout.max(1) as u64),
            Duration::from_millis(config.alerts.retry_max.max(1) as u64),
            shutdown.clone(),
        )?,
        None => Vec::new(),
    };
    let config = Arc::new(config);
    let limits = Arc::new(crate::limits::Limits::new(config.limits, metrics.clone()));
    let ingest = crate::ingest::Ingest::new(
        config.clone(),
        clock,
        engine.client(),
        metrics.clone(),
        limits.clone(),
        shutdown.clone(),
    );
    let dialer = (config.source.mode == SourceMode::Connect).then(|| {
        let ingest = ingest.clone();
        tokio::spawn(async move { ingest.run_dialer().await })
    });
    let adapters = crate::adapter::spawn_all(
        &config.adapters,
        &engine.client(),
        clock,
        &metrics,
        &limits,
        &shutdown,
        &config.store.dir,
    );
    let feed = crate::feed::FloorFeed::new(
        engine.floor(),
        crate::http::FeedParts {
            config: config.clone(),
            floor: engine.floor(),
        },
    );
    tokio::spawn(feed.clone().run(shutdown.clone()));
    let sockets_closed = {
        let (ingest, feed) = (ingest.all_closed(), feed.all_closed());
        Box::pin(async move {
            ingest.await;
            feed.await;
        })
    };
    let app = crate::http::router(crate::http::AppState {
        config: config.clone(),
        floor: engine.floor(),
        metrics: metrics.clone(),
        ingest,
        store: Some(reader),
        engine: engine.client(),
        clock,
        shutdown: shutdown.clone(),
        feed,
        limits,
    });
    let token = shutdown.clone();
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let server = match tls {
        None => tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(token.cancelled_owned());
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "http server failed");
            }
        }),
        Some(tls) => {
            use axum::serve::ListenerExt;
            let listener = crate::tls::TlsListener::new(listener, tls, shutdown.clone())
                .context("cannot read the bound address")?
                // A tapped listener gives handlers its peer address (`ConnectInfo`).
                .tap_io(|_| ());
            tokio::spawn(async move {
                let serve =
                    axum::serve(listener, app).with_graceful_shutdown(token.cancelled_owned());
                if let Err(e) = serve.await {
                    tracing::error!(error = %e, "https server failed");
                }
            })
        }
    };
    tracing::info!(listen = %local_addr, tls = config.server.tls.is_some(), mode = ?config.source.mode, "daemon started");
    Ok(DaemonHandle {
        local_addr,
        shutdown,
        engine,
        server,
        dialer,
        adapters,
        deliveries,
        alerts,
        grace: Duration::from_millis(config.server.shutdown_grace.max(1) as u64),
        sockets_closed,
    })
}

/// Runs the daemon until `shutdown` completes, then shuts it down; [`GraceExceeded`] when
/// that took longer than `server.shutdown_grace`.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let grace = Duration::from_millis(config.server.shutdown_grace.max(1) as u64);
    let handle = start(config).await?;
    crate::service::handle_reload_signal();
    crate::service::ready(handle.local_addr());
    shutdown.await;
    crate::service::stopping();
    tracing::info!(grace = ?grace, "shutting down");
    if handle.shutdown().await {
        Ok(())
    } else {
        Err(GraceExceeded(grace).into())
    }
}

/// `floorwatch run`: loads and validates the config before binding, then runs until SIGINT or
/// SIGTERM. A config error comes back as [`ConfigError`] (exit code 78 in `main`).
pub fn run_main(args: RunArgs) -> anyhow::Result<()> {
    let config = crate::config::load(args.config.as_deref())?;
    validate(&config)?;
    // A second install (e.g. a test harness did it) is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    init_tracing();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(run(config, async {
        let first = shutdown_signal().await;
        tracing::info!(
            signal = first.name(),
            "signal received; a second one exits at once"
        );
        // A second signal ends the process at once, whatever is still running.
        tokio::spawn(async {
            let second = shutdown_signal().await;
            tracing::warn!(signal = second.name(), "second signal: exiting at once");
            std::process::exit(second.exit_code());
        });
    }));
    // Tasks still running after the grace (a blocked write, say) must not hold the exit.
    runtime.shutdown_timeout(Duration::from_millis(500));
    result
}

/// A signal that asks the daemon to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopSignal {
    Interrupt,
    Terminate,
}

impl StopSignal {
    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Interrupt => "SIGINT",
            StopSignal::Terminate => "SIGTERM",
        }
    }

    /// The exit code when a second signal ends the process at once: 128 + the signal number,
    /// as a shell reports a process killed by it (130 for SIGINT, 143 for SIGTERM).
    pub fn exit_code(self) -> i32 {
        match self {
            StopSignal::Interrupt => 130,
            StopSignal::Terminate => 143,
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

async fn shutdown_signal() -> StopSignal {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => StopSignal::Interrupt,
        _ = term => StopSignal::Terminate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_mode_needs_a_websocket_url() {
        let mut c = Config::default();
        assert!(validate(&c).is_ok());
        c.source.mode = SourceMode::Connect;
        let e = validate(&c).expect_err("no url");
        assert_eq!(e.key.as_deref(), Some("source.url"));
        c.source.url = Some("http://pbx/events".into());
        assert!(validate(&c).is_err());
        c.source.url = Some("wss://pbx/events".into());
        assert!(validate(&c).is_ok());
    }
}
