//! Asterisk `queue_log` (`epoch|callid|queue|agent|EVENT|data1|data2|...` lines): the line
//! parser and the pure mapper to protocol events.
//!
//! Owns: parsing lines, the membership state and a bounded reordering window. Must not: read
//! files, tail or follow rotation (that is [`tail`]), or read the clock (the tail passes the
//! wall time to [`QueueLogMapper::release_until`]).
//!
//! `queue_log` has no ring-start line: a ring's start is derived from the duration a later
//! line reports (`CONNECT` ring time in seconds, `RINGNOANSWER` and `RINGCANCELED` in
//! milliseconds), so events are put back in time order within [`QueueLogMapper`]'s window.
//! From `queue_log` the 3-ring rule is therefore judged after the fact, once the line that
//! ends the ring is written, never live while the phone rings.

use std::collections::{BTreeMap, BTreeSet};

use crate::adapter::ami::{looks_like_interface, Roster};
use crate::config::AmiSettings;
use crate::event::{Body, Event, Id};
use crate::time::{Millis, Timestamp};

/// A line that is not a `queue_log` line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueLogError {
    #[error("line {line}: expected at least 5 fields separated by '|', got {fields}")]
    TooFewFields { line: u64, fields: usize },
    #[error("line {line}: time {value:?} is not epoch seconds")]
    BadTime { line: u64, value: String },
    #[error("line {line}: {what} is empty or longer than 128 bytes")]
    LongId { line: u64, what: &'static str },
    #[error("line {line}: {event} field {field} {value:?} is not a ring time (a whole number of seconds or milliseconds, 0 to a day)")]
    BadNumber {
        line: u64,
        event: String,
        field: usize,
        value: String,
    },
}

/// The longest ring time a line may report (a day): longer is a malformed line.
const MAX_RING_MS: i64 = 86_400_000;

/// One parsed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueLogLine<'a> {
    pub ts: Timestamp,
    pub call: &'a str,
    pub queue: &'a str,
    pub agent: &'a str,
    pub event: &'a str,
    pub data: Vec<&'a str>,
}

/// Parses one line (`line` is its 1-based number, for errors).
pub fn parse_line(text: &str, line: u64) -> Result<QueueLogLine<'_>, QueueLogError> {
    let f: Vec<&str> = text.trim_end_matches(['\r', '\n']).split('|').collect();
    if f.len() < 5 {
        return Err(QueueLogError::TooFewFields {
            line,
            fields: f.len(),
        });
    }
    let ts = crate::adapter::ami::parse_epoch(f[0]).ok_or_else(|| QueueLogError::BadTime {
        line,
        value: f[0].to_string(),
    })?;
    // Ids become protocol identifiers: longer ones would make events no decoder (and so no
    // journal replay) accepts.
    for (what, v) in [("call id", f[1]), ("queue", f[2]), ("agent", f[3])] {
        if v.is_empty() || v.len() > crate::event::MAX_ID_LEN {
            return Err(QueueLogError::LongId { line, what });
        }
    }
    Ok(QueueLogLine {
        ts,
        call: f[1],
        queue: f[2],
        agent: f[3],
        event: f[4],
        data: f[5..].to_vec(),
    })
}

/// A `queue_log` that names one member two ways, as Asterisk writes it by default
/// (`log_membername_as_agent = no` in `queues.conf`): the interface in `ADDMEMBER` and
/// `REMOVEMEMBER`, the member name on every other line. Without a `members` table entry the
/// interface logs in and never takes a call, and the name takes calls without logging in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitNames {
    /// An interface that joined or left a queue (`PJSIP/801`).
    pub interface: String,
    /// A member name on the other lines of that queue, never added or removed (`Alice`).
    pub name: String,
    pub queue: String,
    /// The line that showed both.
    pub line: u64,
}

impl std::fmt::Display for SplitNames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "queue_log names members two ways (line {}, queue {:?}): ADDMEMBER/REMOVEMEMBER by interface ({:?}), the other lines by member name ({:?}), so one person shows as two agents and REMOVEMEMBER logs out only the interface; \
             fix it with log_membername_as_agent = yes in queues.conf (new lines only), or with this source's members table, e.g. members = {{ {:?} = \"<member name>\" }} (history too)",
            self.line, self.queue, self.interface, self.name, self.interface
        )
    }
}

/// The agents seen so far, by kind of line, to find a [`SplitNames`]. At most
/// [`NameCheck::MAX`] agents and queues each are remembered; the check stops once it found
/// one.
#[derive(Debug, Default)]
struct NameCheck {
    /// Agents of `ADDMEMBER`/`REMOVEMEMBER` lines.
    added: BTreeSet<Id>,
    /// Agents of the other member lines.
    other: BTreeSet<Id>,
    /// Queue → an interface that joined or left it and is on no other line (yet).
    interface_in: BTreeMap<Id, Id>,
    /// Queue → a name on its other lines that never joined or left a queue (yet).
    name_in: BTreeMap<Id, Id>,
}

impl NameCheck {
    const MAX: usize = 10_000;

    fn remember(set: &mut BTreeSet<Id>, agent: &Id) {
        if set.len() < NameCheck::MAX {
            set.insert(agent.clone());
        }
    }

    fn joined_or_left(&mut self, queue: &Id, agent: &Id) {
        NameCheck::remember(&mut self.added, agent);
        if looks_like_interface(agent) && !self.other.contains(agent) {
            let stale = self
                .interface_in
                .get(queue)
                .is_none_or(|a| self.other.contains(a));
            if stale && self.interface_in.len() < NameCheck::MAX {
                self.interface_in.insert(queue.clone(), agent.clone());
            }
        }
    }

    fn member_line(&mut self, queue: &Id, agent: &Id) {
        NameCheck::remember(&mut self.other, agent);
        if queue != "NONE" && !looks_like_interface(agent) && !self.added.contains(agent) {
            let stale = self
                .name_in
                .get(queue)
                .is_none_or(|a| self.added.contains(a));
            if stale && self.name_in.len() < NameCheck::MAX {
                self.name_in.insert(queue.clone(), agent.clone());
            }
        }
    }

    /// Both names of one queue, if it has an interface only on joins and leaves and a
    /// name only on the other lines.
    fn split_in(&self, queue: &Id) -> Option<(Id, Id)> {
        let i = self.interface_in.get(queue)?;
        let n = self.name_in.get(queue)?;
        (!self.other.contains(i) && !self.added.contains(n)).then(|| (i.clone(), n.clone()))
    }
}

/// What the mapper skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueLogStats {
    pub lines: u64,
    /// Lines with an event this mapper does not map (`CONFIGRELOAD`, `QUEUESTART`, ...).
    pub unknown: u64,
    pub unknown_by_event: BTreeMap<String, u64>,
    /// Events older than what the window had already released (applied late by the engine).
    pub late: u64,
    /// The first sign that the file names members two ways (reported once).
    pub split_names: Option<SplitNames>,
}

/// Maps `queue_log` lines to protocol events, released in time order.
///
/// Each event's `seq` derives from the byte offset of its line (`offset * 4 + k` for the
/// `k`-th event of the line, raised where needed to stay strictly increasing in release
/// order), so re-reading the same file from the start gives the same numbers and the engine
/// drops them as duplicates. A tail that follows rotation numbers each file with a
/// generation ([`QueueLogMapper::set_generation`]): `seq = generation << 40 | offset * 4 + k`,
/// so the events of a newer file always number above those of an older one.
#[derive(Debug)]
pub struct QueueLogMapper {
    settings: AmiSettings,
    window: Millis,
    roster: Roster,
    pending: BTreeMap<(Timestamp, u64), Event>,
    newest: Option<Timestamp>,
    released_until: Option<Timestamp>,
    last_seq: Option<u64>,
    /// `generation << GENERATION_SHIFT`, or-ed into every `seq`.
    seq_base: u64,
    stats: QueueLogStats,
    /// `None` once a [`SplitNames`] was found.
    names: Option<NameCheck>,
}

/// Bits of `seq` below the generation: `offset * 4 + k` stays below `1 << 40` for files up
/// to 256 GiB.
pub const GENERATION_SHIFT: u32 = 40;

/// The generation a `seq` was numbered in.
pub fn generation_of(seq: u64) -> u64 {
    seq >> GENERATION_SHIFT
}

impl QueueLogMapper {
    /// Events are held until a line `window` ms newer has been read (the longest ring
    /// time expected, e.g. a minute).
    pub fn new(settings: AmiSettings, window: Millis) -> QueueLogMapper {
        QueueLogMapper {
            settings,
            window,
            roster: Roster::default(),
            pending: BTreeMap::new(),
            newest: None,
            released_until: None,
            last_seq: None,
            seq_base: 0,
            stats: QueueLogStats::default(),
            names: Some(NameCheck::default()),
        }
    }

    /// Numbers the lines read from now on as file `generation` (0 at first): offsets start
    /// over in a new file, the generation keeps `seq` increasing. Events still held keep
    /// their numbers; the membership state carries over (members stay in their queues
    /// across a log rotation).
    pub fn set_generation(&mut self, generation: u64) {
        self.seq_base = generation << GENERATION_SHIFT;
    }

    pub fn stats(&self) -> &QueueLogStats {
        &self.stats
    }

    /// Takes one line that starts at byte `offset` of the file and is line number `line`;
    /// returns the events now older than the window, in time order.
    pub fn handle_line(
        &mut self,
        text: &str,
        offset: u64,
        line: u64,
    ) -> Result<Vec<Event>, QueueLogError> {
        if text.trim().is_empty() {
            return Ok(Vec::new());
        }
        let l = parse_line(text, line)?;
        self.stats.lines += 1;
        let bodies = self.map(&l, line)?;
        for (k, (ts, body)) in bodies.into_iter().enumerate() {
            let own = self.seq_base | (offset * 4 + k as u64);
            if self.released_until.is_some_and(|r| ts < r) {
                self.stats.late += 1;
            }
            self.pending.insert(
                (ts, own),
                Event {
                    ts,
                    seq: Some(own),
                    id: None,
                    body,
                },
            );
        }
        self.newest = self.newest.max(Some(l.ts));
        let cut = self.newest.map(|n| n.plus(-self.window));
        Ok(self.release(cut))
    }

    /// Releases the events held with a time at or before `until`, in time order: a tail
    /// passes the wall time minus the window, so that on a quiet floor events are not held
    /// until the next line is written.
    pub fn release_until(&mut self, until: Timestamp) -> Vec<Event> {
        self.release(Some(until))
    }

    /// How many events are held.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// End of input: everything still held, in time order.
    pub fn finish(&mut self) -> Vec<Event> {
        self.release(None)
    }

    fn release(&mut self, cut: Option<Timestamp>) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(entry) = self.pending.first_entry() {
            if cut.is_some_and(|c| entry.key().0 > c) {
                break;
            }
            let mut ev = entry.remove();
            let own = ev.seq.unwrap_or(0);
            let seq = match self.last_seq {
                Some(l) if own <= l => l + 1,
                _ => own,
            };
            ev.seq = Some(seq);
            self.last_seq = Some(seq);
            self.released_until = self.released_until.max(Some(ev.ts));
            out.push(ev);
        }
        out
    }

    fn map(
        &mut self,
        l: &QueueLogLine<'_>,
        line: u64,
    ) -> Result<Vec<(Timestamp, Body)>, QueueLogError> {
        // A ring time in field `i`, in units of `unit` ms: at least 0 and at most a day, so
        // that the derived ring start is a time any event may carry.
        let num = |i: usize, unit: i64| -> Result<i64, QueueLogError> {
            let v = l.data.get(i).copied().unwrap_or("");
            v.trim()
                .parse::<i64>()
                .ok()
                .and_then(|n| n.checked_mul(unit))
                .filter(|ms| (0..=MAX_RING_MS).contains(ms))
                .filter(|ms| crate::time::ts_in_range(l.ts.plus(-ms)))
                .ok_or_else(|| QueueLogError::BadNumber {
                    line,
                    event: l.event.to_string(),
                    field: i + 1,
                    value: v.to_string(),
                })
        };
        let call = Id::from(l.call);
        let agent = Id::from(self.settings.agent(l.agent));
        let queue = Id::from(l.queue);
        self.check_names(l.event, &queue, &agent, line);
        let ringing = |ms: i64| {
            (
                l.ts.plus(-ms),
                Body::CallRinging {
                    call: call.clone(),
                    agent: agent.clone(),
                    queue: Some(queue.clone()),
                },
            )
        };
        let s = &self.settings;
        let reason = || super::protocol_reason(l.data.first().copied().unwrap_or(""));
        let one = |b: Option<Body>| b.map(|b| (l.ts, b)).into_iter().collect::<Vec<_>>();
        Ok(match l.event {
            "ENTERQUEUE" => one(Some(Body::CallQueued {
                call: call.clone(),
                queue: queue.clone(),
            })),
            // CONNECT: holdtime s | agent channel uniqueid | ringtime s
            "CONNECT" => vec![
                ringing(num(2, 1000)?),
                (
                    l.ts,
                    Body::CallAnswered {
                        call: call.clone(),
                        agent: agent.clone(),
                    },
                ),
            ],
            "RINGNOANSWER" => vec![
                ringing(num(0, 1)?),
                (
                    l.ts,
                    Body::CallNoAnswer {
                        call: call.clone(),
                        agent: agent.clone(),
                    },
                ),
            ],
            // The ring was cut short (the caller left, or another member answered); the line
            // that says which ends the ring.
            "RINGCANCELED" => vec![ringing(num(0, 1)?)],
            "COMPLETEAGENT" | "COMPLETECALLER" | "TRANSFER" | "ATTENDEDTRANSFER"
            | "BLINDTRANSFER" => {
                self.roster.call_ended(&agent, &call);
                one(Some(Body::CallEnded {
                    call: call.clone(),
                    agent: Some(agent.clone()),
                }))
            }
            "ABANDON" | "EXITEMPTY" | "EXITWITHTIMEOUT" | "EXITWITHKEY" => {
                one(Some(Body::CallAbandoned { call: call.clone() }))
            }
            "PAUSE" => one(self.roster.pause(s, &agent, Some(&queue), Some(reason()))),
            "UNPAUSE" => one(self.roster.pause(s, &agent, Some(&queue), None)),
            "PAUSEALL" => one(self.roster.pause(s, &agent, None, Some(reason()))),
            "UNPAUSEALL" => one(self.roster.pause(s, &agent, None, None)),
            "ADDMEMBER" => {
                let paused = (l.data.first() == Some(&"PAUSED")).then(Id::default);
                one(self.roster.add(s, &agent, &queue, paused))
            }
            "REMOVEMEMBER" => one(self.roster.remove(s, &agent, Some(&queue))),
            "AGENTLOGIN" => one(self.roster.add(s, &agent, "*", None)),
            "AGENTLOGOFF" => one(self.roster.remove(s, &agent, None)),
            other => {
                self.stats.unknown += 1;
                *self
                    .stats
                    .unknown_by_event
                    .entry(other.to_string())
                    .or_default() += 1;
                Vec::new()
            }
        })
    }
}

impl QueueLogMapper {
    /// Looks for a member named two ways (see [`SplitNames`]), on the agent as mapped
    /// through the `members` table.
    fn check_names(&mut self, event: &str, queue: &Id, agent: &Id, line: u64) {
        let Some(check) = self.names.as_mut() else {
            return;
        };
        match event {
            "ADDMEMBER" | "REMOVEMEMBER" => check.joined_or_left(queue, agent),
            "PAUSE" | "UNPAUSE" | "PAUSEALL" | "UNPAUSEALL" | "CONNECT" | "RINGNOANSWER"
            | "RINGCANCELED" | "COMPLETEAGENT" | "COMPLETECALLER" | "TRANSFER"
            | "ATTENDEDTRANSFER" | "BLINDTRANSFER" => check.member_line(queue, agent),
            _ => return,
        }
        if let Some((interface, name)) = check.split_in(queue) {
            self.stats.split_names = Some(SplitNames {
                interface: interface.to_string(),
                name: name.to_string(),
                queue: queue.to_string(),
                line,
            });
            self.names = None;
        }
    }
}

/// Maps a whole file's text (for tests and imports): the events in time order, and stats.
pub fn map_text(
    text: &str,
    settings: AmiSettings,
    window: Millis,
) -> Result<(Vec<Event>, QueueLogStats), QueueLogError> {
    let mut m = QueueLogMapper::new(settings, window);
    let mut out = Vec::new();
    let mut offset = 0u64;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        out.extend(m.handle_line(l, offset, i as u64 + 1)?);
        offset += l.len() as u64;
    }
    out.extend(m.finish());
    Ok((out, m.stats().clone()))
}

#[cfg(test)]
mod tests;

pub mod tail;

#[cfg(test)]
mod id_tests {
    use super::*;

    #[test]
    fn queue_log_ids_over_128_bytes_are_refused_lines() {
        // Found by the adapters fuzz target: a 140-byte call id became a call.ringing that
        // decode (and so the journal's replay) refuses.
        let long = "9".repeat(129);
        let line = format!("1795828389|{long}|sales|wang.fang|RINGNOANSWER|1000");
        assert!(matches!(
            parse_line(&line, 1),
            Err(QueueLogError::LongId {
                what: "call id",
                ..
            })
        ));
        // Found next: an empty call id.
        let line = "1795828389||sales|wang.fang|RINGNOANSWER|1000";
        assert!(parse_line(line, 1).is_err());
        let ok = "9".repeat(128);
        let line = format!("1795828389|{ok}|sales|wang.fang|RINGNOANSWER|1000");
        assert!(parse_line(&line, 1).is_ok());
    }
}
