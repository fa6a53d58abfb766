//! The record's endpoints: waivers and their reversals, floor-discipline demerits, shifts,
//! closing a month and its statement.
//!
//! Every change is an event (`violation.waived`, `violation.unwaived`, `demerit.recorded`,
//! `shift.scheduled`, `shift.cancelled`, `period.closed`) made at the daemon's time from
//! source `api`, recorded `by` the signed-in [`Principal`], validated exactly as on
//! `/ingest`, journaled and applied by the engine task, which refuses what the rules do not
//! allow. A lead acts on their own teams only (403 otherwise, saying why).
//!
//! Must not: write the store or touch the engine (the engine task does both).

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;

use super::{ApiError, AppState, Principal};
use crate::engine::Refusal;
use crate::event::{decode_event, Event, Id};
use crate::floor::{ViolationFilter, ViolationRecord};
use crate::owner::ApiRefused;
use crate::time::{Period, Timestamp};

/// An engine refusal as the API answers it.
pub(super) fn refused(r: ApiRefused) -> ApiError {
    match r {
        ApiRefused::Limit(limit) => ApiError::Unavailable(limit.message()),
        ApiRefused::Record(r @ Refusal::UnknownViolation(_)) => ApiError::NoSuch(r.to_string()),
        ApiRefused::Record(
            r @ (Refusal::ClosedPeriod { .. } | Refusal::AlreadyClosed(_) | Refusal::NotWaived(_)),
        ) => ApiError::Conflict(r.to_string()),
        ApiRefused::Record(r) => ApiError::BadRequest(r.to_string()),
        ApiRefused::Unable(m) => ApiError::Conflict(m),
        ApiRefused::Stream(m) => ApiError::NotReady(m),
        ApiRefused::Timeout(m) => ApiError::Timeout(m),
    }
}

/// The event of `fields` (a JSON object without `type` and `ts`) at the daemon's time,
/// decoded as `/ingest` decodes it.
fn event(s: &AppState, ty: &str, fields: serde_json::Value) -> Result<Event, ApiError> {
    event_at(s.clock.now(), ty, fields)
}

/// A record-keeping event (a waiver, its reversal) at the engine clock: it is not about the
/// floor's time, and must not move the clock ahead of the sources (a floor replayed from the
/// past, a quiet source).
fn bookkeeping(s: &AppState, ty: &str, fields: serde_json::Value) -> Result<Event, ApiError> {
    event_at(
        s.floor.engine_clock().unwrap_or_else(|| s.clock.now()),
        ty,
        fields,
    )
}

fn event_at(ts: Timestamp, ty: &str, mut fields: serde_json::Value) -> Result<Event, ApiError> {
    if let Some(o) = fields.as_object_mut() {
        o.insert("type".into(), ty.into());
        o.insert("ts".into(), ts.0.into());
    }
    decode_event(&fields.to_string()).map_err(|(_, e)| ApiError::BadRequest(e.to_string()))
}

/// Applies an API event; the ids of the violations it raised come back too.
async fn apply(s: &AppState, ev: Event) -> Result<crate::owner::ApiReply, ApiError> {
    s.engine
        .apply_api(ev)
        .await
        .map_err(|_| ApiError::Unavailable("shutting down"))?
        .map_err(refused)
}

/// 201 when the change is in the journal, 202 when it is applied but waits for a failing
/// store.
fn created(stored: bool) -> StatusCode {
    if stored {
        StatusCode::CREATED
    } else {
        StatusCode::ACCEPTED
    }
}

/// The team `agent` is judged in, as the floor knows it now (config, else its events).
pub(super) fn team_of(s: &AppState, agent: &str) -> Id {
    if let Some(a) = s.floor.agent(agent) {
        return a.team;
    }
    s.config
        .rules
        .team_of
        .get(agent)
        .map(|t| Id::from(t.as_str()))
        .unwrap_or_else(|| Id::const_new("unassigned"))
}

/// 403 unless `p` may act on `team`.
pub(super) fn in_scope(p: &Principal, what: &str, team: &str) -> Result<(), ApiError> {
    if p.may_act_on(team) {
        return Ok(());
    }
    let mine = p.teams.as_deref().unwrap_or_default().join(", ");
    Err(ApiError::Forbidden(format!(
        "{what} is in team {team}, not one of yours ({mine}): a lead acts on their own teams only"
    )))
}

/// `by` of an event: the signed-in name; on an open loopback surface (no credentials
/// configured), the body's `by` if it gives one.
pub(super) fn by(p: &Principal, body_by: Option<&str>) -> String {
    match body_by.filter(|b| p.open && !b.trim().is_empty()) {
        Some(b) => b.to_string(),
        None => p.name.clone(),
    }
}

/// A violation's record: from the store, else the floor's log.
async fn record_of(s: &AppState, id: u64) -> Result<Option<ViolationRecord>, ApiError> {
    match s.store.clone() {
        Some(store) => super::blocking(move || store.violation(id)).await,
        None => Ok(s
            .floor
            .violations(&ViolationFilter::default(), usize::MAX)
            .into_iter()
            .find(|r| r.violation.id == id)),
    }
}

fn violation_id(id: &str) -> Result<u64, ApiError> {
    id.parse::<u64>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| ApiError::BadRequest(format!("violation id must be a number, not {id:?}")))
}

#[derive(Deserialize)]
pub(super) struct WaiverBody {
    why: Option<String>,
    /// The old name of `why`.
    reason: Option<String>,
    /// Only heeded on an open loopback surface; otherwise the signed-in user is `by`.
    by: Option<String>,
}

async fn waiver(
    s: AppState,
    p: Principal,
    id: String,
    body: Result<Json<WaiverBody>, axum::extract::rejection::JsonRejection>,
    waived: bool,
) -> Result<Response, ApiError> {
    let id = violation_id(&id)?;
    let Json(b) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let why = b.why.or(b.reason).unwrap_or_default();
    if why.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "`why` must say why, not be empty".into(),
        ));
    }
    let Some(record) = record_of(&s, id).await? else {
        return Err(ApiError::NoSuch(format!("no violation {id} on record")));
    };
    in_scope(
        &p,
        &format!("violation {id} (agent {})", record.violation.agent),
        &record.violation.team,
    )?;
    let by = by(&p, b.by.as_deref());
    let ty = if waived {
        "violation.waived"
    } else {
        "violation.unwaived"
    };
    let ev = bookkeeping(
        &s,
        ty,
        serde_json::json!({"violation": id, "by": by, "why": why}),
    )?;
    let reply = apply(&s, ev).await?;
    tracing::info!(id, by = %by, waived, "waiver recorded");
    let record = record_of(&s, id).await?;
    Ok((
        created(reply.stored),
        Json(serde_json::json!({
            "violation": record,
            "waived": waived,
            "by": by,
            "why": why,
            "at": reply.at,
            "stored": reply.stored,
        })),
    )
        .into_response())
}

/// `POST /api/v1/violations/{id}/waive` (lead of the violation's team, qa): `{"why"}`.
pub(super) async fn waive(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    body: Result<Json<WaiverBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    waiver(s, p, id, body, true).await
}

/// `POST /api/v1/violations/{id}/unwaive` (lead of the violation's team, qa): `{"why"}`.
pub(super) async fn unwaive(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    body: Result<Json<WaiverBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    waiver(s, p, id, body, false).await
}

#[derive(Deserialize)]
pub(super) struct DemeritBody {
    agent: String,
    item: String,
    points: Option<serde_json::Value>,
    note: Option<String>,
    by: Option<String>,
}

/// `POST /api/v1/demerits` (lead of the agent's team, qa): `{"agent","item","points"?,
/// "note"?}` becomes a `demerit.recorded` event, a violation of rule `discipline`.
pub(super) async fn demerit(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    body: Result<Json<DemeritBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    in_scope(&p, &format!("agent {}", b.agent), &team_of(&s, &b.agent))?;
    let by = by(&p, b.by.as_deref());
    let mut fields = serde_json::json!({"agent": b.agent, "item": b.item, "by": by});
    if let Some(o) = fields.as_object_mut() {
        if let Some(points) = b.points {
            o.insert("points".into(), points);
        }
        if let Some(note) = b.note.filter(|n| !n.trim().is_empty()) {
            o.insert("note".into(), note.into());
        }
    }
    let ev = event(&s, "demerit.recorded", fields)?;
    let reply = apply(&s, ev).await?;
    let mut raised = Vec::new();
    for id in &reply.violations {
        if let Some(r) = record_of(&s, *id).await? {
            raised.push(r);
        }
    }
    Ok((
        created(reply.stored),
        Json(serde_json::json!({"violations": raised, "by": by, "stored": reply.stored})),
    )
        .into_response())
}

/// One shift of `POST /api/v1/shifts`.
#[derive(Deserialize)]
pub(super) struct ShiftBody {
    shift: serde_json::Value,
    agent: serde_json::Value,
    start: serde_json::Value,
    end: serde_json::Value,
    #[serde(default)]
    position: serde_json::Value,
    #[serde(default)]
    team: serde_json::Value,
}

/// `POST /api/v1/shifts` (admin, lead of each shift's team): a JSON array of shifts
/// (`shift`, `agent`, `start`, `end` as RFC 3339 or epoch ms, optional `position`, `team`),
/// each a `shift.scheduled` event. Every shift is checked first; one bad shift and none is
/// applied (400 naming its index).
pub(super) async fn plan_shifts(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    body: Result<Json<Vec<ShiftBody>>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(list) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if list.len() > s.config.limits.max_batch {
        return Err(ApiError::BadRequest(format!(
            "{} shifts in one request: at most limits.max_batch ({})",
            list.len(),
            s.config.limits.max_batch
        )));
    }
    let mut events = Vec::with_capacity(list.len());
    for (i, x) in list.into_iter().enumerate() {
        let mut fields = serde_json::json!({
            "shift": x.shift, "agent": x.agent, "start": x.start, "end": x.end,
        });
        if let Some(o) = fields.as_object_mut() {
            if !x.position.is_null() {
                o.insert("position".into(), x.position);
            }
            if !x.team.is_null() {
                o.insert("team".into(), x.team);
            }
        }
        let ev = event(&s, "shift.scheduled", fields)
            .map_err(|e| ApiError::BadRequest(format!("shift {i}: {e}")))?;
        if let crate::event::Body::ShiftScheduled { agent, team, .. } = &ev.body {
            // The shift's own team counts for an agent the floor does not know yet.
            let known = team_of(&s, agent);
            let t = match (&known, team) {
                (k, Some(t)) if k == "unassigned" => t.clone(),
                (k, _) => k.clone(),
            };
            in_scope(&p, &format!("shift {i} (agent {agent})"), &t)?;
        }
        events.push(ev);
    }
    let mut stored = true;
    let n = events.len();
    for ev in events {
        stored &= apply(&s, ev).await?.stored;
    }
    Ok((
        created(stored),
        Json(serde_json::json!({"shifts": n, "stored": stored})),
    )
        .into_response())
}

/// `DELETE /api/v1/shifts/{id}` (admin, lead of the shift's team): `shift.cancelled`.
pub(super) async fn cancel_shift(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let shifts = s
        .engine
        .shifts(None, None, None)
        .await
        .map_err(|_| ApiError::Unavailable("shutting down"))?;
    let Some(x) = shifts.into_iter().find(|x| x.shift == id) else {
        return Err(ApiError::NoSuch(format!("no shift {id:?} is planned")));
    };
    in_scope(&p, &format!("shift {id} (agent {})", x.agent), &x.team)?;
    let ev = event(&s, "shift.cancelled", serde_json::json!({"shift": id}))?;
    let reply = apply(&s, ev).await?;
    Ok(Json(serde_json::json!({"cancelled": id, "stored": reply.stored})).into_response())
}

#[derive(Deserialize)]
pub(super) struct ShiftsQuery {
    from: Option<String>,
    to: Option<String>,
    agent: Option<String>,
    team: Option<String>,
}

fn time(key: &str, v: Option<String>) -> Result<Option<Timestamp>, ApiError> {
    v.map(|s| {
        Timestamp::parse_flexible(&s).map_err(|_| {
            ApiError::BadRequest(format!(
                "{key}: want RFC 3339 with offset or epoch milliseconds, not {s:?}"
            ))
        })
    })
    .transpose()
}

/// `GET /api/v1/shifts?from&to&agent&team`: `{"shifts": [...]}`, each with its attendance
/// facts (login, logout, relief, violations), sorted by start.
pub(super) async fn shifts(
    State(s): State<AppState>,
    query: Result<Query<ShiftsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let from = time("from", q.from)?;
    let to = time("to", q.to)?;
    let mut list = s
        .engine
        .shifts(from, to, q.agent.map(Id::from))
        .await
        .map_err(|_| ApiError::Unavailable("shutting down"))?;
    if let Some(team) = q.team {
        list.retain(|x| x.team == team);
    }
    Ok(Json(serde_json::json!({ "shifts": list })))
}

/// `YYYY-MM` of a path.
fn month(m: &str) -> Result<Period, ApiError> {
    match Period::parse(m) {
        Some(p @ Period::Month(..)) if m.len() == 7 => Ok(p),
        _ => Err(ApiError::BadRequest(format!(
            "want a month as YYYY-MM, not {m:?}"
        ))),
    }
}

/// `POST /api/v1/periods/{YYYY-MM}/close` (admin, qa): freezes the month's statement; the
/// answer holds its SHA-256. Closing twice is 409.
pub(super) async fn close_period(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(m): Path<String>,
) -> Result<Response, ApiError> {
    month(&m)?;
    let closed = s
        .engine
        .close(Id::from(m.as_str()), Id::from(p.name.as_str()))
        .await
        .map_err(|_| ApiError::Unavailable("shutting down"))?
        .map_err(refused)?;
    tracing::info!(period = %m, by = %p.name, digest = %closed.digest, "month closed");
    Ok((
        created(closed.stored),
        [("x-floorwatch-digest", closed.digest.clone())],
        Json(serde_json::json!({
            "period": m,
            "digest": closed.digest,
            "closed_at": closed.at,
            "by": p.name,
            "stored": closed.stored,
        })),
    )
        .into_response())
}

/// `GET /api/v1/periods/{YYYY-MM}/statement` (lead, qa, admin): the appraisal CSV as closed
/// (recomputed from the journal up to the close, and checked against its digest), or as of
/// now for an open month; the digest in `X-Floorwatch-Digest`, and `X-Floorwatch-Closed`
/// says which.
pub(super) async fn statement(
    State(s): State<AppState>,
    Path(m): Path<String>,
) -> Result<Response, ApiError> {
    let period = month(&m)?;
    let end = s
        .engine
        .journal_end()
        .await
        .map_err(|_| ApiError::Unavailable("shutting down"))?;
    if s.store.is_none() {
        return Err(ApiError::Unavailable("this daemon has no store"));
    }
    let dir = s.config.store.dir.clone();
    let rules = s.config.rules.clone();
    let st =
        tokio::task::spawn_blocking(move || crate::report::statement(&dir, end, rules, period))
            .await;
    let st = match st {
        Ok(Ok(st)) => st,
        Ok(Err(e)) => {
            tracing::error!(error = %format!("{e:#}"), "cannot compute the statement");
            return Err(ApiError::Internal);
        }
        Err(e) => {
            tracing::error!(error = %e, "statement task failed");
            return Err(ApiError::Internal);
        }
    };
    if let Some(closed) = &st.closed_digest {
        if *closed != st.digest {
            tracing::error!(period = %m, closed = %closed, recomputed = %st.digest, "the statement does not reproduce the digest it was closed with");
            return Err(ApiError::Internal);
        }
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::HeaderName::from_static("x-floorwatch-digest"),
                st.digest.clone(),
            ),
            (
                header::HeaderName::from_static("x-floorwatch-closed"),
                st.closed_digest.is_some().to_string(),
            ),
        ],
        st.csv,
    )
        .into_response())
}
