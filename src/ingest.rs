//! WebSocket ingest of the protocol page (`floorwatch.v1`), in both directions: sources that
//! connect to `GET /ingest?source=NAME` (listen mode) and the daemon dialing `source.url`
//! (connect mode, redialing forever with capped exponential back-off and jitter).
//!
//! Owns: the per-connection session: hello, frame decoding, error replies, acks, the frame
//! size limit (close code 1009), access to `/ingest` (an ingest bearer token; with none
//! configured, loopback peers only).
//! Must not: touch the engine other than through [`EngineClient`], or block the engine task:
//! a connection waits for its own batch's reply, and waits when the engine channel is full
//! (back-pressure on that source only); writes to a peer that does not read time out after
//! [`WRITE_TIMEOUT`] and drop that connection.
//!
//! # Acks
//!
//! `ack` (and the hello's `resume_after`) mean "durably stored": the highest `seq` of the
//! source name that is in the journal (`fdatasync`ed), as the engine task reports it; it
//! survives restarts. One ack is sent after every frame that held at least one valid event
//! with a `seq` behind it, which is more often than the protocol's "at least every second".
//! While the store is failing the reply carries the last stored `seq` (the ack stands
//! still); a daemon without a store (tests) acks what it applied.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use serde::Deserialize;
use tokio_tungstenite::tungstenite;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::Config;
use crate::daemon::{ConnId, EngineClient, Outcome};
use crate::engine::Limit;
use crate::event::{decode_frame_limited, Id, MAX_ID_LEN};
use crate::http::{authorize, ApiError, AppState};
use crate::limits::Limits;
use crate::metrics::{Metrics, REJECT_BINARY};

/// The protocol name sent in the hello.
pub const PROTOCOL: &str = "floorwatch.v1";

/// Close code for a frame over `source.max_frame` (RFC 6455 "message too big").
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Close code when the daemon shuts down ("going away").
pub const CLOSE_GOING_AWAY: u16 = 1001;

/// A write to a source that takes longer than this drops the connection.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connect mode back-off: first delay, doubled per failed attempt up to the cap.
const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// A connection that lasted this long resets the back-off.
const STABLE_CONNECTION: Duration = Duration::from_secs(10);

/// After a close the daemon lingers this long before dropping the socket, so that the peer
/// reads the close frame before the TCP connection is reset.
const CLOSE_LINGER: Duration = Duration::from_millis(250);

/// Everything a session needs. Cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<Config>,
    clock: Clock,
    engine: EngineClient,
    metrics: Arc<Metrics>,
    limits: Arc<Limits>,
    shutdown: CancellationToken,
}

/// What a transport received, reduced to what a session acts on.
enum Incoming {
    Text(String),
    Binary,
    /// A frame or message over the size limit.
    TooBig,
    /// Ping, pong: handled by the WebSocket layer.
    Control,
    Closed,
}

/// The two WebSocket stacks (axum's server side, tokio-tungstenite's client side) seen the
/// same way by a session.
trait Transport: Send {
    async fn next_incoming(&mut self) -> Incoming;
    /// Queues every text and flushes; false when the connection is gone.
    async fn send_texts(&mut self, texts: Vec<String>) -> bool;
    async fn close_with(&mut self, code: u16, reason: &str);
}

fn too_big(e: &(dyn std::error::Error + 'static)) -> bool {
    matches!(
        e.downcast_ref::<tungstenite::Error>(),
        Some(tungstenite::Error::Capacity(_))
    )
}

impl Transport for WebSocket {
    async fn next_incoming(&mut self) -> Incoming {
        match self.recv().await {
            None => Incoming::Closed,
            Some(Ok(ws::Message::Text(t))) => Incoming::Text(t.as_str().to_owned()),
            Some(Ok(ws::Message::Binary(_))) => Incoming::Binary,
            Some(Ok(ws::Message::Close(_))) => Incoming::Closed,
            Some(Ok(_)) => Incoming::Control,
            Some(Err(e)) => {
                let inner = e.into_inner();
                if too_big(inner.as_ref()) {
                    Incoming::TooBig
                } else {
                    tracing::debug!(error = %inner, "ingest read failed");
                    Incoming::Closed
                }
            }
        }
    }

    async fn send_texts(&mut self, texts: Vec<String>) -> bool {
        let send = async {
            for t in texts {
                self.feed(ws::Message::Text(t.into())).await?;
            }
            self.flush().await
        };
        matches!(tokio::time::timeout(WRITE_TIMEOUT, send).await, Ok(Ok(())))
    }

    async fn close_with(&mut self, code: u16, reason: &str) {
        let frame = ws::CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ =
            tokio::time::timeout(WRITE_TIMEOUT, self.send(ws::Message::Close(Some(frame)))).await;
    }
}

type ClientStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Transport for ClientStream {
    async fn next_incoming(&mut self) -> Incoming {
        match self.next().await {
            None => Incoming::Closed,
            Some(Ok(tungstenite::Message::Text(t))) => Incoming::Text(t.as_str().to_owned()),
            Some(Ok(tungstenite::Message::Binary(_))) => Incoming::Binary,
            Some(Ok(tungstenite::Message::Close(_))) => Incoming::Closed,
            Some(Ok(_)) => Incoming::Control,
            Some(Err(tungstenite::Error::Capacity(_))) => Incoming::TooBig,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "ingest read failed");
                Incoming::Closed
            }
        }
    }

    async fn send_texts(&mut self, texts: Vec<String>) -> bool {
        let send = async {
            for t in texts {
                self.feed(tungstenite::Message::text(t)).await?;
            }
            self.flush().await
        };
        matches!(tokio::time::timeout(WRITE_TIMEOUT, send).await, Ok(Ok(())))
    }

    async fn close_with(&mut self, code: u16, reason: &str) {
        let frame = tungstenite::protocol::CloseFrame {
            code: code.into(),
            reason: reason.into(),
        };
        let _ = tokio::time::timeout(WRITE_TIMEOUT, self.close(Some(frame))).await;
    }
}

#[derive(Deserialize)]
pub struct IngestQuery {
    source: Option<String>,
}

/// `GET /ingest?source=NAME`: checks the bearer token (401 before the upgrade), then serves
/// the WebSocket session.
pub async fn handle_upgrade(
    State(state): State<AppState>,
    Query(query): Query<IngestQuery>,
    headers: HeaderMap,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    ws: Result<WebSocketUpgrade, ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let ingest = state.ingest;
    let config = &ingest.inner.config;
    let peer = peer.map(|Extension(ConnectInfo(a))| a);
    if let Err(e) = authorize(
        "ingest",
        &[&config.server.tokens.ingest],
        &headers,
        None,
        peer,
    ) {
        tracing::warn!(peer = ?peer, error = %e, "ingest refused");
        return e.into_response();
    }
    let source = query.source.unwrap_or_else(|| "default".to_string());
    if source.is_empty() || source.len() > MAX_ID_LEN {
        return ApiError::BadRequest(format!(
            "source must be a non-empty name of at most {MAX_ID_LEN} bytes"
        ))
        .into_response();
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let Some(permit) = ingest.inner.limits.ingest_permit() else {
        return ApiError::Unavailable(
            "too many ingest connections (limits.max_ingest_connections): retry later",
        )
        .into_response();
    };
    let max = config.source.max_frame;
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |mut socket| async move {
            ingest.serve(&mut socket, Id::from(source)).await;
            drop(permit);
        })
}

impl Ingest {
    pub fn new(
        config: Arc<Config>,
        clock: Clock,
        engine: EngineClient,
        metrics: Arc<Metrics>,
        limits: Arc<Limits>,
        shutdown: CancellationToken,
    ) -> Ingest {
        Ingest {
            inner: Arc::new(Inner {
                config,
                clock,
                engine,
                metrics,
                limits,
                shutdown,
            }),
        }
    }

    /// Connect mode: dials `source.url` and serves it, redialing forever with capped
    /// exponential back-off and jitter, until shutdown.
    pub async fn run_dialer(&self) {
        let cfg = &self.inner.config.source;
        let Some(url) = cfg.url.clone() else {
            tracing::error!("connect mode without source.url");
            return;
        };
        // wss:// needs a crypto provider; `run_main` installs it too, but `start` may be
        // called without it (demo, tests). A second install is a no-op.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let source = Id::from(cfg.name.as_str());
        let ws_config = tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(cfg.max_frame))
            .max_frame_size(Some(cfg.max_frame));
        let mut failures: u32 = 0;
        let mut first = true;
        loop {
            if !first {
                self.inner.metrics.source_reconnects.inc();
                let delay = backoff(failures);
                tracing::info!(url = %url, delay_ms = delay.as_millis() as u64, "redialing source");
                tokio::select! {
                    _ = self.inner.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            first = false;
            let request = match client_request(&url, &cfg.headers) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(url = %url, error = %e, "bad source request");
                    failures = failures.saturating_add(1);
                    continue;
                }
            };
            let dial = tokio_tungstenite::connect_async_with_config(request, Some(ws_config), true);
            let result = tokio::select! {
                _ = self.inner.shutdown.cancelled() => return,
                r = dial => r,
            };
            match result {
                Ok((mut stream, _response)) => {
                    tracing::info!(url = %url, source = %source, "connected to source");
                    let since = tokio::time::Instant::now();
                    self.serve(&mut stream, source.clone()).await;
                    // A peer that accepts and drops at once is backed off like one that
                    // refuses; a connection that held for a while starts over.
                    if since.elapsed() >= STABLE_CONNECTION {
                        failures = 0;
                    } else {
                        failures = failures.saturating_add(1);
                    }
                    tracing::warn!(url = %url, source = %source, "source connection ended");
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(url = %url, error = %e, attempt = failures, "cannot connect to source");
                }
            }
            if self.inner.shutdown.is_cancelled() {
                return;
            }
        }
    }

    /// One connection, from hello to close. Tells the engine task when it starts and ends.
    async fn serve<T: Transport>(&self, t: &mut T, source: Id) {
        let engine = &self.inner.engine;
        let Ok((conn, resume, acks)) = engine.connect_with_acks(&source).await else {
            t.close_with(CLOSE_GOING_AWAY, "daemon shutting down").await;
            return;
        };
        self.session(t, &source, conn, resume, acks).await;
        engine.disconnect(conn).await;
    }

    async fn session<T: Transport>(
        &self,
        t: &mut T,
        source: &Id,
        conn: ConnId,
        resume: Option<u64>,
        mut acks: tokio::sync::watch::Receiver<Option<u64>>,
    ) {
        let inner = &*self.inner;
        let bucket = inner.limits.bucket(source);
        let hello =
            serde_json::json!({"type": "hello", "protocol": PROTOCOL, "resume_after": resume});
        if !t.send_texts(vec![hello.to_string()]).await {
            return;
        }
        loop {
            let incoming = tokio::select! {
                _ = inner.shutdown.cancelled() => {
                    t.close_with(CLOSE_GOING_AWAY, "daemon shutting down").await;
                    return;
                }
                m = t.next_incoming() => Some(m),
                // The ack moved without a frame to reply to (a store retry succeeded).
                changed = acks.changed() => match changed {
                    Ok(()) => None,
                    Err(_) => return,
                },
            };
            let Some(incoming) = incoming else {
                let ack = *acks.borrow_and_update();
                let Some(seq) = ack else { continue };
                let ack = serde_json::json!({"type": "ack", "seq": seq}).to_string();
                if !t.send_texts(vec![ack]).await {
                    return;
                }
                continue;
            };
            let replies = match incoming {
                Incoming::Text(text) => {
                    match self.handle_text(conn, source, &bucket, &text).await {
                        Some(r) => {
                            // The reply carries the ack already.
                            acks.borrow_and_update();
                            r
                        }
                        None => {
                            t.close_with(CLOSE_GOING_AWAY, "daemon shutting down").await;
                            return;
                        }
                    }
                }
                Incoming::Binary => {
                    inner.metrics.observe_rejected(REJECT_BINARY);
                    vec![error_json(
                        None,
                        None,
                        "binary frames are not accepted: send JSON text frames",
                    )]
                }
                Incoming::TooBig => {
                    let max = inner.config.source.max_frame;
                    inner.limits.log.hit("max_frame", || {
                        tracing::warn!(source = %source, max_frame = max, "frame too large, closing");
                    });
                    t.close_with(CLOSE_TOO_BIG, &format!("frame larger than {max} bytes"))
                        .await;
                    tokio::time::sleep(CLOSE_LINGER).await;
                    return;
                }
                Incoming::Control => continue,
                Incoming::Closed => return,
            };
            if replies.is_empty() {
                continue;
            }
            let sent = tokio::select! {
                // A peer that does not read must not hold up shutdown either.
                _ = inner.shutdown.cancelled() => return,
                ok = t.send_texts(replies) => ok,
            };
            if !sent {
                tracing::warn!(source = %source, "source does not read replies, dropping connection");
                return;
            }
        }
    }

    /// Decodes a frame, applies its valid events; returns the replies (errors, then the ack),
    /// or `None` when the engine task has stopped.
    ///
    /// Before the events go to the engine the session waits for the source's rate bucket
    /// (`limits.max_events_per_second`): a fast source is read more slowly, nothing is
    /// refused for rate.
    async fn handle_text(
        &self,
        conn: ConnId,
        source: &Id,
        bucket: &std::sync::Mutex<crate::limits::Bucket>,
        text: &str,
    ) -> Option<Vec<String>> {
        let inner = &*self.inner;
        let frame = decode_frame_limited(text, inner.limits.config.max_batch);
        let mut replies = Vec::with_capacity(frame.rejected.len() + 1);
        for r in &frame.rejected {
            inner.metrics.observe_rejected(r.error.reason_label());
            if let crate::event::DecodeError::BatchTooLarge { len, max } = r.error {
                inner.limits.log.hit("max_batch", || {
                    tracing::warn!(source = %source, len, max, "batch longer than limits.max_batch refused");
                });
            }
            replies.push(error_json(r.seq, r.index, &r.error.to_string()));
        }
        if !frame.events.is_empty() {
            let wait = inner.limits.rate_wait(source, bucket, frame.events.len());
            if !wait.is_zero() {
                tokio::select! {
                    // The engine refuses the batch below once it has stopped.
                    _ = inner.shutdown.cancelled() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            // Received after the wait: the rate limit is the daemon's doing, not lag.
            let received = inner.clock.now();
            let (keys, events): (Vec<_>, Vec<_>) = frame
                .events
                .into_iter()
                .map(|(index, e)| ((index, e.seq), e))
                .unzip();
            let reply = inner.engine.apply(conn, received, events).await.ok()?;
            for ((index, seq), outcome) in keys.iter().zip(&reply.outcomes) {
                if let Outcome::Refused(limit) = outcome {
                    replies.push(error_json(*seq, *index, &refusal(*limit)));
                }
            }
            if let Some(seq) = reply.ack {
                replies.push(serde_json::json!({"type": "ack", "seq": seq}).to_string());
            }
        }
        Some(replies)
    }
}

/// The `reason` of an `error` reply for an event an engine limit refused: the rejection
/// label first, as for decode errors' messages that name their field.
fn refusal(limit: Limit) -> String {
    format!("{}: {}", limit.reason_label(), limit.message())
}

fn error_json(seq: Option<u64>, index: Option<usize>, reason: &str) -> String {
    serde_json::json!({"type": "error", "seq": seq, "index": index, "reason": reason}).to_string()
}

/// Delay before redial number `failures + 1`: base × 2^failures, capped, times a random
/// factor in [0.5, 1).
pub(crate) fn backoff(failures: u32) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32.checked_shl(failures.min(16)).unwrap_or(u32::MAX));
    let capped = exp.min(BACKOFF_CAP);
    capped.mul_f64(rand::rng().random_range(0.5..1.0))
}

#[derive(Debug, thiserror::Error)]
enum RequestError {
    #[error("invalid source.url: {0}")]
    Url(tungstenite::Error),
    #[error("invalid header {0:?} in source.headers")]
    Header(String),
}

fn client_request(
    url: &str,
    headers: &[(String, String)],
) -> Result<tungstenite::handshake::client::Request, RequestError> {
    use tungstenite::client::IntoClientRequest;
    let mut req = url.into_client_request().map_err(RequestError::Url)?;
    for (k, v) in headers {
        let name = axum::http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| RequestError::Header(k.clone()))?;
        let value =
            axum::http::HeaderValue::from_str(v).map_err(|_| RequestError::Header(k.clone()))?;
        req.headers_mut().insert(name, value);
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_with_jitter() {
        for f in 0..40 {
            let d = backoff(f);
            assert!(d <= BACKOFF_CAP, "{f}: {d:?}");
            assert!(d >= BACKOFF_BASE / 2, "{f}: {d:?}");
        }
        assert!(backoff(30) >= BACKOFF_CAP / 2);
    }
}
