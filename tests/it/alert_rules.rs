//! The shipped Prometheus rules and Alertmanager config (`config/`): the real `promtool` and
//! `amtool` accept them, the rules read only families the daemon exports, the routing tree
//! sends each alert to the right people, escalations inhibit their warnings in a real
//! Alertmanager, and a floor rule fires end to end: daemon → Prometheus → Alertmanager →
//! webhook.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::daemon_support::{self as sup, Source};
use crate::servers::{self, Alertmanager, Prometheus, WebhookReceiver};

fn shipped(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read_shipped(path: &str) -> String {
    std::fs::read_to_string(shipped(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// Runs a tool of the Debian packages; its stdout if it succeeds, else a panic with its
/// output.
fn run(tool: &str, package: &str, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {tool} ({e}): scripts/test installs it (apt-get install {package})")
        });
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{tool} {} failed ({}):\n{stdout}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn promtool_checks_and_unit_tests_the_shipped_rules() {
    let checked = run(
        "promtool",
        "prometheus",
        &["check", "rules", "config/prometheus/rules.yml"],
    );
    assert!(checked.contains("SUCCESS: 11 rules found"), "{checked}");
    let tested = run(
        "promtool",
        "prometheus",
        &["test", "rules", "config/prometheus/rules.test.yml"],
    );
    assert!(tested.contains("SUCCESS"), "{tested}");
    // The one-daemon example, and the scale-out ones (a site's pair, the central federation).
    for file in ["prometheus.yml", "site-pair.yml", "federation.yml"] {
        let checked = run(
            "promtool",
            "prometheus",
            &["check", "config", &format!("config/prometheus/{file}")],
        );
        assert!(checked.contains("SUCCESS"), "{file}: {checked}");
    }
}

/// Every rule of rules.yml has a case in rules.test.yml.
#[test]
fn every_shipped_rule_has_a_unit_test() {
    let rules = read_shipped("config/prometheus/rules.yml");
    let tests = read_shipped("config/prometheus/rules.test.yml");
    let names: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert_eq!(names.len(), 11, "{names:?}");
    for name in names {
        assert!(
            tests.contains(&format!("alertname: {name}\n")),
            "no test case for {name}"
        );
    }
}

#[test]
fn amtool_accepts_the_shipped_alertmanager_config() {
    let out = run(
        "amtool",
        "prometheus-alertmanager",
        &["check-config", "config/alertmanager.yml"],
    );
    assert!(out.contains("SUCCESS"), "{out}");
}

/// Where `amtool config routes test` sends a label set under the shipped config.
fn receivers(labels: &[&str]) -> String {
    let mut args = vec![
        "config",
        "routes",
        "test",
        "--config.file=config/alertmanager.yml",
    ];
    args.extend_from_slice(labels);
    run("amtool", "prometheus-alertmanager", &args)
        .trim()
        .to_string()
}

#[test]
fn the_shipped_routes_send_team_alerts_to_the_lead_and_escalations_to_the_supervisor() {
    let violation = [
        "alertname=FloorRuleViolation",
        "kind=late",
        "agent=a-0042",
        "lead=zhang.wei",
        "violation_id=17",
    ];
    let cases: &[(&[&str], &str)] = &[
        (
            &["rule=ring_answer", "team=hotline-1", "severity=warning"],
            "lead-zhang-wei",
        ),
        (
            &["rule=break_overrun", "team=hotline-2", "severity=warning"],
            "lead-li-na",
        ),
        (
            &["rule=ring_answer", "team=hotline-3", "severity=warning"],
            "lead-wang-fang",
        ),
        // Escalated: the supervisor named in escalate_to, and still the lead.
        (
            &[
                "rule=break_overrun",
                "team=hotline-2",
                "severity=critical",
                "escalate_to=chen.jie",
            ],
            "supervisor-chen-jie,lead-li-na",
        ),
        // A supervisor without a route of their own: the floor supervisor.
        (
            &[
                "rule=unauthorized_pause",
                "team=hotline-1",
                "severity=critical",
                "escalate_to=someone.else",
            ],
            "floor-supervisor,lead-zhang-wei",
        ),
        // A team without a lead route.
        (
            &["rule=ring_answer", "team=hotline-9", "severity=warning"],
            "floor-supervisor",
        ),
    ];
    for (labels, want) in cases {
        let mut all = violation.to_vec();
        all.extend_from_slice(labels);
        assert_eq!(receivers(&all), *want, "{all:?}");
    }
    // Floor alerts of rules.yml: queue alerts have no team, team alerts go to the lead.
    assert_eq!(
        receivers(&[
            "alertname=FloorCallsWaiting",
            "queue=sales",
            "severity=warning"
        ]),
        "floor-supervisor"
    );
    assert_eq!(
        receivers(&[
            "alertname=FloorAgentsPaused",
            "team=hotline-1",
            "severity=warning"
        ]),
        "lead-zhang-wei"
    );
}

/// The alert of `GET /api/v2/alerts` whose labels include `labels`.
fn find<'a>(alerts: &'a Value, labels: &Value) -> Option<&'a Value> {
    alerts.as_array()?.iter().find(|a| {
        labels
            .as_object()
            .is_some_and(|want| want.iter().all(|(k, v)| a["labels"][k] == *v))
    })
}

#[tokio::test]
async fn an_escalated_violation_inhibits_its_own_warning_and_nothing_else() {
    let am = Alertmanager::start(&read_shipped("config/alertmanager.yml")).await;
    let violation = |severity: &str, id: &str| {
        let mut labels = json!({
            "alertname": "FloorRuleViolation", "rule": "break_overrun", "kind": "per_break",
            "agent": "a-0007", "team": "hotline-2", "lead": "li.na", "reason": "break",
            "severity": severity, "violation_id": id,
        });
        if severity == "critical" {
            labels["escalate_to"] = json!("chen.jie");
        }
        labels
    };
    let posted = json!([
        {"labels": violation("critical", "17")},
        {"labels": violation("warning", "17")},
        // Another violation's warning: not escalated, stays active.
        {"labels": violation("warning", "18")},
        // A critical and a warning floor alert without violation_id: no inhibition.
        {"labels": {"alertname": "FloorSourceDisconnected", "severity": "critical", "instance": "fw-1:8080"}},
        {"labels": {"alertname": "FloorCallsWaiting", "severity": "warning", "queue": "sales"}},
    ]);
    let (status, body) = servers::post_json(am.addr(), "/api/v2/alerts", &posted).await;
    assert_eq!(status, 200, "{body}");

    // Alertmanager's inhibitor learns of source alerts from its own subscription, so on a
    // loaded machine the warning may be listed a moment before the critical inhibits it:
    // wait for the inhibition (a rule that never inhibits still fails here, by timeout).
    let alerts = sup::eventually("five alerts, warning 17 inhibited", || async {
        let (_, v) = sup::get_json(am.addr(), "/api/v2/alerts").await;
        let suppressed = find(&v, &violation("warning", "17"))
            .is_some_and(|a| a["status"]["state"] == "suppressed");
        (v.as_array().map(Vec::len) == Some(5) && suppressed).then_some(v)
    })
    .await;
    let state = |labels: Value| {
        let a = find(&alerts, &labels).unwrap_or_else(|| panic!("no {labels} in {alerts}"));
        a["status"]["state"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(state(violation("warning", "17")), "suppressed", "{alerts}");
    let inhibited = find(&alerts, &violation("warning", "17")).expect("warning 17");
    assert_eq!(
        inhibited["status"]["inhibitedBy"].as_array().map(Vec::len),
        Some(1),
        "{inhibited}"
    );
    assert_eq!(state(violation("critical", "17")), "active");
    assert_eq!(state(violation("warning", "18")), "active");
    assert_eq!(
        state(json!({"alertname": "FloorCallsWaiting"})),
        "active",
        "a critical floor alert must not silence warning floor alerts"
    );
}

/// The shipped rules.yml with every `for:` set to `for_`; panics unless it rewrote one per
/// rule. The expressions are left exactly as shipped.
fn rules_with_for(for_: &str) -> String {
    let shipped = read_shipped("config/prometheus/rules.yml");
    let mut rewritten = 0;
    let out: Vec<String> = shipped
        .lines()
        .map(|l| match l.trim_start().strip_prefix("for: ") {
            Some(_) => {
                rewritten += 1;
                let indent = &l[..l.len() - l.trim_start().len()];
                format!("{indent}for: {for_}")
            }
            None => l.to_string(),
        })
        .collect();
    let alerts = shipped.matches("- alert: ").count();
    assert_eq!(rewritten, alerts, "one `for:` per rule");
    out.join("\n") + "\n"
}

/// Names of the `floorwatch_*` series that rules.yml reads.
fn series_in_rules() -> Vec<String> {
    let rules = read_shipped("config/prometheus/rules.yml");
    let mut names: Vec<String> = rules
        .match_indices("floorwatch_")
        .map(|(i, _)| {
            rules[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Families being added to the daemon for alert delivery (not exported by every build yet).
const ALERT_DELIVERY_FAMILIES: &[&str] = &[
    "floorwatch_alert_deliveries_total",
    "floorwatch_alerts_pending",
    "floorwatch_alerts_dropped_total",
];

/// A floor that makes every family the rules read appear: agents in two states, an answered
/// and an abandoned queue call, one still waiting, one rejected event (and, sent after it,
/// one from next year).
const FLOOR: &str = r#"[
 {"type":"agent.login","ts":"2026-11-28T01:00:00Z","seq":1,"agent":"a1","team":"hotline-1"},
 {"type":"agent.login","ts":"2026-11-28T01:00:00Z","seq":2,"agent":"a2","team":"hotline-1","state":"not_ready","reason":"break"},
 {"type":"call.queued","ts":"2026-11-28T01:00:10Z","seq":3,"call":"c1","queue":"sales"},
 {"type":"call.ringing","ts":"2026-11-28T01:00:11Z","seq":4,"call":"c1","agent":"a1","queue":"sales"},
 {"type":"call.answered","ts":"2026-11-28T01:00:14Z","seq":5,"call":"c1","agent":"a1"},
 {"type":"call.queued","ts":"2026-11-28T01:00:20Z","seq":6,"call":"c2","queue":"sales"},
 {"type":"call.abandoned","ts":"2026-11-28T01:00:25Z","seq":7,"call":"c2"},
 {"type":"call.queued","ts":"2026-11-28T01:00:30Z","seq":8,"call":"c3","queue":"sales"},
 {"type":"agent.fly","ts":"2026-11-28T01:00:31Z","seq":9,"agent":"a1"}
]"#;

#[tokio::test]
async fn the_rules_read_only_families_the_daemon_exports() {
    let d = sup::start(sup::config()).await;
    let (mut source, _) = Source::connect_hello(d.local_addr(), "pbx").await;
    source.send(FLOOR).await;
    assert_eq!(source.until_ack().await.1, 8);
    // And one event from a clock a year ahead, refused.
    let next_year = floorwatch::clock::Clock::system()
        .now()
        .plus(366 * 86_400_000);
    source
        .send(format!(
            r#"{{"type":"agent.login","ts":{},"seq":10,"agent":"a3"}}"#,
            next_year.0
        ))
        .await;
    let (errors, _) = source.until_ack().await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    let (_, _, text) = sup::get(d.local_addr(), "/metrics").await;
    let names = series_in_rules();
    assert!(names.len() >= 9, "{names:?}");
    for name in names {
        let family = name.strip_suffix("_bucket").unwrap_or(&name);
        assert!(
            text.contains(&format!("# TYPE {family} "))
                || ALERT_DELIVERY_FAMILIES.contains(&family),
            "rules.yml reads {name}, which the daemon does not export:\n{text}"
        );
    }
    d.shutdown().await;
}

/// Calls queued on a queue no agent serves, one a second up to now: `calls` waiting. (Of
/// now, so that the engine clock follows the wall clock: a floor of the past holds it back,
/// which FloorEngineClockHeldBack reports.)
fn queued_calls(calls: u64) -> String {
    let now = floorwatch::clock::Clock::system().now();
    let events: Vec<Value> = (1..=calls)
        .map(|i| {
            json!({
                "type": "call.queued", "ts": now.plus(-1_000 * (calls - i) as i64).0, "seq": i,
                "call": format!("c-{i}"), "queue": "sales",
            })
        })
        .collect();
    Value::Array(events).to_string()
}

#[tokio::test]
async fn calls_waiting_fires_through_prometheus_and_alertmanager_to_the_webhook() {
    let began = Instant::now();
    let d = sup::start(sup::config()).await;
    let (mut source, _) = Source::connect_hello(d.local_addr(), "pbx").await;
    // 6 calls waiting: above FloorCallsWaiting's threshold of 5.
    source.send(queued_calls(6)).await;
    assert_eq!(source.until_ack().await.1, 6);

    let hook = WebhookReceiver::start().await;
    let am = Alertmanager::start(&servers::alertmanager_to_webhook(&hook.url())).await;
    let prom_config = format!(
        r#"global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [rules.yml]
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["{am}"]
scrape_configs:
  - job_name: floorwatch
    static_configs:
      - targets: ["{daemon}"]
"#,
        am = am.addr(),
        daemon = d.local_addr(),
    );
    // The shipped expressions, labels and annotations; only the `for:` durations are cut
    // to 2s so that the test does not wait a minute.
    let prom = Prometheus::start(&prom_config, &[("rules.yml", &rules_with_for("2s"))]).await;

    let firing = |_: &axum::http::HeaderMap, v: &Value| {
        v["status"] == "firing"
            && v["alerts"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|a| a["labels"]["alertname"] == "FloorCallsWaiting")
            })
    };
    let Some((_, note)) = hook.wait_for(firing, Duration::from_secs(45)).await else {
        panic!(
            "no FloorCallsWaiting notification after {:?}\nwebhook got: {:?}\n\
             prometheus alerts: {}\nprometheus log:\n{}\nalertmanager log:\n{}",
            began.elapsed(),
            hook.received(),
            prom.get_json("/api/v1/alerts").await,
            prom.log(),
            am.log()
        );
    };
    let alert = note["alerts"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|a| a["labels"]["alertname"] == "FloorCallsWaiting")
        })
        .expect("the alert");
    assert_eq!(alert["status"], "firing", "{alert}");
    assert_eq!(alert["labels"]["queue"], "sales", "{alert}");
    assert_eq!(alert["labels"]["severity"], "warning", "{alert}");
    assert_eq!(alert["labels"]["job"], "floorwatch", "{alert}");
    assert_eq!(
        alert["annotations"]["summary"], "6 calls waiting in queue sales",
        "{alert}"
    );
    assert_eq!(
        alert["annotations"]["summary_zh"], "队列 sales 有 6 个电话在排队",
        "{alert}"
    );
    // The only rule whose condition holds: nothing else was notified.
    for (_, v) in hook.received() {
        for a in v["alerts"].as_array().into_iter().flatten() {
            assert_eq!(a["labels"]["alertname"], "FloorCallsWaiting", "{v}");
        }
    }
    // Prometheus saw the same value the alert quotes.
    let v = prom
        .query(r#"floorwatch_calls_waiting{queue="sales"}"#)
        .await;
    assert_eq!(v["data"]["result"][0]["value"][1], "6", "{v}");

    eprintln!(
        "end to end: alert at the webhook {:?} after start",
        began.elapsed()
    );
    drop(source);
    d.shutdown().await;
}
