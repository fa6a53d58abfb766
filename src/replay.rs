//! `floorwatch replay`: the audit tool. Runs recorded NDJSON streams through the same engine
//! as the daemon, in event time, and writes every violation as NDJSON in the order raised;
//! optionally the appraisal CSV of one month.
//!
//! It streams: memory grows with the floor (agents, open calls), never with the file.
//! Malformed lines and rejected events go to stderr with their line number and are skipped.
//!
//! Owns: the replay loop and its outputs. Must not: read a clock (event time only) or touch
//! the store.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::Context;

use crate::cli::ReplayArgs;
use crate::config::{self, RulesConfig};
use crate::engine::{AppraisalRow, Effect, Engine, KpiRetention, Violation};
use crate::event::{decode_frame, Frame};
use crate::time::{Period, Timestamp};

/// What a replay is asked to do.
#[derive(Clone, Debug, Default)]
pub struct ReplayOptions {
    pub until: Option<Timestamp>,
    /// Month (or other period) to keep appraisal accumulators for.
    pub appraisal: Option<Period>,
    /// What-if: judge everything by the rules the replay was made with; `rulebook` records
    /// and waivers of the input are skipped (waiver ids name the violations of the other
    /// judgment; `--compare` carries waivers over by what they waived).
    pub what_if: bool,
    /// Keep every violation raised (`--compare` matches waivers by them).
    pub keep_violations: bool,
}

/// The outcome of a replay.
#[derive(Debug, Default)]
pub struct ReplaySummary {
    pub lines: u64,
    pub events: u64,
    pub applied: u64,
    pub duplicates: u64,
    pub late: u64,
    pub rejected: u64,
    pub violations: u64,
    /// The replay's end: `--until`, else the last applied event's time.
    pub end: Option<Timestamp>,
    pub appraisal: Vec<AppraisalRow>,
}

/// A replay in progress: feed it lines, then finish it.
pub struct Replay {
    engine: Engine,
    opts: ReplayOptions,
    effects: Vec<Effect>,
    summary: ReplaySummary,
    last_applied: Option<Timestamp>,
    /// Every violation raised, when the options ask to keep them.
    kept: Vec<Violation>,
}

impl Replay {
    pub fn new(rules: RulesConfig, opts: ReplayOptions) -> Replay {
        let retention = match opts.appraisal {
            Some(p) => KpiRetention::Only(p),
            None => KpiRetention::Off,
        };
        Replay {
            engine: Engine::with_retention(rules, retention),
            opts,
            effects: Vec::with_capacity(64),
            kept: Vec::new(),
            summary: ReplaySummary::default(),
            last_applied: None,
        }
    }

    /// Applies one NDJSON line from `source`; each violation raised goes to `on_violation`,
    /// each rejection (line-level or event-level) to `on_reject` as a message.
    pub fn line(
        &mut self,
        source: &str,
        line: &str,
        on_violation: impl FnMut(&Violation),
        on_reject: impl FnMut(String),
    ) {
        if line.trim().is_empty() {
            self.summary.lines += 1;
            return;
        }
        self.frame(source, &decode_frame(line), on_violation, on_reject);
    }

    /// Applies one line already decoded with [`decode_frame`] (what [`Replay::line`] does
    /// after decoding; `floorwatch replay` decodes on another thread).
    pub fn frame(
        &mut self,
        source: &str,
        frame: &Frame,
        mut on_violation: impl FnMut(&Violation),
        mut on_reject: impl FnMut(String),
    ) {
        self.summary.lines += 1;
        for r in &frame.rejected {
            self.summary.rejected += 1;
            let at = match r.index {
                Some(i) => format!(" (batch index {i})"),
                None => String::new(),
            };
            on_reject(format!("{}{at}: {}", r.error.reason_label(), r.error));
        }
        for (_, ev) in &frame.events {
            self.summary.events += 1;
            if self.opts.until.is_some_and(|u| ev.ts > u) {
                continue;
            }
            if self.opts.what_if
                && matches!(
                    ev.body,
                    crate::event::Body::Rulebook { .. }
                        | crate::event::Body::ViolationWaiver { .. }
                )
            {
                continue;
            }
            self.effects.clear();
            match self.engine.handle_event(source, ev, &mut self.effects) {
                crate::engine::Applied::Applied { at, late } => {
                    self.summary.applied += 1;
                    self.summary.late += u64::from(late);
                    self.last_applied = Some(at);
                }
                crate::engine::Applied::Duplicate => self.summary.duplicates += 1,
                crate::engine::Applied::Refused(limit) => {
                    self.summary.rejected += 1;
                    on_reject(format!("{}: {}", limit.reason_label(), limit.message()));
                }
                crate::engine::Applied::Rejected { at, refusal } => {
                    // The clock moved with it, as it does live.
                    self.summary.rejected += 1;
                    self.last_applied = Some(at);
                    on_reject(format!("{}: {refusal}", refusal.reason_label()));
                }
            }
            for e in &self.effects {
                if let Effect::Violation(v) = e {
                    self.summary.violations += 1;
                    on_violation(v);
                    if self.opts.keep_violations {
                        self.kept.push((**v).clone());
                    }
                }
            }
        }
    }

    /// The kept violations that are waived now (with `keep_violations`).
    pub fn waived(&self) -> Vec<Violation> {
        self.kept
            .iter()
            .filter(|v| self.engine.is_waived(v.id) == Some(true))
            .cloned()
            .collect()
    }

    /// Fires the deadlines before the end and computes the appraisal, if asked for.
    pub fn finish(self, on_violation: impl FnMut(&Violation)) -> ReplaySummary {
        self.finish_leaving_out(&[], on_violation)
    }

    /// [`Replay::finish`], the appraisal leaving out `waived` besides the engine's own
    /// waivers (what-if: the violations that match waived ones of the journaled judgment).
    pub fn finish_leaving_out(
        mut self,
        waived: &[Violation],
        mut on_violation: impl FnMut(&Violation),
    ) -> ReplaySummary {
        let end = self.opts.until.or(self.last_applied);
        if let Some(end) = end {
            self.effects.clear();
            self.engine.finish(end, &mut self.effects);
            for e in &self.effects {
                if let Effect::Violation(v) = e {
                    self.summary.violations += 1;
                    on_violation(v);
                }
            }
        }
        self.summary.end = end;
        if let Some(p) = self.opts.appraisal {
            self.summary.appraisal = self.engine.appraisal(p, end.unwrap_or_default(), waived);
        }
        self.summary
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

/// Writes violation records, keeping the first write error so a callback can report it
/// after the engine call returns.
struct RecordWriter<'a, W: Write> {
    out: &'a mut W,
    error: Option<io::Error>,
}

impl<'a, W: Write> RecordWriter<'a, W> {
    fn new(out: &'a mut W) -> Self {
        RecordWriter { out, error: None }
    }

    fn write(&mut self, v: &Violation) {
        if self.error.is_none() {
            let written = v
                .write_record_json(&mut *self.out)
                .and_then(|()| self.out.write_all(b"\n"));
            if let Err(e) = written {
                self.error = Some(e);
            }
        }
    }

    fn check(&mut self) -> anyhow::Result<()> {
        match self.error.take() {
            Some(e) => Err(e).context("writing violations"),
            None => Ok(()),
        }
    }
}

/// Lines decoded by the reader thread, sent to the engine thread in chunks.
const CHUNK_LINES: usize = 1024;
/// Chunks in flight between the threads (bounds memory: at most this many plus two).
const CHUNKS_IN_FLIGHT: usize = 4;

/// One line as the reader thread leaves it: decoded, left for the engine thread to decode,
/// blank, or not UTF-8.
enum Line {
    Frame(Frame),
    Text(String),
    Blank,
    NotUtf8,
}

/// Every `DECODE_ON_ENGINE_EVERY`th chunk is decoded by the engine thread. Decoding costs
/// more than applying (about 370 ns against 290 ns an event here), and the reader also reads
/// and frees; giving the engine thread a quarter of the decoding evens the two threads out.
const DECODE_ON_ENGINE_EVERY: u64 = 4;

/// Replays `reader` as source `source` into `replay`, reporting rejections with line numbers.
///
/// Two threads: a scoped one reads and decodes lines (JSON parsing is about half the work),
/// this one decodes every [`DECODE_ON_ENGINE_EVERY`]th chunk itself and runs the engine on
/// all of them in order, so the result is the same as one thread's.
fn feed(
    replay: &mut Replay,
    source: &str,
    name: &str,
    reader: impl BufRead + Send,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<()> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Line>>(CHUNKS_IN_FLIGHT);
    // Applied chunks go back to the reader thread to be freed there: memory freed by the
    // thread that did not allocate it made glibc's allocator trim and fault pages over and
    // over (a third of the time went to the kernel).
    let (back, applied_chunks) = std::sync::mpsc::channel::<Vec<Line>>();
    std::thread::scope(|scope| {
        let reading = scope.spawn(move || -> anyhow::Result<()> {
            let mut reader = reader;
            let mut buf = Vec::with_capacity(4096);
            let mut chunk = Vec::with_capacity(CHUNK_LINES);
            let mut chunks = 0u64;
            loop {
                buf.clear();
                let n = reader
                    .read_until(b'\n', &mut buf)
                    .with_context(|| format!("reading {name}"))?;
                if n == 0 {
                    break;
                }
                let decode_here = chunks % DECODE_ON_ENGINE_EVERY != DECODE_ON_ENGINE_EVERY - 1;
                chunk.push(match std::str::from_utf8(&buf) {
                    Ok(line) if line.trim().is_empty() => Line::Blank,
                    Ok(line) if decode_here => Line::Frame(decode_frame(line)),
                    Ok(line) => Line::Text(line.to_string()),
                    Err(_) => Line::NotUtf8,
                });
                if chunk.len() == CHUNK_LINES {
                    chunks += 1;
                    while let Ok(old) = applied_chunks.try_recv() {
                        drop(old);
                    }
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_LINES));
                    if tx.send(full).is_err() {
                        // The engine side stopped on an error and reports it.
                        return Ok(());
                    }
                }
            }
            if !chunk.is_empty() {
                let _ = tx.send(chunk);
            }
            Ok(())
        });
        let applied = (|| -> anyhow::Result<()> {
            let mut lineno = 0u64;
            let mut records = RecordWriter::new(out);
            for chunk in rx {
                for line in &chunk {
                    lineno += 1;
                    let decoded;
                    let frame = match line {
                        Line::Frame(frame) => frame,
                        Line::Text(text) => {
                            decoded = decode_frame(text);
                            &decoded
                        }
                        Line::Blank => {
                            replay.summary.lines += 1;
                            continue;
                        }
                        Line::NotUtf8 => {
                            writeln!(
                                err,
                                "{name}:{lineno}: invalid_json: line is not UTF-8; skipped"
                            )?;
                            continue;
                        }
                    };
                    replay.frame(
                        source,
                        frame,
                        |v| records.write(v),
                        |msg| {
                            let _ = writeln!(err, "{name}:{lineno}: {msg}; skipped");
                        },
                    );
                    records.check()?;
                }
                // The reader may have finished: then this chunk is freed here.
                let _ = back.send(chunk);
            }
            Ok(())
        })();
        // Dropping the receiver (done: `rx` was consumed) unblocks a reader still sending.
        let read = reading
            .join()
            .map_err(|_| anyhow::anyhow!("the replay reader thread panicked"))?;
        read.and(applied)
    })
}

/// `floorwatch replay`.
pub fn main(args: ReplayArgs) -> anyhow::Result<()> {
    let cfg = config::load(args.config.as_deref())?;
    let what_if = match &args.what_if {
        Some(path) => Some(config::load(Some(path))?),
        None => None,
    };
    let until = args
        .until
        .as_deref()
        .map(Timestamp::parse_flexible)
        .transpose()
        .context("--until")?;
    let month = match args.month.as_deref() {
        Some(m) => match Period::parse(m) {
            Some(p @ Period::Month(..)) => Some(p),
            _ => anyhow::bail!("--month must look like 2026-11, not {m:?}"),
        },
        None => None,
    };
    if args.compare {
        let (Some(what_if), Some(month)) = (what_if, month) else {
            anyhow::bail!("--compare needs --what-if FILE and --month YYYY-MM");
        };
        anyhow::ensure!(
            args.events.iter().all(|p| p != Path::new("-")),
            "--compare reads its input twice: give files, not stdin"
        );
        return compare(&args.events, cfg.rules, what_if.rules, until, month);
    }
    anyhow::ensure!(
        month.is_none() || args.appraisal.is_some(),
        "--month goes with --appraisal FILE or --compare"
    );
    let (rules, what_if) = match what_if {
        Some(w) => (w.rules, true),
        None => (cfg.rules, false),
    };
    let mut replay = Replay::new(
        rules,
        ReplayOptions {
            until,
            appraisal: month,
            what_if,
            keep_violations: false,
        },
    );
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let stderr = io::stderr();
    let mut err = BufWriter::new(stderr.lock());
    for (i, path) in args.events.iter().enumerate() {
        // Each input is its own source for seq de-duplication.
        let source = format!("replay-{i}:{}", path.display());
        if path == Path::new("-") {
            let stdin = BufReader::with_capacity(1 << 16, io::stdin());
            feed(&mut replay, &source, "-", stdin, &mut out, &mut err)?;
        } else {
            let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
            let name = path.display().to_string();
            feed(
                &mut replay,
                &source,
                &name,
                BufReader::with_capacity(1 << 16, f),
                &mut out,
                &mut err,
            )?;
        }
    }
    let mut records = RecordWriter::new(&mut out);
    let summary = replay.finish(|v| records.write(v));
    records.check()?;
    out.flush().context("writing violations")?;
    if let Some(path) = &args.appraisal {
        write_appraisal(path, &summary.appraisal)?;
    }
    err.flush().ok();
    Ok(())
}

/// Replays `files` once as given (the rulebooks they hold) and once under `what_if`; waived
/// violations of the first judgment are carried over to the violations of the second that
/// are the same (agent, rule, kind, time, call, reason). Prints, per agent, points and
/// money under both and the difference, as CSV.
fn compare(
    files: &[std::path::PathBuf],
    rules: RulesConfig,
    what_if: RulesConfig,
    until: Option<Timestamp>,
    month: Period,
) -> anyhow::Result<()> {
    let run = |rules: RulesConfig, what_if: bool, waived: Option<&[Violation]>| {
        let mut replay = Replay::new(
            rules,
            ReplayOptions {
                until,
                appraisal: Some(month),
                what_if,
                keep_violations: true,
            },
        );
        let mut err = BufWriter::new(io::stderr().lock());
        for (i, path) in files.iter().enumerate() {
            let source = format!("replay-{i}:{}", path.display());
            let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
            let name = path.display().to_string();
            let mut sink = io::sink();
            // Rejections are reported once, by the first run.
            let mut quiet = io::sink();
            let err: &mut dyn Write = if what_if { &mut quiet } else { &mut err };
            feed(
                &mut replay,
                &source,
                &name,
                BufReader::with_capacity(1 << 16, f),
                &mut sink,
                &mut WriteRef(err),
            )?;
        }
        let same = |a: &Violation, b: &Violation| {
            (&a.agent, a.rule, &a.kind, a.at, &a.call, &a.reason)
                == (&b.agent, b.rule, &b.kind, b.at, &b.call, &b.reason)
        };
        let carried: Vec<Violation> = match waived {
            Some(w) => replay
                .kept
                .iter()
                .filter(|v| w.iter().any(|x| same(x, v)))
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        let waived_here = replay.waived();
        let summary = replay.finish_leaving_out(&carried, |_| {});
        anyhow::Ok((summary.appraisal, waived_here))
    };
    let (journaled, waived) = run(rules, false, None)?;
    let (under, _) = run(what_if, true, Some(&waived))?;
    let mut out = BufWriter::new(io::stdout().lock());
    out.write_all(compare_csv(&journaled, &under).as_bytes())
        .context("writing the comparison")?;
    out.flush().context("writing the comparison")?;
    Ok(())
}

/// `&mut dyn Write` as a sized writer.
struct WriteRef<'a>(&'a mut dyn Write);

impl Write for WriteRef<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// The comparison CSV: per agent (sorted), points and money as journaled and under the
/// what-if rulebook, and the change (what-if minus journaled).
pub fn compare_csv(journaled: &[AppraisalRow], what_if: &[AppraisalRow]) -> String {
    use std::collections::BTreeMap;
    let mut rows: BTreeMap<&str, (&str, u64, f64, u64, f64)> = BTreeMap::new();
    for r in journaled {
        let e = rows.entry(&r.agent).or_insert((&r.team, 0, 0.0, 0, 0.0));
        e.1 = r.points;
        e.2 = r.deduction;
    }
    for r in what_if {
        let e = rows.entry(&r.agent).or_insert((&r.team, 0, 0.0, 0, 0.0));
        e.3 = r.points;
        e.4 = r.deduction;
    }
    let money = |x: f64| {
        let s = format!("{x:.2}");
        let s = s.trim_end_matches('0').trim_end_matches('.').to_string();
        if s == "-0" {
            "0".to_string()
        } else {
            s
        }
    };
    let mut out = String::from(
        "agent,team,points,deduction,what_if_points,what_if_deduction,points_change,deduction_change\n",
    );
    for (agent, (team, p, d, wp, wd)) in rows {
        out.push_str(&format!(
            "{agent},{team},{p},{},{wp},{},{},{}\n",
            money(d),
            money(wd),
            wp as i64 - p as i64,
            money(wd - d)
        ));
    }
    out
}

/// Writes the appraisal CSV (header and one row per agent).
pub fn write_appraisal(path: &Path, rows: &[AppraisalRow]) -> anyhow::Result<()> {
    let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = BufWriter::new(f);
    writeln!(w, "{}", AppraisalRow::CSV_HEADER)?;
    for r in rows {
        writeln!(w, "{}", r.to_csv())?;
    }
    w.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
