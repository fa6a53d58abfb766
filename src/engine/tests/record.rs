//! Floor-discipline demerits, waivers, closed months, rulebook versions and outbound counts.

use super::*;

fn demerit(s: &mut Sim, at: i64, agent: &str, item: &str, points: Option<u32>) -> Applied {
    let p = points
        .map(|p| format!(r#","points":{p}"#))
        .unwrap_or_default();
    s.send(
        at,
        "demerit.recorded",
        &format!(r#""agent":"{agent}","item":"{item}","by":"王芳","note":"seen"{p}"#),
    )
}

fn waiver(s: &mut Sim, at: i64, ty: &str, id: u64) -> Applied {
    s.send(
        at,
        ty,
        &format!(r#""violation":{id},"by":"质检-陈","why":"checked""#),
    )
}

fn rejected(a: &Applied) -> &'static str {
    match a {
        Applied::Rejected { refusal, .. } => refusal.reason_label(),
        other => panic!("not rejected: {other:?}"),
    }
}

fn month(s: &Sim, end: i64) -> AppraisalRow {
    let rows = s
        .engine
        .appraisal(Period::parse("2026-11").unwrap(), Timestamp(T0 + end), &[]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows[0].clone()
}

#[test]
fn a_demerit_is_a_discipline_violation_with_its_points_and_evidence() {
    let mut s = Sim::new();
    assert!(matches!(
        demerit(&mut s, 0, "a", "mobile_phone", None),
        Applied::Applied { .. }
    ));
    assert!(matches!(
        demerit(&mut s, S, "a", "equipment_damage", Some(4)),
        Applied::Applied { .. }
    ));
    let v = s.raised();
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].kind, Kind::Discipline("mobile_phone".into()));
    assert_eq!(v[0].rule, Rule::Discipline);
    assert_eq!((v[0].points, v[1].points), (3, 4));
    assert_eq!(v[0].evidence.recorded_by.as_deref(), Some("王芳"));
    assert_eq!(v[0].evidence.note.as_deref(), Some("seen"));
    assert_eq!(
        v[0].to_record_json(),
        r#"{"rule":"discipline","kind":"mobile_phone","agent":"a","team":"unassigned","at":"2026-11-28T02:00:00.000Z","points":3}"#
    );
    let row = month(&s, M);
    assert_eq!(
        (row.violations_discipline, row.points, row.deduction),
        (2, 7, 70.0)
    );
}

#[test]
fn bad_demerits_are_refused_change_nothing_and_their_seq_is_not_seen() {
    let mut s = Sim::new();
    s.login(0, "a");
    s.state(0, "a", "not_ready", Some("break"));
    assert_eq!(
        rejected(&demerit(&mut s, M, "a", "sleeping", None)),
        "unknown_item"
    );
    assert_eq!(
        rejected(&demerit(&mut s, M, "a", "eating", Some(3))),
        "bad_points"
    );
    assert_eq!(
        rejected(&demerit(&mut s, M, "a", "equipment_damage", None)),
        "bad_points"
    );
    assert_eq!(
        rejected(&demerit(&mut s, M, "a", "equipment_damage", Some(6))),
        "bad_points"
    );
    assert!(matches!(
        demerit(&mut s, M, "a", "eating", Some(2)),
        Applied::Applied { .. }
    ));
    // The refused events raised nothing; the break's deadlines before them fired.
    assert_eq!(
        s.violations(),
        vec![(Kind::Discipline("eating".into()), M)],
        "{:?}",
        s.violations()
    );
    // A refused event's seq is not recorded: sent again with it, it is applied.
    let json = format!(
        r#"{{"type":"demerit.recorded","ts":{},"seq":100,"agent":"a","item":"nope","by":"x"}}"#,
        T0 + 2 * M
    );
    let ev = decode_event(&json).expect("decodes");
    assert!(matches!(
        s.engine.handle_event("test", &ev, &mut s.effects),
        Applied::Rejected { .. }
    ));
    let json = json.replace("nope", "noise");
    let ev = decode_event(&json).expect("decodes");
    assert!(matches!(
        s.engine.handle_event("test", &ev, &mut s.effects),
        Applied::Applied { .. }
    ));
}

#[test]
fn a_refused_event_still_moves_the_clock_and_fires_the_deadlines_before_it() {
    let mut s = Sim::new();
    s.login(0, "a");
    s.call(0, "call.ringing", "c1", Some("a"));
    let r = demerit(&mut s, 20 * S, "a", "sleeping", None);
    assert_eq!(
        r,
        Applied::Rejected {
            at: Timestamp(T0 + 20 * S),
            refusal: Refusal::UnknownItem("sleeping".into())
        }
    );
    assert_eq!(s.violations(), vec![(Kind::Late, 15 * S)]);
    assert_eq!(s.engine.now(), Some(Timestamp(T0 + 20 * S)));
}

#[test]
fn the_latest_waiver_decides_and_the_appraisal_follows() {
    let mut s = Sim::new();
    demerit(&mut s, 0, "a", "mobile_phone", None);
    let id = s.raised()[0].id;
    assert_eq!(
        rejected(&waiver(&mut s, S, "violation.unwaived", id)),
        "not_waived"
    );
    assert_eq!(
        rejected(&waiver(&mut s, S, "violation.waived", id + 1)),
        "unknown_violation"
    );
    assert!(matches!(
        waiver(&mut s, 2 * S, "violation.waived", id),
        Applied::Applied { .. }
    ));
    assert_eq!(month(&s, M).points, 0);
    // Waived twice: still one waiver's worth; one reversal counts it again.
    waiver(&mut s, 3 * S, "violation.waived", id);
    assert_eq!(month(&s, M).violations_discipline, 0);
    assert!(matches!(
        waiver(&mut s, 4 * S, "violation.unwaived", id),
        Applied::Applied { .. }
    ));
    let row = month(&s, M);
    assert_eq!(
        (row.violations_discipline, row.points, row.deduction),
        (1, 3, 30.0)
    );
    let chain: Vec<bool> = s
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::Waiver { waived, .. } => Some(*waived),
            _ => None,
        })
        .collect();
    assert_eq!(chain, vec![true, true, false]);
}

#[test]
fn a_closed_month_refuses_waivers_and_a_second_close() {
    let mut s = Sim::new();
    demerit(&mut s, 0, "a", "eating", None);
    let id = s.raised()[0].id;
    let digest = "ab".repeat(32);
    let close = |s: &mut Sim, at| {
        s.send(
            at,
            "period.closed",
            &format!(r#""period":"2026-11","by":"qa","digest":"{digest}""#),
        )
    };
    // 2026-12-01 00:00 local is 3 days and 14 hours after T0 (10:00 on the 28th).
    assert!(matches!(close(&mut s, 3 * D), Applied::Applied { .. }));
    assert_eq!(
        rejected(&waiver(&mut s, 3 * D + S, "violation.waived", id)),
        "period_closed"
    );
    assert_eq!(rejected(&close(&mut s, 3 * D + 2 * S)), "already_closed");
}

#[test]
fn a_rulebook_judges_from_its_instant_and_episodes_keep_theirs() {
    let mut s = Sim::new();
    s.login(0, "a");
    s.login(0, "b");
    s.call(0, "call.ringing", "c1", Some("a"));
    // From 5 s on: rings of 2 x 5 s, and 3 points a ring.
    let mut r = RulesConfig::default();
    r.ring_answer.rings = 2;
    r.ring_answer.points = 3;
    r.money_per_point = 20.0;
    let body = format!(
        r#""rulebook":{},"digest":"{}""#,
        r.rulebook_json(),
        r.rulebook_digest()
    );
    assert!(matches!(
        s.send(5 * S, "rulebook", &body),
        Applied::Applied { .. }
    ));
    // A rulebook never moves the clock.
    assert_eq!(s.engine.now(), Some(Timestamp(T0)));
    s.call(6 * S, "call.ringing", "c2", Some("b"));
    s.advance(30 * S);
    // c1 started under 15 s, c2 under 10 s; both take the points and money in force.
    assert_eq!(
        s.violations(),
        vec![(Kind::Late, 15 * S), (Kind::Late, 16 * S)]
    );
    let v = s.raised();
    assert_eq!((v[0].points, v[0].deduction), (3, 60.0));
    // The same rulebook again changes nothing.
    let before = s.engine.rulebooks().len();
    assert!(matches!(
        s.send(40 * S, "rulebook", &body),
        Applied::Applied { .. }
    ));
    assert_eq!(s.engine.rulebooks().len(), before);
}

#[test]
fn a_rulebook_that_changes_the_time_zone_or_lies_about_its_digest_is_refused() {
    let mut s = Sim::new();
    let r = RulesConfig {
        timezone_name: "UTC".into(),
        timezone: jiff::tz::TimeZone::UTC,
        ..RulesConfig::default()
    };
    let body = format!(
        r#""rulebook":{},"digest":"{}""#,
        r.rulebook_json(),
        r.rulebook_digest()
    );
    assert_eq!(rejected(&s.send(0, "rulebook", &body)), "bad_rulebook");
    let r = RulesConfig::default();
    let body = format!(
        r#""rulebook":{},"digest":"{}""#,
        r.rulebook_json(),
        "0".repeat(64)
    );
    assert_eq!(rejected(&s.send(0, "rulebook", &body)), "bad_rulebook");
}

#[test]
fn outbound_attempts_connects_and_the_latest_disposition() {
    let mut s = Sim::new();
    s.login(0, "a");
    let disp = |s: &mut Sim, at, call: &str, code: &str| {
        s.send(
            at,
            "call.disposition",
            &format!(r#""call":"{call}","agent":"a","code":"{code}""#),
        );
    };
    // Dialed twice: one attempt. Answered: connected once.
    s.call(0, "call.dialing", "o1", Some("a"));
    s.call(S, "call.dialing", "o1", Some("a"));
    s.call(10 * S, "call.answered", "o1", Some("a"));
    s.call(M, "call.ended", "o1", Some("a"));
    // A late disposition, after the call ended, then changed twice.
    disp(&mut s, 2 * M, "o1", "sale");
    disp(&mut s, 3 * M, "o1", "no_sale");
    disp(&mut s, 4 * M, "o1", "sale");
    // Not answered; an unknown code is kept and is no sale.
    s.call(5 * M, "call.dialing", "o2", Some("a"));
    s.call(6 * M, "call.ended", "o2", Some("a"));
    disp(&mut s, 6 * M, "o2", "VIP-回访");
    let row = month(&s, 10 * M);
    assert_eq!((row.outbound_attempts, row.outbound_connected), (2, 1));
    assert_eq!(row.outbound_connect_rate, Some(0.5));
    assert_eq!((row.sales, row.calls_answered), (1, 1));
    assert_eq!(row.conversion, Some(1.0));
    let today = s.engine.outbound_today();
    assert_eq!(today.len(), 1);
    assert_eq!(
        (today[0].1.attempts, today[0].1.connected, today[0].1.sales),
        (2, 1, 1)
    );
    let sales: Vec<i8> = s
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::Outbound {
                change: OutboundChange::Sale { delta, .. },
                ..
            } => Some(*delta),
            _ => None,
        })
        .collect();
    assert_eq!(sales, vec![1, -1, 1]);
}

#[test]
fn a_changed_disposition_moves_the_sale_to_its_own_day() {
    let mut s = Sim::new();
    s.call(0, "call.dialing", "o1", Some("a"));
    s.send(
        S,
        "call.disposition",
        r#""call":"o1","agent":"a","code":"sale""#,
    );
    // The next day it becomes no sale; the day before loses it.
    s.send(
        D,
        "call.disposition",
        r#""call":"o1","agent":"a","code":"no_sale""#,
    );
    let day = |d: &str| {
        s.engine
            .appraisal(Period::parse(d).unwrap(), Timestamp(T0 + 2 * D), &[])
    };
    assert_eq!(day("2026-11-28")[0].sales, 0);
    assert_eq!(day("2026-11-29")[0].sales, 0);
    assert_eq!(day("2026-11-28")[0].outbound_attempts, 1);
}
