//! The `queue_log` tail in a running daemon: the fixture's lines written to a file bit by
//! bit (lines split across writes), through rotation (rename and copytruncate) and a daemon
//! restart, give exactly the events and the violations of the mapped file, each once.
//!
//! The story's timestamps are in the past: with `source.idle` at an hour (`config()`) the
//! engine clock follows event time only, so deadlines fire as later lines arrive, and every
//! event is older than wall time minus the 2 s window, so the tail releases what it has read
//! as soon as it reaches the end of the file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use floorwatch::adapter::queue_log::map_text;
use floorwatch::config::AmiSettings;
use floorwatch::config::{AdapterConfig, AdapterKind, Config};
use floorwatch::daemon::DaemonHandle;
use floorwatch::event::Event;
use serde_json::Value;

use crate::daemon_support::{self as sup, Found};

/// The fixture's lines without its comments.
fn lines() -> Vec<String> {
    sup::fixture_text("asterisk", "queue_log")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn mapped() -> Vec<Event> {
    map_text(&lines().concat(), AmiSettings::default(), 60_000)
        .expect("fixture maps")
        .0
}

/// (rule, kind, agent, at) of the violations the events raise in an engine of their own.
fn expected_violations() -> Found {
    let found = sup::engine_violations(&mapped());
    assert!(found.len() >= 3, "{found:?}");
    found
}

/// Every event as JSON without its `seq`, sorted: what must be stored, each once.
fn canonical(events: impl IntoIterator<Item = Value>) -> Vec<String> {
    let mut v: Vec<String> = events
        .into_iter()
        .map(|mut e| {
            if let Some(o) = e.as_object_mut() {
                for k in ["seq", "source_seq", "source"] {
                    o.remove(k);
                }
            }
            e.to_string()
        })
        .collect();
    v.sort();
    v
}

fn expected_events() -> Vec<String> {
    canonical(
        mapped()
            .iter()
            .map(|e| serde_json::from_str(&e.to_json()).expect("json")),
    )
}

/// The events of the phone system in the store's journal (read after the daemon stopped;
/// the daemon's own rulebook record left out).
fn stored_events(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    floorwatch::report::export(dir, None, None, &mut out).expect("export");
    canonical(
        String::from_utf8(out)
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("json"))
            .filter(|v| v["type"] != "rulebook"),
    )
}

/// The config of a daemon tailing `path`, as a user would write it, with its store in `store`.
fn tailing(store: &Path, path: &Path) -> Config {
    let mut c = sup::config_with_sources(&format!(
        "[[sources]]\nname = \"pbx\"\nkind = \"asterisk-queue-log\"\npath = {:?}\nreorder_window = \"2s\"\n",
        path.display().to_string()
    ));
    assert!(matches!(
        &c.adapters[..],
        [AdapterConfig { kind: AdapterKind::AsteriskQueueLog(q), .. }] if q.reorder_window == 2_000
    ));
    c.store.dir = store.to_path_buf();
    c
}

async fn daemon_tailing(store: &Path, path: &Path) -> DaemonHandle {
    sup::start(tailing(store, path)).await
}

/// Events applied by this daemon process (duplicates excluded), all types.
async fn applied(d: &DaemonHandle) -> u64 {
    sup::total(
        &sup::metrics(d.local_addr()).await,
        "floorwatch_events_total",
    ) as u64
}

/// Appends `lines` to `path`, each cut in two writes with a pause between, so the tail sees
/// partial lines.
async fn write_slowly(path: &Path, lines: &[String]) {
    for l in lines {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open");
        let cut = l.len() / 2;
        f.write_all(&l.as_bytes()[..cut]).expect("write");
        f.flush().expect("flush");
        tokio::time::sleep(Duration::from_millis(30)).await;
        f.write_all(&l.as_bytes()[cut..]).expect("write");
        f.flush().expect("flush");
    }
}

async fn wait_applied(d: &DaemonHandle, n: u64) {
    sup::eventually(&format!("{n} events applied"), || async {
        (applied(d).await >= n).then_some(())
    })
    .await;
}

/// Waits until the daemon raised the story's violations; checks it stored each event once.
async fn finish(d: DaemonHandle, store: &Path) {
    let want = expected_violations();
    let deadline = tokio::time::Instant::now() + sup::WAIT;
    loop {
        let got = sup::found(&sup::violations(d.local_addr(), sup::STORY_DAY).await);
        if got == want {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "violations: got {got:#?}, want {want:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The last lines (logouts) raise nothing: wait for them before stopping.
    sup::eventually("the logouts", || async {
        (sup::metric(
            d.local_addr(),
            r#"floorwatch_events_total{type="agent.logout"}"#,
        )
        .await
            >= 2.0)
            .then_some(())
    })
    .await;
    d.shutdown().await;
    assert_eq!(stored_events(store), expected_events());
}

fn setup() -> (PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir").keep();
    let store = dir.join("store");
    std::fs::create_dir_all(&store).expect("store dir");
    (store, dir.join("queue_log"))
}

#[tokio::test]
async fn queue_log_written_bit_by_bit_gives_the_story_violations() {
    let (store, path) = setup();
    let d = daemon_tailing(&store, &path).await;
    // The file does not exist yet: the tail waits for it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sup::metric(
            d.local_addr(),
            r#"floorwatch_adapter_connected{source="pbx"}"#
        )
        .await,
        0.0
    );
    // Two lines that are not queue_log lines: skipped, counted, nothing else changes.
    let mut input = lines();
    input.insert(5, "1795827904|not a line\n".to_string());
    input.insert(9, format!("1795828080|{}\n", "x".repeat(70 * 1024)));
    write_slowly(&path, &input).await;
    let n = mapped().len() as u64;
    wait_applied(&d, n).await;
    assert_eq!(applied(&d).await, n, "each event applied once");
    assert_eq!(
        sup::metric(
            d.local_addr(),
            r#"floorwatch_adapter_messages_total{outcome="ignored",source="pbx"}"#
        )
        .await,
        1.0,
        "CONFIGRELOAD"
    );
    assert_eq!(
        sup::metric(
            d.local_addr(),
            r#"floorwatch_adapter_messages_total{outcome="malformed",source="pbx"}"#
        )
        .await,
        2.0
    );
    finish(d, &store).await;
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(store.join("queue_log-pbx.json")).unwrap())
            .expect("state json");
    assert_eq!(state["generation"], 0, "{state}");
    assert!(state["first_line"]
        .as_str()
        .is_some_and(|l| l.ends_with("ADDMEMBER|")));
}

#[tokio::test]
async fn queue_log_rotated_by_rename_loses_and_repeats_nothing() {
    let (store, path) = setup();
    let all = lines();
    let (first, rest) = all.split_at(12);
    let (late_old, new) = rest.split_at(2);
    std::fs::write(&path, first.concat()).expect("write");
    let d = daemon_tailing(&store, &path).await;
    sup::eventually("the first part", || async {
        (applied(&d).await >= 8).then_some(())
    })
    .await;
    // logrotate renames; Asterisk writes on into the old file until it reopens its log.
    let old = path.with_extension("1");
    std::fs::rename(&path, &old).expect("rename");
    write_slowly(&old, late_old).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    write_slowly(&path, new).await;
    finish(d, &store).await;
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(store.join("queue_log-pbx.json")).unwrap())
            .expect("state json");
    assert_eq!(state["generation"], 1, "{state}");
}

#[tokio::test]
async fn queue_log_copytruncate_starts_over_without_loss() {
    let (store, path) = setup();
    let all = lines();
    let (first, rest) = all.split_at(15);
    std::fs::write(&path, first.concat()).expect("write");
    let d = daemon_tailing(&store, &path).await;
    sup::eventually("the first part", || async {
        (applied(&d).await >= 10).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    std::fs::copy(&path, path.with_extension("1")).expect("copy");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open")
        .set_len(0)
        .expect("truncate");
    tokio::time::sleep(Duration::from_millis(700)).await;
    write_slowly(&path, rest).await;
    finish(d, &store).await;
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(store.join("queue_log-pbx.json")).unwrap())
            .expect("state json");
    assert_eq!(state["generation"], 1, "{state}");
}

#[tokio::test]
async fn queue_log_tail_resumes_after_a_restart_without_duplicates() {
    let (store, path) = setup();
    let all = lines();
    let (first, rest) = all.split_at(14);
    write_slowly(&path, first).await;
    let d = daemon_tailing(&store, &path).await;
    sup::eventually("the first part", || async {
        (applied(&d).await >= 10).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = applied(&d).await;
    d.shutdown().await;
    // The file grows while the daemon is down, and then live again.
    let (down, live) = rest.split_at(3);
    write_slowly(&path, down).await;
    let d = daemon_tailing(&store, &path).await;
    write_slowly(&path, live).await;
    sup::eventually("the rest", || async {
        (applied(&d).await >= mapped().len() as u64 - before).then_some(())
    })
    .await;
    assert_eq!(
        sup::metric(d.local_addr(), "floorwatch_events_duplicate_total").await,
        0.0,
        "the tail resumes after what is stored"
    );
    assert_eq!(applied(&d).await + before, mapped().len() as u64);
    finish(d, &store).await;
}

#[tokio::test]
async fn queue_log_faster_than_the_rate_limit_is_read_more_slowly_and_loses_nothing() {
    let (store, path) = setup();
    let n = mapped().len() as u64;
    assert!(n >= 20, "{n} events");
    let mut c = tailing(&store, &path);
    // A third of the story a second: the bucket's first second lets a third through, the
    // rest waits, so reading the whole file takes two seconds at least.
    let rate = (n / 3) as u32;
    c.limits.max_events_per_second = rate;
    std::fs::write(&path, lines().concat()).expect("write");
    let started = std::time::Instant::now();
    let d = sup::start(c).await;
    wait_applied(&d, n).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1_500),
        "{n} events at {rate}/s applied in {took:?}"
    );
    assert_eq!(applied(&d).await, n, "each event applied once");
    assert!(
        sup::metric(
            d.local_addr(),
            r#"floorwatch_limit_hits_total{limit="max_events_per_second"}"#
        )
        .await
            >= 1.0
    );
    finish(d, &store).await;
}

/// The agents on the daemon's floor: (agent, logged in).
async fn floor_agents(d: &DaemonHandle) -> Vec<(String, bool)> {
    let (_, floor) = sup::get_json(d.local_addr(), "/api/v1/floor").await;
    let mut v: Vec<(String, bool)> = floor["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .map(|a| {
            (
                a["agent"].as_str().unwrap_or_default().to_string(),
                a["logged_in"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    v.sort();
    v
}

/// The lines of Asterisk's default `queue_log` fixture (interfaces in ADDMEMBER and
/// REMOVEMEMBER): all but the REMOVEMEMBER lines, and those.
fn default_lines() -> (Vec<String>, Vec<String>) {
    sup::fixture_text("asterisk", "queue_log.default")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .partition(|l| !l.contains("REMOVEMEMBER"))
}

/// A daemon tailing Asterisk's default `queue_log` under source `name`, with `extra` keys.
async fn tailing_default(name: &str, extra: &str) -> (DaemonHandle, PathBuf) {
    let (store, path) = setup();
    let mut c = sup::config_with_sources(&format!(
        "[[sources]]\nname = {name:?}\nkind = \"asterisk-queue-log\"\npath = {:?}\nreorder_window = \"2s\"\n{extra}",
        path.display().to_string()
    ));
    c.store.dir = store;
    (sup::start(c).await, path)
}

#[tokio::test]
async fn queue_log_tail_with_members_holds_the_people_and_removemember_logs_them_out() {
    let (d, path) = tailing_default(
        "pbx-members",
        "members = { \"PJSIP/801\" = \"li.na\", \"PJSIP/802\" = \"wang.fang\" }\n",
    )
    .await;
    let (day, removes) = default_lines();
    std::fs::write(&path, day.concat()).expect("write");
    let people = vec![("li.na".to_string(), true), ("wang.fang".to_string(), true)];
    sup::eventually("the people on the floor", || async {
        let got = floor_agents(&d).await;
        // The abandoned call is the story's last call event before the removals.
        let done = sup::metric(
            d.local_addr(),
            r#"floorwatch_events_total{type="call.abandoned"}"#,
        )
        .await
            >= 1.0;
        (done && got == people).then_some(())
    })
    .await;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open");
    f.write_all(removes.concat().as_bytes()).expect("write");
    f.flush().expect("flush");
    let gone = vec![
        ("li.na".to_string(), false),
        ("wang.fang".to_string(), false),
    ];
    sup::eventually("REMOVEMEMBER logs the people out", || async {
        (floor_agents(&d).await == gone).then_some(())
    })
    .await;
    d.shutdown().await;
}

#[tokio::test]
async fn queue_log_tail_without_members_warns_once_that_names_are_split() {
    crate::log_capture::start();
    let (d, path) = tailing_default("pbx-split", "").await;
    let (day, removes) = default_lines();
    std::fs::write(&path, [day, removes].concat().concat()).expect("write");
    let warned = || {
        crate::log_capture::text()
            .lines()
            .filter(|l| l.contains("source=pbx-split") && l.contains("names members two ways"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    sup::eventually("the warning", || async {
        (!warned().is_empty()).then_some(())
    })
    .await;
    // The floor shows the damage the warning is about: the people were never logged out.
    sup::eventually("the whole file applied", || async {
        let got = floor_agents(&d).await;
        (got.contains(&("li.na".to_string(), true))
            && got.contains(&("PJSIP/801".to_string(), false)))
        .then_some(())
    })
    .await;
    d.shutdown().await;
    let lines = warned();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("WARN"), "{}", lines[0]);
    assert!(
        lines[0].contains("log_membername_as_agent = yes") && lines[0].contains("members table"),
        "{}",
        lines[0]
    );
}
