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

use std::collections::{BTreeMap, HashMap, HashSet};

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
    /// Bridged to a queue call (`bridge-agent-start` without its `bridge-agent-end`): a
    /// call the agent's phone places now is a consultation or transfer, not outbound.
    on_queue_call: bool,
}

/// An agent's outbound call in progress (its phone's channel, the a-leg).
#[derive(Clone, Debug)]
struct OutboundLeg {
    agent: Id,
    answered: bool,
    /// When it was dialed: one whose hangup was lost (the socket was down) is forgotten
    /// after [`OUTBOUND_FORGET`] once the table is full.
    since: Timestamp,
}

/// How old an outbound call must be to be forgotten when [`MAX_OUTBOUND`] are followed.
const OUTBOUND_FORGET: crate::time::Millis = 12 * 3_600_000;

/// Phone users remembered at most (from the agent list's `contact` column).
pub const MAX_USERS: usize = 10_000;
/// Outbound calls (a-legs) and their far legs followed at once at most; past it calls
/// dialed over 12 h ago are forgotten, and if none is, a new call is not followed.
pub const MAX_OUTBOUND: usize = 10_000;

/// The phone user of an agent's `contact` (`user/1000@default`, with `{..}`/`[..]`/`<..>`
/// variables in front, or `sofia/internal/sip:1000@10.0.0.7`): `1000`. `None` for contacts
/// that name no user of this switch (`sofia/gateway/...`, `loopback/...`).
pub fn contact_user(contact: &str) -> Option<&str> {
    let mut c = contact.trim();
    while let Some(open @ ('{' | '[' | '<')) = c.chars().next() {
        let close = match open {
            '{' => '}',
            '[' => ']',
            _ => '>',
        };
        c = &c[c.find(close)? + 1..];
    }
    if let Some(rest) = c.strip_prefix("user/") {
        return user_part(rest);
    }
    channel_user(c)
}

/// The user of a sofia channel name (`sofia/internal/1000@10.0.0.5`,
/// `sofia/internal/sip:1000@10.0.0.7:5060`): `1000`; `None` for gateways and other
/// endpoints.
pub fn channel_user(channel: &str) -> Option<&str> {
    let mut parts = channel.splitn(3, '/');
    let (tech, profile, rest) = (parts.next()?, parts.next()?, parts.next()?);
    if tech != "sofia" || profile == "gateway" {
        return None;
    }
    let rest = rest
        .strip_prefix("sip:")
        .or_else(|| rest.strip_prefix("sips:"))
        .unwrap_or(rest);
    user_part(rest)
}

fn user_part(s: &str) -> Option<&str> {
    let user = s.split(['@', ';', ':']).next()?;
    (!user.is_empty()).then_some(user)
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
    /// Phone user → agent, from the agent list's `contact` column.
    users: BTreeMap<String, Id>,
    /// Outbound calls in progress by the agent channel's `Unique-ID`.
    outbound: BTreeMap<Id, OutboundLeg>,
    /// The far legs of those calls: far leg `Unique-ID` → agent channel's.
    far_legs: BTreeMap<Id, Id>,
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
            users: BTreeMap::new(),
            outbound: BTreeMap::new(),
            far_legs: BTreeMap::new(),
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
        let contact = col("contact");
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
            if let Some(user) = contact
                .and_then(|c| cells.get(c))
                .and_then(|c| contact_user(c))
            {
                if self.users.len() < MAX_USERS || self.users.contains_key(user) {
                    self.users.insert(user.to_string(), agent.clone());
                }
            }
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
        let ts = field(event, "Event-Date-Timestamp")
            .and_then(|v| v.parse::<i64>().ok())
            .map(|us| Timestamp(us / 1000))
            .filter(|t| crate::time::ts_in_range(*t))
            .unwrap_or(received);
        if let Some(name @ ("CHANNEL_OUTGOING" | "CHANNEL_ANSWER" | "CHANNEL_HANGUP_COMPLETE")) =
            field(event, "Event-Name")
        {
            if let Some(body) = self.channel_event(name, event, ts) {
                out.push(at(ts, body));
            }
            return out;
        }
        if field(event, "Event-Subclass") != Some("callcenter::info") {
            return out;
        }
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
                let a = self.agents.entry(agent.clone()).or_default();
                a.last_call = Some(call.clone());
                a.on_queue_call = true;
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
                if let Some(a) = self.agents.get_mut(&agent) {
                    a.on_queue_call = false;
                }
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

    /// The agent whose phone is the user of `channel` (a sofia channel name): by the agent
    /// list's contacts, else an agent whose id is that user (`agent_id = "before-at"` with
    /// agents named after their extension).
    fn agent_of_channel(&self, channel: &str) -> Option<Id> {
        let user = channel_user(channel)?;
        if let Some(a) = self.users.get(user) {
            return Some(a.clone());
        }
        let id = valid_id(user)?;
        self.agents.contains_key(&id).then_some(id)
    }

    /// An agent's outbound call from the channel events: `CHANNEL_OUTGOING` of a leg the
    /// agent's phone channel originates (`Other-Type: originator`) is `call.dialing` (once
    /// per agent channel, however many legs it dials), unless it goes to another agent's
    /// phone or the agent is on a queue call; `CHANNEL_ANSWER` of such a leg is
    /// `call.answered`; `CHANNEL_HANGUP_COMPLETE` of the agent's channel is `call.ended`.
    /// The call id is the agent channel's `Unique-ID`.
    fn channel_event(
        &mut self,
        name: &str,
        event: &Map<String, Value>,
        ts: Timestamp,
    ) -> Option<Body> {
        let uuid = ident(event, "Unique-ID")?;
        match name {
            "CHANNEL_OUTGOING" => {
                if field(event, "Other-Type") != Some("originator") {
                    return None;
                }
                let a_leg = ident(event, "Other-Leg-Unique-ID")?;
                let agent = self.agent_of_channel(field(event, "Other-Leg-Channel-Name")?)?;
                let to_agent = field(event, "Channel-Name")
                    .and_then(|c| self.agent_of_channel(c))
                    .or_else(|| {
                        let dialed = user_part(field(event, "Caller-Destination-Number")?)?;
                        self.users.get(dialed).cloned()
                    })
                    .is_some();
                let busy = self.agents.get(&agent).is_some_and(|a| a.on_queue_call);
                if to_agent || busy {
                    return None;
                }
                if self.far_legs.len() >= MAX_OUTBOUND || self.outbound.len() >= MAX_OUTBOUND {
                    let old = ts.plus(-OUTBOUND_FORGET);
                    self.outbound.retain(|_, o| o.since > old);
                    let outbound = &self.outbound;
                    self.far_legs.retain(|_, a| outbound.contains_key(a));
                }
                if self.far_legs.len() >= MAX_OUTBOUND {
                    return None;
                }
                let new = !self.outbound.contains_key(&a_leg);
                if new && self.outbound.len() >= MAX_OUTBOUND {
                    return None;
                }
                self.far_legs.insert(uuid, a_leg.clone());
                if !new {
                    return None;
                }
                self.outbound.insert(
                    a_leg.clone(),
                    OutboundLeg {
                        agent: agent.clone(),
                        answered: false,
                        since: ts,
                    },
                );
                Some(Body::CallDialing {
                    call: a_leg,
                    agent,
                    queue: None,
                })
            }
            "CHANNEL_ANSWER" => {
                let a_leg = self.far_legs.get(&uuid)?;
                let o = self.outbound.get_mut(a_leg)?;
                if o.answered {
                    return None;
                }
                o.answered = true;
                Some(Body::CallAnswered {
                    call: a_leg.clone(),
                    agent: o.agent.clone(),
                })
            }
            _ => {
                if self.far_legs.remove(&uuid).is_some() {
                    return None;
                }
                let o = self.outbound.remove(&uuid)?;
                self.far_legs.retain(|_, a| *a != uuid);
                if let Some(a) = self.agents.get_mut(&o.agent) {
                    a.last_call = Some(uuid.clone());
                }
                Some(Body::CallEnded {
                    call: uuid,
                    agent: Some(o.agent),
                })
            }
        }
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
mod tests;
