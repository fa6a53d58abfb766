//! Connect-mode ingest: the daemon dials a phone system (a WebSocket server run by the test),
//! sends hello, takes events, and redials when the connection drops.

use floorwatch::config::SourceMode;
use futures_util::SinkExt;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use crate::daemon_support::{self as sup, accept};

#[tokio::test]
async fn connect_mode_dials_sends_hello_takes_events_and_redials() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let pbx = listener.local_addr().expect("addr");
    let mut c = sup::config();
    c.source.mode = SourceMode::Connect;
    c.source.url = Some(format!("ws://{pbx}/events"));
    c.source.headers = vec![("Authorization".into(), "Bearer pbx-token".into())];
    c.source.name = "pbx-east".into();
    let d = sup::start(c).await;
    let addr = d.local_addr();

    let (mut ws, auth) = accept(&listener).await;
    assert_eq!(auth.as_deref(), Some("Bearer pbx-token"));
    let hello = sup::read_json(&mut ws).await;
    assert_eq!(hello["type"], "hello", "{hello}");
    assert_eq!(hello["resume_after"], Value::Null, "{hello}");
    ws.send(Message::text(
        r#"[{"type":"agent.login","ts":"2026-11-28T01:00:00Z","seq":1,"agent":"a1"},
            {"type":"agent.login","ts":"2026-11-28T01:00:01Z","seq":2,"agent":"a2"}]"#,
    ))
    .await
    .expect("send");
    let ack = sup::read_json(&mut ws).await;
    assert_eq!(ack, serde_json::json!({"type": "ack", "seq": 2}));
    let (status, _, _) = sup::get(addr, "/readyz").await;
    assert_eq!(status, 200, "ready while the source is connected");

    // The phone system goes away; the daemon is not ready, and dials again.
    drop(ws);
    sup::eventually("readyz 503 after the drop", || async {
        (sup::get(addr, "/readyz").await.0 == 503).then_some(())
    })
    .await;
    let (mut ws, _) = accept(&listener).await;
    let hello = sup::read_json(&mut ws).await;
    assert_eq!(hello["resume_after"], 2, "resumes where it was: {hello}");
    sup::eventually("readyz 200 after the redial", || async {
        (sup::get(addr, "/readyz").await.0 == 200).then_some(())
    })
    .await;
    let (_, _, metrics) = sup::get(addr, "/metrics").await;
    assert!(
        sup::sample(&metrics, "floorwatch_source_reconnects_total").is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    assert_eq!(
        sup::sample(&metrics, "floorwatch_source_connected"),
        Some(1.0)
    );
    d.shutdown().await;
}

#[tokio::test]
async fn connect_mode_keeps_dialing_until_the_source_is_up() {
    // A port with nothing behind it yet.
    let pbx = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr");
    let mut c = sup::config();
    c.source.mode = SourceMode::Connect;
    c.source.url = Some(format!("ws://{pbx}/events"));
    let d = sup::start(c).await;
    let addr = d.local_addr();
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert_eq!(
        sup::get(addr, "/readyz").await.0,
        503,
        "not ready without the source"
    );
    let (_, _, metrics) = sup::get(addr, "/metrics").await;
    assert!(
        sup::sample(&metrics, "floorwatch_source_reconnects_total").is_some_and(|n| n >= 1.0),
        "it redials: {metrics}"
    );
    let listener = TcpListener::bind(pbx)
        .await
        .expect("bind the same port again");
    let (mut ws, _) = accept(&listener).await;
    let hello = sup::read_json(&mut ws).await;
    assert_eq!(hello["type"], "hello");
    sup::eventually("ready once connected", || async {
        (sup::get(addr, "/readyz").await.0 == 200).then_some(())
    })
    .await;
    d.shutdown().await;
}
