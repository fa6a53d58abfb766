//! The AMI client against an AMI emulator on loopback: a daemon with
//! `[source] kind = "asterisk-ami"` logs in, takes the `QueueStatus` snapshot, maps the
//! transcript of `tests/fixtures/asterisk/ami.txt`, survives refused logins, dropped
//! connections, silence and garbage.
//!
//! The emulator follows the manager protocol as Asterisk's documentation describes it:
//! banner line, `Response: Success|Error` with the `ActionID` echoed, `QueueStatus` answered
//! by a list (`EventList: start`, `QueueMember`s, `QueueStatusComplete`), `Ping` by `Pong`.

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use floorwatch::adapter::ami::{parse_transcript, AmiMapper, AmiMessage, AmiParser};
use floorwatch::config::AmiSettings;
use floorwatch::config::{AdapterKind, Config};
use floorwatch::daemon::DaemonHandle;
use floorwatch::time::Timestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::daemon_support::{self as sup, eventually, Found};

/// The story's first second (2026-11-28T01:00:00Z), epoch seconds.
const T0: i64 = 1_795_827_600;
const USER: &str = "floorwatch";
const SECRET: &str = "s3cret";

/// What the emulator does on one logged-in connection, after the `QueueStatus` action.
#[derive(Default)]
struct Script {
    /// `QueueMember` blocks of the answer (header lines with `\r\n`, no blank line).
    members: Vec<String>,
    /// `Timestamp` of the answer's events. The stories here are in the past: stamping the
    /// answer as of the story keeps the engine clock on the story's time (live Asterisk
    /// sends no `Timestamp` in action answers, and the receive time is used).
    status_at: Option<i64>,
    /// Bytes sent after the answer, in chunks of this size (0: one write).
    events: Vec<u8>,
    chunk: usize,
    /// Close the connection after the events (else hold it and keep answering).
    drop_after: bool,
}

#[derive(Default)]
struct Emu {
    secret: Mutex<String>,
    scripts: Mutex<VecDeque<Script>>,
    answer_pings: AtomicBool,
    logins_ok: AtomicUsize,
    logins_refused: AtomicUsize,
    queue_status: AtomicUsize,
    pings: AtomicUsize,
    /// Connections the client closed.
    closed: AtomicUsize,
    /// Every action received, with the connection number.
    actions: Mutex<Vec<(usize, AmiMessage)>>,
}

impl Emu {
    async fn start(secret: &str, scripts: Vec<Script>) -> (Arc<Emu>, SocketAddr) {
        let emu = Arc::new(Emu {
            secret: Mutex::new(secret.to_string()),
            scripts: Mutex::new(scripts.into()),
            answer_pings: AtomicBool::new(true),
            ..Emu::default()
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let e = emu.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while let Ok((s, _)) = listener.accept().await {
                n += 1;
                tokio::spawn(e.clone().serve(s, n));
            }
        });
        (emu, addr)
    }

    fn count(c: &AtomicUsize) -> usize {
        c.load(Ordering::SeqCst)
    }

    async fn serve(self: Arc<Emu>, mut s: TcpStream, conn: usize) {
        if s.write_all(b"Asterisk Call Manager/9.0.0\r\n")
            .await
            .is_err()
        {
            return;
        }
        let mut parser = AmiParser::new();
        let mut buf = vec![0; 4096];
        loop {
            let n = match s.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    self.closed.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                Ok(n) => n,
            };
            for m in parser.push(&String::from_utf8_lossy(&buf[..n])) {
                self.actions.lock().expect("lock").push((conn, m.clone()));
                let id = m.get("ActionID").unwrap_or("").to_string();
                let action = m.get("Action").unwrap_or("").to_ascii_lowercase();
                let reply = match action.as_str() {
                    "login" => {
                        let ok = m.get("Username") == Some(USER)
                            && m.get("Secret") == Some(self.secret.lock().expect("lock").as_str());
                        if ok {
                            self.logins_ok.fetch_add(1, Ordering::SeqCst);
                            format!("Response: Success\r\nActionID: {id}\r\nMessage: Authentication accepted\r\n\r\n")
                        } else {
                            self.logins_refused.fetch_add(1, Ordering::SeqCst);
                            format!("Response: Error\r\nActionID: {id}\r\nMessage: Authentication failed\r\n\r\n")
                        }
                    }
                    "ping" if self.answer_pings.load(Ordering::SeqCst) => {
                        self.pings.fetch_add(1, Ordering::SeqCst);
                        format!("Response: Success\r\nActionID: {id}\r\nPing: Pong\r\nTimestamp: {T0}.000000\r\n\r\n")
                    }
                    "ping" => {
                        self.pings.fetch_add(1, Ordering::SeqCst);
                        continue;
                    }
                    "queuestatus" => {
                        self.queue_status.fetch_add(1, Ordering::SeqCst);
                        let script = self
                            .scripts
                            .lock()
                            .expect("lock")
                            .pop_front()
                            .unwrap_or_default();
                        if self.play(&mut s, &id, script).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    _ => format!(
                        "Response: Error\r\nActionID: {id}\r\nMessage: Invalid/unknown command\r\n\r\n"
                    ),
                };
                if s.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    }

    /// Answers `QueueStatus` and plays the script; `Err` when the connection is to end.
    async fn play(&self, s: &mut TcpStream, id: &str, script: Script) -> Result<(), ()> {
        let stamp = script
            .status_at
            .map(|t| format!("Timestamp: {t}.000000\r\n"))
            .unwrap_or_default();
        let mut answer = format!(
            "Response: Success\r\nActionID: {id}\r\nEventList: start\r\nMessage: Queue status will follow\r\n\r\n"
        );
        for m in &script.members {
            answer.push_str(&format!("{m}ActionID: {id}\r\n{stamp}\r\n"));
        }
        answer.push_str(&format!(
            "Event: QueueStatusComplete\r\nActionID: {id}\r\nEventList: Complete\r\nListItems: {}\r\n{stamp}\r\n",
            script.members.len()
        ));
        s.write_all(answer.as_bytes()).await.map_err(drop)?;
        let chunk = if script.chunk == 0 {
            script.events.len().max(1)
        } else {
            script.chunk
        };
        for c in script.events.chunks(chunk) {
            s.write_all(c).await.map_err(drop)?;
        }
        if script.drop_after {
            // FIN, then read until the client closes: no reset can eat unread events.
            let _ = s.shutdown().await;
            let mut sink = vec![0; 1024];
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
            })
            .await;
            return Err(());
        }
        Ok(())
    }

    fn actions_of(&self, conn: usize) -> Vec<String> {
        self.actions
            .lock()
            .expect("lock")
            .iter()
            .filter(|(c, _)| *c == conn)
            .filter_map(|(_, m)| m.get("Action").map(str::to_string))
            .collect()
    }
}

/// A `QueueMember` block of a `QueueStatus` answer, logged in at `T0`, not paused.
fn member(name: &str, queue: &str) -> String {
    format!(
        "Event: QueueMember\r\nQueue: {queue}\r\nName: {name}\r\nLocation: PJSIP/{name}\r\n\
         StateInterface: PJSIP/{name}\r\nMembership: dynamic\r\nPenalty: 0\r\nCallsTaken: 0\r\n\
         LastCall: 0\r\nLastPause: 0\r\nLoginTime: {T0}\r\nInCall: 0\r\nStatus: 1\r\nPaused: 0\r\n\
         PausedReason: \r\n"
    )
}

/// An event message with `Timestamp` `T0 + at` and the given headers.
fn event(name: &str, at: i64, headers: &[(&str, &str)]) -> String {
    let mut s = format!(
        "Event: {name}\r\nPrivilege: agent,all\r\nTimestamp: {}.000000\r\n",
        T0 + at
    );
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s
}

fn member_added(name: &str, at: i64) -> String {
    event(
        "QueueMemberAdded",
        at,
        &[
            ("Queue", "sales"),
            ("MemberName", name),
            ("Interface", "PJSIP/1"),
            ("Paused", "0"),
        ],
    )
}

/// The events of `ami.txt` (from its first `Event:`), with `\r\n` line ends.
fn transcript_events() -> Vec<u8> {
    let text = sup::fixture_text("asterisk", "ami.txt");
    let start = text.find("Event:").expect("events in ami.txt");
    text[start..]
        .lines()
        .map(|l| format!("{l}\r\n"))
        .collect::<String>()
        .into_bytes()
}

/// A daemon with one `asterisk-ami` source named `pbx` at `addr`.
/// A daemon with an AMI source `pbx` at `addr`, its keepalive shortened to `keepalive`.
async fn daemon_dialing_ami(
    addr: SocketAddr,
    secret: &str,
    keepalive: Option<Duration>,
) -> DaemonHandle {
    let mut c = sup::config_with_sources(&format!(
        "[source]\nkind = \"asterisk-ami\"\nname = \"pbx\"\naddress = \"{addr}\"\n\
         username = \"{USER}\"\nsecret = \"{secret}\"\n"
    ));
    if let Some(k) = keepalive {
        for a in &mut c.adapters {
            if let AdapterKind::AsteriskAmi(s) = &mut a.kind {
                s.keepalive = k;
            }
        }
    }
    sup::start(c).await
}

async fn connected(addr: SocketAddr) -> Option<f64> {
    sup::labelled(
        &sup::metrics(addr).await,
        "floorwatch_adapter_connected",
        &[("source", "pbx")],
    )
}

/// (rule, kind, agent, at) of what the protocol story raises in an engine of its own.
fn story_violations() -> Found {
    sup::engine_violations(&sup::decode_lines(&sup::fixture_text(
        "asterisk",
        "story.ndjson",
    )))
}

async fn agents(addr: SocketAddr) -> Vec<(String, bool)> {
    let (_, floor) = sup::get_json(addr, "/api/v1/floor").await;
    floor["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .map(|a| {
            (
                a["agent"].as_str().unwrap_or_default().to_string(),
                a["logged_in"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

async fn logged_in(addr: SocketAddr, agent: &str) -> Option<bool> {
    agents(addr)
        .await
        .into_iter()
        .find(|(a, _)| a == agent)
        .map(|(_, l)| l)
}

#[tokio::test]
async fn the_ami_transcript_over_tcp_gives_the_violations_of_the_protocol_story() {
    let want = story_violations();
    let kinds: BTreeSet<(&str, &str)> = want.iter().map(|v| (v.1.as_str(), v.2.as_str())).collect();
    // A late answer, a missed ring and a pause without a reason (a deadline kind).
    for k in [
        ("late", "wang.fang"),
        ("missed", "li.na"),
        ("no_reason", "wang.fang"),
    ] {
        assert!(kinds.contains(&k), "{k:?} in {want:?}");
    }
    let (emu, pbx) = Emu::start(
        SECRET,
        vec![Script {
            status_at: Some(T0 - 1),
            events: transcript_events(),
            // Odd chunks split lines and messages anywhere.
            chunk: 97,
            ..Script::default()
        }],
    )
    .await;
    let d = daemon_dialing_ami(pbx, SECRET, None).await;
    let addr = d.local_addr();
    let got = eventually("the story's violations", || async {
        let v = sup::violations(addr, sup::STORY_DAY).await;
        (v.len() >= want.len()).then_some(v)
    })
    .await;
    assert_eq!(sup::found(&got), want);
    assert_eq!(got.len(), want.len(), "{got:?}");
    assert_eq!(connected(addr).await, Some(1.0));
    assert_eq!(emu.actions_of(1), ["Login", "QueueStatus"]);
    let login = emu.actions.lock().expect("lock")[0].1.clone();
    assert_eq!(login.get("Events"), Some("agent,call"));
    assert!(login.get("ActionID").is_some_and(|a| !a.is_empty()));
    let mapped = sup::labelled(
        &sup::metrics(addr).await,
        "floorwatch_adapter_messages_total",
        &[("source", "pbx"), ("outcome", "mapped")],
    );
    // Every transcript message the mapper maps, and the QueueStatus answer's snapshot.
    let mut mapper = AmiMapper::new(AmiSettings::default());
    let want_mapped = parse_transcript(&sup::fixture_text("asterisk", "ami.txt"))
        .iter()
        .filter(|m| !mapper.handle(m, Timestamp(0)).is_empty())
        .count()
        + 1;
    assert_eq!(mapped, Some(want_mapped as f64));
    assert!(
        !agents(addr).await.iter().any(|(_, l)| *l),
        "all logged out at the end"
    );
    d.shutdown().await;
}

#[tokio::test]
async fn a_refused_login_is_retried_until_the_secret_is_accepted() {
    let (emu, pbx) = Emu::start("another secret", Vec::new()).await;
    let d = daemon_dialing_ami(pbx, SECRET, None).await;
    let addr = d.local_addr();
    eventually("two refused logins", || async {
        (Emu::count(&emu.logins_refused) >= 2).then_some(())
    })
    .await;
    assert_eq!(connected(addr).await, Some(0.0));
    assert_eq!(
        Emu::count(&emu.queue_status),
        0,
        "no action after a refused login"
    );
    let (status, _) = sup::get_json(addr, "/api/v1/floor").await;
    assert_eq!(status, 200, "the daemon keeps running");
    *emu.secret.lock().expect("lock") = SECRET.to_string();
    eventually("logged in", || async {
        (connected(addr).await == Some(1.0)).then_some(())
    })
    .await;
    assert_eq!(Emu::count(&emu.logins_ok), 1);
    assert_eq!(Emu::count(&emu.queue_status), 1);
    let reconnects = sup::labelled(
        &sup::metrics(addr).await,
        "floorwatch_adapter_reconnects_total",
        &[("source", "pbx")],
    );
    assert!(reconnects.is_some_and(|r| r >= 2.0), "{reconnects:?}");
    d.shutdown().await;
}

#[tokio::test]
async fn after_a_dropped_connection_the_client_logs_in_again_and_the_snapshot_reconciles() {
    let call = |name: &str, at: i64, extra: &[(&str, &str)]| {
        let mut h = vec![
            ("Channel", "PJSIP/trunk-00002"),
            ("Uniqueid", "c-2"),
            ("Queue", "sales"),
        ];
        h.extend_from_slice(extra);
        event(name, at, &h)
    };
    let first: String = [
        call("QueueCallerJoin", 600, &[]),
        call("AgentCalled", 601, &[("MemberName", "wang.fang")]),
        // Answered after 18 s: late.
        call(
            "AgentConnect",
            619,
            &[("MemberName", "wang.fang"), ("RingTime", "18")],
        ),
        call(
            "AgentComplete",
            720,
            &[("MemberName", "wang.fang"), ("TalkTime", "101")],
        ),
    ]
    .concat();
    let pause = |at: i64, paused: &str| {
        event(
            "QueueMemberPause",
            at,
            &[
                ("Queue", "sales"),
                ("MemberName", "wang.fang"),
                ("Interface", "PJSIP/802"),
                ("Paused", paused),
                ("PausedReason", ""),
            ],
        )
    };
    let second: String = [pause(1200, "1"), pause(1500, "0")].concat();
    let (emu, pbx) = Emu::start(
        SECRET,
        vec![
            Script {
                members: vec![member("li.na", "sales"), member("wang.fang", "sales")],
                status_at: Some(T0),
                events: first.into_bytes(),
                drop_after: true,
                ..Script::default()
            },
            // li.na left while the client was away.
            Script {
                members: vec![member("wang.fang", "sales")],
                status_at: Some(T0 + 900),
                events: second.into_bytes(),
                ..Script::default()
            },
        ],
    )
    .await;
    let d = daemon_dialing_ami(pbx, SECRET, None).await;
    let addr = d.local_addr();
    eventually("the second QueueStatus", || async {
        (Emu::count(&emu.queue_status) >= 2).then_some(())
    })
    .await;
    assert_eq!(emu.actions_of(2), ["Login", "QueueStatus"]);
    let v = eventually("the pause after the reconnect is judged", || async {
        let v = sup::violations(addr, sup::STORY_DAY).await;
        v.iter().any(|r| r["kind"] == "no_reason").then_some(v)
    })
    .await;
    let late: Vec<_> = v.iter().filter(|r| r["kind"] == "late").collect();
    assert_eq!(late.len(), 1, "{v:?}");
    assert_eq!(late[0]["agent"], "wang.fang");
    assert!(v
        .iter()
        .any(|r| r["kind"] == "no_reason" && r["agent"] == "wang.fang"));
    assert_eq!(
        logged_in(addr, "li.na").await,
        Some(false),
        "snapshot logs out li.na"
    );
    assert_eq!(logged_in(addr, "wang.fang").await, Some(true));
    let reconnects = sup::labelled(
        &sup::metrics(addr).await,
        "floorwatch_adapter_reconnects_total",
        &[("source", "pbx")],
    );
    assert!(reconnects.is_some_and(|r| r >= 1.0), "{reconnects:?}");
    assert_eq!(connected(addr).await, Some(1.0));
    d.shutdown().await;
}

#[tokio::test]
async fn garbage_is_counted_as_malformed_and_later_events_still_apply() {
    let mut bytes = member_added("li.na", 1).into_bytes();
    bytes.extend_from_slice(b"\xff\xfe\x80 not text at all\r\n\r\n");
    // A header in Latin-1 (not UTF-8) does not cost the event.
    bytes.extend_from_slice(
        b"Event: QueueMemberAdded\r\nTimestamp: 1795827602.000000\r\nQueue: sales\r\n\
          MemberName: zhao.lei\r\nStateInterface: PJSIP/M\xfcller\r\nPaused: 0\r\n\r\n",
    );
    // A line over 64 KiB: its message is dropped.
    bytes.extend_from_slice(
        b"Event: QueueMemberAdded\r\nQueue: sales\r\nMemberName: ghost\r\nJunk: ",
    );
    bytes.extend(std::iter::repeat_n(b'x', 100 * 1024));
    bytes.extend_from_slice(b"\r\nPaused: 0\r\n\r\n");
    bytes.extend(member_added("wang.fang", 5).into_bytes());
    let (emu, pbx) = Emu::start(
        SECRET,
        vec![Script {
            status_at: Some(T0),
            events: bytes,
            chunk: 4096,
            ..Script::default()
        }],
    )
    .await;
    let d = daemon_dialing_ami(pbx, SECRET, None).await;
    let addr = d.local_addr();
    eventually("wang.fang, after the garbage", || async {
        logged_in(addr, "wang.fang").await.filter(|l| *l)
    })
    .await;
    assert_eq!(logged_in(addr, "li.na").await, Some(true));
    assert_eq!(logged_in(addr, "zhao.lei").await, Some(true));
    assert_eq!(
        logged_in(addr, "ghost").await,
        None,
        "{:?}",
        agents(addr).await
    );
    let malformed = sup::labelled(
        &sup::metrics(addr).await,
        "floorwatch_adapter_messages_total",
        &[("source", "pbx"), ("outcome", "malformed")],
    );
    assert_eq!(malformed, Some(1.0));
    assert_eq!(Emu::count(&emu.logins_ok), 1, "the connection survived");
    d.shutdown().await;
}

#[tokio::test]
async fn a_silent_connection_is_pinged_and_dropped_when_pong_does_not_come() {
    let (emu, pbx) = Emu::start(SECRET, Vec::new()).await;
    let d = daemon_dialing_ami(pbx, SECRET, Some(Duration::from_millis(300))).await;
    let addr = d.local_addr();
    eventually("three answered pings", || async {
        (Emu::count(&emu.pings) >= 3).then_some(())
    })
    .await;
    assert_eq!(
        Emu::count(&emu.logins_ok),
        1,
        "answered pings keep the connection"
    );
    emu.answer_pings.store(false, Ordering::SeqCst);
    eventually("a new login after an unanswered ping", || async {
        (Emu::count(&emu.logins_ok) >= 2).then_some(())
    })
    .await;
    assert!(emu.actions_of(1).iter().any(|a| a == "Ping"));
    let reconnects = sup::labelled(
        &sup::metrics(addr).await,
        "floorwatch_adapter_reconnects_total",
        &[("source", "pbx")],
    );
    assert!(reconnects.is_some_and(|r| r >= 1.0), "{reconnects:?}");
    d.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_the_ami_connection_and_stops_redialing() {
    let (emu, pbx) = Emu::start(SECRET, Vec::new()).await;
    let d = daemon_dialing_ami(pbx, SECRET, None).await;
    eventually("logged in", || async {
        (Emu::count(&emu.queue_status) == 1).then_some(())
    })
    .await;
    d.shutdown().await;
    eventually("the client closed its connection", || async {
        (Emu::count(&emu.closed) == 1).then_some(())
    })
    .await;
    // Longer than the first back-off delays: a client still running would have redialed.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let logins = Emu::count(&emu.logins_ok) + Emu::count(&emu.logins_refused);
    assert_eq!(logins, 1, "no redial after shutdown");
}

#[test]
fn asterisk_ami_source_keys_are_parsed() {
    let c = Config::from_toml_str(
        "[source]\nkind = \"asterisk-ami\"\nname = \"pbx-1\"\naddress = \"pbx.example\"\n\
         username = \"floorwatch\"\nsecret = \"s3cret\"\nagent_id = \"interface\"\n\
         acw_reasons = [\"ACW\", \"Wrapup\"]\nauto_pause_reason = \"no-answer\"\n",
    )
    .expect("valid");
    assert_eq!(c.adapters.len(), 1);
    assert_eq!(c.adapters[0].name, "pbx-1");
    let AdapterKind::AsteriskAmi(s) = &c.adapters[0].kind else {
        panic!("{:?}", c.adapters[0].kind)
    };
    assert_eq!(s.address, "pbx.example:5038", "default port");
    assert_eq!(s.username, "floorwatch");
    assert_eq!(s.secret.0, "s3cret");
    assert!(
        !format!("{c:?}").contains("s3cret"),
        "the secret is not printed"
    );
    assert_eq!(
        s.settings.agent_id,
        floorwatch::config::AmiAgentId::Interface
    );
    assert_eq!(s.settings.acw_reasons, ["ACW", "Wrapup"]);
    assert_eq!(s.settings.auto_pause_reason, "no-answer");
    assert_eq!(s.keepalive, floorwatch::config::AmiSource::KEEPALIVE);

    let many = Config::from_toml_str(
        "[[sources]]\nkind = \"asterisk-ami\"\naddress = \"10.0.0.5:5039\"\n\
         username = \"u\"\nsecret = \"s\"\n",
    )
    .expect("valid");
    let AdapterKind::AsteriskAmi(s) = &many.adapters[0].kind else {
        panic!("{:?}", many.adapters[0].kind)
    };
    assert_eq!(
        many.adapters[0].name, "asterisk-ami",
        "name defaults to the kind"
    );
    assert_eq!(s.address, "10.0.0.5:5039");

    let e = Config::from_toml_str(
        "[source]\nkind = \"asterisk-ami\"\naddress = \"pbx\"\nusername = \"u\"\n",
    )
    .expect_err("no secret");
    assert_eq!(e.key.as_deref(), Some("source.secret"), "{e}");
    let e = Config::from_toml_str(
        "[source]\nkind = \"asterisk-ami\"\naddress = \"pbx\"\nusername = \"u\"\nsecret = \"s\"\n\
         agent_id = \"uniqueid\"\n",
    )
    .expect_err("bad agent_id");
    assert!(e.to_string().contains("membername"), "{e}");
}

#[test]
fn the_config_example_of_the_asterisk_page_is_valid() {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/integrations/asterisk.md");
    let page = std::fs::read_to_string(&p).expect("asterisk.md");
    let (_, after) = page
        .split_once("## The AMI client")
        .expect("AMI client section");
    let (_, block) = after.split_once("```toml\n").expect("a toml block");
    let (toml, _) = block.split_once("```").expect("block end");
    let c = Config::from_toml_str(toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
    assert!(matches!(
        c.adapters.as_slice(),
        [a] if a.name == "pbx-1" && matches!(a.kind, AdapterKind::AsteriskAmi(_))
    ));
}

/// Every file under `dir`, recursively, as bytes.
fn files_under(dir: &std::path::Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = entry.path();
            if p.is_dir() {
                todo.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.push((p, bytes));
            }
        }
    }
    out
}

/// Privacy (operations page): the caller numbers of the transcript (`CallerIDNum`) reach no
/// log line, metric, API answer, alert or file of the store.
#[tokio::test]
async fn caller_numbers_of_the_ami_transcript_are_nowhere_to_be_seen() {
    const NUMBER: &str = "13800138000";
    crate::log_capture::start();
    assert!(
        sup::fixture_text("asterisk", "ami.txt").contains(&format!("CallerIDNum: {NUMBER}")),
        "the transcript carries the caller number this test looks for"
    );
    let (_emu, pbx) = Emu::start(
        SECRET,
        vec![Script {
            status_at: Some(T0 - 1),
            events: transcript_events(),
            ..Script::default()
        }],
    )
    .await;
    // Alerts go to a closed port: they wait in the store's outbox, so their text is there.
    let parsed = Config::from_toml_str(&format!(
        "[source]\nkind = \"asterisk-ami\"\nname = \"pbx\"\naddress = \"{pbx}\"\n\
         username = \"{USER}\"\nsecret = \"{SECRET}\"\n\
         [alerts.alertmanager]\nurl = \"http://127.0.0.1:9\"\n"
    ))
    .expect("valid config");
    let mut c = sup::config();
    c.source.kind = parsed.source.kind;
    c.adapters = parsed.adapters;
    c.alerts = parsed.alerts;
    let dir = c.store.dir.clone();
    let d = sup::start(c).await;
    let addr = d.local_addr();
    let want = story_violations().len();
    eventually("the story's violations", || async {
        (sup::violations(addr, sup::STORY_DAY).await.len() >= want).then_some(())
    })
    .await;
    let mut seen = Vec::new();
    for path in [
        "/metrics",
        "/api/v1/floor",
        "/api/v1/violations?from=2026-11-28T00:00:00Z&to=2026-11-29T00:00:00Z",
        "/api/v1/violations/1",
        "/api/v1/appraisal?month=2026-11",
    ] {
        let (status, _, body) = sup::get(addr, path).await;
        assert_eq!(status, 200, "{path}: {body}");
        seen.push((path.to_string(), body));
    }
    d.shutdown().await;
    for (path, bytes) in files_under(&dir) {
        seen.push((
            path.display().to_string(),
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
    }
    assert!(
        seen.iter().any(|(p, _)| p.contains("journal")),
        "the journal was written: {:?}",
        seen.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    seen.push(("logs".into(), crate::log_capture::text()));
    assert!(
        seen.last()
            .is_some_and(|(_, t)| t.contains("logged in to AMI")),
        "the log capture works"
    );
    for (what, text) in &seen {
        assert!(!text.contains(NUMBER), "the caller number is in {what}");
    }
}

/// An agent's outbound calls seen by the AMI client (channel events of class `call`), and a
/// CRM that sends the dispositions to `/ingest` under its own source name: the team's
/// attempts, connects and sales in `/metrics` and `/api/v1/floor`.
#[tokio::test]
async fn outbound_calls_over_ami_and_a_crm_disposition_make_the_team_sales() {
    let text = sup::fixture_text("asterisk", "ami-outbound.txt");
    let start = text.find("Event:").expect("events");
    let events: Vec<u8> = text[start..]
        .lines()
        .map(|l| format!("{l}\r\n"))
        .collect::<String>()
        .into_bytes();
    let (_emu, pbx) = Emu::start(
        SECRET,
        vec![Script {
            status_at: Some(T0 - 1),
            events,
            chunk: 211,
            ..Script::default()
        }],
    )
    .await;
    let parsed = Config::from_toml_str(&format!(
        "[source]\nkind = \"asterisk-ami\"\nname = \"pbx\"\naddress = \"{pbx}\"\n\
         username = \"{USER}\"\nsecret = \"{SECRET}\"\n\
         [[teams]]\nid = \"tele-1\"\nmembers = [\"li.na\", \"wang.fang\"]\nsales_target = 3\n"
    ))
    .expect("config");
    let mut c = sup::config();
    c.source.kind = parsed.source.kind;
    c.adapters = parsed.adapters;
    c.teams = parsed.teams;
    c.rules = parsed.rules;
    let d = sup::start(c).await;
    let addr = d.local_addr();
    let team = |name: &'static str| async move {
        sup::labelled(&sup::metrics(addr).await, name, &[("team", "tele-1")])
    };
    eventually("the calls of the transcript", || async {
        (team("floorwatch_outbound_attempts_total").await == Some(2.0)
            && sup::metric(addr, r#"floorwatch_events_total{type="call.ended"}"#).await >= 3.0)
            .then_some(())
    })
    .await;
    assert_eq!(team("floorwatch_outbound_connected_total").await, Some(1.0));
    assert_eq!(team("floorwatch_sales_total").await.unwrap_or(0.0), 0.0);
    // The CRM: its own source name, the call id of the agent's channel (its Uniqueid).
    let (mut crm, hello) = sup::Source::connect_hello(addr, "crm").await;
    assert_eq!(hello["resume_after"], serde_json::Value::Null);
    crm.send(format!(
        r#"{{"type":"call.disposition","ts":{},"seq":1,"call":"1795827660.16","agent":"li.na","code":"sale"}}"#,
        (T0 + 310) * 1000
    ))
    .await;
    let (errors, acked) = crm.until_ack().await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(acked, 1);
    eventually("the sale", || async {
        (team("floorwatch_sales_total").await == Some(1.0)).then_some(())
    })
    .await;
    assert_eq!(team("floorwatch_sales_target").await, Some(3.0));
    // The floor publishes its outbound counters on its next tick.
    let (floor, tele) = eventually("the floor's outbound", || async {
        let (_, floor) = sup::get_json(addr, "/api/v1/floor").await;
        let tele = floor["outbound"]
            .as_array()
            .and_then(|teams| teams.iter().find(|t| t["team"] == "tele-1"))
            .cloned()
            .unwrap_or_default();
        (tele["sales"] == 1).then_some((floor, tele))
    })
    .await;
    assert_eq!(
        (
            &tele["attempts"],
            &tele["connected"],
            &tele["connect_rate"],
            &tele["sales"],
            &tele["target"]
        ),
        (
            &serde_json::json!(2),
            &serde_json::json!(1),
            &serde_json::json!(0.5),
            &serde_json::json!(1),
            &serde_json::json!(3)
        ),
        "{floor}"
    );
    d.shutdown().await;
}
