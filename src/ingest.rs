//! WebSocket ingest of the protocol page (`floorwatch.v1`), in both directions: sources that
//! connect to `GET /ingest?source=NAME` (listen mode) and the daemon dialing `source.url`
//! (connect mode, redialing forever with capped exponential back-off and jitter).
//!
//! Owns: the per-connection session: hello, frame decoding, error replies, acks, the frame
//! size limit (close code 1009), keepalive and the dialer of connect mode. Access to
//! `/ingest` (an ingest bearer token; with none configured, loopback peers only) is checked
//! by [`crate::http`] before the upgrade.
//! Must not: touch the engine other than through [`EngineClient`], or block the engine task:
//! a connection waits for its own batch's reply, and waits when the engine channel is full
//! (back-pressure on that source only); writes to a peer that does not read time out after
//! [`WRITE_TIMEOUT`] and drop that connection. Must not know routes or tokens.
//!
//! # Connect-mode faults
//!
//! Whatever ends a dialed connection (refused, reset, a handshake that is not HTTP, a TLS
//! error, garbage frames, a close frame with any code, silence past `source.ping_timeout`)
//! ends in the same place: the session ends, `floorwatch_source_reconnects_total` counts the
//! redial, and the next dial waits its [`Redial`] back-off. The next session's hello carries the stored
//! resume point. A half-open connection is found by keepalive: after `source.ping_every`
//! without a frame from the source the dialer pings, and with no frame at all (pong or
//! other) for `source.ping_timeout` it drops the connection.
//!
//! # The engine clock
//!
//! The owner task moves the engine clock by the daemon's clock only as far as each
//! connection has proved it read everything sent to it ([`crate::owner::Proof`]). A session
//! answers the owner task's requests with a [`Prover`] polled right after the read in its
//! `select!`: the proof is given only when nothing is left to read, and goes through the
//! command channel after the batches read before it. While a session waits (on the rate
//! limit, the engine channel, a slow peer) it proves nothing. The batch it hands over carries
//! when it was read and when it was received (after a rate-limit wait), so the owner task
//! knows how long the daemon held the source back. Events whose `ts` lies more than
//! `source.max_future` ahead of the daemon's clock get an error reply (`ts_in_future`).
//!
//! # Acks
//!
//! `ack` (and the hello's `resume_after`) mean "durably stored": the highest `seq` of the
//! source name that is in the journal (`fdatasync`ed), as the engine task reports it; it
//! survives restarts. One ack is sent after every frame that held at least one valid event
//! with a `seq` behind it, which is more often than the protocol's "at least every second".
//! While the store is failing the reply carries the last stored `seq` (the ack stands
//! still); a daemon without a store (tests) acks what it applied.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{self, WebSocket};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::Config;
use crate::engine::{Applied, Limit};
use crate::event::{decode_frame_limited, Id};
use crate::limits::Limiter;
use crate::metrics::{Metrics, REJECT_BINARY};
use crate::owner::{ConnId, EngineClient, Link, Outcome, Proof, Prover};
use crate::redial::Redial;
use crate::sockets::{LiveSockets, CLOSE_GOING_AWAY, WRITE_TIMEOUT};

/// The protocol name sent in the hello.
pub const PROTOCOL: &str = "floorwatch.v1";

/// Close code for a frame over `source.max_frame` (RFC 6455 "message too big").
pub const CLOSE_TOO_BIG: u16 = 1009;
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
    limiter: Arc<Limiter>,
    shutdown: CancellationToken,
    live: LiveSockets,
}

/// What a transport received, reduced to what a session acts on.
enum Incoming {
    Text(String),
    Binary,
    /// A frame or message over the size limit.
    TooBig,
    /// Ping, pong: answered by the WebSocket layer; proof that the peer is alive.
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
    /// Sends a ping; false when the connection is gone.
    async fn send_ping(&mut self) -> bool;
}

/// Connect mode's half-open detection: when to ping and when to give up on a silent peer.
struct Keepalive {
    every: Duration,
    timeout: Duration,
    /// When the latest frame of any kind arrived (or the session started).
    seen: tokio::time::Instant,
    /// When the latest ping was sent (or the session started).
    pinged: tokio::time::Instant,
}

impl Keepalive {
    fn new(every: Duration, timeout: Duration) -> Keepalive {
        let now = tokio::time::Instant::now();
        Keepalive {
            every,
            timeout,
            seen: now,
            pinged: now,
        }
    }

    fn dead_at(&self) -> tokio::time::Instant {
        self.seen + self.timeout
    }

    fn ping_at(&self) -> tokio::time::Instant {
        self.seen.max(self.pinged) + self.every
    }

    fn wake(&self) -> tokio::time::Instant {
        self.dead_at().min(self.ping_at())
    }
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

    async fn send_ping(&mut self) -> bool {
        let ping = self.send(ws::Message::Ping(bytes::Bytes::new()));
        matches!(tokio::time::timeout(WRITE_TIMEOUT, ping).await, Ok(Ok(())))
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
            Some(Ok(tungstenite::Message::Close(frame))) => {
                match frame {
                    Some(f) => tracing::info!(
                        code = u16::from(f.code),
                        reason = %f.reason,
                        "source closed the connection"
                    ),
                    None => tracing::info!("source closed the connection without a code"),
                }
                Incoming::Closed
            }
            Some(Ok(_)) => Incoming::Control,
            Some(Err(tungstenite::Error::Capacity(_))) => Incoming::TooBig,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "source connection failed");
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

    async fn send_ping(&mut self) -> bool {
        let ping = self.send(tungstenite::Message::Ping(bytes::Bytes::new()));
        matches!(tokio::time::timeout(WRITE_TIMEOUT, ping).await, Ok(Ok(())))
    }
}

impl Ingest {
    pub fn new(
        config: Arc<Config>,
        clock: Clock,
        engine: EngineClient,
        metrics: Arc<Metrics>,
        limiter: Arc<Limiter>,
        shutdown: CancellationToken,
    ) -> Ingest {
        Ingest {
            inner: Arc::new(Inner {
                config,
                clock,
                engine,
                metrics,
                limiter,
                shutdown,
                live: LiveSockets::default(),
            }),
        }
    }

    /// Resolves once every session (listen and connect mode) has ended.
    pub fn all_closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.inner.live.all_closed()
    }

    /// Listen mode: serves one upgraded `/ingest` connection of `source` until it ends (the
    /// HTTP layer checked its token and took its connection permit).
    pub async fn serve_socket(&self, socket: &mut WebSocket, source: Id) {
        self.serve(socket, source, None).await;
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
        let mut redial = Redial::new();
        loop {
            let announce = |delay: Duration| {
                self.inner.metrics.source_reconnects.inc();
                tracing::info!(url = %url, delay_ms = delay.as_millis() as u64, "redialing source");
            };
            if !redial.pause(&self.inner.shutdown, announce).await {
                return;
            }
            let request = match client_request(&url, &cfg.headers) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(url = %url, error = %e, "bad source request");
                    redial.failed();
                    continue;
                }
            };
            let connector = match tls_connector(&url, cfg.ca.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(url = %url, error = %e, "cannot set up tls for the source");
                    redial.failed();
                    continue;
                }
            };
            let dial = tokio_tungstenite::connect_async_tls_with_config(
                request,
                Some(ws_config),
                true,
                connector,
            );
            let result = tokio::select! {
                _ = self.inner.shutdown.cancelled() => return,
                r = dial => r,
            };
            match result {
                Ok((mut stream, _response)) => {
                    tracing::info!(url = %url, source = %source, "connected to source");
                    let since = tokio::time::Instant::now();
                    let keepalive = Keepalive::new(
                        Duration::from_millis(cfg.ping_every.max(1) as u64),
                        Duration::from_millis(cfg.ping_timeout.max(1) as u64),
                    );
                    self.serve(&mut stream, source.clone(), Some(keepalive))
                        .await;
                    redial.ended(since.elapsed());
                    tracing::warn!(url = %url, source = %source, "source connection ended");
                }
                Err(e) => {
                    redial.failed();
                    tracing::warn!(url = %url, error = %e, attempt = redial.failures(), "cannot connect to source");
                }
            }
            if self.inner.shutdown.is_cancelled() {
                return;
            }
        }
    }

    /// One connection, from hello to close. Tells the engine task when it starts and ends.
    async fn serve<T: Transport>(&self, t: &mut T, source: Id, keepalive: Option<Keepalive>) {
        let _live = self.inner.live.hold();
        let engine = &self.inner.engine;
        let Ok(link) = engine.link(&source, None).await else {
            going_away(t).await;
            return;
        };
        let conn = link.conn;
        self.session(t, &source, link, keepalive).await;
        engine.disconnect(conn).await;
    }

    async fn session<T: Transport>(
        &self,
        t: &mut T,
        source: &Id,
        link: Link,
        mut keepalive: Option<Keepalive>,
    ) {
        let Link {
            conn,
            resume,
            mut acks,
            wanted,
        } = link;
        let inner = &*self.inner;
        let mut prover = Prover::new(inner.clock, wanted);
        let bucket = inner.limiter.bucket(source);
        let hello =
            serde_json::json!({"type": "hello", "protocol": PROTOCOL, "resume_after": resume});
        if !t.send_texts(vec![hello.to_string()]).await {
            return;
        }
        // A frame read while gathering text frames, to handle next.
        let mut held: Option<Incoming> = None;
        loop {
            let incoming = if let Some(h) = held.take() {
                Some(h)
            } else {
                tokio::select! {
                    // Shutdown first: the engine task ends with it, and the end of the ack
                    // channel below must not win and drop the peer without a close frame.
                    biased;
                    _ = inner.shutdown.cancelled() => {
                        going_away(t).await;
                        return;
                    }
                    m = t.next_incoming() => Some(m),
                    // After the read: this branch runs only when nothing was left to read.
                    at = prover.drained() => {
                        if inner.engine.prove(conn, Proof::Drained(at)).await.is_err() {
                            going_away(t).await;
                            return;
                        }
                        continue;
                    }
                    // The ack moved without a frame to reply to (a store retry succeeded).
                    changed = acks.changed() => match changed {
                        Ok(()) => None,
                        // The engine task stopped: the daemon is going down.
                        Err(_) => {
                            going_away(t).await;
                            return;
                        }
                    },
                    _ = sleep_until_keepalive(keepalive.as_ref()) => {
                        let Some(k) = keepalive.as_mut() else { continue };
                        let now = tokio::time::Instant::now();
                        if now >= k.dead_at() {
                            tracing::warn!(
                                source = %source,
                                silent_ms = now.duration_since(k.seen).as_millis() as u64,
                                "no frame from the source within source.ping_timeout (half-open?), dropping connection"
                            );
                            return;
                        }
                        if now >= k.ping_at() {
                            k.pinged = now;
                            if !t.send_ping().await {
                                tracing::warn!(source = %source, "cannot ping the source, dropping connection");
                                return;
                            }
                        }
                        continue;
                    }
                }
            };
            if let (Some(k), Some(_)) = (keepalive.as_mut(), incoming.as_ref()) {
                k.seen = tokio::time::Instant::now();
            }
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
                    let (texts, next) = gather(t, text);
                    held = next;
                    match self.handle_texts(conn, source, &bucket, &texts).await {
                        Some(r) => {
                            // The reply carries the ack already.
                            acks.borrow_and_update();
                            r
                        }
                        None => {
                            going_away(t).await;
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
                    inner.limiter.log.hit("max_frame", || {
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
            // Time spent waiting on the engine (back-pressure, a failing store) is the
            // daemon's, not the peer's silence: the peer could not be heard meanwhile.
            if let Some(k) = keepalive.as_mut() {
                k.seen = tokio::time::Instant::now();
            }
            if replies.is_empty() {
                continue;
            }
            let sent = tokio::select! {
                // A peer that does not read must not hold up shutdown either.
                _ = inner.shutdown.cancelled() => {
                    going_away(t).await;
                    return;
                }
                ok = t.send_texts(replies) => ok,
            };
            if !sent {
                tracing::warn!(source = %source, "source does not read replies, dropping connection");
                return;
            }
            if let Some(k) = keepalive.as_mut() {
                k.seen = tokio::time::Instant::now();
            }
        }
    }

    /// Decodes frames, applies their valid events as one batch; returns the replies (each
    /// frame's decode errors in order, then the engine's refusals, then one ack), or `None`
    /// when the engine task has stopped.
    ///
    /// Before the events go to the engine the session waits for the source's rate bucket
    /// (`limits.max_events_per_second`): a fast source is read more slowly, nothing is
    /// refused for rate.
    async fn handle_texts(
        &self,
        conn: ConnId,
        source: &Id,
        bucket: &std::sync::Mutex<crate::limits::Bucket>,
        texts: &[String],
    ) -> Option<Vec<String>> {
        let inner = &*self.inner;
        let mut replies = Vec::new();
        let mut keys = Vec::new();
        let mut events = Vec::new();
        for text in texts {
            let frame = decode_frame_limited(text, inner.limiter.config.max_batch);
            for r in &frame.rejected {
                inner.metrics.observe_rejected(r.error.reason_label());
                if let crate::event::DecodeError::BatchTooLarge { len, max } = r.error {
                    inner.limiter.log.hit("max_batch", || {
                        tracing::warn!(source = %source, len, max, "batch longer than limits.max_batch refused");
                    });
                }
                replies.push(error_json(r.seq, r.index, &r.error.to_string()));
            }
            keys.reserve(frame.events.len());
            events.reserve(frame.events.len());
            for (index, e) in frame.events {
                keys.push((index, e.seq));
                events.push(e);
            }
        }
        if events.is_empty() {
            return Some(replies);
        }
        let since = inner.clock.now();
        let wait = inner.limiter.rate_wait(source, bucket, events.len());
        if !wait.is_zero() {
            tokio::select! {
                // The engine refuses the batch below once it has stopped.
                _ = inner.shutdown.cancelled() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        // Received after the wait: the rate limit is the daemon's doing, not lag (but the
        // owner task learns it held the source back since `since`).
        let received = inner.clock.now();
        let reply = inner
            .engine
            .apply_held(conn, since, received, events)
            .await
            .ok()?;
        for ((index, seq), outcome) in keys.iter().zip(&reply.outcomes) {
            match outcome {
                Outcome::Engine(Applied::Refused(limit)) => {
                    replies.push(error_json(*seq, *index, &refusal(*limit)))
                }
                Outcome::Engine(Applied::Rejected { refusal: r, .. }) => replies.push(error_json(
                    *seq,
                    *index,
                    &format!("{}: {r}", r.reason_label()),
                )),
                Outcome::Refused(r) => replies.push(error_json(
                    *seq,
                    *index,
                    &format!("{}: {r}", r.reason_label()),
                )),
                Outcome::Engine(_) => {}
            }
        }
        if let Some(seq) = reply.ack {
            replies.push(serde_json::json!({"type": "ack", "seq": seq}).to_string());
        }
        Some(replies)
    }
}

/// Frames already received and waiting are taken together, up to this many (one engine
/// round trip and one journal write for all of them)...
const GATHER_FRAMES: usize = 256;
/// ... or this many bytes of text.
const GATHER_BYTES: usize = 4 << 20;

/// Takes more text frames that are already readable without waiting, after `first`; stops
/// at the first frame of another kind, which is returned to be handled next.
fn gather<T: Transport>(t: &mut T, first: String) -> (Vec<String>, Option<Incoming>) {
    use futures_util::FutureExt;
    let mut bytes = first.len();
    let mut texts = vec![first];
    while texts.len() < GATHER_FRAMES && bytes < GATHER_BYTES {
        // Reading a WebSocket frame is cancel-safe: a read that is not ready loses nothing.
        match t.next_incoming().now_or_never() {
            Some(Incoming::Text(more)) => {
                bytes += more.len();
                texts.push(more);
            }
            Some(other) => return (texts, Some(other)),
            None => break,
        }
    }
    (texts, None)
}

/// Closes with 1001 (going away), then reads what the peer still sends until its close
/// reply, for at most [`CLOSE_LINGER`]: a socket dropped with unread data is reset, and a
/// reset can destroy the close frame before the peer reads it. Bounded (a peer that does not
/// read must not hold up shutdown).
async fn going_away<T: Transport>(t: &mut T) {
    let close = t.close_with(CLOSE_GOING_AWAY, "daemon shutting down");
    if tokio::time::timeout(CLOSE_LINGER * 4, close).await.is_err() {
        return;
    }
    let drain = async { while !matches!(t.next_incoming().await, Incoming::Closed) {} };
    let _ = tokio::time::timeout(CLOSE_LINGER, drain).await;
}

async fn sleep_until_keepalive(keepalive: Option<&Keepalive>) {
    match keepalive {
        Some(k) => tokio::time::sleep_until(k.wake()).await,
        None => std::future::pending().await,
    }
}

/// The TLS setup for a dial: `None` (tokio-tungstenite's default, the public web roots)
/// unless `url` is `wss://` and `ca` names a private CA, which is then trusted besides them.
fn tls_connector(
    url: &str,
    ca: Option<&std::path::Path>,
) -> Result<Option<tokio_tungstenite::Connector>, Box<dyn std::error::Error + Send + Sync>> {
    let Some(ca) = ca.filter(|_| url.starts_with("wss://")) else {
        return Ok(None);
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in crate::tls::load_ca(ca)? {
        roots.add(cert).map_err(|error| crate::tls::CaError::Root {
            path: ca.display().to_string(),
            error,
        })?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Some(tokio_tungstenite::Connector::Rustls(Arc::new(config))))
}

/// The `reason` of an `error` reply for an event an engine limit refused: the rejection
/// label first, as for decode errors' messages that name their field.
fn refusal(limit: Limit) -> String {
    format!("{}: {}", limit.reason_label(), limit.message())
}

fn error_json(seq: Option<u64>, index: Option<usize>, reason: &str) -> String {
    serde_json::json!({"type": "error", "seq": seq, "index": index, "reason": reason}).to_string()
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
    fn keepalive_pings_after_quiet_and_gives_up_after_the_timeout() {
        let mut k = Keepalive::new(Duration::from_secs(10), Duration::from_secs(20));
        let start = k.seen;
        assert_eq!(k.wake(), start + Duration::from_secs(10));
        k.pinged = start + Duration::from_secs(10);
        assert_eq!(k.ping_at(), start + Duration::from_secs(20));
        assert_eq!(k.wake(), start + Duration::from_secs(20));
        assert_eq!(k.dead_at(), start + Duration::from_secs(20));
        // A pong (any frame) moves both.
        k.seen = start + Duration::from_secs(12);
        assert_eq!(k.dead_at(), start + Duration::from_secs(32));
        assert_eq!(k.wake(), start + Duration::from_secs(22));
    }
}
