//! Crash safety with the real binary: a simulated floor streams into `floorwatch run` with
//! ack/resume while the daemon is killed (SIGKILL) at random points and restarted on the same
//! directory; after catching up, its violations equal a replay of the whole stream.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use floorwatch::config::RulesConfig;
use floorwatch::replay::{Replay, ReplayOptions};
use floorwatch::simulate::{Generator, Misconduct, SimConfig};
use floorwatch::time::Timestamp;
use futures_util::{SinkExt, StreamExt};
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::daemon_support::{free_port, get_json};

/// 2026-11-02T01:00:00Z: simulated time far from the wall clock, so the daemon's clock never
/// counts the source as caught up and the engine clock follows event time only.
pub const START: Timestamp = Timestamp(1_793_581_200_000);

fn floor() -> SimConfig {
    let mut cfg = SimConfig::new(120, 6, 11);
    cfg.misconduct = Misconduct::unruly();
    cfg.duration = Some(6 * 3_600_000);
    cfg
}

/// Frames of this many events, sent without waiting for acks...
const FRAME: usize = 100;
/// ... while at most this many events are unacknowledged.
const WINDOW: usize = 3_000;

/// A source that keeps every unacknowledged event: it streams `events` (protocol JSON, `seq`
/// = index + 1) as fast as the window allows, and after every lost connection redials and
/// resends everything after the hello's `resume_after`. Returns how many events it sent,
/// counting re-sends.
pub async fn stream_with_resume(addr: SocketAddr, events: Vec<String>) -> u64 {
    let url = format!("ws://{addr}/ingest?source=sim");
    let n = events.len() as u64;
    let mut sent = 0u64;
    loop {
        let Ok((ws, _)) = tokio_tungstenite::connect_async(url.as_str()).await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let (mut tx, mut rx) = ws.split();
        let resume = match rx.next().await {
            Some(Ok(Message::Text(t))) => {
                let hello: Value = serde_json::from_str(t.as_str()).expect("hello");
                assert_eq!(hello["type"], "hello");
                hello["resume_after"].as_u64().unwrap_or(0)
            }
            _ => continue,
        };
        if resume == n {
            return sent;
        }
        let mut acked = resume;
        let mut next = resume;
        'conn: loop {
            while next < n && next - acked < WINDOW as u64 {
                let end = (next + FRAME as u64).min(n);
                let frame = format!("[{}]", events[next as usize..end as usize].join(","));
                if tx.send(Message::text(frame)).await.is_err() {
                    break 'conn;
                }
                sent += end - next;
                next = end;
            }
            match rx.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).expect("json");
                    if v["type"] == "ack" {
                        acked = acked.max(v["seq"].as_u64().expect("seq"));
                        if acked == n {
                            return sent;
                        }
                    }
                }
                Some(Ok(_)) => {}
                _ => break 'conn,
            }
        }
    }
}

pub fn spawn_daemon(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_floorwatch"))
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn floorwatch run")
}

pub async fn wait_ready(addr: SocketAddr) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("daemon did not listen on {addr}");
}

/// The violations of the daemon at `addr` (comparable fields) and its engine clock.
pub async fn live_violations(addr: SocketAddr) -> (Vec<Value>, Timestamp) {
    let (_, floor_json) = get_json(addr, "/api/v1/floor").await;
    let end = Timestamp::parse_flexible(floor_json["engine_clock"].as_str().expect("clock"))
        .expect("engine clock");
    let (status, body) = get_json(addr, "/api/v1/violations").await;
    assert_eq!(status, 200);
    let live = body["violations"]
        .as_array()
        .expect("array")
        .iter()
        .map(comparable)
        .collect();
    (live, end)
}

/// The violations (comparable fields) of a replay of `events` as one source, ended at `end`.
pub fn replayed_violations(events: &[String], end: Timestamp) -> Vec<Value> {
    let mut replay = Replay::new(
        RulesConfig::default(),
        ReplayOptions {
            until: Some(end),
            appraisal: None,
            ..ReplayOptions::default()
        },
    );
    let mut expected = Vec::new();
    for ev in events {
        replay.line(
            "sim",
            ev,
            |v| expected.push((v.id, v.to_record_json())),
            |e| panic!("rejected: {e}"),
        );
    }
    replay.finish(|v| expected.push((v.id, v.to_record_json())));
    expected
        .into_iter()
        .map(|(id, s)| {
            let mut v: Value = serde_json::from_str(&s).expect("json");
            v["id"] = Value::from(id);
            comparable(&v)
        })
        .collect()
}

/// The fields the replay's record and the API's record share.
fn comparable(v: &Value) -> Value {
    let mut o = serde_json::Map::new();
    for k in [
        "id", "rule", "kind", "agent", "team", "call", "reason", "at", "points",
    ] {
        if let Some(x) = v.get(k) {
            o.insert(k.to_string(), x.clone());
        }
    }
    Value::Object(o)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_loses_no_acked_event_and_duplicates_no_violation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_port();
    let config = dir.path().join("floorwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"{addr}\"\n[source]\nidle = \"1h\"\n\
             [store]\ndir = \"{}\"\ncheckpoint_every = \"300ms\"\n",
            dir.path().join("data").display()
        ),
    )
    .expect("write config");

    let seed: u64 = rand::rngs::StdRng::from_os_rng().random();
    eprintln!("crash test kill seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let mut child = spawn_daemon(&config);
    wait_ready(addr).await;
    let events: Vec<String> = Generator::new(floor(), START)
        .map(|e| e.to_json())
        .collect();
    let total = events.len() as u64;
    let client = tokio::spawn(stream_with_resume(addr, events.clone()));
    let kills: u32 = rng.random_range(2..=3);
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..700))).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
        child = spawn_daemon(&config);
        wait_ready(addr).await;
    }
    let sent = tokio::time::timeout(Duration::from_secs(120), client)
        .await
        .expect("every event acknowledged in time")
        .expect("client task");

    let (live, end) = live_violations(addr).await;
    child.kill().ok();
    child.wait().ok();
    let expected = replayed_violations(&events, end);
    eprintln!(
        "crash test: {kills} kills, {total} events, {} re-sent, {} violations",
        sent - total,
        live.len()
    );
    assert!(expected.len() > 20, "an unruly floor breaks rules");
    assert_eq!(live.len(), expected.len(), "kill seed {seed}");
    assert_eq!(live, expected, "kill seed {seed}");
}
