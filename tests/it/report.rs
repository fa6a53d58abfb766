//! The stored appraisal by definition: `floorwatch report` (and the appraisal API) equals
//! `floorwatch replay --appraisal` over `floorwatch export`, minus waived violations.

use std::path::Path;
use std::process::Command;

use floorwatch::simulate::{Generator, Misconduct, SimConfig};
use serde_json::Value;

use crate::crash::{stream_with_resume, START};
use crate::daemon_support::{config, get, get_json, start};
use crate::store::post_json;

fn run(args: &[&str], config: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_floorwatch"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run floorwatch");
    assert!(
        out.status.success(),
        "floorwatch {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// CSV rows by agent (header dropped).
fn rows(csv: &str) -> Vec<Vec<String>> {
    csv.lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_equals_replay_of_the_export_waivers_included() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut c = config();
    c.store.dir = data.clone();
    let d = start(c).await;
    let mut sim = SimConfig::new(24, 3, 5);
    sim.misconduct = Misconduct::unruly();
    sim.duration = Some(4 * 3_600_000);
    let events: Vec<String> = Generator::new(sim, START).map(|e| e.to_json()).collect();
    stream_with_resume(d.local_addr(), events).await;
    let (_, body) = get_json(d.local_addr(), "/api/v1/violations").await;
    let live = body["violations"].as_array().cloned().unwrap_or_default();
    let points = |v: &Value| v["points"].as_u64().expect("points");
    let waived = live
        .iter()
        .find(|v| points(v) > 1)
        .expect("a violation")
        .clone();
    let id = waived["id"].as_u64().expect("id");
    let (status, _) = post_json(
        d.local_addr(),
        &format!("/api/v1/violations/{id}/waive"),
        r#"{"why":"approved by phone"}"#,
    )
    .await;
    assert_eq!(status, 201);
    let (status, _, api_csv) =
        get(d.local_addr(), "/api/v1/appraisal?month=2026-11&format=csv").await;
    assert_eq!(status, 200, "{api_csv}");
    d.shutdown().await;

    let config = dir.path().join("floorwatch.toml");
    std::fs::write(&config, format!("[store]\ndir = \"{}\"\n", data.display())).expect("config");
    let export = dir.path().join("export.ndjson");
    std::fs::write(&export, run(&["export"], &config)).expect("export");
    let replay_csv = dir.path().join("replay.csv");
    let replayed = run(
        &[
            "replay",
            "--month",
            "2026-11",
            "--appraisal",
            replay_csv.to_str().expect("path"),
            export.to_str().expect("path"),
        ],
        &config,
    );
    let report = run(&["report", "--month", "2026-11"], &config);
    assert_eq!(report, api_csv, "the API and the command agree");

    // The waiver is an event of the journal: the replay of the export gives the report.
    let replay_text = std::fs::read_to_string(&replay_csv).expect("replay csv");
    assert_eq!(
        replay_text, report,
        "replay of the export = report, byte for byte"
    );

    // Violations: the replay of the export raises exactly the stored ones.
    let replayed: Vec<Value> = replayed
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(replayed.len(), live.len());
    for (r, l) in replayed.iter().zip(&live) {
        for k in [
            "rule", "kind", "agent", "team", "call", "reason", "at", "points",
        ] {
            assert_eq!(r.get(k), l.get(k), "{k} of {l}");
        }
    }

    // Without the waiver line the appraisal is the same except the waived violation's
    // agent, by exactly its points.
    let unwaived = dir.path().join("unwaived.ndjson");
    let text = std::fs::read_to_string(&export).expect("export");
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains(r#""type":"violation.waived""#))
        .collect();
    assert_eq!(
        kept.len() + 1,
        text.lines().count(),
        "one waiver in the export"
    );
    std::fs::write(&unwaived, kept.join("\n") + "\n").expect("write");
    let unwaived_csv = dir.path().join("unwaived.csv");
    run(
        &[
            "replay",
            "--month",
            "2026-11",
            "--appraisal",
            unwaived_csv.to_str().expect("path"),
            unwaived.to_str().expect("path"),
        ],
        &config,
    );
    let unwaived_csv = std::fs::read_to_string(&unwaived_csv).expect("csv");
    let (want, got) = (rows(&unwaived_csv), rows(&report));
    assert_eq!(want.len(), got.len());
    assert!(!want.is_empty());
    let agent = waived["agent"].as_str().expect("agent");
    let header: Vec<&str> = report.lines().next().expect("header").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect(name);
    for (w, g) in want.iter().zip(&got) {
        if w[0] != agent {
            assert_eq!(w, g);
            continue;
        }
        let n = |row: &Vec<String>, c: &str| row[col(c)].parse::<u64>().expect("number");
        assert_eq!(n(w, "points") - n(g, "points"), points(&waived));
        let rule = format!("violations_{}", waived["rule"].as_str().expect("rule"));
        assert_eq!(n(w, &rule) - n(g, &rule), 1);
    }
    let week = run(
        &["report", "--week", "2026-W45", "--format", "json"],
        &config,
    );
    assert!(week.starts_with('['), "{week}");
}
