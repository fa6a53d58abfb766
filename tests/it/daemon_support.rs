//! The shared harness of the integration tests: fixtures, violations as the engine alone
//! raises them, a daemon on 127.0.0.1:0 with a WebSocket source client, a tiny HTTP/1.1
//! client, and readers of what the daemon answers (violations, metrics, dialed sources'
//! frames). A helper that a second test file needs belongs here, not in a copy.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use floorwatch::config::{Config, RulesConfig};
use floorwatch::daemon::DaemonHandle;
use floorwatch::engine::{Effect, Engine, Violation};
use floorwatch::event::{decode_event, Event};
use floorwatch::time::Timestamp;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};

pub const WAIT: Duration = Duration::from_secs(10);

/// Defaults on an ephemeral loopback port.
pub fn config() -> Config {
    let mut c = Config::default();
    c.server.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    // Tests send fixed timestamps of the past: a source that lags that much must never count
    // as caught up by idling, or the daemon's clock would move the engine clock to today.
    c.source.idle = 3_600_000;
    // Every daemon gets a store of its own; the directory outlives the test (the OS cleans
    // its temp dir), since a daemon may still write while the test ends.
    c.store.dir = tempfile::tempdir().expect("tempdir").keep();
    c
}

/// [`config`] with the phone-system adapters of `toml` (a `[source]` or `[[sources]]` table
/// of an adapter kind).
pub fn config_with_sources(toml: &str) -> Config {
    let parsed = Config::from_toml_str(toml).unwrap_or_else(|e| panic!("{toml}: {e}"));
    let mut c = config();
    c.source.kind = parsed.source.kind;
    c.adapters = parsed.adapters;
    c
}

pub async fn start(config: Config) -> DaemonHandle {
    floorwatch::daemon::start(config)
        .await
        .expect("daemon starts")
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A phone system connected to the daemon's `/ingest`.
pub struct Source {
    pub ws: Ws,
}

/// What a source read from the daemon.
#[derive(Debug)]
pub enum Got {
    Json(Value),
    Close(Option<CloseFrame>),
    /// Why the stream ended (read through `Debug` in failure messages).
    Ended(#[allow(dead_code)] String),
}

impl Source {
    pub async fn connect(
        addr: SocketAddr,
        source: &str,
        token: Option<&str>,
    ) -> Result<Source, tungstenite::Error> {
        let mut req = format!("ws://{addr}/ingest?source={source}")
            .into_client_request()
            .expect("request");
        if let Some(t) = token {
            req.headers_mut().insert(
                "authorization",
                format!("Bearer {t}").parse().expect("header"),
            );
        }
        let (ws, _) = tokio_tungstenite::connect_async(req).await?;
        Ok(Source { ws })
    }

    /// Connects and reads the hello; returns it.
    pub async fn connect_hello(addr: SocketAddr, source: &str) -> (Source, Value) {
        let mut s = Source::connect(addr, source, None).await.expect("connects");
        let hello = s.json().await;
        assert_eq!(hello["type"], "hello", "{hello}");
        assert_eq!(hello["protocol"], "floorwatch.v1", "{hello}");
        (s, hello)
    }

    pub async fn send(&mut self, text: impl Into<String>) {
        self.ws
            .send(Message::text(text.into()))
            .await
            .expect("send");
    }

    pub async fn next(&mut self) -> Got {
        loop {
            let m = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("daemon answers in time");
            match m {
                None => return Got::Ended("stream ended".into()),
                Some(Err(e)) => return Got::Ended(e.to_string()),
                Some(Ok(Message::Text(t))) => {
                    return Got::Json(serde_json::from_str(t.as_str()).expect("json"))
                }
                Some(Ok(Message::Close(f))) => return Got::Close(f),
                Some(Ok(_)) => continue,
            }
        }
    }

    pub async fn json(&mut self) -> Value {
        match self.next().await {
            Got::Json(v) => v,
            other => panic!("want a JSON message, got {other:?}"),
        }
    }

    /// Reads messages until an ack; returns the messages before it and the acked seq.
    pub async fn until_ack(&mut self) -> (Vec<Value>, u64) {
        let mut before = Vec::new();
        loop {
            let v = self.json().await;
            if v["type"] == "ack" {
                return (before, v["seq"].as_u64().expect("ack seq"));
            }
            before.push(v);
        }
    }
}

/// A minimal HTTP/1.1 GET: status, content type, body.
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    get_with(addr, path, &[]).await
}

pub async fn get_with(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    exchange(addr, req).await
}

/// What [`call`] got back.
pub struct Reply {
    pub status: u16,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// Any HTTP/1.1 request, with a bearer `token` and extra `headers`, and a JSON `body`.
pub async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Reply {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or_default();
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    let (status, head, body) = exchange_raw(addr, req).await;
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();
    Reply {
        status,
        headers,
        body,
    }
}

/// Sends one HTTP/1.1 request (`Connection: close`): status, content type, body.
async fn exchange(addr: SocketAddr, req: String) -> (u16, String, String) {
    let (status, head, body) = exchange_raw(addr, req).await;
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    (status, content_type, body)
}

/// Sends one HTTP/1.1 request (`Connection: close`): status, the head, the body.
async fn exchange_raw(addr: SocketAddr, req: String) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("response in time")
        .expect("read");
    let text = String::from_utf8(buf).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, head.to_string(), body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

pub async fn get_json(addr: SocketAddr, path: &str) -> (u16, Value) {
    let (status, _, body) = get(addr, path).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}")),
    )
}

/// A minimal HTTP/1.1 POST of a JSON body: status and response body.
pub async fn post(addr: SocketAddr, path: &str, body: &str) -> (u16, String) {
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (status, _, body) = exchange(addr, req).await;
    (status, body)
}

/// Polls `f` every 50 ms until it returns `Some`, for at most [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of a sample line `name{labels} value` in a Prometheus exposition.
pub fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

/// `GET /metrics`: the exposition.
pub async fn metrics(addr: SocketAddr) -> String {
    let (status, _, text) = get(addr, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    text
}

/// The value of `series` (as the exposition prints it: `name` or `name{labels}`) in the
/// daemon's `/metrics` now; 0 when it has no such series.
pub async fn metric(addr: SocketAddr, series: &str) -> f64 {
    value(&metrics(addr).await, series)
}

/// [`total`] of the daemon's `/metrics` now: every series of `name`, whatever its labels.
pub async fn metric_total(addr: SocketAddr, name: &str) -> f64 {
    total(&metrics(addr).await, name)
}

/// [`sample`], 0 when the series is not there.
pub fn value(exposition: &str, series: &str) -> f64 {
    sample(exposition, series).unwrap_or(0.0)
}

/// The sum of every series of `name`, whatever its labels.
pub fn total(exposition: &str, name: &str) -> f64 {
    exposition
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The value of the series of `name` whose labels include every one of `labels`.
pub fn labelled(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    exposition.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?.strip_prefix('{')?;
        let (set, value) = rest.split_once("} ")?;
        labels
            .iter()
            .all(|(k, v)| set.split(',').any(|p| p == format!("{k}=\"{v}\"")))
            .then(|| value.trim().parse().ok())?
    })
}

/// `GET /api/v1/violations{query}`: the records.
pub async fn violations(addr: SocketAddr, query: &str) -> Vec<Value> {
    let (status, v) = get_json(addr, &format!("/api/v1/violations{query}")).await;
    assert_eq!(status, 200, "{v}");
    v["violations"].as_array().expect("violations").clone()
}

/// The query of every violation of the fixtures' stories (2026-11-28, UTC).
pub const STORY_DAY: &str = "?from=2026-11-28T00:00:00Z&to=2026-11-29T00:00:00Z";

/// (rule, kind, agent, at) of violations: what the adapter tests compare.
pub type Found = BTreeSet<(String, String, String, Timestamp)>;

/// (rule, kind, agent, at) of violation records of the API.
pub fn found(records: &[Value]) -> Found {
    records
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            let at = Timestamp::parse_flexible(&s("at")).unwrap_or_else(|_| panic!("at: {r}"));
            (s("rule"), s("kind"), s("agent"), at)
        })
        .collect()
}

/// The violations among `effects`, in order.
pub fn raised(effects: &[Effect]) -> Vec<Violation> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Violation(v) => Some((**v).clone()),
            _ => None,
        })
        .collect()
}

/// (rule, kind, agent, at) of every violation `events` raise in an engine of their own
/// (default rules, one source), deadlines up to the last event included.
pub fn engine_violations(events: &[Event]) -> Found {
    let mut engine = Engine::new(RulesConfig::default());
    let mut out = Vec::new();
    for e in events {
        engine.handle_event("pbx", e, &mut out);
    }
    let end = events.iter().map(|e| e.ts).max().expect("events");
    engine.finish(end, &mut out);
    raised(&out)
        .into_iter()
        .map(|v| {
            (
                v.rule.as_str().to_string(),
                v.kind.as_str().to_string(),
                v.agent.to_string(),
                v.at,
            )
        })
        .collect()
}

/// `tests/fixtures/{dir}/{name}`.
pub fn fixture(dir: &str, name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir)
        .join(name)
}

/// The text of a [`fixture`].
pub fn fixture_text(dir: &str, name: &str) -> String {
    let p = fixture(dir, name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The events of an NDJSON text, one per line; a line that does not decode fails the test.
pub fn decode_lines(text: &str) -> Vec<Event> {
    text.lines()
        .map(|l| decode_event(l).unwrap_or_else(|(_, e)| panic!("{l}: {e}")))
        .collect()
}

/// The next text frame of a WebSocket peer (the daemon as a dialing source's server sees
/// it), as JSON; control frames are skipped.
pub async fn read_json<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Value
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("daemon sends in time")
            .expect("open")
            .expect("message");
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).expect("json");
        }
    }
}

/// A free loopback address: bound to 127.0.0.1:0 and released at once.
pub fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
}

/// A tmpfs mounted for a test (as root); unmounted on drop.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(dir: &std::path::Path, size: &str) -> Option<Tmpfs> {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Writes zeros to `path` until the file system is full.
pub fn fill(path: &std::path::Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("filler");
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
}

/// The phone system's side of connect mode: a WebSocket server the daemon dials.
pub type ServerWs = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Accepts one WebSocket connection; returns it and its Authorization header.
#[allow(clippy::result_large_err)] // the callback's error type is tungstenite's
pub async fn accept(listener: &tokio::net::TcpListener) -> (ServerWs, Option<String>) {
    let (tcp, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .expect("the daemon dials in time")
        .expect("accept");
    let auth = std::sync::Arc::new(std::sync::Mutex::new(None));
    let seen = auth.clone();
    let ws = tokio_tungstenite::accept_hdr_async(
        tcp,
        move |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
              resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
            *seen.lock().expect("lock") = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            Ok(resp)
        },
    )
    .await
    .expect("handshake");
    let auth = auth.lock().expect("lock").clone();
    (ws, auth)
}

/// One named user of a test floor: name, role, teams, agent, token.
pub type UserRow = (
    &'static str,
    floorwatch::config::Role,
    &'static [&'static str],
    Option<&'static str>,
    &'static str,
);

/// `[[users]]` of `rows`, each with the SHA-256 of its token (as the config stores it).
pub fn users(rows: &[UserRow]) -> Vec<floorwatch::config::User> {
    rows.iter()
        .map(
            |(name, role, teams, agent, token)| floorwatch::config::User {
                name: name.to_string(),
                role: *role,
                teams: teams.iter().map(|t| t.to_string()).collect(),
                agent: agent.map(str::to_string),
                token_sha256: Some(sha256(token)),
            },
        )
        .collect()
}

fn sha256(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Runs the `floorwatch` binary with `args`: whether it succeeded, its stdout and stderr.
pub fn run_floorwatch(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_floorwatch"))
        .args(args)
        .output()
        .expect("run floorwatch");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
