//! The durable record through a real daemon: acks after the journal, restart on the same
//! directory, duplicates after a restart, a torn journal tail.

use std::io::Write;
use std::path::Path;

use floorwatch::config::Config;
use serde_json::Value;

use crate::daemon_support::{config, get_json, start, violations, Source};

const T0: i64 = 1_795_800_000_000;

/// A login, a pause without a reason (a violation after the 5 s grace, fired by the next
/// event), and a later login: seq 1..=3 from one source.
fn first_batch() -> String {
    format!(
        r#"[{{"type":"agent.login","ts":{},"seq":1,"agent":"a-1","team":"t-1"}},
{{"type":"agent.state","ts":{},"seq":2,"agent":"a-1","state":"not_ready"}},
{{"type":"agent.login","ts":{},"seq":3,"agent":"a-2","team":"t-1"}}]"#,
        T0,
        T0 + 1_000,
        T0 + 60_000
    )
}

fn config_in(dir: &Path) -> Config {
    let mut c = config();
    c.store.dir = dir.to_path_buf();
    c
}

/// The records of `/api/v1/violations`, without the fields that may differ between runs.
#[tokio::test]
async fn acked_events_and_violations_survive_a_restart_and_a_resent_batch_is_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = start(config_in(dir.path())).await;
    let (mut s, hello) = Source::connect_hello(d.local_addr(), "pbx").await;
    assert_eq!(hello["resume_after"], Value::Null);
    s.send(first_batch()).await;
    assert_eq!(s.until_ack().await.1, 3);
    let before = violations(d.local_addr(), "").await;
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(before[0]["kind"], "no_reason");
    assert_eq!(before[0]["status"], "open");
    drop(s);
    d.shutdown().await;

    let d = start(config_in(dir.path())).await;
    let (mut s, hello) = Source::connect_hello(d.local_addr(), "pbx").await;
    assert_eq!(hello["resume_after"], 3, "{hello}");
    assert_eq!(violations(d.local_addr(), "").await, before);
    // A source that lost its acks sends everything again: all duplicates.
    s.send(first_batch()).await;
    assert_eq!(s.until_ack().await.1, 3);
    let end = format!(
        r#"{{"type":"agent.state","ts":{},"seq":4,"agent":"a-1","state":"ready"}}"#,
        T0 + 120_000
    );
    s.send(end).await;
    assert_eq!(s.until_ack().await.1, 4);
    let after = violations(d.local_addr(), "").await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["id"], before[0]["id"]);
    assert_eq!(after[0]["status"], "closed");
    assert_eq!(after[0]["evidence"]["ended_by"]["seq"], 4);
    drop(s);
    d.shutdown().await;

    // A third start restores from the checkpoint written at shutdown.
    let d = start(config_in(dir.path())).await;
    let (_s, hello) = Source::connect_hello(d.local_addr(), "pbx").await;
    assert_eq!(hello["resume_after"], 4, "{hello}");
    assert_eq!(violations(d.local_addr(), "").await, after);
    d.shutdown().await;
}

#[tokio::test]
async fn a_torn_journal_tail_is_truncated_and_nothing_acked_is_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = start(config_in(dir.path())).await;
    let (mut s, _) = Source::connect_hello(d.local_addr(), "pbx").await;
    s.send(first_batch()).await;
    assert_eq!(s.until_ack().await.1, 3);
    let before = violations(d.local_addr(), "").await;
    drop(s);
    d.shutdown().await;

    // Power loss in the middle of a write: half a frame of garbage after the last record.
    let journal = dir.path().join("journal");
    let mut segments: Vec<_> = std::fs::read_dir(&journal)
        .expect("journal dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segments.sort();
    let last = segments.last().expect("a segment");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(last)
        .expect("open segment");
    f.write_all(&[0x40, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, b'{', b'"'])
        .expect("garbage");
    drop(f);
    // Without the checkpoint the whole journal is replayed through the torn tail.
    let c = rusqlite::Connection::open(dir.path().join("checkpoints.db")).expect("db");
    c.execute("DELETE FROM checkpoints", []).expect("delete");
    drop(c);
    let c = rusqlite::Connection::open(dir.path().join("floorwatch.db")).expect("db");
    c.execute("DELETE FROM violations", []).expect("delete");
    drop(c);

    let d = start(config_in(dir.path())).await;
    let (mut s, hello) = Source::connect_hello(d.local_addr(), "pbx").await;
    assert_eq!(hello["resume_after"], 3, "{hello}");
    assert_eq!(violations(d.local_addr(), "").await, before);
    let next = format!(
        r#"{{"type":"agent.state","ts":{},"seq":4,"agent":"a-1","state":"ready"}}"#,
        T0 + 120_000
    );
    s.send(next).await;
    assert_eq!(s.until_ack().await.1, 4);
    drop(s);
    d.shutdown().await;
    let quarantined = std::fs::read_dir(&journal)
        .expect("journal dir")
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().contains(".tail-"));
    assert!(quarantined, "the cut bytes are kept beside the segment");
}

#[test]
fn store_durations_parse() {
    let c = Config::from_toml_str("[store]\ncheckpoint_every = \"30s\"\nretention = \"400d\"\n")
        .expect("valid");
    assert_eq!(c.store.checkpoint_every, 30_000);
    assert_eq!(c.store.retention, 400 * 86_400_000);
    assert!(Config::from_toml_str("[store]\ncheckpoint_every = \"0s\"\n").is_err());
}

/// POST a JSON body: status and JSON answer (`null` if it is not JSON).
pub async fn post_json(addr: std::net::SocketAddr, path: &str, body: &str) -> (u16, Value) {
    let (status, body) = crate::daemon_support::post(addr, path, body).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_waiver_is_kept_with_the_violation_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = start(config_in(dir.path())).await;
    let (mut s, _) = Source::connect_hello(d.local_addr(), "pbx").await;
    s.send(first_batch()).await;
    assert_eq!(s.until_ack().await.1, 3);
    let v = violations(d.local_addr(), "").await;
    let id = v[0]["id"].as_u64().expect("id");
    let waive = format!("/api/v1/violations/{id}/waive");
    let (status, _) = post_json(d.local_addr(), &waive, r#"{"by":"zhang.wei","why":" "}"#).await;
    assert_eq!(status, 400);
    let (status, _) = post_json(
        d.local_addr(),
        "/api/v1/violations/999/waive",
        r#"{"by":"zhang.wei","reason":"outage"}"#,
    )
    .await;
    assert_eq!(status, 404);
    let (status, r) = post_json(
        d.local_addr(),
        &waive,
        r#"{"by":"zhang.wei","reason":"phone system outage"}"#,
    )
    .await;
    // A waiver is a journaled event; on this open loopback surface `by` is the body's.
    assert_eq!(status, 201, "{r}");
    assert_eq!(r["violation"]["status"], "waived");
    assert_eq!(r["violation"]["waiver"]["by"], "zhang.wei");
    drop(s);
    d.shutdown().await;

    let d = start(config_in(dir.path())).await;
    let (mut s, _) = Source::connect_hello(d.local_addr(), "pbx").await;
    // The pause ends: the waived violation stays waived, with its end on record.
    let end = format!(
        r#"{{"type":"agent.state","ts":{},"seq":4,"agent":"a-1","state":"ready"}}"#,
        T0 + 120_000
    );
    s.send(end).await;
    assert_eq!(s.until_ack().await.1, 4);
    let (_, body) = get_json(d.local_addr(), "/api/v1/violations?status=waived").await;
    let waived = body["violations"].as_array().cloned().unwrap_or_default();
    assert_eq!(waived.len(), 1, "{body}");
    assert_eq!(waived[0]["waiver"]["reason"], "phone system outage");
    assert_eq!(waived[0]["evidence"]["ended_by"]["seq"], 4);
    drop(s);
    d.shutdown().await;
}

#[tokio::test]
async fn an_approval_is_a_journaled_event_listed_while_active() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = start(config_in(dir.path())).await;
    let (status, _) = post_json(
        d.local_addr(),
        "/api/v1/approvals",
        r#"{"agent":"a-1","reason":"meeting","minutes":0,"by":"zhang.wei"}"#,
    )
    .await;
    assert_eq!(status, 400, "minutes must be > 0");
    let (status, r) = post_json(
        d.local_addr(),
        "/api/v1/approvals",
        r#"{"agent":"a-1","reason":"meeting","minutes":30,"by":"zhang.wei"}"#,
    )
    .await;
    assert_eq!(status, 201, "{r}");
    assert_eq!(r["stored"], true);
    let (_, list) = get_json(d.local_addr(), "/api/v1/approvals").await;
    assert_eq!(list["approvals"][0]["agent"], "a-1", "{list}");
    d.shutdown().await;

    let d = start(config_in(dir.path())).await;
    let (_, list) = get_json(d.local_addr(), "/api/v1/approvals").await;
    assert_eq!(list["approvals"][0]["reason"], "meeting", "{list}");
    d.shutdown().await;
}
