//! The rulebook reload (SIGHUP, `systemctl reload`) of a real `floorwatch run` process:
//! a changed file is journaled and judges from the engine clock on, while what was raised
//! before keeps its points; an invalid file and a changed time zone leave the rulebook in
//! force and say why; a restart and an export + replay agree with what was judged live.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::crash::{spawn_daemon, wait_ready};
use crate::daemon_support::{
    self as sup, eventually, free_port, get_json, metrics, sample, Source,
};
use crate::shutdown::{signal, wait_exit, write_config};

/// 2026-11-26T00:00:00Z.
const NOV: i64 = 1_795_658_400_000;

/// `[rules.ring_answer]` with `points`, and `extra` tables after it.
fn config(dir: &Path, addr: std::net::SocketAddr, points: u32, extra: &str) {
    write_config(
        dir,
        addr,
        &format!(
            "\n[rules.ring_answer]\nrings = 3\nring_cycle = \"5s\"\npoints = {points}\n{extra}"
        ),
    );
}

/// A call ringing at agent `a` from `start` ms, answered 20 s later: one `late` (the limit
/// is 3 × 5 s).
fn late_call(call: &str, start: i64, seq: u64) -> Value {
    json!([
        {"type": "call.ringing", "ts": NOV + start, "seq": seq, "call": call, "agent": "a"},
        {"type": "call.answered", "ts": NOV + start + 20_000, "seq": seq + 1, "call": call, "agent": "a"},
        {"type": "call.ended", "ts": NOV + start + 30_000, "seq": seq + 2, "call": call, "agent": "a"}
    ])
}

async fn reloads(addr: std::net::SocketAddr, outcome: &str) -> f64 {
    sample(
        &metrics(addr).await,
        &format!("floorwatch_rulebook_reloads_total{{outcome=\"{outcome}\"}}"),
    )
    .unwrap_or(-1.0)
}

/// Sends SIGHUP and waits until the `outcome` counter reaches `n`.
async fn hup(child: &std::process::Child, addr: std::net::SocketAddr, outcome: &str, n: f64) {
    signal(child, "HUP");
    eventually(&format!("reload outcome {outcome} = {n}"), || async {
        (reloads(addr, outcome).await == n).then_some(())
    })
    .await;
}

/// The `late` violations' points, in the order raised (each stored with its deduction).
async fn late_points(addr: std::net::SocketAddr, n: usize) -> Vec<u64> {
    eventually(&format!("{n} violations"), || async {
        let (_, body) = get_json(addr, "/api/v1/violations?rule=ring_answer").await;
        let v = body["violations"].as_array().cloned().unwrap_or_default();
        (v.len() == n).then(|| {
            let mut v = v;
            v.sort_by_key(|x| x["id"].as_u64());
            v.iter()
                .map(|x| {
                    let points = x["points"].as_u64().expect("points");
                    // The stored record keeps its money: points x 10 yuan (the default rate).
                    assert_eq!(x["deduction"].as_f64(), Some(points as f64 * 10.0), "{x}");
                    points
                })
                .collect()
        })
    })
    .await
}

async fn send(addr: std::net::SocketAddr, frame: Value) {
    let mut s = Source::connect(addr, "pbx", None).await.expect("connect");
    let hello = s.json().await;
    assert_eq!(hello["type"], "hello", "{hello}");
    s.send(frame.to_string()).await;
    let n = frame.as_array().map_or(1, Vec::len) as u64;
    let resume = hello["resume_after"].as_u64().unwrap_or(0);
    loop {
        let (_, acked) = s.until_ack().await;
        if acked >= resume + n {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adopts_a_changed_rulebook_from_the_clock_on_and_keeps_the_old_one_on_a_bad_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_port();
    config(dir.path(), addr, 1, "");
    let file = dir.path().join("floorwatch.toml");
    let mut child = spawn_daemon(&file);
    wait_ready(addr).await;
    send(
        addr,
        json!([{"type": "agent.login", "ts": NOV, "seq": 1, "agent": "a"}]),
    )
    .await;
    // Under the first rulebook: 1 point.
    send(addr, late_call("k1", 1_000, 2)).await;
    assert_eq!(late_points(addr, 1).await, vec![1]);

    // Unchanged file: nothing journaled, counted as unchanged.
    hup(&child, addr, "unchanged", 1.0).await;

    // 4 points from now on; the first violation keeps its 1.
    config(dir.path(), addr, 4, "");
    hup(&child, addr, "adopted", 1.0).await;
    send(addr, late_call("k2", 60_000, 5)).await;
    assert_eq!(late_points(addr, 2).await, vec![1, 4]);

    // A file that does not parse: the rulebook in force (4 points) stays, the daemon runs.
    std::fs::write(
        &file,
        std::fs::read_to_string(&file)
            .expect("read")
            .replace("points = 4", "points = \"four\""),
    )
    .expect("write");
    hup(&child, addr, "invalid", 1.0).await;
    assert!(child.try_wait().expect("wait").is_none(), "daemon alive");
    send(addr, late_call("k3", 120_000, 8)).await;
    assert_eq!(late_points(addr, 3).await, vec![1, 4, 4]);

    // A valid file with another time zone (and other points): refused as a whole.
    config(
        dir.path(),
        addr,
        7,
        "[appraisal]\ntimezone = \"Europe/Berlin\"\n",
    );
    hup(&child, addr, "refused", 1.0).await;
    send(addr, late_call("k4", 180_000, 11)).await;
    assert_eq!(late_points(addr, 4).await, vec![1, 4, 4, 4]);
    assert_eq!(reloads(addr, "adopted").await, 1.0, "nothing else adopted");

    // Back to the 4-point file: unchanged (the digest in force), not a new version.
    config(dir.path(), addr, 4, "");
    hup(&child, addr, "unchanged", 2.0).await;
    let (_, floor) = get_json(addr, "/api/v1/floor").await;
    let clock = floor["engine_clock"].as_str().expect("clock").to_string();
    signal(&child, "TERM");
    let (status, _) = wait_exit(&mut child, Duration::from_secs(20)).await;
    assert!(status.success(), "{status:?}");

    // The journal holds the start's rulebook and the one reload: two versions.
    let to = floorwatch::time::Timestamp::parse_flexible(&clock)
        .expect("clock")
        .plus(1);
    let (ok, export, err) = sup::run_floorwatch(&[
        "export",
        "--config",
        file.to_str().expect("path"),
        "--to",
        &to.0.to_string(),
    ]);
    assert!(ok, "{err}");
    let books = export
        .lines()
        .filter(|l| l.contains("\"type\":\"rulebook\""))
        .count();
    assert_eq!(books, 2, "{export}");

    // Replaying the export judges as the daemon did: 1 + 4 + 4 + 4 points for agent a.
    let input = dir.path().join("export.ndjson");
    std::fs::write(&input, &export).expect("write");
    let csv = dir.path().join("appraisal.csv");
    let (ok, _, err) = sup::run_floorwatch(&[
        "replay",
        "--month",
        "2026-11",
        "--appraisal",
        csv.to_str().expect("path"),
        input.to_str().expect("path"),
    ]);
    assert!(ok, "{err}");
    let csv = std::fs::read_to_string(&csv).expect("csv");
    let mut rows = csv.lines();
    let header: Vec<&str> = rows.next().expect("header").split(',').collect();
    let row: Vec<&str> = rows
        .find(|r| r.starts_with("a,"))
        .expect("agent a")
        .split(',')
        .collect();
    let col = |name: &str| row[header.iter().position(|h| *h == name).expect(name)];
    assert_eq!(col("points"), "13", "{csv}");
    assert_eq!(col("deduction"), "130", "{csv}");

    // An export from k2's ring on starts with the rulebook in force then (4 points).
    let (ok, later, err) = sup::run_floorwatch(&[
        "export",
        "--config",
        file.to_str().expect("path"),
        "--from",
        &(NOV + 60_000).to_string(),
        "--to",
        &to.0.to_string(),
    ]);
    assert!(ok, "{err}");
    let first: Value = serde_json::from_str(later.lines().next().expect("a line")).expect("json");
    assert_eq!(first["type"], "rulebook", "{later}");
    assert_eq!(first["rulebook"]["rules"]["ring_answer"]["points"], 4);
    assert_eq!(first["ts"], NOV + 60_000, "at the first exported event");
    assert_eq!(
        later
            .lines()
            .filter(|l| l.contains("\"type\":\"rulebook\""))
            .count(),
        1
    );

    // A restart on the same file journals nothing new and keeps every judgment.
    let mut child = spawn_daemon(&file);
    wait_ready(addr).await;
    assert_eq!(late_points(addr, 4).await, vec![1, 4, 4, 4]);
    signal(&child, "TERM");
    let (status, _) = wait_exit(&mut child, Duration::from_secs(20)).await;
    assert!(status.success(), "{status:?}");
    let (ok, export, err) =
        sup::run_floorwatch(&["export", "--config", file.to_str().expect("path")]);
    assert!(ok, "{err}");
    let books = export
        .lines()
        .filter(|l| l.contains("\"type\":\"rulebook\""))
        .count();
    assert_eq!(books, 2, "the restart journaled no third version");
}
