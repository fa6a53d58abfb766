//! Reports and audit export from a data directory: `floorwatch report` (and the appraisal
//! API) and `floorwatch export`.
//!
//! Owns the definition of the stored appraisal: the journal's records, in order, run
//! through a fresh engine with each event at its applied time (exactly what `floorwatch
//! replay --appraisal` does with the output of `export`), ended at the last applied time,
//! minus the waived violations of the store. Nothing here writes to the data directory (the
//! database is opened read-only, see [`StoreReader::open_read_only`]), so it needs no lock
//! and may run beside a live daemon: it reads the journal up to a given end (the daemon's
//! stored end) or, without one, up to the first unreadable record at the tail. A store of a
//! newer format than the binary's is refused.
//!
//! Must not: open the journal for writing (that would truncate a live daemon's tail).

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use crate::cli::{ExportArgs, ReportArgs};
use crate::config::{self, RulesConfig};
use crate::engine::{Applied, AppraisalRow, Engine, KpiRetention, Violation};
use crate::journal::{Journal, Position, HEADER_LEN};
use crate::store::Record;
use crate::time::{Period, Timestamp};

/// Calls `f` with every journal record of `dir` in order, from the oldest segment, stopping
/// before `end` when given. Without `end`, an unreadable record in the last segment ends the
/// reading (a live daemon may be writing it); anywhere else it is an error.
pub fn for_each_record(
    dir: &Path,
    end: Option<Position>,
    mut f: impl FnMut(Record),
) -> anyhow::Result<u64> {
    let journal = dir.join("journal");
    let mut segments: Vec<u64> = std::fs::read_dir(&journal)
        .with_context(|| format!("cannot read {}", journal.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    segments.sort_unstable();
    let (Some(&first), Some(&last)) = (segments.first(), segments.last()) else {
        return Ok(0);
    };
    let from = Position {
        segment: first,
        offset: HEADER_LEN,
    };
    let mut n = 0;
    for r in Journal::reader(&journal, from)? {
        let (pos, bytes) = match r {
            Ok(x) => x,
            Err(e) => {
                if end.is_none()
                    && matches!(&e, crate::journal::JournalError::Corrupt { path, .. } if path.ends_with(format!("{last:020}.log")))
                {
                    tracing::warn!(error = %e, "stopping at an unreadable journal tail");
                    break;
                }
                return Err(e.into());
            }
        };
        if end.is_some_and(|end| pos >= end) {
            break;
        }
        let rec = Record::decode(&bytes).map_err(|reason| {
            anyhow::anyhow!(
                "bad journal record at {}:{}: {reason}",
                pos.segment,
                pos.offset
            )
        })?;
        f(rec);
        n += 1;
    }
    Ok(n)
}

/// The journal of `dir` (up to `end`) replayed through a fresh engine that keeps the
/// accumulators of `period`, as [`for_each_record`] reads it; with `close_of`, it stops right
/// after the `period.closed` event of that month. Returns the engine, the last applied time
/// (the report's end) and the closed digest when the close was found.
fn replay_journal(
    dir: &Path,
    end: Option<Position>,
    rules: RulesConfig,
    period: Period,
    close_of: Option<&str>,
) -> anyhow::Result<(Engine, Option<Timestamp>, Option<String>)> {
    let mut engine = Engine::with_retention(rules, KpiRetention::Only(period));
    let mut effects = Vec::new();
    let mut last = None;
    let mut closed: Option<String> = None;
    for_each_record(dir, end, |rec| {
        if closed.is_some() {
            return;
        }
        effects.clear();
        match engine.handle_event(&rec.source, &rec.applied_event(), &mut effects) {
            Applied::Applied { at, .. } | Applied::Rejected { at, .. } => last = Some(at),
            Applied::Duplicate | Applied::Refused(_) => {}
        }
        if let (Some(month), crate::event::Body::PeriodClosed { period, digest, .. }) =
            (close_of, &rec.event.body)
        {
            let applied = effects
                .iter()
                .any(|e| matches!(e, crate::engine::Effect::PeriodClosed { .. }));
            if period == month && applied {
                closed = Some(digest.to_string());
            }
        }
    })?;
    if let Some(end) = last {
        engine.finish(end, &mut effects);
    }
    Ok((engine, last, closed))
}

/// The appraisal of `period` from the journal in `dir` (see the module doc); rows of `team`
/// only when given. Waivers are events of the journal like everything else.
pub fn appraisal(
    dir: &Path,
    end: Option<Position>,
    rules: RulesConfig,
    period: Period,
    team: Option<&str>,
) -> anyhow::Result<Vec<AppraisalRow>> {
    let legacy = legacy_waivers(dir, rules.money_per_point)?;
    let (engine, last, _) = replay_journal(dir, end, rules, period, None)?;
    let mut rows = engine.appraisal(period, last.unwrap_or_default(), &legacy);
    if let Some(team) = team {
        rows.retain(|r| r.team == team);
    }
    Ok(rows)
}

/// The waivers a store of an earlier release keeps in its database only (a daemon of this
/// release journals them at its first start): left out of the appraisal as that release
/// left them out. None without a database.
pub fn legacy_waivers(dir: &Path, money_per_point: f64) -> anyhow::Result<Vec<Violation>> {
    match crate::store::StoreReader::open_read_only(dir) {
        Ok(r) => Ok(r.legacy_waived(money_per_point)?),
        Err(crate::store::StoreError::Missing { .. }) => Ok(Vec::new()),
        Err(e) => Err(anyhow::Error::new(e).context("cannot open the store")),
    }
}

/// A month's statement: the appraisal CSV as closed, or as of the journal's end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    pub csv: String,
    /// The SHA-256 of `csv`.
    pub digest: String,
    /// The digest the month was closed with (`None`: not closed).
    pub closed_digest: Option<String>,
}

/// The statement of month `period`: the journal replayed up to its `period.closed` event
/// (the statement as closed: `floorwatch export --to` the close, replayed with
/// `floorwatch replay --month --appraisal`, gives the same bytes), or to `end` if it is
/// still open.
pub fn statement(
    dir: &Path,
    end: Option<Position>,
    rules: RulesConfig,
    period: Period,
) -> anyhow::Result<Statement> {
    let month = period.to_string();
    let legacy = legacy_waivers(dir, rules.money_per_point)?;
    let (engine, last, closed) = replay_journal(dir, end, rules, period, Some(&month))?;
    let csv = AppraisalRow::csv(&engine.appraisal(period, last.unwrap_or_default(), &legacy));
    Ok(Statement {
        digest: crate::config::digest_of(&csv),
        csv,
        closed_digest: closed,
    })
}

/// The appraisal as CSV (header and one line per row).
pub fn to_csv(rows: &[AppraisalRow]) -> String {
    AppraisalRow::csv(rows)
}

/// Parses `--month`, `--week` or `--day` (exactly one).
fn period_of(args: &ReportArgs) -> anyhow::Result<Period> {
    let given: Vec<&str> = [&args.month, &args.week, &args.day]
        .into_iter()
        .filter_map(|x| x.as_deref())
        .collect();
    let [p] = given.as_slice() else {
        anyhow::bail!("give exactly one of --month YYYY-MM, --week YYYY-Www, --day YYYY-MM-DD");
    };
    let period = Period::parse(p).with_context(|| format!("not a period: {p:?}"))?;
    let ok = match period {
        Period::Month(..) => args.month.is_some(),
        Period::Week(..) => args.week.is_some(),
        Period::Day(..) => args.day.is_some(),
    };
    anyhow::ensure!(
        ok,
        "{p:?} does not fit its flag (--month 2026-11, --week 2026-W48, --day 2026-11-28)"
    );
    Ok(period)
}

/// `floorwatch report`.
pub fn report_main(args: ReportArgs) -> anyhow::Result<()> {
    let cfg = config::load(args.config.as_deref())?;
    let period = period_of(&args)?;
    let dir = &cfg.store.dir;
    let rows = appraisal(dir, None, cfg.rules, period, args.team.as_deref())?;
    let text = match args.format.as_str() {
        "csv" => to_csv(&rows),
        "json" => serde_json::to_string_pretty(&rows)? + "\n",
        other => anyhow::bail!("--format must be csv or json, not {other:?}"),
    };
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .context("writing the report")
}

/// Writes the journal records applied in `[from, to)` as protocol NDJSON: `ts` is the applied
/// time, the event's `seq` becomes `source_seq` and its source `source`, so that `floorwatch
/// replay` of the file (one source, no `seq`) applies every event as the daemon did.
///
/// A `rulebook` record takes effect at the engine clock when it was journaled (the applied
/// time of the record before it; the first one, journaled before any event, is in force from
/// the beginning), so that is its time here. The rulebook in force at `from` comes first, at
/// the time of the first record exported, so the file is judged by the rules of its period.
pub fn export(
    dir: &Path,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    out: &mut impl Write,
) -> anyhow::Result<u64> {
    let mut n = 0;
    let mut err = None;
    // The engine clock as of the record read: the latest applied time of an event.
    let mut clock: Option<Timestamp> = None;
    // The rulebook in force before the window, waiting for the window's first record.
    let mut in_force: Option<serde_json::Value> = None;
    let mut write = |v: serde_json::Value, n: &mut u64, err: &mut Option<anyhow::Error>| {
        if let Err(e) = writeln!(out, "{v}") {
            *err = Some(e.into());
        }
        *n += 1;
    };
    for_each_record(dir, None, |rec| {
        if err.is_some() {
            return;
        }
        let rulebook = matches!(rec.event.body, crate::event::Body::Rulebook { .. });
        let at = if rulebook {
            clock
        } else {
            clock = Some(clock.map_or(rec.at, |c| c.max(rec.at)));
            Some(rec.at)
        };
        if to.is_some_and(|t| at.is_some_and(|a| a >= t)) {
            return;
        }
        let before = from.is_some_and(|f| at.is_none_or(|a| a < f));
        if before && !rulebook {
            return;
        }
        let mut v: serde_json::Value = match serde_json::from_str(&rec.event.to_json()) {
            Ok(v) => v,
            Err(e) => {
                err = Some(anyhow::Error::from(e));
                return;
            }
        };
        if let Some(o) = v.as_object_mut() {
            if let Some(seq) = o.remove("seq") {
                o.insert("source_seq".into(), seq);
            }
            o.insert(
                "source".into(),
                serde_json::Value::from(rec.source.as_str()),
            );
        }
        if rulebook && (before || at.is_none()) {
            // In force from before the window (or from the beginning): it waits for the
            // window's first event, whose time it takes.
            in_force = Some(v);
            return;
        }
        let ts = at.unwrap_or(rec.at);
        if let Some(mut book) = in_force.take() {
            if let Some(o) = book.as_object_mut() {
                o.insert("ts".into(), serde_json::Value::from(ts.0));
            }
            write(book, &mut n, &mut err);
        }
        if let Some(o) = v.as_object_mut() {
            o.insert("ts".into(), serde_json::Value::from(ts.0));
        }
        write(v, &mut n, &mut err);
    })?;
    if let Some(e) = err {
        return Err(e).context("writing the export");
    }
    out.flush().context("writing the export")?;
    Ok(n)
}

/// `floorwatch export`.
pub fn export_main(args: ExportArgs) -> anyhow::Result<()> {
    let cfg = config::load(args.config.as_deref())?;
    let time = |flag: &str, v: &Option<String>| {
        v.as_deref()
            .map(Timestamp::parse_flexible)
            .transpose()
            .with_context(|| format!("{flag}: want RFC 3339 with offset or epoch milliseconds"))
    };
    let from = time("--from", &args.from)?;
    let to = time("--to", &args.to)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    export(&cfg.store.dir, from, to, &mut out)?;
    Ok(())
}
