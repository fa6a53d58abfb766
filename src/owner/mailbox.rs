//! The owner task's mailbox: what ingest connections, adapters and the HTTP API send it
//! ([`EngineClient`]) and what it answers ([`BatchReply`], [`ApiReply`]).
//!
//! Owns: the command channel's message types and the client side of it. Must not: touch the
//! engine or the store (only the owner task does), or wait on anything but the channel and
//! the reply.

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

/// A handle for sending commands to the engine owner task. Cheap to clone.
#[derive(Clone)]
pub struct EngineClient {
    pub(super) tx: mpsc::Sender<Command>,
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

    /// Applies an event made by the API (source [`crate::config::API_SOURCE`]), journaled like any other;
    /// the inner error is an engine limit that refused it.
    pub async fn apply_api(
        &self,
        event: Event,
    ) -> Result<Result<ApiReply, ApiRefused>, EngineStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Api { event, reply })
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

    /// Closes month `period` (`YYYY-MM`) by `by`.
    pub async fn close(
        &self,
        period: Id,
        by: Id,
    ) -> Result<Result<Closed, ApiRefused>, EngineStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Close { period, by, reply })
            .await
            .map_err(|_| EngineStopped)?;
        rx.await.map_err(|_| EngineStopped)
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
