//! Arbitrary bytes as a frame: decoding never panics, every valid event survives a round
//! trip through its journal JSON, and a batch limit refuses long batches as a whole.
#![no_main]

use floorwatch::event::{decode_event, decode_frame, decode_frame_limited, DecodeError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let frame = decode_frame(text);
    for (_, ev) in &frame.events {
        let json = ev.to_json();
        match decode_event(&json) {
            Ok(again) => assert_eq!(&again, ev, "round trip of {json}"),
            Err(e) => panic!("an accepted event does not decode from its own JSON {json}: {e:?}"),
        }
    }
    for r in &frame.rejected {
        // Labels are bounded: every one is pre-registered.
        assert!(DecodeError::LABELS.contains(&r.error.reason_label()));
    }
    let limited = decode_frame_limited(text, 2);
    if frame.batch && frame.events.len() + frame.rejected.len() > 2 {
        assert!(limited.events.is_empty());
    } else {
        assert_eq!(limited.events, frame.events);
    }
});
