//! The Asterisk mappers end to end: the AMI transcript and the queue_log file of
//! `tests/fixtures/asterisk/` through their mappers into an engine give the same violations
//! as the hand-written protocol stream of the same story (`story.ndjson`).

use std::collections::BTreeSet;

use floorwatch::adapter::ami::{parse_transcript, AmiMapper};
use floorwatch::adapter::queue_log::map_text;
use floorwatch::config::AmiSettings;
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
