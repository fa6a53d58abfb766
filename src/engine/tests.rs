//! Engine tests at the rules' boundaries. A tiny harness owns the engine and feeds it events
//! with times relative to T0, so "15 minutes" takes microseconds.

use super::*;
use crate::config::ReasonRule;
use crate::event::decode_event;

/// 2026-11-28T02:00:00Z = 10:00 in Asia/Shanghai.
const T0: i64 = 1_795_831_200_000;
const S: i64 = 1000;
const M: i64 = 60 * S;
const D: i64 = 24 * 60 * M;

struct Sim {
    engine: Engine,
    effects: Vec<Effect>,
    seq: u64,
}

impl Sim {
    fn new() -> Sim {
        Sim::with(RulesConfig::default())
    }

    fn with(rules: RulesConfig) -> Sim {
        Sim {
            engine: Engine::with_retention(rules, KpiRetention::All),
            effects: Vec::new(),
            seq: 0,
        }
    }

    /// Sends an event at T0 + `at` ms; `fields` is the rest of the JSON object.
    fn send(&mut self, at: i64, ty: &str, fields: &str) -> Applied {
        self.seq += 1;
        let sep = if fields.is_empty() { "" } else { "," };
        let json = format!(
            r#"{{"type":"{ty}","ts":{},"seq":{}{sep}{fields}}}"#,
            T0 + at,
            self.seq
        );
        let ev = decode_event(&json).unwrap_or_else(|e| panic!("{json}: {e:?}"));
        self.engine.handle_event("test", &ev, &mut self.effects)
    }

    fn advance(&mut self, at: i64) {
        self.engine
            .handle_timeout(Timestamp(T0 + at), &mut self.effects);
    }

    fn login(&mut self, at: i64, agent: &str) {
        self.send(
            at,
            "agent.login",
            &format!(r#""agent":"{agent}","team":"t1""#),
        );
    }

    fn state(&mut self, at: i64, agent: &str, state: &str, reason: Option<&str>) {
        let r = reason
            .map(|r| format!(r#","reason":"{r}""#))
            .unwrap_or_default();
        self.send(
            at,
            "agent.state",
            &format!(r#""agent":"{agent}","state":"{state}"{r}"#),
        );
    }

    fn call(&mut self, at: i64, ty: &str, call: &str, agent: Option<&str>) {
        let a = agent
            .map(|a| format!(r#","agent":"{a}""#))
            .unwrap_or_default();
        self.send(at, ty, &format!(r#""call":"{call}""#).add_str(&a));
    }

    fn approve(&mut self, at: i64, agent: &str, reason: &str, minutes: f64) {
        self.send(
            at,
            "approval.granted",
            &format!(r#""agent":"{agent}","reason":"{reason}","minutes":{minutes},"by":"lead""#),
        );
    }

    /// Violations raised so far as (kind, at relative to T0), in the order raised.
    fn violations(&self) -> Vec<(Kind, i64)> {
        self.effects
            .iter()
            .filter_map(|e| match e {
                Effect::Violation(v) => Some((v.kind.clone(), v.at.0 - T0)),
                _ => None,
            })
            .collect()
    }

    fn raised(&self) -> Vec<Violation> {
        self.effects
            .iter()
            .filter_map(|e| match e {
                Effect::Violation(v) => Some((**v).clone()),
                _ => None,
            })
            .collect()
    }
}

trait AddStr {
    fn add_str(self, s: &str) -> String;
}
impl AddStr for String {
    fn add_str(mut self, s: &str) -> String {
        self.push_str(s);
        self
    }
}

// ---- ring_answer ----

#[test]
fn answer_exactly_at_15s_is_on_time() {
    let mut s = Sim::new();
    s.login(0, "a");
    s.call(S, "call.ringing", "c1", Some("a"));
    s.call(16 * S, "call.answered", "c1", Some("a"));
    s.advance(10 * M);
    assert_eq!(s.violations(), vec![]);
    let rows = s.engine.appraisal(
        Period::parse("2026-11").unwrap(),
        Timestamp(T0 + 10 * M),
        &[],
    );
    assert_eq!(rows[0].answered_within_rings, 1);
    assert_eq!(rows[0].ring_episodes, 1);
}

#[test]
fn answer_one_ms_past_15s_is_late_at_the_deadline() {
    let mut s = Sim::new();
    s.login(0, "a");
    s.call(S, "call.ringing", "c1", Some("a"));
    s.call(16 * S + 1, "call.answered", "c1", Some("a"));
    assert_eq!(s.violations(), vec![(Kind::Late, 16 * S)]);
    let v = &s.raised()[0];
    assert_eq!(v.call.as_deref(), Some("c1"));
    assert_eq!(v.points, 1);
    assert_eq!(v.evidence.limit_ms, 15 * S);
    let rows = s.engine.appraisal(
        Period::parse("2026-11").unwrap(),
        Timestamp(T0 + 20 * S),
        &[],
    );
    assert_eq!(rows[0].answered_within_rings, 0);
}

#[test]
fn late_fires_only_when_the_clock_passes_the_deadline() {
    let mut s = Sim::new();
    s.login(0, "a");
    s.login(0, "b");
    s.call(0, "call.ringing", "c1", Some("a"));
    s.state(15 * S, "b", "ready", None);
    s.advance(15 * S);
    assert_eq!(s.violations(), vec![]);
    s.advance(15 * S + 1);
    assert_eq!(s.violations(), vec![(Kind::Late, 15 * S)]);
    // One violation per episode: the ring-no-answer that follows adds nothing.
    s.call(20 * S, "call.no_answer", "c1", Some("a"));
    assert_eq!(s.violations().len(), 1);
}

#[test]
fn ring_no_answer_before_the_limit_is_missed_at_that_event() {
    let mut s = Sim::new();
    s.login(0, "a");
    s.login(0, "b");
    s.send(0, "call.queued", r#""call":"c1","queue":"sales""#);
    s.call(S, "call.ringing", "c1", Some("a"));
    s.call(9 * S, "call.no_answer", "c1", Some("a"));
    s.call(9 * S, "call.ringing", "c1", Some("b"));
    s.call(12 * S, "call.answered", "c1", Some("b"));
    s.advance(M);
    assert_eq!(s.violations(), vec![(Kind::Missed, 9 * S)]);
}

#[test]
fn ring_ends_without_violation_when_moved_abandoned_or_logged_out() {
    let mut s = Sim::new();
    s.login(0, "a");
    s.login(0, "b");
    // moved to another agent without no_answer
    s.call(0, "call.ringing", "c1", Some("a"));
    s.call(10 * S, "call.ringing", "c1", Some("b"));
    s.call(20 * S, "call.answered", "c1", Some("b"));
    // abandoned within the limit
    s.call(M, "call.ringing", "c2", Some("a"));
    s.call(M + 14 * S, "call.abandoned", "c2", None);
    // logout ends the ring episode
    s.call(2 * M, "call.ringing", "c3", Some("a"));
    s.send(2 * M + 5 * S, "agent.logout", r#""agent":"a""#);
    s.advance(10 * M);
    assert_eq!(s.violations(), vec![]);
}

#[test]
fn repeated_ringing_for_the_same_agent_does_not_restart_the_episode() {
    let mut s = Sim::new();
    s.login(0, "a");
    s.call(0, "call.ringing", "c1", Some("a"));
    s.call(10 * S, "call.ringing", "c1", Some("a"));
    s.call(20 * S, "call.answered", "c1", Some("a"));
    assert_eq!(s.violations(), vec![(Kind::Late, 15 * S)]);
}

#[test]
fn answer_by_another_agent_ends_the_episode_without_counting_it() {
    let mut s = Sim::new();
    s.login(0, "a");
    s.login(0, "b");
    s.call(0, "call.ringing", "c1", Some("a"));
    s.call(5 * S, "call.answered", "c1", Some("b"));
    s.advance(M);
    assert_eq!(s.violations(), vec![]);
    let rows = s
        .engine
        .appraisal(Period::parse("2026-11").unwrap(), Timestamp(T0 + M), &[]);
    let a = rows.iter().find(|r| r.agent == "a").unwrap();
    assert_eq!(
        (a.ring_episodes, a.answered_within_rings, a.calls_answered),
        (1, 0, 0)
    );
    let b = rows.iter().find(|r| r.agent == "b").unwrap();
    assert_eq!((b.ring_episodes, b.calls_answered), (0, 1));
}

// ---- break_overrun ----

#[test]
fn break_of_exactly_15_minutes_is_within_its_max() {
    let mut s = Sim::new();
    s.login(0, "a");
    s.state(0, "a", "not_ready", Some("break"));
    s.state(15 * M, "a", "ready", None);
    s.advance(30 * M);
    assert_eq!(s.violations(), vec![]);
}

#[test]
fn break_one_ms_over_15_minutes_is_per_break_at_the_max() {
    let mut s = Sim::new();
    s.login(0, "a");
    s.state(0, "a", "not_ready", Some("break"));
    s.state(15 * M + 1, "a", "ready", None);
    assert_eq!(s.violations(), vec![(Kind::PerBreak, 15 * M)]);
    assert_eq!(s.raised()[0].reason.as_deref(), Some("break"));
    assert_eq!(s.raised()[0].points, 2);
}

#[test]
fn same_reason_again_continues_the_episode_another_reason_starts_one() {
    let mut s = Sim::new();
    s.login(0, "a");
    s.state(0, "a", "not_ready", Some("break"));
    s.state(10 * M, "a", "not_ready", Some("break"));
    s.state(16 * M, "a", "ready", None);
    assert_eq!(s.violations(), vec![(Kind::PerBreak, 15 * M)]);

    let mut s = Sim::new();
    s.login(0, "a");
    s.state(0, "a", "not_ready", Some("break"));
    s.state(10 * M, "a", "not_ready", Some("training"));
    s.state(30 * M, "a", "ready", None);
    assert_eq!(s.violations(), vec![]);
}

fn allowance_rules(allowance: i64) -> RulesConfig {
    let mut r = RulesConfig::default();
    r.break_overrun.daily_allowance = allowance;
    r.reasons.insert(
        "break".into(),
        ReasonRule {
            max: None,
            allowance: true,
            approval: false,
        },
    );
    r
}

#[test]
fn daily_allowance_used_up_exactly_is_not_exceeded_the_next_break_is() {
    let mut s = Sim::new();
    s.login(0, "a");
    for i in 0..4 {
        s.state(i * 20 * M, "a", "not_ready", Some("break"));
        s.state(i * 20 * M + 15 * M, "a", "ready", None);
    }
    assert_eq!(s.violations(), vec![]);
    // The allowance is used up: the deadline is the new episode's start.
    s.state(100 * M, "a", "not_ready", Some("break"));
    assert_eq!(s.violations(), vec![]);
    s.state(100 * M + 1, "a", "ready", None);
    assert_eq!(s.violations(), vec![(Kind::DailyAllowance, 100 * M)]);
    // At most one per agent per local day.
    s.state(120 * M, "a", "not_ready", Some("break"));
    s.state(125 * M, "a", "ready", None);
    assert_eq!(s.violations().len(), 1);
}

#[test]
fn daily_allowance_deadline_is_the_instant_the_total_reaches_it() {
    let mut s = Sim::with(allowance_rules(30 * M));
    s.login(0, "a");
    s.state(0, "a", "not_ready", Some("break"));
    s.state(20 * M, "a", "ready", None);
    s.state(60 * M, "a", "not_ready", Some("break"));
    s.state(75 * M, "a", "ready", None);
    assert_eq!(s.violations(), vec![(Kind::DailyAllowance, 70 * M)]);
    // Meal breaks do not count toward the allowance.
    let mut s = Sim::with(allowance_rules(30 * M));
    s.login(0, "a");
    s.state(0, "a", "not_ready", Some("meal"));
    s.state(29 * M, "a", "ready", None);
    s.state(30 * M, "a", "not_ready", Some("break"));
    s.state(59 * M, "a", "ready", None);
    assert_eq!(s.violations(), vec![]);
}

/// 23:30 local (Asia/Shanghai) on 2026-11-28 relative to T0 (10:00 local).
const LOCAL_2330: i64 = 13 * 60 * M + 30 * M;

#[test]
fn allowance_reached_exactly_at_midnight_is_not_exceeded() {
    let mut s = Sim::with(allowance_rules(30 * M));
    s.login(0, "a");
    s.state(LOCAL_2330, "a", "not_ready", Some("break"));
    s.state(LOCAL_2330 + 40 * M, "a", "ready", None);
    s.advance(LOCAL_2330 + 5 * 60 * M);
    assert_eq!(s.violations(), vec![]);
}

#[test]
fn allowance_splits_at_local_midnight() {
    // 30 min before midnight count to the old day; the new day's 30 min end at 00:30.
    let mut s = Sim::with(allowance_rules(30 * M));
    s.login(0, "a");
    s.state(LOCAL_2330, "a", "not_ready", Some("break"));
    s.state(LOCAL_2330 + 60 * M + 1, "a", "ready", None);
    assert_eq!(
        s.violations(),
        vec![(Kind::DailyAllowance, LOCAL_2330 + 60 * M)]
    );
    // Usage before midnight does not count against the new day.
    let mut s = Sim::with(allowance_rules(40 * M));
    s.login(0, "a");
    s.state(LOCAL_2330 - 10 * M, "a", "not_ready", Some("break"));
    s.state(LOCAL_2330 + 30 * M, "a", "ready", None); // 40 min, all before midnight
    s.state(LOCAL_2330 + 31 * M, "a", "not_ready", Some("break"));
    s.state(LOCAL_2330 + 70 * M, "a", "ready", None); // 39 min after midnight
    assert_eq!(s.violations(), vec![]);
}

// ---- unauthorized_pause ----

#[test]
fn pause_without_reason_is_no_reason_after_grace() {
    let mut s = Sim::new();
    s.login(0, "a");
    s.state(0, "a", "not_ready", None);
    s.state(5 * S + 1, "a", "ready", None);
    assert_eq!(s.violations(), vec![(Kind::NoReason, 5 * S)]);
    assert_eq!(s.raised()[0].reason, None);
    assert_eq!(s.raised()[0].points, 5);
}

#[test]
fn reason_given_exactly_at_the_grace_is_in_time() {
    let mut s = Sim::new();
    s.login(0, "a");
    s.state(0, "a", "not_ready", None);
    s.state(5 * S, "a", "not_ready", Some("break"));
    s.state(10 * M, "a", "ready", None);
    assert_eq!(s.violations(), vec![]);
    // Empty reason and missing reason are one episode.
    let mut s = Sim::new();
    s.login(0, "a");
    s.state(0, "a", "not_ready", None);
    s.state(3 * S, "a", "not_ready", Some(""));
    s.state(6 * S, "a", "ready", None);
    assert_eq!(s.violations(), vec![(Kind::NoReason, 5 * S)]);
}

#[test]
fn reasons_are_case_sensitive() {
    let mut s = Sim::new();
    s.login(0, "a");
    s.state(0, "a", "not_ready", Some("BREAK"));
    s.state(M, "a", "ready", None);
    assert_eq!(s.violations(), vec![(Kind::UnknownReason, 5 * S)]);
    assert_eq!(s.raised()[0].reason.as_deref(), Some("BREAK"));
}

#[test]
fn meeting_needs_an_approval_active_at_the_grace() {
    let mut s = Sim::new();
    s.login(0, "a");
    s.state(0, "a", "not_ready", Some("meeting"));
    s.approve(5 * S, "a", "meeting", 10.0); // active on [5s, 10m5s): in time
    s.state(10 * M, "a", "ready", None);
    assert_eq!(s.violations(), vec![]);

    let mut s = Sim::new();
    s.login(0, "a");
    s.state(0, "a", "not_ready", Some("meeting"));
    s.approve(5 * S + 1, "a", "meeting", 10.0);
    s.state(10 * M, "a", "ready", None);
    assert_eq!(s.violations(), vec![(Kind::Unapproved, 5 * S)]);

    // An approval for another reason or agent does not count.
    let mut s = Sim::new();
    s.login(0, "a");
    s.approve(0, "a", "training", 10.0);
    s.approve(0, "b", "meeting", 10.0);
    s.state(0, "a", "not_ready", Some("meeting"));
    s.advance(6 * S);
    assert_eq!(s.violations(), vec![(Kind::Unapproved, 5 * S)]);
}

#[test]
fn approval_window_is_half_open() {
    // Approval ended exactly at the grace check: not active.
    let mut s = Sim::new();
    s.login(-2 * M, "a");
    s.approve(-M + 5 * S, "a", "meeting", 1.0); // [-55s, 5s)
    s.state(0, "a", "not_ready", Some("meeting"));
    s.advance(6 * S);
    assert_eq!(s.violations(), vec![(Kind::Unapproved, 5 * S)]);
}

#[test]
fn approval_expired_at_the_end_of_the_cover_and_renewals_extend_it() {
    let mut s = Sim::new();
    s.login(-2 * M, "a");
    s.approve(-M, "a", "meeting", 10.0); // until 9m
    s.state(0, "a", "not_ready", Some("meeting"));
    s.state(9 * M, "a", "not_ready", Some("meeting"));
    assert_eq!(s.violations(), vec![]);
    s.state(9 * M + 1, "a", "ready", None);
    assert_eq!(s.violations(), vec![(Kind::ApprovalExpired, 9 * M)]);

    // A renewal granted before the end extends the cover to its own end.
    let mut s = Sim::new();
    s.login(-2 * M, "a");
    s.approve(-M, "a", "meeting", 10.0); // until 9m
    s.state(0, "a", "not_ready", Some("meeting"));
    s.approve(8 * M, "a", "meeting", 10.0); // until 18m
    s.advance(17 * M);
    assert_eq!(s.violations(), vec![]);
    s.advance(18 * M + 1);
    assert_eq!(s.violations(), vec![(Kind::ApprovalExpired, 18 * M)]);

    // Granted exactly at the end E: active at E, a renewal.
    let mut s = Sim::new();
    s.login(-2 * M, "a");
    s.approve(-M, "a", "meeting", 10.0);
    s.state(0, "a", "not_ready", Some("meeting"));
    s.approve(9 * M, "a", "meeting", 1.0); // until 10m
    s.advance(10 * M + 1);
    assert_eq!(s.violations(), vec![(Kind::ApprovalExpired, 10 * M)]);

    // Granted 1 ms after E: a gap.
    let mut s = Sim::new();
    s.login(-2 * M, "a");
    s.approve(-M, "a", "meeting", 10.0);
    s.state(0, "a", "not_ready", Some("meeting"));
    s.approve(9 * M + 1, "a", "meeting", 10.0);
    s.advance(20 * M);
    assert_eq!(s.violations(), vec![(Kind::ApprovalExpired, 9 * M)]);
}

#[test]
fn acw_linked_to_a_call_end_within_acw_link() {
    let mut s = Sim::new();
    s.login(0, "a");
    s.call(0, "call.answered", "c1", Some("a"));
    s.call(M, "call.ended", "c1", Some("a"));
    s.state(M + 10 * S, "a", "acw", None); // exactly acw_link after the end
    s.state(M + 40 * S, "a", "ready", None);
    assert_eq!(s.violations(), vec![]);

    let mut s = Sim::new();
    s.login(0, "a");
    s.call(0, "call.answered", "c1", Some("a"));
    s.call(M, "call.ended", "c1", Some("a"));
    s.state(M + 10 * S + 1, "a", "acw", None);
    s.state(M + 40 * S, "a", "ready", None);
    assert_eq!(s.violations(), vec![(Kind::AcwWithoutCall, M + 15 * S + 1)]);
}

#[test]
fn call_end_without_agent_links_the_agents_whose_leg_it_closes() {
    let mut s = Sim::new();
    s.login(0, "a");
    s.login(0, "b");
    s.call(0, "call.answered", "c1", Some("a"));
    s.call(M, "call.ended", "c1", None);
    s.state(M + 3 * S, "a", "acw", None);
    s.state(M + 3 * S, "b", "acw", None); // b had no leg of c1
    s.advance(M + 30 * S);
    assert_eq!(s.violations(), vec![(Kind::AcwWithoutCall, M + 8 * S)]);
    assert_eq!(s.raised()[0].agent, "b");
}

#[test]
fn call_end_at_the_same_instant_after_acw_links_it() {
    let mut s = Sim::new();
    s.login(0, "a");
    s.call(0, "call.answered", "c1", Some("a"));
    s.state(M, "a", "acw", None);
    s.call(M, "call.ended", "c1", Some("a"));
    s.state(M + 30 * S, "a", "ready", None);
    assert_eq!(s.violations(), vec![]);
}

#[test]
fn acw_overrun_at_acw_max() {
    let mut s = Sim::new();
    s.login(0, "a");
    s.call(0, "call.answered", "c1", Some("a"));
    s.call(M, "call.ended", "c1", Some("a"));
    s.state(M, "a", "acw", None);
    s.state(2 * M, "a", "ready", None); // exactly 60 s
    assert_eq!(s.violations(), vec![]);
    s.call(3 * M, "call.answered", "c2", Some("a"));
    s.call(4 * M, "call.ended", "c2", Some("a"));
    s.state(4 * M, "a", "acw", None);
    s.state(5 * M + 1, "a", "ready", None);
    assert_eq!(s.violations(), vec![(Kind::AcwOverrun, 5 * M)]);
}

#[test]
fn deadlines_at_one_instant_fire_in_the_order_of_the_rules_page() {
    let mut r = RulesConfig::default();
    r.reasons.insert(
        "huddle".into(),
        ReasonRule {
            max: Some(5 * S),
            allowance: false,
            approval: true,
        },
    );
    let mut s = Sim::with(r);
    s.login(0, "a");
    s.state(0, "a", "not_ready", Some("huddle"));
    s.advance(M);
    assert_eq!(
        s.violations(),
        vec![(Kind::PerBreak, 5 * S), (Kind::Unapproved, 5 * S)]
    );
}

// ---- time, seq, snapshots ----

#[test]
fn late_events_are_applied_at_the_clock() {
    let mut s = Sim::new();
    s.login(0, "a");
    s.call(0, "call.ringing", "c1", Some("a"));
    s.state(10 * S, "a", "ready", None);
    // An answer stamped before the clock is applied at the clock (10 s): on time.
    let r = s.send(5 * S, "call.answered", r#""call":"c1","agent":"a""#);
    assert_eq!(
        r,
        Applied::Applied {
            at: Timestamp(T0 + 10 * S),
            late: true
        }
    );
    s.advance(M);
    assert_eq!(s.violations(), vec![]);
}

#[test]
fn seq_duplicates_are_ignored_per_source() {
    let mut e = Engine::new(RulesConfig::default());
    let mut out = Vec::new();
    let ev = |seq: u64, t: i64| {
        decode_event(&format!(
            r#"{{"type":"agent.login","ts":{},"seq":{seq},"agent":"a"}}"#,
            T0 + t
        ))
        .unwrap()
    };
    assert!(matches!(
        e.handle_event("p1", &ev(5, 0), &mut out),
        Applied::Applied { .. }
    ));
    assert_eq!(
        e.handle_event("p1", &ev(5, 0), &mut out),
        Applied::Duplicate
    );
    assert_eq!(
        e.handle_event("p1", &ev(4, 0), &mut out),
        Applied::Duplicate
    );
    // A duplicate does not move the clock.
    assert_eq!(
        e.handle_event("p1", &ev(3, M), &mut out),
        Applied::Duplicate
    );
    assert_eq!(e.now(), Some(Timestamp(T0)));
    assert!(matches!(
        e.handle_event("p2", &ev(5, 0), &mut out),
        Applied::Applied { .. }
    ));
    assert_eq!(e.highest_seq("p1"), Some(5));
    assert_eq!(e.highest_seq("p3"), None);
}

#[test]
fn snapshot_episodes_continue_from_since() {
    let mut s = Sim::new();
    s.login(0, "a");
    s.state(0, "a", "not_ready", Some("break"));
    // The snapshot confirms the break: it continues from 0, not from the snapshot.
    s.send(
        10 * M,
        "snapshot",
        r#""agents":[{"agent":"a","presence":"not_ready","reason":"break","since":0},{"agent":"b","presence":"not_ready","reason":"break","since":1}],"calls":[{"call":"c1","state":"ringing","agent":"a","since":1}]"#,
    );
    s.advance(10 * M + 1);
    // b's break since 1 ms after the epoch implies its per-break overrun; c1's ring since
    // then implies a late answer.
    let kinds: Vec<Kind> = s.violations().iter().map(|v| v.0.clone()).collect();
    assert!(kinds.contains(&Kind::Late), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == Kind::PerBreak).count(), 1);
    s.advance(15 * M + 1);
    assert_eq!(
        s.violations()
            .iter()
            .filter(|v| v.0 == Kind::PerBreak)
            .map(|v| v.1)
            .collect::<Vec<_>>(),
        vec![1 - T0 + 15 * M, 15 * M]
    );
}

#[test]
fn snapshot_logs_out_agents_it_does_not_list() {
    let mut s = Sim::new();
    s.login(0, "a");
    s.state(0, "a", "not_ready", None);
    s.send(S, "snapshot", r#""agents":[],"calls":[]"#);
    s.advance(M);
    assert_eq!(s.violations(), vec![]);
    assert_eq!(s.engine.agent_view("a").map(|v| v.logged_in), Some(false));
}

#[test]
fn effective_state_prefers_talking_then_ringing_then_presence() {
    let mut s = Sim::new();
    s.login(0, "a");
    s.state(0, "a", "not_ready", Some("training"));
    assert_eq!(
        s.engine.agent_view("a").unwrap().effective,
        Some(EffectiveState::NotReady)
    );
    s.call(S, "call.ringing", "c1", Some("a"));
    assert_eq!(
        s.engine.agent_view("a").unwrap().effective,
        Some(EffectiveState::Ringing)
    );
    s.call(2 * S, "call.answered", "c1", Some("a"));
    let v = s.engine.agent_view("a").unwrap();
    assert_eq!(v.effective, Some(EffectiveState::Talking));
    assert_eq!(v.effective_since, Timestamp(T0 + 2 * S));
    s.call(M, "call.ended", "c1", Some("a"));
    assert_eq!(
        s.engine.agent_view("a").unwrap().effective,
        Some(EffectiveState::NotReady)
    );
}

#[test]
fn team_comes_from_config_then_events_then_unassigned() {
    let mut r = RulesConfig::default();
    r.team_of.insert("a".into(), "cfg-team".into());
    let mut s = Sim::with(r);
    s.login(0, "a");
    s.login(0, "b");
    s.call(0, "call.ringing", "c9", Some("x"));
    assert_eq!(s.engine.team_of("a"), "cfg-team");
    assert_eq!(s.engine.team_of("b"), "t1");
    assert_eq!(s.engine.team_of("x"), "unassigned");
}

// ---- appraisal and floor KPIs ----

#[test]
fn items_count_in_the_period_of_their_start_and_open_ones_up_to_the_end() {
    let mut s = Sim::new();
    // 2026-11-30 23:50 local = 2026-11-30T15:50Z.
    let nov30_2350 = 1_796_053_800_000 - T0;
    s.login(nov30_2350 - M, "a");
    s.state(nov30_2350, "a", "not_ready", Some("training"));
    s.state(nov30_2350 + 20 * M, "a", "ready", None);
    s.call(nov30_2350 + 30 * M, "call.answered", "c1", Some("a"));
    let end = Timestamp(T0 + nov30_2350 + 40 * M);
    s.engine.finish(end, &mut s.effects);
    let nov = s
        .engine
        .appraisal(Period::parse("2026-11").unwrap(), end, &[]);
    assert_eq!(nov.len(), 1);
    assert_eq!(nov[0].pause_seconds, 1200.0);
    assert_eq!(nov[0].calls_answered, 0);
    let dec = s
        .engine
        .appraisal(Period::parse("2026-12").unwrap(), end, &[]);
    assert_eq!(dec[0].calls_answered, 1);
    assert_eq!(dec[0].talk_seconds, 600.0);
    assert_eq!(dec[0].aht_seconds, Some(600.0));
    let day = s
        .engine
        .appraisal(Period::parse("2026-12-01").unwrap(), end, &[]);
    assert_eq!(day[0].period, "2026-12-01");
    assert_eq!(day[0].calls_answered, 1);
}

#[test]
fn an_open_pause_counts_in_the_month_of_its_start_to_the_millisecond() {
    let mut s = Sim::new();
    // 2026-12-01 00:00 local = 2026-11-30T16:00Z: "a" pauses 1 ms before, "b" exactly then.
    let dec1 = 1_796_054_400_000 - T0;
    s.login(dec1 - 10 * M, "a");
    s.login(dec1 - 10 * M, "b");
    s.state(dec1 - 1, "a", "not_ready", Some("training"));
    s.state(dec1, "b", "not_ready", Some("training"));
    let end = Timestamp(T0 + dec1 + 10 * M);
    let nov = s
        .engine
        .appraisal(Period::parse("2026-11").unwrap(), end, &[]);
    let dec = s
        .engine
        .appraisal(Period::parse("2026-12").unwrap(), end, &[]);
    let pause = |rows: &[crate::engine::AppraisalRow], agent: &str| {
        rows.iter()
            .find(|r| r.agent == agent)
            .map_or(0.0, |r| r.pause_seconds)
    };
    assert_eq!(pause(&nov, "a"), 600.001);
    assert_eq!(pause(&dec, "a"), 0.0);
    assert_eq!(pause(&nov, "b"), 0.0);
    assert_eq!(pause(&dec, "b"), 600.0);
}

#[test]
fn waived_violations_count_for_nothing() {
    let mut s = Sim::new();
    s.login(0, "a");
    s.state(0, "a", "not_ready", None);
    s.state(M, "a", "ready", None);
    let v = s.raised();
    let p = Period::parse("2026-11").unwrap();
    let rows = s.engine.appraisal(p, Timestamp(T0 + M), &[]);
    assert_eq!((rows[0].points, rows[0].deduction), (5, 50.0));
    let rows = s.engine.appraisal(p, Timestamp(T0 + M), &v);
    assert_eq!(
        (rows[0].points, rows[0].violations_unauthorized_pause),
        (0, 0)
    );
}

#[test]
fn a_checkpoint_appraises_as_the_engine_did_when_it_was_taken_whatever_happens_after() {
    let mut r = RulesConfig::default();
    r.team_of.insert("cfg".into(), "cfg-team".into());
    let mut s = Sim::with(r.clone());
    for a in ["cfg", "b", "c", "d"] {
        s.login(0, a);
    }
    s.state(0, "b", "not_ready", None); // no reason: a violation, waived below
    s.state(M, "b", "not_ready", Some("training")); // still open at the checkpoint
    s.call(2 * M, "call.ringing", "c1", Some("c"));
    s.call(2 * M + 5 * S, "call.answered", "c1", Some("c")); // an open leg
    s.call(3 * M, "call.answered", "c2", Some("cfg"));
    s.call(4 * M, "call.ended", "c2", Some("cfg"));
    s.state(4 * M, "cfg", "acw", None); // an open acw episode
    s.advance(5 * M);
    let waived = s.raised();
    assert!(!waived.is_empty(), "the pause without a reason was raised");
    let p = Period::parse("2026-11").unwrap();
    let end = Timestamp(T0 + 5 * M);
    let cp = s.engine.checkpoint();
    let json = serde_json::to_string(&cp).unwrap();
    for w in [&[][..], &waived[..]] {
        let live = s.engine.appraisal(p, end, w);
        assert_eq!(live.len(), 3, "d has no items yet");
        assert_eq!(cp.appraisal(&r, p, end, w), live, "waived: {}", w.len());
    }
    let before = s.engine.appraisal(p, end, &[]);
    // Everything the snapshot shares changes afterwards: agents, calls, today's
    // accumulators, a new agent and a new day.
    s.state(6 * M, "b", "ready", None);
    s.call(6 * M, "call.ended", "c1", Some("c"));
    s.state(6 * M, "cfg", "ready", None);
    s.login(7 * M, "e");
    s.call(8 * M, "call.answered", "c3", Some("d"));
    s.call(9 * M, "call.ended", "c3", Some("d"));
    s.advance(D);
    s.call(D + M, "call.answered", "c4", Some("d"));
    assert_ne!(s.engine.appraisal(p, end, &[]), before);
    assert_eq!(cp.appraisal(&r, p, end, &[]), before);
    assert_eq!(
        serde_json::to_string(&cp).unwrap(),
        json,
        "the snapshot is what it was"
    );
    // A later checkpoint sees the changes, and restoring either gives its own state back.
    let later = s.engine.checkpoint();
    assert_ne!(serde_json::to_string(&later).unwrap(), json);
    let back: Checkpoint = serde_json::from_str(&json).unwrap();
    let e = Engine::restore(r.clone(), KpiRetention::All, back).unwrap();
    assert_eq!(e.appraisal(p, end, &[]), before);
    assert_eq!(serde_json::to_string(&e.checkpoint()).unwrap(), json);
}

#[test]
fn queue_kpis_and_service_level() {
    let mut s = Sim::new();
    s.login(0, "a");
    s.send(0, "call.queued", r#""call":"c1","queue":"sales""#);
    s.send(0, "call.queued", r#""call":"c2","queue":"sales""#);
    s.send(0, "call.queued", r#""call":"c3","queue":"sales""#);
    s.send(0, "call.queued", r#""call":"c4","queue":"sales""#);
    s.call(10 * S, "call.answered", "c1", Some("a")); // within 20 s
    s.call(3 * S + 10 * S, "call.abandoned", "c2", None); // 13 s: counts
    s.call(30 * S, "call.answered", "c3", Some("a")); // 30 s: outside
    let q = &s.engine.queue_views()[0];
    assert_eq!(q.waiting, 1);
    assert_eq!(q.oldest_since, Some(Timestamp(T0)));
    assert_eq!(
        (q.today.offered, q.today.answered, q.today.abandoned),
        (4, 2, 1)
    );
    assert_eq!(q.today.answer_rate(), Some(0.5));
    assert_eq!(q.today.service_level(), Some(0.25));
    assert_eq!(q.today.asa_seconds(), Some(20.0));
    s.call(31 * S, "call.abandoned", "c4", None);
    s.send(32 * S, "call.queued", r#""call":"c5","queue":"sales""#);
    s.call(34 * S, "call.abandoned", "c5", None); // 2 s: short abandon, left out
    let q = &s.engine.queue_views()[0];
    assert_eq!(q.today.service_level(), Some(0.25));
    assert_eq!(q.last_15m.offered, 5);
}

#[test]
fn every_timer_fires_or_is_cancelled() {
    let mut s = Sim::new();
    s.login(0, "a");
    s.state(0, "a", "not_ready", Some("meeting"));
    s.call(S, "call.ringing", "c1", Some("a"));
    s.call(2 * S, "call.answered", "c1", Some("a"));
    s.call(M, "call.ended", "c1", Some("a"));
    s.state(M, "a", "acw", None);
    s.send(M + S, "agent.logout", r#""agent":"a""#);
    assert_eq!(s.engine.poll_timeout(), None);
    assert!(s.engine.open_violations().is_empty());
}

#[test]
fn active_approvals_are_listed_on_their_half_open_window() {
    let mut s = Sim::new();
    s.login(0, "a");
    s.approve(0, "a", "meeting", 1.0);
    s.approve(0, "a", "training", 2.0);
    assert_eq!(s.engine.active_approvals().len(), 2);
    s.advance(M);
    let v = s.engine.active_approvals();
    assert_eq!(v.len(), 1);
    assert_eq!(
        (v[0].reason.as_str(), v[0].until),
        ("training", Timestamp(T0 + 2 * M))
    );
}

// ---- limits ----

fn limited(max_agents: usize, max_calls: usize, max_queues: usize) -> Sim {
    Sim::with(RulesConfig {
        limits: EngineLimits {
            max_agents,
            max_calls,
            max_queues,
            max_shifts: 2,
            max_sources: 2,
        },
        ..RulesConfig::default()
    })
}

#[test]
fn an_agent_over_max_agents_is_refused_and_changes_nothing() {
    let mut s = limited(2, 10, 10);
    s.login(0, "a");
    s.login(0, "b");
    let seq_before = s.engine.highest_seq("test");
    let r = s.send(5 * S, "agent.login", r#""agent":"c""#);
    assert_eq!(r, Applied::Refused(Limit::Agents));
    assert!(s.engine.agent_view("c").is_none());
    assert_eq!(s.engine.highest_seq("test"), seq_before, "seq not advanced");
    assert_eq!(s.engine.now(), Some(Timestamp(T0)), "clock not moved");
    // Known agents still go through; so does a ring naming a new agent once there is room
    // (agents are never forgotten, so there is none here).
    assert!(matches!(
        s.send(6 * S, "agent.state", r#""agent":"a","state":"ready""#),
        Applied::Applied { .. }
    ));
    assert_eq!(
        s.send(7 * S, "call.ringing", r#""call":"c1","agent":"z""#),
        Applied::Refused(Limit::Agents)
    );
    assert_eq!(
        s.send(
            7 * S,
            "approval.granted",
            r#""agent":"y","reason":"meeting","minutes":5,"by":"lead""#
        ),
        Applied::Refused(Limit::Agents)
    );
}

#[test]
fn calls_over_max_calls_are_refused_until_one_ends() {
    let mut s = limited(10, 2, 10);
    s.login(0, "a");
    s.send(S, "call.queued", r#""call":"c1","queue":"q""#);
    s.send(S, "call.dialing", r#""call":"c2","agent":"a""#);
    assert_eq!(
        s.send(2 * S, "call.queued", r#""call":"c3","queue":"q""#),
        Applied::Refused(Limit::Calls)
    );
    assert_eq!(s.engine.queue_views()[0].waiting, 1);
    // Events about tracked calls still apply; an abandoned call frees its slot.
    s.send(3 * S, "call.abandoned", r#""call":"c1""#);
    assert!(matches!(
        s.send(4 * S, "call.queued", r#""call":"c3","queue":"q""#),
        Applied::Applied { .. }
    ));
}

#[test]
fn a_queue_over_max_queues_is_refused() {
    let mut s = limited(10, 10, 1);
    s.send(0, "call.queued", r#""call":"c1","queue":"q1""#);
    assert_eq!(
        s.send(S, "call.queued", r#""call":"c2","queue":"q2""#),
        Applied::Refused(Limit::Queues)
    );
    // A ring that would give a new call a new queue is refused too.
    s.login(S, "a");
    assert_eq!(
        s.send(
            2 * S,
            "call.ringing",
            r#""call":"c3","agent":"a","queue":"q3""#
        ),
        Applied::Refused(Limit::Queues)
    );
    assert_eq!(s.engine.queue_views().len(), 1);
}

/// Shifts planned ahead are kept until they end: a WFM that plans without end could grow
/// them without bound. Over `max_shifts` a new one is refused and changes nothing; a re-plan
/// or a cancellation of a kept one still applies, and a cancelled one frees its place.
#[test]
fn a_shift_over_max_shifts_is_refused_until_one_is_cancelled() {
    let mut s = limited(10, 10, 10);
    let shift = |id: &str| {
        format!(
            r#""shift":"{id}","agent":"a","start":{},"end":{}"#,
            T0 + 3_600 * S,
            T0 + 9 * 3_600 * S
        )
    };
    assert!(matches!(
        s.send(0, "shift.scheduled", &shift("s1")),
        Applied::Applied { .. }
    ));
    assert!(matches!(
        s.send(0, "shift.scheduled", &shift("s2")),
        Applied::Applied { .. }
    ));
    let seq_before = s.engine.highest_seq("test");
    assert_eq!(
        s.send(S, "shift.scheduled", &shift("s3")),
        Applied::Refused(Limit::Shifts)
    );
    assert_eq!(s.engine.highest_seq("test"), seq_before, "seq not advanced");
    assert!(s
        .engine
        .shift_views(None, None, None)
        .iter()
        .all(|v| v.shift.as_str() != "s3"));
    assert!(matches!(
        s.send(2 * S, "shift.scheduled", &shift("s2")),
        Applied::Applied { .. }
    ));
    assert!(matches!(
        s.send(3 * S, "shift.cancelled", r#""shift":"s1""#),
        Applied::Applied { .. }
    ));
    assert!(matches!(
        s.send(4 * S, "shift.scheduled", &shift("s3")),
        Applied::Applied { .. }
    ));
}

/// Each source name that sent a `seq` is remembered: over `max_sources` an event with a seq
/// from a new name is refused and changes nothing (not the clock); known names and events
/// without a seq still apply.
#[test]
fn a_new_source_name_over_max_sources_is_refused() {
    let mut s = limited(10, 10, 10);
    let login = |ts: i64, seq: u64, agent: &str| {
        crate::event::decode_event(&format!(
            r#"{{"type":"agent.login","ts":{},"seq":{seq},"agent":"{agent}"}}"#,
            T0 + ts
        ))
        .expect("event")
    };
    let mut out = Vec::new();
    for (i, src) in ["pbx", "crm"].iter().enumerate() {
        let r = s
            .engine
            .handle_event(src, &login(0, 1, &format!("a{i}")), &mut out);
        assert!(matches!(r, Applied::Applied { .. }), "{r:?}");
    }
    let r = s.engine.handle_event("pbx-2", &login(S, 1, "b"), &mut out);
    assert_eq!(r, Applied::Refused(Limit::Sources));
    assert_eq!(s.engine.highest_seq("pbx-2"), None);
    assert_eq!(s.engine.now(), Some(Timestamp(T0)), "clock not moved");
    assert!(s.engine.agent_view("b").is_none());
    let r = s
        .engine
        .handle_event("pbx", &login(2 * S, 2, "b"), &mut out);
    assert!(matches!(r, Applied::Applied { .. }), "{r:?}");
    let mut unnumbered = login(3 * S, 1, "c");
    unnumbered.seq = None;
    let r = s.engine.handle_event("wfm", &unnumbered, &mut out);
    assert!(matches!(r, Applied::Applied { .. }), "{r:?}");
}

#[test]
fn a_snapshot_over_a_limit_is_refused_as_a_whole() {
    let mut s = limited(2, 1, 10);
    s.login(0, "a");
    let r = s.send(
        S,
        "snapshot",
        r#""agents":[{"agent":"a","presence":"ready","since":0},{"agent":"b","presence":"ready","since":0},{"agent":"c","presence":"ready","since":0}]"#,
    );
    assert_eq!(r, Applied::Refused(Limit::Agents));
    assert!(s.engine.agent_view("b").is_none());
    let r = s.send(
        S,
        "snapshot",
        r#""calls":[{"call":"c1","state":"queued","queue":"q","since":0},{"call":"c2","state":"queued","queue":"q","since":0}]"#,
    );
    assert_eq!(r, Applied::Refused(Limit::Calls));
    // The snapshot replaces the calls: one call within max_calls = 1 is fine.
    let r = s.send(
        S,
        "snapshot",
        r#""agents":[{"agent":"a","presence":"ready","since":0}],"calls":[{"call":"c1","state":"queued","queue":"q","since":0}]"#,
    );
    assert!(matches!(r, Applied::Applied { .. }), "{r:?}");
}

#[test]
fn snapshot_deadlines_already_past_fire_at_once_and_poll_timeout_stays_after_the_clock() {
    // Found by the engine_events fuzz target: a snapshot pause whose grace had passed left
    // a timer before the clock, so poll_timeout lay in the past and handle_timeout at it
    // did nothing.
    let mut s = Sim::new();
    s.send(
        M,
        "snapshot",
        &format!(
            r#""agents":[{{"agent":"a","presence":"not_ready","since":{}}}]"#,
            T0 + 10 * S
        ),
    );
    let now = s.engine.now().unwrap_or_default();
    assert!(s.engine.poll_timeout().is_none_or(|p| p > now));
    // No reason within the 5 s grace: raised at since + 5 s, detected at the snapshot.
    assert_eq!(s.violations(), vec![(Kind::NoReason, 15 * S)]);
}

mod attendance;
mod record;
