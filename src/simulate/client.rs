//! The simulator as a WebSocket client of the daemon's `/ingest` (protocol page: hello, ack,
//! resume, batches).
//!
//! Owns: the connection, the pacing of events against the wall clock, and the buffer of
//! events sent but not yet acknowledged. It never loses an event (everything after
//! `hello.resume_after` is re-sent on every new connection) and never sends one twice on
//! the same connection. Must not: know how events are generated.

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::model::SimEvent;
use crate::time::Timestamp;

/// Events kept for re-sending until acknowledged. When full, the simulation waits for acks
/// (its events are then sent late, with their original `ts`) rather than drop any.
pub const MAX_UNACKED: usize = 100_000;
/// Most events in one batch frame; keeps frames far below the daemon's 1 MiB limit.
pub const MAX_BATCH: usize = 500;
const TICK: Duration = Duration::from_millis(100);
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A connection that lasted this long resets the back-off.
const STABLE: Duration = Duration::from_secs(10);
/// After the last event is sent, how long to wait for the daemon to acknowledge the rest.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why [`drive`] gave up.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    #[error("invalid ingest url {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("invalid token: {0}")]
    BadToken(String),
    #[error("the daemon refused the connection with HTTP {0} (check --token)")]
    Refused(u16),
    #[error("{0} events were never acknowledged by the daemon")]
    Unacknowledged(usize),
}

/// What a [`drive`] run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DriveStats {
    /// Events taken from the generator.
    pub generated: u64,
    /// Event sends, counting re-sends after a reconnect.
    pub sent: u64,
    /// Highest `seq` the daemon acknowledged.
    pub acked: Option<u64>,
    /// Connections that got as far as `hello`.
    pub connections: u64,
    /// `error` frames received.
    pub errors: u64,
}

/// How simulated time maps to the wall clock: it starts at `start` when [`drive`] starts and
/// runs `speed` times as fast. At speed 1 with `start` = now, simulated time is wall time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pace {
    pub start: Timestamp,
    pub speed: f64,
}

impl Pace {
    pub fn new(start: Timestamp, speed: f64) -> Pace {
        Pace { start, speed }
    }
}

/// Sends `events` (in `ts` order) to the daemon at `url` (`ws://` or `wss://`, e.g.
/// `ws://127.0.0.1:8080/ingest?source=sim`): each event once simulated time (`pace`) reaches
/// its `ts`, what is due at each tick in one batch frame. Reconnects with back-off until
/// `shutdown` completes or every event has been acknowledged.
///
/// `seq` numbers are the generator's plus the `resume_after` of the first `hello`, so that
/// a source name the daemon already knows continues where it was instead of being ignored
/// as duplicates.
pub async fn drive<I, F>(
    url: &str,
    token: Option<&str>,
    events: I,
    pace: Pace,
    shutdown: F,
) -> Result<DriveStats, DriveError>
where
    I: Iterator<Item = SimEvent>,
    F: Future<Output = ()>,
{
    let request = build_request(url, token)?;
    let speed = if pace.speed.is_finite() && pace.speed > 0.0 {
        pace.speed
    } else {
        1.0
    };
    let mut events = events.peekable();
    let origin = pace.start;
    let started = Instant::now();
    let mut jitter = StdRng::from_os_rng();
    let mut out = Outbox::default();
    let mut stats = DriveStats::default();
    let mut backoff = BACKOFF_MIN;
    let mut last_progress = Instant::now();
    tokio::pin!(shutdown);

    loop {
        let connected = tokio::select! {
            _ = &mut shutdown => return Ok(stats),
            r = connect(&request) => r,
        };
        let (mut ws, resume_after) = match connected {
            Ok(c) => c,
            Err(ConnectError::Refused(code)) => return Err(DriveError::Refused(code)),
            Err(ConnectError::Other(e)) => {
                let wait = backoff.mul_f64(jitter.random_range(0.5..=1.0));
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "cannot reach the daemon");
                tokio::select! {
                    _ = &mut shutdown => return Ok(stats),
                    _ = tokio::time::sleep(wait) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        let connected_at = Instant::now();
        stats.connections += 1;
        if out.offset.is_none() {
            out.offset = Some(resume_after.unwrap_or(0));
        }
        out.acknowledge(resume_after, &mut stats);
        // Everything after the resume point goes out again, once, on this connection.
        let mut sent_upto = resume_after.unwrap_or(0);
        tracing::info!(resume_after = ?resume_after, unacked = out.buf.len(), "connected to the daemon");

        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut drained_since: Option<Instant> = None;
        loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => {
                    let _ = ws.close(None).await;
                    tracing::info!(unacked = out.buf.len(), acked = ?stats.acked, "simulator stopped");
                    return Ok(stats);
                }
                msg = ws.next() => match msg {
                    Some(Ok(Message::Text(text))) => out.handle_frame(text.as_str(), &mut stats),
                    Some(Ok(Message::Close(_))) | None => {
                        tracing::warn!(unacked = out.buf.len(), "the daemon closed the connection");
                        break;
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, unacked = out.buf.len(), "connection lost");
                        break;
                    }
                    Some(Ok(_)) => {}
                },
                _ = tick.tick() => {
                    let sim_now = origin.plus((started.elapsed().as_secs_f64() * speed * 1000.0) as i64);
                    out.pull_due(&mut events, sim_now, &mut stats);
                    match out.send_after(&mut ws, &mut sent_upto, &mut stats).await {
                        Ok(()) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, unacked = out.buf.len(), "send failed");
                            break;
                        }
                    }
                    if last_progress.elapsed() >= PROGRESS_EVERY {
                        last_progress = Instant::now();
                        tracing::info!(
                            sim_time = %sim_now, generated = stats.generated, sent = stats.sent,
                            acked = ?stats.acked, unacked = out.buf.len(), connections = stats.connections,
                            "simulator progress"
                        );
                    }
                    if events.peek().is_none() {
                        if out.buf.is_empty() {
                            let _ = ws.close(None).await;
                            tracing::info!(generated = stats.generated, acked = ?stats.acked, "simulation complete");
                            return Ok(stats);
                        }
                        let since = *drained_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= DRAIN_TIMEOUT {
                            let _ = ws.close(None).await;
                            return Err(DriveError::Unacknowledged(out.buf.len()));
                        }
                    }
                }
            }
        }
        // A connection that held resets the back-off; one dropped at once does not, so a
        // daemon that keeps closing on us is not hammered.
        if connected_at.elapsed() >= STABLE {
            backoff = BACKOFF_MIN;
        }
        let wait = backoff.mul_f64(jitter.random_range(0.5..=1.0));
        tokio::select! {
            _ = &mut shutdown => return Ok(stats),
            _ = tokio::time::sleep(wait) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Events generated but not yet acknowledged, in `seq` order, as JSON.
#[derive(Default)]
struct Outbox {
    buf: VecDeque<(u64, String)>,
    /// Added to every generator `seq`; fixed by the first `hello`.
    offset: Option<u64>,
}

impl Outbox {
    fn pull_due<I: Iterator<Item = SimEvent>>(
        &mut self,
        events: &mut std::iter::Peekable<I>,
        sim_now: Timestamp,
        stats: &mut DriveStats,
    ) {
        let offset = self.offset.unwrap_or(0);
        while self.buf.len() < MAX_UNACKED {
            match events.next_if(|e| e.ts <= sim_now) {
                Some(mut ev) => {
                    ev.seq += offset;
                    self.buf.push_back((ev.seq, ev.to_json()));
                    stats.generated += 1;
                }
                None => break,
            }
        }
    }

    fn acknowledge(&mut self, upto: Option<u64>, stats: &mut DriveStats) {
        let Some(n) = upto else { return };
        while self.buf.front().is_some_and(|(s, _)| *s <= n) {
            self.buf.pop_front();
        }
        stats.acked = Some(stats.acked.map_or(n, |a| a.max(n)));
    }

    fn handle_frame(&mut self, text: &str, stats: &mut DriveStats) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
            tracing::warn!(frame = text, "unreadable frame from the daemon");
            return;
        };
        match v.get("type").and_then(|t| t.as_str()) {
            Some("ack") => {
                if let Some(n) = v.get("seq").and_then(|s| s.as_u64()) {
                    self.acknowledge(Some(n), stats);
                }
            }
            Some("error") => {
                stats.errors += 1;
                eprintln!("floorwatch simulate: daemon rejected an event: {text}");
            }
            _ => {}
        }
    }

    /// Sends every buffered event with `seq` above `sent_upto`, in batches.
    async fn send_after(
        &mut self,
        ws: &mut Ws,
        sent_upto: &mut u64,
        stats: &mut DriveStats,
    ) -> Result<(), WsError> {
        let start = self.buf.partition_point(|(s, _)| *s <= *sent_upto);
        if start == self.buf.len() {
            return Ok(());
        }
        let pending: Vec<&(u64, String)> = self.buf.range(start..).collect();
        for chunk in pending.chunks(MAX_BATCH) {
            let frame = if let [(_, one)] = chunk {
                one.clone()
            } else {
                let mut s = String::with_capacity(
                    chunk.iter().map(|(_, j)| j.len() + 1).sum::<usize>() + 2,
                );
                s.push('[');
                for (k, (_, j)) in chunk.iter().enumerate() {
                    if k > 0 {
                        s.push(',');
                    }
                    s.push_str(j);
                }
                s.push(']');
                s
            };
            ws.feed(Message::text(frame)).await?;
            if let Some((last, _)) = chunk.last() {
                *sent_upto = *last;
            }
            stats.sent += chunk.len() as u64;
        }
        ws.flush().await
    }
}

fn build_request(url: &str, token: Option<&str>) -> Result<Request, DriveError> {
    let mut req = url.into_client_request().map_err(|e| DriveError::BadUrl {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    if let Some(t) = token {
        let v = HeaderValue::from_str(&format!("Bearer {t}"))
            .map_err(|e| DriveError::BadToken(e.to_string()))?;
        req.headers_mut().insert("authorization", v);
    }
    Ok(req)
}

enum ConnectError {
    /// The daemon answered the upgrade with 401 or 403: retrying will not help.
    Refused(u16),
    Other(String),
}

/// Opens a connection and reads the daemon's `hello`; returns its `resume_after`.
async fn connect(request: &Request) -> Result<(Ws, Option<u64>), ConnectError> {
    let (mut ws, _) = match tokio_tungstenite::connect_async(request.clone()).await {
        Ok(c) => c,
        Err(WsError::Http(resp)) if matches!(resp.status().as_u16(), 401 | 403) => {
            return Err(ConnectError::Refused(resp.status().as_u16()));
        }
        Err(e) => return Err(ConnectError::Other(e.to_string())),
    };
    let hello = tokio::time::timeout(HELLO_TIMEOUT, async {
        while let Some(msg) = ws.next().await {
            match msg {
                Ok(Message::Text(t)) => return Ok(t.as_str().to_string()),
                Ok(Message::Close(_)) => return Err("closed before hello".to_string()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Err("closed before hello".to_string())
    })
    .await
    .map_err(|_| ConnectError::Other("no hello from the daemon".into()))?
    .map_err(ConnectError::Other)?;
    let v: serde_json::Value = serde_json::from_str(&hello)
        .map_err(|e| ConnectError::Other(format!("bad hello {hello:?}: {e}")))?;
    if v.get("type").and_then(|t| t.as_str()) != Some("hello") {
        return Err(ConnectError::Other(format!("expected hello, got {hello}")));
    }
    let resume_after = v.get("resume_after").and_then(|r| r.as_u64());
    Ok((ws, resume_after))
}
