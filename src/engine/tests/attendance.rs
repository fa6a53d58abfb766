//! Rule `attendance` at each edge the rules page names. T0 is 10:00 local; the defaults are
//! login grace 1m, logout grace 10m, handover window 15m.

use super::*;

const H: i64 = 60 * M;

impl Sim {
    /// Schedules shift `id` of `agent` from T0 + `start` to T0 + `end` (ms), at T0 + `at`.
    fn shift(&mut self, at: i64, id: &str, agent: &str, start: i64, end: i64, position: &str) {
        let pos = if position.is_empty() {
            String::new()
        } else {
            format!(r#","position":"{position}""#)
        };
        let r = self.send(
            at,
            "shift.scheduled",
            &format!(
                r#""shift":"{id}","agent":"{agent}","start":{},"end":{}{pos}"#,
                T0 + start,
                T0 + end
            ),
        );
        assert!(matches!(r, Applied::Applied { .. }), "{r:?}");
    }

    fn logout(&mut self, at: i64, agent: &str) {
        self.send(at, "agent.logout", &format!(r#""agent":"{agent}""#));
    }

    fn rows(&self, end: i64) -> Vec<AppraisalRow> {
        self.engine
            .appraisal(Period::parse("2026-11").unwrap(), Timestamp(T0 + end), &[])
    }
}

#[test]
fn login_exactly_at_start_plus_grace_is_in_time_and_a_millisecond_later_is_late() {
    let mut s = Sim::new();
    s.shift(-2 * H, "x", "a", H, 9 * H, "");
    s.shift(-2 * H, "y", "b", H, 9 * H, "");
    s.login(H + M, "a");
    s.login(H + M + 1, "b");
    assert_eq!(s.violations(), vec![(Kind::LateLogin, H + M)]);
    let v = &s.raised()[0];
    assert_eq!(v.agent, "b");
    assert_eq!(v.rule, Rule::Attendance);
    assert_eq!((v.points, v.deduction), (1, 10.0));
    assert_eq!(v.evidence.shift.as_deref(), Some("y"));
    assert_eq!((v.evidence.limit_ms, v.evidence.raised_after_ms), (M, M));
    // The late login's episode ends with the login, a millisecond after it was raised.
    let lasted = s.effects.iter().find_map(|e| match e {
        Effect::Cleared { id, lasted_ms, .. } if *id == v.id => Some(*lasted_ms),
        _ => None,
    });
    assert_eq!(lasted, Some(M + 1));
}

#[test]
fn a_late_login_is_raised_by_the_clock_and_never_twice() {
    let mut s = Sim::new();
    s.shift(0, "x", "a", H, 9 * H, "");
    s.advance(H + M);
    assert_eq!(s.violations(), vec![], "at the deadline itself: not yet");
    s.advance(H + M + 1);
    assert_eq!(s.violations(), vec![(Kind::LateLogin, H + M)]);
    s.login(2 * H, "a");
    s.logout(3 * H, "a");
    s.advance(20 * H);
    assert_eq!(s.violations().len(), 1);
}

#[test]
fn a_deadline_is_armed_only_after_the_event_that_scheduled_it() {
    let mut s = Sim::new();
    s.login(0, "b");
    // Planned at start + grace exactly: the login deadline does not lie after it.
    s.shift(H + M, "x", "a", H, 2 * H, "");
    // Planned after its end: nothing at all is judged.
    s.shift(3 * H, "y", "b", H, 2 * H, "");
    s.advance(5 * H);
    assert_eq!(s.violations(), vec![]);
    // Both count in the appraisal all the same.
    let rows = s.rows(5 * H);
    let a = rows.iter().find(|r| r.agent == "a").expect("a's row");
    assert_eq!((a.shifts, a.scheduled_seconds), (1, 3600.0));
    assert_eq!(a.logged_in_scheduled_seconds, 0.0);
    let b = rows.iter().find(|r| r.agent == "b").expect("b's row");
    // b has been logged in since before the shift: all of it counts.
    assert_eq!((b.shifts, b.logged_in_scheduled_seconds), (1, 3600.0));
    assert_eq!(b.adherence, Some(1.0));
}

#[test]
fn re_planning_before_the_start_replaces_the_shift_and_after_it_changes_nothing() {
    let mut s = Sim::new();
    s.shift(0, "x", "a", H, 9 * H, "");
    // Before the start: moved two hours later.
    s.shift(30 * M, "x", "a", 3 * H, 9 * H, "");
    s.advance(3 * H);
    assert_eq!(s.violations(), vec![], "the old start's deadline is gone");
    s.advance(3 * H + M + 1);
    assert_eq!(s.violations(), vec![(Kind::LateLogin, 3 * H + M)]);
    // After the start: a re-plan changes nothing (not even the end).
    s.shift(4 * H, "x", "a", 5 * H, 6 * H, "");
    let rows = s.rows(10 * H);
    assert_eq!(rows[0].scheduled_seconds, 6.0 * 3600.0);
}

#[test]
fn cancelling_stops_judging_keeps_what_was_raised_and_counts_in_no_kpi() {
    let mut s = Sim::new();
    s.shift(0, "x", "a", H, 9 * H, "");
    s.shift(0, "z", "c", H, 9 * H, "");
    s.send(30 * M, "shift.cancelled", r#""shift":"z""#);
    s.advance(2 * H);
    assert_eq!(s.violations(), vec![(Kind::LateLogin, H + M)]);
    // Cancelled after the start: the late login stays on record, nothing more is judged.
    s.login(3 * H, "a");
    s.send(4 * H, "shift.cancelled", r#""shift":"x""#);
    s.advance(20 * H);
    assert_eq!(s.violations(), vec![(Kind::LateLogin, H + M)]);
    let rows = s.rows(20 * H);
    let a = rows
        .iter()
        .find(|r| r.agent == "a")
        .expect("a keeps its violation row");
    assert_eq!((a.shifts, a.violations_attendance), (0, 1));
    assert!(rows.iter().all(|r| r.agent != "c"), "{rows:?}");
}

/// Two seats handed over: a (P1) until 18:00, relieved by b.
fn handover() -> Sim {
    let mut s = Sim::new();
    s.shift(0, "x", "a", 0, 8 * H, "P1");
    s.shift(0, "y", "b", 8 * H, 16 * H, "P1");
    s.login(0, "a");
    s
}

#[test]
fn a_logout_exactly_at_end_minus_the_handover_window_before_the_relief_is_left_before_relief() {
    let mut s = handover();
    s.logout(8 * H - 15 * M, "a");
    assert_eq!(
        s.violations(),
        vec![(Kind::LeftBeforeRelief, 8 * H - 15 * M)]
    );
    let v = &s.raised()[0];
    assert_eq!(v.points, 2);
    let relief = v.evidence.relief.as_ref().expect("relief in the evidence");
    assert_eq!((relief.agent.as_str(), relief.shift.as_str()), ("b", "y"));
    // One-shot: it closes at once.
    assert!(s
        .effects
        .iter()
        .any(|e| matches!(e, Effect::Cleared { id, .. } if *id == v.id)));
}

#[test]
fn a_logout_a_millisecond_before_the_handover_window_is_not_judged_by_it() {
    let mut s = handover();
    s.logout(8 * H - 15 * M - 1, "a");
    s.login(8 * H, "b");
    s.advance(12 * H);
    assert_eq!(s.violations(), vec![]);
}

#[test]
fn with_the_relief_logged_in_a_logout_is_no_violation() {
    let mut s = handover();
    s.login(7 * H, "b");
    s.logout(8 * H - M, "a");
    s.advance(12 * H);
    assert_eq!(s.violations(), vec![]);
}

#[test]
fn a_relief_logging_in_exactly_at_the_end_releases_at_the_end() {
    let mut s = handover();
    s.login(8 * H, "b");
    // Release at 8h: the logout deadline is 8h10m.
    s.advance(8 * H + 10 * M);
    assert_eq!(s.violations(), vec![]);
    s.advance(8 * H + 10 * M + 1);
    assert_eq!(s.violations(), vec![(Kind::NotLoggedOut, 8 * H + 10 * M)]);
    let v = &s.raised()[0];
    assert_eq!(
        (v.evidence.limit_ms, v.evidence.raised_after_ms),
        (10 * M, 10 * M)
    );
}

#[test]
fn a_late_relief_moves_the_release_to_its_login() {
    let mut s = handover();
    s.login(8 * H + 20 * M, "b");
    s.advance(8 * H + 30 * M);
    assert_eq!(s.violations(), vec![(Kind::LateLogin, 8 * H + M)]);
    s.advance(8 * H + 30 * M + 1);
    assert_eq!(
        s.violations(),
        vec![
            (Kind::LateLogin, 8 * H + M),
            (Kind::NotLoggedOut, 8 * H + 30 * M)
        ]
    );
}

#[test]
fn a_relief_who_never_comes_or_comes_after_their_shift_releases_nothing() {
    let mut s = handover();
    s.advance(17 * H);
    assert_eq!(s.violations(), vec![(Kind::LateLogin, 8 * H + M)]);
    s.login(16 * H + 30 * M, "b"); // late event after the relief's shift: clamped to 17h
    s.advance(20 * H);
    assert_eq!(s.violations(), vec![(Kind::LateLogin, 8 * H + M)]);
}

#[test]
fn a_logout_exactly_at_the_logout_deadline_is_in_time() {
    let mut s = Sim::new();
    s.shift(0, "x", "a", 0, 8 * H, "");
    s.login(0, "a");
    s.logout(8 * H + 10 * M, "a");
    s.advance(10 * H);
    assert_eq!(s.violations(), vec![]);
    let rows = s.rows(10 * H);
    assert_eq!(rows[0].logged_in_scheduled_seconds, 8.0 * 3600.0);
}

#[test]
fn a_call_open_at_the_deadline_moves_the_check_to_its_end_plus_the_grace() {
    let mut s = Sim::new();
    s.shift(0, "x", "a", 0, 8 * H, "");
    s.login(0, "a");
    s.call(8 * H + 5 * M, "call.answered", "c1", Some("a"));
    s.call(8 * H + 20 * M, "call.ended", "c1", Some("a"));
    s.advance(8 * H + 30 * M);
    assert_eq!(s.violations(), vec![]);
    s.advance(8 * H + 30 * M + 1);
    assert_eq!(s.violations(), vec![(Kind::NotLoggedOut, 8 * H + 30 * M)]);
    // It closes when the agent logs out.
    s.logout(9 * H, "a");
    let id = s.raised()[0].id;
    assert!(s
        .effects
        .iter()
        .any(|e| matches!(e, Effect::Cleared { id: i, lasted_ms, .. } if *i == id && *lasted_ms == 40 * M)));
}

#[test]
fn another_shift_covering_the_check_means_no_violation() {
    let mut s = Sim::new();
    s.shift(0, "x", "a", 0, 8 * H, "");
    s.shift(0, "x2", "a", 8 * H, 16 * H, "");
    s.login(0, "a");
    s.advance(8 * H + 11 * M);
    assert_eq!(s.violations(), vec![]);
    s.advance(16 * H + 10 * M + 1);
    assert_eq!(s.violations(), vec![(Kind::NotLoggedOut, 16 * H + 10 * M)]);
    let rows = s.rows(17 * H);
    assert_eq!(rows[0].shifts, 2);
    assert_eq!(rows[0].logged_in_scheduled_seconds, 16.0 * 3600.0);
}

#[test]
fn the_relief_is_the_earliest_start_then_the_smallest_id() {
    let mut s = Sim::new();
    s.shift(0, "x", "a", 0, 8 * H, "P1");
    s.shift(0, "r2", "b", 7 * H, 12 * H, "P1");
    s.shift(0, "r1", "c", 7 * H, 12 * H, "P1");
    s.shift(0, "late", "d", 8 * H, 12 * H, "P1");
    s.shift(0, "ended", "e", 2 * H, 8 * H, "P1"); // ends at x's end: not a relief
    for a in ["a", "b", "d", "e"] {
        s.login(0, a);
    }
    // c (shift r1) is the relief and is not there (late for its own shift, too).
    s.logout(7 * H + 50 * M, "a");
    let v: Vec<Violation> = s
        .raised()
        .into_iter()
        .filter(|v| v.kind == Kind::LeftBeforeRelief)
        .collect();
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(
        v[0].evidence.relief.as_ref().map(|r| r.shift.as_str()),
        Some("r1")
    );
}

#[test]
fn a_leg_closed_by_a_call_end_that_names_no_agent_counts_too() {
    let mut s = Sim::new();
    s.shift(0, "x", "a", 0, H, "");
    s.login(0, "a");
    s.call(50 * M, "call.answered", "c1", Some("a"));
    s.call(H + 15 * M, "call.ended", "c1", None);
    s.advance(H + 25 * M + 1);
    assert_eq!(s.violations(), vec![(Kind::NotLoggedOut, H + 25 * M)]);
}

#[test]
fn logged_in_time_counts_logins_before_the_shift_was_planned() {
    let mut s = Sim::new();
    s.login(0, "a");
    s.logout(2 * H, "a");
    s.login(3 * H, "a");
    // Planned at 4h for 1h..5h: 1h..2h and 3h..5h count (3 hours of 4).
    s.shift(4 * H, "x", "a", H, 5 * H, "");
    let rows = s.rows(6 * H);
    assert_eq!(rows[0].logged_in_scheduled_seconds, 3.0 * 3600.0);
    assert_eq!(rows[0].adherence, Some(0.75));
}

#[test]
fn schedule_views_tell_who_is_absent_now() {
    let mut s = Sim::new();
    s.shift(0, "x", "a", 0, 8 * H, "P1");
    s.shift(0, "y", "b", 0, 8 * H, "P2");
    s.shift(0, "z", "c", 9 * H, 10 * H, "");
    s.login(0, "a");
    s.advance(H);
    let now = s.engine.scheduled_now();
    let absent: Vec<&str> = now
        .iter()
        .filter(|x| !x.logged_in)
        .map(|x| x.agent.as_str())
        .collect();
    assert_eq!(now.len(), 2);
    assert_eq!(absent, vec!["b"]);
    let views = s.engine.shift_views(None, None, Some("b"));
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].violations, vec![Kind::LateLogin]);
}

#[test]
fn shifts_survive_a_checkpoint_and_judge_the_same() {
    let mut a = handover();
    a.advance(H);
    let cp = a.engine.checkpoint();
    let json = serde_json::to_string(&cp).expect("encode");
    let back: Checkpoint = serde_json::from_str(&json).expect("decode");
    let mut b = Sim {
        engine: Engine::restore(RulesConfig::default(), KpiRetention::All, back).expect("restore"),
        effects: Vec::new(),
        seq: a.seq,
    };
    for s in [&mut a, &mut b] {
        s.effects.clear();
        s.login(8 * H + 20 * M, "b");
        s.advance(9 * H);
    }
    assert_eq!(a.violations(), b.violations());
    assert_eq!(
        a.violations(),
        vec![
            (Kind::LateLogin, 8 * H + M),
            (Kind::NotLoggedOut, 8 * H + 30 * M)
        ]
    );
}
