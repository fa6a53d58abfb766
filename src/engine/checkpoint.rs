//! Engine checkpoints: the engine's whole state as plain serializable data, so the daemon
//! can restart from a checkpoint plus the journal tail instead of replaying months.
//!
//! A restored engine behaves exactly like the one that was checkpointed: same future
//! effects, same violation ids. The rules are not part of a checkpoint: they come from the
//! config at restore time (a changed config judges only what happens after the restart).

use serde::{Deserialize, Serialize};

use super::appraisal::{DayKpi, Kpis};
use super::state::{Agent, Call, Queue, Timer, TimerKey};
use super::types::{EventRef, Violation};
use super::{Engine, KpiRetention};
use crate::config::RulesConfig;
use crate::event::Id;
use crate::time::{Calendar, Timestamp};

/// Format version of [`Checkpoint`]; bumped when its shape changes.
pub const CHECKPOINT_VERSION: u32 = 1;

/// The engine's state. Collections are sorted so the same state serializes the same way.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    /// The engine clock at the checkpoint.
    pub clock: Option<Timestamp>,
    seqs: Vec<(Id, u64)>,
    agents: Vec<Agent>,
    calls: Vec<(Id, Call)>,
    queues: Vec<(Id, Queue)>,
    timers: Vec<(TimerKey, Timer)>,
    timer_order: u64,
    episode_ids: u64,
    next_violation: u64,
    open: Vec<Violation>,
    kpis: Vec<(jiff::civil::Date, Vec<(Id, DayKpi)>)>,
    current: EventRef,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint format {found} is not supported (this build reads {CHECKPOINT_VERSION})")]
    Version { found: u32 },
}

impl Engine {
    /// The engine's whole state, for [`Engine::restore`].
    pub fn checkpoint(&self) -> Checkpoint {
        let mut seqs: Vec<_> = self.seqs.iter().map(|(k, v)| (k.clone(), *v)).collect();
        seqs.sort();
        // Sorted as references, then cloned in order: sorting the clones moved every
        // several-hundred-byte agent around (a tenth of the engine task's time at 100,000
        // agents, where this runs once a minute).
        let mut agents: Vec<&Agent> = self.agents.values().collect();
        agents.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let agents: Vec<Agent> = agents.into_iter().cloned().collect();
        let mut calls: Vec<(&Id, &Call)> = self.calls.iter().collect();
        calls.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let calls: Vec<(Id, Call)> = calls
            .into_iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Checkpoint {
            version: CHECKPOINT_VERSION,
            clock: self.clock,
            seqs,
            agents,
            calls,
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
        }
    }

    /// An engine in the state of `cp`, judging by `rules` from here on.
    pub fn restore(
        rules: RulesConfig,
        retention: KpiRetention,
        cp: Checkpoint,
    ) -> Result<Engine, CheckpointError> {
        if cp.version != CHECKPOINT_VERSION {
            return Err(CheckpointError::Version { found: cp.version });
        }
        let mut e = Engine::with_retention(rules, retention);
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
        e.kpis = Kpis::from_days(retention, cp.kpis);
        e.current = cp.current;
        Ok(e)
    }
}
