//! The alert book: one alert per violation, from raise to delivered resolution, and what
//! each delivery target still has to be told.
//!
//! Owns: the alerts and their lifecycle (firing, escalated, resolved), the escalation and
//! resolve-hold timers (engine time, like the engine's own deadlines), the per-target record
//! of which version of each alert was accepted, and the request bodies.
//! Must not: do I/O or read a clock. Engine time and wall time come in as arguments; wall
//! time only stamps `endsAt` of firing alerts, resend schedules and delivery lag.
//!
//! # Lifecycle
//!
//! - A violation raises an alert (`severity="warning"`), firing from the violation's `at`.
//! - When the violation clears, the alert resolves at the clear time. A one-shot kind (raised
//!   and cleared at the same instant, e.g. `missed`) stays firing for `resolve_hold` of engine
//!   time and then resolves, so that it reaches the lead at all.
//! - When the engine clock passes `at + escalate_after` and the violation is still open, a
//!   second alert with `severity="critical"` and `escalate_to` (the team's supervisor) fires
//!   from that moment; both resolve together.
//! - Each change bumps the alert's `version`. A target is due an alert while it has not
//!   accepted the current version; Alertmanager targets are also due every firing alert once
//!   per `resend_every` (with `endsAt` four resend periods ahead, as Prometheus does).
//! - An alert leaves the book when it has resolved and every target accepted that.
//!
//! # Bounds
//!
//! At most `max_alerts`. A new alert over the bound evicts the oldest resolved one (its
//! resolution may then never be delivered: Alertmanager ends it when its last `endsAt`
//! passes); when every alert is firing, the new one is dropped and counted.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::text::{self, Language};
use crate::engine::Violation;
use crate::time::{Millis, Timestamp};

/// Wall time in microseconds (for delivery lag only).
pub type Micros = i64;

/// What the book is set to.
#[derive(Clone, Debug)]
pub struct Settings {
    pub escalate_after: Millis,
    pub resolve_hold: Millis,
    pub resend_every: Millis,
    pub max_alerts: usize,
    pub language: Language,
    /// Base URL of the daemon's API, no trailing `/` (for `generatorURL`).
    pub external_url: String,
}

/// Who hears of a team's alerts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contacts {
    pub lead: Option<String>,
    pub supervisor: Option<String>,
}

/// How a target wants its alerts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    /// `POST /api/v2/alerts`: a JSON array of alerts, re-sent while firing.
    Alertmanager,
    /// A JSON object in the shape of Alertmanager's webhook notification; changes only.
    Webhook,
}

/// One violation's alert, as kept in the store's outbox.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub violation: Violation,
    pub lead: Option<String>,
    pub supervisor: Option<String>,
    /// When the violation's condition cleared (engine time).
    pub cleared_at: Option<Timestamp>,
    /// When the alert resolved; `None` while firing.
    pub ends_at: Option<Timestamp>,
    /// When it escalated to critical.
    pub escalated_at: Option<Timestamp>,
    pub version: u32,
    /// Wall time of the latest change, for the delivery lag (not kept across restarts).
    #[serde(skip)]
    changed: Option<Micros>,
    /// Per target: the version accepted and when (not kept: after a restart every alert is
    /// sent again, which Alertmanager de-duplicates).
    #[serde(skip)]
    sent: Vec<Sent>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Sent {
    version: u32,
    at: Option<Micros>,
    /// A request carrying this alert to the target has not been answered yet: the alert is
    /// not put in another request to it until then, so its versions reach the target in
    /// order even with several requests in flight.
    flying: bool,
}

impl Alert {
    pub fn id(&self) -> u64 {
        self.violation.id
    }

    pub fn firing(&self) -> bool {
        self.ends_at.is_none()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Escalate,
    Resolve,
}

/// What became of a raised violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admitted {
    New,
    /// Already in the book (a journal tail replayed after a restart).
    Known,
    /// The book was full of firing alerts.
    Dropped,
}

/// A request for one target: the alerts in it (id, version) and its JSON body.
#[derive(Debug)]
pub struct Batch {
    pub items: Vec<(u64, u32)>,
    pub body: Vec<u8>,
}

pub struct AlertBook {
    settings: Settings,
    targets: Vec<TargetKind>,
    contacts: HashMap<String, Contacts>,
    alerts: BTreeMap<u64, Alert>,
    timers: BTreeSet<(Timestamp, u64, Timer)>,
    /// Alerts changed since the last [`AlertBook::take_changes`] (to store).
    changed: BTreeSet<u64>,
    /// Alerts gone since then (to delete from the store).
    removed: BTreeSet<u64>,
}

impl AlertBook {
    pub fn new(
        settings: Settings,
        targets: Vec<TargetKind>,
        contacts: HashMap<String, Contacts>,
    ) -> AlertBook {
        AlertBook {
            settings,
            targets,
            contacts,
            alerts: BTreeMap::new(),
            timers: BTreeSet::new(),
            changed: BTreeSet::new(),
            removed: BTreeSet::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.alerts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
    }

    pub fn get(&self, id: u64) -> Option<&Alert> {
        self.alerts.get(&id)
    }

    /// Puts back alerts read from the store (every target is due all of them).
    pub fn restore(&mut self, alerts: impl IntoIterator<Item = Alert>) {
        for mut a in alerts {
            a.sent = vec![Sent::default(); self.targets.len()];
            a.changed = None;
            let id = a.id();
            self.arm(&a);
            self.alerts.insert(id, a);
        }
    }

    fn arm(&mut self, a: &Alert) {
        if !a.firing() {
            return;
        }
        let id = a.id();
        if a.cleared_at.is_some() {
            self.timers.insert((
                a.violation.at.plus(self.settings.resolve_hold),
                id,
                Timer::Resolve,
            ));
        } else if a.escalated_at.is_none() {
            self.timers.insert((
                a.violation.at.plus(self.settings.escalate_after),
                id,
                Timer::Escalate,
            ));
        }
    }

    /// A violation was raised (or replayed): a new firing alert.
    pub fn handle_violation(&mut self, v: &Violation, wall: Micros) -> Admitted {
        if self.alerts.contains_key(&v.id) {
            return Admitted::Known;
        }
        if self.alerts.len() >= self.settings.max_alerts {
            let oldest_resolved = self
                .alerts
                .iter()
                .find(|(_, a)| !a.firing())
                .map(|(id, _)| *id);
            match oldest_resolved {
                Some(id) => self.remove(id),
                None => return Admitted::Dropped,
            }
        }
        let contacts = self.contacts.get(&*v.team).cloned().unwrap_or_default();
        let a = Alert {
            violation: v.clone(),
            lead: contacts.lead,
            supervisor: contacts.supervisor,
            cleared_at: None,
            ends_at: None,
            escalated_at: None,
            version: 1,
            changed: Some(wall),
            sent: vec![Sent::default(); self.targets.len()],
        };
        self.arm(&a);
        self.alerts.insert(v.id, a);
        self.changed.insert(v.id);
        Admitted::New
    }

    /// Violation `id`'s condition cleared at `at` (engine time).
    pub fn handle_cleared(&mut self, id: u64, at: Timestamp, wall: Micros) {
        let hold = self.settings.resolve_hold;
        let escalate_after = self.settings.escalate_after;
        let Some(a) = self.alerts.get_mut(&id) else {
            return;
        };
        if a.cleared_at.is_some() || !a.firing() {
            return;
        }
        a.cleared_at = Some(at);
        let start = a.violation.at;
        self.timers
            .remove(&(start.plus(escalate_after), id, Timer::Escalate));
        if at <= start {
            // One-shot: keep it firing for the hold. Nothing for targets to learn yet.
            self.timers.insert((start.plus(hold), id, Timer::Resolve));
        } else {
            a.ends_at = Some(at);
            a.version += 1;
            a.changed = Some(wall);
        }
        self.changed.insert(id);
    }

    /// The engine clock is `now`: escalates alerts open past `escalate_after` and resolves
    /// one-shot alerts past their hold (deadlines strictly before `now`).
    pub fn handle_timeout(&mut self, now: Timestamp, wall: Micros) {
        while let Some(&(deadline, id, timer)) = self.timers.first() {
            if deadline >= now {
                break;
            }
            self.timers.pop_first();
            let Some(a) = self.alerts.get_mut(&id) else {
                continue;
            };
            match timer {
                Timer::Escalate if a.firing() && a.cleared_at.is_none() => {
                    a.escalated_at = Some(deadline);
                }
                Timer::Resolve if a.firing() => a.ends_at = Some(deadline),
                _ => continue,
            }
            a.version += 1;
            a.changed = Some(wall);
            self.changed.insert(id);
        }
    }

    /// When [`AlertBook::handle_timeout`] next has work (one past the first deadline).
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.timers.first().map(|(d, _, _)| d.plus(1))
    }

    /// Whether [`AlertBook::take_changes`] has anything.
    pub fn has_changes(&self) -> bool {
        !self.changed.is_empty() || !self.removed.is_empty()
    }

    /// Alerts to store and ids to delete, since the last call.
    pub fn take_changes(&mut self) -> (Vec<Alert>, Vec<u64>) {
        let changed = std::mem::take(&mut self.changed);
        let put = changed
            .iter()
            .filter_map(|id| self.alerts.get(id).cloned())
            .collect();
        let removed = std::mem::take(&mut self.removed).into_iter().collect();
        (put, removed)
    }

    fn remove(&mut self, id: u64) {
        if let Some(a) = self.alerts.remove(&id) {
            let start = a.violation.at;
            self.timers.remove(&(
                start.plus(self.settings.escalate_after),
                id,
                Timer::Escalate,
            ));
            self.timers
                .remove(&(start.plus(self.settings.resolve_hold), id, Timer::Resolve));
            self.changed.remove(&id);
            self.removed.insert(id);
        }
    }

    fn due(&self, a: &Alert, target: usize, wall: Micros) -> bool {
        let sent = a.sent.get(target).copied().unwrap_or_default();
        if sent.version < a.version {
            return true;
        }
        self.targets[target] == TargetKind::Alertmanager
            && a.firing()
            && sent
                .at
                .is_none_or(|t| wall - t >= self.settings.resend_every * 1_000)
    }

    /// How many alerts `target` is due now.
    pub fn pending(&self, target: usize, wall: Micros) -> usize {
        self.alerts
            .values()
            .filter(|a| self.due(a, target, wall))
            .count()
    }

    /// When `target` is next due a re-send (wall time), if nothing is due before.
    pub fn next_resend(&self, target: usize) -> Option<Micros> {
        if self.targets.get(target) != Some(&TargetKind::Alertmanager) {
            return None;
        }
        self.alerts
            .values()
            .filter(|a| a.firing())
            .filter_map(|a| a.sent.get(target).filter(|s| !s.flying).and_then(|s| s.at))
            .min()
            .map(|t| t + self.settings.resend_every * 1_000)
    }

    fn flying(a: &Alert, target: usize) -> bool {
        a.sent.get(target).is_some_and(|s| s.flying)
    }

    /// The next request for `target`: up to `max` due alerts not already in a request to it,
    /// oldest first. Only a look: see [`AlertBook::take_batch`].
    pub fn poll_batch(&self, target: usize, wall: Micros, max: usize) -> Option<Batch> {
        let kind = *self.targets.get(target)?;
        let due: Vec<&Alert> = self
            .alerts
            .values()
            .filter(|a| !Self::flying(a, target) && self.due(a, target, wall))
            .take(max)
            .collect();
        if due.is_empty() {
            return None;
        }
        let wall_ms = Timestamp(wall.div_euclid(1_000));
        let mut alerts = Vec::with_capacity(due.len() * 2);
        for a in &due {
            self.render(a, kind, wall_ms, &mut alerts);
        }
        let body = match kind {
            TargetKind::Alertmanager => Value::Array(alerts),
            TargetKind::Webhook => self.webhook_body(alerts),
        };
        Some(Batch {
            items: due.iter().map(|a| (a.id(), a.version)).collect(),
            body: serde_json::to_vec(&body).unwrap_or_default(),
        })
    }

    /// [`AlertBook::poll_batch`], and its alerts are in flight to `target` until
    /// [`AlertBook::handle_sent`] or [`AlertBook::handle_failed`] is called with its items.
    pub fn take_batch(&mut self, target: usize, wall: Micros, max: usize) -> Option<Batch> {
        let batch = self.poll_batch(target, wall, max)?;
        self.set_flying(target, &batch.items, true);
        Some(batch)
    }

    fn set_flying(&mut self, target: usize, items: &[(u64, u32)], flying: bool) {
        for (id, _) in items {
            if let Some(s) = self.alerts.get_mut(id).and_then(|a| a.sent.get_mut(target)) {
                s.flying = flying;
            }
        }
    }

    /// The request carrying `items` to `target` failed (to be retried): they are due again.
    pub fn handle_failed(&mut self, target: usize, items: &[(u64, u32)]) {
        self.set_flying(target, items, false);
    }

    /// No request to `target` is in flight any more (its delivery task dropped them).
    pub fn land_all(&mut self, target: usize) {
        for a in self.alerts.values_mut() {
            if let Some(s) = a.sent.get_mut(target) {
                s.flying = false;
            }
        }
    }

    /// `target` accepted `items` (or refused them for good: `accepted = false`) at `wall`.
    /// Returns the delivery lag (µs) of each first delivery of a change.
    pub fn handle_sent(
        &mut self,
        target: usize,
        items: &[(u64, u32)],
        wall: Micros,
        accepted: bool,
    ) -> Vec<Micros> {
        let mut lags = Vec::new();
        let mut done = Vec::new();
        for &(id, version) in items {
            let Some(a) = self.alerts.get_mut(&id) else {
                continue;
            };
            let Some(sent) = a.sent.get_mut(target) else {
                continue;
            };
            if accepted && sent.version < version && version == a.version {
                if let Some(changed) = a.changed {
                    lags.push((wall - changed).max(0));
                }
            }
            sent.version = sent.version.max(version);
            sent.at = Some(wall);
            sent.flying = false;
            if !a.firing() && a.sent.iter().all(|s| s.version == a.version) {
                done.push(id);
            }
        }
        for id in done {
            self.remove(id);
        }
        lags
    }

    fn labels(&self, a: &Alert, critical: bool) -> Map<String, Value> {
        let v = &a.violation;
        let mut l = Map::new();
        l.insert("alertname".into(), "FloorRuleViolation".into());
        l.insert("rule".into(), v.rule.as_str().into());
        l.insert("kind".into(), v.kind.as_str().into());
        l.insert("agent".into(), v.agent.as_str().into());
        l.insert("team".into(), v.team.as_str().into());
        if let Some(lead) = &a.lead {
            l.insert("lead".into(), lead.as_str().into());
        }
        if let Some(reason) = &v.reason {
            l.insert("reason".into(), reason.as_str().into());
        }
        l.insert(
            "severity".into(),
            if critical { "critical" } else { "warning" }.into(),
        );
        l.insert("violation_id".into(), v.id.to_string().into());
        if critical {
            if let Some(s) = &a.supervisor {
                l.insert("escalate_to".into(), s.as_str().into());
            }
        }
        l
    }

    fn render(&self, a: &Alert, kind: TargetKind, wall: Timestamp, out: &mut Vec<Value>) {
        let v = &a.violation;
        let lang = self.settings.language;
        let mut annotations = Map::new();
        annotations.insert("summary".into(), text::summary(lang, v).into());
        annotations.insert(
            "description".into(),
            text::description(lang, v, a.lead.as_deref()).into(),
        );
        annotations.insert("points".into(), v.points.to_string().into());
        annotations.insert("violation_at".into(), v.at.to_string().into());
        if let Some(call) = &v.call {
            annotations.insert("call".into(), call.as_str().into());
        }
        annotations.insert("limit".into(), v.evidence.limit.clone().into());
        let generator = format!("{}/api/v1/violations/{}", self.settings.external_url, v.id);
        // A firing alert tells Alertmanager how long to trust it without news.
        let ends = a
            .ends_at
            .unwrap_or_else(|| wall.plus(4 * self.settings.resend_every));
        let mut one = |critical: bool, starts: Timestamp| {
            let mut o = Map::new();
            if kind == TargetKind::Webhook {
                o.insert(
                    "status".into(),
                    if a.firing() { "firing" } else { "resolved" }.into(),
                );
                o.insert(
                    "fingerprint".into(),
                    format!("{:016x}{}", v.id, if critical { "c" } else { "w" }).into(),
                );
            }
            o.insert("labels".into(), Value::Object(self.labels(a, critical)));
            o.insert("annotations".into(), Value::Object(annotations.clone()));
            o.insert("startsAt".into(), starts.to_string().into());
            if kind == TargetKind::Alertmanager || !a.firing() {
                o.insert("endsAt".into(), ends.max(starts).to_string().into());
            }
            o.insert("generatorURL".into(), generator.clone().into());
            out.push(Value::Object(o));
        };
        one(false, v.at);
        if let Some(esc) = a.escalated_at {
            one(true, esc);
        }
    }

    /// Alertmanager's webhook notification shape, so receivers written for it work.
    fn webhook_body(&self, alerts: Vec<Value>) -> Value {
        let firing = alerts
            .iter()
            .any(|a| a.get("status").and_then(Value::as_str) == Some("firing"));
        json!({
            "version": "4",
            "receiver": "floorwatch",
            "status": if firing { "firing" } else { "resolved" },
            "groupKey": "floorwatch",
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": self.settings.external_url,
            "alerts": alerts,
        })
    }
}

#[cfg(test)]
mod tests;
