//! The `nats-jetstream` source against a real `nats-server` (one server with user and
//! password): what a daemon applies, journals, acknowledges and answers, across a restart;
//! and what its API publishes to the stream. The pair, the relay and failover are in
//! `tests/it/pair.rs`.

use std::time::Duration;

use floorwatch::config::Config;
use serde_json::Value;

use crate::crash::START;
use crate::daemon_support::{
    self as sup, config, eventually, get, get_json, labelled, metrics, post, violations,
};
use crate::nats::{messages, Nats};

const AUTH: &str = "authorization { user: fw, password: s3cret }";

/// `sup::config()` reading `stream`'s `floor.>` as consumer `durable`.
pub fn stream_config(nats: &Nats, durable: &str, password: &str) -> Config {
    let toml = format!(
        r#"
[[sources]]
kind = "nats-jetstream"
name = "floor"
url = {}
stream = "FLOOR"
subject = "floor.>"
durable = "{durable}"
username = "fw"
password = "{password}"
"#,
        nats.urls_toml()
    );
    let parsed = Config::from_toml_str(&toml).unwrap_or_else(|e| panic!("{e}"));
    let mut c = config();
    c.jetstream = parsed.jetstream;
    c
}

fn ts(ms: i64) -> i64 {
    START.0 + ms
}

async fn publish(js: &async_nats::jetstream::Context, subject: &str, payload: String) -> u64 {
    js.publish(subject.to_string(), payload.into())
        .await
        .expect("publish")
        .await
        .expect("stream ack")
        .sequence
}

#[tokio::test]
async fn a_stream_source_journals_then_acks_counts_bad_messages_and_resumes_without_duplicates() {
    let nats = Nats::start(1, AUTH).await;
    let client = nats.client(Some(("fw", "s3cret"))).await;
    nats.create_stream(&client, "FLOOR", &["floor.>"], 1).await;
    let js = async_nats::jetstream::new(client.clone());
    let login = format!(
        r#"{{"type":"agent.login","ts":{},"agent":"a1","team":"t1"}}"#,
        ts(0)
    );
    publish(&js, "floor.pbx", login).await;
    // A batch: one message, two events.
    let ring = format!(
        r#"[{{"type":"call.queued","ts":{},"call":"c1","queue":"q"}},{{"type":"call.ringing","ts":{},"call":"c1","agent":"a1"}}]"#,
        ts(1_000),
        ts(2_000)
    );
    publish(&js, "floor.pbx", ring).await;
    publish(&js, "floor.pbx", "{not json".to_string()).await;
    let answer = format!(
        r#"{{"type":"call.answered","ts":{},"call":"c1","agent":"a1"}}"#,
        ts(30_000)
    );
    let last = publish(&js, "floor.pbx", answer).await;
    assert_eq!(last, 4);

    let cfg = stream_config(&nats, "a", "s3cret");
    let dir = cfg.store.dir.clone();
    let daemon = sup::start(cfg.clone()).await;
    let addr = daemon.local_addr();
    let v = eventually("the late answer's violation", || async {
        let v = violations(addr, "").await;
        (!v.is_empty()).then_some(v)
    })
    .await;
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0]["rule"], "ring_answer");
    assert_eq!(v[0]["kind"], "late");
    // The evidence names the stream's source and the message's sequence (the batch's last
    // event carries it).
    assert_eq!(
        v[0]["evidence"]["started_by"]["source"], "floor",
        "{}",
        v[0]
    );
    assert_eq!(v[0]["evidence"]["started_by"]["seq"], 2, "{}", v[0]);

    // Caught up, the daemon put its config's rulebook on the stream (a fresh store had
    // none) and applied it from there.
    let api = eventually("the rulebook on the stream", || async {
        let m = messages(&client, "FLOOR", "floor.api").await;
        (!m.is_empty()).then_some(m)
    })
    .await;
    assert_eq!(api[0].0, 5);
    let rulebook: Value = serde_json::from_slice(&api[0].1).expect("json");
    assert_eq!(rulebook["type"], "rulebook", "{rulebook}");
    assert_eq!(
        rulebook["digest"].as_str(),
        Some(cfg.rules.rulebook_digest().as_str())
    );
    // Acknowledged to NATS once journaled: all five, the bad one too.
    let stream = js.get_stream("FLOOR").await.expect("stream");
    eventually("the consumer's ack floor at 5", || async {
        let info = stream.consumer_info("a").await.ok()?;
        (info.ack_floor.stream_sequence == 5 && info.num_ack_pending == 0).then_some(())
    })
    .await;
    let m = metrics(addr).await;
    let outcome = |o: &str| {
        labelled(
            &m,
            "floorwatch_adapter_messages_total",
            &[("source", "floor"), ("outcome", o)],
        )
    };
    assert_eq!(
        outcome("mapped"),
        Some(4.0),
        "three of the floor, the rulebook: {m}"
    );
    assert_eq!(outcome("malformed"), Some(1.0), "{m}");
    assert_eq!(
        labelled(
            &m,
            "floorwatch_events_rejected_total",
            &[("reason", "invalid_json")]
        ),
        Some(1.0)
    );
    assert_eq!(
        labelled(&m, "floorwatch_stream_pending", &[("source", "floor")]),
        Some(0.0)
    );
    assert_eq!(
        labelled(&m, "floorwatch_adapter_connected", &[("source", "floor")]),
        Some(1.0)
    );
    let (status, _, body) = get(addr, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    // Its events come from the stream only: /ingest would feed this daemon alone.
    let (status, _, body) = get(addr, "/ingest?source=pbx").await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("floorwatch relay"), "{body}");

    // A waiver through the API is published to the stream, then applied from it.
    let id = v[0]["id"].as_u64().expect("id");
    let (status, body) = post(
        addr,
        &format!("/api/v1/violations/{id}/waive"),
        r#"{"why":"the phone was broken","by":"lead-1"}"#,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let on_stream = messages(&client, "FLOOR", "floor.api").await;
    assert_eq!(on_stream.len(), 2, "{on_stream:?}");
    let waiver: Value = serde_json::from_slice(&on_stream[1].1).expect("json");
    assert_eq!(waiver["type"], "violation.waived");
    assert_eq!(waiver["violation"], id);
    assert!(
        waiver["id"].as_str().is_some_and(|i| i.starts_with("a:")),
        "{waiver}"
    );
    let (_, one) = get_json(addr, &format!("/api/v1/violations/{id}")).await;
    assert_eq!(one["status"], "waived", "{one}");

    // A restart resumes after what the journal holds: nothing again, the new message once.
    assert!(daemon.shutdown().await);
    publish(
        &js,
        "floor.pbx",
        format!(
            r#"{{"type":"agent.logout","ts":{},"agent":"a1"}}"#,
            ts(40_000)
        ),
    )
    .await;
    let mut again_cfg = cfg.clone();
    again_cfg.store.dir = dir;
    let daemon = sup::start(again_cfg).await;
    let addr = daemon.local_addr();
    eventually("the logout", || async {
        let m = metrics(addr).await;
        (labelled(&m, "floorwatch_events_total", &[("type", "agent.logout")]) == Some(1.0))
            .then_some(())
    })
    .await;
    let m = metrics(addr).await;
    assert_eq!(
        sup::total(&m, "floorwatch_events_total"),
        1.0,
        "only the new event: {m}"
    );
    assert_eq!(sup::total(&m, "floorwatch_stream_redelivered_total"), 0.0);
    assert_eq!(
        sup::total(&m, "floorwatch_stream_resyncs_total"),
        0.0,
        "the consumer stood at the daemon's position: kept"
    );
    let after = violations(addr, "").await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["status"], "waived");
    assert!(daemon.shutdown().await);
}

#[tokio::test]
async fn a_wrong_password_keeps_the_daemon_unready_and_the_api_refuses_changes() {
    let nats = Nats::start(1, AUTH).await;
    let client = nats.client(Some(("fw", "s3cret"))).await;
    nats.create_stream(&client, "FLOOR", &["floor.>"], 1).await;
    let daemon = sup::start(stream_config(&nats, "b", "wrong")).await;
    let addr = daemon.local_addr();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, _, body) = get(addr, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("not connected"), "{body}");
    // A change the stream cannot take is refused, and nothing changes.
    let (status, body) = post(
        addr,
        "/api/v1/approvals",
        r#"{"agent":"a1","reason":"meeting","minutes":30,"by":"lead-1"}"#,
    )
    .await;
    assert!(status == 503 || status == 504, "{status} {body}");
    let (_, approvals) = get_json(addr, "/api/v1/approvals").await;
    assert_eq!(approvals["approvals"], serde_json::json!([]));
    assert!(daemon.shutdown().await);
}
