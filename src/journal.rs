//! The journal: an append-only, checksummed log of opaque records in numbered segment files.
//!
//! Owns the files of one directory: segments named by a zero-padded segment number
//! (`00000000000000000001.log`) and the quarantine files that recovery leaves beside them
//! (`<segment>.log.tail-<offset>`). It knows nothing of what a record means; the daemon stores
//! one JSON object per accepted event.
//!
//! # On-disk format
//!
//! A segment starts with an 8-byte header: [`SEGMENT_PREFIX`] (`fwjrnl`), then the store
//! format its records were written at (u16, big-endian; see [`crate::format`]), followed by
//! records, each
//!
//! ```text
//! [u32 len, little-endian][u32 crc, little-endian][len bytes of payload]
//! ```
//!
//! where `crc` is CRC-32 (IEEE, as `crc32fast`) over the four length bytes and the payload, so
//! a zero-filled region never passes as an empty record. A payload is at most
//! [`MAX_RECORD_BYTES`]. A [`Position`] is a byte offset in a segment file: the start of a
//! record, or the end of the log. A batch is one positioned write into one segment; a new
//! segment starts between batches when the batch would push the current one past
//! `segment_bytes` (a single batch may make a segment longer than that).
//!
//! # Durability
//!
//! Under [`FsyncPolicy::EveryBatch`], a batch for which [`Journal::append_batch`] returned `Ok`
//! survives power loss: its bytes are `fdatasync`ed before the call returns, and the directory
//! is `fsync`ed whenever a segment is created or removed. Under [`FsyncPolicy::Never`] the
//! kernel decides; a crash may lose any suffix of the log, never a middle part (a segment is
//! `fdatasync`ed before the next one is created, under either policy).
//!
//! On [`Journal::open`] only the last segment is scanned: a torn or corrupt tail (short
//! write, bad length, bad checksum, garbage) is copied to a quarantine file, then truncated to
//! the last good record. Older segments are verified when read; corruption there is an error.
//!
//! # Formats
//!
//! [`Journal::open`] reads every segment's header first and refuses a journal with a segment
//! newer than [`JournalOptions::format`] before it changes anything. A last segment at an
//! older format is left as it is and a new segment is started at the writer's format, so no
//! segment mixes two formats; readers read every segment up to their own format.
//!
//! # What it must not do
//!
//! It never drops a record silently: bytes cut off at open are kept in a quarantine file and
//! reported in [`Recovery`]. It reads no clock and spawns no task; callers on an async runtime
//! run it on a blocking thread. One [`Journal`] per directory at a time: not enforced here,
//! the store holds the data directory's lock (`store::lock`) while it writes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The first bytes of every segment; the store format follows (u16, big-endian).
pub const SEGMENT_PREFIX: [u8; 6] = *b"fwjrnl";
/// The length of a segment's header: where its first record starts.
pub const HEADER_LEN: u64 = 8;
// The format must fit the header.
const _: () = assert!(crate::format::STORE_FORMAT <= u16::MAX as u32);
/// The store format this binary writes, as the header holds it.
pub const FORMAT: u16 = crate::format::STORE_FORMAT as u16;
/// Largest payload accepted by [`Journal::append_batch`]; longer lengths on disk are corruption.
pub const MAX_RECORD_BYTES: usize = 16 << 20;

const HEADER: u64 = HEADER_LEN;
const FRAME: usize = 8;

/// When appended bytes are forced to stable storage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `fdatasync` after every [`Journal::append_batch`]; `Ok` means durable.
    #[default]
    EveryBatch,
    /// Never `fdatasync` appends (the kernel writes back when it likes); for tests and benches.
    Never,
}

/// How a journal is written.
#[derive(Clone, Debug)]
pub struct JournalOptions {
    pub fsync: FsyncPolicy,
    /// A new segment starts before a batch that would take the current one past this size.
    pub segment_bytes: u64,
    /// The store format new segments are written at, and the newest one accepted
    /// ([`FORMAT`]; another value only in tests of format upgrades).
    pub format: u16,
}

impl Default for JournalOptions {
    fn default() -> Self {
        Self {
            fsync: FsyncPolicy::EveryBatch,
            segment_bytes: 64 << 20,
            format: FORMAT,
        }
    }
}

/// A byte position in the log: the start of a record, or the end of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// What [`Journal::open`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// Segment files in the directory.
    pub segments: usize,
    /// Whole records in the last segment (older segments are not scanned at open).
    pub records: u64,
    /// Bytes cut off the tail of the last segment (kept in a quarantine file).
    pub truncated_bytes: u64,
    /// The end of the log: where the next batch goes.
    pub end: Position,
    /// The format of the last segment when it was older than the writer's: a new segment
    /// was started at the writer's format.
    pub upgraded_from: Option<u16>,
}

/// A journal failure. Messages name the file, the offset and what went wrong.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal i/o: {op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("corrupt journal segment {} at offset {offset}: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("journal record of {len} bytes is larger than the limit of {max} bytes")]
    RecordTooLarge { len: usize, max: usize },
    #[error("journal position {}:{} in {}: {reason}", position.segment, position.offset, dir.display())]
    BadPosition {
        dir: PathBuf,
        position: Position,
        reason: &'static str,
    },
    #[error(transparent)]
    NewerFormat(#[from] crate::format::NewerFormat),
}

impl JournalError {
    fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> JournalError + 'a {
        move |source| JournalError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> JournalError {
        JournalError::Corrupt {
            path: path.to_path_buf(),
            offset,
            reason: reason.into(),
        }
    }
}

/// The writer of one journal directory.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    opts: JournalOptions,
    /// Oldest segment still on disk.
    first: u64,
    active: File,
    active_path: PathBuf,
    end: Position,
    /// A failed append could not be cut back; bytes past `end` may be on disk.
    dirty_tail: bool,
    #[cfg(test)]
    fault: Option<Fault>,
}

/// A failure injected into the next append (unit tests only).
#[cfg(test)]
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Write this many bytes of the batch, then fail as a full disk does.
    ShortWrite(usize),
    /// Write the batch, then fail the `fdatasync`.
    Sync,
}

impl Journal {
    /// Opens (creating) the journal in `dir`. Scans the last segment: a torn or corrupt tail
    /// (bad length, bad checksum, short write) is quarantined and truncated to the last good
    /// record, as reported in [`Recovery`]. A missing segment between others, or a segment
    /// that does not start with [`SEGMENT_PREFIX`], is an error, and so is a segment at a
    /// format newer than `opts.format` (checked before anything is changed). A last segment
    /// at an older format is followed by a new one at `opts.format`.
    pub fn open(dir: &Path, opts: JournalOptions) -> Result<(Journal, Recovery), JournalError> {
        fs::create_dir_all(dir).map_err(JournalError::io("create directory", dir))?;
        let segments = list_segments(dir)?;
        let mut last_format = opts.format;
        for (i, &segment) in segments.iter().enumerate() {
            let path = segment_path(dir, segment);
            let is_last = i + 1 == segments.len();
            if let Some(format) = read_format(&path, is_last)? {
                check_format(&path, format, opts.format)?;
                if is_last {
                    last_format = format;
                }
            }
        }
        let Some((&first, &last)) = segments.first().zip(segments.last()) else {
            let path = segment_path(dir, 1);
            let active = create_segment(dir, &path, opts.format)?;
            let journal = Journal {
                dir: dir.to_path_buf(),
                opts,
                first: 1,
                active,
                active_path: path,
                end: Position {
                    segment: 1,
                    offset: HEADER,
                },
                dirty_tail: false,
                #[cfg(test)]
                fault: None,
            };
            let recovery = Recovery {
                segments: 1,
                records: 0,
                truncated_bytes: 0,
                end: journal.end,
                upgraded_from: None,
            };
            return Ok((journal, recovery));
        };
        let path = segment_path(dir, last);
        let active = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(JournalError::io("open segment", &path))?;
        let (records, good, truncated_bytes) = recover_tail(&active, &path, opts.format)?;
        let mut journal = Journal {
            dir: dir.to_path_buf(),
            opts,
            first,
            active,
            active_path: path,
            end: Position {
                segment: last,
                offset: good,
            },
            dirty_tail: false,
            #[cfg(test)]
            fault: None,
        };
        let mut recovery = Recovery {
            segments: segments.len(),
            records,
            truncated_bytes,
            end: journal.end,
            upgraded_from: None,
        };
        if last_format < journal.opts.format {
            journal.rotate()?;
            recovery.segments += 1;
            recovery.records = 0;
            recovery.end = journal.end;
            recovery.upgraded_from = Some(last_format);
        }
        Ok((journal, recovery))
    }

    /// Appends all records of a batch with one write (into one segment) and, under
    /// [`FsyncPolicy::EveryBatch`], one `fdatasync`; returns the end position after the batch.
    /// An empty batch writes nothing. Records longer than [`MAX_RECORD_BYTES`] refuse the
    /// whole batch before anything is written.
    ///
    /// On an error the partial write is cut back (best effort; retried by the next call), so
    /// the log stays valid, the journal stays usable, and the caller may retry the same batch
    /// later (e.g. once a full disk has space again). Nothing appended earlier is touched.
    pub fn append_batch(&mut self, records: &[&[u8]]) -> Result<Position, JournalError> {
        let mut bytes = 0usize;
        for record in records {
            if record.len() > MAX_RECORD_BYTES {
                return Err(JournalError::RecordTooLarge {
                    len: record.len(),
                    max: MAX_RECORD_BYTES,
                });
            }
            bytes += FRAME + record.len();
        }
        if records.is_empty() {
            return Ok(self.end);
        }
        if self.dirty_tail {
            self.cut_back()?;
        }
        if self.end.offset > HEADER
            && self.end.offset.saturating_add(bytes as u64) > self.opts.segment_bytes
        {
            self.rotate()?;
        }
        let mut buf = Vec::with_capacity(bytes);
        for record in records {
            encode(&mut buf, record);
        }
        if let Err(source) = self.write_at_end(&buf) {
            // Cut back so the tail is whole records only; if that fails too, the next call
            // retries it before writing.
            self.dirty_tail = self.cut_back().is_err();
            return Err(source);
        }
        self.end.offset += buf.len() as u64;
        Ok(self.end)
    }

    /// The end of the log: where the next batch goes.
    pub fn end(&self) -> Position {
        self.end
    }

    /// The directory this journal owns.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads records from `from` (a position returned by [`Journal::append_batch`],
    /// [`Journal::end`], [`Recovery`] or a reader) to the end of the log at the time of the
    /// call, across segments. Verifies every checksum; an error ends the iteration, and so
    /// does a segment at a format newer than this binary's ([`FORMAT`]).
    pub fn reader(dir: &Path, from: Position) -> Result<JournalReader, JournalError> {
        Journal::reader_at_format(dir, from, FORMAT)
    }

    /// [`Journal::reader`] for a reader of store format `format` (tests of format upgrades).
    pub fn reader_at_format(
        dir: &Path,
        from: Position,
        format: u16,
    ) -> Result<JournalReader, JournalError> {
        let bad = |reason| JournalError::BadPosition {
            dir: dir.to_path_buf(),
            position: from,
            reason,
        };
        let segments = list_segments(dir)?;
        let (Some(&first), Some(&last)) = (segments.first(), segments.last()) else {
            return Err(bad("the journal has no segments"));
        };
        if from.segment < first {
            return Err(bad("the segment was removed by retention"));
        }
        if from.segment > last {
            return Err(bad("the segment does not exist yet"));
        }
        let mut pending = Vec::new();
        for &segment in segments.iter().filter(|&&s| s >= from.segment) {
            let path = segment_path(dir, segment);
            let len = fs::metadata(&path)
                .map_err(JournalError::io("stat segment", &path))?
                .len();
            pending.push((segment, path, len));
        }
        let first_len = pending.first().map_or(HEADER, |p| p.2);
        if from.offset < HEADER || from.offset > first_len {
            return Err(bad("the offset is outside the segment"));
        }
        pending.reverse();
        Ok(JournalReader {
            pending,
            current: None,
            start: from.offset,
            failed: false,
            format,
        })
    }

    /// Deletes whole segments that end at or before `before` (retention), oldest first;
    /// never the active segment. Returns the bytes freed.
    pub fn remove_segments_before(&mut self, before: Position) -> Result<u64, JournalError> {
        let mut freed = 0;
        while self.first < self.end.segment {
            let path = segment_path(&self.dir, self.first);
            let len = fs::metadata(&path)
                .map_err(JournalError::io("stat segment", &path))?
                .len();
            let ends_before = Position {
                segment: self.first,
                offset: len,
            } <= before;
            if !ends_before {
                break;
            }
            fs::remove_file(&path).map_err(JournalError::io("remove segment", &path))?;
            freed += len;
            self.first += 1;
        }
        if freed > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(freed)
    }

    fn write_at_end(&mut self, buf: &[u8]) -> Result<(), JournalError> {
        let path = &self.active_path;
        #[cfg(test)]
        match self.fault.take() {
            Some(Fault::ShortWrite(n)) => {
                let n = n.min(buf.len());
                self.active
                    .write_all_at(&buf[..n], self.end.offset)
                    .map_err(JournalError::io("write segment", path))?;
                return Err(JournalError::Io {
                    op: "write segment",
                    path: path.clone(),
                    source: io::Error::from(io::ErrorKind::StorageFull),
                });
            }
            Some(Fault::Sync) => {
                self.active
                    .write_all_at(buf, self.end.offset)
                    .map_err(JournalError::io("write segment", path))?;
                return Err(JournalError::Io {
                    op: "fdatasync segment",
                    path: path.clone(),
                    source: io::Error::other("injected fdatasync failure"),
                });
            }
            None => {}
        }
        self.active
            .write_all_at(buf, self.end.offset)
            .map_err(JournalError::io("write segment", path))?;
        if self.opts.fsync == FsyncPolicy::EveryBatch {
            self.active
                .sync_data()
                .map_err(JournalError::io("fdatasync segment", path))?;
        }
        Ok(())
    }

    /// Truncates the active segment to `end`, dropping bytes of a failed append.
    fn cut_back(&mut self) -> Result<(), JournalError> {
        self.active
            .set_len(self.end.offset)
            .map_err(JournalError::io("truncate segment", &self.active_path))?;
        self.dirty_tail = false;
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), JournalError> {
        // Even under `Never`: once a newer segment exists, a crash must not leave a torn tail
        // in an older one, where it would read as corruption rather than a lost suffix.
        self.active
            .sync_data()
            .map_err(JournalError::io("fdatasync segment", &self.active_path))?;
        let segment = self.end.segment + 1;
        let path = segment_path(&self.dir, segment);
        // A segment left half-made by an earlier failed rotation (its removal failed too)
        // holds no record; without this, every later rotation would fail on it.
        if fs::metadata(&path).is_ok_and(|m| m.len() <= HEADER) {
            fs::remove_file(&path).map_err(JournalError::io("remove half-made segment", &path))?;
        }
        self.active = create_segment(&self.dir, &path, self.opts.format)?;
        self.active_path = path;
        self.end = Position {
            segment,
            offset: HEADER,
        };
        Ok(())
    }

    #[cfg(test)]
    fn inject(&mut self, fault: Fault) {
        self.fault = Some(fault);
    }
}

/// Iterates the records of a journal from a position; see [`Journal::reader`].
#[derive(Debug)]
pub struct JournalReader {
    /// Segments still to read, last one first: number, path, length at the time of the call.
    pending: Vec<(u64, PathBuf, u64)>,
    current: Option<Cursor>,
    /// Offset to start at in the first segment opened.
    start: u64,
    failed: bool,
    /// The newest store format read.
    format: u16,
}

#[derive(Debug)]
struct Cursor {
    segment: u64,
    path: PathBuf,
    file: BufReader<File>,
    offset: u64,
    len: u64,
    last: bool,
}

impl JournalReader {
    fn open_next(&mut self) -> Result<bool, JournalError> {
        let Some((segment, path, len)) = self.pending.pop() else {
            return Ok(false);
        };
        let file = File::open(&path).map_err(JournalError::io("open segment", &path))?;
        let mut file = BufReader::with_capacity(256 << 10, file);
        let mut header = [0u8; HEADER as usize];
        file.read_exact(&mut header)
            .map_err(|_| JournalError::corrupt(&path, 0, "segment header is short"))?;
        check_format(&path, parse_header(&path, &header)?, self.format)?;
        let offset = std::mem::replace(&mut self.start, HEADER).max(HEADER);
        if offset > HEADER {
            io::copy(&mut (&mut file).take(offset - HEADER), &mut io::sink())
                .map_err(JournalError::io("read segment", &path))?;
        }
        self.current = Some(Cursor {
            segment,
            path,
            file,
            offset,
            len,
            last: self.pending.is_empty(),
        });
        Ok(true)
    }

    fn next_record(&mut self) -> Result<Option<(Position, Vec<u8>)>, JournalError> {
        loop {
            if self.current.is_none() && !self.open_next()? {
                return Ok(None);
            }
            let Some(cur) = self.current.as_mut() else {
                return Ok(None);
            };
            if cur.offset == cur.len {
                self.current = None;
                continue;
            }
            let at = cur.offset;
            let rest = cur.len - at;
            // A short record at the end of the last segment is an append still in progress
            // (or one being cut back): the log ends before it.
            if rest < FRAME as u64 {
                if cur.last {
                    return Ok(None);
                }
                return Err(JournalError::corrupt(
                    &cur.path,
                    at,
                    "record header is cut short",
                ));
            }
            let mut frame = [0u8; FRAME];
            cur.file
                .read_exact(&mut frame)
                .map_err(JournalError::io("read segment", &cur.path))?;
            let (len, crc) = split_frame(frame);
            if len > MAX_RECORD_BYTES as u64 {
                return Err(JournalError::corrupt(
                    &cur.path,
                    at,
                    format!("record length {len} is over the limit"),
                ));
            }
            if FRAME as u64 + len > rest {
                if cur.last {
                    return Ok(None);
                }
                return Err(JournalError::corrupt(
                    &cur.path,
                    at,
                    format!("record of {len} bytes runs past the end of the segment"),
                ));
            }
            let mut payload = vec![0u8; len as usize];
            cur.file
                .read_exact(&mut payload)
                .map_err(JournalError::io("read segment", &cur.path))?;
            if checksum(&frame[..4], &payload) != crc {
                return Err(JournalError::corrupt(&cur.path, at, "checksum mismatch"));
            }
            cur.offset = at + FRAME as u64 + len;
            let position = Position {
                segment: cur.segment,
                offset: at,
            };
            return Ok(Some((position, payload)));
        }
    }
}

impl Iterator for JournalReader {
    type Item = Result<(Position, Vec<u8>), JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.next_record() {
            Ok(item) => item.map(Ok),
            Err(err) => {
                self.failed = true;
                Some(Err(err))
            }
        }
    }
}

/// One segment as [`inspect`] found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    pub number: u64,
    pub path: PathBuf,
    pub len: u64,
    /// The store format in its header; `None` for a header cut short (the last segment
    /// only, completed at the next open).
    pub format: Option<u16>,
}

/// What a journal directory holds, read without changing anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inspection {
    /// Oldest first.
    pub segments: Vec<SegmentInfo>,
    /// The scan of the last segment (whole header only).
    pub tail: Option<TailScan>,
    /// Quarantine files of earlier recoveries (`<segment>.log.tail-<offset>`).
    pub quarantined: Vec<PathBuf>,
}

/// Inspects the journal in `dir` without changing anything: segment numbers, lengths and
/// formats, the last segment's torn or corrupt tail if it has one (what [`Journal::open`]
/// would cut off), quarantine files. A gap between segments or a header that is not a
/// segment's is an error; formats are reported, not judged.
pub fn inspect(dir: &Path) -> Result<Inspection, JournalError> {
    let numbers = list_segments(dir)?;
    let mut segments = Vec::with_capacity(numbers.len());
    for (i, &number) in numbers.iter().enumerate() {
        let path = segment_path(dir, number);
        let len = fs::metadata(&path)
            .map_err(JournalError::io("stat segment", &path))?
            .len();
        let format = read_format(&path, i + 1 == numbers.len())?;
        segments.push(SegmentInfo {
            number,
            path,
            len,
            format,
        });
    }
    let tail = match segments.last() {
        Some(last) if last.format.is_some() => {
            let bytes =
                fs::read(&last.path).map_err(JournalError::io("read segment", &last.path))?;
            Some(scan_segment(&bytes))
        }
        _ => None,
    };
    let mut quarantined = Vec::new();
    for entry in fs::read_dir(dir).map_err(JournalError::io("list directory", dir))? {
        let entry = entry.map_err(JournalError::io("list directory", dir))?;
        if entry.file_name().to_string_lossy().contains(".log.tail-") {
            quarantined.push(entry.path());
        }
    }
    quarantined.sort();
    Ok(Inspection {
        segments,
        tail,
        quarantined,
    })
}

fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:020}.log"))
}

/// Segment numbers in `dir`, ascending; a gap between them is corruption.
fn list_segments(dir: &Path) -> Result<Vec<u64>, JournalError> {
    let mut segments = Vec::new();
    let entries = fs::read_dir(dir).map_err(JournalError::io("list directory", dir))?;
    for entry in entries {
        let entry = entry.map_err(JournalError::io("list directory", dir))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".log")) else {
            continue;
        };
        if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(n) = stem.parse::<u64>() {
                segments.push(n);
            }
        }
    }
    segments.sort_unstable();
    for pair in segments.windows(2) {
        if pair[1] != pair[0] + 1 {
            return Err(JournalError::corrupt(
                &segment_path(dir, pair[0] + 1),
                0,
                format!("segment is missing between {} and {}", pair[0], pair[1]),
            ));
        }
    }
    Ok(segments)
}

/// The header of a segment written at store format `format`.
pub fn segment_header(format: u16) -> [u8; HEADER as usize] {
    let [hi, lo] = format.to_be_bytes();
    let [a, b, c, d, e, f] = SEGMENT_PREFIX;
    [a, b, c, d, e, f, hi, lo]
}

/// The store format of a whole segment header; an error if it is not one.
fn parse_header(path: &Path, header: &[u8; HEADER as usize]) -> Result<u16, JournalError> {
    let format = u16::from_be_bytes([header[6], header[7]]);
    if header[..6] != SEGMENT_PREFIX || format == 0 {
        return Err(JournalError::corrupt(path, 0, "not a journal segment"));
    }
    Ok(format)
}

/// The store format of the segment at `path`. `None` for a header cut short by a crash
/// while the last segment was being created (`last`: completed at open); elsewhere that is
/// corruption.
pub fn read_format(path: &Path, last: bool) -> Result<Option<u16>, JournalError> {
    let mut header = Vec::with_capacity(HEADER as usize);
    File::open(path)
        .and_then(|f| f.take(HEADER).read_to_end(&mut header))
        .map_err(JournalError::io("read segment header", path))?;
    match <[u8; HEADER as usize]>::try_from(header.as_slice()) {
        Ok(header) => parse_header(path, &header).map(Some),
        Err(_) if last => Ok(None),
        Err(_) => Err(JournalError::corrupt(path, 0, "segment header is short")),
    }
}

fn check_format(path: &Path, found: u16, supported: u16) -> Result<(), JournalError> {
    crate::format::check(
        || format!("journal segment {}", path.display()),
        u32::from(found),
        u32::from(supported),
    )
    .map_err(JournalError::from)
}

/// Creates a segment with its header, durably (file and directory).
fn create_segment(dir: &Path, path: &Path, format: u16) -> Result<File, JournalError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(JournalError::io("create segment", path))?;
    let made = file
        .write_all(&segment_header(format))
        .and_then(|()| file.sync_data())
        .map_err(JournalError::io("write segment header", path));
    if let Err(err) = made {
        // A half-made segment would become the active one at the next open; leave none.
        let _ = fs::remove_file(path);
        return Err(err);
    }
    sync_dir(dir)?;
    Ok(file)
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(JournalError::io("fsync directory", dir))
}

fn encode(buf: &mut Vec<u8>, record: &[u8]) {
    let len = (record.len() as u32).to_le_bytes();
    buf.extend_from_slice(&len);
    buf.extend_from_slice(&checksum(&len, record).to_le_bytes());
    buf.extend_from_slice(record);
}

fn checksum(len: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(len);
    hasher.update(payload);
    hasher.finalize()
}

fn split_frame(frame: [u8; FRAME]) -> (u64, u32) {
    let [a, b, c, d, e, f, g, h] = frame;
    (
        u64::from(u32::from_le_bytes([a, b, c, d])),
        u32::from_le_bytes([e, f, g, h]),
    )
}

/// The end of the whole record starting at `at` in `bytes`, if one is there.
fn record_end(bytes: &[u8], at: usize) -> Option<usize> {
    let frame: [u8; FRAME] = bytes.get(at..at + FRAME)?.try_into().ok()?;
    let (len, crc) = split_frame(frame);
    if len > MAX_RECORD_BYTES as u64 {
        return None;
    }
    let end = at + FRAME + len as usize;
    let payload = bytes.get(at + FRAME..end)?;
    (checksum(&frame[..4], payload) == crc).then_some(end)
}

/// What a scan of a segment's bytes found: the whole records from the header on, where the
/// last one ends, and whether a good record follows the bad bytes after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TailScan {
    pub records: u64,
    /// The end of the last whole record (the header's end if none).
    pub good_end: u64,
    /// The segment's length: bytes past `good_end` are a torn or corrupt tail.
    pub len: u64,
    /// A whole record starts somewhere after `good_end`: the tail is not a torn write but
    /// damage in the middle of the log.
    pub followed: bool,
}

/// Scans the bytes of a segment whose header is whole; changes nothing.
pub fn scan_segment(bytes: &[u8]) -> TailScan {
    let mut at = (HEADER as usize).min(bytes.len());
    let mut records = 0;
    while let Some(end) = record_end(bytes, at) {
        at = end;
        records += 1;
    }
    TailScan {
        records,
        good_end: at as u64,
        len: bytes.len() as u64,
        followed: (at + 1..bytes.len()).any(|k| record_end(bytes, k).is_some()),
    }
}

/// Scans the last segment, quarantines and cuts off a bad tail. Returns the whole records
/// found, the good length and the bytes cut off.
fn recover_tail(file: &File, path: &Path, format: u16) -> Result<(u64, u64, u64), JournalError> {
    let mut bytes = Vec::new();
    (&*file)
        .read_to_end(&mut bytes)
        .map_err(JournalError::io("read segment", path))?;
    let header = HEADER as usize;
    if bytes.len() < header {
        // A crash while the segment was being created: only a prefix of the header can be
        // there (its format bytes may be an older writer's). Anything else is not ours.
        let prefix = bytes.len().min(SEGMENT_PREFIX.len());
        if SEGMENT_PREFIX[..prefix] != bytes[..prefix] {
            return Err(JournalError::corrupt(path, 0, "not a journal segment"));
        }
        file.write_all_at(&segment_header(format), 0)
            .and_then(|()| file.sync_data())
            .map_err(JournalError::io("write segment header", path))?;
        return Ok((0, HEADER, 0));
    }
    let TailScan {
        records,
        good_end,
        followed,
        ..
    } = scan_segment(&bytes);
    let at = good_end as usize;
    let cut = (bytes.len() - at) as u64;
    if cut > 0 {
        let quarantine = PathBuf::from(format!("{}.tail-{at}", path.display()));
        fs::write(&quarantine, &bytes[at..])
            .and_then(|()| File::open(&quarantine)?.sync_all())
            .map_err(JournalError::io("write quarantine", &quarantine))?;
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
        file.set_len(at as u64)
            .and_then(|()| file.sync_data())
            .map_err(JournalError::io("truncate segment", path))?;
        if followed {
            tracing::error!(
                segment = %path.display(), offset = at, bytes = cut, quarantine = %quarantine.display(),
                "journal: bad record in the last segment is followed by good ones; the tail was cut off and kept"
            );
        } else {
            tracing::warn!(
                segment = %path.display(), offset = at, bytes = cut, quarantine = %quarantine.display(),
                "journal: torn tail cut off and kept"
            );
        }
    }
    Ok((records, at as u64, cut))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> JournalOptions {
        JournalOptions {
            fsync: FsyncPolicy::Never,
            segment_bytes: 1024,
            ..JournalOptions::default()
        }
    }

    fn read_all(dir: &Path) -> Vec<Vec<u8>> {
        Journal::reader(
            dir,
            Position {
                segment: 1,
                offset: HEADER,
            },
        )
        .and_then(|r| r.map(|item| item.map(|(_, p)| p)).collect())
        .unwrap_or_else(|e| panic!("read: {e}"))
    }

    #[test]
    fn encoded_record_reads_back_and_zeros_do_not() {
        let mut buf = Vec::new();
        encode(&mut buf, b"hello");
        assert_eq!(record_end(&buf, 0), Some(buf.len()));
        assert_eq!(record_end(&[0u8; 8], 0), None);
        buf[9] ^= 1;
        assert_eq!(record_end(&buf, 0), None);
    }

    #[test]
    fn short_write_is_cut_back_and_the_batch_retried() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(tmp.path(), opts()).unwrap();
        let before = j.append_batch(&[b"one", b"two"]).unwrap();
        j.inject(Fault::ShortWrite(13));
        let err = j.append_batch(&[b"three", b"four"]).unwrap_err();
        assert!(
            matches!(&err, JournalError::Io { source, .. } if source.kind() == io::ErrorKind::StorageFull)
        );
        assert_eq!(j.end(), before);
        let len = fs::metadata(segment_path(tmp.path(), 1)).unwrap().len();
        assert_eq!(len, before.offset, "the partial write is cut back");
        assert_eq!(read_all(tmp.path()), [b"one".to_vec(), b"two".to_vec()]);
        j.append_batch(&[b"three", b"four"]).unwrap();
        drop(j);
        let (_, rec) = Journal::open(tmp.path(), opts()).unwrap();
        assert_eq!(rec.truncated_bytes, 0);
        assert_eq!(rec.records, 4);
        assert_eq!(read_all(tmp.path()).len(), 4);
    }

    #[test]
    fn failed_fdatasync_drops_the_batch_not_the_log() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(tmp.path(), opts()).unwrap();
        let before = j.append_batch(&[b"kept"]).unwrap();
        j.inject(Fault::Sync);
        assert!(j.append_batch(&[b"unsynced"]).is_err());
        assert_eq!(j.end(), before);
        j.append_batch(&[b"unsynced"]).unwrap();
        assert_eq!(
            read_all(tmp.path()),
            [b"kept".to_vec(), b"unsynced".to_vec()]
        );
    }

    #[test]
    fn oversized_record_refuses_the_whole_batch() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(tmp.path(), opts()).unwrap();
        let big = vec![0u8; MAX_RECORD_BYTES + 1];
        let err = j.append_batch(&[b"small", &big]).unwrap_err();
        assert!(matches!(err, JournalError::RecordTooLarge { .. }));
        assert_eq!(
            err.to_string(),
            format!(
                "journal record of {} bytes is larger than the limit of {MAX_RECORD_BYTES} bytes",
                MAX_RECORD_BYTES + 1
            )
        );
        assert!(read_all(tmp.path()).is_empty());
    }

    #[test]
    fn torn_segment_header_is_completed() {
        let tmp = tempfile::tempdir().unwrap();
        drop(Journal::open(tmp.path(), opts()).unwrap());
        fs::write(segment_path(tmp.path(), 2), &segment_header(FORMAT)[..3]).unwrap();
        let (mut j, rec) = Journal::open(tmp.path(), opts()).unwrap();
        assert_eq!(
            rec.end,
            Position {
                segment: 2,
                offset: HEADER
            }
        );
        j.append_batch(&[b"x"]).unwrap();
        assert_eq!(read_all(tmp.path()), [b"x".to_vec()]);
    }

    #[test]
    fn bad_record_followed_by_good_ones_in_the_last_segment_is_kept_in_quarantine() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(tmp.path(), opts()).unwrap();
        // Ends "first", starts "second", whose payload gets the flipped bit.
        let second = j.append_batch(&[b"first"]).unwrap();
        j.append_batch(&[b"second", b"third"]).unwrap();
        drop(j);
        let path = segment_path(tmp.path(), 1);
        let mut bytes = fs::read(&path).unwrap();
        bytes[second.offset as usize + FRAME] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let (_, rec) = Journal::open(tmp.path(), opts()).unwrap();
        assert_eq!(rec.end, second);
        assert_eq!(rec.truncated_bytes, bytes.len() as u64 - second.offset);
        let kept = fs::read(format!("{}.tail-{}", path.display(), second.offset)).unwrap();
        assert_eq!(kept, bytes[second.offset as usize..]);
        assert_eq!(record_end(&kept, FRAME + 6), Some(2 * FRAME + 6 + 5));
    }

    #[test]
    fn half_made_next_segment_does_not_block_rotation() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(tmp.path(), opts()).unwrap();
        j.append_batch(&[&[1u8; 900]]).unwrap();
        fs::write(segment_path(tmp.path(), 2), &segment_header(FORMAT)[..5]).unwrap();
        j.append_batch(&[&[2u8; 900]]).unwrap();
        assert_eq!(j.end().segment, 2);
        assert_eq!(read_all(tmp.path()), [vec![1u8; 900], vec![2u8; 900]]);
    }

    #[test]
    fn the_header_of_format_1_is_the_one_every_earlier_release_wrote() {
        assert_eq!(segment_header(1), *b"fwjrnl\x00\x01");
    }

    #[test]
    fn a_segment_of_a_newer_format_is_refused_before_anything_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(tmp.path(), opts()).unwrap();
        j.append_batch(&[b"old"]).unwrap();
        drop(j);
        // A newer binary's segment, with a torn tail that an open would otherwise cut.
        let newer = segment_path(tmp.path(), 2);
        let mut bytes = segment_header(FORMAT + 1).to_vec();
        encode(&mut bytes, b"new");
        bytes.extend_from_slice(&[1, 2, 3]);
        fs::write(&newer, &bytes).unwrap();
        let err = Journal::open(tmp.path(), opts()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("00000000000000000002.log"), "{text}");
        assert!(
            text.contains(&format!("store format {}", FORMAT + 1)),
            "{text}"
        );
        assert!(
            text.contains(&format!("this binary's format {FORMAT}")),
            "{text}"
        );
        assert_eq!(fs::read(&newer).unwrap(), bytes, "nothing was cut");
        assert_eq!(
            fs::read_dir(tmp.path()).unwrap().count(),
            2,
            "no quarantine file"
        );
        // Readers refuse it too, after the records they can read.
        let got: Vec<_> = Journal::reader(
            tmp.path(),
            Position {
                segment: 1,
                offset: HEADER,
            },
        )
        .unwrap()
        .collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].as_ref().unwrap().1, b"old");
        assert!(
            matches!(got[1], Err(JournalError::NewerFormat(_))),
            "{:?}",
            got[1]
        );
    }

    #[test]
    fn a_newer_writer_starts_a_segment_of_its_own_and_reads_the_old_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(tmp.path(), opts()).unwrap();
        j.append_batch(&[b"one", b"two"]).unwrap();
        drop(j);
        let old = fs::read(segment_path(tmp.path(), 1)).unwrap();
        let newer = JournalOptions {
            format: FORMAT + 1,
            ..opts()
        };
        let (mut j, rec) = Journal::open(tmp.path(), newer.clone()).unwrap();
        assert_eq!(rec.upgraded_from, Some(FORMAT));
        assert_eq!(rec.segments, 2);
        assert_eq!(
            rec.end,
            Position {
                segment: 2,
                offset: HEADER
            }
        );
        j.append_batch(&[b"three"]).unwrap();
        drop(j);
        assert_eq!(
            fs::read(segment_path(tmp.path(), 1)).unwrap(),
            old,
            "old segment untouched"
        );
        assert_eq!(
            read_format(&segment_path(tmp.path(), 2), true).unwrap(),
            Some(FORMAT + 1)
        );
        // Opening again at the same format starts nothing new.
        let (_, rec) = Journal::open(tmp.path(), newer).unwrap();
        assert_eq!(rec.upgraded_from, None);
        assert_eq!(rec.segments, 2);
        let from = Position {
            segment: 1,
            offset: HEADER,
        };
        let all: Vec<Vec<u8>> = Journal::reader_at_format(tmp.path(), from, FORMAT + 1)
            .unwrap()
            .map(|r| r.map(|(_, p)| p))
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(all, [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]);
        // The older binary (a rollback) refuses the new segment, naming both formats.
        let err = Journal::open(tmp.path(), opts()).unwrap_err();
        assert!(matches!(err, JournalError::NewerFormat(_)), "{err}");
    }

    #[test]
    fn missing_middle_segment_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(tmp.path(), opts()).unwrap();
        for _ in 0..3 {
            j.append_batch(&[&[7u8; 900]]).unwrap();
        }
        drop(j);
        fs::remove_file(segment_path(tmp.path(), 2)).unwrap();
        let err = Journal::open(tmp.path(), opts()).unwrap_err();
        assert!(
            err.to_string().contains("00000000000000000002.log"),
            "{err}"
        );
    }
}
