//! The `queue_log` tail: follows Asterisk's `queue_log` file as it grows and as it is
//! rotated, and feeds its complete lines through [`QueueLogMapper`] to the engine.
//!
//! Owns: the file handle, the read offset, rotation detection, and a small state file
//! (`<store.dir>/queue_log-<source>.json`) saying which file the journal's resume point
//! belongs to. Must not: map lines (the mapper does), apply rules, or read the system clock
//! (wall time comes from the sink).
//!
//! Numbering: `seq = generation << 40 | offset * 4 + k`. The generation goes up by one at
//! every rotation: another file at the path (device and inode changed: `mv` + create), or the
//! file cut shorter than what was read (`copytruncate`). The old handle is read to its end
//! first, so no line of the old file is lost.
//!
//! Restart: the state file names the device, inode and first line of the file of its
//! generation. The same file keeps its generation and is read again from its start (which
//! rebuilds the membership state); events up to the journal's resume `seq` are not sent
//! again (the engine would drop them anyway). Another file gets the next generation. On a
//! first start (no state file) the current file is read from its start.
//!
//! Shutdown: events still held in the reorder window are not sent; their `seq` is above the
//! resume point, so they are read and sent again after a restart (if the file was not rotated
//! in between).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::adapter::queue_log::{generation_of, QueueLogError, QueueLogMapper};
use crate::adapter::AdapterContext;
use crate::config::QueueLogSource;
use crate::event::Event;

/// How often the file is checked for growth and rotation.
const POLL: Duration = Duration::from_millis(250);
/// A longer line is counted malformed and skipped (bounds memory on a garbled file).
pub const MAX_LINE: usize = 64 * 1024;
/// The first line kept in the state file at most (bytes).
const FIRST_LINE_KEPT: usize = 200;
/// Bytes read to find the first line on start: enough that the kept prefix of a longer
/// line is the same as when the line is read whole (a raw byte gives at least one byte of
/// text).
const FIRST_LINE_READ: usize = 1024;
/// At most one malformed-line warning per this long (the rest are counted).
const MALFORMED_LOG_EVERY: Duration = Duration::from_secs(10);

/// What the state file holds: the file the current generation numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TailState {
    pub dev: u64,
    pub ino: u64,
    pub generation: u64,
    /// The file's first line (at most 200 bytes), once it has one: tells a file reusing the
    /// inode of a removed one apart.
    pub first_line: Option<String>,
}

/// Where a source keeps its tail state.
pub fn state_path(store_dir: &Path, source: &str) -> PathBuf {
    let safe: String = source
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    store_dir.join(format!("queue_log-{safe}.json"))
}

fn load_state(path: &Path) -> Option<TailState> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "queue_log state unreadable, starting as new");
            return None;
        }
    };
    match serde_json::from_str(&text) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "queue_log state unreadable, starting as new");
            None
        }
    }
}

/// Writes the state atomically (temporary file, then rename).
async fn save_state(path: &Path, state: &TailState) {
    let tmp = path.with_extension("json.tmp");
    let text = match serde_json::to_string(state) {
        Ok(t) => t,
        Err(_) => return,
    };
    let r = async {
        tokio::fs::write(&tmp, text).await?;
        tokio::fs::rename(&tmp, path).await
    }
    .await;
    if let Err(e) = r {
        tracing::warn!(path = %path.display(), error = %e, "cannot write queue_log state");
    }
}

/// The file's identity: device and inode (0, 0 where the platform has none; rotation is
/// then only seen when the file shrinks).
fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        (meta.dev(), meta.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        (0, 0)
    }
}

/// The generation of the file found at the path on start: the saved one if it is the same
/// file (device, inode and first line), the next one if not; without a saved state, that of
/// the journal's resume point (or 0). Never below the resume point's generation (a state
/// write may have been lost).
pub fn generation_at_start(
    saved: Option<&TailState>,
    (dev, ino): (u64, u64),
    first_line: Option<&str>,
    resume: Option<u64>,
) -> u64 {
    let resumed = resume.map(generation_of).unwrap_or(0);
    let g = match saved {
        None => resumed,
        Some(s)
            if s.dev == dev
                && s.ino == ino
                && (s.first_line.is_none() || s.first_line.as_deref() == first_line) =>
        {
            s.generation
        }
        Some(s) => s.generation + 1,
    };
    g.max(resumed)
}

/// One piece of input cut by [`LineReader`].
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    /// A complete line (newline included) starting at byte `offset`; `line` is 1-based.
    Line {
        text: String,
        offset: u64,
        line: u64,
    },
    /// A line longer than [`MAX_LINE`], skipped.
    TooLong { offset: u64, line: u64 },
}

/// Cuts bytes read from a file into complete lines; a partial last line waits for its
/// newline. Holds at most [`MAX_LINE`] bytes.
#[derive(Debug, Default)]
pub struct LineReader {
    buf: Vec<u8>,
    /// Offset of the current (partial) line's start.
    line_start: u64,
    /// Bytes of the current line dropped because it is too long.
    skipped: u64,
    skipping: bool,
    line: u64,
}

impl LineReader {
    /// Bytes consumed from the file so far.
    pub fn position(&self) -> u64 {
        self.line_start + self.skipped + self.buf.len() as u64
    }

    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<Piece>) {
        while !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let part = &data[..=i];
                    data = &data[i + 1..];
                    self.line += 1;
                    let len = self.buf.len() + part.len();
                    if self.skipping || len > MAX_LINE {
                        out.push(Piece::TooLong {
                            offset: self.line_start,
                            line: self.line,
                        });
                        self.line_start += self.skipped + len as u64;
                    } else {
                        self.buf.extend_from_slice(part);
                        out.push(Piece::Line {
                            text: String::from_utf8_lossy(&self.buf).into_owned(),
                            offset: self.line_start,
                            line: self.line,
                        });
                        self.line_start += len as u64;
                    }
                    self.buf.clear();
                    self.skipping = false;
                    self.skipped = 0;
                }
                None => {
                    if self.skipping {
                        self.skipped += data.len() as u64;
                    } else if self.buf.len() + data.len() > MAX_LINE {
                        self.skipping = true;
                        self.skipped = (self.buf.len() + data.len()) as u64;
                        self.buf.clear();
                    } else {
                        self.buf.extend_from_slice(data);
                    }
                    break;
                }
            }
        }
    }

    /// End of a file that will not grow any more (it was rotated): a last line without its
    /// newline is taken as it is.
    pub fn finish(&mut self, out: &mut Vec<Piece>) {
        if self.skipping {
            self.line += 1;
            out.push(Piece::TooLong {
                offset: self.line_start,
                line: self.line,
            });
        } else if !self.buf.is_empty() {
            self.line += 1;
            out.push(Piece::Line {
                text: String::from_utf8_lossy(&self.buf).into_owned(),
                offset: self.line_start,
                line: self.line,
            });
        }
        *self = LineReader::default();
    }
}

/// Why the tail stops.
struct Stop;

struct Tail {
    config: QueueLogSource,
    cx: AdapterContext,
    state_path: PathBuf,
    state: TailState,
    file: tokio::fs::File,
    lines: LineReader,
    mapper: QueueLogMapper,
    /// The highest `seq` stored or sent: events at or below it are not sent.
    sent: Option<u64>,
    malformed_logged: Option<tokio::time::Instant>,
    malformed_quiet: u64,
    /// Whether the mapper's [`SplitNames`](crate::adapter::queue_log::SplitNames) warning
    /// was logged (once per run).
    split_warned: bool,
}

/// Follows `config.path` until `cx.shutdown`.
pub async fn run(config: QueueLogSource, mut cx: AdapterContext) {
    let state_path = state_path(&cx.store_dir, &cx.name);
    let Some(file) = open_wait(&config.path, &mut cx).await else {
        return;
    };
    let resume = match cx.sink.connected().await {
        Ok(r) => r,
        Err(_) => return,
    };
    cx.set_connected(true);
    let mut tail = Tail {
        mapper: QueueLogMapper::new(config.settings.clone(), config.reorder_window),
        config,
        cx,
        state_path,
        state: TailState::default(),
        file,
        lines: LineReader::default(),
        sent: resume,
        malformed_logged: None,
        malformed_quiet: 0,
        split_warned: false,
    };
    if tail.start(resume).await.is_ok() {
        let _ = tail.follow().await;
    }
    tail.cx.sink.disconnected().await;
    tail.cx.set_connected(false);
}

/// Opens the file, waiting (and saying so once) while it is missing. `None` on shutdown.
async fn open_wait(path: &Path, cx: &mut AdapterContext) -> Option<tokio::fs::File> {
    let mut logged = false;
    loop {
        match tokio::fs::File::open(path).await {
            Ok(f) => {
                if logged {
                    tracing::info!(source = %cx.name, path = %path.display(), "queue_log file appeared");
                }
                return Some(f);
            }
            Err(e) => {
                if !logged {
                    tracing::warn!(source = %cx.name, path = %path.display(), error = %e, "queue_log file not readable, waiting for it");
                    logged = true;
                }
                cx.set_connected(false);
            }
        }
        tokio::select! {
            _ = cx.shutdown.cancelled() => return None,
            _ = tokio::time::sleep(POLL * 4) => {}
        }
    }
}

/// What the state file keeps of a first line: at most [`FIRST_LINE_KEPT`] bytes of its
/// text, without the line end.
pub fn kept_first_line(text: &str) -> String {
    let t = text.trim_end_matches(['\r', '\n']);
    let mut end = t.len().min(FIRST_LINE_KEPT);
    while !t.is_char_boundary(end) {
        end -= 1;
    }
    t[..end].to_string()
}

/// The file's first line as [`kept_first_line`] keeps it (`None` while it has no complete
/// line shorter than [`FIRST_LINE_READ`]); the handle is put back at offset 0.
async fn first_line(file: &mut tokio::fs::File) -> std::io::Result<Option<String>> {
    file.seek(std::io::SeekFrom::Start(0)).await?;
    let mut buf = vec![0u8; FIRST_LINE_READ];
    let mut n = 0;
    while n < buf.len() {
        let k = file.read(&mut buf[n..]).await?;
        if k == 0 {
            break;
        }
        n += k;
    }
    file.seek(std::io::SeekFrom::Start(0)).await?;
    let got = &buf[..n];
    let line = match got.iter().position(|&b| b == b'\n') {
        Some(i) => &got[..i],
        None if n == FIRST_LINE_READ => got,
        None => return Ok(None),
    };
    Ok(Some(kept_first_line(&String::from_utf8_lossy(line))))
}

impl Tail {
    /// Decides the generation of the file at the path against the state file and the
    /// journal's resume point.
    async fn start(&mut self, resume: Option<u64>) -> Result<(), Stop> {
        let meta = self.file.metadata().await.map_err(|e| self.io_stop(e))?;
        let (dev, ino) = identity(&meta);
        let first = first_line(&mut self.file)
            .await
            .map_err(|e| self.io_stop(e))?;
        let saved = load_state(&self.state_path);
        if saved.is_none() {
            tracing::info!(source = %self.cx.name, path = %self.config.path.display(), "queue_log: no tail state, reading the file from its start");
        }
        let generation = generation_at_start(saved.as_ref(), (dev, ino), first.as_deref(), resume);
        if saved.is_some_and(|s| s.generation != generation) {
            tracing::info!(source = %self.cx.name, generation, "queue_log: another file than before the restart, new generation");
        }
        self.state = TailState {
            dev,
            ino,
            generation,
            first_line: first,
        };
        self.mapper.set_generation(generation);
        save_state(&self.state_path, &self.state).await;
        Ok(())
    }

    fn io_stop(&self, e: std::io::Error) -> Stop {
        tracing::error!(source = %self.cx.name, path = %self.config.path.display(), error = %e, "queue_log read failed");
        Stop
    }

    async fn follow(&mut self) -> Result<(), Stop> {
        let mut chunk = vec![0u8; 64 * 1024];
        let mut pieces = Vec::new();
        let mut rotation_seen = false;
        // Whether bytes were read since the last end of file.
        let mut grew = false;
        loop {
            if self.cx.shutdown.is_cancelled() {
                return Err(Stop);
            }
            let n = match self.file.read(&mut chunk).await {
                Ok(n) => n,
                Err(e) => {
                    // A handle that errors is as good as rotated away: reopen the path.
                    tracing::warn!(source = %self.cx.name, error = %e, "queue_log read failed, reopening");
                    tokio::select! {
                        _ = self.cx.shutdown.cancelled() => return Err(Stop),
                        _ = tokio::time::sleep(POLL * 4) => {}
                    }
                    self.reopen(true).await?;
                    continue;
                }
            };
            if n > 0 {
                grew = true;
                self.lines.push(&chunk[..n], &mut pieces);
                self.handle(&mut pieces).await?;
                continue;
            }
            // At the end of what is written: rotated, truncated, or just quiet?
            // A path renamed away and not created again yet: keep reading the old handle.
            if let Ok(meta) = tokio::fs::metadata(&self.config.path).await {
                let (dev, ino) = identity(&meta);
                if (dev, ino) != (self.state.dev, self.state.ino) {
                    // Asterisk writes to the renamed file until it reopens its log: move
                    // on once the old file has stayed quiet for a whole poll.
                    if rotation_seen && !grew {
                        tracing::info!(source = %self.cx.name, "queue_log rotated, following the new file");
                        self.lines.finish(&mut pieces);
                        self.handle(&mut pieces).await?;
                        self.reopen(false).await?;
                        rotation_seen = false;
                        continue;
                    }
                    rotation_seen = true;
                } else if meta.len() < self.lines.position() {
                    tracing::info!(source = %self.cx.name, "queue_log truncated, reading it from its start");
                    self.lines = LineReader::default();
                    self.file
                        .seek(std::io::SeekFrom::Start(0))
                        .await
                        .map_err(|e| self.io_stop(e))?;
                    self.state.first_line = None;
                    self.next_generation().await;
                    continue;
                }
            }
            grew = false;
            let until = self.cx.sink.now().plus(-self.config.reorder_window);
            let evs = self.mapper.release_until(until);
            self.send(evs).await?;
            tokio::select! {
                _ = self.cx.shutdown.cancelled() => return Err(Stop),
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Opens the file now at the path as the next generation (`same` after a read error:
    /// the same file again if it still is, from where it was).
    async fn reopen(&mut self, same: bool) -> Result<(), Stop> {
        let file = match open_wait(&self.config.path.clone(), &mut self.cx).await {
            Some(f) => f,
            None => return Err(Stop),
        };
        self.cx.set_connected(true);
        let meta = file.metadata().await.map_err(|e| self.io_stop(e))?;
        let id = identity(&meta);
        self.file = file;
        if same && id == (self.state.dev, self.state.ino) {
            self.file
                .seek(std::io::SeekFrom::Start(self.lines.position()))
                .await
                .map_err(|e| self.io_stop(e))?;
            return Ok(());
        }
        self.lines = LineReader::default();
        (self.state.dev, self.state.ino) = id;
        self.state.first_line = None;
        self.next_generation().await;
        Ok(())
    }

    async fn next_generation(&mut self) {
        self.state.generation += 1;
        self.mapper.set_generation(self.state.generation);
        self.cx.count_reconnect();
        save_state(&self.state_path, &self.state).await;
    }

    async fn handle(&mut self, pieces: &mut Vec<Piece>) -> Result<(), Stop> {
        let mut out = Vec::new();
        for p in pieces.drain(..) {
            match p {
                Piece::TooLong { line, .. } => self.malformed(&format!(
                    "line {line}: longer than {MAX_LINE} bytes, skipped"
                )),
                Piece::Line { text, offset, line } => {
                    if line == 1 && self.state.first_line.is_none() {
                        self.state.first_line = Some(kept_first_line(&text));
                        save_state(&self.state_path, &self.state).await;
                    }
                    if text.trim().is_empty() {
                        continue;
                    }
                    let unknown = self.mapper.stats().unknown;
                    match self.mapper.handle_line(&text, offset, line) {
                        Ok(evs) => {
                            self.cx.count(if self.mapper.stats().unknown > unknown {
                                "ignored"
                            } else {
                                "mapped"
                            });
                            out.extend(evs);
                        }
                        Err(e) => self.malformed_error(&e),
                    }
                    self.warn_split_names();
                }
            }
        }
        self.send(out).await
    }

    /// Logs, once, that the file names members two ways.
    fn warn_split_names(&mut self) {
        if self.split_warned {
            return;
        }
        if let Some(split) = &self.mapper.stats().split_names {
            tracing::warn!(source = %self.cx.name, path = %self.config.path.display(), "{split}");
            self.split_warned = true;
        }
    }

    fn malformed_error(&mut self, e: &QueueLogError) {
        self.malformed(&e.to_string());
    }

    /// Counts a malformed line; logs at most one per [`MALFORMED_LOG_EVERY`].
    fn malformed(&mut self, what: &str) {
        self.cx.count("malformed");
        let now = tokio::time::Instant::now();
        if self
            .malformed_logged
            .is_some_and(|t| now.duration_since(t) < MALFORMED_LOG_EVERY)
        {
            self.malformed_quiet += 1;
            return;
        }
        tracing::warn!(source = %self.cx.name, generation = self.state.generation, suppressed = self.malformed_quiet, "queue_log malformed line skipped: {what}");
        self.malformed_logged = Some(now);
        self.malformed_quiet = 0;
    }

    async fn send(&mut self, mut evs: Vec<Event>) -> Result<(), Stop> {
        let sent = self.sent;
        evs.retain(|e| match (e.seq, sent) {
            (Some(s), Some(r)) => s > r,
            _ => true,
        });
        if evs.is_empty() {
            return Ok(());
        }
        let last = evs.iter().filter_map(|e| e.seq).max();
        match self.cx.sink.send(evs).await {
            Ok(reply) => {
                self.sent = self.sent.max(last).max(reply.ack);
                Ok(())
            }
            Err(_) => Err(Stop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(chunks: &[&[u8]]) -> Vec<Piece> {
        let mut r = LineReader::default();
        let mut out = Vec::new();
        for c in chunks {
            r.push(c, &mut out);
        }
        out
    }

    fn line(text: &str, offset: u64, line: u64) -> Piece {
        Piece::Line {
            text: text.to_string(),
            offset,
            line,
        }
    }

    #[test]
    fn partial_lines_wait_for_their_newline() {
        let got = cut(&[b"1|a|q|x|", b"ENTERQUEUE\n2|b", b"|q|x|E\n3|"]);
        assert_eq!(
            got,
            vec![
                line("1|a|q|x|ENTERQUEUE\n", 0, 1),
                line("2|b|q|x|E\n", 19, 2)
            ]
        );
        let mut r = LineReader::default();
        let mut out = Vec::new();
        r.push(b"1|a\n3|", &mut out);
        assert_eq!(r.position(), 6);
        out.clear();
        r.finish(&mut out);
        assert_eq!(out, vec![line("3|", 4, 2)]);
    }

    #[test]
    fn a_too_long_line_is_skipped_and_offsets_stay_right() {
        let long = vec![b'x'; MAX_LINE + 10];
        let mut r = LineReader::default();
        let mut out = Vec::new();
        r.push(b"1|a\n", &mut out);
        r.push(&long[..MAX_LINE - 1], &mut out);
        r.push(&long[MAX_LINE - 1..], &mut out);
        r.push(b"\n2|b\n", &mut out);
        let next = 4 + long.len() as u64 + 1;
        assert_eq!(
            out,
            vec![
                line("1|a\n", 0, 1),
                Piece::TooLong { offset: 4, line: 2 },
                line("2|b\n", next, 3)
            ]
        );
        assert_eq!(r.position(), next + 4);
        assert!(r.buf.capacity() <= 2 * MAX_LINE);
    }

    #[test]
    fn a_restart_keeps_the_generation_of_the_same_file_only() {
        let saved = TailState {
            dev: 1,
            ino: 7,
            generation: 3,
            first_line: Some("1|a".into()),
        };
        let resume = Some((3 << 40) | 400);
        let g = |id, first, resume| generation_at_start(Some(&saved), id, first, resume);
        assert_eq!(g((1, 7), Some("1|a"), resume), 3);
        // Rotated while down: another inode, or the same inode with other content.
        assert_eq!(g((1, 8), Some("1|a"), resume), 4);
        assert_eq!(g((1, 7), Some("2|b"), resume), 4);
        assert_eq!(g((1, 7), None, resume), 4, "emptied by copytruncate");
        // The journal is ahead of a lost state write.
        assert_eq!(g((1, 7), Some("1|a"), Some(5 << 40)), 5);
        // No state: a first start, or the resume point's generation.
        assert_eq!(generation_at_start(None, (1, 7), None, None), 0);
        assert_eq!(generation_at_start(None, (1, 7), None, resume), 3);
    }

    #[test]
    fn the_first_line_kept_is_the_same_read_whole_or_in_part() {
        let line = format!("{}|NONE|销售|a|ADDMEMBER|\r\n", "1".repeat(150)).repeat(20);
        let whole = kept_first_line(&line);
        assert!(
            whole.len() <= FIRST_LINE_KEPT && whole.len() > 190,
            "{whole}"
        );
        let part = String::from_utf8_lossy(&line.as_bytes()[..FIRST_LINE_READ]);
        assert_eq!(kept_first_line(&part), whole);
        assert_eq!(kept_first_line("1|a|b\r\n"), "1|a|b");
    }

    #[test]
    fn state_path_is_one_file_per_source_in_the_store() {
        assert_eq!(
            state_path(Path::new("/d"), "pbx/1"),
            PathBuf::from("/d/queue_log-pbx_1.json")
        );
    }
}
