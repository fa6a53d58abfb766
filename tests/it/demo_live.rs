//! `floorwatch demo` end to end: the daemon and the simulator in one process over a real
//! loopback WebSocket. A newcomer opening the floor sees every agent state and the first
//! violations within 20 seconds of the start.

use std::collections::BTreeSet;
use std::time::Duration;

use floorwatch::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// A plain HTTP/1.1 GET; returns the body.
async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tcp.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{path}: {text}");
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// Effective states of the agents in a `/api/v1/floor` answer.
fn states(floor: &str) -> BTreeSet<String> {
    let v: serde_json::Value = match serde_json::from_str(floor) {
        Ok(v) => v,
        // Chunked transfer encoding: the JSON sits between the chunk sizes.
        Err(_) => {
            let start = floor.find('{').unwrap_or(0);
            let end = floor.rfind('}').map_or(floor.len(), |e| e + 1);
            serde_json::from_str(&floor[start..end]).expect("floor JSON")
        }
    };
    v["agents"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["effective"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_shows_every_state_and_first_violations_within_20_seconds() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().expect("addr");
    config.store.dir = data.path().to_path_buf();
    let started = Instant::now();
    let demo = floorwatch::demo::start(config, 12, 1)
        .await
        .expect("demo starts");
    let addr = demo.local_addr();
    let mut seen = BTreeSet::new();
    let mut violations = String::new();
    let want_states = ["ready", "not_ready", "acw", "ringing", "talking"];
    while started.elapsed() < Duration::from_secs(20) {
        seen.extend(states(&get(addr, "/api/v1/floor").await));
        violations = get(addr, "/api/v1/violations").await;
        let all_states = want_states.iter().all(|s| seen.contains(*s));
        if all_states && violations.contains("no_reason") && violations.contains("late") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for s in want_states {
        assert!(seen.contains(s), "no agent was {s} within 20 s: {seen:?}");
    }
    for k in ["no_reason", "acw_without_call", "late"] {
        assert!(violations.contains(k), "no {k} within 20 s: {violations}");
    }
    let metrics = get(addr, "/metrics").await;
    assert!(metrics.contains("floorwatch_violations_total"), "{metrics}");
    let stats = demo.shutdown().await.expect("clean shutdown");
    assert!(stats.generated > 12 && stats.acked.is_some(), "{stats:?}");
}
