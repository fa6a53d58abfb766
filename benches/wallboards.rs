//! 500 wallboards on `/ws/floor`: what they cost ingest, how late they see a change, and
//! what they cost in memory. Everything in one process on loopback (release build): a daemon
//! with a store, a 300-agent floor, a source sending state changes in frames of 100 events
//! and waiting for each ack.
//!
//! The daemon is `floorwatch run` in its own process, so that its CPU and memory are its own;
//! the clients share the same two cores, which is why ingest slows while they read.
//!
//! Phases, in the same run: (1) ingest with no wallboard; (2) 500 wallboards connected, all
//! reading, plus one that never reads (a dead TV); ingest again; then (3) one marker change
//! whose arrival at every wallboard is timed (hdrhistogram, from just before the frame is
//! sent to the delta that carries it). Run with `cargo bench --bench wallboards`; under
//! `cargo test` it runs 20 wallboards as a smoke test.

#[path = "support/proc_stats.rs"]
mod proc_stats;
use proc_stats::{cpu_ticks, rss_kib};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

const AGENTS: usize = 300;

struct Source {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    seq: u64,
    ts: i64,
}

impl Source {
    /// Sends `events` (bodies without ts/seq) in one frame and waits for its ack.
    async fn frame(&mut self, events: &[String]) {
        let mut body = String::from("[");
        for (i, e) in events.iter().enumerate() {
            self.seq += 1;
            self.ts += 1;
            if i > 0 {
                body.push(',');
            }
            body.push_str(&format!(
                r#"{{"ts":{},"seq":{},{}}}"#,
                self.ts,
                self.seq,
                e.trim_start_matches('{').trim_end_matches('}')
            ));
        }
        body.push(']');
        self.ws.send(Message::text(body)).await.expect("send");
        while let Some(Ok(m)) = self.ws.next().await {
            if let Message::Text(t) = m {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                assert_ne!(v["type"], "error", "rejected: {v}");
                if v["type"] == "ack" && v["seq"].as_u64() == Some(self.seq) {
                    return;
                }
            }
        }
        panic!("source closed");
    }

    /// `frames` frames of 100 state changes; returns events per second.
    async fn ingest(&mut self, frames: usize) -> f64 {
        let states = ["ready", "acw", "ready", "not_ready"];
        let started = Instant::now();
        for f in 0..frames {
            let events: Vec<String> = (0..100)
                .map(|i| {
                    let a = (f * 100 + i) % AGENTS;
                    let st = states[(f + i) % states.len()];
                    let reason = if st == "not_ready" {
                        r#","reason":"break""#
                    } else {
                        ""
                    };
                    format!(r#"{{"type":"agent.state","agent":"a{a}","state":"{st}"{reason}}}"#)
                })
                .collect();
            self.frame(&events).await;
        }
        (frames * 100) as f64 / started.elapsed().as_secs_f64()
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let boards = if bench { 500 } else { 20 };
    let frames = if bench { 300 } else { 20 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let addr: std::net::SocketAddr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
            l.local_addr().expect("addr")
        };
        let config = dir.path().join("floorwatch.toml");
        // Event time far from the wall clock: the engine follows the events only. The rate
        // limit is lifted: this measures the daemon, not limits.max_events_per_second.
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"{addr}\"\n[store]\ndir = \"{}\"\n[source]\nidle = \"1h\"\n[limits]\nmax_events_per_second = 4000000000\n",
                dir.path().join("data").display()
            ),
        )
        .expect("config");
        let mut daemon = Daemon(
            std::process::Command::new(env!("CARGO_BIN_EXE_floorwatch"))
                .args(["run", "--config"])
                .arg(&config)
                .env("RUST_LOG", "warn")
                .spawn()
                .expect("floorwatch run"),
        );
        let pid = daemon.0.id();
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ingest?source=b"))
            .await
            .expect("source");
        let mut src = Source {
            ws,
            seq: 0,
            ts: 1_793_581_200_000,
        };
        let _hello = src.ws.next().await;
        let logins: Vec<String> = (0..AGENTS)
            .map(|a| format!(r#"{{"type":"agent.login","agent":"a{a}","team":"t{}"}}"#, a % 30))
            .collect();
        src.frame(&logins).await;
        // Warm-up (page cache, allocator, journal segment), not measured.
        src.ingest(frames / 3).await;
        let cpu0 = cpu_ticks(pid);
        let t0 = Instant::now();
        let base_rate = src.ingest(frames).await;
        let base_cpu = (cpu_ticks(pid) - cpu0) as f64 / 100.0 / t0.elapsed().as_secs_f64();
        let rss_before = rss_kib(pid);

        // The wallboards: each counts messages and records when it saw the marker.
        let marker_seen: Arc<Vec<AtomicU64>> =
            Arc::new((0..boards).map(|_| AtomicU64::new(0)).collect());
        let origin = Instant::now();
        let mut snapshots = Vec::new();
        let mut tasks = Vec::new();
        for i in 0..boards {
            let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/floor"))
                .await
                .expect("wallboard");
            let first = ws.next().await.expect("snapshot").expect("frame");
            snapshots.push(first.into_text().map(|t| t.len()).unwrap_or(0));
            let seen = marker_seen.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(Ok(m)) = ws.next().await {
                    if let Message::Text(t) = m {
                        if t.as_str().contains(r#""agent":"marker""#)
                            && seen[i].load(Ordering::Relaxed) == 0
                        {
                            let us = origin.elapsed().as_micros() as u64;
                            seen[i].store(us.max(1), Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        // A dead TV: upgraded, never reads.
        let (_dead, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/floor"))
            .await
            .expect("dead wallboard");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_with = rss_kib(pid);
        let cpu0 = cpu_ticks(pid);
        let t0 = Instant::now();
        let with_rate = src.ingest(frames).await;
        let with_cpu = (cpu_ticks(pid) - cpu0) as f64 / 100.0 / t0.elapsed().as_secs_f64();

        // Let the wallboards drain what the burst left them, then time one change.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let sent = origin.elapsed().as_micros() as u64;
        src.frame(&[r#"{"type":"agent.login","agent":"marker","team":"t0"}"#.to_string()])
            .await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while marker_seen.iter().any(|s| s.load(Ordering::Relaxed) == 0)
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
        let mut missing = 0;
        for s in marker_seen.iter() {
            match s.load(Ordering::Relaxed) {
                0 => missing += 1,
                t => h.saturating_record(t.saturating_sub(sent).max(1)),
            }
        }
        let ms = |us: u64| us as f64 / 1000.0;
        if !bench {
            println!(
                "wallboards smoke run (test build, {boards} wallboards): the figures below are not \
                 measurements (cargo bench --bench wallboards measures)"
            );
        }
        println!("| measure | value |");
        println!("|---|---|");
        println!("| ingest, no wallboard | {base_rate:.0} events/s; daemon CPU {base_cpu:.2} cores |");
        println!(
            "| ingest, {boards} wallboards + 1 that never reads | {with_rate:.0} events/s (ratio {:.2}); daemon CPU {with_cpu:.2} cores |",
            with_rate / base_rate
        );
        println!(
            "| snapshot size ({AGENTS} agents) | {} bytes |",
            snapshots.first().copied().unwrap_or(0)
        );
        println!(
            "| change → every wallboard: p50 / p99 / max | {:.1} / {:.1} / {:.1} ms ({} of {boards} saw it) |",
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.99)),
            ms(h.max()),
            boards - missing
        );
        println!(
            "| daemon RSS | {} MiB before, {} MiB with the wallboards ({:.1} KiB each) |",
            rss_before / 1024,
            rss_with / 1024,
            (rss_with.saturating_sub(rss_before)) as f64 / boards as f64
        );
        assert_eq!(missing, 0, "every wallboard sees the change");
        for t in tasks {
            t.abort();
        }
        let _ = daemon.0.kill();
    });
}

/// The daemon under test, killed when the bench ends.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
