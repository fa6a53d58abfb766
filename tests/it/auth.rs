//! Access by role over a real socket: every path × every kind of caller, 401 vs 403, the
//! `WWW-Authenticate` challenge, where `?token=` counts, and the refusal to listen beyond
//! loopback with a role left open.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::daemon_support as sup;

const INGEST: &str = "ingest-tok-1";
const VIEWER: &str = "viewer-tok-1";
const LEAD: &str = "lead-tok-1";

/// One answer: status, the head (lowercased header lines), the body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// Sends one request and reads the head and a `Content-Length` body; a 101 is read up to
/// its head only (the socket then stays open, so reading to the end would wait).
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("connection"))
    {
        req.push_str("Connection: close\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let read = async {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok());
                let done = match len {
                    Some(n) => buf.len() >= end + 4 + n,
                    None => head.starts_with("http/1.1 101") || head.contains("transfer-encoding"),
                };
                if done {
                    break;
                }
            }
            let n = s.read(&mut chunk).await.expect("read");
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(sup::WAIT, read)
        .await
        .expect("answer in time");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    Answer {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_string(),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

const UPGRADE: [(&str, &str); 4] = [
    ("Connection", "Upgrade"),
    ("Upgrade", "websocket"),
    ("Sec-WebSocket-Version", "13"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Caller {
    Ingest,
    Viewer,
    Lead,
    NoToken,
    WrongToken,
}

impl Caller {
    fn token(self) -> Option<&'static str> {
        match self {
            Caller::Ingest => Some(INGEST),
            Caller::Viewer => Some(VIEWER),
            Caller::Lead => Some(LEAD),
            Caller::NoToken => None,
            Caller::WrongToken => Some("not-a-token"),
        }
    }
}

fn tokened() -> floorwatch::config::Config {
    let mut c = sup::config();
    c.server.tokens.ingest = vec![INGEST.into()];
    c.server.tokens.viewer = vec![VIEWER.into()];
    c.server.tokens.lead = vec![LEAD.into()];
    c
}

/// (method, path, upgrade?, body, who may, status when allowed)
type Row<'a> = (&'a str, &'a str, bool, &'a str, &'a [Caller], u16);

#[tokio::test]
async fn every_path_answers_each_role_by_the_access_table() {
    use Caller::*;
    let d = sup::start(tokened()).await;
    let addr = d.local_addr();
    let viewers: &[Caller] = &[Viewer, Lead];
    let everyone: &[Caller] = &[Ingest, Viewer, Lead, NoToken, WrongToken];
    let approval = r#"{"agent":"a1","reason":"meeting","minutes":10,"by":"zhang.wei"}"#;
    let table: &[Row] = &[
        ("GET", "/", false, "", viewers, 200),
        ("GET", "/api/v1/floor", false, "", viewers, 200),
        ("GET", "/api/v1/violations", false, "", viewers, 200),
        ("GET", "/api/v1/violations/1", false, "", viewers, 404),
        ("GET", "/api/v1/approvals", false, "", viewers, 200),
        (
            "GET",
            "/api/v1/appraisal?month=2026-11",
            false,
            "",
            viewers,
            200,
        ),
        ("GET", "/ws/floor", true, "", viewers, 101),
        ("GET", "/ingest?source=pbx", true, "", &[Ingest], 101),
        (
            "POST",
            "/api/v1/violations/1/waive",
            false,
            r#"{"by":"l","reason":"r"}"#,
            &[Lead],
            404,
        ),
        ("POST", "/api/v1/approvals", false, approval, &[Lead], 201),
        ("GET", "/metrics", false, "", everyone, 200),
        ("GET", "/healthz", false, "", everyone, 200),
        ("GET", "/readyz", false, "", everyone, 200),
    ];
    for &(method, path, upgrade, body, allowed, ok) in table {
        for caller in [Ingest, Viewer, Lead, NoToken, WrongToken] {
            let auth = caller.token().map(|t| format!("Bearer {t}"));
            let mut headers: Vec<(&str, &str)> = Vec::new();
            if let Some(a) = auth.as_deref() {
                headers.push(("Authorization", a));
            }
            if upgrade {
                headers.extend(UPGRADE);
            }
            let a = request(addr, method, path, &headers, body).await;
            let what = format!("{method} {path} as {caller:?}: {} {}", a.status, a.body);
            let want = if allowed.contains(&caller) {
                ok
            } else if matches!(caller, NoToken | WrongToken) {
                401
            } else {
                403
            };
            assert_eq!(a.status, want, "{what}");
            if want == 401 || want == 403 {
                let v: serde_json::Value = serde_json::from_str(&a.body).expect(&what);
                assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{what}");
                assert!(a.head.contains("content-type: application/json"), "{what}");
            }
            assert_eq!(
                a.head.contains("www-authenticate: bearer"),
                want == 401,
                "{what}: the challenge goes with 401 only"
            );
        }
    }
    d.shutdown().await;
}

#[tokio::test]
async fn query_tokens_count_on_the_wallboard_and_ws_floor_only() {
    let d = sup::start(tokened()).await;
    let addr = d.local_addr();
    let q = format!("?token={VIEWER}");
    assert_eq!(
        request(addr, "GET", &format!("/{q}"), &[], "").await.status,
        200
    );
    assert_eq!(
        request(addr, "GET", &format!("/ws/floor{q}"), &UPGRADE, "")
            .await
            .status,
        101
    );
    for path in ["/api/v1/floor", "/api/v1/violations", "/api/v1/approvals"] {
        let a = request(addr, "GET", &format!("{path}{q}"), &[], "").await;
        assert_eq!(a.status, 401, "{path}: {}", a.body);
    }
    let a = request(
        addr,
        "GET",
        &format!("/ingest?source=pbx&token={INGEST}"),
        &UPGRADE,
        "",
    )
    .await;
    assert_eq!(a.status, 401, "ingest takes the header only: {}", a.body);
    d.shutdown().await;
}

#[tokio::test]
async fn a_public_listen_address_with_an_open_role_is_refused_at_start() {
    let mut c = tokened();
    c.server.tokens.lead.clear();
    c.server.listen = SocketAddr::from(([0, 0, 0, 0], 0));
    let e = match floorwatch::daemon::start(c).await {
        Ok(d) => {
            d.shutdown().await;
            panic!("a daemon on 0.0.0.0 with no lead tokens started");
        }
        Err(e) => format!("{e:#}"),
    };
    assert!(e.contains("server.listen") && e.contains("lead"), "{e}");
    assert!(!e.contains("ingest,") && !e.contains("viewer"), "{e}");

    let mut c = tokened();
    c.server.listen = SocketAddr::from(([0, 0, 0, 0], 0));
    let d = sup::start(c).await;
    let port = d.local_addr().port();
    let a = request(
        SocketAddr::from(([127, 0, 0, 1], port)),
        "GET",
        "/healthz",
        &[],
        "",
    )
    .await;
    assert_eq!(a.status, 200);
    d.shutdown().await;
}

/// Tokens in headers and in `?token=`, right and wrong, reach no log line.
#[tokio::test]
async fn tokens_never_reach_the_logs() {
    crate::log_capture::start();
    let d = sup::start(tokened()).await;
    let addr = d.local_addr();
    let wrong = "wrong-tok-7f3a9c";
    for token in [INGEST, VIEWER, LEAD, wrong] {
        let auth = format!("Bearer {token}");
        let h = [("Authorization", auth.as_str())];
        for path in ["/", "/api/v1/floor", "/api/v1/violations"] {
            request(addr, "GET", path, &h, "").await;
            request(addr, "GET", &format!("{path}?token={token}"), &[], "").await;
        }
        request(
            addr,
            "GET",
            &format!("/ws/floor?token={token}"),
            &UPGRADE,
            "",
        )
        .await;
        let mut ws = h.to_vec();
        ws.extend(UPGRADE);
        request(addr, "GET", "/ingest?source=pbx", &ws, "").await;
        request(
            addr,
            "GET",
            &format!("/ingest?source=pbx&token={token}"),
            &UPGRADE,
            "",
        )
        .await;
        request(
            addr,
            "POST",
            "/api/v1/violations/1/waive",
            &h,
            r#"{"by":"l","reason":"r"}"#,
        )
        .await;
    }
    d.shutdown().await;
    let logs = crate::log_capture::text();
    assert!(logs.contains("ingest refused"), "the log capture works");
    for token in [INGEST, VIEWER, LEAD, wrong] {
        assert!(!logs.contains(token), "{token} is in the logs");
    }
}
