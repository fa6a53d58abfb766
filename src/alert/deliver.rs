//! Delivery: one task per target posts what the book says is due, with a per-request
//! timeout and capped, jittered back-off while the target fails. Up to
//! [`IN_FLIGHT_ALERTMANAGER`] requests are in flight to an Alertmanager at once (one to a
//! webhook); an alert is in at most one of them, so each alert's changes arrive in order.
//!
//! Outcomes (`floorwatch_alert_deliveries_total{target,outcome}`): `delivered` (2xx),
//! `failed` (connection error, timeout, 5xx, 408, 429: retried), `rejected` (any other 4xx:
//! the target will never take this request, so it is not retried; logged with the target's
//! answer). Lag from the change to the target's 2xx goes to
//! `floorwatch_alert_delivery_lag_seconds{target}`.
//!
//! A webhook request carries `X-Floorwatch-Timestamp` (epoch ms) and, when a secret is set,
//! `X-Floorwatch-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
//!
//! Owns: the HTTP client of each target, its back-off, and the delivery metrics. Must not:
//! decide what is due (the book does), or hold the book's lock across a request.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONTENT_TYPE, USER_AGENT};
use hyper::{Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rand::Rng;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Alerts, TargetKind};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::time::Timestamp;

/// Most alerts in one request (a batch of a backlog after an outage).
pub const BATCH_MAX: usize = 500;
/// Most requests in flight at once to one Alertmanager (a burst's batches overlap their
/// round trips). A webhook gets one at a time, so a chat shows its messages in order.
pub const IN_FLIGHT_ALERTMANAGER: usize = 4;
/// First retry delay; it doubles per failure up to `alerts.retry_max`.
const RETRY_FIRST: Duration = Duration::from_millis(500);
/// On shutdown, how long one last attempt may take.
const SHUTDOWN_ATTEMPT: Duration = Duration::from_secs(2);

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A configured target.
#[derive(Clone, Debug)]
pub struct Target {
    pub kind: TargetKind,
    /// The endpoint posted to.
    pub url: Uri,
    /// The `target` label: kind and authority, never the path or query (which may hold a
    /// secret key, as chat-bot webhook URLs do).
    pub label: String,
    secret: Option<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("alert target {url:?}: {why}")]
    Url { url: String, why: String },
    #[error("cannot set up TLS for alert delivery: {0}")]
    Tls(String),
}

fn parse(url: &str) -> Result<Uri, TargetError> {
    let bad = |why: &str| TargetError::Url {
        url: url.to_string(),
        why: why.to_string(),
    };
    let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(bad("want http:// or https://")),
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(bad(
            "credentials in the URL are not supported (put a proxy with auth in front)",
        ));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    Ok(uri)
}

fn label(kind: &str, uri: &Uri) -> String {
    format!(
        "{kind}:{}",
        uri.authority().map(|a| a.as_str()).unwrap_or_default()
    )
}

impl Target {
    /// Alertmanager at base URL `base` (its `/api/v2/alerts` is appended).
    pub fn alertmanager(base: &str) -> Result<Target, TargetError> {
        let base_uri = parse(base)?;
        let endpoint = format!("{}/api/v2/alerts", base.trim_end_matches('/'));
        Ok(Target {
            kind: TargetKind::Alertmanager,
            url: parse(&endpoint)?,
            label: label("alertmanager", &base_uri),
            secret: None,
        })
    }

    /// A webhook posted to as is.
    pub fn webhook(url: &str, secret: Option<&str>) -> Result<Target, TargetError> {
        let uri = parse(url)?;
        Ok(Target {
            kind: TargetKind::Webhook,
            label: label("webhook", &uri),
            url: uri,
            secret: secret.map(|s| s.as_bytes().to_vec()),
        })
    }
}

/// `sha256=<hex>` of HMAC-SHA256 over `"<timestamp>.<body>"`.
pub fn signature(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(timestamp.as_bytes());
    ctx.update(b".");
    ctx.update(body);
    let tag = ctx.sign();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in tag.as_ref() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn client() -> Result<HttpClient, TargetError> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(Arc::new(rustls::crypto::ring::default_provider()))
        .map_err(|e| TargetError::Tls(e.to_string()))?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

/// Why a post did not land.
enum PostError {
    /// Worth retrying.
    Failed(String),
    /// The target refused this request for good.
    Rejected(String),
}

async fn post(
    client: &HttpClient,
    target: &Target,
    body: Vec<u8>,
    now: Timestamp,
    timeout: Duration,
) -> Result<(), PostError> {
    let mut req = Request::post(target.url.clone())
        .header(CONTENT_TYPE, "application/json")
        .header(
            USER_AGENT,
            concat!("floorwatch/", env!("CARGO_PKG_VERSION")),
        );
    if target.kind == TargetKind::Webhook {
        let ts = now.ms().to_string();
        if let Some(secret) = &target.secret {
            req = req.header("x-floorwatch-signature", signature(secret, &ts, &body));
        }
        req = req.header("x-floorwatch-timestamp", ts);
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| PostError::Rejected(format!("cannot build the request: {e}")))?;
    let exchange = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| PostError::Failed(format!("{e:#}")))?;
        let status = resp.status();
        let text = match Limited::new(resp.into_body(), 2048).collect().await {
            Ok(b) => String::from_utf8_lossy(&b.to_bytes()).trim().to_string(),
            Err(_) => String::new(),
        };
        if status.is_success() {
            Ok(())
        } else if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
            Err(PostError::Rejected(format!("{status}: {text}")))
        } else {
            Err(PostError::Failed(format!("{status}: {text}")))
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(PostError::Failed(format!("no answer within {timeout:?}"))),
    }
}

/// Spawns one delivery task per target; they end when `shutdown` is cancelled, after one
/// last bounded attempt at whatever is due.
pub fn spawn(
    alerts: &Alerts,
    clock: Clock,
    metrics: Arc<Metrics>,
    timeout: Duration,
    retry_max: Duration,
    shutdown: CancellationToken,
) -> Result<Vec<JoinHandle<()>>, TargetError> {
    let client = client()?;
    Ok((0..alerts.targets.len())
        .map(|i| {
            let task = Delivery {
                index: i,
                alerts: alerts.clone(),
                client: client.clone(),
                clock,
                metrics: metrics.clone(),
                timeout,
                retry_max,
            };
            let shutdown = shutdown.clone();
            tokio::spawn(async move { task.run(shutdown).await })
        })
        .collect())
}

struct Delivery {
    index: usize,
    alerts: Alerts,
    client: HttpClient,
    clock: Clock,
    metrics: Arc<Metrics>,
    timeout: Duration,
    retry_max: Duration,
}

/// How a finished request went (logged by the loop: a failure once as a warning, then
/// quietly until the target recovers).
enum Outcome {
    Sent,
    Failed(String),
}

impl Delivery {
    fn target(&self) -> &Target {
        &self.alerts.targets[self.index]
    }

    /// Most requests in flight to this target at once.
    fn in_flight_max(&self) -> usize {
        match self.target().kind {
            TargetKind::Alertmanager => IN_FLIGHT_ALERTMANAGER,
            TargetKind::Webhook => 1,
        }
    }

    async fn run(self, shutdown: CancellationToken) {
        let mut failures: u32 = 0;
        let mut flying = FuturesUnordered::new();
        // While the target fails, no new request starts before this.
        let mut backoff_until: Option<tokio::time::Instant> = None;
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            if backoff_until.is_some_and(|t| t <= tokio::time::Instant::now()) {
                backoff_until = None;
            }
            if backoff_until.is_none() {
                while flying.len() < self.in_flight_max() {
                    match self.start(self.timeout) {
                        Some(request) => flying.push(request),
                        None => break,
                    }
                }
            }
            let next = self.alerts.book().next_resend(self.index);
            let wake = next.map(|t| self.clock.instant_at(Timestamp(t / 1_000 + 1)));
            let outcome = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(outcome) = flying.next(), if !flying.is_empty() => Some(outcome),
                _ = self.alerts.shared.wake[self.index].notified(), if flying.len() < self.in_flight_max() => None,
                _ = async {
                    match backoff_until.or(wake) {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => None,
            };
            match outcome {
                None => {}
                Some(Outcome::Sent) => {
                    if failures > 0 {
                        tracing::info!(target = %self.target().label, failures, "alert delivery recovered");
                    }
                    failures = 0;
                }
                Some(Outcome::Failed(why)) => {
                    if failures == 0 {
                        tracing::warn!(target = %self.target().label, error = %why, "alert delivery failed; retrying with back-off");
                    } else {
                        tracing::debug!(target = %self.target().label, error = %why, failures, "alert delivery failed again");
                    }
                    failures = failures.saturating_add(1);
                    let backoff = RETRY_FIRST
                        .saturating_mul(1u32 << failures.min(16).saturating_sub(1))
                        .min(self.retry_max);
                    // ±20 % so that several daemons (or targets) do not retry in step.
                    let jitter = rand::rng().random_range(0.8..1.2);
                    backoff_until = Some(tokio::time::Instant::now() + backoff.mul_f64(jitter));
                }
            }
        }
        // The requests still in flight are dropped; their alerts are due again.
        drop(flying);
        self.alerts.book().land_all(self.index);
        // One last try for what is due (the outbox keeps the rest for the next start).
        if let Some(request) = self.start(SHUTDOWN_ATTEMPT.min(self.timeout)) {
            let _ = request.await;
        }
    }

    /// Takes the next batch due, if any, and returns the request that posts it and records
    /// the answer in the book.
    fn start(&self, timeout: Duration) -> Option<impl std::future::Future<Output = Outcome> + '_> {
        let target = self.target();
        let now = self.clock.now_micros();
        let (batch, pending) = {
            let mut book = self.alerts.book();
            let batch = book.take_batch(self.index, now, BATCH_MAX);
            (batch, book.pending(self.index, now))
        };
        self.metrics
            .alerts_pending
            .with_label_values(&[&target.label])
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
        let batch = batch?;
        let sent_at = self.clock.now();
        Some(async move {
            let result = post(&self.client, target, batch.body, sent_at, timeout).await;
            self.answered(&batch.items, result)
        })
    }

    fn answered(&self, items: &[(u64, u32)], result: Result<(), PostError>) -> Outcome {
        let target = self.target();
        let outcome = |o: &str| {
            self.metrics
                .alert_deliveries
                .with_label_values(&[&target.label, o])
                .inc();
        };
        match result {
            Ok(()) => {
                let lags = self.alerts.book().handle_sent(
                    self.index,
                    items,
                    self.clock.now_micros(),
                    true,
                );
                for &l in &lags {
                    self.metrics
                        .alert_delivery_lag_seconds
                        .with_label_values(&[&target.label])
                        .observe(l as f64 / 1e6);
                }
                self.alerts.record_lags(&lags);
                outcome("delivered");
                tracing::debug!(target = %target.label, alerts = items.len(), "alerts delivered");
                Outcome::Sent
            }
            Err(PostError::Rejected(why)) => {
                self.alerts
                    .book()
                    .handle_sent(self.index, items, self.clock.now_micros(), false);
                outcome("rejected");
                tracing::warn!(target = %target.label, alerts = items.len(), error = %why, "alert target refused alerts; not retrying them");
                Outcome::Sent
            }
            Err(PostError::Failed(why)) => {
                self.alerts.book().handle_failed(self.index, items);
                outcome("failed");
                Outcome::Failed(why)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(tag: ring::hmac::Tag) -> String {
        tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // The published HMAC-SHA256 test vector (key "key"), to pin the primitive.
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"key");
        assert_eq!(
            hex(ring::hmac::sign(
                &key,
                b"The quick brown fox jumps over the lazy dog"
            )),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        // Our message is "<timestamp>.<body>".
        let joined = signature(b"key", "1764321317000", b"{\"a\":1}");
        let direct = hex(ring::hmac::sign(&key, b"1764321317000.{\"a\":1}"));
        assert_eq!(joined, format!("sha256={direct}"));
    }

    #[test]
    fn targets_keep_secrets_out_of_labels_and_refuse_credentials() {
        let t = Target::webhook(
            "https://qyapi.example.com/cgi-bin/webhook/send?key=SECRET",
            None,
        )
        .expect("valid");
        assert_eq!(t.label, "webhook:qyapi.example.com");
        let am = Target::alertmanager("http://127.0.0.1:9093/").expect("valid");
        assert_eq!(am.url.to_string(), "http://127.0.0.1:9093/api/v2/alerts");
        assert_eq!(am.label, "alertmanager:127.0.0.1:9093");
        let e = Target::alertmanager("http://user:pw@am:9093").expect_err("credentials");
        assert!(e.to_string().contains("credentials"), "{e}");
    }
}
