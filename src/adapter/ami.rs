//! Asterisk Manager Interface (AMI): the message parser and the pure mapper from app_queue's
//! manager events to protocol events.
//!
//! Owns: splitting AMI text into [`AmiMessage`]s and the per-member state needed to map
//! them ([`AmiMapper`]). Must not: do I/O, read the clock (the receive time is an argument)
//! or apply rules. The TCP client, login and reconnect are not part of this module.
//!
//! Field names follow the `<managerEvent>` documentation in Asterisk's `apps/app_queue.c`.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{AmiAgentId, AmiSettings};
use crate::event::{
    Body, Event, Id, PresenceState, SnapshotAgent, SnapshotCall, SnapshotCallState,
};
use crate::time::Timestamp;

/// One AMI message: its `Key: Value` headers in arrival order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AmiMessage {
    pub headers: Vec<(String, String)>,
}

impl AmiMessage {
    /// The value of the first header named `key` (ASCII case-insensitive).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// The `Event:` name, for an event message.
    pub fn event(&self) -> Option<&str> {
        self.get("Event")
    }

    /// The `Response:` value, for a reply to an action.
    pub fn response(&self) -> Option<&str> {
        self.get("Response")
    }
}

/// Splits an AMI byte stream into messages. Feed it text as it arrives, in any chunks;
/// lines end with `\r\n` or `\n` and a blank line ends a message. Lines without a colon
/// (the `Asterisk Call Manager/x.y` greeting) are skipped.
#[derive(Debug, Default)]
pub struct AmiParser {
    partial: String,
    current: AmiMessage,
}

impl AmiParser {
    pub fn new() -> AmiParser {
        AmiParser::default()
    }

    /// Adds `text`; returns the messages it completed.
    pub fn push(&mut self, text: &str) -> Vec<AmiMessage> {
        self.partial.push_str(text);
        let mut out = Vec::new();
        while let Some(nl) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=nl).collect();
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.current.headers.is_empty() {
                    out.push(std::mem::take(&mut self.current));
                }
                continue;
            }
            if let Some((k, v)) = line.split_once(':') {
                self.current
                    .headers
                    .push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        out
    }
}

/// Parses a whole transcript (a final message without a trailing blank line is kept).
pub fn parse_transcript(text: &str) -> Vec<AmiMessage> {
    let mut p = AmiParser::new();
    let mut out = p.push(text);
    out.extend(p.push("\n\n"));
    out
}

/// The reason app_queue writes when it pauses a member itself.
pub const AUTO_PAUSE: &str = "Auto-Pause";

/// Queue membership and pause state of every member, shared by the AMI and `queue_log`
/// mappers. An agent is logged in while it is a member of any queue, and `not_ready` while
/// it is paused in every queue it is a member of (a member paused in one queue still gets
/// calls from the others).
#[derive(Debug, Default)]
pub struct Roster {
    members: BTreeMap<Id, Member>,
}

#[derive(Debug, Default)]
struct Member {
    /// Queue → paused with reason (`None`: not paused).
    queues: BTreeMap<Id, Option<Id>>,
    /// The presence last reported, to report only changes.
    shown: Option<(PresenceState, Id)>,
    last_call: Option<Id>,
}

impl Roster {
    fn presence(m: &Member, s: &AmiSettings) -> (PresenceState, Id) {
        let mut reason = None;
        for p in m.queues.values() {
            match p {
                None => return (PresenceState::Ready, Id::default()),
                Some(r) => reason = Some(r.clone()),
            }
        }
        let r = reason.unwrap_or_default();
        if s.acw_reasons.iter().any(|a| a.as_str() == r.as_str()) {
            (PresenceState::Acw, Id::default())
        } else if r == AUTO_PAUSE {
            (
                PresenceState::NotReady,
                Id::from(s.auto_pause_reason.as_str()),
            )
        } else {
            (PresenceState::NotReady, r)
        }
    }

    /// `agent` joined `queue`, paused with `paused` (reason) or not.
    pub fn add(
        &mut self,
        s: &AmiSettings,
        agent: &str,
        queue: &str,
        paused: Option<Id>,
    ) -> Option<Body> {
        let m = self.members.entry(Id::from(agent)).or_default();
        let was_in = !m.queues.is_empty();
        m.queues.insert(Id::from(queue), paused);
        let now = Roster::presence(m, s);
        if !was_in {
            m.shown = Some(now.clone());
            return Some(Body::AgentLogin {
                agent: Id::from(agent),
                team: None,
                name: None,
                extension: None,
                state: (now.0 != PresenceState::Ready).then_some(now.0),
                reason: now.1,
            });
        }
        self.show(s, agent)
    }

    /// `agent` left `queue` (or every queue with `None`).
    pub fn remove(&mut self, s: &AmiSettings, agent: &str, queue: Option<&str>) -> Option<Body> {
        let m = self.members.get_mut(agent)?;
        if m.queues.is_empty() {
            return None;
        }
        match queue {
            Some(q) => {
                m.queues.remove(q);
            }
            None => m.queues.clear(),
        }
        if m.queues.is_empty() {
            m.shown = None;
            return Some(Body::AgentLogout {
                agent: Id::from(agent),
            });
        }
        self.show(s, agent)
    }

    /// Pause (`Some(reason)`, empty for none) or unpause (`None`) `agent` in `queue`, or in
    /// every queue it is in with `queue = None`. A queue not known yet is joined (static
    /// members announce themselves no other way). Returns the presence change, if any: an
    /// echo of the current state gives nothing.
    pub fn pause(
        &mut self,
        s: &AmiSettings,
        agent: &str,
        queue: Option<&str>,
        paused: Option<Id>,
    ) -> Option<Body> {
        let m = self.members.entry(Id::from(agent)).or_default();
        match queue {
            Some(q) => {
                m.queues.insert(Id::from(q), paused);
            }
            None if m.queues.is_empty() => {
                m.queues.insert(Id::from("*"), paused);
            }
            None => m.queues.values_mut().for_each(|p| *p = paused.clone()),
        }
        self.show(s, agent)
    }

    /// Remembers the call `agent` last finished, for the `call` of a following `acw`.
    pub fn call_ended(&mut self, agent: &str, call: &str) {
        if let Some(m) = self.members.get_mut(agent) {
            m.last_call = Some(Id::from(call));
        }
    }

    fn show(&mut self, s: &AmiSettings, agent: &str) -> Option<Body> {
        let m = self.members.get_mut(agent)?;
        let now = Roster::presence(m, s);
        if m.shown.as_ref() == Some(&now) {
            return None;
        }
        m.shown = Some(now.clone());
        Some(Body::AgentState {
            agent: Id::from(agent),
            state: now.0,
            call: if now.0 == PresenceState::Acw {
                m.last_call.clone()
            } else {
                None
            },
            reason: now.1,
            team: None,
        })
    }
}

/// Whether an agent or device looks like an interface (`Tech/resource`: `PJSIP/801`,
/// `Local/agent1@agents/n`) rather than a member name. Shared with the `queue_log` adapter,
/// which stands on this one.
pub fn looks_like_interface(agent: &str) -> bool {
    agent.split_once('/').is_some_and(|(tech, resource)| {
        !tech.is_empty() && tech.bytes().all(|b| b.is_ascii_alphanumeric()) && !resource.is_empty()
    })
}

/// Parses `Timestamp:` (epoch seconds with a fraction, `1764321317.123456`) to milliseconds.
pub fn parse_epoch(s: &str) -> Option<Timestamp> {
    let (secs, frac) = s.trim().split_once('.').unwrap_or((s.trim(), ""));
    let secs: i64 = secs.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ms: i64 = format!("{:0<3}", &frac[..frac.len().min(3)]).parse().ok()?;
    let t = Timestamp(secs.checked_mul(1000)?.checked_add(ms)?);
    // Outside the protocol's range an event could not be read back from the journal.
    crate::time::ts_in_range(t).then_some(t)
}

#[cfg(test)]
mod epoch_tests {
    use super::*;

    #[test]
    fn epochs_past_year_9999_are_not_times() {
        // Found by the adapters fuzz target: a queue_log line stamped 1795829240719 (ms
        // written as seconds) became a call.abandoned whose ts no decoder accepts.
        assert_eq!(parse_epoch("1795829240719"), None);
        assert_eq!(parse_epoch("253402207200"), Some(crate::time::TS_MAX));
        assert_eq!(parse_epoch("253402207200.001"), None);
        assert_eq!(
            parse_epoch("1764321317.123456"),
            Some(Timestamp(1_764_321_317_123))
        );
        assert!(
            crate::adapter::queue_log::parse_line("1795829240719|c|q|NONE|ABANDON|1|1|1", 1)
                .is_err()
        );
    }
}

/// Maps app_queue's manager events to protocol events.
///
/// The call id is the caller channel's `Uniqueid` (the un-prefixed channel snapshot of the
/// queue events, not the `Dest…` agent channel), not its `Linkedid`: app_queue writes that
/// same id in the call-id column of `queue_log`, so both adapters name a call alike, and it
/// is one id per queue call, where `Linkedid` is shared by every channel a transfer or a
/// consultation links to the call.
#[derive(Debug, Default)]
pub struct AmiMapper {
    settings: AmiSettings,
    roster: Roster,
    /// Rings announced by `AgentCalled`: (call, agent).
    rings: BTreeSet<(Id, Id)>,
    /// Answered calls not yet completed: call → agent.
    talking: BTreeMap<Id, (Id, Timestamp)>,
    status: Option<StatusAnswer>,
    disagreement: Option<Disagreement>,
    disagreement_told: bool,
    /// A member's device (`PJSIP/801`: its interface or state interface, never a `Local`
    /// channel) → its agent id, to know whose phone places an outbound call. At most
    /// [`MAX_DEVICES`]; kept when the member leaves its queues (it may still dial).
    devices: BTreeMap<String, Id>,
    /// Outbound calls in progress: the agent channel's `Uniqueid` → agent and whether the
    /// far end answered. At most [`MAX_OUTBOUND`]: past it a new call is not followed.
    outbound: BTreeMap<Id, Outbound>,
}

/// Devices remembered at most.
pub const MAX_DEVICES: usize = 10_000;
/// Outbound calls followed at once at most.
pub const MAX_OUTBOUND: usize = 10_000;

#[derive(Debug)]
struct Outbound {
    agent: Id,
    answered: bool,
}

/// The device of a channel name (`PJSIP/801-0000002a` → `PJSIP/801`); `None` for `Local`
/// channels (a queue's own dialing through the dialplan) and names that are no channel.
pub fn device_of(channel: &str) -> Option<&str> {
    if channel.starts_with("Local/") {
        return None;
    }
    let (device, _) = channel.rsplit_once('-')?;
    looks_like_interface(device).then_some(device)
}

/// A member whose two names in AMI disagree with the `members` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disagreement {
    pub interface: String,
    /// The `MemberName` Asterisk gives it.
    pub name: String,
    /// What the `members` table says instead (a name, or with `agent_id = "interface"` an
    /// interface).
    pub table: String,
}

impl std::fmt::Display for Disagreement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the members table disagrees with Asterisk: member {:?} has interface {:?}, the table says {:?}; a queue_log source with this table names that agent otherwise",
            self.name, self.interface, self.table
        )
    }
}

/// One `QueueMember` line of a `QueueStatus` answer: queue, pause (reason), since, in call.
type StatusMember = (Id, Option<Id>, Timestamp, bool);

/// A `QueueStatus` answer being collected.
#[derive(Debug, Default)]
struct StatusAnswer {
    members: BTreeMap<Id, Vec<StatusMember>>,
    calls: Vec<SnapshotCall>,
}

impl AmiMapper {
    pub fn new(settings: AmiSettings) -> AmiMapper {
        let mut m = AmiMapper {
            settings,
            ..AmiMapper::default()
        };
        let known: Vec<(String, Id)> = m
            .settings
            .members
            .iter()
            .filter(|(i, _)| !i.starts_with("Local/"))
            .map(|(i, _)| (i.to_string(), Id::from(m.settings.agent(i))))
            .collect();
        for (device, agent) in known {
            m.learn_device(&device, &agent);
        }
        m
    }

    fn learn_device(&mut self, device: &str, agent: &Id) {
        if device.starts_with("Local/") || !looks_like_interface(device) {
            return;
        }
        if self.devices.len() < MAX_DEVICES || self.devices.contains_key(device) {
            self.devices.insert(device.to_string(), agent.clone());
        }
    }

    /// Learns the devices of a member event (`Interface`/`Location` and `StateInterface`).
    fn learn_devices_of(&mut self, msg: &AmiMessage, agent: &Id) {
        for k in ["Interface", "Location", "StateInterface"] {
            if let Some(d) = msg.get(k) {
                self.learn_device(d, agent);
            }
        }
    }

    /// `DialBegin` from a channel of an agent's device: an outbound call, unless it dials
    /// another agent's device (an internal call) or the agent is on a queue call (a
    /// consultation or transfer). One call per agent channel (`Uniqueid`), however many
    /// destinations it dials.
    fn outbound_dialed(&mut self, msg: &AmiMessage) -> Option<(Id, Id)> {
        // Absent for the first leg of an `Originate` (Asterisk ringing the agent's phone).
        let device = device_of(msg.get("Channel")?)?;
        let agent = self.devices.get(device)?.clone();
        if msg
            .get("DestChannel")
            .and_then(device_of)
            .is_some_and(|d| self.devices.contains_key(d))
        {
            return None;
        }
        if self.talking.values().any(|(a, _)| *a == agent) {
            return None;
        }
        let call = msg.get("Uniqueid").and_then(ident)?;
        if self.outbound.contains_key(&call) || self.outbound.len() >= MAX_OUTBOUND {
            return None;
        }
        self.outbound.insert(
            call.clone(),
            Outbound {
                agent: agent.clone(),
                answered: false,
            },
        );
        Some((call, agent))
    }

    /// The `Action:` to send after (re)connecting; its answer becomes one `snapshot`.
    pub const QUEUE_STATUS_ACTION: &'static str = "Action: QueueStatus\r\n\r\n";

    /// The connection is gone: a `QueueStatus` answer cut short is dropped (the next
    /// connection asks again). Members, rings and calls are kept until that answer.
    pub fn connection_lost(&mut self) {
        self.status = None;
    }

    /// Maps one message received at `received`. The event time is the `Timestamp` header
    /// (sent with `timestampevents = yes` in manager.conf) when present, else `received`.
    /// Messages that mean nothing to the floor give no events.
    pub fn handle(&mut self, msg: &AmiMessage, received: Timestamp) -> Vec<Event> {
        let ts = msg
            .get("Timestamp")
            .and_then(parse_epoch)
            .unwrap_or(received);
        let mut out = Vec::new();
        let ev = |body| Event {
            ts,
            seq: None,
            id: None,
            body,
        };
        let Some(name) = msg.event() else {
            return out;
        };
        let call = msg.get("Uniqueid").and_then(ident);
        let queue = msg.get("Queue").and_then(ident);
        let agent = self.agent_of(msg);
        let s = &self.settings;
        match name.to_ascii_lowercase().as_str() {
            "queuecallerjoin" => {
                if let (Some(call), Some(queue)) = (call, queue) {
                    out.push(ev(Body::CallQueued { call, queue }));
                }
            }
            "agentcalled" => {
                if let (Some(call), Some(agent)) = (call, agent) {
                    self.rings.insert((call.clone(), agent.clone()));
                    out.push(ev(Body::CallRinging { call, agent, queue }));
                }
            }
            "agentringnoanswer" => {
                if let (Some(call), Some(agent)) = (call, agent) {
                    // RingTime is in milliseconds here (app_queue's rna), unlike
                    // AgentConnect's.
                    let ring = msg.get("RingTime").and_then(|r| r.parse::<i64>().ok());
                    self.ring_start(&call, &agent, &queue, ring, ts, &mut out);
                    out.push(ev(Body::CallNoAnswer { call, agent }));
                }
            }
            "agentconnect" => {
                if let (Some(call), Some(agent)) = (call, agent) {
                    // RingTime is in whole seconds here.
                    let ring = msg
                        .get("RingTime")
                        .and_then(|r| r.parse::<i64>().ok())
                        .map(|r| r * 1000);
                    self.ring_start(&call, &agent, &queue, ring, ts, &mut out);
                    self.rings.retain(|(c, _)| *c != call);
                    self.talking.insert(call.clone(), (agent.clone(), ts));
                    out.push(ev(Body::CallAnswered { call, agent }));
                }
            }
            "queuecallerabandon" => {
                if let Some(call) = call {
                    self.rings.retain(|(c, _)| *c != call);
                    out.push(ev(Body::CallAbandoned { call }));
                }
            }
            "agentcomplete" => {
                if let Some(call) = call {
                    self.talking.remove(&call);
                    if let Some(a) = &agent {
                        self.roster.call_ended(a, &call);
                    }
                    out.push(ev(Body::CallEnded { call, agent }));
                }
            }
            "queuememberpause" => {
                if let Some(agent) = agent {
                    let paused = (msg.get("Paused") == Some("1")).then(|| reason_of(msg));
                    if let Some(b) = self.roster.pause(s, &agent, queue.as_deref(), paused) {
                        out.push(ev(b));
                    }
                }
            }
            "dialbegin" => {
                if let Some((call, agent)) = self.outbound_dialed(msg) {
                    out.push(ev(Body::CallDialing {
                        call,
                        agent,
                        queue: None,
                    }));
                }
            }
            "dialend" if msg.get("DialStatus") == Some("ANSWER") => {
                if let Some((call, o)) = call.and_then(|c| {
                    let o = self.outbound.get_mut(&c)?;
                    Some((c, o))
                }) {
                    if !o.answered {
                        o.answered = true;
                        out.push(ev(Body::CallAnswered {
                            call,
                            agent: o.agent.clone(),
                        }));
                    }
                }
            }
            "hangup" => {
                if let Some((call, o)) = call.and_then(|c| self.outbound.remove_entry(&c)) {
                    self.roster.call_ended(&o.agent, &call);
                    out.push(ev(Body::CallEnded {
                        call,
                        agent: Some(o.agent),
                    }));
                }
            }
            "queuememberadded" => {
                if let Some(a) = &agent {
                    self.learn_devices_of(msg, a);
                }
                if let (Some(agent), Some(queue)) = (agent, queue) {
                    let paused = (msg.get("Paused") == Some("1")).then(|| reason_of(msg));
                    if let Some(b) = self.roster.add(&self.settings, &agent, &queue, paused) {
                        out.push(ev(b));
                    }
                }
            }
            "queuememberremoved" => {
                if let (Some(agent), Some(queue)) = (agent, queue) {
                    if let Some(b) = self.roster.remove(s, &agent, Some(&queue)) {
                        out.push(ev(b));
                    }
                }
            }
            "queueparams" => {
                self.status.get_or_insert_with(StatusAnswer::default);
            }
            "queuemember" => {
                if let Some(a) = &agent {
                    self.learn_devices_of(msg, a);
                }
                let st = self.status.get_or_insert_with(StatusAnswer::default);
                if let (Some(agent), Some(queue)) = (agent, queue) {
                    let paused = (msg.get("Paused") == Some("1")).then(|| reason_of(msg));
                    let epoch = |k: &str| {
                        msg.get(k)
                            .and_then(|v| v.parse::<i64>().ok())
                            .filter(|&v| v > 0)
                            .map(|v| Timestamp(v * 1000))
                    };
                    let since = if paused.is_some() {
                        epoch("LastPause")
                    } else {
                        None
                    }
                    .or_else(|| epoch("LoginTime"))
                    .unwrap_or(ts);
                    let in_call = msg.get("InCall") == Some("1");
                    st.members
                        .entry(agent)
                        .or_default()
                        .push((queue, paused, since, in_call));
                }
            }
            "queueentry" => {
                let st = self.status.get_or_insert_with(StatusAnswer::default);
                if let Some(call) = call {
                    let wait = msg
                        .get("Wait")
                        .and_then(|w| w.parse::<i64>().ok())
                        .unwrap_or(0);
                    st.calls.push(SnapshotCall {
                        call,
                        queue,
                        state: SnapshotCallState::Queued,
                        agent: None,
                        since: ts.plus(-wait * 1000),
                    });
                }
            }
            "queuestatuscomplete" => {
                let st = self.status.take().unwrap_or_default();
                out.push(ev(self.snapshot(st)));
            }
            _ => {}
        }
        out
    }

    /// A ring the mapper did not see start (`AgentCalled` lost, or before a reconnect)
    /// is started `ring_ms` before `ts`. The engine applies it at its clock if that is
    /// later.
    fn ring_start(
        &mut self,
        call: &Id,
        agent: &Id,
        queue: &Option<Id>,
        ring_ms: Option<i64>,
        ts: Timestamp,
        out: &mut Vec<Event>,
    ) {
        if self.rings.remove(&(call.clone(), agent.clone())) {
            return;
        }
        if let Some(ms) = ring_ms {
            out.push(Event {
                ts: ts.plus(-ms),
                seq: None,
                id: None,
                body: Body::CallRinging {
                    call: call.clone(),
                    agent: agent.clone(),
                    queue: queue.clone(),
                },
            });
        }
    }

    fn snapshot(&mut self, st: StatusAnswer) -> Body {
        let s = &self.settings;
        self.roster = Roster::default();
        let mut agents = Vec::new();
        let mut busy = BTreeSet::new();
        for (agent, queues) in st.members {
            let mut since = Timestamp(i64::MIN);
            for (q, paused, t, in_call) in queues {
                since = since.max(t);
                if in_call {
                    busy.insert(agent.clone());
                }
                self.roster.add(s, &agent, &q, paused);
            }
            let m = &self.roster.members[&agent];
            let (presence, reason) = Roster::presence(m, s);
            agents.push(SnapshotAgent {
                agent,
                team: None,
                presence,
                reason,
                since,
            });
        }
        self.talking.retain(|_, (a, _)| busy.contains(a));
        self.rings.clear();
        // Outbound calls are not in the answer: the snapshot ends them on the floor, and
        // their hangups, if still to come, mean nothing more.
        self.outbound.clear();
        let mut calls = st.calls;
        for (call, (agent, since)) in &self.talking {
            calls.push(SnapshotCall {
                call: call.clone(),
                queue: None,
                state: SnapshotCallState::Talking,
                agent: Some(agent.clone()),
                since: *since,
            });
        }
        Body::Snapshot { agents, calls }
    }

    /// The member's agent id: the header `agent_id` picks (`MemberName`, or `Interface`;
    /// `Name` and `Location` in a `QueueStatus` answer), else the other one through the
    /// `members` table, as the `queue_log` mapper names it. A member whose two names
    /// disagree with the table is remembered for [`AmiMapper::take_disagreement`].
    fn agent_of(&mut self, msg: &AmiMessage) -> Option<Id> {
        const NAME: [&str; 2] = ["MemberName", "Name"];
        const INTERFACE: [&str; 2] = ["Interface", "Location"];
        let field = |keys: [&str; 2]| {
            keys.iter()
                .find_map(|k| msg.get(k))
                .filter(|v| !v.is_empty())
        };
        let (name, interface) = (field(NAME), field(INTERFACE));
        let (own, other) = match self.settings.agent_id {
            AmiAgentId::MemberName => (name, interface),
            AmiAgentId::Interface => (interface, name),
        };
        if let (Some(n), Some(i)) = (name, interface) {
            let table = &self.settings.members;
            let clash = match self.settings.agent_id {
                AmiAgentId::MemberName => table.name_of(i).filter(|t| *t != n),
                AmiAgentId::Interface => table.interface_of(n).filter(|t| *t != i),
            };
            if let (Some(t), None) = (clash, &self.disagreement) {
                self.disagreement = Some(Disagreement {
                    interface: i.to_string(),
                    name: n.to_string(),
                    table: t.to_string(),
                });
            }
        }
        match own {
            Some(v) => ident(v),
            None => other.map(|o| self.settings.agent(o)).and_then(ident),
        }
    }

    /// The first member whose `MemberName` and `Interface` the `members` table names
    /// otherwise, once: the `queue_log` of the same PBX would name that agent another way.
    pub fn take_disagreement(&mut self) -> Option<Disagreement> {
        if self.disagreement_told {
            return None;
        }
        let d = self.disagreement.clone()?;
        self.disagreement_told = true;
        Some(d)
    }
}

fn ident(v: &str) -> Option<Id> {
    super::protocol_id(v)
}

fn reason_of(msg: &AmiMessage) -> Id {
    super::protocol_reason(msg.get("PausedReason").unwrap_or(""))
}

#[cfg(test)]
mod tests;

pub mod client;
