//! The engine task's periodic work at floor scale: the state copy handed to the checkpoint
//! thread (`Engine::checkpoint`) and the month-to-date appraisal rows (`Engine::appraisal`).
//! Both run on the engine task once a minute; while they run, no event is applied and no
//! deadline fires, so their time is the stall that shows up as violation lateness.
//!
//! `cargo bench --bench periodic` (`PERIODIC_AGENTS=` to change the 100,000 agents). Each
//! agent is logged in and on an open one-hour break (a pending deadline, an open item the
//! appraisal counts up to now), and has one answered call earlier in the day.

use std::time::Instant;

use floorwatch::engine::{Engine, KpiRetention};
use floorwatch::event::decode_event;
use floorwatch::time::{Period, Timestamp};

fn main() -> anyhow::Result<()> {
    let agents: usize = std::env::var("PERIODIC_AGENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "periodic smoke run (test build): the figures below are not measurements \
             (cargo bench --bench periodic measures)"
        );
    }
    let rules = floorwatch::config::Config::from_toml_str("[reasons.long]\nmax = \"1h\"\n")
        .map_err(|e| anyhow::anyhow!("config: {e}"))?
        .rules;
    let mut engine = Engine::with_retention(rules, KpiRetention::LastDays(62));
    // 2026-11-28T01:00:00Z = 09:00 in Asia/Shanghai (the default time zone).
    let t0 = 1_795_827_600_000i64;
    let mut seq = 0u64;
    let mut out = Vec::new();
    let mut send = |engine: &mut Engine, ts: i64, body: String| -> anyhow::Result<()> {
        seq += 1;
        let ev = decode_event(&format!(r#"{{"ts":{ts},"seq":{seq},{body}}}"#))
            .map_err(|(_, e)| anyhow::anyhow!("{e:?}"))?;
        engine.handle_event("pbx", &ev, &mut out);
        out.clear();
        Ok(())
    };
    for a in 0..agents {
        let ts = t0 + a as i64 / 100;
        send(
            &mut engine,
            ts,
            format!(r#""type":"agent.login","agent":"p{a}","team":"t{}""#, a / 8),
        )?;
    }
    for a in 0..agents {
        let ts = t0 + 1_000 + a as i64 / 100;
        let (call, agent) = (format!("c{a}"), format!("p{a}"));
        for body in [
            format!(r#""type":"call.ringing","call":"{call}","agent":"{agent}""#),
            format!(r#""type":"call.answered","call":"{call}","agent":"{agent}""#),
        ] {
            send(&mut engine, ts, body)?;
        }
        send(
            &mut engine,
            ts + 60_000,
            format!(r#""type":"call.ended","call":"{call}""#),
        )?;
    }
    for a in 0..agents {
        let ts = t0 + 200_000 + a as i64 / 100;
        send(
            &mut engine,
            ts,
            format!(r#""type":"agent.state","agent":"p{a}","state":"not_ready","reason":"long""#),
        )?;
    }
    let now = engine.now().unwrap_or(Timestamp(t0));
    let month = Period::parse("2026-11").ok_or_else(|| anyhow::anyhow!("period"))?;
    println!("periodic: {agents} agents, each on an open break with one answered call");
    for round in 0..3 {
        let t = Instant::now();
        let cp = engine.checkpoint();
        let cp_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let rows = engine.appraisal(month, now, &[]);
        let ap_ms = t.elapsed().as_secs_f64() * 1e3;
        anyhow::ensure!(rows.len() == agents, "{} appraisal rows", rows.len());
        let t = Instant::now();
        drop(cp);
        drop(rows);
        let drop_ms = t.elapsed().as_secs_f64() * 1e3;
        println!(
            "round {round}: checkpoint copy {cp_ms:.1} ms, appraisal {ap_ms:.1} ms, dropping both {drop_ms:.1} ms"
        );
    }
    Ok(())
}
