//! The owner task's mailbox: what ingest connections, adapters and the HTTP API send it
//! ([`EngineClient`]) and what it answers ([`BatchReply`], [`ApiReply`]).
//!
//! Owns: the command channel's message types and the client side of it, including
//! [`EngineClient::submit`]: the one way to make a judgment-changing event (an approval, a
//! waiver, a demerit, a shift, a month's close, a rulebook). Alone it is applied by the owner
//! task; when the daemon reads a shared stream ([`StreamLink`]) it is published to the stream
//! and applied when it is consumed back, in its place in the stream, never locally first.
//! Also the other end of the channel for a process without an engine ([`Inbox`], the relay).
//! Must not: touch the engine or the store (only the owner task does), know the stream's
//! transport (a [`Submit`] publishes), or wait on anything but the channel, the reply and
//! the publish.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use crate::clock::Clock;
use crate::engine::{Applied, ApprovalView, Limit, Refusal, ShiftView};
use crate::event::{Event, Id};
use crate::journal::Position;
use crate::time::{Millis, Timestamp};

/// Identifies one ingest connection to the owner task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(pub(super) u64);

/// The owner task's answer to a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchReply {
    /// What became of each event, in order (an event refused by an engine limit or for its
    /// time is not journaled either).
    pub outcomes: Vec<Outcome>,
    /// The highest `seq` processed from the connection's source, after the batch.
    pub ack: Option<u64>,
    /// Whether every event applied so far (this batch's and all before it) is in the
    /// journal: without a store, always.
    pub stored: bool,
}

/// What became of one event of a batch.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The engine took it: applied, a duplicate, or refused by a limit or the record's rules.
    Engine(Applied),
    /// Refused before the engine, live only: it changed nothing (not the engine, not its
    /// clock, not the source's highest `seq`).
    Refused(Refused),
}

/// Why the owner task refused a live event before the engine saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Its `ts` lay `ahead` ms ahead of the daemon's clock when it was received, more than the
    /// connection's `max_future`.
    InFuture { ahead: Millis, max_future: Millis },
    /// A `snapshot` with an agent out of `ready`, or a call, whose `since` lies `age` ms
    /// before the time it would be applied at, more than [`MAX_SNAPSHOT_AGE`].
    SnapshotTooOld { age: Millis },
    /// A `rulebook`: the daemon writes those itself (from its config); a source may not change
    /// how the whole floor is judged.
    Rulebook,
}

/// The oldest `since` a live `snapshot` may give an episode (a pause, a wrap-up, a call),
/// measured back from the time it is applied at. A day: no shift is longer (rule
/// `attendance`), and an episode taken from a snapshot raises what its whole length implies
/// at once (a break since last year: a `daily_allowance` violation for every day since).
pub const MAX_SNAPSHOT_AGE: Millis = 24 * 3_600_000;

impl Refused {
    /// Every reason label, for `floorwatch_events_rejected_total{reason}`.
    pub const LABELS: [&'static str; 3] =
        ["ts_in_future", "snapshot_too_old", "rulebook_from_source"];

    /// The rejection reason (`floorwatch_events_rejected_total{reason}`).
    pub fn reason_label(&self) -> &'static str {
        match self {
            Refused::InFuture { .. } => Refused::LABELS[0],
            Refused::SnapshotTooOld { .. } => Refused::LABELS[1],
            Refused::Rulebook => Refused::LABELS[2],
        }
    }
}

impl std::fmt::Display for Refused {
    /// What the source is told (after the reason label), and what to do about it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::time::format_duration;
        match self {
            Refused::InFuture { ahead, max_future } => write!(
                f,
                "ts lies {} ahead of the daemon's clock, more than source.max_future ({}); nothing of it was applied. Check the source's clock (NTP), or set source.clock = \"receipt\"",
                format_duration((*ahead).max(1_000) / 1_000 * 1_000),
                format_duration(*max_future)
            ),
            Refused::SnapshotTooOld { age } => write!(
                f,
                "a `since` lies {} before the time the snapshot is applied at, more than {}; nothing of it was applied. Check the source's clock (NTP); an episode longer than that is not taken from a snapshot",
                format_duration((*age).max(1_000) / 1_000 * 1_000),
                format_duration(MAX_SNAPSHOT_AGE)
            ),
            Refused::Rulebook => f.write_str(
                "a `rulebook` is written by the daemon itself from its config, not taken from a source",
            ),
        }
    }
}

/// What a source connection proved to the owner task about what it has handed over
/// ([`EngineClient::prove`]); the owner task moves the engine clock by the daemon's clock only
/// up to what every connection has proved (module doc of [`crate::owner`], "Engine clock").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proof {
    /// Everything the connection received before this wall time has been handed over: its
    /// transport was found with nothing left to read after the runtime had polled the
    /// sockets at a later time ([`Prover`]). Whether the source itself still holds events
    /// back is judged by `source.max_lag` and `source.idle`.
    Drained(Timestamp),
    /// The connection will hand over no event with a `ts` before this time that it has not
    /// handed over already (a file read to its end: what a reordering window still holds,
    /// and what can still be written, is later than this).
    Through(Timestamp),
}

/// A source connection registered with the owner task ([`EngineClient::link`]).
pub struct Link {
    pub conn: ConnId,
    /// The highest `seq` of the source already stored: the hello's `resume_after`.
    pub resume: Option<u64>,
    /// The connection's ack (the highest stored `seq` of its source). It changes whenever a
    /// store write advances it, also when that happens on a retry after a storage fault,
    /// with no frame to reply to.
    pub acks: watch::Receiver<Option<u64>>,
    /// Asks the connection for a [`Proof`]: answer through [`Prover`].
    pub wanted: watch::Receiver<u64>,
}

pub(super) enum Command {
    Connect {
        source: Id,
        /// The connection's `max_future` (`None`: `[source] max_future`).
        max_future: Option<Millis>,
        reply: oneshot::Sender<Link>,
    },
    Batch {
        conn: ConnId,
        /// Wall time at which the connection read the events (the daemon has held them
        /// since: a rate-limit wait, a full command channel).
        since: Timestamp,
        /// Wall time at which the events are taken as received (after any rate-limit wait):
        /// their lag, and their `ts` with `source.clock = "receipt"`.
        received: Timestamp,
        events: Vec<Event>,
        reply: oneshot::Sender<BatchReply>,
    },
    Proof {
        conn: ConnId,
        proof: Proof,
    },
    Disconnect {
        conn: ConnId,
    },
    /// An event made by the HTTP API (approvals), from source [`crate::config::API_SOURCE`].
    Api {
        event: Event,
        reply: oneshot::Sender<Result<ApiReply, ApiRefused>>,
    },
    /// The end of the stored journal (`None` without a store).
    JournalEnd {
        reply: oneshot::Sender<Option<Position>>,
    },
    /// The approvals active at the engine clock.
    Approvals {
        reply: oneshot::Sender<Vec<ApprovalView>>,
    },
    /// The kept shifts overlapping `[from, to)`, of one agent when given.
    Shifts {
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        agent: Option<Id>,
        reply: oneshot::Sender<Vec<ShiftView>>,
    },
    /// A submitted event (its `id`) is about to be published to the stream: the owner task
    /// answers `reply` when it applies that event as it comes back. `registered` says whether
    /// it took the waiter (false: too many are waiting).
    Await {
        id: Id,
        registered: oneshot::Sender<bool>,
        reply: oneshot::Sender<Result<Resolved, ApiRefused>>,
    },
    /// The `period.closed` event that would close `period` now (its statement's digest at
    /// the engine clock), for publishing.
    CloseEvent {
        period: Id,
        by: Id,
        reply: oneshot::Sender<Result<Event, ApiRefused>>,
    },
    /// The digest of the rulebook in force, and whether a `rulebook` event put it there.
    Rulebook {
        reply: oneshot::Sender<(String, bool)>,
    },
    /// Closes a month: its statement as of the engine clock, frozen by a `period.closed`
    /// event with the statement's SHA-256.
    Close {
        /// `YYYY-MM`.
        period: Id,
        by: Id,
        reply: oneshot::Sender<Result<Closed, ApiRefused>>,
    },
}

/// A month closed by [`EngineClient::close`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closed {
    /// The statement (the appraisal CSV) as closed.
    pub csv: String,
    /// Its SHA-256, as the `period.closed` event holds it.
    pub digest: String,
    /// The engine clock it was closed at (the statement counts open items up to it).
    pub at: Timestamp,
    /// Whether the close is in the journal already.
    pub stored: bool,
}

/// Why an API event was not applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiRefused {
    /// An engine limit (`[limits]`) refused it.
    #[error("{}", .0.message())]
    Limit(Limit),
    /// The record's rules refused it (journaled, since it moved the clock; nothing else).
    #[error("{0}")]
    Record(Refusal),
    /// The request cannot be served as asked (e.g. a month the engine no longer keeps).
    #[error("{0}")]
    Unable(String),
    /// The shared stream did not take it (not connected, the publish failed): nothing
    /// changed.
    #[error("{0}")]
    Stream(String),
    /// Published to the shared stream, but not back from it in time: it takes effect in its
    /// place in the stream all the same.
    #[error("{0}")]
    Timeout(String),
}

/// What became of a submitted event when it came back from the stream and was applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub reply: ApiReply,
    /// For a `period.closed` event: the statement (CSV) and its digest as the close froze
    /// them, at its place in the stream.
    pub statement: Option<(String, String)>,
}

/// What happened to an API event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiReply {
    /// The time the engine applied it at.
    pub at: Timestamp,
    /// Whether it is in the journal already (else pending: the store is failing).
    pub stored: bool,
    /// The violations it raised (a demerit's), by id.
    pub violations: Vec<u64>,
}

/// Publishes an event to the shared stream; implemented by the nats-jetstream source.
/// Resolves once the stream has stored it, or once it was sent and its acknowledgement is
/// overdue (its coming back tells); an error means it was not stored (the event's `id` is
/// the stream's de-duplication key).
pub trait Submit: Send + Sync {
    fn publish<'a>(
        &'a self,
        event: &'a Event,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;
}

/// How long [`EngineClient::submit`] waits for an event to come back from the stream.
pub const SUBMIT_TIMEOUT: Duration = Duration::from_secs(10);

/// A daemon that reads a shared stream: its judgment-changing events go there.
pub struct StreamLink {
    /// The source the stream's events are applied under.
    pub(super) source: Id,
    submit: OnceLock<Arc<dyn Submit>>,
    /// Makes event ids unique to this process: the daemon's consumer name and a random
    /// number, then a counter.
    prefix: String,
    next: AtomicU64,
    /// How long to wait for a submitted event to come back, in milliseconds.
    timeout_ms: AtomicU64,
}

impl StreamLink {
    /// The link of a daemon whose stream source is `source` and whose consumer is
    /// `durable`; events wait [`SUBMIT_TIMEOUT`] to come back.
    pub fn new(source: &str, durable: &str) -> StreamLink {
        StreamLink {
            source: Id::from(source),
            submit: OnceLock::new(),
            prefix: format!(
                "{durable}:{:016x}",
                rand::Rng::random::<u64>(&mut rand::rng())
            ),
            next: AtomicU64::new(1),
            timeout_ms: AtomicU64::new(SUBMIT_TIMEOUT.as_millis() as u64),
        }
    }

    /// How long submitted events are waited for from now on (tests shorten it).
    pub fn set_timeout(&self, timeout: Duration) {
        self.timeout_ms.store(
            u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.load(Ordering::Relaxed))
    }

    /// Where events are published from now on; the first call wins.
    pub fn set_submit(&self, submit: Arc<dyn Submit>) {
        let _ = self.submit.set(submit);
    }

    /// A new event id of this process (at most 128 bytes).
    fn next_id(&self) -> Id {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut id = format!("{}:{n}", self.prefix);
        id.truncate(crate::event::MAX_ID_LEN);
        Id::from(id)
    }
}

/// A handle for sending commands to the engine owner task. Cheap to clone.
#[derive(Clone)]
pub struct EngineClient {
    pub(super) tx: mpsc::Sender<Command>,
    /// Set when the daemon reads a shared stream.
    pub(super) stream: Option<Arc<StreamLink>>,
}

/// The owner task has stopped (shutdown).
#[derive(Debug, thiserror::Error)]
#[error("the engine task has stopped")]
pub struct EngineStopped;

impl EngineClient {
    /// Registers a new connection of `source` (with `[source] max_future`); returns its id
    /// and the resume point (`resume_after` of the hello).
    pub async fn connect(&self, source: &str) -> Result<(ConnId, Option<u64>), EngineStopped> {
        let link = self.link(source, None).await?;
        Ok((link.conn, link.resume))
    }

    /// Registers a new connection of `source` whose events may lie at most `max_future` ms
    /// ahead of the daemon's clock (`None`: `[source] max_future`).
    pub async fn link(
        &self,
        source: &str,
        max_future: Option<Millis>,
    ) -> Result<Link, EngineStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Connect {
                source: Id::from(source),
                max_future,
                reply,
            })
            .await
            .map_err(|_| EngineStopped)?;
        rx.await.map_err(|_| EngineStopped)
    }

    /// Applies `events` (decoded, in arrival order) read and received at `received`. Waits
    /// while the command channel is full.
    pub async fn apply(
        &self,
        conn: ConnId,
        received: Timestamp,
        events: Vec<Event>,
    ) -> Result<BatchReply, EngineStopped> {
        self.apply_held(conn, received, received, events).await
    }

    /// [`EngineClient::apply`] for events the connection read at `since` and held until
    /// `received` (a rate-limit wait): a source the daemon holds back is not caught up.
    pub async fn apply_held(
        &self,
        conn: ConnId,
        since: Timestamp,
        received: Timestamp,
        events: Vec<Event>,
    ) -> Result<BatchReply, EngineStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Batch {
                conn,
                since,
                received,
                events,
                reply,
            })
            .await
            .map_err(|_| EngineStopped)?;
        rx.await.map_err(|_| EngineStopped)
    }

    /// Hands the owner task a [`Proof`] for connection `conn`, after every batch the
    /// connection handed over before it. Waits while the command channel is full.
    pub async fn prove(&self, conn: ConnId, proof: Proof) -> Result<(), EngineStopped> {
        self.tx
            .send(Command::Proof { conn, proof })
            .await
            .map_err(|_| EngineStopped)
    }

    /// Submits a judgment-changing event made by the daemon (the API's approvals, waivers,
    /// demerits, shifts; a rulebook): the hook for everything that changes a judgment.
    ///
    /// Alone, the owner task applies it from source [`crate::config::API_SOURCE`] and
    /// journals it. When the daemon reads a shared stream, it is published to the stream
    /// (its `id` set, unless given, to one unique to this process: the stream's
    /// de-duplication key) and the answer comes once the event came back and was applied in
    /// its place in the stream, as on the other daemon of the pair; within the link's wait
    /// (10 s), else [`ApiRefused::Timeout`]. The inner error says why it was not applied.
    pub async fn submit(
        &self,
        event: Event,
    ) -> Result<Result<ApiReply, ApiRefused>, EngineStopped> {
        match &self.stream {
            None => {
                let (reply, rx) = oneshot::channel();
                self.tx
                    .send(Command::Api { event, reply })
                    .await
                    .map_err(|_| EngineStopped)?;
                rx.await.map_err(|_| EngineStopped)
            }
            Some(link) => Ok(self.through_stream(link, event).await?.map(|r| r.reply)),
        }
    }

    /// [`EngineClient::submit`] (the name the API handlers have always used).
    pub async fn apply_api(
        &self,
        event: Event,
    ) -> Result<Result<ApiReply, ApiRefused>, EngineStopped> {
        self.submit(event).await
    }

    /// Whether judgment-changing events go through a shared stream.
    pub fn through_a_stream(&self) -> bool {
        self.stream.is_some()
    }

    /// Publishes `event` to the stream and waits for its application.
    async fn through_stream(
        &self,
        link: &StreamLink,
        mut event: Event,
    ) -> Result<Result<Resolved, ApiRefused>, EngineStopped> {
        let Some(submit) = link.submit.get().cloned() else {
            return Ok(Err(ApiRefused::Stream(
                "not connected to the stream yet: retry in a moment".into(),
            )));
        };
        event.seq = None;
        let id = event.id.clone().unwrap_or_else(|| link.next_id());
        event.id = Some(id.clone());
        let (registered, is_registered) = oneshot::channel();
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Await {
                id: id.clone(),
                registered,
                reply,
            })
            .await
            .map_err(|_| EngineStopped)?;
        if !is_registered.await.map_err(|_| EngineStopped)? {
            return Ok(Err(ApiRefused::Stream(
                "too many changes are waiting for the stream: retry in a moment".into(),
            )));
        }
        // The waiter goes once its reply is dropped (the owner task looks on its tick).
        let wait = async {
            if let Err(e) = submit.publish(&event).await {
                return Ok(Err(ApiRefused::Stream(format!(
                    "the stream did not take it, nothing changed: {e}"
                ))));
            }
            rx.await.map_err(|_| EngineStopped)
        };
        let timeout = link.timeout();
        match tokio::time::timeout(timeout, wait).await {
            Ok(r) => r,
            Err(_) => Ok(Err(ApiRefused::Timeout(format!(
                "published to the stream as {id}, but not back from it within {:.1}s: it takes effect in its place in the stream all the same",
                timeout.as_secs_f64()
            )))),
        }
    }

    /// The digest of the rulebook in force, and whether a `rulebook` event put it there (a
    /// journal or the stream shows it).
    pub async fn rulebook_in_force(&self) -> Result<(String, bool), EngineStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Rulebook { reply })
            .await
            .map_err(|_| EngineStopped)?;
        rx.await.map_err(|_| EngineStopped)
    }

    /// The approvals active at the engine clock, by agent, then start.
    pub async fn approvals(&self) -> Result<Vec<ApprovalView>, EngineStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Approvals { reply })
            .await
            .map_err(|_| EngineStopped)?;
        rx.await.map_err(|_| EngineStopped)
    }

    /// The kept shifts overlapping `[from, to)` (of `agent` when given), with their
    /// attendance facts.
    pub async fn shifts(
        &self,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        agent: Option<Id>,
    ) -> Result<Vec<ShiftView>, EngineStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Shifts {
                from,
                to,
                agent,
                reply,
            })
            .await
            .map_err(|_| EngineStopped)?;
        rx.await.map_err(|_| EngineStopped)
    }

    /// Closes month `period` (`YYYY-MM`) by `by`. Through a shared stream, the statement
    /// is the one at the close's place in the stream (its digest may differ from the one
    /// published, when the month changed meanwhile: see the owner task).
    pub async fn close(
        &self,
        period: Id,
        by: Id,
    ) -> Result<Result<Closed, ApiRefused>, EngineStopped> {
        let Some(link) = &self.stream else {
            let (reply, rx) = oneshot::channel();
            self.tx
                .send(Command::Close { period, by, reply })
                .await
                .map_err(|_| EngineStopped)?;
            return rx.await.map_err(|_| EngineStopped);
        };
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::CloseEvent { period, by, reply })
            .await
            .map_err(|_| EngineStopped)?;
        let event = match rx.await.map_err(|_| EngineStopped)? {
            Ok(e) => e,
            Err(e) => return Ok(Err(e)),
        };
        Ok(self.through_stream(link, event).await?.and_then(|r| {
            let (csv, digest) = r.statement.ok_or_else(|| {
                ApiRefused::Unable("the close came back without its statement".into())
            })?;
            Ok(Closed {
                csv,
                digest,
                at: r.reply.at,
                stored: r.reply.stored,
            })
        }))
    }

    /// The end of what the journal holds durably: readers beside the daemon read up to it.
    pub async fn journal_end(&self) -> Result<Option<Position>, EngineStopped> {
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

/// Answers the owner task's requests for a [`Proof::Drained`] on a connection that reads a
/// socket (WebSocket ingest in both modes, the AMI and event-socket adapters).
///
/// Poll [`Prover::drained`] in a `biased` `select!` *after* the branch that reads the
/// transport. When the owner task asks ([`Link::wanted`]), the prover takes the wall time
/// `T`, then lets the runtime's timer fire twice. Every turn of tokio's driver polls the
/// operating system for readable sockets before it fires timers, and holds the driver while
/// it does both; the second firing therefore comes from a turn that began polling after `T`.
/// Data that arrived before `T` has been seen by then, and the read branch, polled just
/// before in the same `select!`, would have taken it. So when `drained` resolves to `T`,
/// nothing the connection received before `T` is left unread; the caller hands the proof
/// over with [`EngineClient::prove`], after the batches of what it read. A freeze of the
/// process anywhere in between only makes `T` older than it could be.
pub struct Prover {
    clock: Clock,
    wanted: Option<watch::Receiver<u64>>,
    /// The request being answered: its wall time, and the timer firings still to wait for.
    pending: Option<(Timestamp, u8)>,
}

impl Prover {
    /// Each of the two timer waits of a proof.
    pub const SETTLE: std::time::Duration = std::time::Duration::from_millis(1);

    pub fn new(clock: Clock, wanted: watch::Receiver<u64>) -> Prover {
        Prover {
            clock,
            wanted: Some(wanted),
            pending: None,
        }
    }

    /// A prover that is never asked (before a connection is registered).
    pub fn idle(clock: Clock) -> Prover {
        Prover {
            clock,
            wanted: None,
            pending: None,
        }
    }

    /// Resolves to the wall time `T` of a proof once one may be given (see the type's doc).
    /// Cancel safe: a request taken is kept until it is answered.
    pub async fn drained(&mut self) -> Timestamp {
        loop {
            if let Some((at, left)) = self.pending.as_mut() {
                while *left > 0 {
                    tokio::time::sleep(Prover::SETTLE).await;
                    *left -= 1;
                }
                let at = *at;
                self.pending = None;
                return at;
            }
            let asked = match self.wanted.as_mut() {
                Some(w) => w.changed().await.is_ok(),
                None => false,
            };
            if !asked {
                // Never asked, or the owner task has stopped: nothing to answer.
                std::future::pending::<()>().await;
            }
            self.pending = Some((self.clock.now(), 2));
        }
    }
}

/// The receiving end of an [`EngineClient`] in a process without an engine (the relay): it
/// hands on what sources send ([`Forward`]) and refuses what only an engine can answer.
pub struct Inbox {
    rx: mpsc::Receiver<Command>,
    next_conn: u64,
}

/// What a source sent, for a process without an engine.
pub enum Forward {
    /// A source connected: answer with its resume point.
    Connect {
        source: Id,
        /// The connection's own `max_future`, if it has one (an adapter's).
        max_future: Option<Millis>,
        reply: Connecting,
    },
    Batch {
        conn: ConnId,
        received: Timestamp,
        events: Vec<Event>,
        reply: oneshot::Sender<BatchReply>,
    },
    Disconnect {
        conn: ConnId,
    },
}

/// The answer to a connecting source.
pub struct Connecting {
    conn: ConnId,
    reply: oneshot::Sender<Link>,
}

impl Connecting {
    /// The connection's id.
    pub fn conn(&self) -> ConnId {
        self.conn
    }

    /// Tells the source its resume point; returns the sender of its ack watch, which must
    /// live as long as the connection (a session ends when it is dropped).
    pub fn accept(self, resume: Option<u64>) -> watch::Sender<Option<u64>> {
        let (tx, acks) = watch::channel(resume);
        // No engine clock here: nobody asks the connection for proofs (the sender is
        // dropped, so its prover never answers).
        let (_, wanted) = watch::channel(0);
        let _ = self.reply.send(Link {
            conn: self.conn,
            resume,
            acks,
            wanted,
        });
        tx
    }
}

/// A client whose commands go to the returned [`Inbox`] instead of an owner task.
pub fn forwarding(capacity: usize) -> (EngineClient, Inbox) {
    let (tx, rx) = mpsc::channel(capacity);
    (
        EngineClient { tx, stream: None },
        Inbox { rx, next_conn: 0 },
    )
}

impl Inbox {
    /// The next thing a source sent; `None` once every client is gone or after
    /// [`Inbox::close`]. Commands of the API are answered here: there is no engine.
    pub async fn recv(&mut self) -> Option<Forward> {
        loop {
            let refused = || ApiRefused::Unable("this process has no engine".into());
            match self.rx.recv().await? {
                Command::Connect {
                    source,
                    max_future,
                    reply,
                } => {
                    let conn = ConnId(self.next_conn);
                    self.next_conn += 1;
                    return Some(Forward::Connect {
                        source,
                        max_future,
                        reply: Connecting { conn, reply },
                    });
                }
                Command::Batch {
                    conn,
                    received,
                    events,
                    reply,
                    ..
                } => {
                    return Some(Forward::Batch {
                        conn,
                        received,
                        events,
                        reply,
                    })
                }
                Command::Disconnect { conn } => return Some(Forward::Disconnect { conn }),
                // Proofs move an engine clock; there is none here.
                Command::Proof { .. } => {}
                Command::Api { reply, .. } => {
                    let _ = reply.send(Err(refused()));
                }
                Command::Await { registered, .. } => {
                    let _ = registered.send(false);
                }
                Command::CloseEvent { reply, .. } => {
                    let _ = reply.send(Err(refused()));
                }
                Command::Close { reply, .. } => {
                    let _ = reply.send(Err(refused()));
                }
                Command::Rulebook { reply } => {
                    let _ = reply.send((String::new(), false));
                }
                Command::JournalEnd { reply } => {
                    let _ = reply.send(None);
                }
                Command::Approvals { reply } => {
                    let _ = reply.send(Vec::new());
                }
                Command::Shifts { reply, .. } => {
                    let _ = reply.send(Vec::new());
                }
            }
        }
    }

    /// Stops taking commands; what was sent already is still returned by `recv`.
    pub fn close(&mut self) {
        self.rx.close();
    }
}
