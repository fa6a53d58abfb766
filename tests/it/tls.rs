//! `[server.tls]`: HTTPS and WSS on the daemon's one port, with a certificate of
//! `tests/fixtures/tls/` (a leaf for localhost and 127.0.0.1, signed by `ca.pem`).

use std::sync::Arc;

use floorwatch::config::TlsFiles;
use futures_util::StreamExt;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::daemon_support as sup;

fn tls_config() -> floorwatch::config::Config {
    let mut c = sup::config();
    c.server.tls = Some(TlsFiles {
        cert: sup::fixture("tls", "cert.pem"),
        key: sup::fixture("tls", "key.pem"),
    });
    c
}

/// A client that trusts the fixtures' CA only.
fn client() -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(sup::fixture("tls", "ca.pem")).expect("ca.pem") {
        roots.add(c.expect("ca cert")).expect("trust the ca");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

#[tokio::test]
async fn https_and_wss_are_served_on_the_one_port() {
    let d = sup::start(tls_config()).await;
    let addr = d.local_addr();

    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    let mut tls = tokio_rustls::TlsConnector::from(client())
        .connect(name, tcp)
        .await
        .expect("handshake with a certificate the client trusts");
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    // A TLS peer may close without close_notify; what was read before counts.
    let _ = tokio::time::timeout(sup::WAIT, tls.read_to_end(&mut buf))
        .await
        .expect("answer in time");
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains(r#"{"status":"ok"}"#), "{text}");

    let req = format!("wss://127.0.0.1:{}/ingest?source=pbx", addr.port())
        .into_client_request()
        .expect("request");
    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(
        req,
        None,
        false,
        Some(tokio_tungstenite::Connector::Rustls(client())),
    )
    .await
    .expect("wss handshake");
    let hello = tokio::time::timeout(sup::WAIT, ws.next())
        .await
        .expect("hello in time")
        .expect("a message")
        .expect("no error");
    let Message::Text(hello) = hello else {
        panic!("want a text hello, got {hello:?}")
    };
    assert!(hello.contains(r#""type":"hello""#), "{hello}");

    // Plain HTTP on the TLS port is not served.
    let (status, _, _) = tokio::time::timeout(sup::WAIT, async {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut b = Vec::new();
        let _ = s.read_to_end(&mut b).await;
        (
            String::from_utf8_lossy(&b).starts_with("HTTP/1.1 200"),
            (),
            (),
        )
    })
    .await
    .expect("plain request ends");
    assert!(!status, "plain http answered on the tls port");
    d.shutdown().await;
}

#[tokio::test]
async fn a_missing_or_unfitting_certificate_stops_the_start_naming_the_key() {
    let mut c = tls_config();
    c.server.tls = Some(TlsFiles {
        cert: sup::fixture("tls", "no-such.pem"),
        key: sup::fixture("tls", "key.pem"),
    });
    let e = match floorwatch::daemon::start(c).await {
        Ok(d) => {
            d.shutdown().await;
            panic!("started without a certificate");
        }
        Err(e) => format!("{e:#}"),
    };
    assert!(
        e.contains("server.tls.cert") && e.contains("no-such.pem"),
        "{e}"
    );

    // The CA's certificate with the leaf's key: they do not belong together.
    let mut c = tls_config();
    c.server.tls = Some(TlsFiles {
        cert: sup::fixture("tls", "ca.pem"),
        key: sup::fixture("tls", "key.pem"),
    });
    let e = match floorwatch::daemon::start(c).await {
        Ok(d) => {
            d.shutdown().await;
            panic!("started with a key of another certificate");
        }
        Err(e) => format!("{e:#}"),
    };
    assert!(e.contains("server.tls.key"), "{e}");
}
