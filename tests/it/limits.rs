//! Hostile input and limits: every rejection reason of the protocol page, one row each,
//! through `decode_frame` and through a live daemon over WebSocket; the `[limits]` bounds
//! (batch length, tracked agents, calls and queues, connections, events per second, frame
//! size) each reached once, with the sender's error and `floorwatch_limit_hits_total`.

use std::time::Duration;

use floorwatch::event::{decode_frame, decode_frame_limited};
use serde_json::Value;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::daemon_support::{self as sup, Got, Source};

const TS: &str = "2026-11-28T01:00:00Z";

/// One rejection: its `floorwatch_events_rejected_total` reason, an event (its `seq`, if
/// any, is `SEQ`), and the exact `reason` of the `error` reply (a prefix when it ends in
/// `…`).
struct Row {
    label: &'static str,
    event: String,
    reason: &'static str,
}

const SEQ: u64 = 7;

fn row(label: &'static str, event: impl Into<String>, reason: &'static str) -> Row {
    Row {
        label,
        event: event.into(),
        reason,
    }
}

/// The `minutes` of an approval: its accepted range, said when it is not met (a huge value is
/// a number above zero, and was once told it must be one).
const MINUTES: &str = "`minutes` must be a number of minutes above 0 and below 16666666667 (10^15 ms), at least 1 ms once rounded to milliseconds";

/// Every decode-time rejection the protocol page lists (invalid JSON, a missing or
/// mistyped required field, an unknown `type`, an identifier that is empty or too long, a
/// `ts` that is not a valid time, a `state` outside its set, `minutes` that is not a number
/// above zero), plus the daemon's own: a bad `seq`, a bad snapshot entry, a batch over
/// `limits.max_batch` (decode rows are sent with `max_batch = 3`).
fn decode_rows() -> Vec<Row> {
    let long = "x".repeat(129);
    vec![
        row("invalid_json", r#"{"type":"agent.login","ts":1,"agent":"a""#, "invalid JSON: …"),
        row("invalid_json", "\u{0}", "invalid JSON: …"),
        row("not_an_object", "5", "an event must be a JSON object"),
        row("not_an_object", r#""agent.login""#, "an event must be a JSON object"),
        row("missing_field", r#"{"ts":1,"seq":7,"agent":"a"}"#, "missing required field `type`"),
        row("missing_field", r#"{"type":"agent.login","seq":7,"agent":"a"}"#, "missing required field `ts`"),
        row("missing_field", r#"{"type":"agent.login","ts":1,"seq":7}"#, "missing required field `agent`"),
        row("missing_field", r#"{"type":"agent.state","ts":1,"seq":7,"agent":"a"}"#, "missing required field `state`"),
        row("missing_field", r#"{"type":"call.queued","ts":1,"seq":7,"call":"c"}"#, "missing required field `queue`"),
        row("missing_field", r#"{"type":"call.ringing","ts":1,"seq":7,"agent":"a"}"#, "missing required field `call`"),
        row("missing_field", r#"{"type":"approval.granted","ts":1,"seq":7,"agent":"a","minutes":5,"by":"l"}"#, "missing required field `reason`"),
        row("missing_field", r#"{"type":"approval.granted","ts":1,"seq":7,"agent":"a","reason":"meeting","by":"l"}"#, "missing required field `minutes`"),
        row("missing_field", r#"{"type":"approval.granted","ts":1,"seq":7,"agent":"a","reason":"meeting","minutes":5}"#, "missing required field `by`"),
        row("missing_field", r#"{"type":"agent.login","ts":null,"seq":7,"agent":"a"}"#, "missing required field `ts`"),
        row("wrong_type", r#"{"type":5,"ts":1,"seq":7,"agent":"a"}"#, "field `type` must be a string"),
        row("wrong_type", r#"{"type":"agent.login","ts":1,"seq":7,"agent":7}"#, "field `agent` must be a string"),
        row("wrong_type", r#"{"type":"agent.login","ts":1,"seq":7,"agent":"a","team":["t"]}"#, "field `team` must be a string"),
        row("wrong_type", r#"{"type":"agent.state","ts":1,"seq":7,"agent":"a","state":"not_ready","reason":3}"#, "field `reason` must be a string"),
        row("wrong_type", r#"{"type":"snapshot","ts":1,"seq":7,"agents":{}}"#, "field `agents` must be an array"),
        row("unknown_type", r#"{"type":"agent.fly","ts":1,"seq":7,"agent":"a"}"#, "unknown event type \"agent.fly\""),
        row("bad_identifier", r#"{"type":"agent.login","ts":1,"seq":7,"agent":""}"#, "identifier `agent` must be a non-empty string of at most 128 bytes"),
        row("bad_identifier", format!(r#"{{"type":"call.abandoned","ts":1,"seq":7,"call":"{long}"}}"#), "identifier `call` must be a non-empty string of at most 128 bytes"),
        row("bad_identifier", r#"{"type":"call.queued","ts":1,"seq":7,"call":"c","queue":""}"#, "identifier `queue` must be a non-empty string of at most 128 bytes"),
        row("bad_ts", r#"{"type":"call.queued","ts":"2026-11-28T09:00:00","seq":7,"call":"c","queue":"q"}"#, "`ts` is not a valid time: \"2026-11-28T09:00:00\""),
        row("bad_ts", r#"{"type":"call.queued","ts":1.5,"seq":7,"call":"c","queue":"q"}"#, "`ts` is not a valid time: 1.5 (milliseconds must be an integer)"),
        row("bad_ts", r#"{"type":"call.queued","ts":99999999999999999,"seq":7,"call":"c","queue":"q"}"#, "`ts` is not a valid time: 99999999999999999"),
        row("bad_ts", r#"{"type":"call.queued","ts":true,"seq":7,"call":"c","queue":"q"}"#, "`ts` is not a valid time: Bool"),
        row("bad_state", r#"{"type":"agent.state","ts":1,"seq":7,"agent":"a","state":"busy"}"#, "`state` must be one of ready, not_ready, acw, not \"busy\""),
        row("bad_state", r#"{"type":"agent.login","ts":1,"seq":7,"agent":"a","state":"READY"}"#, "`state` must be one of ready, not_ready, acw, not \"READY\""),
        row("bad_minutes", r#"{"type":"approval.granted","ts":1,"seq":7,"agent":"a","reason":"meeting","minutes":0,"by":"l"}"#, MINUTES),
        row("bad_minutes", r#"{"type":"approval.granted","ts":1,"seq":7,"agent":"a","reason":"meeting","minutes":-2,"by":"l"}"#, MINUTES),
        row("bad_minutes", r#"{"type":"approval.granted","ts":1,"seq":7,"agent":"a","reason":"meeting","minutes":"5","by":"l"}"#, MINUTES),
        row("bad_minutes", r#"{"type":"approval.granted","ts":1,"seq":7,"agent":"a","reason":"meeting","minutes":1e300,"by":"l"}"#, MINUTES),
        row("bad_minutes", r#"{"type":"approval.granted","ts":1,"seq":7,"agent":"a","reason":"meeting","minutes":1e15,"by":"l"}"#, MINUTES),
        row("bad_minutes", r#"{"type":"approval.granted","ts":1,"seq":7,"agent":"a","reason":"meeting","minutes":16666666667,"by":"l"}"#, MINUTES),
        row("bad_minutes", r#"{"type":"approval.granted","ts":1,"seq":7,"agent":"a","reason":"meeting","minutes":0.000008,"by":"l"}"#, MINUTES),
        row("bad_seq", r#"{"type":"call.ended","ts":1,"seq":-1,"call":"c"}"#, "`seq` must be an integer >= 0"),
        row("bad_seq", r#"{"type":"call.ended","ts":1,"seq":"7","call":"c"}"#, "`seq` must be an integer >= 0"),
        row("bad_snapshot", r#"{"type":"snapshot","ts":1,"seq":7,"agents":[{"agent":"a","presence":"away","since":1}]}"#, "snapshot entry 0 of `agents`: `state` must be one of ready, not_ready, acw, not \"away\""),
        row("bad_snapshot", r#"{"type":"snapshot","ts":1,"seq":7,"calls":[{"call":"c","state":"talking","since":1}]}"#, "snapshot entry 0 of `calls`: missing required field `agent`"),
        row("bad_shift", r#"{"type":"shift.scheduled","ts":1,"seq":7,"shift":"s","agent":"a","start":100,"end":50}"#, "bad shift: `end` must be after `start`"),
        row("bad_shift", r#"{"type":"shift.scheduled","ts":1,"seq":7,"shift":"s","agent":"a","start":0,"end":86400001}"#, "bad shift: a shift is at most 24 hours long"),
        row("bad_shift", r#"{"type":"shift.scheduled","ts":1,"seq":7,"shift":"s","agent":"a","start":"tomorrow","end":50}"#, "bad shift: `start` is not a valid time: \"tomorrow\""),
        row("bad_text", r#"{"type":"demerit.recorded","ts":1,"seq":7,"agent":"a","item":"eating","by":" "}"#, "`by` must be a non-empty string of at most 128 bytes"),
        row("bad_text", format!(r#"{{"type":"violation.waived","ts":1,"seq":7,"violation":3,"by":"qa","why":"{}"}}"#, "x".repeat(1001)), "`why` must be a string of at most 1000 bytes"),
        row("bad_violation", r#"{"type":"violation.waived","ts":1,"seq":7,"violation":0,"by":"qa","why":"x"}"#, "`violation` must be a violation id: an integer >= 1"),
        row("bad_violation", r#"{"type":"violation.unwaived","ts":1,"seq":7,"violation":"7","by":"qa","why":"x"}"#, "`violation` must be a violation id: an integer >= 1"),
        row("bad_period", r#"{"type":"period.closed","ts":1,"seq":7,"period":"2026-13","by":"qa","digest":"0000000000000000000000000000000000000000000000000000000000000000"}"#, "`period` must be a month as YYYY-MM, not \"2026-13\""),
        row("bad_digest", r#"{"type":"period.closed","ts":1,"seq":7,"period":"2026-11","by":"qa","digest":"abc"}"#, "`digest` must be a SHA-256 as 64 hex digits"),
        row("batch_too_large", r#"[{"type":"call.ended","ts":1,"call":"c"},{"type":"call.ended","ts":1,"call":"c"},{"type":"call.ended","ts":1,"call":"c"},{"type":"call.ended","ts":1,"call":"c"}]"#, "batch of 4 events is longer than limits.max_batch (3): nothing of it was applied; send it in smaller batches"),
    ]
}

fn reason_matches(got: &str, want: &str) -> bool {
    match want.strip_suffix('…') {
        Some(prefix) => got.starts_with(prefix),
        None => got == want,
    }
}

#[test]
fn every_rejection_reason_through_decode_frame() {
    let rows = decode_rows();
    let mut labels: Vec<&str> = rows.iter().map(|r| r.label).collect();
    labels.dedup();
    // The table covers every decode label (binary frames are the transport's).
    for l in floorwatch::event::DecodeError::LABELS {
        assert!(labels.contains(&l), "no row for {l}");
    }
    for r in &rows {
        let f = decode_frame_limited(&r.event, 3);
        assert!(f.events.is_empty(), "{}: applied {:?}", r.event, f.events);
        assert_eq!(f.rejected.len(), 1, "{}: {:?}", r.event, f.rejected);
        let rej = &f.rejected[0];
        assert_eq!(rej.error.reason_label(), r.label, "{}", r.event);
        let msg = rej.error.to_string();
        assert!(reason_matches(&msg, r.reason), "{}: got {msg:?}", r.event);
        // The seq is reported when it could be read.
        let want_seq = (r.event.contains(r#""seq":7"#)).then_some(SEQ);
        assert_eq!(rej.seq, want_seq, "{}", r.event);
    }
    // Without a batch limit the long batch decodes.
    let long = &rows.last().map(|r| r.event.clone()).unwrap_or_default();
    assert_eq!(decode_frame(long).events.len(), 4);
}

fn counter(text: &str, name: &str, label: &str, value: &str) -> f64 {
    sup::sample(text, &format!("{name}{{{label}=\"{value}\"}}")).unwrap_or(0.0)
}

/// Reads replies until `want` errors came (skipping acks).
async fn errors_of(s: &mut Source, want: usize) -> Vec<Value> {
    let mut got = Vec::new();
    while got.len() < want {
        let v = s.json().await;
        if v["type"] == "error" {
            got.push(v);
        }
    }
    got
}

fn limited_config() -> floorwatch::config::Config {
    let mut c = sup::config();
    c.limits.max_batch = 3;
    c.rules.limits.max_agents = 2;
    c.rules.limits.max_calls = 2;
    c.rules.limits.max_queues = 1;
    c.rules.limits.max_shifts = 1;
    c
}

#[tokio::test]
async fn every_rejection_reason_over_websocket_with_its_metric() {
    let d = sup::start(limited_config()).await;
    let addr = d.local_addr();
    let (mut s, _) = Source::connect_hello(addr, "pbx").await;
    let rows = decode_rows();
    let before = sup::metrics(addr).await;
    for r in &rows {
        s.send(r.event.clone()).await;
        let e = errors_of(&mut s, 1).await.remove(0);
        let reason = e["reason"].as_str().unwrap_or_default();
        assert!(reason_matches(reason, r.reason), "{}: got {e}", r.event);
        assert_eq!(e["index"], Value::Null, "{e}");
        let want_seq = if r.event.contains(r#""seq":7"#) {
            Value::from(SEQ)
        } else {
            Value::Null
        };
        assert_eq!(e["seq"], want_seq, "{}: {e}", r.event);
    }
    // A binary frame: the transport's rejection.
    s.ws.send_binary(vec![1, 2, 3]).await;
    let e = errors_of(&mut s, 1).await.remove(0);
    assert_eq!(
        e["reason"],
        "binary frames are not accepted: send JSON text frames"
    );
    let after = sup::metrics(addr).await;
    let mut labels: Vec<&str> = rows.iter().map(|r| r.label).collect();
    labels.push("binary_frame");
    labels.sort();
    labels.dedup();
    for l in labels {
        let n = match l {
            "binary_frame" => 1.0,
            l => rows.iter().filter(|r| r.label == l).count() as f64,
        };
        let name = "floorwatch_events_rejected_total";
        assert_eq!(
            counter(&after, name, "reason", l) - counter(&before, name, "reason", l),
            n,
            "{l}"
        );
    }
    assert_eq!(
        counter(&after, "floorwatch_limit_hits_total", "limit", "max_batch")
            - counter(&before, "floorwatch_limit_hits_total", "limit", "max_batch"),
        1.0
    );
    // Nothing rejected reached the engine or the journal: no seq is acked.
    s.send(format!(
        r#"{{"type":"agent.login","ts":"{TS}","seq":1,"agent":"a1"}}"#
    ))
    .await;
    assert_eq!(s.until_ack().await.1, 1);
    d.shutdown().await;
}

trait SendBinary {
    async fn send_binary(&mut self, data: Vec<u8>);
}

impl SendBinary for sup::Ws {
    async fn send_binary(&mut self, data: Vec<u8>) {
        use futures_util::SinkExt;
        self.send(Message::binary(data)).await.expect("send");
    }
}

fn ev(seq: u64, body: &str) -> String {
    format!(r#"{{"ts":"{TS}","seq":{seq},{body}}}"#)
}

#[tokio::test]
async fn engine_limits_refuse_the_event_with_its_seq_and_index_and_change_nothing() {
    let d = sup::start(limited_config()).await;
    let addr = d.local_addr();
    let (mut s, _) = Source::connect_hello(addr, "pbx").await;
    // Reason label, then the setup and the refused event, in one batch each.
    let table = [
        (
            "limit_agents",
            "max_agents",
            [
                ev(1, r#""type":"agent.login","agent":"a1""#),
                ev(2, r#""type":"agent.login","agent":"a2""#),
                ev(3, r#""type":"agent.login","agent":"a3""#),
            ],
        ),
        (
            "limit_queues",
            "max_queues",
            [
                ev(4, r#""type":"call.queued","call":"c1","queue":"q1""#),
                ev(5, r#""type":"agent.state","agent":"a1","state":"ready""#),
                ev(6, r#""type":"call.queued","call":"c2","queue":"q2""#),
            ],
        ),
        (
            "limit_calls",
            "max_calls",
            [
                ev(7, r#""type":"call.queued","call":"c2","queue":"q1""#),
                ev(8, r#""type":"agent.state","agent":"a2","state":"ready""#),
                ev(9, r#""type":"call.dialing","call":"c3","agent":"a1""#),
            ],
        ),
        (
            "limit_shifts",
            "max_shifts",
            [
                ev(
                    10,
                    r#""type":"shift.scheduled","shift":"s1","agent":"a1","start":"2026-11-29T01:00:00Z","end":"2026-11-29T09:00:00Z""#,
                ),
                // A re-plan of the kept shift adds none.
                ev(
                    11,
                    r#""type":"shift.scheduled","shift":"s1","agent":"a1","start":"2026-11-29T02:00:00Z","end":"2026-11-29T10:00:00Z""#,
                ),
                ev(
                    12,
                    r#""type":"shift.scheduled","shift":"s2","agent":"a2","start":"2026-11-29T01:00:00Z","end":"2026-11-29T09:00:00Z""#,
                ),
            ],
        ),
    ];
    let before = sup::metrics(addr).await;
    for (label, key, batch) in &table {
        s.send(format!("[{}]", batch.join(","))).await;
        let (errors, acked) = s.until_ack().await;
        assert_eq!(errors.len(), 1, "{label}: {errors:?}");
        let e = &errors[0];
        assert_eq!(e["type"], "error");
        assert_eq!(e["index"], 2, "{e}");
        let refused_seq = batch[2]
            .split("\"seq\":")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .and_then(|n| n.parse::<u64>().ok());
        assert_eq!(e["seq"].as_u64(), refused_seq, "{e}");
        let reason = e["reason"].as_str().unwrap_or_default();
        assert!(
            reason.starts_with(&format!("{label}: ")) && reason.contains(&format!("limits.{key}")),
            "{reason}"
        );
        // The events before it are stored; the refused one is not.
        assert_eq!(Some(acked + 1), refused_seq, "{label}");
    }
    let after = sup::metrics(addr).await;
    for (label, key, _) in &table {
        let r = "floorwatch_events_rejected_total";
        assert_eq!(
            counter(&after, r, "reason", label) - counter(&before, r, "reason", label),
            1.0,
            "{label}"
        );
        let h = "floorwatch_limit_hits_total";
        assert_eq!(
            counter(&after, h, "limit", key) - counter(&before, h, "limit", key),
            1.0,
            "{key}"
        );
    }
    // The refused agent is not on the floor; the connection still works.
    let (_, floor) = sup::get_json(addr, "/api/v1/floor").await;
    let text = floor.to_string();
    assert!(
        text.contains("\"a1\"") && !text.contains("\"a3\""),
        "{text}"
    );
    // A later event of a known agent still applies; the refused seq 12 was never stored,
    // and seq 13 moves the ack past it (rejections are final, as for decode errors).
    s.send(ev(13, r#""type":"agent.state","agent":"a2","state":"acw""#))
        .await;
    assert_eq!(s.until_ack().await.1, 13);
    d.shutdown().await;
}

#[tokio::test]
async fn approval_for_an_agent_over_max_agents_is_503_naming_the_limit() {
    let mut c = sup::config();
    c.rules.limits.max_agents = 1;
    let d = sup::start(c).await;
    let addr = d.local_addr();
    let (mut s, _) = Source::connect_hello(addr, "pbx").await;
    s.send(ev(1, r#""type":"agent.login","agent":"a1""#)).await;
    assert_eq!(s.until_ack().await.1, 1);
    let (status, body) = sup::post(
        addr,
        "/api/v1/approvals",
        r#"{"agent":"a2","reason":"meeting","minutes":5,"by":"lead"}"#,
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("limits.max_agents"), "{body}");
    d.shutdown().await;
}

#[tokio::test]
async fn ingest_connections_over_the_limit_get_503_until_one_closes() {
    let mut c = sup::config();
    c.limits.max_ingest_connections = 2;
    let d = sup::start(c).await;
    let addr = d.local_addr();
    let (a, _) = Source::connect_hello(addr, "pbx-1").await;
    let (_b, _) = Source::connect_hello(addr, "pbx-2").await;
    match Source::connect(addr, "pbx-3", None).await {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 503),
        Err(e) => panic!("want HTTP 503, got {e}"),
        Ok(_) => panic!("a third connection was accepted"),
    }
    let m = sup::metrics(addr).await;
    assert_eq!(
        counter(
            &m,
            "floorwatch_limit_hits_total",
            "limit",
            "max_ingest_connections"
        ),
        1.0
    );
    drop(a);
    sup::eventually("a freed connection slot", || async {
        Source::connect(addr, "pbx-3", None).await.ok()
    })
    .await;
    d.shutdown().await;
}

#[tokio::test]
async fn wallboard_connections_over_the_limit_get_503() {
    let mut c = sup::config();
    c.limits.max_floor_connections = 1;
    let d = sup::start(c).await;
    let addr = d.local_addr();
    let url = format!("ws://{addr}/ws/floor");
    let (first, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("first wallboard connects");
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 503),
        Err(e) => panic!("want HTTP 503, got {e}"),
        Ok(_) => panic!("a second wallboard was accepted"),
    }
    let m = sup::metrics(addr).await;
    assert_eq!(
        counter(
            &m,
            "floorwatch_limit_hits_total",
            "limit",
            "max_floor_connections"
        ),
        1.0
    );
    drop(first);
    sup::eventually("a freed wallboard slot", || async {
        tokio_tungstenite::connect_async(url.as_str()).await.ok()
    })
    .await;
    d.shutdown().await;
}

#[tokio::test]
async fn a_source_over_max_events_per_second_is_slowed_not_refused() {
    let mut c = sup::config();
    c.limits.max_events_per_second = 100;
    let d = sup::start(c).await;
    let addr = d.local_addr();
    let (mut s, _) = Source::connect_hello(addr, "fast").await;
    let started = tokio::time::Instant::now();
    // 300 events in three batches: one second's burst, then two seconds of waiting.
    for b in 0..3u64 {
        let batch: Vec<String> = (1..=100)
            .map(|i| {
                let seq = b * 100 + i;
                ev(
                    seq,
                    &format!(r#""type":"agent.login","agent":"a{}""#, seq % 50),
                )
            })
            .collect();
        s.send(format!("[{}]", batch.join(","))).await;
    }
    let mut acked = 0;
    while acked < 300 {
        let (errors, a) = s.until_ack().await;
        assert!(errors.is_empty(), "{errors:?}");
        acked = a;
    }
    // A lower bound only: the bucket cannot have let 300 through in under ~2 s.
    assert!(
        started.elapsed() >= Duration::from_millis(1_500),
        "{:?}",
        started.elapsed()
    );
    let m = sup::metrics(addr).await;
    assert!(
        counter(
            &m,
            "floorwatch_limit_hits_total",
            "limit",
            "max_events_per_second"
        ) >= 1.0
    );
    assert_eq!(
        sup::sample(&m, "floorwatch_events_total{type=\"agent.login\"}"),
        Some(300.0)
    );
    d.shutdown().await;
}

#[tokio::test]
async fn a_frame_over_max_frame_is_counted_as_a_limit_hit() {
    let mut c = sup::config();
    c.source.max_frame = 1024;
    let d = sup::start(c).await;
    let addr = d.local_addr();
    let (mut s, _) = Source::connect_hello(addr, "pbx").await;
    s.send("x".repeat(4096)).await;
    match s.next().await {
        Got::Close(Some(f)) => assert_eq!(u16::from(f.code), 1009),
        other => panic!("want close 1009, got {other:?}"),
    }
    let m = sup::metrics(addr).await;
    assert_eq!(
        counter(&m, "floorwatch_limit_hits_total", "limit", "max_frame"),
        1.0
    );
    d.shutdown().await;
}
