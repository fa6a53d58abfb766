//! The book's lifecycle at its boundaries, with engine time and wall time set by hand.

use super::*;
use crate::alert::sample_violation as violation;
use crate::engine::Kind;

const AT: Timestamp = Timestamp(1_764_321_317_000); // 2025-11-28T09:15:17Z
const WALL: Micros = 1_764_321_317_500_000; // half a second later, in µs
const E: Millis = 300_000;
const HOLD: Millis = 60_000;
const RESEND: Millis = 60_000;

fn settings(max: usize) -> Settings {
    Settings {
        escalate_after: E,
        resolve_hold: HOLD,
        resend_every: RESEND,
        max_alerts: max,
        language: Language::En,
        external_url: "http://floor:8080".into(),
    }
}

fn book_with(targets: Vec<TargetKind>, max: usize) -> AlertBook {
    let mut contacts = HashMap::new();
    contacts.insert(
        "hotline-1".to_string(),
        Contacts {
            lead: Some("zhang.wei".into()),
            supervisor: Some("li.na".into()),
        },
    );
    AlertBook::new(settings(max), targets, contacts)
}

fn book() -> AlertBook {
    book_with(vec![TargetKind::Alertmanager], 100)
}

fn body(b: &AlertBook, target: usize, wall: Micros) -> Option<Value> {
    b.poll_batch(target, wall, 100)
        .map(|batch| serde_json::from_slice(&batch.body).expect("json"))
}

fn deliver_all(b: &mut AlertBook, target: usize, wall: Micros) -> Vec<Micros> {
    let batch = b.poll_batch(target, wall, 100).expect("something due");
    b.handle_sent(target, &batch.items, wall, true)
}

#[test]
fn a_raised_violation_is_one_firing_alert_with_the_surface_labels() {
    let mut b = book();
    assert_eq!(
        b.handle_violation(&violation(7, Kind::Late, AT), WALL),
        Admitted::New
    );
    let got = body(&b, 0, WALL).expect("due");
    // Written by hand from the surface page: labels, the daemon's API as generator, startsAt
    // = the violation's at, endsAt four resend periods past the wall time of the send.
    let want = json!([{
        "labels": {
            "alertname": "FloorRuleViolation",
            "rule": "ring_answer",
            "kind": "late",
            "agent": "a-0042",
            "team": "hotline-1",
            "lead": "zhang.wei",
            "severity": "warning",
            "violation_id": "7"
        },
        "annotations": {
            "summary": "Agent a-0042 let call c-77 ring past 15s without answering (answer within 3 rings)",
            "description": "Rule ring_answer/late: limit 3 rings x 5s = 15s, raised after 15s, at 2025-11-28T09:15:17.000Z. Demerit points: 1. For team lead zhang.wei (team hotline-1) to act now.",
            "points": "1",
            "violation_at": "2025-11-28T09:15:17.000Z",
            "call": "c-77",
            "limit": "3 rings x 5s = 15s"
        },
        "startsAt": "2025-11-28T09:15:17.000Z",
        "endsAt": "2025-11-28T09:19:17.500Z",
        "generatorURL": "http://floor:8080/api/v1/violations/7"
    }]);
    assert_eq!(got, want);
    // The same violation replayed after a restart is not a second alert.
    assert_eq!(
        b.handle_violation(&violation(7, Kind::Late, AT), WALL),
        Admitted::Known
    );
    assert_eq!(b.len(), 1);
}

#[test]
fn firing_alerts_are_resent_once_per_period_and_not_before() {
    let mut b = book();
    b.handle_violation(&violation(1, Kind::Late, AT), WALL);
    assert_eq!(deliver_all(&mut b, 0, WALL), vec![0]);
    assert!(b.poll_batch(0, WALL + RESEND * 1_000 - 1, 100).is_none());
    assert_eq!(b.next_resend(0), Some(WALL + RESEND * 1_000));
    assert_eq!(b.pending(0, WALL + RESEND * 1_000), 1);
    // A resend is not a change: no lag is measured for it.
    assert!(deliver_all(&mut b, 0, WALL + RESEND * 1_000).is_empty());
}

#[test]
fn a_cleared_violation_resolves_at_its_clear_time_and_leaves_when_delivered() {
    let mut b = book();
    b.handle_violation(&violation(1, Kind::Late, AT), WALL);
    deliver_all(&mut b, 0, WALL);
    let _ = b.take_changes();
    b.handle_cleared(1, AT.plus(4_000), WALL + 4_000_000);
    let got = body(&b, 0, WALL + 4_000_000).expect("resolution due");
    assert_eq!(got[0]["endsAt"], "2025-11-28T09:15:21.000Z");
    assert_eq!(got[0]["startsAt"], "2025-11-28T09:15:17.000Z");
    let (put, removed) = b.take_changes();
    assert_eq!((put.len(), removed.len()), (1, 0));
    assert_eq!(put[0].ends_at, Some(AT.plus(4_000)));
    let lags = deliver_all(&mut b, 0, WALL + 4_250_000);
    assert_eq!(lags, vec![250_000]);
    assert!(b.is_empty());
    assert_eq!(b.take_changes(), (vec![], vec![1]));
}

#[test]
fn a_one_shot_alert_fires_for_the_hold_then_resolves() {
    let mut b = book();
    b.handle_violation(&violation(1, Kind::Missed, AT), WALL);
    b.handle_cleared(1, AT, WALL);
    let got = body(&b, 0, WALL).expect("due");
    assert_eq!(got[0]["labels"]["kind"], "missed");
    assert!(b.get(1).is_some_and(Alert::firing));
    assert_eq!(b.poll_timeout(), Some(AT.plus(HOLD + 1)));
    b.handle_timeout(AT.plus(HOLD), WALL);
    assert!(
        b.get(1).is_some_and(Alert::firing),
        "exactly at the hold it still fires"
    );
    b.handle_timeout(AT.plus(HOLD + 1), WALL);
    let a = b.get(1).expect("kept until delivered");
    assert_eq!(a.ends_at, Some(AT.plus(HOLD)));
    // Never escalated, though the hold ran out after... nothing: the violation had cleared.
    assert_eq!(a.escalated_at, None);
    let got = body(&b, 0, WALL).expect("resolution due");
    assert_eq!(got[0]["endsAt"], "2025-11-28T09:16:17.000Z");
}

#[test]
fn an_alert_open_past_escalate_after_gets_a_critical_twin_for_the_supervisor() {
    let mut b = book();
    b.handle_violation(&violation(3, Kind::PerBreak, AT), WALL);
    deliver_all(&mut b, 0, WALL);
    assert_eq!(b.poll_timeout(), Some(AT.plus(E + 1)));
    b.handle_timeout(AT.plus(E), WALL);
    assert_eq!(b.get(3).and_then(|a| a.escalated_at), None);
    b.handle_timeout(AT.plus(E + 1), WALL);
    assert_eq!(b.get(3).and_then(|a| a.escalated_at), Some(AT.plus(E)));
    let got = body(&b, 0, WALL).expect("escalation due");
    let alerts = got.as_array().expect("array");
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[0]["labels"]["severity"], "warning");
    assert_eq!(alerts[0]["labels"].get("escalate_to"), None);
    assert_eq!(alerts[1]["labels"]["severity"], "critical");
    assert_eq!(alerts[1]["labels"]["escalate_to"], "li.na");
    assert_eq!(alerts[1]["labels"]["reason"], "break");
    assert_eq!(alerts[1]["labels"]["violation_id"], "3");
    assert_eq!(alerts[1]["startsAt"], "2025-11-28T09:20:17.000Z");
    // Both resolve together.
    deliver_all(&mut b, 0, WALL);
    b.handle_cleared(3, AT.plus(E + 10_000), WALL);
    let got = body(&b, 0, WALL).expect("resolution due");
    assert_eq!(got[0]["endsAt"], got[1]["endsAt"]);
}

#[test]
fn a_clear_exactly_at_the_escalation_deadline_prevents_it() {
    let mut b = book();
    b.handle_violation(&violation(3, Kind::NoReason, AT), WALL);
    b.handle_cleared(3, AT.plus(E), WALL);
    b.handle_timeout(AT.plus(E + 1), WALL);
    assert_eq!(b.get(3).and_then(|a| a.escalated_at), None);
    assert_eq!(b.poll_timeout(), None);
}

#[test]
fn over_the_bound_the_oldest_resolved_alert_goes_else_the_new_one_is_dropped() {
    let mut b = book_with(vec![TargetKind::Alertmanager], 2);
    b.handle_violation(&violation(1, Kind::Late, AT), WALL);
    b.handle_violation(&violation(2, Kind::Late, AT), WALL);
    assert_eq!(
        b.handle_violation(&violation(3, Kind::Late, AT), WALL),
        Admitted::Dropped
    );
    b.handle_cleared(2, AT.plus(1), WALL);
    let _ = b.take_changes();
    assert_eq!(
        b.handle_violation(&violation(3, Kind::Late, AT), WALL),
        Admitted::New
    );
    assert!(b.get(2).is_none() && b.get(1).is_some() && b.get(3).is_some());
    let (_, removed) = b.take_changes();
    assert_eq!(removed, vec![2]);
}

#[test]
fn each_target_keeps_its_own_account() {
    let mut b = book_with(vec![TargetKind::Alertmanager, TargetKind::Webhook], 100);
    b.handle_violation(&violation(1, Kind::Late, AT), WALL);
    deliver_all(&mut b, 0, WALL);
    assert!(b.poll_batch(0, WALL, 100).is_none());
    let hook = body(&b, 1, WALL).expect("webhook still due");
    assert_eq!(hook["status"], "firing");
    assert_eq!(hook["alerts"][0]["status"], "firing");
    assert_eq!(hook["alerts"][0].get("endsAt"), None);
    deliver_all(&mut b, 1, WALL);
    // A webhook is told of changes only, never re-sent.
    assert!(b.poll_batch(1, WALL + 10 * RESEND * 1_000, 100).is_none());
    assert_eq!(b.next_resend(1), None);
    b.handle_cleared(1, AT.plus(2_000), WALL);
    deliver_all(&mut b, 0, WALL);
    assert!(
        b.get(1).is_some(),
        "kept until the webhook has the resolution too"
    );
    let hook = body(&b, 1, WALL).expect("resolution due");
    assert_eq!(hook["status"], "resolved");
    assert_eq!(hook["alerts"][0]["endsAt"], "2025-11-28T09:15:19.000Z");
    deliver_all(&mut b, 1, WALL);
    assert!(b.is_empty());
}

#[test]
fn a_refused_batch_is_not_sent_again_and_measures_no_lag() {
    let mut b = book();
    b.handle_violation(&violation(1, Kind::Late, AT), WALL);
    let batch = b.poll_batch(0, WALL, 100).expect("due");
    assert!(b.handle_sent(0, &batch.items, WALL, false).is_empty());
    assert!(b.poll_batch(0, WALL, 100).is_none());
}

#[test]
fn a_change_while_a_send_is_in_flight_stays_due() {
    let mut b = book();
    b.handle_violation(&violation(1, Kind::Late, AT), WALL);
    let batch = b.poll_batch(0, WALL, 100).expect("due");
    b.handle_cleared(1, AT.plus(1_000), WALL);
    b.handle_sent(0, &batch.items, WALL, true);
    assert_eq!(b.pending(0, WALL), 1);
    assert!(b.get(1).is_some());
}

#[test]
fn restored_alerts_are_due_everywhere_and_their_timers_rearm() {
    let mut b = book();
    b.handle_violation(&violation(1, Kind::Late, AT), WALL);
    b.handle_violation(&violation(2, Kind::Missed, AT), WALL);
    b.handle_cleared(2, AT, WALL);
    deliver_all(&mut b, 0, WALL);
    let (rows, _) = b.take_changes();
    let rows: Vec<Alert> = rows
        .iter()
        .map(|a| serde_json::from_str(&serde_json::to_string(a).expect("encode")).expect("decode"))
        .collect();
    let mut again = book();
    again.restore(rows);
    assert_eq!(again.pending(0, WALL), 2);
    assert_eq!(again.poll_timeout(), Some(AT.plus(HOLD + 1)));
    again.handle_timeout(AT.plus(E + 1), WALL);
    assert_eq!(again.get(1).and_then(|a| a.escalated_at), Some(AT.plus(E)));
    assert_eq!(again.get(2).and_then(|a| a.ends_at), Some(AT.plus(HOLD)));
}

#[test]
fn chinese_is_the_default_language_of_the_floor() {
    let mut b = book();
    b.settings.language = Language::Zh;
    b.handle_violation(&violation(1, Kind::AcwOverrun, AT), WALL);
    let got = body(&b, 0, WALL).expect("due");
    assert_eq!(
        got[0]["annotations"]["summary"],
        "坐席 a-0042 事后工作超过 15s"
    );
    assert!(
        got[0]["annotations"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("请组长 zhang.wei（班组 hotline-1）立即处理")),
        "{got}"
    );
    assert_eq!(got[0]["labels"]["kind"], "acw_overrun");
    assert_eq!(got[0]["labels"].get("call"), None);
}

#[test]
fn an_alert_in_flight_is_in_no_other_request_until_answered() {
    let mut b = book();
    b.handle_violation(&violation(1, Kind::Late, AT), WALL);
    b.handle_violation(&violation(2, Kind::Late, AT), WALL);
    let first = b.take_batch(0, WALL, 1).expect("due");
    assert_eq!(first.items, [(1, 1)]);
    // The second request gets the other alert only; both are still pending.
    let second = b.take_batch(0, WALL, 100).expect("due");
    assert_eq!(second.items, [(2, 1)]);
    assert!(b.take_batch(0, WALL, 100).is_none());
    assert_eq!(b.pending(0, WALL), 2);
    // A change while alert 1 is in flight waits for the answer: versions go out in order.
    b.handle_cleared(1, AT.plus(1_000), WALL);
    assert!(b.poll_batch(0, WALL, 100).is_none());
    b.handle_sent(0, &first.items, WALL, true);
    let resolution = b.take_batch(0, WALL, 100).expect("the resolution");
    assert_eq!(resolution.items, [(1, 2)]);
    // A failed request makes its alerts due again; an answered one does not.
    b.handle_failed(0, &second.items);
    b.handle_sent(0, &resolution.items, WALL, true);
    assert!(b.get(1).is_none(), "resolved and delivered");
    let again = b.take_batch(0, WALL, 100).expect("retried");
    assert_eq!(again.items, [(2, 1)]);
    // Its re-send time waits for the answer too.
    assert_eq!(b.next_resend(0), None);
    b.handle_sent(0, &again.items, WALL, true);
    assert_eq!(b.next_resend(0), Some(WALL + RESEND * 1_000));
}

#[test]
fn requests_dropped_at_shutdown_leave_their_alerts_due() {
    let mut b = book();
    b.handle_violation(&violation(1, Kind::Late, AT), WALL);
    b.take_batch(0, WALL, 100).expect("due");
    assert!(b.poll_batch(0, WALL, 100).is_none());
    b.land_all(0);
    assert_eq!(b.take_batch(0, WALL, 100).expect("due").items, [(1, 1)]);
}
