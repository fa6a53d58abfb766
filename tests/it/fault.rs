//! Storage faults: a full disk (a small tmpfs made by the test, as root) stops acks and
//! readiness, loses nothing, and recovers by itself once there is space again.

use std::time::Duration;

use floorwatch::simulate::{Generator, Misconduct, SimConfig};

use crate::crash::{live_violations, replayed_violations, stream_with_resume, START};
use crate::daemon_support::{config, eventually, fill, get, start, Tmpfs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_acks_and_readiness_and_recovers_without_loss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(_fs) = Tmpfs::mount(dir.path(), "2m") else {
        eprintln!("skipped: cannot mount a tmpfs (not root?)");
        return;
    };
    let mut c = config();
    c.store.dir = dir.path().join("data");
    let d = start(c).await;
    let addr = d.local_addr();
    assert_eq!(get(addr, "/readyz").await.0, 200);
    let filler = dir.path().join("filler");
    fill(&filler);

    let mut sim = SimConfig::new(20, 2, 3);
    sim.misconduct = Misconduct::unruly();
    sim.duration = Some(2 * 3_600_000);
    let events: Vec<String> = Generator::new(sim, START).map(|e| e.to_json()).collect();
    let client = tokio::spawn(stream_with_resume(addr, events.clone()));

    let reason = eventually("readyz to fail", || async {
        let (status, _, body) = get(addr, "/readyz").await;
        (status == 503).then_some(body)
    })
    .await;
    assert!(reason.contains("journal append failed"), "{reason}");
    // Nothing is acknowledged while the disk is full.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!client.is_finished());

    std::fs::remove_file(&filler).expect("make space");
    tokio::time::timeout(Duration::from_secs(60), client)
        .await
        .expect("every event acknowledged after the disk has space")
        .expect("client task");
    assert_eq!(get(addr, "/readyz").await.0, 200);
    let (live, end) = live_violations(addr).await;
    assert!(!live.is_empty());
    assert_eq!(live, replayed_violations(&events, end));
    d.shutdown().await;
}
