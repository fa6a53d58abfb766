//! The HTTP surface on one port: `/metrics`, `/healthz`, `/readyz`, `/ingest` (the WebSocket
//! upgrade is checked here; the session is [`crate::ingest`]'s), `/api/v1/floor`, `/api/v1/violations`, `/ws/floor` (a snapshot, then
//! deltas: see [`crate::feed`]), and the built-in wallboard at `/`.
//!
//! Owns: the axum [`router`], the JSON shapes of the API, and [`ApiError`] (every error is
//! JSON `{"error": "..."}`; 4xx say what the caller did wrong, 5xx say nothing internal).
//! Must not: touch the engine. Handlers read the published [`Floor`] and [`Metrics`], query
//! the store's read side on a blocking thread, and send API events (approvals) and queries
//! (active approvals) to the engine task through its [`EngineClient`].
//!
//! Shapes: `/api/v1/floor` is one object (`engine_clock`, `sources_connected`, `agents`,
//! `queues` with today's and the last 15 minutes' KPIs and wait percentiles, `floor` KPIs,
//! `language`, `teams` with their leads, `limits` for the wallboard's tiles,
//! `ring_percentiles` per team, `open_violations`); `/api/v1/violations` is
//! `{"violations": [record, ...]}` in the order raised, at most
//! [`MAX_VIOLATIONS_PER_QUERY`] (the newest), where `from` ≤ `at` < `to`, read from the
//! store (SQLite). `POST /api/v1/violations/{id}/waive` and `POST /api/v1/approvals` are the
//! lead's; `GET /api/v1/violations/{id}` is one record with its evidence (the alerts'
//! `generatorURL`); `GET /api/v1/approvals` lists the approvals active at the engine clock.
//!
//! The console pages `/lead` and `/me` and their assets are public and hold no data (module
//! `pages`); they read `GET /api/v1/session`, `/api/v1/me` and `/api/v1/standing` (module
//! `console`) and act through the record's endpoints.
//!
//! Access (`[server.tokens]`): `/ingest` takes ingest tokens; the wallboard, `/ws/floor` and
//! `GET /api` take viewer or lead tokens (header, or `?token=` for the wallboard on a TV); a surface
//! without tokens is open to loopback peers only (403 otherwise). `/ws/floor` also takes a
//! token as a WebSocket subprotocol (the console pages' way, see module `access`). The `POST`s
//! take lead tokens only (header). `/metrics`, `/healthz` and
//! `/readyz` are open.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::{Config, SourceMode};
use crate::engine::{AgentView, QueueCounts, Rule};
use crate::event::{Id, MAX_ID_LEN};
use crate::feed::{FloorFeed, FloorParts};
use crate::floor::{Floor, Percentiles, Status, ViolationFilter, ViolationRecord};
use crate::ingest::Ingest;
use crate::limits::Limiter;
use crate::metrics::{Metrics, CONTENT_TYPE};
use crate::owner::{EngineClient, EngineTask};
use crate::store::StoreReader;
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
    /// The store's read side; `None` for a daemon without a store (violations then come from
    /// the in-memory log).
    pub store: Option<StoreReader>,
    /// For events made by the API (approvals).
    pub engine: EngineClient,
    /// Wall time of waivers and approvals.
    pub clock: Clock,
    /// Cancelled when the daemon shuts down (ends `/ws/floor` streams).
    pub shutdown: CancellationToken,
    /// The `/ws/floor` feed (its task runs apart, see [`crate::feed`]).
    pub feed: Arc<FloorFeed>,
    /// Connection permits of `[limits]`.
    pub limiter: Arc<Limiter>,
}

/// The one error type of the HTTP surface.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("open on loopback only: configure server.tokens.{0} to allow other hosts")]
    LoopbackOnly(&'static str),
    /// A valid token of a role that may not use this surface.
    #[error("this token's role may not use this surface (it takes {0} tokens)")]
    WrongRole(&'static str),
    /// A signed-in user acting outside their scope (a lead on another team, an agent on
    /// someone else's record).
    #[error("{0}")]
    Forbidden(String),
    /// The request conflicts with the record (a closed month, a month closed twice, an
    /// unwaive of a violation that is not waived).
    #[error("{0}")]
    Conflict(String),
    #[error("no such path")]
    NotFound,
    #[error("{0}")]
    NoSuch(String),
    #[error("{0}")]
    Unavailable(&'static str),
    /// Not ready, with the reason (`/readyz`); a shared stream that did not take a change.
    #[error("{0}")]
    NotReady(String),
    /// A change was published to the shared stream but did not come back in time.
    #[error("{0}")]
    Timeout(String),
    #[error("internal error")]
    Internal,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::LoopbackOnly(_) | ApiError::WrongRole(_) | ApiError::Forbidden(_) => {
                StatusCode::FORBIDDEN
            }
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::NotFound | ApiError::NoSuch(_) => StatusCode::NOT_FOUND,
            ApiError::Unavailable(_) | ApiError::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
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

/// The peer address, when the server was started with connect info.
pub fn peer_of(extensions: &axum::http::Extensions) -> Option<SocketAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| *a)
}

/// The axum app of the daemon.
///
/// Serve it with `into_make_service_with_connect_info::<SocketAddr>()` so that the
/// loopback-only rule of untokened surfaces can see the peer.
pub fn router(state: AppState) -> Router {
    use access::*;
    let viewer = Router::new()
        .route("/", get(wallboard))
        .route("/api/v1/floor", get(floor))
        .route("/ws/floor", get(floor_stream))
        .route("/api/v1/approvals", get(approvals))
        .route("/api/v1/shifts", get(record::shifts))
        .route_layer(middleware::from_fn_with_state(state.clone(), view_guard));
    let record = Router::new()
        .route("/api/v1/violations", get(violations))
        .route("/api/v1/violations/{id}", get(violation))
        .route("/api/v1/appraisal", get(appraisal))
        .route("/api/v1/session", get(console::session))
        .route("/api/v1/standing", get(console::standing))
        .route_layer(middleware::from_fn_with_state(state.clone(), record_guard));
    let me = Router::new()
        .route("/api/v1/me", get(console::me))
        .route_layer(middleware::from_fn_with_state(state.clone(), me_guard));
    // The console pages and their assets hold no data: open to all (see `pages`).
    let pages = Router::new()
        .route("/lead", get(pages::lead))
        .route("/me", get(pages::me))
        .route("/assets/console.js", get(pages::console_js))
        .route("/assets/lead.js", get(pages::lead_js))
        .route("/assets/me.js", get(pages::me_js))
        .route("/assets/console.css", get(pages::console_css))
        .route("/assets/cjk.woff2", get(pages::cjk_font));
    let lead = Router::new()
        .route("/api/v1/violations/{id}/waive", post(record::waive))
        .route("/api/v1/violations/{id}/unwaive", post(record::unwaive))
        .route("/api/v1/approvals", post(grant_approval))
        .route("/api/v1/demerits", post(record::demerit))
        .route_layer(middleware::from_fn_with_state(state.clone(), lead_guard));
    let shifts = Router::new()
        .route("/api/v1/shifts", post(record::plan_shifts))
        .route("/api/v1/shifts/{id}", delete(record::cancel_shift))
        .route_layer(middleware::from_fn_with_state(state.clone(), shifts_guard));
    let close = Router::new()
        .route("/api/v1/periods/{month}/close", post(record::close_period))
        .route_layer(middleware::from_fn_with_state(state.clone(), close_guard));
    let statement = Router::new()
        .route("/api/v1/periods/{month}/statement", get(record::statement))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            statement_guard,
        ));
    Router::new()
        .merge(viewer)
        .merge(record)
        .merge(lead)
        .merge(shifts)
        .merge(close)
        .merge(statement)
        .merge(me)
        .merge(pages)
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/ingest", get(ingest_upgrade))
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
    // Every phone-system adapter must hold its platform connection (or its file).
    for a in &s.config.adapters {
        let up = s
            .metrics
            .adapter_connected
            .with_label_values(&[a.name.as_str()])
            .get();
        if up == 0 {
            return Err(ApiError::NotReady(format!(
                "source {:?} ({}) not connected",
                a.name,
                a.kind.kind().as_str()
            )));
        }
    }
    if let Some(js) = &s.config.jetstream {
        let name = [js.name.as_str()];
        let stream = &s.metrics.stream;
        if s.metrics.adapter_connected.with_label_values(&name).get() == 0 {
            return Err(ApiError::NotReady(format!(
                "source {:?} (nats-jetstream) not connected",
                js.name
            )));
        }
        if stream.catching_up.with_label_values(&name).get() == 1 {
            return Err(ApiError::NotReady(format!(
                "source {:?} (nats-jetstream) catching up with the stream: {} messages behind",
                js.name,
                stream.pending.with_label_values(&name).get()
            )));
        }
    }
    if let Some(fault) = s.floor.store_fault() {
        return Err(ApiError::NotReady(format!(
            "store failing, not acknowledging: {fault}"
        )));
    }
    Ok(Json(serde_json::json!({"status": "ready"})))
}

/// KPIs of one window, as the API shows them.
#[derive(Serialize)]
struct KpisJson {
    offered: u64,
    answered: u64,
    abandoned: u64,
    answer_rate: Option<f64>,
    service_level: Option<f64>,
    asa_seconds: Option<f64>,
}

impl From<&QueueCounts> for KpisJson {
    fn from(c: &QueueCounts) -> KpisJson {
        KpisJson {
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
    today: KpisJson,
    last_15m: KpisJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    wait_percentiles: Option<Percentiles>,
}

#[derive(Serialize)]
struct FloorKpisJson {
    today: KpisJson,
    last_15m: KpisJson,
}

/// The floor of `/api/v1/floor` and of `/ws/floor` snapshots.
#[derive(Serialize)]
struct FloorJson {
    #[serde(flatten)]
    rest: FloorRest,
    agents: Vec<AgentView>,
    #[serde(flatten)]
    statics: FloorStatics,
}

/// Everything of the floor but the agents.
#[derive(Serialize)]
struct FloorRest {
    /// The engine clock (latest event time applied or timeout handled).
    engine_clock: Option<Timestamp>,
    sources_connected: usize,
    queues: Vec<QueueJson>,
    floor: FloorKpisJson,
    /// Today's ring times per team, seconds.
    ring_percentiles: BTreeMap<Id, Percentiles>,
    open_violations: Vec<ViolationRecord>,
    /// Who a shift covers now: per team, and the absent agents (tiles of their own).
    schedule: ScheduleJson,
    /// Today's outbound per team, with the sales target.
    outbound: Arc<Vec<crate::floor::TeamOutbound>>,
}

/// Schedules on the floor now.
#[derive(Serialize)]
struct ScheduleJson {
    teams: Vec<TeamScheduleJson>,
    absent: Vec<AbsentJson>,
}

#[derive(Serialize)]
struct TeamScheduleJson {
    team: Id,
    scheduled: u64,
    logged_in: u64,
    absent: u64,
}

/// An agent a shift covers now who is not logged in.
#[derive(Serialize)]
struct AbsentJson {
    agent: Id,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<Id>,
    team: Id,
    shift: Id,
    start: Timestamp,
    end: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<Id>,
    /// How long after the shift's start, at the engine clock.
    late_seconds: f64,
}

fn schedule_json(floor: &Floor, now: Option<Timestamp>) -> ScheduleJson {
    let mut teams: BTreeMap<Id, TeamScheduleJson> = BTreeMap::new();
    let mut absent = Vec::new();
    for s in floor.schedule().iter() {
        let t = teams
            .entry(s.team.clone())
            .or_insert_with(|| TeamScheduleJson {
                team: s.team.clone(),
                scheduled: 0,
                logged_in: 0,
                absent: 0,
            });
        t.scheduled += 1;
        if s.logged_in {
            t.logged_in += 1;
        } else {
            t.absent += 1;
            absent.push(AbsentJson {
                agent: s.agent.clone(),
                name: s.name.clone(),
                team: s.team.clone(),
                shift: s.shift.clone(),
                start: s.start,
                end: s.end,
                position: s.position.clone(),
                late_seconds: now.map_or(0.0, |n| n.since(s.start).max(0) as f64 / 1000.0),
            });
        }
    }
    ScheduleJson {
        teams: teams.into_values().collect(),
        absent,
    }
}

/// What the wallboard needs of the config: its language, who leads each team, the limits
/// (so that a tile can turn amber before the violation).
#[derive(Serialize)]
struct FloorStatics {
    language: String,
    teams: Vec<TeamJson>,
    limits: LimitsJson,
    /// The floor-discipline catalog: item key → name (a discipline violation's kind is its
    /// key; the wallboard shows the name).
    discipline: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct TeamJson {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    lead: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    supervisor: Option<String>,
}

#[derive(Serialize)]
struct LimitsJson {
    ring_ms: i64,
    grace_ms: i64,
    acw_max_ms: i64,
    reasons: BTreeMap<String, ReasonLimitJson>,
}

#[derive(Serialize)]
struct ReasonLimitJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    max_ms: Option<i64>,
    allowance: bool,
    approval: bool,
}

fn floor_statics(config: &Config) -> FloorStatics {
    let r = &config.rules;
    FloorStatics {
        discipline: r
            .discipline
            .iter()
            .map(|(k, v)| (k.clone(), v.name.clone()))
            .collect(),
        language: config.ui.language.clone(),
        teams: config
            .teams
            .iter()
            .map(|t| TeamJson {
                id: t.id.clone(),
                lead: t.lead.clone(),
                supervisor: t.supervisor.clone(),
            })
            .collect(),
        limits: LimitsJson {
            ring_ms: r.ring_answer.limit(),
            grace_ms: r.unauthorized_pause.grace,
            acw_max_ms: r.unauthorized_pause.acw_max,
            reasons: r
                .reasons
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        ReasonLimitJson {
                            max_ms: v.max,
                            allowance: v.allowance,
                            approval: v.approval,
                        },
                    )
                })
                .collect(),
        },
    }
}

async fn floor(State(s): State<AppState>) -> Json<FloorJson> {
    Json(FloorJson {
        rest: floor_rest(&s.floor),
        agents: s.floor.agents(),
        statics: floor_statics(&s.config),
    })
}

/// The parts of the floor for the [`FloorFeed`].
pub struct FeedParts {
    pub config: Arc<Config>,
    pub floor: Arc<Floor>,
}

/// A JSON object's members: its text without the outer braces.
fn members(v: &impl Serialize) -> String {
    let text = serde_json::to_string(v).unwrap_or_else(|_| "{}".into());
    text.strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or_default()
        .to_string()
}

impl FloorParts for FeedParts {
    fn rest_members(&self) -> String {
        members(&floor_rest(&self.floor))
    }

    fn static_members(&self) -> String {
        members(&floor_statics(&self.config))
    }

    fn heartbeat_members(&self) -> String {
        #[derive(Serialize)]
        struct Heartbeat {
            engine_clock: Option<Timestamp>,
            sources_connected: usize,
        }
        members(&Heartbeat {
            engine_clock: self.floor.engine_clock(),
            sources_connected: self.floor.sources_connected(),
        })
    }
}

/// The query of `GET /ingest` (the daemon's and the relay's).
#[derive(Deserialize)]
pub struct IngestQuery {
    source: Option<String>,
}

/// `GET /ingest?source=NAME`: checks the bearer token (401 before the upgrade), the source
/// name and the connection permit, then hands the WebSocket session to [`Ingest`].
async fn ingest_upgrade(
    State(s): State<AppState>,
    Query(query): Query<IngestQuery>,
    headers: HeaderMap,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let config = &s.config;
    let peer = peer.map(|Extension(ConnectInfo(a))| a);
    if let Err(e) = access::admit_parts(config, access::Surface::Ingest, &headers, None, peer) {
        tracing::warn!(peer = ?peer, error = %e, "ingest refused");
        return e.into_response();
    }
    if let Some(js) = &config.jetstream {
        // Events sent here would reach this daemon only, not the other one of its pair.
        return ApiError::Conflict(format!(
            "this daemon reads its events from the stream of source {:?}: send them to floorwatch relay",
            js.name
        ))
        .into_response();
    }
    serve_ingest(config, &s.limiter, s.ingest, query, ws)
}

/// The part of `GET /ingest` after the credential was admitted, for the daemon and the
/// relay alike: the source name, the upgrade, the connection permit, then the session.
pub fn serve_ingest(
    config: &Config,
    limiter: &Limiter,
    ingest: Ingest,
    query: IngestQuery,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let source = query.source.unwrap_or_else(|| "default".to_string());
    if source.is_empty() || source.len() > MAX_ID_LEN {
        return ApiError::BadRequest(format!(
            "source must be a non-empty name of at most {MAX_ID_LEN} bytes"
        ))
        .into_response();
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let Some(permit) = limiter.ingest_permit() else {
        return ApiError::Unavailable(
            "too many ingest connections (limits.max_ingest_connections): retry later",
        )
        .into_response();
    };
    let max = config.source.max_frame;
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |mut socket| async move {
            ingest.serve_socket(&mut socket, Id::from(source)).await;
            drop(permit);
        })
}

/// `GET /ws/floor`: a snapshot, then deltas and heartbeats (see [`crate::feed`]). Messages
/// from the client are ignored.
async fn floor_stream(State(s): State<AppState>, ws: WebSocketUpgrade) -> Response {
    let Some(permit) = s.limiter.floor_permit() else {
        return ApiError::Unavailable(
            "too many wallboard connections (limits.max_floor_connections): retry later",
        )
        .into_response();
    };
    // Wallboards only listen: small buffers keep 500 of them cheap (tungstenite's defaults
    // are 128 KiB each way per connection).
    // The console pages offer their token as a subprotocol beside this one (see `access`).
    ws.protocols([access::WS_FLOOR_PROTOCOL])
        .max_message_size(64 << 10)
        .read_buffer_size(4 << 10)
        .write_buffer_size(16 << 10)
        .on_upgrade(move |socket| async move {
            s.feed.clone().serve(socket, s.shutdown.clone()).await;
            drop(permit);
        })
}

fn floor_rest(floor: &Floor) -> FloorRest {
    let now = floor.engine_clock();
    let queues = floor.queues();
    let mut waits = floor.wait_percentiles();
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
                today: KpisJson::from(&q.today),
                last_15m: KpisJson::from(&q.last_15m),
                wait_percentiles: waits.remove(&q.queue),
            }
        })
        .collect();
    FloorRest {
        engine_clock: now,
        sources_connected: floor.sources_connected(),
        queues,
        floor: FloorKpisJson {
            today: KpisJson::from(&today),
            last_15m: KpisJson::from(&last_15m),
        },
        ring_percentiles: floor.ring_percentiles(),
        open_violations: floor.open_violations(),
        schedule: schedule_json(floor, now),
        outbound: floor.outbound(),
    }
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
                ApiError::BadRequest(format!("status: want open, closed or waived, not {st:?}"))
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
    Extension(p): Extension<Principal>,
    query: Result<Query<ViolationsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let mut filter = q.filter()?;
    // An agent reads their own record only.
    if let Some(me) = p.own_agent() {
        if filter.agent.as_deref().is_some_and(|a| a != me) {
            return Err(ApiError::Forbidden(format!(
                "you are {me}: you read your own record only"
            )));
        }
        filter.agent = Some(me.to_string());
    }
    let records = match s.store.clone() {
        Some(store) => {
            blocking(move || store.violations(&filter, MAX_VIOLATIONS_PER_QUERY)).await?
        }
        None => s.floor.violations(&filter, MAX_VIOLATIONS_PER_QUERY),
    };
    Ok(Json(serde_json::json!({ "violations": records })))
}

/// `GET /api/v1/violations/{id}`: one violation record with its evidence (alerts link here
/// as their `generatorURL`).
async fn violation(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<ViolationRecord>, ApiError> {
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("violation id must be a number, not {id:?}")))?;
    let found = match s.store.clone() {
        Some(store) => blocking(move || store.violation(id)).await?,
        None => s
            .floor
            .violations(&ViolationFilter::default(), usize::MAX)
            .into_iter()
            .find(|r| r.violation.id == id),
    };
    let found = found.ok_or_else(|| ApiError::NoSuch(format!("no violation {id} on record")))?;
    if let Some(me) = p.own_agent() {
        if found.violation.agent != me {
            return Err(ApiError::Forbidden(format!(
                "violation {id} is not yours ({me}): you read your own record only"
            )));
        }
    }
    Ok(Json(found))
}

#[derive(Deserialize)]
struct ApprovalRequest {
    agent: String,
    reason: String,
    minutes: f64,
    /// Only heeded on an open loopback surface; otherwise the signed-in user is `by`.
    by: Option<String>,
}

/// `POST /api/v1/approvals` (lead of the agent's team, qa, admin):
/// `{"agent","reason","minutes"}` becomes an `approval.granted` event `by` the signed-in
/// user at the daemon's time from source `api`, validated, journaled and applied like any
/// other event. 201 with the approval once stored; 202 when it is applied but the store is
/// failing (it stays pending and is stored when the store recovers).
async fn grant_approval(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    body: Result<Json<ApprovalRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(mut a) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    record::in_scope(
        &p,
        &format!("agent {}", a.agent),
        &record::team_of(&s, &a.agent),
    )?;
    a.by = Some(record::by(&p, a.by.as_deref()));
    let now = s.clock.now();
    let text = serde_json::json!({
        "type": "approval.granted",
        "ts": now.0,
        "agent": a.agent,
        "reason": a.reason,
        "minutes": a.minutes,
        "by": a.by,
    })
    .to_string();
    let event =
        crate::event::decode_event(&text).map_err(|(_, e)| ApiError::BadRequest(e.to_string()))?;
    let duration_ms = match &event.body {
        crate::event::Body::ApprovalGranted { duration_ms, .. } => *duration_ms,
        _ => 0,
    };
    let reply = s
        .engine
        .apply_api(event)
        .await
        .map_err(|_| ApiError::Unavailable("shutting down"))?
        .map_err(record::refused)?;
    let status = if reply.stored {
        StatusCode::CREATED
    } else {
        StatusCode::ACCEPTED
    };
    let body = serde_json::json!({
        "agent": a.agent,
        "reason": a.reason,
        "by": a.by,
        "from": reply.at,
        // Held at the engine clock, an approval lasts to the end granted.
        "until": reply.at.max(now).plus(duration_ms),
        "stored": reply.stored,
    });
    Ok((status, Json(body)).into_response())
}

/// `GET /api/v1/approvals`: `{"approvals": [{agent, reason, from, until}, ...]}` active at
/// the engine clock.
async fn approvals(State(s): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let list = s
        .engine
        .approvals()
        .await
        .map_err(|_| ApiError::Unavailable("shutting down"))?;
    Ok(Json(serde_json::json!({ "approvals": list })))
}

#[derive(Deserialize)]
struct AppraisalQuery {
    month: Option<String>,
    team: Option<String>,
    format: Option<String>,
}

/// `GET /api/v1/appraisal?month=YYYY-MM&team=T&format=csv|json`: the month's appraisal as
/// `floorwatch report` computes it (the journal up to its stored end, minus waived
/// violations). JSON is `{"appraisal": [row, ...]}`; CSV has the rules page's columns.
async fn appraisal(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    query: Result<Query<AppraisalQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let month = q
        .month
        .ok_or_else(|| ApiError::BadRequest("month: required, e.g. month=2026-11".into()))?;
    let period = match crate::time::Period::parse(&month) {
        Some(p @ crate::time::Period::Month(..)) => p,
        _ => {
            return Err(ApiError::BadRequest(format!(
                "month: want YYYY-MM, not {month:?}"
            )))
        }
    };
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(f) => {
            return Err(ApiError::BadRequest(format!(
                "format: want csv or json, not {f:?}"
            )))
        }
    };
    if s.store.is_none() {
        return Err(ApiError::Unavailable("this daemon has no store"));
    }
    let end = s
        .engine
        .journal_end()
        .await
        .map_err(|_| ApiError::Unavailable("shutting down"))?;
    let dir = s.config.store.dir.clone();
    let rules = s.config.rules.clone();
    let team = q.team;
    let rows = tokio::task::spawn_blocking(move || {
        crate::report::appraisal(&dir, end, rules, period, team.as_deref())
    })
    .await;
    let rows = match rows {
        // An agent sees their own row only.
        Ok(Ok(mut rows)) => {
            if let Some(me) = p.own_agent() {
                rows.retain(|r| r.agent == me);
            }
            rows
        }
        Ok(Err(e)) => {
            tracing::error!(error = %format!("{e:#}"), "cannot compute the appraisal");
            return Err(ApiError::Internal);
        }
        Err(e) => {
            tracing::error!(error = %e, "appraisal task failed");
            return Err(ApiError::Internal);
        }
    };
    if csv {
        Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            crate::report::to_csv(&rows),
        )
            .into_response())
    } else {
        Ok(Json(serde_json::json!({ "appraisal": rows })).into_response())
    }
}

/// Runs a store query on a blocking thread; a store error is logged here and answered 500.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "store query failed");
            Err(ApiError::Internal)
        }
        Err(e) => {
            tracing::error!(error = %e, "store query task failed");
            Err(ApiError::Internal)
        }
    }
}

impl AppState {
    /// The state of the routes of a daemon whose engine task is `engine`, with the session
    /// state of `/ingest` and the `/ws/floor` feed made here (the caller runs the feed's task
    /// and, in connect mode, the dialer).
    pub fn new(
        config: Arc<Config>,
        engine: &EngineTask,
        clock: Clock,
        limiter: Arc<Limiter>,
        store: Option<StoreReader>,
        shutdown: CancellationToken,
    ) -> AppState {
        let metrics = engine.metrics();
        let ingest = Ingest::new(
            config.clone(),
            clock,
            engine.client(),
            metrics.clone(),
            limiter.clone(),
            shutdown.clone(),
        );
        let feed = FloorFeed::new(
            engine.floor(),
            FeedParts {
                config: config.clone(),
                floor: engine.floor(),
            },
        );
        AppState {
            config,
            floor: engine.floor(),
            metrics,
            ingest,
            store,
            engine: engine.client(),
            clock,
            shutdown,
            feed,
            limiter,
        }
    }

    /// The state of a daemon without a store, a port or background tasks other than its
    /// engine task (which has no store either): for tests of the router alone. Needs a Tokio
    /// runtime.
    #[cfg(test)]
    pub(crate) fn for_tests(config: Config) -> AppState {
        let shutdown = CancellationToken::new();
        let clock = Clock::system();
        let metrics = Arc::new(Metrics::new().unwrap_or_else(|e| panic!("metrics: {e}")));
        let engine = EngineTask::spawn(&config, clock, metrics.clone(), shutdown.clone())
            .unwrap_or_else(|e| panic!("engine task: {e}"));
        let config = Arc::new(config);
        let limiter = Arc::new(Limiter::new(config.limits, metrics));
        AppState::new(config, &engine, clock, limiter, None, shutdown)
    }
}

mod access;
mod console;
mod pages;
mod record;
#[cfg(test)]
mod tests;

pub use access::{admit_parts, Principal, Surface};
