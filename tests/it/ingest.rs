//! Listen-mode ingest over real sockets: hello and resume, acks, per-event errors,
//! duplicates, late events, the frame limit, bearer tokens, binary frames.

use serde_json::Value;
use tokio_tungstenite::tungstenite;

use crate::daemon_support::{self as sup, get, get_with, Got, Source};

fn login(seq: u64, ts: &str, agent: &str) -> String {
    format!(
        r#"{{"type":"agent.login","ts":"{ts}","seq":{seq},"agent":"{agent}","team":"hotline-1"}}"#
    )
}

#[tokio::test]
async fn hello_resume_after_is_null_then_the_highest_seq_after_reconnect() {
    let d = sup::start(sup::config()).await;
    let addr = d.local_addr();

    let (mut s, hello) = Source::connect_hello(addr, "pbx-1").await;
    assert_eq!(hello["resume_after"], Value::Null);
    // A batch, then a single-event frame on the same connection.
    s.send(format!(
        "[{},{}]",
        login(1, "2026-11-28T01:00:00Z", "a1"),
        login(2, "2026-11-28T01:00:01Z", "a2")
    ))
    .await;
    let (before, acked) = s.until_ack().await;
    assert!(before.is_empty(), "{before:?}");
    assert_eq!(acked, 2);
    s.send(login(3, "2026-11-28T01:00:02Z", "a3")).await;
    assert_eq!(s.until_ack().await.1, 3);
    drop(s);

    let (_s2, hello) = Source::connect_hello(addr, "pbx-1").await;
    assert_eq!(hello["resume_after"], 3, "{hello}");
    // Another source name has its own resume point.
    let (_s3, hello) = Source::connect_hello(addr, "pbx-2").await;
    assert_eq!(hello["resume_after"], Value::Null, "{hello}");
    d.shutdown().await;
}

#[tokio::test]
async fn batch_with_bad_events_gets_one_error_per_bad_event_and_the_good_ones_apply() {
    let d = sup::start(sup::config()).await;
    let addr = d.local_addr();
    let (mut s, _) = Source::connect_hello(addr, "default").await;
    s.send(format!(
        r#"[{},
            {{"type":"agent.teleport","ts":"2026-11-28T01:00:01Z","seq":2,"agent":"a1"}},
            {},
            5,
            {{"type":"agent.state","ts":"2026-11-28T01:00:03Z","seq":5,"agent":"a1","state":"sleeping"}}]"#,
        login(1, "2026-11-28T01:00:00Z", "a1"),
        login(3, "2026-11-28T01:00:02Z", "a2"),
    ))
    .await;
    let (errors, acked) = s.until_ack().await;
    assert_eq!(acked, 3, "the rejected seq 5 is not acked");
    let got: Vec<(Value, Value)> = errors
        .iter()
        .map(|e| {
            assert_eq!(e["type"], "error", "{e}");
            assert!(e["reason"].as_str().is_some_and(|r| !r.is_empty()), "{e}");
            (e["index"].clone(), e["seq"].clone())
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (Value::from(1), Value::from(2)),
            (Value::from(3), Value::Null),
            (Value::from(4), Value::from(5)),
        ]
    );

    // Invalid JSON: one error without index; the connection stays open.
    s.send("{not json").await;
    let e = s.json().await;
    assert_eq!(e["type"], "error");
    assert_eq!(e["index"], Value::Null);
    s.send(login(6, "2026-11-28T01:00:04Z", "a3")).await;
    assert_eq!(s.until_ack().await.1, 6);

    let (_, _, metrics) = get(addr, "/metrics").await;
    for (reason, n) in [
        ("unknown_type", 1.0),
        ("not_an_object", 1.0),
        ("bad_state", 1.0),
        ("invalid_json", 1.0),
    ] {
        assert_eq!(
            sup::sample(
                &metrics,
                &format!(r#"floorwatch_events_rejected_total{{reason="{reason}"}}"#)
            ),
            Some(n),
            "{reason}"
        );
    }
    assert_eq!(
        sup::sample(&metrics, r#"floorwatch_events_total{type="agent.login"}"#),
        Some(3.0)
    );
    let (_, floor) = sup::get_json(addr, "/api/v1/floor").await;
    let agents: Vec<&str> = floor["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .filter_map(|a| a["agent"].as_str())
        .collect();
    assert_eq!(agents, ["a1", "a2", "a3"]);
    d.shutdown().await;
}

#[tokio::test]
async fn duplicates_are_ignored_and_counted() {
    let d = sup::start(sup::config()).await;
    let addr = d.local_addr();
    let (mut s, _) = Source::connect_hello(addr, "default").await;
    s.send(format!(
        "[{},{}]",
        login(1, "2026-11-28T01:00:00Z", "a1"),
        login(2, "2026-11-28T01:00:01Z", "a2")
    ))
    .await;
    assert_eq!(s.until_ack().await.1, 2);
    // A source replaying its buffer after a reconnect resends what was applied.
    s.send(format!(
        "[{},{}]",
        login(1, "2026-11-28T01:00:00Z", "a1"),
        login(2, "2026-11-28T01:00:01Z", "dup-agent")
    ))
    .await;
    let (before, acked) = s.until_ack().await;
    assert!(before.is_empty(), "duplicates are not errors: {before:?}");
    assert_eq!(acked, 2);
    let (_, _, metrics) = get(addr, "/metrics").await;
    assert_eq!(
        sup::sample(&metrics, "floorwatch_events_duplicate_total"),
        Some(2.0)
    );
    assert_eq!(
        sup::sample(&metrics, r#"floorwatch_events_total{type="agent.login"}"#),
        Some(2.0)
    );
    let (_, floor) = sup::get_json(addr, "/api/v1/floor").await;
    assert!(
        !floor["agents"].to_string().contains("dup-agent"),
        "a duplicate was applied: {floor}"
    );
    d.shutdown().await;
}

#[tokio::test]
async fn a_late_event_is_counted() {
    let d = sup::start(sup::config()).await;
    let addr = d.local_addr();
    let (mut s, _) = Source::connect_hello(addr, "default").await;
    s.send(login(1, "2026-11-28T01:00:10Z", "a1")).await;
    s.send(login(2, "2026-11-28T01:00:05Z", "a2")).await;
    s.until_ack().await;
    assert_eq!(s.until_ack().await.1, 2);
    let (_, _, metrics) = get(addr, "/metrics").await;
    assert_eq!(
        sup::sample(&metrics, "floorwatch_events_late_total"),
        Some(1.0)
    );
    let (_, floor) = sup::get_json(addr, "/api/v1/floor").await;
    let clock = floor["engine_clock"].as_str().expect("engine clock");
    assert!(
        clock >= "2026-11-28T01:00:10.000Z",
        "the clock never goes back: {clock}"
    );
    d.shutdown().await;
}

#[tokio::test]
async fn binary_frames_get_an_error_and_the_connection_stays_open() {
    let d = sup::start(sup::config()).await;
    let addr = d.local_addr();
    let (mut s, _) = Source::connect_hello(addr, "default").await;
    use futures_util::SinkExt;
    s.ws.send(tungstenite::Message::binary(
        login(1, "2026-11-28T01:00:00Z", "a1").into_bytes(),
    ))
    .await
    .expect("send");
    let e = s.json().await;
    assert_eq!(e["type"], "error", "{e}");
    s.send(login(1, "2026-11-28T01:00:00Z", "a1")).await;
    assert_eq!(s.until_ack().await.1, 1);
    let (_, _, metrics) = get(addr, "/metrics").await;
    assert_eq!(
        sup::sample(
            &metrics,
            r#"floorwatch_events_rejected_total{reason="binary_frame"}"#
        ),
        Some(1.0)
    );
    d.shutdown().await;
}

#[tokio::test]
async fn frame_over_max_frame_is_closed_with_1009() {
    let mut c = sup::config();
    c.source.max_frame = 4096;
    let d = sup::start(c).await;
    let addr = d.local_addr();
    let (mut s, _) = Source::connect_hello(addr, "default").await;
    // Under the limit is fine.
    s.send(login(1, "2026-11-28T01:00:00Z", "a1")).await;
    assert_eq!(s.until_ack().await.1, 1);
    let pad = "x".repeat(8000);
    s.send(format!(
        r#"{{"type":"agent.login","ts":"2026-11-28T01:00:01Z","seq":2,"agent":"a2","pad":"{pad}"}}"#
    ))
    .await;
    match s.next().await {
        Got::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1009, "{frame:?}"),
        other => panic!("want a close frame with code 1009, got {other:?}"),
    }
    d.shutdown().await;
}

#[tokio::test]
async fn ingest_requires_the_bearer_token_when_configured() {
    let mut c = sup::config();
    c.server.tokens.ingest = vec!["s3cret".into()];
    let d = sup::start(c).await;
    let addr = d.local_addr();
    for token in [None, Some("wrong")] {
        match Source::connect(addr, "default", token).await {
            Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401, "{token:?}"),
            Err(e) => panic!("{token:?}: want HTTP 401, got {e}"),
            Ok(_) => panic!("{token:?}: connected without the right token"),
        }
    }
    let (status, ctype, body) = get(addr, "/ingest").await;
    assert_eq!(status, 401);
    assert!(ctype.starts_with("application/json"), "{ctype}");
    assert!(body.contains("\"error\""), "{body}");
    let (status, _, _) = get_with(addr, "/ingest", &[("Authorization", "Bearer s3cret")]).await;
    assert_ne!(
        status, 401,
        "the right token passes (then the upgrade is missing)"
    );

    let mut s = Source::connect(addr, "default", Some("s3cret"))
        .await
        .expect("the right token connects");
    assert_eq!(s.json().await["type"], "hello");
    d.shutdown().await;
}

#[tokio::test]
async fn a_frame_far_over_the_default_limit_is_closed_with_1009() {
    let d = sup::start(sup::config()).await;
    let addr = d.local_addr();
    let (s, _) = Source::connect_hello(addr, "default").await;
    let pad = "x".repeat(3 << 20);
    let big = format!(r#"{{"type":"agent.login","ts":1,"agent":"a","pad":"{pad}"}}"#);
    use futures_util::{SinkExt, StreamExt};
    let (mut tx, mut rx) = s.ws.split();
    // The peer may still be writing when the daemon closes: read concurrently, as a real
    // source does.
    let writer = tokio::spawn(async move {
        let _ = tx.send(tungstenite::Message::text(big)).await;
        tx
    });
    let got = tokio::time::timeout(sup::WAIT, async {
        while let Some(m) = rx.next().await {
            match m {
                Ok(tungstenite::Message::Close(f)) => return Ok(f),
                Ok(_) => continue,
                Err(e) => return Err(e.to_string()),
            }
        }
        Err("stream ended".to_string())
    })
    .await
    .expect("in time");
    match got {
        Ok(Some(frame)) => assert_eq!(u16::from(frame.code), 1009, "{frame:?}"),
        other => panic!("want a close frame with code 1009, got {other:?}"),
    }
    let _ = writer.await;
    d.shutdown().await;
}

#[tokio::test]
async fn a_source_that_does_not_read_holds_up_nobody() {
    let mut c = sup::config();
    // One error reply per event of a 400,001-event batch is what backs the replies up; the
    // default limits.max_batch would refuse such a batch with a single error.
    c.limits.max_batch = 1_000_000;
    let d = sup::start(c).await;
    let addr = d.local_addr();
    // This source sends frames of rejected events and never reads the errors: its replies
    // back up until its writes block.
    let (mut stuck, _) = Source::connect_hello(addr, "stuck").await;
    let frame = format!("[{}1]", "1,".repeat(400_000));
    for _ in 0..3 {
        use futures_util::SinkExt;
        let send = stuck.ws.send(tungstenite::Message::text(frame.clone()));
        // Our own send may block too once the daemon stops reading this connection.
        if tokio::time::timeout(std::time::Duration::from_secs(2), send)
            .await
            .is_err()
        {
            break;
        }
    }
    // Another source is served as usual, and the engine task is not held up.
    let (mut s, _) = Source::connect_hello(addr, "pbx").await;
    s.send(login(1, "2026-11-28T01:00:00Z", "a1")).await;
    let acked = tokio::time::timeout(std::time::Duration::from_secs(2), s.until_ack())
        .await
        .expect("ack in time");
    assert_eq!(acked.1, 1);
    let (_, _, metrics) = get(addr, "/metrics").await;
    assert!(
        sup::sample(
            &metrics,
            r#"floorwatch_events_rejected_total{reason="not_an_object"}"#
        )
        .is_some_and(|n| n >= 400_000.0),
        "the stuck source's frames were read:\n{metrics}"
    );
    // Shutdown is not held up by it.
    tokio::time::timeout(std::time::Duration::from_secs(3), d.shutdown())
        .await
        .expect("shutdown in time");
    drop(stuck);
}

/// A source that sends thousands of frames without waiting: the daemon takes the frames
/// already received together (one engine round trip, one journal write), and still answers
/// every bad event of every frame, applies and stores each good event once, and acks the end.
#[tokio::test]
async fn frames_sent_without_waiting_are_applied_once_with_every_error_and_acked() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let c = sup::config();
    let store = c.store.dir.clone();
    let d = sup::start(c).await;
    let addr = d.local_addr();
    let (mut s, _) = Source::connect_hello(addr, "burst").await;
    const FRAMES: u64 = 3_000;
    let base = 1_795_827_600_000u64; // 2026-11-28T01:00:00Z
    let mut want_errors = Vec::new();
    let mut good = 0u64;
    let mut seq = 0u64;
    for f in 0..FRAMES {
        let text = if f % 3 == 0 {
            // A batch of three: login, a state outside its set, a state change.
            let (a, b, c) = (seq + 1, seq + 2, seq + 3);
            seq += 3;
            want_errors.push((Value::from(1), Value::from(b)));
            good += 2;
            format!(
                r#"[{{"type":"agent.login","ts":{t},"seq":{a},"agent":"a{f}","team":"t"}},
                    {{"type":"agent.state","ts":{t},"seq":{b},"agent":"a{f}","state":"lunch"}},
                    {{"type":"agent.state","ts":{t},"seq":{c},"agent":"a{f}","state":"acw"}}]"#,
                t = base + f
            )
        } else if f % 100 == 1 {
            seq += 1;
            want_errors.push((Value::Null, Value::from(seq)));
            format!(
                r#"{{"type":"agent.teleport","ts":{},"seq":{seq},"agent":"x"}}"#,
                base + f
            )
        } else {
            seq += 1;
            good += 1;
            format!(
                r#"{{"type":"agent.login","ts":{},"seq":{seq},"agent":"b{f}","team":"t"}}"#,
                base + f
            )
        };
        s.ws.feed(Message::text(text)).await.expect("feed");
    }
    s.ws.flush().await.expect("flush");
    let last = seq;
    let mut errors = Vec::new();
    let mut acks = Vec::new();
    while acks.last() != Some(&last) {
        let v = s.json().await;
        match v["type"].as_str() {
            Some("error") => errors.push((v["index"].clone(), v["seq"].clone())),
            Some("ack") => acks.push(v["seq"].as_u64().expect("seq")),
            _ => panic!("unexpected {v}"),
        }
    }
    assert!(
        acks.windows(2).all(|w| w[0] <= w[1]),
        "acks go up: {acks:?}"
    );
    errors.sort_by_key(|(_, s)| s.as_u64());
    assert_eq!(errors, want_errors);
    let (_, _, metrics) = get(addr, "/metrics").await;
    let applied: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("floorwatch_events_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(applied as u64, good);
    d.shutdown().await;
    // The journal holds each good event once (besides the daemon's own rulebook record).
    let mut out = Vec::new();
    floorwatch::report::export(&store, None, None, &mut out).expect("export");
    let stored: Vec<u64> = String::from_utf8(out)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json"))
        .filter(|v| v["type"] != "rulebook")
        .map(|v| v["source_seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(stored.len() as u64, good);
    let distinct: std::collections::BTreeSet<_> = stored.iter().collect();
    assert_eq!(distinct.len(), stored.len(), "no event stored twice");
}
