//! The rules engine: the floor's state and the three rules of the rules page, sans-IO.
//!
//! It takes events and time as arguments and returns [`Effect`]s; it never reads a clock,
//! touches a socket or a file, or spawns anything. Replay and the live daemon drive the same
//! code: the only difference is where `now` comes from.
//!
//! Contract:
//! - [`Engine::handle_event`] applies one decoded event from a named source (seq
//!   de-duplication, late-event clamping), first firing every deadline strictly before the
//!   event's (clamped) time. An event at exactly a deadline is applied before it fires, so
//!   an answer at exactly the limit is on time. Deadlines the event itself sets before its
//!   time (a snapshot's episodes start at their `since`) fire right after it. An event
//!   that would exceed `rules.limits` is refused ([`Applied::Refused`]) before anything
//!   changes.
//! - [`Engine::handle_timeout`] moves the engine clock forward to `now` (never back) and fires
//!   every deadline strictly before it. A spurious call is a no-op.
//! - [`Engine::poll_timeout`] is the earliest `now` at which `handle_timeout` would fire
//!   something (a deadline D fires once the clock passes it, so this is D + 1 ms).
//! - [`Engine::finish`] fires the deadlines before a replay's end.
//!
//! Determinism: timers live in a `BTreeMap` keyed by `(deadline, order set)`; effects are
//! never produced by iterating a hash map.
//!
//! Owns: the floor's state and every rule outcome. Imports only `config`, `event` and
//! `time`. Must not: read a clock, do I/O, spawn, or know who drives it (the owner task,
//! replay, report).

mod appraisal;
mod attendance;
mod checkpoint;
mod cow;
mod outbound;
mod record;
mod state;
mod types;

pub use appraisal::KpiRetention;
pub use checkpoint::{Checkpoint, CheckpointError, CHECKPOINT_VERSION};
pub use record::{Refusal, RulebookVersion};
pub use types::*;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

// A fast hash with per-process random seeds: ids come from outside, so keep it keyed.
use foldhash::HashMap;

use crate::config::{EngineLimits, RulesConfig};
use crate::event::{
    Body, Event, Id, PresenceState, SnapshotAgent, SnapshotCall, SnapshotCallState,
};
use crate::time::{format_duration, Calendar, Millis, Period, Timestamp};

use appraisal::Kpis;
use cow::CowMap;
use state::*;

/// What `handle_event` did with an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Applied at `at` (the event's `ts`, or the engine clock if that was later: `late`).
    Applied { at: Timestamp, late: bool },
    /// Its `seq` was not above the highest already processed from its source: ignored.
    Duplicate,
    /// Applying it would have made the engine track more than a limit allows: refused,
    /// nothing changed (not the clock, not the highest `seq`).
    Refused(Limit),
    /// Refused by the record's rules (an unknown discipline item, a waiver of an unknown or
    /// closed-month violation, ...): the deadlines before its time fired and the clock moved
    /// to `at`, but nothing else changed and its `seq` is not recorded as seen. It is kept in
    /// the journal like an applied event, so that a replay of the journal moves the clock
    /// the same way.
    Rejected { at: Timestamp, refusal: Refusal },
}

/// An engine limit (`[limits]`, [`EngineLimits`]) that refused an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    Agents,
    Calls,
    Queues,
    Shifts,
    Sources,
}

impl Limit {
    /// The rejection reason (`floorwatch_events_rejected_total{reason}`).
    pub fn reason_label(self) -> &'static str {
        match self {
            Limit::Agents => "limit_agents",
            Limit::Calls => "limit_calls",
            Limit::Queues => "limit_queues",
            Limit::Shifts => "limit_shifts",
            Limit::Sources => "limit_sources",
        }
    }

    /// The config key under `[limits]` (`floorwatch_limit_hits_total{limit}`).
    pub fn key(self) -> &'static str {
        match self {
            Limit::Agents => "max_agents",
            Limit::Calls => "max_calls",
            Limit::Queues => "max_queues",
            Limit::Shifts => "max_shifts",
            Limit::Sources => "max_sources",
        }
    }

    /// What is tracked, for messages.
    pub fn what(self) -> &'static str {
        match self {
            Limit::Agents => "agents",
            Limit::Calls => "calls",
            Limit::Queues => "queues",
            Limit::Shifts => "shifts",
            Limit::Sources => "source names",
        }
    }

    /// The configured value of this limit.
    pub fn value(self, limits: &EngineLimits) -> usize {
        match self {
            Limit::Agents => limits.max_agents,
            Limit::Calls => limits.max_calls,
            Limit::Queues => limits.max_queues,
            Limit::Shifts => limits.max_shifts,
            Limit::Sources => limits.max_sources,
        }
    }

    /// A message for a refusal, naming the config key.
    pub fn message(self) -> &'static str {
        match self {
            Limit::Agents => {
                "the engine tracks as many agents as limits.max_agents allows: event refused"
            }
            Limit::Calls => {
                "the engine tracks as many calls as limits.max_calls allows: event refused"
            }
            Limit::Queues => {
                "the engine tracks as many queues as limits.max_queues allows: event refused"
            }
            Limit::Shifts => {
                "the engine keeps as many shifts as limits.max_shifts allows (planned ones, and past ones a report still needs): event refused"
            }
            Limit::Sources => {
                "the engine keeps the highest seq of as many source names as limits.max_sources allows: an event with a seq from a new name is refused"
            }
        }
    }

    pub const ALL: [Limit; 5] = [
        Limit::Agents,
        Limit::Calls,
        Limit::Queues,
        Limit::Shifts,
        Limit::Sources,
    ];
}

/// Approvals kept per agent at most (oldest dropped first).
const MAX_APPROVALS: usize = 64;
/// Expired approvals are kept this long, for checks of deadlines set in the past.
const APPROVAL_KEEP: Millis = 24 * 3_600_000;

/// The rules engine. See the module doc for its contract.
pub struct Engine {
    /// The rulebook in force (the last of `rulebooks`).
    rules: Arc<RulesConfig>,
    /// Every rulebook judged by, oldest first; episodes name theirs by index.
    rulebooks: Vec<RulebookVersion>,
    cal: Calendar,
    clock: Option<Timestamp>,
    seqs: HashMap<Id, u64>,
    agents: CowMap<Id, Agent>,
    calls: CowMap<Id, Call>,
    queues: BTreeMap<Id, Queue>,
    timers: BTreeMap<TimerKey, Timer>,
    timer_order: u64,
    episode_ids: u64,
    next_violation: u64,
    open: BTreeMap<u64, Violation>,
    kpis: Kpis,
    /// The event being applied, for evidence.
    current: EventRef,
    /// Shifts by id (rule `attendance`); ended ones are kept as long as the appraisal
    /// accumulators are.
    shifts: CowMap<Id, Shift>,
    /// Shifts by position and start, for relief lookups (derived from `shifts`).
    positions: BTreeMap<Id, BTreeSet<(Timestamp, Id)>>,
    /// Shifts whose end has not passed, by start (derived from `shifts`).
    live_shifts: BTreeSet<(Timestamp, Id)>,
    /// Shifts waiting for their relief to log in: (relief agent, shift) → the relief
    /// shift's end, after which a login no longer releases.
    relief_waits: BTreeMap<(Id, Id), Timestamp>,
    /// What may still be waived: the violations raised within the retention, by id from
    /// `ledger_base` on.
    ledger: VecDeque<LedgerEntry>,
    ledger_base: u64,
    /// Closed months (`YYYY-MM`) with their statement digest.
    closed: BTreeMap<Id, Id>,
    /// Outbound and dispositioned (call, agent) pairs.
    pairs: CowMap<(Id, Id), Pair>,
    /// Today's outbound counters per team (the day of the engine clock).
    outbound_today: Option<(jiff::civil::Date, BTreeMap<Id, OutboundCounts>)>,
}

impl Engine {
    /// An engine that keeps appraisal accumulators for the last 62 days (the daemon).
    pub fn new(rules: RulesConfig) -> Engine {
        Engine::with_retention(rules, KpiRetention::LastDays(62))
    }

    pub fn with_retention(rules: RulesConfig, retention: KpiRetention) -> Engine {
        let cal = Calendar::new(rules.timezone.clone());
        let rules = Arc::new(rules);
        Engine {
            rulebooks: vec![RulebookVersion {
                from: None,
                digest: Id::from(rules.rulebook_digest()),
                rules: rules.clone(),
                journaled: false,
            }],
            rules,
            cal,
            clock: None,
            seqs: HashMap::default(),
            agents: CowMap::default(),
            calls: CowMap::default(),
            queues: BTreeMap::new(),
            timers: BTreeMap::new(),
            timer_order: 0,
            episode_ids: 0,
            next_violation: 1,
            open: BTreeMap::new(),
            kpis: Kpis::new(retention),
            current: EventRef {
                at: Timestamp(0),
                source: None,
                seq: None,
                id: None,
                event_type: TypeName(""),
            },
            shifts: CowMap::default(),
            positions: BTreeMap::new(),
            live_shifts: BTreeSet::new(),
            relief_waits: BTreeMap::new(),
            ledger: VecDeque::new(),
            ledger_base: 1,
            closed: BTreeMap::new(),
            pairs: CowMap::default(),
            outbound_today: None,
        }
    }

    pub fn rules(&self) -> &RulesConfig {
        &self.rules
    }

    /// The engine clock: the latest event time applied or timeout handled.
    pub fn now(&self) -> Option<Timestamp> {
        self.clock
    }

    /// The rulebook of index `rb` (an episode's), or the one in force.
    fn rb(&self, rb: u32) -> &RulesConfig {
        self.rulebooks
            .get(rb as usize)
            .map(|v| &*v.rules)
            .unwrap_or(&self.rules)
    }

    /// The index of the rulebook in force.
    fn rb_now(&self) -> u32 {
        (self.rulebooks.len() - 1) as u32
    }

    /// Applies one event from `source`; effects are appended to `out` in order.
    pub fn handle_event(&mut self, source: &str, ev: &Event, out: &mut Vec<Effect>) -> Applied {
        if let Some(seq) = ev.seq {
            if self.seqs.get(source).is_some_and(|&h| seq <= h) {
                return Applied::Duplicate;
            }
        }
        // Every source name with a seq is remembered for good (its `resume_after`): a source
        // that names itself anew on each connection would grow them without bound.
        if ev.seq.is_some()
            && !self.seqs.contains_key(source)
            && self.seqs.len() >= self.rules.limits.max_sources
        {
            return Applied::Refused(Limit::Sources);
        }
        if let Err(limit) = self.check_limits(&ev.body) {
            return Applied::Refused(limit);
        }
        if let Body::Rulebook { rulebook, digest } = &ev.body {
            // A rulebook never moves the engine clock: it takes effect at the clock.
            let at = self.clock.unwrap_or(ev.ts);
            if let Err(refusal) = self.apply_rulebook(rulebook, digest, out) {
                return Applied::Rejected { at, refusal };
            }
            self.note_seq(source, ev.seq);
            return Applied::Applied { at, late: false };
        }
        let (t, late) = match self.clock {
            Some(c) if ev.ts < c => (c, true),
            _ => (ev.ts, false),
        };
        self.fire_until(t, out);
        self.set_clock(t);
        if let Err(refusal) = self.check_record(&ev.body) {
            return Applied::Rejected { at: t, refusal };
        }
        self.note_seq(source, ev.seq);
        // The source name rarely changes between events; keep its copy.
        if self.current.source.as_deref() != Some(source) {
            self.current.source = Some(Id::from(source));
        }
        self.current.at = t;
        self.current.seq = ev.seq;
        self.current.id.clone_from(&ev.id);
        self.current.event_type = TypeName(ev.body.type_name());
        self.apply(t, &ev.body, out);
        // A snapshot's episodes start at their `since`: deadlines it sets may lie before
        // `t` already, and fire now, so that `poll_timeout` stays after the clock.
        self.fire_until(t, out);
        Applied::Applied { at: t, late }
    }

    /// Records `seq` as the highest processed from `source`.
    fn note_seq(&mut self, source: &str, seq: Option<u64>) {
        if let Some(seq) = seq {
            match self.seqs.get_mut(source) {
                Some(h) => *h = seq,
                None => {
                    self.seqs.insert(Id::from(source), seq);
                }
            }
        }
    }

    /// Whether applying `body` keeps the agents, calls and queues tracked within
    /// `rules.limits`. Counts what the event could add, before anything changes; a
    /// snapshot replaces the calls, so only its own calls count.
    fn check_limits(&self, body: &Body) -> Result<(), Limit> {
        let limits = self.rules.limits;
        let new_agent = |a: &Id| usize::from(!self.agents.contains_key(a));
        let new_call = |c: &Id| usize::from(!self.calls.contains_key(c));
        // A queue is created when a call of it is counted: the call's queue, which an event
        // sets only while the call has none (`call.queued` always).
        let known_queue = |call: &Id| self.calls.get(call).and_then(|c| c.queue.as_ref());
        let new_queue =
            |q: Option<&Id>| usize::from(q.is_some_and(|q| !self.queues.contains_key(q)));
        // A shift not yet kept is new state too (a re-plan of a kept one is not).
        if let Body::ShiftScheduled { shift, .. } = body {
            if !self.shifts.contains_key(shift) && self.shifts.len() >= limits.max_shifts {
                return Err(Limit::Shifts);
            }
        }
        // A pair that is neither dialed nor dispositioned yet is new state too.
        if let Body::CallDisposition { call, agent, .. } | Body::CallDialing { call, agent, .. } =
            body
        {
            let key = (call.clone(), agent.clone());
            if !self.pairs.contains_key(&key) && self.pairs.len() >= limits.max_calls {
                return Err(Limit::Calls);
            }
        }
        let (agents, calls, queues) = match body {
            Body::AgentLogin { agent, .. }
            | Body::AgentState { agent, .. }
            | Body::ApprovalGranted { agent, .. }
            | Body::ShiftScheduled { agent, .. }
            | Body::DemeritRecorded { agent, .. } => (new_agent(agent), 0, 0),
            Body::AgentLogout { .. }
            | Body::ShiftCancelled { .. }
            | Body::ViolationWaiver { .. }
            | Body::PeriodClosed { .. }
            | Body::Rulebook { .. } => (0, 0, 0),
            // A disposition names a pair, not a live call.
            Body::CallDisposition { agent, .. } => (new_agent(agent), 0, 0),
            Body::CallQueued { call, queue } => (0, new_call(call), new_queue(Some(queue))),
            Body::CallRinging { call, agent, queue } => (
                new_agent(agent),
                new_call(call),
                new_queue(known_queue(call).or(queue.as_ref())),
            ),
            Body::CallDialing { call, queue, .. } => (
                0,
                new_call(call),
                new_queue(known_queue(call).or(queue.as_ref())),
            ),
            Body::CallAnswered { call, agent } => (
                new_agent(agent),
                new_call(call),
                new_queue(known_queue(call)),
            ),
            Body::CallNoAnswer { call, .. }
            | Body::CallAbandoned { call }
            | Body::CallEnded { call, .. } => (0, 0, new_queue(known_queue(call))),
            Body::Snapshot { agents, calls } => {
                let listed: std::collections::HashSet<&Id> = agents
                    .iter()
                    .map(|a| &a.agent)
                    .chain(calls.iter().filter_map(|c| c.agent.as_ref()))
                    .collect();
                let agents = listed
                    .iter()
                    .filter(|a| !self.agents.contains_key(**a))
                    .count();
                let call_ids: std::collections::HashSet<&Id> =
                    calls.iter().map(|c| &c.call).collect();
                let queue_ids: std::collections::HashSet<&Id> = calls
                    .iter()
                    .filter_map(|c| {
                        let known = self.calls.get(&c.call).and_then(|x| x.queue.as_ref());
                        known.or(c.queue.as_ref())
                    })
                    .filter(|q| !self.queues.contains_key(*q))
                    .collect();
                let over_calls = call_ids.len() > limits.max_calls;
                if over_calls {
                    return Err(Limit::Calls);
                }
                (agents, 0, queue_ids.len())
            }
        };
        if agents > 0 && self.agents.len() + agents > limits.max_agents {
            return Err(Limit::Agents);
        }
        if calls > 0 && self.calls.len() + calls > limits.max_calls {
            return Err(Limit::Calls);
        }
        if queues > 0 && self.queues.len() + queues > limits.max_queues {
            return Err(Limit::Queues);
        }
        Ok(())
    }

    /// Moves the clock to `now` (if later) and fires every deadline strictly before it.
    pub fn handle_timeout(&mut self, now: Timestamp, out: &mut Vec<Effect>) {
        if self.clock.is_some_and(|c| now <= c) {
            // Deadlines before the clock have fired already.
            return;
        }
        self.fire_until(now, out);
        self.set_clock(now);
    }

    /// The earliest `now` at which `handle_timeout` fires something.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.timers.keys().next().map(|(d, _)| d.plus(1))
    }

    /// Ends a replay at `end`: fires every deadline strictly before it.
    pub fn finish(&mut self, end: Timestamp, out: &mut Vec<Effect>) {
        self.fire_until(end, out);
        if self.clock.is_none_or(|c| c < end) {
            self.set_clock(end);
        }
    }

    /// The highest `seq` processed from `source`.
    pub fn highest_seq(&self, source: &str) -> Option<u64> {
        self.seqs.get(source).copied()
    }

    /// Every source with its highest `seq`, sorted by name.
    pub fn sources(&self) -> Vec<(Id, u64)> {
        let mut v: Vec<_> = self.seqs.iter().map(|(k, v)| (k.clone(), *v)).collect();
        v.sort();
        v
    }

    /// The team of `agent`: from config, else the latest seen in its events, else
    /// `unassigned`.
    pub fn team_of(&self, agent: &str) -> Id {
        team_of(
            &self.rules,
            agent,
            self.agents.get(agent).and_then(|a| a.team_seen.as_ref()),
        )
    }

    /// The view of one agent the engine knows.
    pub fn agent_view(&self, agent: &str) -> Option<AgentView> {
        let a = self.agents.get(agent)?;
        let call = a.legs.first().or(a.ringing.first()).cloned();
        Some(AgentView {
            agent: a.id.clone(),
            team: self.team_of(agent),
            name: a.name.clone(),
            logged_in: a.logged_in,
            presence: a.presence,
            reason: a.reason.clone(),
            since: a.presence_since,
            effective: effective_state(a),
            effective_since: a.effective_since,
            call,
            open_violations: a.open_violations,
        })
    }

    /// Every known agent, sorted by id.
    pub fn agent_views(&self) -> Vec<AgentView> {
        let mut ids: Vec<&Id> = self.agents.keys().collect();
        ids.sort();
        ids.into_iter()
            .filter_map(|id| self.agent_view(id))
            .collect()
    }

    /// Every known queue with its floor KPIs, sorted by id.
    pub fn queue_views(&self) -> Vec<QueueView> {
        let now = self.clock.unwrap_or_default();
        let today = self.cal.day_of(now).date;
        self.queues
            .iter()
            .map(|(id, q)| {
                let mut last = QueueCounts::default();
                for e in q.window.iter().filter(|e| e.at > now.plus(-WINDOW)) {
                    last.add(&e.counts);
                }
                QueueView {
                    queue: id.clone(),
                    waiting: q.waiting.len() as u64,
                    oldest_since: q.waiting.first().map(|(t, _)| *t),
                    today: match &q.today {
                        Some((d, c)) if *d == today => c.clone(),
                        _ => QueueCounts::default(),
                    },
                    last_15m: last,
                }
            })
            .collect()
    }

    /// Approvals active at the engine clock, by agent, then start.
    pub fn active_approvals(&self) -> Vec<ApprovalView> {
        let Some(now) = self.clock else {
            return Vec::new();
        };
        let mut v: Vec<ApprovalView> = self
            .agents
            .values()
            .flat_map(|a| {
                a.approvals
                    .iter()
                    .filter(|x| x.from <= now && now < x.until)
                    .map(|x| ApprovalView {
                        agent: a.id.clone(),
                        reason: x.reason.clone(),
                        from: x.from,
                        until: x.until,
                    })
            })
            .collect();
        v.sort_by(|a, b| (&a.agent, a.from).cmp(&(&b.agent, b.from)));
        v
    }

    /// Currently open violations, in the order raised.
    pub fn open_violations(&self) -> Vec<Violation> {
        self.open.values().cloned().collect()
    }

    /// The appraisal for `period`, counting open items up to `end`; `waived` violations are
    /// left out. Rows sorted by agent.
    pub fn appraisal(
        &self,
        period: Period,
        end: Timestamp,
        waived: &[Violation],
    ) -> Vec<AppraisalRow> {
        let days = self.kpis.days();
        let input = appraisal::AppraisalInput {
            days: &days,
            agents: self.agents.values(),
            calls: self.calls.values(),
            shifts: self.shifts.values(),
            cal: &self.cal,
        };
        appraisal::rows(input, period, end, waived, |a| self.team_of(a))
    }

    // ---- time and timers ----

    fn set_clock(&mut self, t: Timestamp) {
        let new_day = self
            .clock
            .is_none_or(|c| self.cal.day_of(c).date != self.cal.day_of(t).date);
        self.clock = Some(t);
        if new_day {
            let today = self.cal.day(t).date;
            self.kpis.prune(today);
            self.prune_record(t, today);
        }
    }

    fn fire_until(&mut self, t: Timestamp, out: &mut Vec<Effect>) {
        while let Some(entry) = self.timers.first_entry() {
            let (deadline, _) = *entry.key();
            if deadline >= t {
                break;
            }
            let timer = entry.remove();
            self.fire(deadline, t, timer, out);
        }
    }

    fn set_timer(&mut self, at: Timestamp, timer: Timer) -> TimerKey {
        self.timer_order += 1;
        let key = (at, self.timer_order);
        self.timers.insert(key, timer);
        key
    }

    fn cancel(&mut self, keys: &[TimerKey]) {
        for k in keys {
            self.timers.remove(k);
        }
    }

    fn fire(&mut self, d: Timestamp, now: Timestamp, timer: Timer, out: &mut Vec<Effect>) {
        match timer {
            Timer::RingLate { call, agent } => {
                let Some(ep) = self
                    .calls
                    .get(&call)
                    .and_then(|c| c.rings.iter().find(|r| r.agent == agent))
                else {
                    return;
                };
                if ep.late.is_some() {
                    return;
                }
                let rc = &self.rb(ep.rb).ring_answer;
                let limit = format!(
                    "{} rings x {} = {}",
                    rc.rings,
                    format_duration(rc.ring_cycle),
                    format_duration(rc.limit())
                );
                let f = Finding::new(
                    Kind::Late,
                    ep.start,
                    ep.started_by.clone(),
                    rc.limit(),
                    limit,
                )
                .call(call.clone());
                let id = self.raise(&agent, f, d, now, Holder::Other, out);
                if let Some(ep) = self
                    .calls
                    .get_mut(&call)
                    .and_then(|c| c.rings.iter_mut().find(|r| r.agent == agent))
                {
                    ep.late = Some(id);
                }
            }
            Timer::PerBreak { agent, episode } => {
                let Some(p) = self.pause_of(&agent, episode) else {
                    return;
                };
                let max = d.since(p.start);
                let limit = format!("{} max {}", p.reason, format_duration(max));
                let f = Finding::pause(p, Kind::PerBreak, max, limit);
                self.raise(&agent, f, d, now, Holder::Pause, out);
            }
            Timer::DailyAllowance {
                agent,
                episode,
                day,
            } => {
                let Some(p) = self.pause_of(&agent, episode) else {
                    return;
                };
                let allowance = self.rb(p.rb).break_overrun.daily_allowance;
                let limit = format!("daily break allowance {}", format_duration(allowance));
                let f = Finding::pause(p, Kind::DailyAllowance, allowance, limit);
                self.raise(&agent, f, d, now, Holder::Pause, out);
                if let Some(a) = self.agents.get_mut(&agent) {
                    a.allowance_violated = Some(day);
                }
                // The episode may go on into the next day, which has an allowance of its own.
                let next_day_start = self.cal.start_of(day.tomorrow().unwrap_or(day));
                self.set_allowance_timer(&agent, episode, next_day_start);
            }
            Timer::PauseGrace { agent, episode } => {
                let Some(p) = self.pause_of(&agent, episode) else {
                    return;
                };
                let rules = self.rb(p.rb);
                let grace = rules.unauthorized_pause.grace;
                let kind = if p.reason.is_empty() {
                    Kind::NoReason
                } else {
                    match rules.reasons.get(p.reason.as_str()) {
                        None => Kind::UnknownReason,
                        Some(r) if r.approval => match self.cover_end(&agent, &p.reason, d) {
                            None => Kind::Unapproved,
                            Some(end) => {
                                self.set_cover_timer(&agent, episode, end);
                                return;
                            }
                        },
                        Some(_) => return,
                    }
                };
                let limit = if kind == Kind::Unapproved {
                    format!("approval needed within grace {}", format_duration(grace))
                } else {
                    format!("reason within grace {}", format_duration(grace))
                };
                let f = Finding::pause(p, kind, grace, limit);
                self.raise(&agent, f, d, now, Holder::Pause, out);
            }
            Timer::ApprovalCover { agent, episode } => {
                let Some(p) = self.pause_of(&agent, episode) else {
                    return;
                };
                match self.cover_end(&agent, &p.reason, d) {
                    Some(end) => self.set_cover_timer(&agent, episode, end),
                    None => {
                        let f = Finding::pause(
                            p,
                            Kind::ApprovalExpired,
                            d.since(p.start),
                            format!("covered by approvals until {d}"),
                        );
                        self.raise(&agent, f, d, now, Holder::Pause, out);
                    }
                }
            }
            Timer::AcwWithoutCall { agent, episode } => {
                let Some(w) = self.acw_of(&agent, episode) else {
                    return;
                };
                if w.linked {
                    return;
                }
                let up = &self.rb(w.rb).unauthorized_pause;
                let limit = format!(
                    "wrap-up without a call.ended within {} before it, for longer than the grace {}",
                    format_duration(up.acw_link),
                    format_duration(up.grace)
                );
                let f = Finding::acw(w, Kind::AcwWithoutCall, up.grace, limit);
                self.raise(&agent, f, d, now, Holder::Acw, out);
            }
            Timer::ShiftLogin { shift } => self.fire_shift_login(&shift, d, now, out),
            Timer::ShiftEnd { shift } => self.fire_shift_end(&shift, d, out),
            Timer::ShiftLogout { shift } => self.fire_shift_logout(&shift, d, now, out),
            Timer::AcwOverrun { agent, episode } => {
                let Some(w) = self.acw_of(&agent, episode) else {
                    return;
                };
                let max = self.rb(w.rb).unauthorized_pause.acw_max;
                let limit = format!("wrap-up max {}", format_duration(max));
                let f = Finding::acw(w, Kind::AcwOverrun, max, limit);
                self.raise(&agent, f, d, now, Holder::Acw, out);
            }
        }
    }

    /// Checks the approvals of the agent's pause episode again at `end`.
    fn set_cover_timer(&mut self, agent: &Id, episode: u64, end: Timestamp) {
        let key = self.set_timer(
            end,
            Timer::ApprovalCover {
                agent: agent.clone(),
                episode,
            },
        );
        if let Some(p) = self.agents.get_mut(agent).and_then(|a| a.pause.as_mut()) {
            p.timers.push(key);
        }
    }

    fn pause_of(&self, agent: &Id, episode: u64) -> Option<&PauseEpisode> {
        self.agents
            .get(agent)
            .and_then(|a| a.pause.as_deref())
            .filter(|p| p.id == episode)
    }

    fn acw_of(&self, agent: &Id, episode: u64) -> Option<&AcwEpisode> {
        self.agents
            .get(agent)
            .and_then(|a| a.acw.as_deref())
            .filter(|w| w.id == episode)
    }

    /// The latest end among approvals for (agent, reason) active at `t` (`[from, until)`).
    fn cover_end(&self, agent: &Id, reason: &Id, t: Timestamp) -> Option<Timestamp> {
        self.agents
            .get(agent)?
            .approvals
            .iter()
            .filter(|a| a.reason == *reason && a.from <= t && t < a.until)
            .map(|a| a.until)
            .max()
    }

    /// Raises a violation at `at` and files it with the episode that holds it, so it is
    /// cleared when that episode ends.
    fn raise(
        &mut self,
        agent: &Id,
        f: Finding,
        at: Timestamp,
        detected_at: Timestamp,
        holder: Holder,
        out: &mut Vec<Effect>,
    ) -> u64 {
        let rule = f.kind.rule();
        // The points and money in force when raised.
        let r = &self.rules;
        let points = f.points.unwrap_or(match &f.kind {
            Kind::Late | Kind::Missed => r.ring_answer.points,
            Kind::PerBreak | Kind::DailyAllowance => r.break_overrun.points,
            Kind::LateLogin => r.attendance.points.late_login,
            Kind::LeftBeforeRelief => r.attendance.points.left_before_relief,
            Kind::NotLoggedOut => r.attendance.points.not_logged_out,
            Kind::Discipline(_) => 0,
            _ => r.unauthorized_pause.points,
        });
        let deduction = f64::from(points) * r.money_per_point;
        let id = self.next_violation;
        self.next_violation += 1;
        let v = Violation {
            id,
            rule,
            kind: f.kind,
            agent: agent.clone(),
            team: self.team_of(agent),
            call: f.call,
            reason: f.reason,
            at,
            points,
            deduction,
            detected_at,
            evidence: Evidence {
                started_by: f.started_by,
                ended_by: None,
                limit_ms: f.limit_ms,
                limit: f.limit,
                raised_after_ms: at.since(f.start),
                lasted_ms: None,
                recorded_by: f.recorded_by,
                note: f.note,
                shift: f.shift,
                relief: f.relief,
            },
        };
        let date = self.cal.day(at).date;
        if let Some(k) = self.kpis.entry(date, agent) {
            k.violations[rule.index()] += 1;
            k.points += u64::from(points);
            k.deduction += deduction;
        }
        self.ledger_push(&v);
        if let Some(a) = self.agents.get_mut(agent) {
            a.open_violations += 1;
            match holder {
                Holder::Pause => a.pause.iter_mut().for_each(|p| p.violations.push(id)),
                Holder::Acw => a.acw.iter_mut().for_each(|w| w.violations.push(id)),
                Holder::Other => {}
            }
        }
        self.open.insert(id, v.clone());
        out.push(Effect::Violation(Box::new(v)));
        id
    }

    /// Clears the open violations `ids` at `at`: their episode ended there.
    fn clear(&mut self, ids: &[u64], at: Timestamp, out: &mut Vec<Effect>) {
        for &id in ids {
            if let Some(v) = self.open.remove(&id) {
                if let Some(a) = self.agents.get_mut(&v.agent) {
                    a.open_violations = a.open_violations.saturating_sub(1);
                }
                // The episode started `raised_after_ms` before the violation's `at`.
                let start = v.at.plus(-v.evidence.raised_after_ms);
                out.push(Effect::Cleared {
                    id,
                    at,
                    ended_by: self.current.clone(),
                    lasted_ms: at.since(start).max(0),
                });
            }
        }
    }

    // ---- applying events ----

    fn agent_mut(&mut self, id: &Id, t: Timestamp) -> &mut Agent {
        self.agents
            .get_or_insert_with(id, || Agent::new(id.clone(), t))
    }

    fn apply(&mut self, t: Timestamp, body: &Body, out: &mut Vec<Effect>) {
        match body {
            Body::AgentLogin {
                agent,
                team,
                name,
                state,
                reason,
                ..
            } => {
                let a = self.agent_mut(agent, t);
                if team.is_some() {
                    a.team_seen.clone_from(team);
                }
                if name.is_some() {
                    a.name.clone_from(name);
                }
                let st = state.unwrap_or(PresenceState::Ready);
                self.set_presence(agent, st, reason, t, t, out);
                self.touch(agent, t, out);
            }
            Body::AgentLogout { agent } => {
                self.end_rings_of_agent(agent, t, out);
                if self.agents.get(agent).is_some_and(|a| a.logged_in) {
                    // Judged on the floor as it was just before the logout.
                    self.check_left_before_relief(agent, t, out);
                    self.end_presence(agent, t, out);
                    if let Some(a) = self.agents.get_mut(agent) {
                        a.logged_in = false;
                        a.presence = None;
                        a.reason = Id::default();
                        a.presence_since = t;
                    }
                    self.on_logout(agent, t, out);
                }
                self.touch(agent, t, out);
            }
            Body::AgentState {
                agent,
                state,
                reason,
                team,
                ..
            } => {
                let a = self.agent_mut(agent, t);
                if team.is_some() {
                    a.team_seen.clone_from(team);
                }
                self.set_presence(agent, *state, reason, t, t, out);
                self.touch(agent, t, out);
            }
            Body::CallQueued { call, queue } => {
                let c = self.calls.get_or_insert_with(call, Call::default);
                if c.waiting_since.is_some() {
                    return;
                }
                c.queue = Some(queue.clone());
                c.waiting_since = Some(t);
                self.queue_offered(queue, call, t, t, out);
            }
            Body::CallRinging { call, agent, queue } => {
                {
                    let c = self.calls.get_or_insert_with(call, Call::default);
                    if c.queue.is_none() {
                        c.queue.clone_from(queue);
                    }
                    if c.rings.iter().any(|r| r.agent == *agent) {
                        return;
                    }
                }
                self.end_rings_of_call(call, Some(agent), None, t, out);
                self.start_ring(call, agent, t, out);
            }
            Body::CallAnswered { call, agent } => {
                self.calls.get_or_insert_with(call, Call::default);
                self.end_rings_of_call(call, None, Some(agent), t, out);
                self.queue_answered(call, t, out);
                self.open_leg(call, agent, t);
                self.answered_pair(call, agent, t, out);
                self.touch(agent, t, out);
            }
            Body::CallNoAnswer { call, agent } => {
                let Some(c) = self.calls.get_mut(call) else {
                    return;
                };
                let Some(i) = c.rings.iter().position(|r| r.agent == *agent) else {
                    return;
                };
                let ep = c.rings.remove(i);
                let limit = self.rb(ep.rb).ring_answer.limit();
                self.ring_ended(call, ep.clone(), t, out);
                if ep.late.is_none() {
                    let f = Finding::new(
                        Kind::Missed,
                        ep.start,
                        ep.started_by,
                        0,
                        format!(
                            "ring-no-answer (the platform took the call away) within {}",
                            format_duration(limit)
                        ),
                    )
                    .call(call.clone());
                    // One-shot: the ring episode has already ended.
                    let id = self.raise(agent, f, t, t, Holder::Other, out);
                    self.clear(&[id], t, out);
                }
                self.forget_call_if_idle(call);
            }
            Body::CallAbandoned { call } => {
                if !self.calls.contains_key(call) {
                    return;
                }
                self.end_rings_of_call(call, None, None, t, out);
                self.queue_abandoned(call, t, out);
                self.forget_call_if_idle(call);
            }
            Body::CallDialing { call, queue, agent } => {
                let c = self.calls.get_or_insert_with(call, Call::default);
                if c.queue.is_none() {
                    c.queue.clone_from(queue);
                }
                self.dialed(call, agent, t, out);
            }
            Body::CallEnded { call, agent } => {
                if !self.calls.contains_key(call) {
                    if let Some(a) = agent {
                        self.note_call_end(a, t);
                    }
                    return;
                }
                self.end_rings_of_call(call, None, None, t, out);
                self.queue_left(call);
                let closed = self.close_legs(call, agent.as_ref(), t);
                if let Some(a) = agent {
                    self.note_call_end(a, t);
                }
                for a in closed {
                    if agent.is_none() {
                        self.note_call_end(&a, t);
                    }
                    self.touch(&a, t, out);
                }
                self.forget_call_if_idle(call);
            }
            Body::ApprovalGranted {
                agent,
                reason,
                duration_ms,
                ..
            } => {
                let a = self.agent_mut(agent, t);
                a.approvals.retain(|x| x.until.plus(APPROVAL_KEEP) > t);
                if a.approvals.len() >= MAX_APPROVALS {
                    a.approvals.remove(0);
                }
                a.approvals.push(Approval {
                    reason: reason.clone(),
                    from: t,
                    until: t.plus(*duration_ms),
                });
            }
            Body::Snapshot { agents, calls } => self.apply_snapshot(t, agents, calls, out),
            Body::ShiftScheduled {
                shift,
                agent,
                start,
                end,
                position,
                team,
            } => {
                let a = self.agent_mut(agent, t);
                if team.is_some() {
                    a.team_seen.clone_from(team);
                }
                self.schedule_shift(shift, agent, *start, *end, position, t, out);
                self.touch(agent, t, out);
            }
            Body::ShiftCancelled { shift } => self.cancel_shift(shift, out),
            Body::CallDisposition { call, agent, code } => {
                self.disposition(call, agent, code, t, out)
            }
            Body::DemeritRecorded {
                agent,
                item,
                by,
                points,
                note,
            } => self.record_demerit(agent, item, by, *points, note, t, out),
            Body::ViolationWaiver {
                violation,
                waived,
                by,
                why,
            } => self.waiver(*violation, *waived, by, why, t, out),
            Body::PeriodClosed { period, by, digest } => {
                self.closed.insert(period.clone(), digest.clone());
                out.push(Effect::PeriodClosed {
                    period: period.clone(),
                    at: t,
                    by: by.clone(),
                    digest: digest.clone(),
                });
            }
            // Applied in `handle_event`: it never moves the clock.
            Body::Rulebook { .. } => {}
        }
    }

    /// Recomputes the agent's effective state and reports the change.
    fn touch(&mut self, agent: &Id, t: Timestamp, out: &mut Vec<Effect>) {
        if let Some(a) = self.agents.get_mut(agent) {
            let eff = effective_state(a);
            if eff != a.last_effective {
                a.last_effective = eff;
                a.effective_since = t;
            }
            out.push(Effect::AgentChanged {
                agent: agent.clone(),
            });
        }
    }

    // ---- presence, pause and wrap-up episodes ----

    /// Sets the presence of `agent` at `t`. A new episode starts at `start` (≤ `t`; earlier
    /// only for snapshots).
    fn set_presence(
        &mut self,
        agent: &Id,
        st: PresenceState,
        reason: &Id,
        t: Timestamp,
        start: Timestamp,
        out: &mut Vec<Effect>,
    ) {
        let Some(a) = self.agents.get(agent) else {
            return;
        };
        let reason = if st == PresenceState::NotReady {
            reason.clone()
        } else {
            Id::default()
        };
        if a.logged_in && a.presence == Some(st) && a.reason == reason {
            return;
        }
        self.end_presence(agent, t, out);
        let Some(a) = self.agents.get_mut(agent) else {
            return;
        };
        let was_in = a.logged_in;
        a.logged_in = true;
        a.presence = Some(st);
        a.reason = reason.clone();
        a.presence_since = start;
        match st {
            PresenceState::NotReady => self.start_pause(agent, reason, start),
            PresenceState::Acw => self.start_acw(agent, start, false),
            PresenceState::Ready => {}
        }
        if !was_in {
            self.on_login(agent, t, out);
        }
    }

    /// Ends the agent's pause or wrap-up episode at `t`, if one is open.
    fn end_presence(&mut self, agent: &Id, t: Timestamp, out: &mut Vec<Effect>) {
        let Some(a) = self.agents.get_mut(agent) else {
            return;
        };
        if let Some(p) = a.pause.take() {
            let dur = t.since(p.start).max(0);
            if p.allowance {
                let day = self.cal.day(t);
                if a.allowance_day != Some(day.date) {
                    a.allowance_day = Some(day.date);
                    a.allowance_used = 0;
                }
                a.allowance_used += t.since(p.start.max(day.start)).max(0);
            }
            let start_day = self.cal.day(p.start).date;
            if let Some(k) = self.kpis.entry(start_day, agent) {
                k.pause_ms += dur;
                if p.allowance {
                    k.break_ms += dur;
                }
            }
            self.cancel(&p.timers);
            self.clear(&p.violations, t, out);
        }
        let Some(a) = self.agents.get_mut(agent) else {
            return;
        };
        if let Some(w) = a.acw.take() {
            let dur = t.since(w.start).max(0);
            let start_day = self.cal.day(w.start).date;
            if let Some(k) = self.kpis.entry(start_day, agent) {
                k.acw_ms += dur;
            }
            self.cancel(&w.timers);
            self.clear(&w.violations, t, out);
        }
    }

    fn start_pause(&mut self, agent: &Id, reason: Id, s: Timestamp) {
        self.episode_ids += 1;
        let episode = self.episode_ids;
        let rb = self.rb_now();
        let rule = if reason.is_empty() {
            None
        } else {
            self.rules.reasons.get(reason.as_str()).cloned()
        };
        let allowance = rule.as_ref().is_some_and(|r| r.allowance);
        let started_by = self.current.clone();
        let date = self.cal.day(s).date;
        self.kpis.entry(date, agent);
        let mut timers = Vec::new();
        // Deadlines set by one event are set in the order the rules page lists the kinds.
        if let Some(max) = rule.as_ref().and_then(|r| r.max) {
            timers.push(self.set_timer(
                s.plus(max),
                Timer::PerBreak {
                    agent: agent.clone(),
                    episode,
                },
            ));
        }
        let needs_check = match &rule {
            None => true,
            Some(r) => r.approval,
        };
        if let Some(a) = self.agents.get_mut(agent) {
            a.pause = Some(Box::new(PauseEpisode {
                id: episode,
                rb,
                reason,
                start: s,
                started_by,
                allowance,
                timers: Vec::new(),
                violations: Vec::new(),
            }));
        }
        if allowance {
            let allowance = self.rules.break_overrun.daily_allowance;
            if let Some(key) = self
                .allowance_deadline(agent, s, allowance)
                .map(|(d, day)| {
                    self.set_timer(
                        d,
                        Timer::DailyAllowance {
                            agent: agent.clone(),
                            episode,
                            day,
                        },
                    )
                })
            {
                timers.push(key);
            }
        }
        if needs_check {
            let grace = self.rules.unauthorized_pause.grace;
            timers.push(self.set_timer(
                s.plus(grace),
                Timer::PauseGrace {
                    agent: agent.clone(),
                    episode,
                },
            ));
        }
        if let Some(p) = self.agents.get_mut(agent).and_then(|a| a.pause.as_mut()) {
            p.timers = timers;
        }
    }

    /// The instant the agent's daily allowance is reached by an allowance episode that is
    /// open from `from` on, and the local day it belongs to. A day already violated is
    /// skipped; a total that reaches the allowance exactly at midnight has not exceeded it.
    fn allowance_deadline(
        &mut self,
        agent: &Id,
        from: Timestamp,
        allowance: Millis,
    ) -> Option<(Timestamp, jiff::civil::Date)> {
        let a = self.agents.get(agent)?;
        let (used_day, used, violated) = (a.allowance_day, a.allowance_used, a.allowance_violated);
        let mut x = from;
        // An episode crosses at most a few midnights before a deadline is found.
        for _ in 0..4 {
            let day = self.cal.day(x);
            if violated != Some(day.date) {
                let used = if used_day == Some(day.date) { used } else { 0 };
                let d = x.plus((allowance - used).max(0));
                if d < day.end {
                    return Some((d, day.date));
                }
            }
            x = day.end;
        }
        None
    }

    fn set_allowance_timer(&mut self, agent: &Id, episode: u64, from: Timestamp) {
        let Some(rb) = self.pause_of(agent, episode).map(|p| p.rb) else {
            return;
        };
        let allowance = self.rb(rb).break_overrun.daily_allowance;
        if let Some((d, day)) = self.allowance_deadline(agent, from, allowance) {
            let key = self.set_timer(
                d,
                Timer::DailyAllowance {
                    agent: agent.clone(),
                    episode,
                    day,
                },
            );
            if let Some(p) = self.agents.get_mut(agent).and_then(|a| a.pause.as_mut()) {
                p.timers.push(key);
            }
        }
    }

    fn start_acw(&mut self, agent: &Id, s: Timestamp, from_snapshot: bool) {
        self.episode_ids += 1;
        let episode = self.episode_ids;
        let rb = self.rb_now();
        let link = self.rules.unauthorized_pause.acw_link;
        let grace = self.rules.unauthorized_pause.grace;
        let acw_max = self.rules.unauthorized_pause.acw_max;
        let started_by = self.current.clone();
        let date = self.cal.day(s).date;
        self.kpis.entry(date, agent);
        let linked = from_snapshot
            || self
                .agents
                .get(agent)
                .and_then(|a| a.last_call_end)
                .is_some_and(|e| e >= s.plus(-link) && e <= s);
        let mut timers = Vec::new();
        if !linked {
            timers.push(self.set_timer(
                s.plus(grace),
                Timer::AcwWithoutCall {
                    agent: agent.clone(),
                    episode,
                },
            ));
        }
        timers.push(self.set_timer(
            s.plus(acw_max),
            Timer::AcwOverrun {
                agent: agent.clone(),
                episode,
            },
        ));
        if let Some(a) = self.agents.get_mut(agent) {
            a.acw = Some(Box::new(AcwEpisode {
                id: episode,
                rb,
                start: s,
                started_by,
                linked,
                timers,
                violations: Vec::new(),
            }));
        }
    }

    /// Records a `call.ended` that names the agent or closes one of its legs.
    fn note_call_end(&mut self, agent: &Id, t: Timestamp) {
        let Some(a) = self.agents.get_mut(agent) else {
            return;
        };
        a.last_call_end = Some(t);
        // A call.ended at the very instant wrap-up started (applied after it) still links it.
        if let Some(w) = a.acw.as_mut() {
            if t <= w.start && !w.linked {
                w.linked = true;
                let timers = &mut self.timers;
                w.timers.retain(|k| {
                    let moot = matches!(timers.get(k), Some(Timer::AcwWithoutCall { .. }));
                    if moot {
                        timers.remove(k);
                    }
                    !moot
                });
            }
        }
    }

    // ---- ring episodes and legs ----

    fn start_ring(&mut self, call: &Id, agent: &Id, t: Timestamp, out: &mut Vec<Effect>) {
        let limit = self.rules.ring_answer.limit();
        let rb = self.rb_now();
        let key = self.set_timer(
            t.plus(limit),
            Timer::RingLate {
                call: call.clone(),
                agent: agent.clone(),
            },
        );
        let ep = RingEpisode {
            agent: agent.clone(),
            rb,
            start: t,
            started_by: self.current.clone(),
            timer: key,
            late: None,
        };
        if let Some(c) = self.calls.get_mut(call) {
            c.rings.push(ep);
        }
        let date = self.cal.day(t).date;
        if let Some(k) = self.kpis.entry(date, agent) {
            k.ring_episodes += 1;
        }
        let a = self.agent_mut(agent, t);
        a.ringing.push(call.clone());
        self.touch(agent, t, out);
    }

    /// Bookkeeping for a ring episode that has just been removed from its call.
    fn ring_ended(&mut self, call: &Id, ep: RingEpisode, t: Timestamp, out: &mut Vec<Effect>) {
        self.timers.remove(&ep.timer);
        if let Some(id) = ep.late {
            self.clear(&[id], t, out);
        }
        if let Some(a) = self.agents.get_mut(&ep.agent) {
            a.ringing.retain(|c| c != call);
        }
        out.push(Effect::RingEnded {
            team: self.team_of(&ep.agent),
            agent: ep.agent.clone(),
            ring: t.since(ep.start),
        });
        self.touch(&ep.agent, t, out);
    }

    /// Ends the ring episodes of `call` at `t`, except the one at agent `keep`. An answer
    /// by the ringing agent within the limit is counted here.
    fn end_rings_of_call(
        &mut self,
        call: &Id,
        keep: Option<&Id>,
        answered_by: Option<&Id>,
        t: Timestamp,
        out: &mut Vec<Effect>,
    ) {
        let Some(c) = self.calls.get_mut(call) else {
            return;
        };
        if c.rings.is_empty() {
            return;
        }
        let mut ended = Vec::new();
        c.rings.retain(|r| {
            if Some(&r.agent) == keep {
                true
            } else {
                ended.push(r.clone());
                false
            }
        });
        for ep in ended {
            if answered_by == Some(&ep.agent)
                && t.since(ep.start) <= self.rb(ep.rb).ring_answer.limit()
            {
                let date = self.cal.day(ep.start).date;
                if let Some(k) = self.kpis.entry(date, &ep.agent) {
                    k.answered_within_rings += 1;
                }
            }
            self.ring_ended(call, ep, t, out);
        }
    }

    fn end_rings_of_agent(&mut self, agent: &Id, t: Timestamp, out: &mut Vec<Effect>) {
        let calls: Vec<Id> = self
            .agents
            .get(agent)
            .map(|a| a.ringing.clone())
            .unwrap_or_default();
        for call in calls {
            let ep = self.calls.get_mut(&call).and_then(|c| {
                let i = c.rings.iter().position(|r| r.agent == *agent)?;
                Some(c.rings.remove(i))
            });
            if let Some(ep) = ep {
                self.ring_ended(&call, ep, t, out);
            }
            self.forget_call_if_idle(&call);
        }
    }

    fn open_leg(&mut self, call: &Id, agent: &Id, t: Timestamp) {
        let Some(c) = self.calls.get_mut(call) else {
            return;
        };
        if c.legs.iter().any(|l| l.agent == *agent) {
            return;
        }
        c.legs.push(Leg {
            agent: agent.clone(),
            open: t,
        });
        let date = self.cal.day(t).date;
        if let Some(k) = self.kpis.entry(date, agent) {
            k.calls_answered += 1;
        }
        self.agent_mut(agent, t).legs.push(call.clone());
    }

    /// Closes the legs of `call` that `agent` names (all legs when `None`); returns the
    /// agents whose legs closed.
    fn close_legs(&mut self, call: &Id, agent: Option<&Id>, t: Timestamp) -> Vec<Id> {
        let Some(c) = self.calls.get_mut(call) else {
            return Vec::new();
        };
        let mut closed = Vec::new();
        c.legs.retain(|l| {
            if agent.is_none_or(|a| *a == l.agent) {
                closed.push(l.clone());
                false
            } else {
                true
            }
        });
        let mut agents = Vec::new();
        for leg in closed {
            let date = self.cal.day(leg.open).date;
            if let Some(k) = self.kpis.entry(date, &leg.agent) {
                k.talk_ms += t.since(leg.open).max(0);
            }
            let mut last_leg = false;
            if let Some(a) = self.agents.get_mut(&leg.agent) {
                a.legs.retain(|x| x != call);
                last_leg = a.legs.is_empty();
            }
            if last_leg {
                self.on_last_leg_closed(&leg.agent, t);
            }
            agents.push(leg.agent);
        }
        agents
    }

    fn forget_call_if_idle(&mut self, call: &Id) {
        if self.calls.get(call).is_some_and(|c| c.is_idle()) {
            self.calls.remove(call);
        }
    }

    // ---- queues ----

    fn queue_mut(&mut self, queue: &Id) -> &mut Queue {
        self.queues.entry(queue.clone()).or_default()
    }

    fn count(&mut self, queue: &Id, t: Timestamp, delta: QueueCounts) {
        let today = self.cal.day(t).date;
        let q = self.queue_mut(queue);
        match &mut q.today {
            Some((d, c)) if *d == today => c.add(&delta),
            _ => q.today = Some((today, delta.clone())),
        }
        while q.window.front().is_some_and(|e| e.at <= t.plus(-WINDOW)) {
            q.window.pop_front();
        }
        q.window.push_back(WindowEntry {
            at: t,
            counts: delta,
        });
    }

    fn queue_offered(
        &mut self,
        queue: &Id,
        call: &Id,
        since: Timestamp,
        t: Timestamp,
        out: &mut Vec<Effect>,
    ) {
        self.queue_mut(queue).waiting.insert((since, call.clone()));
        self.count(
            queue,
            t,
            QueueCounts {
                offered: 1,
                ..QueueCounts::default()
            },
        );
        out.push(Effect::Queue {
            queue: queue.clone(),
            outcome: QueueOutcome::Offered,
        });
    }

    /// Takes the call out of its queue's waiting set; returns (queue, wait).
    fn leave_queue(&mut self, call: &Id, t: Timestamp) -> Option<(Id, Millis)> {
        let c = self.calls.get_mut(call)?;
        let since = c.waiting_since.take()?;
        let queue = c.queue.clone()?;
        self.queue_mut(&queue)
            .waiting
            .remove(&(since, call.clone()));
        Some((queue, t.since(since).max(0)))
    }

    fn queue_answered(&mut self, call: &Id, t: Timestamp, out: &mut Vec<Effect>) {
        if let Some((queue, wait)) = self.leave_queue(call, t) {
            let within = wait <= self.rules.service_level.threshold;
            self.count(
                &queue,
                t,
                QueueCounts {
                    answered: 1,
                    answered_in_threshold: u64::from(within),
                    answer_wait_sum: wait,
                    ..QueueCounts::default()
                },
            );
            out.push(Effect::Queue {
                queue,
                outcome: QueueOutcome::Answered { wait },
            });
        }
    }

    fn queue_abandoned(&mut self, call: &Id, t: Timestamp, out: &mut Vec<Effect>) {
        if let Some((queue, wait)) = self.leave_queue(call, t) {
            let short = wait < self.rules.service_level.short_abandon;
            self.count(
                &queue,
                t,
                QueueCounts {
                    abandoned: 1,
                    short_abandons: u64::from(short),
                    ..QueueCounts::default()
                },
            );
            out.push(Effect::Queue {
                queue,
                outcome: QueueOutcome::Abandoned { wait },
            });
        }
    }

    /// Takes the call out of its queue without counting it answered or abandoned.
    fn queue_left(&mut self, call: &Id) {
        let now = self.clock.unwrap_or_default();
        self.leave_queue(call, now);
    }

    // ---- snapshots ----

    /// A snapshot replaces the live view. Episodes that the snapshot confirms continue;
    /// new ones start at their `since` (never later than the snapshot), so deadlines that
    /// `since` implies fire; nothing else is judged for the time the daemon did not observe.
    fn apply_snapshot(
        &mut self,
        t: Timestamp,
        agents: &[SnapshotAgent],
        calls: &[SnapshotCall],
        out: &mut Vec<Effect>,
    ) {
        let listed: std::collections::HashSet<&str> =
            agents.iter().map(|a| a.agent.as_str()).collect();
        let mut absent: Vec<Id> = self
            .agents
            .values()
            .filter(|a| a.logged_in && !listed.contains(a.id.as_str()))
            .map(|a| a.id.clone())
            .collect();
        absent.sort();
        for id in absent {
            self.end_rings_of_agent(&id, t, out);
            self.end_presence(&id, t, out);
            if let Some(a) = self.agents.get_mut(&id) {
                a.logged_in = false;
                a.presence = None;
                a.reason = Id::default();
                a.presence_since = t;
            }
            self.on_logout(&id, t, out);
            self.touch(&id, t, out);
        }
        for sa in agents {
            let since = sa.since.min(t);
            let a = self.agent_mut(&sa.agent, t);
            if sa.team.is_some() {
                a.team_seen.clone_from(&sa.team);
            }
            let was_in = a.logged_in;
            let same = a.logged_in && a.presence == Some(sa.presence) && a.reason == sa.reason;
            if !same {
                self.end_presence(&sa.agent, t, out);
                if let Some(a) = self.agents.get_mut(&sa.agent) {
                    a.logged_in = true;
                    a.presence = Some(sa.presence);
                    a.reason = sa.reason.clone();
                    a.presence_since = since;
                }
                match sa.presence {
                    PresenceState::NotReady => {
                        self.start_pause(&sa.agent, sa.reason.clone(), since)
                    }
                    PresenceState::Acw => self.start_acw(&sa.agent, since, true),
                    PresenceState::Ready => {}
                }
            }
            if !was_in {
                self.on_login(&sa.agent, t, out);
            }
            self.touch(&sa.agent, t, out);
        }

        let listed_calls: std::collections::HashSet<&str> =
            calls.iter().map(|c| c.call.as_str()).collect();
        let mut gone: Vec<Id> = self
            .calls
            .keys()
            .filter(|c| !listed_calls.contains(c.as_str()))
            .cloned()
            .collect();
        gone.sort();
        for call in gone {
            self.end_rings_of_call(&call, None, None, t, out);
            self.queue_left(&call);
            for a in self.close_legs(&call, None, t) {
                self.touch(&a, t, out);
            }
            self.calls.remove(&call);
        }
        for sc in calls {
            let since = sc.since.min(t);
            {
                let c = self.calls.get_or_insert_with(&sc.call, Call::default);
                if c.queue.is_none() {
                    c.queue.clone_from(&sc.queue);
                }
            }
            match sc.state {
                SnapshotCallState::Queued => {
                    let c = self.calls.get_or_insert_with(&sc.call, Call::default);
                    if c.waiting_since.is_none() {
                        if let Some(q) = c.queue.clone() {
                            c.waiting_since = Some(since);
                            self.queue_offered(&q, &sc.call, since, t, out);
                        }
                    }
                }
                SnapshotCallState::Ringing => {
                    let Some(agent) = &sc.agent else { continue };
                    let ringing_here = self
                        .calls
                        .get(&sc.call)
                        .is_some_and(|c| c.rings.iter().any(|r| r.agent == *agent));
                    if !ringing_here {
                        self.end_rings_of_call(&sc.call, Some(agent), None, t, out);
                        self.start_ring(&sc.call, agent, since, out);
                    }
                }
                SnapshotCallState::Talking => {
                    let Some(agent) = &sc.agent else { continue };
                    self.end_rings_of_call(&sc.call, None, None, t, out);
                    self.queue_left(&sc.call);
                    self.open_leg(&sc.call, agent, since);
                    self.touch(agent, t, out);
                }
            }
        }
    }
}

/// What a deadline or event found wrong, before it becomes a [`Violation`].
struct Finding {
    kind: Kind,
    call: Option<Id>,
    reason: Option<Id>,
    /// When the episode started; the evidence measures from here.
    start: Timestamp,
    started_by: EventRef,
    limit_ms: Millis,
    limit: String,
    /// Points given by the event (floor discipline); else the rule's points in force.
    points: Option<u32>,
    recorded_by: Option<Id>,
    note: Option<Id>,
    shift: Option<Id>,
    relief: Option<Relief>,
}

impl Finding {
    fn new(
        kind: Kind,
        start: Timestamp,
        started_by: EventRef,
        limit_ms: Millis,
        limit: String,
    ) -> Finding {
        Finding {
            kind,
            call: None,
            reason: None,
            start,
            started_by,
            limit_ms,
            limit,
            points: None,
            recorded_by: None,
            note: None,
            shift: None,
            relief: None,
        }
    }

    fn call(mut self, call: Id) -> Finding {
        self.call = Some(call);
        self
    }

    /// A finding on a pause episode; its reason is reported unless it is empty.
    fn pause(p: &PauseEpisode, kind: Kind, limit_ms: Millis, limit: String) -> Finding {
        let mut f = Finding::new(kind, p.start, p.started_by.clone(), limit_ms, limit);
        f.reason = (!p.reason.is_empty()).then(|| p.reason.clone());
        f
    }

    fn acw(w: &AcwEpisode, kind: Kind, limit_ms: Millis, limit: String) -> Finding {
        Finding::new(kind, w.start, w.started_by.clone(), limit_ms, limit)
    }
}

/// The episode a violation belongs to (cleared when it ends).
#[derive(Clone, Copy)]
enum Holder {
    /// Ring episodes, shifts and one-shot kinds keep their own ids.
    Other,
    Pause,
    Acw,
}

/// An agent's team: from config, else `seen` (the latest in its events), else `unassigned`.
fn team_of(rules: &RulesConfig, agent: &str, seen: Option<&Id>) -> Id {
    if let Some(t) = rules.team_of.get(agent) {
        return Id::from(t.as_str());
    }
    seen.cloned().unwrap_or_else(|| Id::const_new("unassigned"))
}

/// Effective state of a logged-in agent: talking, ringing, then presence.
fn effective_state(a: &Agent) -> Option<EffectiveState> {
    if !a.logged_in {
        return None;
    }
    Some(if !a.legs.is_empty() {
        EffectiveState::Talking
    } else if !a.ringing.is_empty() {
        EffectiveState::Ringing
    } else {
        match a.presence {
            Some(PresenceState::Acw) => EffectiveState::Acw,
            Some(PresenceState::NotReady) => EffectiveState::NotReady,
            _ => EffectiveState::Ready,
        }
    })
}

#[cfg(test)]
mod tests;
