//! The data directory and the service manager, with real processes of the binary: one
//! daemon per `store.dir` (the second is refused naming the first one's PID, a `kill -9`
//! leaves no stale lock), the read-only commands beside a running daemon, systemd's
//! readiness notification, and SIGHUP (`systemctl reload`) that does not stop the daemon.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::crash::{spawn_daemon, wait_ready};
use crate::daemon_support::free_port;
use crate::daemon_support::get;
use crate::shutdown::{signal, wait_exit, write_config};

fn floorwatch(args: &[&str], config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_floorwatch"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run floorwatch")
}

fn check_store(dir: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_floorwatch"))
        .arg("check-store")
        .arg(dir)
        .output()
        .expect("run check-store");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn spawn_with_stderr(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_floorwatch"))
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn floorwatch run")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_on_the_same_directory_is_refused_naming_the_first_ones_pid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let first_dir = dir.path().join("first");
    let second_dir = dir.path().join("second");
    std::fs::create_dir_all(&first_dir).expect("mkdir");
    std::fs::create_dir_all(&second_dir).expect("mkdir");
    // Two configs, two ports, one store.dir.
    let a = free_port();
    let config_a = write_config(&first_dir, a, "");
    let b = free_port();
    let config_b = write_config(&second_dir, b, "");
    for c in [&config_a, &config_b] {
        let text = std::fs::read_to_string(c).expect("read");
        let text = text.replace(
            &format!(
                "{:?}",
                c.parent().expect("dir").join("data").display().to_string()
            ),
            &format!("{:?}", data.display().to_string()),
        );
        std::fs::write(c, text).expect("write");
    }

    let mut first = spawn_daemon(&config_a);
    wait_ready(a).await;
    let second = spawn_with_stderr(&config_b);
    let out = tokio::task::spawn_blocking(move || second.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "in use by another floorwatch (pid {})",
            first.id()
        )),
        "{err}"
    );
    assert!(err.starts_with("floorwatch: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    let (status, _, _) = get(a, "/healthz").await;
    assert_eq!(status, 200, "the first daemon runs on");

    // Read-only commands work beside it.
    let (ok, report) = check_store(&data);
    assert!(ok, "{report}");
    assert!(
        report.contains(&format!("held by pid {}", first.id())),
        "{report}"
    );
    let out = floorwatch(&["report", "--month", "2026-11"], &config_b);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("agent,team,period"));
    let out = floorwatch(&["export"], &config_b);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // kill -9 leaves no stale lock: the next daemon starts at once.
    first.kill().expect("kill -9");
    first.wait().expect("reaped");
    let (ok, report) = check_store(&data);
    assert!(ok, "{report}");
    assert!(report.contains("lock:          free"), "{report}");
    let mut third = spawn_daemon(&config_b);
    wait_ready(b).await;
    let (ok, report) = check_store(&data);
    assert!(ok, "{report}");
    assert!(
        report.contains(&format!("held by pid {}", third.id())),
        "{report}"
    );
    signal(&third, "TERM");
    let (status, _) = wait_exit(&mut third, Duration::from_secs(20)).await;
    assert!(status.success(), "{status:?}");
}

/// Reads one notification, waiting up to 20 s.
fn recv(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("a notification in time");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_hears_ready_once_the_daemon_serves_and_sighup_does_not_stop_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_port();
    let config = write_config(dir.path(), addr, "");
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut child = Command::new(env!("CARGO_BIN_EXE_floorwatch"))
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .env("NOTIFY_SOCKET", &path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn");
    let socket = std::sync::Arc::new(socket);
    let rx = socket.clone();
    let ready = tokio::task::spawn_blocking(move || recv(&rx))
        .await
        .expect("join");
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready}");
    assert!(
        ready.contains(&format!("STATUS=serving on {addr}")),
        "{ready}"
    );
    // READY=1 comes after the port is bound and the store restored.
    let (status, _, body) = get(addr, "/readyz").await;
    assert_eq!(status, 200, "{body}");

    // `systemctl reload` sends SIGHUP: the daemon says it reloads, then that it is ready
    // again (the rulebook is unchanged), and does not stop.
    signal(&child, "HUP");
    let rx = socket.clone();
    let reloading = tokio::task::spawn_blocking(move || recv(&rx))
        .await
        .expect("join");
    assert!(reloading.lines().any(|l| l == "RELOADING=1"), "{reloading}");
    let rx = socket.clone();
    let again = tokio::task::spawn_blocking(move || recv(&rx))
        .await
        .expect("join");
    assert!(again.lines().any(|l| l == "READY=1"), "{again}");
    assert!(
        child.try_wait().expect("wait").is_none(),
        "SIGHUP stopped the daemon"
    );
    let (status, _, _) = get(addr, "/healthz").await;
    assert_eq!(status, 200);

    signal(&child, "TERM");
    let rx = socket.clone();
    let stopping = tokio::task::spawn_blocking(move || recv(&rx))
        .await
        .expect("join");
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping}");
    let (status, _) = wait_exit(&mut child, Duration::from_secs(20)).await;
    assert!(status.success(), "{status:?}");
}

#[test]
fn check_store_reports_a_torn_tail_and_damage_without_cutting_anything() {
    let (root, _) = crate::upgrade::fixture_copy();
    let data = root.path().join("data");
    let segment = data.join("journal/00000000000000000001.log");
    let good = std::fs::read(&segment).expect("segment");

    // A torn write at the end: a note, not a problem, and the bytes stay.
    let mut torn = good.clone();
    torn.extend_from_slice(&[0x40, 0, 0, 0, 1, 2]);
    std::fs::write(&segment, &torn).expect("tear");
    let (ok, report) = check_store(&data);
    assert!(ok, "{report}");
    assert!(
        report.contains(&format!("6 bytes after 1:{} (torn write)", good.len())),
        "{report}"
    );
    assert!(report.contains("1628 records"), "{report}");
    assert!(report.contains("the next start cuts it off"), "{report}");
    assert_eq!(
        std::fs::read(&segment).expect("segment"),
        torn,
        "nothing cut"
    );

    // A flipped byte in the middle: a problem (exit 1), and still nothing cut.
    let mut damaged = good.clone();
    damaged[good.len() / 2] ^= 0x20;
    std::fs::write(&segment, &damaged).expect("damage");
    let (ok, report) = check_store(&data);
    assert!(!ok, "{report}");
    assert!(report.contains("followed by good ones"), "{report}");
    // The newest checkpoint is at the end: a start would cut the journal before it.
    assert!(
        report.contains("cannot continue from this checkpoint"),
        "{report}"
    );
    assert!(report.contains("verdict:       2 problem(s)"), "{report}");
    assert_eq!(std::fs::read(&segment).expect("segment"), damaged);
}
