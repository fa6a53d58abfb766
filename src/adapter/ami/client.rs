//! The AMI client: one TCP connection to Asterisk's manager interface at a time, logged in
//! with `Events: agent,call` (app_queue's events, and the channel events that show an
//! agent's outbound calls), answered with a `QueueStatus` snapshot, then read until it fails.
//!
//! Owns: connect and login, the byte framing (lines of at most [`MAX_LINE`] bytes, messages
//! of at most [`MAX_MESSAGE`], decoded lossily), the keepalive `Ping`, reconnecting with
//! capped exponential back-off, and counting messages by outcome.
//! Must not: map messages itself (that is [`AmiMapper`]'s) or log the secret.
//!
//! AMI has no sequence numbers: events that happen while the connection is down are not
//! replayed. The `QueueStatus` answer after every login reconciles members and queued calls
//! instead (members that left while disconnected are logged out by that snapshot).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::adapter::ami::{AmiMapper, AmiMessage, AmiParser};
use crate::adapter::AdapterContext;
use crate::config::AmiSource;
use crate::event::Event;
use crate::owner::EngineStopped;
use crate::redial::Redial;

/// The longest line kept; a longer one discards the message it is part of.
pub const MAX_LINE: usize = 64 * 1024;
/// The most bytes one message may hold; a larger one is discarded.
pub const MAX_MESSAGE: usize = 256 * 1024;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Banner and login answer must arrive within this.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const READ_CHUNK: usize = 16 * 1024;

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("connect timed out after {0:?}")]
    ConnectTimeout(Duration),
    #[error("no AMI banner and login answer within {0:?}")]
    LoginTimeout(Duration),
    #[error("not an AMI server: first line {0:?}")]
    Banner(String),
    #[error("AMI login refused for user {user:?}: {message}")]
    LoginRefused { user: String, message: String },
    #[error("read failed: {0}")]
    Read(std::io::Error),
    #[error("write failed: {0}")]
    Write(std::io::Error),
    #[error("write timed out after {0:?}")]
    WriteTimeout(Duration),
    #[error("connection closed by Asterisk")]
    Closed,
    #[error("no answer to Ping within {0:?}")]
    PingTimeout(Duration),
    #[error(transparent)]
    EngineStopped(#[from] EngineStopped),
}

/// Connects, logs in and reads until shutdown or the engine stops; reconnects on any
/// failure with [`Redial`]'s back-off, which a login that held for
/// [`crate::redial::STABLE_CONNECTION`] starts over.
pub async fn run(config: AmiSource, mut cx: AdapterContext) {
    if [&config.username, &config.secret.0]
        .iter()
        .any(|s| s.contains(['\r', '\n']))
    {
        tracing::error!(source = %cx.name, "asterisk-ami username and secret must not contain line breaks; adapter stopped");
        cx.shutdown.cancelled().await;
        return;
    }
    let shutdown = cx.shutdown.clone();
    let mut mapper = AmiMapper::new(config.settings.clone());
    let mut action_ids: u64 = 0;
    let mut redial = Redial::new();
    loop {
        let announce = |delay: Duration| {
            cx.count_reconnect();
            tracing::info!(source = %cx.name, address = %config.address, delay_ms = delay.as_millis() as u64, "reconnecting to AMI");
        };
        if !redial.pause(&shutdown, announce).await {
            return;
        }
        let started = Instant::now();
        let mut session = Session {
            config: &config,
            cx: &mut cx,
            mapper: &mut mapper,
            action_ids: &mut action_ids,
            logged_in: false,
        };
        let ended = tokio::select! {
            _ = shutdown.cancelled() => None,
            e = session.run() => Some(e),
        };
        let logged_in = session.logged_in;
        mapper.connection_lost();
        if logged_in {
            cx.set_connected(false);
            cx.sink.disconnected().await;
        }
        let Some(e) = ended else { return };
        match e {
            SessionError::EngineStopped(_) => return,
            e @ SessionError::LoginRefused { .. } => {
                tracing::error!(source = %cx.name, address = %config.address, error = %e, "AMI login failed");
            }
            e => {
                tracing::warn!(source = %cx.name, address = %config.address, error = %e, "AMI connection ended");
            }
        }
        if logged_in {
            redial.ended(started.elapsed());
        } else {
            redial.failed();
        }
        if shutdown.is_cancelled() {
            return;
        }
    }
}

/// One connection, from TCP connect to its end.
struct Session<'a> {
    config: &'a AmiSource,
    cx: &'a mut AdapterContext,
    mapper: &'a mut AmiMapper,
    action_ids: &'a mut u64,
    /// Login accepted: the source counts as connected.
    logged_in: bool,
}

impl Session<'_> {
    fn next_action_id(&mut self) -> String {
        *self.action_ids += 1;
        format!("floorwatch-{}", self.action_ids)
    }

    /// Runs the connection; returns why it ended (it never ends well: AMI does not hang up
    /// on a healthy client).
    async fn run(&mut self) -> SessionError {
        match self.serve().await {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }

    async fn serve(&mut self) -> Result<std::convert::Infallible, SessionError> {
        let address = self.config.address.as_str();
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(SessionError::Connect(e)),
            Err(_) => return Err(SessionError::ConnectTimeout(CONNECT_TIMEOUT)),
        };
        let _ = stream.set_nodelay(true);
        let mut conn = Conn::new(stream);
        let login_id = self.next_action_id();
        let pending =
            match tokio::time::timeout(LOGIN_TIMEOUT, self.login(&mut conn, &login_id)).await {
                Ok(r) => r?,
                Err(_) => return Err(SessionError::LoginTimeout(LOGIN_TIMEOUT)),
            };
        self.logged_in = true;
        self.cx.set_connected(true);
        self.cx.sink.connected().await?;
        tracing::info!(source = %self.cx.name, address = %address, user = %self.config.username, "logged in to AMI");
        let status_id = self.next_action_id();
        conn.write(&format!(
            "Action: QueueStatus\r\nActionID: {status_id}\r\n\r\n"
        ))
        .await?;
        self.apply(pending, &status_id).await?;

        let keepalive = self.config.keepalive;
        let ping_timeout = keepalive / 3;
        let mut deadline = Instant::now() + keepalive;
        let mut ping_sent = false;
        loop {
            let read = tokio::select! {
                r = conn.read_messages(self.cx) => Some(r?),
                _ = tokio::time::sleep_until(deadline) => None,
            };
            match read {
                Some(messages) => {
                    deadline = Instant::now() + keepalive;
                    ping_sent = false;
                    self.apply(messages, &status_id).await?;
                }
                None if ping_sent => return Err(SessionError::PingTimeout(ping_timeout)),
                None => {
                    let id = self.next_action_id();
                    conn.write(&format!("Action: Ping\r\nActionID: {id}\r\n\r\n"))
                        .await?;
                    ping_sent = true;
                    deadline = Instant::now() + ping_timeout;
                }
            }
        }
    }

    /// Reads the banner, logs in; returns the messages that came after the login answer.
    async fn login(
        &mut self,
        conn: &mut Conn,
        login_id: &str,
    ) -> Result<Vec<AmiMessage>, SessionError> {
        let banner = conn.read_banner().await?;
        let Some(version) = banner.strip_prefix("Asterisk Call Manager/") else {
            return Err(SessionError::Banner(banner.chars().take(80).collect()));
        };
        tracing::debug!(source = %self.cx.name, version = %version, "AMI banner");
        conn.write(&format!(
            "Action: Login\r\nActionID: {login_id}\r\nUsername: {}\r\nSecret: {}\r\nEvents: agent,call\r\n\r\n",
            self.config.username, self.config.secret.0
        ))
        .await?;
        loop {
            let mut messages = conn.read_messages(self.cx).await?.into_iter();
            while let Some(m) = messages.next() {
                if m.response().is_none() || m.get("ActionID") != Some(login_id) {
                    continue;
                }
                if m.response()
                    .is_some_and(|r| r.eq_ignore_ascii_case("success"))
                {
                    return Ok(messages.collect());
                }
                return Err(SessionError::LoginRefused {
                    user: self.config.username.clone(),
                    message: m.get("Message").unwrap_or("no reason given").to_string(),
                });
            }
        }
    }

    /// Maps `messages` (received now) and sends their events to the engine as one batch.
    async fn apply(
        &mut self,
        messages: Vec<AmiMessage>,
        status_id: &str,
    ) -> Result<(), SessionError> {
        let received = self.cx.sink.now();
        let mut events: Vec<Event> = Vec::new();
        for m in &messages {
            if m.event().is_none() {
                // A response to one of our actions (Pong, the QueueStatus list start).
                if m.get("ActionID") == Some(status_id)
                    && m.response()
                        .is_some_and(|r| r.eq_ignore_ascii_case("error"))
                {
                    tracing::warn!(source = %self.cx.name, message = m.get("Message").unwrap_or(""), "AMI refused QueueStatus: no snapshot");
                }
                continue;
            }
            let mapped = self.mapper.handle(m, received);
            if let Some(d) = self.mapper.take_disagreement() {
                tracing::warn!(source = %self.cx.name, "{d}");
            }
            self.cx.count(if mapped.is_empty() {
                "ignored"
            } else {
                "mapped"
            });
            events.extend(mapped);
        }
        if !events.is_empty() {
            self.cx.sink.send(events).await?;
        }
        Ok(())
    }
}

/// The TCP stream with its framing.
struct Conn {
    stream: TcpStream,
    framer: Framer,
    parser: AmiParser,
    buf: Vec<u8>,
}

impl Conn {
    fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            framer: Framer::default(),
            parser: AmiParser::new(),
            buf: vec![0; READ_CHUNK],
        }
    }

    async fn write(&mut self, text: &str) -> Result<(), SessionError> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.stream.write_all(text.as_bytes())).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(SessionError::Write(e)),
            Err(_) => Err(SessionError::WriteTimeout(WRITE_TIMEOUT)),
        }
    }

    async fn read_chunk(&mut self) -> Result<Vec<Piece>, SessionError> {
        let n = self
            .stream
            .read(&mut self.buf)
            .await
            .map_err(SessionError::Read)?;
        if n == 0 {
            return Err(SessionError::Closed);
        }
        Ok(self.framer.push(&self.buf[..n]))
    }

    /// The first line, without its line end. Whatever follows it stays framed for
    /// [`Conn::read_messages`].
    async fn read_banner(&mut self) -> Result<String, SessionError> {
        loop {
            let mut pieces = self.read_chunk().await?.into_iter();
            if let Some(first) = pieces.next() {
                let banner = match first {
                    Piece::Line(l) => l.trim_end().to_string(),
                    Piece::Dropped => String::from("(an overlong line)"),
                };
                self.framer.pending.extend(pieces);
                return Ok(banner);
            }
        }
    }

    /// Reads once (cancel safe: nothing is lost if the future is dropped before the read
    /// completes); returns the messages completed, counting discarded ones as malformed.
    async fn read_messages(
        &mut self,
        cx: &AdapterContext,
    ) -> Result<Vec<AmiMessage>, SessionError> {
        let mut pieces: Vec<Piece> = std::mem::take(&mut self.framer.pending);
        if pieces.is_empty() {
            pieces = self.read_chunk().await?;
        }
        let mut out = Vec::new();
        for p in pieces {
            match p {
                Piece::Line(l) => out.extend(self.parser.push(&l)),
                Piece::Dropped => {
                    // The message in progress is lost with it; the framer skips the rest.
                    self.parser = AmiParser::new();
                    cx.count("malformed");
                    tracing::warn!(source = %cx.name, max_line = MAX_LINE, max_message = MAX_MESSAGE, "AMI message too large, skipped");
                }
            }
        }
        Ok(out)
    }
}

/// What the framer yields, in stream order.
#[derive(Debug, PartialEq, Eq)]
enum Piece {
    /// One line with its `\n`, decoded lossily (invalid UTF-8 becomes U+FFFD).
    Line(String),
    /// A line over [`MAX_LINE`] or a message over [`MAX_MESSAGE`]: the message in progress
    /// is discarded, and so is everything up to the blank line that ends it.
    Dropped,
}

/// Splits bytes into lines with bounded memory.
#[derive(Debug, Default)]
struct Framer {
    /// The line being read (at most [`MAX_LINE`] bytes).
    partial: Vec<u8>,
    /// Bytes of the message in progress.
    message: usize,
    /// Discarding until the end of the current line.
    in_long_line: bool,
    /// Discarding until a blank line.
    skipping: bool,
    /// Framed pieces not handed out yet (after the banner).
    pending: Vec<Piece>,
}

impl Framer {
    fn push(&mut self, mut bytes: &[u8]) -> Vec<Piece> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let (head, rest, complete) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..=i], &bytes[i + 1..], true),
                None => (bytes, &bytes[bytes.len()..], false),
            };
            bytes = rest;
            if self.in_long_line {
                self.in_long_line = !complete;
                continue;
            }
            if self.partial.len() + head.len() > MAX_LINE {
                self.partial.clear();
                self.in_long_line = !complete;
                self.drop_message(&mut out);
                continue;
            }
            self.partial.extend_from_slice(head);
            if !complete {
                continue;
            }
            let line = std::mem::take(&mut self.partial);
            let blank = line.iter().all(|&b| b == b'\r' || b == b'\n');
            if self.skipping {
                if blank {
                    self.skipping = false;
                    self.message = 0;
                }
                continue;
            }
            if blank {
                self.message = 0;
            } else {
                self.message += line.len();
                if self.message > MAX_MESSAGE {
                    self.drop_message(&mut out);
                    continue;
                }
            }
            out.push(Piece::Line(String::from_utf8_lossy(&line).into_owned()));
        }
        out
    }

    fn drop_message(&mut self, out: &mut Vec<Piece>) {
        if !self.skipping {
            out.push(Piece::Dropped);
        }
        self.skipping = true;
        self.message = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(pieces: &[Piece]) -> String {
        pieces
            .iter()
            .map(|p| match p {
                Piece::Line(l) => l.as_str(),
                Piece::Dropped => "<dropped>\n",
            })
            .collect()
    }

    #[test]
    fn lines_split_across_chunks_are_joined() {
        let mut f = Framer::default();
        let mut got = f.push(b"Event: A\r\nQue");
        got.extend(f.push(b"ue: sales\r\n\r\n"));
        assert_eq!(lines(&got), "Event: A\r\nQueue: sales\r\n\r\n");
        assert!(f.partial.is_empty());
    }

    #[test]
    fn invalid_utf8_is_decoded_lossily() {
        let mut f = Framer::default();
        let got = f.push(b"CallerIDName: M\xfcller\r\n");
        assert_eq!(lines(&got), "CallerIDName: M\u{fffd}ller\r\n");
    }

    #[test]
    fn an_overlong_line_drops_its_message_and_memory_stays_bounded() {
        let mut f = Framer::default();
        let mut got = f.push(b"Event: A\r\nJunk: ");
        let chunk = vec![b'x'; 10_000];
        for _ in 0..20 {
            got.extend(f.push(&chunk));
            assert!(f.partial.len() <= MAX_LINE);
        }
        got.extend(f.push(b"\r\nQueue: x\r\n\r\nEvent: B\r\n\r\n"));
        assert_eq!(lines(&got), "Event: A\r\n<dropped>\nEvent: B\r\n\r\n");
    }

    #[test]
    fn an_oversized_message_is_dropped_once() {
        let mut f = Framer::default();
        let line = format!("Key: {}\r\n", "y".repeat(1000));
        let mut got = Vec::new();
        for _ in 0..(MAX_MESSAGE / line.len() + 10) {
            got.extend(f.push(line.as_bytes()));
        }
        got.extend(f.push(b"\r\nEvent: B\r\n\r\n"));
        let dropped = got.iter().filter(|p| **p == Piece::Dropped).count();
        assert_eq!(dropped, 1);
        assert!(lines(&got).ends_with("<dropped>\nEvent: B\r\n\r\n"));
    }

    #[test]
    fn a_line_of_exactly_max_line_is_kept() {
        let mut f = Framer::default();
        let mut line = vec![b'z'; MAX_LINE - 2];
        line.extend_from_slice(b"\r\n");
        let got = f.push(&line);
        assert_eq!(got.len(), 1);
        assert!(matches!(&got[0], Piece::Line(l) if l.len() == MAX_LINE));
    }
}
