//! The binary's command line: `check-config` and config errors before anything starts.

use std::process::Command;

fn floorwatch() -> Command {
    Command::new(env!("CARGO_BIN_EXE_floorwatch"))
}

#[test]
fn check_config_accepts_the_shipped_config() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/floorwatch.toml");
    let out = floorwatch()
        .args(["check-config", path])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
}

#[test]
fn check_config_names_key_line_and_column_and_exits_78() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[rules.ring_answer]\nrings = 3\nring_cycle = \"5 parsecs\"\n",
    )
    .expect("write");
    let out = floorwatch()
        .arg("check-config")
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("column 14"), "{err}");
    assert!(err.contains("rules.ring_answer.ring_cycle"), "{err}");
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");
}

#[test]
fn unreadable_config_is_a_config_error() {
    let out = floorwatch()
        .args(["check-config", "/nonexistent/floorwatch.toml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(78));
}

#[test]
fn run_with_a_bad_config_exits_78_before_binding() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    // A port nobody else uses in this test; the bad key must stop the daemon before it binds.
    std::fs::write(
        &path,
        "[server]\nlisten = \"127.0.0.1:1\"\n[rules.break_overrun]\npoints = \"two\"\n",
    )
    .expect("write");
    let out = floorwatch()
        .arg("run")
        .arg("--config")
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(78),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rules.break_overrun.points"), "{err}");
}
