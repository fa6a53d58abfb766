//! The worked examples of `tests/fixtures/examples/`: replay must print exactly their violations
//! (as a set) and their appraisal (numbers within 0.0015). Checked both through the library
//! and through the `floorwatch replay` binary.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use floorwatch::config::RulesConfig;
use floorwatch::replay::{Replay, ReplayOptions};
use floorwatch::time::Period;

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/examples")
}

fn read(name: &str) -> String {
    let p = examples_dir().join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Violation records as a set of canonical JSON strings.
fn record_set(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("violation line is JSON");
            v.to_string()
        })
        .collect()
}

fn assert_csv_close(got: &str, want: &str) {
    let parse = |s: &str| -> Vec<Vec<String>> {
        s.lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split(',').map(str::to_string).collect())
            .collect()
    };
    let (g, w) = (parse(got), parse(want));
    assert_eq!(g[0], w[0], "header");
    assert_eq!(g.len(), w.len(), "rows:\n{got}\nwant:\n{want}");
    for (gr, wr) in g.iter().zip(&w).skip(1) {
        for (i, (gv, wv)) in gr.iter().zip(wr).enumerate() {
            let same = match (gv.parse::<f64>(), wv.parse::<f64>()) {
                (Ok(a), Ok(b)) => (a - b).abs() <= 0.0015,
                _ => gv == wv,
            };
            assert!(same, "row {}: column {} = {gv}, want {wv}", wr[0], w[0][i]);
        }
    }
}

fn replay_lib(name: &str, month: &str) -> (BTreeSet<String>, String, u64) {
    let mut r = Replay::new(
        RulesConfig::default(),
        ReplayOptions {
            until: None,
            appraisal: Period::parse(month),
            ..ReplayOptions::default()
        },
    );
    let mut out = Vec::new();
    for line in read(name).lines() {
        r.line(name, line, |v| out.push(v.to_record_json()), |_| {});
    }
    let s = r.finish(|v| out.push(v.to_record_json()));
    let mut csv = String::from(floorwatch::engine::AppraisalRow::CSV_HEADER);
    csv.push('\n');
    for row in &s.appraisal {
        csv.push_str(&row.to_csv());
        csv.push('\n');
    }
    (record_set(&out.join("\n")), csv, s.rejected)
}

#[test]
fn walkthrough_violations_and_appraisal() {
    let (got, csv, rejected) = replay_lib("walkthrough.ndjson", "2026-11");
    assert_eq!(got, record_set(&read("walkthrough.violations.ndjson")));
    assert_csv_close(&csv, &read("walkthrough.appraisal.full.csv"));
    assert_eq!(rejected, 0);
}

#[test]
fn shifts_violations_and_appraisal() {
    let (got, csv, rejected) = replay_lib("shifts.ndjson", "2026-12");
    let want = record_set(&read("shifts.violations.ndjson"));
    let missing: Vec<_> = want.difference(&got).collect();
    let extra: Vec<_> = got.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:#?}\nextra {extra:#?}"
    );
    assert_csv_close(&csv, &read("shifts.appraisal.full.csv"));
    // The demerit of an unknown item ("sleeping") is refused by the engine.
    assert_eq!(rejected, 1);
}

#[test]
fn floor_8_agents_violations_and_appraisal() {
    let (got, csv, rejected) = replay_lib("floor-8-agents.ndjson", "2026-11");
    let want = record_set(&read("floor-8-agents.violations.ndjson"));
    let missing: Vec<_> = want.difference(&got).collect();
    let extra: Vec<_> = got.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:#?}\nextra {extra:#?}"
    );
    assert_csv_close(&csv, &read("floor-8-agents.appraisal.full.csv"));
    // The stream carries invalid events that must be rejected one by one.
    assert_eq!(rejected, 8);
}

#[test]
fn replay_binary_prints_the_records_and_reports_bad_lines_with_line_numbers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("appraisal.csv");
    let out = Command::new(env!("CARGO_BIN_EXE_floorwatch"))
        .arg("replay")
        .args(["--month", "2026-11", "--appraisal"])
        .arg(&csv)
        .arg(examples_dir().join("floor-8-agents.ndjson"))
        .output()
        .expect("run floorwatch replay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(
        record_set(&stdout),
        record_set(&read("floor-8-agents.violations.ndjson"))
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("floor-8-agents.ndjson:96: bad_ts"),
        "{stderr}"
    );
    assert!(
        stderr.contains("floor-8-agents.ndjson:152: unknown_type"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 8, "{stderr}");
    // Keys exactly as the surface page has them.
    let first: serde_json::Value =
        serde_json::from_str(stdout.lines().next().unwrap_or("{}")).unwrap();
    let keys: Vec<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    for k in &keys {
        assert!(["rule", "kind", "agent", "team", "call", "reason", "at", "points"].contains(k));
    }
    assert_csv_close(
        &std::fs::read_to_string(&csv).expect("csv written"),
        &read("floor-8-agents.appraisal.full.csv"),
    );
}

#[test]
fn replay_gives_the_same_records_and_line_numbers_wherever_a_line_is_decoded() {
    // `floorwatch replay` decodes most chunks of 1,024 lines on its reading thread and every
    // fourth on the engine thread. Blank lines in front move the example into, and across,
    // those chunks; records and line numbers must not change.
    let example = read("floor-8-agents.ndjson");
    let expected = record_set(&read("floor-8-agents.violations.ndjson"));
    let dir = tempfile::tempdir().expect("tempdir");
    for blank in [0usize, 3072 - 50, 3072, 4096 - 100] {
        let file = dir.path().join(format!("padded-{blank}.ndjson"));
        std::fs::write(&file, format!("{}{example}", "\n".repeat(blank))).expect("write");
        let out = Command::new(env!("CARGO_BIN_EXE_floorwatch"))
            .arg("replay")
            .arg(&file)
            .output()
            .expect("run floorwatch replay");
        assert!(out.status.success(), "{blank}");
        let stdout = String::from_utf8(out.stdout).expect("utf-8");
        assert_eq!(
            record_set(&stdout),
            expected,
            "{blank} blank lines in front"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        let name = format!("padded-{blank}.ndjson");
        for (line, reason) in [(96, "bad_ts"), (152, "unknown_type")] {
            let want = format!("{name}:{}: {reason}", line + blank);
            assert!(stderr.contains(&want), "{want} in {stderr}");
        }
        assert_eq!(stderr.lines().count(), 8, "{stderr}");
    }
}

#[test]
fn replay_until_ends_the_replay_and_fires_deadlines_before_it() {
    // li.na's break starts 02:50:00; its 15-minute max passes at 03:05:00.
    let run = |until: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_floorwatch"))
            .args(["replay", "--until", until])
            .arg(examples_dir().join("walkthrough.ndjson"))
            .output()
            .expect("run");
        assert!(out.status.success());
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let at_deadline = run("2026-11-20T03:05:00Z");
    assert!(!at_deadline.contains("per_break"), "{at_deadline}");
    let past = run("2026-11-20T03:05:00.001Z");
    assert!(past.contains("per_break"), "{past}");
    assert_eq!(past.lines().count(), 5, "{past}");
    // Epoch milliseconds work too.
    assert_eq!(run("1795143900001"), past);
}

#[test]
fn replay_reads_stdin() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_floorwatch"))
        .args(["replay", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(read("walkthrough.ndjson").as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        record_set(&String::from_utf8_lossy(&out.stdout)),
        record_set(&read("walkthrough.violations.ndjson"))
    );
}
