//! The one task that owns the [`Engine`] ([`EngineTask`]), and its mailbox (`mailbox`: the
//! [`EngineClient`] that sources and the API send with, and the replies): everything that
//! changes the engine goes through it.
//!
//! Owns: the owner task (commands, the timer, group commit to the store, publishing views to
//! [`Floor`] and [`Metrics`], handing violations to the alert book), the command channel, and
//! start-up from the store ([`restore`]). Stands below every surface that feeds it (ingest,
//! adapters, HTTP) and above the engine, the store, the read side and the alerts.
//!
//! The owner task `select!`s over commands from ingest connections (connect, event batches,
//! disconnect), a timer and shutdown. After applying it publishes views to [`Floor`] and
//! updates [`Metrics`]; nothing else ever touches the engine. It never writes to a socket:
//! replies go back through oneshot channels, so a slow connection cannot stall it.
//!
//! Engine clock (protocol page, "Ordering and time"): events are applied in arrival order at
//! their `ts` (or their receive time with `source.clock = "receipt"`). The daemon's clock
//! moves the engine clock towards `now - source.delay` only while at least one source is
//! connected, the store is not failing, and every connected source is caught up (its latest
//! event arrived within `source.max_lag` of its `ts`, or it has sent nothing for
//! `source.idle`; a connection that has sent nothing yet counts from its connect time) — and
//! only as far as every connection has *proved* it handed over what it received: a
//! [`Proof::Drained`] at `T` (its transport found empty after the runtime polled the sockets
//! later than `T`, see [`Prover`]) lets the clock go to `T - delay`, a [`Proof::Through`] to
//! its own time. Proofs come through the command channel after the connection's batches, so
//! a connection the daemon holds back (a rate-limit wait, a full channel, a frozen process)
//! proves nothing meanwhile. Whoever "has sent nothing" is judged on what was proved read:
//! after a freeze the timer cannot run ahead of what waited in a socket. A connection whose
//! events waited longer than `delay` between being read and being stored (a failing or slow
//! store, a full channel, the rate limit) is *released* when they are stored: not caught up
//! until a new event on time, or `idle` from then, since its source may have kept events back
//! while it waited for acks. The task asks every connection for proofs at every tick
//! ([`TICK`]) and at `poll_timeout() + delay`, and moves the clock as they come in. With no
//! source connected the engine clock stands still.
//!
//! Live, some events are refused before the engine sees them ([`Refused`]): one whose `ts`
//! lies more than the connection's `max_future` ahead of the daemon's clock when received, a
//! `snapshot` that would start a new episode more than [`MAX_SNAPSHOT_AGE`] ago, a `rulebook`.
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
//! per-batch writes, hold a lock of the read side across an `.await`, or know any transport
//! (sockets, HTTP, phone systems).

mod mailbox;
mod restore;
#[cfg(test)]
mod tests;

pub use mailbox::{
    forwarding, ApiRefused, ApiReply, BatchReply, Closed, ConnId, Connecting, EngineClient,
    EngineStopped, Forward, Inbox, Link, Outcome, Proof, Prover, Refused, Resolved, StreamLink,
    Submit, MAX_SNAPSHOT_AGE, SUBMIT_TIMEOUT,
};
pub use restore::{restore, rulebook_event, Restored};

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::alert::{Admitted, Alerts, OutboxChanges};
use crate::clock::Clock;
use crate::config::{Config, SourceClock, SourceConfig, API_SOURCE};
use crate::engine::{Applied, Checkpoint, Effect, Engine, Limit, QueueOutcome};
use crate::event::{Event, Id};
use crate::floor::Floor;
use crate::metrics::{Metrics, SeriesBook};
use crate::store::{encode_record, Store, ViolationOp};
use crate::time::{Calendar, Millis, Timestamp};
use mailbox::Command;

/// How often the owner task wakes even without deadlines, so that waits and gauges move.
/// The longest an approval held at the engine clock may last: below the `minutes` bound
/// (10^15 ms) with room for the rounding of `minutes` in the journal.
const MAX_HELD_APPROVAL_MS: i64 = 999_999_999_000_000;

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

/// At most this many submitted events wait for their return from the stream at once.
pub const MAX_WAITING: usize = 4096;

/// A submitted event's waiter, answered once the event came back and was applied.
type Waiter = oneshot::Sender<Result<Resolved, ApiRefused>>;

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
/// At most this long after a violation is raised, the appraisal is refreshed (a busy floor
/// refreshes at most every this often, not at every violation).
pub const STANDING_AFTER_VIOLATION: Millis = 5_000;

/// Days of appraisal accumulators the daemon's engine keeps.
pub const KPI_DAYS: u32 = 62;

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
        let appraiser =
            crate::appraiser::start(config.rules.clone(), metrics.clone(), floor.clone())?;
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
            alert_rows: OutboxChanges::default(),
        });
        let stream = config
            .jetstream
            .as_ref()
            .map(|j| Arc::new(StreamLink::new(&j.name, &j.durable)));
        let mut owner = Owner {
            stream_source: stream.as_ref().map(|l| l.source.clone()),
            waiting: HashMap::new(),
            resolved: Vec::new(),
            engine,
            durable,
            clock,
            source: config.source.clone(),
            conns: HashMap::new(),
            next_conn: 0,
            wanted: watch::channel(0).0,
            proved: false,
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
            schedule_dirty: true,
            outbound_dirty: true,
            schedule_teams: std::collections::BTreeSet::new(),
        };
        owner.publish_restored();
        owner.publish_targets();
        owner.publish_schedule();
        let join = tokio::spawn(owner.run(rx, shutdown));
        Ok(EngineTask {
            client: EngineClient { tx, stream },
            floor,
            metrics,
            join,
        })
    }

    pub fn client(&self) -> EngineClient {
        self.client.clone()
    }

    /// The daemon's link to its shared stream (`None`: it reads no stream), for the source
    /// to set where submitted events are published.
    pub fn stream_link(&self) -> Option<Arc<StreamLink>> {
        self.client.stream.clone()
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
    /// Events whose `ts` lies more than this ahead of the daemon's clock are refused.
    max_future: Millis,
    /// Wall time of the latest frame with events, or of the connect.
    last_activity: Timestamp,
    /// Whether the latest event arrived within `max_lag` of its `ts` (and the daemon has
    /// not held the source back since).
    lag_ok: bool,
    /// Everything the connection received before this wall time has been handed over
    /// ([`Proof::Drained`]; the connect time at first).
    drained: Timestamp,
    /// The latest [`Proof::Through`], for connections that give them.
    through: Option<Timestamp>,
    /// When the daemon last let the source go after holding it back (events of it waited
    /// longer than `source.delay` between being read and being stored): `source.idle`
    /// counts from here too, as from the connect.
    released: Timestamp,
    /// When the oldest events of this connection that are not stored yet were read.
    unstored_since: Option<Timestamp>,
    /// The source's ack, for the session to send when it moves without a reply.
    ack: watch::Sender<Option<u64>>,
}

impl ConnState {
    /// The wall time up to which this connection lets the daemon's clock move the engine
    /// clock (before `source.delay`), or `None` while its source is not caught up: its
    /// latest event arrived within `max_lag` of its `ts`, or it has sent nothing for
    /// `idle`, as far as the connection has proved it handed everything over.
    fn bound(&self, source: &SourceConfig) -> Option<Timestamp> {
        let quiet = self.last_activity.max(self.released);
        let caught_up = self.lag_ok || self.drained.since(quiet) >= source.idle;
        caught_up.then_some(self.drained).max(self.through)
    }
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
    /// Alert outbox changes not yet in the database.
    alert_rows: OutboxChanges,
}

impl Durable {
    /// Writes the alert book's changes (with any left from a failed write) to the outbox.
    fn write_alert_rows(&mut self, alerts: Option<&Alerts>) -> Result<(), String> {
        if let Some(alerts) = alerts {
            self.alert_rows.collect(alerts);
        }
        if self.alert_rows.is_empty() {
            return Ok(());
        }
        let (put, delete) = self.alert_rows.rows();
        self.store
            .write_alerts(&put, &delete)
            .map_err(|e| format!("alert outbox write failed: {e}"))?;
        self.alert_rows.clear();
        Ok(())
    }
}

struct Owner {
    /// The source whose events come from the shared stream, when the daemon reads one.
    stream_source: Option<Id>,
    /// Submitted events published to the stream, by `id`, waiting to come back.
    waiting: HashMap<Id, Waiter>,
    /// Waiters whose event was applied in this group, answered after the group's write.
    resolved: Vec<(Waiter, Result<Resolved, ApiRefused>)>,
    engine: Engine,
    durable: Option<Durable>,
    clock: Clock,
    source: SourceConfig,
    conns: HashMap<ConnId, ConnState>,
    next_conn: u64,
    /// Bumped to ask every connection for a [`Proof`].
    wanted: watch::Sender<u64>,
    /// A proof came in since the engine clock was last moved by the daemon's clock.
    proved: bool,
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
    /// Something that decides who a shift covers now, or the outbound counters, changed
    /// since the floor's last publish (published on the tick, at most four times a second).
    schedule_dirty: bool,
    outbound_dirty: bool,
    /// The teams whose schedule gauges are set, to zero the ones that empty.
    schedule_teams: std::collections::BTreeSet<Id>,
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
                        if std::mem::take(&mut self.proved) {
                            self.advance_on_proof();
                        }
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

    /// Whether the store is failing (or holds records not yet stored): then the daemon's
    /// clock does not move the engine clock at all.
    fn store_failing(&self) -> bool {
        self.durable
            .as_ref()
            .is_some_and(|d| d.fault.is_some() || !d.records.is_empty())
    }

    /// Whether the daemon's clock may move the engine clock at all (given proofs).
    fn may_advance(&self) -> bool {
        !self.conns.is_empty() && !self.store_failing()
    }

    /// The time the daemon's clock may move the engine clock to now: `now - source.delay`,
    /// or less where a connection has proved less (module doc, "Engine clock"); `None` while
    /// a connected source is not caught up, with no source connected, or while the store is
    /// failing.
    fn clock_target(&self, now: Timestamp) -> Option<Timestamp> {
        if !self.may_advance() {
            return None;
        }
        let mut bound = now;
        for c in self.conns.values() {
            bound = bound.min(c.bound(&self.source)?);
        }
        Some(bound.plus(-self.source.delay))
    }

    /// Moves the engine clock as far as [`Owner::clock_target`] allows; returns whether it
    /// moved.
    fn advance(&mut self, now: Timestamp) -> bool {
        let Some(target) = self.clock_target(now) else {
            return false;
        };
        if self.engine.now().is_some_and(|t| target <= t) {
            return false;
        }
        self.engine.handle_timeout(target, &mut self.effects);
        self.drain_effects();
        true
    }

    /// A proof came in: the engine clock may move at once (a deadline waits for proofs).
    fn advance_on_proof(&mut self) {
        let now = self.clock.now();
        if !self.advance(now) {
            return;
        }
        self.after_apply(true, true);
        self.publish_schedule();
        self.set_clock_lag(now);
        if self.durable.as_ref().is_some_and(|d| !d.ops.is_empty()) {
            self.flush();
        }
    }

    /// Asks every connection for a [`Proof`] of what it has handed over.
    fn ask_proofs(&mut self) {
        if self.may_advance() {
            self.wanted.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    fn set_clock_lag(&self, now: Timestamp) {
        let lag = self.engine.now().map_or(0, |t| now.since(t));
        self.metrics.engine_clock_lag.set(lag as f64 / 1000.0);
    }

    fn next_wake(&self) -> Timestamp {
        let now = self.clock.now();
        let mut wake = now.plus(TICK);
        if self.may_advance() {
            let book = self.alerts.as_ref().and_then(|a| a.book().poll_timeout());
            for p in [self.engine.poll_timeout(), book].into_iter().flatten() {
                let at = p.plus(self.source.delay);
                // One already due waits for proofs, which move the clock when they come.
                if at > now {
                    wake = wake.min(at);
                }
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
        if done.is_empty() && self.resolved.is_empty() {
            return;
        }
        if self.durable.is_some() {
            self.flush();
        } else {
            self.stored(self.clock.now());
        }
        let stored = self.durable.as_ref().is_none_or(|d| d.records.is_empty());
        for a in done {
            let _ = a.reply.send(BatchReply {
                outcomes: a.outcomes,
                ack: self.acked(&a.source),
                stored,
            });
        }
        for (w, mut r) in self.resolved.drain(..) {
            if let Ok(r) = r.as_mut() {
                r.reply.stored = stored;
            }
            let _ = w.send(r);
        }
    }

    /// `done` collects applied batches; they are answered by [`Owner::answer`] once stored.
    fn handle_command(&mut self, cmd: Command, done: &mut Vec<Answered>) {
        match cmd {
            Command::Connect {
                source,
                max_future,
                reply,
            } => {
                let conn = ConnId(self.next_conn);
                self.next_conn += 1;
                let resume = self.acked(&source);
                tracing::info!(source = %source, conn = conn.0, resume_after = ?resume, "source connected");
                let (ack, acks) = watch::channel(resume);
                let now = self.clock.now();
                let max_future = self.source.max_future_for(source.as_str(), max_future);
                self.conns.insert(
                    conn,
                    ConnState {
                        source,
                        max_future,
                        last_activity: now,
                        lag_ok: false,
                        drained: now,
                        through: None,
                        released: now,
                        unstored_since: None,
                        ack,
                    },
                );
                self.publish_connections();
                // The connection may have gone already; then there is nobody to tell.
                let _ = reply.send(Link {
                    conn,
                    resume,
                    acks,
                    wanted: self.wanted.subscribe(),
                });
            }
            Command::Proof { conn, proof } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    match proof {
                        Proof::Drained(t) => c.drained = c.drained.max(t),
                        Proof::Through(t) => c.through = c.through.max(Some(t)),
                    }
                    self.proved = true;
                }
            }
            Command::Disconnect { conn } => {
                if let Some(c) = self.conns.remove(&conn) {
                    tracing::info!(source = %c.source, conn = conn.0, "source disconnected");
                }
                self.publish_connections();
            }
            Command::Batch {
                conn,
                since,
                received,
                events,
                reply,
            } => {
                let (source, outcomes) = self.handle_batch(conn, since, received, events);
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
            Command::Shifts {
                from,
                to,
                agent,
                reply,
            } => {
                let _ = reply.send(self.engine.shift_views(from, to, agent.as_deref()));
            }
            Command::Close { period, by, reply } => {
                let _ = reply.send(self.close_period(period, by));
            }
            Command::Await {
                id,
                registered,
                reply,
            } => {
                let room = self.waiting.len() < MAX_WAITING || self.waiting.contains_key(&id);
                if room {
                    self.waiting.insert(id, reply);
                }
                let _ = registered.send(room);
            }
            Command::CloseEvent { period, by, reply } => {
                let _ = reply.send(self.close_event(period, by).map(|(event, _)| event));
            }
            Command::Rulebook { reply } => {
                let _ = reply.send((
                    self.engine.rulebook_digest().to_string(),
                    self.engine.rulebook_journaled(),
                ));
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
    ///
    /// With `source.clock = "event"`, an event whose `ts` lies more than the connection's
    /// `max_future` ahead of `received` is refused before the engine sees it: one event from
    /// a wrong clock must not drag the engine clock ahead of everyone's.
    fn handle_batch(
        &mut self,
        conn: ConnId,
        since: Timestamp,
        received: Timestamp,
        events: Vec<Event>,
    ) -> (Id, Vec<Outcome>) {
        let Some(state) = self.conns.get(&conn) else {
            return (Id::default(), Vec::new());
        };
        let source = state.source.clone();
        let max_future = state.max_future;
        let by_event = self.source.clock == SourceClock::Event;
        // What a shared stream holds is judged alike by both daemons of a pair: nothing of it
        // is refused by this daemon's own clock (the relay that published it refused what lay
        // too far ahead of its clock), and its rulebooks are the pair's own.
        let from_stream = self.stream_source.as_ref() == Some(&source);
        let mut outcomes = Vec::with_capacity(events.len());
        let mut last_ts = None;
        let mut ahead = Millis::MIN;
        let mut queue_changed = false;
        for mut ev in events {
            let lag = received.since(ev.ts);
            if by_event {
                ahead = ahead.max(-lag);
                if -lag > max_future && !from_stream {
                    self.refuse_future(&source, -lag, max_future);
                    outcomes.push(Outcome::Refused(Refused::InFuture {
                        ahead: -lag,
                        max_future,
                    }));
                    continue;
                }
            }
            let ts = ev.ts;
            if !by_event {
                ev.ts = received;
            }
            let refused = self
                .refuse_live(&ev)
                .filter(|r| !(from_stream && *r == Refused::Rulebook));
            if let Some(r) = refused {
                self.metrics.observe_rejected(r.reason_label());
                outcomes.push(Outcome::Refused(r));
                continue;
            }
            self.metrics.observe_lag(lag);
            last_ts = Some(ts);
            let waiter = match (&ev.id, from_stream) {
                (Some(id), true) => self.waiting.remove(id),
                _ => None,
            };
            let statement = if from_stream {
                self.seal_close(&mut ev)
            } else {
                None
            };
            let outcome = self.engine.handle_event(&source, &ev, &mut self.effects);
            if let Some(w) = waiter {
                self.resolve(w, &outcome, statement);
            }
            match &outcome {
                Applied::Applied { at, late } => {
                    if let Some(d) = self.durable.as_mut() {
                        // The journal keeps the event as sent and the time it was applied at.
                        ev.ts = ts;
                        d.records.push(encode_record(*at, &source, &ev));
                        d.seqs.push((source.clone(), ev.seq));
                    }
                    self.metrics.count_event(ev.body.type_name());
                    if *late {
                        self.metrics.events_late.inc();
                    }
                }
                Applied::Duplicate => self.metrics.events_duplicate.inc(),
                Applied::Refused(limit) => self.limit_hit(*limit),
                Applied::Rejected { at, refusal } => {
                    // Journaled all the same: it moved the engine clock, and a replay of the
                    // journal must move it too. Its seq is not seen: no ack for it.
                    if let Some(d) = self.durable.as_mut() {
                        ev.ts = ts;
                        d.records.push(encode_record(*at, &source, &ev));
                        d.seqs.push((source.clone(), None));
                    }
                    self.metrics.observe_rejected(refusal.reason_label());
                }
            }
            outcomes.push(Outcome::Engine(outcome));
            queue_changed |= self.drain_effects();
        }
        if by_event && ahead > Millis::MIN {
            self.metrics.set_clock_ahead(&source, ahead);
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            // Held by the daemon until stored: see `Owner::stored`.
            c.unstored_since = Some(c.unstored_since.map_or(since, |s| s.min(since)));
            if let Some(ts) = last_ts {
                c.last_activity = received;
                // Receipt-stamped events are on time by definition.
                c.lag_ok = !by_event || received.since(ts) <= self.source.max_lag;
            }
        }
        let applied = outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Engine(Applied::Applied { .. })));
        // Any applied event may move a queue (snapshots replace them without Queue effects).
        self.after_apply(queue_changed || applied, applied);
        (source, outcomes)
    }

    /// Why a live event other than one from the future is refused before the engine, if it
    /// is: a `rulebook`, or a `snapshot` that would start a new episode (a pause, a wrap-up,
    /// a call) more than [`MAX_SNAPSHOT_AGE`] before the time it is applied at (a source whose
    /// clock is a year behind would otherwise raise a `daily_allowance` violation for every
    /// day of that year at once).
    fn refuse_live(&self, ev: &Event) -> Option<Refused> {
        match &ev.body {
            crate::event::Body::Rulebook { .. } => Some(Refused::Rulebook),
            crate::event::Body::Snapshot { agents, calls } => {
                let at = self.engine.now().map_or(ev.ts, |c| c.max(ev.ts));
                // An episode the engine already has (same presence and reason) continues
                // from where it started; only a new one starts at its `since`.
                let starts = |a: &&crate::event::SnapshotAgent| {
                    a.presence != crate::event::PresenceState::Ready
                        && !self.engine.agent_view(&a.agent).is_some_and(|v| {
                            v.logged_in && v.presence == Some(a.presence) && v.reason == a.reason
                        })
                };
                let oldest = agents
                    .iter()
                    .filter(starts)
                    .map(|a| a.since)
                    .chain(calls.iter().map(|c| c.since))
                    .min()?;
                let age = at.since(oldest);
                (age > MAX_SNAPSHOT_AGE).then_some(Refused::SnapshotTooOld { age })
            }
            _ => None,
        }
    }

    /// Counts and logs (rate-limited) an event refused for a `ts` `ahead` ms ahead of the
    /// daemon's clock.
    fn refuse_future(&self, source: &Id, ahead: Millis, max_future: Millis) {
        self.metrics.count_future(source);
        self.limits.hit("max_future", || {
            tracing::warn!(
                source = %source,
                ahead_ms = ahead,
                max_future_ms = max_future,
                "event refused: its ts lies ahead of the daemon's clock by more than source.max_future; check the source's clock (NTP) or set source.clock = \"receipt\""
            );
        });
    }

    /// The records read so far are stored (or, without a store, applied) at `now`: a
    /// connection whose events waited longer than `source.delay` for it was held back by
    /// the daemon (a failing store, a full command queue, the rate limit, a slow disk). Its
    /// source may have kept events back meanwhile (a window of unacknowledged events), so it
    /// counts as caught up again only after a new event on time, or `source.idle` from now.
    fn stored(&mut self, now: Timestamp) {
        for c in self.conns.values_mut() {
            if let Some(since) = c.unstored_since.take() {
                if now.since(since) > self.source.delay {
                    c.lag_ok = false;
                    c.released = now;
                }
            }
        }
    }

    /// Counts and logs (rate-limited) an event refused by an engine limit.
    fn limit_hit(&mut self, limit: Limit) {
        self.metrics.observe_rejected(limit.reason_label());
        self.limits.hit(limit.key(), || {
            tracing::warn!(limit = limit.key(), "{}", limit.message());
        });
    }

    /// Applies one API event (no `seq`: never a duplicate) and stores it.
    fn handle_api(&mut self, mut event: Event) -> Result<ApiReply, ApiRefused> {
        self.hold_api_time(&mut event);
        let (at, refused) = match self
            .engine
            .handle_event(API_SOURCE, &event, &mut self.effects)
        {
            Applied::Applied { at, .. } => (at, None),
            // Without a seq an event is never a duplicate; keep the engine's time anyway.
            Applied::Duplicate => (self.engine.now().unwrap_or(event.ts), None),
            Applied::Refused(limit) => {
                self.limit_hit(limit);
                return Err(ApiRefused::Limit(limit));
            }
            Applied::Rejected { at, refusal } => {
                self.metrics.observe_rejected(refusal.reason_label());
                (at, Some(refusal))
            }
        };
        self.metrics.count_event(event.body.type_name());
        if let Some(d) = self.durable.as_mut() {
            d.records.push(encode_record(at, API_SOURCE, &event));
            d.seqs.push((Id::const_new(API_SOURCE), None));
        }
        let violations = self
            .effects
            .iter()
            .filter_map(|e| match e {
                Effect::Violation(v) => Some(v.id),
                _ => None,
            })
            .collect();
        let queue_changed = self.drain_effects();
        self.after_apply(queue_changed, true);
        self.flush();
        if let Some(r) = refused {
            return Err(ApiRefused::Record(r));
        }
        // A waiver, demerit or approval shows in the standing (`/lead`, `/me`) at the next
        // tick rather than up to a minute later.
        self.next_appraisal = self.clock.now();
        Ok(ApiReply {
            at,
            stored: self.durable.as_ref().is_none_or(|d| d.records.is_empty()),
            violations,
        })
    }

    /// An approval from the API is stamped with the daemon's clock; applied at that time it
    /// would move the engine clock as the daemon's clock may not (protocol page, "Ordering
    /// and time"): past a source the daemon holds back, while the store fails, with no source
    /// connected, firing every deadline up to now and making the held-back events late. So
    /// unless the daemon's clock may move the engine clock now ([`Owner::clock_target`]), it
    /// is applied at the engine clock and lasts until the end it was granted for
    /// (`ts + minutes`), so that it still covers the time the lead meant. The journal keeps
    /// it as applied. (Demerits and shifts from the API belong to the day they are recorded
    /// on, and keep their time.)
    fn hold_api_time(&self, event: &mut Event) {
        let Some(engine) = self.engine.now() else {
            return;
        };
        let crate::event::Body::ApprovalGranted { duration_ms, .. } = &mut event.body else {
            return;
        };
        if event.ts <= engine || self.clock_target(self.clock.now()).is_some() {
            return;
        }
        // Below the bound `minutes` is decoded with, so that the journal reads it back.
        *duration_ms = duration_ms
            .saturating_add(event.ts.since(engine))
            .min(MAX_HELD_APPROVAL_MS);
        event.ts = engine;
    }

    /// Closes month `period`: the statement is the appraisal as of the engine clock (what a
    /// replay of the journal up to the `period.closed` event gives), frozen by that event.
    fn close_period(&mut self, period: Id, by: Id) -> Result<Closed, ApiRefused> {
        let (event, (csv, digest)) = self.close_event(period, by)?;
        let reply = self.handle_api(event)?;
        Ok(Closed {
            csv,
            digest,
            at: reply.at,
            stored: reply.stored,
        })
    }

    /// The `period.closed` event that closes `period` at the engine clock, with the
    /// statement (CSV) and digest it freezes.
    fn close_event(&mut self, period: Id, by: Id) -> Result<(Event, (String, String)), ApiRefused> {
        let Some(p @ crate::time::Period::Month(..)) = crate::time::Period::parse(&period) else {
            return Err(ApiRefused::Unable(format!(
                "not a month: {period:?} (want YYYY-MM)"
            )));
        };
        let Some(now) = self.engine.now() else {
            return Err(ApiRefused::Unable(
                "nothing has happened on this floor yet: there is no statement to close".into(),
            ));
        };
        // The engine keeps the appraisal of the last KPI_DAYS days only.
        let (first, _) = p.date_range();
        let oldest = self
            .calendar
            .day_of(now)
            .date
            .saturating_sub(jiff::Span::new().days(i64::from(crate::owner::KPI_DAYS)));
        if first < oldest {
            return Err(ApiRefused::Unable(format!(
                "{period} began more than {} days ago: the daemon keeps the appraisal of its last {} days only, so a month is closed within two months of its end",
                crate::owner::KPI_DAYS,
                crate::owner::KPI_DAYS
            )));
        }
        let (csv, digest) = self.statement_at(p, now);
        let event = Event {
            ts: now,
            seq: None,
            id: None,
            body: crate::event::Body::PeriodClosed {
                period,
                by,
                digest: Id::from(digest.as_str()),
            },
        };
        Ok((event, (csv, digest)))
    }

    /// Month `p`'s statement (appraisal CSV) and its digest as of `at`.
    fn statement_at(&self, p: crate::time::Period, at: Timestamp) -> (String, String) {
        let rows = self.engine.appraisal(p, at, &[]);
        let csv = crate::engine::AppraisalRow::csv(&rows);
        let digest = crate::config::digest_of(&csv);
        (csv, digest)
    }

    /// A `period.closed` event from the shared stream freezes the statement at its own place
    /// in the stream: the engine is brought to the time the event applies at (the deadlines
    /// before it fire, as the event itself would fire them), and the event's digest becomes
    /// that statement's, which is what the journal keeps and what a replay of the journal up
    /// to the close reproduces. The digest the requesting daemon published differs only
    /// when the month changed between the request and the close's turn. Returns the
    /// statement and digest; `None` for any other event.
    fn seal_close(&mut self, ev: &mut Event) -> Option<(String, String)> {
        let crate::event::Body::PeriodClosed { period, digest, .. } = &mut ev.body else {
            return None;
        };
        let p @ crate::time::Period::Month(..) = crate::time::Period::parse(period)? else {
            return None;
        };
        let at = self.engine.now().map_or(ev.ts, |c| c.max(ev.ts));
        self.engine.handle_timeout(at, &mut self.effects);
        self.drain_effects();
        let (csv, sealed) = self.statement_at(p, at);
        if digest.as_str() != sealed {
            tracing::info!(period = %period, published = %digest, sealed = %sealed, "the month changed between the close's request and its turn in the stream: it closes with the statement at its turn");
            *digest = Id::from(sealed.as_str());
        }
        Some((csv, sealed))
    }

    /// Queues the answer to a submitted event that came back from the stream with
    /// `outcome` (sent after the group's write).
    fn resolve(&mut self, waiter: Waiter, outcome: &Applied, statement: Option<(String, String)>) {
        let r = match outcome {
            Applied::Applied { at, .. } => Ok(Resolved {
                reply: ApiReply {
                    at: *at,
                    stored: false,
                    violations: self
                        .effects
                        .iter()
                        .filter_map(|e| match e {
                            Effect::Violation(v) => Some(v.id),
                            _ => None,
                        })
                        .collect(),
                },
                statement,
            }),
            Applied::Rejected { refusal, .. } => Err(ApiRefused::Record(refusal.clone())),
            Applied::Refused(limit) => Err(ApiRefused::Limit(*limit)),
            Applied::Duplicate => Err(ApiRefused::Unable(
                "the stream delivered it twice; it was applied once".into(),
            )),
        };
        self.resolved.push((waiter, r));
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
            d.write_alert_rows(self.alerts.as_ref())?;
            Ok::<(), String>(())
        })();
        match result {
            Ok(()) => {
                if let Some(was) = d.fault.take() {
                    tracing::info!(was = %was, "store recovered; acknowledging again");
                    self.floor.set_store_fault(None);
                }
                self.stored(self.clock.now());
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
            if let Err(e) = d.write_alert_rows(self.alerts.as_ref()) {
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

    /// Publishes who a shift covers now and today's outbound per team to the floor and the
    /// gauges.
    fn publish_schedule(&mut self) {
        let mut changed = false;
        {
            let now = self.engine.scheduled_now();
            let mut per_team: std::collections::BTreeMap<Id, (i64, i64)> = Default::default();
            for s in &now {
                let e = per_team.entry(s.team.clone()).or_default();
                e.0 += 1;
                e.1 += i64::from(!s.logged_in);
            }
            for gone in self
                .schedule_teams
                .iter()
                .filter(|t| !per_team.contains_key(*t))
            {
                self.metrics
                    .agents_scheduled
                    .with_label_values(&[gone])
                    .set(0);
                self.metrics.agents_absent.with_label_values(&[gone]).set(0);
            }
            for (team, (scheduled, absent)) in &per_team {
                self.metrics
                    .agents_scheduled
                    .with_label_values(&[team])
                    .set(*scheduled);
                self.metrics
                    .agents_absent
                    .with_label_values(&[team])
                    .set(*absent);
            }
            self.schedule_teams = per_team.into_keys().collect();
            changed |= self.floor.set_schedule(now);
            self.schedule_dirty = false;
        }
        {
            let mut teams: std::collections::BTreeMap<Id, crate::engine::OutboundCounts> =
                self.engine.outbound_today().into_iter().collect();
            for t in self.engine.rules().sales_target.keys() {
                teams.entry(Id::from(t.as_str())).or_default();
            }
            let v: Vec<crate::floor::TeamOutbound> = teams
                .into_iter()
                .map(|(team, c)| {
                    let target = self.engine.sales_target(&team);
                    crate::floor::TeamOutbound {
                        connect_rate: c.connect_rate(),
                        progress: target
                            .filter(|t| *t > 0)
                            .map(|t| c.sales as f64 / f64::from(t)),
                        team,
                        attempts: c.attempts,
                        connected: c.connected,
                        sales: c.sales,
                        target,
                    }
                })
                .collect();
            changed |= self.floor.set_outbound(v);
            self.outbound_dirty = false;
        }
        if changed {
            self.floor.bump();
        }
    }

    /// Sets `floorwatch_sales_target{team}` from the rulebook in force.
    fn publish_targets(&self) {
        for (team, target) in &self.engine.rules().sales_target {
            self.metrics
                .sales_target
                .with_label_values(&[team])
                .set(i64::from(*target));
        }
    }

    fn handle_tick(&mut self) {
        let now = self.clock.now();
        // Waiters whose caller gave up (timeout, closed connection).
        self.waiting.retain(|_, w| !w.is_closed());
        self.proved = false;
        let moved = self.advance(now);
        // The proofs asked for now move the clock further when they come in.
        self.ask_proofs();
        self.set_clock_lag(now);
        // Queue views (waits, the 15-minute window) move only with the engine clock.
        self.after_apply(moved, moved);
        // Who a shift covers changes with the clock as well as with events.
        if moved || self.schedule_dirty || self.outbound_dirty {
            self.publish_schedule();
        }
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
            day: crate::time::Period::Day(date),
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
                    // The standing (`/lead`, `/me`) shows it within seconds, not a minute.
                    self.next_appraisal = self
                        .next_appraisal
                        .min(self.clock.now().plus(STANDING_AFTER_VIOLATION));
                    // The agent's open-violation count changed; the engine says so only
                    // through the view.
                    self.refresh_agent(&agent);
                }
                Effect::Cleared {
                    id,
                    at,
                    ended_by,
                    lasted_ms,
                } => {
                    if let Some(alerts) = &self.alerts {
                        alerts.cleared(id, at, self.clock.now_micros());
                    }
                    if let Some(d) = self.durable.as_mut() {
                        d.ops.push(ViolationOp::Cleared {
                            id,
                            at,
                            ended_by: ended_by.clone(),
                            lasted_ms,
                        });
                    }
                    if let Some((rule, team, agent)) =
                        self.floor.close_violation(id, at, ended_by, lasted_ms)
                    {
                        self.book.cleared(metrics, rule.as_str(), &team);
                        self.refresh_agent(&agent);
                    }
                }
                Effect::AgentChanged { agent } => {
                    self.schedule_dirty = true;
                    self.refresh_agent(&agent);
                }
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
                // Published to the store, floor and metrics once the daemon takes record
                // events.
                Effect::Waiver {
                    id,
                    waived,
                    at,
                    by,
                    why,
                    ..
                } => {
                    tracing::info!(id, waived, by = %by, "waiver");
                    if let Some(d) = self.durable.as_mut() {
                        d.ops.push(ViolationOp::Waiver {
                            id,
                            waived,
                            at,
                            by: by.clone(),
                            why: why.clone(),
                        });
                    }
                    let waiver = waived.then(|| crate::floor::Waiver {
                        by: by.to_string(),
                        reason: why.to_string(),
                        at,
                    });
                    self.floor.waive_violation(id, waiver);
                }
                Effect::PeriodClosed { period, by, .. } => {
                    tracing::info!(period = %period, by = %by, "month closed");
                }
                Effect::Rulebook {
                    version, digest, ..
                } => {
                    tracing::info!(version, digest = %digest, "rulebook in force");
                    self.publish_targets();
                }
                Effect::ShiftChanged { .. } => self.schedule_dirty = true,
                Effect::Outbound { team, change, .. } => {
                    self.outbound_dirty = true;
                    let c = match change {
                        crate::engine::OutboundChange::Attempt => &metrics.outbound_attempts,
                        crate::engine::OutboundChange::Connected => &metrics.outbound_connected,
                        crate::engine::OutboundChange::Sale { delta: 1.., .. } => &metrics.sales,
                        crate::engine::OutboundChange::Sale { .. } => continue,
                    };
                    c.with_label_values(&[&team]).inc();
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
