//! The durable record: the journal of accepted events and the SQLite database beside it.
//!
//! Owns the files under `store.dir`: `journal/` (the [`Journal`] of accepted events, one JSON
//! record per event: `{"at":<applied ms>,"source":"<name>","event":<protocol JSON>}`) and
//! `floorwatch.db` (SQLite in WAL mode, `synchronous=NORMAL`) with the tables `violations`,
//! `alert_outbox` and `meta`, and `checkpoints.db` (same modes) with the table `checkpoints`.
//!
//! Checkpoints have a database file of their own because they are big (about 1 KB per
//! agent) and are written from their own thread: in the same file, the 100 MB insert of a
//! 100,000-agent floor held SQLite's write lock for up to 200 ms, and the engine task,
//! storing the violations it had just raised, waited that long (every deadline in between
//! fired late). Stores made before the split have their checkpoints moved at open.
//!
//! Durability: the journal is the record. A journaled batch is `fdatasync`ed before
//! [`Store::append`] returns, and only then may the daemon acknowledge it. The database is
//! derived from the journal (violations are re-upserted by their deterministic engine id when
//! the journal is replayed after a crash), except waivers, which live only in the database
//! and are written with `synchronous=FULL` semantics (a committed waiver is synced).
//!
//! Versions: every file carries the store format it was written at ([`crate::format`]). The
//! writer ([`Store::open`]) refuses a newer store before it changes anything, starts a new
//! journal segment when the last one is older, and migrates the databases (`MIGRATIONS`);
//! read-only openers ([`StoreReader::open_read_only`], [`check`]) read older formats as they
//! are and refuse newer ones.
//!
//! One writer per directory: [`Store::open`] takes the data directory's [`lock`] and holds it
//! until the store is dropped. Readers take no lock.
//!
//! Must not: apply events to the engine or read a clock. Its calls block on file I/O: the
//! engine owner task calls the writer directly (one `fdatasync` per batch), HTTP handlers use
//! a [`StoreReader`] on a blocking thread.

pub mod check;
pub mod lock;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::engine::{Effect, EventRef, Evidence, Kind, Rule, Violation};
use crate::event::{decode_event, Event, Id};
use crate::floor::{Status, ViolationFilter, ViolationRecord, Waiver};
use crate::format::NewerFormat;
use crate::journal::{
    Journal, JournalError, JournalOptions, JournalReader, Position, Recovery, HEADER_LEN,
};
use crate::time::{Millis, Timestamp};

/// How many checkpoints are kept besides one per day: the newest ones.
pub const KEEP_CHECKPOINTS: i64 = 5;

/// A store failure. Messages say what was being done.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("database {op}: {source}")]
    Db {
        op: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot create {}: {source}", path.display())]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("bad journal record at {}:{}: {reason}", position.segment, position.offset)]
    BadRecord { position: Position, reason: String },
    #[error("bad checkpoint {id}: {reason}")]
    BadCheckpoint { id: i64, reason: String },
    #[error("no such violation: {0}")]
    NoSuchViolation(u64),
    #[error("cannot start the checkpoint thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error(transparent)]
    Lock(#[from] lock::LockError),
    #[error(transparent)]
    NewerFormat(#[from] NewerFormat),
    #[error("no store in {}: {} is missing", dir.display(), file)]
    Missing { dir: PathBuf, file: &'static str },
}

fn db(op: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Db { op, source }
}

/// One accepted event as the journal keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The time the engine applied it (after clamping, or the receive time).
    pub at: Timestamp,
    pub source: Id,
    /// The event as received (its own `ts`, `seq`, `id`).
    pub event: Event,
}

#[derive(Deserialize)]
struct RecordIn<'a> {
    at: i64,
    source: String,
    #[serde(borrow)]
    event: &'a RawValue,
}

impl Record {
    /// The journal bytes of this record.
    pub fn encode(&self) -> Vec<u8> {
        encode_record(self.at, &self.source, &self.event)
    }

    /// Decodes journal bytes written by [`Record::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Record, String> {
        let r: RecordIn<'_> = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let event = decode_event(r.event.get()).map_err(|(_, e)| e.to_string())?;
        Ok(Record {
            at: Timestamp(r.at),
            source: Id::from(r.source),
            event,
        })
    }

    /// The event as the engine applied it: `ts` is the applied time.
    pub fn applied_event(&self) -> Event {
        let mut ev = self.event.clone();
        ev.ts = self.at;
        ev
    }
}

/// The journal bytes of the event `event` from `source`, applied at `at`.
pub fn encode_record(at: Timestamp, source: &str, event: &Event) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"at\":");
    // Serializing a number or a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, &at.0);
    out.extend_from_slice(b",\"source\":");
    let _ = serde_json::to_writer(&mut out, source);
    out.extend_from_slice(b",\"event\":");
    event.write_json(&mut out);
    out.push(b'}');
    out
}

/// A change to the violations table, derived from the engine's effects.
#[derive(Clone, Debug)]
pub enum ViolationOp {
    /// A violation was raised: insert it as `open` (nothing happens if its id exists).
    Raised(Box<Violation>),
    /// Its condition cleared: `closed` (a waived one stays waived), `cleared_at`, `ended_by`.
    Cleared {
        id: u64,
        at: Timestamp,
        ended_by: EventRef,
        lasted_ms: crate::time::Millis,
    },
    /// A waiver (`waived`) or its reversal at `at`: the status follows the latest one.
    Waiver {
        id: u64,
        waived: bool,
        at: Timestamp,
        by: Id,
        why: Id,
    },
}

impl ViolationOp {
    /// The store's part of an engine effect, if it has one.
    pub fn from_effect(e: Effect) -> Option<ViolationOp> {
        match e {
            Effect::Violation(v) => Some(ViolationOp::Raised(v)),
            Effect::Cleared {
                id,
                at,
                ended_by,
                lasted_ms,
            } => Some(ViolationOp::Cleared {
                id,
                at,
                ended_by,
                lasted_ms,
            }),
            Effect::Waiver {
                id,
                waived,
                at,
                by,
                why,
                ..
            } => Some(ViolationOp::Waiver {
                id,
                waived,
                at,
                by,
                why,
            }),
            _ => None,
        }
    }
}

/// A stored checkpoint.
#[derive(Clone, Debug)]
pub struct StoredCheckpoint {
    pub id: i64,
    pub clock: Option<Timestamp>,
    /// The journal end when it was taken: replay continues from here.
    pub position: Position,
    pub json: String,
}

/// The writer: the journal and the database connection of the engine owner task.
pub struct Store {
    dir: PathBuf,
    journal: Journal,
    db: Connection,
    /// `checkpoints.db`.
    checkpoints: Connection,
    /// The first record position of the oldest segment (replay from the beginning).
    start: Position,
    /// The store format written (the journal's options say which).
    format: u32,
    /// Held while the store is open; released when it is dropped (or the process ends).
    _lock: lock::DirLock,
}

/// The schema of `floorwatch.db` at store format 1. Never change it: a change of the schema
/// is a migration (`MIGRATIONS`), which new databases go through as well.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS violations (
    id INTEGER PRIMARY KEY,
    rule TEXT NOT NULL,
    kind TEXT NOT NULL,
    agent TEXT NOT NULL,
    team TEXT NOT NULL,
    call TEXT,
    reason TEXT,
    at INTEGER NOT NULL,
    points INTEGER NOT NULL,
    detected_at INTEGER NOT NULL,
    status TEXT NOT NULL,
    cleared_at INTEGER,
    evidence TEXT NOT NULL,
    waived_by TEXT,
    waiver_reason TEXT,
    waived_at INTEGER
);
CREATE INDEX IF NOT EXISTS violations_at ON violations(at);
CREATE INDEX IF NOT EXISTS violations_agent ON violations(agent, at);
CREATE INDEX IF NOT EXISTS violations_team ON violations(team, at);
CREATE TABLE IF NOT EXISTS alert_outbox (
    id INTEGER PRIMARY KEY,
    alert TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
";

/// The migrations of `floorwatch.db`: entry `i` takes a database from store format `i + 1`
/// to `i + 2` (an empty string when only other files changed). Applied in order, in one
/// transaction with the new `user_version`, by the writer's open.
const MIGRATIONS: &[&str] = &[
    // 1 -> 2: waivers are journaled events; every waiver and reversal of a violation is kept,
    // in the order recorded (the violation's row holds the latest). A violation keeps its
    // deduction (points x the money per point in force when it was raised; NULL in rows
    // stored before, which read as 0).
    "CREATE TABLE IF NOT EXISTS waivers (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        violation INTEGER NOT NULL,
        at INTEGER NOT NULL,
        waived INTEGER NOT NULL,
        by TEXT NOT NULL,
        why TEXT NOT NULL,
        UNIQUE (violation, at, waived, by, why)
    );
    CREATE INDEX IF NOT EXISTS waivers_violation ON waivers(violation, id);
    ALTER TABLE violations ADD COLUMN deduction REAL;",
];

/// The migrations of `checkpoints.db`, as [`MIGRATIONS`].
const CHECKPOINTS_MIGRATIONS: &[&str] = &[
    // 1 -> 2: only the checkpoints' shape grew (their own `version` says which).
    "",
];

/// `checkpoints.db` (and, in stores made before it existed, a table of `floorwatch.db`) at
/// store format 1. Never change it; see [`CHECKPOINTS_MIGRATIONS`].
const CHECKPOINTS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS checkpoints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    clock INTEGER,
    segment INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    day TEXT NOT NULL,
    checkpoint TEXT NOT NULL
);
";

/// The store format of an open database (`user_version`; 0 is format 1).
fn db_format(c: &Connection) -> Result<u32, StoreError> {
    let v: i64 = c
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(db("read user_version"))?;
    Ok(crate::format::from_user_version(v))
}

/// Refuses a database at a format newer than `format`; returns its format.
fn check_db_format(c: &Connection, path: &Path, format: u32) -> Result<u32, StoreError> {
    let found = db_format(c)?;
    crate::format::check(|| path.display().to_string(), found, format)?;
    Ok(found)
}

/// Creates the schema of format 1 if it is missing and migrates the database to `format`:
/// the migrations after its `user_version` and the new `user_version`, in one transaction.
/// Returns the older format it was at, if it was migrated (a database of format 1 that was
/// never stamped is only stamped).
fn migrate(
    c: &mut Connection,
    schema: &str,
    migrations: &[&str],
    format: u32,
) -> Result<Option<u32>, StoreError> {
    let tx = c.transaction().map_err(db("begin"))?;
    tx.execute_batch(schema).map_err(db("create schema"))?;
    let v: i64 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(db("read user_version"))?;
    if v == i64::from(format) {
        tx.commit().map_err(db("commit schema"))?;
        return Ok(None);
    }
    let found = crate::format::from_user_version(v);
    for step in found..format {
        if let Some(sql) = migrations.get(step as usize - 1) {
            tx.execute_batch(sql).map_err(db("migrate"))?;
        }
    }
    tx.pragma_update(None, "user_version", i64::from(format))
        .map_err(db("write user_version"))?;
    tx.commit().map_err(db("commit migration"))?;
    Ok((found < format).then_some(found))
}

/// Logs that a file of the store was upgraded to `format`.
fn log_upgrade(what: &str, from: Option<u32>, format: u32) {
    if let Some(from) = from {
        tracing::info!(
            file = what,
            from,
            to = format,
            "store upgraded to a newer format; older binaries refuse it from now on"
        );
    }
}

/// Opens the database at `path` with the store's pragmas and schema, migrated to `format`.
fn open_db(path: &Path, format: u32) -> Result<Connection, StoreError> {
    let mut c = open_sqlite(path)?;
    check_db_format(&c, path, format)?;
    let from = migrate(&mut c, SCHEMA, MIGRATIONS, format)?;
    log_upgrade("floorwatch.db", from, format);
    c.execute(
        "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', '1')",
        [],
    )
    .map_err(db("write meta"))?;
    Ok(c)
}

/// Opens `checkpoints.db` in `dir`, migrated to `format`.
fn open_checkpoints(dir: &Path, format: u32) -> Result<Connection, StoreError> {
    let path = dir.join("checkpoints.db");
    let mut c = open_sqlite(&path)?;
    check_db_format(&c, &path, format)?;
    let from = migrate(&mut c, CHECKPOINTS_SCHEMA, CHECKPOINTS_MIGRATIONS, format)?;
    log_upgrade("checkpoints.db", from, format);
    Ok(c)
}

/// Opens an SQLite file of the store read-only, refusing a newer format. Changes nothing:
/// when no write-ahead log is there (no daemon has the file open) it is opened as
/// immutable, so SQLite does not leave an empty `-wal` and `-shm` beside it either.
pub(crate) fn open_read_only(dir: &Path, file: &'static str) -> Result<Connection, StoreError> {
    use rusqlite::OpenFlags;
    let path = dir.join(file);
    if !path.exists() {
        return Err(StoreError::Missing {
            dir: dir.to_path_buf(),
            file,
        });
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut wal = path.clone().into_os_string();
    wal.push("-wal");
    let uri = if Path::new(&wal).exists() {
        format!("file:{}", uri_path(&path))
    } else {
        format!("file:{}?immutable=1", uri_path(&path))
    };
    let c = Connection::open_with_flags(uri, flags).map_err(db("open read-only"))?;
    c.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(db("set busy timeout"))?;
    check_db_format(&c, &path, crate::format::STORE_FORMAT)?;
    Ok(c)
}

/// `path` percent-encoded for an SQLite URI.
fn uri_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Moves the checkpoints of a store made before `checkpoints.db` into it (oldest first, so
/// the newest stays the newest), in one transaction on each side. A crash between the two
/// leaves copies in both; the next open copies them again, which is harmless (the newest is
/// still the newest, and pruning drops the extra ones).
fn move_old_checkpoints(from: &mut Connection, to: &mut Connection) -> Result<(), StoreError> {
    let old: bool = from
        .query_row(
            "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'checkpoints')",
            [],
            |r| r.get(0),
        )
        .map_err(db("look for old checkpoints"))?;
    if !old {
        return Ok(());
    }
    let tx = to.transaction().map_err(db("begin"))?;
    {
        let mut read = from
            .prepare("SELECT clock, segment, offset, day, checkpoint FROM checkpoints ORDER BY id")
            .map_err(db("read old checkpoints"))?;
        let rows = read
            .query_map([], |r| {
                Ok((
                    r.get::<_, Option<i64>>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, rusqlite::types::Value>(4)?,
                ))
            })
            .map_err(db("read old checkpoints"))?;
        for row in rows {
            let (clock, segment, offset, day, json) = row.map_err(db("read old checkpoints"))?;
            tx.execute(
                "INSERT INTO checkpoints (clock, segment, offset, day, checkpoint) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![clock, segment, offset, day, json],
            )
            .map_err(db("move a checkpoint"))?;
        }
    }
    tx.commit().map_err(db("commit moved checkpoints"))?;
    from.execute_batch("DROP TABLE checkpoints")
        .map_err(db("drop old checkpoints"))
}

/// Opens an SQLite file with the store's pragmas.
fn open_sqlite(path: &Path) -> Result<Connection, StoreError> {
    let c = Connection::open(path).map_err(db("open"))?;
    c.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(db("set busy timeout"))?;
    c.pragma_update(None, "journal_mode", "WAL")
        .map_err(db("set WAL mode"))?;
    c.pragma_update(None, "synchronous", "NORMAL")
        .map_err(db("set synchronous"))?;
    Ok(c)
}

impl Store {
    /// Opens (creating) the store in `dir`: the journal (a torn tail is truncated, see
    /// [`Recovery`]) and the database.
    pub fn open(dir: &Path) -> Result<(Store, Recovery), StoreError> {
        Store::open_with(dir, JournalOptions::default())
    }

    /// [`Store::open`] with journal options (tests and benchmarks). `opts.format` is the
    /// store format written; another than [`crate::format::STORE_FORMAT`] only in tests of
    /// format upgrades.
    ///
    /// In order: takes the directory's [`lock`] (refused while another process holds it),
    /// refuses a newer store before anything is changed (databases, then every journal
    /// segment), opens the journal (recovery, and a new segment if the last is older), then
    /// migrates the databases.
    pub fn open_with(dir: &Path, opts: JournalOptions) -> Result<(Store, Recovery), StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
            path: dir.to_path_buf(),
            source,
        })?;
        let lock = lock::DirLock::acquire(dir)?;
        let format = u32::from(opts.format);
        for file in ["floorwatch.db", "checkpoints.db"] {
            let path = dir.join(file);
            if path.exists() {
                let c = open_sqlite(&path)?;
                check_db_format(&c, &path, format)?;
            }
        }
        let (journal, recovery) = Journal::open(&dir.join("journal"), opts)?;
        log_upgrade("journal", recovery.upgraded_from.map(u32::from), format);
        let mut db = open_db(&dir.join("floorwatch.db"), format)?;
        let mut checkpoints = open_checkpoints(dir, format)?;
        move_old_checkpoints(&mut db, &mut checkpoints)?;
        // Segments are contiguous (open refuses a gap), so the oldest is this one.
        let first = recovery
            .end
            .segment
            .saturating_sub(recovery.segments.saturating_sub(1) as u64);
        let start = Position {
            segment: first,
            offset: HEADER_LEN,
        };
        Ok((
            Store {
                dir: dir.to_path_buf(),
                journal,
                db,
                checkpoints,
                start,
                format,
                _lock: lock,
            },
            recovery,
        ))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The store format this store is written at.
    pub fn format(&self) -> u32 {
        self.format
    }

    /// A reader for HTTP handlers (its own connection).
    pub fn reader(&self) -> Result<StoreReader, StoreError> {
        StoreReader::open_at(&self.dir, self.format)
    }

    /// Appends one batch of encoded records with one write and one `fdatasync`. On error
    /// nothing of the batch counts as stored, and the same batch may be appended again.
    pub fn append(&mut self, records: &[Vec<u8>]) -> Result<Position, StoreError> {
        let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        Ok(self.journal.append_batch(&refs)?)
    }

    /// The end of the journal.
    pub fn end(&self) -> Position {
        self.journal.end()
    }

    /// Reads the journal from `from` (or from its beginning) to its end.
    pub fn read_journal(&self, from: Option<Position>) -> Result<JournalReader, StoreError> {
        Ok(Journal::reader_at_format(
            &self.dir.join("journal"),
            from.unwrap_or(self.start),
            self.journal_format(),
        )?)
    }

    fn journal_format(&self) -> u16 {
        u16::try_from(self.format).unwrap_or(u16::MAX)
    }

    /// Applies violation changes in one transaction.
    pub fn write_violations(&mut self, ops: &[ViolationOp]) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let tx = self.db.transaction().map_err(db("begin"))?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO violations (id, rule, kind, agent, team, call, reason, at, \
                     points, detected_at, status, evidence, deduction) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'open', ?11, ?12) \
                     ON CONFLICT(id) DO UPDATE SET deduction = excluded.deduction \
                     WHERE violations.deduction IS NULL",
                )
                .map_err(db("prepare insert"))?;
            let mut clear = tx
                .prepare_cached(
                    "UPDATE violations SET \
                     status = CASE status WHEN 'open' THEN 'closed' ELSE status END, \
                     cleared_at = ?2, \
                     evidence = json_set(evidence, '$.ended_by', json(?3), '$.lasted_ms', ?4) \
                     WHERE id = ?1",
                )
                .map_err(db("prepare clear"))?;
            let mut waive = tx
                .prepare_cached(
                    "UPDATE violations SET \
                     status = CASE WHEN ?2 THEN 'waived' \
                                   WHEN cleared_at IS NULL THEN 'open' ELSE 'closed' END, \
                     waived_by = CASE WHEN ?2 THEN ?3 END, \
                     waiver_reason = CASE WHEN ?2 THEN ?4 END, \
                     waived_at = CASE WHEN NOT ?2 THEN NULL \
                        WHEN status = 'waived' AND waived_by = ?3 AND waiver_reason = ?4 \
                        THEN waived_at ELSE ?5 END \
                     WHERE id = ?1",
                )
                .map_err(db("prepare waiver"))?;
            // A tail replayed after a restart records the same waivers again: kept once.
            let mut chain = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO waivers (violation, at, waived, by, why) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(db("prepare waiver chain"))?;
            for op in ops {
                match op {
                    ViolationOp::Raised(v) => {
                        let evidence =
                            serde_json::to_string(&v.evidence).unwrap_or_else(|_| "{}".into());
                        insert
                            .execute(params![
                                v.id as i64,
                                v.rule.as_str(),
                                v.kind.as_str(),
                                v.agent.as_str(),
                                v.team.as_str(),
                                v.call.as_deref(),
                                v.reason.as_deref(),
                                v.at.0,
                                v.points,
                                v.detected_at.0,
                                evidence,
                                v.deduction,
                            ])
                            .map_err(db("insert violation"))?;
                    }
                    ViolationOp::Cleared {
                        id,
                        at,
                        ended_by,
                        lasted_ms,
                    } => {
                        let ended = serde_json::to_string(ended_by).unwrap_or_else(|_| "{}".into());
                        clear
                            .execute(params![*id as i64, at.0, ended, lasted_ms])
                            .map_err(db("close violation"))?;
                    }
                    ViolationOp::Waiver {
                        id,
                        waived,
                        at,
                        by,
                        why,
                    } => {
                        waive
                            .execute(params![*id as i64, waived, by.as_str(), why.as_str(), at.0])
                            .map_err(db("waive violation"))?;
                        chain
                            .execute(params![*id as i64, at.0, waived, by.as_str(), why.as_str()])
                            .map_err(db("record waiver"))?;
                    }
                }
            }
        }
        tx.commit().map_err(db("commit violations"))
    }

    /// Writes alert outbox changes in one transaction: `put` rows (violation id, the alert
    /// as JSON) replace any row of that id; `delete` ids are removed.
    pub fn write_alerts(
        &mut self,
        put: &[(u64, String)],
        delete: &[u64],
    ) -> Result<(), StoreError> {
        if put.is_empty() && delete.is_empty() {
            return Ok(());
        }
        let tx = self.db.transaction().map_err(db("begin"))?;
        {
            let mut upsert = tx
                .prepare_cached("INSERT OR REPLACE INTO alert_outbox (id, alert) VALUES (?1, ?2)")
                .map_err(db("prepare alert upsert"))?;
            for (id, json) in put {
                upsert
                    .execute(params![*id as i64, json])
                    .map_err(db("store alert"))?;
            }
            let mut remove = tx
                .prepare_cached("DELETE FROM alert_outbox WHERE id = ?1")
                .map_err(db("prepare alert delete"))?;
            for id in delete {
                remove
                    .execute(params![*id as i64])
                    .map_err(db("delete alert"))?;
            }
        }
        tx.commit().map_err(db("commit alerts"))
    }

    /// The alert outbox, oldest violation first.
    pub fn alert_outbox(&self) -> Result<Vec<(u64, String)>, StoreError> {
        let mut stmt = self
            .db
            .prepare("SELECT id, alert FROM alert_outbox ORDER BY id")
            .map_err(db("prepare outbox read"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?))
            })
            .map_err(db("read outbox"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(db("read outbox"))
    }

    /// Stores a checkpoint taken when the journal ended at `position`; keeps the newest
    /// [`KEEP_CHECKPOINTS`] and the newest of every `day` (the caller's local date).
    pub fn save_checkpoint(
        &mut self,
        clock: Option<Timestamp>,
        position: Position,
        day: &str,
        json: &str,
    ) -> Result<(), StoreError> {
        save_checkpoint_to(&mut self.checkpoints, clock, position, day, json)
    }

    /// A [`CheckpointWriter`] on this store's database.
    pub fn checkpoint_writer(&self) -> Result<CheckpointWriter, StoreError> {
        start_checkpoint_writer(&self.dir, self.format)
    }

    /// The newest checkpoint, if any.
    pub fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.checkpoints
            .query_row(
                "SELECT id, clock, segment, offset, checkpoint FROM checkpoints \
                 ORDER BY id DESC LIMIT 1",
                [],
                |r| {
                    Ok(StoredCheckpoint {
                        id: r.get(0)?,
                        clock: r.get::<_, Option<i64>>(1)?.map(Timestamp),
                        position: Position {
                            segment: r.get::<_, i64>(2)? as u64,
                            offset: r.get::<_, i64>(3)? as u64,
                        },
                        json: checkpoint_json(r, 4)?,
                    })
                },
            )
            .optional()
            .map_err(db("read checkpoint"))
    }

    /// Retention: deletes checkpoints whose engine clock is older than `keep` before `now`
    /// (never the newest), then the journal segments that end before the oldest checkpoint
    /// left (never the active one). Returns the journal bytes freed. Reports and exports see
    /// only what is left.
    pub fn apply_retention(&mut self, now: Timestamp, keep: Millis) -> Result<u64, StoreError> {
        let cutoff = now.plus(-keep).0;
        // The oldest checkpoint we keep decides how much journal is still needed.
        self.checkpoints
            .execute(
                "DELETE FROM checkpoints WHERE clock < ?1 AND id <> (SELECT MAX(id) FROM checkpoints)",
                params![cutoff],
            )
            .map_err(db("expire checkpoints"))?;
        let oldest: Option<(i64, i64)> = self
            .checkpoints
            .query_row(
                "SELECT segment, offset FROM checkpoints ORDER BY id ASC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db("read checkpoint"))?;
        let Some((segment, offset)) = oldest else {
            return Ok(0);
        };
        let before = Position {
            segment: segment as u64,
            offset: offset as u64,
        };
        let freed = self.journal.remove_segments_before(before)?;
        if freed > 0 {
            self.start = Position {
                segment: before.segment,
                offset: HEADER_LEN,
            };
        }
        Ok(freed)
    }
}

/// A read connection for the HTTP side and the report commands. Cheap to clone; queries run
/// one at a time on its connection.
#[derive(Clone)]
pub struct StoreReader {
    db: Arc<Mutex<Connection>>,
}

/// Inserts a checkpoint and prunes old ones, in one transaction on `db`.
fn save_checkpoint_to(
    conn: &mut Connection,
    clock: Option<Timestamp>,
    position: Position,
    day: &str,
    json: &str,
) -> Result<(), StoreError> {
    let tx = conn.transaction().map_err(db("begin"))?;
    // The JSON goes in through incremental blob I/O: bound as a parameter, SQLite would copy
    // it twice (the bound value, then the record), 200 MB more for a moment at 100,000
    // agents. The value is then a BLOB of UTF-8 (older stores have TEXT; readers take both).
    tx.execute(
        "INSERT INTO checkpoints (clock, segment, offset, day, checkpoint) \
         VALUES (?1, ?2, ?3, ?4, zeroblob(?5))",
        params![
            clock.map(|c| c.0),
            position.segment as i64,
            position.offset as i64,
            day,
            json.len() as i64
        ],
    )
    .map_err(db("insert checkpoint"))?;
    let row = tx.last_insert_rowid();
    {
        let mut blob = tx
            .blob_open(rusqlite::MAIN_DB, "checkpoints", "checkpoint", row, false)
            .map_err(db("open checkpoint blob"))?;
        blob.write_at(json.as_bytes(), 0)
            .map_err(db("write checkpoint blob"))?;
    }
    tx.execute(
        "DELETE FROM checkpoints WHERE id NOT IN \
         (SELECT id FROM checkpoints ORDER BY id DESC LIMIT ?1) \
         AND id NOT IN (SELECT MAX(id) FROM checkpoints GROUP BY day)",
        params![KEEP_CHECKPOINTS],
    )
    .map_err(db("prune checkpoints"))?;
    tx.commit().map_err(db("commit checkpoint"))
}

/// A checkpoint's JSON as stored: TEXT (older stores) or a BLOB of UTF-8.
fn checkpoint_json(r: &rusqlite::Row, i: usize) -> rusqlite::Result<String> {
    let bytes = r.get_ref(i)?.as_bytes()?;
    String::from_utf8(bytes.to_vec()).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Blob, e.into())
    })
}

/// A checkpoint handed to the [`CheckpointWriter`]: the engine state, and where it stands.
pub struct CheckpointJob {
    pub checkpoint: Arc<crate::engine::Checkpoint>,
    pub clock: Option<Timestamp>,
    pub position: Position,
    pub day: String,
}

/// Encodes and stores checkpoints on a thread of its own, with its own database connection.
///
/// The state of a big floor is large (about 1 KB of JSON per agent: 100 MB at 100,000
/// agents); encoding and writing it on the owner task held up the deadlines it fires by up
/// to a second once a minute. The owner now only takes a snapshot (which shares the state,
/// see `engine/cow.rs`) and hands it over. One checkpoint at a time: while one is being
/// written the next is skipped (the owner tries again at the next `store.checkpoint_every`).
pub type CheckpointWriter = crate::worker::Worker<CheckpointJob>;

fn start_checkpoint_writer(dir: &Path, format: u32) -> Result<CheckpointWriter, StoreError> {
    let mut conn = open_checkpoints(dir, format)?;
    crate::worker::Worker::start("checkpoint", move |job: CheckpointJob| {
        let started = std::time::Instant::now();
        match serde_json::to_string(&*job.checkpoint) {
            Ok(json) => {
                match save_checkpoint_to(&mut conn, job.clock, job.position, &job.day, &json) {
                    Ok(()) => tracing::debug!(
                        bytes = json.len(),
                        segment = job.position.segment,
                        offset = job.position.offset,
                        ms = started.elapsed().as_millis() as u64,
                        "checkpoint stored"
                    ),
                    Err(e) => tracing::warn!(error = %e, "cannot store a checkpoint; will retry"),
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot encode the engine checkpoint"),
        }
    })
    .map_err(StoreError::Thread)
}

impl StoreReader {
    /// A reader of the store in `dir`, read-write (waivers), of a store the daemon has
    /// opened (its schema exists).
    pub fn open(dir: &Path) -> Result<StoreReader, StoreError> {
        StoreReader::open_at(dir, crate::format::STORE_FORMAT)
    }

    fn open_at(dir: &Path, format: u32) -> Result<StoreReader, StoreError> {
        let path = dir.join("floorwatch.db");
        let c = open_sqlite(&path)?;
        check_db_format(&c, &path, format)?;
        Ok(StoreReader {
            db: Arc::new(Mutex::new(c)),
        })
    }

    /// A reader that changes nothing in `dir` and needs no lock, for the commands that run
    /// beside a daemon (`report`, `export`, `check-store`); it cannot waive. A store of an
    /// older format is read as it is; a newer one is refused.
    pub fn open_read_only(dir: &Path) -> Result<StoreReader, StoreError> {
        Ok(StoreReader {
            db: Arc::new(Mutex::new(open_read_only(dir, "floorwatch.db")?)),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest `limit` records matching `filter`, in the order raised.
    pub fn violations(
        &self,
        filter: &ViolationFilter,
        limit: usize,
    ) -> Result<Vec<ViolationRecord>, StoreError> {
        let mut sql = String::from("SELECT * FROM (SELECT * FROM violations WHERE 1=1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        use rusqlite::types::Value as V;
        if let Some(f) = filter.from {
            sql.push_str(" AND at >= ?");
            args.push(V::Integer(f.0));
        }
        if let Some(t) = filter.to {
            sql.push_str(" AND at < ?");
            args.push(V::Integer(t.0));
        }
        if let Some(a) = &filter.agent {
            sql.push_str(" AND agent = ?");
            args.push(V::Text(a.clone()));
        }
        if let Some(t) = &filter.team {
            sql.push_str(" AND team = ?");
            args.push(V::Text(t.clone()));
        }
        if let Some(r) = filter.rule {
            sql.push_str(" AND rule = ?");
            args.push(V::Text(r.as_str().into()));
        }
        if let Some(s) = filter.status {
            sql.push_str(" AND status = ?");
            args.push(V::Text(s.as_str().into()));
        }
        sql.push_str(" ORDER BY id DESC LIMIT ?) ORDER BY id ASC");
        args.push(V::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        let c = self.conn();
        let mut st = c.prepare(&sql).map_err(db("prepare query"))?;
        let rows = st
            .query_map(rusqlite::params_from_iter(args), row_to_record)
            .map_err(db("query violations"))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r.map_err(db("read violation"))?);
        }
        Ok(out)
    }

    /// One record by id.
    /// One violation's record with the whole chain of its waivers and reversals.
    pub fn violation(&self, id: u64) -> Result<Option<ViolationRecord>, StoreError> {
        let c = self.conn();
        let Some(mut r) = c
            .query_row(
                "SELECT * FROM violations WHERE id = ?1",
                params![id as i64],
                row_to_record,
            )
            .optional()
            .map_err(db("read violation"))?
        else {
            return Ok(None);
        };
        let chain = c
            .prepare_cached(
                "SELECT at, waived, by, why FROM waivers WHERE violation = ?1 ORDER BY id",
            )
            .and_then(|mut st| {
                st.query_map(params![id as i64], |row| {
                    Ok(crate::floor::WaiverEntry {
                        at: Timestamp(row.get(0)?),
                        waived: row.get(1)?,
                        by: row.get(2)?,
                        why: row.get(3)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()
            });
        r.waivers = match chain {
            Ok(v) => v,
            // A store of format 1 opened read-only has no chain: its row holds the waiver.
            Err(e) if e.to_string().contains("no such table") => Vec::new(),
            Err(e) => return Err(db("read waivers")(e)),
        };
        Ok(Some(r))
    }

    /// The violations waived in the database only: by a release from before waivers were
    /// journaled, and not yet journaled by a daemon of this one (no entry in `waivers`). Their
    /// deduction is `points × money_per_point` (those releases had one rate).
    pub fn legacy_waived(&self, money_per_point: f64) -> Result<Vec<Violation>, StoreError> {
        let c = self.conn();
        let with_chain = "SELECT * FROM violations WHERE status = 'waived' \
             AND NOT EXISTS (SELECT 1 FROM waivers w WHERE w.violation = violations.id)";
        let all = "SELECT * FROM violations WHERE status = 'waived'";
        let rows = match c.prepare(with_chain) {
            Ok(st) => Ok(st),
            // Format 1 has no chain: every waiver there is one of the database only.
            Err(e) if e.to_string().contains("no such table") => c.prepare(all),
            Err(e) => Err(e),
        }
        .and_then(|mut st| {
            st.query_map([], row_to_record)?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(db("read waived violations"))?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let mut v = r.violation;
                v.deduction = f64::from(v.points) * money_per_point;
                v
            })
            .collect())
    }

    /// Every waived violation whose `at` lies in `[from, to)`.
    pub fn waived(&self, from: Timestamp, to: Timestamp) -> Result<Vec<Violation>, StoreError> {
        let filter = ViolationFilter {
            from: Some(from),
            to: Some(to),
            status: Some(Status::Waived),
            ..ViolationFilter::default()
        };
        Ok(self
            .violations(&filter, usize::MAX >> 1)?
            .into_iter()
            .map(|r| r.violation)
            .collect())
    }
}

fn row_to_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<ViolationRecord> {
    let conv = |i: usize, e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    };
    let rule: String = r.get("rule")?;
    let kind: String = r.get("kind")?;
    let rule: Rule = serde_json::from_value(serde_json::Value::String(rule))
        .map_err(|e| conv(1, e.to_string()))?;
    let kind: Kind = serde_json::from_value(serde_json::Value::String(kind))
        .map_err(|e| conv(2, e.to_string()))?;
    let evidence: String = r.get("evidence")?;
    let evidence: Evidence =
        serde_json::from_str(&evidence).map_err(|e| conv(12, e.to_string()))?;
    let status: String = r.get("status")?;
    let status = Status::parse(&status).ok_or_else(|| conv(10, status))?;
    let waiver = match r.get::<_, Option<String>>("waived_by")? {
        Some(by) => Some(Waiver {
            by,
            reason: r
                .get::<_, Option<String>>("waiver_reason")?
                .unwrap_or_default(),
            at: Timestamp(r.get::<_, Option<i64>>("waived_at")?.unwrap_or_default()),
        }),
        None => None,
    };
    Ok(ViolationRecord {
        violation: Violation {
            id: r.get::<_, i64>("id")? as u64,
            rule,
            kind,
            agent: Id::from(r.get::<_, String>("agent")?),
            team: Id::from(r.get::<_, String>("team")?),
            call: r.get::<_, Option<String>>("call")?.map(Id::from),
            reason: r.get::<_, Option<String>>("reason")?.map(Id::from),
            at: Timestamp(r.get("at")?),
            points: r.get("points")?,
            // Stored since format 2; a database of format 1 (opened read-only by `report` or
            // `export`) has no such column, and rows stored before it are NULL: 0.
            deduction: match r.get::<_, Option<f64>>("deduction") {
                Ok(d) => d.unwrap_or(0.0),
                Err(rusqlite::Error::InvalidColumnName(_)) => 0.0,
                Err(e) => return Err(e),
            },
            detected_at: Timestamp(r.get("detected_at")?),
            evidence,
        },
        status,
        cleared_at: r.get::<_, Option<i64>>("cleared_at")?.map(Timestamp),
        waiver,
        waivers: Vec::new(),
    })
}

/// Reads every record of the journal in `dir` from `from` (or its beginning); bad records
/// are errors.
pub fn read_records(
    reader: JournalReader,
) -> impl Iterator<Item = Result<(Position, Record), StoreError>> {
    reader.map(|r| {
        let (pos, bytes) = r?;
        let rec = Record::decode(&bytes).map_err(|reason| StoreError::BadRecord {
            position: pos,
            reason,
        })?;
        Ok((pos, rec))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Body;

    #[test]
    fn the_checkpoint_thread_stores_what_it_is_handed_and_finishes_before_shutdown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = Store::open(dir.path()).expect("opens");
        let mut w = store.checkpoint_writer().expect("thread");
        let engine = crate::engine::Engine::new(crate::config::RulesConfig::default());
        let job = |offset| CheckpointJob {
            checkpoint: Arc::new(engine.checkpoint()),
            clock: Some(Timestamp(1_795_827_600_000)),
            position: Position { segment: 1, offset },
            day: "2026-11-28".into(),
        };
        assert!(w.submit(job(8)));
        w.wait_idle();
        assert!(!w.is_busy());
        assert!(w.submit(job(99)));
        // finish waits for the one in hand: it is the newest afterwards.
        w.finish();
        let latest = store.latest_checkpoint().expect("read").expect("stored");
        assert_eq!(
            latest.position,
            Position {
                segment: 1,
                offset: 99
            }
        );
        assert_eq!(latest.clock, Some(Timestamp(1_795_827_600_000)));
        let back: crate::engine::Checkpoint =
            serde_json::from_str(&latest.json).expect("checkpoint json");
        assert_eq!(
            serde_json::to_string(&back).expect("json"),
            serde_json::to_string(&engine.checkpoint()).expect("json")
        );
        // After finish nothing more is taken.
        assert!(!w.submit(job(100)));
    }

    #[test]
    fn checkpoints_of_a_store_made_before_checkpoints_db_are_moved_there_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            // A store as the previous version left it: checkpoints in floorwatch.db.
            let c = open_db(&dir.path().join("floorwatch.db"), 1).expect("db");
            c.execute_batch(CHECKPOINTS_SCHEMA).expect("old table");
            for (clock, day) in [(1000, "2026-11-27"), (2000, "2026-11-28")] {
                c.execute(
                    "INSERT INTO checkpoints (clock, segment, offset, day, checkpoint) \
                     VALUES (?1, 1, ?1, ?2, ?3)",
                    params![clock, day, format!("{{\"n\":{clock}}}")],
                )
                .expect("insert");
            }
        }
        let (store, _) = Store::open(dir.path()).expect("open");
        let newest = store.latest_checkpoint().expect("read").expect("moved");
        assert_eq!(newest.clock, Some(Timestamp(2000)));
        assert_eq!(newest.position.offset, 2000);
        assert_eq!(newest.json, r#"{"n":2000}"#);
        let moved: i64 = store
            .checkpoints
            .query_row("SELECT COUNT(*) FROM checkpoints", [], |r| r.get(0))
            .expect("count");
        assert_eq!(moved, 2);
        let left: i64 = store
            .db
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'checkpoints'",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(left, 0, "the old table is gone");
        drop(store);
        // Opening again finds nothing more to move and keeps what was moved.
        let (store, _) = Store::open(dir.path()).expect("reopen");
        let again = store.latest_checkpoint().expect("read").expect("kept");
        assert_eq!(again.id, newest.id);
    }

    #[test]
    fn checkpoints_are_stored_as_utf8_blobs_and_read_back_exactly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, _) = Store::open(dir.path()).expect("open");
        let end = store.end();
        for json in [r#"{"name":"张伟","n":1}"#, "", &"x".repeat(300_000)] {
            store
                .save_checkpoint(Some(Timestamp(5)), end, "2026-11-28", json)
                .expect("save");
            let back = store.latest_checkpoint().expect("read").expect("one");
            assert_eq!(back.json, json);
            let kind: String = store
                .checkpoints
                .query_row(
                    "SELECT typeof(checkpoint) FROM checkpoints WHERE id = ?1",
                    [back.id],
                    |r| r.get(0),
                )
                .expect("typeof");
            assert_eq!(kind, "blob");
        }
        // A row that is not UTF-8 is an error, not a panic or a lossy string.
        store
            .checkpoints
            .execute(
                "INSERT INTO checkpoints (clock, segment, offset, day, checkpoint) \
                 VALUES (6, 0, 0, 'd', X'FF00')",
                [],
            )
            .expect("insert");
        assert!(store.latest_checkpoint().is_err());
    }

    #[test]
    fn retention_removes_old_checkpoints_and_the_segments_before_the_oldest_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = JournalOptions {
            segment_bytes: 1024,
            ..JournalOptions::default()
        };
        let (mut store, _) = Store::open_with(dir.path(), opts).expect("opens");
        let day = 86_400_000;
        let record = vec![b'x'; 300];
        for d in 0..10i64 {
            for _ in 0..4 {
                store.append(std::slice::from_ref(&record)).expect("append");
            }
            let end = store.end();
            store
                .save_checkpoint(Some(Timestamp(d * day)), end, &format!("day-{d}"), "{}")
                .expect("checkpoint");
        }
        let segments = |dir: &Path| {
            std::fs::read_dir(dir.join("journal"))
                .expect("dir")
                .filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".log"))
                })
                .count()
        };
        let before = segments(dir.path());
        let freed = store
            .apply_retention(Timestamp(9 * day), 3 * day)
            .expect("retention");
        assert!(freed > 0);
        assert!(segments(dir.path()) < before);
        let oldest: i64 = store
            .checkpoints
            .query_row("SELECT MIN(clock) FROM checkpoints", [], |r| r.get(0))
            .expect("min");
        assert_eq!(oldest, 6 * day);
        let newest = store.latest_checkpoint().expect("read").expect("one");
        // What a restart needs is still readable, and so is everything after the oldest kept.
        assert!(store.read_journal(Some(newest.position)).is_ok());
        assert!(store.read_journal(None).expect("reader").all(|r| r.is_ok()));
    }

    /// Every file under `dir` with its bytes.
    fn snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
        let mut out = std::collections::BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).expect("dir") {
                let p = e.expect("entry").path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.insert(p.clone(), std::fs::read(&p).expect("read"));
                }
            }
        }
        out
    }

    fn user_version(path: &Path) -> i64 {
        Connection::open(path)
            .expect("open")
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("user_version")
    }

    #[test]
    fn a_store_is_stamped_with_the_format_it_was_written_at() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = Store::open(dir.path()).expect("open");
        assert_eq!(store.format(), crate::format::STORE_FORMAT);
        drop(store);
        let want = i64::from(crate::format::STORE_FORMAT);
        assert_eq!(user_version(&dir.path().join("floorwatch.db")), want);
        assert_eq!(user_version(&dir.path().join("checkpoints.db")), want);
    }

    #[test]
    fn a_store_of_a_newer_format_is_refused_naming_both_and_left_as_it_was() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, _) = Store::open(dir.path()).expect("open");
        store.append(&[b"{}".to_vec()]).expect("append");
        drop(store);
        let newer = crate::format::STORE_FORMAT + 1;
        Connection::open(dir.path().join("checkpoints.db"))
            .expect("open")
            .pragma_update(None, "user_version", i64::from(newer))
            .expect("stamp");
        // A torn tail that an accepted open would cut off.
        let segment = dir.path().join("journal/00000000000000000001.log");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&segment)
            .expect("segment");
        std::io::Write::write_all(&mut f, &[9, 9, 9]).expect("tear");
        let before = snapshot(dir.path());
        let err = match Store::open(dir.path()) {
            Ok(_) => panic!("a newer store opened"),
            Err(e) => e,
        };
        let text = err.to_string();
        assert!(text.contains("checkpoints.db"), "{text}");
        assert!(text.contains(&format!("store format {newer}")), "{text}");
        assert!(
            text.contains(&format!(
                "this binary's format {}",
                crate::format::STORE_FORMAT
            )),
            "{text}"
        );
        assert_eq!(snapshot(dir.path()), before, "nothing changed");
        // The read-only openers refuse it too.
        assert!(open_read_only(dir.path(), "checkpoints.db").is_err());
    }

    #[test]
    fn a_newer_binary_upgrades_the_store_and_the_older_one_then_refuses_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, _) = Store::open(dir.path()).expect("open");
        store.append(&[b"old".to_vec()]).expect("append");
        drop(store);
        let newer = crate::journal::FORMAT + 1;
        let opts = JournalOptions {
            format: newer,
            ..JournalOptions::default()
        };
        let (mut store, recovery) = Store::open_with(dir.path(), opts.clone()).expect("upgrade");
        assert_eq!(recovery.upgraded_from, Some(crate::journal::FORMAT));
        store.append(&[b"new".to_vec()]).expect("append");
        let all: Vec<Vec<u8>> = store
            .read_journal(None)
            .expect("reader")
            .map(|r| r.map(|(_, b)| b))
            .collect::<Result<_, _>>()
            .expect("read");
        assert_eq!(all, [b"old".to_vec(), b"new".to_vec()]);
        drop(store);
        for db in ["floorwatch.db", "checkpoints.db"] {
            assert_eq!(user_version(&dir.path().join(db)), i64::from(newer), "{db}");
        }
        let err = match Store::open(dir.path()) {
            Ok(_) => panic!("the older binary opened an upgraded store"),
            Err(e) => e,
        };
        assert!(matches!(err, StoreError::NewerFormat(_)), "{err}");
        // The newer binary opens it again without another upgrade.
        let (_, recovery) = Store::open_with(dir.path(), opts).expect("reopen");
        assert_eq!(recovery.upgraded_from, None);
    }

    #[test]
    fn record_round_trips() {
        let ev = decode_event(
            r#"{"type":"agent.state","ts":1000,"seq":7,"agent":"a-1","state":"not_ready","reason":"break"}"#,
        )
        .expect("valid");
        let rec = Record {
            at: Timestamp(2000),
            source: Id::from("pbx \"1\""),
            event: ev,
        };
        let back = Record::decode(&rec.encode()).expect("decodes");
        assert_eq!(back, rec);
        assert_eq!(back.applied_event().ts, Timestamp(2000));
        assert!(matches!(back.event.body, Body::AgentState { .. }));
    }
}
