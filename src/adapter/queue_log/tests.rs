// Lines follow the Asterisk queue_log documentation (docs.asterisk.org, "Queue Logs") and
// the ast_queue_log() calls of apps/app_queue.c.
use super::*;
use crate::event::PresenceState;

fn map(text: &str) -> (Vec<Event>, QueueLogStats) {
    map_text(text, AmiSettings::default(), 60_000).unwrap()
}

fn types(evs: &[Event]) -> Vec<(i64, &'static str)> {
    evs.iter()
        .map(|e| (e.ts.0 / 1000, e.body.type_name()))
        .collect()
}

#[test]
fn call_lines_map_and_rings_start_from_their_durations() {
    let text = "100|c1|sales|NONE|ENTERQUEUE||1001|1\n\
110|c1|sales|li.na|RINGNOANSWER|8000\n\
130|c1|sales|wang.fang|CONNECT|30|d2|18\n\
300|c1|sales|wang.fang|COMPLETECALLER|30|170|1\n";
    let (e, _) = map(text);
    assert_eq!(
        types(&e),
        vec![
            (100, "call.queued"),
            (102, "call.ringing"),
            (110, "call.no_answer"),
            (112, "call.ringing"),
            (130, "call.answered"),
            (300, "call.ended"),
        ]
    );
    assert!(matches!(&e[3].body, Body::CallRinging { agent, .. } if agent == "wang.fang"));
}

#[test]
fn ring_canceled_is_ms_and_ends_by_the_next_line() {
    let (e, _) = map("100|c1|q|NONE|ENTERQUEUE||1|1\n104|c1|q|a|RINGCANCELED|2500\n104|c1|q|NONE|ABANDON|1|1|4\n");
    assert_eq!(
        types(&e),
        vec![
            (100, "call.queued"),
            (101, "call.ringing"),
            (104, "call.abandoned")
        ]
    );
    assert_eq!(e[1].ts, Timestamp(101_500));
}

#[test]
fn every_exit_without_answer_is_abandoned_and_transfers_end_the_call() {
    for ev in ["ABANDON", "EXITEMPTY", "EXITWITHTIMEOUT", "EXITWITHKEY"] {
        let (e, _) = map(&format!("5|c|q|NONE|{ev}|1|1|5\n"));
        assert_eq!(types(&e), vec![(5, "call.abandoned")], "{ev}");
    }
    for ev in [
        "COMPLETEAGENT",
        "TRANSFER",
        "ATTENDEDTRANSFER",
        "BLINDTRANSFER",
    ] {
        let (e, _) = map(&format!("5|c|q|a|{ev}|x|1|2\n"));
        assert_eq!(
            e[0].body,
            Body::CallEnded {
                call: "c".into(),
                agent: Some("a".into())
            },
            "{ev}"
        );
    }
}

#[test]
fn members_pause_and_login() {
    let text = "1|NONE|sales|a|ADDMEMBER|\n\
1|NONE|support|a|ADDMEMBER|\n\
2|NONE|sales|a|PAUSE|lunch\n\
3|NONE|support|a|PAUSE|lunch\n\
4|NONE|NONE|a|UNPAUSEALL|\n\
5|NONE|NONE|a|PAUSEALL|ACW\n\
6|NONE|sales|a|REMOVEMEMBER|\n\
7|NONE|support|a|REMOVEMEMBER|\n\
8|NONE|NONE|b|AGENTLOGIN|PJSIP/802\n\
9|NONE|NONE|b|AGENTLOGOFF|PJSIP/802|100\n";
    let (e, _) = map(text);
    let got: Vec<_> = e.iter().map(|e| (e.ts.0 / 1000, e.body.clone())).collect();
    let st = |agent: &str, state, reason: &str| Body::AgentState {
        agent: agent.into(),
        state,
        reason: reason.into(),
        call: None,
        team: None,
    };
    assert!(matches!(&got[0], (1, Body::AgentLogin { agent, .. }) if agent == "a"));
    assert_eq!(
        got[1..],
        [
            (3, st("a", PresenceState::NotReady, "lunch")),
            (4, st("a", PresenceState::Ready, "")),
            (5, st("a", PresenceState::Acw, "")),
            (7, Body::AgentLogout { agent: "a".into() }),
            (8, got[5].1.clone()),
            (9, Body::AgentLogout { agent: "b".into() }),
        ]
    );
    assert!(matches!(&got[5].1, Body::AgentLogin { agent, .. } if agent == "b"));
}

#[test]
fn window_holds_events_until_a_newer_line_and_releases_in_time_order() {
    let mut m = QueueLogMapper::new(AmiSettings::default(), 30_000);
    assert!(m
        .handle_line("100|c|q|NONE|ENTERQUEUE||1|1\n", 0, 1)
        .unwrap()
        .is_empty());
    assert!(m
        .handle_line("120|c|q|a|CONNECT|20|d|15\n", 30, 2)
        .unwrap()
        .is_empty());
    let got = m
        .handle_line("131|d|q|NONE|ENTERQUEUE||1|1\n", 60, 3)
        .unwrap();
    assert_eq!(types(&got), vec![(100, "call.queued")]);
    let got = m.finish();
    assert_eq!(
        types(&got),
        vec![
            (105, "call.ringing"),
            (120, "call.answered"),
            (131, "call.queued")
        ]
    );
}

#[test]
fn seq_comes_from_the_byte_offset_and_stays_increasing() {
    let text = "100|c|q|NONE|ENTERQUEUE||1|1\n120|c|q|a|CONNECT|20|d|15\n";
    let (e, _) = map(text);
    let seqs: Vec<_> = e.iter().map(|e| e.seq.unwrap()).collect();
    // The ring comes from the CONNECT line (offset 29, k 0), the answer is its k 1.
    assert_eq!(seqs, vec![0, 116, 117]);
    // A ring put before an earlier line's event still gets a higher seq.
    let text = "100|c|q|a|CONNECT|20|d|15\n101|x|q|NONE|ENTERQUEUE||1|1\n90|y|q|b|CONNECT|1|d|1\n";
    let (e, _) = map(text);
    let seqs: Vec<_> = e.iter().map(|e| e.seq.unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(map(text).0, e, "re-reading gives the same seqs");
}

#[test]
fn unknown_events_are_counted_and_bad_lines_name_their_number() {
    let (e, s) = map("1|NONE|NONE|NONE|QUEUESTART|\n2|NONE|NONE|NONE|CONFIGRELOAD|\n3|NONE|NONE|NONE|CONFIGRELOAD|\n");
    assert!(e.is_empty());
    assert_eq!(s.unknown, 3);
    assert_eq!(s.unknown_by_event["CONFIGRELOAD"], 2);
    let err = map_text(
        "1|c|q|NONE|ENTERQUEUE\nnot a line\n",
        AmiSettings::default(),
        0,
    )
    .unwrap_err();
    assert_eq!(err, QueueLogError::TooFewFields { line: 2, fields: 1 });
    let err = map_text("x|c|q|NONE|ENTERQUEUE\n", AmiSettings::default(), 0).unwrap_err();
    assert!(matches!(err, QueueLogError::BadTime { line: 1, .. }));
    let err = map_text("\n5|c|q|a|RINGNOANSWER|soon\n", AmiSettings::default(), 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 2: RINGNOANSWER field 1 \"soon\" is not a ring time (a whole number of seconds or milliseconds, 0 to a day)"
    );
}

#[test]
fn a_new_generation_numbers_above_the_old_one_and_keeps_members() {
    let mut m = QueueLogMapper::new(AmiSettings::default(), 0);
    let a = m
        .handle_line("1|NONE|sales|a|ADDMEMBER|\n", 500, 9)
        .unwrap();
    assert_eq!(a[0].seq, Some(2000));
    m.set_generation(1);
    // A rotated file starts over at offset 0, but numbers above everything before it.
    let b = m.handle_line("2|NONE|sales|a|PAUSE|lunch\n", 0, 1).unwrap();
    assert_eq!(b[0].seq, Some(1 << 40));
    assert_eq!(generation_of(b[0].seq.unwrap()), 1);
    // The membership of the old file carried over: the pause is a state change, not a login.
    assert!(matches!(b[0].body, Body::AgentState { .. }), "{b:?}");
    m.set_generation(2);
    let c = m.handle_line("3|c|sales|a|CONNECT|1|d|1\n", 26, 2).unwrap();
    assert_eq!(
        c.iter().map(|e| e.seq.unwrap()).collect::<Vec<_>>(),
        vec![(2 << 40) | 104, (2 << 40) | 105]
    );
}

#[test]
fn release_until_lets_a_quiet_floor_through_and_later_rings_stay_increasing() {
    let mut m = QueueLogMapper::new(AmiSettings::default(), 60_000);
    assert!(m
        .handle_line("100|c|q|NONE|ENTERQUEUE||1|1\n", 0, 1)
        .unwrap()
        .is_empty());
    assert!(m
        .handle_line("110|d|q|NONE|ENTERQUEUE||1|1\n", 29, 2)
        .unwrap()
        .is_empty());
    assert_eq!(m.pending(), 2);
    // Wall time minus the window has passed the first line only.
    let got = m.release_until(Timestamp(105_000));
    assert_eq!(types(&got), vec![(100, "call.queued")]);
    assert_eq!(m.pending(), 1);
    assert!(
        m.release_until(Timestamp(105_000)).is_empty(),
        "nothing twice"
    );
    let got = m.release_until(Timestamp(200_000));
    assert_eq!(types(&got), vec![(110, "call.queued")]);
    // A ring longer than the window starts before what was released: late, yet numbered
    // above it so the engine does not drop it as a duplicate.
    let got = m.handle_line("130|c|q|a|CONNECT|30|d|29\n", 58, 3).unwrap();
    assert!(got.is_empty());
    let got = m.release_until(Timestamp(200_000));
    assert_eq!(
        types(&got),
        vec![(101, "call.ringing"), (130, "call.answered")]
    );
    assert_eq!(m.stats().late, 1);
    let seqs: Vec<_> = got.iter().map(|e| e.seq.unwrap()).collect();
    assert!(seqs[0] > 116 && seqs[1] > seqs[0], "{seqs:?}");
}

#[test]
fn ring_times_out_of_range_are_malformed_and_long_reasons_are_cut() {
    let mut m = QueueLogMapper::new(AmiSettings::default(), 0);
    // Found by fuzzing: a ring time that puts the ring start before year 1, or overflows.
    for (i, line) in [
        "1795827904|c1|sales|li.na|CONNECT|4|u|7999117763339\n",
        "1795827904|c1|sales|li.na|CONNECT|4|u|9223372036854775807\n",
        "1795827904|c1|sales|li.na|RINGNOANSWER|-5\n",
        "1795827904|c1|sales|li.na|RINGCANCELED|86400001\n",
    ]
    .iter()
    .enumerate()
    {
        let e = m.handle_line(line, i as u64 * 100, i as u64 + 1);
        assert!(
            matches!(e, Err(QueueLogError::BadNumber { .. })),
            "{line}: {e:?}"
        );
    }
    // A day of ringing is still a ring.
    let ok = m
        .handle_line(
            "1795827904|c2|sales|li.na|RINGCANCELED|86400000\n",
            1000,
            10,
        )
        .expect("a day");
    let mut all = ok;
    m.handle_line("1795827904|NONE|sales|li.na|ADDMEMBER|\n", 2000, 11)
        .expect("add");
    let reason = "休".repeat(70);
    all.extend(
        m.handle_line(
            &format!("1795827905|NONE|sales|li.na|PAUSE|{reason}\n"),
            3000,
            12,
        )
        .expect("pause"),
    );
    all.extend(m.finish());
    assert!(all
        .iter()
        .any(|e| matches!(e.body, Body::CallRinging { .. })));
    for e in &all {
        let text = e.to_json();
        assert!(crate::event::decode_event(&text).is_ok(), "{text}");
        if let Body::AgentState { reason: r, .. } = &e.body {
            assert!(r.len() <= crate::event::MAX_ID_LEN && reason.starts_with(r.as_str()));
        }
    }
}

/// Asterisk's default (`log_membername_as_agent = no`): the interface joins and leaves, the
/// member name pauses and takes calls (the ast_queue_log() calls of apps/app_queue.c).
const TWO_WAYS: &str = "1|MANAGER|sales|PJSIP/801|ADDMEMBER|\n\
2|NONE|sales|Alice|PAUSE|lunch\n\
3|NONE|sales|Alice|UNPAUSE|\n\
4|c1|sales|NONE|ENTERQUEUE||1001|1\n\
6|c1|sales|Alice|CONNECT|2|d1|1\n\
9|MANAGER|sales|PJSIP/801|REMOVEMEMBER|\n";

fn with_members(agent_id: crate::config::AmiAgentId) -> AmiSettings {
    AmiSettings {
        agent_id,
        members: [("PJSIP/801", "Alice")].into_iter().collect(),
        ..AmiSettings::default()
    }
}

fn logins(evs: &[Event]) -> Vec<(i64, String)> {
    evs.iter()
        .filter_map(|e| match &e.body {
            Body::AgentLogin { agent, .. } => Some((e.ts.0 / 1000, format!("+{agent}"))),
            Body::AgentLogout { agent } => Some((e.ts.0 / 1000, format!("-{agent}"))),
            _ => None,
        })
        .collect()
}

#[test]
fn a_member_named_two_ways_is_two_agents_and_one_warning() {
    let (e, s) = map(TWO_WAYS);
    // The interface logs in and out and does nothing else; the name pauses (which puts it
    // on the floor: a pause joins the queue) and takes the call, and is never logged out.
    assert_eq!(
        logins(&e),
        vec![(1, "+PJSIP/801".to_string()), (9, "-PJSIP/801".to_string())]
    );
    let of = |who: &str| -> Vec<&str> {
        e.iter()
            .filter(|e| e.to_json().contains(&format!("\"agent\":\"{who}\"")))
            .map(|e| e.body.type_name())
            .collect()
    };
    assert_eq!(of("PJSIP/801"), vec!["agent.login", "agent.logout"]);
    assert_eq!(
        of("Alice"),
        vec![
            "agent.state",
            "agent.state",
            "call.ringing",
            "call.answered"
        ]
    );
    let split = s.split_names.expect("the warning");
    assert_eq!(
        (
            split.interface.as_str(),
            split.name.as_str(),
            split.queue.as_str(),
            split.line
        ),
        ("PJSIP/801", "Alice", "sales", 2)
    );
    let text = split.to_string();
    for part in [
        "\"PJSIP/801\"",
        "\"Alice\"",
        "log_membername_as_agent = yes",
        "members = { \"PJSIP/801\" = ",
    ] {
        assert!(text.contains(part), "{text}");
    }
}

#[test]
fn the_members_table_makes_one_agent_of_both_names() {
    use crate::config::AmiAgentId;
    let (e, s) = map_text(TWO_WAYS, with_members(AmiAgentId::MemberName), 60_000).unwrap();
    assert_eq!(
        logins(&e),
        vec![(1, "+Alice".to_string()), (9, "-Alice".to_string())]
    );
    assert!(e.iter().all(|e| !e.to_json().contains("PJSIP")), "{e:?}");
    assert_eq!(s.split_names, None);
    // A Local-channel member, as in Asterisk's own examples.
    let local = TWO_WAYS.replace("PJSIP/801", "Local/agent1@agents/n");
    let (_, s) = map(&local);
    assert_eq!(
        s.split_names.map(|x| x.interface),
        Some("Local/agent1@agents/n".to_string())
    );
    let table = AmiSettings {
        members: [("Local/agent1@agents/n", "Alice")].into_iter().collect(),
        ..AmiSettings::default()
    };
    let (e, _) = map_text(&local, table, 60_000).unwrap();
    assert_eq!(
        logins(&e),
        vec![(1, "+Alice".to_string()), (9, "-Alice".to_string())]
    );
    // agent_id = "interface": the table maps the names back to the interface.
    let (e, s) = map_text(TWO_WAYS, with_members(AmiAgentId::Interface), 60_000).unwrap();
    assert_eq!(
        logins(&e),
        vec![(1, "+PJSIP/801".to_string()), (9, "-PJSIP/801".to_string())]
    );
    assert!(e.iter().all(|e| !e.to_json().contains("Alice")), "{e:?}");
    assert!(e
        .iter()
        .any(|e| matches!(&e.body, Body::CallAnswered { agent, .. } if agent == "PJSIP/801")));
    assert_eq!(s.split_names, None);
}

#[test]
fn one_name_per_member_gives_no_warning() {
    // log_membername_as_agent = yes: names everywhere.
    let names = TWO_WAYS.replace("PJSIP/801", "Alice");
    assert_eq!(map(&names).1.split_names, None);
    // Members added without a member name: the interface is the name everywhere.
    let interfaces = TWO_WAYS.replace("Alice", "PJSIP/801");
    assert_eq!(map(&interfaces).1.split_names, None);
    // A static member (queues.conf: no ADDMEMBER) named by name, next to a dynamic one
    // added without a name that pauses before the static one shows up.
    let mixed = "1|MANAGER|sales|PJSIP/805|ADDMEMBER|\n\
                 2|NONE|sales|PJSIP/805|PAUSE|lunch\n\
                 3|NONE|sales|Bob|PAUSE|lunch\n";
    assert_eq!(map(mixed).1.split_names, None);
    // Interface and name in different queues only.
    let apart = "1|MANAGER|sales|PJSIP/801|ADDMEMBER|\n2|NONE|support|Alice|PAUSE|lunch\n";
    assert_eq!(map(apart).1.split_names, None);
}

#[test]
fn interfaces_look_like_tech_slash_resource() {
    for i in [
        "PJSIP/801",
        "SIP/alice",
        "Local/agent1@agents/n",
        "IAX2/peer",
    ] {
        assert!(looks_like_interface(i), "{i}");
    }
    for n in ["Alice", "li.na", "/801", "PJSIP/", "Sales Team/2", "NONE"] {
        assert!(!looks_like_interface(n), "{n}");
    }
}
