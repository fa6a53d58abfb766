//! The record's events: floor-discipline demerits, waivers and their reversals, closed
//! months and rulebook versions (the rules page: rule `discipline`, "Demerit points and
//! money", "Rulebook versions").
//!
//! The engine keeps what it needs to refuse a bad record event before anything changes (an
//! unknown item, points outside an item's range, a waiver of an unknown or closed-month
//! violation, an unwaive of a violation that is not waived, closing a month twice, a
//! rulebook that does not read or changes the time zone) and to move a waived violation's
//! points out of the appraisal and back.

use std::sync::Arc;

use super::appraisal::KpiRetention;
use super::state::{LedgerEntry, PAIR_KEEP};

/// A violation can be waived (or un-waived) for this many local days after the day it was
/// raised; after that it is `unknown_violation`, live and in every replay alike.
pub const WAIVABLE_DAYS: i64 = 62;
use super::types::{Effect, Kind, Violation};
use super::{Engine, Finding, Holder};
use crate::config::{ItemPoints, RulesConfig};
use crate::event::{Body, Id};
use crate::time::Timestamp;

/// A rulebook the engine has judged by.
#[derive(Clone, Debug)]
pub struct RulebookVersion {
    /// The engine clock when it took effect (`None`: from the start).
    pub from: Option<Timestamp>,
    pub rules: Arc<RulesConfig>,
    pub digest: Id,
    /// Whether a `rulebook` event put it in force (else it is the rules the engine was made
    /// with, which a journal does not show).
    pub journaled: bool,
}

/// Why the engine refused a record event. [`Refusal::reason_label`] is the label of
/// `floorwatch_events_rejected_total{reason}`; `Display` is the message sent back.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("unknown discipline item {0:?} (not in the catalog)")]
    UnknownItem(Id),
    #[error("points for discipline item {item:?}: {want}")]
    BadPoints { item: Id, want: String },
    #[error("violation {0} is unknown (never raised, or older than the engine keeps)")]
    UnknownViolation(u64),
    #[error("violation {violation} lies in {period}, a closed month: its statement is frozen")]
    ClosedPeriod { violation: u64, period: Id },
    #[error("violation {0} is not waived: there is no waiver to reverse")]
    NotWaived(u64),
    #[error("month {0} is closed already")]
    AlreadyClosed(Id),
    #[error("rulebook refused: {0}")]
    BadRulebook(String),
}

impl Refusal {
    pub fn reason_label(&self) -> &'static str {
        match self {
            Refusal::UnknownItem(_) => "unknown_item",
            Refusal::BadPoints { .. } => "bad_points",
            Refusal::UnknownViolation(_) => "unknown_violation",
            Refusal::ClosedPeriod { .. } => "period_closed",
            Refusal::NotWaived(_) => "not_waived",
            Refusal::AlreadyClosed(_) => "already_closed",
            Refusal::BadRulebook(_) => "bad_rulebook",
        }
    }

    /// Every label, so counters can be pre-registered.
    pub const LABELS: [&'static str; 7] = [
        "unknown_item",
        "bad_points",
        "unknown_violation",
        "period_closed",
        "not_waived",
        "already_closed",
        "bad_rulebook",
    ];
}

impl Engine {
    /// Refuses a record event that the rules do not allow, before it changes anything.
    pub(super) fn check_record(&self, body: &Body) -> Result<(), Refusal> {
        match body {
            Body::DemeritRecorded { item, points, .. } => {
                self.demerit_points(item, *points).map(|_| ())
            }
            Body::ViolationWaiver {
                violation, waived, ..
            } => {
                let Some(e) = self.ledger_entry(*violation) else {
                    return Err(Refusal::UnknownViolation(*violation));
                };
                let period = self.month_of(e.at);
                if self.closed.contains_key(&period) {
                    return Err(Refusal::ClosedPeriod {
                        violation: *violation,
                        period,
                    });
                }
                if !*waived && !e.waived {
                    return Err(Refusal::NotWaived(*violation));
                }
                Ok(())
            }
            Body::PeriodClosed { period, .. } if self.closed.contains_key(period) => {
                Err(Refusal::AlreadyClosed(period.clone()))
            }
            _ => Ok(()),
        }
    }

    /// The points a demerit of `item` carries under the catalog in force.
    fn demerit_points(&self, item: &Id, points: Option<u32>) -> Result<u32, Refusal> {
        let Some(entry) = self.rules.discipline.get(item.as_str()) else {
            return Err(Refusal::UnknownItem(item.clone()));
        };
        match (entry.points, points) {
            (ItemPoints::Fixed(n), None) => Ok(n),
            (ItemPoints::Fixed(n), Some(p)) if p == n => Ok(n),
            (ItemPoints::Fixed(n), Some(_)) => Err(Refusal::BadPoints {
                item: item.clone(),
                want: format!("a fixed item: leave points out, or give {n}"),
            }),
            (ItemPoints::Range(lo, hi), Some(p)) if (lo..=hi).contains(&p) => Ok(p),
            (ItemPoints::Range(lo, hi), _) => Err(Refusal::BadPoints {
                item: item.clone(),
                want: format!("a ranged item: give points from {lo} to {hi}"),
            }),
        }
    }

    /// The local month (`YYYY-MM`) of `t`.
    fn month_of(&self, t: Timestamp) -> Id {
        let d = self.cal.day_of(t).date;
        Id::from(format!("{:04}-{:02}", d.year(), d.month()))
    }

    fn ledger_entry(&self, id: u64) -> Option<&LedgerEntry> {
        let i = id.checked_sub(self.ledger_base)?;
        self.ledger.get(usize::try_from(i).ok()?)
    }

    /// Keeps what a waiver of `v` needs.
    pub(super) fn ledger_push(&mut self, v: &Violation) {
        if self.ledger.is_empty() || v.id != self.ledger_base + self.ledger.len() as u64 {
            // Ids are consecutive; anything else (a restored engine without a ledger)
            // starts the ledger afresh.
            self.ledger.clear();
            self.ledger_base = v.id;
        }
        self.ledger.push_back(LedgerEntry {
            at: v.at,
            agent: v.agent.clone(),
            rule: v.rule,
            points: v.points,
            deduction: v.deduction,
            waived: false,
        });
    }

    /// Gives an engine restored without a ledger (a checkpoint of store format 1) what it
    /// needs to waive the violations raised before it: `older` are the stored violations
    /// (any order); those just below the ledger's first id, consecutively, and within the
    /// waivable days, join it, not waived (their waivers, if any, are still to be journaled).
    /// Returns how many joined.
    pub fn seed_ledger(&mut self, mut older: Vec<Violation>) -> usize {
        let Some(now) = self.clock else {
            return 0;
        };
        let today = self.cal.day_of(now).date;
        let Some(cut) = today
            .checked_sub(jiff::Span::new().days(WAIVABLE_DAYS))
            .ok()
            .map(|d| self.cal.start_of(d))
        else {
            return 0;
        };
        if self.ledger.is_empty() {
            self.ledger_base = self.next_violation;
        }
        older.sort_unstable_by_key(|v| std::cmp::Reverse(v.id));
        let mut n = 0;
        for v in older {
            if v.id >= self.ledger_base {
                continue;
            }
            if v.id + 1 != self.ledger_base || v.at < cut {
                break;
            }
            self.ledger.push_front(LedgerEntry {
                at: v.at,
                agent: v.agent.clone(),
                rule: v.rule,
                points: v.points,
                deduction: f64::from(v.points) * self.rules.money_per_point,
                waived: false,
            });
            self.ledger_base = v.id;
            n += 1;
        }
        n
    }

    /// `demerit.recorded` (checked already): a violation of rule `discipline`, raised and
    /// closed at once.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn record_demerit(
        &mut self,
        agent: &Id,
        item: &Id,
        by: &Id,
        points: Option<u32>,
        note: &Option<Id>,
        t: Timestamp,
        out: &mut Vec<super::types::Effect>,
    ) {
        let Ok(points) = self.demerit_points(item, points) else {
            return;
        };
        let name = self
            .rules
            .discipline
            .get(item.as_str())
            .map(|i| i.name.clone())
            .unwrap_or_default();
        let mut f = Finding::new(
            Kind::Discipline(item.clone()),
            t,
            self.current.clone(),
            0,
            format!("floor discipline: {name} ({points} points), recorded by {by}"),
        );
        f.points = Some(points);
        f.recorded_by = Some(by.clone());
        f.note = note.clone();
        let v = self.raise(agent, f, t, t, Holder::Other, out);
        self.clear(&[v], t, out);
    }

    /// `violation.waived` / `violation.unwaived` (checked already): the latest decides.
    pub(super) fn waiver(
        &mut self,
        id: u64,
        waived: bool,
        by: &Id,
        why: &Id,
        t: Timestamp,
        out: &mut Vec<Effect>,
    ) {
        let Some(i) = id
            .checked_sub(self.ledger_base)
            .and_then(|i| usize::try_from(i).ok())
        else {
            return;
        };
        let Some(e) = self.ledger.get_mut(i) else {
            return;
        };
        let changed = e.waived != waived;
        e.waived = waived;
        let e = e.clone();
        if changed {
            let date = self.cal.day(e.at).date;
            if let Some(k) = self.kpis.entry(date, &e.agent) {
                let r = e.rule.index();
                if waived {
                    k.violations[r] = k.violations[r].saturating_sub(1);
                    k.points = k.points.saturating_sub(u64::from(e.points));
                    k.deduction -= e.deduction;
                } else {
                    k.violations[r] += 1;
                    k.points += u64::from(e.points);
                    k.deduction += e.deduction;
                }
            }
        }
        out.push(Effect::Waiver {
            id,
            waived,
            at: t,
            by: by.clone(),
            why: why.clone(),
            event: self.current.clone(),
        });
    }

    /// A `rulebook` event: from the engine clock on, judging uses it. The same rulebook
    /// again changes nothing.
    pub(super) fn apply_rulebook(
        &mut self,
        json: &str,
        digest: &Id,
        out: &mut Vec<Effect>,
    ) -> Result<(), Refusal> {
        if let Some(v) = self.rulebooks.last_mut().filter(|v| v.digest == *digest) {
            v.journaled = true;
            return Ok(());
        }
        let rules = RulesConfig::from_rulebook_json(json, self.rules.limits)
            .map_err(|e| Refusal::BadRulebook(e.to_string()))?;
        let own = rules.rulebook_digest();
        if own != digest.as_str() {
            return Err(Refusal::BadRulebook(format!(
                "its digest {digest} is not the SHA-256 of its canonical form ({own})"
            )));
        }
        if rules.timezone_name != self.rules.timezone_name {
            return Err(Refusal::BadRulebook(format!(
                "appraisal.timezone cannot change within one store ({} in force, {} given): days and months would move",
                self.rules.timezone_name, rules.timezone_name
            )));
        }
        let rules = Arc::new(rules);
        self.rulebooks.push(RulebookVersion {
            from: self.clock,
            rules: rules.clone(),
            digest: digest.clone(),
            journaled: true,
        });
        self.rules = rules;
        self.rearm_login_deadlines();
        out.push(Effect::Rulebook {
            version: self.rb_now(),
            at: self.clock,
            digest: digest.clone(),
        });
        Ok(())
    }

    /// Every rulebook judged by, oldest first.
    pub fn rulebooks(&self) -> &[RulebookVersion] {
        &self.rulebooks
    }

    /// The digest of the rulebook in force.
    pub fn rulebook_digest(&self) -> &str {
        self.rulebooks
            .last()
            .map(|v| v.digest.as_str())
            .unwrap_or("")
    }

    /// Whether the rulebook in force came from a `rulebook` event (a journal shows it).
    pub fn rulebook_journaled(&self) -> bool {
        self.rulebooks.last().is_some_and(|v| v.journaled)
    }

    /// Closed months with their digests.
    pub fn closed_periods(&self) -> impl Iterator<Item = (&Id, &Id)> {
        self.closed.iter()
    }

    /// Whether violation `id` is waived (as far as the engine still keeps it).
    pub fn is_waived(&self, id: u64) -> Option<bool> {
        self.ledger_entry(id).map(|e| e.waived)
    }

    /// At a new local day: forgets what no report or waiver can need any more. The cut-offs
    /// are whole days, so the same things are forgotten whenever in the day this runs.
    pub(super) fn prune_record(&mut self, t: Timestamp, today: jiff::civil::Date) {
        let cal = &self.cal;
        let day_start = |days: i64| {
            today
                .checked_sub(jiff::Span::new().days(days))
                .ok()
                .map(|d| cal.start_of(d))
        };
        // What may be waived: the same days in every mode, so that a waiver is refused alike
        // live and in any replay.
        let ledger_cut = day_start(WAIVABLE_DAYS);
        // Shifts: the daemon keeps them as long as its appraisal days; a report keeps the
        // shifts of its period; a replay of a file keeps them all.
        let shift_cut = match self.kpis.retention() {
            KpiRetention::LastDays(n) => day_start(i64::from(n)).map(|c| (c, None)),
            KpiRetention::Only(p) => day_start(WAIVABLE_DAYS).map(|c| (c, Some(p))),
            KpiRetention::Off => day_start(WAIVABLE_DAYS).map(|c| (c, None)),
            KpiRetention::All => None,
        };
        let pair_cut = day_start(PAIR_KEEP / 86_400_000);
        if let Some(cut) = ledger_cut {
            while self.ledger.front().is_some_and(|e| e.at < cut) {
                self.ledger.pop_front();
                self.ledger_base += 1;
            }
        }
        self.prune_shifts(t, shift_cut);
        if let Some(cut) = pair_cut {
            let old: Vec<(Id, Id)> = self
                .pairs
                .snapshot()
                .into_iter()
                .filter(|(_, p)| p.touched < cut)
                .map(|(k, _)| k)
                .collect();
            for k in old {
                self.pairs.remove(&k);
            }
        }
    }
}
