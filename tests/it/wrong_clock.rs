//! One event from a wrong clock must not judge the whole floor (protocol page, "Ordering and
//! time"): live, an event whose `ts` lies more than `source.max_future` ahead of the daemon's
//! clock is refused (`ts_in_future`) on every path (listen mode, connect mode, an adapter),
//! counted, and changes nothing; a clock a little ahead is still accepted. Of the same kind:
//! a snapshot that would start a break a year ago, and a `rulebook` sent by a source.

use std::path::Path;
use std::time::Duration;

use floorwatch::clock::Clock;
use floorwatch::config::SourceMode;
use floorwatch::time::Timestamp;
use futures_util::SinkExt;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use crate::daemon_support::{self as sup, accept, get, get_json, Source};

const YEAR: i64 = 366 * 86_400_000;

fn at(ts: Timestamp, seq: u64, body: &str) -> String {
    format!(r#"{{"ts":{},"seq":{seq},{body}}}"#, ts.0)
}

async fn engine_clock(addr: std::net::SocketAddr) -> Timestamp {
    let (_, f) = get_json(addr, "/api/v1/floor").await;
    Timestamp::parse_rfc3339(f["engine_clock"].as_str().expect("engine clock")).expect("ts")
}

/// The issue's case: five agents log in, one starts a break, and one `call.queued` comes
/// stamped a year ahead. It is refused with its reason; nobody is judged against next year,
/// the engine clock and the source's `seq` stay where they were, and later events are judged
/// on their own times.
#[tokio::test]
async fn a_call_queued_a_year_ahead_is_refused_and_judges_nobody() {
    let mut c = sup::config();
    c.source.idle = 2_000;
    // A ring limit of 3 s, to see it judged within the test's patience.
    c.rules.ring_answer.rings = 1;
    c.rules.ring_answer.ring_cycle = 3_000;
    let d = sup::start(c).await;
    let addr = d.local_addr();
    let (mut s, _) = Source::connect_hello(addr, "pbx").await;
    let now = Clock::system().now();
    let mut batch: Vec<String> = (1..=5)
        .map(|i| at(now, i, &format!(r#""type":"agent.login","agent":"a{i}""#)))
        .collect();
    batch.push(at(
        now,
        6,
        r#""type":"agent.state","agent":"a1","state":"not_ready","reason":"break""#,
    ));
    s.send(format!("[{}]", batch.join(","))).await;
    assert_eq!(s.until_ack().await, (vec![], 6));

    let ahead = Clock::system().now().plus(YEAR);
    s.send(format!(
        "[{},{}]",
        at(
            ahead,
            7,
            r#""type":"call.queued","call":"c-next-year","queue":"sales""#
        ),
        at(
            Clock::system().now(),
            8,
            r#""type":"call.queued","call":"c-now","queue":"sales""#
        )
    ))
    .await;
    let (errors, ack) = s.until_ack().await;
    assert_eq!(ack, 8, "the refused seq is not recorded, the next one is");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["type"], "error");
    assert_eq!(errors[0]["seq"], 7);
    assert_eq!(errors[0]["index"], 0);
    let reason = errors[0]["reason"].as_str().expect("reason");
    assert!(reason.starts_with("ts_in_future: "), "{reason}");
    assert!(reason.contains("source.max_future (5m)"), "{reason}");
    assert!(reason.contains("NTP"), "{reason}");

    let clock = engine_clock(addr).await;
    assert!(
        clock < Clock::system().now().plus(60_000),
        "the engine clock went to {clock}"
    );
    assert!(sup::violations(addr, "").await.is_empty());
    let (_, _, text) = get(addr, "/metrics").await;
    let rejected = sup::labelled(
        &text,
        "floorwatch_events_rejected_total",
        &[("reason", "ts_in_future")],
    );
    assert_eq!(rejected, Some(1.0));
    assert_eq!(
        sup::labelled(
            &text,
            "floorwatch_events_future_total",
            &[("source", "pbx")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sup::labelled(
            &text,
            "floorwatch_limit_hits_total",
            &[("limit", "max_future")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sup::sample(&text, r#"floorwatch_events_total{type="call.queued"}"#),
        Some(1.0),
        "only the call of now is applied"
    );

    // Later events are judged on their own times: a1's break of a second or two is no
    // violation, a ring left unanswered is late 3 s after it started, not a year ago.
    let rang = Clock::system().now();
    s.send(format!(
        "[{},{}]",
        at(
            rang,
            9,
            r#""type":"agent.state","agent":"a1","state":"ready""#
        ),
        at(
            rang,
            10,
            r#""type":"call.ringing","call":"c-now","agent":"a2""#
        )
    ))
    .await;
    assert_eq!(s.until_ack().await.1, 10);
    let v = sup::eventually("the ring deadline", || async {
        let v = sup::violations(addr, "").await;
        (!v.is_empty()).then_some(v)
    })
    .await;
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0]["agent"], "a2");
    assert_eq!(v[0]["kind"], "late");
    assert_eq!(v[0]["at"], rang.plus(3_000).to_string());
    assert_eq!(
        sup::metric(addr, "floorwatch_events_late_total").await,
        0.0,
        "no event was clamped to a clock ahead of it"
    );
    d.shutdown().await;
}

/// A phone system whose clock runs 4 minutes ahead is inside the default `max_future` (5 m):
/// its events are applied, and the gauge shows how far ahead it is.
#[tokio::test]
async fn a_source_four_minutes_ahead_is_accepted_and_shown() {
    let d = sup::start(sup::config()).await;
    let addr = d.local_addr();
    let (mut s, _) = Source::connect_hello(addr, "pbx").await;
    let ahead = Clock::system().now().plus(4 * 60_000);
    s.send(at(ahead, 1, r#""type":"agent.login","agent":"a1""#))
        .await;
    assert_eq!(s.until_ack().await, (vec![], 1));
    assert!(engine_clock(addr).await >= ahead);
    let (_, _, text) = get(addr, "/metrics").await;
    let shown = sup::labelled(
        &text,
        "floorwatch_source_clock_ahead_seconds",
        &[("source", "pbx")],
    )
    .expect("gauge");
    assert!((230.0..=241.0).contains(&shown), "{shown}");
    assert_eq!(
        sup::labelled(
            &text,
            "floorwatch_events_rejected_total",
            &[("reason", "ts_in_future")]
        ),
        Some(0.0)
    );
    d.shutdown().await;
}

/// Connect mode: the daemon dials the phone system, which sends an event from next year.
#[tokio::test]
async fn connect_mode_refuses_an_event_from_next_year() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let pbx = listener.local_addr().expect("addr");
    let mut c = sup::config();
    c.source.mode = SourceMode::Connect;
    c.source.url = Some(format!("ws://{pbx}/events"));
    c.source.name = "pbx-east".into();
    c.source.max_future = 60_000;
    let d = sup::start(c).await;
    let addr = d.local_addr();
    let (mut ws, _) = accept(&listener).await;
    assert_eq!(sup::read_json(&mut ws).await["type"], "hello");
    let now = Clock::system().now();
    ws.send(Message::text(format!(
        "[{},{}]",
        at(now, 1, r#""type":"agent.login","agent":"a1""#),
        at(now.plus(YEAR), 2, r#""type":"agent.login","agent":"a2""#)
    )))
    .await
    .expect("send");
    let error = sup::read_json(&mut ws).await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(
        (&error["seq"], &error["index"]),
        (&Value::from(2), &Value::from(1))
    );
    let reason = error["reason"].as_str().expect("reason");
    assert!(reason.contains("source.max_future (1m)"), "{reason}");
    assert_eq!(
        sup::read_json(&mut ws).await,
        serde_json::json!({"type": "ack", "seq": 1})
    );
    let (_, floor) = get_json(addr, "/api/v1/floor").await;
    let agents: Vec<&str> = floor["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .filter_map(|a| a["agent"].as_str())
        .collect();
    assert_eq!(agents, ["a1"]);
    assert_eq!(
        sup::metric(addr, r#"floorwatch_events_future_total{source="pbx-east"}"#).await,
        1.0
    );
    d.shutdown().await;
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open");
    f.write_all(text.as_bytes()).expect("write");
}

/// An adapter with its own `max_future` (`[[sources]] max_future`): a `queue_log` line ten
/// minutes ahead is refused before the reorder window sees it (it would hold the window open
/// for ten minutes), counted under the source's name; the lines around it are applied.
#[tokio::test]
async fn a_queue_log_line_ahead_of_its_sources_max_future_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("queue_log");
    let c = sup::config_with_sources(&format!(
        "[[sources]]\nname = \"pbx\"\nkind = \"asterisk-queue-log\"\npath = {:?}\nreorder_window = \"1s\"\nmax_future = \"2m\"\n",
        path.display().to_string()
    ));
    assert_eq!(c.adapters[0].max_future, Some(120_000));
    let now = Clock::system().now().0 / 1000;
    append(
        &path,
        &format!(
            "{now}|NONE|sales|x|ADDMEMBER|\n{}|c-late|sales|NONE|ENTERQUEUE||1|1\n{}|NONE|sales|y|ADDMEMBER|\n",
            now + 600,
            now + 1
        ),
    );
    let d = sup::start(c).await;
    let addr = d.local_addr();
    sup::eventually("x and y logged in", || async {
        let n = sup::metric(addr, r#"floorwatch_events_total{type="agent.login"}"#).await;
        (n >= 2.0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, _, text) = get(addr, "/metrics").await;
    assert_eq!(
        sup::labelled(
            &text,
            "floorwatch_events_future_total",
            &[("source", "pbx")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sup::sample(&text, r#"floorwatch_events_total{type="call.queued"}"#),
        Some(0.0)
    );
    assert!(engine_clock(addr).await < Clock::system().now().plus(60_000));
    d.shutdown().await;
}

/// A snapshot from a clock a year behind: its own `ts` is merely late, but its `since` would
/// start a year-long break (a `daily_allowance` violation for every day of it). Refused
/// (`snapshot_too_old`); one whose break started an hour ago is taken.
#[tokio::test]
async fn a_snapshot_that_starts_a_break_a_year_ago_is_refused() {
    let d = sup::start(sup::config()).await;
    let addr = d.local_addr();
    let (mut s, _) = Source::connect_hello(addr, "pbx").await;
    let now = Clock::system().now();
    let snapshot = |ts: Timestamp, seq: u64, since: Timestamp| {
        at(
            ts,
            seq,
            &format!(
                r#""type":"snapshot","agents":[{{"agent":"a1","presence":"not_ready","reason":"break","since":{}}},{{"agent":"a2","presence":"ready","since":{}}}],"calls":[]"#,
                since.0,
                now.plus(-10 * YEAR).0
            ),
        )
    };
    let names = |floor: &Value| -> Vec<String> {
        let mut v: Vec<String> = floor["agents"]
            .as_array()
            .expect("agents")
            .iter()
            .filter_map(|a| a["agent"].as_str().map(str::to_string))
            .collect();
        v.sort();
        v
    };
    // The floor runs on today's time.
    s.send(at(now, 1, r#""type":"agent.login","agent":"a3""#))
        .await;
    assert_eq!(s.until_ack().await, (vec![], 1));
    // The snapshot of a clock a year behind: late itself, and its break a year long.
    s.send(snapshot(now.plus(-YEAR), 2, now.plus(-YEAR - 60_000)))
        .await;
    let (errors, ack) = s.until_ack().await;
    assert_eq!(ack, 1);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let reason = errors[0]["reason"].as_str().expect("reason");
    assert!(reason.starts_with("snapshot_too_old: "), "{reason}");
    let (_, floor) = get_json(addr, "/api/v1/floor").await;
    assert_eq!(names(&floor), ["a3"], "nothing of it applied");
    assert!(sup::violations(addr, "").await.is_empty());
    // A break of a minute, and an agent ready for ten years (harmless): taken.
    s.send(snapshot(now, 3, now.plus(-60_000))).await;
    assert_eq!(s.until_ack().await, (vec![], 3));
    let (_, floor) = get_json(addr, "/api/v1/floor").await;
    let got = names(&floor);
    assert!(
        got.contains(&"a1".to_string()) && got.contains(&"a2".to_string()),
        "{floor}"
    );
    // The break a1 is on continues from where it started: a snapshot that dates it a year
    // back (a source whose clock went wrong after its first snapshot) starts nothing new.
    s.send(snapshot(now, 4, now.plus(-YEAR))).await;
    assert_eq!(s.until_ack().await, (vec![], 4));
    assert!(sup::violations(addr, "").await.is_empty());
    assert_eq!(
        sup::metric(
            addr,
            r#"floorwatch_events_rejected_total{reason="snapshot_too_old"}"#
        )
        .await,
        1.0
    );
    d.shutdown().await;
}

/// A `rulebook` is the daemon's own record of the rules it judges by: a source that sends one
/// is refused (`rulebook_from_source`), and the floor is judged as configured.
#[tokio::test]
async fn a_rulebook_from_a_source_is_refused() {
    let mut c = sup::config();
    c.rules.ring_answer.rings = 1;
    c.rules.ring_answer.ring_cycle = 3_000;
    let d = sup::start(c.clone()).await;
    let addr = d.local_addr();
    // A rulebook a source could forge: the config's own with a ring limit of 10 minutes, and
    // its true digest.
    let mut lenient = c.rules.clone();
    lenient.ring_answer.ring_cycle = 600_000;
    let json = lenient.rulebook_json();
    let digest = lenient.rulebook_digest();
    let (mut s, _) = Source::connect_hello(addr, "pbx").await;
    let now = Clock::system().now();
    s.send(format!(
        "[{},{}]",
        at(
            now,
            1,
            &format!(r#""type":"rulebook","rulebook":{json},"digest":"{digest}""#),
        ),
        at(now, 2, r#""type":"agent.login","agent":"a1""#)
    ))
    .await;
    let (errors, ack) = s.until_ack().await;
    assert_eq!(ack, 2);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["seq"], 1);
    let reason = errors[0]["reason"].as_str().expect("reason");
    assert!(reason.starts_with("rulebook_from_source: "), "{reason}");
    assert_eq!(
        sup::metric(
            addr,
            r#"floorwatch_events_rejected_total{reason="rulebook_from_source"}"#
        )
        .await,
        1.0
    );
    // The ring is judged by the configured 3 s.
    let rang = Clock::system().now();
    s.send(at(
        rang,
        3,
        r#""type":"call.ringing","call":"c1","agent":"a1""#,
    ))
    .await;
    assert_eq!(s.until_ack().await.1, 3);
    let v = sup::eventually("the ring deadline", || async {
        let v = sup::violations(addr, "").await;
        (!v.is_empty()).then_some(v)
    })
    .await;
    assert_eq!(v[0]["at"], rang.plus(3_000).to_string());
    d.shutdown().await;
}

/// `[source.max_future_of]` gives a WebSocket source its own bound by name: an event two
/// minutes ahead is refused from the source held to 30 s and taken from another under the
/// default 5 minutes.
#[tokio::test]
async fn a_websocket_source_named_in_max_future_of_has_its_own_bound() {
    let mut c = sup::config();
    c.source.max_future_of.insert("pbx-strict".into(), 30_000);
    let d = sup::start(c).await;
    let addr = d.local_addr();
    let ahead = Clock::system().now().plus(120_000);
    let (mut strict, _) = Source::connect_hello(addr, "pbx-strict").await;
    strict
        .send(format!(
            "[{},{}]",
            at(ahead, 1, r#""type":"agent.login","agent":"a1""#),
            at(
                Clock::system().now(),
                2,
                r#""type":"agent.login","agent":"a2""#
            )
        ))
        .await;
    let (errors, ack) = strict.until_ack().await;
    assert_eq!(ack, 2);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let reason = errors[0]["reason"].as_str().expect("reason");
    assert!(reason.contains("source.max_future (30s)"), "{reason}");
    let (mut other, _) = Source::connect_hello(addr, "pbx").await;
    other
        .send(at(ahead, 1, r#""type":"agent.login","agent":"a3""#))
        .await;
    assert_eq!(other.until_ack().await, (vec![], 1));
    let (_, _, text) = get(addr, "/metrics").await;
    assert_eq!(
        sup::labelled(
            &text,
            "floorwatch_events_future_total",
            &[("source", "pbx-strict")]
        ),
        Some(1.0)
    );
    d.shutdown().await;
}
