//! The FreeSWITCH event socket client: dials `address`, authenticates, subscribes to
//! mod_callcenter's `CUSTOM callcenter::info` events (and the channel events that show an
//! agent's outbound calls) and feeds them through the
//! [`EslMapper`] into the engine, reconnecting with back-off until shutdown.
//!
//! Owns: the TCP connection, the inbound ESL handshake (`auth/request`, `auth`,
//! `event json`), asking `callcenter_config agent list` to reconcile agents on every
//! (re)connect, liveness (FreeSWITCH's `HEARTBEAT` events, subscribed with the callcenter
//! ones) and the adapter metrics.
//! Must not: map events (the mapper does) or apply rules (the engine does).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::adapter::esl::{EslDecoder, EslError, EslMapper, Frame};
use crate::adapter::AdapterContext;
use crate::config::EslSource;
use crate::redial::Redial;

/// How long a TCP connect, and each step of the handshake, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// FreeSWITCH sends `HEARTBEAT` every 20 s by default (`event-heartbeat-interval` in
/// switch.conf.xml); three missed ones mean the connection is dead.
const SILENCE_LIMIT: Duration = Duration::from_secs(60);
/// The subscription: the callcenter events, heartbeats for liveness, and the channel events
/// of outbound calls. mod_event_socket takes every word after `CUSTOM` as a subclass, so the
/// event names come first (`CUSTOM callcenter::info HEARTBEAT` subscribed to no heartbeat).
const SUBSCRIBE: &[u8] = b"event json HEARTBEAT CHANNEL_OUTGOING CHANNEL_ANSWER CHANNEL_HANGUP_COMPLETE CUSTOM callcenter::info\n\n";
/// The agents' status and state, to reconcile after (re)connecting.
const AGENT_LIST: &[u8] = b"api callcenter_config agent list\n\n";

/// How one connection ended.
enum End {
    /// Shutdown was asked for.
    Shutdown,
    /// The engine task is gone: nothing more can be applied.
    EngineStopped,
    /// Never got past the handshake (refused, unreachable, wrong password).
    Failed,
    /// Was connected and subscribed, then lost.
    Lost,
}

/// Runs the event socket client of one source until `cx.shutdown`.
pub async fn run(config: EslSource, mut cx: AdapterContext) {
    let mut mapper = EslMapper::new(config.settings.clone());
    let mut redial = Redial::new();
    loop {
        let announce = |delay: Duration| {
            cx.count_reconnect();
            tracing::info!(
                source = %cx.name,
                address = %config.address,
                delay_ms = delay.as_millis() as u64,
                "redialing the event socket"
            );
        };
        if !redial.pause(&cx.shutdown, announce).await {
            return;
        }
        let since = Instant::now();
        let end = session(&config, &mut mapper, &mut cx).await;
        if matches!(end, End::Lost) {
            cx.set_connected(false);
            cx.sink.disconnected().await;
        }
        match end {
            End::Shutdown => {
                cx.set_connected(false);
                cx.sink.disconnected().await;
                return;
            }
            End::EngineStopped => {
                cx.set_connected(false);
                return;
            }
            End::Lost => redial.ended(since.elapsed()),
            End::Failed => redial.failed(),
        }
    }
}

/// One connection: handshake, then events until it ends.
async fn session(config: &EslSource, mapper: &mut EslMapper, cx: &mut AdapterContext) -> End {
    let connect = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&config.address));
    let mut stream = tokio::select! {
        _ = cx.shutdown.cancelled() => return End::Shutdown,
        r = connect => match r {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::warn!(source = %cx.name, address = %config.address, error = %e, "event socket connect failed");
                return End::Failed;
            }
            Err(_) => {
                tracing::warn!(source = %cx.name, address = %config.address, "event socket connect timed out");
                return End::Failed;
            }
        },
    };
    let mut conn = Conn {
        decoder: EslDecoder::new(config.settings.max_frame),
        buf: vec![0u8; 64 * 1024],
    };

    // Handshake: every step bounded by CONNECT_TIMEOUT.
    let step = |what: &'static str| (what, Instant::now() + CONNECT_TIMEOUT);
    let (what, deadline) = step("auth/request");
    match conn.expect(&mut stream, cx, deadline, what).await {
        Ok(f) if content_type(&f) == "auth/request" => {}
        Ok(f) => {
            tracing::warn!(source = %cx.name, content_type = content_type(&f), "event socket did not ask for auth");
            return End::Failed;
        }
        Err(end) => return end,
    }
    let auth = format!("auth {}\n\n", config.password.0);
    if stream.write_all(auth.as_bytes()).await.is_err() {
        return End::Failed;
    }
    let (what, deadline) = step("auth reply");
    match conn.reply(&mut stream, cx, deadline, what).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::error!(source = %cx.name, address = %config.address, "event socket refused the password");
            return End::Failed;
        }
        Err(end) => return end,
    }
    if stream.write_all(SUBSCRIBE).await.is_err() {
        return End::Failed;
    }
    let (what, deadline) = step("subscription reply");
    match conn.reply(&mut stream, cx, deadline, what).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::error!(source = %cx.name, "event socket refused the event subscription");
            return End::Failed;
        }
        Err(end) => return end,
    }
    // Asked after subscribing, so no change falls between the list and the first event;
    // events that overtake the answer win over it (`begin_reconcile`).
    mapper.begin_reconcile();
    if stream.write_all(AGENT_LIST).await.is_err() {
        return End::Failed;
    }
    if cx.sink.connected().await.is_err() {
        return End::EngineStopped;
    }
    cx.set_connected(true);
    tracing::info!(source = %cx.name, address = %config.address, "event socket connected");

    loop {
        let frame = match conn
            .next(&mut stream, cx, Instant::now() + SILENCE_LIMIT)
            .await
        {
            Ok(f) => f,
            Err(End::Failed) => return End::Lost,
            Err(end) => return end,
        };
        match content_type(&frame) {
            "text/event-json" => {
                let Some(event) = frame.event.as_ref() else {
                    cx.count("malformed");
                    continue;
                };
                let events = mapper.handle(event, cx.sink.now());
                if events.is_empty() {
                    cx.count("ignored");
                    continue;
                }
                if cx.sink.send(events).await.is_err() {
                    return End::EngineStopped;
                }
                // Counted once applied, so a reader of the metric knows the engine has it.
                cx.count("mapped");
            }
            "api/response" => {
                let text = String::from_utf8_lossy(&frame.body);
                let Some(events) = mapper.reconcile(&text, cx.sink.now()) else {
                    // mod_callcenter not loaded (`-ERR ...`), or not a table.
                    cx.count("malformed");
                    let first = text.lines().next().unwrap_or("");
                    tracing::warn!(source = %cx.name, answer = %first.chars().take(80).collect::<String>(), "callcenter_config agent list gave no table; not reconciled");
                    continue;
                };
                tracing::info!(source = %cx.name, changes = events.len(), "reconciled agents with callcenter_config agent list");
                if events.is_empty() {
                    cx.count("ignored");
                    continue;
                }
                if cx.sink.send(events).await.is_err() {
                    return End::EngineStopped;
                }
                cx.count("mapped");
            }
            "text/disconnect-notice" => {
                tracing::warn!(source = %cx.name, "event socket sent a disconnect notice");
                return End::Lost;
            }
            // Replies to nothing we asked, logs, other event formats: not events.
            _ => {}
        }
    }
}

/// The read side of one connection.
struct Conn {
    decoder: EslDecoder,
    buf: Vec<u8>,
}

impl Conn {
    /// The next frame, reading until `deadline`. A decode error is counted as malformed;
    /// a bad JSON body (read in full, so the stream is still in step) is skipped, every
    /// other one ends the connection (`End::Failed`, as do EOF, read errors and silence).
    async fn next(
        &mut self,
        stream: &mut TcpStream,
        cx: &AdapterContext,
        deadline: Instant,
    ) -> Result<Frame, End> {
        loop {
            match self.decoder.next_frame() {
                Ok(Some(f)) => return Ok(f),
                Ok(None) => {}
                Err(e @ EslError::BadJson { .. }) => {
                    cx.count("malformed");
                    tracing::warn!(source = %cx.name, error = %e, "skipping an event socket frame");
                    continue;
                }
                Err(e) => {
                    cx.count("malformed");
                    tracing::warn!(source = %cx.name, error = %e, "event socket stream undecodable; reconnecting");
                    return Err(End::Failed);
                }
            }
            let read = tokio::select! {
                _ = cx.shutdown.cancelled() => return Err(End::Shutdown),
                r = tokio::time::timeout_at(deadline, stream.read(&mut self.buf)) => r,
            };
            match read {
                Ok(Ok(0)) => {
                    tracing::warn!(source = %cx.name, "event socket closed");
                    return Err(End::Failed);
                }
                Ok(Ok(n)) => self.decoder.push(&self.buf[..n]),
                Ok(Err(e)) => {
                    tracing::warn!(source = %cx.name, error = %e, "event socket read failed");
                    return Err(End::Failed);
                }
                Err(_) => {
                    tracing::warn!(source = %cx.name, silent_s = SILENCE_LIMIT.as_secs(), "event socket silent; reconnecting");
                    return Err(End::Failed);
                }
            }
        }
    }

    /// The next frame, with the handshake step named in the log if it does not come.
    async fn expect(
        &mut self,
        stream: &mut TcpStream,
        cx: &AdapterContext,
        deadline: Instant,
        what: &str,
    ) -> Result<Frame, End> {
        let r = self.next(stream, cx, deadline).await;
        if let Err(End::Failed) = &r {
            tracing::warn!(source = %cx.name, step = what, "event socket handshake failed");
        }
        r
    }

    /// The `command/reply` to what was just sent: `true` for `+OK`. Events that arrive
    /// before it are not expected during the handshake and are skipped.
    async fn reply(
        &mut self,
        stream: &mut TcpStream,
        cx: &AdapterContext,
        deadline: Instant,
        what: &str,
    ) -> Result<bool, End> {
        loop {
            let f = self.expect(stream, cx, deadline, what).await?;
            match content_type(&f) {
                "command/reply" => {
                    return Ok(f.header("Reply-Text").unwrap_or("").starts_with("+OK"));
                }
                "text/disconnect-notice" => return Ok(false),
                _ => {}
            }
        }
    }
}

fn content_type(f: &Frame) -> &str {
    f.header("Content-Type").unwrap_or("")
}
