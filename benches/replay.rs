//! Replay throughput: the engine and the NDJSON decoder over a synthetic floor made by
//! shifting the worked example `floor-8-agents` in time and agent ids, so the stream is
//! realistic (batches, mixed timestamp formats, violations of every rule).
//!
//! Baseline in the same run: decoding alone (`decode_frame`), so the engine's share shows as
//! a ratio. Run with `cargo bench --bench replay`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use floorwatch::config::RulesConfig;
use floorwatch::event::decode_frame;
use floorwatch::replay::{Replay, ReplayOptions};

/// The example stream re-stamped `copies` times, each copy 7 hours later with its own
/// agent and call ids, so every copy is a fresh floor.
fn synthetic(copies: usize) -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/examples/floor-8-agents.ndjson"
    );
    // A missing fixture must fail the run (`cargo test --all-targets` runs this bench once),
    // never time an empty stream.
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut lines = Vec::new();
    for k in 0..copies {
        let shift = k as i64 * 7 * 3_600_000;
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let items = match v {
                serde_json::Value::Array(a) => a,
                o => vec![o],
            };
            let mut out = Vec::new();
            for mut e in items {
                let Some(obj) = e.as_object_mut() else {
                    continue;
                };
                let ts = obj.get("ts").and_then(|t| match t {
                    serde_json::Value::Number(n) => n.as_i64(),
                    serde_json::Value::String(s) => floorwatch::time::Timestamp::parse_rfc3339(s)
                        .ok()
                        .map(|t| t.0),
                    _ => None,
                });
                let Some(ts) = ts else { continue };
                obj.insert("ts".into(), (ts + shift).into());
                if let Some(seq) = obj.get("seq").and_then(|s| s.as_u64()) {
                    obj.insert("seq".into(), (seq + k as u64 * 100_000).into());
                }
                for key in ["agent", "call"] {
                    if let Some(s) = obj.get(key).and_then(|s| s.as_str()) {
                        let s = format!("{s}-{}", k % 40);
                        obj.insert(key.into(), s.into());
                    }
                }
                out.push(e);
            }
            lines.push(serde_json::Value::Array(out).to_string());
        }
    }
    lines
}

fn bench(c: &mut Criterion) {
    let lines = synthetic(20);
    let events: u64 = lines
        .iter()
        .map(|l| decode_frame(l).events.len() as u64)
        .sum();
    assert!(
        events > 20_000,
        "the synthetic stream holds only {events} events"
    );
    let mut g = c.benchmark_group("replay");
    g.throughput(Throughput::Elements(events));
    g.sample_size(20);
    g.bench_function("decode_only", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for l in &lines {
                n += decode_frame(l).events.len();
            }
            n
        })
    });
    g.bench_function("decode_and_engine", |b| {
        b.iter(|| {
            let mut r = Replay::new(
                RulesConfig::default(),
                ReplayOptions {
                    until: None,
                    appraisal: None,
                },
            );
            let mut n = 0u64;
            for l in &lines {
                r.line("bench", l, |_| n += 1, |_| {});
            }
            r.finish(|_| n += 1).violations
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
