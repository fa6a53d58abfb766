//! The engine fed an arbitrary sequence of valid events (small id sets, so that agents,
//! calls and queues meet) and timeouts, with small limits. Invariants checked after every
//! step: no panic; the clock never goes back; `poll_timeout` lies after the clock; every
//! violation is at or before when it was detected, measures a non-negative duration, and is
//! cleared at most once and only after it was raised; per-agent open counts match the open
//! list; tracked agents and queues stay within their limits; the same input gives the same
//! effects.
#![no_main]

use std::collections::BTreeSet;

use arbitrary::Arbitrary;
use floorwatch::config::{EngineLimits, RulesConfig};
use floorwatch::engine::{Applied, Effect, Engine, KpiRetention};
use floorwatch::event::{
    Body, Event, Id, PresenceState, SnapshotAgent, SnapshotCall, SnapshotCallState,
};
use floorwatch::time::Timestamp;
use libfuzzer_sys::fuzz_target;

const T0: i64 = 1_795_831_200_000;
const REASONS: [&str; 6] = ["", "break", "meal", "meeting", "training", "smoke"];

#[derive(Arbitrary, Debug, Clone, Copy)]
enum St {
    Ready,
    NotReady,
    Acw,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum CallSt {
    Queued,
    Ringing,
    Talking,
}

#[derive(Arbitrary, Debug, Clone)]
enum Op {
    Login {
        agent: u8,
        team: Option<u8>,
        state: Option<St>,
        reason: u8,
    },
    Logout {
        agent: u8,
    },
    State {
        agent: u8,
        state: St,
        reason: u8,
        call: Option<u8>,
    },
    Queued {
        call: u8,
        queue: u8,
    },
    Ringing {
        call: u8,
        agent: u8,
        queue: Option<u8>,
    },
    Answered {
        call: u8,
        agent: u8,
    },
    NoAnswer {
        call: u8,
        agent: u8,
    },
    Abandoned {
        call: u8,
    },
    Dialing {
        call: u8,
        agent: u8,
        queue: Option<u8>,
    },
    Ended {
        call: u8,
        agent: Option<u8>,
    },
    Approval {
        agent: u8,
        reason: u8,
        minutes: u16,
    },
    Snapshot {
        agents: Vec<(u8, St, u8, u16)>,
        calls: Vec<(u8, Option<u8>, CallSt, u8, u16)>,
    },
    /// Time passes without an event.
    Timeout,
}

#[derive(Arbitrary, Debug, Clone)]
struct Step {
    /// Milliseconds after the previous step (may be negative: a late event).
    dt: i32,
    /// A seq, sometimes repeated or going back (duplicates).
    seq: Option<u8>,
    source: bool,
    op: Op,
}

fn agent(n: u8) -> Id {
    Id::from(format!("a{}", n % 6))
}
fn call(n: u8) -> Id {
    Id::from(format!("c{}", n % 6))
}
fn queue(n: u8) -> Id {
    Id::from(format!("q{}", n % 4))
}
fn reason(n: u8) -> Id {
    Id::from(REASONS[usize::from(n) % REASONS.len()])
}
fn st(s: St) -> PresenceState {
    match s {
        St::Ready => PresenceState::Ready,
        St::NotReady => PresenceState::NotReady,
        St::Acw => PresenceState::Acw,
    }
}

fn body(op: &Op, t: i64) -> Option<Body> {
    Some(match op {
        Op::Login {
            agent: a,
            team,
            state,
            reason: r,
        } => Body::AgentLogin {
            agent: agent(*a),
            team: team.map(|t| Id::from(format!("t{}", t % 3))),
            name: None,
            extension: None,
            state: state.map(st),
            reason: if matches!(state, Some(St::NotReady)) {
                reason(*r)
            } else {
                Id::default()
            },
        },
        Op::Logout { agent: a } => Body::AgentLogout { agent: agent(*a) },
        Op::State {
            agent: a,
            state,
            reason: r,
            call: c,
        } => Body::AgentState {
            agent: agent(*a),
            state: st(*state),
            reason: if matches!(state, St::NotReady) {
                reason(*r)
            } else {
                Id::default()
            },
            call: c.map(call),
            team: None,
        },
        Op::Queued { call: c, queue: q } => Body::CallQueued {
            call: call(*c),
            queue: queue(*q),
        },
        Op::Ringing {
            call: c,
            agent: a,
            queue: q,
        } => Body::CallRinging {
            call: call(*c),
            agent: agent(*a),
            queue: q.map(queue),
        },
        Op::Answered { call: c, agent: a } => Body::CallAnswered {
            call: call(*c),
            agent: agent(*a),
        },
        Op::NoAnswer { call: c, agent: a } => Body::CallNoAnswer {
            call: call(*c),
            agent: agent(*a),
        },
        Op::Abandoned { call: c } => Body::CallAbandoned { call: call(*c) },
        Op::Dialing {
            call: c,
            agent: a,
            queue: q,
        } => Body::CallDialing {
            call: call(*c),
            agent: agent(*a),
            queue: q.map(queue),
        },
        Op::Ended { call: c, agent: a } => Body::CallEnded {
            call: call(*c),
            agent: a.map(agent),
        },
        Op::Approval {
            agent: a,
            reason: r,
            minutes,
        } => Body::ApprovalGranted {
            agent: agent(*a),
            reason: reason(*r),
            duration_ms: (i64::from(*minutes) % 240 + 1) * 60_000,
            by: Id::from("lead"),
        },
        Op::Snapshot { agents, calls } => Body::Snapshot {
            agents: agents
                .iter()
                .take(8)
                .map(|(a, s, r, ago)| SnapshotAgent {
                    agent: agent(*a),
                    team: None,
                    presence: st(*s),
                    reason: if matches!(s, St::NotReady) {
                        reason(*r)
                    } else {
                        Id::default()
                    },
                    since: Timestamp(t - i64::from(*ago) * 100),
                })
                .collect(),
            calls: calls
                .iter()
                .take(8)
                .map(|(c, q, s, a, ago)| SnapshotCall {
                    call: call(*c),
                    queue: q.map(queue),
                    state: match s {
                        CallSt::Queued => SnapshotCallState::Queued,
                        CallSt::Ringing => SnapshotCallState::Ringing,
                        CallSt::Talking => SnapshotCallState::Talking,
                    },
                    agent: (!matches!(s, CallSt::Queued)).then(|| agent(*a)),
                    since: Timestamp(t - i64::from(*ago) * 100),
                })
                .collect(),
        },
        Op::Timeout => return None,
    })
}

fn rules() -> RulesConfig {
    RulesConfig {
        limits: EngineLimits {
            max_agents: 4,
            max_calls: 4,
            max_queues: 3,
            // Small, so that the fuzzer reaches the limits' refusals too.
            max_shifts: 3,
            max_sources: 3,
        },
        ..RulesConfig::default()
    }
}

/// Runs the steps, checking invariants; returns every effect in order.
fn run(steps: &[Step]) -> Vec<Effect> {
    let limits = rules().limits;
    let mut engine = Engine::with_retention(rules(), KpiRetention::All);
    let mut all = Vec::new();
    let mut out = Vec::new();
    let mut t = T0;
    let mut raised = BTreeSet::new();
    let mut cleared = BTreeSet::new();
    for step in steps.iter().take(400) {
        t += i64::from(step.dt).clamp(-600_000, 3_600_000);
        let before = engine.now();
        out.clear();
        match body(&step.op, t) {
            None => engine.handle_timeout(Timestamp(t), &mut out),
            Some(body) => {
                let ev = Event {
                    ts: Timestamp(t),
                    seq: step.seq.map(u64::from),
                    id: None,
                    body,
                };
                let source = if step.source { "s1" } else { "s2" };
                let r = engine.handle_event(source, &ev, &mut out);
                if matches!(r, Applied::Duplicate | Applied::Refused(_)) {
                    assert!(out.is_empty(), "{r:?} produced effects {out:?}");
                    assert_eq!(engine.now(), before, "{r:?} moved the clock");
                }
            }
        }
        let now = engine.now();
        assert!(now >= before, "clock went back: {before:?} -> {now:?}");
        if let (Some(p), Some(n)) = (engine.poll_timeout(), now) {
            assert!(p > n, "poll_timeout {p:?} not after the clock {n:?}");
        }
        for e in &out {
            match e {
                Effect::Violation(v) => {
                    assert!(v.at <= v.detected_at, "{v:?}");
                    assert!(now.is_some_and(|n| v.detected_at <= n), "{v:?}");
                    assert!(v.evidence.raised_after_ms >= 0, "{v:?}");
                    assert!(raised.insert(v.id), "raised twice: {v:?}");
                }
                Effect::Cleared { id, .. } => {
                    assert!(raised.contains(id), "cleared before raised: {id}");
                    assert!(cleared.insert(*id), "cleared twice: {id}");
                }
                _ => {}
            }
        }
        let open = engine.open_violations();
        let views = engine.agent_views();
        for a in &views {
            let n = open.iter().filter(|v| v.agent == a.agent).count();
            assert_eq!(a.open_violations as usize, n, "open count of {}", a.agent);
        }
        assert!(views.len() <= limits.max_agents, "{} agents", views.len());
        assert!(engine.queue_views().len() <= limits.max_queues);
        all.append(&mut out);
    }
    out.clear();
    engine.finish(Timestamp(t + 86_400_000), &mut out);
    all.append(&mut out);
    all
}

fuzz_target!(|steps: Vec<Step>| {
    let a = run(&steps);
    // Replay gives identical effects.
    let b = run(&steps);
    assert!(a == b, "two runs of the same steps differ");
});
