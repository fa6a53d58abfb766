//! `floorwatch schedule import`: a roster (CSV) into `shift.scheduled` events, written as
//! NDJSON for `replay` or POSTed to a running daemon's `/api/v1/shifts`.
//!
//! The CSV has the header `shift,agent,start,end,position,team` (`position` and `team` may
//! be empty); `start` and `end` are RFC 3339 with an offset, or local times such as
//! `2026-12-07 08:00` in `appraisal.timezone`. Every row is checked before anything is
//! written or sent: one bad row and nothing goes out, and every bad row is named with its
//! line number. Importing the same roster again changes nothing (a shift with a known id is
//! replaced only while it has not started, and by the same values).
//!
//! Owns the roster format; it does not judge shifts (the engine does) and reads no clock but
//! through [`crate::clock`].

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::event::{Id, MAX_ID_LEN, MAX_SHIFT_MS};
use crate::time::Timestamp;

/// One valid roster row.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RosterShift {
    pub shift: Id,
    pub agent: Id,
    pub start: Timestamp,
    pub end: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<Id>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<Id>,
}

/// A bad row: its line in the file and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct RowError {
    pub line: u64,
    pub message: String,
}

/// The columns, in order.
pub const HEADER: [&str; 6] = ["shift", "agent", "start", "end", "position", "team"];

/// Reads a roster; every row must be valid, else every bad row is returned.
pub fn parse_roster(
    text: &str,
    tz: &jiff::tz::TimeZone,
) -> Result<Vec<RosterShift>, Vec<RowError>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(text.as_bytes());
    let mut errors = Vec::new();
    match reader.headers() {
        Ok(h) if h.iter().eq(HEADER.iter().copied()) => {}
        Ok(h) => {
            return Err(vec![RowError {
                line: 1,
                message: format!(
                    "the header must be {:?}, not {:?}",
                    HEADER.join(","),
                    h.iter().collect::<Vec<_>>().join(",")
                ),
            }])
        }
        Err(e) => {
            return Err(vec![RowError {
                line: 1,
                message: format!("not a CSV header: {e}"),
            }])
        }
    }
    let mut rows = Vec::new();
    let mut seen: std::collections::HashMap<Id, u64> = std::collections::HashMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                errors.push(RowError {
                    line,
                    message: format!("not a row of {} columns: {e}", HEADER.len()),
                });
                continue;
            }
        };
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        match row(&record, tz) {
            Ok(r) => {
                if let Some(first) = seen.insert(r.shift.clone(), line) {
                    errors.push(RowError {
                        line,
                        message: format!(
                            "shift {:?} is listed twice (first at line {first})",
                            r.shift
                        ),
                    });
                } else {
                    rows.push(r);
                }
            }
            Err(message) => errors.push(RowError { line, message }),
        }
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

fn row(r: &csv::StringRecord, tz: &jiff::tz::TimeZone) -> Result<RosterShift, String> {
    let field = |i: usize| r.get(i).unwrap_or("");
    let id = |i: usize, required: bool| -> Result<Option<Id>, String> {
        let v = field(i);
        if v.is_empty() {
            return if required {
                Err(format!("`{}` is empty", HEADER[i]))
            } else {
                Ok(None)
            };
        }
        if v.len() > MAX_ID_LEN {
            return Err(format!("`{}` is longer than {MAX_ID_LEN} bytes", HEADER[i]));
        }
        Ok(Some(Id::from(v)))
    };
    let shift = id(0, true)?.unwrap_or_default();
    let agent = id(1, true)?.unwrap_or_default();
    let start = time(field(2), tz).map_err(|e| format!("`start`: {e}"))?;
    let end = time(field(3), tz).map_err(|e| format!("`end`: {e}"))?;
    if end <= start {
        return Err(format!("`end` ({end}) is not after `start` ({start})"));
    }
    if end.since(start) > MAX_SHIFT_MS {
        return Err("a shift is at most 24 hours long".to_string());
    }
    Ok(RosterShift {
        shift,
        agent,
        start,
        end,
        position: id(4, false)?,
        team: id(5, false)?,
    })
}

/// RFC 3339 with an offset, or a local date and time (`2026-12-07 08:00`, seconds optional,
/// `T` or a space) in `tz`. A local time that the zone skips or repeats (a DST change) is
/// refused: say which one is meant with an offset.
pub fn time(s: &str, tz: &jiff::tz::TimeZone) -> Result<Timestamp, String> {
    if let Ok(t) = Timestamp::parse_rfc3339(s) {
        return Ok(t);
    }
    let dt: jiff::civil::DateTime = s.replacen(' ', "T", 1).parse().map_err(|_| {
        format!("{s:?} is not a time (want 2026-12-07 08:00, or RFC 3339 with an offset)")
    })?;
    let z = tz
        .to_ambiguous_zoned(dt)
        .unambiguous()
        .map_err(|_| format!("{s:?} does not exist or is repeated in this time zone (a DST change): give it with an offset"))?;
    let t = Timestamp(z.timestamp().as_millisecond());
    if !crate::time::ts_in_range(t) {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(t)
}

/// The rows as `shift.scheduled` events at `at`, one NDJSON line each.
pub fn write_events(
    rows: &[RosterShift],
    at: Timestamp,
    out: &mut impl Write,
) -> std::io::Result<()> {
    for r in rows {
        let mut v = serde_json::to_value(r).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("type".into(), "shift.scheduled".into());
            o.insert("ts".into(), at.to_string().into());
            o.insert("start".into(), r.start.to_string().into());
            o.insert("end".into(), r.end.to_string().into());
        }
        writeln!(out, "{v}")?;
    }
    out.flush()
}

/// `floorwatch schedule import`.
pub fn import_main(args: crate::cli::ScheduleImportArgs) -> anyhow::Result<()> {
    let cfg = crate::config::load(args.config.as_deref())?;
    let text = read(&args.file)?;
    let rows = match parse_roster(&text, &cfg.rules.timezone) {
        Ok(rows) => rows,
        Err(errors) => {
            let name = args.file.display();
            for e in &errors {
                eprintln!("{name}:{}: {}", e.line, e.message);
            }
            anyhow::bail!(
                "{} bad row(s) in {name}: nothing was {}",
                errors.len(),
                if args.url.is_some() {
                    "sent"
                } else {
                    "written"
                }
            );
        }
    };
    if let Some(url) = &args.url {
        let reply = post_shifts(url, args.token.as_deref(), &rows)?;
        eprintln!(
            "floorwatch schedule import: {} shifts sent; {reply}",
            rows.len()
        );
        return Ok(());
    }
    let at = match &args.at {
        Some(s) => Timestamp::parse_flexible(s).context("--at")?,
        None => crate::clock::Clock::system().now(),
    };
    match &args.out {
        Some(path) => {
            let f = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            write_events(&rows, at, &mut std::io::BufWriter::new(f))
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        None => write_events(&rows, at, &mut std::io::stdout().lock()).context("writing")?,
    }
    eprintln!("floorwatch schedule import: {} shifts", rows.len());
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).context("reading stdin")?;
        return Ok(s);
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// POSTs the shifts to `{url}/api/v1/shifts` (url: the daemon's base URL); returns the
/// daemon's answer.
fn post_shifts(url: &str, token: Option<&str>, rows: &[RosterShift]) -> anyhow::Result<String> {
    let base = url.trim_end_matches('/');
    let body = serde_json::to_vec(rows).context("encoding the shifts")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (status, text) = rt.block_on(crate::api_client::post_json(
        &format!("{base}/api/v1/shifts"),
        token,
        body,
    ))?;
    anyhow::ensure!(
        status.is_success(),
        "the daemon answered {status}: {}",
        text.trim()
    );
    Ok(text.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shanghai() -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::get("Asia/Shanghai").expect("zone")
    }

    #[test]
    fn local_times_are_read_in_the_zone_and_offsets_as_given() {
        let text = "shift,agent,start,end,position,team\n\
                    s1,a-wang,2026-12-07 08:00,2026-12-07 16:00,P01,hotline-1\n\
                    s2,a-li,2026-12-07T16:00:00+08:00,2026-12-08T00:00:00+08:00,,\n";
        let rows = parse_roster(text, &shanghai()).expect("valid");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].start.to_string(), "2026-12-07T00:00:00.000Z");
        assert_eq!(rows[0].end.to_string(), "2026-12-07T08:00:00.000Z");
        assert_eq!(rows[0].position.as_deref(), Some("P01"));
        assert_eq!(rows[1].start, rows[0].end);
        assert_eq!(
            (rows[1].position.clone(), rows[1].team.clone()),
            (None, None)
        );
    }

    #[test]
    fn every_bad_row_is_named_with_its_line_and_nothing_is_kept() {
        let text = "shift,agent,start,end,position,team\n\
                    s1,a,2026-12-07 08:00,2026-12-07 16:00,,\n\
                    s2,,2026-12-07 08:00,2026-12-07 16:00,,\n\
                    s3,b,2026-12-07 16:00,2026-12-07 08:00,,\n\
                    s4,c,2026-12-07 08:00,2026-12-08 09:00,,\n\
                    s1,d,2026-12-07 08:00,2026-12-07 16:00,,\n\
                    s5,e,tomorrow,2026-12-07 16:00,,\n\
                    s6,f,2026-12-07 08:00\n";
        let errors = parse_roster(text, &shanghai()).expect_err("bad rows");
        let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![3, 4, 5, 6, 7, 8], "{errors:?}");
        assert!(errors[0].message.contains("`agent` is empty"));
        assert!(errors[1].message.contains("not after"));
        assert!(errors[2].message.contains("24 hours"));
        assert!(errors[3].message.contains("first at line 2"));
        assert!(errors[4].message.contains("`start`"));
    }

    #[test]
    fn a_wrong_header_is_refused() {
        let e = parse_roster("id,agent,start,end\n", &shanghai()).expect_err("header");
        assert_eq!(e[0].line, 1);
        assert!(e[0].message.contains("shift,agent,start,end,position,team"));
    }

    #[test]
    fn a_local_time_a_dst_change_skips_is_refused() {
        let ny = jiff::tz::TimeZone::get("America/New_York").expect("zone");
        assert!(time("2026-03-08 02:30", &ny).is_err());
        assert!(time("2026-03-08 03:30", &ny).is_ok());
    }

    #[test]
    fn events_decode_as_the_protocol_has_them() {
        let text =
            "shift,agent,start,end,position,team\ns1,a,2026-12-07 08:00,2026-12-07 16:00,P1,t\n";
        let rows = parse_roster(text, &shanghai()).expect("valid");
        let mut out = Vec::new();
        write_events(&rows, Timestamp(1_796_000_000_000), &mut out).expect("write");
        let line = String::from_utf8(out).expect("utf-8");
        let ev = crate::event::decode_event(line.trim()).expect("decodes");
        match ev.body {
            crate::event::Body::ShiftScheduled {
                shift,
                position,
                team,
                ..
            } => {
                assert_eq!(shift, "s1");
                assert_eq!(position.as_deref(), Some("P1"));
                assert_eq!(team.as_deref(), Some("t"));
            }
            other => panic!("{other:?}"),
        }
    }
}
