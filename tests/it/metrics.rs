//! `/metrics`: content type, every family of the surface page with its type and labels,
//! `promtool check metrics` on the real output, bounded agent series.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::daemon_support::{self as sup, get, Source};

/// A floor with a violation, answered and abandoned queue calls, and a rejected event.
const FLOOR: &str = r#"[
 {"type":"agent.login","ts":"2026-11-28T01:00:00Z","seq":1,"agent":"a1","team":"hotline-1"},
 {"type":"agent.login","ts":"2026-11-28T01:00:00Z","seq":2,"agent":"a2","team":"hotline-2"},
 {"type":"call.queued","ts":"2026-11-28T01:00:10Z","seq":3,"call":"c1","queue":"sales"},
 {"type":"call.ringing","ts":"2026-11-28T01:00:11Z","seq":4,"call":"c1","agent":"a1","queue":"sales"},
 {"type":"call.answered","ts":"2026-11-28T01:00:14Z","seq":5,"call":"c1","agent":"a1"},
 {"type":"call.queued","ts":"2026-11-28T01:00:20Z","seq":6,"call":"c2","queue":"sales"},
 {"type":"call.ringing","ts":"2026-11-28T01:00:21Z","seq":7,"call":"c2","agent":"a2","queue":"sales"},
 {"type":"call.abandoned","ts":"2026-11-28T01:00:40Z","seq":8,"call":"c2"},
 {"type":"call.queued","ts":"2026-11-28T01:00:41Z","seq":9,"call":"c3","queue":"support"},
 {"type":"agent.fly","ts":"2026-11-28T01:00:42Z","seq":10,"agent":"a1"}
]"#;

/// (name, type, labels) of every family of the surface page.
const FAMILIES: &[(&str, &str, &[&str])] = &[
    ("floorwatch_agents", "gauge", &["team", "state"]),
    (
        "floorwatch_agent_state",
        "gauge",
        &["agent", "team", "state"],
    ),
    ("floorwatch_calls_waiting", "gauge", &["queue"]),
    ("floorwatch_longest_wait_seconds", "gauge", &["queue"]),
    ("floorwatch_calls_offered_total", "counter", &["queue"]),
    ("floorwatch_calls_answered_total", "counter", &["queue"]),
    ("floorwatch_calls_abandoned_total", "counter", &["queue"]),
    ("floorwatch_answer_wait_seconds", "histogram", &["queue"]),
    ("floorwatch_ring_seconds", "histogram", &["team"]),
    (
        "floorwatch_violations_total",
        "counter",
        &["rule", "kind", "team", "agent"],
    ),
    ("floorwatch_active_violations", "gauge", &["rule", "team"]),
    (
        "floorwatch_demerit_points_total",
        "counter",
        &["team", "agent"],
    ),
    ("floorwatch_events_total", "counter", &["type"]),
    ("floorwatch_events_rejected_total", "counter", &["reason"]),
    ("floorwatch_events_late_total", "counter", &[]),
    ("floorwatch_events_duplicate_total", "counter", &[]),
    ("floorwatch_event_lag_seconds", "histogram", &[]),
    ("floorwatch_source_connected", "gauge", &[]),
];

/// The label names of the first sample line of `name` (histograms: of `name_bucket`, minus
/// `le`).
fn labels_of(exposition: &str, name: &str, kind: &str) -> Option<Vec<String>> {
    let sample = if kind == "histogram" {
        format!("{name}_bucket")
    } else {
        name.to_string()
    };
    let line = exposition
        .lines()
        .find(|l| l.starts_with(&format!("{sample}{{")) || l.starts_with(&format!("{sample} ")))?;
    let Some(inner) = line
        .split_once('{')
        .map(|(_, r)| r.split_once('}').map_or("", |x| x.0))
    else {
        return Some(Vec::new());
    };
    let mut names: Vec<String> = inner
        .split("\",")
        .filter_map(|kv| kv.split_once('=').map(|(k, _)| k.trim().to_string()))
        .filter(|k| k != "le")
        .collect();
    names.sort();
    Some(names)
}

#[tokio::test]
async fn metrics_have_every_surface_family_and_pass_promtool() {
    let d = sup::start(sup::config()).await;
    let addr = d.local_addr();
    let (mut s, _) = Source::connect_hello(addr, "pbx").await;
    s.send(FLOOR).await;
    let (errors, acked) = s.until_ack().await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(acked, 9);

    let (status, ctype, text) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    for (name, kind, labels) in FAMILIES {
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "missing family {name} ({kind})"
        );
        let got = labels_of(&text, name, kind).unwrap_or_else(|| panic!("no sample of {name}"));
        let mut want: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "labels of {name}");
    }
    for le in ["5", "10", "15", "20", "30", "60"] {
        assert!(
            text.contains(&format!(
                r#"floorwatch_answer_wait_seconds_bucket{{queue="sales",le="{le}"}}"#
            )),
            "answer wait bucket {le}"
        );
    }
    for le in ["5", "10", "15", "20", "30"] {
        assert!(
            text.contains(&format!(
                r#"floorwatch_ring_seconds_bucket{{team="hotline-1",le="{le}"}}"#
            )),
            "ring bucket {le}"
        );
    }
    // The ring of c2 at a2 ran 19 s: a `late` violation.
    assert_eq!(
        sup::sample(
            &text,
            r#"floorwatch_violations_total{agent="a2",kind="late",rule="ring_answer",team="hotline-2"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sup::sample(
            &text,
            r#"floorwatch_demerit_points_total{agent="a2",team="hotline-2"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sup::sample(&text, r#"floorwatch_calls_offered_total{queue="sales"}"#),
        Some(2.0)
    );
    assert_eq!(
        sup::sample(&text, r#"floorwatch_calls_answered_total{queue="sales"}"#),
        Some(1.0)
    );
    assert_eq!(
        sup::sample(&text, r#"floorwatch_calls_abandoned_total{queue="sales"}"#),
        Some(1.0)
    );
    assert_eq!(
        sup::sample(&text, r#"floorwatch_calls_waiting{queue="support"}"#),
        Some(1.0)
    );
    assert_eq!(
        sup::sample(
            &text,
            r#"floorwatch_agent_state{agent="a1",state="talking",team="hotline-1"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sup::sample(
            &text,
            r#"floorwatch_agents{state="talking",team="hotline-1"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sup::sample(
            &text,
            r#"floorwatch_events_rejected_total{reason="unknown_type"}"#
        ),
        Some(1.0)
    );
    assert_eq!(sup::sample(&text, "floorwatch_source_connected"), Some(1.0));

    promtool_check(&text);
    d.shutdown().await;
}

fn promtool_check(exposition: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => panic!(
            "cannot run promtool ({e}): scripts/test installs it (apt-get install prometheus)"
        ),
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(exposition.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn agent_state_series_is_removed_when_the_agent_logs_out() {
    let d = sup::start(sup::config()).await;
    let addr = d.local_addr();
    let (mut s, _) = Source::connect_hello(addr, "pbx").await;
    s.send(r#"[{"type":"agent.login","ts":"2026-11-28T01:00:00Z","seq":1,"agent":"a1","team":"t1"},
               {"type":"agent.state","ts":"2026-11-28T01:00:01Z","seq":2,"agent":"a1","state":"acw"}]"#)
        .await;
    s.until_ack().await;
    let (_, _, text) = get(addr, "/metrics").await;
    assert_eq!(
        sup::sample(
            &text,
            r#"floorwatch_agent_state{agent="a1",state="acw",team="t1"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sup::sample(
            &text,
            r#"floorwatch_agent_state{agent="a1",state="ready",team="t1"}"#
        ),
        None
    );
    assert_eq!(
        sup::sample(&text, r#"floorwatch_agents{state="acw",team="t1"}"#),
        Some(1.0)
    );
    assert_eq!(
        sup::sample(&text, r#"floorwatch_agents{state="ready",team="t1"}"#),
        Some(0.0)
    );

    s.send(r#"{"type":"agent.logout","ts":"2026-11-28T01:00:02Z","seq":3,"agent":"a1"}"#)
        .await;
    s.until_ack().await;
    let (_, _, text) = get(addr, "/metrics").await;
    assert!(
        !text.contains(r#"agent="a1""#),
        "a1's series outlived the logout:\n{text}"
    );
    assert_eq!(
        sup::sample(&text, r#"floorwatch_agents{state="acw",team="t1"}"#),
        Some(0.0)
    );
    d.shutdown().await;
}

/// One agent's morning: a call answered in 4 s of ringing and talked for 3 s, then a pause
/// without a reason from 01:00:10 (a `no_reason` violation, 5 points, at 01:00:15), and a
/// second agent's login at 01:00:20 that moves the engine clock.
const MORNING: &str = r#"[
 {"type":"agent.login","ts":"2026-11-28T01:00:00Z","seq":1,"agent":"a1","team":"hotline-1"},
 {"type":"call.ringing","ts":"2026-11-28T01:00:01Z","seq":2,"call":"c1","agent":"a1"},
 {"type":"call.answered","ts":"2026-11-28T01:00:05Z","seq":3,"call":"c1","agent":"a1"},
 {"type":"call.ended","ts":"2026-11-28T01:00:08Z","seq":4,"call":"c1","agent":"a1"},
 {"type":"agent.state","ts":"2026-11-28T01:00:10Z","seq":5,"agent":"a1","state":"not_ready"},
 {"type":"agent.login","ts":"2026-11-28T01:00:20Z","seq":6,"agent":"a2","team":"hotline-1"}
]"#;

/// The value of `family{agent="a1",team="hotline-1"<extra>}`.
fn a1(text: &str, family: &str, extra: &str) -> Option<f64> {
    sup::sample(
        text,
        &format!(r#"{family}{{agent="a1"{extra},team="hotline-1"}}"#),
    )
}

#[tokio::test]
async fn appraisal_gauges_show_the_month_so_far_and_leave_out_waived_violations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = sup::config();
    config.store.dir = dir.path().to_path_buf();
    let d = sup::start(config.clone()).await;
    let addr = d.local_addr();
    let (mut s, _) = Source::connect_hello(addr, "pbx").await;
    s.send(MORNING).await;
    assert_eq!(s.until_ack().await.1, 6);
    let text = sup::eventually("appraisal gauges", || async {
        let (_, _, text) = get(addr, "/metrics").await;
        a1(&text, "floorwatch_appraisal_points", "").map(|_| text)
    })
    .await;
    // Worked by hand from MORNING (rules of the seed: no_reason = 5 points, 10 CNY a point).
    assert_eq!(
        a1(&text, "floorwatch_appraisal_points", ""),
        Some(5.0),
        "{text}"
    );
    assert_eq!(a1(&text, "floorwatch_appraisal_deduction", ""), Some(50.0));
    assert_eq!(
        a1(&text, "floorwatch_appraisal_calls_answered", ""),
        Some(1.0)
    );
    assert_eq!(
        a1(&text, "floorwatch_appraisal_ring_episodes", ""),
        Some(1.0)
    );
    assert_eq!(
        a1(&text, "floorwatch_appraisal_ring_compliance", ""),
        Some(1.0)
    );
    assert_eq!(
        a1(&text, "floorwatch_appraisal_talk_seconds", ""),
        Some(3.0)
    );
    assert_eq!(a1(&text, "floorwatch_appraisal_aht_seconds", ""), Some(3.0));
    // The pause is open: counted up to the engine clock, 01:00:20.
    assert_eq!(
        a1(&text, "floorwatch_appraisal_pause_seconds", ""),
        Some(10.0)
    );
    assert_eq!(
        a1(
            &text,
            "floorwatch_appraisal_violations",
            r#",rule="unauthorized_pause""#
        ),
        Some(1.0)
    );
    assert_eq!(
        a1(
            &text,
            "floorwatch_appraisal_violations",
            r#",rule="ring_answer""#
        ),
        Some(0.0)
    );
    // a2 has no rings and no calls: no compliance and no AHT series, rather than a made-up 0.
    assert!(
        !text.contains(r#"floorwatch_appraisal_ring_compliance{agent="a2""#),
        "{text}"
    );
    assert!(
        !text.contains(r#"floorwatch_appraisal_aht_seconds{agent="a2""#),
        "{text}"
    );

    // A lead waives the violation (a journaled event); after a restart the gauges leave it
    // out.
    let (_, listed) = sup::get_json(addr, "/api/v1/violations").await;
    let id = listed["violations"][0]["id"].as_u64().expect("id");
    let (status, _) = sup::post(
        addr,
        &format!("/api/v1/violations/{id}/waive"),
        r#"{"why":"system fault"}"#,
    )
    .await;
    assert_eq!(status, 201);
    drop(s);
    d.shutdown().await;
    let d = sup::start(config).await;
    let addr = d.local_addr();
    let text = sup::eventually("appraisal gauges after restart", || async {
        let (_, _, text) = get(addr, "/metrics").await;
        a1(&text, "floorwatch_appraisal_points", "").map(|_| text)
    })
    .await;
    assert_eq!(
        a1(&text, "floorwatch_appraisal_points", ""),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        a1(
            &text,
            "floorwatch_appraisal_violations",
            r#",rule="unauthorized_pause""#
        ),
        Some(0.0)
    );
    assert_eq!(
        a1(&text, "floorwatch_appraisal_calls_answered", ""),
        Some(1.0)
    );
    d.shutdown().await;
}

/// `[metrics] pseudonymize_agents`: a live `/metrics` names the agent by its HMAC only
/// (expected value from Python's `hmac`); without the option, by its id.
#[tokio::test]
async fn pseudonymized_metrics_show_no_agent_id() {
    const AGENT: &str = "zhao.lei-9";
    const PSEUDONYM: &str = "a_bf02caeec67c";
    for (pseudonymize, want, not) in [(true, PSEUDONYM, AGENT), (false, AGENT, PSEUDONYM)] {
        let mut c = sup::config();
        if pseudonymize {
            let parsed = floorwatch::config::Config::from_toml_str(
                "[metrics]\npseudonymize_agents = true\npseudonym_key = \"0123456789abcdef\"\n",
            )
            .expect("valid");
            c.metrics = parsed.metrics;
        }
        let d = sup::start(c).await;
        let addr = d.local_addr();
        let mut s = Source::connect(addr, "pbx", None).await.expect("connects");
        s.json().await;
        s.send(format!(
            r#"{{"type":"agent.login","ts":1,"seq":1,"agent":"{AGENT}","team":"t1"}}"#
        ))
        .await;
        s.until_ack().await;
        let text = sup::eventually("the agent's series", || async {
            let (_, _, text) = get(addr, "/metrics").await;
            text.contains("floorwatch_agent_state{").then_some(text)
        })
        .await;
        assert!(
            text.contains(&format!("floorwatch_agent_state{{agent=\"{want}\"")),
            "{want} missing: {text}"
        );
        assert!(!text.contains(not), "{not} in {text}");
        d.shutdown().await;
    }
}
