//! Upgrades: a copy of `tests/fixtures/store-v1` (a data directory written by the release
//! before store formats were recorded, commit d84f266, with what that binary said about it)
//! opened by this build. It must open, be stamped format 1, and give every past judgment as
//! the old binary did: the same reports, export, replay and violation records. And a store
//! upgraded by a newer binary must be refused by this one, naming both formats.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use floorwatch::format::STORE_FORMAT;
use floorwatch::journal::JournalOptions;
use floorwatch::store::{Store, StoreReader};
use serde_json::Value;

use crate::crash::wait_ready;
use crate::daemon_support::free_port;
use crate::daemon_support::{get, get_json};
use crate::shutdown::{signal, wait_exit};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/store-v1");

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read fixture") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

/// A copy of the fixture in a temporary directory, its config on a free port; the root.
pub fn fixture_copy() -> (tempfile::TempDir, std::net::SocketAddr) {
    let tmp = tempfile::tempdir().expect("tempdir");
    copy_dir(Path::new(FIXTURE), tmp.path());
    let addr = free_port();
    let config = tmp.path().join("floorwatch.toml");
    let text = std::fs::read_to_string(&config).expect("fixture config");
    let text = text.replace("127.0.0.1:18931", &addr.to_string());
    assert!(
        text.contains(&addr.to_string()),
        "the fixture config names its port"
    );
    std::fs::write(&config, text).expect("config");
    (tmp, addr)
}

fn expected(name: &str) -> String {
    std::fs::read_to_string(Path::new(FIXTURE).join("expected").join(name))
        .unwrap_or_else(|e| panic!("expected/{name}: {e}"))
}

/// `floorwatch ARGS` in `root` (where the config's relative `store.dir` points).
fn floorwatch(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_floorwatch"))
        .args(args)
        .current_dir(root)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run floorwatch")
}

fn stdout_ok(root: &Path, args: &[&str]) -> String {
    let out = floorwatch(root, args);
    assert!(
        out.status.success(),
        "floorwatch {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Every file under `dir` with its bytes.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).expect("read")));
            }
        }
    }
    out.sort();
    out
}

fn user_version(path: &Path) -> i64 {
    let c = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open");
    c.pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("user_version")
}

/// The old binary's appraisal CSV, column by column: every column it had holds the same
/// value (the columns added since count what the old binary did not: shifts, outbound).
pub fn assert_same_columns(got: &str, want: &str, what: &str) {
    let table = |s: &str| -> (Vec<String>, Vec<Vec<String>>) {
        let mut lines = s.lines();
        let header = lines
            .next()
            .unwrap_or_default()
            .split(',')
            .map(str::to_string)
            .collect();
        let rows = lines
            .map(|l| l.split(',').map(str::to_string).collect())
            .collect();
        (header, rows)
    };
    let ((gh, gr), (wh, wr)) = (table(got), table(want));
    assert_eq!(gr.len(), wr.len(), "{what}: rows\n{got}\n{want}");
    for (g, w) in gr.iter().zip(&wr) {
        for (i, name) in wh.iter().enumerate() {
            let at = gh
                .iter()
                .position(|h| h == name)
                .unwrap_or_else(|| panic!("{what}: no column {name}"));
            assert_eq!(g[at], w[i], "{what}: {name} of {}", w[0]);
        }
    }
}

/// Every key the old binary wrote holds the same value.
fn assert_same_keys(got: &Value, want: &Value, what: &str) {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            for (k, wv) in w {
                let gv = g.get(k).unwrap_or_else(|| panic!("{what}: no {k}"));
                assert_same_keys(gv, wv, &format!("{what}.{k}"));
            }
        }
        (Value::Array(g), Value::Array(w)) => {
            assert_eq!(g.len(), w.len(), "{what}: length");
            for (i, (gv, wv)) in g.iter().zip(w).enumerate() {
                assert_same_keys(gv, wv, &format!("{what}[{i}]"));
            }
        }
        _ => assert_eq!(got, want, "{what}"),
    }
}

/// The judgment of a violation record: everything but the wording of its evidence, which
/// this release names so that it cannot be misread (`raised_after_ms`, `lasted_ms`).
pub fn judgments(records: &Value) -> Vec<Value> {
    records["violations"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|v| {
            let keep = [
                "id",
                "rule",
                "kind",
                "agent",
                "team",
                "call",
                "reason",
                "at",
                "points",
                "detected_at",
                "status",
                "cleared_at",
                "waiver",
            ];
            Value::Object(
                v.as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| keep.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            )
        })
        .collect()
}

/// The read-only commands judge as the old binary did. Before a daemon of this release has
/// run, `export` is the old binary's byte for byte; after, the old records come first and
/// the daemon's own follow (its rulebook, and the database's waiver journaled).
fn assert_reports_as_the_old_binary(root: &Path, upgraded: bool) {
    for (month, file) in [
        ("2025-11", "report-2025-11.csv"),
        ("2025-12", "report-2025-12.csv"),
    ] {
        let got = stdout_ok(
            root,
            &[
                "report",
                "--config",
                "floorwatch.toml",
                "--month",
                month,
                "--format",
                "csv",
            ],
        );
        assert_same_columns(&got, &expected(file), file);
    }
    let got: Value = serde_json::from_str(&stdout_ok(
        root,
        &[
            "report",
            "--config",
            "floorwatch.toml",
            "--day",
            "2025-12-01",
            "--format",
            "json",
        ],
    ))
    .expect("json");
    let want: Value = serde_json::from_str(&expected("report-2025-12-01.json")).expect("json");
    assert_same_keys(&got, &want, "report --day");
    let export = stdout_ok(root, &["export", "--config", "floorwatch.toml"]);
    let old = expected("export.ndjson");
    if upgraded {
        assert!(export.starts_with(&old), "the old records come first");
        let added: Vec<Value> = export[old.len()..]
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        let types: Vec<&str> = added.iter().filter_map(|v| v["type"].as_str()).collect();
        assert_eq!(types, ["rulebook", "violation.waived"], "{added:?}");
        assert_eq!(added[1]["by"], "zhang.wei");
    } else {
        assert_eq!(export, old, "export before any upgrade");
    }
    let replayed = stdout_ok(
        root,
        &[
            "replay",
            "--config",
            "floorwatch.toml",
            "expected/export.ndjson",
        ],
    );
    assert_eq!(replayed, expected("replay.ndjson"));
    assert!(replayed.lines().count() > 50, "the fixture has violations");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_of_the_release_before_formats_opens_with_every_judgment_unchanged() {
    let (root, addr) = fixture_copy();
    let root = root.path();
    let data = root.join("data");

    // check-store reads it as format 1, healthy, and changes nothing.
    let before = files(&data);
    let report = stdout_ok(root, &["check-store", "data"]);
    assert!(report.contains("format:        1 "), "{report}");
    assert!(report.contains("1628 records"), "{report}");
    assert!(report.contains("journal tail:  clean"), "{report}");
    assert!(
        report.contains("violations:    106 (closed 105, waived 1)"),
        "{report}"
    );
    assert!(
        report.contains("written before formats were recorded"),
        "{report}"
    );
    assert!(report.contains("verdict:       ok"), "{report}");
    assert_eq!(files(&data), before, "check-store changed the store");

    // report, export and replay, read-only, before the daemon ever opened it.
    assert_reports_as_the_old_binary(root, false);
    assert_eq!(files(&data), before, "report or export changed the store");

    // The daemon opens it (restoring the old binary's checkpoint) and serves the same records.
    let mut child = Command::new(env!("CARGO_BIN_EXE_floorwatch"))
        .args(["run", "--config", "floorwatch.toml"])
        .current_dir(root)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn");
    wait_ready(addr).await;
    let (status, live) = get_json(addr, "/api/v1/violations").await;
    assert_eq!(status, 200);
    let old: Value = serde_json::from_str(&expected("violations.json")).expect("json");
    assert_eq!(
        judgments(&live),
        judgments(&old),
        "the violation records as the old daemon served them"
    );
    let (status, _, csv) = get(addr, "/api/v1/appraisal?month=2025-12&format=csv").await;
    assert_eq!(status, 200);
    assert_same_columns(
        &csv,
        &expected("api-appraisal-2025-12.csv"),
        "API appraisal",
    );
    signal(&child, "TERM");
    let (exit, _) = wait_exit(&mut child, Duration::from_secs(20)).await;
    assert!(exit.success(), "{exit:?}");

    // Upgraded as designed: the databases are at this release's format; the old segment is
    // kept byte for byte, and a new segment at this format holds what the daemon journaled
    // (its rulebook, and the waiver the database held).
    for db in ["floorwatch.db", "checkpoints.db"] {
        assert_eq!(
            user_version(&data.join(db)),
            i64::from(STORE_FORMAT),
            "{db}"
        );
    }
    let segment = "journal/00000000000000000001.log";
    assert_eq!(
        std::fs::read(data.join(segment)).expect("segment"),
        std::fs::read(Path::new(FIXTURE).join("data").join(segment)).expect("fixture")
    );
    assert_eq!(
        std::fs::read_dir(data.join("journal"))
            .expect("dir")
            .count(),
        2
    );
    let report = stdout_ok(root, &["check-store", "data"]);
    assert!(!report.contains("written before formats"), "{report}");
    assert!(report.contains("verdict:       ok"), "{report}");
    assert_reports_as_the_old_binary(root, true);
}

#[test]
fn the_journal_of_store_v1_replays_to_the_same_violation_records() {
    let (root, _) = fixture_copy();
    let data = root.path().join("data");
    let old: Value = serde_json::from_str(&expected("violations.json")).expect("json");
    let mut config = floorwatch::config::load(Some(&root.path().join("floorwatch.toml")))
        .expect("fixture config");
    config.store.dir = data.clone();
    {
        // Nothing derived is left: no checkpoint, no violation but the waived one (a waiver
        // lives in the database only).
        let c = rusqlite::Connection::open(data.join("checkpoints.db")).expect("open");
        c.execute("DELETE FROM checkpoints", []).expect("delete");
        let c = rusqlite::Connection::open(data.join("floorwatch.db")).expect("open");
        let n = c
            .execute("DELETE FROM violations WHERE status <> 'waived'", [])
            .expect("delete");
        assert_eq!(n, 105);
    }
    let restored = floorwatch::owner::restore(&config, None, 0).expect("restore");
    assert!(!restored.from_checkpoint);
    assert_eq!(restored.replayed, 1628);
    let reader = restored.store.reader().expect("reader");
    let records = reader
        .violations(&Default::default(), 100_000)
        .expect("violations");
    let replayed = serde_json::json!({ "violations": records });
    assert_eq!(
        judgments(&replayed),
        judgments(&old),
        "the journal replays to the records the old daemon stored"
    );
}

#[test]
fn the_oldest_checkpoint_of_store_v1_restores_to_the_state_the_old_binary_reported() {
    let (root, _) = fixture_copy();
    let data = root.path().join("data");
    let mut config = floorwatch::config::load(Some(&root.path().join("floorwatch.toml")))
        .expect("fixture config");
    config.store.dir = data.clone();
    {
        // Keep only the checkpoint the old daemon took in the middle of the feed.
        let c = rusqlite::Connection::open(data.join("checkpoints.db")).expect("open");
        c.execute("DELETE FROM checkpoints WHERE id <> 1", [])
            .expect("delete");
    }
    let mut restored = floorwatch::owner::restore(&config, None, 0).expect("restore");
    assert!(restored.from_checkpoint);
    assert!(
        restored.replayed > 0 && restored.replayed < 1628,
        "replayed {} records after the checkpoint",
        restored.replayed
    );
    // The month's appraisal of the restored engine, ended as a report ends it, is the one
    // the old binary's `report` printed.
    let end = restored.engine.now().expect("clock");
    let mut effects = Vec::new();
    restored.engine.finish(end, &mut effects);
    // The waiver the old binary kept in its database is journaled now: the engine leaves
    // it out itself, and the database has no waiver of its own left.
    let waived = restored
        .store
        .reader()
        .expect("reader")
        .legacy_waived(config.rules.money_per_point)
        .expect("waived");
    assert!(waived.is_empty(), "{waived:?}");
    assert_eq!(restored.engine.is_waived(2), Some(true));
    let period = floorwatch::time::Period::parse("2025-12").expect("period");
    let rows = restored.engine.appraisal(period, end, &waived);
    assert_same_columns(
        &floorwatch::report::to_csv(&rows),
        &expected("report-2025-12.csv"),
        "restored checkpoint",
    );
}

#[test]
fn a_store_upgraded_by_a_newer_binary_is_refused_by_this_one_naming_both_formats() {
    let (root, _) = fixture_copy();
    let data = root.path().join("data");
    let newer = floorwatch::journal::FORMAT + 1;
    let (store, recovery) = Store::open_with(
        &data,
        JournalOptions {
            format: newer,
            ..JournalOptions::default()
        },
    )
    .expect("a newer binary opens the old store");
    assert_eq!(recovery.upgraded_from, Some(1));
    drop(store);
    let want = [
        format!("store format {newer}"),
        format!("this binary's format {STORE_FORMAT}"),
    ];
    for args in [
        &["run", "--config", "floorwatch.toml"][..],
        &[
            "report",
            "--config",
            "floorwatch.toml",
            "--month",
            "2025-12",
        ],
        &["export", "--config", "floorwatch.toml"],
        &["check-store", "data"],
    ] {
        let out = floorwatch(root.path(), args);
        assert_eq!(out.status.code(), Some(1), "floorwatch {args:?}");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for w in &want {
            assert!(text.contains(w.as_str()), "floorwatch {args:?}: {text}");
        }
    }
    assert!(StoreReader::open_read_only(&data).is_err());
}
