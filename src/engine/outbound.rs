//! Outbound telemarketing (外呼): attempts, connects and dispositions per (call, agent) pair,
//! for the appraisal (`outbound_attempts`, `outbound_connected`, `sales`) and today's floor
//! counters per team (the rules page, "Agent appraisal KPIs" and "Floor KPIs").
//!
//! An attempt is a pair's first `call.dialing`, counted at that time; it is connected when
//! the agent answers a leg of the call after dialing it. A pair's latest disposition decides
//! whether it is a sale (its code's `sale` in the rulebook in force when it arrived; an
//! unknown code is kept and is no sale), counted at the disposition's time: a changed
//! disposition moves the sale.

use std::collections::BTreeMap;

use super::state::Pair;
use super::types::{Effect, OutboundChange, OutboundCounts};
use super::Engine;
use crate::event::Id;
use crate::time::Timestamp;

impl Engine {
    /// Today's counters of `team`, changed by `f`, when `at` lies on the engine clock's day.
    fn count_today(
        &mut self,
        team: &Id,
        at: Timestamp,
        f: impl FnOnce(&mut OutboundCounts),
    ) -> bool {
        let Some(now) = self.clock else {
            return false;
        };
        let today = self.cal.day_of(now).date;
        if self.cal.day_of(at).date != today {
            return false;
        }
        let day = match &mut self.outbound_today {
            Some((d, m)) if *d == today => m,
            slot => &mut slot.insert((today, BTreeMap::new())).1,
        };
        f(day.entry(team.clone()).or_default());
        true
    }

    fn pair_mut(&mut self, call: &Id, agent: &Id, t: Timestamp) -> &mut Pair {
        let p = self
            .pairs
            .get_or_insert_with(&(call.clone(), agent.clone()), Pair::default);
        p.touched = t;
        p
    }

    /// `call.dialing` of (call, agent) at `t`.
    pub(super) fn dialed(&mut self, call: &Id, agent: &Id, t: Timestamp, out: &mut Vec<Effect>) {
        let p = self.pair_mut(call, agent, t);
        if p.dialed.is_some() {
            return;
        }
        p.dialed = Some(t);
        let date = self.cal.day(t).date;
        if let Some(k) = self.kpis.entry(date, agent) {
            k.outbound_attempts += 1;
        }
        let team = self.team_of(agent);
        self.count_today(&team, t, |c| c.attempts += 1);
        out.push(Effect::Outbound {
            team,
            agent: agent.clone(),
            change: OutboundChange::Attempt,
        });
    }

    /// `call.answered` of (call, agent) at `t`: a dialed pair is connected.
    pub(super) fn answered_pair(
        &mut self,
        call: &Id,
        agent: &Id,
        t: Timestamp,
        out: &mut Vec<Effect>,
    ) {
        let key = (call.clone(), agent.clone());
        let Some(dialed) = self.pairs.get(&key).and_then(|p| p.dialed) else {
            return;
        };
        let p = self.pair_mut(call, agent, t);
        if p.connected {
            return;
        }
        p.connected = true;
        // Of the attempts: counted on the attempt's day.
        let date = self.cal.day(dialed).date;
        if let Some(k) = self.kpis.entry(date, agent) {
            k.outbound_connected += 1;
        }
        let team = self.team_of(agent);
        self.count_today(&team, dialed, |c| c.connected += 1);
        out.push(Effect::Outbound {
            team,
            agent: agent.clone(),
            change: OutboundChange::Connected,
        });
    }

    /// `call.disposition` of (call, agent) with `code` at `t`: the latest one counts.
    pub(super) fn disposition(
        &mut self,
        call: &Id,
        agent: &Id,
        code: &Id,
        t: Timestamp,
        out: &mut Vec<Effect>,
    ) {
        let sale = self
            .rules
            .dispositions
            .get(code.as_str())
            .is_some_and(|d| d.sale);
        let p = self.pair_mut(call, agent, t);
        let before = p.disposition.replace((t, code.clone(), sale));
        let team = self.team_of(agent);
        let date = self.cal.day(t).date;
        // Every disposition is an item of the agent's day, sale or not.
        self.kpis.entry(date, agent);
        if let Some((was_at, _, true)) = before {
            let was_date = self.cal.day(was_at).date;
            if let Some(k) = self.kpis.entry(was_date, agent) {
                k.sales = k.sales.saturating_sub(1);
            }
            let today = self.count_today(&team, was_at, |c| c.sales = c.sales.saturating_sub(1));
            out.push(Effect::Outbound {
                team: team.clone(),
                agent: agent.clone(),
                change: OutboundChange::Sale { delta: -1, today },
            });
        }
        if sale {
            if let Some(k) = self.kpis.entry(date, agent) {
                k.sales += 1;
            }
            let today = self.count_today(&team, t, |c| c.sales += 1);
            out.push(Effect::Outbound {
                team,
                agent: agent.clone(),
                change: OutboundChange::Sale { delta: 1, today },
            });
        }
    }

    /// Today's outbound counters per team (the engine clock's local day), sorted by team.
    pub fn outbound_today(&self) -> Vec<(Id, OutboundCounts)> {
        let Some(now) = self.clock else {
            return Vec::new();
        };
        let today = self.cal.day_of(now).date;
        match &self.outbound_today {
            Some((d, m)) if *d == today => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            _ => Vec::new(),
        }
    }

    /// The daily sales target of `team`, from the rulebook in force.
    pub fn sales_target(&self, team: &str) -> Option<u32> {
        self.rules.sales_target.get(team).copied()
    }
}
