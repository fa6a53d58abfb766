//! The simulator's options, judged by the real engine and the real binary: the roster
//! (shifts, handovers, attendance misconduct), the outbound campaign (attempts, connects,
//! dispositions) and the realistic stream shape; and that without them the stream is
//! byte for byte what it was.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use floorwatch::event::{Body, Event};
use floorwatch::simulate::{Misconduct, Roster, SimConfig};
use floorwatch::time::Timestamp;

use super::simulate::{decode_all, eight_hours, ndjson, replay_kinds, HOUR, NOT_SIMULATED, START};

const MIN: i64 = 60_000;
const ATTENDANCE: [&str; 3] = ["late_login", "left_before_relief", "not_logged_out"];

/// `agents` agents in pairs at seats, 4-hour shifts, over `hours`.
fn roster_floor(agents: usize, seed: u64, misconduct: Misconduct, hours: i64) -> SimConfig {
    let mut cfg = SimConfig::new(agents, 4, seed);
    cfg.duration = Some(hours * HOUR);
    cfg.misconduct = misconduct;
    cfg.with_roster(Roster::handover(agents, 2, 4 * HOUR))
}

/// No misconduct at all, except what the test asks for.
fn only(f: impl FnOnce(&mut Misconduct)) -> Misconduct {
    let mut m = Misconduct {
        unruly_share: 1.0,
        late_answer: 0.0,
        ring_out: 0.0,
        break_overrun: 0.0,
        break_hog: 0.0,
        no_reason: 0.0,
        unknown_reason: 0.0,
        meeting_share: 0.2,
        unapproved: 0.0,
        approval_overstay: 0.0,
        acw_overrun: 0.0,
        acw_without_call: 0.0,
        late_login: 0.0,
        absent: 0.0,
        left_early: 0.0,
        forgot_logout: 0.0,
    };
    f(&mut m);
    m
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[test]
fn without_the_new_options_the_stream_is_byte_for_byte_what_it_was() {
    // The stream of `simulate --agents 20 --teams 3 --seed 7 --duration 8h` before rosters,
    // campaigns and shapes existed. Benchmarks and soak runs compare against it.
    let text = ndjson(eight_hours(20, 7, Misconduct::modest()));
    assert_eq!(text.len(), 929_632);
    assert_eq!(fnv1a(text.as_bytes()), 0xae4b_3dca_ab7f_681d);
}

// ---- the roster ----

#[test]
fn roster_is_deterministic_for_a_seed_and_sent_ahead_of_the_shifts() {
    let a = ndjson(roster_floor(40, 7, Misconduct::modest(), 24));
    assert_eq!(a, ndjson(roster_floor(40, 7, Misconduct::modest(), 24)));
    assert_ne!(a, ndjson(roster_floor(40, 8, Misconduct::modest(), 24)));
    let events = decode_all(&a);
    let mut agents = BTreeSet::new();
    let mut positions: BTreeMap<String, Vec<(Timestamp, Timestamp, String)>> = BTreeMap::new();
    for e in &events {
        if let Body::ShiftScheduled {
            agent,
            start,
            end,
            position,
            ..
        } = &e.body
        {
            // A day's roster fits one publication, at the start, before any shift begins.
            assert_eq!(e.ts, START, "{e:?}");
            assert!(*start > e.ts);
            agents.insert(agent.to_string());
            positions
                .entry(position.as_deref().unwrap_or("none").to_string())
                .or_default()
                .push((*start, *end, agent.to_string()));
        }
    }
    assert_eq!(agents.len(), 40);
    assert_eq!(positions.len(), 20, "{:?}", positions.keys());
    for (p, shifts) in &mut positions {
        shifts.sort();
        assert!(shifts.len() >= 5, "{p}: {shifts:?}");
        for w in shifts.windows(2) {
            // Each shift hands over to the next: the relief starts at the end, at another agent.
            assert_eq!(w[0].1, w[1].0, "{p}: {w:?}");
            assert_ne!(w[0].2, w[1].2, "{p}: {w:?}");
        }
    }
}

#[test]
fn roster_with_misconduct_raises_every_attendance_kind_and_without_none() {
    for seed in 1..=3 {
        let kinds = replay_kinds(
            &decode_all(&ndjson(roster_floor(40, seed, Misconduct::unruly(), 24))),
            None,
        );
        for k in ATTENDANCE {
            assert!(kinds.contains_key(k), "seed {seed}: no {k} in {kinds:?}");
        }
        let mut compliant = roster_floor(40, seed, Misconduct::none(), 24);
        compliant.outbound = Some(0.5);
        let events = decode_all(&ndjson(compliant));
        assert!(events
            .iter()
            .any(|e| e.body.type_name() == "shift.scheduled"));
        let kinds = replay_kinds(&events, None);
        assert!(kinds.is_empty(), "seed {seed}: compliant floor: {kinds:?}");
    }
}

#[test]
fn roster_floor_with_campaign_contains_every_simulated_event_type() {
    let mut cfg = roster_floor(40, 2, Misconduct::unruly(), 24);
    cfg.outbound = Some(0.3);
    let events = decode_all(&ndjson(cfg));
    let seen: BTreeSet<&str> = events.iter().map(|e| e.body.type_name()).collect();
    for t in floorwatch::event::EVENT_TYPES {
        assert_eq!(
            seen.contains(t),
            !NOT_SIMULATED.contains(&t),
            "{t}: {seen:?}"
        );
    }
}

#[test]
fn outgoing_agents_wait_for_a_late_relief_and_are_released_when_a_no_show_is_cancelled() {
    // Only reliefs misbehave: late or absent. The agents they relieve keep the rules, so
    // the engine must find nothing but late logins.
    let m = only(|m| {
        m.late_login = 0.4;
        m.absent = 0.2;
    });
    for seed in 1..=3 {
        let events = decode_all(&ndjson(roster_floor(40, seed, m, 24)));
        let cancelled = events
            .iter()
            .filter(|e| e.body.type_name() == "shift.cancelled")
            .count();
        assert!(cancelled > 0, "seed {seed}: no shift cancelled");
        let kinds = replay_kinds(&events, None);
        assert!(kinds.get("late_login").is_some_and(|n| *n > 5), "{kinds:?}");
        assert_eq!(kinds.len(), 1, "seed {seed}: {kinds:?}");
    }
}

#[test]
fn agents_take_calls_only_while_logged_in_on_their_shifts() {
    let events = decode_all(&ndjson(roster_floor(40, 4, Misconduct::unruly(), 24)));
    let mut shifts: BTreeMap<String, Vec<(Timestamp, Timestamp)>> = BTreeMap::new();
    let mut logged_in = BTreeSet::new();
    let mut calls = 0;
    for e in &events {
        match &e.body {
            Body::ShiftScheduled {
                agent, start, end, ..
            } => shifts
                .entry(agent.to_string())
                .or_default()
                .push((*start, *end)),
            Body::AgentLogin { agent, .. } => {
                // Shortly before a shift, or late for it: never off shift.
                let near = shifts.get(agent.as_str()).is_some_and(|s| {
                    s.iter()
                        .any(|(a, b)| e.ts >= a.plus(-10 * MIN) && e.ts < *b)
                });
                assert!(near, "login off shift: {e:?}");
                logged_in.insert(agent.to_string());
            }
            Body::AgentLogout { agent } => {
                logged_in.remove(agent.as_str());
            }
            Body::CallRinging { agent, .. } | Body::CallDialing { agent, .. } => {
                calls += 1;
                assert!(logged_in.contains(agent.as_str()), "{e:?}");
                // An agent stays past the end only until relieved: a late relief comes
                // within 15 minutes, a no-show is cancelled within 25.
                let on = shifts.get(agent.as_str()).is_some_and(|s| {
                    s.iter()
                        .any(|(a, b)| e.ts >= a.plus(-10 * MIN) && e.ts <= b.plus(30 * MIN))
                });
                assert!(on, "call off shift: {e:?}");
            }
            _ => {}
        }
    }
    assert!(calls > 3_000, "{calls} calls");
}

// ---- the outbound campaign, through the binary ----

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_floorwatch"))
}

/// `floorwatch simulate --out` with `args`, 40 agents for 8 hours from `START`.
fn simulate(out: &Path, args: &[&str]) {
    let status = bin()
        .args(["simulate", "--agents", "40", "--duration", "8h"])
        .args(["--start", "2026-11-28T01:00:00Z", "--out"])
        .arg(out)
        .args(args)
        .output()
        .expect("run floorwatch simulate");
    assert!(status.status.success(), "{status:?}");
}

/// `floorwatch replay --month 2026-11 --appraisal`: the violation lines and the summed
/// appraisal columns.
fn replay(stream: &Path) -> (usize, BTreeMap<String, f64>) {
    let csv = stream.with_extension("csv");
    let out = bin()
        .args(["replay", "--month", "2026-11", "--appraisal"])
        .arg(&csv)
        .arg(stream)
        .output()
        .expect("run floorwatch replay");
    assert!(out.status.success(), "{out:?}");
    let violations = String::from_utf8_lossy(&out.stdout).lines().count();
    let text = std::fs::read_to_string(&csv).expect("appraisal csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let mut sums = BTreeMap::new();
    for line in lines {
        for (col, v) in header.iter().zip(line.split(',')) {
            if let Ok(x) = v.parse::<f64>() {
                *sums.entry(col.to_string()).or_insert(0.0) += x;
            }
        }
    }
    (violations, sums)
}

#[test]
fn campaign_connects_and_sells_at_a_telemarketing_floors_rates() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (seed, share) in [("1", "0.5"), ("2", "0.8")] {
        let path = dir.path().join(format!("out-{seed}.ndjson"));
        simulate(
            &path,
            &["--seed", seed, "--outbound", share, "--misconduct", "none"],
        );
        let (violations, sums) = replay(&path);
        assert_eq!(violations, 0, "a compliant campaign raised violations");
        let attempts = sums["outbound_attempts"];
        let connected = sums["outbound_connected"];
        let sales = sums["sales"];
        assert!(attempts > 800.0, "seed {seed}: {attempts} attempts");
        let rate = connected / attempts;
        assert!((0.35..=0.5).contains(&rate), "connect rate {rate}");
        let conversion = sales / connected;
        assert!(
            (0.08..=0.15).contains(&conversion),
            "sales per connect {conversion}"
        );
        // Some callbacks turned into sales later: a call disposed twice, the last a sale.
        let text = std::fs::read_to_string(&path).expect("stream");
        let mut codes: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for e in decode_all(&text) {
            if let Body::CallDisposition { call, code, .. } = e.body {
                codes
                    .entry(call.to_string())
                    .or_default()
                    .push(code.to_string());
            }
        }
        let changed = codes
            .values()
            .filter(|c| c.len() > 1)
            .inspect(|c| assert_eq!(c.as_slice(), ["callback", "sale"]))
            .count();
        assert!(changed > 0, "no disposition changed");
        // One disposition per connected call, but for the calls still up when the run ends.
        let disposed = codes.len() as f64;
        assert!(
            disposed <= connected && disposed >= connected * 0.97,
            "{disposed} calls disposed of {connected} connected"
        );
    }
    // `--outbound 0`: nobody dials.
    let path = dir.path().join("none.ndjson");
    simulate(&path, &["--seed", "1", "--outbound", "0"]);
    let (_, sums) = replay(&path);
    for col in ["outbound_attempts", "outbound_connected", "sales"] {
        assert_eq!(sums[col], 0.0, "{col}");
    }
    assert!(sums["calls_answered"] > 1_000.0, "{sums:?}");
}

#[test]
fn outbound_share_out_of_range_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    for bad in ["1.5", "-0.1", "NaN"] {
        let out = bin()
            .args(["simulate", &format!("--outbound={bad}"), "--out"])
            .arg(dir.path().join("x.ndjson"))
            .output()
            .expect("run");
        assert!(!out.status.success(), "--outbound {bad} accepted");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--outbound"),
            "{out:?}"
        );
    }
}

// ---- the realistic shape ----

struct Shape {
    events: usize,
    lines: usize,
    batch_lines: usize,
    offset: usize,
    epoch: usize,
    bytes: usize,
}

fn shape_of(text: &str) -> Shape {
    let mut s = Shape {
        events: 0,
        lines: 0,
        batch_lines: 0,
        offset: 0,
        epoch: 0,
        bytes: text.len(),
    };
    for line in text.lines() {
        s.lines += 1;
        let v: serde_json::Value = serde_json::from_str(line).expect("json line");
        let items = match v {
            serde_json::Value::Array(items) => {
                s.batch_lines += 1;
                assert!((2..=20).contains(&items.len()), "batch of {}", items.len());
                items
            }
            one => vec![one],
        };
        for e in items {
            s.events += 1;
            match &e["ts"] {
                serde_json::Value::Number(_) => s.epoch += 1,
                serde_json::Value::String(t) if t.ends_with("+08:00") => s.offset += 1,
                serde_json::Value::String(t) => assert!(t.ends_with('Z'), "{t}"),
                other => panic!("ts {other}"),
            }
        }
    }
    s
}

#[test]
fn realistic_shape_has_the_measured_proportions_and_violation_share() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("real.ndjson");
    let again = dir.path().join("again.ndjson");
    let args = ["--agents", "60", "--teams", "6", "--seed", "2"];
    for p in [&path, &again] {
        let out = bin()
            .args(["simulate", "--duration", "24h", "--shape", "realistic"])
            .args(["--start", "2026-11-28T01:00:00Z"])
            .args(args)
            .arg("--out")
            .arg(p)
            .output()
            .expect("run");
        assert!(out.status.success(), "{out:?}");
    }
    let text = std::fs::read_to_string(&path).expect("stream");
    assert_eq!(text, std::fs::read_to_string(&again).expect("stream"));
    let s = shape_of(&text);
    let share = |n: usize, of: usize| n as f64 / of as f64;
    assert!(s.events > 50_000, "{} events", s.events);
    let batch = share(s.batch_lines, s.lines);
    assert!((0.30..=0.37).contains(&batch), "batch lines {batch}");
    let offset = share(s.offset, s.events);
    assert!((0.30..=0.37).contains(&offset), "+08:00 {offset}");
    let epoch = share(s.epoch, s.events);
    assert!((0.08..=0.12).contains(&epoch), "epoch ms {epoch}");
    let bytes = share(s.bytes, s.events);
    assert!((100.0..=112.0).contains(&bytes), "{bytes} bytes per event");
    // The same events as the plain shape, and judged the same: about 18 % raise a violation.
    let (violations, _) = replay(&path);
    let v = share(violations, s.events);
    assert!((0.16..=0.20).contains(&v), "violation share {v}");
    let plain: Vec<Event> = decode_all(&ndjson({
        let mut cfg = SimConfig::new(60, 6, 2);
        cfg.duration = Some(24 * HOUR);
        cfg.misconduct = Misconduct::heavy();
        cfg
    }));
    assert!(decode_all(&text) == plain, "shaping changed the events");
}
