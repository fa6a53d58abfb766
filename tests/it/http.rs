//! The HTTP surface over a real socket: floor view, violations queries, health, errors,
//! the wallboard page.

use serde_json::Value;

use crate::daemon_support::{self as sup, get, Source};

#[tokio::test]
async fn floor_api_shows_agents_queues_kpis_percentiles_and_the_engine_clock() {
    let d = sup::start(sup::config()).await;
    let addr = d.local_addr();
    let (mut s, _) = Source::connect_hello(addr, "pbx").await;
    s.send(
        r#"[{"type":"agent.login","ts":"2026-11-28T01:00:00Z","seq":1,"agent":"a1","team":"hotline-1"},
            {"type":"agent.login","ts":"2026-11-28T01:00:00Z","seq":2,"agent":"a2","team":"hotline-2"},
            {"type":"agent.state","ts":"2026-11-28T01:00:01Z","seq":3,"agent":"a2","state":"not_ready","reason":"break"},
            {"type":"call.queued","ts":"2026-11-28T01:00:10Z","seq":4,"call":"c1","queue":"sales"},
            {"type":"call.ringing","ts":"2026-11-28T01:00:12Z","seq":5,"call":"c1","agent":"a1","queue":"sales"},
            {"type":"call.answered","ts":"2026-11-28T01:00:16Z","seq":6,"call":"c1","agent":"a1"},
            {"type":"call.queued","ts":"2026-11-28T01:00:20Z","seq":7,"call":"c2","queue":"sales"}]"#,
    )
    .await;
    assert_eq!(s.until_ack().await.1, 7);

    let (status, f) = sup::get_json(addr, "/api/v1/floor").await;
    assert_eq!(status, 200);
    let clock = f["engine_clock"].as_str().expect("engine clock");
    assert!(clock >= "2026-11-28T01:00:20.000Z", "{clock}");
    assert_eq!(f["sources_connected"], 1);
    let agent = |id: &str| -> Value {
        f["agents"]
            .as_array()
            .expect("agents")
            .iter()
            .find(|a| a["agent"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no agent {id} in {f}"))
    };
    let a1 = agent("a1");
    assert_eq!(a1["effective"], "talking", "{a1}");
    assert_eq!(a1["presence"], "ready", "{a1}");
    assert_eq!(a1["call"], "c1", "{a1}");
    assert_eq!(a1["team"], "hotline-1", "{a1}");
    let a2 = agent("a2");
    assert_eq!(a2["effective"], "not_ready", "{a2}");
    assert_eq!(a2["reason"], "break", "{a2}");
    assert_eq!(a2["since"], "2026-11-28T01:00:01.000Z", "{a2}");

    let q = &f["queues"][0];
    assert_eq!(q["queue"], "sales", "{f}");
    assert_eq!(q["waiting"], 1, "{q}");
    assert!(
        q["longest_wait_seconds"].as_f64().is_some_and(|w| w >= 0.0),
        "{q}"
    );
    assert_eq!(q["today"]["offered"], 2, "{q}");
    assert_eq!(q["today"]["answered"], 1, "{q}");
    assert_eq!(q["today"]["answer_rate"], 0.5, "{q}");
    assert_eq!(q["today"]["asa_seconds"], 6.0, "{q}");
    assert_eq!(q["wait_percentiles"]["count"], 1, "{q}");
    assert_eq!(q["wait_percentiles"]["p50"], 6.0, "{q}");
    assert_eq!(f["floor"]["today"]["offered"], 2, "{f}");
    let ring = &f["ring_percentiles"]["hotline-1"];
    assert_eq!(ring["count"], 1, "{f}");
    assert_eq!(ring["p99"], 4.0, "{f}");
    assert!(f["open_violations"].as_array().is_some(), "{f}");
    d.shutdown().await;
}

#[tokio::test]
async fn violations_api_rejects_bad_queries_with_400_json() {
    let d = sup::start(sup::config()).await;
    let addr = d.local_addr();
    for q in [
        "from=yesterday",
        "to=2026-11-28T09:00:00",
        "rule=speeding",
        "status=maybe",
    ] {
        let (status, ctype, body) = get(addr, &format!("/api/v1/violations?{q}")).await;
        assert_eq!(status, 400, "{q}: {body}");
        assert!(ctype.starts_with("application/json"), "{q}: {ctype}");
        let v: Value = serde_json::from_str(&body).expect("json");
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{q}: {body}"
        );
    }
    let (status, v) = sup::get_json(
        addr,
        "/api/v1/violations?from=2026-11-28T00:00:00Z&to=1795900000000&rule=ring_answer&status=open&agent=a1&team=t",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["violations"], serde_json::json!([]));
    let (status, _) = sup::get_json(addr, "/api/v1/violations?status=waived").await;
    assert_eq!(status, 200);
    d.shutdown().await;
}

#[tokio::test]
async fn readyz_names_an_adapter_that_is_not_connected() {
    // A port nothing listens on: bind one and drop it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let mut c = sup::config();
    let text = format!(
        "[[sources]]\nkind = \"freeswitch-esl\"\nname = \"fs-1\"\naddress = \"{closed}\"\npassword = \"p\"\n"
    );
    c.adapters = floorwatch::config::Config::from_toml_str(&text)
        .expect("config")
        .adapters;
    let d = sup::start(c).await;
    let addr = d.local_addr();
    let (status, _, body) = get(addr, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("fs-1") && body.contains("freeswitch-esl"),
        "{body}"
    );
    assert_eq!(get(addr, "/healthz").await.0, 200, "alive all the same");
    let (_, _, metrics) = get(addr, "/metrics").await;
    assert_eq!(
        sup::sample(&metrics, "floorwatch_adapter_connected{source=\"fs-1\"}"),
        Some(0.0),
        "{metrics}"
    );
    d.shutdown().await;
}

#[tokio::test]
async fn health_wallboard_and_unknown_paths() {
    let d = sup::start(sup::config()).await;
    let addr = d.local_addr();
    assert_eq!(get(addr, "/healthz").await.0, 200);
    assert_eq!(
        get(addr, "/readyz").await.0,
        200,
        "listen mode is ready without a source"
    );
    let (status, ctype, body) = get(addr, "/").await;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/html"), "{ctype}");
    assert!(
        body.contains("ws/floor"),
        "the wallboard follows the floor stream"
    );
    let (status, ctype, body) = get(addr, "/no/such/thing").await;
    assert_eq!(status, 404);
    assert!(ctype.starts_with("application/json"), "{ctype}");
    assert!(body.contains("\"error\""), "{body}");
    d.shutdown().await;
}

#[tokio::test]
async fn viewer_tokens_guard_the_api_and_the_wallboard_but_not_metrics() {
    let mut c = sup::config();
    c.server.tokens.viewer = vec!["view-1".into()];
    c.server.tokens.lead = vec!["lead-1".into()];
    let d = sup::start(c).await;
    let addr = d.local_addr();
    for path in ["/", "/api/v1/floor", "/api/v1/violations"] {
        let (status, _, body) = get(addr, path).await;
        assert_eq!(status, 401, "{path}: {body}");
        assert!(body.contains("\"error\""), "{path}: {body}");
        let (status, _, _) = sup::get_with(addr, path, &[("Authorization", "Bearer nope")]).await;
        assert_eq!(status, 401, "{path}");
        for token in ["view-1", "lead-1"] {
            let auth = format!("Bearer {token}");
            let (status, _, _) =
                sup::get_with(addr, path, &[("Authorization", auth.as_str())]).await;
            assert_eq!(status, 200, "{path} with {token}");
        }
    }
    assert_eq!(
        get(addr, "/?token=view-1").await.0,
        200,
        "the wallboard on a TV"
    );
    assert_eq!(get(addr, "/metrics").await.0, 200);
    assert_eq!(get(addr, "/healthz").await.0, 200);
    // Ingest has no token configured: open to loopback.
    let (mut s, _) = Source::connect_hello(addr, "pbx").await;
    s.send(r#"{"type":"agent.login","ts":1,"seq":1,"agent":"a1"}"#)
        .await;
    assert_eq!(s.until_ack().await.1, 1);
    d.shutdown().await;
}

#[tokio::test]
async fn ws_floor_sends_a_snapshot_then_deltas_of_changed_agents_then_heartbeats() {
    use futures_util::StreamExt;
    let mut config = sup::config();
    config.teams = vec![floorwatch::config::TeamConfig {
        id: "hotline-1".into(),
        lead: Some("zhang.wei".into()),
        supervisor: None,
        members: vec!["a1".into(), "a2".into()],
        sales_target: None,
    }];
    let d = sup::start(config).await;
    let addr = d.local_addr();
    let (mut wall, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/floor"))
        .await
        .expect("connects");
    let mut next = async || -> Value {
        loop {
            let m = tokio::time::timeout(sup::WAIT, wall.next())
                .await
                .expect("pushed in time")
                .expect("open")
                .expect("message");
            if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
                return serde_json::from_str(t.as_str()).expect("json");
            }
        }
    };
    let first = next().await;
    assert_eq!(first["type"], "snapshot", "{first}");
    assert_eq!(first["agents"], serde_json::json!([]), "{first}");
    assert_eq!(first["engine_clock"], Value::Null, "{first}");
    assert_eq!(first["language"], "zh-CN", "{first}");
    assert_eq!(first["teams"][0]["lead"], "zhang.wei", "{first}");
    assert_eq!(first["limits"]["ring_ms"], 15_000, "{first}");
    assert_eq!(
        first["limits"]["reasons"]["break"]["max_ms"], 900_000,
        "{first}"
    );
    let base = first["version"].as_u64().expect("version");

    // Nothing happens: a heartbeat within 2 s and a bit.
    let beat = next().await;
    assert_eq!(beat["type"], "heartbeat", "{beat}");
    assert_eq!(beat["sources_connected"], 0, "{beat}");

    let (mut s, _) = Source::connect_hello(addr, "pbx").await;
    s.send(
        r#"[{"type":"agent.login","ts":"2026-11-28T01:00:00Z","seq":1,"agent":"a1"},
            {"type":"agent.login","ts":"2026-11-28T01:00:00Z","seq":2,"agent":"a2"}]"#,
    )
    .await;
    s.until_ack().await;
    let mut seen = Vec::new();
    let mut version = base;
    while seen.len() < 2 {
        let f = next().await;
        if f["type"] != "delta" {
            continue;
        }
        let v = f["version"].as_u64().expect("version");
        assert!(v > version, "versions count up: {v} after {version}");
        version = v;
        for a in f["agents"].as_array().expect("agents") {
            seen.push(a["agent"].as_str().expect("id").to_string());
        }
    }
    seen.sort();
    assert_eq!(seen, ["a1", "a2"]);
    // Only a2 changes: the next delta with agents names a2 alone.
    s.send(r#"{"type":"agent.state","ts":"2026-11-28T01:00:05Z","seq":3,"agent":"a2","state":"not_ready","reason":"break"}"#)
        .await;
    s.until_ack().await;
    let delta = loop {
        let f = next().await;
        if f["type"] == "delta" && f["agents"].as_array().is_some_and(|a| !a.is_empty()) {
            break f;
        }
    };
    assert_eq!(delta["agents"].as_array().map(Vec::len), Some(1), "{delta}");
    assert_eq!(delta["agents"][0]["agent"], "a2", "{delta}");
    assert_eq!(delta["agents"][0]["effective"], "not_ready", "{delta}");
    assert_eq!(delta["engine_clock"], "2026-11-28T01:00:05.000Z", "{delta}");
    assert_eq!(delta["sources_connected"], 1, "{delta}");
    d.shutdown().await;
}
