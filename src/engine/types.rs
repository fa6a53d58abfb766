//! The engine's outputs and read-side views: violations, effects, agent and queue views,
//! appraisal rows. Plain data, serializable, no behaviour beyond formatting.
//!
//! Owns: what leaves the engine. Must not: hold engine state.

use serde::{Deserialize, Serialize};

use crate::event::{Id, PresenceState};
use crate::time::{Millis, Timestamp};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    RingAnswer,
    BreakOverrun,
    UnauthorizedPause,
    Attendance,
    Discipline,
}

impl Rule {
    pub const ALL: [Rule; 5] = [
        Rule::RingAnswer,
        Rule::BreakOverrun,
        Rule::UnauthorizedPause,
        Rule::Attendance,
        Rule::Discipline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::RingAnswer => "ring_answer",
            Rule::BreakOverrun => "break_overrun",
            Rule::UnauthorizedPause => "unauthorized_pause",
            Rule::Attendance => "attendance",
            Rule::Discipline => "discipline",
        }
    }

    /// Position in [`Rule::ALL`] (the appraisal's per-rule columns).
    pub fn index(self) -> usize {
        match self {
            Rule::RingAnswer => 0,
            Rule::BreakOverrun => 1,
            Rule::UnauthorizedPause => 2,
            Rule::Attendance => 3,
            Rule::Discipline => 4,
        }
    }
}

/// What a violation is, within its rule. A floor-discipline violation's kind is the key of
/// its catalog item (`mobile_phone`, ...), hence the one variant with a name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Late,
    Missed,
    PerBreak,
    DailyAllowance,
    NoReason,
    UnknownReason,
    Unapproved,
    ApprovalExpired,
    AcwWithoutCall,
    AcwOverrun,
    LateLogin,
    LeftBeforeRelief,
    NotLoggedOut,
    /// Rule `discipline`: the catalog item's key.
    Discipline(Id),
}

impl Kind {
    /// Every kind with a fixed name (discipline kinds come from the catalog).
    pub const ALL: [Kind; 13] = [
        Kind::Late,
        Kind::Missed,
        Kind::PerBreak,
        Kind::DailyAllowance,
        Kind::NoReason,
        Kind::UnknownReason,
        Kind::Unapproved,
        Kind::ApprovalExpired,
        Kind::AcwWithoutCall,
        Kind::AcwOverrun,
        Kind::LateLogin,
        Kind::LeftBeforeRelief,
        Kind::NotLoggedOut,
    ];

    pub fn rule(&self) -> Rule {
        match self {
            Kind::Late | Kind::Missed => Rule::RingAnswer,
            Kind::PerBreak | Kind::DailyAllowance => Rule::BreakOverrun,
            Kind::NoReason
            | Kind::UnknownReason
            | Kind::Unapproved
            | Kind::ApprovalExpired
            | Kind::AcwWithoutCall
            | Kind::AcwOverrun => Rule::UnauthorizedPause,
            Kind::LateLogin | Kind::LeftBeforeRelief | Kind::NotLoggedOut => Rule::Attendance,
            Kind::Discipline(_) => Rule::Discipline,
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Kind::Late => "late",
            Kind::Missed => "missed",
            Kind::PerBreak => "per_break",
            Kind::DailyAllowance => "daily_allowance",
            Kind::NoReason => "no_reason",
            Kind::UnknownReason => "unknown_reason",
            Kind::Unapproved => "unapproved",
            Kind::ApprovalExpired => "approval_expired",
            Kind::AcwWithoutCall => "acw_without_call",
            Kind::AcwOverrun => "acw_overrun",
            Kind::LateLogin => "late_login",
            Kind::LeftBeforeRelief => "left_before_relief",
            Kind::NotLoggedOut => "not_logged_out",
            Kind::Discipline(item) => item,
        }
    }

    /// The kind named `s` within `rule`.
    pub fn parse(rule: Rule, s: &str) -> Option<Kind> {
        if rule == Rule::Discipline {
            return (!s.is_empty()).then(|| Kind::Discipline(Id::from(s)));
        }
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s && k.rule() == rule)
    }
}

impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Kind {
    /// A name that is not one of the fixed kinds is a discipline item's key.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Kind, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .unwrap_or_else(|| Kind::Discipline(Id::from(s.as_ref()))))
    }
}

/// A protocol event type name (`call.ringing`, ...), one of [`crate::event::EVENT_TYPES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TypeName(pub &'static str);

impl std::ops::Deref for TypeName {
    type Target = str;
    fn deref(&self) -> &str {
        self.0
    }
}

impl Serialize for TypeName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for TypeName {
    /// An unknown name (from a newer build) reads as the empty name.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<TypeName, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(TypeName(
            crate::event::EVENT_TYPES
                .iter()
                .find(|t| **t == s)
                .copied()
                .unwrap_or(""),
        ))
    }
}

/// The event an episode started or ended with, for the evidence of a violation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRef {
    /// The time the engine applied it (after clamping).
    pub at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Id>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Id>,
    #[serde(rename = "type")]
    pub event_type: TypeName,
}

/// Why a violation was raised: which episode, which limit, how long it had lasted, and (once
/// it ended) how long it lasted in all. Durations are milliseconds and named for what they
/// measure, so that none reads as another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The event that started the episode (ring, pause, wrap-up, the shift's scheduling, the
    /// demerit itself).
    pub started_by: EventRef,
    /// The event that ended the episode, once it has ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_by: Option<EventRef>,
    /// The longest the rule allows before it raises this kind (ring limit, break max, daily
    /// allowance, reason grace, wrap-up max, login grace, logout grace; 0 for kinds raised
    /// by an event rather than a deadline, e.g. `missed`, `left_before_relief`, demerits).
    pub limit_ms: Millis,
    /// The limit and what it applies to, in words, e.g. `"3 rings x 5s = 15s"`.
    pub limit: String,
    /// How long the episode had lasted when the violation was raised: at its deadline this
    /// is the limit itself (the violation is raised the moment the limit is reached).
    #[serde(alias = "measured_ms")]
    pub raised_after_ms: Millis,
    /// How long the episode lasted in all, once it has ended (a ring answered after 19 s:
    /// 19000, where `raised_after_ms` is 15000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lasted_ms: Option<Millis>,
    /// Who recorded it (floor discipline: the lead's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_by: Option<Id>,
    /// The lead's note (floor discipline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<Id>,
    /// The shift it concerns (attendance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<Id>,
    /// The relief's agent and shift (attendance handovers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relief: Option<Relief>,
}

impl Evidence {
    /// Evidence of an episode started by `started_by`, raised `raised_after_ms` into it
    /// under a limit of `limit_ms` (stated in words as `limit`).
    pub fn new(
        started_by: EventRef,
        limit_ms: Millis,
        limit: impl Into<String>,
        raised_after_ms: Millis,
    ) -> Evidence {
        Evidence {
            started_by,
            ended_by: None,
            limit_ms,
            limit: limit.into(),
            raised_after_ms,
            lasted_ms: None,
            recorded_by: None,
            note: None,
            shift: None,
            relief: None,
        }
    }
}

/// The relief of a shift: the agent who takes over the seat, and their shift.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relief {
    pub agent: Id,
    pub shift: Id,
}

/// A violation as the engine raises it. `to_record_json` gives the surface page's record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    /// Engine-wide sequence number, in the order raised (identical live and in replay).
    pub id: u64,
    pub rule: Rule,
    pub kind: Kind,
    pub agent: Id,
    pub team: Id,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<Id>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Id>,
    pub at: Timestamp,
    pub points: u32,
    /// `points` × the money per point in force when it was raised.
    #[serde(default)]
    pub deduction: f64,
    /// The engine clock when it was raised: for deadline kinds the time the clock passed the
    /// deadline (in replay the next event's time, live the daemon's time minus
    /// `source.delay`), else the causing event's time. The only field that may differ between
    /// live and replay; `at` never does.
    pub detected_at: Timestamp,
    pub evidence: Evidence,
}

impl Violation {
    /// The surface page's violation record (replay output): exactly its keys, in its order.
    pub fn to_record_json(&self) -> String {
        let mut out = Vec::with_capacity(160);
        // Writing into a `Vec` cannot fail, and serde_json writes UTF-8 only.
        let _ = self.write_record_json(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// [`Violation::to_record_json`] written straight into `w` (no `String` in between).
    pub fn write_record_json<W: std::io::Write>(&self, w: W) -> std::io::Result<()> {
        #[derive(Serialize)]
        struct Record<'a> {
            rule: &'static str,
            kind: &'a str,
            agent: &'a str,
            team: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            call: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            reason: Option<&'a str>,
            at: Timestamp,
            points: u32,
        }
        let r = Record {
            rule: self.rule.as_str(),
            kind: self.kind.as_str(),
            agent: &self.agent,
            team: &self.team,
            call: self.call.as_deref(),
            reason: self.reason.as_deref(),
            at: self.at,
            points: self.points,
        };
        serde_json::to_writer(w, &r).map_err(std::io::Error::from)
    }
}

/// What happened to a queued call, for floor counters and histograms.
#[derive(Clone, Debug, PartialEq)]
pub enum QueueOutcome {
    Offered,
    Answered { wait: Millis },
    Abandoned { wait: Millis },
}

/// What the engine asks its shell to do or know. Produced in a deterministic order.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// A violation was raised.
    Violation(Box<Violation>),
    /// The condition of violation `id` cleared (ring ended, pause ended, ...) at `at`, by
    /// the event `ended_by`; the episode lasted `lasted_ms` in all.
    Cleared {
        id: u64,
        at: Timestamp,
        ended_by: EventRef,
        lasted_ms: Millis,
    },
    /// A waiver (`waived`) or its reversal was recorded for violation `id`.
    Waiver {
        id: u64,
        waived: bool,
        at: Timestamp,
        by: Id,
        why: Id,
        /// The event, for the record.
        event: EventRef,
    },
    /// A month's statement was closed with `digest`.
    PeriodClosed {
        period: Id,
        at: Timestamp,
        by: Id,
        digest: Id,
    },
    /// A rulebook took effect at `at` (the engine clock; `None` before any event).
    Rulebook {
        version: u32,
        at: Option<Timestamp>,
        digest: Id,
    },
    /// A shift was planned, re-planned or cancelled; read it with `Engine::shift_view`.
    ShiftChanged { shift: Id },
    /// Outbound counters of a team moved (today's floor KPIs).
    Outbound {
        team: Id,
        agent: Id,
        change: OutboundChange,
    },
    /// Something in this agent's view changed; read it with `Engine::agent_view`.
    AgentChanged { agent: Id },
    /// A queue call moved on.
    Queue { queue: Id, outcome: QueueOutcome },
    /// A ring episode ended after `ring` ms (for the ring-time histogram).
    RingEnded { agent: Id, team: Id, ring: Millis },
}

/// A change of a team's outbound counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboundChange {
    /// A (call, agent) pair dialed for the first time.
    Attempt,
    /// A dialed pair answered.
    Connected,
    /// A pair became a sale (+1) or stopped being one (-1) by its latest disposition; `today`
    /// tells whether the sale's day (its disposition's) is the engine clock's day.
    Sale { delta: i8, today: bool },
}

/// Effective state of a logged-in agent: first that holds of talking, ringing, presence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EffectiveState {
    Talking,
    Ringing,
    Acw,
    NotReady,
    Ready,
}

impl EffectiveState {
    pub const ALL: [EffectiveState; 5] = [
        EffectiveState::Ready,
        EffectiveState::NotReady,
        EffectiveState::Acw,
        EffectiveState::Ringing,
        EffectiveState::Talking,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EffectiveState::Talking => "talking",
            EffectiveState::Ringing => "ringing",
            EffectiveState::Acw => "acw",
            EffectiveState::NotReady => "not_ready",
            EffectiveState::Ready => "ready",
        }
    }
}

/// One agent as the floor sees it now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentView {
    pub agent: Id,
    pub team: Id,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Id>,
    pub logged_in: bool,
    /// `None` when logged out.
    pub presence: Option<PresenceState>,
    /// Pause reason (empty unless `not_ready`).
    pub reason: Id,
    /// Since when the presence holds.
    pub since: Timestamp,
    /// `None` when logged out.
    pub effective: Option<EffectiveState>,
    /// Since when the effective state holds.
    pub effective_since: Timestamp,
    /// The call being talked on or ringing, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<Id>,
    /// Open violations of this agent.
    pub open_violations: u32,
}

/// Counters of queue calls over some window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueCounts {
    pub offered: u64,
    pub answered: u64,
    pub abandoned: u64,
    /// Answered within `service_level.threshold`.
    pub answered_in_threshold: u64,
    /// Abandoned before `service_level.short_abandon` (left out of service level).
    pub short_abandons: u64,
    /// Sum of queue waits of answered calls (ms).
    pub answer_wait_sum: i64,
}

impl QueueCounts {
    /// answered / offered.
    pub fn answer_rate(&self) -> Option<f64> {
        (self.offered > 0).then(|| self.answered as f64 / self.offered as f64)
    }

    /// answered within threshold / offered, short abandons left out of both.
    pub fn service_level(&self) -> Option<f64> {
        let base = self.offered.saturating_sub(self.short_abandons);
        (base > 0).then(|| self.answered_in_threshold as f64 / base as f64)
    }

    /// Mean queue wait of answered calls, seconds.
    pub fn asa_seconds(&self) -> Option<f64> {
        (self.answered > 0).then(|| self.answer_wait_sum as f64 / 1000.0 / self.answered as f64)
    }

    pub fn add(&mut self, o: &QueueCounts) {
        self.offered += o.offered;
        self.answered += o.answered;
        self.abandoned += o.abandoned;
        self.answered_in_threshold += o.answered_in_threshold;
        self.short_abandons += o.short_abandons;
        self.answer_wait_sum += o.answer_wait_sum;
    }
}

/// One queue as the floor sees it now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueueView {
    pub queue: Id,
    pub waiting: u64,
    /// When the longest-waiting call entered the queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_since: Option<Timestamp>,
    /// Today (local).
    pub today: QueueCounts,
    /// The last 15 minutes.
    pub last_15m: QueueCounts,
}

/// One row of the appraisal (rules page, "Agent appraisal KPIs").
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AppraisalRow {
    /// Ids, not `String`s: short ones are stored inline, without an allocation each (the
    /// daemon keeps a row per agent for `/metrics`).
    pub agent: Id,
    pub team: Id,
    pub period: Id,
    pub ring_episodes: u64,
    pub answered_within_rings: u64,
    pub ring_compliance: Option<f64>,
    pub calls_answered: u64,
    pub talk_seconds: f64,
    pub acw_seconds: f64,
    pub aht_seconds: Option<f64>,
    pub pause_seconds: f64,
    pub break_seconds: f64,
    pub violations_ring_answer: u64,
    pub violations_break_overrun: u64,
    pub violations_unauthorized_pause: u64,
    pub violations_attendance: u64,
    pub violations_discipline: u64,
    pub shifts: u64,
    pub scheduled_seconds: f64,
    pub logged_in_scheduled_seconds: f64,
    pub adherence: Option<f64>,
    pub outbound_attempts: u64,
    pub outbound_connected: u64,
    pub outbound_connect_rate: Option<f64>,
    pub sales: u64,
    pub conversion: Option<f64>,
    pub points: u64,
    pub deduction: f64,
}

impl AppraisalRow {
    /// The columns of the rules page, in its order.
    pub const CSV_HEADER: &'static str = "agent,team,period,ring_episodes,answered_within_rings,ring_compliance,calls_answered,talk_seconds,acw_seconds,aht_seconds,pause_seconds,break_seconds,violations_ring_answer,violations_break_overrun,violations_unauthorized_pause,violations_attendance,violations_discipline,shifts,scheduled_seconds,logged_in_scheduled_seconds,adherence,outbound_attempts,outbound_connected,outbound_connect_rate,sales,conversion,points,deduction";

    /// The appraisal CSV: the header and one line per row (the statement of a month).
    pub fn csv(rows: &[AppraisalRow]) -> String {
        let mut out = String::from(AppraisalRow::CSV_HEADER);
        out.push('\n');
        for r in rows {
            out.push_str(&r.to_csv());
            out.push('\n');
        }
        out
    }

    /// One CSV line (no newline): seconds with up to 3 decimals, ratios with 4.
    pub fn to_csv(&self) -> String {
        fn num(x: f64, places: usize) -> String {
            let s = format!("{x:.places$}");
            let s = if s.contains('.') {
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            } else {
                s
            };
            if s == "-0" {
                "0".into()
            } else {
                s
            }
        }
        fn opt(x: Option<f64>, places: usize) -> String {
            x.map(|v| num(v, places)).unwrap_or_default()
        }
        fn field(s: &str) -> String {
            if s.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_string()
            }
        }
        format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            field(&self.agent),
            field(&self.team),
            self.period,
            self.ring_episodes,
            self.answered_within_rings,
            opt(self.ring_compliance, 4),
            self.calls_answered,
            num(self.talk_seconds, 3),
            num(self.acw_seconds, 3),
            opt(self.aht_seconds, 3),
            num(self.pause_seconds, 3),
            num(self.break_seconds, 3),
            self.violations_ring_answer,
            self.violations_break_overrun,
            self.violations_unauthorized_pause,
            self.violations_attendance,
            self.violations_discipline,
            self.shifts,
            num(self.scheduled_seconds, 3),
            num(self.logged_in_scheduled_seconds, 3),
            opt(self.adherence, 4),
            self.outbound_attempts,
            self.outbound_connected,
            opt(self.outbound_connect_rate, 4),
            self.sales,
            opt(self.conversion, 4),
            self.points,
            num(self.deduction, 2),
        )
    }
}

/// An approval (`approval.granted`) as the API lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApprovalView {
    pub agent: Id,
    pub reason: Id,
    /// Active on `[from, until)`.
    pub from: Timestamp,
    pub until: Timestamp,
}

/// One shift with its attendance facts, for the schedule API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShiftView {
    pub shift: Id,
    pub agent: Id,
    pub team: Id,
    pub start: Timestamp,
    pub end: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<Id>,
    /// Whether the agent is logged in now.
    pub logged_in: bool,
    /// The first login inside the shift (or the login that was on at its start).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login: Option<Timestamp>,
    /// The last logout after the shift's start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logout: Option<Timestamp>,
    /// The relief as looked up now (shifts with a position only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relief: Option<Relief>,
    /// Logged-in time inside the shift up to the engine clock, in seconds.
    pub logged_in_seconds: f64,
    /// Attendance kinds raised for this shift.
    pub violations: Vec<Kind>,
}

/// An agent a shift covers now, for the floor: scheduled, and logged in or absent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduledNow {
    pub agent: Id,
    pub team: Id,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Id>,
    pub shift: Id,
    pub start: Timestamp,
    pub end: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<Id>,
    pub logged_in: bool,
}

/// A team's outbound counters for one local day.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OutboundCounts {
    pub attempts: u64,
    pub connected: u64,
    pub sales: u64,
}

impl OutboundCounts {
    /// 外呼接通率: connected / attempts.
    pub fn connect_rate(&self) -> Option<f64> {
        (self.attempts > 0).then(|| self.connected as f64 / self.attempts as f64)
    }
}
