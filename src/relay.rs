//! `floorwatch relay`: the WebSocket ingest (listen and connect modes) and the phone-system
//! adapters of the daemon, publishing what they receive to a JetStream stream instead of
//! judging it (docs/scale-out.md).
//!
//! Each batch a source sends becomes one message on `<relay.subject>.<source>` (split when it
//! is larger than [`MAX_MESSAGE`]), with `Nats-Msg-Id` = the source and the batch's last
//! `seq`; the source gets its ack only once JetStream has acknowledged the publish, so an
//! acknowledged event is in the replicated stream. The hello's `resume_after` is the last
//! `seq` the stream holds for the source (the newest message on its subject): a relay holds
//! no state, two can run side by side, and a source may reconnect to either. While NATS
//! cannot be reached a batch is published again with back-off (with its id, so a publish
//! that did arrive is stored once) and the source waits: back-pressure, nothing dropped.
//!
//! Owns: the relay's wiring (HTTP: `/ingest`, `/metrics`, `/healthz`, `/readyz`; the
//! dialer; the adapters) and the forwarding of batches to the stream. Stands beside
//! `daemon` at the top; must not judge, journal or keep anything between runs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::{Config, RelayConfig, SourceClock, SourceMode};
use crate::engine::Applied;
use crate::event::{Event, Id};
use crate::http::{ApiError, IngestQuery, Surface};
use crate::ingest::Ingest;
use crate::jetstream::{frame_of, source_token, Connection, REQUEST_TIMEOUT};
use crate::limits::Limiter;
use crate::metrics::Metrics;
use crate::owner::{BatchReply, ConnId, Forward, Inbox, Outcome, Refused};

/// The largest message the relay publishes (NATS refuses more than its `max_payload`, 1 MiB
/// by default); a larger batch goes as several messages, in order.
pub const MAX_MESSAGE: usize = 256 << 10;

/// The longest wait between two attempts at a publish.
const RETRY_CAP: Duration = Duration::from_secs(2);

/// A source connection of the relay.
struct Conn {
    source: Id,
    subject: String,
    /// How far ahead of the relay's clock an event of this connection may lie.
    max_future: crate::time::Millis,
    /// The highest `seq` in the stream for this connection's source.
    acked: Option<u64>,
    /// The session's ack watch: it ends when this is dropped.
    _watch: tokio::sync::watch::Sender<Option<u64>>,
}

/// What the forwarding tasks share.
struct Forwarder {
    cfg: RelayConfig,
    js: async_nats::jetstream::Context,
    connection: Connection,
    clock_receipt: bool,
    /// `[source]`: `max_future` and `max_future_of`.
    source_cfg: crate::config::SourceConfig,
    metrics: Arc<Metrics>,
    conns: Mutex<HashMap<ConnId, Conn>>,
    shutdown: CancellationToken,
}

impl Forwarder {
    fn conn<T>(&self, conn: ConnId, f: impl FnOnce(&mut Conn) -> T) -> Option<T> {
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        conns.get_mut(&conn).map(f)
    }

    /// The last `seq` the stream holds for `subject`'s source (`None` if none), asked again
    /// with back-off until NATS answers; `None` at shutdown too.
    async fn resume_of(&self, subject: &str) -> Option<u64> {
        let mut failures = 0u32;
        loop {
            let lookup = async {
                let stream = self
                    .js
                    .get_stream_no_info(&self.cfg.stream)
                    .await
                    .map_err(|e| e.to_string())?;
                match stream.get_last_raw_message_by_subject(subject).await {
                    // The events as the relay published them keep their source's `seq`.
                    Ok(m) => Ok(original_seqs(&m.payload)),
                    Err(e)
                        if e.kind()
                            == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
                    {
                        Ok(None)
                    }
                    Err(e) => Err(e.to_string()),
                }
            };
            match tokio::time::timeout(REQUEST_TIMEOUT, lookup).await {
                Ok(Ok(resume)) => return resume,
                Ok(Err(e)) => {
                    tracing::warn!(subject, error = %e, "cannot read the stream's resume point; retrying")
                }
                Err(_) => tracing::warn!(
                    subject,
                    "no answer from the stream for the resume point; retrying"
                ),
            }
            failures += 1;
            tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                _ = tokio::time::sleep(crate::redial::backoff(failures).min(RETRY_CAP)) => {}
            }
        }
    }

    /// Publishes `events` of `conn` (in order, as messages of at most [`MAX_MESSAGE`]) until
    /// JetStream acknowledged each; `None` at shutdown (the source gets no ack).
    async fn publish(
        &self,
        conn: ConnId,
        received: crate::time::Timestamp,
        mut events: Vec<Event>,
    ) -> Option<BatchReply> {
        let (source, subject, max_future) = self.conn(conn, |c| {
            (c.source.clone(), c.subject.clone(), c.max_future)
        })?;
        if self.clock_receipt {
            for e in &mut events {
                e.ts = received;
            }
        }
        // What a daemon would refuse before its engine by its own clock is refused here, by
        // the relay's clock, so that both daemons of a pair read the same stream: an event
        // from too far ahead (a wrong source clock), and a rulebook (the pair's come from
        // its daemons' config).
        let mut outcomes = Vec::with_capacity(events.len());
        events.retain(|e| {
            let ahead = e.ts.since(received);
            let refused = if ahead > max_future {
                self.metrics.count_future(&source);
                Some(Refused::InFuture { ahead, max_future })
            } else if matches!(e.body, crate::event::Body::Rulebook { .. }) {
                Some(Refused::Rulebook)
            } else {
                None
            };
            let keep = refused.is_none();
            outcomes.push(match refused {
                Some(r) => Outcome::Refused(r),
                None => Outcome::Engine(Applied::Applied {
                    at: e.ts,
                    late: false,
                }),
            });
            keep
        });
        for chunk in chunks(&events) {
            let payload = frame_of(chunk);
            let id = match chunk.last().and_then(|e| e.seq) {
                Some(seq) => format!("{source}:{seq}"),
                None => format!(
                    "{source}:r{:016x}",
                    rand::Rng::random::<u64>(&mut rand::rng())
                ),
            };
            let mut failures = 0u32;
            loop {
                let attempt = async {
                    let mut headers = async_nats::HeaderMap::new();
                    headers.insert("Nats-Msg-Id", id.as_str());
                    let ack = self
                        .js
                        .publish_with_headers(subject.clone(), headers, payload.clone().into())
                        .await
                        .map_err(|e| e.to_string())?;
                    ack.await.map(|_| ()).map_err(|e| e.to_string())
                };
                match tokio::time::timeout(REQUEST_TIMEOUT, attempt).await {
                    Ok(Ok(())) => break,
                    Ok(Err(e)) => {
                        tracing::warn!(source = %source, error = %e, "publish to the stream failed; retrying")
                    }
                    Err(_) => {
                        tracing::warn!(source = %source, "no acknowledgement from the stream; retrying")
                    }
                }
                self.metrics.stream.relay_retries.inc();
                failures += 1;
                tokio::select! {
                    _ = self.shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(crate::redial::backoff(failures).min(RETRY_CAP)) => {}
                }
            }
            self.metrics
                .stream
                .relay_published
                .with_label_values(&[source.as_str()])
                .inc_by(chunk.len() as u64);
        }
        let top = events.iter().filter_map(|e| e.seq).max();
        let ack = self.conn(conn, |c| {
            c.acked = c.acked.max(top);
            c.acked
        })?;
        Some(BatchReply {
            outcomes,
            ack,
            stored: true,
        })
    }
}

/// The highest `seq` among the events of a payload as the relay published it.
fn original_seqs(payload: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(payload).ok()?;
    let frame = crate::event::decode_frame_limited(text, usize::MAX);
    frame.events.iter().filter_map(|(_, e)| e.seq).max()
}

/// `events` cut into runs whose frames stay within [`MAX_MESSAGE`] (one event at least).
fn chunks(events: &[Event]) -> Vec<&[Event]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut size = 2;
    for (i, e) in events.iter().enumerate() {
        let n = e.to_json().len() + 1;
        if i > start && size + n > MAX_MESSAGE {
            out.push(&events[start..i]);
            start = i;
            size = 2;
        }
        size += n;
    }
    if start < events.len() {
        out.push(&events[start..]);
    }
    out
}

/// Hands what the sources send to the stream until the inbox closes.
async fn forward(fw: Arc<Forwarder>, mut inbox: Inbox) {
    while let Some(f) = inbox.recv().await {
        match f {
            Forward::Connect {
                source,
                max_future,
                reply,
            } => {
                let fw = fw.clone();
                tokio::spawn(async move {
                    let subject = format!("{}.{}", fw.cfg.subject, source_token(&source));
                    let resume = fw.resume_of(&subject).await;
                    tracing::info!(source = %source, subject, resume_after = ?resume, "source connected to the relay");
                    let conn = reply.conn();
                    let watch = reply.accept(resume);
                    let max_future = fw.source_cfg.max_future_for(source.as_str(), max_future);
                    let mut conns = fw.conns.lock().unwrap_or_else(|p| p.into_inner());
                    conns.insert(
                        conn,
                        Conn {
                            source,
                            subject,
                            max_future,
                            acked: resume,
                            _watch: watch,
                        },
                    );
                    fw.metrics
                        .source_connected
                        .set(i64::try_from(conns.len()).unwrap_or(i64::MAX));
                });
            }
            Forward::Batch {
                conn,
                received,
                events,
                reply,
            } => {
                let fw = fw.clone();
                tokio::spawn(async move {
                    if let Some(r) = fw.publish(conn, received, events).await {
                        let _ = reply.send(r);
                    }
                });
            }
            Forward::Disconnect { conn } => {
                let mut conns = fw.conns.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(c) = conns.remove(&conn) {
                    tracing::info!(source = %c.source, "source disconnected from the relay");
                }
                fw.metrics
                    .source_connected
                    .set(i64::try_from(conns.len()).unwrap_or(i64::MAX));
            }
        }
    }
}

/// What the relay's routes read.
#[derive(Clone)]
struct RelayState {
    config: Arc<Config>,
    ingest: Ingest,
    metrics: Arc<Metrics>,
    limiter: Arc<Limiter>,
    forwarder: Arc<Forwarder>,
}

fn router(state: RelayState) -> Router {
    Router::new()
        .route("/ingest", get(ingest_upgrade))
        .route("/metrics", get(metrics))
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz))
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
}

async fn metrics(State(s): State<RelayState>) -> Response {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        s.metrics.encode(),
    )
        .into_response()
}

async fn readyz(State(s): State<RelayState>) -> Result<Json<serde_json::Value>, ApiError> {
    if !s.forwarder.connection.borrow().1 {
        return Err(ApiError::NotReady("not connected to NATS".into()));
    }
    for a in &s.config.adapters {
        if s.metrics
            .adapter_connected
            .with_label_values(&[a.name.as_str()])
            .get()
            == 0
        {
            return Err(ApiError::NotReady(format!(
                "source {:?} ({}) not connected",
                a.name,
                a.kind.kind().as_str()
            )));
        }
    }
    Ok(Json(serde_json::json!({"status": "ready"})))
}

/// `GET /ingest?source=NAME`, as the daemon's (tokens, loopback, source name, permit).
async fn ingest_upgrade(
    State(s): State<RelayState>,
    Query(query): Query<IngestQuery>,
    headers: HeaderMap,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let peer = peer.map(|Extension(ConnectInfo(a))| a);
    if let Err(e) = crate::http::admit_parts(&s.config, Surface::Ingest, &headers, None, peer) {
        tracing::warn!(peer = ?peer, error = %e, "ingest refused");
        return e.into_response();
    }
    crate::http::serve_ingest(&s.config, &s.limiter, s.ingest, query, ws)
}

/// A running relay.
pub struct RelayHandle {
    local_addr: SocketAddr,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    ingest: Ingest,
    metrics: Arc<Metrics>,
}

impl RelayHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Stops accepting, closes the sources (1001) and stops, within `grace`; false when the
    /// grace passed first.
    pub async fn shutdown(self, grace: Duration) -> bool {
        self.shutdown.cancel();
        let closed = self.ingest.all_closed();
        let all = async {
            closed.await;
            for t in self.tasks {
                let _ = t.await;
            }
        };
        tokio::time::timeout(grace, all).await.is_ok()
    }
}

/// Checks `config` (it must have `[relay]` and no nats-jetstream source), binds
/// `server.listen` and starts the relay.
pub async fn start(config: Config, clock: Clock) -> anyhow::Result<RelayHandle> {
    config.validate()?;
    let Some(relay) = config.relay.clone() else {
        return Err(crate::config::ConfigError {
            message: "floorwatch relay needs a [relay] table: url, stream and subject of the JetStream stream to publish to".into(),
            key: Some("relay".into()),
            line: None,
            column: None,
        }
        .into());
    };
    if let Some(js) = &config.jetstream {
        return Err(crate::config::ConfigError {
            message: format!(
                "a relay publishes to a stream and reads none: remove the nats-jetstream source {:?}",
                js.name
            ),
            key: Some("sources".into()),
            line: None,
            column: None,
        }
        .into());
    }
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let local_addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let shutdown = CancellationToken::new();
    let metrics = Arc::new(Metrics::new()?);
    let (client, connection) = crate::jetstream::connect(&relay.connection, "floorwatch relay")
        .await
        .context("cannot set up the NATS client")?;
    let forwarder = Arc::new(Forwarder {
        js: async_nats::jetstream::new(client),
        connection: connection.clone(),
        clock_receipt: config.source.clock == SourceClock::Receipt,
        source_cfg: config.source.clone(),
        metrics: metrics.clone(),
        conns: Mutex::new(HashMap::new()),
        shutdown: shutdown.clone(),
        cfg: relay,
    });
    let config = Arc::new(config);
    let limiter = Arc::new(Limiter::new(config.limits, metrics.clone()));
    let (engine, inbox) = crate::owner::forwarding(crate::owner::COMMAND_CAPACITY);
    let ingest = Ingest::new(
        config.clone(),
        clock,
        engine.clone(),
        metrics.clone(),
        limiter.clone(),
        shutdown.clone(),
    );
    let mut tasks = vec![tokio::spawn(forward(forwarder.clone(), inbox))];
    {
        let (metrics, mut connection, shutdown) = (metrics.clone(), connection, shutdown.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let up = connection.borrow_and_update().1;
                metrics.stream.relay_connected.set(i64::from(up));
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    r = connection.changed() => if r.is_err() { return },
                }
            }
        }));
    }
    if config.source.mode == SourceMode::Connect {
        let ingest = ingest.clone();
        tasks.push(tokio::spawn(async move { ingest.run_dialer().await }));
    }
    tasks.extend(crate::adapter::spawn_all(
        &config, &engine, clock, &metrics, &limiter, &shutdown,
    ));
    let state = RelayState {
        config: config.clone(),
        ingest: ingest.clone(),
        metrics: metrics.clone(),
        limiter,
        forwarder,
    };
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let token = shutdown.clone();
    tasks.push(tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(token.cancelled_owned());
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "http server failed");
        }
    }));
    tracing::info!(listen = %local_addr, stream = %config.relay.as_ref().map(|r| r.stream.as_str()).unwrap_or_default(), "relay started");
    Ok(RelayHandle {
        local_addr,
        shutdown,
        tasks,
        ingest,
        metrics,
    })
}

/// `floorwatch relay`: runs until SIGINT or SIGTERM.
pub fn main(args: crate::cli::RelayArgs) -> anyhow::Result<()> {
    let config = crate::config::load(args.config.as_deref())?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    crate::logging::init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let grace = Duration::from_millis(config.server.shutdown_grace.max(1) as u64);
    runtime.block_on(async {
        let relay = start(config, Clock::system()).await?;
        crate::service::ready(relay.local_addr());
        stop_signal().await;
        crate::service::stopping();
        tracing::info!("shutting down");
        if !relay.shutdown(grace).await {
            tracing::warn!(grace = ?grace, "shutdown took longer than server.shutdown_grace; stopped waiting");
        }
        Ok::<(), anyhow::Error>(())
    })?;
    runtime.shutdown_timeout(Duration::from_millis(500));
    Ok(())
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64, pad: usize) -> Event {
        let text = format!(
            r#"{{"type":"agent.login","ts":{seq},"seq":{seq},"agent":"a{seq}","name":"{}"}}"#,
            "x".repeat(pad)
        );
        crate::event::decode_event(&text).unwrap_or_else(|(_, e)| panic!("{e}"))
    }

    #[test]
    fn a_large_batch_is_cut_into_messages_within_the_limit_in_order() {
        let events: Vec<Event> = (1..=40).map(|i| event(i, 100_000)).collect();
        let parts = chunks(&events);
        assert!(parts.len() > 1, "{}", parts.len());
        assert!(parts
            .iter()
            .all(|p| frame_of(p).len() <= MAX_MESSAGE || p.len() == 1));
        let again: Vec<u64> = parts
            .iter()
            .flat_map(|p| p.iter().filter_map(|e| e.seq))
            .collect();
        assert_eq!(again, (1..=40).collect::<Vec<_>>());
        assert_eq!(chunks(&events[..1]).len(), 1);
        assert!(chunks(&[]).is_empty());
    }

    #[test]
    fn the_resume_point_is_the_highest_seq_of_the_last_message() {
        let events: Vec<Event> = (5..=9).map(|i| event(i, 1)).collect();
        assert_eq!(original_seqs(frame_of(&events).as_bytes()), Some(9));
        assert_eq!(
            original_seqs(br#"{"type":"agent.logout","ts":1,"agent":"a"}"#),
            None
        );
    }
}
