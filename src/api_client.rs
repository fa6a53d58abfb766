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
