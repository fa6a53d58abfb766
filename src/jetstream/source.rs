//! The `nats-jetstream` source: the daemon's durable pull consumer on the shared stream,
//! feeding the engine task as one source connection.
//!
//! Order is everything: both daemons of a pair must apply the same messages in the same
//! order. JetStream redelivers an unacknowledged message after `ack_wait`, behind the ones
//! delivered since, and a delivery can be lost when a server goes away. So the daemon keeps
//! its own position (the highest stream sequence it handed to the engine task; after a
//! restart, the highest in its journal) and:
//! - skips every message at or below it (a redelivery: counted, never applied twice);
//! - watches the consumer's delivery sequence, which counts every delivery (redeliveries
//!   too): a jump means deliveries were lost in between, and the session ends;
//! - ends the session when the client loses its server;
//! - at the start of every session makes the consumer deliver from its position on: the
//!   durable consumer is kept when its last delivery is exactly there with nothing
//!   unacknowledged, else it is deleted and created anew at the position (after a `kill -9`
//!   it usually is).
//!
//! A message is acknowledged (`AckAll`: the latest one acknowledges those before it) only
//! once the engine task says that everything applied so far is in the journal; while the
//! store is failing, acks wait (and JetStream's `max_ack_pending` holds the deliveries back).
//! A message none of whose events is valid is counted, and acknowledged with the others:
//! never redelivered forever.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::Message;
use futures_util::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;

use super::{message_events, Connection, REQUEST_TIMEOUT};
use crate::clock::Clock;
use crate::config::JetStreamSource;
use crate::event::Id;
use crate::limits::Limiter;
use crate::metrics::Metrics;
use crate::owner::{ConnId, EngineClient, Proof, Prover};

/// Messages taken from the consumer's buffer for one round trip to the engine task.
const GATHER: usize = 512;
/// Messages the consumer asks the server for at once.
const FETCH: usize = 1_000;
/// Delivered but unacknowledged messages the server allows (its back-pressure while the
/// store is failing).
const MAX_ACK_PENDING: i64 = 20_000;
/// While the journal is behind (a failing store), how often the engine task is asked
/// whether it caught up, to acknowledge.
const STORED_POLL: Duration = Duration::from_millis(250);
/// The server's heartbeat on an idle pull: two missed ones end the session (a server that
/// went away, a consumer whose leader moved), so it bounds how long a failover goes unseen.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// The longest wait before a session starts again.
const RETRY_CAP: Duration = Duration::from_secs(1);

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionEnd {
    #[error("the engine task has stopped")]
    Stopped,
    #[error("stream {0:?} does not exist: create it first (docs/scale-out.md)")]
    NoStream(String),
    #[error("the stream ends at sequence {last}, but this daemon has applied up to {position}: was the stream made anew? (give the source another name, or start from an empty data directory)")]
    StreamBehind { last: u64, position: u64 },
    #[error("lost connection to the server")]
    Disconnected,
    #[error("deliveries {expected} to {got} did not arrive")]
    Gap { expected: u64, got: u64 },
    #[error("{0}")]
    Nats(String),
}

fn nats(e: impl std::fmt::Display) -> SessionEnd {
    SessionEnd::Nats(e.to_string())
}

/// The consumer task of one daemon.
pub struct SourceTask {
    pub(super) cfg: JetStreamSource,
    pub(super) js: async_nats::jetstream::Context,
    pub(super) connection: Connection,
    pub(super) engine: EngineClient,
    pub(super) clock: Clock,
    pub(super) metrics: Arc<Metrics>,
    pub(super) limiter: Arc<Limiter>,
    /// Set to true once the consumer has caught up with the stream for the first time.
    pub(super) caught_up: tokio::sync::watch::Sender<bool>,
    pub(super) shutdown: CancellationToken,
    /// The highest stream sequence handed to the engine task by this process.
    pub(super) applied: Option<u64>,
}

impl SourceTask {
    fn gauge(&self, g: &prometheus::IntGaugeVec, v: i64) {
        g.with_label_values(&[self.cfg.name.as_str()]).set(v);
    }

    fn count(&self, outcome: &str, n: u64) {
        if n > 0 {
            self.metrics
                .adapter_messages
                .with_label_values(&[self.cfg.name.as_str(), outcome])
                .inc_by(n);
        }
    }

    /// The consumer has nothing more to deliver: the daemon is ready.
    fn caught_up_now(&self) {
        self.gauge(&self.metrics.stream.catching_up, 0);
        self.caught_up
            .send_if_modified(|c| !std::mem::replace(c, true));
    }

    /// Runs sessions until shutdown. A session that ends is started again after a short
    /// back-off ([`RETRY_CAP`] at most: a cluster electing new leaders after a server died
    /// is back within seconds, and the client itself redials its servers).
    pub async fn run(mut self) {
        let name = self.cfg.name.clone();
        self.gauge(&self.metrics.adapter_connected, 0);
        self.gauge(&self.metrics.stream.catching_up, 1);
        tracing::info!(source = %name, stream = %self.cfg.stream, subject = %self.cfg.subject, durable = %self.cfg.durable, "nats-jetstream source started");
        let mut failures = 0u32;
        loop {
            // The client reconnects by itself: wait for it.
            let up = async {
                let mut c = self.connection.clone();
                let _ = c.wait_for(|(_, up)| *up).await;
            };
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = up => {}
            }
            let since = tokio::time::Instant::now();
            let end = self.session().await;
            self.gauge(&self.metrics.adapter_connected, 0);
            let e = match end {
                None | Some(SessionEnd::Stopped) => return,
                Some(e) => e,
            };
            if since.elapsed() >= crate::redial::STABLE_CONNECTION {
                failures = 0;
            }
            let delay = crate::redial::backoff(failures).min(RETRY_CAP);
            failures = failures.saturating_add(1);
            self.metrics
                .adapter_reconnects
                .with_label_values(&[name.as_str()])
                .inc();
            tracing::warn!(source = %name, error = %e, delay_ms = delay.as_millis() as u64, "stream source session ended; starting again");
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// One session, from the engine's resume point to an error (`None`: shutdown).
    async fn session(&mut self) -> Option<SessionEnd> {
        let Ok(link) = self.engine.link(&self.cfg.name, None).await else {
            return Some(SessionEnd::Stopped);
        };
        let conn = link.conn;
        let prover = Prover::new(self.clock, link.wanted);
        let end = self.consume(conn, link.resume, prover).await;
        self.engine.disconnect(conn).await;
        end.err()
    }

    /// Proofs for the engine clock (module doc of [`crate::owner`]): only while the stream
    /// holds nothing more for this consumer (the last message's `pending` was 0) and the
    /// client has nothing more to hand over; a daemon catching up with the stream proves
    /// nothing, so the wall clock judges nothing it has not read yet.
    async fn consume(
        &mut self,
        conn: ConnId,
        resume: Option<u64>,
        mut prover: Prover,
    ) -> Result<(), SessionEnd> {
        self.applied = self.applied.max(resume);
        let position = self.applied.unwrap_or(0);
        let connects = self.connection.borrow().0;
        let mut consumer = self.consumer_at(position).await?;
        // Nothing to catch up with: no message will come to say so.
        let behind = consumer.info().await.map(|i| i.num_pending).map_err(nats)?;
        self.gauge(
            &self.metrics.stream.pending,
            i64::try_from(behind).unwrap_or(i64::MAX),
        );
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(FETCH)
            .heartbeat(HEARTBEAT)
            .expires(HEARTBEAT * 6)
            .messages()
            .await
            .map_err(nats)?;
        self.gauge(&self.metrics.adapter_connected, 1);
        self.gauge(&self.metrics.stream.catching_up, 1);
        tracing::info!(source = %self.cfg.name, position, behind, "consuming the stream");
        if behind == 0 {
            self.caught_up_now();
        }
        let mut at_end = behind == 0;

        let mut connection = self.connection.clone();
        // The newest message handed on or skipped, not yet acknowledged.
        let mut unacked: Option<Message> = None;
        let mut last_delivery: Option<u64> = None;
        loop {
            let next = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => {
                    self.ack_at_shutdown(conn, unacked.take()).await;
                    return Ok(());
                }
                _ = connection.changed() => {
                    let (n, up) = *connection.borrow_and_update();
                    if !up || n != connects {
                        return Err(SessionEnd::Disconnected);
                    }
                    continue;
                }
                m = messages.next() => m,
                // After the branch that reads: it would have taken a message ready now.
                t = prover.drained(), if at_end => {
                    self.engine
                        .prove(conn, Proof::Drained(t))
                        .await
                        .map_err(|_| SessionEnd::Stopped)?;
                    continue;
                }
                _ = tokio::time::sleep(STORED_POLL), if unacked.is_some() => {
                    let reply = self
                        .engine
                        .apply(conn, self.clock.now(), Vec::new())
                        .await
                        .map_err(|_| SessionEnd::Stopped)?;
                    if reply.stored {
                        if let Some(m) = unacked.take() {
                            ack(m).await;
                        }
                    }
                    continue;
                }
            };
            let first = match next {
                None => {
                    return Err(SessionEnd::Nats(
                        "the consumer's message stream ended".into(),
                    ))
                }
                Some(Err(e)) => return Err(nats(e)),
                Some(Ok(m)) => m,
            };
            let mut batch = vec![first];
            let mut later: Option<SessionEnd> = None;
            while batch.len() < GATHER {
                match messages.next().now_or_never() {
                    Some(Some(Ok(m))) => batch.push(m),
                    Some(Some(Err(e))) => {
                        later = Some(nats(e));
                        break;
                    }
                    Some(None) => {
                        later = Some(SessionEnd::Nats(
                            "the consumer's message stream ended".into(),
                        ));
                        break;
                    }
                    None => break,
                }
            }
            let mut events = Vec::new();
            let mut pending = None;
            let (mut mapped, mut malformed, mut skipped) = (0u64, 0u64, 0u64);
            for m in batch {
                let (sseq, dseq, left) = match m.info() {
                    Ok(i) => (i.stream_sequence, i.consumer_sequence, i.pending),
                    Err(e) => return Err(nats(e)),
                };
                if let Some(d) = last_delivery {
                    if dseq > d + 1 {
                        later = Some(SessionEnd::Gap {
                            expected: d + 1,
                            got: dseq,
                        });
                        break;
                    }
                }
                last_delivery = Some(dseq);
                pending = Some(left);
                if self.applied.is_some_and(|a| sseq <= a) {
                    skipped += 1;
                    unacked = Some(m);
                    continue;
                }
                let (evs, rejected) =
                    message_events(&m.payload, sseq, self.limiter.config.max_batch);
                for r in &rejected {
                    self.metrics.observe_rejected(r.error.reason_label());
                    self.limiter.log.hit("stream_rejected", || {
                        tracing::warn!(source = %self.cfg.name, seq = sseq, index = ?r.index, error = %r.error, "stream message event rejected");
                    });
                }
                if evs.is_empty() {
                    malformed += 1;
                } else {
                    mapped += 1;
                }
                events.extend(evs);
                self.applied = Some(sseq);
                unacked = Some(m);
            }
            self.count("mapped", mapped);
            self.count("malformed", malformed);
            self.count("ignored", skipped);
            if skipped > 0 {
                self.metrics
                    .stream
                    .redelivered
                    .with_label_values(&[self.cfg.name.as_str()])
                    .inc_by(skipped);
            }
            if !events.is_empty() {
                let source = Id::from(self.cfg.name.as_str());
                let bucket = self.limiter.bucket(&source);
                let wait = self.limiter.rate_wait(&source, &bucket, events.len());
                if !wait.is_zero() {
                    tokio::select! {
                        _ = self.shutdown.cancelled() => {}
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
            let reply = self
                .engine
                .apply(conn, self.clock.now(), events)
                .await
                .map_err(|_| SessionEnd::Stopped)?;
            if reply.stored {
                if let Some(m) = unacked.take() {
                    ack(m).await;
                }
            }
            if let Some(p) = pending {
                at_end = p == 0;
                self.gauge(
                    &self.metrics.stream.pending,
                    i64::try_from(p).unwrap_or(i64::MAX),
                );
                if p == 0 {
                    self.gauge(&self.metrics.stream.catching_up, 0);
                    self.caught_up
                        .send_if_modified(|c| !std::mem::replace(c, true));
                }
            }
            if let Some(e) = later {
                if matches!(e, SessionEnd::Gap { .. }) {
                    self.metrics
                        .stream
                        .resyncs
                        .with_label_values(&[self.cfg.name.as_str()])
                        .inc();
                }
                return Err(e);
            }
        }
    }

    /// The durable consumer, delivering from `position + 1` on (from the start for 0).
    async fn consumer_at(&self, position: u64) -> Result<PullConsumer, SessionEnd> {
        let cfg = &self.cfg;
        let stream = match self.js.get_stream(&cfg.stream).await {
            Ok(s) => s,
            Err(e)
                if matches!(
                    e.kind(),
                    async_nats::jetstream::context::GetStreamErrorKind::JetStream(j)
                        if j.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND
                ) =>
            {
                return Err(SessionEnd::NoStream(cfg.stream.clone()))
            }
            Err(e) => return Err(nats(e)),
        };
        let state = &stream.cached_info().state;
        if position > state.last_sequence {
            return Err(SessionEnd::StreamBehind {
                last: state.last_sequence,
                position,
            });
        }
        if position > 0 && position + 1 < state.first_sequence {
            tracing::error!(
                source = %cfg.name,
                position,
                first = state.first_sequence,
                "the stream no longer holds the messages after this daemon's position (its retention removed them): they are lost to this daemon"
            );
        }
        let wanted = pull::Config {
            durable_name: Some(cfg.durable.clone()),
            filter_subject: cfg.subject.clone(),
            ack_policy: AckPolicy::All,
            max_ack_pending: MAX_ACK_PENDING,
            deliver_policy: if position == 0 {
                DeliverPolicy::All
            } else {
                DeliverPolicy::ByStartSequence {
                    start_sequence: position + 1,
                }
            },
            ..Default::default()
        };
        match stream.consumer_info(&cfg.durable).await {
            Ok(info) => {
                // It delivers from its last delivery on, and nothing waits to be delivered
                // again (a consumer made at `position + 1` has delivered `position` and
                // acknowledged nothing yet).
                let keep = info.config.filter_subject == cfg.subject
                    && info.config.ack_policy == AckPolicy::All
                    && info.delivered.stream_sequence == position
                    && info.num_ack_pending == 0;
                if keep {
                    return stream
                        .get_consumer::<pull::Config>(&cfg.durable)
                        .await
                        .map_err(nats);
                }
                tracing::info!(
                    source = %cfg.name,
                    durable = %cfg.durable,
                    position,
                    delivered = info.delivered.stream_sequence,
                    acked = info.ack_floor.stream_sequence,
                    "making the consumer anew at this daemon's position"
                );
                self.metrics
                    .stream
                    .resyncs
                    .with_label_values(&[cfg.name.as_str()])
                    .inc();
                stream.delete_consumer(&cfg.durable).await.map_err(nats)?;
            }
            Err(e)
                if e.kind() == async_nats::jetstream::context::ConsumerInfoErrorKind::NotFound =>
            {
                tracing::info!(source = %cfg.name, durable = %cfg.durable, position, "creating the consumer");
            }
            Err(e) => return Err(nats(e)),
        }
        stream.create_consumer(wanted).await.map_err(nats)
    }
}

impl SourceTask {
    /// At shutdown: acknowledges the newest message applied once the journal holds it (for a
    /// short while: the engine task flushes the journal as it stops), and flushes the client,
    /// so that the next start finds the consumer at the daemon's position and keeps it.
    async fn ack_at_shutdown(&self, conn: ConnId, unacked: Option<Message>) {
        let Some(m) = unacked else {
            return;
        };
        for _ in 0..4 {
            match self.engine.apply(conn, self.clock.now(), Vec::new()).await {
                Ok(reply) if reply.stored => {
                    ack(m).await;
                    let flushed =
                        tokio::time::timeout(REQUEST_TIMEOUT, self.js.client().flush()).await;
                    if !matches!(flushed, Ok(Ok(()))) {
                        tracing::debug!("cannot flush the last acknowledgement");
                    }
                    return;
                }
                Ok(_) => tokio::time::sleep(STORED_POLL).await,
                Err(_) => return,
            }
        }
    }
}

/// Acknowledges `m` and, with `AckAll`, everything delivered before it. A lost ack is
/// harmless: the message comes again and is skipped.
async fn ack(m: Message) {
    if let Err(e) = m.ack().await {
        tracing::debug!(error = %e, "cannot acknowledge a stream message");
    }
}
