//! `floorwatch demo` end to end: the daemon and the simulator in one process over a real
//! loopback WebSocket. A newcomer opening the floor sees every agent state and the first
//! violations within 20 seconds of the start. The real binary stops on SIGTERM as on Ctrl-C,
//! starts every run from a fresh data directory of its own and removes it, and keeps one
//! given with `--data`.

use std::collections::BTreeSet;
use std::time::Duration;

use floorwatch::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// A plain HTTP/1.1 GET; returns the body.
async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tcp.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{path}: {text}");
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// Effective states of the agents in a `/api/v1/floor` answer.
fn states(floor: &str) -> BTreeSet<String> {
    let v: serde_json::Value = match serde_json::from_str(floor) {
        Ok(v) => v,
        // Chunked transfer encoding: the JSON sits between the chunk sizes.
        Err(_) => {
            let start = floor.find('{').unwrap_or(0);
            let end = floor.rfind('}').map_or(floor.len(), |e| e + 1);
            serde_json::from_str(&floor[start..end]).expect("floor JSON")
        }
    };
    v["agents"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["effective"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_shows_every_state_and_first_violations_within_20_seconds() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().expect("addr");
    config.store.dir = data.path().to_path_buf();
    let started = Instant::now();
    let demo = floorwatch::demo::start(config, 12, 1)
        .await
        .expect("demo starts");
    let addr = demo.local_addr();
    let mut seen = BTreeSet::new();
    let mut violations = String::new();
    let want_states = ["ready", "not_ready", "acw", "ringing", "talking"];
    while started.elapsed() < Duration::from_secs(20) {
        seen.extend(states(&get(addr, "/api/v1/floor").await));
        violations = get(addr, "/api/v1/violations").await;
        let all_states = want_states.iter().all(|s| seen.contains(*s));
        if all_states && violations.contains("no_reason") && violations.contains("late") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for s in want_states {
        assert!(seen.contains(s), "no agent was {s} within 20 s: {seen:?}");
    }
    for k in ["no_reason", "acw_without_call", "late"] {
        assert!(violations.contains(k), "no {k} within 20 s: {violations}");
    }
    let metrics = get(addr, "/metrics").await;
    assert!(metrics.contains("floorwatch_violations_total"), "{metrics}");
    let stats = demo.shutdown().await.expect("clean shutdown");
    assert!(stats.generated > 12 && stats.acked.is_some(), "{stats:?}");
}

// ---- the real binary: signals and its data directory ----

/// A `floorwatch demo` child process.
struct DemoProcess {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    /// The data directory it printed.
    data: std::path::PathBuf,
    stderr: std::path::PathBuf,
    /// Held open: a closed pipe would fail the demo's later writes.
    _stdout: std::io::BufReader<std::process::ChildStdout>,
}

/// Starts `floorwatch demo` on a free port with `TMPDIR=tmp` and `args`; returns once it has
/// printed where it listens and writes.
fn spawn_demo(tmp: &std::path::Path, name: &str, args: &[&str]) -> DemoProcess {
    use std::io::BufRead;
    let addr = crate::daemon_support::free_port();
    let stderr = tmp.join(format!("{name}.stderr"));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_floorwatch"))
        .args(["demo", "--agents", "8", "--listen", &addr.to_string()])
        .args(args)
        .env("TMPDIR", tmp.join("tmp"))
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&stderr).expect("stderr file"))
        .spawn()
        .expect("spawn floorwatch demo");
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut printed = Vec::new();
    let mut data = None;
    loop {
        let mut line = String::new();
        if out.read_line(&mut line).expect("stdout line") == 0 {
            break;
        }
        let line = line.trim_end().to_string();
        if let Some(rest) = line.trim_start().strip_prefix("data ") {
            let path = rest.trim_start().split(" (").next().expect("a path");
            data = Some(std::path::PathBuf::from(path));
        }
        let done = line.starts_with("Ctrl-C to stop");
        printed.push(line);
        if done {
            break;
        }
    }
    // The README's list of what the demo prints: the pages are among them.
    for page in ["/lead", "/api/v1/floor", "/metrics"] {
        let url = format!("http://{addr}{page}");
        assert!(
            printed.iter().any(|l| l.ends_with(&url)),
            "{url} not printed: {printed:?}"
        );
    }
    let Some(data) = data else {
        let _ = child.kill();
        panic!(
            "no data line in {printed:?}; stderr: {}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        );
    };
    DemoProcess {
        child,
        addr,
        data,
        stderr,
        _stdout: out,
    }
}

/// The demo's violations, as JSON records.
async fn violations(addr: std::net::SocketAddr) -> Vec<serde_json::Value> {
    let body = get(addr, "/api/v1/violations").await;
    let start = body.find('{').unwrap_or(0);
    let end = body.rfind('}').map_or(body.len(), |e| e + 1);
    let v: serde_json::Value = serde_json::from_str(&body[start..end]).expect("violations JSON");
    v["violations"].as_array().cloned().unwrap_or_default()
}

/// Waits (up to 30 s) for the demo's first violations.
async fn first_violations(addr: std::net::SocketAddr) -> Vec<serde_json::Value> {
    let since = Instant::now();
    loop {
        let v = violations(addr).await;
        if !v.is_empty() {
            return v;
        }
        assert!(
            since.elapsed() < Duration::from_secs(30),
            "no violation within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn detected_at(v: &serde_json::Value) -> floorwatch::time::Timestamp {
    let at = v["detected_at"].as_str().expect("detected_at");
    floorwatch::time::Timestamp::parse_flexible(at).expect("a time")
}

/// Signals the demo, waits for its exit; its exit code and stderr.
async fn stop(mut demo: DemoProcess, sig: &str) -> (Option<i32>, String) {
    crate::shutdown::signal(&demo.child, sig);
    let (status, _) = crate::shutdown::wait_exit(&mut demo.child, Duration::from_secs(20)).await;
    let err = std::fs::read_to_string(&demo.stderr).expect("stderr");
    (status.code(), err)
}

/// `demo` once died at once on SIGTERM, and a second demo in the same folder went on from
/// the first one's `./data` (calls left ringing raised new violations, old ones stayed open).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_stops_on_sigterm_as_on_ctrl_c_and_two_demos_in_a_row_share_no_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).expect("TMPDIR");

    let first = spawn_demo(dir.path(), "first", &[]);
    let data1 = first.data.clone();
    assert!(data1.starts_with(&tmp), "{data1:?} is not in TMPDIR");
    assert!(
        data1.join("floorwatch.lock").exists(),
        "the daemon writes in {data1:?}"
    );
    first_violations(first.addr).await;
    let (code, err) = stop(first, "TERM").await;
    assert_eq!(code, Some(0), "a clean stop on SIGTERM: {err}");
    assert!(err.contains("signal=\"SIGTERM\""), "{err}");
    assert!(err.contains("daemon stopped"), "{err}");
    assert!(err.contains("floorwatch demo: stopped after"), "{err}");
    assert!(
        err.contains(&format!("floorwatch demo: removed {}", data1.display())),
        "{err}"
    );
    assert!(
        !data1.exists(),
        "the fresh directory is removed at the stop"
    );
    let left: Vec<_> = std::fs::read_dir(&tmp).expect("TMPDIR").collect();
    assert!(left.is_empty(), "nothing left in TMPDIR: {left:?}");

    let started = floorwatch::clock::Clock::system().now();
    let second = spawn_demo(dir.path(), "second", &[]);
    assert_ne!(second.data, data1, "a new directory for every run");
    let seen = first_violations(second.addr).await;
    for v in &seen {
        assert!(
            detected_at(v) >= started,
            "a violation of the first run in the second: {v}"
        );
    }
    let data2 = second.data.clone();
    let (code, err) = stop(second, "INT").await;
    assert_eq!(code, Some(0), "a clean stop on Ctrl-C: {err}");
    assert!(err.contains("daemon stopped"), "{err}");
    assert!(!data2.exists(), "removed at the stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_with_data_keeps_its_store_and_the_next_demo_goes_on_from_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("tmp")).expect("TMPDIR");
    let keep = dir.path().join("keep");
    let keep_arg = keep.display().to_string();

    let first = spawn_demo(dir.path(), "first", &["--data", &keep_arg]);
    assert_eq!(first.data, keep);
    let raised = first_violations(first.addr).await;
    let (code, err) = stop(first, "TERM").await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains(&format!("the store stays in {}", keep.display())),
        "{err}"
    );
    assert!(keep.join("floorwatch.lock").exists(), "the store is kept");

    let started = floorwatch::clock::Clock::system().now();
    let second = spawn_demo(dir.path(), "second", &["--data", &keep_arg]);
    let seen = violations(second.addr).await;
    let carried: Vec<_> = seen.iter().filter(|v| detected_at(v) < started).collect();
    assert!(
        carried.len() >= raised.len(),
        "the first run's {} violations are still there: {seen:?}",
        raised.len()
    );
    let (code, err) = stop(second, "TERM").await;
    assert_eq!(code, Some(0), "{err}");
    assert!(keep.exists());
}
