//! The live daemon end to end: violations reach the API and metrics, the daemon's clock
//! fires deadlines only while sources are connected and caught up, and the live owner task
//! (under `tokio::time::pause`) raises exactly what a replay of the same stream raises.

use std::sync::Arc;
use std::time::Duration;

use floorwatch::clock::Clock;
use floorwatch::config::Config;
use floorwatch::engine::{Effect, Engine};
use floorwatch::event::{decode_event, Event};
use floorwatch::floor::{Status, ViolationFilter, ViolationRecord};
use floorwatch::metrics::Metrics;
use floorwatch::owner::EngineTask;
use floorwatch::time::Timestamp;
use proptest::prelude::*;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::daemon_support::{self as sup, get, Source};

#[tokio::test]
async fn a_ringing_call_unanswered_for_15s_is_late_in_the_api_and_metrics() {
    let d = sup::start(sup::config()).await;
    let addr = d.local_addr();
    let (mut s, _) = Source::connect_hello(addr, "pbx").await;
    s.send(
        r#"[{"type":"agent.login","ts":"2026-11-28T01:00:00Z","seq":1,"agent":"a-0042","team":"hotline-1"},
            {"type":"call.queued","ts":"2026-11-28T01:15:00Z","seq":2,"call":"c-77","queue":"sales"},
            {"type":"call.ringing","ts":"2026-11-28T01:15:02Z","seq":3,"call":"c-77","agent":"a-0042"}]"#,
    )
    .await;
    assert_eq!(s.until_ack().await.1, 3);
    assert!(
        sup::violations(addr, "").await.is_empty(),
        "nothing before the deadline"
    );
    // 15 s of event time pass on the floor (another agent logs in).
    s.send(r#"{"type":"agent.login","ts":"2026-11-28T01:15:20Z","seq":4,"agent":"a-0007"}"#)
        .await;
    assert_eq!(s.until_ack().await.1, 4);

    let v = sup::violations(addr, "?rule=ring_answer&status=open&agent=a-0042").await;
    assert_eq!(v.len(), 1, "{v:?}");
    let r = &v[0];
    assert_eq!(r["kind"], "late", "{r}");
    assert_eq!(r["team"], "hotline-1", "{r}");
    assert_eq!(r["call"], "c-77", "{r}");
    assert_eq!(r["at"], "2026-11-28T01:15:17.000Z", "{r}");
    assert_eq!(r["points"], 1, "{r}");
    assert_eq!(r["status"], "open", "{r}");
    assert!(r["id"].is_u64(), "{r}");
    // Detected when the engine clock passed the deadline: here, at the next event.
    assert_eq!(r["detected_at"], "2026-11-28T01:15:20.000Z", "{r}");
    assert!(r["evidence"]["limit_ms"].is_i64(), "{r}");
    assert!(sup::violations(addr, "?team=hotline-2").await.is_empty());
    assert!(
        sup::violations(addr, "?to=2026-11-28T01:15:17Z")
            .await
            .is_empty(),
        "to is exclusive"
    );

    let (_, floor) = sup::get_json(addr, "/api/v1/floor").await;
    assert_eq!(
        floor["open_violations"].as_array().map(Vec::len),
        Some(1),
        "{floor}"
    );
    let agent = |f: &Value| {
        f["agents"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["agent"] == "a-0042").cloned())
            .expect("a-0042")
    };
    assert_eq!(agent(&floor)["open_violations"], 1, "{floor}");

    let (_, _, text) = get(addr, "/metrics").await;
    assert_eq!(
        sup::sample(
            &text,
            r#"floorwatch_violations_total{agent="a-0042",kind="late",rule="ring_answer",team="hotline-1"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sup::sample(
            &text,
            r#"floorwatch_active_violations{rule="ring_answer",team="hotline-1"}"#
        ),
        Some(1.0)
    );

    // The answer ends the ring episode: the violation closes, the gauge drops.
    s.send(r#"{"type":"call.answered","ts":"2026-11-28T01:15:21Z","seq":5,"call":"c-77","agent":"a-0042"}"#)
        .await;
    s.until_ack().await;
    let v = sup::violations(addr, "?status=closed").await;
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0]["cleared_at"], "2026-11-28T01:15:21.000Z", "{}", v[0]);
    assert_eq!(
        v[0]["evidence"]["ended_by"]["type"], "call.answered",
        "{}",
        v[0]
    );
    let (_, floor) = sup::get_json(addr, "/api/v1/floor").await;
    assert_eq!(agent(&floor)["open_violations"], 0, "{floor}");
    assert_eq!(floor["open_violations"], serde_json::json!([]), "{floor}");
    let (_, _, text) = get(addr, "/metrics").await;
    assert_eq!(
        sup::sample(
            &text,
            r#"floorwatch_active_violations{rule="ring_answer",team="hotline-1"}"#
        ),
        Some(0.0)
    );
    d.shutdown().await;
}

/// Login and ringing stamped `ago` before the daemon's now, in one batch.
fn ringing_batch(ago_ms: i64) -> (String, Timestamp) {
    let t = Clock::system().now().plus(-ago_ms);
    let batch = format!(
        r#"[{{"type":"agent.login","ts":{ms},"seq":1,"agent":"a1","team":"t1"}},
            {{"type":"call.ringing","ts":{ms},"seq":2,"call":"c1","agent":"a1"}}]"#,
        ms = t.0
    );
    (batch, t)
}

fn live_config() -> Config {
    let mut c = sup::config();
    c.source.max_lag = 20_000;
    c.source.idle = 2_000;
    c
}

#[tokio::test]
async fn the_daemon_clock_fires_the_ring_deadline_while_the_source_is_caught_up() {
    let d = sup::start(live_config()).await;
    let addr = d.local_addr();
    let (mut s, _) = Source::connect_hello(addr, "pbx").await;
    // Rang 13.5 s ago: the deadline is 1.5 s away, and no later event will come.
    let (batch, rang) = ringing_batch(13_500);
    s.send(batch).await;
    s.until_ack().await;
    let v = sup::eventually("the late violation", || async {
        let v = sup::violations(addr, "").await;
        (!v.is_empty()).then_some(v)
    })
    .await;
    assert_eq!(v[0]["kind"], "late");
    assert_eq!(v[0]["at"], rang.plus(15_000).to_string());
    let (_, floor) = sup::get_json(addr, "/api/v1/floor").await;
    let clock =
        Timestamp::parse_rfc3339(floor["engine_clock"].as_str().expect("clock")).expect("ts");
    assert!(clock > rang.plus(15_000), "{clock}");
    d.shutdown().await;
}

#[tokio::test]
async fn with_no_source_connected_the_engine_clock_stands_still() {
    // The ring arrives 14 s late: the source is not caught up until it idles for 2 s, which
    // leaves time to see the disconnect before the daemon's clock may move.
    let mut c = sup::config();
    c.source.idle = 2_000;
    let d = sup::start(c).await;
    let addr = d.local_addr();
    let (mut s, _) = Source::connect_hello(addr, "pbx").await;
    let (batch, rang) = ringing_batch(14_000);
    s.send(batch).await;
    s.until_ack().await;
    drop(s);
    sup::eventually("the disconnect", || async {
        let (_, f) = sup::get_json(addr, "/api/v1/floor").await;
        (f["sources_connected"] == 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let (_, floor) = sup::get_json(addr, "/api/v1/floor").await;
    assert_eq!(floor["engine_clock"], rang.to_string(), "{floor}");
    assert!(
        sup::violations(addr, "").await.is_empty(),
        "a deadline fired with no source"
    );

    // A source connects and stays silent: after `idle` it counts as caught up.
    let (_s, hello) = Source::connect_hello(addr, "pbx").await;
    assert_eq!(hello["resume_after"], 2);
    let v = sup::eventually("the late violation", || async {
        let v = sup::violations(addr, "").await;
        (!v.is_empty()).then_some(v)
    })
    .await;
    assert_eq!(v[0]["at"], rang.plus(15_000).to_string());
    d.shutdown().await;
}

// ---- live owner task vs replay ----

const T0: i64 = 1_795_831_200_000;
const AGENTS: [&str; 3] = ["a1", "a2", "a3"];
const CALLS: [&str; 3] = ["c1", "c2", "c3"];
const REASONS: [&str; 4] = ["", "break", "meeting", "nap"];

#[derive(Clone, Debug)]
enum Op {
    Login(usize),
    Logout(usize),
    State(usize, usize, usize),
    Queued(usize),
    Ringing(usize, usize),
    Answered(usize, usize),
    NoAnswer(usize, usize),
    Abandoned(usize),
    Ended(usize, usize),
    Approval(usize, u32),
}

fn op() -> impl Strategy<Value = Op> {
    let a = 0..AGENTS.len();
    let c = 0..CALLS.len();
    prop_oneof![
        2 => a.clone().prop_map(Op::Login),
        1 => a.clone().prop_map(Op::Logout),
        4 => (a.clone(), 0..3usize, 0..REASONS.len()).prop_map(|(a, s, r)| Op::State(a, s, r)),
        2 => c.clone().prop_map(Op::Queued),
        3 => (c.clone(), a.clone()).prop_map(|(c, a)| Op::Ringing(c, a)),
        3 => (c.clone(), a.clone()).prop_map(|(c, a)| Op::Answered(c, a)),
        1 => (c.clone(), a.clone()).prop_map(|(c, a)| Op::NoAnswer(c, a)),
        1 => c.clone().prop_map(Op::Abandoned),
        2 => (c, a.clone()).prop_map(|(c, a)| Op::Ended(c, a)),
        1 => (a, 1u32..20).prop_map(|(a, m)| Op::Approval(a, m)),
    ]
}

/// Steps of (time delta in ms, op). Deltas are mostly small, sometimes near the ring limit,
/// sometimes minutes (breaks, wrap-up), and sometimes zero.
fn stream() -> impl Strategy<Value = Vec<(i64, Op)>> {
    let dt = prop_oneof![
        2 => Just(0i64),
        8 => 1i64..8_000,
        2 => 14_000i64..16_002,
        2 => 30_000i64..1_000_000,
    ];
    proptest::collection::vec((dt, op()), 1..60)
}

fn events(steps: &[(i64, Op)]) -> Vec<Event> {
    let mut t = T0;
    steps
        .iter()
        .enumerate()
        .map(|(i, (dt, op))| {
            t += dt;
            let body = match op {
                Op::Login(a) => format!(r#""type":"agent.login","agent":"{}","team":"t{}""#, AGENTS[*a], a % 2),
                Op::Logout(a) => format!(r#""type":"agent.logout","agent":"{}""#, AGENTS[*a]),
                Op::State(a, s, r) => format!(
                    r#""type":"agent.state","agent":"{}","state":"{}","reason":"{}""#,
                    AGENTS[*a],
                    ["ready", "not_ready", "acw"][*s],
                    REASONS[*r]
                ),
                Op::Queued(c) => format!(r#""type":"call.queued","call":"{}","queue":"q1""#, CALLS[*c]),
                Op::Ringing(c, a) => format!(r#""type":"call.ringing","call":"{}","agent":"{}""#, CALLS[*c], AGENTS[*a]),
                Op::Answered(c, a) => format!(r#""type":"call.answered","call":"{}","agent":"{}""#, CALLS[*c], AGENTS[*a]),
                Op::NoAnswer(c, a) => format!(r#""type":"call.no_answer","call":"{}","agent":"{}""#, CALLS[*c], AGENTS[*a]),
                Op::Abandoned(c) => format!(r#""type":"call.abandoned","call":"{}""#, CALLS[*c]),
                Op::Ended(c, a) => format!(r#""type":"call.ended","call":"{}","agent":"{}""#, CALLS[*c], AGENTS[*a]),
                Op::Approval(a, m) => format!(
                    r#""type":"approval.granted","agent":"{}","reason":"meeting","minutes":{m},"by":"lead""#,
                    AGENTS[*a]
                ),
            };
            let json = format!(r#"{{"ts":{t},"seq":{},{body}}}"#, i + 1);
            decode_event(&json).unwrap_or_else(|(_, e)| panic!("{json}: {e}"))
        })
        .collect()
}

/// Runs the stream through the live owner task, each event delivered at its `ts` under
/// paused time; returns the violation log and the final engine clock.
fn live(config: &Config, events: &[Event]) -> (Vec<ViolationRecord>, Timestamp) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async {
        let clock = Clock::starting_at(Timestamp(T0 - 1_000));
        let shutdown = CancellationToken::new();
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let task =
            EngineTask::spawn(config, clock, metrics, shutdown.clone()).expect("engine task");
        let engine = task.client();
        let (conn, _) = engine.connect("pbx").await.expect("connect");
        // Events with the same `ts` arrive together as one batch.
        for batch in events.chunk_by(|a, b| a.ts == b.ts) {
            tokio::time::sleep_until(clock.instant_at(batch[0].ts)).await;
            let reply = engine
                .apply(conn, clock.now(), batch.to_vec())
                .await
                .expect("applied");
            assert_eq!(reply.outcomes.len(), batch.len());
        }
        // Let the daemon's clock run well past every break and wrap-up limit.
        let last = events.last().map_or(Timestamp(T0), |e| e.ts);
        tokio::time::sleep_until(clock.instant_at(last.plus(45 * 60_000))).await;
        let floor = task.floor();
        let log = floor.violations(&ViolationFilter::default(), usize::MAX);
        let now = floor.engine_clock().expect("engine clock");
        shutdown.cancel();
        task.join().await;
        (log, now)
    })
}

/// A plain replay of the same stream up to `end`, folded into records the way the read side
/// folds effects.
fn replay(config: &Config, events: &[Event], end: Timestamp) -> Vec<ViolationRecord> {
    let mut engine = Engine::new(config.rules.clone());
    let mut effects = Vec::new();
    for ev in events {
        engine.handle_event("pbx", ev, &mut effects);
    }
    engine.finish(end, &mut effects);
    let mut records: Vec<ViolationRecord> = Vec::new();
    for e in effects {
        match e {
            Effect::Violation(v) => records.push(ViolationRecord {
                violation: *v,
                status: Status::Open,
                cleared_at: None,
                waiver: None,
                waivers: Vec::new(),
            }),
            Effect::Cleared {
                id,
                at,
                ended_by,
                lasted_ms,
            } => {
                if let Some(r) = records.iter_mut().find(|r| r.violation.id == id) {
                    r.status = Status::Closed;
                    r.cleared_at = Some(at);
                    r.violation.evidence.lasted_ms = Some(lasted_ms);
                    if r.violation.evidence.ended_by.is_none() {
                        r.violation.evidence.ended_by = Some(ended_by);
                    }
                }
            }
            _ => {}
        }
    }
    records
}

/// Records with `detected_at` checked and then cleared: it is the engine clock at detection
/// (the live timer's tick, or the next event or the end in a replay), the one field that
/// legitimately differs between live and replay. Everything else must be identical.
fn comparable(mut records: Vec<ViolationRecord>) -> Vec<ViolationRecord> {
    for r in &mut records {
        assert!(r.violation.detected_at >= r.violation.at, "{r:?}");
        r.violation.detected_at = Timestamp(0);
    }
    records
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn live_owner_task_and_replay_raise_identical_violations(steps in stream()) {
        let config = Config::default();
        let events = events(&steps);
        let (live_log, end) = live(&config, &events);
        let replayed = replay(&config, &events, end);
        prop_assert_eq!(comparable(live_log), comparable(replayed));
    }
}

#[test]
fn live_and_replay_agree_on_a_known_stream_with_violations() {
    // A ring left unanswered, a pause without reason and an overlong wrap-up: the live side
    // must fire all three from its own clock, with no later event to trigger them.
    let steps = vec![
        (0, Op::Login(0)),
        (0, Op::Login(1)),
        (1_000, Op::Ringing(0, 0)),
        (2_000, Op::State(1, 1, 0)),
        (1_000, Op::State(2, 2, 0)),
    ];
    let config = Config::default();
    let events = events(&steps);
    let (live_log, end) = live(&config, &events);
    let kinds: Vec<&str> = live_log.iter().map(|r| r.violation.kind.as_str()).collect();
    assert!(kinds.contains(&"late"), "{kinds:?}");
    assert!(kinds.contains(&"no_reason"), "{kinds:?}");
    assert_eq!(
        comparable(live_log),
        comparable(replay(&config, &events, end))
    );
}

#[tokio::test]
async fn every_connection_of_a_source_must_be_caught_up_before_the_daemon_clock_moves() {
    let mut c = live_config();
    // A lagging connection stays behind for the whole test (it never idles long enough).
    c.source.idle = 3_600_000;
    let d = sup::start(c).await;
    let addr = d.local_addr();
    let (mut fresh, _) = Source::connect_hello(addr, "pbx").await;
    let (mut lagging, _) = Source::connect_hello(addr, "pbx").await;
    let (batch, rang) = ringing_batch(14_000);
    fresh.send(batch).await;
    fresh.until_ack().await;
    let old = Clock::system().now().plus(-60_000);
    lagging
        .send(format!(
            r#"{{"type":"agent.login","ts":{},"seq":3,"agent":"a9"}}"#,
            old.0
        ))
        .await;
    lagging.until_ack().await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(
        sup::violations(addr, "").await.is_empty(),
        "the daemon clock moved while a connection lagged"
    );
    // The lagging connection goes away: the one left is caught up.
    drop(lagging);
    let v = sup::eventually("the late violation", || async {
        let v = sup::violations(addr, "").await;
        (!v.is_empty()).then_some(v)
    })
    .await;
    assert_eq!(v[0]["at"], rang.plus(15_000).to_string());
    drop(fresh);
    d.shutdown().await;
}

#[tokio::test]
async fn receipt_clock_stamps_events_with_the_receive_time() {
    let mut c = sup::config();
    c.source.clock = floorwatch::config::SourceClock::Receipt;
    let d = sup::start(c).await;
    let addr = d.local_addr();
    let before = Clock::system().now();
    let (mut s, _) = Source::connect_hello(addr, "pbx").await;
    // The source's clock says 2001.
    s.send(r#"{"type":"agent.login","ts":"2001-01-01T00:00:00Z","seq":1,"agent":"a1"}"#)
        .await;
    s.until_ack().await;
    let after = Clock::system().now();
    let (_, floor) = sup::get_json(addr, "/api/v1/floor").await;
    let since = floor["agents"][0]["since"].as_str().expect("since");
    let since = Timestamp::parse_rfc3339(since).expect("ts");
    // Separate clocks of one process agree to about a millisecond; allow a little more.
    assert!(
        before.plus(-20) <= since && since <= after.plus(20),
        "{since} not in [{before}, {after}]"
    );
    d.shutdown().await;
}

#[tokio::test]
async fn a_backlog_after_a_reconnect_is_judged_on_event_time() {
    let mut c = sup::config();
    c.source.idle = 3_000;
    let d = sup::start(c).await;
    let addr = d.local_addr();
    let (mut s, _) = Source::connect_hello(addr, "pbx").await;
    // The source fell 30 s behind, sent the ring, and lost its connection.
    let (batch, rang) = ringing_batch(30_000);
    s.send(batch).await;
    s.until_ack().await;
    drop(s);
    // It reconnects and takes a moment before it replays its backlog: the daemon's clock
    // must not run ahead of the backlog meanwhile.
    let (mut s, hello) = Source::connect_hello(addr, "pbx").await;
    assert_eq!(hello["resume_after"], 2);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    s.send(format!(
        r#"{{"type":"call.answered","ts":{},"seq":3,"call":"c1","agent":"a1"}}"#,
        rang.plus(10_000).0
    ))
    .await;
    s.until_ack().await;
    let (_, _, text) = get(addr, "/metrics").await;
    assert_eq!(
        sup::sample(&text, "floorwatch_events_late_total"),
        Some(0.0)
    );
    assert!(
        sup::violations(addr, "").await.is_empty(),
        "answered 10 s into the ring, yet judged late"
    );
    d.shutdown().await;
}

#[tokio::test]
async fn run_returns_when_its_shutdown_future_completes() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(floorwatch::daemon::run(sup::config(), None, async move {
        let _ = rx.await;
    }));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = tx.send(());
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("run returns in time")
        .expect("no panic")
        .expect("run succeeds");
}
