//! The demo's opening: a newcomer sees every agent state and the first violations within
//! 20 seconds, under the default rules. Pure: the demo stream replayed through the engine.

use std::collections::{BTreeMap, BTreeSet};

use floorwatch::config::RulesConfig;
use floorwatch::engine::{Effect, Engine};
use floorwatch::event::decode_frame;
use floorwatch::simulate::{Generator, SimConfig};
use floorwatch::time::Timestamp;

const T0: Timestamp = Timestamp(1_795_827_600_000);
const WINDOW: i64 = 20_000;

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
