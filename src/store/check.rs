//! `floorwatch check-store DIR`: a data directory's format and health, read without
//! changing anything.
//!
//! Owns the judgement of a store at rest: which format each file is at, whether the journal
//! reads from end to end (every checksum, every record decodes), whether its last segment has
//! a torn tail (reported, never cut: that is the next start's job), the checkpoints and where
//! a restart would resume, the violations by status, and who holds the lock. It opens the
//! databases read-only ([`super::open_read_only`]) and the journal with readers only, and
//! takes no lock beyond the instant of [`super::lock::holder`], so it may run beside a daemon.
//!
//! Must not: write, truncate, create or migrate anything in the data directory.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::lock::{self, Holder};
use super::{open_read_only, read_records, StoreError};
use crate::format::STORE_FORMAT;
use crate::journal::{self, Journal, JournalError, Position, HEADER_LEN};
use crate::time::Timestamp;

/// What [`check`] found.
#[derive(Debug)]
pub struct StoreHealth {
    pub dir: PathBuf,
    /// Who holds the data directory's lock, or why that could not be told.
    pub lock: Result<Holder, String>,
    pub journal: Option<JournalHealth>,
    pub database: Option<DatabaseHealth>,
    pub checkpoints: Option<CheckpointsHealth>,
    /// The highest store format of any file (the store's format).
    pub format: Option<u32>,
    /// Worth knowing, not wrong (a torn tail the next start cuts off, an unstamped file).
    pub notes: Vec<String>,
    /// What is wrong: a start (or a report) would fail or lose something.
    pub problems: Vec<String>,
}

#[derive(Debug)]
pub struct JournalHealth {
    pub segments: Vec<journal::SegmentInfo>,
    /// Records that read and decode, from the oldest segment on.
    pub records: u64,
    /// Bytes after the last whole record of the last segment, and whether a good record
    /// follows them (damage, not a torn write).
    pub torn_tail: Option<(Position, u64, bool)>,
    pub quarantined: Vec<PathBuf>,
    pub bytes: u64,
}

#[derive(Debug)]
pub struct DatabaseHealth {
    pub format: u32,
    /// `user_version` was 0: written before formats were recorded.
    pub stamped: bool,
    pub quick_check: String,
    /// Violations by status (`open`, `closed`, `waived`).
    pub violations: BTreeMap<String, u64>,
    pub alert_outbox: u64,
    /// Checkpoints still in `floorwatch.db` (stores made before `checkpoints.db`).
    pub old_checkpoints: u64,
}

#[derive(Debug)]
pub struct CheckpointsHealth {
    pub format: u32,
    pub stamped: bool,
    pub count: u64,
    pub newest: Option<NewestCheckpoint>,
}

#[derive(Debug)]
pub struct NewestCheckpoint {
    pub id: i64,
    pub clock: Option<Timestamp>,
    pub position: Position,
    /// The format in its JSON.
    pub version: Option<u32>,
    /// Journal records after it: what a start replays.
    pub replay: Option<u64>,
}

impl StoreHealth {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn violations(&self) -> u64 {
        self.database
            .as_ref()
            .map_or(0, |d| d.violations.values().sum())
    }
}

/// Checks the store in `dir` without changing it.
pub fn check(dir: &Path) -> StoreHealth {
    let mut h = StoreHealth {
        dir: dir.to_path_buf(),
        lock: lock::holder(dir).map_err(|e| e.to_string()),
        journal: None,
        database: None,
        checkpoints: None,
        format: None,
        notes: Vec::new(),
        problems: Vec::new(),
    };
    if !dir.is_dir() {
        h.problems
            .push(format!("{} is not a directory", dir.display()));
        return h;
    }
    check_journal(&mut h);
    check_database(&mut h);
    check_checkpoints(&mut h);
    if matches!(h.lock, Ok(Holder::Held { .. }))
        && h.journal.as_ref().is_some_and(|j| j.torn_tail.is_some())
    {
        h.notes
            .push("a daemon holds the store: the journal's tail may be a write in progress".into());
    }
    h
}

/// The store's format is the highest of its files'.
fn seen_format(h: &mut StoreHealth, format: u32) {
    h.format = Some(h.format.map_or(format, |f| f.max(format)));
}

fn check_journal(h: &mut StoreHealth) {
    let dir = h.dir.join("journal");
    if !dir.exists() {
        h.problems.push("no journal/ directory".into());
        return;
    }
    let inspection = match journal::inspect(&dir) {
        Ok(i) => i,
        Err(e) => {
            h.problems.push(format!("journal: {e}"));
            return;
        }
    };
    let mut health = JournalHealth {
        bytes: inspection.segments.iter().map(|s| s.len).sum(),
        segments: inspection.segments,
        records: 0,
        torn_tail: None,
        quarantined: inspection.quarantined,
    };
    for s in &health.segments {
        match s.format {
            Some(f) => {
                seen_format(h, u32::from(f));
                if u32::from(f) > STORE_FORMAT {
                    h.problems.push(
                        crate::format::NewerFormat {
                            what: format!("journal segment {}", s.path.display()),
                            found: u32::from(f),
                            supported: STORE_FORMAT,
                        }
                        .to_string(),
                    );
                }
            }
            None => h.notes.push(format!(
                "journal segment {} has a header cut short (a crash while it was made); the next start completes it",
                s.path.display()
            )),
        }
    }
    if let (Some(tail), Some(last)) = (inspection.tail, health.segments.last()) {
        if tail.good_end < tail.len {
            let at = Position {
                segment: last.number,
                offset: tail.good_end,
            };
            let bytes = tail.len - tail.good_end;
            health.torn_tail = Some((at, bytes, tail.followed));
            if tail.followed {
                h.problems.push(format!(
                    "journal segment {} has a bad record at offset {} followed by good ones ({bytes} bytes from there): the next start cuts them off and keeps them in a .tail file",
                    last.path.display(),
                    tail.good_end
                ));
            } else {
                h.notes.push(format!(
                    "journal segment {} has a torn tail: {bytes} bytes after offset {} (an interrupted write); the next start cuts it off and keeps it in a .tail file",
                    last.path.display(),
                    tail.good_end
                ));
            }
        }
    }
    if !health.quarantined.is_empty() {
        h.notes.push(format!(
            "{} quarantined journal tail(s) from earlier recoveries (kept for inspection, never read)",
            health.quarantined.len()
        ));
    }
    let torn_at = health.torn_tail.map(|(at, _, _)| at);
    if let Some(first) = health.segments.first() {
        let from = Position {
            segment: first.number,
            offset: HEADER_LEN,
        };
        match Journal::reader(&dir, from) {
            Ok(reader) => {
                for r in read_records(reader) {
                    match r {
                        Ok(_) => health.records += 1,
                        // The torn tail, already reported.
                        Err(StoreError::Journal(JournalError::Corrupt {
                            offset, path, ..
                        })) if torn_at.is_some_and(|t| {
                            t.offset == offset && path.ends_with(format!("{:020}.log", t.segment))
                        }) => {}
                        // A newer segment, already reported.
                        Err(StoreError::Journal(JournalError::NewerFormat(_))) => {}
                        Err(e) => h.problems.push(format!("journal: {e}")),
                    }
                }
            }
            Err(e) => h.problems.push(format!("journal: {e}")),
        }
    }
    h.journal = Some(health);
}

fn check_database(h: &mut StoreHealth) {
    let c = match open_read_only(&h.dir, "floorwatch.db") {
        Ok(c) => c,
        Err(e) => {
            if let StoreError::NewerFormat(n) = &e {
                seen_format(h, n.found);
            }
            h.problems.push(e.to_string());
            return;
        }
    };
    let result = (|| -> rusqlite::Result<DatabaseHealth> {
        let v: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let quick_check: String = c.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        let mut violations = BTreeMap::new();
        let mut st = c.prepare("SELECT status, COUNT(*) FROM violations GROUP BY status")?;
        for row in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (status, n) = row?;
            violations.insert(status, n.max(0) as u64);
        }
        let alert_outbox: i64 =
            c.query_row("SELECT COUNT(*) FROM alert_outbox", [], |r| r.get(0))?;
        let has_old: bool = c.query_row(
            "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'checkpoints')",
            [],
            |r| r.get(0),
        )?;
        let old_checkpoints: i64 = if has_old {
            c.query_row("SELECT COUNT(*) FROM checkpoints", [], |r| r.get(0))?
        } else {
            0
        };
        Ok(DatabaseHealth {
            format: crate::format::from_user_version(v),
            stamped: v != 0,
            quick_check,
            violations,
            alert_outbox: alert_outbox.max(0) as u64,
            old_checkpoints: old_checkpoints.max(0) as u64,
        })
    })();
    match result {
        Ok(d) => {
            seen_format(h, d.format);
            if !d.stamped {
                h.notes.push("floorwatch.db was written before formats were recorded (format 1); the next start stamps it".into());
            }
            if d.quick_check != "ok" {
                h.problems
                    .push(format!("floorwatch.db: quick_check says {}", d.quick_check));
            }
            if d.old_checkpoints > 0 {
                h.notes.push(format!(
                    "{} checkpoint(s) in floorwatch.db (the layout before checkpoints.db); the next start moves them",
                    d.old_checkpoints
                ));
            }
            h.database = Some(d);
        }
        Err(e) => h.problems.push(format!("floorwatch.db: {e}")),
    }
}

/// The format field of a checkpoint's JSON.
#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

fn check_checkpoints(h: &mut StoreHealth) {
    let c = match open_read_only(&h.dir, "checkpoints.db") {
        Ok(c) => c,
        Err(StoreError::Missing { .. })
            if h.database.as_ref().is_some_and(|d| d.old_checkpoints > 0) =>
        {
            return;
        }
        Err(e) => {
            if let StoreError::NewerFormat(n) = &e {
                seen_format(h, n.found);
            }
            h.problems.push(e.to_string());
            return;
        }
    };
    let result = (|| -> rusqlite::Result<CheckpointsHealth> {
        let v: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let count: i64 = c.query_row("SELECT COUNT(*) FROM checkpoints", [], |r| r.get(0))?;
        let mut st = c.prepare(
            "SELECT id, clock, segment, offset, checkpoint FROM checkpoints ORDER BY id DESC LIMIT 1",
        )?;
        let mut rows = st.query([])?;
        let newest = match rows.next()? {
            Some(r) => {
                let json = r.get_ref(4)?.as_bytes()?;
                Some((
                    NewestCheckpoint {
                        id: r.get(0)?,
                        clock: r.get::<_, Option<i64>>(1)?.map(Timestamp),
                        position: Position {
                            segment: r.get::<_, i64>(2)?.max(0) as u64,
                            offset: r.get::<_, i64>(3)?.max(0) as u64,
                        },
                        version: None,
                        replay: None,
                    },
                    json.to_vec(),
                ))
            }
            None => None,
        };
        Ok(CheckpointsHealth {
            format: crate::format::from_user_version(v),
            stamped: v != 0,
            count: count.max(0) as u64,
            newest: newest.map(|(mut n, json)| {
                check_newest(h, &mut n, &json);
                n
            }),
        })
    })();
    match result {
        Ok(cp) => {
            seen_format(h, cp.format);
            if !cp.stamped {
                h.notes.push("checkpoints.db was written before formats were recorded (format 1); the next start stamps it".into());
            }
            h.checkpoints = Some(cp);
        }
        Err(e) => h.problems.push(format!("checkpoints.db: {e}")),
    }
}

/// The newest checkpoint: it decodes, its format is readable, and the journal continues from
/// its position (how many records a start replays).
fn check_newest(h: &mut StoreHealth, n: &mut NewestCheckpoint, json: &[u8]) {
    match serde_json::from_slice::<VersionOnly>(json) {
        Ok(v) => {
            n.version = Some(v.version);
            seen_format(h, v.version);
            if v.version > STORE_FORMAT {
                h.problems.push(
                    crate::format::NewerFormat {
                        what: format!("checkpoint {}", n.id),
                        found: v.version,
                        supported: STORE_FORMAT,
                    }
                    .to_string(),
                );
            } else if let Err(e) = serde_json::from_slice::<crate::engine::Checkpoint>(json) {
                h.problems
                    .push(format!("checkpoint {} does not decode: {e}", n.id));
            }
        }
        Err(e) => h
            .problems
            .push(format!("checkpoint {} does not decode: {e}", n.id)),
    }
    let torn = h.journal.as_ref().and_then(|j| j.torn_tail);
    if let Some((at, _, _)) = torn.filter(|(at, _, _)| n.position > *at) {
        h.problems.push(format!(
            "the newest checkpoint ({}) is at journal {}:{}, after the last good record ({}:{}): once the next start cuts the tail off, it cannot continue from this checkpoint",
            n.id, n.position.segment, n.position.offset, at.segment, at.offset
        ));
    }
    match Journal::reader(&h.dir.join("journal"), n.position) {
        Ok(reader) => {
            let mut replay = 0;
            for r in reader {
                if r.is_err() {
                    break;
                }
                replay += 1;
            }
            n.replay = Some(replay);
        }
        Err(e) => h.problems.push(format!(
            "the newest checkpoint ({}) points where the journal cannot be read: {e}",
            n.id
        )),
    }
}

impl fmt::Display for StoreHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "store:         {}", self.dir.display())?;
        match self.format {
            Some(v) => writeln!(
                f,
                "format:        {v} (this binary reads formats up to {STORE_FORMAT} and writes {STORE_FORMAT})"
            )?,
            None => writeln!(f, "format:        unknown (this binary: {STORE_FORMAT})")?,
        }
        match &self.lock {
            Ok(Holder::NoLockFile) => writeln!(f, "lock:          free (no lock file yet)")?,
            Ok(Holder::Free) => writeln!(f, "lock:          free (no daemon runs on it)")?,
            Ok(Holder::Held { pid: Some(pid) }) => {
                writeln!(f, "lock:          held by pid {pid} (a daemon runs on it)")?
            }
            Ok(Holder::Held { pid: None }) => writeln!(f, "lock:          held (pid unknown)")?,
            Err(e) => writeln!(f, "lock:          unknown: {e}")?,
        }
        if let Some(j) = &self.journal {
            let formats: std::collections::BTreeSet<String> = j
                .segments
                .iter()
                .map(|s| s.format.map_or("?".into(), |v| v.to_string()))
                .collect();
            let span = match (j.segments.first(), j.segments.last()) {
                (Some(a), Some(b)) if a.number != b.number => format!("{}..{}", a.number, b.number),
                (Some(a), _) => a.number.to_string(),
                _ => "none".into(),
            };
            writeln!(
                f,
                "journal:       {} segment(s) ({span}), {} bytes, {} records; segment formats: {}",
                j.segments.len(),
                j.bytes,
                j.records,
                formats.into_iter().collect::<Vec<_>>().join(", ")
            )?;
            match j.torn_tail {
                None => writeln!(f, "journal tail:  clean")?,
                Some((at, bytes, followed)) => writeln!(
                    f,
                    "journal tail:  {bytes} bytes after {}:{}{}",
                    at.segment,
                    at.offset,
                    if followed {
                        " (followed by good records: damage)"
                    } else {
                        " (torn write)"
                    }
                )?,
            }
        }
        if let Some(c) = &self.checkpoints {
            write!(
                f,
                "checkpoints:   {} (checkpoints.db format {})",
                c.count, c.format
            )?;
            match &c.newest {
                Some(n) => {
                    write!(
                        f,
                        "; newest #{} at journal {}:{}, engine clock {}, format {}",
                        n.id,
                        n.position.segment,
                        n.position.offset,
                        n.clock.map_or("none".into(), |t| t.to_string()),
                        n.version.map_or("?".into(), |v| v.to_string())
                    )?;
                    if let Some(r) = n.replay {
                        write!(f, "; a start replays {r} record(s) after it")?;
                    }
                    writeln!(f)?;
                }
                None => writeln!(f, "; a start replays the whole journal")?,
            }
        }
        if let Some(d) = &self.database {
            let by_status: Vec<String> = d
                .violations
                .iter()
                .map(|(s, n)| format!("{s} {n}"))
                .collect();
            writeln!(
                f,
                "violations:    {} ({})",
                self.violations(),
                if by_status.is_empty() {
                    "none".into()
                } else {
                    by_status.join(", ")
                }
            )?;
            writeln!(
                f,
                "floorwatch.db: format {}, quick_check {}, alert outbox {}",
                d.format, d.quick_check, d.alert_outbox
            )?;
        }
        for n in &self.notes {
            writeln!(f, "note:          {n}")?;
        }
        for p in &self.problems {
            writeln!(f, "problem:       {p}")?;
        }
        write!(
            f,
            "verdict:       {}",
            if self.ok() {
                "ok".to_string()
            } else {
                format!("{} problem(s)", self.problems.len())
            }
        )
    }
}

/// `floorwatch check-store DIR`: prints the report; an error (exit code 1) when it found
/// problems.
pub fn main(dir: &Path) -> anyhow::Result<()> {
    let health = check(dir);
    println!("{health}");
    anyhow::ensure!(
        health.ok(),
        "the store in {} has {} problem(s), listed above",
        dir.display(),
        health.problems.len()
    );
    Ok(())
}
