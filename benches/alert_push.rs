//! Alert push latency: from the moment the engine task raises a violation (its alert enters
//! the book) to the moment Alertmanager answers 2xx for the request that carried it, measured
//! by the daemon itself in µs (hdrhistogram), over real loopback HTTP to a real Alertmanager.
//!
//! Needs an Alertmanager: `scripts/bench-alerts` starts one and passes its URL in
//! `FW_BENCH_AM`. Three loads, each on a fresh daemon: violations one at a time (10 ms
//! apart), in bursts of 50, and 2,000 at once. A violation here is a ring that gets no answer
//! (`missed`, raised by the event itself), so detection time is not the engine's timer.
//!
//! Without `FW_BENCH_AM` (e.g. under `cargo test`) it prints how to run it and exits 0.

use std::time::Duration;

use floorwatch::clock::Clock;
use floorwatch::config::Config;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

struct Load {
    name: &'static str,
    total: usize,
    burst: usize,
    gap: Duration,
}

fn main() {
    let Ok(am) = std::env::var("FW_BENCH_AM") else {
        eprintln!("alert_push: set FW_BENCH_AM to an Alertmanager URL (scripts/bench-alerts does)");
        return;
    };
    if std::env::var_os("RUST_LOG").is_some() {
        floorwatch::logging::init();
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    println!("| load | alerts | p50 | p90 | p99 | max |");
    println!("|---|---|---|---|---|---|");
    for load in [
        Load {
            name: "one at a time, 10 ms apart",
            total: 500,
            burst: 1,
            gap: Duration::from_millis(10),
        },
        Load {
            name: "bursts of 50, 200 ms apart",
            total: 2_000,
            burst: 50,
            gap: Duration::from_millis(200),
        },
        Load {
            name: "2,000 at once",
            total: 2_000,
            burst: 2_000,
            gap: Duration::ZERO,
        },
    ] {
        let (p50, p90, p99, max, n) = rt.block_on(run(&am, &load));
        let ms = |us: u64| format!("{:.2} ms", us as f64 / 1000.0);
        println!(
            "| {} | {n} | {} | {} | {} | {} |",
            load.name,
            ms(p50),
            ms(p90),
            ms(p99),
            ms(max)
        );
    }
}

async fn run(am: &str, load: &Load) -> (u64, u64, u64, u64, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::default();
    config.server.listen = ([127, 0, 0, 1], 0).into();
    // Measures alert delivery, not limits.max_events_per_second.
    config.limits.max_events_per_second = u32::MAX;
    config.store.dir = dir.path().to_path_buf();
    config.alerts.alertmanager = vec![am.to_string()];
    config.alerts.max_pending = 100_000;
    let daemon = floorwatch::daemon::start(config).await.expect("daemon");
    let url = format!("ws://{}/ingest?source=bench", daemon.local_addr());
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    let _hello = ws.next().await;
    let clock = Clock::system();
    let mut seq = 0u64;
    let mut frame = |events: Vec<String>| {
        let body = events
            .into_iter()
            .map(|e| {
                seq += 1;
                format!(
                    r#"{{"ts":"{}","seq":{seq},{}}}"#,
                    clock.now(),
                    e.trim_start_matches('{').trim_end_matches('}')
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        (format!("[{body}]"), seq)
    };
    let agents = 100;
    let (logins, mut last) = frame(
        (0..agents)
            .map(|a| format!(r#"{{"type":"agent.login","agent":"a{a}"}}"#))
            .collect(),
    );
    ws.send(Message::text(logins)).await.expect("send");
    let mut call = 0usize;
    while call < load.total {
        let n = load.burst.min(load.total - call);
        let mut events = Vec::with_capacity(2 * n);
        for _ in 0..n {
            let a = call % agents;
            events.push(format!(
                r#"{{"type":"call.ringing","call":"c{call}","agent":"a{a}"}}"#
            ));
            events.push(format!(
                r#"{{"type":"call.no_answer","call":"c{call}","agent":"a{a}"}}"#
            ));
            call += 1;
        }
        let (text, s) = frame(events);
        last = s;
        ws.send(Message::text(text)).await.expect("send");
        if !load.gap.is_zero() {
            tokio::time::sleep(load.gap).await;
        }
    }
    // Wait for the last ack, then for every alert to be delivered.
    while let Some(Ok(m)) = ws.next().await {
        if let Message::Text(t) = m {
            let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap_or_default();
            assert_ne!(v["type"], "error", "the daemon rejected an event: {v}");
            if v["type"] == "ack" && v["seq"].as_u64() == Some(last) {
                break;
            }
        }
    }
    let alerts = daemon.alerts().expect("alerts configured").clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while alerts.lag_percentiles().4 < load.total as u64 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = alerts.lag_percentiles();
    drop(ws);
    daemon.shutdown().await;
    r
}
