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
//! Must not: read wall time other than through [`Clock`], block on I/O, or hold a lock of the
//! read side across an `.await`.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cli::RunArgs;
use crate::clock::Clock;
use crate::config::{Config, ConfigError, SourceClock, SourceConfig, SourceMode};
use crate::engine::{Applied, Effect, Engine, QueueOutcome};
use crate::event::{Event, Id};
use crate::floor::Floor;
use crate::metrics::{Metrics, SeriesBook};
use crate::time::{Calendar, Millis, Timestamp};

/// How often the owner task wakes even without deadlines, so that waits and gauges move.
pub const TICK: Millis = 250;

/// Capacity of the engine command channel. When it is full, the connection that wants to
/// send waits (back-pressure on that source); the owner task never waits on a connection.
pub const COMMAND_CAPACITY: usize = 1024;

/// How long shutdown waits for the tasks to finish before it warns and moves on.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Identifies one ingest connection to the owner task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(u64);

/// What happened to one event of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied { at: Timestamp, late: bool },
    Duplicate,
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
        reply: oneshot::Sender<(ConnId, Option<u64>)>,
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
    pub fn spawn(
        config: &Config,
        clock: Clock,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> EngineTask {
        let floor = Arc::new(Floor::new(Calendar::new(config.rules.timezone.clone())));
        let (tx, rx) = mpsc::channel(COMMAND_CAPACITY);
        let owner = Owner {
            engine: Engine::new(config.rules.clone()),
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
        };
        let join = tokio::spawn(owner.run(rx, shutdown));
        EngineTask {
            client: EngineClient { tx },
            floor,
            metrics,
            join,
        }
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
}

struct Owner {
    engine: Engine,
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
}

impl Owner {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>, shutdown: CancellationToken) {
        tracing::debug!("engine task started");
        loop {
            let wake = self.next_wake();
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle_command(cmd),
                    None => break,
                },
                _ = tokio::time::sleep_until(self.clock.instant_at(wake)) => self.handle_tick(),
            }
        }
        tracing::debug!("engine task stopped");
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
            if let Some(p) = self.engine.poll_timeout() {
                wake = wake.min(p.plus(self.source.delay));
            }
        }
        wake
    }

    fn handle_command(&mut self, cmd: Command) {
        match cmd {
            Command::Connect { source, reply } => {
                let conn = ConnId(self.next_conn);
                self.next_conn += 1;
                let resume = self.engine.highest_seq(&source);
                tracing::info!(source = %source, conn = conn.0, resume_after = ?resume, "source connected");
                self.conns.insert(
                    conn,
                    ConnState {
                        source,
                        last_activity: self.clock.now(),
                        lag_ok: false,
                    },
                );
                self.publish_connections();
                // The connection may have gone already; then there is nobody to tell.
                let _ = reply.send((conn, resume));
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
                let r = self.handle_batch(conn, received, events);
                let _ = reply.send(r);
            }
        }
    }

    fn publish_connections(&self) {
        self.floor.set_sources_connected(self.conns.len());
        self.metrics
            .source_connected
            .set(i64::try_from(self.conns.len()).unwrap_or(i64::MAX));
    }

    fn handle_batch(
        &mut self,
        conn: ConnId,
        received: Timestamp,
        events: Vec<Event>,
    ) -> BatchReply {
        let Some(state) = self.conns.get(&conn) else {
            return BatchReply {
                outcomes: Vec::new(),
                ack: None,
            };
        };
        let source = state.source.clone();
        let mut outcomes = Vec::with_capacity(events.len());
        let mut last_ts = None;
        let mut queue_changed = false;
        for mut ev in events {
            let lag = received.since(ev.ts);
            self.metrics.observe_lag(lag);
            last_ts = Some(ev.ts);
            if self.source.clock == SourceClock::Receipt {
                ev.ts = received;
            }
            let outcome = match self.engine.handle_event(&source, &ev, &mut self.effects) {
                Applied::Applied { at, late } => {
                    self.metrics
                        .events
                        .with_label_values(&[ev.body.type_name()])
                        .inc();
                    if late {
                        self.metrics.events_late.inc();
                    }
                    Outcome::Applied { at, late }
                }
                Applied::Duplicate => {
                    self.metrics.events_duplicate.inc();
                    Outcome::Duplicate
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
        self.after_apply(queue_changed);
        BatchReply {
            outcomes,
            ack: self.engine.highest_seq(&source),
        }
    }

    fn handle_tick(&mut self) {
        let now = self.clock.now();
        if self.may_advance(now) {
            let target = now.plus(-self.source.delay);
            if self.engine.now().is_none_or(|t| target > t) {
                self.engine.handle_timeout(target, &mut self.effects);
                self.drain_effects();
            }
        }
        self.after_apply(true);
    }

    /// Publishes what changed after events or a timeout.
    fn after_apply(&mut self, refresh_queues: bool) {
        let now = self.engine.now();
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

    /// Applies the pending effects to the read side and metrics; returns whether any queue
    /// moved.
    fn drain_effects(&mut self) -> bool {
        let now = self.engine.now().unwrap_or_default();
        let mut queue_changed = false;
        let metrics = &self.metrics;
        for effect in self.effects.drain(..) {
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
                    self.floor.push_violation(*v);
                }
                Effect::Cleared { id, at, ended_by } => {
                    if let Some((rule, team)) = self.floor.close_violation(id, at, ended_by) {
                        self.book.cleared(metrics, rule.as_str(), &team);
                    }
                }
                Effect::AgentChanged { agent } => {
                    if let Some(view) = self.engine.agent_view(&agent) {
                        self.book.agent_changed(metrics, &view);
                        self.floor.put_agent(view);
                    }
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
                Effect::RingEnded { team, ring, .. } => {
                    metrics
                        .ring_seconds
                        .with_label_values(&[&team])
                        .observe(ring.max(0) as f64 / 1000.0);
                    self.floor.record_ring(now, &team, ring);
                }
            }
        }
        queue_changed
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
}

impl DaemonHandle {
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

    /// Stops accepting, closes ingest connections, stops the engine task; bounded by a grace
    /// timeout that warns when exceeded.
    pub async fn shutdown(self) {
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
            self.engine.join().await;
        };
        if tokio::time::timeout(SHUTDOWN_GRACE, all).await.is_err() {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "shutdown took longer than its grace period");
        }
        tracing::info!("daemon stopped");
    }
}

/// Validates `config`, binds the HTTP port (port 0 allowed), spawns the engine task, the
/// server and (in connect mode) the dialer, with the system clock.
pub async fn start(config: Config) -> anyhow::Result<DaemonHandle> {
    start_with_clock(config, Clock::system()).await
}

/// [`start`] with a given clock (tests under `tokio::time::pause()`).
pub async fn start_with_clock(config: Config, clock: Clock) -> anyhow::Result<DaemonHandle> {
    validate(&config)?;
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let local_addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let shutdown = CancellationToken::new();
    let metrics = Arc::new(Metrics::new()?);
    let engine = EngineTask::spawn(&config, clock, metrics.clone(), shutdown.clone());
    let config = Arc::new(config);
    let ingest = crate::ingest::Ingest::new(
        config.clone(),
        clock,
        engine.client(),
        metrics.clone(),
        shutdown.clone(),
    );
    let dialer = (config.source.mode == SourceMode::Connect).then(|| {
        let ingest = ingest.clone();
        tokio::spawn(async move { ingest.run_dialer().await })
    });
    let app = crate::http::router(crate::http::AppState {
        config: config.clone(),
        floor: engine.floor(),
        metrics: metrics.clone(),
        ingest,
    });
    let token = shutdown.clone();
    let server = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(token.cancelled_owned());
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "http server failed");
        }
    });
    tracing::info!(listen = %local_addr, mode = ?config.source.mode, "daemon started");
    Ok(DaemonHandle {
        local_addr,
        shutdown,
        engine,
        server,
        dialer,
    })
}

/// Runs the daemon until `shutdown` completes, then shuts it down.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let handle = start(config).await?;
    shutdown.await;
    tracing::info!("shutting down");
    handle.shutdown().await;
    Ok(())
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
    runtime.block_on(run(config, shutdown_signal()))
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn shutdown_signal() {
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
        _ = ctrl_c => {},
        _ = term => {},
    }
}
