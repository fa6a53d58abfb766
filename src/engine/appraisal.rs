//! Appraisal accumulators: per agent and local day (of each item's start), what the rules
//! page's appraisal columns need. Week and month rows are sums of day rows, which is exact
//! because every item is attributed to the one day that contains its start.

use std::collections::BTreeMap;

// A fast hash with per-process random seeds: ids come from outside, so keep it keyed.
use foldhash::HashMap;

use jiff::civil::Date;

use super::types::{AppraisalRow, Rule};
use crate::event::Id;
use crate::time::{Millis, Period};

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
    pub violations: [u64; 3],
    pub points: u64,
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
        for i in 0..3 {
            self.violations[i] += o.violations[i];
        }
        self.points += o.points;
    }
}

pub fn rule_index(r: Rule) -> usize {
    match r {
        Rule::RingAnswer => 0,
        Rule::BreakOverrun => 1,
        Rule::UnauthorizedPause => 2,
    }
}

/// Day → agent → items.
#[derive(Debug)]
pub struct Kpis {
    retention: KpiRetention,
    days: BTreeMap<Date, HashMap<Id, DayKpi>>,
}

impl Kpis {
    pub fn new(retention: KpiRetention) -> Kpis {
        Kpis {
            retention,
            days: BTreeMap::new(),
        }
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
        let day = self.days.entry(date).or_default();
        if !day.contains_key(agent) {
            day.insert(agent.clone(), DayKpi::default());
        }
        day.get_mut(agent)
    }

    /// Every kept day with its accumulators, oldest first (for checkpoints).
    pub fn days(&self) -> Vec<(Date, Vec<(Id, DayKpi)>)> {
        self.days
            .iter()
            .map(|(d, m)| {
                let mut v: Vec<(Id, DayKpi)> =
                    m.iter().map(|(a, k)| (a.clone(), k.clone())).collect();
                v.sort_by(|a, b| a.0.cmp(&b.0));
                (*d, v)
            })
            .collect()
    }

    /// Accumulators restored from [`Kpis::days`].
    pub fn from_days(retention: KpiRetention, days: Vec<(Date, Vec<(Id, DayKpi)>)>) -> Kpis {
        Kpis {
            retention,
            days: days
                .into_iter()
                .map(|(d, v)| (d, v.into_iter().collect()))
                .collect(),
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

    /// Sums the days of `period`, per agent.
    pub fn sum(&self, period: Period) -> BTreeMap<Id, DayKpi> {
        let (from, to) = period.date_range();
        let mut out: BTreeMap<Id, DayKpi> = BTreeMap::new();
        for (_, agents) in self.days.range(from..to) {
            for (agent, k) in agents {
                out.entry(agent.clone()).or_default().add(k);
            }
        }
        out
    }
}

/// Turns summed items into a CSV/JSON row.
pub fn row(
    agent: &Id,
    team: &str,
    period: Period,
    k: &DayKpi,
    money_per_point: f64,
) -> AppraisalRow {
    let secs = |ms: Millis| ms as f64 / 1000.0;
    let talk = secs(k.talk_ms);
    let acw = secs(k.acw_ms);
    AppraisalRow {
        agent: agent.to_string(),
        team: team.to_string(),
        period: period.to_string(),
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
        points: k.points,
        deduction: k.points as f64 * money_per_point,
    }
}
