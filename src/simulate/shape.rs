//! How `simulate --out` writes a stream: [`Shape::Simulator`], the simulator's own (UTC
//! timestamps, events of one millisecond sometimes batched), or [`Shape::Realistic`], the
//! shape of streams from real Chinese floors that the replay benchmark must also cover:
//! about a third of the timestamps with a `+08:00` offset and a tenth as epoch
//! milliseconds, and a third of the lines batches of 2–20 consecutive events.
//!
//! Shaping never changes the events: it draws from a stream of randomness of its own, so
//! the same events and seed give the same bytes.

use std::io::{self, Write};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::SimEvent;
use crate::time::{Millis, Timestamp};

/// Share of same-millisecond groups written as one batch line, as a busy PBX would.
const BATCH_SHARE: f64 = 0.6;

/// Realistic shape: share of timestamps written as local time with a `+08:00` offset.
const OFFSET_SHARE: f64 = 1.0 / 3.0;
/// Realistic shape: share of timestamps written as epoch milliseconds.
const EPOCH_SHARE: f64 = 0.1;
/// Realistic shape: share of lines that are batches.
const BATCH_LINES: f64 = 1.0 / 3.0;
/// Realistic shape: events in one batch line.
const BATCH_MIN: usize = 2;
const BATCH_MAX: usize = 20;

const UTC8: Millis = 8 * 3_600_000;

/// How a stream is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Simulator,
    Realistic,
}

/// Writes `events` in `shape`; returns the number of events written.
pub fn write_shaped<W: Write>(
    events: impl Iterator<Item = SimEvent>,
    seed: u64,
    shape: Shape,
    w: W,
) -> io::Result<u64> {
    match shape {
        Shape::Simulator => write_ndjson(events, seed, w),
        Shape::Realistic => write_realistic(events, seed, w),
    }
}

/// Writes events as NDJSON: one event per line, except that events with identical
/// timestamps are sometimes written as one batch array line. The choice is drawn from
/// `seed`, so the output is byte-identical for the same events and seed. Returns the number
/// of events written.
pub fn write_ndjson<W: Write>(
    events: impl Iterator<Item = SimEvent>,
    seed: u64,
    mut w: W,
) -> io::Result<u64> {
    // A separate stream of randomness: framing never changes the events themselves.
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6261_7463_6865_7321);
    let mut group: Vec<SimEvent> = Vec::new();
    let mut n = 0u64;
    let mut flush = |group: &mut Vec<SimEvent>, w: &mut W| -> io::Result<()> {
        if group.len() > 1 && rng.random_bool(BATCH_SHARE) {
            let lines: Vec<String> = group.iter().map(SimEvent::to_json).collect();
            writeln!(w, "[{}]", lines.join(","))?;
        } else {
            for ev in group.iter() {
                writeln!(w, "{}", ev.to_json())?;
            }
        }
        group.clear();
        Ok(())
    };
    for ev in events {
        if group.first().is_some_and(|g| g.ts != ev.ts) {
            flush(&mut group, &mut w)?;
        }
        group.push(ev);
        n += 1;
    }
    flush(&mut group, &mut w)?;
    w.flush()?;
    Ok(n)
}

/// Writes events in the realistic shape (module doc). Returns the number of events written.
pub fn write_realistic<W: Write>(
    events: impl Iterator<Item = SimEvent>,
    seed: u64,
    mut w: W,
) -> io::Result<u64> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x7265_616c_6973_7421);
    let mut events = events.peekable();
    let mut line = String::new();
    let mut n = 0u64;
    while events.peek().is_some() {
        let size = if rng.random_bool(BATCH_LINES) {
            rng.random_range(BATCH_MIN..=BATCH_MAX)
        } else {
            1
        };
        line.clear();
        let mut k = 0;
        for ev in events.by_ref().take(size) {
            if k > 0 {
                line.push(',');
            }
            let x: f64 = rng.random();
            let style = if x < OFFSET_SHARE {
                TsStyle::Offset
            } else if x < OFFSET_SHARE + EPOCH_SHARE {
                TsStyle::EpochMs
            } else {
                TsStyle::Utc
            };
            line.push_str(&restamp(&ev.to_json(), ev.ts, style));
            k += 1;
        }
        n += k;
        if k > 1 {
            writeln!(w, "[{line}]")?;
        } else {
            writeln!(w, "{line}")?;
        }
    }
    w.flush()?;
    Ok(n)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TsStyle {
    Utc,
    Offset,
    EpochMs,
}

/// The event's JSON with its `ts` written in `style` (the simulator writes UTC `Z`).
fn restamp(json: &str, ts: Timestamp, style: TsStyle) -> String {
    const KEY: &str = "\"ts\":\"";
    let value = match style {
        TsStyle::Utc => return json.to_string(),
        TsStyle::Offset => {
            // Local wall time in UTC+8, printed as UTC's digits with the offset instead of Z.
            let local = Timestamp(ts.ms() + UTC8).to_string();
            format!("\"{}+08:00\"", local.trim_end_matches('Z'))
        }
        TsStyle::EpochMs => ts.ms().to_string(),
    };
    let Some(at) = json.find(KEY) else {
        return json.to_string();
    };
    let from = at + KEY.len() - 1;
    let Some(len) = json[from + 1..].find('"') else {
        return json.to_string();
    };
    let to = from + 1 + len + 1;
    format!("{}{}{}", &json[..from], value, &json[to..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restamp_writes_each_style_and_the_decoder_reads_the_same_instant() {
        let ts = Timestamp(1_795_827_600_123);
        let mut ev = SimEvent::new("agent.login", ts);
        ev.agent = Some("a-0001".into());
        let json = ev.to_json();
        let offset = restamp(&json, ts, TsStyle::Offset);
        assert!(
            offset.contains(r#""ts":"2026-11-28T09:00:00.123+08:00""#),
            "{offset}"
        );
        let epoch = restamp(&json, ts, TsStyle::EpochMs);
        assert!(epoch.contains(r#""ts":1795827600123,"#), "{epoch}");
        assert_eq!(restamp(&json, ts, TsStyle::Utc), json);
        for line in [offset, epoch] {
            let frame = crate::event::decode_frame(&line);
            assert!(frame.rejected.is_empty(), "{line}");
            assert_eq!(frame.events[0].1.ts, ts, "{line}");
        }
    }
}
