//! Rosters of the simulated floor: seats (座席, a shift's `position`), the agents who work
//! each seat in turn, and shifts that hand over from one agent to the next (the relief).
//!
//! The plan goes out as `shift.scheduled` events a day ahead, as a workforce-management
//! system sends it, and the agents log in and out by it. Compliant agents come a few minutes
//! before their start (now and then within the grace), stay past their end until the relief
//! is there, and log out within minutes; unruly ones break the attendance rule with the
//! probabilities in [`Misconduct`]. A relief who never comes has the shift cancelled by the
//! lead, which releases the agent waiting for them.
//!
//! Only shifts start, end and hand over here; what an agent does on shift is the model's.

use rand::Rng;

use super::{Action, Activity, Generator, Misconduct, HOUR, MIN, SEC, STAGE};
use crate::time::{Millis, Timestamp};

/// How far ahead shifts are published, and how often the next ones go out.
const PUBLISH_AHEAD: Millis = 24 * HOUR;
const PUBLISH_EVERY: Millis = 12 * HOUR;
/// The shortest shift planned before the close of a run with an end.
const MIN_SHIFT: Millis = 30 * MIN;
/// How long a shift's plan is kept after its end (a relief's login or a cancellation looks
/// back at most 25 minutes).
const PLAN_KEEP: Millis = 2 * HOUR;
/// When the first shifts of [`Roster::handover`] start: the agents log in before it.
const FIRST_START: Millis = 10 * MIN;

/// Seats and the shifts that work them. Shift `k` of a seat is worked by
/// `rotation[k % rotation.len()]`; it ends where shift `k + 1` (its relief) starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Roster {
    /// Length of every shift after a seat's first.
    pub shift: Millis,
    pub seats: Vec<Seat>,
}

/// One seat (`position`) of the floor.
#[derive(Clone, Debug, PartialEq)]
pub struct Seat {
    /// Agent indices that work the seat's shifts in turn; `None`: the seat is empty for that
    /// shift.
    pub rotation: Vec<Option<usize>>,
    /// Start and end of the seat's first shift, from the run's start. A start at or before
    /// 0 is a shift under way: its agent is there when the run starts.
    pub first: (Millis, Millis),
    /// A first handover staged for the demo instead of drawn.
    pub staged: Option<Handover>,
}

/// How a staged first handover goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handover {
    /// The relief logs in 45–105 s before the end; the outgoing agent logs out within a
    /// minute after it.
    OnTime,
    /// The relief logs in 70–100 s after the start (`late_login`); the outgoing agent waits
    /// for them, then walks away without logging out (`not_logged_out` 10 minutes after the
    /// relief came).
    LateReliefForgotten,
    /// The outgoing agent, on a break from the opening, logs out 60–90 s before the end,
    /// before the relief is there (`left_before_relief`).
    LeftEarly,
}

impl Roster {
    /// `agents` agents at seats of `rotation` agents each, in shifts of `shift`: seat `s` is
    /// worked by agents `s`, `s + seats`, `s + 2 × seats`, ... (the last seats may have an
    /// empty turn). The first shifts start 10 minutes into the run and hand over in four
    /// waves a quarter of an hour apart, so that handovers do not all fall on one minute.
    pub fn handover(agents: usize, rotation: usize, shift: Millis) -> Roster {
        let rotation = rotation.max(1);
        let n = agents.div_ceil(rotation);
        let seats = (0..n)
            .map(|s| Seat {
                rotation: (0..rotation)
                    .map(|r| Some(s + r * n).filter(|&a| a < agents))
                    .collect(),
                first: (
                    FIRST_START,
                    FIRST_START + shift + (s % 4) as Millis * 15 * MIN,
                ),
                staged: None,
            })
            .collect();
        Roster { shift, seats }
    }

    /// The demo's roster: `seats` seats, three agents each in 8-hour shifts (the floor is
    /// staffed around the clock), every first shift under way when the demo starts. Seats 6,
    /// 7 and 8 (when there are that many) hand over 2, 3 and 4 minutes in
    /// ([`Handover::OnTime`], [`Handover::LateReliefForgotten`], [`Handover::LeftEarly`]);
    /// the other seats' shifts end 2 to 8 hours in.
    pub fn demo(seats: usize) -> Roster {
        let shift = 8 * HOUR;
        let staged = [
            (5, 2 * MIN, Handover::OnTime),
            (6, 3 * MIN, Handover::LateReliefForgotten),
            (7, 4 * MIN, Handover::LeftEarly),
        ];
        let seats = (0..seats)
            .map(|s| {
                let (end, staged) = match staged.iter().find(|(k, _, _)| *k == s) {
                    Some((_, end, h)) => (*end, Some(*h)),
                    None => (2 * HOUR + (s as Millis * 47 * MIN) % (6 * HOUR), None),
                };
                Seat {
                    rotation: (0..3).map(|r| Some(s + r * seats)).collect(),
                    first: (end - shift, end),
                    staged,
                }
            })
            .collect();
        Roster { shift, seats }
    }

    /// How many agents the roster names (one more than the highest index).
    pub fn agents(&self) -> usize {
        self.seats
            .iter()
            .flat_map(|s| s.rotation.iter().flatten())
            .map(|a| a + 1)
            .max()
            .unwrap_or(0)
    }

    /// The `position` of seat `s`.
    pub fn position(s: usize) -> String {
        format!("seat-{:03}", s + 1)
    }

    /// Start and end of shift `k` of seat `s` in a run that starts at `t0`.
    fn bounds(&self, s: usize, k: u32, t0: Timestamp) -> (Timestamp, Timestamp) {
        let (a, b) = self.seats[s].first;
        if k == 0 {
            (t0.plus(a), t0.plus(b))
        } else {
            let k = Millis::from(k);
            (
                t0.plus(b + (k - 1) * self.shift),
                t0.plus(b + k * self.shift),
            )
        }
    }
}

/// A published shift as the simulator will play it.
pub(super) struct ShiftPlan {
    id: String,
    agent: usize,
    start: Timestamp,
    end: Timestamp,
    /// The relief never came and the lead cancelled the shift.
    cancelled: bool,
    /// The agent walks away without logging out.
    forget: bool,
    /// The end has passed and the agent stays until the relief comes.
    awaiting: bool,
}

/// A shift: (seat, k).
pub(super) type ShiftKey = (usize, u32);

impl Generator {
    /// The seat of every agent in the roster (agents in no seat: `None`).
    pub(super) fn seats_of(roster: &Roster, agents: usize) -> Vec<Option<usize>> {
        let mut seat = vec![None; agents];
        for (s, st) in roster.seats.iter().enumerate() {
            for a in st.rotation.iter().flatten() {
                if let Some(x) = seat.get_mut(*a) {
                    *x = Some(s);
                }
            }
        }
        seat
    }

    /// The (seat, agent) of every shift under way when the run starts.
    pub(super) fn present_at_start(&self) -> Vec<(usize, usize)> {
        let Some(r) = &self.roster else {
            return Vec::new();
        };
        r.seats
            .iter()
            .enumerate()
            .filter(|(_, st)| st.first.0 <= 0)
            .filter_map(|(s, st)| st.rotation.first().copied().flatten().map(|a| (s, a)))
            .collect()
    }

    /// Publishes every shift that starts within a day (and, in a run with an end, early
    /// enough before its close), and plans the next publication.
    pub(super) fn publish(&mut self, t: Timestamp) {
        let Some(roster) = self.roster.take() else {
            return;
        };
        let horizon = t.plus(PUBLISH_AHEAD);
        // The floor closes with the phone lines, before the end of the run.
        let close = self.end.map(|e| e.plus(-self.wind()));
        let mut new = Vec::new();
        for (s, seat) in roster.seats.iter().enumerate() {
            loop {
                let k = self.next_shift[s];
                let (start, end) = roster.bounds(s, k, self.start);
                if start >= horizon || close.is_some_and(|c| start >= c.plus(-MIN_SHIFT)) {
                    break;
                }
                self.next_shift[s] += 1;
                let end = close.map_or(end, |c| end.min(c));
                let slot = seat.rotation[k as usize % seat.rotation.len().max(1)];
                if let Some(a) = slot {
                    new.push((start, s, k, a, end));
                }
            }
        }
        new.sort_unstable();
        for (start, s, k, a, end) in new {
            let staged = if k <= 1 { roster.seats[s].staged } else { None };
            self.plan_shift(t, (s, k), a, (start, end), staged);
        }
        self.roster = Some(roster);
        self.plans.retain(|_, p| p.end.plus(PLAN_KEEP) > t);
        let next = t.plus(PUBLISH_EVERY);
        if close.is_none_or(|c| next < c) {
            self.at(next, Action::Publish);
        }
    }

    /// Sends one shift and plans how its agent keeps it.
    fn plan_shift(
        &mut self,
        t: Timestamp,
        key: ShiftKey,
        a: usize,
        (start, end): (Timestamp, Timestamp),
        staged: Option<Handover>,
    ) {
        let (s, k) = key;
        let id = format!("{}@{}", self.agents[a].id, &start.to_string()[..16]);
        let mut ev = self.agent_event("shift.scheduled", t, a);
        ev.team = Some(Self::team_id(self.agents[a].team));
        ev.shift = Some(id.clone());
        ev.start = Some(start);
        ev.end = Some(end);
        ev.position = Some(Roster::position(s));
        self.push(ev);

        let m = self.cfg.misconduct;
        let unruly = self.agents[a].unruly;
        // When the agent comes: `None` never. A shift under way at the start was logged in
        // when the run opened.
        let login = if start <= self.start {
            None
        } else {
            match (k, staged) {
                (1, Some(Handover::OnTime)) => {
                    Some(start.plus(-self.rng.random_range(45 * SEC..=105 * SEC)))
                }
                (1, Some(Handover::LateReliefForgotten)) => {
                    Some(start.plus(self.rng.random_range(70 * SEC..=100 * SEC)))
                }
                (1, Some(Handover::LeftEarly)) => {
                    Some(start.plus(-self.rng.random_range(10 * SEC..=40 * SEC)))
                }
                _ => self.draw_login(start, unruly, m),
            }
        };
        let forget = match (k, staged) {
            (0, Some(h)) => h == Handover::LateReliefForgotten,
            _ => unruly && self.chance(m.forgot_logout),
        };
        if start > self.start {
            match login {
                Some(at) => self.at(
                    at.max(t),
                    Action::ShiftLogin {
                        shift: key,
                        agent: a,
                    },
                ),
                None => {
                    let d = self.rng.random_range(10 * MIN..=25 * MIN);
                    self.at(start.plus(d), Action::NoShow(key));
                }
            }
        }
        self.at(end, Action::ShiftEnd(key));
        if k == 0 && staged == Some(Handover::LeftEarly) {
            let dur = self.rng.random_range(8 * MIN..=10 * MIN);
            let plan = super::PausePlan {
                reason: Some("break".into()),
                dur,
                approval: None,
                lead_in: None,
            };
            self.at(self.start.plus(STAGE), Action::StagedPause(a, plan));
            let d = self.rng.random_range(60 * SEC..=90 * SEC);
            self.at(end.plus(-d), Action::Leave(key));
        }
        if k > 0 && staged.is_none() {
            // The agent handing over to this one may leave before they come.
            let relief_at = login.unwrap_or(end);
            self.plan_left_early((s, k - 1), relief_at, t);
        }
        self.plans.insert(
            key,
            ShiftPlan {
                id,
                agent: a,
                start,
                end,
                cancelled: false,
                forget,
                awaiting: false,
            },
        );
    }

    /// When a drawn agent logs in for a shift starting at `start`; `None`: absent.
    fn draw_login(&mut self, start: Timestamp, unruly: bool, m: Misconduct) -> Option<Timestamp> {
        if unruly && self.chance(m.absent) {
            return None;
        }
        if unruly && self.chance(m.late_login) {
            return Some(start.plus(self.rng.random_range(61 * SEC..=15 * MIN)));
        }
        if self.chance(0.1) {
            // Within the grace.
            return Some(start.plus(self.rng.random_range(0..=50 * SEC)));
        }
        Some(start.plus(-self.rng.random_range(MIN..=8 * MIN)))
    }

    /// An unruly agent may log out in the handover window before the relief (coming at
    /// `relief_at`) is there.
    fn plan_left_early(&mut self, key: ShiftKey, relief_at: Timestamp, t: Timestamp) {
        let Some(p) = self.plans.get(&key) else {
            return;
        };
        let (a, start, end) = (p.agent, p.start, p.end);
        if !self.agents[a].unruly || !self.chance(self.cfg.misconduct.left_early) {
            return;
        }
        let lo = end.plus(-14 * MIN).max(start.plus(MIN)).max(t);
        let hi = end.plus(-MIN).min(relief_at.plus(-30 * SEC));
        if lo < hi {
            let at = Timestamp(self.rng.random_range(lo.ms()..=hi.ms()));
            self.at(at, Action::Leave(key));
        }
    }

    /// The agent comes for shift `key` (a forgotten session of theirs is logged out first).
    pub(super) fn shift_login(&mut self, t: Timestamp, key: ShiftKey, a: usize) {
        match self.agents[a].act {
            Activity::Gone => {
                self.logout(t, a);
                self.login(t, a);
            }
            Activity::Out => self.login(t, a),
            // Still there from an earlier shift: stays on.
            _ => {
                self.agents[a].pending_logout = false;
                self.agents[a].handing_over = false;
            }
        }
        self.agents[a].on_shift = Some(key);
        let (s, k) = key;
        if k == 0 {
            return;
        }
        let staged = self.roster.as_ref().and_then(|r| r.seats[s].staged);
        if self.plans.get(&(s, k - 1)).is_some_and(|p| p.awaiting) {
            let d = if k == 1 && staged == Some(Handover::LateReliefForgotten) {
                self.rng.random_range(20 * SEC..=60 * SEC)
            } else {
                self.rng.random_range(20 * SEC..=3 * MIN)
            };
            self.hand_over(t.plus(d), (s, k - 1));
        }
    }

    /// The end of shift `key`: its agent goes once the relief is there (or when there is
    /// none), else waits for them.
    pub(super) fn shift_end(&mut self, t: Timestamp, key: ShiftKey) {
        let Some(p) = self.plans.get(&key) else {
            return;
        };
        if self.agents[p.agent].on_shift != Some(key) {
            return;
        }
        let (s, k) = key;
        let relief = self
            .plans
            .get(&(s, k + 1))
            .filter(|r| !r.cancelled)
            .map(|r| r.agent);
        match relief {
            Some(b) if self.agents[b].on_shift != Some((s, k + 1)) => {
                if let Some(p) = self.plans.get_mut(&key) {
                    p.awaiting = true;
                }
            }
            Some(_) => {
                let d = self.rng.random_range(0..=90 * SEC);
                self.hand_over(t.plus(d), key);
            }
            None => {
                let d = self.rng.random_range(0..=4 * MIN);
                self.hand_over(t.plus(d), key);
            }
        }
    }

    /// The agent of shift `key` is released: they take no new call and leave at `at`.
    fn hand_over(&mut self, at: Timestamp, key: ShiftKey) {
        let Some(p) = self.plans.get_mut(&key) else {
            return;
        };
        p.awaiting = false;
        let a = p.agent;
        if self.agents[a].on_shift == Some(key) {
            self.agents[a].handing_over = true;
        }
        self.at(at, Action::Leave(key));
    }

    /// Nobody came for shift `key`: the lead cancels it, which releases the agent waiting
    /// to be relieved.
    pub(super) fn no_show(&mut self, t: Timestamp, key: ShiftKey) {
        let Some(p) = self.plans.get_mut(&key) else {
            return;
        };
        p.cancelled = true;
        let mut ev = super::SimEvent::new("shift.cancelled", t);
        ev.shift = Some(p.id.clone());
        self.push(ev);
        let (s, k) = key;
        if k == 0 {
            return;
        }
        if self.plans.get(&(s, k - 1)).is_some_and(|p| p.awaiting) {
            let d = self.rng.random_range(MIN..=3 * MIN);
            self.hand_over(t.plus(d), (s, k - 1));
        }
    }

    /// The agent of shift `key` goes: at once if idle or paused, else after what they are
    /// doing.
    pub(super) fn shift_leave(&mut self, t: Timestamp, key: ShiftKey) {
        let Some(p) = self.plans.get(&key) else {
            return;
        };
        let (a, forget) = (p.agent, p.forget);
        let agent = &mut self.agents[a];
        if agent.on_shift != Some(key) || agent.pending_logout {
            return;
        }
        agent.forget = forget;
        agent.pending_logout = true;
        if matches!(agent.act, Activity::Idle | Activity::Paused) {
            self.leave(t, a);
        }
    }

    /// The agent walks away from a session left logged in; the lead logs it out later.
    pub(super) fn walk_away(&mut self, t: Timestamp, i: usize) {
        self.set_act(i, Activity::Gone);
        let a = &mut self.agents[i];
        a.on_shift = None;
        a.forget = false;
        a.handing_over = false;
        a.pending_logout = false;
        a.pending_pause = false;
        let epoch = a.epoch;
        let d = self.rng.random_range(12 * MIN..=40 * MIN);
        self.at(t.plus(d), Action::ForcedLogout { agent: i, epoch });
    }
}
