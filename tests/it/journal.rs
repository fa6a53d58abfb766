//! The journal on real files: round trips across segments, reopen, torn and corrupt tails,
//! corruption in older segments, retention, a full disk, and random truncation.

use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;

use floorwatch::journal::{FsyncPolicy, Journal, JournalError, JournalOptions, Position};
use proptest::prelude::*;

const HEADER: u64 = 8;
const FRAME: u64 = 8;

fn small(segment_bytes: u64) -> JournalOptions {
    JournalOptions {
        fsync: FsyncPolicy::Never,
        segment_bytes,
        ..JournalOptions::default()
    }
}

fn start() -> Position {
    Position {
        segment: 1,
        offset: HEADER,
    }
}

fn segment_file(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:020}.log"))
}

fn read_from(dir: &Path, from: Position) -> Vec<(Position, Vec<u8>)> {
    Journal::reader(dir, from)
        .unwrap_or_else(|e| panic!("reader: {e}"))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("read: {e}"))
}

fn payloads(records: &[(Position, Vec<u8>)]) -> Vec<Vec<u8>> {
    records.iter().map(|(_, p)| p.clone()).collect()
}

/// Record `i` of a test stream: distinct content, varying length.
fn record(i: usize) -> Vec<u8> {
    format!("{{\"seq\":{i},\"pad\":\"{}\"}}", "x".repeat(i % 37)).into_bytes()
}

/// Writes `batches` batches of `per` records; returns every record written, in order.
fn fill(journal: &mut Journal, batches: usize, per: usize) -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    for b in 0..batches {
        let batch: Vec<Vec<u8>> = (0..per).map(|k| record(b * per + k)).collect();
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        journal.append_batch(&refs).expect("append");
        all.extend(batch);
    }
    all
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).expect("list") {
        let entry = entry.expect("entry");
        fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

fn flip_bit(path: &Path, offset: u64) {
    let mut bytes = fs::read(path).expect("read segment");
    bytes[offset as usize] ^= 0x10;
    fs::write(path, bytes).expect("write segment");
}

#[test]
fn round_trip_across_segments_from_start_and_middle() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut journal, recovery) = Journal::open(tmp.path(), small(600)).expect("open");
    assert_eq!(recovery.end, start());
    let written = fill(&mut journal, 40, 3);
    assert!(
        journal.end().segment >= 4,
        "several segments: {:?}",
        journal.end()
    );

    let all = read_from(tmp.path(), start());
    assert_eq!(payloads(&all), written);
    for pair in all.windows(2) {
        assert!(pair[0].0 < pair[1].0, "positions ascend");
    }

    let mid = all.len() / 2;
    let tail = read_from(tmp.path(), all[mid].0);
    assert_eq!(payloads(&tail), written[mid..]);
    assert_eq!(tail[0].0, all[mid].0);

    assert!(read_from(tmp.path(), journal.end()).is_empty());
}

#[test]
fn reader_from_a_batch_end_at_a_segment_boundary_moves_to_the_next_segment() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut journal, _) = Journal::open(tmp.path(), small(100)).expect("open");
    let first_end = journal.append_batch(&[&[1u8; 90]]).expect("append");
    journal.append_batch(&[&[2u8; 90]]).expect("append");
    assert_eq!(journal.end().segment, 2);
    let rest = read_from(tmp.path(), first_end);
    assert_eq!(payloads(&rest), [vec![2u8; 90]]);
}

#[test]
fn reopen_after_drop_keeps_end_and_records() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let opts = JournalOptions {
        fsync: FsyncPolicy::EveryBatch,
        segment_bytes: 700,
        ..JournalOptions::default()
    };
    let (mut journal, _) = Journal::open(tmp.path(), opts.clone()).expect("open");
    let written = fill(&mut journal, 20, 4);
    let end = journal.end();
    drop(journal);

    let (mut journal, recovery) = Journal::open(tmp.path(), opts).expect("reopen");
    assert_eq!(recovery.end, end);
    assert_eq!(journal.end(), end);
    assert_eq!(recovery.truncated_bytes, 0);
    assert_eq!(recovery.segments as u64, end.segment);
    let last = read_from(tmp.path(), start())
        .iter()
        .filter(|(p, _)| p.segment == end.segment)
        .count() as u64;
    assert_eq!(recovery.records, last);
    assert_eq!(payloads(&read_from(tmp.path(), start())), written);

    journal.append_batch(&[b"after reopen"]).expect("append");
    assert_eq!(
        read_from(tmp.path(), end)
            .into_iter()
            .map(|(_, p)| p)
            .collect::<Vec<_>>(),
        [b"after reopen".to_vec()]
    );
}

#[test]
fn torn_tail_at_every_byte_of_the_last_record_is_cut_back() {
    let original = tempfile::tempdir().expect("tempdir");
    let (mut journal, _) = Journal::open(original.path(), small(1 << 20)).expect("open");
    let mut written = fill(&mut journal, 5, 2);
    let last_record = b"the last record, torn by a crash".to_vec();
    let before_last = journal.end();
    journal.append_batch(&[&last_record]).expect("append");
    let last_start = before_last.offset;
    let last_end = journal.end().offset;
    drop(journal);
    let path_in = |dir: &Path| segment_file(dir, 1);
    assert_eq!(last_end - last_start, FRAME + last_record.len() as u64);

    for cut in last_start + 1..last_end {
        let tmp = tempfile::tempdir().expect("tempdir");
        copy_dir(original.path(), tmp.path());
        OpenOptions::new()
            .write(true)
            .open(path_in(tmp.path()))
            .and_then(|f| f.set_len(cut))
            .expect("truncate");

        let (mut journal, recovery) = Journal::open(tmp.path(), small(1 << 20)).expect("open");
        assert_eq!(recovery.truncated_bytes, cut - last_start, "cut at {cut}");
        assert_eq!(recovery.end, before_last, "cut at {cut}");
        assert_eq!(recovery.records, written.len() as u64, "cut at {cut}");
        assert_eq!(
            fs::metadata(path_in(tmp.path())).expect("stat").len(),
            last_start
        );
        let kept = tmp.path().join(format!("{:020}.log.tail-{last_start}", 1));
        assert_eq!(
            fs::read(&kept).expect("quarantine file"),
            fs::read(path_in(original.path())).expect("original")
                [last_start as usize..cut as usize]
        );

        journal
            .append_batch(&[b"next"])
            .expect("append after recovery");
        let mut expected = written.clone();
        expected.push(b"next".to_vec());
        assert_eq!(payloads(&read_from(tmp.path(), start())), expected);
    }
    written.push(last_record);
    assert_eq!(payloads(&read_from(original.path(), start())), written);
}

#[test]
fn garbage_after_the_tail_is_cut_off() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut journal, _) = Journal::open(tmp.path(), small(1 << 20)).expect("open");
    let written = fill(&mut journal, 4, 3);
    let end = journal.end();
    drop(journal);
    let garbage: Vec<u8> = (0..333u32).map(|i| (i * 7919 % 251) as u8).collect();
    let mut bytes = fs::read(segment_file(tmp.path(), 1)).expect("read");
    bytes.extend_from_slice(&garbage);
    fs::write(segment_file(tmp.path(), 1), bytes).expect("write");

    let (_, recovery) = Journal::open(tmp.path(), small(1 << 20)).expect("open");
    assert_eq!(recovery.truncated_bytes, garbage.len() as u64);
    assert_eq!(recovery.end, end);
    assert_eq!(payloads(&read_from(tmp.path(), start())), written);
}

#[test]
fn flipped_bit_in_the_last_record_is_cut_off() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut journal, _) = Journal::open(tmp.path(), small(1 << 20)).expect("open");
    let written = fill(&mut journal, 4, 3);
    let before = journal.end();
    journal.append_batch(&[b"{\"seq\":99}"]).expect("append");
    let end = journal.end();
    drop(journal);
    flip_bit(&segment_file(tmp.path(), 1), before.offset + FRAME + 3);

    let (_, recovery) = Journal::open(tmp.path(), small(1 << 20)).expect("open");
    assert_eq!(recovery.truncated_bytes, end.offset - before.offset);
    assert_eq!(recovery.end, before);
    assert_eq!(payloads(&read_from(tmp.path(), start())), written);
}

#[test]
fn flipped_bit_in_an_older_segment_is_reported_with_file_and_offset() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut journal, _) = Journal::open(tmp.path(), small(500)).expect("open");
    fill(&mut journal, 30, 2);
    drop(journal);
    let all = read_from(tmp.path(), start());
    let (victim, payload) = all[2].clone();
    assert_eq!(victim.segment, 1);
    flip_bit(&segment_file(tmp.path(), 1), victim.offset + FRAME + 1);

    // Open scans only the last segment, so it succeeds; the damage shows when read.
    let (_, recovery) = Journal::open(tmp.path(), small(500)).expect("open");
    assert_eq!(recovery.truncated_bytes, 0);
    let results: Vec<_> = Journal::reader(tmp.path(), start())
        .expect("reader")
        .collect();
    assert_eq!(
        results.len(),
        3,
        "two good records, then the error, then nothing"
    );
    let err = match &results[2] {
        Err(err) => err,
        Ok(_) => panic!("corrupt record read as good"),
    };
    assert!(matches!(err, JournalError::Corrupt { offset, .. } if *offset == victim.offset));
    let message = err.to_string();
    assert!(
        message.contains("00000000000000000001.log")
            && message.contains(&format!("offset {}", victim.offset))
            && message.contains("checksum"),
        "{message}"
    );
    assert_ne!(payload, Vec::<u8>::new());
}

#[test]
fn retention_removes_old_segments_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut journal, _) = Journal::open(tmp.path(), small(400)).expect("open");
    fill(&mut journal, 30, 2);
    let all = read_from(tmp.path(), start());
    let third = all
        .iter()
        .find(|(p, _)| p.segment == 3)
        .map(|(p, _)| *p)
        .expect("a third segment");
    let sizes: u64 = [1, 2]
        .iter()
        .map(|&s| {
            fs::metadata(segment_file(tmp.path(), s))
                .expect("stat")
                .len()
        })
        .sum();

    // The start of segment 3 is after the end of segment 2, not after the end of 3.
    assert_eq!(
        journal.remove_segments_before(third).expect("remove"),
        sizes
    );
    assert!(!segment_file(tmp.path(), 1).exists());
    assert!(!segment_file(tmp.path(), 2).exists());
    assert!(segment_file(tmp.path(), 3).exists());
    let kept: Vec<_> = all
        .iter()
        .filter(|(p, _)| p.segment >= 3)
        .cloned()
        .collect();
    assert_eq!(read_from(tmp.path(), third), kept);
    assert!(matches!(
        Journal::reader(tmp.path(), start()),
        Err(JournalError::BadPosition { .. })
    ));

    // Everything before the end of the log: all but the active segment.
    let end = journal.end();
    journal
        .remove_segments_before(Position {
            segment: u64::MAX,
            offset: u64::MAX,
        })
        .expect("remove");
    assert!(segment_file(tmp.path(), end.segment).exists());
    assert_eq!(fs::read_dir(tmp.path()).expect("list").count(), 1);
    drop(journal);

    let (mut journal, recovery) = Journal::open(tmp.path(), small(400)).expect("reopen");
    assert_eq!(recovery.end, end);
    assert_eq!(recovery.segments, 1);
    journal.append_batch(&[b"after retention"]).expect("append");
}

/// A tmpfs mounted for one test, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs { dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// A real full disk (tmpfs of 256 KiB). The same path with an injected short write is
/// covered by the unit tests in `src/journal.rs`, which run without root.
#[test]
fn full_disk_fails_the_batch_and_loses_nothing_then_the_same_batch_appends() {
    let fs = match Tmpfs::mount("256k") {
        Ok(fs) => fs,
        Err(why) if std::env::var_os("FLOORWATCH_TEST_NO_MOUNT").is_some() => {
            eprintln!("full disk test skipped (FLOORWATCH_TEST_NO_MOUNT): {why}");
            return;
        }
        Err(why) => panic!(
            "cannot mount a tmpfs for the full disk test ({why}); run as root or set \
             FLOORWATCH_TEST_NO_MOUNT=1 to skip it knowingly"
        ),
    };
    let ballast = fs.dir.path().join("ballast");
    fs::write(&ballast, vec![0u8; 64 << 10]).expect("ballast");
    let dir = fs.dir.path().join("journal");
    let opts = JournalOptions {
        fsync: FsyncPolicy::EveryBatch,
        segment_bytes: 1 << 20,
        ..JournalOptions::default()
    };
    let (mut journal, _) = Journal::open(&dir, opts.clone()).expect("open");

    let record = vec![b'e'; 3000];
    let batch: Vec<&[u8]> = vec![&record; 5];
    let mut stored = 0;
    let err = loop {
        match journal.append_batch(&batch) {
            Ok(_) => stored += batch.len(),
            Err(err) => break err,
        }
        assert!(stored < 1000, "the disk never filled");
    };
    assert!(stored > 0);
    match &err {
        JournalError::Io { source, .. } => assert_eq!(source.kind(), ErrorKind::StorageFull),
        other => panic!("expected a full disk, got {other}"),
    }
    let end = journal.end();
    assert_eq!(
        fs::metadata(segment_file(&dir, end.segment))
            .expect("stat")
            .len(),
        end.offset,
        "the partial write is cut back"
    );
    assert_eq!(read_from(&dir, start()).len(), stored);

    fs::remove_file(&ballast).expect("free space");
    journal
        .append_batch(&batch)
        .expect("the same batch once space is free");
    stored += batch.len();
    drop(journal);

    let (_, recovery) = Journal::open(&dir, opts).expect("reopen");
    assert_eq!(recovery.truncated_bytes, 0);
    let all = read_from(&dir, start());
    assert_eq!(all.len(), stored);
    assert!(all.iter().all(|(_, p)| *p == record));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever prefix of the last segment survives a crash, open recovers exactly the whole
    /// records in it, and nothing of the older segments.
    #[test]
    fn random_truncation_recovers_a_prefix_of_whole_records(
        batches in prop::collection::vec(
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..120), 1..6),
            1..25,
        ),
        cut_fraction in 0.0f64..=1.0,
    ) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut journal, _) = Journal::open(tmp.path(), small(700)).expect("open");
        for batch in &batches {
            let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
            journal.append_batch(&refs).expect("append");
        }
        let last = journal.end().segment;
        drop(journal);
        let all = read_from(tmp.path(), start());
        let path = segment_file(tmp.path(), last);
        let len = fs::metadata(&path).expect("stat").len();
        let cut = (len as f64 * cut_fraction) as u64;
        OpenOptions::new().write(true).open(&path).and_then(|f| f.set_len(cut)).expect("truncate");

        let (_, recovery) = Journal::open(tmp.path(), small(700)).expect("open");
        let expected: Vec<_> = all
            .iter()
            .filter(|(p, data)| p.segment < last || p.offset + FRAME + data.len() as u64 <= cut)
            .cloned()
            .collect();
        let good_end = expected
            .last()
            .filter(|(p, _)| p.segment == last)
            .map_or(HEADER, |(p, data)| p.offset + FRAME + data.len() as u64);
        prop_assert_eq!(recovery.end, Position { segment: last, offset: good_end });
        prop_assert_eq!(recovery.truncated_bytes, cut.saturating_sub(good_end));
        prop_assert_eq!(fs::metadata(&path).expect("stat").len(), good_end);
        prop_assert_eq!(read_from(tmp.path(), start()), expected);
    }
}
