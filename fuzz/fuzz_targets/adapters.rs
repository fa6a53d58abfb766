//! The phone-system adapters' decoders on arbitrary input: Asterisk AMI text, FreeSWITCH
//! event-socket bytes, Asterisk queue_log lines. Never panics, and every protocol event an
//! adapter makes survives the journal's JSON round trip (else a restart could not read it).
#![no_main]

use floorwatch::adapter::ami::{AmiMapper, AmiParser};
use floorwatch::adapter::esl::{EslDecoder, EslMapper};
use floorwatch::adapter::queue_log::QueueLogMapper;
use floorwatch::config::{AmiSettings, EslSettings};
use floorwatch::event::{decode_event, Event};
use floorwatch::time::Timestamp;
use libfuzzer_sys::fuzz_target;

const T0: Timestamp = Timestamp(1_795_831_200_000);

fn check(events: &[Event]) {
    for ev in events {
        let json = ev.to_json();
        match decode_event(&json) {
            Ok(again) => assert_eq!(&again, ev, "round trip of {json}"),
            Err(e) => panic!("an adapter made an event that does not decode: {json}: {e:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            let text = String::from_utf8_lossy(rest);
            let mut parser = AmiParser::new();
            let mut mapper = AmiMapper::new(AmiSettings::default());
            // Two pushes: a message may be split across reads.
            let mid = text
                .char_indices()
                .nth(text.chars().count() / 2)
                .map_or(0, |(i, _)| i);
            for part in [&text[..mid], &text[mid..]] {
                for msg in parser.push(part) {
                    check(&mapper.handle(&msg, T0));
                }
            }
        }
        1 => {
            let mut dec = EslDecoder::new(64 << 10);
            let mut mapper = EslMapper::new(EslSettings::default());
            dec.push(rest);
            while let Ok(Some(frame)) = dec.next_frame() {
                if let Some(ev) = &frame.event {
                    check(&mapper.handle(ev, T0));
                }
            }
        }
        _ => {
            let text = String::from_utf8_lossy(rest);
            let mut mapper = QueueLogMapper::new(AmiSettings::default(), 5_000);
            let mut offset = 0u64;
            for (i, line) in text.lines().enumerate() {
                if let Ok(events) = mapper.handle_line(line, offset, i as u64 + 1) {
                    check(&events);
                }
                offset += line.len() as u64 + 1;
            }
            check(&mapper.release_until(Timestamp(i64::MAX / 2)));
        }
    }
});
