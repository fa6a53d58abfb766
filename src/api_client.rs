//! The client side of the daemon's HTTP API, for the commands that talk to a running daemon
//! (`schedule import --url`, `close-month`): one JSON request, its status and body.
//!
//! Owns nothing but the request; it must not be used by the daemon itself.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `body` (JSON, or nothing) to `url` with `method` and the bearer `token`; returns
/// the status and the body as text.
pub async fn request(
    method: Method,
    url: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
) -> anyhow::Result<(StatusCode, String)> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(Arc::new(rustls::crypto::ring::default_provider()))
        .context("cannot set up TLS")?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let mut req = Request::builder().method(method).uri(url).header(
        USER_AGENT,
        concat!("floorwatch/", env!("CARGO_PKG_VERSION")),
    );
    if let Some(t) = token {
        req = req.header(AUTHORIZATION, format!("Bearer {t}"));
    }
    if body.is_some() {
        req = req.header(CONTENT_TYPE, "application/json");
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .with_context(|| format!("not a valid request to {url}"))?;
    let resp = tokio::time::timeout(TIMEOUT, client.request(req))
        .await
        .with_context(|| format!("{url} did not answer within {TIMEOUT:?}"))?
        .with_context(|| format!("cannot reach {url}"))?;
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .with_context(|| format!("reading the answer of {url}"))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

/// [`request`] with `POST` and a JSON body.
pub async fn post_json(
    url: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> anyhow::Result<(StatusCode, String)> {
    request(Method::POST, url, token, Some(body)).await
}

/// `floorwatch close-month YYYY-MM --url URL --token T [-o FILE]`.
pub fn close_month_main(args: crate::cli::CloseMonthArgs) -> anyhow::Result<()> {
    let base = args.url.trim_end_matches('/');
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let month = &args.month;
    let (status, text) = rt.block_on(request(
        Method::POST,
        &format!("{base}/api/v1/periods/{month}/close"),
        args.token.as_deref(),
        Some(b"{}".to_vec()),
    ))?;
    anyhow::ensure!(
        status.is_success(),
        "the daemon answered {status}: {}",
        text.trim()
    );
    let v: serde_json::Value =
        serde_json::from_str(&text).context("the daemon's answer is not JSON")?;
    let digest = v["digest"].as_str().unwrap_or_default().to_string();
    println!("{month} closed: sha256 {digest}");
    if let Some(path) = &args.out {
        let (status, csv) = rt.block_on(request(
            Method::GET,
            &format!("{base}/api/v1/periods/{month}/statement"),
            args.token.as_deref(),
            None,
        ))?;
        anyhow::ensure!(
            status.is_success(),
            "the daemon answered {status} for the statement: {}",
            csv.trim()
        );
        std::fs::write(path, &csv).with_context(|| format!("cannot write {}", path.display()))?;
        anyhow::ensure!(
            crate::config::digest_of(&csv) == digest,
            "the statement written to {} does not have the closed digest",
            path.display()
        );
    }
    Ok(())
}
