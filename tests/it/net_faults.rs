//! Network faults in connect mode: a phone system (a server run by the test on a raw
//! `TcpListener`) that refuses, drops mid-frame, stalls half-open, sends garbage, closes with
//! each close code, or serves `wss://` with a certificate of a private CA. The daemon redials
//! with back-off and jitter, counts the redials, resumes with its hello, and a `snapshot`
//! after the reconnect reconciles its view.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use floorwatch::config::{Config, SourceMode};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::crash::START;
use crate::daemon_support::{self as sup, WAIT};

type ServerWs<S> = tokio_tungstenite::WebSocketStream<S>;

/// A connect-mode config dialing `url`, with keepalive short enough for tests.
fn dialing(url: String) -> Config {
    let mut c = sup::config();
    c.source.mode = SourceMode::Connect;
    c.source.url = Some(url);
    c.source.name = "pbx".into();
    c.source.ping_every = 200;
    c.source.ping_timeout = 700;
    c
}

async fn accept_tcp(listener: &TcpListener) -> TcpStream {
    let (tcp, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .expect("the daemon dials in time")
        .expect("accept");
    tcp
}

async fn accept_ws(listener: &TcpListener) -> ServerWs<TcpStream> {
    let tcp = accept_tcp(listener).await;
    tokio_tungstenite::accept_async(tcp)
        .await
        .expect("handshake")
}

/// Reads the HTTP upgrade request and answers 101 by hand, leaving the raw socket for
/// byte-level faults.
async fn raw_handshake(tcp: &mut TcpStream) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
            .await
            .expect("request in time")
            .expect("read");
        assert!(n > 0, "the daemon closed during its handshake");
        request.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&request);
    let key = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("sec-websocket-key")
                .then(|| v.trim().to_string())
        })
        .expect("a websocket key");
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    tcp.write_all(response.as_bytes()).await.expect("101");
}

/// An unmasked server text frame.
fn text_frame(payload: &str) -> Vec<u8> {
    let p = payload.as_bytes();
    assert!(p.len() < 126);
    let mut f = vec![0x81, p.len() as u8];
    f.extend_from_slice(p);
    f
}

/// Sends `frame` and reads until the ack of `seq`.
async fn send_until_ack<S>(ws: &mut ServerWs<S>, frame: String, seq: u64)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    ws.send(Message::text(frame)).await.expect("send");
    loop {
        let v = sup::read_json(ws).await;
        if v["type"] == "ack" && v["seq"].as_u64() >= Some(seq) {
            return;
        }
        assert_ne!(v["type"], "error", "{v}");
    }
}

/// The sum of every series of `name` in an exposition.
fn at(offset_ms: i64) -> i64 {
    START.0 + offset_ms
}

#[tokio::test]
async fn a_refused_dial_is_counted_and_redialed() {
    // Nothing listens: every dial is refused (RST).
    let pbx = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr");
    let d = sup::start(dialing(format!("ws://{pbx}/events"))).await;
    let addr = d.local_addr();
    sup::eventually("at least three refused dials", || async {
        (sup::metric_total(addr, "floorwatch_source_reconnects_total").await >= 3.0).then_some(())
    })
    .await;
    assert_eq!(sup::get(addr, "/readyz").await.0, 503);
    assert_eq!(
        sup::metric_total(addr, "floorwatch_source_connected").await,
        0.0
    );
    d.shutdown().await;
}

#[tokio::test]
async fn a_source_that_drops_at_once_is_redialed_with_growing_jittered_delays() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let pbx = listener.local_addr().expect("addr");
    let d = sup::start(dialing(format!("ws://{pbx}/events"))).await;
    // Accept and drop at once, before the handshake: backed off like a refusal.
    let mut accepted = Vec::new();
    for _ in 0..4 {
        drop(accept_tcp(&listener).await);
        accepted.push(Instant::now());
    }
    let gaps: Vec<Duration> = accepted.windows(2).map(|w| w[1] - w[0]).collect();
    // Redial n (after n failures) waits 200 ms × 2^n × [0.5, 1). Jitter can only shorten a
    // delay to half and a busy machine can only lengthen it, so the lower bounds are safe;
    // the upper bounds are loose.
    for (i, g) in gaps.iter().enumerate() {
        let base = Duration::from_millis(200 << (i + 1));
        assert!(*g >= base / 2, "gap {i}: {g:?} in {gaps:?}");
        assert!(
            *g < base + Duration::from_secs(2),
            "gap {i}: {g:?} in {gaps:?}"
        );
    }
    assert!(gaps[2] > gaps[0], "back-off grows: {gaps:?}");
    let reconnects = sup::metric_total(d.local_addr(), "floorwatch_source_reconnects_total").await;
    assert!(reconnects >= 3.0, "{reconnects}");
    d.shutdown().await;
}

#[tokio::test]
async fn a_connection_dropped_mid_frame_is_redialed_and_the_half_frame_is_not_applied() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let pbx = listener.local_addr().expect("addr");
    let d = sup::start(dialing(format!("ws://{pbx}/events"))).await;
    let addr = d.local_addr();

    let mut tcp = accept_tcp(&listener).await;
    raw_handshake(&mut tcp).await;
    let login = format!(
        r#"{{"type":"agent.login","ts":{},"seq":1,"agent":"a1"}}"#,
        at(0)
    );
    tcp.write_all(&text_frame(&login)).await.expect("frame");
    // Half of the next frame, then the connection goes.
    let next = text_frame(&format!(
        r#"{{"type":"agent.login","ts":{},"seq":2,"agent":"a2"}}"#,
        at(1)
    ));
    tcp.write_all(&next[..next.len() / 2]).await.expect("half");
    sup::eventually("the first frame applied", || async {
        (sup::metric_total(addr, "floorwatch_events_total").await == 1.0).then_some(())
    })
    .await;
    drop(tcp);

    let mut ws = accept_ws(&listener).await;
    let hello = sup::read_json(&mut ws).await;
    assert_eq!(hello["resume_after"], 1, "{hello}");
    assert!(sup::metric_total(addr, "floorwatch_source_reconnects_total").await >= 1.0);
    assert_eq!(
        sup::metric_total(addr, "floorwatch_events_total").await,
        1.0,
        "the half frame applied nothing"
    );
    d.shutdown().await;
}

#[tokio::test]
async fn a_stalled_half_open_source_is_dropped_after_the_ping_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let pbx = listener.local_addr().expect("addr");
    let d = sup::start(dialing(format!("ws://{pbx}/events"))).await;
    let addr = d.local_addr();

    // Handshake, then never read or write: pings go unanswered.
    let mut stalled = accept_tcp(&listener).await;
    raw_handshake(&mut stalled).await;
    let since = Instant::now();
    sup::eventually("connected", || async {
        (sup::get(addr, "/readyz").await.0 == 200).then_some(())
    })
    .await;
    let mut ws = accept_ws(&listener).await;
    let waited = since.elapsed();
    assert!(
        waited >= Duration::from_millis(600),
        "dropped only after source.ping_timeout: {waited:?}"
    );
    assert_eq!(sup::read_json(&mut ws).await["type"], "hello");
    assert!(sup::metric_total(addr, "floorwatch_source_reconnects_total").await >= 1.0);
    // `stalled` stays open until here: the daemon left it, not the other way round.
    drop(stalled);
    d.shutdown().await;
}

#[tokio::test]
async fn a_quiet_source_that_answers_pings_stays_connected() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let pbx = listener.local_addr().expect("addr");
    let d = sup::start(dialing(format!("ws://{pbx}/events"))).await;
    let addr = d.local_addr();

    let ws = accept_ws(&listener).await;
    let (_tx, mut rx) = ws.split();
    // Reading answers pings (tungstenite queues the pong; the reader flushes it).
    let pings = tokio::spawn(async move {
        let mut pings = 0u32;
        while let Some(Ok(m)) = rx.next().await {
            if m.is_ping() {
                pings += 1;
            }
        }
        pings
    });
    // Five ping timeouts of silence from the source's side but for pongs.
    let redial = tokio::time::timeout(Duration::from_millis(3_500), listener.accept()).await;
    assert!(redial.is_err(), "the daemon redialed a live source");
    assert_eq!(
        sup::metric_total(addr, "floorwatch_source_reconnects_total").await,
        0.0
    );
    assert_eq!(sup::get(addr, "/readyz").await.0, 200);
    d.shutdown().await;
    let pings = pings.await.expect("reader");
    assert!(pings >= 3, "the daemon pinged the quiet source: {pings}");
}

#[tokio::test]
async fn garbage_for_a_handshake_and_garbage_frames_are_redialed() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let pbx = listener.local_addr().expect("addr");
    let d = sup::start(dialing(format!("ws://{pbx}/events"))).await;
    let addr = d.local_addr();

    // Not HTTP at all.
    let mut tcp = accept_tcp(&listener).await;
    let mut buf = [0u8; 1024];
    let _ = tcp.read(&mut buf).await;
    tcp.write_all(b"\x00\xffSSH-2.0-garbage\r\n\r\n\x13\x37")
        .await
        .expect("garbage");
    drop(tcp);

    // A proper handshake, then a frame with reserved bits and opcode set.
    let mut tcp = accept_tcp(&listener).await;
    raw_handshake(&mut tcp).await;
    tcp.write_all(&[0xff, 0x05, b'j', b'u', b'n', b'k', b'!'])
        .await
        .expect("garbage frame");
    // The daemon drops it; wait for that from the socket's side.
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut rest)).await;

    // A text frame that is not JSON is bad input, not a fault: the connection stays.
    let mut ws = accept_ws(&listener).await;
    assert_eq!(sup::read_json(&mut ws).await["type"], "hello");
    ws.send(Message::text("{not json")).await.expect("send");
    let error = sup::read_json(&mut ws).await;
    assert_eq!(error["type"], "error", "{error}");
    assert!(sup::metric_total(addr, "floorwatch_source_reconnects_total").await >= 2.0);
    assert_eq!(sup::get(addr, "/readyz").await.0, 200);
    d.shutdown().await;
}

/// Every close code a phone system may send: the daemon redials after each, and resumes.
#[tokio::test]
async fn every_close_code_is_redialed_with_the_resume_point() {
    let codes = [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 3000, 4000, 4999,
    ];
    let runs = codes.iter().map(|&code| async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let pbx = listener.local_addr().expect("addr");
        let d = sup::start(dialing(format!("ws://{pbx}/events"))).await;
        let mut ws = accept_ws(&listener).await;
        assert_eq!(sup::read_json(&mut ws).await["resume_after"], Value::Null);
        let login = format!(
            r#"{{"type":"agent.login","ts":{},"seq":7,"agent":"a1"}}"#,
            at(0)
        );
        send_until_ack(&mut ws, login, 7).await;
        ws.send(Message::Close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: "test".into(),
        })))
        .await
        .expect("close");
        let mut ws = accept_ws(&listener).await;
        let hello = sup::read_json(&mut ws).await;
        assert_eq!(hello["resume_after"], 7, "after close code {code}: {hello}");
        let reconnects =
            sup::metric_total(d.local_addr(), "floorwatch_source_reconnects_total").await;
        assert_eq!(reconnects, 1.0, "close code {code}");
        d.shutdown().await;
    });
    futures_util::future::join_all(runs).await;
}

#[tokio::test]
async fn after_a_reconnect_resent_events_are_duplicates_and_a_snapshot_reconciles() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let pbx = listener.local_addr().expect("addr");
    let d = sup::start(dialing(format!("ws://{pbx}/events"))).await;
    let addr = d.local_addr();
    let events = [
        format!(
            r#"{{"type":"agent.login","ts":{},"seq":1,"agent":"a1"}}"#,
            at(0)
        ),
        format!(
            r#"{{"type":"agent.login","ts":{},"seq":2,"agent":"a2"}}"#,
            at(0)
        ),
        format!(
            r#"{{"type":"agent.login","ts":{},"seq":3,"agent":"a3"}}"#,
            at(0)
        ),
        // A pause without a reason: one unauthorized_pause once its grace has passed.
        format!(
            r#"{{"type":"agent.state","ts":{},"seq":4,"agent":"a1","state":"not_ready"}}"#,
            at(1_000)
        ),
        format!(
            r#"{{"type":"call.queued","ts":{},"seq":5,"call":"c1","queue":"q"}}"#,
            at(20_000)
        ),
    ];

    let mut ws = accept_ws(&listener).await;
    assert_eq!(sup::read_json(&mut ws).await["resume_after"], Value::Null);
    send_until_ack(&mut ws, format!("[{}]", events.join(",")), 5).await;
    assert_eq!(
        sup::metric_total(addr, "floorwatch_violations_total").await,
        1.0
    );
    drop(ws); // the outage: no close frame

    let mut ws = accept_ws(&listener).await;
    let hello = sup::read_json(&mut ws).await;
    assert_eq!(hello["resume_after"], 5, "{hello}");
    // A source whose buffer lags its acks resends from seq 3; then the snapshot it sends
    // after every reconnect: a2 logged out during the outage, a1 is back to ready.
    let snapshot = format!(
        r#"{{"type":"snapshot","ts":{},"seq":6,"agents":[{{"agent":"a1","presence":"ready","since":{}}},{{"agent":"a3","presence":"ready","since":{}}}],"calls":[]}}"#,
        at(30_000),
        at(25_000),
        at(0)
    );
    let resent = format!("[{},{snapshot}]", events[2..].join(","));
    send_until_ack(&mut ws, resent, 6).await;

    assert_eq!(
        sup::metric_total(addr, "floorwatch_events_duplicate_total").await,
        3.0,
        "seq 3..5 resent"
    );
    assert_eq!(
        sup::metric_total(addr, "floorwatch_violations_total").await,
        1.0,
        "the resent pause raised nothing again"
    );
    assert!(sup::metric_total(addr, "floorwatch_source_reconnects_total").await >= 1.0);
    let (_, floor) = sup::get_json(addr, "/api/v1/floor").await;
    let agents = floor["agents"].as_array().expect("agents");
    let present = |id: &str| {
        agents
            .iter()
            .any(|a| a["agent"] == id && a["logged_in"] == true)
    };
    assert!(present("a1") && present("a3"), "{floor}");
    assert!(!present("a2"), "the snapshot logged a2 out: {floor}");
    d.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// wss:// with a private CA.

/// A CA and a server certificate for `localhost` and 127.0.0.1, made with the openssl CLI;
/// `None` (the test skips) without it.
fn private_ca(dir: &Path) -> Option<()> {
    let run = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .ok()?;
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let ok = run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=floorwatch test ca",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    ]
    .concat())
        && run(&[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat())
        && run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ]);
    ok.then_some(())
}

fn tls_acceptor(dir: &Path) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .expect("server.pem")
        .collect::<Result<Vec<_>, _>>()
        .expect("certs");
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).expect("server.key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server config");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

#[tokio::test]
async fn wss_with_a_private_ca_connects_only_with_source_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    if private_ca(dir.path()).is_none() {
        eprintln!("skipped: cannot make certificates with the openssl CLI");
        return;
    }
    let acceptor = tls_acceptor(dir.path());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let url = format!("wss://localhost:{port}/events");

    // Without the CA the certificate is not trusted: the TLS handshake fails, the dial is
    // counted, and the daemon keeps trying.
    let d = sup::start(dialing(url.clone())).await;
    let tcp = accept_tcp(&listener).await;
    let handshake = tokio::time::timeout(WAIT, acceptor.accept(tcp))
        .await
        .expect("tls in time");
    assert!(
        handshake.is_err(),
        "the daemon must not trust a private CA by default"
    );
    sup::eventually("the failed dial counted", || async {
        (sup::metric_total(d.local_addr(), "floorwatch_source_reconnects_total").await >= 1.0)
            .then_some(())
    })
    .await;
    assert_eq!(sup::get(d.local_addr(), "/readyz").await.0, 503);
    d.shutdown().await;
    // Drain dials still in flight from the first daemon.
    while let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await
    {
    }

    let mut c = dialing(url);
    c.source.ca = Some(dir.path().join("ca.pem"));
    let d = sup::start(c).await;
    let tcp = accept_tcp(&listener).await;
    let tls = tokio::time::timeout(WAIT, acceptor.accept(tcp))
        .await
        .expect("tls in time")
        .expect("the daemon trusts source.ca");
    let mut ws = tokio_tungstenite::accept_async(tls)
        .await
        .expect("handshake");
    assert_eq!(sup::read_json(&mut ws).await["type"], "hello");
    let login = format!(
        r#"{{"type":"agent.login","ts":{},"seq":1,"agent":"a1"}}"#,
        at(0)
    );
    send_until_ack(&mut ws, login, 1).await;
    assert_eq!(sup::get(d.local_addr(), "/readyz").await.0, 200);
    d.shutdown().await;
}

#[test]
fn a_source_ca_that_is_not_a_pem_file_is_a_config_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = dialing("wss://pbx.example.net/events".into());
    c.source.ca = Some(dir.path().join("missing.pem"));
    let e = c.validate().expect_err("missing file");
    assert_eq!(e.key.as_deref(), Some("source.ca"), "{e}");
    std::fs::write(dir.path().join("empty.pem"), "not a certificate\n").expect("write");
    c.source.ca = Some(dir.path().join("empty.pem"));
    let e = c.validate().expect_err("no certificate");
    assert!(e.to_string().contains("no certificate"), "{e}");
}

#[tokio::test]
async fn shutdown_closes_the_dialed_source_with_going_away() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let pbx = listener.local_addr().expect("addr");
    let d = sup::start(dialing(format!("ws://{pbx}/events"))).await;
    let mut ws = accept_ws(&listener).await;
    assert_eq!(sup::read_json(&mut ws).await["type"], "hello");
    let login = format!(
        r#"{{"type":"agent.login","ts":{},"seq":1,"agent":"a1"}}"#,
        at(0)
    );
    send_until_ack(&mut ws, login, 1).await;
    let reader = tokio::spawn(async move {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    });
    assert!(d.shutdown().await, "shutdown within its grace");
    let code = tokio::time::timeout(WAIT, reader)
        .await
        .expect("closed in time")
        .expect("reader");
    assert_eq!(code, Some(1001));
    // And it does not dial again.
    let redial = tokio::time::timeout(Duration::from_millis(800), listener.accept()).await;
    assert!(redial.is_err(), "no dial after shutdown");
}
