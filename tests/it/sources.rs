//! Several sources at once: two `queue_log` tails (`[[sources]]`) and a WebSocket source feed
//! one daemon, each under its own source name; `/readyz` waits for every adapter.

use std::io::Write;
use std::path::Path;

use floorwatch::config::Config;

use crate::daemon_support::{self as sup, Source};

fn append(path: &Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open queue_log");
    for l in lines {
        writeln!(f, "{l}").expect("write queue_log");
    }
}

async fn logged_in(addr: std::net::SocketAddr) -> Vec<String> {
    let (_, floor) = sup::get_json(addr, "/api/v1/floor").await;
    let mut v: Vec<String> = floor["agents"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|a| a["logged_in"].as_bool().unwrap_or(false))
                .filter_map(|a| a["agent"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test]
async fn two_queue_logs_and_a_websocket_source_feed_one_daemon() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("queue_log.a");
    let b = dir.path().join("queue_log.b");
    let toml = format!(
        "[[sources]]\nkind = \"asterisk-queue-log\"\nname = \"pbx-a\"\npath = {:?}\nreorder_window = \"1s\"\n\
         [[sources]]\nkind = \"asterisk-queue-log\"\nname = \"pbx-b\"\npath = {:?}\nreorder_window = \"1s\"\n",
        a.display().to_string(),
        b.display().to_string()
    );
    let parsed = Config::from_toml_str(&toml).unwrap_or_else(|e| panic!("{toml}: {e}"));
    let mut c = sup::config();
    c.adapters = parsed.adapters;
    let store = c.store.dir.clone();
    let now = floorwatch::clock::Clock::system().now().0 / 1000;
    append(
        &a,
        &[
            format!("{now}|MANAGER|sales|a.one|ADDMEMBER|"),
            format!("{now}|MANAGER|sales|a.four|ADDMEMBER|"),
        ],
    );
    let d = sup::start(c).await;
    let addr = d.local_addr();

    // pbx-b's file does not exist yet: the daemon is alive but not ready, and says which.
    let body = sup::eventually("readyz to name pbx-b", || async {
        let (status, _, body) = sup::get(addr, "/readyz").await;
        (status == 503 && body.contains("pbx-b")).then_some(body)
    })
    .await;
    assert!(body.contains("asterisk-queue-log"), "{body}");
    append(&b, &[format!("{now}|MANAGER|support|b.two|ADDMEMBER|")]);
    sup::eventually("readyz 200 with both tails open", || async {
        (sup::get(addr, "/readyz").await.0 == 200).then_some(())
    })
    .await;

    // A WebSocket source at the same time.
    let (mut ws, _) = Source::connect_hello(addr, "bridge").await;
    ws.send(format!(
        r#"{{"type":"agent.login","ts":{},"seq":1,"agent":"ws.three","team":"hotline-1"}}"#,
        now * 1000
    ))
    .await;
    let (_, acked) = ws.until_ack().await;
    assert_eq!(acked, 1);

    // Later lines of pbx-a still arrive while the others are connected.
    append(
        &a,
        &[format!("{}|MANAGER|sales|a.four|REMOVEMEMBER|", now + 1)],
    );
    let want = vec![
        "a.one".to_string(),
        "b.two".to_string(),
        "ws.three".to_string(),
    ];
    sup::eventually("agents of all three sources, a.four gone", || async {
        (logged_in(addr).await == want).then_some(())
    })
    .await;

    let (_, _, metrics) = sup::get(addr, "/metrics").await;
    let mapped = |source: &str| {
        sup::sample(
            &metrics,
            &format!("floorwatch_adapter_messages_total{{outcome=\"mapped\",source=\"{source}\"}}"),
        )
        .unwrap_or(0.0)
    };
    assert_eq!(mapped("pbx-a"), 3.0, "{metrics}");
    assert_eq!(mapped("pbx-b"), 1.0, "{metrics}");
    assert_eq!(
        sup::sample(&metrics, "floorwatch_source_connected"),
        Some(3.0),
        "two tails and one WebSocket: {metrics}"
    );
    // Each tail keeps its own state next to the journal.
    assert!(store.join("queue_log-pbx-a.json").exists());
    assert!(store.join("queue_log-pbx-b.json").exists());
    d.shutdown().await;
}
