//! FreeSWITCH event socket (ESL) and mod_callcenter: the frame decoder and the pure mapper
//! from `CUSTOM callcenter::info` events to protocol [`Event`]s.
//!
//! Owns: splitting the socket's byte stream into frames (a `Key: Value` header block ended
//! by a blank line, then `Content-Length` bytes of body), parsing `text/event-json` bodies,
//! and the per-agent and per-call state needed to turn mod_callcenter's `CC-Action` events
//! into protocol events.
//! Must not: read sockets or the clock (the caller passes bytes and the receive time), or
//! apply rules (the engine does).
//!
//! Field names and values follow `src/mod/applications/mod_callcenter/mod_callcenter.c` in
//! signalwire/freeswitch.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use crate::config::{EslAgentId, EslSettings};
use crate::event::{Body, Event, Id, PresenceState};
use crate::time::Timestamp;

/// Header blocks longer than this are refused (FreeSWITCH's own are a few hundred bytes).
const MAX_HEADER_BLOCK: usize = 64 * 1024;

/// Why the byte stream cannot be decoded. Every variant is fatal for the connection: after
/// it the stream position is unknown.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EslError {
    #[error("esl frame body of {len} bytes is over the limit of {max} bytes")]
    FrameTooLarge { len: usize, max: usize },
    #[error("esl header block is over {max} bytes without a blank line")]
    HeaderTooLarge { max: usize },
    // Not the line itself: a header carries caller numbers (privacy, operations page).
    #[error("esl header line of {} bytes has no `: ` separator", .line.len())]
    BadHeader { line: String },
    #[error("esl Content-Length {value:?} is not a number")]
    BadContentLength { value: String },
    #[error("esl event-json body is not a json object: {reason}")]
    BadJson { reason: String },
}

/// One ESL frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    /// The header block in order (keys as sent).
    pub headers: Vec<(String, String)>,
    /// The `Content-Length` bytes after the header block (empty when there is none).
    pub body: Vec<u8>,
    /// The parsed body when `Content-Type` is `text/event-json`.
    pub event: Option<Map<String, Value>>,
}

impl Frame {
    /// The first header named `key` (ASCII case-insensitive).
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

/// Incremental ESL frame decoder: `push` bytes as they arrive, then take frames with
/// `next_frame` until it returns `Ok(None)`. Buffers at most one header block plus one body
/// of `max_frame` bytes.
#[derive(Debug)]
pub struct EslDecoder {
    buf: Vec<u8>,
    max_frame: usize,
    /// Parsed headers and body length of a frame whose body has not fully arrived.
    pending: Option<(Vec<(String, String)>, usize)>,
}

impl EslDecoder {
    pub fn new(max_frame: usize) -> EslDecoder {
        EslDecoder {
            buf: Vec::new(),
            max_frame,
            pending: None,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, EslError> {
        if self.pending.is_none() {
            // ESL separates frames with blank lines; stray line ends between frames are skipped.
            let lead = self
                .buf
                .iter()
                .take_while(|b| **b == b'\n' || **b == b'\r')
                .count();
            self.buf.drain(..lead);
            let Some((end, skip)) = header_end(&self.buf) else {
                if self.buf.len() > MAX_HEADER_BLOCK {
                    return Err(EslError::HeaderTooLarge {
                        max: MAX_HEADER_BLOCK,
                    });
                }
                return Ok(None);
            };
            if end > MAX_HEADER_BLOCK {
                return Err(EslError::HeaderTooLarge {
                    max: MAX_HEADER_BLOCK,
                });
            }
            let headers = parse_headers(&self.buf[..end])?;
            self.buf.drain(..end + skip);
            let len = match headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
            {
                None => 0,
                Some((_, v)) => v
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| EslError::BadContentLength { value: v.clone() })?,
            };
            if len > self.max_frame {
                return Err(EslError::FrameTooLarge {
                    len,
                    max: self.max_frame,
                });
            }
            self.pending = Some((headers, len));
        }
        let len = self.pending.as_ref().map_or(0, |p| p.1);
        if self.buf.len() < len {
            return Ok(None);
        }
        let (headers, _) = self.pending.take().unwrap_or_default();
        let body: Vec<u8> = self.buf.drain(..len).collect();
        let json = headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("Content-Type")
                && v.trim().eq_ignore_ascii_case("text/event-json")
        });
        let event = if json {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(m)) => Some(m),
                Ok(_) => {
                    return Err(EslError::BadJson {
                        reason: "not an object".into(),
                    })
                }
                Err(e) => {
                    return Err(EslError::BadJson {
                        reason: e.to_string(),
                    })
                }
            }
        } else {
            None
        };
        Ok(Some(Frame {
            headers,
            body,
            event,
        }))
    }
}

/// Index of the end of the header block and the length of the blank-line separator.
fn header_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some((i, 2));
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some((i, 3));
            }
        }
        i += 1;
    }
    None
}

fn parse_headers(block: &[u8]) -> Result<Vec<(String, String)>, EslError> {
    let text = String::from_utf8_lossy(block);
    let mut out = Vec::new();
    for line in text.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            return Err(EslError::BadHeader {
                line: line.chars().take(80).collect(),
            });
        };
        out.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(out)
}

/// What the mapper knows of an agent.
#[derive(Clone, Debug, Default)]
struct AgentMemo {
    logged_in: bool,
    /// The last presence sent for this agent.
    presence: Option<PresenceState>,
    /// mod_callcenter's status says the agent is on break: `Waiting` must not make them ready.
    on_break: bool,
    /// The call of the agent's latest bridge, for the `call` of `acw`.
    last_call: Option<Id>,
}

/// What the mapper knows of a call (a queue member).
#[derive(Clone, Debug, Default)]
struct CallMemo {
    /// Agents a `call.ringing` was sent for and not yet ended.
    ringing: HashSet<Id>,
    answered: bool,
    abandoned: bool,
}

/// Maps mod_callcenter events to protocol events. Stateful: it remembers per agent what it
/// last sent and per call whether it was answered or abandoned, so that duplicates from
/// mod_callcenter (an abandon seen both as `bridge-agent-fail` and as `member-queue-end`)
/// give one protocol event.
#[derive(Debug)]
pub struct EslMapper {
    settings: EslSettings,
    agents: HashMap<Id, AgentMemo>,
    calls: HashMap<Id, CallMemo>,
    /// While an agent list is asked for: the agents with an event since
    /// [`EslMapper::begin_reconcile`], newer than the list, which [`EslMapper::reconcile`]
    /// leaves alone. `None` when no list is awaited.
    touched: Option<HashSet<Id>>,
}

/// Calls remembered at most; the oldest are not tracked in order, so the whole memo is
/// cleared when it is full (a cleared call only loses de-duplication).
const MAX_CALLS: usize = 100_000;

impl EslMapper {
    pub fn new(settings: EslSettings) -> EslMapper {
        EslMapper {
            settings,
            agents: HashMap::new(),
            calls: HashMap::new(),
            touched: None,
        }
    }

    /// Call when `callcenter_config agent list` is sent: events from now on are newer than
    /// its answer.
    pub fn begin_reconcile(&mut self) {
        self.touched = Some(HashSet::new());
    }

    /// The protocol events that bring the mapper's agents in line with the answer to
    /// `api callcenter_config agent list` (a `|`-separated table with a header row naming
    /// the columns, `name`, `status` and `state` among them; a last line `+OK`), received at
    /// `received`, which is their `ts` (the table carries no event time). Status `On Break`
    /// is `not_ready` with the break reason; `Available` is `acw` in state `Idle`, else
    /// `ready`; `Logged Out` is a logout of an agent the mapper had logged in. Agents with
    /// an event since [`EslMapper::begin_reconcile`] and agents not in the table are left
    /// as they are. `None` when the text is not such a table.
    pub fn reconcile(&mut self, table: &str, received: Timestamp) -> Option<Vec<Event>> {
        let touched = self.touched.take().unwrap_or_default();
        let mut lines = table.lines().map(|l| l.trim_end_matches('\r'));
        let header: Vec<&str> = lines.next()?.split('|').collect();
        let col = |name: &str| header.iter().position(|h| *h == name);
        let (name, status, st_col) = (col("name")?, col("status")?, col("state")?);
        let mut out = Vec::new();
        for line in lines {
            if line.is_empty() || line.starts_with("+OK") {
                continue;
            }
            let cells: Vec<&str> = line.split('|').collect();
            let (Some(raw), Some(st), Some(ag)) =
                (cells.get(name), cells.get(status), cells.get(st_col))
            else {
                continue;
            };
            let mut ev = Map::new();
            ev.insert("CC-Agent".into(), (*raw).into());
            let Some(agent) = self.agent(&ev) else {
                continue;
            };
            if touched.contains(&agent) {
                continue;
            }
            let reason = self.settings.break_reason.clone();
            let memo = self.agents.entry(agent.clone()).or_default();
            let (want, why) = match (*st, *ag) {
                ("Logged Out", _) => {
                    if memo.logged_in {
                        *memo = AgentMemo::default();
                        out.push(at(received, Body::AgentLogout { agent }));
                    }
                    continue;
                }
                ("On Break", _) => (PresenceState::NotReady, reason.as_str()),
                ("Available" | "Available (On Demand)", "Idle") => (PresenceState::Acw, ""),
                ("Available" | "Available (On Demand)", _) => (PresenceState::Ready, ""),
                _ => continue,
            };
            memo.on_break = want == PresenceState::NotReady;
            if !memo.logged_in {
                memo.logged_in = true;
                let first = if want == PresenceState::Acw {
                    PresenceState::Ready
                } else {
                    want
                };
                memo.presence = Some(first);
                out.push(at(received, login(agent.clone(), first, Id::from(why))));
            }
            if memo.presence != Some(want) {
                memo.presence = Some(want);
                let call = if want == PresenceState::Acw {
                    memo.last_call.clone()
                } else {
                    None
                };
                out.push(at(received, state(agent, want, why, call)));
            }
        }
        Some(out)
    }

    pub fn settings(&self) -> &EslSettings {
        &self.settings
    }

    /// The protocol events for one FreeSWITCH event (the parsed `text/event-json` body),
    /// received at `received`. Events other than `CUSTOM callcenter::info`, unknown
    /// `CC-Action`s and events missing the fields they need give no events.
    pub fn handle(&mut self, event: &Map<String, Value>, received: Timestamp) -> Vec<Event> {
        let mut out = Vec::new();
        if field(event, "Event-Subclass") != Some("callcenter::info") {
            return out;
        }
        let ts = field(event, "Event-Date-Timestamp")
            .and_then(|v| v.parse::<i64>().ok())
            .map(|us| Timestamp(us / 1000))
            .filter(|t| crate::time::ts_in_range(*t))
            .unwrap_or(received);
        let Some(action) = field(event, "CC-Action") else {
            return out;
        };
        if self.calls.len() >= MAX_CALLS {
            self.calls.clear();
        }
        if self.touched.is_some() {
            if let Some(agent) = self.agent(event) {
                if let Some(t) = self.touched.as_mut() {
                    t.insert(agent);
                }
            }
        }
        let mut emit = |t: Timestamp, body: Body| {
            out.push(Event {
                ts: t,
                seq: None,
                id: None,
                body,
            })
        };
        match action {
            "agent-status-change" => {
                let (Some(agent), Some(status)) =
                    (self.agent(event), field(event, "CC-Agent-Status"))
                else {
                    return out;
                };
                let memo = self.agents.entry(agent.clone()).or_default();
                match status {
                    "Available" | "Available (On Demand)" => {
                        memo.on_break = false;
                        if !memo.logged_in {
                            memo.logged_in = true;
                            memo.presence = Some(PresenceState::Ready);
                            emit(ts, login(agent, PresenceState::Ready, Id::default()));
                        } else if memo.presence != Some(PresenceState::Ready) {
                            memo.presence = Some(PresenceState::Ready);
                            emit(ts, state(agent, PresenceState::Ready, "", None));
                        }
                    }
                    "On Break" => {
                        memo.on_break = true;
                        let reason = self.settings.break_reason.as_str();
                        if !memo.logged_in {
                            memo.logged_in = true;
                            memo.presence = Some(PresenceState::NotReady);
                            emit(ts, login(agent, PresenceState::NotReady, Id::from(reason)));
                        } else if memo.presence != Some(PresenceState::NotReady) {
                            memo.presence = Some(PresenceState::NotReady);
                            emit(ts, state(agent, PresenceState::NotReady, reason, None));
                        }
                    }
                    "Logged Out" => {
                        *memo = AgentMemo::default();
                        emit(ts, Body::AgentLogout { agent });
                    }
                    _ => {}
                }
            }
            "agent-state-change" => {
                let (Some(agent), Some(st)) = (self.agent(event), field(event, "CC-Agent-State"))
                else {
                    return out;
                };
                let memo = self.agents.entry(agent.clone()).or_default();
                // A state change of an agent not logged in (or on break) says nothing about
                // presence: mod_callcenter also sets `Waiting` when it adds or logs out an agent.
                if !memo.logged_in || memo.on_break {
                    return out;
                }
                let want = match st {
                    "Idle" => PresenceState::Acw,
                    "Waiting" => PresenceState::Ready,
                    // Reserved, Receiving, In a queue call: the call events say it.
                    _ => return out,
                };
                if memo.presence != Some(want) {
                    memo.presence = Some(want);
                    let call = if want == PresenceState::Acw {
                        memo.last_call.clone()
                    } else {
                        None
                    };
                    emit(ts, state(agent, want, "", call));
                }
            }
            "member-queue-start" | "member-queue-resume" => {
                let (Some(call), Some(queue)) = (self.call(event), ident(event, "CC-Queue")) else {
                    return out;
                };
                self.calls.insert(call.clone(), CallMemo::default());
                emit(ts, Body::CallQueued { call, queue });
            }
            "agent-offering" => {
                let (Some(call), Some(agent)) = (self.call(event), self.agent(event)) else {
                    return out;
                };
                let memo = self.calls.entry(call.clone()).or_default();
                memo.ringing.insert(agent.clone());
                emit(
                    ts,
                    Body::CallRinging {
                        call,
                        agent,
                        queue: ident(event, "CC-Queue"),
                    },
                );
            }
            "bridge-agent-start" => {
                let (Some(call), Some(agent)) = (self.call(event), self.agent(event)) else {
                    return out;
                };
                let called = epoch_s(event, "CC-Agent-Called-Time");
                // `CC-Agent-Answered-Time` has whole seconds; the event's own time has
                // microseconds and follows the answer at once. Within the answer's second
                // the event time is the finer one (the ring started at `agent-offering`'s
                // fine time, so both ends are measured alike); a later event time means the
                // event was held up, and the answer's second stands.
                let answered = match epoch_s(event, "CC-Agent-Answered-Time") {
                    Some(a) if ts.0 >= a.0 && ts.0 < a.0 + 1000 => ts,
                    Some(a) => a,
                    None => ts,
                };
                let memo = self.calls.entry(call.clone()).or_default();
                // Connected after the offering: the ring still counts from when the agent
                // was called.
                if !memo.ringing.contains(&agent) {
                    if let Some(c) = called {
                        emit(
                            c,
                            Body::CallRinging {
                                call: call.clone(),
                                agent: agent.clone(),
                                queue: ident(event, "CC-Queue"),
                            },
                        );
                    }
                }
                memo.ringing.clear();
                memo.answered = true;
                self.agents.entry(agent.clone()).or_default().last_call = Some(call.clone());
                emit(answered, Body::CallAnswered { call, agent });
            }
            "bridge-agent-fail" => {
                let (Some(call), Some(agent)) = (self.call(event), self.agent(event)) else {
                    return out;
                };
                let memo = self.calls.entry(call.clone()).or_default();
                let was_ringing = memo.ringing.remove(&agent);
                match field(event, "CC-Hangup-Cause").unwrap_or("") {
                    // Ring-all: another agent answered; that answer ends this ring.
                    "LOSE_RACE" => {}
                    // The caller hung up while the agent's phone rang (mod_callcenter cancels
                    // the agent leg with this cause when the member leaves).
                    "ORIGINATOR_CANCEL" => {
                        if !memo.answered && !memo.abandoned {
                            memo.abandoned = true;
                            emit(ts, Body::CallAbandoned { call });
                        }
                    }
                    // Everything else (NO_ANSWER, NO_USER_RESPONSE, USER_BUSY, CALL_REJECTED,
                    // USER_NOT_REGISTERED, ...) takes the call away from this agent unanswered.
                    _ => {
                        if was_ringing && !memo.answered && !memo.abandoned {
                            emit(ts, Body::CallNoAnswer { call, agent });
                        }
                    }
                }
            }
            "bridge-agent-end" => {
                let (Some(call), Some(agent)) = (self.call(event), self.agent(event)) else {
                    return out;
                };
                self.calls.remove(&call);
                emit(
                    ts,
                    Body::CallEnded {
                        call,
                        agent: Some(agent),
                    },
                );
            }
            "member-queue-end" => {
                let Some(call) = self.call(event) else {
                    return out;
                };
                // `Terminated` follows an answered call (bridge-agent-end already said it).
                if field(event, "CC-Cause") != Some("Cancel") {
                    self.calls.remove(&call);
                    return out;
                }
                let memo = self.calls.remove(&call).unwrap_or_default();
                if memo.answered || memo.abandoned {
                    return out;
                }
                // Every cancel reason is a call that left the queue unanswered: BREAK_OUT (the
                // core broke the member out: the caller hung up), NONE with the member channel
                // down (hung up), EXIT_WITH_KEY (the caller pressed the exit key), and TIMEOUT /
                // NO_AGENT_TIMEOUT (the platform moved the caller on). The protocol has no
                // "left the queue" other than `call.abandoned`; without it the engine would
                // keep the call waiting.
                emit(ts, Body::CallAbandoned { call });
            }
            _ => {}
        }
        out
    }

    fn agent(&self, event: &Map<String, Value>) -> Option<Id> {
        let raw = field(event, "CC-Agent")?;
        let name = match self.settings.agent_id {
            EslAgentId::Name => raw,
            EslAgentId::BeforeAt => raw.split('@').next().unwrap_or(raw),
        };
        valid_id(name)
    }

    fn call(&self, event: &Map<String, Value>) -> Option<Id> {
        ident(event, "CC-Member-UUID")
    }
}

fn field<'a>(event: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    event.get(key).and_then(Value::as_str)
}

fn valid_id(s: &str) -> Option<Id> {
    super::protocol_id(s)
}

fn ident(event: &Map<String, Value>, key: &str) -> Option<Id> {
    field(event, key).and_then(valid_id)
}

/// mod_callcenter's `*-Time` fields are epoch seconds; 0 means "never".
fn epoch_s(event: &Map<String, Value>, key: &str) -> Option<Timestamp> {
    let s: i64 = field(event, key)?.parse().ok()?;
    let t = Timestamp(s.checked_mul(1000)?);
    (s > 0 && crate::time::ts_in_range(t)).then_some(t)
}

fn at(ts: Timestamp, body: Body) -> Event {
    Event {
        ts,
        seq: None,
        id: None,
        body,
    }
}

fn login(agent: Id, st: PresenceState, reason: Id) -> Body {
    Body::AgentLogin {
        agent,
        team: None,
        name: None,
        extension: None,
        state: Some(st),
        reason,
    }
}

fn state(agent: Id, st: PresenceState, reason: &str, call: Option<Id>) -> Body {
    Body::AgentState {
        agent,
        state: st,
        reason: Id::from(reason),
        call,
        team: None,
    }
}

pub mod client;

#[cfg(test)]
mod tests {
    use super::*;

    fn json_frame(body: &str) -> Vec<u8> {
        format!(
            "Content-Length: {}\nContent-Type: text/event-json\n\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn ev(pairs: &[(&str, &str)]) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("Event-Name".into(), "CUSTOM".into());
        m.insert("Event-Subclass".into(), "callcenter::info".into());
        for (k, v) in pairs {
            m.insert((*k).into(), (*v).into());
        }
        m
    }

    fn types(events: &[Event]) -> Vec<&'static str> {
        events.iter().map(|e| e.body.type_name()).collect()
    }

    #[test]
    fn decoder_joins_a_frame_split_across_reads() {
        let bytes = json_frame(r#"{"CC-Action":"agent-offering"}"#);
        let mut d = EslDecoder::new(1024);
        for chunk in bytes.chunks(5) {
            assert_eq!(d.next_frame(), Ok(None));
            d.push(chunk);
        }
        let f = d.next_frame().unwrap().expect("a frame");
        assert_eq!(f.header("content-type"), Some("text/event-json"));
        assert_eq!(
            f.event.unwrap().get("CC-Action"),
            Some(&Value::from("agent-offering"))
        );
        assert_eq!(d.next_frame(), Ok(None));
    }

    #[test]
    fn decoder_splits_several_frames_in_one_read() {
        let mut bytes = b"Content-Type: auth/request\n\n".to_vec();
        bytes.extend(b"Content-Type: command/reply\r\nReply-Text: +OK accepted\r\n\r\n");
        bytes.extend(json_frame(r#"{"a":"1"}"#));
        bytes.extend(json_frame(r#"{"a":"2"}"#));
        let mut d = EslDecoder::new(1024);
        d.push(&bytes);
        let f1 = d.next_frame().unwrap().unwrap();
        assert_eq!(f1.header("Content-Type"), Some("auth/request"));
        let f2 = d.next_frame().unwrap().unwrap();
        assert_eq!(f2.header("Reply-Text"), Some("+OK accepted"));
        let a: Vec<_> = (0..2)
            .map(|_| d.next_frame().unwrap().unwrap().event.unwrap()["a"].clone())
            .collect();
        assert_eq!(a, vec![Value::from("1"), Value::from("2")]);
        assert_eq!(d.next_frame(), Ok(None));
    }

    #[test]
    fn decoder_refuses_an_oversize_body_before_buffering_it() {
        let mut d = EslDecoder::new(10);
        d.push(b"Content-Length: 11\nContent-Type: text/event-json\n\n");
        assert_eq!(
            d.next_frame(),
            Err(EslError::FrameTooLarge { len: 11, max: 10 })
        );
        let mut d = EslDecoder::new(10);
        d.push(b"Content-Length: ten\n\n");
        assert!(matches!(
            d.next_frame(),
            Err(EslError::BadContentLength { .. })
        ));
        let mut d = EslDecoder::new(10);
        d.push(b"Content-Length: 3\nContent-Type: text/event-json\n\n[1]");
        assert!(matches!(d.next_frame(), Err(EslError::BadJson { .. })));
    }

    #[test]
    fn status_changes_map_to_login_break_and_logout() {
        let mut m = EslMapper::new(EslSettings::default());
        let st = |s: &str| {
            ev(&[
                ("CC-Action", "agent-status-change"),
                ("CC-Agent", "1000@default"),
                ("CC-Agent-Status", s),
                ("Event-Date-Timestamp", "1795770000123456"),
            ])
        };
        let out = m.handle(&st("Available"), Timestamp(1));
        assert_eq!(types(&out), ["agent.login"]);
        assert_eq!(out[0].ts, Timestamp(1_795_770_000_123));
        let out = m.handle(&st("On Break"), Timestamp(1));
        match &out[0].body {
            Body::AgentState { state, reason, .. } => {
                assert_eq!(*state, PresenceState::NotReady);
                assert_eq!(reason, "break");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            types(&m.handle(&st("Available (On Demand)"), Timestamp(1))),
            ["agent.state"]
        );
        assert!(
            m.handle(&st("Available"), Timestamp(1)).is_empty(),
            "no change"
        );
        assert_eq!(
            types(&m.handle(&st("Logged Out"), Timestamp(1))),
            ["agent.logout"]
        );
    }

    #[test]
    fn agent_state_idle_is_acw_and_waiting_is_ready_unless_on_break() {
        let mut m = EslMapper::new(EslSettings {
            agent_id: EslAgentId::BeforeAt,
            ..EslSettings::default()
        });
        let status = |s: &str| {
            ev(&[
                ("CC-Action", "agent-status-change"),
                ("CC-Agent", "1000@default"),
                ("CC-Agent-Status", s),
            ])
        };
        let state_ev = |s: &str| {
            ev(&[
                ("CC-Action", "agent-state-change"),
                ("CC-Agent", "1000@default"),
                ("CC-Agent-State", s),
            ])
        };
        let out = m.handle(&status("Available"), Timestamp(5));
        assert_eq!(
            out[0].ts,
            Timestamp(5),
            "receive time without Event-Date-Timestamp"
        );
        assert!(matches!(&out[0].body, Body::AgentLogin { agent, .. } if agent == "1000"));
        for s in ["Reserved", "Receiving", "In a queue call"] {
            assert!(m.handle(&state_ev(s), Timestamp(6)).is_empty(), "{s}");
        }
        let out = m.handle(&state_ev("Idle"), Timestamp(7));
        assert!(matches!(
            &out[0].body,
            Body::AgentState {
                state: PresenceState::Acw,
                ..
            }
        ));
        let out = m.handle(&state_ev("Waiting"), Timestamp(8));
        assert!(matches!(
            &out[0].body,
            Body::AgentState {
                state: PresenceState::Ready,
                ..
            }
        ));
        m.handle(&status("On Break"), Timestamp(9));
        assert!(m.handle(&state_ev("Waiting"), Timestamp(10)).is_empty());
    }

    fn call_ev(action: &str, extra: &[(&str, &str)]) -> Map<String, Value> {
        let mut v = vec![
            ("CC-Action", action),
            ("CC-Member-UUID", "m-1"),
            ("CC-Queue", "support@default"),
            ("CC-Agent", "1000@default"),
        ];
        v.extend_from_slice(extra);
        ev(&v)
    }

    #[test]
    fn call_lifecycle_maps_queued_ringing_answered_ended() {
        let mut m = EslMapper::new(EslSettings::default());
        assert_eq!(
            types(&m.handle(&call_ev("member-queue-start", &[]), Timestamp(1))),
            ["call.queued"]
        );
        assert_eq!(
            types(&m.handle(&call_ev("agent-offering", &[]), Timestamp(2))),
            ["call.ringing"]
        );
        let out = m.handle(
            &call_ev(
                "bridge-agent-start",
                &[
                    ("CC-Agent-Called-Time", "1795770002"),
                    ("CC-Agent-Answered-Time", "1795770009"),
                    ("CC-Member-Joined-Time", "1795770000"),
                ],
            ),
            Timestamp(3),
        );
        assert_eq!(types(&out), ["call.answered"]);
        assert_eq!(out[0].ts, Timestamp(1_795_770_009_000), "answered time");
        assert_eq!(
            types(&m.handle(&call_ev("bridge-agent-end", &[]), Timestamp(4))),
            ["call.ended"]
        );
        assert!(m
            .handle(
                &call_ev("member-queue-end", &[("CC-Cause", "Terminated")]),
                Timestamp(5)
            )
            .is_empty());
    }

    #[test]
    fn answer_takes_the_fine_event_time_within_the_answered_second() {
        let answer = |event_us: &str| {
            let mut m = EslMapper::new(EslSettings::default());
            let out = m.handle(
                &call_ev(
                    "bridge-agent-start",
                    &[
                        ("CC-Agent-Called-Time", "100"),
                        ("CC-Agent-Answered-Time", "115"),
                        ("Event-Date-Timestamp", event_us),
                    ],
                ),
                Timestamp(1),
            );
            out.last().map(|e| e.ts)
        };
        // 115.730 s: within the answered second, the event's own time is finer.
        assert_eq!(answer("115730123"), Some(Timestamp(115_730)));
        // Exactly at the second and at its last millisecond.
        assert_eq!(answer("115000000"), Some(Timestamp(115_000)));
        assert_eq!(answer("115999999"), Some(Timestamp(115_999)));
        // Held up past the second (or before it: clocks apart): the answered second stands.
        assert_eq!(answer("117000000"), Some(Timestamp(115_000)));
        assert_eq!(answer("114999000"), Some(Timestamp(115_000)));
    }

    #[test]
    fn answer_without_offering_rings_from_the_called_time() {
        let mut m = EslMapper::new(EslSettings::default());
        let out = m.handle(
            &call_ev(
                "bridge-agent-start",
                &[
                    ("CC-Agent-Called-Time", "100"),
                    ("CC-Agent-Answered-Time", "104"),
                ],
            ),
            Timestamp(1),
        );
        assert_eq!(types(&out), ["call.ringing", "call.answered"]);
        assert_eq!(
            (out[0].ts, out[1].ts),
            (Timestamp(100_000), Timestamp(104_000))
        );
    }

    #[test]
    fn bridge_agent_fail_by_hangup_cause() {
        for (cause, want) in [
            ("NO_ANSWER", vec!["call.no_answer"]),
            ("USER_BUSY", vec!["call.no_answer"]),
            ("CALL_REJECTED", vec!["call.no_answer"]),
            ("ORIGINATOR_CANCEL", vec!["call.abandoned"]),
            ("LOSE_RACE", vec![]),
        ] {
            let mut m = EslMapper::new(EslSettings::default());
            m.handle(&call_ev("member-queue-start", &[]), Timestamp(1));
            m.handle(&call_ev("agent-offering", &[]), Timestamp(2));
            let out = m.handle(
                &call_ev("bridge-agent-fail", &[("CC-Hangup-Cause", cause)]),
                Timestamp(3),
            );
            assert_eq!(types(&out), want, "{cause}");
            // The member leaving afterwards is not a second abandon.
            let end = m.handle(
                &call_ev(
                    "member-queue-end",
                    &[("CC-Cause", "Cancel"), ("CC-Cancel-Reason", "BREAK_OUT")],
                ),
                Timestamp(4),
            );
            let again = if cause == "ORIGINATOR_CANCEL" {
                vec![]
            } else {
                vec!["call.abandoned"]
            };
            assert_eq!(types(&end), again, "{cause}");
        }
    }

    #[test]
    fn member_queue_end_cancel_reasons_are_abandons() {
        for reason in [
            "BREAK_OUT",
            "NONE",
            "EXIT_WITH_KEY",
            "TIMEOUT",
            "NO_AGENT_TIMEOUT",
        ] {
            let mut m = EslMapper::new(EslSettings::default());
            m.handle(&call_ev("member-queue-start", &[]), Timestamp(1));
            let out = m.handle(
                &call_ev(
                    "member-queue-end",
                    &[("CC-Cause", "Cancel"), ("CC-Cancel-Reason", reason)],
                ),
                Timestamp(2),
            );
            assert_eq!(types(&out), ["call.abandoned"], "{reason}");
        }
    }

    #[test]
    fn other_events_are_ignored() {
        let mut m = EslMapper::new(EslSettings::default());
        let mut e = call_ev("member-queue-start", &[]);
        e.insert("Event-Subclass".into(), "conference::maintenance".into());
        assert!(m.handle(&e, Timestamp(1)).is_empty());
        assert!(m
            .handle(&call_ev("members-count", &[]), Timestamp(1))
            .is_empty());
    }

    const LIST_HEADER: &str = "name|instance_id|uuid|type|contact|status|state|max_no_answer";

    fn list(rows: &[(&str, &str, &str)]) -> String {
        let mut t = format!("{LIST_HEADER}\n");
        for (name, status, state) in rows {
            t.push_str(&format!(
                "{name}|single_box||callback|user/x|{status}|{state}|3\n"
            ));
        }
        t + "+OK\n"
    }

    #[test]
    fn agent_list_reconciles_presence_without_flipping_what_is_unchanged() {
        let mut m = EslMapper::new(EslSettings::default());
        let st = |a: &str, s: &str| {
            ev(&[
                ("CC-Action", "agent-status-change"),
                ("CC-Agent", a),
                ("CC-Agent-Status", s),
            ])
        };
        let state_ev = |a: &str, s: &str| {
            ev(&[
                ("CC-Action", "agent-state-change"),
                ("CC-Agent", a),
                ("CC-Agent-State", s),
            ])
        };
        m.handle(&st("a", "Available"), Timestamp(1));
        m.handle(&state_ev("a", "Idle"), Timestamp(2));
        m.handle(&st("b", "Available"), Timestamp(1));
        m.handle(&st("c", "Available"), Timestamp(1));
        m.begin_reconcile();
        // c changed after the list was asked for: the event wins over the older list.
        m.handle(&st("c", "On Break"), Timestamp(3));
        let out = m
            .reconcile(
                &list(&[
                    ("a", "Available", "Idle"),
                    ("b", "Logged Out", "Waiting"),
                    ("c", "Available", "Waiting"),
                    ("d", "On Break", "Waiting"),
                    ("e", "Logged Out", "Waiting"),
                ]),
                Timestamp(9),
            )
            .expect("a table");
        assert_eq!(types(&out), ["agent.logout", "agent.login"], "{out:?}");
        assert!(out.iter().all(|e| e.ts == Timestamp(9)));
        assert!(matches!(&out[0].body, Body::AgentLogout { agent } if agent == "b"));
        match &out[1].body {
            Body::AgentLogin {
                agent,
                state,
                reason,
                ..
            } => {
                assert_eq!(agent, "d");
                assert_eq!(*state, Some(PresenceState::NotReady));
                assert_eq!(reason, "break");
            }
            other => panic!("{other:?}"),
        }
        // The next list sees c's break as known and changes nothing.
        m.begin_reconcile();
        let again = m
            .reconcile(&list(&[("c", "On Break", "Waiting")]), Timestamp(10))
            .expect("a table");
        assert!(again.is_empty(), "{again:?}");
    }

    #[test]
    fn agent_list_error_is_not_a_table() {
        let mut m = EslMapper::new(EslSettings::default());
        assert_eq!(m.reconcile("-ERR no reply\n", Timestamp(1)), None);
        assert_eq!(m.reconcile("", Timestamp(1)), None);
        assert_eq!(m.reconcile(&list(&[]), Timestamp(1)), Some(vec![]));
    }
}
