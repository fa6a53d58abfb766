//! What the console pages (`/lead`, `/me`) read besides the floor feed: who is signed in
//! (`GET /api/v1/session`), the agent's own live view (`GET /api/v1/me`) and the
//! appraisal so far (`GET /api/v1/standing`).
//!
//! Every answer is scoped by the [`Principal`]: an agent sees their own agent, row and
//! violations only; a lead the rows of their own teams; qa, admin and viewers every row.
//!
//! Must not: compute the appraisal (it reads the floor's published
//! [`Standing`](crate::floor::Standing)) or touch the engine beyond its queries.

use axum::extract::{Query, State};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState, Principal};
use crate::config::ItemPoints;
use crate::engine::AppraisalRow;

/// One item of the floor-discipline catalog, as the demerit picker shows it.
#[derive(Serialize)]
struct ItemJson<'a> {
    item: &'a str,
    name: &'a str,
    /// The points of a fixed item; absent for a ranged one.
    #[serde(skip_serializing_if = "Option::is_none")]
    points: Option<u32>,
    /// The range the lead chooses from, for a ranged item.
    #[serde(skip_serializing_if = "Option::is_none")]
    min: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max: Option<u32>,
}

/// A pause reason, as the approval form and the break countdown use it.
#[derive(Serialize)]
struct ReasonJson<'a> {
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_ms: Option<i64>,
    allowance: bool,
    approval: bool,
}

/// `GET /api/v1/session` (every role but ingest): who the credential is, and the config the
/// pages need to act (the discipline catalog, the pause reasons, the money per point).
pub(super) async fn session(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
) -> Json<serde_json::Value> {
    let r = &s.config.rules;
    let discipline: Vec<ItemJson> = r
        .discipline
        .iter()
        .map(|(key, item)| {
            let (points, min, max) = match item.points {
                ItemPoints::Fixed(n) => (Some(n), None, None),
                ItemPoints::Range(lo, hi) => (None, Some(lo), Some(hi)),
            };
            ItemJson {
                item: key,
                name: &item.name,
                points,
                min,
                max,
            }
        })
        .collect();
    let reasons: Vec<ReasonJson> = r
        .reasons
        .iter()
        .map(|(key, v)| ReasonJson {
            reason: key,
            max_ms: v.max,
            allowance: v.allowance,
            approval: v.approval,
        })
        .collect();
    Json(serde_json::json!({
        "name": p.name,
        "role": p.role.as_str(),
        // `null`: every team.
        "teams": p.teams,
        "agent": p.agent,
        "language": s.config.ui.language,
        "money_per_point": r.money_per_point,
        "currency": r.currency,
        "daily_allowance_ms": r.break_overrun.daily_allowance,
        "discipline": discipline,
        "reasons": reasons,
    }))
}

/// `GET /api/v1/me` (role agent): the agent's own floor view, their appraisal so far today
/// and this month, their open violations and active approvals. Nothing of anyone else.
pub(super) async fn me(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Some(me) = p.own_agent().filter(|a| !a.is_empty()) else {
        return Err(ApiError::Forbidden(
            "this page is an agent's own: the signed-in user has no agent (set `agent` in [[users]])"
                .into(),
        ));
    };
    let view = s.floor.agent(me);
    let standing = s.floor.standing();
    let open: Vec<_> = s
        .floor
        .open_violations()
        .into_iter()
        .filter(|r| r.violation.agent == me)
        .collect();
    let approvals: Vec<_> = s
        .engine
        .approvals()
        .await
        .map_err(|_| ApiError::Unavailable("shutting down"))?
        .into_iter()
        .filter(|a| a.agent == me)
        .collect();
    let team = view
        .as_ref()
        .map(|v| v.team.to_string())
        .or_else(|| s.config.rules.team_of.get(me).cloned());
    Ok(Json(serde_json::json!({
        "agent": me,
        "team": team,
        "engine_clock": s.floor.engine_clock(),
        "now": view,
        "standing_as_of": standing.as_of,
        "today": standing.today_of(me),
        "month": standing.month_of(me),
        "open_violations": open,
        "approvals": approvals,
    })))
}

#[derive(Deserialize)]
pub(super) struct StandingQuery {
    team: Option<String>,
}

/// `GET /api/v1/standing?team=T`: `{"as_of", "today": [row...], "month": [row...]}`, the
/// appraisal rows so far (see [`crate::floor::Standing`]), scoped: an agent gets their own
/// rows, a lead those of their own teams, everyone else every row; `team` narrows further.
pub(super) async fn standing(
    State(s): State<AppState>,
    Extension(p): Extension<Principal>,
    query: Result<Query<StandingQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let st = s.floor.standing();
    let keep = |r: &&AppraisalRow| {
        let mine = match p.own_agent() {
            Some(me) => r.agent == me,
            None => p.may_act_on(&r.team),
        };
        mine && q.team.as_deref().is_none_or(|t| r.team == t)
    };
    let today: Vec<&AppraisalRow> = st.today.iter().filter(keep).collect();
    let month: Vec<&AppraisalRow> = st.month.iter().filter(keep).collect();
    Ok(Json(serde_json::json!({
        "as_of": st.as_of,
        "today": today,
        "month": month,
    })))
}
