//! `floorwatch import queue_log FILE`: maps a historical Asterisk `queue_log` to protocol
//! NDJSON (one event per line, with `seq`), for `floorwatch replay` or a source that posts
//! it. The events are numbered as the live tail numbers its first file (generation 0).
//!
//! Owns: reading the file, choosing the settings from the config, the report on stderr.
//! Must not: map lines (the `queue_log` mapper does) or write the store.
//!
//! It streams: memory grows with the reorder window and the floor, never with the file.
//! Malformed lines go to stderr with their line number and are skipped.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use anyhow::Context;

use crate::adapter::queue_log::tail::{LineReader, Piece, MAX_LINE};
use crate::adapter::queue_log::{QueueLogMapper, QueueLogStats};
use crate::cli::{ImportArgs, ImportCommand, ImportQueueLogArgs};
use crate::config::{self, AdapterKind, AmiSettings, Config, QueueLogSource};
use crate::time::Millis;

/// The outcome of an import.
#[derive(Debug, Default)]
pub struct ImportSummary {
    /// Every line read: mapped, skipped, blank or malformed.
    pub lines: u64,
    pub events: u64,
    pub malformed: u64,
    /// The mapper's counts: unknown events by name, late events.
    pub stats: QueueLogStats,
}

/// Maps the `queue_log` text read from `input` to NDJSON on `out`; each malformed line is
/// passed to `on_malformed` as a message that starts with its line number.
pub fn queue_log(
    mut input: impl Read,
    out: &mut impl Write,
    settings: AmiSettings,
    window: Millis,
    mut on_malformed: impl FnMut(String),
) -> io::Result<ImportSummary> {
    let mut mapper = QueueLogMapper::new(settings, window);
    let mut lines = LineReader::default();
    let mut pieces = Vec::new();
    let mut summary = ImportSummary::default();
    let mut buf = vec![0u8; 1 << 16];
    let mut write = |evs: Vec<crate::event::Event>, summary: &mut ImportSummary| {
        for e in evs {
            summary.events += 1;
            writeln!(out, "{}", e.to_json())?;
        }
        io::Result::Ok(())
    };
    loop {
        let n = match input.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            lines.finish(&mut pieces);
        } else {
            lines.push(&buf[..n], &mut pieces);
        }
        for p in pieces.drain(..) {
            summary.lines += 1;
            match p {
                Piece::TooLong { line, .. } => {
                    summary.malformed += 1;
                    on_malformed(format!("line {line}: longer than {MAX_LINE} bytes"));
                }
                Piece::Line { text, offset, line } => {
                    match mapper.handle_line(&text, offset, line) {
                        Ok(evs) => write(evs, &mut summary)?,
                        Err(e) => {
                            summary.malformed += 1;
                            on_malformed(e.to_string());
                        }
                    }
                }
            }
        }
        if n == 0 {
            break;
        }
    }
    write(mapper.finish(), &mut summary)?;
    summary.stats = mapper.stats().clone();
    Ok(summary)
}

/// The settings of the config's `asterisk-queue-log` source: the one named `name`, or the
/// only one; defaults without any.
pub fn queue_log_settings(cfg: &Config, name: Option<&str>) -> anyhow::Result<QueueLogSource> {
    let sources: Vec<(&str, &QueueLogSource)> = cfg
        .adapters
        .iter()
        .filter_map(|a| match &a.kind {
            AdapterKind::AsteriskQueueLog(q) => Some((a.name.as_str(), q)),
            _ => None,
        })
        .collect();
    let found = match (name, sources.as_slice()) {
        (Some(n), _) => sources
            .iter()
            .find(|(s, _)| *s == n)
            .map(|(_, q)| (*q).clone())
            .with_context(|| format!("--name: no asterisk-queue-log source named {n:?}"))?,
        (None, []) => QueueLogSource {
            path: Default::default(),
            reorder_window: 60_000,
            settings: AmiSettings::default(),
        },
        (None, [(_, q)]) => (*q).clone(),
        (None, _) => anyhow::bail!(
            "the config has several asterisk-queue-log sources ({}): pick one with --name",
            sources
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Ok(found)
}

pub fn main(args: ImportArgs) -> anyhow::Result<()> {
    match args.what {
        ImportCommand::QueueLog(a) => queue_log_main(a),
    }
}

fn queue_log_main(args: ImportQueueLogArgs) -> anyhow::Result<()> {
    let cfg = config::load(args.config.as_deref())?;
    let source = queue_log_settings(&cfg, args.name.as_deref())?;
    let input: Box<dyn Read> = if args.file == Path::new("-") {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(&args.file).with_context(|| format!("{}", args.file.display()))?)
    };
    let mut out: Box<dyn Write> = match &args.out {
        Some(p) => Box::new(BufWriter::new(
            File::create(p).with_context(|| format!("{}", p.display()))?,
        )),
        None => Box::new(BufWriter::new(io::stdout().lock())),
    };
    let stderr = io::stderr();
    let mut err = stderr.lock();
    let file = args.file.display().to_string();
    let summary = queue_log(
        input,
        &mut out,
        source.settings,
        source.reorder_window,
        |m| {
            let _ = writeln!(err, "{file}: {m}");
        },
    )
    .context("import")?;
    out.flush().context("writing the events")?;
    let s = &summary.stats;
    let unknown = s
        .unknown_by_event
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        err,
        "{file}: {} lines read, {} events, {} malformed, {} late, {} unknown{}",
        summary.lines,
        summary.events,
        summary.malformed,
        s.late,
        s.unknown,
        if unknown.is_empty() {
            String::new()
        } else {
            format!(" ({unknown})")
        }
    );
    // One person named two ways (issue 20): said after the summary, on a line of its own.
    if let Some(split) = &s.split_names {
        let _ = writeln!(err, "{file}: warning: {split}");
    }
    Ok(())
}
