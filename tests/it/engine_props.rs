//! Properties of the engine over random streams: the same stream gives the same violations
//! every time; interleaving `handle_timeout` calls (as the live daemon does while sources
//! are caught up) changes nothing; every timer fires or is cancelled.

use floorwatch::config::RulesConfig;
use floorwatch::engine::{Effect, Engine, Violation};
use floorwatch::event::{decode_event, Event};
use floorwatch::time::Timestamp;
use proptest::prelude::*;

use crate::daemon_support::raised;

const T0: i64 = 1_795_831_200_000;
const AGENTS: [&str; 3] = ["a1", "a2", "a3"];
const CALLS: [&str; 4] = ["c1", "c2", "c3", "c4"];
const REASONS: [&str; 6] = ["", "break", "meeting", "BREAK", "meal", "training"];

#[derive(Clone, Debug)]
enum Op {
    Login(usize),
    Logout(usize),
    State(usize, u8, usize),
    Queued(usize),
    Ringing(usize, usize),
    Answered(usize, usize),
    NoAnswer(usize, usize),
    Abandoned(usize),
    Ended(usize, Option<usize>),
    Dialing(usize, usize),
    Approval(usize, usize, u32),
}

fn op() -> impl Strategy<Value = Op> {
    let a = 0..AGENTS.len();
    let c = 0..CALLS.len();
    prop_oneof![
        2 => a.clone().prop_map(Op::Login),
        1 => a.clone().prop_map(Op::Logout),
        4 => (a.clone(), 0u8..3, 0..REASONS.len()).prop_map(|(a, s, r)| Op::State(a, s, r)),
        2 => c.clone().prop_map(Op::Queued),
        3 => (c.clone(), a.clone()).prop_map(|(c, a)| Op::Ringing(c, a)),
        3 => (c.clone(), a.clone()).prop_map(|(c, a)| Op::Answered(c, a)),
        1 => (c.clone(), a.clone()).prop_map(|(c, a)| Op::NoAnswer(c, a)),
        1 => c.clone().prop_map(Op::Abandoned),
        2 => (c.clone(), proptest::option::of(a.clone())).prop_map(|(c, a)| Op::Ended(c, a)),
        1 => (c.clone(), a.clone()).prop_map(|(c, a)| Op::Dialing(c, a)),
        1 => (a, 2..6usize, 1u32..40).prop_map(|(a, r, m)| Op::Approval(a, r.min(5), m)),
    ]
}

/// A step of a stream: time delta (ms; may be negative: a late event), whether to repeat
/// the previous seq (a duplicate), the operation.
fn stream() -> impl Strategy<Value = Vec<(i64, bool, Op)>> {
    let dt = prop_oneof![
        3 => Just(0i64),
        10 => 1i64..20_000,
        2 => 14_000i64..16_001,
        2 => 60_000i64..1_200_000,
        1 => -5_000i64..0,
    ];
    proptest::collection::vec((dt, proptest::bool::weighted(0.05), op()), 1..120)
}

fn to_events(steps: &[(i64, bool, Op)]) -> Vec<Event> {
    let mut t = T0;
    let mut seq = 0u64;
    let mut out = Vec::new();
    for (dt, dup, op) in steps {
        t += dt;
        if !(*dup && seq > 0) {
            seq += 1;
        }
        let body = match op {
            Op::Login(a) => format!(
                r#""type":"agent.login","agent":"{}","team":"t{}""#,
                AGENTS[*a],
                a % 2
            ),
            Op::Logout(a) => format!(r#""type":"agent.logout","agent":"{}""#, AGENTS[*a]),
            Op::State(a, s, r) => {
                let st = ["ready", "not_ready", "acw"][*s as usize];
                format!(
                    r#""type":"agent.state","agent":"{}","state":"{st}","reason":"{}""#,
                    AGENTS[*a], REASONS[*r]
                )
            }
            Op::Queued(c) => format!(r#""type":"call.queued","call":"{}","queue":"q""#, CALLS[*c]),
            Op::Ringing(c, a) => format!(
                r#""type":"call.ringing","call":"{}","agent":"{}""#,
                CALLS[*c], AGENTS[*a]
            ),
            Op::Answered(c, a) => format!(
                r#""type":"call.answered","call":"{}","agent":"{}""#,
                CALLS[*c], AGENTS[*a]
            ),
            Op::NoAnswer(c, a) => format!(
                r#""type":"call.no_answer","call":"{}","agent":"{}""#,
                CALLS[*c], AGENTS[*a]
            ),
            Op::Abandoned(c) => format!(r#""type":"call.abandoned","call":"{}""#, CALLS[*c]),
            Op::Ended(c, Some(a)) => format!(
                r#""type":"call.ended","call":"{}","agent":"{}""#,
                CALLS[*c], AGENTS[*a]
            ),
            Op::Ended(c, None) => format!(r#""type":"call.ended","call":"{}""#, CALLS[*c]),
            Op::Dialing(c, a) => format!(
                r#""type":"call.dialing","call":"{}","agent":"{}""#,
                CALLS[*c], AGENTS[*a]
            ),
            Op::Approval(a, r, m) => format!(
                r#""type":"approval.granted","agent":"{}","reason":"{}","minutes":{},"by":"lead""#,
                AGENTS[*a],
                REASONS[*r],
                f64::from(*m) / 4.0
            ),
        };
        let json = format!(r#"{{"ts":{t},"seq":{seq},{body}}}"#);
        out.push(decode_event(&json).expect("generated event decodes"));
    }
    out
}

/// Replays `events` and finishes at the last applied time + 2 h.
fn replay(events: &[Event], timeouts: &[(usize, i64)]) -> (Vec<Violation>, Engine) {
    let mut e = Engine::new(RulesConfig::default());
    let mut fx = Vec::new();
    for (i, ev) in events.iter().enumerate() {
        // A duplicate is not applied, so its ts bounds nothing.
        let duplicate = ev
            .seq
            .is_some_and(|s| e.highest_seq("src").is_some_and(|h| s <= h));
        for (at, frac) in timeouts {
            if *at == i && !duplicate {
                // Live, the clock is pushed to at most the next event's time.
                let lo = e.now().map(|n| n.0).unwrap_or(ev.ts.0);
                let hi = ev.ts.0.max(lo);
                let x = lo + (hi - lo) * frac / 100;
                e.handle_timeout(Timestamp(x), &mut fx);
            }
        }
        e.handle_event("src", ev, &mut fx);
    }
    let end = e.now().unwrap_or(Timestamp(T0)).plus(2 * 3_600_000);
    e.finish(end, &mut fx);
    (raised(&fx), e)
}

fn record(v: &Violation) -> String {
    v.to_record_json()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn same_stream_same_violations(steps in stream()) {
        let events = to_events(&steps);
        let (a, _) = replay(&events, &[]);
        let (b, _) = replay(&events, &[]);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn live_timeouts_between_events_change_nothing(
        steps in stream(),
        timeouts in proptest::collection::vec((0usize..120, 0i64..=100), 0..40),
    ) {
        let events = to_events(&steps);
        let (a, _) = replay(&events, &[]);
        let (b, _) = replay(&events, &timeouts);
        let ra: Vec<String> = a.iter().map(record).collect();
        let rb: Vec<String> = b.iter().map(record).collect();
        prop_assert_eq!(ra, rb);
        let ids_a: Vec<u64> = a.iter().map(|v| v.id).collect();
        let ids_b: Vec<u64> = b.iter().map(|v| v.id).collect();
        prop_assert_eq!(ids_a, ids_b);
    }

    #[test]
    fn every_timer_fires_or_is_cancelled(steps in stream()) {
        let mut events = to_events(&steps);
        let last = events.last().map(|e| e.ts.0).unwrap_or(T0);
        let mut seq = 1_000_000;
        let mut tail = |body: String| {
            seq += 1;
            decode_event(&format!(r#"{{"ts":{last},"seq":{seq},{body}}}"#)).expect("decodes")
        };
        for c in CALLS {
            events.push(tail(format!(r#""type":"call.abandoned","call":"{c}""#)));
            events.push(tail(format!(r#""type":"call.ended","call":"{c}""#)));
        }
        for a in AGENTS {
            events.push(tail(format!(r#""type":"agent.logout","agent":"{a}""#)));
        }
        let mut e = Engine::new(RulesConfig::default());
        let mut fx = Vec::new();
        for ev in &events {
            e.handle_event("src", ev, &mut fx);
        }
        prop_assert_eq!(e.poll_timeout(), None);
        prop_assert!(e.open_violations().is_empty());
        // Every raised violation was cleared exactly once.
        let raised = raised(&fx).len();
        let cleared = fx.iter().filter(|x| matches!(x, Effect::Cleared { .. })).count();
        prop_assert_eq!(raised, cleared);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 150, ..ProptestConfig::default() })]

    /// A checkpoint taken anywhere, written as JSON and restored, continues exactly like the
    /// engine that never stopped: same violations (with ids), same clears, same appraisal.
    #[test]
    fn restored_checkpoint_continues_identically(steps in stream(), cut in 0usize..120) {
        use floorwatch::engine::KpiRetention;
        use floorwatch::time::Period;
        let events = to_events(&steps);
        let cut = cut.min(events.len());
        let month = Period::parse("2026-11").expect("period");
        let mut a = Engine::with_retention(RulesConfig::default(), KpiRetention::All);
        let mut b = Engine::with_retention(RulesConfig::default(), KpiRetention::All);
        let (mut fa, mut fb) = (Vec::new(), Vec::new());
        for ev in &events[..cut] {
            a.handle_event("src", ev, &mut fa);
            b.handle_event("src", ev, &mut fb);
        }
        let json = serde_json::to_string(&b.checkpoint()).expect("checkpoint serializes");
        let cp = serde_json::from_str(&json).expect("checkpoint deserializes");
        let mut b = Engine::restore(RulesConfig::default(), KpiRetention::All, cp).expect("restores");
        fa.clear();
        for ev in &events[cut..] {
            a.handle_event("src", ev, &mut fa);
            b.handle_event("src", ev, &mut fb);
        }
        let end = a.now().unwrap_or(Timestamp(T0)).plus(3_600_000);
        a.finish(end, &mut fa);
        b.finish(end, &mut fb);
        let clears = |fx: &[Effect]| -> Vec<(u64, Timestamp)> {
            fx.iter()
                .filter_map(|e| match e {
                    Effect::Cleared { id, at, .. } => Some((*id, *at)),
                    _ => None,
                })
                .collect()
        };
        // fb also holds the effects before the cut; compare the tails.
        let tail_b = &fb[fb.len() - fa.len()..];
        prop_assert_eq!(raised(&fa), raised(tail_b));
        prop_assert_eq!(clears(&fa), clears(tail_b));
        prop_assert_eq!(a.appraisal(month, end, &[]), b.appraisal(month, end, &[]));
        prop_assert_eq!(a.queue_views(), b.queue_views());
        prop_assert_eq!(a.agent_views(), b.agent_views());
        prop_assert_eq!(a.poll_timeout(), b.poll_timeout());
    }
}
