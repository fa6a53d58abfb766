// Messages are written from the `<managerEvent>` docs of Asterisk's apps/app_queue.c.
use super::*;
use crate::event::MAX_ID_LEN;

const T0: Timestamp = Timestamp(1_795_827_600_000);

fn msg(text: &str) -> AmiMessage {
    let mut v = parse_transcript(text);
    assert_eq!(v.len(), 1, "{text}");
    v.remove(0)
}

fn run(m: &mut AmiMapper, text: &str) -> Vec<Event> {
    parse_transcript(text)
        .iter()
        .flat_map(|x| m.handle(x, T0))
        .collect()
}

fn bodies(evs: &[Event]) -> Vec<Body> {
    evs.iter().map(|e| e.body.clone()).collect()
}

fn state(agent: &str, st: PresenceState, reason: &str) -> Body {
    Body::AgentState {
        agent: agent.into(),
        state: st,
        reason: reason.into(),
        call: None,
        team: None,
    }
}

const ADDED: &str = "Event: QueueMemberAdded\r\nQueue: sales\r\nMemberName: li.na\r\nInterface: PJSIP/801\r\nPaused: 0\r\nPausedReason: \r\n\r\n";

#[test]
fn parser_takes_crlf_and_lf_chunks_and_case_insensitive_keys() {
    let mut p = AmiParser::new();
    assert!(p
        .push("Asterisk Call Manager/7.0.3\r\nEvent: Agent")
        .is_empty());
    let got = p.push("Called\r\nqueue: sales\r\nVariable: A=b: c\r\n\r\nEvent: X\n\n");
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].event(), Some("AgentCalled"));
    assert_eq!(got[0].get("QUEUE"), Some("sales"));
    assert_eq!(got[0].get("variable"), Some("A=b: c"));
    assert_eq!(got[0].headers[0].0, "Event");
    assert_eq!(got[1].event(), Some("X"));
    assert_eq!(
        msg("Response: Success\nMessage: ok").response(),
        Some("Success")
    );
}

#[test]
fn timestamp_header_is_used_else_receive_time() {
    assert_eq!(
        parse_epoch("1764321317.123456"),
        Some(Timestamp(1_764_321_317_123))
    );
    assert_eq!(parse_epoch("17.5"), Some(Timestamp(17_500)));
    assert_eq!(parse_epoch("x.1"), None);
    let mut m = AmiMapper::new(AmiSettings::default());
    let e = m.handle(
        &msg("Event: QueueCallerJoin\nQueue: sales\nUniqueid: c1\nTimestamp: 1795827601.250000"),
        T0,
    );
    assert_eq!(e[0].ts, Timestamp(1_795_827_601_250));
    let e = m.handle(
        &msg("Event: QueueCallerJoin\nQueue: sales\nUniqueid: c2"),
        T0,
    );
    assert_eq!(e[0].ts, T0);
}

#[test]
fn call_events_map_with_caller_uniqueid_and_agent_rule() {
    let mut m = AmiMapper::new(AmiSettings::default());
    let text = "Event: QueueCallerJoin\nQueue: sales\nUniqueid: c1\nLinkedid: L\n\n\
Event: AgentCalled\nQueue: sales\nUniqueid: c1\nDestUniqueid: d1\nMemberName: li.na\nInterface: PJSIP/801\n\n\
Event: AgentConnect\nQueue: sales\nUniqueid: c1\nMemberName: li.na\nInterface: PJSIP/801\nRingTime: 3\nHoldTime: 4\n\n\
Event: AgentComplete\nQueue: sales\nUniqueid: c1\nMemberName: li.na\nReason: agent\n\n\
Event: QueueCallerAbandon\nQueue: sales\nUniqueid: c2\n\n";
    let got = bodies(&run(&mut m, text));
    assert_eq!(
        got,
        vec![
            Body::CallQueued {
                call: "c1".into(),
                queue: "sales".into()
            },
            Body::CallRinging {
                call: "c1".into(),
                agent: "li.na".into(),
                queue: Some("sales".into())
            },
            Body::CallAnswered {
                call: "c1".into(),
                agent: "li.na".into()
            },
            Body::CallEnded {
                call: "c1".into(),
                agent: Some("li.na".into())
            },
            Body::CallAbandoned { call: "c2".into() },
        ]
    );
    let mut m = AmiMapper::new(AmiSettings {
        agent_id: AmiAgentId::Interface,
        ..AmiSettings::default()
    });
    let got = bodies(&run(
        &mut m,
        "Event: AgentRingNoAnswer\nUniqueid: c1\nMemberName: li.na\nInterface: PJSIP/801\n",
    ));
    assert_eq!(
        got,
        vec![Body::CallNoAnswer {
            call: "c1".into(),
            agent: "PJSIP/801".into()
        }]
    );
}

#[test]
fn ring_time_is_ms_on_ring_no_answer_and_seconds_on_connect() {
    // Without the AgentCalled (lost, or before a reconnect) the ring start comes from RingTime.
    let mut m = AmiMapper::new(AmiSettings::default());
    let e = run(&mut m, "Event: AgentRingNoAnswer\nUniqueid: c1\nMemberName: a\nRingTime: 8000\nTimestamp: 1795827610\n");
    assert_eq!(e[0].ts, Timestamp(1_795_827_602_000));
    assert!(matches!(e[0].body, Body::CallRinging { .. }));
    assert!(matches!(e[1].body, Body::CallNoAnswer { .. }));
    let e = run(
        &mut m,
        "Event: AgentConnect\nUniqueid: c1\nMemberName: b\nRingTime: 18\nTimestamp: 1795827630\n",
    );
    assert_eq!(e[0].ts, Timestamp(1_795_827_612_000));
    assert!(matches!(e[1].body, Body::CallAnswered { .. }));
    // With the AgentCalled seen, no second ring.
    let e = run(&mut m, "Event: AgentCalled\nUniqueid: c3\nMemberName: b\n\nEvent: AgentConnect\nUniqueid: c3\nMemberName: b\nRingTime: 5\n");
    assert_eq!(e.len(), 2);
}

#[test]
fn pause_reasons_acw_and_auto_pause() {
    let mut m = AmiMapper::new(AmiSettings {
        auto_pause_reason: "rna".into(),
        ..AmiSettings::default()
    });
    run(&mut m, ADDED);
    let p = |paused: u8, reason: &str| {
        format!("Event: QueueMemberPause\nQueue: sales\nMemberName: li.na\nPaused: {paused}\nPausedReason: {reason}\n")
    };
    assert_eq!(
        bodies(&run(&mut m, &p(1, "break"))),
        vec![state("li.na", PresenceState::NotReady, "break")]
    );
    assert_eq!(
        bodies(&run(&mut m, &p(1, "Auto-Pause"))),
        vec![state("li.na", PresenceState::NotReady, "rna")]
    );
    assert_eq!(
        bodies(&run(&mut m, &p(1, "ACW"))),
        vec![state("li.na", PresenceState::Acw, "")]
    );
    assert_eq!(
        bodies(&run(&mut m, &p(0, ""))),
        vec![state("li.na", PresenceState::Ready, "")]
    );
}

#[test]
fn acw_names_the_call_just_completed() {
    let mut m = AmiMapper::new(AmiSettings::default());
    run(&mut m, ADDED);
    run(
        &mut m,
        "Event: AgentComplete\nQueue: sales\nUniqueid: c9\nMemberName: li.na\n",
    );
    let got = bodies(&run(
        &mut m,
        "Event: QueueMemberPause\nQueue: sales\nMemberName: li.na\nPaused: 1\nPausedReason: ACW\n",
    ));
    assert!(
        matches!(&got[0], Body::AgentState { call: Some(c), state: PresenceState::Acw, .. } if c == "c9"),
        "{got:?}"
    );
}

#[test]
fn unpause_clears_the_reason_even_if_echoed() {
    let mut m = AmiMapper::new(AmiSettings::default());
    run(&mut m, ADDED);
    run(&mut m, "Event: QueueMemberPause\nQueue: sales\nMemberName: li.na\nPaused: 1\nPausedReason: break\n");
    // Older versions still carry the old PausedReason on Paused: 0.
    let got = bodies(&run(&mut m, "Event: QueueMemberPause\nQueue: sales\nMemberName: li.na\nPaused: 0\nPausedReason: break\n"));
    assert_eq!(got, vec![state("li.na", PresenceState::Ready, "")]);
    let got = bodies(&run(
        &mut m,
        "Event: QueueMemberPause\nQueue: sales\nMemberName: li.na\nPaused: 1\n",
    ));
    assert_eq!(got, vec![state("li.na", PresenceState::NotReady, "")]);
}

#[test]
fn echoed_pause_from_another_cti_gives_no_duplicate() {
    let mut m = AmiMapper::new(AmiSettings::default());
    run(&mut m, ADDED);
    let p = "Event: QueueMemberPause\nQueue: sales\nMemberName: li.na\nPaused: 1\nPausedReason: lunch\n";
    assert_eq!(run(&mut m, p).len(), 1);
    assert!(run(&mut m, p).is_empty());
    let other = p.replace("lunch", "meeting");
    assert_eq!(
        bodies(&run(&mut m, &other)),
        vec![state("li.na", PresenceState::NotReady, "meeting")]
    );
}

#[test]
fn multi_queue_membership_logs_in_once_and_out_when_in_no_queue() {
    let mut m = AmiMapper::new(AmiSettings::default());
    let got = bodies(&run(&mut m, ADDED));
    assert!(matches!(&got[..], [Body::AgentLogin { agent, state: None, .. }] if agent == "li.na"));
    assert!(run(&mut m, &ADDED.replace("sales", "support")).is_empty());
    // Paused in one queue of two: still gets calls, still ready.
    assert!(run(
        &mut m,
        "Event: QueueMemberPause\nQueue: sales\nMemberName: li.na\nPaused: 1\nPausedReason: x\n"
    )
    .is_empty());
    let got = bodies(&run(
        &mut m,
        "Event: QueueMemberPause\nQueue: support\nMemberName: li.na\nPaused: 1\nPausedReason: x\n",
    ));
    assert_eq!(got, vec![state("li.na", PresenceState::NotReady, "x")]);
    let removed = "Event: QueueMemberRemoved\nQueue: sales\nMemberName: li.na\n";
    assert!(run(&mut m, removed).is_empty());
    let got = bodies(&run(&mut m, &removed.replace("sales", "support")));
    assert_eq!(
        got,
        vec![Body::AgentLogout {
            agent: "li.na".into()
        }]
    );
    assert!(run(&mut m, removed).is_empty());
}

#[test]
fn queue_status_answer_becomes_one_snapshot() {
    let mut m = AmiMapper::new(AmiSettings::default());
    let text = "Response: Success\nEventList: start\nMessage: Queue status will follow\n\n\
Event: QueueParams\nQueue: sales\nMax: 0\nCalls: 1\n\n\
Event: QueueMember\nQueue: sales\nName: li.na\nLocation: PJSIP/801\nLoginTime: 1795827000\nLastPause: 1795827500\nInCall: 0\nPaused: 1\nPausedReason: ACW\n\n\
Event: QueueMember\nQueue: sales\nName: wang.fang\nLocation: PJSIP/802\nLoginTime: 1795827100\nLastPause: 0\nInCall: 0\nPaused: 0\nPausedReason: \n\n\
Event: QueueEntry\nQueue: sales\nPosition: 1\nUniqueid: c5\nWait: 12\n\n\
Event: QueueStatusComplete\nEventList: Complete\nListItems: 4\nTimestamp: 1795827600.000000\n";
    let e = run(&mut m, text);
    assert_eq!(e.len(), 1);
    let Body::Snapshot { agents, calls } = &e[0].body else {
        panic!("{e:?}")
    };
    assert_eq!(agents.len(), 2);
    assert_eq!(
        (
            agents[0].agent.as_str(),
            agents[0].presence,
            agents[0].since
        ),
        ("li.na", PresenceState::Acw, Timestamp(1_795_827_500_000))
    );
    assert_eq!(
        (agents[1].presence, agents[1].since),
        (PresenceState::Ready, Timestamp(1_795_827_100_000))
    );
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].call.as_str(), calls[0].state, calls[0].since),
        (
            "c5",
            SnapshotCallState::Queued,
            Timestamp(1_795_827_588_000)
        )
    );
    // The snapshot is the mapper's new membership: adding an unpaused queue is no second
    // login, only the end of the wrap-up.
    let got = bodies(&run(&mut m, &ADDED.replace("sales", "support")));
    assert_eq!(got, vec![state("li.na", PresenceState::Ready, "")]);
}

#[test]
fn a_queue_status_answer_cut_short_by_a_lost_connection_is_dropped() {
    let mut m = AmiMapper::default();
    let member = |name: &str| {
        format!("Event: QueueMember\nQueue: sales\nName: {name}\nLocation: PJSIP/1\nLoginTime: 1795827600\nInCall: 0\nPaused: 0\n\n")
    };
    assert!(run(&mut m, &member("gone.agent")).is_empty());
    m.connection_lost();
    let evs = run(
        &mut m,
        &format!(
            "{}Event: QueueStatusComplete\nEventList: Complete\nListItems: 1\n\n",
            member("li.na")
        ),
    );
    let [Event {
        body: Body::Snapshot { agents, .. },
        ..
    }] = evs.as_slice()
    else {
        panic!("{evs:?}")
    };
    let names: Vec<&str> = agents.iter().map(|a| a.agent.as_str()).collect();
    assert_eq!(names, ["li.na"]);
}

#[test]
fn identifiers_longer_than_the_protocol_allows_give_no_event_and_reasons_are_cut() {
    let long = "x".repeat(MAX_ID_LEN + 1);
    let mut m = AmiMapper::new(AmiSettings::default());
    let join = format!("Event: QueueCallerJoin\r\nQueue: sales\r\nUniqueid: {long}\r\n\r\n");
    assert!(run(&mut m, &join).is_empty(), "a call id over 128 bytes");
    let added = format!(
        "Event: QueueMemberAdded\r\nQueue: sales\r\nMemberName: {long}\r\nPaused: 0\r\n\r\n"
    );
    assert!(run(&mut m, &added).is_empty(), "an agent id over 128 bytes");
    assert_eq!(run(&mut m, ADDED).len(), 1);
    // A reason of 200 bytes, multi-byte at the cut: cut at a character boundary.
    let reason = "休".repeat(70);
    let pause = format!(
        "Event: QueueMemberPause\r\nQueue: sales\r\nMemberName: li.na\r\nPaused: 1\r\nPausedReason: {reason}\r\n\r\n"
    );
    let out = run(&mut m, &pause);
    let Some(Body::AgentState { reason: got, .. }) = out.first().map(|e| &e.body) else {
        panic!("{out:?}")
    };
    assert!(
        got.len() <= MAX_ID_LEN && got.len() > MAX_ID_LEN - 3,
        "{}",
        got.len()
    );
    assert!(reason.starts_with(got.as_str()));
    // Every event mapped here decodes again (what the journal needs).
    for e in &out {
        let text = e.to_json();
        assert!(crate::event::decode_event(&text).is_ok(), "{text}");
    }
}

#[test]
fn devices_are_channel_names_without_their_suffix_and_never_local() {
    assert_eq!(device_of("PJSIP/801-0000002a"), Some("PJSIP/801"));
    assert_eq!(
        device_of("SIP/trunk-provider-00000012"),
        Some("SIP/trunk-provider")
    );
    assert_eq!(device_of("Local/801@agents-00000012;2"), None);
    assert_eq!(device_of("PJSIP/801"), None, "no channel suffix");
    assert_eq!(device_of("garbage-1"), None);
}

fn dial_begin(n: usize) -> String {
    format!(
        "Event: DialBegin\r\nChannel: PJSIP/801-{n:08x}\r\nUniqueid: 1795827660.{n}\r\n\
         DestChannel: PJSIP/carrier-{n:08x}\r\nDestUniqueid: 1795827661.{n}\r\n\r\n"
    )
}

#[test]
fn outbound_calls_followed_at_once_are_bounded() {
    let mut m = AmiMapper::new(AmiSettings::default());
    run(&mut m, ADDED);
    let dialed = (0..MAX_OUTBOUND + 5)
        .flat_map(|n| run(&mut m, &dial_begin(n)))
        .filter(|e| matches!(e.body, Body::CallDialing { .. }))
        .count();
    assert_eq!(dialed, MAX_OUTBOUND);
    // A hangup frees a place.
    let hangup = "Event: Hangup\r\nChannel: PJSIP/801-00000000\r\nUniqueid: 1795827660.0\r\n\r\n";
    assert!(matches!(
        bodies(&run(&mut m, hangup))[..],
        [Body::CallEnded { .. }]
    ));
    assert_eq!(run(&mut m, &dial_begin(MAX_OUTBOUND + 9)).len(), 1);
}
