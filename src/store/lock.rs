//! The data directory's lock: one writer per `store.dir`.
//!
//! Owns the file `floorwatch.lock` in the data directory. The writer ([`DirLock::acquire`],
//! called by the store's open) takes an exclusive `flock(2)` on it (std's `File::try_lock`)
//! and then writes its PID into it; the lock lasts as long as the [`DirLock`], and the kernel
//! releases it when the process ends however it ends, so a `kill -9` leaves no stale lock.
//! The file itself stays: its content is the last holder's PID, and only the kernel lock
//! counts. Readers take no lock; [`holder`] tells who holds it without taking it for more
//! than an instant.
//!
//! Must not: decide anything from the file's content alone (a PID there may be stale), or
//! block: a held lock is an error for the caller to report.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The lock file in the data directory.
pub const LOCK_FILE: &str = "floorwatch.lock";

/// How often, and how far apart, [`DirLock::acquire`] tries before it gives up: [`holder`]
/// takes a shared lock for an instant, which must not make a starting daemon fail.
const ATTEMPTS: u32 = 50;
const PAUSE: Duration = Duration::from_millis(20);

/// The exclusive lock on a data directory, held until dropped.
#[derive(Debug)]
pub struct DirLock {
    // The lock belongs to the open file; closing it (drop) releases it.
    _file: File,
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "data directory {} is in use by another floorwatch ({}); stop it first, or give this one another store.dir",
        dir.display(),
        holder_text(*pid)
    )]
    Held { dir: PathBuf, pid: Option<u32> },
    #[error("cannot lock the data directory: {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn holder_text(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("pid {pid}"),
        None => "pid unknown".into(),
    }
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> LockError + 'a {
    move |source| LockError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

impl DirLock {
    /// Takes the exclusive lock of `dir` (which must exist) and writes this process's PID
    /// into the lock file. [`LockError::Held`], naming the holder's PID, when another
    /// process (or another [`DirLock`] of this one) holds it.
    pub fn acquire(dir: &Path) -> Result<DirLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io("open", &path))?;
        let mut attempt = 1;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if attempt < ATTEMPTS => {
                    attempt += 1;
                    std::thread::sleep(PAUSE);
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(LockError::Held {
                        dir: dir.to_path_buf(),
                        pid: read_pid(&path),
                    })
                }
                Err(TryLockError::Error(e)) => return Err(io("flock", &path)(e)),
            }
        }
        let pid = format!("{}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.write_all_at(pid.as_bytes(), 0))
            .map_err(io("write", &path))?;
        Ok(DirLock { _file: file })
    }
}

/// Who holds the lock of a data directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    /// No lock file: no floorwatch that locks has written this directory.
    NoLockFile,
    /// Nobody holds it (no daemon runs on it).
    Free,
    /// Held; the PID the holder wrote, if it is there yet.
    Held { pid: Option<u32> },
}

/// Who holds the lock of `dir`, found by taking a shared lock for an instant (a writer that
/// starts meanwhile waits for it, see [`DirLock::acquire`]). Opens the file read-only and
/// creates nothing.
pub fn holder(dir: &Path) -> Result<Holder, LockError> {
    let path = dir.join(LOCK_FILE);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Holder::NoLockFile),
        Err(e) => return Err(io("open", &path)(e)),
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(Holder::Free),
        Err(TryLockError::WouldBlock) => Ok(Holder::Held {
            pid: read_pid(&path),
        }),
        Err(TryLockError::Error(e)) => Err(io("flock", &path)(e)),
    }
}

/// The PID in the lock file, if it holds one.
fn read_pid(path: &Path) -> Option<u32> {
    let mut text = String::new();
    File::open(path)
        .and_then(|f| f.take(32).read_to_string(&mut text))
        .ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_free_once_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(holder(dir.path()).expect("holder"), Holder::NoLockFile);
        let first = DirLock::acquire(dir.path()).expect("first");
        let me = std::process::id();
        assert_eq!(
            holder(dir.path()).expect("holder"),
            Holder::Held { pid: Some(me) }
        );
        let err = DirLock::acquire(dir.path()).expect_err("held");
        assert!(
            matches!(err, LockError::Held { pid: Some(p), .. } if p == me),
            "{err}"
        );
        let text = err.to_string();
        assert!(text.contains(&format!("pid {me}")), "{text}");
        assert!(text.contains(&dir.path().display().to_string()), "{text}");
        drop(first);
        assert_eq!(holder(dir.path()).expect("holder"), Holder::Free);
        let _again = DirLock::acquire(dir.path()).expect("free again");
    }

    #[test]
    fn a_holder_probe_does_not_make_a_writer_fail() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(DirLock::acquire(dir.path()).expect("make the file"));
        let path = dir.path().join(LOCK_FILE);
        // A prober that holds its shared lock a little longer than an instant.
        let probe = File::open(&path).expect("open");
        probe.try_lock_shared().expect("shared");
        let released = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(probe);
        });
        let _lock = DirLock::acquire(dir.path()).expect("waits for the probe");
        released.join().expect("thread");
    }
}
