//! Journal throughput: batches of 1, 10 and 100 records of 250 bytes, with an `fdatasync`
//! per batch (`EveryBatch`, the daemon's default) and without (`Never`, the baseline measured
//! in the same run), reported as records per second.
//!
//! The journal lives under `CARGO_TARGET_TMPDIR` (the target directory's file system, not a
//! tmpfs), so `fdatasync` reaches the disk. Old segments are removed as the bench goes so it
//! does not fill the disk. Run with `cargo bench --bench journal`.
//!
//! Measured 2026-11-28 on a shared 2-vCPU VM (Intel Xeon, ext4 on a virtio disk, Linux 6.18),
//! records/s (criterion mean):
//!
//! | batch | Never      | EveryBatch | EveryBatch / Never |
//! |-------|------------|------------|--------------------|
//! | 1     | 2.29 M     | 5.1 k      | 0.0022             |
//! | 10    | 6.15 M     | 49 k       | 0.0080             |
//! | 100   | 9.59 M     | 413 k      | 0.043              |
//!
//! One `fdatasync` costs about 0.2 ms here and dominates; batching is what buys throughput.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use floorwatch::journal::{FsyncPolicy, Journal, JournalOptions};

/// A record shaped like one journaled event: a JSON object of 250 bytes.
fn record(i: usize) -> Vec<u8> {
    let mut r = format!(
        "{{\"applied_at\":1764316800000,\"ts\":1764316799000,\"source\":\"pbx-1\",\"seq\":{i},\
         \"event\":{{\"type\":\"call.answered\",\"agent\":\"a{:04}\",\"call\":\"c{i}\",\"pad\":\"",
        i % 300
    )
    .into_bytes();
    r.resize(248, b'x');
    r.extend_from_slice(b"\"}");
    r.truncate(250);
    r
}

fn throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("journal_append");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for (name, fsync) in [
        ("never", FsyncPolicy::Never),
        ("every_batch", FsyncPolicy::EveryBatch),
    ] {
        for per in [1usize, 10, 100] {
            let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
            let opts = JournalOptions {
                fsync,
                segment_bytes: 8 << 20,
                ..JournalOptions::default()
            };
            let (mut journal, _) = Journal::open(dir.path(), opts).expect("open");
            let records: Vec<Vec<u8>> = (0..per).map(record).collect();
            let batch: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
            group.throughput(Throughput::Elements(per as u64));
            group.bench_with_input(BenchmarkId::new(name, per), &batch, |b, batch| {
                b.iter(|| {
                    let before = journal.end().segment;
                    let end = journal.append_batch(batch).expect("append");
                    if end.segment != before {
                        journal.remove_segments_before(end).expect("retention");
                    }
                    end
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
