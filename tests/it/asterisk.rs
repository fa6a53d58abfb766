//! The Asterisk mappers end to end: the AMI transcript and the queue_log file of
//! `tests/fixtures/asterisk/` through their mappers into an engine give the same violations
//! as the hand-written protocol stream of the same story (`story.ndjson`).

use std::collections::BTreeSet;
use std::path::PathBuf;

use floorwatch::adapter::ami::{parse_transcript, AmiMapper};
use floorwatch::adapter::queue_log::map_text;
use floorwatch::config::AmiSettings;
use floorwatch::config::RulesConfig;
use floorwatch::engine::{Effect, Engine};
use floorwatch::event::{decode_event, Event};
use floorwatch::time::Timestamp;

fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/asterisk")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub(crate) type Found = BTreeSet<(String, String, String, Timestamp)>;

/// (rule, kind, agent, at) of every violation the events raise in an engine of their own
/// (default rules), deadlines included. Shared by the adapter tests.
pub(crate) fn violations(events: &[Event]) -> Found {
    let mut engine = Engine::new(RulesConfig::default());
    let mut out = Vec::new();
    for e in events {
        engine.handle_event("pbx", e, &mut out);
    }
    let end = events.iter().map(|e| e.ts).max().expect("events");
    engine.finish(end, &mut out);
    out.iter()
        .filter_map(|e| match e {
            Effect::Violation(v) => Some((
                v.rule.as_str().to_string(),
                v.kind.as_str().to_string(),
                v.agent.to_string(),
                v.at,
            )),
            _ => None,
        })
        .collect()
}

fn story() -> Found {
    let events: Vec<Event> = fixture("story.ndjson")
        .lines()
        .map(|l| decode_event(l).unwrap_or_else(|(_, e)| panic!("{l}: {e}")))
        .collect();
    let found = violations(&events);
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
    let events: Vec<Event> = parse_transcript(&fixture("ami.txt"))
        .iter()
        .flat_map(|m| mapper.handle(m, Timestamp(0)))
        .collect();
    assert_eq!(violations(&events), story());
}

#[test]
fn queue_log_gives_the_violations_of_the_protocol_story() {
    let text: String = fixture("queue_log")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let (events, stats) = map_text(&text, AmiSettings::default(), 60_000).expect("queue_log");
    assert_eq!(stats.unknown, 1, "CONFIGRELOAD is skipped and counted");
    assert!(events
        .windows(2)
        .all(|w| w[0].ts <= w[1].ts && w[0].seq < w[1].seq));
    assert_eq!(violations(&events), story());
}

/// Privacy: the caller numbers of the fixtures (`CallerIDNum` in AMI, the caller-id field of
/// `ENTERQUEUE` in queue_log) are in no mapped event, as the journal stores them.
#[test]
fn caller_numbers_of_the_asterisk_fixtures_are_in_no_event() {
    const NUMBER: &str = "13800138000";
    let ami = fixture("ami.txt");
    let queue_log = fixture("queue_log");
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
