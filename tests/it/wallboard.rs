//! The built-in wallboard (`src/wallboard.html`) in a real headless Chromium: against a live
//! daemon fed over `/ingest`, and against a scripted `/ws/floor` that speaks the typed
//! protocol (snapshot, delta, heartbeat) byte for byte as specified. Screenshots of a busy
//! floor go to `target/screenshots/`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use floorwatch::clock::Clock;
use floorwatch::config::{Config, TeamConfig};
use floorwatch::daemon::DaemonHandle;
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::browser::Browser;
use crate::daemon_support::{self, Source};

/// A state change on the floor must reach the screen within this.
const SCREEN_DELAY: Duration = Duration::from_secs(3);

fn now_ms() -> i64 {
    Clock::system().now().0
}

fn iso(ms: i64) -> String {
    floorwatch::time::Timestamp(ms).to_string()
}

/// A daemon whose engine clock follows the wall clock (events are stamped near now), with
/// teams and their leads in its config.
async fn daemon_with_teams(teams: &[(&str, &str)]) -> DaemonHandle {
    let mut c: Config = daemon_support::config();
    c.source.idle = 2_000;
    c.teams = teams
        .iter()
        .map(|(id, lead)| TeamConfig {
            id: id.to_string(),
            lead: Some(lead.to_string()),
            supervisor: None,
            members: Vec::new(),
            sales_target: None,
        })
        .collect();
    daemon_support::start(c).await
}

/// A phone system that stamps and numbers its events.
struct Phone {
    source: Source,
    seq: u64,
}

impl Phone {
    async fn connect(addr: SocketAddr) -> Phone {
        let (source, _) = Source::connect_hello(addr, "pbx").await;
        Phone { source, seq: 0 }
    }

    /// Sends `(ts, event)` pairs as one batch in time order; does not wait for the ack.
    async fn send_at(&mut self, mut events: Vec<(i64, Value)>) {
        events.sort_by_key(|(ts, _)| *ts);
        let batch: Vec<Value> = events
            .into_iter()
            .map(|(ts, mut e)| {
                self.seq += 1;
                e["ts"] = json!(ts);
                e["seq"] = json!(self.seq);
                e
            })
            .collect();
        self.source.send(Value::Array(batch).to_string()).await;
    }

    /// Sends events stamped now.
    async fn send(&mut self, events: Vec<Value>) {
        let now = now_ms();
        self.send_at(events.into_iter().map(|e| (now, e)).collect())
            .await;
    }

    /// Waits until everything sent is stored; fails on any rejected event.
    async fn settle(&mut self) {
        loop {
            let (before, seq) = self.source.until_ack().await;
            let errors: Vec<_> = before.iter().filter(|m| m["type"] == "error").collect();
            assert!(errors.is_empty(), "rejected: {errors:?}");
            if seq >= self.seq {
                return;
            }
        }
    }
}

fn login(agent: &str, team: &str) -> Value {
    json!({"type": "agent.login", "agent": agent, "team": team})
}

/// `data-state` of every tile, as `{agent: state}`.
const TILE_STATES: &str = "Object.fromEntries([...document.querySelectorAll('[data-agent].tile')]\
    .map(t => [t.dataset.agent, t.dataset.state]))";

/// `data-state` of `agent`'s tile, `''` without one; parenthesized, so `{state_of} == 'x'`
/// compares the state.
fn state_of(agent: &str) -> String {
    format!("((document.querySelector('.tile[data-agent=\"{agent}\"]') || {{dataset: {{}}}}).dataset.state || '')")
}

async fn board(addr: SocketAddr, query: &str) -> Browser {
    let mut b = Browser::launch().await;
    b.navigate(&format!("http://{addr}/{query}")).await;
    b
}

#[tokio::test(flavor = "multi_thread")]
async fn tiles_show_every_logged_in_agent_and_follow_events_within_3s() {
    let d = daemon_with_teams(&[("t1", "张伟"), ("t2", "李娜")]).await;
    let addr = d.local_addr();
    let mut phone = Phone::connect(addr).await;
    phone
        .send(vec![
            json!({"type": "agent.login", "agent": "a1", "team": "t1", "name": "王芳"}),
            login("a2", "t1"),
            json!({"type": "agent.login", "agent": "a3", "team": "t2", "state": "not_ready", "reason": "break"}),
            login("a4", "t2"),
            login("a5", "t2"),
            json!({"type": "agent.logout", "agent": "a5"}),
            json!({"type": "call.queued", "call": "c1", "queue": "sales"}),
            json!({"type": "call.ringing", "call": "c1", "agent": "a2"}),
        ])
        .await;
    phone.settle().await;

    let mut b = board(addr, "").await;
    let states = b
        .wait_for(
            "four tiles",
            &format!("(s => Object.keys(s).length == 4 && s)({TILE_STATES})"),
            daemon_support::WAIT,
        )
        .await;
    assert_eq!(
        states,
        json!({"a1": "ready", "a2": "ringing", "a3": "not_ready", "a4": "ready"}),
        "a5 logged out: no tile"
    );
    let a1 = b
        .eval("document.querySelector('.tile[data-agent=\"a1\"]').innerText")
        .await;
    assert!(a1.as_str().unwrap().contains("王芳"), "name shown: {a1}");
    let a3 = b
        .eval("document.querySelector('.tile[data-agent=\"a3\"]').innerText")
        .await;
    assert!(
        a3.as_str().unwrap().contains("暂停 · 小休"),
        "pause with its reason: {a3}"
    );
    assert_eq!(b.eval("document.body.dataset.stale").await, "0");

    // One event at a time: how long until the tile shows it.
    let mut delays = Vec::new();
    for (event, agent, want) in [
        (
            vec![
                json!({"type": "call.queued", "call": "c2", "queue": "sales"}),
                json!({"type": "call.ringing", "call": "c2", "agent": "a1"}),
            ],
            "a1",
            "ringing",
        ),
        (
            vec![json!({"type": "call.answered", "call": "c1", "agent": "a2"})],
            "a2",
            "talking",
        ),
        (
            vec![json!({"type": "agent.state", "agent": "a4", "state": "acw"})],
            "a4",
            "acw",
        ),
    ] {
        let sent = Instant::now();
        phone.send(event).await;
        let expr = format!("{} == '{want}'", state_of(agent));
        b.wait_for(&format!("{agent} {want}"), &expr, SCREEN_DELAY)
            .await;
        let delay = sent.elapsed();
        println!("wallboard: {agent} → {want} on screen {delay:?} after the event was sent");
        delays.push(delay);
    }
    assert!(delays.iter().all(|d| *d <= SCREEN_DELAY), "{delays:?}");
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pause_without_reason_shows_in_the_feed_with_the_lead() {
    let d = daemon_with_teams(&[("t1", "张伟"), ("t2", "李娜")]).await;
    let addr = d.local_addr();
    let mut phone = Phone::connect(addr).await;
    phone
        .send(vec![
            login("a1", "t1"),
            login("a2", "t2"),
            json!({"type": "agent.state", "agent": "a1", "state": "not_ready"}),
        ])
        .await;
    phone.settle().await;
    let mut b = board(addr, "").await;
    b.wait_for(
        "a1 tile",
        &format!("{} == 'not_ready'", state_of("a1")),
        daemon_support::WAIT,
    )
    .await;
    // The 5 s grace for a reason, then the violation.
    let item =
        "document.querySelector('#violations li[data-agent=\"a1\"][data-kind=\"no_reason\"]')";
    let text = b
        .wait_for(
            "the no_reason violation in the feed",
            &format!("{item} && {item}.innerText"),
            Duration::from_secs(12),
        )
        .await;
    let text = text.as_str().unwrap().to_string();
    assert!(text.contains("a1"), "{text}");
    assert!(text.contains("无故暂停"), "kind in words: {text}");
    assert!(text.contains("已持续"), "how long: {text}");
    assert_eq!(
        b.eval("document.querySelector('.tile[data-agent=\"a1\"]').dataset.violation")
            .await,
        "1",
        "the tile stands out"
    );
    assert_eq!(
        b.eval("document.querySelector('.tile[data-agent=\"a2\"]').dataset.violation")
            .await,
        "0"
    );
    let id = b.eval(&format!("{item}.dataset.violationId")).await;
    let (_, floor) = daemon_support::get_json(addr, "/api/v1/floor").await;
    assert_eq!(
        id.as_str().unwrap(),
        floor["open_violations"][0]["id"].to_string(),
        "{floor}"
    );
    // The lead comes from the stream's `teams` (the typed /ws/floor protocol); a daemon that
    // sends the bare floor object has no teams, and the feed names the team instead.
    let lead = b
        .eval(&format!("{item}.querySelector('[data-lead]').dataset.lead"))
        .await;
    if b.eval("floor.teams.length > 0").await == true {
        assert_eq!(lead, "张伟", "{text}");
        assert!(text.contains("组长 张伟"), "{text}");
    } else {
        println!("wallboard: this daemon sends no `teams` on /ws/floor; the feed names the team");
        assert_eq!(lead, "", "{text}");
        assert!(text.contains("班组 t1"), "{text}");
    }
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_board_says_stale_when_the_daemon_stops() {
    let d = daemon_with_teams(&[("t1", "张伟")]).await;
    let addr = d.local_addr();
    let mut phone = Phone::connect(addr).await;
    phone.send(vec![login("a1", "t1")]).await;
    phone.settle().await;
    let mut b = board(addr, "").await;
    b.wait_for(
        "a1 tile",
        &format!("{} == 'ready'", state_of("a1")),
        daemon_support::WAIT,
    )
    .await;
    assert_eq!(b.eval("document.body.dataset.stale").await, "0");
    assert_eq!(
        b.eval("getComputedStyle(document.getElementById('banner')).display")
            .await,
        "none"
    );

    let stopped = Instant::now();
    drop(phone);
    d.shutdown().await;
    b.wait_for(
        "stale",
        "document.body.dataset.stale == '1'",
        Duration::from_secs(5),
    )
    .await;
    println!(
        "wallboard: stale shown {:?} after shutdown began",
        stopped.elapsed()
    );
    assert_eq!(b.eval("document.body.dataset.staleReason").await, "socket");
    assert_eq!(
        b.eval("getComputedStyle(document.getElementById('banner')).display")
            .await,
        "block"
    );
    let banner = b.eval("document.getElementById('banner').innerText").await;
    assert!(banner.as_str().unwrap().contains("数据已过期"), "{banner}");
    let opacity = b
        .eval("Number(getComputedStyle(document.getElementById('agents')).opacity)")
        .await;
    assert!(opacity.as_f64().unwrap() < 0.5, "tiles dimmed: {opacity}");
    assert_eq!(
        b.eval("document.getElementById('status').dataset.status")
            .await,
        "stale"
    );
}

/// Any Chinese character in the page's visible text.
const HAS_HAN: &str = "/[\\u3400-\\u9fff]/.test(document.body.innerText)";

#[tokio::test(flavor = "multi_thread")]
async fn languages_and_the_team_filter() {
    let d = daemon_with_teams(&[("t1", "Zhang Wei"), ("t2", "Li Na")]).await;
    let addr = d.local_addr();
    let mut phone = Phone::connect(addr).await;
    phone
        .send(vec![
            login("a1", "t1"),
            login("a2", "t1"),
            login("b1", "t2"),
            json!({"type": "agent.login", "agent": "b2", "team": "t2", "state": "not_ready", "reason": "meal"}),
            json!({"type": "call.queued", "call": "c1", "queue": "sales"}),
        ])
        .await;
    phone.settle().await;
    let four = format!("Object.keys({TILE_STATES}).length == 4");

    let mut b = board(addr, "").await;
    b.wait_for("four tiles", &four, daemon_support::WAIT).await;
    assert_eq!(b.eval("document.documentElement.lang").await, "zh-CN");
    assert_eq!(
        b.eval("document.getElementById('status').innerText").await,
        "实时"
    );
    let text = b.eval("document.body.innerText").await;
    let text = text.as_str().unwrap();
    for word in [
        "就绪",
        "暂停 · 用餐",
        "排队",
        "接通率",
        "服务水平",
        "班组",
        "放弃",
    ] {
        assert!(text.contains(word), "{word:?} in {text}");
    }

    b.navigate(&format!("http://{addr}/?lang=en")).await;
    b.wait_for("four tiles", &four, daemon_support::WAIT).await;
    assert_eq!(b.eval("document.documentElement.lang").await, "en");
    assert_eq!(
        b.eval("document.getElementById('status').innerText").await,
        "LIVE"
    );
    let text = b.eval("document.body.innerText").await;
    let text = text.as_str().unwrap();
    for word in [
        "ready",
        "paused · meal",
        "waiting",
        "answer rate",
        "service level",
    ] {
        assert!(text.contains(word), "{word:?} in {text}");
    }
    assert_eq!(b.eval(HAS_HAN).await, false, "no Chinese left: {text}");

    b.navigate(&format!("http://{addr}/?team=t2&lang=en")).await;
    b.wait_for(
        "t2's tiles",
        &format!("Object.keys({TILE_STATES}).length == 2"),
        daemon_support::WAIT,
    )
    .await;
    assert_eq!(
        b.eval(TILE_STATES).await,
        json!({"b1": "ready", "b2": "not_ready"})
    );
    assert_eq!(
        b.eval("[...document.querySelectorAll('#teams tr')].map(r => r.dataset.team)")
            .await,
        json!(["t2"])
    );
    assert_eq!(
        b.eval("document.querySelectorAll('#queues [data-queue]').length")
            .await,
        1,
        "queues stay"
    );
    d.shutdown().await;
}

// ---- the typed /ws/floor protocol, scripted -----------------------------------------------

type ServerWs = WebSocketStream<TcpStream>;

/// Serves the wallboard at `/` and hands every `/ws/floor` WebSocket (with its request URI)
/// to the test, which then speaks for the daemon.
async fn scripted_floor() -> (SocketAddr, mpsc::UnboundedReceiver<(String, ServerWs)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut head = [0u8; 16];
                let mut n = 0;
                for _ in 0..100 {
                    n = stream.peek(&mut head).await.unwrap_or(0);
                    if n >= head.len() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                if head[..n].starts_with(b"GET /ws/floor") {
                    let uri = Arc::new(Mutex::new(String::new()));
                    let seen = uri.clone();
                    // The error type is fixed by tungstenite's `Callback`.
                    #[allow(clippy::result_large_err)]
                    let cb =
                        move |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                              resp| {
                            *seen.lock().unwrap() = req.uri().to_string();
                            Ok(resp)
                        };
                    if let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, cb).await {
                        let uri = uri.lock().unwrap().clone();
                        let _ = tx.send((uri, ws));
                    }
                } else {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => req.extend_from_slice(&buf[..k]),
                        }
                    }
                    let body = include_str!("../../src/wallboard.html");
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(resp.as_bytes()).await;
                }
            });
        }
    });
    (addr, rx)
}

async fn next_socket(
    rx: &mut mpsc::UnboundedReceiver<(String, ServerWs)>,
    within: Duration,
) -> (String, ServerWs) {
    tokio::time::timeout(within, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("the board did not (re)connect within {within:?}"))
        .expect("server alive")
}

fn kpis(offered: u64, answered: u64, abandoned: u64) -> Value {
    json!({"offered": offered, "answered": answered, "abandoned": abandoned,
           "answer_rate": answered as f64 / offered as f64, "service_level": 0.8, "asa_seconds": 6.5})
}

fn agent(
    id: &str,
    team: &str,
    effective: &str,
    reason: &str,
    since: i64,
    violations: u32,
) -> Value {
    let presence = if matches!(effective, "talking" | "ringing") {
        "ready"
    } else {
        effective
    };
    json!({"agent": id, "team": team, "logged_in": true, "presence": presence, "reason": reason,
           "since": iso(since), "effective": effective, "effective_since": iso(since),
           "open_violations": violations})
}

#[tokio::test(flavor = "multi_thread")]
async fn the_board_speaks_the_typed_floor_protocol() {
    let (addr, mut sockets) = scripted_floor().await;
    let mut b = Browser::launch().await;
    b.navigate(&format!("http://{addr}/?token=s3cret")).await;
    let (uri, mut ws) = next_socket(&mut sockets, daemon_support::WAIT).await;
    assert_eq!(
        uri, "/ws/floor?token=s3cret",
        "the token goes on to the socket"
    );

    let now = now_ms();
    let mut logged_out = agent("a6", "t2", "ready", "", now, 0);
    logged_out["logged_in"] = json!(false);
    logged_out["effective"] = Value::Null;
    logged_out["presence"] = Value::Null;
    let queue = json!({"queue": "sales", "waiting": 2, "longest_wait_seconds": 30.0,
        "oldest_since": iso(now - 30_000), "today": kpis(10, 8, 1), "last_15m": kpis(4, 4, 0)});
    let violation = json!({"id": 7, "rule": "unauthorized_pause", "kind": "no_reason", "agent": "a3",
        "team": "t2", "at": iso(now - 2_000), "points": 5, "detected_at": iso(now - 2_000),
        "status": "open", "evidence": {"limit": "reason within grace 5s", "limit_ms": 5000, "raised_after_ms": 5000}});
    let snapshot = json!({
        "type": "snapshot", "version": 5, "engine_clock": iso(now), "sources_connected": 1,
        "language": "en",
        "teams": [{"id": "t1", "lead": "Zhang Wei"}, {"id": "t2", "lead": "Li Na", "supervisor": "Wu Lei"}],
        "limits": {"ring_ms": 4000, "grace_ms": 5000, "acw_max_ms": 60000,
                   "reasons": {"break": {"max_ms": 10000}}},
        "agents": [
            agent("a1", "t1", "ringing", "", now - 3_500, 0),   // past 80 % of 4 s
            agent("a2", "t1", "not_ready", "", now - 6_000, 0), // past the 5 s grace
            agent("a3", "t2", "talking", "", now - 1_000, 1),
            agent("a4", "t2", "ready", "", now - 1_000, 0),
            agent("a5", "t2", "not_ready", "break", now - 1_000, 0),
            logged_out,
        ],
        "queues": [queue],
        "floor": {"today": kpis(10, 8, 1), "last_15m": kpis(4, 4, 0)},
        "ring_percentiles": {},
        "open_violations": [violation],
    });
    ws.send(Message::text(snapshot.to_string())).await.unwrap();

    b.wait_for(
        "five tiles",
        &format!("Object.keys({TILE_STATES}).length == 5"),
        daemon_support::WAIT,
    )
    .await;
    assert_eq!(
        b.eval("document.documentElement.lang").await,
        "en",
        "language from the message"
    );
    assert_eq!(
        b.eval("document.getElementById('status').innerText").await,
        "LIVE"
    );
    let looks = "Object.fromEntries([...document.querySelectorAll('.tile')].map(t => \
        [t.dataset.agent, t.dataset.violation == '1' ? 'violation' : t.dataset.level]))";
    assert_eq!(
        b.eval(looks).await,
        json!({"a1": "warn", "a2": "warn", "a3": "violation", "a4": "", "a5": ""})
    );
    let item = "document.querySelector('#violations li[data-violation-id=\"7\"]')";
    let text = b.eval(&format!("{item}.innerText")).await;
    let text = text.as_str().unwrap();
    assert!(text.contains("lead Li Na"), "{text}");
    assert!(text.contains("paused without a reason"), "{text}");
    assert_eq!(b.eval(HAS_HAN).await, false);

    // A delta replaces only the agents it carries.
    let mut a1 = agent("a1", "t1", "talking", "", now_ms(), 0);
    a1["call"] = json!("c9");
    let delta = json!({"type": "delta", "version": 6, "engine_clock": iso(now_ms()), "sources_connected": 1,
        "agents": [a1], "queues": [queue], "floor": {"today": kpis(10, 8, 1), "last_15m": kpis(4, 4, 0)},
        "ring_percentiles": {}, "open_violations": []});
    ws.send(Message::text(delta.to_string())).await.unwrap();
    b.wait_for(
        "a1 talking",
        &format!("{} == 'talking'", state_of("a1")),
        SCREEN_DELAY,
    )
    .await;
    assert_eq!(
        b.eval(TILE_STATES).await,
        json!({"a1": "talking", "a2": "not_ready", "a3": "talking", "a4": "ready", "a5": "not_ready"})
    );
    assert_eq!(
        b.eval("document.querySelectorAll('#violations li').length")
            .await,
        0
    );
    // An older delta changes nothing.
    let old = json!({"type": "delta", "version": 4, "engine_clock": iso(now_ms()), "sources_connected": 1,
        "agents": [agent("a2", "t1", "ready", "", now_ms(), 0)], "queues": [queue],
        "floor": {"today": kpis(10, 8, 1), "last_15m": kpis(4, 4, 0)}, "ring_percentiles": {},
        "open_violations": []});
    ws.send(Message::text(old.to_string())).await.unwrap();
    let beat = |sources: u32| {
        Message::text(json!({"type": "heartbeat", "engine_clock": iso(now_ms()), "sources_connected": sources}).to_string())
    };
    ws.send(beat(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(b.eval(&state_of("a2")).await, "not_ready");

    // The phone system is gone: stale at once.
    ws.send(beat(0)).await.unwrap();
    b.wait_for(
        "stale: source",
        "document.body.dataset.staleReason == 'source'",
        SCREEN_DELAY,
    )
    .await;
    let banner = b.eval("document.getElementById('banner').innerText").await;
    assert!(
        banner
            .as_str()
            .unwrap()
            .contains("phone system disconnected"),
        "{banner}"
    );
    ws.send(beat(1)).await.unwrap();
    b.wait_for(
        "live again",
        "document.body.dataset.stale == '0'",
        SCREEN_DELAY,
    )
    .await;

    // Silence: stale after 5 s; the board then drops the socket and dials again.
    let quiet = Instant::now();
    b.wait_for(
        "stale: silent",
        "document.body.dataset.staleReason == 'silent'",
        Duration::from_secs(8),
    )
    .await;
    let after = quiet.elapsed();
    assert!(
        after >= Duration::from_millis(4_500),
        "stale too early: {after:?}"
    );
    let (uri, mut ws2) = next_socket(&mut sockets, Duration::from_secs(20)).await;
    assert_eq!(uri, "/ws/floor?token=s3cret");
    drop(ws);
    // A daemon before the typed protocol sends the bare floor object: a snapshot.
    let mut bare = snapshot.clone();
    let obj = bare.as_object_mut().unwrap();
    for k in ["type", "version", "language", "teams", "limits"] {
        obj.remove(k);
    }
    obj["engine_clock"] = json!(iso(now_ms()));
    obj["agents"] = json!([agent("z1", "t3", "acw", "", now_ms(), 0)]);
    ws2.send(Message::text(bare.to_string())).await.unwrap();
    b.wait_for(
        "the new snapshot",
        &format!("JSON.stringify({TILE_STATES}) == '{{\"z1\":\"acw\"}}'"),
        SCREEN_DELAY,
    )
    .await;
    assert_eq!(b.eval("document.body.dataset.stale").await, "0");
}

// ---- a busy floor, photographed ------------------------------------------------------------

const NAMES: [&str; 40] = [
    "王芳", "李伟", "张敏", "刘洋", "陈静", "杨磊", "赵丽", "黄强", "周婷", "吴刚", "徐涛", "孙娜",
    "马超", "朱琳", "胡军", "郭蕾", "何平", "高翔", "林晓", "罗丹", "郑斌", "梁爽", "谢飞", "宋雪",
    "唐杰", "许静", "韩梅", "冯磊", "邓超", "曹阳", "彭丽", "曾强", "肖雨", "田甜", "董明", "袁媛",
    "潘峰", "蒋欣", "蔡文", "余洁",
];

/// `target/screenshots/` (with those of the console pages).
fn shots_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("screenshots")
}

#[tokio::test(flavor = "multi_thread")]
async fn screenshots_of_a_busy_floor() {
    let teams = [
        ("hotline-1", "张伟"),
        ("hotline-2", "李娜"),
        ("hotline-3", "王强"),
        ("hotline-4", "刘洋"),
    ];
    // Two outbound teams with a daily sales target.
    let mut c: Config = daemon_support::config();
    c.source.idle = 2_000;
    c.teams = teams
        .iter()
        .map(|(id, lead)| TeamConfig {
            id: id.to_string(),
            lead: Some(lead.to_string()),
            supervisor: None,
            members: Vec::new(),
            sales_target: None,
        })
        .collect();
    c.rules.sales_target.insert("hotline-1".into(), 8);
    c.rules.sales_target.insert("hotline-2".into(), 4);
    let d = daemon_support::start(c).await;
    let addr = d.local_addr();
    let mut phone = Phone::connect(addr).await;
    let now = now_ms();
    let s = 1_000;
    let mut ev: Vec<(i64, Value)> = Vec::new();
    // This morning's campaign: hotline-1 dials 9 (6 connect, 3 sales of its 8), hotline-2
    // dials 6 (4 connect, 4 sales of its 4: target met).
    for i in 0..15i64 {
        let (agent, connects, sale) = if i < 9 {
            (format!("a-{:02}", 1 + i % 4), i % 3 != 2, i % 3 == 0)
        } else {
            (format!("a-{:02}", 11 + i % 4), i != 10 && i != 14, true)
        };
        let c = format!("out-{i}");
        let t = now - 7_000 * s + i * 120 * s;
        ev.push((
            t,
            json!({"type": "call.dialing", "call": c, "agent": agent}),
        ));
        if connects {
            ev.push((
                t + 8 * s,
                json!({"type": "call.answered", "call": c, "agent": agent}),
            ));
        }
        ev.push((
            t + 60 * s,
            json!({"type": "call.ended", "call": c, "agent": agent}),
        ));
        if connects && sale {
            ev.push((
                t + 61 * s,
                json!({"type": "call.disposition", "call": c, "agent": agent, "code": "sale"}),
            ));
        }
    }
    // Two agents a shift covers who have not logged in: 3 and 12 minutes late.
    for (agent, team, late) in [("a-41", "hotline-3", 3), ("a-42", "hotline-4", 12)] {
        ev.push((now - 7_200 * s, json!({"type": "shift.scheduled", "shift": format!("s-{agent}"),
            "agent": agent, "team": team, "start": now - late * 60 * s, "end": now + 6 * 3_600 * s})));
    }
    let queues = ["sales", "service", "vip"];
    let mut call = 0;
    let mut next_call = || {
        call += 1;
        format!("c{call}")
    };
    // Earlier today: answered and abandoned calls for the KPIs, answered by agents who are
    // ready now (a-06, a-07, a-16, ...).
    for i in 0..30i64 {
        let c = next_call();
        let q = queues[i as usize % 3];
        let t = now - 3_600 * s + i * 60 * s;
        ev.push((t, json!({"type": "call.queued", "call": c, "queue": q})));
        if i % 7 == 3 {
            ev.push((t + 40 * s, json!({"type": "call.abandoned", "call": c})));
        } else {
            let agent = format!("a-{:02}", 10 * (i % 4) + 6 + (i / 4) % 2);
            let wait = 5 + (i * 13) % 30;
            ev.push((
                t + wait * s,
                json!({"type": "call.ringing", "call": c, "agent": agent}),
            ));
            ev.push((
                t + (wait + 4) * s,
                json!({"type": "call.answered", "call": c, "agent": agent}),
            ));
            ev.push((
                t + (wait + 50) * s,
                json!({"type": "call.ended", "call": c, "agent": agent}),
            ));
        }
    }
    for (i, name) in NAMES.iter().enumerate() {
        let agent = format!("a-{:02}", i + 1);
        let team = teams[i / 10].0;
        let i = i as i64;
        ev.push((
            now - 7_200 * s,
            json!({"type": "agent.login", "agent": agent, "team": team, "name": name}),
        ));
        let q = queues[i as usize % 3];
        match i % 10 {
            0..=3 => {
                let c = next_call();
                let at = now - (20 + 37 * i) * s;
                ev.push((
                    at - 9 * s,
                    json!({"type": "call.queued", "call": c, "queue": q}),
                ));
                ev.push((
                    at - 4 * s,
                    json!({"type": "call.ringing", "call": c, "agent": agent}),
                ));
                ev.push((
                    at,
                    json!({"type": "call.answered", "call": c, "agent": agent}),
                ));
            }
            4 => {
                let c = next_call();
                let at = now - (1 + i / 10) * s;
                ev.push((
                    at - 3 * s,
                    json!({"type": "call.queued", "call": c, "queue": q}),
                ));
                ev.push((
                    at,
                    json!({"type": "call.ringing", "call": c, "agent": agent}),
                ));
            }
            7 => {
                let c = next_call();
                let end = now - (15 + 5 * (i / 10)) * s;
                ev.push((
                    end - 200 * s,
                    json!({"type": "call.queued", "call": c, "queue": q}),
                ));
                ev.push((
                    end - 198 * s,
                    json!({"type": "call.ringing", "call": c, "agent": agent}),
                ));
                ev.push((
                    end - 192 * s,
                    json!({"type": "call.answered", "call": c, "agent": agent}),
                ));
                ev.push((
                    end,
                    json!({"type": "call.ended", "call": c, "agent": agent}),
                ));
                ev.push((
                    end,
                    json!({"type": "agent.state", "agent": agent, "state": "acw", "call": c}),
                ));
            }
            8 => {
                let (reason, ago) = match i / 10 {
                    0 => ("break", 13 * 60),
                    1 => ("meal", 9 * 60),
                    2 => ("break", 4 * 60),
                    _ => ("training", 20 * 60),
                };
                ev.push((now - ago * s, json!({"type": "agent.state", "agent": agent, "state": "not_ready", "reason": reason})));
            }
            9 if i / 10 == 1 => {
                ev.push((
                    now - 40 * s,
                    json!({"type": "agent.state", "agent": agent, "state": "not_ready"}),
                ));
            }
            _ => {}
        }
    }
    // Calls waiting now.
    for (q, ago) in [("sales", 48), ("sales", 21), ("sales", 6), ("service", 13)] {
        let c = next_call();
        ev.push((
            now - ago * s,
            json!({"type": "call.queued", "call": c, "queue": q}),
        ));
    }
    phone.send_at(ev).await;
    phone.settle().await;

    let dir = shots_dir();
    for (query, file) in [("", "wallboard-zh.png"), ("?lang=en", "wallboard-en.png")] {
        let mut b = board(addr, query).await;
        b.wait_for(
            "40 tiles and 2 absent",
            &format!("Object.keys({TILE_STATES}).length == 42"),
            daemon_support::WAIT,
        )
        .await;
        b.wait_for(
            "the violation",
            "document.querySelectorAll('#violations li').length > 0",
            daemon_support::WAIT,
        )
        .await;
        // Let the clock tick and a render pass run.
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        assert_eq!(b.eval("document.body.dataset.stale").await, "0");
        // Everything fits a 1080p screen: no tile off screen, no text cut off.
        let off = b
            .eval(
                "[...document.querySelectorAll('.tile')].filter(t => { const r = t.getBoundingClientRect(); \
                 return r.bottom > innerHeight || r.right > innerWidth; }).map(t => t.dataset.agent)",
            )
            .await;
        assert_eq!(off, json!([]), "tiles off screen");
        let cut = b
            .eval(&format!(
                "[...document.querySelectorAll('.tile > div, .queue > *, .queue .stat, .total, #teams td, #teams-head th, #violations li > div, #sales-panel span')]\
                 .filter(e => e.scrollWidth > e.clientWidth + 1 || {CUT}(e)).map(e => e.innerText)"
            ))
            .await;
        assert_eq!(cut, json!([]), "text cut off");
        let clipped = b
            .eval(
                "(() => { const box = document.getElementById('violations').getBoundingClientRect(); \
                 return [...document.querySelectorAll('#violations li')].filter(li => li.offsetParent \
                 && li.getBoundingClientRect().bottom > box.bottom + 1).map(li => li.dataset.violationId); })()",
            )
            .await;
        assert_eq!(clipped, json!([]), "a violation half shown");
        let sales = b
            .eval("[...document.querySelectorAll('#sales [data-sales-team]')].map(r => \
                   [r.dataset.salesTeam, r.dataset.sales, r.dataset.target, r.querySelector('.bar').dataset.done])")
            .await;
        assert_eq!(
            sales,
            json!([["hotline-1", "3", "8", "0"], ["hotline-2", "4", "4", "1"]])
        );
        let absent = b
            .eval("[...document.querySelectorAll('.tile[data-absent=\"1\"]')].map(t => t.dataset.agent)")
            .await;
        assert_eq!(absent, json!(["a-41", "a-42"]));
        let png = b.screenshot(&dir.join(file)).await;
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
        println!(
            "wallboard: {} ({} bytes)",
            dir.join(file).display(),
            png.len()
        );
    }
    d.shutdown().await;
}

// ---- schedules, outbound and what the header counts ----------------------------------------

/// Whether an element's text is wider than its box, to a fraction of a pixel (an ellipsis
/// shows for any overflow; `scrollWidth` counts whole pixels and can hide it).
const CUT: &str = "(e => { const st = getComputedStyle(e); const r = document.createRange(); \
    r.selectNodeContents(e); const box = e.getBoundingClientRect().width - parseFloat(st.paddingLeft) \
    - parseFloat(st.paddingRight) - parseFloat(st.borderLeftWidth) - parseFloat(st.borderRightWidth); \
    return st.overflowX == 'hidden' && r.getBoundingClientRect().width > box + 0.01; })";

/// A daemon with outbound teams: t1's target is 4 sales a day, t2 has none.
async fn daemon_with_targets() -> DaemonHandle {
    let mut c: Config = daemon_support::config();
    c.source.idle = 2_000;
    c.teams = [("t1", "张伟", Some(4)), ("t2", "李娜", None)]
        .into_iter()
        .map(|(id, lead, target)| TeamConfig {
            id: id.to_string(),
            lead: Some(lead.to_string()),
            supervisor: None,
            members: Vec::new(),
            sales_target: target,
        })
        .collect();
    // What config validation derives from `[[teams]] sales_target`.
    c.rules.sales_target.insert("t1".into(), 4);
    daemon_support::start(c).await
}

#[tokio::test(flavor = "multi_thread")]
async fn absent_agents_have_tiles_of_their_own_with_how_late_they_are() {
    let d = daemon_with_targets().await;
    let addr = d.local_addr();
    let mut phone = Phone::connect(addr).await;
    let now = now_ms();
    // b1's shift began 5 minutes ago and b1 is not logged in; a1's began too, and a1 is in.
    phone
        .send_at(vec![
            (
                now - 600_000,
                json!({"type": "shift.scheduled", "shift": "s-b1", "agent": "b1", "team": "t1",
                "start": now - 300_000, "end": now + 4 * 3_600_000}),
            ),
            (
                now - 600_000,
                json!({"type": "shift.scheduled", "shift": "s-a1", "agent": "a1", "team": "t1",
                "start": now - 300_000, "end": now + 4 * 3_600_000}),
            ),
            (now - 400_000, login("a1", "t1")),
        ])
        .await;
    phone.settle().await;
    let mut b = board(addr, "").await;
    let tile = "document.querySelector('.tile[data-agent=\"b1\"]')";
    b.wait_for("b1's absent tile", tile, daemon_support::WAIT)
        .await;
    assert_eq!(b.eval(&format!("{tile}.dataset.state")).await, "absent");
    assert_eq!(b.eval(&format!("{tile}.dataset.absent")).await, "1");
    // Five minutes late, give or take the time the page took (it ticks from the engine clock).
    let late = b
        .eval(&format!("Number({tile}.dataset.lateMs)"))
        .await
        .as_f64()
        .unwrap();
    assert!((300_000.0..330_000.0).contains(&late), "{late}");
    let text = b.eval(&format!("{tile}.innerText")).await;
    let text = text.as_str().unwrap().to_string();
    assert!(text.contains("缺勤"), "{text}");
    assert!(text.contains("+5:0"), "late by 5 minutes: {text}");
    // The team table counts b1 absent; a1 is in, with a tile of the ordinary kind.
    assert_eq!(
        b.eval("document.querySelector('#teams tr[data-team=\"t1\"] [data-count=\"absent\"]').innerText")
            .await,
        "1"
    );
    assert_eq!(b.eval(&state_of("a1")).await, "ready");
    // Its late_login violation, in words, lasting since the shift's start (not since the
    // shift was planned, 10 minutes ago).
    let item =
        "document.querySelector('#violations li[data-agent=\"b1\"][data-kind=\"late_login\"]')";
    let text = b
        .wait_for(
            "b1's late login",
            &format!("{item} && {item}.innerText"),
            daemon_support::WAIT,
        )
        .await;
    let text = text.as_str().unwrap().to_string();
    assert!(text.contains("上班登录迟到 · 考勤"), "{text}");
    assert!(text.contains("已持续 5:0"), "{text}");
    b.navigate(&format!("http://{addr}/?lang=en")).await;
    b.wait_for("b1's absent tile", tile, daemon_support::WAIT)
        .await;
    let text = b.eval(&format!("{tile}.innerText")).await;
    assert!(text.as_str().unwrap().contains("absent"), "{text}");
    // b1 logs in: the tile becomes an ordinary one.
    phone.send(vec![login("b1", "t1")]).await;
    b.wait_for(
        "b1 ready",
        &format!("{} == 'ready'", state_of("b1")),
        SCREEN_DELAY,
    )
    .await;
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crm_sends_dispositions_and_the_board_and_metrics_show_the_sales() {
    let d = daemon_with_targets().await;
    let addr = d.local_addr();
    let mut phone = Phone::connect(addr).await;
    let now = now_ms();
    // The phone system: a1 (t1) dials three calls, two connect; b1 (t2) dials one, it connects.
    let mut ev = vec![
        (now - 600_000, login("a1", "t1")),
        (now - 600_000, login("b1", "t2")),
    ];
    for (i, (agent, call, connects)) in [
        ("a1", "o1", true),
        ("a1", "o2", true),
        ("a1", "o3", false),
        ("b1", "o4", true),
    ]
    .into_iter()
    .enumerate()
    {
        let t = now - 500_000 + i as i64 * 60_000;
        ev.push((
            t,
            json!({"type": "call.dialing", "call": call, "agent": agent}),
        ));
        if connects {
            ev.push((
                t + 5_000,
                json!({"type": "call.answered", "call": call, "agent": agent}),
            ));
        }
        ev.push((
            t + 30_000,
            json!({"type": "call.ended", "call": call, "agent": agent}),
        ));
    }
    phone.send_at(ev).await;
    phone.settle().await;
    // The CRM, as its own source: o1 a sale, o2 first a sale then changed to no sale (the
    // latest counts), o4 a sale; o3 never connected and gets no disposition.
    let (mut crm, _) = Source::connect_hello(addr, "crm").await;
    let t = now_ms();
    let dispositions = json!([
        {"type": "call.disposition", "ts": t, "seq": 1, "call": "o1", "agent": "a1", "code": "sale"},
        {"type": "call.disposition", "ts": t, "seq": 2, "call": "o2", "agent": "a1", "code": "sale"},
        {"type": "call.disposition", "ts": t, "seq": 3, "call": "o2", "agent": "a1", "code": "no_sale"},
        {"type": "call.disposition", "ts": t, "seq": 4, "call": "o4", "agent": "b1", "code": "sale"},
    ]);
    crm.send(dispositions.to_string()).await;
    let (before, seq) = crm.until_ack().await;
    assert!(before.iter().all(|m| m["type"] != "error"), "{before:?}");
    assert_eq!(seq, 4);

    // By hand: t1 dialed 3, connected 2 (67 %), sold 1 of its target 4 (25 %); t2 dialed 1,
    // connected 1, sold 1, no target.
    let mut b = board(addr, "").await;
    let row = "document.querySelector('#sales [data-sales-team=\"t1\"]')";
    b.wait_for(
        "t1's sales",
        &format!("{row} && {row}.dataset.sales == '1'"),
        daemon_support::WAIT,
    )
    .await;
    assert_eq!(b.eval(&format!("{row}.dataset.target")).await, "4");
    assert_eq!(b.eval(&format!("{row}.dataset.progress")).await, "0.25");
    let fill = b
        .eval(&format!("{row}.querySelector('.bar > span').getBoundingClientRect().width / {row}.querySelector('.bar').clientWidth"))
        .await
        .as_f64()
        .unwrap();
    assert!(
        (fill - 0.25).abs() < 0.02,
        "the bar is a quarter full: {fill}"
    );
    let text = b.eval(&format!("{row}.innerText")).await;
    let text = text.as_str().unwrap().to_string();
    assert!(text.contains("1 / 4"), "{text}");
    assert!(text.contains("外呼 3 · 接通 2 · 外呼接通率 67%"), "{text}");
    assert!(b
        .eval("document.getElementById('sales-title').innerText")
        .await
        .as_str()
        .unwrap()
        .contains("今日销售"));
    let t2 = "document.querySelector('#sales [data-sales-team=\"t2\"]')";
    assert_eq!(b.eval(&format!("{t2}.dataset.sales")).await, "1");
    assert_eq!(b.eval(&format!("{t2}.dataset.target")).await, "");
    assert_eq!(
        b.eval(&format!("{t2}.querySelector('.bar')")).await,
        Value::Null,
        "no target, no bar"
    );
    b.navigate(&format!("http://{addr}/?lang=en")).await;
    b.wait_for("t1's sales", row, daemon_support::WAIT).await;
    let text = b.eval(&format!("{row}.innerText")).await;
    assert!(
        text.as_str()
            .unwrap()
            .contains("dialed 3 · connected 2 · connect rate 67%"),
        "{text}"
    );
    // And /metrics. The counter counts dispositions that made a pair a sale (o1, o2, o4):
    // o2's later change to no_sale is not subtracted from a counter, as its doc says; the
    // board's today count (1 for t1) is.
    let m = daemon_support::metrics(addr).await;
    for (series, want) in [
        ("floorwatch_sales_total{team=\"t1\"}", 2.0),
        ("floorwatch_sales_total{team=\"t2\"}", 1.0),
        ("floorwatch_outbound_attempts_total{team=\"t1\"}", 3.0),
        ("floorwatch_outbound_connected_total{team=\"t1\"}", 2.0),
        ("floorwatch_sales_target{team=\"t1\"}", 4.0),
    ] {
        assert_eq!(daemon_support::sample(&m, series), Some(want), "{series}");
    }
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_header_says_what_the_answer_rate_counts() {
    let d = daemon_with_targets().await;
    let addr = d.local_addr();
    let mut phone = Phone::connect(addr).await;
    // Three calls offered: one answered, one abandoned, one still ringing. 1 / 3 = 33 %.
    phone
        .send(vec![
            login("a1", "t1"),
            login("a2", "t1"),
            json!({"type": "call.queued", "call": "c1", "queue": "q"}),
            json!({"type": "call.ringing", "call": "c1", "agent": "a1"}),
            json!({"type": "call.answered", "call": "c1", "agent": "a1"}),
            json!({"type": "call.queued", "call": "c2", "queue": "q"}),
            json!({"type": "call.abandoned", "call": "c2"}),
            json!({"type": "call.queued", "call": "c3", "queue": "q"}),
            json!({"type": "call.ringing", "call": "c3", "agent": "a2"}),
        ])
        .await;
    phone.settle().await;
    let mut b = board(addr, "").await;
    let total = "document.querySelector('[data-total=\"answer_rate\"]')";
    b.wait_for(
        "the answer rate",
        &format!("{total} && {total}.querySelector('[data-offered]')"),
        daemon_support::WAIT,
    )
    .await;
    let text = b.eval(&format!("{total}.innerText")).await;
    let text = text.as_str().unwrap().to_string();
    assert!(text.contains("33%"), "{text}");
    assert!(text.contains("已接/来电 1/3（含未结束）"), "{text}");
    let title = b.eval(&format!("{total}.title")).await;
    assert!(title.as_str().unwrap().contains("排队或振铃中"), "{title}");
    b.navigate(&format!("http://{addr}/?lang=en")).await;
    b.wait_for(
        "the answer rate",
        &format!("{total} && {total}.querySelector('[data-offered]')"),
        daemon_support::WAIT,
    )
    .await;
    let text = b.eval(&format!("{total}.innerText")).await;
    assert!(
        text.as_str()
            .unwrap()
            .contains("answered/offered 1/3 (incl. unfinished)"),
        "{text}"
    );
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_is_cut_at_1920x1080_with_long_team_ids_and_a_crowded_floor() {
    // 12 teams with long ids, 144 agents (small tiles), many in long states, large counts.
    let d = daemon_with_teams(&[]).await;
    let addr = d.local_addr();
    let mut phone = Phone::connect(addr).await;
    let now = now_ms();
    let mut ev = Vec::new();
    for i in 0..144 {
        let agent = format!("agent-{i:03}");
        let team = format!("outbound-sales-{:02}", i % 12);
        ev.push((
            now - 3_600_000,
            json!({"type": "agent.login", "agent": agent, "team": team, "name": NAMES[i % NAMES.len()]}),
        ));
        let state = match i % 4 {
            0 => json!({"type": "agent.state", "agent": agent, "state": "not_ready"}),
            1 => json!({"type": "agent.state", "agent": agent, "state": "acw"}),
            2 => {
                json!({"type": "agent.state", "agent": agent, "state": "not_ready", "reason": "training"})
            }
            _ => continue,
        };
        ev.push((now - 30_000, state));
    }
    phone.send_at(ev).await;
    phone.settle().await;
    for (query, file) in [
        ("?lang=en", "wallboard-crowded-en.png"),
        ("", "wallboard-crowded-zh.png"),
    ] {
        let mut b = board(addr, query).await;
        b.wait_for(
            "144 tiles",
            &format!("Object.keys({TILE_STATES}).length == 144"),
            daemon_support::WAIT,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        let cut = b
            .eval(&format!(
                "[...document.querySelectorAll('.tile > div, #teams td, #teams-head th, .total, .queue .stat')]\
                 .filter({CUT}).map(e => e.innerText)"
            ))
            .await;
        assert_eq!(cut, json!([]), "{query}: text cut off");
        let panel = b
            .eval(
                "(() => { const p = document.getElementById('teams-panel').getBoundingClientRect(); \
                 return [...document.querySelectorAll('#teams-panel th, #teams-panel td')] \
                   .filter(c => c.getBoundingClientRect().right > p.right + 1).map(c => c.innerText); })()",
            )
            .await;
        assert_eq!(panel, json!([]), "{query}: cells past the teams panel");
        let off = b
            .eval(
                "[...document.querySelectorAll('.tile')].filter(t => { const r = t.getBoundingClientRect(); \
                 return r.bottom > innerHeight || r.right > innerWidth; }).map(t => t.dataset.agent)",
            )
            .await;
        assert_eq!(off, json!([]), "{query}: tiles off screen");
        // A long state is shown whole.
        let st = b
            .eval("document.querySelector('.tile[data-agent=\"agent-000\"] .st').innerText")
            .await;
        let want = if query.is_empty() {
            "暂停 · 无原因"
        } else {
            "paused · no reason"
        };
        assert_eq!(st, want);
        let path = shots_dir().join(file);
        b.screenshot(&path).await;
        println!("wallboard: {}", path.display());
    }
    d.shutdown().await;
}
