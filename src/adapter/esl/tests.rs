//! Unit tests of the event socket decoder ([`EslDecoder`]) and the mod_callcenter mapper
//! ([`EslMapper`]).

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

#[test]
fn phone_users_of_contacts_and_channel_names() {
    assert_eq!(contact_user("user/1000@default"), Some("1000"));
    assert_eq!(
        contact_user("{call_timeout=10}[leg_delay_start=1]user/1000@default"),
        Some("1000")
    );
    assert_eq!(
        contact_user("sofia/internal/sip:1001@10.0.0.8:5060"),
        Some("1001")
    );
    assert_eq!(contact_user("sofia/gateway/carrier/13900139000"), None);
    assert_eq!(contact_user("loopback/1000"), None);
    assert_eq!(contact_user("{unclosed user/1000@default"), None);
    assert_eq!(channel_user("sofia/internal/1000@10.0.0.5"), Some("1000"));
    assert_eq!(
        channel_user("sofia/external/sips:1002@pbx.example.net;transport=tls"),
        Some("1002")
    );
    assert_eq!(channel_user("sofia/gateway/carrier/1390"), None);
    assert_eq!(channel_user("verto.rtc/1000@x"), None);
}

fn outgoing(n: usize) -> Map<String, Value> {
    let mut m = Map::new();
    for (k, v) in [
        ("Event-Name", "CHANNEL_OUTGOING".to_string()),
        ("Unique-ID", format!("b-{n}")),
        ("Channel-Name", format!("sofia/gateway/carrier/{n}")),
        ("Other-Type", "originator".to_string()),
        ("Other-Leg-Unique-ID", format!("a-{n}")),
        (
            "Other-Leg-Channel-Name",
            "sofia/internal/1000@10.0.0.5".to_string(),
        ),
    ] {
        m.insert(k.into(), v.into());
    }
    m
}

#[test]
fn outbound_calls_followed_at_once_are_bounded() {
    let mut m = EslMapper::new(EslSettings {
        agent_id: EslAgentId::BeforeAt,
        ..EslSettings::default()
    });
    m.handle(
        &ev(&[
            ("CC-Action", "agent-status-change"),
            ("CC-Agent", "1000@default"),
            ("CC-Agent-Status", "Available"),
        ]),
        Timestamp(1),
    );
    let dialed = (0..MAX_OUTBOUND + 5)
        .flat_map(|n| m.handle(&outgoing(n), Timestamp(2)))
        .count();
    assert_eq!(dialed, MAX_OUTBOUND);
    let mut hangup = Map::new();
    hangup.insert("Event-Name".into(), "CHANNEL_HANGUP_COMPLETE".into());
    hangup.insert("Unique-ID".into(), "a-0".into());
    assert_eq!(types(&m.handle(&hangup, Timestamp(3))), ["call.ended"]);
    assert_eq!(
        types(&m.handle(&outgoing(MAX_OUTBOUND + 9), Timestamp(4))),
        ["call.dialing"]
    );
    // Full again; calls whose hangups were lost are forgotten after 12 h.
    assert!(m
        .handle(&outgoing(MAX_OUTBOUND + 10), Timestamp(5))
        .is_empty());
    let later = Timestamp(4 + 12 * 3_600_000);
    assert_eq!(
        types(&m.handle(&outgoing(MAX_OUTBOUND + 11), later)),
        ["call.dialing"]
    );
    assert!(m.outbound.len() <= 2, "{}", m.outbound.len());
}
