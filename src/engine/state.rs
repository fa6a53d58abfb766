//! The floor's state as the engine keeps it: agents with their presence and episodes,
//! calls with their ring episodes and legs, queues with their waiting calls and counters,
//! and the timer wheel. Plain data; the rules live in `mod.rs`.
//!
//! Owns: the state types. Must not: decide outcomes.

use std::collections::{BTreeSet, VecDeque};

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use super::types::{EventRef, QueueCounts};
use crate::event::{Id, PresenceState};
use crate::time::{Millis, Timestamp};

/// A key of the timer wheel: deadline, then the order timers were set.
pub type TimerKey = (Timestamp, u64);

/// What a timer checks when it fires. Episode ids make a stale timer harmless.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Timer {
    RingLate {
        call: Id,
        agent: Id,
    },
    PerBreak {
        agent: Id,
        episode: u64,
    },
    DailyAllowance {
        agent: Id,
        episode: u64,
        day: Date,
    },
    PauseGrace {
        agent: Id,
        episode: u64,
    },
    /// The end of the approvals covering a pause episode.
    ApprovalCover {
        agent: Id,
        episode: u64,
    },
    AcwWithoutCall {
        agent: Id,
        episode: u64,
    },
    AcwOverrun {
        agent: Id,
        episode: u64,
    },
    /// `late_login`: the shift's agent must be logged in by start + `login_grace`.
    ShiftLogin {
        shift: Id,
    },
    /// The shift's end: the relief is looked up and the release found.
    ShiftEnd {
        shift: Id,
    },
    /// `not_logged_out`: the release + `logout_grace`.
    ShiftLogout {
        shift: Id,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PauseEpisode {
    pub id: u64,
    /// The rulebook in force when it started (index into the engine's rulebooks).
    #[serde(default)]
    pub rb: u32,
    pub reason: Id,
    pub start: Timestamp,
    pub started_by: EventRef,
    /// Counts toward the daily break allowance.
    pub allowance: bool,
    pub timers: Vec<TimerKey>,
    /// Violations raised for this episode and not yet cleared.
    pub violations: Vec<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AcwEpisode {
    pub id: u64,
    /// The rulebook in force when it started.
    #[serde(default)]
    pub rb: u32,
    pub start: Timestamp,
    pub started_by: EventRef,
    /// A `call.ended` of the agent lies in `[start - acw_link, start]` (or the episode came
    /// from a snapshot, which the daemon did not observe the start of).
    pub linked: bool,
    pub timers: Vec<TimerKey>,
    pub violations: Vec<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Approval {
    pub reason: Id,
    pub from: Timestamp,
    pub until: Timestamp,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Agent {
    pub id: Id,
    pub team_seen: Option<Id>,
    pub name: Option<Id>,
    pub logged_in: bool,
    pub presence: Option<PresenceState>,
    pub reason: Id,
    pub presence_since: Timestamp,
    /// Boxed: most agents are in neither at a time, and an episode is about 200 bytes.
    pub pause: Option<Box<PauseEpisode>>,
    pub acw: Option<Box<AcwEpisode>>,
    /// Calls ringing at this agent (open ring episodes).
    pub ringing: Vec<Id>,
    /// Calls with an open leg of this agent.
    pub legs: Vec<Id>,
    /// The latest `call.ended` that names the agent or closes one of its legs.
    pub last_call_end: Option<Timestamp>,
    /// Allowance time of closed episodes within `allowance_day` (the day of the clock when
    /// it was last updated; earlier days no longer matter).
    pub allowance_day: Option<Date>,
    pub allowance_used: Millis,
    /// The last local day that already has a `daily_allowance` violation.
    pub allowance_violated: Option<Date>,
    pub approvals: Vec<Approval>,
    pub effective_since: Timestamp,
    pub last_effective: Option<super::types::EffectiveState>,
    pub open_violations: u32,
    /// Since when the agent is logged in (meaningful while `logged_in`).
    #[serde(default)]
    pub login_since: Timestamp,
    /// Login stretches `[from, to)` that ended within the last [`RECENT_LOGINS_KEEP`], for
    /// a shift planned after it started (its logged-in time counts them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_logins: Vec<(Timestamp, Timestamp)>,
    /// The agent's shifts that are kept (ids), in no particular order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shifts: Vec<Id>,
}

/// How long ended login stretches are kept for shifts planned late.
pub const RECENT_LOGINS_KEEP: Millis = 48 * 3_600_000;
/// At most this many recent login stretches per agent.
pub const RECENT_LOGINS_MAX: usize = 16;

impl Agent {
    pub fn new(id: Id, now: Timestamp) -> Agent {
        Agent {
            id,
            team_seen: None,
            name: None,
            logged_in: false,
            presence: None,
            reason: Id::default(),
            presence_since: now,
            pause: None,
            acw: None,
            ringing: Vec::new(),
            legs: Vec::new(),
            last_call_end: None,
            allowance_day: None,
            allowance_used: 0,
            allowance_violated: None,
            approvals: Vec::new(),
            effective_since: now,
            last_effective: None,
            open_violations: 0,
            login_since: now,
            recent_logins: Vec::new(),
            shifts: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RingEpisode {
    pub agent: Id,
    /// The rulebook in force when it started.
    #[serde(default)]
    pub rb: u32,
    pub start: Timestamp,
    pub started_by: EventRef,
    pub timer: TimerKey,
    /// The `late` violation, once raised (cleared when the episode ends).
    pub late: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Leg {
    pub agent: Id,
    pub open: Timestamp,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Call {
    pub queue: Option<Id>,
    /// When it entered its queue, while it waits there.
    pub waiting_since: Option<Timestamp>,
    pub rings: Vec<RingEpisode>,
    pub legs: Vec<Leg>,
}

impl Call {
    pub fn is_idle(&self) -> bool {
        self.waiting_since.is_none() && self.rings.is_empty() && self.legs.is_empty()
    }
}

/// One entry of a queue's sliding 15-minute window.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WindowEntry {
    pub at: Timestamp,
    pub counts: QueueCounts,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Queue {
    /// Waiting calls by the time they entered the queue.
    pub waiting: BTreeSet<(Timestamp, Id)>,
    pub today: Option<(Date, QueueCounts)>,
    pub window: VecDeque<WindowEntry>,
}

/// How long the sliding window of floor KPIs is.
pub const WINDOW: Millis = 15 * 60_000;

/// Where a shift's `not_logged_out` check stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LogoutCheck {
    /// Before the end.
    Pending,
    /// At the end the relief (agent, whose shift ends at `until`) was not logged in: the
    /// release is the relief's login, if it comes before `until`.
    AwaitingRelief { relief: Id, until: Timestamp },
    /// Released at `release`; the check runs at the timer.
    Armed { release: Timestamp, timer: TimerKey },
    /// The agent was on a call at the check: it runs again once the last leg closes.
    AwaitingCallEnd { release: Timestamp },
    /// Nothing more to check.
    Done,
}

/// A planned shift (rule `attendance`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Shift {
    pub id: Id,
    pub agent: Id,
    pub start: Timestamp,
    pub end: Timestamp,
    pub position: Option<Id>,
    /// The event that (re)scheduled it, for evidence.
    pub scheduled_by: EventRef,
    /// The `late_login` deadline, while armed.
    pub login_timer: Option<TimerKey>,
    /// The end deadline, while armed.
    pub end_timer: Option<TimerKey>,
    pub logout: LogoutCheck,
    /// Kinds already raised for this shift (each at most once): late_login,
    /// left_before_relief, not_logged_out.
    pub raised: [bool; 3],
    /// Violations of this shift not yet cleared (a late login clears at the login, a
    /// missing logout at the logout).
    pub open: Vec<u64>,
    /// Logged-in time inside the shift over login stretches that have ended.
    pub logged_in_ms: Millis,
    /// The first login inside the shift and the last logout after its start, for the
    /// schedule API.
    pub first_login: Option<Timestamp>,
    pub last_logout: Option<Timestamp>,
}

/// What the engine keeps of a raised violation while it may still be waived: enough to
/// refuse a bad waiver and to move its points in and out of the appraisal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub at: Timestamp,
    pub agent: Id,
    pub rule: super::types::Rule,
    pub points: u32,
    /// points × the money per point in force when raised.
    pub deduction: f64,
    pub waived: bool,
}

/// An outbound (dialed) or dispositioned (call, agent) pair.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Pair {
    /// The first `call.dialing` of the agent for the call.
    pub dialed: Option<Timestamp>,
    /// The agent answered a leg of the call after dialing it.
    pub connected: bool,
    /// The latest disposition: its time and whether its code is a sale.
    pub disposition: Option<(Timestamp, Id, bool)>,
    /// The last time anything happened to the pair (pairs are forgotten a while after).
    pub touched: Timestamp,
}

/// How long a (call, agent) pair is remembered after its last event, for late dispositions.
pub const PAIR_KEEP: Millis = 48 * 3_600_000;
