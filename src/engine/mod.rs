//! The rules engine: the floor's state and the three rules of the rules page, sans-IO.
//!
//! It takes events and time as arguments and returns [`Effect`]s; it never reads a clock,
//! touches a socket or a file, or spawns anything. Replay and the live daemon drive the same
//! code: the only difference is where `now` comes from.
//!
//! Contract:
//! - [`Engine::handle_event`] applies one decoded event from a named source (seq
//!   de-duplication, late-event clamping), first firing every deadline strictly before the
//!   event's (clamped) time.
//! - [`Engine::handle_timeout`] moves the engine clock forward to `now` (never back) and fires
//!   every deadline strictly before it. A spurious call is a no-op.
//! - [`Engine::poll_timeout`] is the earliest `now` at which `handle_timeout` would fire
//!   something (a deadline D fires once the clock passes it, so this is D + 1 ms).
//! - [`Engine::finish`] fires the deadlines before a replay's end.

mod types;

pub use types::*;

use crate::config::RulesConfig;
use crate::event::Event;
use crate::time::{Period, Timestamp};

/// What `handle_event` did with an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Applied at `at` (the event's `ts`, or the engine clock if that was later: `late`).
    Applied { at: Timestamp, late: bool },
    /// Its `seq` was not above the highest already processed from its source: ignored.
    Duplicate,
}

/// The rules engine. See the module doc for its contract.
pub struct Engine {
    rules: RulesConfig,
}

impl Engine {
    pub fn new(rules: RulesConfig) -> Engine {
        Engine { rules }
    }

    pub fn rules(&self) -> &RulesConfig {
        &self.rules
    }

    /// The engine clock: the latest event time applied or timeout handled.
    pub fn now(&self) -> Option<Timestamp> {
        None
    }

    /// Applies one event from `source`; effects are appended to `out` in order.
    pub fn handle_event(&mut self, source: &str, ev: &Event, out: &mut Vec<Effect>) -> Applied {
        let _ = (source, ev, out);
        Applied::Duplicate
    }

    /// Moves the clock to `now` (if later) and fires every deadline strictly before it.
    pub fn handle_timeout(&mut self, now: Timestamp, out: &mut Vec<Effect>) {
        let _ = (now, out);
    }

    /// The earliest `now` at which `handle_timeout` fires something.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        None
    }

    /// Ends a replay at `end`: fires every deadline strictly before it.
    pub fn finish(&mut self, end: Timestamp, out: &mut Vec<Effect>) {
        self.handle_timeout(end, out)
    }

    /// The highest `seq` processed from `source`.
    pub fn highest_seq(&self, source: &str) -> Option<u64> {
        let _ = source;
        None
    }

    /// The view of one agent (logged in or not) the engine knows.
    pub fn agent_view(&self, agent: &str) -> Option<AgentView> {
        let _ = agent;
        None
    }

    /// Every known agent, sorted by id.
    pub fn agent_views(&self) -> Vec<AgentView> {
        Vec::new()
    }

    /// Every known queue with its floor KPIs, sorted by id.
    pub fn queue_views(&self) -> Vec<QueueView> {
        Vec::new()
    }

    /// Currently open violations, in the order raised.
    pub fn open_violations(&self) -> Vec<Violation> {
        Vec::new()
    }

    /// The appraisal for `period`, counting open items up to `end`; `waived` violations (by
    /// id) are left out. Rows sorted by agent.
    pub fn appraisal(&self, period: Period, end: Timestamp, waived: &[Violation]) -> Vec<AppraisalRow> {
        let _ = (period, end, waived);
        Vec::new()
    }
}
