//! Engine checkpoints: the engine's whole state as plain serializable data, so the daemon
//! can restart from a checkpoint plus the journal tail instead of replaying months.
//!
//! A restored engine behaves exactly like the one that was checkpointed: same future
//! effects, same violation ids. The rulebooks it judged by are part of it (from store
//! format 2); a format-1 checkpoint, from before rulebooks were journaled, takes the config's
//! rules as its only rulebook.
//!
//! A checkpoint carries the store format it was written at ([`CHECKPOINT_VERSION`], see
//! `crate::format`). One of an older format restores: a field added with a later format is
//! `#[serde(default)]`, which is right because the older binary could not have held anything
//! there. One of a newer format is refused.
//!
//! Owns: the checkpoint's data shape and its version. Must not: write it anywhere (the store
//! does).

use std::sync::Arc;

use jiff::civil::Date;
use serde::{Deserialize, Serialize, Serializer};

use super::appraisal::{self, AppraisalInput, DayKpi, DayMap, Kpis};
use super::record::RulebookVersion;
use super::state::{Agent, Call, LedgerEntry, Pair, Queue, Shift, Timer, TimerKey};
use super::types::{AppraisalRow, EventRef, OutboundCounts, Violation};
use super::{Engine, KpiRetention};
use crate::config::{RulebookError, RulesConfig};
use crate::event::Id;
use crate::time::{Calendar, Period, Timestamp};

/// Format version of [`Checkpoint`]: the store format ([`crate::format::STORE_FORMAT`]).
/// Format 1 (no rulebooks, shifts, ledger, pairs or closed months) is still read.
pub const CHECKPOINT_VERSION: u32 = crate::format::STORE_FORMAT;

/// A rulebook as a checkpoint keeps it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SavedRulebook {
    from: Option<Timestamp>,
    rulebook: String,
    digest: Id,
    #[serde(default)]
    journaled: bool,
}

/// The engine's state. Taking one is cheap: agents, calls and days of appraisal
/// accumulators are shared with the engine until it changes them (see `cow.rs`), so the
/// engine task only takes references; sorting and encoding happen where the checkpoint is
/// written. It serializes with every collection sorted, so the same state gives the same
/// bytes.
#[derive(Clone, Debug, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    /// The engine clock at the checkpoint.
    pub clock: Option<Timestamp>,
    seqs: Vec<(Id, u64)>,
    agents: Vec<Arc<Agent>>,
    calls: Vec<(Id, Arc<Call>)>,
    queues: Vec<(Id, Queue)>,
    timers: Vec<(TimerKey, Timer)>,
    timer_order: u64,
    episode_ids: u64,
    next_violation: u64,
    open: Vec<Violation>,
    #[serde(deserialize_with = "days_from_lists")]
    kpis: Vec<(Date, Arc<DayMap>)>,
    current: EventRef,
    #[serde(default)]
    rulebooks: Vec<SavedRulebook>,
    #[serde(default)]
    shifts: Vec<Arc<Shift>>,
    #[serde(default)]
    relief_waits: Vec<((Id, Id), Timestamp)>,
    #[serde(default)]
    ledger: Vec<LedgerEntry>,
    #[serde(default)]
    ledger_base: u64,
    #[serde(default)]
    closed: Vec<(Id, Id)>,
    #[serde(default)]
    pairs: Vec<((Id, Id), Arc<Pair>)>,
    #[serde(default)]
    outbound_today: Option<(Date, Vec<(Id, OutboundCounts)>)>,
    /// The rulebook in force, for [`Checkpoint::appraisal`] (not serialized: `rulebooks`
    /// holds it).
    #[serde(skip)]
    in_force: Option<Arc<RulesConfig>>,
}

/// The serialized form: the fields of [`Checkpoint`] in order, collections sorted.
#[derive(Serialize)]
struct Sorted<'a> {
    version: u32,
    clock: Option<Timestamp>,
    seqs: Vec<&'a (Id, u64)>,
    agents: Vec<&'a Agent>,
    calls: Vec<(&'a Id, &'a Call)>,
    queues: &'a [(Id, Queue)],
    timers: &'a [(TimerKey, Timer)],
    timer_order: u64,
    episode_ids: u64,
    next_violation: u64,
    open: &'a [Violation],
    kpis: Vec<(Date, Vec<(&'a Id, &'a DayKpi)>)>,
    current: &'a EventRef,
    rulebooks: &'a [SavedRulebook],
    shifts: Vec<&'a Shift>,
    relief_waits: &'a [((Id, Id), Timestamp)],
    ledger: &'a [LedgerEntry],
    ledger_base: u64,
    closed: &'a [(Id, Id)],
    pairs: Vec<(&'a (Id, Id), &'a Pair)>,
    outbound_today: &'a Option<(Date, Vec<(Id, OutboundCounts)>)>,
}

impl Serialize for Checkpoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seqs: Vec<&(Id, u64)> = self.seqs.iter().collect();
        seqs.sort_unstable();
        let mut agents: Vec<&Agent> = self.agents.iter().map(|a| &**a).collect();
        agents.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let mut calls: Vec<(&Id, &Call)> = self.calls.iter().map(|(k, c)| (k, &**c)).collect();
        calls.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let kpis = self
            .kpis
            .iter()
            .map(|(d, m)| {
                let mut v: Vec<(&Id, &DayKpi)> = m.iter().collect();
                v.sort_unstable_by(|a, b| a.0.cmp(b.0));
                (*d, v)
            })
            .collect();
        let mut shifts: Vec<&Shift> = self.shifts.iter().map(|x| &**x).collect();
        shifts.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let mut pairs: Vec<(&(Id, Id), &Pair)> =
            self.pairs.iter().map(|(k, p)| (k, &**p)).collect();
        pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
        Sorted {
            version: self.version,
            clock: self.clock,
            seqs,
            agents,
            calls,
            queues: &self.queues,
            timers: &self.timers,
            timer_order: self.timer_order,
            episode_ids: self.episode_ids,
            next_violation: self.next_violation,
            open: &self.open,
            kpis,
            current: &self.current,
            rulebooks: &self.rulebooks,
            shifts,
            relief_waits: &self.relief_waits,
            ledger: &self.ledger,
            ledger_base: self.ledger_base,
            closed: &self.closed,
            pairs,
            outbound_today: &self.outbound_today,
        }
        .serialize(s)
    }
}

fn days_from_lists<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<(Date, Arc<DayMap>)>, D::Error> {
    let days: Vec<(Date, Vec<(Id, DayKpi)>)> = Deserialize::deserialize(d)?;
    Ok(days
        .into_iter()
        .map(|(d, v)| (d, Arc::new(v.into_iter().collect())))
        .collect())
}

impl Checkpoint {
    /// The appraisal of `period` in this state, as [`Engine::appraisal`] gives it (the
    /// daemon computes the month-to-date gauges from a checkpoint, off the engine task).
    /// `rules` (for teams) is used only by a checkpoint that was read back rather than taken.
    pub fn appraisal(
        &self,
        rules: &RulesConfig,
        period: Period,
        end: Timestamp,
        waived: &[Violation],
    ) -> Vec<AppraisalRow> {
        let rules = self.in_force.as_deref().unwrap_or(rules);
        let cal = Calendar::new(rules.timezone.clone());
        let seen: foldhash::HashMap<&str, &Id> = self
            .agents
            .iter()
            .filter_map(|a| a.team_seen.as_ref().map(|t| (a.id.as_str(), t)))
            .collect();
        let input = AppraisalInput {
            days: &self.kpis,
            agents: self.agents.iter().map(|a| &**a),
            calls: self.calls.iter().map(|(_, c)| &**c),
            shifts: self.shifts.iter().map(|s| &**s),
            cal: &cal,
        };
        appraisal::rows(input, period, end, waived, |a| {
            super::team_of(rules, a, seen.get(a.as_str()).copied())
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(
        "checkpoint is at store format {found}, newer than this binary's format {CHECKPOINT_VERSION}: it was written by a newer floorwatch"
    )]
    Version { found: u32 },
    #[error("rulebook {index} of the checkpoint: {error}")]
    Rulebook { index: usize, error: RulebookError },
}

impl Engine {
    /// The engine's whole state, for [`Engine::restore`].
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            version: CHECKPOINT_VERSION,
            clock: self.clock,
            seqs: self.seqs.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            agents: self.agents.shared_values(),
            calls: self.calls.snapshot(),
            queues: self
                .queues
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            timers: self.timers.iter().map(|(k, v)| (*k, v.clone())).collect(),
            timer_order: self.timer_order,
            episode_ids: self.episode_ids,
            next_violation: self.next_violation,
            open: self.open.values().cloned().collect(),
            kpis: self.kpis.days(),
            current: self.current.clone(),
            rulebooks: self
                .rulebooks
                .iter()
                .map(|v| SavedRulebook {
                    from: v.from,
                    rulebook: v.rules.rulebook_json(),
                    digest: v.digest.clone(),
                    journaled: v.journaled,
                })
                .collect(),
            shifts: self.shifts.shared_values(),
            relief_waits: self
                .relief_waits
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            ledger: self.ledger.iter().cloned().collect(),
            ledger_base: self.ledger_base,
            closed: self
                .closed
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            pairs: self.pairs.snapshot(),
            outbound_today: self
                .outbound_today
                .as_ref()
                .map(|(d, m)| (*d, m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())),
            in_force: Some(self.rules.clone()),
        }
    }

    /// An engine in the state of `cp`, judging by the rulebooks it holds (a format-1
    /// checkpoint: by `rules`). `rules` also gives the engine limits. A checkpoint of a newer
    /// format is refused.
    pub fn restore(
        rules: RulesConfig,
        retention: KpiRetention,
        cp: Checkpoint,
    ) -> Result<Engine, CheckpointError> {
        if cp.version > CHECKPOINT_VERSION {
            return Err(CheckpointError::Version { found: cp.version });
        }
        let limits = rules.limits;
        let mut e = Engine::with_retention(rules, retention);
        if !cp.rulebooks.is_empty() {
            let mut books = Vec::with_capacity(cp.rulebooks.len());
            for (index, b) in cp.rulebooks.into_iter().enumerate() {
                let r = RulesConfig::from_rulebook_json(&b.rulebook, limits)
                    .map_err(|error| CheckpointError::Rulebook { index, error })?;
                books.push(RulebookVersion {
                    from: b.from,
                    rules: Arc::new(r),
                    digest: b.digest,
                    journaled: b.journaled,
                });
            }
            e.rules = books[books.len() - 1].rules.clone();
            e.rulebooks = books;
        }
        e.cal = Calendar::new(e.rules.timezone.clone());
        e.clock = cp.clock;
        e.seqs = cp.seqs.into_iter().collect();
        e.agents = cp.agents.into_iter().map(|a| (a.id.clone(), a)).collect();
        e.calls = cp.calls.into_iter().collect();
        e.queues = cp.queues.into_iter().collect();
        e.timers = cp.timers.into_iter().collect();
        e.timer_order = cp.timer_order;
        e.episode_ids = cp.episode_ids;
        e.next_violation = cp.next_violation;
        e.open = cp.open.into_iter().map(|v| (v.id, v)).collect();
        let mut days = cp.kpis;
        if cp.version < 2 {
            // Format 1 kept points, not money: its money is the points at the one rate there
            // was, the config's.
            let rate = e.rules.money_per_point;
            for (_, day) in &mut days {
                for k in Arc::make_mut(day).values_mut() {
                    k.deduction = k.points as f64 * rate;
                }
            }
            for v in e.open.values_mut() {
                v.deduction = f64::from(v.points) * rate;
            }
        }
        e.kpis = Kpis::from_days(retention, days);
        e.current = cp.current;
        for x in &cp.shifts {
            if let Some(p) = &x.position {
                e.positions
                    .entry(p.clone())
                    .or_default()
                    .insert((x.start, x.id.clone()));
            }
            if x.end_timer.is_some() {
                e.live_shifts.insert((x.start, x.id.clone()));
            }
        }
        e.shifts = cp.shifts.into_iter().map(|x| (x.id.clone(), x)).collect();
        e.relief_waits = cp.relief_waits.into_iter().collect();
        e.ledger = cp.ledger.into_iter().collect();
        e.ledger_base = cp.ledger_base.max(1);
        e.closed = cp.closed.into_iter().collect();
        e.pairs = cp.pairs.into_iter().collect();
        e.outbound_today = cp.outbound_today.map(|(d, v)| (d, v.into_iter().collect()));
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_of_a_newer_format_is_refused_naming_both() {
        let engine = Engine::new(RulesConfig::default());
        let mut json = serde_json::to_value(engine.checkpoint()).expect("json");
        json["version"] = serde_json::Value::from(CHECKPOINT_VERSION + 1);
        let cp: Checkpoint = serde_json::from_value(json).expect("decodes");
        let err = match Engine::restore(RulesConfig::default(), KpiRetention::LastDays(62), cp) {
            Ok(_) => panic!("restored a newer checkpoint"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains(&format!("store format {}", CHECKPOINT_VERSION + 1)),
            "{err}"
        );
        assert!(
            err.contains(&format!("this binary's format {CHECKPOINT_VERSION}")),
            "{err}"
        );
    }
}
