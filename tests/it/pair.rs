//! The scale-out layout for real: a 3-node `nats-server` cluster with an R3 stream,
//! `floorwatch relay` taking a simulated floor over WebSocket, and two `floorwatch run`
//! daemons (A and B) consuming the stream with their own stores and consumers. Daemon A is
//! killed with SIGKILL mid-stream and restarted; one NATS node is killed; a waiver and a
//! demerit go through A's API and a rulebook change through A's config. Afterwards A's and
//! B's violations are the same records, and the same as `floorwatch replay` of
//! `floorwatch stream-export`; every event the relay acknowledged is in the stream once.
//! The failover facts (time to resume, redeliveries) are printed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use floorwatch::simulate::{Generator, Misconduct, SimConfig};
use serde_json::Value;

use crate::crash::{stream_with_resume, START};
use crate::daemon_support::{free_port, get, get_json, metrics, post, sample, total, violations};
use crate::nats::{messages, Nats};
use crate::servers::{Alertmanager, WebhookReceiver};
use crate::shutdown::signal;

/// A `floorwatch` child process, its output in a log file; killed (SIGKILL) on drop.
struct Proc {
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    fn start(args: &[&str], log: PathBuf) -> Proc {
        let mut p = Proc {
            args: args.iter().map(|s| s.to_string()).collect(),
            log,
            child: None,
        };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_floorwatch"))
            .args(&self.args)
            .env("RUST_LOG", "info,floorwatch::owner=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .expect("spawn floorwatch");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

/// The last lines of a log file.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `f` every 50 ms until it returns `Some`, for at most `limit`; the panic message
/// shows `why()`.
async fn within<T, F, Fut>(limit: Duration, what: &str, why: impl Fn() -> String, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}\n{}", why());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn js_of(client: &async_nats::Client) -> async_nats::jetstream::Context {
    async_nats::jetstream::new(client.clone())
}

/// `/readyz` answers 200 (false while nothing listens).
async fn ready(addr: SocketAddr) -> bool {
    tokio::net::TcpStream::connect(addr).await.is_ok() && get(addr, "/readyz").await.0 == 200
}

fn daemon_toml(
    nats: &Nats,
    addr: SocketAddr,
    dir: &Path,
    durable: &str,
    ring_points: u32,
) -> String {
    format!(
        r#"[server]
listen = "{addr}"
[source]
# The floor is replayed from a month ago: its events, not the daemons' clocks, move time
# (the rulebook and the API's events are stamped today and make the source look caught up).
idle = "1h"
delay = "1440h"
[store]
dir = "{}"
checkpoint_every = "500ms"
[rules.ring_answer]
points = {ring_points}
[[sources]]
kind = "nats-jetstream"
name = "floor"
url = {}
stream = "FLOOR"
subject = "floor.>"
durable = "{durable}"
"#,
        dir.display(),
        nats.urls_toml()
    )
}

/// A's and B's records must be equal field by field.
fn same_records(a: &[Value], b: &[Value]) {
    assert_eq!(
        a.len(),
        b.len(),
        "A has {} violations, B {}",
        a.len(),
        b.len()
    );
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x, y, "A and B differ");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_on_a_three_node_cluster_judges_alike_through_kills_and_its_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nats = Nats::start(3, "").await;
    let client = nats.client(None).await;
    nats.create_stream(&client, "FLOOR", &["floor.>"], 3).await;

    let (relay_addr, a_addr, b_addr) = (free_port(), free_port(), free_port());
    let relay_toml = dir.path().join("relay.toml");
    std::fs::write(
        &relay_toml,
        format!(
            "[server]\nlisten = \"{relay_addr}\"\n[relay]\nurl = {}\nstream = \"FLOOR\"\nsubject = \"floor.pbx\"\n",
            nats.urls_toml()
        ),
    )
    .expect("relay config");
    let a_toml = dir.path().join("a.toml");
    let b_toml = dir.path().join("b.toml");
    std::fs::write(
        &a_toml,
        daemon_toml(&nats, a_addr, &dir.path().join("a"), "a", 1),
    )
    .expect("a config");
    std::fs::write(
        &b_toml,
        daemon_toml(&nats, b_addr, &dir.path().join("b"), "b", 1),
    )
    .expect("b config");
    let path = |p: &Path| p.display().to_string();
    let relay = Proc::start(
        &["relay", "--config", &path(&relay_toml)],
        dir.path().join("relay.log"),
    );
    let mut a = Proc::start(
        &["run", "--config", &path(&a_toml)],
        dir.path().join("a.log"),
    );
    let b = Proc::start(
        &["run", "--config", &path(&b_toml)],
        dir.path().join("b.log"),
    );
    let paths = [relay.log.clone(), a.log.clone(), b.log.clone()];
    let logs = move || {
        format!(
            "--- relay\n{}\n--- a\n{}\n--- b\n{}",
            tail(&paths[0]),
            tail(&paths[1]),
            tail(&paths[2])
        )
    };
    let limit = Duration::from_secs(60);
    within(limit, "relay and daemons ready", &logs, || async {
        (ready(relay_addr).await && ready(a_addr).await && ready(b_addr).await).then_some(())
    })
    .await;

    let mut sim = SimConfig::new(120, 6, 26);
    sim.misconduct = Misconduct::unruly();
    sim.duration = Some(6 * 3_600_000);
    let events: Vec<String> = Generator::new(sim, START).map(|e| e.to_json()).collect();
    let n = events.len();
    let relay_url = relay_addr;

    // Phase 1: a third of the floor.
    stream_with_resume(relay_url, events[..n / 3].to_vec()).await;
    // Phase 2: A is killed (SIGKILL) while it consumes the second third, and restarted.
    let feed = {
        let e = events[..2 * n / 3].to_vec();
        tokio::spawn(async move { stream_with_resume(relay_url, e).await })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    let a_at_kill = {
        let s = js_of(&client).get_stream("FLOOR").await.expect("stream");
        let a = s.consumer_info("a").await.expect("consumer a");
        (
            a.ack_floor.stream_sequence,
            s.cached_info().state.last_sequence,
        )
    };
    a.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.restart();
    feed.await.expect("phase 2 feed");
    // Phase 3: paced, and a NATS node is killed while it flows.
    let paced = {
        let e = events.clone();
        tokio::spawn(async move {
            for k in 1..=20 {
                let upto = 2 * n / 3 + (n - 2 * n / 3) * k / 20;
                stream_with_resume(relay_url, e[..upto].to_vec()).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let js = js_of(&client);
    let last_seq = |js: async_nats::jetstream::Context| async move {
        let mut s = js.get_stream("FLOOR").await.ok()?;
        Some(s.info().await.ok()?.state.last_sequence)
    };
    let at_kill = last_seq(js.clone()).await.expect("stream info");
    let leaders = {
        let s = js.get_stream("FLOOR").await.expect("stream");
        let lead = |c: Option<async_nats::jetstream::stream::ClusterInfo>| {
            c.and_then(|c| c.leader).unwrap_or_default()
        };
        let mut out = vec![lead(s.cached_info().cluster.clone())];
        for name in ["a", "b"] {
            out.push(lead(
                s.consumer_info(name).await.ok().and_then(|i| i.cluster),
            ));
        }
        out
    };
    // The node that leads the stream is killed: its replicas must elect a new leader.
    let victim: usize = leaders[0]
        .strip_prefix('n')
        .and_then(|i| i.parse().ok())
        .expect("the stream has a leader");
    let survivors: Vec<usize> = (0..3).filter(|i| *i != victim).collect();
    // Failover is timed from nodes that stay up, with short requests.
    let probe = async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_millis(300))
        .build(nats.client_of(&survivors, None).await);
    let killed = Instant::now();
    nats.kill(victim);
    let stream_resumed = within(
        limit,
        "the stream to grow after the node kill",
        &logs,
        || {
            let js = probe.clone();
            async move {
                last_seq(js)
                    .await
                    .filter(|s| *s > at_kill)
                    .map(|_| killed.elapsed())
            }
        },
    )
    .await;
    let acked_past = |name: &'static str, js: async_nats::jetstream::Context| async move {
        let s = js.get_stream("FLOOR").await.ok()?;
        let i = s.consumer_info(name).await.ok()?;
        (i.ack_floor.stream_sequence > at_kill).then_some(())
    };
    let resumed = |name: &'static str| {
        let probe = probe.clone();
        let logs = logs.clone();
        async move {
            within(
                limit,
                "both daemons to consume past the kill",
                &logs,
                || acked_past(name, probe.clone()),
            )
            .await;
            killed.elapsed()
        }
    };
    let (a_resumed, b_resumed) = tokio::join!(resumed("a"), resumed("b"));
    tokio::time::timeout(Duration::from_secs(120), paced)
        .await
        .expect("every event acknowledged by the relay in time")
        .expect("phase 3 feed");
    // The killed node comes back on its store and rejoins the cluster.
    nats.restart(victim).await;

    // No acknowledged event lost, none twice: each seq of the floor is in the stream once.
    let stored = messages(&client, "FLOOR", "floor.pbx.sim").await;
    let mut seqs: Vec<u64> = stored
        .iter()
        .flat_map(|(_, payload)| {
            let text = std::str::from_utf8(payload).expect("utf-8");
            floorwatch::event::decode_frame_limited(text, usize::MAX)
                .events
                .into_iter()
                .filter_map(|(_, e)| e.seq)
        })
        .collect();
    seqs.sort_unstable();
    if seqs.len() != n {
        // Which are missing, and what the daemons applied: a short read or a real loss.
        let have: std::collections::BTreeSet<u64> = seqs.iter().copied().collect();
        let missing: Vec<u64> = (1..=n as u64).filter(|s| !have.contains(s)).collect();
        let stream_seqs: Vec<u64> = stored.iter().map(|(s, _)| *s).collect();
        panic!(
            "{} events in the stream's messages, {n} acknowledged; missing seqs {:?}..{:?} ({}); stream sequences read {:?}; events applied: A {}, B {}\n{}",
            seqs.len(),
            missing.first(),
            missing.last(),
            missing.len(),
            stream_seqs,
            total(&metrics(a_addr).await, "floorwatch_events_total"),
            total(&metrics(b_addr).await, "floorwatch_events_total"),
            logs()
        );
    }
    assert!(seqs.iter().enumerate().all(|(i, s)| *s == i as u64 + 1));

    // A rulebook change through A's config: 3 points a late answer, from A's restart on.
    std::fs::write(
        &a_toml,
        daemon_toml(&nats, a_addr, &dir.path().join("a"), "a", 3),
    )
    .expect("a config");
    a.restart();
    let changed = floorwatch::config::load(Some(&a_toml))
        .expect("config")
        .rules
        .rulebook_digest();
    within(limit, "A's new rulebook on the stream", &logs, || async {
        let m = messages(&client, "FLOOR", "floor.api").await;
        m.iter()
            .any(|(_, p)| {
                serde_json::from_slice::<Value>(p)
                    .is_ok_and(|v| v["type"] == "rulebook" && v["digest"] == changed.as_str())
            })
            .then_some(())
    })
    .await;
    // A late answer after it, judged on both by the stream's rulebook (B's config says 1).
    let end = events
        .last()
        .and_then(|e| serde_json::from_str::<Value>(e).ok())
        .and_then(|v| {
            v["ts"].as_i64().or_else(|| {
                floorwatch::time::Timestamp::parse_flexible(v["ts"].as_str()?)
                    .ok()
                    .map(|t| t.0)
            })
        })
        .expect("the last event's ts");
    let mut more = events.clone();
    for (i, (after, body)) in [
        (0, r#""type":"agent.login","agent":"a-late","team":"late""#),
        (1, r#""type":"call.queued","call":"late-1","queue":"q""#),
        (
            2,
            r#""type":"call.ringing","call":"late-1","agent":"a-late""#,
        ),
        (
            30,
            r#""type":"call.answered","call":"late-1","agent":"a-late""#,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        more.push(format!(
            r#"{{{body},"ts":{},"seq":{}}}"#,
            end + 60_000 + after * 1_000,
            n + 1 + i
        ));
    }
    stream_with_resume(relay_url, more.clone()).await;
    let find_late = |addr: SocketAddr| async move {
        violations(addr, "?agent=a-late")
            .await
            .into_iter()
            .find(|v| v["rule"] == "ring_answer" && v["call"] == "late-1")
    };
    let on_a = within(limit, "the late answer on A", &logs, || find_late(a_addr)).await;
    let on_b = within(limit, "the late answer on B", &logs, || find_late(b_addr)).await;
    assert_eq!(on_a["points"], 3, "{on_a}");
    assert_eq!(
        on_b, on_a,
        "B judges by the stream's rulebook, not its own config"
    );

    // A rulebook reload (SIGHUP) of B: 5 points a late answer, on both, from where it lands
    // in the stream.
    std::fs::write(
        &b_toml,
        daemon_toml(&nats, b_addr, &dir.path().join("b"), "b", 5),
    )
    .expect("b config");
    let reloaded = floorwatch::config::load(Some(&b_toml))
        .expect("config")
        .rules
        .rulebook_digest();
    signal(b.child.as_ref().expect("b runs"), "HUP");
    within(
        limit,
        "B's reloaded rulebook on the stream",
        &logs,
        || async {
            let m = messages(&client, "FLOOR", "floor.api").await;
            m.iter()
                .any(|(_, p)| {
                    serde_json::from_slice::<Value>(p)
                        .is_ok_and(|v| v["type"] == "rulebook" && v["digest"] == reloaded.as_str())
                })
                .then_some(())
        },
    )
    .await;
    // Counted once B's own reload came back from the stream.
    within(limit, "B's reload counted as adopted", &logs, || async {
        let m = metrics(b_addr).await;
        (sample(&m, "floorwatch_rulebook_reloads_total{outcome=\"adopted\"}") == Some(1.0))
            .then_some(())
    })
    .await;
    for (i, (after, body)) in [
        (0, r#""type":"call.queued","call":"late-2","queue":"q""#),
        (
            1,
            r#""type":"call.ringing","call":"late-2","agent":"a-late""#,
        ),
        (
            29,
            r#""type":"call.answered","call":"late-2","agent":"a-late""#,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        more.push(format!(
            r#"{{{body},"ts":{},"seq":{}}}"#,
            end + 120_000 + after * 1_000,
            n + 5 + i
        ));
    }
    stream_with_resume(relay_url, more.clone()).await;
    let find_late2 = |addr: SocketAddr| async move {
        violations(addr, "?agent=a-late")
            .await
            .into_iter()
            .find(|v| v["rule"] == "ring_answer" && v["call"] == "late-2")
    };
    let on_a = within(limit, "the second late answer on A", &logs, || {
        find_late2(a_addr)
    })
    .await;
    let on_b = within(limit, "the second late answer on B", &logs, || {
        find_late2(b_addr)
    })
    .await;
    assert_eq!(on_b["points"], 5, "{on_b}");
    assert_eq!(on_a, on_b, "A judges by B's reloaded rulebook too");

    // A waiver and a demerit through A's API, answered once applied from the stream.
    let some = violations(a_addr, "?rule=break_overrun").await;
    let id = some
        .first()
        .and_then(|v| v["id"].as_u64())
        .expect("a violation");
    let (status, body) = post(
        a_addr,
        &format!("/api/v1/violations/{id}/waive"),
        r#"{"why":"approved by phone","by":"lead-1"}"#,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    within(limit, "A's waiver on B", &logs, || async {
        let (_, on_b) = get_json(b_addr, &format!("/api/v1/violations/{id}")).await;
        (on_b["status"] == "waived" && on_b["waiver"]["by"] == "lead-1").then_some(())
    })
    .await;
    let (status, body) = post(
        a_addr,
        "/api/v1/demerits",
        r#"{"agent":"a-late","item":"equipment_damage","points":2,"by":"lead-1"}"#,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let demerit: Value = serde_json::from_str(&body).expect("json");
    let d_id = demerit["violations"][0]["id"].as_u64().expect("demerit id");
    let on_b = within(limit, "A's demerit on B", &logs, || async {
        let (status, on_b) = get_json(b_addr, &format!("/api/v1/violations/{d_id}")).await;
        (status == 200).then_some(on_b)
    })
    .await;
    assert_eq!(on_b["rule"], "discipline", "{on_b}");
    assert_eq!(on_b["points"], 2, "{on_b}");

    // Both have consumed the whole stream: then their records are the same.
    let last = last_seq(js.clone()).await.expect("stream info");
    for name in ["a", "b"] {
        within(limit, "both daemons at the stream's end", &logs, || {
            let js = js.clone();
            async move {
                let s = js.get_stream("FLOOR").await.ok()?;
                let i = s.consumer_info(name).await.ok()?;
                (i.ack_floor.stream_sequence == last).then_some(())
            }
        })
        .await;
    }
    let all_a = violations(a_addr, "").await;
    let all_b = violations(b_addr, "").await;
    same_records(&all_a, &all_b);
    assert!(
        all_a.len() > 50,
        "an unruly floor breaks rules: {}",
        all_a.len()
    );

    // And the same as `floorwatch replay` of the stream's content.
    let exported = dir.path().join("stream.ndjson");
    let out = Command::new(env!("CARGO_BIN_EXE_floorwatch"))
        .args([
            "stream-export",
            "--config",
            &path(&a_toml),
            "-o",
            &path(&exported),
        ])
        .output()
        .expect("stream-export");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_floorwatch"))
        .args(["replay", "--config", &path(&b_toml), &path(&exported)])
        .output()
        .expect("replay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replayed: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("violation json"))
        .collect();
    assert_eq!(
        replayed.len(),
        all_a.len(),
        "replay and the daemons raise as many"
    );
    for (r, live) in replayed.iter().zip(&all_a) {
        for k in [
            "rule", "kind", "agent", "team", "call", "reason", "at", "points",
        ] {
            assert_eq!(r.get(k), live.get(k), "{k}: replay {r} live {live}");
        }
    }

    let (ma, mb) = (metrics(a_addr).await, metrics(b_addr).await);
    let relay_m = metrics(relay_url).await;
    let count = |m: &str, name: &str| total(m, name) as u64;
    eprintln!(
        "pair test: {n} events, {} violations, {last} stream messages; A was killed with {} of {} messages acknowledged; node n{victim} (the stream's leader) was killed while the leaders of the stream, consumer a and consumer b were {:?}; after the node kill the stream took new messages after {:?}, A consumed past it after {:?}, B after {:?}; since their last start A skipped {} redelivered messages and resynced {} times, B {} and {}; the relay retried {} publishes",
        all_a.len(),
        a_at_kill.0,
        a_at_kill.1,
        leaders,
        stream_resumed,
        a_resumed,
        b_resumed,
        count(&ma, "floorwatch_stream_redelivered_total"),
        count(&ma, "floorwatch_stream_resyncs_total"),
        count(&mb, "floorwatch_stream_redelivered_total"),
        count(&mb, "floorwatch_stream_resyncs_total"),
        count(&relay_m, "floorwatch_relay_publish_retries_total"),
    );
    if std::env::var_os("FW_PAIR_LOGS").is_some() {
        for f in ["a.log", "b.log", "relay.log"] {
            let run = std::env::var("FW_PAIR_LOGS").unwrap_or_default();
            let _ = std::fs::copy(
                dir.path().join(f),
                Path::new("/tmp").join(format!("{run}{f}")),
            );
        }
    }
    drop(relay);
    drop(b);
}

/// An Alertmanager that sends every alert, one notification each, to `hook`.
fn am_config(hook: &str) -> String {
    format!(
        r#"route:
  receiver: lead
  group_by: ['...']
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: lead
    webhook_configs:
      - url: "{hook}"
"#
    )
}

/// The pair alerts through two Alertmanagers gossiping as a cluster: both daemons push every
/// violation to both, and the lead's receiver hears of each violation once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_and_an_alertmanager_cluster_notify_each_violation_once() {
    let nats = Nats::start(1, "").await;
    let client = nats.client(None).await;
    nats.create_stream(&client, "FLOOR", &["floor.>"], 1).await;
    let hook = WebhookReceiver::start().await;
    let (am1, am2) = Alertmanager::start_cluster(&am_config(&hook.url())).await;
    let daemon = |durable: &str| {
        let toml = format!(
            "[[sources]]\nkind = \"nats-jetstream\"\nname = \"floor\"\nurl = {}\nstream = \"FLOOR\"\nsubject = \"floor.>\"\ndurable = \"{durable}\"\n",
            nats.urls_toml()
        );
        let parsed =
            floorwatch::config::Config::from_toml_str(&toml).unwrap_or_else(|e| panic!("{e}"));
        let mut c = crate::daemon_support::config();
        c.jetstream = parsed.jetstream;
        // Fresh events: the engine clock follows the wall clock once the stream is idle.
        c.source.idle = 2_000;
        c.alerts.alertmanager = vec![am1.url(), am2.url()];
        c.alerts.resend_every = 2_000;
        c.alerts.retry_max = 1_000;
        c.alerts.timeout = 1_000;
        c
    };
    let a = crate::daemon_support::start(daemon("a")).await;
    let b = crate::daemon_support::start(daemon("b")).await;
    let js = js_of(&client);
    let now = floorwatch::clock::Clock::system().now().ms();
    // Three agents pause without a reason: three `no_reason` violations once the grace ran
    // out on the daemons' clocks.
    let mut frame = Vec::new();
    for (i, agent) in ["p1", "p2", "p3"].iter().enumerate() {
        frame
            .push(serde_json::json!({"type":"agent.login","ts":now,"seq":2 * i + 1,"agent":agent}));
        frame.push(serde_json::json!({"type":"agent.state","ts":now + 1,"seq":2 * i + 2,"agent":agent,"state":"not_ready"}));
    }
    js.publish(
        "floor.pbx",
        serde_json::Value::Array(frame).to_string().into(),
    )
    .await
    .expect("publish")
    .await
    .expect("stream ack");
    let limit = Duration::from_secs(30);
    let nothing = String::new;
    let ids = |addr: SocketAddr| async move {
        let v = violations(addr, "?rule=unauthorized_pause").await;
        let mut ids: Vec<u64> = v.iter().filter_map(|v| v["id"].as_u64()).collect();
        ids.sort_unstable();
        (ids.len() == 3).then_some(ids)
    };
    let on_a = within(limit, "three violations on A", nothing, || {
        ids(a.local_addr())
    })
    .await;
    let on_b = within(limit, "three violations on B", nothing, || {
        ids(b.local_addr())
    })
    .await;
    assert_eq!(on_a, on_b, "the same ids on both daemons");
    // Every violation notified; then, well past the second peer's wait and several resends
    // by both daemons, still once each.
    let notified = || {
        let mut ids: Vec<u64> = hook
            .received()
            .into_iter()
            .flat_map(|(_, body)| body["alerts"].as_array().cloned().unwrap_or_default())
            .filter(|a| a["status"] == "firing")
            .filter_map(|a| a["labels"]["violation_id"].as_str()?.parse().ok())
            .collect();
        ids.sort_unstable();
        ids
    };
    let logs = || format!("--- am1\n{}\n--- am2\n{}", am1.log(), am2.log());
    within(limit, "a notification of each violation", logs, || async {
        let n = notified();
        on_a.iter().all(|id| n.contains(id)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        notified(),
        on_a,
        "each violation notified once: {:?}",
        hook.received()
    );
    // Both daemons did push to both Alertmanagers.
    for d in [&a, &b] {
        let m = metrics(d.local_addr()).await;
        for am in [&am1, &am2] {
            let sent = m
                .lines()
                .filter(|l| {
                    l.starts_with("floorwatch_alert_deliveries_total{outcome=\"delivered\"")
                        && l.contains(&am.addr().to_string())
                })
                .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
                .sum::<f64>();
            assert!(
                sent >= 1.0,
                "{} pushed to {}: {m}",
                d.local_addr(),
                am.url()
            );
        }
    }
    assert!(a.shutdown().await);
    assert!(b.shutdown().await);
}

/// Where a pair may differ, measured: two daemons on one stream judging a live floor by the
/// wall clock (`source.delay` 250 ms), calls answered around the ring limit, and answers that
/// reach the stream up to 600 ms after their `ts`. An event later than the delay is judged at
/// each daemon's own clock, so the two may differ on those calls: and only on those. The
/// share of calls judged differently is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_differs_only_on_events_later_than_the_delay() {
    use rand::{Rng, SeedableRng};
    let nats = Nats::start(1, "").await;
    let client = nats.client(None).await;
    nats.create_stream(&client, "FLOOR", &["floor.>"], 1).await;
    const AGENTS: usize = 20;
    const CALLS: usize = 200;
    const LIMIT: i64 = 1_000;
    let daemon = |durable: &str| {
        let toml = format!(
            "[[sources]]\nkind = \"nats-jetstream\"\nname = \"floor\"\nurl = {}\nstream = \"FLOOR\"\nsubject = \"floor.>\"\ndurable = \"{durable}\"\n",
            nats.urls_toml()
        );
        let parsed =
            floorwatch::config::Config::from_toml_str(&toml).unwrap_or_else(|e| panic!("{e}"));
        let mut c = crate::daemon_support::config();
        c.jetstream = parsed.jetstream;
        c.source.idle = 500;
        c.rules.ring_answer.rings = 1;
        c.rules.ring_answer.ring_cycle = LIMIT;
        c
    };
    let a = crate::daemon_support::start(daemon("a")).await;
    let b = crate::daemon_support::start(daemon("b")).await;
    let js = js_of(&client);
    let send = |js: async_nats::jetstream::Context, v: serde_json::Value| async move {
        js.publish("floor.pbx", v.to_string().into())
            .await
            .expect("publish")
            .await
            .expect("stream ack");
    };
    let now = || floorwatch::clock::Clock::system().now().ms();
    let logins: Vec<Value> = (0..AGENTS)
        .map(|i| serde_json::json!({"type":"agent.login","ts":now(),"agent":format!("j{i}")}))
        .collect();
    send(js.clone(), Value::Array(logins)).await;
    // Each call rings an agent, is answered within ±300 ms of the limit, and its answer is
    // published 0–600 ms after its `ts`; the ring and the end go at once.
    let mut rng = rand::rngs::StdRng::seed_from_u64(26);
    let mut tasks = Vec::new();
    let mut late = std::collections::BTreeSet::new();
    for k in 0..CALLS {
        let answer_after = LIMIT + rng.random_range(-300..=300);
        let lag: u64 = rng.random_range(0..=600);
        let call = format!("jc{k}");
        // Later than the delay, or within 100 ms of it (publishing and delivery take time too).
        if lag + 100 > 250 {
            late.insert(call.clone());
        }
        let agent = format!("j{}", k % AGENTS);
        let js = js.clone();
        tasks.push(tokio::spawn(async move {
            let rung = now();
            send(
                js.clone(),
                serde_json::json!({"type":"call.ringing","ts":rung,"call":call,"agent":agent}),
            )
            .await;
            let answered = rung + answer_after;
            let at = tokio::time::Instant::now()
                + Duration::from_millis(u64::try_from(answer_after).unwrap_or(0) + lag);
            tokio::time::sleep_until(at).await;
            send(
                js.clone(),
                serde_json::json!([
                    {"type":"call.answered","ts":answered,"call":call,"agent":agent},
                    {"type":"call.ended","ts":answered + 1,"call":call,"agent":agent}
                ]),
            )
            .await;
        }));
        tokio::time::sleep(Duration::from_millis(47)).await;
    }
    for t in tasks {
        t.await.expect("call task");
    }
    // Both at the stream's end, and past every deadline.
    let last = {
        let mut s = js.get_stream("FLOOR").await.expect("stream");
        s.info().await.expect("info").state.last_sequence
    };
    for name in ["a", "b"] {
        within(
            Duration::from_secs(30),
            "both daemons at the stream's end",
            String::new,
            || {
                let js = js.clone();
                async move {
                    let s = js.get_stream("FLOOR").await.ok()?;
                    let i = s.consumer_info(name).await.ok()?;
                    (i.ack_floor.stream_sequence >= last).then_some(())
                }
            },
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    // Each call's ring_answer judgments, as (kind, at, points): ids may shift where the two
    // differ.
    let judged = |addr: SocketAddr| async move {
        let mut by_call: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for v in violations(addr, "?rule=ring_answer").await {
            by_call
                .entry(v["call"].as_str().unwrap_or_default().to_string())
                .or_default()
                .push(format!("{} {} {}", v["kind"], v["at"], v["points"]));
        }
        by_call
    };
    let (on_a, on_b) = (judged(a.local_addr()).await, judged(b.local_addr()).await);
    let calls: std::collections::BTreeSet<&String> = on_a.keys().chain(on_b.keys()).collect();
    let differ: Vec<&String> = calls
        .into_iter()
        .filter(|c| on_a.get(*c) != on_b.get(*c))
        .collect();
    let (ma, mb) = (metrics(a.local_addr()).await, metrics(b.local_addr()).await);
    eprintln!(
        "pair jitter: {CALLS} calls answered within ±300 ms of a {LIMIT} ms limit, {} answers published more than source.delay (250 ms) after their ts, or within 100 ms of it; A raised {} ring_answer violations, B {}; they differ on {} calls ({:.1} % of all, {:.1} % of the late ones); events counted late: A {}, B {}",
        late.len(),
        on_a.values().map(Vec::len).sum::<usize>(),
        on_b.values().map(Vec::len).sum::<usize>(),
        differ.len(),
        100.0 * differ.len() as f64 / CALLS as f64,
        100.0 * differ.len() as f64 / late.len().max(1) as f64,
        total(&ma, "floorwatch_events_late_total"),
        total(&mb, "floorwatch_events_late_total"),
    );
    assert!(!on_a.is_empty(), "answers after the limit are violations");
    for c in &differ {
        assert!(
            late.contains(*c),
            "A and B differ on {c}, whose answer was on time: A {:?}, B {:?}",
            on_a.get(*c),
            on_b.get(*c)
        );
    }
    assert!(a.shutdown().await);
    assert!(b.shutdown().await);
}

/// The relay refuses, by its own clock, what a daemon would refuse before its engine, so that
/// the two daemons of a pair read the same stream and never judge by their own clocks what a
/// wrong source clock sent: an event a year ahead (`ts_in_future`) and a `rulebook` from a
/// source (`rulebook_from_source`). Both get an error reply and never reach the stream; the
/// good event beside them does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_refuses_a_year_ahead_and_a_rulebook_and_publishes_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nats = Nats::start(1, "").await;
    let client = nats.client(None).await;
    nats.create_stream(&client, "FLOOR", &["floor.>"], 1).await;
    let relay_addr = free_port();
    let relay_toml = dir.path().join("relay.toml");
    std::fs::write(
        &relay_toml,
        format!(
            "[server]\nlisten = \"{relay_addr}\"\n[relay]\nurl = {}\nstream = \"FLOOR\"\nsubject = \"floor\"\n",
            nats.urls_toml()
        ),
    )
    .expect("relay config");
    let relay = Proc::start(
        &["relay", "--config", &relay_toml.display().to_string()],
        dir.path().join("relay.log"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready(relay_addr).await {
        assert!(
            Instant::now() < deadline,
            "relay not ready:\n{}",
            std::fs::read_to_string(&relay.log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let rules = floorwatch::config::RulesConfig::default();
    let (json, digest) = (rules.rulebook_json(), rules.rulebook_digest());
    let now = floorwatch::clock::Clock::system().now().0;
    let year = 366 * 86_400_000;
    let (mut s, _) = crate::daemon_support::Source::connect_hello(relay_addr, "pbx").await;
    s.send(format!(
        r#"[{{"type":"agent.login","ts":{now},"seq":1,"agent":"a1"}},
            {{"type":"call.queued","ts":{},"seq":2,"call":"c1","queue":"q"}},
            {{"type":"rulebook","ts":{now},"seq":3,"rulebook":{json},"digest":"{digest}"}},
            {{"type":"agent.logout","ts":{},"seq":4,"agent":"a1"}}]"#,
        now + year,
        now + 1_000
    ))
    .await;
    let (errors, ack) = s.until_ack().await;
    assert_eq!(ack, 4, "{errors:?}");
    let reasons: Vec<(u64, String)> = errors
        .iter()
        .map(|e| {
            let r = e["reason"].as_str().unwrap_or_default();
            (
                e["seq"].as_u64().unwrap_or(0),
                r.split(':').next().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            (2, "ts_in_future".to_string()),
            (3, "rulebook_from_source".to_string())
        ],
        "{errors:?}"
    );
    // The stream holds the login and the logout only.
    let on_stream = messages(&client, "FLOOR", "floor.pbx").await;
    let seqs: Vec<u64> = on_stream
        .iter()
        .flat_map(|(_, payload)| {
            let v: Value = serde_json::from_slice(payload).expect("json");
            let items = match v {
                Value::Array(a) => a,
                one => vec![one],
            };
            items
                .iter()
                .map(|e| e["seq"].as_u64().expect("seq"))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(seqs, [1, 4], "{on_stream:?}");
}
