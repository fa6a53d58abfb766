//! The demo's opening: a newcomer sees every agent state and the first violations within
//! 20 seconds, under the default rules. Pure: the demo stream replayed through the engine.

use std::collections::{BTreeMap, BTreeSet};

use floorwatch::config::RulesConfig;
use floorwatch::engine::{Effect, Engine};
use floorwatch::event::{decode_frame, Body};
use floorwatch::simulate::{Generator, SimConfig};
use floorwatch::time::Timestamp;

const T0: Timestamp = Timestamp(1_795_827_600_000);
const WINDOW: i64 = 20_000;
const MIN: i64 = 60_000;

struct Opening {
    states: BTreeSet<&'static str>,
    violations: BTreeMap<String, Timestamp>,
}

/// Replays the demo stream up to T0 + 20 s, noting every effective state any agent was in
/// after any event, and the first violation of each kind.
fn opening(agents: usize, seed: u64) -> Opening {
    let end = T0.plus(WINDOW);
    let mut engine = Engine::new(RulesConfig::default());
    let mut states = BTreeSet::new();
    let mut violations = BTreeMap::new();
    let mut effects = Vec::new();
    let mut note = |effects: &mut Vec<Effect>| {
        for e in effects.drain(..) {
            if let Effect::Violation(v) = e {
                violations
                    .entry(v.kind.as_str().to_string())
                    .or_insert(v.at);
            }
        }
    };
    for ev in Generator::new(SimConfig::demo(agents, seed), T0).take_while(|e| e.ts <= end) {
        let frame = decode_frame(&ev.to_json());
        assert!(frame.rejected.is_empty(), "{:?}", frame.rejected);
        for (_, e) in frame.events {
            engine.handle_event("demo", &e, &mut effects);
        }
        note(&mut effects);
        for v in engine.agent_views() {
            if let Some(s) = v.effective {
                states.insert(s.as_str());
            }
        }
    }
    engine.finish(end, &mut effects);
    note(&mut effects);
    Opening { states, violations }
}

#[test]
fn demo_shows_every_agent_state_and_violations_within_20_seconds() {
    for (agents, seed) in [(24, 1), (24, 2), (8, 3), (5, 4)] {
        let o = opening(agents, seed);
        for s in ["ready", "not_ready", "acw", "ringing", "talking"] {
            assert!(
                o.states.contains(s),
                "{agents} agents, seed {seed}: never {s}: {:?}",
                o.states
            );
        }
        // The staged incidents: a pause without reason, wrap-up without a call, a late answer.
        for k in ["no_reason", "acw_without_call", "late"] {
            let at = o.violations.get(k).copied();
            assert!(
                at.is_some_and(|t| t <= T0.plus(WINDOW)),
                "{agents} agents, seed {seed}: no {k} within 20 s: {:?}",
                o.violations
            );
        }
    }
}

#[test]
fn demo_opening_works_for_tiny_floors() {
    for agents in 1..=4 {
        let o = opening(agents, 1);
        assert!(
            o.states.contains("ready") || o.states.contains("not_ready"),
            "{agents}: {:?}",
            o.states
        );
        assert!(
            !o.violations.is_empty(),
            "{agents} agents: no violation in the first 20 s"
        );
    }
}

#[test]
fn demo_stream_is_in_time_order_with_consecutive_seq() {
    let evs: Vec<_> = Generator::new(SimConfig::demo(24, 1), T0)
        .take(5_000)
        .collect();
    assert!(evs[0].ts >= T0);
    for (k, w) in evs.windows(2).enumerate() {
        assert_eq!(w[1].seq, w[0].seq + 1, "at {k}");
        assert!(
            w[1].ts >= w[0].ts,
            "time goes back at {k}: {:?} then {:?}",
            w[0],
            w[1]
        );
    }
    // Everyone is logged in before anything else happens.
    assert!(evs[..24]
        .iter()
        .all(|e| e.kind == "agent.login" && e.ts == T0));
}

#[test]
fn demo_stream_is_deterministic_for_a_start_and_seed() {
    let take = |seed| -> Vec<String> {
        Generator::new(SimConfig::demo(24, seed), T0)
            .take(2_000)
            .map(|e| e.to_json())
            .collect()
    };
    assert_eq!(take(1), take(1));
    assert_ne!(take(1), take(2));
}

/// Replays the demo stream of `agents` seats from `seed` up to `T0 + until`; returns the
/// stream's events and the violations raised (kind, agent, at).
fn replay_demo(
    agents: usize,
    seed: u64,
    until: i64,
) -> (
    Vec<floorwatch::event::Event>,
    Vec<(String, String, Timestamp)>,
    Engine,
) {
    let end = T0.plus(until);
    let mut engine = Engine::new(RulesConfig::default());
    let mut effects = Vec::new();
    let mut events = Vec::new();
    for ev in Generator::new(SimConfig::demo(agents, seed), T0).take_while(|e| e.ts <= end) {
        let frame = decode_frame(&ev.to_json());
        assert!(frame.rejected.is_empty(), "{:?}", frame.rejected);
        for (_, e) in frame.events {
            engine.handle_event("demo", &e, &mut effects);
            events.push(e);
        }
    }
    engine.finish(end, &mut effects);
    let violations = effects
        .into_iter()
        .filter_map(|e| match e {
            Effect::Violation(v) => Some((v.kind.as_str().to_string(), v.agent.to_string(), v.at)),
            _ => None,
        })
        .collect();
    (events, violations, engine)
}

/// Seat `s` (from 0) of a 24-seat demo: its first agent, and the relief who takes over.
fn seat_agents(s: usize) -> (String, String) {
    (format!("a-{:04}", s + 1), format!("a-{:04}", s + 25))
}

#[test]
fn demo_hands_over_shifts_in_its_first_minutes() {
    for seed in 1..=3 {
        let (events, violations, _) = replay_demo(24, seed, 20 * MIN);
        // The roster goes out at the start, for every seat.
        let positions: BTreeSet<&str> = events
            .iter()
            .filter_map(|e| match &e.body {
                Body::ShiftScheduled { position, .. } => {
                    assert_eq!(e.ts, T0, "seed {seed}: roster sent late: {e:?}");
                    position.as_deref()
                }
                _ => None,
            })
            .collect();
        assert_eq!(positions.len(), 24, "seed {seed}: {positions:?}");
        // Three reliefs come within the first five minutes, and nobody else.
        let reliefs: BTreeSet<String> = events
            .iter()
            .filter_map(|e| match &e.body {
                Body::AgentLogin { agent, .. } if e.ts > T0 => {
                    assert!(e.ts <= T0.plus(5 * MIN), "seed {seed}: login at {}", e.ts);
                    Some(agent.to_string())
                }
                _ => None,
            })
            .collect();
        let expected: BTreeSet<String> = (5..8).map(|s| seat_agents(s).1).collect();
        assert_eq!(reliefs, expected, "seed {seed}");
        let attendance: Vec<&(String, String, Timestamp)> = violations
            .iter()
            .filter(|(k, _, _)| {
                ["late_login", "left_before_relief", "not_logged_out"].contains(&k.as_str())
            })
            .collect();
        let find = |kind: &str, agent: &str| {
            attendance
                .iter()
                .find(|(k, a, _)| k == kind && a == agent)
                .map(|(_, _, at)| *at)
        };
        // Seat 6: relieved on time, nobody raises anything.
        // Seat 7: the relief is late (its shift started at +3 min), the outgoing agent waits
        // for them and walks away without logging out.
        let (out7, relief7) = seat_agents(6);
        assert_eq!(
            find("late_login", &relief7),
            Some(T0.plus(4 * MIN)),
            "seed {seed}"
        );
        let nlo = find("not_logged_out", &out7);
        assert!(
            nlo.is_some_and(|t| t > T0.plus(14 * MIN) && t <= T0.plus(20 * MIN)),
            "seed {seed}: {attendance:?}"
        );
        // Seat 8: the outgoing agent logs out before the relief is there.
        let (out8, _) = seat_agents(7);
        let left = find("left_before_relief", &out8);
        assert!(
            left.is_some_and(|t| t >= T0.plus(2 * MIN) && t < T0.plus(4 * MIN)),
            "seed {seed}: {attendance:?}"
        );
        assert_eq!(attendance.len(), 3, "seed {seed}: {attendance:?}");
    }
}

#[test]
fn demo_sales_board_fills_up() {
    for seed in 1..=2 {
        let (_, _, engine) = replay_demo(24, seed, 4 * 60 * MIN);
        let today = engine.outbound_today();
        assert_eq!(today.len(), 3, "seed {seed}: {today:?}");
        for (team, c) in &today {
            let rate = c.connected as f64 / c.attempts.max(1) as f64;
            assert!(
                c.attempts > 100 && (0.3..=0.55).contains(&rate) && c.sales >= 5,
                "seed {seed}, {team}: {c:?}"
            );
        }
    }
}
