//! A stall of the daemon's own making must never change a judgment (protocol page, "Ordering
//! and time"): the daemon process frozen (`SIGSTOP`) while a ring is answered, the store on a
//! disk that fills while a source waits on acks, a source held back by the rate limit, and a
//! `queue_log` tail held back by it. Each time the daemon's stored violations are those of a
//! replay of exactly what the source sent (the engine of `floorwatch replay`), ids included.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Child;
use std::sync::Arc;
use std::time::Duration;

use floorwatch::clock::Clock;
use floorwatch::config::{Config, RulesConfig};
use floorwatch::replay::{Replay, ReplayOptions};
use floorwatch::simulate::{Generator, Misconduct, SimConfig};
use floorwatch::time::Timestamp;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tokio::sync::{watch, Mutex};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::crash::{spawn_daemon, stream_with_resume, wait_ready, START};
use crate::daemon_support::{self as sup, fill, free_port, get, get_json, Tmpfs, Ws};
use crate::shutdown::signal;

/// What live and replay must agree on for each violation: the record's fields, and its
/// evidence's start and how long the episode had lasted when it was raised.
fn judged(v: &Value) -> Value {
    let mut o = serde_json::Map::new();
    for k in [
        "id", "rule", "kind", "agent", "team", "call", "reason", "at", "points",
    ] {
        if let Some(x) = v.get(k) {
            o.insert(k.to_string(), x.clone());
        }
    }
    o.insert("started_by".into(), v["evidence"]["started_by"].clone());
    o.insert(
        "raised_after_ms".into(),
        v["evidence"]["raised_after_ms"].clone(),
    );
    Value::Object(o)
}

/// The violations the daemon stored (as [`judged`]), in id order, and its engine clock.
async fn stored(addr: SocketAddr) -> (Vec<Value>, Timestamp) {
    let (_, floor) = get_json(addr, "/api/v1/floor").await;
    let end = Timestamp::parse_flexible(floor["engine_clock"].as_str().expect("engine clock"))
        .expect("engine clock");
    let (status, body) = get_json(addr, "/api/v1/violations").await;
    assert_eq!(status, 200, "{body}");
    let mut v: Vec<Value> = body["violations"]
        .as_array()
        .expect("array")
        .iter()
        .map(judged)
        .collect();
    v.sort_by_key(|r| r["id"].as_u64());
    (v, end)
}

/// The violations (as [`judged`]) of a replay of `lines` (protocol NDJSON) as one source,
/// judged by `rules` and ended at `end`, in the order raised.
fn replayed(rules: &RulesConfig, source: &str, lines: &[String], end: Timestamp) -> Vec<Value> {
    let mut replay = Replay::new(
        rules.clone(),
        ReplayOptions {
            until: Some(end),
            ..ReplayOptions::default()
        },
    );
    let mut out = Vec::new();
    let mut keep = |v: &floorwatch::engine::Violation| {
        out.push(judged(&serde_json::to_value(v).expect("json")))
    };
    for l in lines {
        replay.line(source, l, &mut keep, |e| panic!("replay rejected {e}: {l}"));
    }
    replay.finish(&mut keep);
    out
}

/// A daemon process that is continued and killed when the test ends, however it ends.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.0.id().to_string()])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A phone system on `/ingest` that stamps events with its own (NTP-synchronised) clock and
/// numbers them; everything it sent is kept, in order, for the replay.
struct Phone {
    tx: SplitSink<Ws, Message>,
    seq: u64,
    sent: Vec<String>,
}

impl Phone {
    /// Sends `bodies` (event objects without `ts` and `seq`) as one frame, each stamped
    /// with the phone system's clock now (so its events are in time order); returns the
    /// last `seq` and the time.
    async fn send_now(&mut self, bodies: &[Value]) -> (u64, Timestamp) {
        let ts = Clock::system().now();
        (self.send(ts, bodies).await, ts)
    }

    /// Sends `bodies` (event objects without `ts` and `seq`) as one frame, each at `ts`;
    /// returns the last `seq`.
    async fn send(&mut self, ts: Timestamp, bodies: &[Value]) -> u64 {
        let mut frame = Vec::new();
        for b in bodies {
            self.seq += 1;
            let mut e = b.clone();
            e["ts"] = Value::from(ts.0);
            e["seq"] = Value::from(self.seq);
            let text = e.to_string();
            self.sent.push(text.clone());
            frame.push(text);
        }
        let frame = format!("[{}]", frame.join(","));
        self.tx.send(Message::text(frame)).await.expect("send");
        self.seq
    }
}

/// Connects a [`Phone`]; its acks (highest seq) and any error reply come through the
/// returned watch and list, read by a task of their own.
async fn phone(
    addr: SocketAddr,
) -> (
    Arc<Mutex<Phone>>,
    watch::Receiver<u64>,
    Arc<std::sync::Mutex<Vec<Value>>>,
) {
    let url = format!("ws://{addr}/ingest?source=pbx");
    let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("connect");
    let (tx, mut rx) = ws.split();
    let (acks, acked) = watch::channel(0u64);
    let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
    let errs = errors.clone();
    tokio::spawn(async move {
        while let Some(Ok(m)) = rx.next().await {
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(t.as_str()).expect("json");
            match v["type"].as_str() {
                Some("ack") => {
                    let seq = v["seq"].as_u64().expect("seq");
                    acks.send_modify(|a| *a = (*a).max(seq));
                }
                Some("error") => errs.lock().expect("errors").push(v),
                _ => {}
            }
        }
    });
    let phone = Phone {
        tx,
        seq: 0,
        sent: Vec::new(),
    };
    (Arc::new(Mutex::new(phone)), acked, errors)
}

async fn acked(acks: &mut watch::Receiver<u64>, seq: u64) {
    tokio::time::timeout(Duration::from_secs(30), acks.wait_for(|a| *a >= seq))
        .await
        .unwrap_or_else(|_| panic!("seq {seq} acknowledged in time"))
        .expect("ack reader");
}

const FREEZE_RULES: &str = "[rules.ring_answer]\nrings = 1\nring_cycle = \"3s\"\n";

/// The issue's freeze, shortened (a ring limit of 3 s instead of 15 s) and repeated: a ring,
/// the daemon stopped 0.3 to 0.9 s later, the agent answering 1.5 s into the ring (on time)
/// while it is stopped, another agent answering 3.6 s into a ring of the same moment (late),
/// the daemon continued 4.5 s after the ring; all the while the phone system sends other
/// events in real time. The on-time answer raises nothing, the late one is `late`, and the
/// whole record equals the replay of what the phone system sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_frozen_while_a_ring_is_answered_judges_the_answer_on_its_own_time() {
    const ITERATIONS: usize = 10;
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_port();
    let config = dir.path().join("floorwatch.toml");
    let text = format!(
        "[server]\nlisten = \"{addr}\"\n[store]\ndir = \"{}\"\n{FREEZE_RULES}",
        dir.path().join("data").display()
    );
    std::fs::write(&config, &text).expect("write config");
    let rules = Config::from_toml_str(&text).expect("config").rules;
    let daemon = Daemon(spawn_daemon(&config));
    wait_ready(addr).await;

    let seed: u64 = rand::rngs::StdRng::from_os_rng().random();
    eprintln!("freeze test seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (phone, mut acks, errors) = phone(addr).await;

    // The rest of the floor: a call queued and abandoned at once, every 200 ms, stamped with
    // the phone system's clock, also while the daemon is stopped (it waits in the socket).
    let (stop_chatter, mut chatter_stopped) = watch::channel(false);
    let chatter = {
        let phone = phone.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            loop {
                n += 1;
                let call = format!("bg-{n}");
                phone
                    .lock()
                    .await
                    .send_now(&[
                        serde_json::json!({"type":"call.queued","call":call,"queue":"bg"}),
                        serde_json::json!({"type":"call.abandoned","call":call}),
                    ])
                    .await;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = chatter_stopped.wait_for(|s| *s) => return,
                }
            }
        })
    };

    let pid = &daemon.0;
    let mut rings = Vec::new();
    for i in 0..ITERATIONS {
        let (on_time, late) = (format!("a{i}"), format!("b{i}"));
        let (c_on, c_late) = (format!("c{i}"), format!("d{i}"));
        let stop_after = rng.random_range(300..=900u64);
        let t0 = Instant::now();
        let (seq, rang) = phone
            .lock()
            .await
            .send_now(&[
                serde_json::json!({"type":"agent.login","agent":on_time}),
                serde_json::json!({"type":"agent.login","agent":late}),
                serde_json::json!({"type":"call.ringing","call":c_on,"agent":on_time}),
                serde_json::json!({"type":"call.ringing","call":c_late,"agent":late}),
            ])
            .await;
        acked(&mut acks, seq).await;
        tokio::time::sleep_until(t0 + Duration::from_millis(stop_after)).await;
        signal(pid, "STOP");
        tokio::time::sleep_until(t0 + Duration::from_millis(1_500)).await;
        let (_, on_time_at) = phone
            .lock()
            .await
            .send_now(&[serde_json::json!({"type":"call.answered","call":c_on,"agent":on_time})])
            .await;
        tokio::time::sleep_until(t0 + Duration::from_millis(3_600)).await;
        let (answered, _) = phone
            .lock()
            .await
            .send_now(&[serde_json::json!({"type":"call.answered","call":c_late,"agent":late})])
            .await;
        tokio::time::sleep_until(t0 + Duration::from_millis(4_500)).await;
        signal(pid, "CONT");
        acked(&mut acks, answered).await;
        let (seq, _) = phone
            .lock()
            .await
            .send_now(&[
                serde_json::json!({"type":"call.ended","call":c_on,"agent":on_time}),
                serde_json::json!({"type":"call.ended","call":c_late,"agent":late}),
                serde_json::json!({"type":"agent.logout","agent":on_time}),
                serde_json::json!({"type":"agent.logout","agent":late}),
            ])
            .await;
        acked(&mut acks, seq).await;
        // The test's own timing: the answer must have been stamped inside the ring limit.
        assert!(on_time_at < rang.plus(3_000), "the test ran too slowly");
        rings.push((on_time, late, rang));
    }
    let _ = stop_chatter.send(true);
    chatter.await.expect("chatter");
    let last = phone.lock().await.seq;
    acked(&mut acks, last).await;
    // Quiet for longer than source.idle: the daemon's clock moves the engine clock past
    // everything sent.
    let final_ts = Clock::system().now();
    sup::eventually("the engine clock to pass the last event", || async {
        let (_, f) = get_json(addr, "/api/v1/floor").await;
        let clock = Timestamp::parse_flexible(f["engine_clock"].as_str()?).ok()?;
        (clock > final_ts).then_some(())
    })
    .await;

    let (live, end) = stored(addr).await;
    for (on_time, late, rang) in &rings {
        let of =
            |agent: &str| -> Vec<&Value> { live.iter().filter(|v| v["agent"] == agent).collect() };
        assert!(
            of(on_time).is_empty(),
            "{on_time} answered 1.5 s into a 3 s ring while the daemon was stopped, yet: {:?} (seed {seed})",
            of(on_time)
        );
        let l = of(late);
        assert_eq!(l.len(), 1, "{late}: {l:?} (seed {seed})");
        assert_eq!(l[0]["kind"], "late");
        assert_eq!(l[0]["at"], rang.plus(3_000).to_string());
    }
    let sent = phone.lock().await.sent.clone();
    assert_eq!(live, replayed(&rules, "pbx", &sent, end), "seed {seed}");
    assert!(
        errors.lock().expect("errors").is_empty(),
        "{:?}",
        errors.lock()
    );
    // Which events were applied after their time, and by how much (the journal keeps the
    // time each was applied at): only a phone system's own delay beyond source.delay may
    // make one late.
    let mut out = Vec::new();
    floorwatch::report::export(&dir.path().join("data"), None, None, &mut out).expect("export");
    let mut late = Vec::new();
    for l in String::from_utf8(out).expect("utf-8").lines() {
        let v: Value = serde_json::from_str(l).expect("json");
        let Some(seq) = v["source_seq"].as_u64() else {
            continue;
        };
        let e: Value = serde_json::from_str(&sent[seq as usize - 1]).expect("json");
        let by = v["ts"].as_i64().expect("at") - e["ts"].as_i64().expect("ts");
        if by > 0 {
            late.push(format!("{} {} by {by} ms", e["type"], e["seq"]));
        }
    }
    eprintln!(
        "freeze test: {ITERATIONS} freezes, {} events, late: {late:?}",
        sent.len()
    );
}

/// A simulated floor of the past (its times far behind the wall clock: the source is never
/// caught up by lag, only by `source.idle`).
fn past_floor(agents: usize, hours: i64) -> Vec<String> {
    let mut sim = SimConfig::new(agents, 3, 17);
    sim.misconduct = Misconduct::unruly();
    sim.duration = Some(hours * 3_600_000);
    Generator::new(sim, START).map(|e| e.to_json()).collect()
}

/// The events as [`stream_with_resume`] numbers them (`seq` = index + 1).
fn numbered(events: &[String]) -> Vec<String> {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut v: Value = serde_json::from_str(e).expect("json");
            v["seq"] = Value::from(i as u64 + 1);
            v.to_string()
        })
        .collect()
}

/// The issue's disk-full case on a small scale: the store on a tmpfs that fills while a
/// source that keeps a window of unacknowledged events streams a recorded floor; the stall
/// lasts longer than `source.idle`; then the disk has room again. Every event is stored,
/// and the stored violations are the replay's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_longer_than_source_idle_changes_no_judgment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(_fs) = Tmpfs::mount(dir.path(), "24m") else {
        eprintln!("skipped: cannot mount a tmpfs (not root?)");
        return;
    };
    let mut c = sup::config();
    c.source.idle = 2_000;
    c.store.dir = dir.path().join("data");
    let d = sup::start(c.clone()).await;
    let addr = d.local_addr();
    let events = past_floor(60, 8);
    let n = events.len() as u64;
    let client = tokio::spawn(stream_with_resume(addr, events.clone()));

    // A third of the way in, the disk fills.
    sup::eventually("a third of the events stored", || async {
        let (_, f) = get_json(addr, "/api/v1/floor").await;
        let clock = Timestamp::parse_flexible(f["engine_clock"].as_str()?).ok()?;
        (clock > START.plus(3 * 3_600_000)).then_some(())
    })
    .await;
    let filler = dir.path().join("filler");
    fill(&filler);
    let reason = sup::eventually("readyz to fail", || async {
        let (status, _, body) = get(addr, "/readyz").await;
        (status == 503).then_some(body)
    })
    .await;
    assert!(reason.contains("failed"), "{reason}");

    // The source waits on its window, silent for longer than source.idle.
    tokio::time::sleep(Duration::from_millis(3 * c.source.idle as u64 / 2)).await;
    let (_, f) = get_json(addr, "/api/v1/floor").await;
    let clock = Timestamp::parse_flexible(f["engine_clock"].as_str().expect("clock")).expect("ts");
    assert!(
        clock < START.plus(9 * 3_600_000),
        "the engine clock ran to {clock} while the store was failing"
    );
    assert!(
        !client.is_finished(),
        "acknowledged while the disk was full"
    );

    std::fs::remove_file(&filler).expect("make room");
    tokio::time::timeout(Duration::from_secs(120), client)
        .await
        .expect("every event acknowledged after the disk has room")
        .expect("client task");
    let (live, end) = stored(addr).await;
    let expected = replayed(&c.rules, "sim", &numbered(&events), end);
    eprintln!("disk-full test: {n} events, {} violations", live.len());
    assert!(expected.len() > 50, "an unruly floor breaks rules");
    assert_eq!(live.len(), expected.len());
    assert_eq!(live, expected);
    d.shutdown().await;
}

/// The same property for the rate limit: a source over `limits.max_events_per_second` is
/// read more slowly, and one wait lasts longer than `source.idle`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_held_back_by_the_rate_limit_is_judged_as_in_replay() {
    let mut c = sup::config();
    c.source.idle = 2_000;
    c.limits.max_events_per_second = 300;
    let d = sup::start(c.clone()).await;
    let addr = d.local_addr();
    // The source's window (3,000 events) holds the whole stream: one batch waits seconds.
    let events = past_floor(20, 4);
    let n = events.len() as u64;
    let since = Instant::now();
    tokio::time::timeout(
        Duration::from_secs(120),
        stream_with_resume(addr, events.clone()),
    )
    .await
    .expect("every event acknowledged");
    let took = since.elapsed();
    let (_, _, text) = get(addr, "/metrics").await;
    assert!(
        sup::labelled(
            &text,
            "floorwatch_limit_hits_total",
            &[("limit", "max_events_per_second")]
        )
        .is_some_and(|v| v > 0.0),
        "the rate limit held the source back"
    );
    let (live, end) = stored(addr).await;
    let expected = replayed(&c.rules, "sim", &numbered(&events), end);
    eprintln!(
        "rate-limit test: {n} events in {took:?}, {} violations",
        live.len()
    );
    assert!(expected.len() > 10, "an unruly floor breaks rules");
    assert_eq!(live, expected);
    d.shutdown().await;
}

/// Appends `line` (without its time) to `path`, stamped with the wall clock in epoch
/// seconds, as Asterisk writes it.
fn log_line(path: &Path, line: &str) -> String {
    use std::io::Write;
    let text = format!("{}|{line}\n", Clock::system().now().0 / 1000);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open");
    f.write_all(text.as_bytes()).expect("write");
    text
}

/// The same property for an adapter: a `queue_log` tail whose lines are written in real time
/// is held back by the rate limit for longer than `source.idle` between an agent's pause
/// without reason and the end of it 3 s later (within `unauthorized_pause.grace`, 5 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_log_tail_held_back_by_the_rate_limit_is_judged_as_in_replay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("queue_log");
    let mut c = sup::config_with_sources(&format!(
        "[[sources]]\nname = \"pbx\"\nkind = \"asterisk-queue-log\"\npath = {:?}\nreorder_window = \"2s\"\n",
        path.display().to_string()
    ));
    c.source.idle = 2_000;
    c.limits.max_events_per_second = 50;
    let mut text = String::new();
    text += &log_line(&path, "NONE|sales|x|ADDMEMBER|");
    text += &log_line(&path, "NONE|sales|y|ADDMEMBER|");
    let d = sup::start(c.clone()).await;
    let addr = d.local_addr();
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    let t0 = Instant::now();
    // x pauses for 3 s, y for 8 s, both without a reason.
    text += &log_line(&path, "NONE|sales|x|PAUSE|");
    text += &log_line(&path, "NONE|sales|y|PAUSE|");
    tokio::time::sleep_until(t0 + Duration::from_millis(1_000)).await;
    // A burst of 300 events: six seconds' worth at 50 a second.
    for k in 0..150 {
        text += &log_line(&path, &format!("bg-{k}|sales|NONE|ENTERQUEUE||1|1"));
        text += &log_line(&path, &format!("bg-{k}|sales|NONE|ABANDON|1|1|0"));
    }
    tokio::time::sleep_until(t0 + Duration::from_millis(3_000)).await;
    text += &log_line(&path, "NONE|sales|x|UNPAUSE|");
    tokio::time::sleep_until(t0 + Duration::from_millis(8_000)).await;
    text += &log_line(&path, "NONE|sales|y|UNPAUSE|");
    let (events, _) = floorwatch::adapter::queue_log::map_text(
        &text,
        floorwatch::config::AmiSettings::default(),
        2_000,
    )
    .expect("maps");
    let lines: Vec<String> = events.iter().map(|e| e.to_json()).collect();
    let last = events.last().expect("events").ts;
    sup::eventually("every line applied", || async {
        let (_, f) = get_json(addr, "/api/v1/floor").await;
        let clock = Timestamp::parse_flexible(f["engine_clock"].as_str()?).ok()?;
        let applied = sup::metric_total(addr, "floorwatch_events_total").await as usize;
        (clock >= last && applied >= lines.len()).then_some(())
    })
    .await;
    let (_, _, metrics) = get(addr, "/metrics").await;
    assert!(
        sup::labelled(
            &metrics,
            "floorwatch_limit_hits_total",
            &[("limit", "max_events_per_second")]
        )
        .is_some_and(|v| v > 0.0),
        "the rate limit held the tail back"
    );
    let (live, end) = stored(addr).await;
    let expected = replayed(&c.rules, "pbx", &lines, end);
    let of = |agent: &str| live.iter().filter(|v| v["agent"] == agent).count();
    assert_eq!(of("x"), 0, "x paused 3 s, within the grace: {live:?}");
    assert_eq!(of("y"), 1, "y paused 8 s: {live:?}");
    assert_eq!(live, expected);
    d.shutdown().await;
}

/// `floorwatch_engine_clock_lag_seconds` shows an operator a held-back clock: near zero on a
/// live floor whose source is caught up; growing while the store fails under a source whose
/// events wait for their acks (the daemon's clock does not move the engine clock at all);
/// near zero again once the disk has room and the source is acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_clock_lag_gauge_shows_a_clock_held_back_by_a_failing_store() {
    const GAUGE: &str = "floorwatch_engine_clock_lag_seconds";
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(_fs) = Tmpfs::mount(dir.path(), "16m") else {
        eprintln!("skipped: cannot mount a tmpfs (not root?)");
        return;
    };
    let mut c = sup::config();
    c.source.idle = 2_000;
    c.store.dir = dir.path().join("data");
    let d = sup::start(c).await;
    let addr = d.local_addr();
    let (mut s, _) = sup::Source::connect_hello(addr, "pbx").await;
    let login = |seq: u64, agent: usize| {
        format!(
            r#"{{"ts":{},"seq":{seq},"type":"agent.login","agent":"agent-with-a-long-name-{agent:04}","team":"hotline-1"}}"#,
            Clock::system().now().0
        )
    };
    s.send(login(1, 0)).await;
    assert_eq!(s.until_ack().await, (vec![], 1));
    let caught_up = sup::eventually("the engine clock to follow the daemon's", || async {
        let lag = sup::metric(addr, GAUGE).await;
        (lag < 1.0).then_some(lag)
    })
    .await;
    assert!(caught_up >= 0.0, "{caught_up}");

    // The disk fills; a batch larger than a page needs room the journal no longer has.
    let filler = dir.path().join("filler");
    fill(&filler);
    let batch: Vec<String> = (2..=200).map(|i| login(i, i as usize)).collect();
    s.send(format!("[{}]", batch.join(","))).await;
    sup::eventually("readyz to fail", || async {
        let (status, _, _) = get(addr, "/readyz").await;
        (status == 503).then_some(())
    })
    .await;
    let held = sup::eventually("the lag gauge to show the held-back clock", || async {
        let lag = sup::metric(addr, GAUGE).await;
        (lag > 3.0).then_some(lag)
    })
    .await;
    eprintln!("lag gauge while the store failed: {held} s");

    std::fs::remove_file(&filler).expect("make room");
    loop {
        let (errors, ack) = s.until_ack().await;
        assert!(errors.is_empty(), "{errors:?}");
        if ack == 200 {
            break;
        }
        assert_eq!(ack, 1, "an ack while the disk was full");
    }
    sup::eventually(
        "the lag gauge to fall once the source is acknowledged",
        || async { (sup::metric(addr, GAUGE).await < 1.0).then_some(()) },
    )
    .await;
    d.shutdown().await;
}

/// An approval granted over the API is stamped with the daemon's clock. While a source is
/// held back (here: streaming a floor of the past, never caught up) it must not move the
/// engine clock to now: that would fire every open deadline at once and make the source's
/// next events late. It is applied at the engine clock and lasts until the end it was
/// granted for; nothing is judged, the source's next event is on time.
#[tokio::test]
async fn an_approval_over_the_api_does_not_move_a_held_back_clock() {
    let mut c = sup::config();
    c.rules.ring_answer.rings = 1;
    c.rules.ring_answer.ring_cycle = 3_000;
    let d = sup::start(c).await;
    let addr = d.local_addr();
    let (mut s, _) = sup::Source::connect_hello(addr, "pbx").await;
    let t = START;
    let at =
        |ms: i64, seq: u64, body: &str| format!(r#"{{"ts":{},"seq":{seq},{body}}}"#, t.plus(ms).0);
    s.send(format!(
        "[{},{},{},{}]",
        at(0, 1, r#""type":"agent.login","agent":"a1""#),
        at(0, 2, r#""type":"agent.login","agent":"a2""#),
        at(
            0,
            3,
            r#""type":"agent.state","agent":"a1","state":"not_ready","reason":"break""#
        ),
        at(
            1_000,
            4,
            r#""type":"call.ringing","call":"c1","agent":"a2""#
        ),
    ))
    .await;
    assert_eq!(s.until_ack().await, (vec![], 4));

    let granted = Clock::system().now();
    let (status, r) = crate::store::post_json(
        addr,
        "/api/v1/approvals",
        r#"{"agent":"a3","reason":"meeting","minutes":30,"by":"zhang.wei"}"#,
    )
    .await;
    assert_eq!(status, 201, "{r}");
    let from = Timestamp::parse_flexible(r["from"].as_str().expect("from")).expect("from");
    let until = Timestamp::parse_flexible(r["until"].as_str().expect("until")).expect("until");
    assert_eq!(from, t.plus(1_000), "applied at the engine clock");
    assert!(
        until >= granted.plus(30 * 60_000),
        "{until}: lasts to the end granted"
    );
    let (_, f) = get_json(addr, "/api/v1/floor").await;
    assert_eq!(
        f["engine_clock"].as_str(),
        Some(t.plus(1_000).to_string().as_str()),
        "the engine clock stayed"
    );
    assert!(sup::violations(addr, "").await.is_empty());

    // The source goes on: the ring answered 2 s in is on time.
    s.send(at(
        3_000,
        5,
        r#""type":"call.answered","call":"c1","agent":"a2""#,
    ))
    .await;
    assert_eq!(s.until_ack().await, (vec![], 5));
    assert!(sup::violations(addr, "").await.is_empty());
    let (_, _, text) = get(addr, "/metrics").await;
    assert_eq!(
        sup::value(&text, "floorwatch_events_late_total"),
        0.0,
        "{text}"
    );
    d.shutdown().await;
}
