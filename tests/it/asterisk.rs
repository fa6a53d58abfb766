//! The Asterisk mappers end to end: the AMI transcript and the queue_log file of
//! `tests/fixtures/asterisk/` through their mappers into an engine give the same violations
//! as the hand-written protocol stream of the same story (`story.ndjson`).

use std::collections::BTreeSet;

use floorwatch::adapter::ami::{parse_transcript, AmiMapper};
use floorwatch::adapter::queue_log::map_text;
use floorwatch::config::{AmiAgentId, AmiSettings, MemberNames, RulesConfig};
use floorwatch::engine::{Effect, Engine};
use floorwatch::event::{Body, Event};
use floorwatch::time::Timestamp;

use crate::daemon_support::{decode_lines, engine_violations, fixture_text, Found};

fn story() -> Found {
    let found = engine_violations(&decode_lines(&fixture_text("asterisk", "story.ndjson")));
    let kinds: BTreeSet<_> = found.iter().map(|v| (v.1.as_str(), v.2.as_str())).collect();
    // The story's point: a late answer (18 s > 15 s) and a pause without a reason.
    assert!(kinds.contains(&("late", "wang.fang")), "{found:?}");
    assert!(kinds.contains(&("no_reason", "wang.fang")), "{found:?}");
    assert!(kinds.contains(&("missed", "li.na")), "{found:?}");
    found
}

#[test]
fn ami_transcript_gives_the_violations_of_the_protocol_story() {
    let mut mapper = AmiMapper::new(AmiSettings::default());
    // Receive time far off: every event must take its time from the Timestamp header.
    let events: Vec<Event> = parse_transcript(&fixture_text("asterisk", "ami.txt"))
        .iter()
        .flat_map(|m| mapper.handle(m, Timestamp(0)))
        .collect();
    assert_eq!(engine_violations(&events), story());
}

#[test]
fn queue_log_gives_the_violations_of_the_protocol_story() {
    let text: String = fixture_text("asterisk", "queue_log")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let (events, stats) = map_text(&text, AmiSettings::default(), 60_000).expect("queue_log");
    assert_eq!(stats.unknown, 1, "CONFIGRELOAD is skipped and counted");
    assert!(events
        .windows(2)
        .all(|w| w[0].ts <= w[1].ts && w[0].seq < w[1].seq));
    assert_eq!(engine_violations(&events), story());
}

/// Privacy: the caller numbers of the fixtures (`CallerIDNum` in AMI, the caller-id field of
/// `ENTERQUEUE` in queue_log) are in no mapped event, as the journal stores them.
#[test]
fn caller_numbers_of_the_asterisk_fixtures_are_in_no_event() {
    const NUMBER: &str = "13800138000";
    let ami = fixture_text("asterisk", "ami.txt");
    let queue_log = fixture_text("asterisk", "queue_log");
    assert!(ami.contains(NUMBER) && queue_log.contains(NUMBER));
    let mut mapper = AmiMapper::new(AmiSettings::default());
    let mut events: Vec<Event> = parse_transcript(&ami)
        .iter()
        .flat_map(|m| mapper.handle(m, Timestamp(0)))
        .collect();
    let text: String = queue_log
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let (mapped, _) = map_text(&text, AmiSettings::default(), 60_000).expect("queue_log");
    assert!(!events.is_empty() && !mapped.is_empty());
    events.extend(mapped);
    for e in &events {
        let json = e.to_json();
        assert!(!json.contains(NUMBER), "{json}");
    }
}

/// A fixture's `queue_log` lines without its comments.
fn queue_log_lines(name: &str) -> String {
    fixture_text("asterisk", name)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Interface → member name, as Asterisk tells it in the AMI transcript's
/// `QueueMemberAdded` events (both names of each member).
fn members_from_ami() -> MemberNames {
    let mut pairs = BTreeSet::new();
    for m in parse_transcript(&fixture_text("asterisk", "ami.txt")) {
        if m.event() == Some("QueueMemberAdded") {
            let i = m.get("Interface").expect("Interface").to_string();
            let n = m.get("MemberName").expect("MemberName").to_string();
            pairs.insert((i, n));
        }
    }
    assert_eq!(pairs.len(), 2, "{pairs:?}");
    pairs
        .iter()
        .map(|(i, n)| (i.as_str(), n.as_str()))
        .collect()
}

fn settings(agent_id: AmiAgentId, members: MemberNames) -> AmiSettings {
    AmiSettings {
        agent_id,
        members,
        ..AmiSettings::default()
    }
}

/// The logged-in agents after each applied event whose time is `at`.
fn logged_in_at(events: &[Event], at: Timestamp) -> Vec<String> {
    let mut engine = Engine::new(RulesConfig::default());
    let mut out = Vec::new();
    for e in events.iter().filter(|e| e.ts <= at) {
        engine.handle_event("pbx", e, &mut out);
    }
    engine
        .agent_views()
        .into_iter()
        .filter(|a| a.logged_in)
        .map(|a| a.agent.to_string())
        .collect()
}

/// Epoch seconds of the fixture's last call line and of its REMOVEMEMBER lines.
const BEFORE_REMOVE: Timestamp = Timestamp(1_795_829_500_000);
const REMOVED: Timestamp = Timestamp(1_795_830_000_000);

#[test]
fn default_queue_log_with_members_holds_exactly_the_people() {
    let text = queue_log_lines("queue_log.default");
    let (events, stats) = map_text(
        &text,
        settings(AmiAgentId::MemberName, members_from_ami()),
        60_000,
    )
    .expect("queue_log");
    assert_eq!(stats.split_names, None);
    assert_eq!(logged_in_at(&events, BEFORE_REMOVE), ["li.na", "wang.fang"]);
    // REMOVEMEMBER (by interface) logs the person out.
    assert!(logged_in_at(&events, REMOVED).is_empty());
    assert_eq!(engine_violations(&events), story());
    // The very events of the same story written with names everywhere
    // (log_membername_as_agent = yes), but for their seq.
    let (named, _) = map_text(
        &queue_log_lines("queue_log"),
        AmiSettings::default(),
        60_000,
    )
    .expect("named");
    let strip = |evs: &[Event]| -> Vec<(Timestamp, String)> {
        evs.iter()
            .map(|e| (e.ts, format!("{:?}", e.body)))
            .collect()
    };
    assert_eq!(strip(&events), strip(&named));
}

#[test]
fn default_queue_log_without_members_doubles_the_floor_and_says_so() {
    let text = queue_log_lines("queue_log.default");
    let (events, stats) = map_text(&text, AmiSettings::default(), 60_000).expect("queue_log");
    // Two people, four agents: the interfaces logged in, the names pausing and talking.
    assert_eq!(
        logged_in_at(&events, BEFORE_REMOVE),
        ["PJSIP/801", "PJSIP/802", "li.na", "wang.fang"]
    );
    // REMOVEMEMBER logs out the interfaces only: the people stay on the floor.
    assert_eq!(logged_in_at(&events, REMOVED), ["li.na", "wang.fang"]);
    let split = stats.split_names.expect("the warning");
    assert_eq!(
        (split.interface.as_str(), split.name.as_str()),
        ("PJSIP/801", "li.na")
    );
    let said = split.to_string();
    assert!(said.contains("log_membername_as_agent = yes"), "{said}");
    assert!(said.contains("members = { \"PJSIP/801\""), "{said}");
}

/// AMI gives both names of a member in every member event; with the same `agent_id` and
/// `members` table it names each agent as the `queue_log` of the same PBX does.
#[test]
fn ami_and_default_queue_log_name_the_agents_alike() {
    for agent_id in [AmiAgentId::MemberName, AmiAgentId::Interface] {
        let s = settings(agent_id, members_from_ami());
        let mut mapper = AmiMapper::new(s.clone());
        let ami: Vec<Event> = parse_transcript(&fixture_text("asterisk", "ami.txt"))
            .iter()
            .flat_map(|m| mapper.handle(m, Timestamp(0)))
            .collect();
        assert_eq!(mapper.take_disagreement(), None);
        let (qlog, _) = map_text(&queue_log_lines("queue_log.default"), s, 60_000).expect("map");
        let want: &[&str] = match agent_id {
            AmiAgentId::MemberName => &["li.na", "wang.fang"],
            AmiAgentId::Interface => &["PJSIP/801", "PJSIP/802"],
        };
        assert_eq!(logged_in_at(&ami, BEFORE_REMOVE), want, "{agent_id:?}");
        assert_eq!(logged_in_at(&qlog, BEFORE_REMOVE), want, "{agent_id:?}");
        assert_eq!(
            engine_violations(&ami),
            engine_violations(&qlog),
            "{agent_id:?}"
        );
    }
}

/// A `members` table that names a member otherwise than Asterisk does is told once.
#[test]
fn ami_tells_once_when_the_members_table_disagrees() {
    let members: MemberNames = [("PJSIP/801", "Alice"), ("PJSIP/802", "wang.fang")]
        .into_iter()
        .collect();
    let mut mapper = AmiMapper::new(settings(AmiAgentId::MemberName, members));
    let mut told = Vec::new();
    for m in parse_transcript(&fixture_text("asterisk", "ami.txt")) {
        mapper.handle(&m, Timestamp(0));
        told.extend(mapper.take_disagreement());
    }
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(
        (
            told[0].interface.as_str(),
            told[0].name.as_str(),
            told[0].table.as_str()
        ),
        ("PJSIP/801", "li.na", "Alice")
    );
}

/// An agent's outbound calls in AMI (`DialBegin`, `DialEnd`, `Hangup` from the agent's
/// channel, class `call`): each becomes `call.dialing`, `call.answered` when the far end
/// answers, and `call.ended`; internal calls, the queue's own dialing and a consultation
/// during a queue call are not outbound.
#[test]
fn ami_outbound_calls_of_agents_are_dialing_answered_and_ended() {
    let text = fixture_text("asterisk", "ami-outbound.txt");
    let mut mapper = AmiMapper::new(AmiSettings::default());
    let events: Vec<Event> = parse_transcript(&text)
        .iter()
        .flat_map(|m| mapper.handle(m, Timestamp(0)))
        .collect();
    let t0 = 1_795_827_600_000;
    let outbound: Vec<(i64, &str, String)> = events
        .iter()
        .filter_map(|e| {
            let json = e.to_json();
            let (call, agent) = match &e.body {
                Body::CallDialing { call, agent, .. } | Body::CallAnswered { call, agent } => {
                    (call, agent.to_string())
                }
                Body::CallEnded { call, agent } => (
                    call,
                    agent.as_ref().map(|a| a.to_string()).unwrap_or_default(),
                ),
                _ => return None,
            };
            assert!(!json.contains("13"), "no dialed number in events: {json}");
            (call != "1795828100.22").then(|| {
                (
                    (e.ts.0 - t0) / 1000,
                    e.body.type_name(),
                    format!("{call} {agent}"),
                )
            })
        })
        .collect();
    // Written from the transcript by hand.
    assert_eq!(
        outbound,
        vec![
            (60, "call.dialing", "1795827660.16 li.na".to_string()),
            (75, "call.answered", "1795827660.16 li.na".to_string()),
            (124, "call.dialing", "1795827720.18 wang.fang".to_string()),
            (155, "call.ended", "1795827720.18 wang.fang".to_string()),
            (300, "call.ended", "1795827660.16 li.na".to_string()),
        ]
    );
    // The queue call is there as before, and nothing else is dialed.
    let queue_call: Vec<&str> = events
        .iter()
        .filter(|e| e.to_json().contains("1795828100.22"))
        .map(|e| e.body.type_name())
        .collect();
    assert_eq!(
        queue_call,
        ["call.queued", "call.ringing", "call.answered", "call.ended"]
    );
    // The engine counts two attempts and one connect; a CRM's disposition makes the sale.
    let mut engine = Engine::new(RulesConfig::default());
    let mut out = Vec::new();
    for e in &events {
        engine.handle_event("pbx", e, &mut out);
    }
    let crm = floorwatch::event::decode_event(
        r#"{"type":"call.disposition","ts":1795827910000,"call":"1795827660.16","agent":"li.na","code":"sale"}"#,
    )
    .expect("event");
    engine.handle_event("crm", &crm, &mut out);
    let changes: Vec<(String, String)> = out
        .iter()
        .filter_map(|e| match e {
            Effect::Outbound { agent, change, .. } => {
                Some((agent.to_string(), format!("{change:?}")))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("li.na".to_string(), "Attempt".to_string()),
            ("li.na".to_string(), "Connected".to_string()),
            ("wang.fang".to_string(), "Attempt".to_string()),
            (
                "li.na".to_string(),
                "Sale { delta: 1, today: true }".to_string()
            ),
        ]
    );
}

/// With `agent_id = "interface"` the outbound calls name the interface; a `members` table
/// lets the adapter know the phone of an agent who is in no queue (a pure outbound agent).
#[test]
fn ami_outbound_agents_by_interface_and_by_the_members_table() {
    let text = fixture_text("asterisk", "ami-outbound.txt");
    let dialing = |settings: AmiSettings, skip_members: bool| -> Vec<String> {
        let mut mapper = AmiMapper::new(settings);
        parse_transcript(&text)
            .iter()
            .filter(|m| !(skip_members && m.event() == Some("QueueMemberAdded")))
            .flat_map(|m| mapper.handle(m, Timestamp(0)))
            .filter_map(|e| match e.body {
                Body::CallDialing { agent, .. } => Some(agent.to_string()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        dialing(
            settings(AmiAgentId::Interface, MemberNames::default()),
            false
        ),
        ["PJSIP/801", "PJSIP/802"]
    );
    // Never a queue member, and no table: whose phone it is is unknown.
    assert!(dialing(AmiSettings::default(), true).is_empty());
    let table: MemberNames = [("PJSIP/801", "li.na"), ("PJSIP/802", "wang.fang")]
        .into_iter()
        .collect();
    assert_eq!(
        dialing(settings(AmiAgentId::MemberName, table), true),
        ["li.na", "wang.fang"]
    );
    // A phone the adapter does not know as an agent's is an outside number: li.na's call
    // to PJSIP/802 counts as an attempt when the table leaves wang.fang out.
    let table: MemberNames = [("PJSIP/801", "li.na")].into_iter().collect();
    assert_eq!(
        dialing(settings(AmiAgentId::MemberName, table), true),
        ["li.na", "li.na"]
    );
}
