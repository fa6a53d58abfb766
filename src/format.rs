//! The format version of a data directory: what this binary writes, what it reads, and
//! what it refuses.
//!
//! One number, [`STORE_FORMAT`], versions everything under `store.dir`. Each file records the
//! format it was written at:
//!
//! | file | where the format is |
//! |---|---|
//! | `journal/*.log` | bytes 6-7 of the segment header (`fwjrnl` + format, u16 big-endian) |
//! | `floorwatch.db`, `checkpoints.db` | `PRAGMA user_version` (0 = written before formats were recorded, which is format 1) |
//! | each checkpoint | its JSON `version` ([`crate::engine::CHECKPOINT_VERSION`] is this number) |
//!
//! # The rules
//!
//! - A file at a format **newer** than the binary's is refused before anything is changed,
//!   with a [`NewerFormat`] error naming both numbers. The data directory is left as it was.
//! - A file at an **older** format is read as it is, and upgraded where it is written: the
//!   daemon starts a new journal segment at its own format (no segment mixes two formats;
//!   old segments stay as they are and are read as they are), runs the database migrations
//!   from the old format to its own in one transaction per file, and writes new checkpoints
//!   at its own format. The first start of a newer binary is therefore a one-way door for
//!   older binaries (see `docs/install.md`, "Upgrade and rollback").
//!
//! # When to bump [`STORE_FORMAT`]
//!
//! Bump it (by one) in the change that makes the new binary write something an older binary
//! could not read, or would read wrongly, or would write over wrongly:
//!
//! - a new journaled event type, or a new field in a journaled event that changes what it
//!   means (an older binary would refuse the record, or judge it differently);
//! - a change of what an existing record, column or checkpoint field means;
//! - a new table or column that an older binary's writes would leave inconsistent;
//! - a change of the checkpoint's shape that an older binary could not deserialize.
//!
//! No bump for what older binaries ignore safely: a new table only the new code reads, a new
//! index, a new optional column with a default, new files beside the store. With the bump:
//!
//! 1. add the migration of the databases from the previous format to
//!    [`crate::store`]'s `MIGRATIONS` (an empty entry if only the journal changed);
//! 2. make the new fields of [`crate::engine::Checkpoint`] `#[serde(default)]` so that a
//!    checkpoint of the previous format still restores (what the old format could not hold
//!    is empty there, so the default is right);
//! 3. keep reading every older format as it is: the records of older journal segments, and
//!    older databases too, since `report`, `export` and `check-store` open a store read-only
//!    and never migrate it;
//! 4. add a row to the history below and to `docs/install.md`, and keep
//!    `tests/fixtures/store-v1` passing (it is the store of format 1, written by the release
//!    before formats were recorded; a fixture per format is welcome).
//!
//! # History
//!
//! | format | since | what |
//! |---|---|---|
//! | 1 | the first release | journal, `floorwatch.db` (violations, alert outbox, meta), `checkpoints.db`. Stores written before formats were recorded have `user_version` 0 and are format 1 |
//! | 2 | the record | the journal holds shifts, dispositions, demerits, waivers, closed months and rulebooks; `floorwatch.db` gains `waivers` (every waiver and reversal) and a `deduction` column (the money of each violation as raised; NULL, read as 0, in rows stored before); checkpoints hold rulebooks, shifts, the waivable ledger, outbound pairs and closed months. Waivers of a format-1 database are journaled at the first start |
//!
//! Must not: depend on anything of the crate (the journal, the store and the engine all read
//! it).

/// The store format this binary writes, and the newest it reads.
pub const STORE_FORMAT: u32 = 2;

/// A file of the data directory is at a newer format than this binary reads.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{what} is at store format {found}, newer than this binary's format {supported}: it was \
     written by a newer floorwatch; run a floorwatch that reads format {found}, or restore the \
     backup taken before the upgrade"
)]
pub struct NewerFormat {
    /// The file (or part of it) that is newer.
    pub what: String,
    pub found: u32,
    pub supported: u32,
}

/// `Err` when `found` is newer than `supported`.
pub fn check(what: impl FnOnce() -> String, found: u32, supported: u32) -> Result<(), NewerFormat> {
    if found > supported {
        return Err(NewerFormat {
            what: what(),
            found,
            supported,
        });
    }
    Ok(())
}

/// The format of an SQLite file from its `user_version`: 0 (never stamped) is format 1.
pub fn from_user_version(user_version: i64) -> u32 {
    u32::try_from(user_version.max(1)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_format_names_both_numbers_and_an_older_one_is_fine() {
        let e = check(|| "floorwatch.db".into(), 3, 2).expect_err("newer");
        let text = e.to_string();
        assert!(text.contains("store format 3"), "{text}");
        assert!(text.contains("this binary's format 2"), "{text}");
        assert!(text.starts_with("floorwatch.db "), "{text}");
        assert!(check(|| unreachable!(), 1, 2).is_ok());
        assert!(check(|| unreachable!(), 2, 2).is_ok());
    }

    #[test]
    fn an_unstamped_database_is_format_1() {
        assert_eq!(from_user_version(0), 1);
        assert_eq!(from_user_version(1), 1);
        assert_eq!(from_user_version(7), 7);
        assert_eq!(from_user_version(-3), 1);
    }
}
