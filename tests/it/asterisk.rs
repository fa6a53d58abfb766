//! The Asterisk mappers end to end: the AMI transcript and the queue_log file of
//! `tests/fixtures/asterisk/` through their mappers into an engine give the same violations
//! as the hand-written protocol stream of the same story (`story.ndjson`).

use std::collections::BTreeSet;

use floorwatch::adapter::ami::{parse_transcript, AmiMapper};
use floorwatch::adapter::queue_log::map_text;
use floorwatch::config::{AmiAgentId, AmiSettings, MemberNames, RulesConfig};
use floorwatch::engine::Engine;
use floorwatch::event::Event;
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
