//! The router alone, called as a service (no socket, no daemon): who may call which path
//! (`[server.tokens]`, loopback-only surfaces) and the JSON error bodies. Without connect info a
//! request counts as a loopback peer's; tests that need another peer set it.

use axum::body::Body;
use axum::http::Request;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::*;
use crate::config::Tokens;

const INGEST: &str = "ingest-token";
const VIEWER: &str = "viewer-token";
const LEAD: &str = "lead-token";
const REMOTE: ([u8; 4], u16) = ([192, 0, 2, 7], 5000);
const APPROVAL: &str = r#"{"agent":"a1","reason":"meeting","minutes":30,"by":"lead-1"}"#;

fn tokened() -> Config {
    let mut c = Config::default();
    c.server.tokens = Tokens {
        ingest: vec![INGEST.into()],
        viewer: vec![VIEWER.into()],
        lead: vec![LEAD.into()],
    };
    c
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Calls `app` once: `method path`, with `token` as a bearer header, `body` as JSON, from
/// `peer` (connect info) when given.
async fn call(
    app: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
    peer: Option<SocketAddr>,
) -> Answer {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if body.is_some() {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    let mut req = req
        .body(Body::from(body.unwrap_or_default().to_string()))
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    if let Some(p) = peer {
        req.extensions_mut().insert(ConnectInfo(p));
    }
    let resp = app
        .clone()
        .oneshot(req)
        .await
        .unwrap_or_else(|e| match e {});
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: body: {e}"))
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

#[tokio::test]
async fn the_access_table_by_token_role() {
    let app = router(AppState::for_tests(tokened()));
    // Status without a token, then with an ingest, a viewer and a lead token. A WebSocket
    // path that lets the token through answers 400 here: the request is no handshake.
    let table: &[(&str, &str, Option<&str>, [u16; 4])] = &[
        ("GET", "/", None, [401, 403, 200, 200]),
        ("GET", "/api/v1/floor", None, [401, 403, 200, 200]),
        ("GET", "/api/v1/violations", None, [401, 403, 200, 200]),
        ("GET", "/api/v1/violations/1", None, [401, 403, 404, 404]),
        ("GET", "/api/v1/approvals", None, [401, 403, 200, 200]),
        (
            "GET",
            "/api/v1/appraisal?month=2026-11",
            None,
            [401, 403, 503, 503],
        ),
        ("GET", "/ws/floor", None, [401, 403, 400, 400]),
        ("GET", "/ingest?source=pbx", None, [401, 400, 403, 403]),
        (
            "POST",
            "/api/v1/violations/1/waive",
            Some(r#"{"why":"agreed"}"#),
            // No violation 1 on this empty floor.
            [401, 403, 403, 404],
        ),
        (
            "POST",
            "/api/v1/approvals",
            Some(APPROVAL),
            [401, 403, 403, 201],
        ),
        ("GET", "/metrics", None, [200, 200, 200, 200]),
        ("GET", "/healthz", None, [200, 200, 200, 200]),
        ("GET", "/readyz", None, [200, 200, 200, 200]),
        ("GET", "/no/such/path", None, [404, 404, 404, 404]),
    ];
    for (method, path, body, want) in table {
        for (token, want) in [None, Some(INGEST), Some(VIEWER), Some(LEAD)]
            .into_iter()
            .zip(want)
        {
            let got = call(&app, method, path, token, *body, None).await;
            assert_eq!(
                got.status,
                *want,
                "{method} {path} with {token:?}: {}",
                String::from_utf8_lossy(&got.body)
            );
        }
    }
}

#[tokio::test]
async fn a_query_token_counts_on_the_wallboard_page_only() {
    let app = router(AppState::for_tests(tokened()));
    let page = format!("/?token={VIEWER}");
    assert_eq!(call(&app, "GET", &page, None, None, None).await.status, 200);
    let api = format!("/api/v1/floor?token={VIEWER}");
    assert_eq!(call(&app, "GET", &api, None, None, None).await.status, 401);
}

#[tokio::test]
async fn surfaces_without_tokens_are_open_to_loopback_peers_only() {
    let app = router(AppState::for_tests(Config::default()));
    let local = Some(SocketAddr::from(([127, 0, 0, 1], 5000)));
    let remote = Some(SocketAddr::from(REMOTE));
    for (method, path, body, role, ok) in [
        ("GET", "/api/v1/floor", None, "viewer", 200),
        ("POST", "/api/v1/approvals", Some(APPROVAL), "lead", 201),
        ("GET", "/ingest", None, "ingest", 400),
    ] {
        assert_eq!(call(&app, method, path, None, body, local).await.status, ok);
        let refused = call(&app, method, path, None, body, remote).await;
        assert_eq!(refused.status, 403, "{method} {path}");
        assert_eq!(
            refused.json(),
            json!({"error": format!(
                "open on loopback only: configure server.tokens.{role} to allow other hosts"
            )})
        );
    }
    // The open surfaces stay open to everyone.
    assert_eq!(
        call(&app, "GET", "/metrics", None, None, remote)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn every_error_is_a_json_body_that_says_what_was_wrong() {
    let app = router(AppState::for_tests(tokened()));
    let missing = call(&app, "GET", "/api/v1/floor", None, None, None).await;
    assert_eq!(missing.status, 401);
    assert_eq!(
        missing.json(),
        json!({"error": "missing or wrong bearer token"})
    );
    assert_eq!(
        missing
            .headers
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.as_bytes()),
        Some(&b"Bearer"[..])
    );
    assert_eq!(
        missing
            .headers
            .get(header::CONTENT_TYPE)
            .map(|v| v.as_bytes()),
        Some(&b"application/json"[..])
    );
    let wrong = call(&app, "GET", "/api/v1/floor", Some("nope"), None, None).await;
    assert_eq!(wrong.status, 401);
    let role = call(
        &app,
        "POST",
        "/api/v1/approvals",
        Some(VIEWER),
        Some(APPROVAL),
        None,
    )
    .await;
    assert_eq!(
        role.json(),
        json!({"error": "this token's role may not use this surface (it takes lead tokens)"})
    );
    let cases: &[(&str, &str, Option<&str>, u16, &str)] = &[
        ("GET", "/no/such/path", None, 404, "no such path"),
        (
            "GET",
            "/api/v1/violations?rule=late",
            None,
            400,
            "rule: want ring_answer, break_overrun or unauthorized_pause, not \"late\"",
        ),
        (
            "GET",
            "/api/v1/violations?from=yesterday",
            None,
            400,
            "from: want RFC 3339 with offset or epoch milliseconds, not \"yesterday\"",
        ),
        (
            "GET",
            "/api/v1/violations/42",
            None,
            404,
            "no violation 42 on record",
        ),
        (
            "GET",
            "/api/v1/violations/x",
            None,
            400,
            "violation id must be a number, not \"x\"",
        ),
        (
            "GET",
            "/api/v1/appraisal",
            None,
            400,
            "month: required, e.g. month=2026-11",
        ),
        (
            "GET",
            "/api/v1/appraisal?month=2026-11&format=xml",
            None,
            400,
            "format: want csv or json, not \"xml\"",
        ),
        (
            "GET",
            "/api/v1/appraisal?month=2026-11",
            None,
            503,
            "this daemon has no store",
        ),
        (
            "POST",
            "/api/v1/violations/1/waive",
            Some(r#"{"why":" "}"#),
            400,
            "`why` must say why, not be empty",
        ),
        (
            "POST",
            "/api/v1/violations/1/waive",
            Some(r#"{"why":"agreed"}"#),
            404,
            "no violation 1 on record",
        ),
        (
            "POST",
            "/api/v1/violations/x/waive",
            Some(r#"{"why":"agreed"}"#),
            400,
            "violation id must be a number, not \"x\"",
        ),
    ];
    for (method, path, body, status, error) in cases {
        let got = call(&app, method, path, Some(LEAD), *body, None).await;
        assert_eq!(got.status, *status, "{method} {path}");
        assert_eq!(got.json(), json!({ "error": error }), "{method} {path}");
    }
    // A body that is not JSON is the caller's fault, said in JSON too.
    let bad = call(
        &app,
        "POST",
        "/api/v1/approvals",
        Some(LEAD),
        Some("{"),
        None,
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error"].is_string(), "{}", bad.json());
}

#[tokio::test]
async fn an_approval_is_applied_by_the_engine_task_and_listed() {
    let app = router(AppState::for_tests(tokened()));
    let granted = call(
        &app,
        "POST",
        "/api/v1/approvals",
        Some(LEAD),
        Some(APPROVAL),
        None,
    )
    .await;
    assert_eq!(granted.status, 201, "{}", granted.json());
    let v = granted.json();
    assert_eq!(
        (v["agent"].clone(), v["stored"].clone()),
        (json!("a1"), json!(true))
    );
    let from = v["from"]
        .as_str()
        .and_then(|t| Timestamp::parse_rfc3339(t).ok());
    let until = v["until"]
        .as_str()
        .and_then(|t| Timestamp::parse_rfc3339(t).ok());
    assert_eq!(
        until.zip(from).map(|(u, f)| u.since(f)),
        Some(30 * 60_000),
        "{v}"
    );
    let listed = call(&app, "GET", "/api/v1/approvals", Some(VIEWER), None, None).await;
    assert_eq!(
        listed.json()["approvals"][0]["agent"],
        "a1",
        "{}",
        listed.json()
    );
}

#[tokio::test]
async fn readyz_says_why_a_connect_mode_daemon_is_not_ready() {
    let mut c = Config::default();
    c.source.mode = SourceMode::Connect;
    c.source.url = Some("ws://pbx.example.net/events".into());
    let app = router(AppState::for_tests(c));
    let got = call(&app, "GET", "/readyz", None, None, None).await;
    assert_eq!(got.status, 503);
    assert_eq!(got.json(), json!({"error": "source not connected"}));
}

#[test]
fn tokens_or_loopback() {
    use access::{admit_parts, Surface};
    let local = Some(SocketAddr::from(([127, 0, 0, 1], 5000)));
    let remote = Some(SocketAddr::from(([192, 0, 2, 7], 5000)));
    let mut h = HeaderMap::new();
    let mut c = Config::default();
    assert!(admit_parts(&c, Surface::Ingest, &h, None, local).is_ok());
    assert!(admit_parts(&c, Surface::Ingest, &h, None, None).is_ok());
    assert!(matches!(
        admit_parts(&c, Surface::Ingest, &h, None, remote),
        Err(ApiError::LoopbackOnly("ingest"))
    ));
    c.server.tokens = Tokens {
        ingest: vec!["i1".to_string()],
        viewer: vec!["v1".to_string()],
        lead: vec!["l1".to_string(), "l2".to_string()],
    };
    let view = |h: &HeaderMap, q: Option<&str>, peer| admit_parts(&c, Surface::View, h, q, peer);
    assert!(view(&h, None, local).is_err());
    assert!(view(&h, Some("l2"), remote).is_ok());
    assert!(view(&h, Some("nope"), local).is_err());
    h.insert(header::AUTHORIZATION, "Bearer nope".parse().unwrap());
    assert!(view(&h, None, local).is_err());
    h.insert(header::AUTHORIZATION, "Bearer v1".parse().unwrap());
    assert!(view(&h, None, remote).is_ok());
    h.insert(header::AUTHORIZATION, "Bearer i1".parse().unwrap());
    assert!(matches!(
        view(&h, None, remote),
        Err(ApiError::WrongRole("viewer"))
    ));
    h.insert(header::AUTHORIZATION, "Basic v1".parse().unwrap());
    assert!(view(&h, None, remote).is_err());
}
