//! The FreeSWITCH adapter end to end: the ESL transcript of `tests/fixtures/freeswitch/`
//! through the decoder and mapper into an engine gives the violations of the hand-written
//! protocol story (`story.ndjson`); and a daemon with `kind = "freeswitch-esl"` dialing an
//! event socket emulator stores the same violations, through a wrong password, dropped
//! connections, disconnect notices and garbage frames.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use floorwatch::adapter::esl::{EslDecoder, EslMapper, Frame};
use floorwatch::config::Config;
use floorwatch::config::{EslAgentId, EslSettings};
use floorwatch::event::{Body, Event};
use floorwatch::time::Timestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::daemon_support::{self as sup, Found};

/// The transcript's frames (the leading `#` comment lines dropped).
fn transcript() -> Vec<Frame> {
    transcript_of("esl.txt")
}

/// The frames of the ESL transcript `name`.
fn transcript_of(name: &str) -> Vec<Frame> {
    let text = sup::fixture_text("freeswitch", name);
    let start = text.find("\nContent-Length").expect("a frame") + 1;
    assert!(text[..start].lines().all(|l| l.starts_with('#')));
    let mut d = EslDecoder::new(1 << 20);
    d.push(&text.as_bytes()[start..]);
    let mut frames = Vec::new();
    while let Some(f) = d.next_frame().expect("transcript decodes") {
        frames.push(f);
    }
    assert!(
        d.next_frame().expect("no trailing garbage").is_none(),
        "whole transcript read"
    );
    frames
}

/// A frame as FreeSWITCH writes it.
fn encode(f: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in &f.headers {
        out.extend(format!("{k}: {v}\n").bytes());
    }
    out.push(b'\n');
    out.extend(&f.body);
    out
}

fn settings() -> EslSettings {
    EslSettings {
        agent_id: EslAgentId::BeforeAt,
        ..EslSettings::default()
    }
}

fn at(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// The story's violations, checked against what rules.md says by hand.
fn story() -> Found {
    let found = sup::engine_violations(&sup::decode_lines(&sup::fixture_text(
        "freeswitch",
        "story.ndjson",
    )));
    let s = |a: &str, b: &str, c: &str, d: &str| (a.into(), b.into(), c.into(), at(d));
    let want: Found = [
        // Rang 02:10:01, answered 02:10:19: late at ring + 3 × 5 s.
        s(
            "ring_answer",
            "late",
            "chen.jing",
            "2026-11-28T02:10:16.000Z",
        ),
        // Rang 02:13:01, NO_ANSWER at 02:13:09.
        s(
            "ring_answer",
            "missed",
            "zhao.lei",
            "2026-11-28T02:13:09.000Z",
        ),
        // Wrap-up from 02:15:00 to 02:16:30: over acw_max (60 s) at 02:16:00.
        s(
            "unauthorized_pause",
            "acw_overrun",
            "chen.jing",
            "2026-11-28T02:16:00.000Z",
        ),
        // On Break (reason `break`, max 15 min) from 02:20 to 02:40.
        s(
            "break_overrun",
            "per_break",
            "zhao.lei",
            "2026-11-28T02:35:00.000Z",
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(found, want, "story.ndjson against rules.md");
    found
}

#[test]
fn esl_transcript_gives_the_violations_of_the_protocol_story() {
    let frames = transcript();
    let mut mapper = EslMapper::new(settings());
    // Receive time far off: every event must take its time from the event itself.
    let events: Vec<Event> = frames
        .iter()
        .filter_map(|f| f.event.as_ref())
        .flat_map(|e| mapper.handle(e, Timestamp(0)))
        .collect();
    assert!(events.iter().all(|e| e.ts > Timestamp(0)));
    assert_eq!(sup::engine_violations(&events), story());
}

// ---------------------------------------------------------------------------------------
// Live: a daemon dialing an event socket emulator.

const PASSWORD: &str = "ClueCon-7b";

/// How one emulated connection ends after its frames.
#[derive(Clone, Copy, PartialEq)]
enum Then {
    /// Keeps the connection open (until the test ends).
    Hold,
    /// Sends `text/disconnect-notice`, then closes.
    Notice,
    /// Closes without a word.
    Drop,
}

/// What the emulator saw.
#[derive(Default)]
struct Seen {
    /// Every command line received (`auth ...`, `event json ...`), in order.
    commands: Vec<String>,
    /// Connections accepted.
    connections: usize,
}

/// The header row of `callcenter_config agent list`.
const AGENT_LIST_HEADER: &str = "name|instance_id|uuid|type|contact|status|state|max_no_answer|wrap_up_time|reject_delay_time|busy_delay_time|no_answer_delay_time|last_bridge_start|last_bridge_end|last_offered_call|last_status_change|no_answer_count|calls_answered|talk_time|ready_time|external_calls_count";

/// An agent list row.
fn agent_row(name: &str, status: &str, state: &str) -> String {
    format!("{name}|single_box||callback|user/{name}|{status}|{state}|3|10|10|60|0|0|0|0|1795831200|0|0|0|0|0")
}

/// One emulated connection: the agent list rows it answers, the bytes it plays, its end.
struct Play {
    agents: Vec<String>,
    bytes: Vec<u8>,
    then: Then,
}

fn play(bytes: Vec<u8>, then: Then) -> Play {
    Play {
        agents: Vec::new(),
        bytes,
        then,
    }
}

/// An inbound event socket on 127.0.0.1:0: asks for auth, accepts `PASSWORD` only, takes
/// the subscription, answers the agent list, then plays connection `i`'s bytes (split at
/// odd boundaries) and ends it as told. Connections past the script get the handshake, an
/// empty agent list and then silence.
async fn emulator(script: Vec<Play>) -> (SocketAddr, Arc<Mutex<Seen>>) {
    let script: Vec<Arc<Play>> = script.into_iter().map(Arc::new).collect();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        let mut i = 0;
        while let Ok((stream, _)) = listener.accept().await {
            seen2.lock().expect("lock").connections += 1;
            let play = script
                .get(i)
                .cloned()
                .unwrap_or_else(|| Arc::new(play(Vec::new(), Then::Hold)));
            i += 1;
            tokio::spawn(serve(stream, play, seen2.clone()));
        }
    });
    (addr, seen)
}

async fn read_command(s: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\n\n") {
        match s.read(&mut b).await {
            Ok(1) => buf.push(b[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&buf).trim().to_string())
}

const NOTICE: &[u8] = b"Content-Type: text/disconnect-notice\nContent-Length: 67\n\nDisconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n";

async fn serve(mut s: TcpStream, play: Arc<Play>, seen: Arc<Mutex<Seen>>) {
    if s.write_all(b"Content-Type: auth/request\n\n")
        .await
        .is_err()
    {
        return;
    }
    let Some(auth) = read_command(&mut s).await else {
        return;
    };
    seen.lock().expect("lock").commands.push(auth.clone());
    if auth != format!("auth {PASSWORD}") {
        let _ = s
            .write_all(b"Content-Type: command/reply\nReply-Text: -ERR invalid\n\n")
            .await;
        let _ = s.write_all(NOTICE).await;
        return;
    }
    let _ = s
        .write_all(b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n")
        .await;
    let Some(sub) = read_command(&mut s).await else {
        return;
    };
    seen.lock().expect("lock").commands.push(sub.clone());
    if !sub.starts_with("event json ") {
        let _ = s
            .write_all(b"Content-Type: command/reply\nReply-Text: -ERR command not found\n\n")
            .await;
        return;
    }
    let _ = s
        .write_all(b"Content-Type: command/reply\nReply-Text: +OK event listener enabled json\n\n")
        .await;
    let Some(api) = read_command(&mut s).await else {
        return;
    };
    seen.lock().expect("lock").commands.push(api.clone());
    let mut table = format!("{AGENT_LIST_HEADER}\n");
    for row in &play.agents {
        table.push_str(row);
        table.push('\n');
    }
    table.push_str("+OK\n");
    let answer = format!(
        "Content-Type: api/response\nContent-Length: {}\n\n{table}",
        table.len()
    );
    if s.write_all(answer.as_bytes()).await.is_err() {
        return;
    }
    let sizes = [1usize, 7, 64, 13, 300, 2, 1021];
    let mut rest = play.bytes.as_slice();
    let mut k = 0;
    while !rest.is_empty() {
        let n = sizes[k % sizes.len()].min(rest.len());
        k += 1;
        if s.write_all(&rest[..n]).await.is_err() {
            return;
        }
        rest = &rest[n..];
        if k % 5 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    match play.then {
        Then::Notice => {
            let _ = s.write_all(NOTICE).await;
        }
        Then::Drop => {}
        Then::Hold => {
            // Until the client goes away.
            let mut sink = [0u8; 256];
            while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
        }
    }
}

fn daemon_config(addr: SocketAddr, password: &str) -> Config {
    let text = format!(
        "[source]\nkind = \"freeswitch-esl\"\nname = \"pbx\"\naddress = \"{addr}\"\n\
         password = \"{password}\"\nagent_id = \"before-at\"\n"
    );
    let mut c = Config::from_toml_str(&text).expect("config");
    let base = sup::config();
    c.server.listen = base.server.listen;
    c.source.idle = base.source.idle;
    c.store.dir = base.store.dir;
    c
}

const CONNECTED: &str = "floorwatch_adapter_connected{source=\"pbx\"}";
const RECONNECTS: &str = "floorwatch_adapter_reconnects_total{source=\"pbx\"}";
const MALFORMED: &str = "floorwatch_adapter_messages_total{outcome=\"malformed\",source=\"pbx\"}";
const MAPPED: &str = "floorwatch_adapter_messages_total{outcome=\"mapped\",source=\"pbx\"}";

/// Waits until the daemon has stored exactly the story's violations.
async fn stores_the_story(addr: SocketAddr) {
    let want = story();
    let deadline = tokio::time::Instant::now() + sup::WAIT;
    loop {
        let got = sup::found(&sup::violations(addr, sup::STORY_DAY).await);
        if got == want {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            assert_eq!(got, want, "stored violations");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn bytes_of(frames: &[Frame]) -> Vec<u8> {
    frames.iter().flat_map(encode).collect()
}

#[tokio::test]
async fn live_daemon_stores_the_violations_of_the_story() {
    let frames = transcript();
    // Before the story both agents are logged out: the agent list changes nothing.
    let (esl, seen) = emulator(vec![Play {
        agents: vec![
            agent_row("zhao.lei@default", "Logged Out", "Waiting"),
            agent_row("chen.jing@default", "Logged Out", "Waiting"),
        ],
        bytes: bytes_of(&frames),
        then: Then::Hold,
    }])
    .await;
    let d = sup::start(daemon_config(esl, PASSWORD)).await;
    let addr = d.local_addr();
    stores_the_story(addr).await;
    // The frames after the story's last violation may still be on their way.
    const IGNORED: &str = "floorwatch_adapter_messages_total{outcome=\"ignored\",source=\"pbx\"}";
    let m = sup::eventually("every frame counted", || async {
        let m = sup::metrics(addr).await;
        (sup::value(&m, MAPPED) + sup::value(&m, IGNORED) >= frames.len() as f64 + 1.0).then_some(m)
    })
    .await;
    assert_eq!(sup::value(&m, CONNECTED), 1.0, "{m}");
    assert_eq!(sup::value(&m, RECONNECTS), 0.0);
    assert_eq!(sup::value(&m, MALFORMED), 0.0);
    // Every callcenter event either mapped or ignored; heartbeats ignored.
    let ignored = sup::value(&m, IGNORED);
    // Plus the agent list, which changed nothing.
    assert_eq!(
        sup::value(&m, MAPPED) + ignored,
        frames.len() as f64 + 1.0,
        "{m}"
    );
    assert!(ignored >= 2.0, "heartbeats and state changes: {m}");
    let commands = seen.lock().expect("lock").commands.clone();
    assert_eq!(commands.len(), 3, "{commands:?}");
    assert_eq!(commands[0], format!("auth {PASSWORD}"));
    assert_eq!(commands[2], "api callcenter_config agent list");
    // What mod_event_socket subscribes for that line.
    let (events, subclasses) = subscription(&commands[1]);
    assert_eq!(
        events,
        [
            "HEARTBEAT",
            "CHANNEL_OUTGOING",
            "CHANNEL_ANSWER",
            "CHANNEL_HANGUP_COMPLETE",
            "CUSTOM"
        ]
    );
    assert_eq!(subclasses, ["callcenter::info"]);
    stops_promptly(d).await;
}

/// The event names and the subclasses an `event json ...` line subscribes to, read as
/// mod_event_socket reads it (`parse_command`, the `event` command): every word after
/// `CUSTOM` is a subclass, even one that names an event.
fn subscription(line: &str) -> (Vec<&str>, Vec<&str>) {
    let words = line
        .strip_prefix("event json ")
        .unwrap_or_else(|| panic!("not an event json line: {line}"));
    let (mut events, mut subclasses) = (Vec::new(), Vec::new());
    let mut custom = false;
    for w in words.split(' ') {
        if custom {
            subclasses.push(w);
        } else {
            events.push(w);
            custom = w == "CUSTOM";
        }
    }
    (events, subclasses)
}

#[test]
fn the_old_subscription_line_asked_for_no_heartbeat() {
    // Regression: `CUSTOM callcenter::info HEARTBEAT` made HEARTBEAT a subclass, so an idle
    // floor sent nothing for 60 s and the client dropped a healthy connection.
    let (events, subclasses) = subscription("event json CUSTOM callcenter::info HEARTBEAT");
    assert_eq!(events, ["CUSTOM"]);
    assert_eq!(subclasses, ["callcenter::info", "HEARTBEAT"]);
}

/// Shutdown does not wait for the event socket: the client leaves a held connection (or a
/// back-off sleep) at once.
async fn stops_promptly(d: floorwatch::daemon::DaemonHandle) {
    tokio::time::timeout(Duration::from_secs(3), d.shutdown())
        .await
        .expect("daemon stops promptly");
}

#[tokio::test]
async fn wrong_password_is_retried_and_never_connects() {
    let (esl, seen) = emulator(Vec::new()).await;
    let d = sup::start(daemon_config(esl, "not-the-password")).await;
    let addr = d.local_addr();
    sup::eventually("a second auth attempt", || {
        let n = seen.lock().expect("lock").connections;
        async move { (n >= 2).then_some(()) }
    })
    .await;
    let m = sup::metrics(addr).await;
    assert_eq!(sup::value(&m, CONNECTED), 0.0, "{m}");
    assert!(sup::value(&m, RECONNECTS) >= 1.0, "{m}");
    let commands = seen.lock().expect("lock").commands.clone();
    assert!(
        commands.iter().all(|c| c == "auth not-the-password"),
        "never subscribed after a refusal: {commands:?}"
    );
    assert_eq!(sup::get(addr, "/healthz").await.0, 200);
    stops_promptly(d).await;
}

#[tokio::test]
async fn disconnect_notice_and_dropped_connection_reconnect_and_later_events_apply() {
    let frames = transcript();
    let (a, rest) = frames.split_at(12);
    let (b, c) = rest.split_at(20);
    let (esl, seen) = emulator(vec![
        play(bytes_of(a), Then::Notice),
        play(bytes_of(b), Then::Drop),
        play(bytes_of(c), Then::Hold),
    ])
    .await;
    let d = sup::start(daemon_config(esl, PASSWORD)).await;
    let addr = d.local_addr();
    stores_the_story(addr).await;
    let m = sup::metrics(addr).await;
    assert_eq!(sup::value(&m, RECONNECTS), 2.0, "{m}");
    assert_eq!(sup::value(&m, CONNECTED), 1.0, "{m}");
    assert_eq!(seen.lock().expect("lock").connections, 3);
    d.shutdown().await;
}

#[tokio::test]
async fn garbage_frames_are_counted_malformed_and_survived() {
    let frames = transcript();
    let (a, rest) = frames.split_at(10);
    let (b, c) = rest.split_at(15);
    let mut first = bytes_of(a);
    // A body that is not JSON: read in full, skipped, the stream stays in step.
    first.extend(b"Content-Length: 9\nContent-Type: text/event-json\n\nnot json!");
    first.extend(bytes_of(b));
    // A Content-Length that is not a number: the stream position is lost; reconnect.
    first.extend(b"Content-Length: lots\nContent-Type: text/event-json\n\n{}");
    let (esl, _seen) = emulator(vec![play(first, Then::Hold), play(bytes_of(c), Then::Hold)]).await;
    let d = sup::start(daemon_config(esl, PASSWORD)).await;
    let addr = d.local_addr();
    stores_the_story(addr).await;
    let m = sup::metrics(addr).await;
    assert_eq!(sup::value(&m, MALFORMED), 2.0, "{m}");
    assert_eq!(sup::value(&m, RECONNECTS), 1.0, "{m}");
    d.shutdown().await;
}

#[tokio::test]
async fn reconnect_reconciles_agents_with_the_agent_list() {
    let frames = transcript();
    // The two logins (and their Waiting states), then the connection drops; while it is
    // down chen.jing logs out and wu.min logs in on break.
    let (esl, _seen) = emulator(vec![
        play(bytes_of(&frames[..4]), Then::Drop),
        Play {
            agents: vec![
                agent_row("zhao.lei@default", "Available", "Waiting"),
                agent_row("chen.jing@default", "Logged Out", "Waiting"),
                agent_row("wu.min@default", "On Break", "Waiting"),
                agent_row("never.seen@default", "Logged Out", "Waiting"),
            ],
            bytes: Vec::new(),
            then: Then::Hold,
        },
    ])
    .await;
    let d = sup::start(daemon_config(esl, PASSWORD)).await;
    let addr = d.local_addr();
    let floor = sup::eventually("chen.jing logged out and wu.min on break", || async move {
        let (_, floor) = sup::get_json(addr, "/api/v1/floor").await;
        let agent = |id: &str| {
            floor["agents"]
                .as_array()
                .and_then(|a| a.iter().find(|a| a["agent"] == id).cloned())
                .unwrap_or_default()
        };
        let (z, c, w) = (agent("zhao.lei"), agent("chen.jing"), agent("wu.min"));
        (z["presence"] == "ready"
            && c["logged_in"] != true
            && w["presence"] == "not_ready"
            && w["reason"] == "break")
            .then_some(floor)
    })
    .await;
    assert!(
        !floor.to_string().contains("never.seen"),
        "an agent logged out before and after is not made up: {floor}"
    );
    let m = sup::metrics(addr).await;
    assert_eq!(sup::value(&m, RECONNECTS), 1.0, "{m}");
    stops_promptly(d).await;
}

/// Privacy: `CC-Member-CID-Number` of the transcript is in no mapped event (so in no journal
/// record, metric, alert or API answer, which are all made from events).
#[test]
fn caller_numbers_of_the_esl_transcript_are_in_no_event() {
    const NUMBER: &str = "13800000001";
    assert!(
        sup::fixture_text("freeswitch", "esl.txt").contains(NUMBER),
        "the fixture has the number"
    );
    let mut mapper = EslMapper::new(settings());
    let events: Vec<String> = transcript()
        .iter()
        .filter_map(|f| f.event.as_ref())
        .flat_map(|e| mapper.handle(e, Timestamp(0)))
        .map(|e| e.to_json())
        .collect();
    assert!(!events.is_empty());
    for e in &events {
        assert!(!e.contains(NUMBER), "{e}");
    }
}

// ---------------------------------------------------------------------------------------
// Outbound calls of agents: the channel events of `esl-outbound.txt`.

/// The agent list of the outbound transcript's agents (contacts `user/<name>`).
fn outbound_agent_list() -> String {
    format!(
        "{AGENT_LIST_HEADER}\n{}\n{}\n+OK\n",
        agent_row("1000@default", "Logged Out", "Waiting"),
        agent_row("1001@default", "Logged Out", "Waiting")
    )
}

/// (seconds after 02:00, type, call, agent) of the outbound calls' events.
fn outbound_of(events: &[Event]) -> Vec<(i64, &'static str, String, String)> {
    const T: i64 = 1_795_831_200_000;
    events
        .iter()
        .filter_map(|e| {
            let (call, agent) = match &e.body {
                Body::CallDialing { call, agent, .. } | Body::CallAnswered { call, agent } => {
                    (call, agent.to_string())
                }
                Body::CallEnded { call, agent } => (
                    call,
                    agent.as_ref().map(|a| a.to_string()).unwrap_or_default(),
                ),
                _ => return None,
            };
            (!call.starts_with("c4e0")).then(|| {
                (
                    (e.ts.0 - T) / 1000,
                    e.body.type_name(),
                    call.chars().take(4).collect(),
                    agent,
                )
            })
        })
        .collect()
}

#[test]
fn esl_outbound_calls_of_agents_are_dialing_answered_and_ended() {
    let frames = transcript_of("esl-outbound.txt");
    let mut mapper = EslMapper::new(EslSettings::default());
    mapper.begin_reconcile();
    let listed = mapper
        .reconcile(&outbound_agent_list(), Timestamp(0))
        .expect("a table");
    assert!(listed.is_empty(), "both logged out: {listed:?}");
    let events: Vec<Event> = frames
        .iter()
        .filter_map(|f| f.event.as_ref())
        .flat_map(|e| mapper.handle(e, Timestamp(0)))
        .collect();
    let s = |t: i64, ty: &'static str, c: &str, a: &str| (t, ty, c.to_string(), a.to_string());
    // Written from the transcript by hand: 1000's call answered, 1001's not; the internal
    // call and the consultation during the queue call are no outbound calls.
    assert_eq!(
        outbound_of(&events),
        [
            s(60, "call.dialing", "a1e0", "1000@default"),
            s(75, "call.answered", "a1e0", "1000@default"),
            s(124, "call.dialing", "a2e0", "1001@default"),
            s(155, "call.ended", "a2e0", "1001@default"),
            s(300, "call.ended", "a1e0", "1000@default"),
        ]
    );
    for e in &events {
        let json = e.to_json();
        for number in ["13900139000", "13700137000", "13600136000", "13800138000"] {
            assert!(!json.contains(number), "{json}");
        }
    }
    // The queue call is mapped as before.
    let queue_call: Vec<&str> = events
        .iter()
        .filter(|e| e.to_json().contains("c4e0"))
        .map(|e| e.body.type_name())
        .collect();
    assert_eq!(
        queue_call,
        ["call.queued", "call.ringing", "call.answered", "call.ended"]
    );
}

#[test]
fn esl_outbound_agents_without_the_agent_list() {
    let frames = transcript_of("esl-outbound.txt");
    let dialing = |settings: EslSettings| -> Vec<String> {
        let mut mapper = EslMapper::new(settings);
        frames
            .iter()
            .filter_map(|f| f.event.as_ref())
            .flat_map(|e| mapper.handle(e, Timestamp(0)))
            .filter_map(|e| match e.body {
                Body::CallDialing { agent, .. } => Some(agent.to_string()),
                _ => None,
            })
            .collect()
    };
    // Agents named after their extension (agent_id = "before-at"): the phone user is the
    // agent, and 1001 is known as an agent, so 1000's call to it is internal.
    assert_eq!(dialing(settings()), ["1000", "1001"]);
    // Agents named otherwise and no contacts yet: whose phone it is is unknown.
    assert!(dialing(EslSettings::default()).is_empty());
}

#[tokio::test]
async fn live_daemon_counts_the_outbound_calls_of_the_esl_transcript() {
    let frames = transcript_of("esl-outbound.txt");
    let (esl, _seen) = emulator(vec![Play {
        agents: vec![
            agent_row("1000@default", "Logged Out", "Waiting"),
            agent_row("1001@default", "Logged Out", "Waiting"),
        ],
        bytes: bytes_of(&frames),
        then: Then::Hold,
    }])
    .await;
    let mut c = daemon_config(esl, PASSWORD);
    c.teams = vec![floorwatch::config::TeamConfig {
        id: "tele-2".into(),
        lead: None,
        supervisor: None,
        members: vec!["1000".into(), "1001".into()],
        sales_target: None,
    }];
    for m in ["1000", "1001"] {
        c.rules.team_of.insert(m.into(), "tele-2".into());
    }
    let d = sup::start(c).await;
    let addr = d.local_addr();
    let team = |name: &'static str| async move {
        sup::labelled(&sup::metrics(addr).await, name, &[("team", "tele-2")])
    };
    sup::eventually("the outbound calls", || async {
        (team("floorwatch_outbound_attempts_total").await == Some(2.0)
            && sup::metric(addr, r#"floorwatch_events_total{type="call.ended"}"#).await >= 3.0)
            .then_some(())
    })
    .await;
    assert_eq!(team("floorwatch_outbound_connected_total").await, Some(1.0));
    stops_promptly(d).await;
}
