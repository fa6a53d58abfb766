//! Rule `attendance`: shifts, reliefs and the three kinds `late_login`,
//! `left_before_relief` and `not_logged_out` (the rules page, rule `attendance`).
//!
//! A shift is judged by the rulebook in force at its start. Its deadlines (start +
//! `login_grace`, the end) are armed only when they lie after the event that (re)scheduled
//! it. At the end the relief is looked up; the release is the end, or the relief's login if
//! the relief was not there yet; the logout check runs `logout_grace` after the release, and
//! moves past a call the agent is still on.

use std::ops::Bound;

use super::appraisal::overlap;
use super::state::{LogoutCheck, Shift, Timer, RECENT_LOGINS_KEEP, RECENT_LOGINS_MAX};
use super::types::{Effect, Kind, Relief, ScheduledNow, ShiftView};
use super::{Engine, Finding, Holder};
use crate::config::RulesConfig;
use crate::event::{Id, MAX_SHIFT_MS};
use crate::time::{format_duration, Timestamp};

/// Index of each kind in [`Shift::raised`].
const LATE_LOGIN: usize = 0;
const LEFT_BEFORE_RELIEF: usize = 1;
const NOT_LOGGED_OUT: usize = 2;

impl Engine {
    /// The rulebook in force at `t` (the last one that took effect at or before it).
    pub(super) fn rulebook_at(&self, t: Timestamp) -> &RulesConfig {
        self.rulebooks
            .iter()
            .rev()
            .find(|v| v.from.is_none_or(|f| f <= t))
            .map(|v| &*v.rules)
            .unwrap_or(&self.rules)
    }

    fn logged_in(&self, agent: &Id) -> bool {
        self.agents.get(agent).is_some_and(|a| a.logged_in)
    }

    /// `shift.scheduled` at `t`: creates the shift, or replaces it if it has not started.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn schedule_shift(
        &mut self,
        id: &Id,
        agent: &Id,
        start: Timestamp,
        end: Timestamp,
        position: &Option<Id>,
        t: Timestamp,
        out: &mut Vec<Effect>,
    ) {
        if let Some(x) = self.shifts.get(id) {
            if x.start <= t {
                // Started already: a re-plan changes nothing.
                return;
            }
            self.unindex_shift(id);
        }
        let mut x = Shift {
            id: id.clone(),
            agent: agent.clone(),
            start,
            end,
            position: position.clone(),
            scheduled_by: self.current.clone(),
            login_timer: None,
            end_timer: None,
            logout: LogoutCheck::Pending,
            raised: [false; 3],
            open: Vec::new(),
            logged_in_ms: 0,
            first_login: None,
            last_logout: None,
        };
        if let Some(a) = self.agents.get(agent) {
            // Login stretches that ended before the shift was planned still count.
            for &(from, to) in &a.recent_logins {
                x.logged_in_ms += overlap(from, to, start, end);
                if to > start && from < end && x.first_login.is_none() {
                    x.first_login = Some(from);
                }
            }
            if a.logged_in && a.login_since < end && x.first_login.is_none() {
                x.first_login = Some(a.login_since);
            }
        }
        let login_deadline = start.plus(self.rulebook_at(start).attendance.login_grace);
        if login_deadline > t {
            x.login_timer =
                Some(self.set_timer(login_deadline, Timer::ShiftLogin { shift: id.clone() }));
        }
        if end > t {
            x.end_timer = Some(self.set_timer(end, Timer::ShiftEnd { shift: id.clone() }));
            self.live_shifts.insert((start, id.clone()));
        } else {
            x.logout = LogoutCheck::Done;
        }
        if let Some(p) = position {
            self.positions
                .entry(p.clone())
                .or_default()
                .insert((start, id.clone()));
        }
        if let Some(a) = self.agents.get_mut(agent) {
            if !a.shifts.contains(id) {
                a.shifts.push(id.clone());
            }
        }
        self.shifts.insert(id.clone(), x);
        out.push(Effect::ShiftChanged { shift: id.clone() });
    }

    /// `shift.cancelled`: nothing more is judged for it and it counts in no KPI; its open
    /// violations close (they stay on record).
    pub(super) fn cancel_shift(&mut self, id: &Id, out: &mut Vec<Effect>) {
        let Some(x) = self.unindex_shift(id) else {
            return;
        };
        let t = self.clock.unwrap_or(x.start);
        self.clear(&x.open, t, out);
        out.push(Effect::ShiftChanged { shift: id.clone() });
    }

    /// Removes a shift with its timers, indexes and waits; returns it.
    fn unindex_shift(&mut self, id: &Id) -> Option<Shift> {
        let x = self.shifts.remove(id)?;
        let x = (*x).clone();
        let mut timers: Vec<_> = x.login_timer.into_iter().chain(x.end_timer).collect();
        if let LogoutCheck::Armed { timer, .. } = &x.logout {
            timers.push(*timer);
        }
        if let LogoutCheck::AwaitingRelief { relief, .. } = &x.logout {
            self.relief_waits.remove(&(relief.clone(), id.clone()));
        }
        self.cancel(&timers);
        self.live_shifts.remove(&(x.start, id.clone()));
        if let Some(p) = &x.position {
            if let Some(set) = self.positions.get_mut(p) {
                set.remove(&(x.start, id.clone()));
                if set.is_empty() {
                    self.positions.remove(p);
                }
            }
        }
        if let Some(a) = self.agents.get_mut(&x.agent) {
            a.shifts.retain(|s| s != id);
        }
        Some(x)
    }

    /// The relief of `x` as of now: the not-cancelled shift of another agent at the same
    /// position that covers `x`'s end; the earliest start wins, then the smallest id.
    fn relief_of(&self, x: &Shift) -> Option<(Id, Id, Timestamp)> {
        let p = x.position.as_ref()?;
        let set = self.positions.get(p)?;
        // A shift is at most 24 hours long, so a relief starts within a day before the end.
        let from = (x.end.plus(-MAX_SHIFT_MS), Id::default());
        let to = (x.end, Id::from("\u{10FFFF}"));
        set.range((Bound::Included(from), Bound::Included(to)))
            .filter_map(|(_, y)| self.shifts.get(y))
            .find(|y| y.id != x.id && y.agent != x.agent && y.start <= x.end && x.end < y.end)
            .map(|y| (y.id.clone(), y.agent.clone(), y.end))
    }

    /// Deadline start + `login_grace`: `late_login` if the agent is not logged in.
    pub(super) fn fire_shift_login(
        &mut self,
        id: &Id,
        d: Timestamp,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) {
        let Some(x) = self.shifts.get_mut(id) else {
            return;
        };
        x.login_timer = None;
        if x.raised[LATE_LOGIN] {
            return;
        }
        let x = x.clone();
        if self.logged_in(&x.agent) {
            return;
        }
        let grace = self.rulebook_at(x.start).attendance.login_grace;
        let mut f = Finding::new(
            Kind::LateLogin,
            x.start,
            x.scheduled_by.clone(),
            grace,
            format!(
                "logged in by the shift's start {} + login grace {}",
                x.start,
                format_duration(grace)
            ),
        );
        f.shift = Some(x.id.clone());
        let v = self.raise(&x.agent, f, d, now, Holder::Other, out);
        if let Some(x) = self.shifts.get_mut(id) {
            x.raised[LATE_LOGIN] = true;
            x.open.push(v);
        }
    }

    /// Deadline at the end: finds the release (the end, or the relief's arrival).
    pub(super) fn fire_shift_end(&mut self, id: &Id, d: Timestamp, out: &mut Vec<Effect>) {
        let Some(x) = self.shifts.get_mut(id) else {
            return;
        };
        x.end_timer = None;
        let x = x.clone();
        self.live_shifts.remove(&(x.start, id.clone()));
        match self.relief_of(&x) {
            Some((_, relief, until)) if !self.logged_in(&relief) => {
                self.relief_waits
                    .insert((relief.clone(), id.clone()), until);
                if let Some(x) = self.shifts.get_mut(id) {
                    x.logout = LogoutCheck::AwaitingRelief { relief, until };
                }
            }
            _ => self.release(id, d),
        }
        out.push(Effect::ShiftChanged { shift: id.clone() });
    }

    /// Arms the logout check `logout_grace` after `release`.
    fn release(&mut self, id: &Id, release: Timestamp) {
        let Some(start) = self.shifts.get(id).map(|x| x.start) else {
            return;
        };
        let grace = self.rulebook_at(start).attendance.logout_grace;
        let timer = self.set_timer(
            release.plus(grace),
            Timer::ShiftLogout { shift: id.clone() },
        );
        if let Some(x) = self.shifts.get_mut(id) {
            x.logout = LogoutCheck::Armed { release, timer };
        }
    }

    /// The logout check: `not_logged_out` if the agent is still logged in, has no call
    /// open and no other shift of theirs covers the instant; on a call, it waits for the
    /// call's end.
    pub(super) fn fire_shift_logout(
        &mut self,
        id: &Id,
        d: Timestamp,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) {
        let Some(x) = self.shifts.get(id).cloned() else {
            return;
        };
        let LogoutCheck::Armed { release, .. } = x.logout else {
            return;
        };
        let (logged_in, on_call) = self
            .agents
            .get(&x.agent)
            .map(|a| (a.logged_in, !a.legs.is_empty()))
            .unwrap_or((false, false));
        if on_call {
            if let Some(x) = self.shifts.get_mut(id) {
                x.logout = LogoutCheck::AwaitingCallEnd { release };
            }
            return;
        }
        if let Some(x) = self.shifts.get_mut(id) {
            x.logout = LogoutCheck::Done;
        }
        let covered = self
            .shifts
            .values()
            .any(|y| y.agent == x.agent && y.id != x.id && y.start <= d && d < y.end);
        if !logged_in || covered || x.raised[NOT_LOGGED_OUT] {
            return;
        }
        let grace = self.rulebook_at(x.start).attendance.logout_grace;
        let why = if release == x.end {
            "the shift's end"
        } else {
            "the relief's arrival or the end of the last call"
        };
        let mut f = Finding::new(
            Kind::NotLoggedOut,
            release,
            x.scheduled_by.clone(),
            grace,
            format!(
                "logged out within the logout grace {} of {why} ({release})",
                format_duration(grace)
            ),
        );
        f.shift = Some(x.id.clone());
        f.relief = self
            .relief_of(&x)
            .map(|(shift, agent, _)| Relief { agent, shift });
        let v = self.raise(&x.agent, f, d, now, Holder::Other, out);
        if let Some(x) = self.shifts.get_mut(id) {
            x.raised[NOT_LOGGED_OUT] = true;
            x.open.push(v);
        }
    }

    /// An `agent.logout` of `agent` (logged in just before) at `t`: `left_before_relief` for
    /// each of its shifts in the handover window whose relief is not there.
    pub(super) fn check_left_before_relief(
        &mut self,
        agent: &Id,
        t: Timestamp,
        out: &mut Vec<Effect>,
    ) {
        let Some(a) = self.agents.get(agent) else {
            return;
        };
        let mut mine: Vec<Shift> = a
            .shifts
            .iter()
            .filter_map(|id| self.shifts.get(id))
            .filter(|x| x.start <= t && !x.raised[LEFT_BEFORE_RELIEF])
            .cloned()
            .collect();
        mine.sort_by(|a, b| (a.start, &a.id).cmp(&(b.start, &b.id)));
        for x in mine {
            let window = self.rulebook_at(x.start).attendance.handover_window;
            if x.end.plus(-window) > t {
                continue;
            }
            let Some((relief_shift, relief, until)) = self.relief_of(&x) else {
                continue;
            };
            if t >= until || self.logged_in(&relief) {
                continue;
            }
            let mut f = Finding::new(
                Kind::LeftBeforeRelief,
                x.start,
                x.scheduled_by.clone(),
                0,
                format!(
                    "logged out at {t}, within the handover window {} before the shift's end {}, before the relief {relief} logged in",
                    format_duration(window),
                    x.end
                ),
            );
            f.shift = Some(x.id.clone());
            f.relief = Some(Relief {
                agent: relief,
                shift: relief_shift,
            });
            // One-shot: raised as the agent leaves.
            let v = self.raise(agent, f, t, t, Holder::Other, out);
            self.clear(&[v], t, out);
            if let Some(x) = self.shifts.get_mut(&x.id) {
                x.raised[LEFT_BEFORE_RELIEF] = true;
            }
        }
    }

    /// `agent` became logged in at `t` (a login, any event that logs it in, a snapshot).
    pub(super) fn on_login(&mut self, agent: &Id, t: Timestamp, out: &mut Vec<Effect>) {
        let Some(a) = self.agents.get_mut(agent) else {
            return;
        };
        a.login_since = t;
        let ids = a.shifts.clone();
        for id in &ids {
            let Some(x) = self.shifts.get_mut(id) else {
                continue;
            };
            if t < x.end && x.first_login.is_none() {
                x.first_login = Some(t);
            }
            // A late login's episode ends with the login.
            let open = std::mem::take(&mut x.open);
            self.clear(&open, t, out);
        }
        // Shifts waiting for this agent as their relief are released now.
        let from = (agent.clone(), Id::default());
        let waits: Vec<(Id, Timestamp)> = self
            .relief_waits
            .range(from..)
            .take_while(|((r, _), _)| r == agent)
            .map(|((_, x), until)| (x.clone(), *until))
            .collect();
        for (id, until) in waits {
            self.relief_waits.remove(&(agent.clone(), id.clone()));
            if t < until {
                self.release(&id, t);
            } else if let Some(x) = self.shifts.get_mut(&id) {
                x.logout = LogoutCheck::Done;
            }
        }
    }

    /// `agent` stopped being logged in at `t`: its login stretch counts toward its shifts,
    /// and a missing logout's episode ends.
    pub(super) fn on_logout(&mut self, agent: &Id, t: Timestamp, out: &mut Vec<Effect>) {
        let Some(a) = self.agents.get_mut(agent) else {
            return;
        };
        let since = a.login_since;
        a.recent_logins.push((since, t));
        let keep_from = t.plus(-RECENT_LOGINS_KEEP);
        a.recent_logins.retain(|&(_, to)| to >= keep_from);
        if a.recent_logins.len() > RECENT_LOGINS_MAX {
            let extra = a.recent_logins.len() - RECENT_LOGINS_MAX;
            a.recent_logins.drain(..extra);
        }
        let ids = a.shifts.clone();
        for id in &ids {
            let Some(x) = self.shifts.get_mut(id) else {
                continue;
            };
            x.logged_in_ms += overlap(since, t, x.start, x.end);
            if x.start <= t {
                x.last_logout = Some(t);
            } else {
                // A login that ended before the shift began is not its login.
                x.first_login = None;
            }
            let open = std::mem::take(&mut x.open);
            self.clear(&open, t, out);
        }
    }

    /// The last open leg of `agent` closed at `t`: logout checks that waited for it run
    /// `logout_grace` later.
    pub(super) fn on_last_leg_closed(&mut self, agent: &Id, t: Timestamp) {
        let Some(a) = self.agents.get(agent) else {
            return;
        };
        let waiting: Vec<Id> = a
            .shifts
            .iter()
            .filter(|id| {
                self.shifts
                    .get(*id)
                    .is_some_and(|x| matches!(x.logout, LogoutCheck::AwaitingCallEnd { .. }))
            })
            .cloned()
            .collect();
        for id in waiting {
            self.release(&id, t);
        }
    }

    /// Drops shifts that ended before `cut.0` and have nothing left to judge (keeping those
    /// that start in `cut.1`, the period a report needs), and relief waits whose relief
    /// shift has ended.
    pub(super) fn prune_shifts(
        &mut self,
        now: Timestamp,
        cut: Option<(Timestamp, Option<crate::time::Period>)>,
    ) {
        let expired: Vec<(Id, Id)> = self
            .relief_waits
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for (relief, id) in expired {
            self.relief_waits.remove(&(relief, id.clone()));
            if let Some(x) = self.shifts.get_mut(&id) {
                x.logout = LogoutCheck::Done;
            }
        }
        let Some((oldest, keep)) = cut else {
            return;
        };
        let keep = keep.map(|p| p.bounds(&self.cal));
        let old: Vec<Id> = self
            .shifts
            .values()
            .filter(|x| x.end < oldest && x.logout == LogoutCheck::Done && x.end_timer.is_none())
            .filter(|x| keep.is_none_or(|(from, to)| x.start < from || x.start >= to))
            .map(|x| x.id.clone())
            .collect();
        for id in old {
            self.unindex_shift(&id);
        }
    }

    /// Every kept shift that overlaps `[from, to)`, of `agent` when given, with its
    /// attendance facts; sorted by start, then id.
    pub fn shift_views(
        &self,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        agent: Option<&str>,
    ) -> Vec<ShiftView> {
        let now = self.clock.unwrap_or(Timestamp::MIN);
        let mut v: Vec<ShiftView> = self
            .shifts
            .values()
            .filter(|x| from.is_none_or(|f| x.end > f) && to.is_none_or(|t| x.start < t))
            .filter(|x| agent.is_none_or(|a| x.agent == a))
            .map(|x| {
                let a = self.agents.get(&x.agent);
                let logged_in = a.is_some_and(|a| a.logged_in);
                let open = match a {
                    Some(a) if a.logged_in => overlap(a.login_since, now, x.start, x.end.min(now)),
                    _ => 0,
                };
                let kinds = [Kind::LateLogin, Kind::LeftBeforeRelief, Kind::NotLoggedOut];
                ShiftView {
                    shift: x.id.clone(),
                    agent: x.agent.clone(),
                    team: self.team_of(&x.agent),
                    start: x.start,
                    end: x.end,
                    position: x.position.clone(),
                    logged_in,
                    login: x.first_login,
                    logout: x.last_logout,
                    relief: self
                        .relief_of(x)
                        .map(|(shift, agent, _)| Relief { agent, shift }),
                    logged_in_seconds: (x.logged_in_ms + open) as f64 / 1000.0,
                    violations: kinds
                        .into_iter()
                        .zip(x.raised)
                        .filter(|(_, r)| *r)
                        .map(|(k, _)| k)
                        .collect(),
                }
            })
            .collect();
        v.sort_by(|a, b| (a.start, &a.shift).cmp(&(b.start, &b.shift)));
        v
    }

    /// The agents a shift covers at the engine clock, logged in or absent; sorted by team,
    /// then agent.
    pub fn scheduled_now(&self) -> Vec<ScheduledNow> {
        let Some(now) = self.clock else {
            return Vec::new();
        };
        let to = (now, Id::from("\u{10FFFF}"));
        let mut v: Vec<ScheduledNow> = self
            .live_shifts
            .range(..=to)
            .filter_map(|(_, id)| self.shifts.get(id))
            .filter(|x| x.start <= now && now < x.end)
            .map(|x| {
                let a = self.agents.get(&x.agent);
                ScheduledNow {
                    agent: x.agent.clone(),
                    team: self.team_of(&x.agent),
                    name: a.and_then(|a| a.name.clone()),
                    shift: x.id.clone(),
                    start: x.start,
                    end: x.end,
                    position: x.position.clone(),
                    logged_in: a.is_some_and(|a| a.logged_in),
                }
            })
            .collect();
        v.sort_by(|a, b| (&a.team, &a.agent, &a.shift).cmp(&(&b.team, &b.agent, &b.shift)));
        v
    }

    /// A new rulebook took effect: shifts that have not started judge their login by it.
    pub(super) fn rearm_login_deadlines(&mut self) {
        let Some(now) = self.clock else {
            return;
        };
        let grace = self.rules.attendance.login_grace;
        let pending: Vec<(Id, Timestamp, Option<super::state::TimerKey>)> = self
            .live_shifts
            .range((now.plus(1), Id::default())..)
            .filter_map(|(_, id)| self.shifts.get(id))
            .map(|x| (x.id.clone(), x.start, x.login_timer))
            .collect();
        for (id, start, timer) in pending {
            if let Some(k) = timer {
                self.timers.remove(&k);
            }
            let d = start.plus(grace);
            let key = (d > now).then(|| self.set_timer(d, Timer::ShiftLogin { shift: id.clone() }));
            if let Some(x) = self.shifts.get_mut(&id) {
                x.login_timer = key;
            }
        }
    }
}
