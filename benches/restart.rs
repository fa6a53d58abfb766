//! Restart time: a data directory holding a journal of a simulated 300-agent floor over
//! `FW_BENCH_DAYS` days (default 30), with the newest checkpoint one minute of events before
//! the journal's end (as `store.checkpoint_every = "1m"` leaves it), then the time
//! `owner::restore` takes to open the store, load the checkpoint and replay the tail.
//! Baseline in the same run: a full replay of the whole journal (what a restart without
//! checkpoints would cost). Not criterion: building the directory takes minutes; it runs once.
//!
//! Run with `cargo bench --bench restart` (directory under `CARGO_TARGET_TMPDIR`). Under
//! `cargo test` (no `--bench` argument) it runs a two-hour floor of 20 agents as a smoke test.

use std::time::Instant;

use floorwatch::config::Config;
use floorwatch::engine::{Engine, KpiRetention};
use floorwatch::journal::{FsyncPolicy, JournalOptions};
use floorwatch::simulate::{Generator, Misconduct, SimConfig};
use floorwatch::store::{encode_record, Store, ViolationOp};
use floorwatch::time::Timestamp;

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let days: i64 = std::env::var("FW_BENCH_DAYS")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(30);
    let (agents, duration) = if bench {
        (300, days * 86_400_000)
    } else {
        println!(
            "restart smoke run (test build, 2 hours of 20 agents): the figures below are not \
             measurements (cargo bench --bench restart measures)"
        );
        (20, 2 * 3_600_000)
    };
    let base = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("restart-bench");
    let _ = std::fs::remove_dir_all(&base);
    let mut config = Config::default();
    config.store.dir = base.clone();
    let start = Timestamp(1_793_581_200_000);
    let mut sim = SimConfig::new(agents, agents.div_ceil(10), 1);
    sim.misconduct = Misconduct::modest();
    sim.duration = Some(duration);

    let built = Instant::now();
    let (mut store, _) = Store::open_with(
        &base,
        JournalOptions {
            fsync: FsyncPolicy::Never,
            ..JournalOptions::default()
        },
    )
    .expect("store");
    let mut engine = Engine::with_retention(config.rules.clone(), KpiRetention::LastDays(62));
    // The generator is deterministic: a first pass finds the end, the second writes.
    let last_ts = Generator::new(sim.clone(), start)
        .last()
        .map_or(start, |e| e.ts);
    let cut = last_ts.plus(-60_000);
    let mut effects = Vec::new();
    let mut batch = Vec::new();
    let mut ops = Vec::new();
    let mut checkpointed = false;
    let mut n = 0u64;
    for sim_event in Generator::new(sim, start) {
        if !checkpointed && sim_event.ts > cut {
            store.append(&batch).expect("append");
            batch.clear();
            store.write_violations(&ops).expect("violations");
            ops.clear();
            let json = serde_json::to_string(&engine.checkpoint()).expect("checkpoint");
            store
                .save_checkpoint(engine.now(), store.end(), "bench", &json)
                .expect("save");
            println!("checkpoint: {} bytes", json.len());
            checkpointed = true;
        }
        let ev = floorwatch::event::decode_event(&sim_event.to_json()).expect("valid");
        if let floorwatch::engine::Applied::Applied { at, .. } =
            engine.handle_event("pbx", &ev, &mut effects)
        {
            batch.push(encode_record(at, "pbx", &ev));
            n += 1;
        }
        ops.extend(effects.drain(..).filter_map(ViolationOp::from_effect));
        if batch.len() >= 1000 {
            store.append(&batch).expect("append");
            batch.clear();
            store.write_violations(&ops).expect("violations");
            ops.clear();
        }
    }
    store.append(&batch).expect("append");
    store.write_violations(&ops).expect("violations");
    drop(store);
    let bytes: u64 = std::fs::read_dir(base.join("journal"))
        .expect("dir")
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "built {:.1} days, {agents} agents: {n} events, journal {:.1} MiB, in {:.1} s",
        duration as f64 / 86_400_000.0,
        bytes as f64 / 1048576.0,
        built.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let restored = floorwatch::owner::restore(&config, None, 0).expect("restore");
    println!(
        "restart (checkpoint + tail): {:.3} s, {} records replayed, from checkpoint: {}",
        t.elapsed().as_secs_f64(),
        restored.replayed,
        restored.from_checkpoint
    );
    drop(restored);

    let t = Instant::now();
    let mut engine = Engine::with_retention(config.rules.clone(), KpiRetention::LastDays(62));
    let mut count = 0u64;
    floorwatch::report::for_each_record(&base, None, |rec| {
        engine.handle_event(&rec.source, &rec.applied_event(), &mut effects);
        effects.clear();
        count += 1;
    })
    .expect("read");
    println!(
        "baseline, full replay of the journal: {:.3} s for {count} records",
        t.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&base);
}
