//! The HTTP surface on one port: `/metrics`, `/healthz`, `/readyz`, `/ingest` (WebSocket,
//! see `ingest`), `/api/v1/floor`, `/api/v1/violations`, and the built-in wallboard at `/`.
//!
//! Owns: the axum [`router`], the JSON shapes of the API, and [`ApiError`] (every error is
//! JSON `{"error": "..."}`; 4xx say what the caller did wrong, 5xx say nothing internal).
//! Must not: touch the engine. Handlers read the published [`Floor`] and [`Metrics`] only.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::config::{Config, SourceMode};
use crate::engine::{AgentView, QueueCounts, Rule};
use crate::event::Id;
use crate::floor::{Floor, Percentiles, Status, ViolationFilter, ViolationRecord};
use crate::ingest::Ingest;
use crate::metrics::{Metrics, CONTENT_TYPE};
use crate::time::Timestamp;

/// The most records one `/api/v1/violations` answer holds (the newest matching ones).
pub const MAX_VIOLATIONS_PER_QUERY: usize = 10_000;

const WALLBOARD: &str = include_str!("wallboard.html");

/// What every handler can read.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub floor: Arc<Floor>,
    pub metrics: Arc<Metrics>,
    pub ingest: Ingest,
}

/// The one error type of the HTTP surface.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("no such path")]
    NotFound,
    #[error("{0}")]
    Unavailable(&'static str),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let mut resp =
            (status, Json(serde_json::json!({"error": self.to_string()}))).into_response();
        if matches!(self, ApiError::Unauthorized) {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

/// Whether `headers` carry `Authorization: Bearer T` for one of `tokens`; true when `tokens`
/// is empty (that surface is open). Compares in constant time per token.
pub fn bearer_ok(headers: &HeaderMap, tokens: &[String]) -> bool {
    if tokens.is_empty() {
        return true;
    }
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    // Check every token so the time taken does not say which one nearly matched.
    tokens.iter().fold(false, |ok, t| {
        ct_eq(t.as_bytes(), given.trim().as_bytes()) | ok
    })
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The axum app of the daemon.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(wallboard))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/ingest", get(crate::ingest::handle_upgrade))
        .route("/api/v1/floor", get(floor))
        .route("/api/v1/violations", get(violations))
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
}

async fn wallboard() -> Html<&'static str> {
    Html(WALLBOARD)
}

async fn metrics(State(s): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], s.metrics.encode()).into_response()
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn readyz(State(s): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    if s.config.source.mode == SourceMode::Connect && s.floor.sources_connected() == 0 {
        return Err(ApiError::Unavailable("source not connected"));
    }
    Ok(Json(serde_json::json!({"status": "ready"})))
}

/// KPIs of one window, as the API shows them.
#[derive(Serialize)]
struct Kpis {
    offered: u64,
    answered: u64,
    abandoned: u64,
    answer_rate: Option<f64>,
    service_level: Option<f64>,
    asa_seconds: Option<f64>,
}

impl From<&QueueCounts> for Kpis {
    fn from(c: &QueueCounts) -> Kpis {
        Kpis {
            offered: c.offered,
            answered: c.answered,
            abandoned: c.abandoned,
            answer_rate: c.answer_rate(),
            service_level: c.service_level(),
            asa_seconds: c.asa_seconds(),
        }
    }
}

#[derive(Serialize)]
struct QueueJson {
    queue: Id,
    waiting: u64,
    longest_wait_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    oldest_since: Option<Timestamp>,
    today: Kpis,
    last_15m: Kpis,
    #[serde(skip_serializing_if = "Option::is_none")]
    wait_percentiles: Option<Percentiles>,
}

#[derive(Serialize)]
struct FloorKpis {
    today: Kpis,
    last_15m: Kpis,
}

#[derive(Serialize)]
struct FloorJson {
    /// The engine clock (latest event time applied or timeout handled).
    engine_clock: Option<Timestamp>,
    sources_connected: usize,
    agents: Vec<AgentView>,
    queues: Vec<QueueJson>,
    floor: FloorKpis,
    /// Today's ring times per team, seconds.
    ring_percentiles: BTreeMap<Id, Percentiles>,
    open_violations: Vec<ViolationRecord>,
}

async fn floor(State(s): State<AppState>) -> Json<FloorJson> {
    let now = s.floor.engine_clock();
    let queues = s.floor.queues();
    let mut waits = s.floor.wait_percentiles();
    let mut today = QueueCounts::default();
    let mut last_15m = QueueCounts::default();
    let queues = queues
        .iter()
        .map(|q| {
            today.add(&q.today);
            last_15m.add(&q.last_15m);
            let longest = match (q.oldest_since, now) {
                (Some(since), Some(now)) if q.waiting > 0 => {
                    now.since(since).max(0) as f64 / 1000.0
                }
                _ => 0.0,
            };
            QueueJson {
                queue: q.queue.clone(),
                waiting: q.waiting,
                longest_wait_seconds: longest,
                oldest_since: q.oldest_since,
                today: Kpis::from(&q.today),
                last_15m: Kpis::from(&q.last_15m),
                wait_percentiles: waits.remove(&q.queue),
            }
        })
        .collect();
    Json(FloorJson {
        engine_clock: now,
        sources_connected: s.floor.sources_connected(),
        agents: s.floor.agents(),
        queues,
        floor: FloorKpis {
            today: Kpis::from(&today),
            last_15m: Kpis::from(&last_15m),
        },
        ring_percentiles: s.floor.ring_percentiles(),
        open_violations: s.floor.open_violations(),
    })
}

#[derive(Deserialize)]
struct ViolationsQuery {
    from: Option<String>,
    to: Option<String>,
    agent: Option<String>,
    team: Option<String>,
    rule: Option<String>,
    status: Option<String>,
}

impl ViolationsQuery {
    fn filter(self) -> Result<ViolationFilter, ApiError> {
        let time = |key: &str, v: Option<String>| {
            v.map(|s| {
                Timestamp::parse_flexible(&s).map_err(|_| {
                    ApiError::BadRequest(format!(
                        "{key}: want RFC 3339 with offset or epoch milliseconds, not {s:?}"
                    ))
                })
            })
            .transpose()
        };
        let rule =
            match self.rule {
                None => None,
                Some(r) => Some(Rule::ALL.into_iter().find(|x| x.as_str() == r).ok_or_else(
                    || {
                        ApiError::BadRequest(format!(
                            "rule: want ring_answer, break_overrun or unauthorized_pause, not {r:?}"
                        ))
                    },
                )?),
            };
        let status = match self.status {
            None => None,
            Some(st) => Some(Status::parse(&st).ok_or_else(|| {
                ApiError::BadRequest(format!("status: want open or closed, not {st:?}"))
            })?),
        };
        Ok(ViolationFilter {
            from: time("from", self.from)?,
            to: time("to", self.to)?,
            agent: self.agent,
            team: self.team,
            rule,
            status,
        })
    }
}

async fn violations(
    State(s): State<AppState>,
    query: Result<Query<ViolationsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let filter = q.filter()?;
    let records = s.floor.violations(&filter, MAX_VIOLATIONS_PER_QUERY);
    Ok(Json(serde_json::json!({ "violations": records })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_checks() {
        let mut h = HeaderMap::new();
        assert!(bearer_ok(&h, &[]));
        let tokens = vec!["s3cret".to_string(), "other".to_string()];
        assert!(!bearer_ok(&h, &tokens));
        h.insert(header::AUTHORIZATION, "Bearer nope".parse().unwrap());
        assert!(!bearer_ok(&h, &tokens));
        h.insert(header::AUTHORIZATION, "Bearer other".parse().unwrap());
        assert!(bearer_ok(&h, &tokens));
        h.insert(header::AUTHORIZATION, "Basic other".parse().unwrap());
        assert!(!bearer_ok(&h, &tokens));
    }
}
