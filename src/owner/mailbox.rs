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

use crate::engine::{Applied, ApprovalView, Limit, Refusal, ShiftView};
use crate::event::{Event, Id};
use crate::journal::Position;
use crate::time::Timestamp;

/// Identifies one ingest connection to the owner task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(pub(super) u64);

/// The owner task's answer to a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchReply {
    /// What the engine did with each event, in order (an event refused by an engine limit
    /// is not journaled either).
    pub outcomes: Vec<Applied>,
    /// The highest `seq` processed from the connection's source, after the batch.
    pub ack: Option<u64>,
    /// Whether every event applied so far (this batch's and all before it) is in the
    /// journal: without a store, always.
    pub stored: bool,
}

pub(super) enum Command {
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
    reply: oneshot::Sender<(ConnId, Option<u64>, watch::Receiver<Option<u64>>)>,
}

impl Connecting {
    /// The connection's id.
    pub fn conn(&self) -> ConnId {
        self.conn
    }

    /// Tells the source its resume point; returns the sender of its ack watch, which must
    /// live as long as the connection (a session ends when it is dropped).
    pub fn accept(self, resume: Option<u64>) -> watch::Sender<Option<u64>> {
        let (tx, rx) = watch::channel(resume);
        let _ = self.reply.send((self.conn, resume, rx));
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
                Command::Connect { source, reply } => {
                    let conn = ConnId(self.next_conn);
                    self.next_conn += 1;
                    return Some(Forward::Connect {
                        source,
                        reply: Connecting { conn, reply },
                    });
                }
                Command::Batch {
                    conn,
                    received,
                    events,
                    reply,
                } => {
                    return Some(Forward::Batch {
                        conn,
                        received,
                        events,
                        reply,
                    })
                }
                Command::Disconnect { conn } => return Some(Forward::Disconnect { conn }),
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
