//! Appraisal accumulators: per agent and local day (of each item's start), what the rules
//! page's appraisal columns need. Week and month rows are sums of day rows, which is exact
//! because every item is attributed to the one day that contains its start.
//!
//! Owns: the day accumulators and their retention. Must not: apply rules (`mod.rs` does).

use std::collections::BTreeMap;
use std::sync::Arc;

// A fast hash with per-process random seeds: ids come from outside, so keep it keyed.
use foldhash::HashMap;

use jiff::civil::Date;

use super::state::{Agent, Call, Shift};
use super::types::{AppraisalRow, Violation};
use crate::event::Id;
use crate::time::{Calendar, Millis, Period, Timestamp};

/// Which days the engine keeps appraisal accumulators for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KpiRetention {
    /// Every day (unbounded in time; replays of bounded files).
    All,
    /// Only days inside this period (a replay that reports one month).
    Only(Period),
    /// Days no older than this many days before the engine clock's day (the daemon).
    LastDays(u32),
    /// No appraisal accumulators at all.
    Off,
}

/// The items of one agent on one local day.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DayKpi {
    pub ring_episodes: u64,
    pub answered_within_rings: u64,
    pub calls_answered: u64,
    pub talk_ms: Millis,
    pub acw_ms: Millis,
    pub pause_ms: Millis,
    pub break_ms: Millis,
    /// Violations not waived, by rule (`Rule::index`).
    #[serde(deserialize_with = "per_rule")]
    pub violations: [u64; 5],
    pub points: u64,
    /// The money of those points, each at the rate in force when it was raised.
    #[serde(default)]
    pub deduction: f64,
    #[serde(default)]
    pub outbound_attempts: u64,
    #[serde(default)]
    pub outbound_connected: u64,
    #[serde(default)]
    pub sales: u64,
}

/// Per-rule counts; a checkpoint from before the attendance and discipline rules has three.
fn per_rule<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u64; 5], D::Error> {
    let v: Vec<u64> = serde::Deserialize::deserialize(d)?;
    let mut out = [0; 5];
    for (o, x) in out.iter_mut().zip(v) {
        *o = x;
    }
    Ok(out)
}

impl DayKpi {
    fn add(&mut self, o: &DayKpi) {
        self.ring_episodes += o.ring_episodes;
        self.answered_within_rings += o.answered_within_rings;
        self.calls_answered += o.calls_answered;
        self.talk_ms += o.talk_ms;
        self.acw_ms += o.acw_ms;
        self.pause_ms += o.pause_ms;
        self.break_ms += o.break_ms;
        for i in 0..5 {
            self.violations[i] += o.violations[i];
        }
        self.points += o.points;
        self.deduction += o.deduction;
        self.outbound_attempts += o.outbound_attempts;
        self.outbound_connected += o.outbound_connected;
        self.sales += o.sales;
    }
}

/// Shift items of one agent in a period.
#[derive(Clone, Debug, Default, PartialEq)]
struct ShiftSums {
    shifts: u64,
    scheduled_ms: Millis,
    logged_in_ms: Millis,
}

/// The accumulators of one day, by agent.
pub type DayMap = HashMap<Id, DayKpi>;

/// Day → agent → items. Each day's map is shared with snapshots until it changes (the
/// first change after a snapshot copies that day, in practice only today).
#[derive(Debug)]
pub struct Kpis {
    retention: KpiRetention,
    days: BTreeMap<Date, Arc<DayMap>>,
}

impl Kpis {
    pub fn new(retention: KpiRetention) -> Kpis {
        Kpis {
            retention,
            days: BTreeMap::new(),
        }
    }

    pub fn retention(&self) -> KpiRetention {
        self.retention
    }

    fn keeps(&self, date: Date) -> bool {
        match self.retention {
            KpiRetention::All | KpiRetention::LastDays(_) => true,
            KpiRetention::Only(p) => p.contains(date),
            KpiRetention::Off => false,
        }
    }

    /// The accumulator of `agent` on `date`, created if kept; `None` if not kept.
    pub fn entry(&mut self, date: Date, agent: &Id) -> Option<&mut DayKpi> {
        if !self.keeps(date) {
            return None;
        }
        let day = Arc::make_mut(self.days.entry(date).or_default());
        if !day.contains_key(agent) {
            day.insert(agent.clone(), DayKpi::default());
        }
        day.get_mut(agent)
    }

    /// Every kept day with its accumulators, oldest first, sharing the maps (for
    /// checkpoints and the appraisal thread).
    pub fn days(&self) -> Vec<(Date, Arc<DayMap>)> {
        self.days.iter().map(|(d, m)| (*d, m.clone())).collect()
    }

    /// Accumulators restored from [`Kpis::days`].
    pub fn from_days(retention: KpiRetention, days: Vec<(Date, Arc<DayMap>)>) -> Kpis {
        Kpis {
            retention,
            days: days.into_iter().collect(),
        }
    }

    /// Drops days older than the retention allows, given the engine clock's `today`.
    pub fn prune(&mut self, today: Date) {
        if let KpiRetention::LastDays(n) = self.retention {
            let Ok(oldest) = today.checked_sub(jiff::Span::new().days(i64::from(n))) else {
                return;
            };
            while let Some((&d, _)) = self.days.first_key_value() {
                if d >= oldest {
                    break;
                }
                self.days.remove(&d);
            }
        }
    }
}

/// What an appraisal is computed from: the engine's state, or a snapshot of it.
pub struct AppraisalInput<'a, A, C, S> {
    /// Kept days, oldest first.
    pub days: &'a [(Date, Arc<DayMap>)],
    pub agents: A,
    pub calls: C,
    pub shifts: S,
    pub cal: &'a Calendar,
}

/// The appraisal rows of `period`, counting open items up to `end`, leaving out `waived`
/// violations (waivers the engine did not see: stores from before waivers were journaled);
/// sorted by agent. `team_of` names each agent's team.
pub fn rows<'a, A, C, S>(
    input: AppraisalInput<'a, A, C, S>,
    period: Period,
    end: Timestamp,
    waived: &[Violation],
    team_of: impl Fn(&Id) -> Id,
) -> Vec<AppraisalRow>
where
    A: Iterator<Item = &'a Agent> + Clone,
    C: Iterator<Item = &'a Call>,
    S: Iterator<Item = &'a Shift>,
{
    let (first, last) = period.date_range();
    let mut sums: HashMap<Id, DayKpi> = HashMap::default();
    for (date, agents) in input.days {
        if *date < first || *date >= last {
            continue;
        }
        for (agent, k) in agents.iter() {
            match sums.get_mut(agent) {
                Some(s) => s.add(k),
                None => {
                    sums.insert(agent.clone(), k.clone());
                }
            }
        }
    }
    // The instants whose local date is in the period: one comparison per open item
    // instead of a time-zone conversion (this runs over every agent once a minute).
    let (from, to) = period.bounds(input.cal);
    let in_period = |t: Timestamp| from <= t && t < to;
    let agents = input.agents.clone();
    // Open items are counted up to `end`, attributed to the period of their start.
    for a in input.agents {
        if let Some(p) = &a.pause {
            if in_period(p.start) && end > p.start {
                let k = sums.entry(a.id.clone()).or_default();
                k.pause_ms += end.since(p.start);
                if p.allowance {
                    k.break_ms += end.since(p.start);
                }
            }
        }
        if let Some(w) = &a.acw {
            if in_period(w.start) && end > w.start {
                sums.entry(a.id.clone()).or_default().acw_ms += end.since(w.start);
            }
        }
    }
    for c in input.calls {
        for leg in &c.legs {
            if in_period(leg.open) && end > leg.open {
                sums.entry(leg.agent.clone()).or_default().talk_ms += end.since(leg.open);
            }
        }
    }
    for v in waived {
        if in_period(v.at) {
            if let Some(k) = sums.get_mut(&v.agent) {
                let i = v.rule.index();
                k.violations[i] = k.violations[i].saturating_sub(1);
                k.points = k.points.saturating_sub(u64::from(v.points));
                k.deduction -= v.deduction;
            }
        }
    }
    // Shifts: those that start in the period, before the end; logged-in time up to the end.
    let mut shift_sums: HashMap<Id, ShiftSums> = HashMap::default();
    let mut login: HashMap<&Id, Timestamp> = HashMap::default();
    for s in input.shifts {
        if !in_period(s.start) || s.start >= end {
            continue;
        }
        if login.is_empty() {
            login = agents
                .clone()
                .filter(|a| a.logged_in)
                .map(|a| (&a.id, a.login_since))
                .collect();
        }
        let until = s.end.min(end);
        let open = login
            .get(&s.agent)
            .map(|&since| overlap(since, end, s.start, until))
            .unwrap_or(0);
        let x = shift_sums.entry(s.agent.clone()).or_default();
        x.shifts += 1;
        x.scheduled_ms += until.since(s.start);
        x.logged_in_ms += (s.logged_in_ms + open).min(until.since(s.start));
        sums.entry(s.agent.clone()).or_default();
    }
    let label = period.to_string();
    let mut sums: Vec<(Id, DayKpi)> = sums.into_iter().collect();
    sums.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    sums.iter()
        .map(|(agent, k)| {
            let sh = shift_sums.get(agent).cloned().unwrap_or_default();
            row(agent, &team_of(agent), &label, k, &sh)
        })
        .collect()
}

/// The length of `[a0, a1) ∩ [b0, b1)`.
pub fn overlap(a0: Timestamp, a1: Timestamp, b0: Timestamp, b1: Timestamp) -> Millis {
    a1.min(b1).since(a0.max(b0)).max(0)
}

/// Turns summed items into a CSV/JSON row.
fn row(agent: &Id, team: &str, period: &str, k: &DayKpi, sh: &ShiftSums) -> AppraisalRow {
    let secs = |ms: Millis| ms as f64 / 1000.0;
    let talk = secs(k.talk_ms);
    let acw = secs(k.acw_ms);
    AppraisalRow {
        agent: agent.clone(),
        team: Id::from(team),
        period: Id::from(period),
        ring_episodes: k.ring_episodes,
        answered_within_rings: k.answered_within_rings,
        ring_compliance: (k.ring_episodes > 0)
            .then(|| k.answered_within_rings as f64 / k.ring_episodes as f64),
        calls_answered: k.calls_answered,
        talk_seconds: talk,
        acw_seconds: acw,
        aht_seconds: (k.calls_answered > 0).then(|| (talk + acw) / k.calls_answered as f64),
        pause_seconds: secs(k.pause_ms),
        break_seconds: secs(k.break_ms),
        violations_ring_answer: k.violations[0],
        violations_break_overrun: k.violations[1],
        violations_unauthorized_pause: k.violations[2],
        violations_attendance: k.violations[3],
        violations_discipline: k.violations[4],
        shifts: sh.shifts,
        scheduled_seconds: secs(sh.scheduled_ms),
        logged_in_scheduled_seconds: secs(sh.logged_in_ms),
        adherence: (sh.scheduled_ms > 0).then(|| sh.logged_in_ms as f64 / sh.scheduled_ms as f64),
        outbound_attempts: k.outbound_attempts,
        outbound_connected: k.outbound_connected,
        outbound_connect_rate: (k.outbound_attempts > 0)
            .then(|| k.outbound_connected as f64 / k.outbound_attempts as f64),
        sales: k.sales,
        conversion: (k.calls_answered > 0).then(|| k.sales as f64 / k.calls_answered as f64),
        points: k.points,
        // Rounded to the cent: a sum of products of decimal fractions.
        deduction: (k.deduction * 100.0).round() / 100.0,
    }
}
