//! Violation alerts end to end with a real Alertmanager (Debian's `prometheus-alertmanager`)
//! and a webhook receiver standing in for the team lead's phone: a live violation arrives
//! with the surface labels and then resolves; an Alertmanager outage loses nothing; the
//! outbox survives a daemon restart; escalation reaches the supervisor; the direct webhook
//! is signed; a late login (attendance) reaches the lead and resolves at the login.

use std::time::Duration;

use floorwatch::clock::Clock;
use floorwatch::config::{Config, TeamConfig, WebhookConfig};
use serde_json::Value;

use crate::daemon_support::{self, get, get_json, metric, Source};
use crate::servers::{Alertmanager, WebhookReceiver};

/// An Alertmanager that sends everything, one notification per alert, to `hook`.
fn am_config(hook: &str) -> String {
    format!(
        r#"route:
  receiver: lead
  group_by: ['...']
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: lead
    webhook_configs:
      - url: "{hook}"
        send_resolved: true
inhibit_rules:
  - source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
    equal: [violation_id]
"#
    )
}

/// A daemon whose engine clock follows the wall clock (fresh events), one team with a lead
/// and a supervisor, alerting to `am` (if any).
fn daemon_config(am: Option<&str>) -> Config {
    let mut c = daemon_support::config();
    c.source.idle = 2_000;
    c.teams = vec![TeamConfig {
        id: "hotline-1".into(),
        lead: Some("zhang.wei".into()),
        supervisor: Some("li.na".into()),
        members: (1..=6).map(|i| format!("a{i}")).collect(),
        sales_target: None,
    }];
    for m in &c.teams[0].members {
        c.rules
            .team_of
            .insert(m.as_str().into(), "hotline-1".into());
    }
    c.alerts.alertmanager = am.into_iter().map(str::to_string).collect();
    c.alerts.resend_every = 2_000;
    c.alerts.retry_max = 1_000;
    c.alerts.timeout = 1_000;
    c
}

fn now() -> String {
    Clock::system().now().to_string()
}

struct Phone {
    source: Source,
    seq: u64,
}

impl Phone {
    async fn connect(addr: std::net::SocketAddr) -> Phone {
        let (source, hello) = Source::connect_hello(addr, "pbx").await;
        let seq = hello["resume_after"].as_u64().unwrap_or(0);
        Phone { source, seq }
    }

    /// Sends one event stamped now (`body` without `ts`/`seq`), waits for its ack.
    async fn send(&mut self, body: &str) {
        self.seq += 1;
        let ev = format!(
            r#"{{"ts":"{}","seq":{},{}}}"#,
            now(),
            self.seq,
            body.trim_start_matches('{').trim_end_matches('}')
        );
        self.source.send(ev).await;
        let (errors, acked) = self.source.until_ack().await;
        assert!(errors.is_empty(), "rejected: {errors:?}");
        assert_eq!(acked, self.seq);
    }

    async fn login(&mut self, agents: &[&str]) {
        for a in agents {
            self.send(&format!(r#"{{"type":"agent.login","agent":"{a}"}}"#))
                .await;
        }
    }

    async fn pause(&mut self, agent: &str) {
        self.send(&format!(
            r#"{{"type":"agent.state","agent":"{agent}","state":"not_ready"}}"#
        ))
        .await;
    }

    async fn ready(&mut self, agent: &str) {
        self.send(&format!(
            r#"{{"type":"agent.state","agent":"{agent}","state":"ready"}}"#
        ))
        .await;
    }
}

/// Alerts in every notification the receiver got so far: (notification status is not
/// used; each alert's own) `(labels, status)`.
fn alerts_seen(hook: &WebhookReceiver) -> Vec<(Value, String)> {
    hook.received()
        .into_iter()
        .flat_map(|(_, body)| {
            body["alerts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|a| {
                    (
                        a["labels"].clone(),
                        a["status"].as_str().unwrap_or_default().to_string(),
                    )
                })
        })
        .collect()
}

/// The `violation_id` label (a string, as every label) as a number.
fn label_id(labels: &Value) -> Option<u64> {
    labels["violation_id"].as_str()?.parse().ok()
}

/// Waits up to `secs` for an alert of violation `id` with `severity` and `status`.
async fn wait_alert(
    hook: &WebhookReceiver,
    id: u64,
    severity: &str,
    status: &str,
    secs: u64,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some((labels, _)) = alerts_seen(hook)
            .into_iter()
            .find(|(l, s)| label_id(l) == Some(id) && l["severity"] == severity && s == status)
        {
            return labels;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {status} {severity} alert for violation {id} within {secs} s; got {:?}",
            alerts_seen(hook)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for `n` open violations on the floor; returns their ids by agent.
async fn open_violations(addr: std::net::SocketAddr, n: usize) -> Vec<(String, u64, String)> {
    daemon_support::eventually("open violations", || async {
        let (_, floor) = get_json(addr, "/api/v1/floor").await;
        let open: Vec<(String, u64, String)> = floor["open_violations"]
            .as_array()?
            .iter()
            .map(|v| {
                (
                    v["agent"].as_str().unwrap_or_default().to_string(),
                    v["id"].as_u64().unwrap_or(u64::MAX),
                    v["kind"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        (open.len() >= n).then_some(open)
    })
    .await
}

/// `floorwatch_alert_deliveries_total` with `outcome`, summed over targets that contain
/// `target` (`""`: all).
async fn deliveries(addr: std::net::SocketAddr, outcome: &str, target: &str) -> f64 {
    let (_, _, text) = get(addr, "/metrics").await;
    let prefix = format!("floorwatch_alert_deliveries_total{{outcome=\"{outcome}\",target=\"");
    text.lines()
        .filter(|l| l.starts_with(&prefix) && l.contains(target))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_violation_reaches_the_lead_with_its_labels_then_resolves() {
    let hook = WebhookReceiver::start().await;
    let am = Alertmanager::start(&am_config(&hook.url())).await;
    let daemon = daemon_support::start(daemon_config(Some(&am.url()))).await;
    let addr = daemon.local_addr();
    let mut phone = Phone::connect(addr).await;
    phone.login(&["a1"]).await;
    phone.pause("a1").await;
    // No reason: the 5 s grace runs out on the daemon's clock, with no further event.
    let open = open_violations(addr, 1).await;
    let (agent, id, kind) = open[0].clone();
    assert_eq!((agent.as_str(), kind.as_str()), ("a1", "no_reason"));
    let labels = wait_alert(&hook, id, "warning", "firing", 15).await;
    let want = serde_json::json!({
        "alertname": "FloorRuleViolation",
        "rule": "unauthorized_pause",
        "kind": "no_reason",
        "agent": "a1",
        "team": "hotline-1",
        "lead": "zhang.wei",
        "severity": "warning",
        "violation_id": id.to_string(),
    });
    assert_eq!(labels, want);
    // The notification carries the summary in the floor's language (Chinese by default)
    // and links to the violation in the daemon's API.
    let body = hook
        .received()
        .into_iter()
        .map(|(_, b)| b)
        .find(|b| label_id(&b["alerts"][0]["labels"]) == Some(id))
        .expect("notification");
    let alert = &body["alerts"][0];
    assert_eq!(
        alert["annotations"]["summary"],
        "坐席 a1 无故暂停（未选择原因）"
    );
    let link = alert["generatorURL"].as_str().expect("generatorURL");
    assert!(
        link.ends_with(&format!("/api/v1/violations/{id}")),
        "{link}"
    );
    let path = link
        .split_once(&addr.to_string())
        .map(|(_, p)| p)
        .expect("own address");
    let (status, record) = get_json(addr, path).await;
    assert_eq!((status, &record["kind"]), (200, &Value::from("no_reason")));

    phone.ready("a1").await;
    wait_alert(&hook, id, "warning", "resolved", 15).await;
    assert!(deliveries(addr, "delivered", "").await > 0.0);
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alertmanager_outage_of_ten_seconds_loses_nothing() {
    let hook = WebhookReceiver::start().await;
    let mut am = Alertmanager::start(&am_config(&hook.url())).await;
    let mut config = daemon_config(Some(&am.url()));
    // One-shot alerts must still be firing when Alertmanager is back, or it would take them
    // as resolved on arrival and tell nobody.
    config.alerts.resolve_hold = 30_000;
    let daemon = daemon_support::start(config).await;
    let addr = daemon.local_addr();
    let mut phone = Phone::connect(addr).await;
    phone.login(&["a2", "a3", "a4", "a5"]).await;
    am.stop();
    let down = tokio::time::Instant::now();
    for a in ["a2", "a3", "a4"] {
        phone.pause(a).await;
    }
    // A call that rings a5 and is not answered: `missed`, a one-shot.
    phone
        .send(r#"{"type":"call.ringing","call":"c-1","agent":"a5"}"#)
        .await;
    phone
        .send(r#"{"type":"call.no_answer","call":"c-1","agent":"a5"}"#)
        .await;
    let open = open_violations(addr, 3).await;
    daemon_support::eventually("a failed delivery", || async {
        (deliveries(addr, "failed", "").await > 0.0).then_some(())
    })
    .await;
    tokio::time::sleep_until(down + Duration::from_secs(10)).await;
    am.restart().await;
    let (_, listed) = get_json(addr, "/api/v1/violations").await;
    let all: Vec<u64> = listed["violations"]
        .as_array()
        .expect("violations")
        .iter()
        .filter_map(|v| v["id"].as_u64())
        .collect();
    assert_eq!(all.len(), 4, "three pauses and one missed call: {listed}");
    for (_, id, _) in &open {
        wait_alert(&hook, *id, "warning", "firing", 30).await;
    }
    for id in &all {
        wait_alert(&hook, *id, "warning", "firing", 30).await;
    }
    for a in ["a2", "a3", "a4"] {
        phone.ready(a).await;
    }
    for (_, id, _) in &open {
        wait_alert(&hook, *id, "warning", "resolved", 30).await;
    }
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_survives_a_daemon_restart_while_alertmanager_is_down() {
    let hook = WebhookReceiver::start().await;
    let mut am = Alertmanager::start(&am_config(&hook.url())).await;
    am.stop();
    let config = daemon_config(Some(&am.url()));
    let daemon = daemon_support::start(config.clone()).await;
    let addr = daemon.local_addr();
    let mut phone = Phone::connect(addr).await;
    phone.login(&["a6"]).await;
    phone.pause("a6").await;
    let (_, id, _) = open_violations(addr, 1).await[0].clone();
    daemon_support::eventually("the alert in the outbox", || async {
        (metric(addr, "floorwatch_alerts_outbox").await >= 1.0).then_some(())
    })
    .await;
    drop(phone);
    daemon.shutdown().await;

    am.restart().await;
    let again = daemon_support::start(config).await;
    let labels = wait_alert(&hook, id, "warning", "firing", 20).await;
    assert_eq!(labels["agent"], "a6");
    again.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_violation_open_past_escalate_after_goes_critical_to_the_supervisor() {
    let hook = WebhookReceiver::start().await;
    let am = Alertmanager::start(&am_config(&hook.url())).await;
    let mut config = daemon_config(Some(&am.url()));
    config.alerts.escalate_after = 2_000;
    let daemon = daemon_support::start(config).await;
    let addr = daemon.local_addr();
    let mut phone = Phone::connect(addr).await;
    phone.login(&["a1"]).await;
    phone.pause("a1").await;
    let (_, id, _) = open_violations(addr, 1).await[0].clone();
    let critical = wait_alert(&hook, id, "critical", "firing", 20).await;
    assert_eq!(critical["escalate_to"], "li.na");
    assert_eq!(critical["lead"], "zhang.wei");
    assert_eq!(critical["kind"], "no_reason");
    phone.ready("a1").await;
    wait_alert(&hook, id, "critical", "resolved", 20).await;
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_direct_webhook_is_signed_and_told_of_firing_and_resolution() {
    let hook = WebhookReceiver::start().await;
    let mut config = daemon_config(None);
    config.alerts.webhook = Some(WebhookConfig {
        url: format!("{}floor", hook.url()),
        secret: Some("s3cret".into()),
    });
    config.ui.language = "en".into();
    let daemon = daemon_support::start(config).await;
    let addr = daemon.local_addr();
    let mut phone = Phone::connect(addr).await;
    phone.login(&["a3"]).await;
    phone.pause("a3").await;
    let (_, id, _) = open_violations(addr, 1).await[0].clone();
    wait_alert(&hook, id, "warning", "firing", 15).await;
    phone.ready("a3").await;
    wait_alert(&hook, id, "warning", "resolved", 15).await;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"s3cret");
    for (headers, body) in hook.received() {
        let ts = headers
            .get("x-floorwatch-timestamp")
            .and_then(|v| v.to_str().ok())
            .expect("timestamp header");
        let sig = headers
            .get("x-floorwatch-signature")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("sha256="))
            .expect("signature header");
        // The receiver keeps the body as sent (hex) next to the headers.
        let raw_hex = headers
            .get("x-test-raw-body-hex")
            .and_then(|v| v.to_str().ok())
            .expect("raw body");
        let raw: Vec<u8> = (0..raw_hex.len() / 2)
            .map(|i| u8::from_str_radix(&raw_hex[2 * i..2 * i + 2], 16).expect("hex"))
            .collect();
        let raw = String::from_utf8(raw).expect("utf-8 body");
        let tag: Vec<u8> = (0..sig.len() / 2)
            .map(|i| u8::from_str_radix(&sig[2 * i..2 * i + 2], 16).expect("hex"))
            .collect();
        ring::hmac::verify(&key, format!("{ts}.{raw}").as_bytes(), &tag)
            .expect("signature verifies");
        assert_eq!(body["receiver"], "floorwatch");
        assert_eq!(
            body["alerts"][0]["annotations"]["summary"],
            "Agent a3 paused without a reason"
        );
    }
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_with_alerts_undelivered_sends_them_after_restart() {
    let hook = WebhookReceiver::start().await;
    let mut am = Alertmanager::start(&am_config(&hook.url())).await;
    am.stop();
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = daemon_support::free_port();
    let config = dir.path().join("floorwatch.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
listen = "{addr}"
[store]
dir = "{store}"
checkpoint_every = "1s"
[alerts]
resend_every = "2s"
retry_max = "1s"
timeout = "1s"
[alerts.alertmanager]
url = "{am}"
[[teams]]
id = "hotline-1"
lead = "zhang.wei"
members = ["a1", "a2"]
"#,
            store = dir.path().join("data").display(),
            am = am.url(),
        ),
    )
    .expect("write config");
    let mut child = KillOnDrop(crate::crash::spawn_daemon(&config));
    crate::crash::wait_ready(addr).await;
    let mut phone = Phone::connect(addr).await;
    phone.login(&["a1", "a2"]).await;
    // A missed call (raised by the event, acknowledged once journaled) and a pause without a
    // reason (raised by the daemon's clock 5 s later).
    phone
        .send(r#"{"type":"call.ringing","call":"c-9","agent":"a1"}"#)
        .await;
    phone
        .send(r#"{"type":"call.no_answer","call":"c-9","agent":"a1"}"#)
        .await;
    phone.pause("a2").await;
    open_violations(addr, 1).await;
    daemon_support::eventually("both alerts failing to deliver", || async {
        let outbox = metric(addr, "floorwatch_alerts_outbox").await;
        let failed = deliveries(addr, "failed", "").await > 0.0;
        (outbox >= 2.0 && failed).then_some(())
    })
    .await;
    let (_, listed) = get_json(addr, "/api/v1/violations").await;
    let ids: Vec<u64> = listed["violations"]
        .as_array()
        .expect("violations")
        .iter()
        .filter_map(|v| v["id"].as_u64())
        .collect();
    assert_eq!(ids.len(), 2, "{listed}");
    // The engine task writes the outbox in the same pass that raised them; give it a beat.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(phone);
    child.0.kill().expect("SIGKILL");
    child.0.wait().expect("reaped");

    am.restart().await;
    let _again = KillOnDrop(crate::crash::spawn_daemon(&config));
    crate::crash::wait_ready(addr).await;
    for id in ids {
        wait_alert(&hook, id, "warning", "firing", 20).await;
    }
}

/// A daemon process that is killed when the test ends, pass or fail.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_alertmanager_of_a_cluster_gets_every_alert_even_while_the_other_is_down() {
    let hook_1 = WebhookReceiver::start().await;
    let hook_2 = WebhookReceiver::start().await;
    let am_1 = Alertmanager::start(&am_config(&hook_1.url())).await;
    let mut am_2 = Alertmanager::start(&am_config(&hook_2.url())).await;
    am_2.stop();
    let mut config = daemon_config(Some(&am_1.url()));
    config.alerts.alertmanager.push(am_2.url());
    let daemon = daemon_support::start(config).await;
    let addr = daemon.local_addr();
    let mut phone = Phone::connect(addr).await;
    phone.login(&["a4"]).await;
    phone.pause("a4").await;
    let (_, id, _) = open_violations(addr, 1).await[0].clone();
    // The member that is up is not held back by the one that is down.
    wait_alert(&hook_1, id, "warning", "firing", 15).await;
    assert!(alerts_seen(&hook_2).is_empty());
    am_2.restart().await;
    wait_alert(&hook_2, id, "warning", "firing", 20).await;
    let target_2 = format!(
        "alertmanager:{}",
        am_2.url()
            .trim_start_matches("http://")
            .trim_end_matches('/')
    );
    assert!(deliveries(addr, "failed", &target_2).await > 0.0);
    daemon.shutdown().await;
}

/// Issue 16: a `late_login` is the lead's cue to arrange cover. A shift planned over a real
/// WebSocket (as a WFM system would) whose agent does not log in reaches the lead through a
/// real Alertmanager when the login grace runs out on the daemon's clock, with its labels and
/// the Chinese text; the late agent's login resolves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_login_reaches_the_lead_through_alertmanager_and_the_login_resolves_it() {
    let hook = WebhookReceiver::start().await;
    let am = Alertmanager::start(&am_config(&hook.url())).await;
    let mut config = daemon_config(Some(&am.url()));
    config.rules.attendance.login_grace = 3_000;
    let daemon = daemon_support::start(config).await;
    let addr = daemon.local_addr();
    let mut phone = Phone::connect(addr).await;
    phone.login(&["a1"]).await;
    let start = Clock::system().now();
    let end = start.plus(3_600_000);
    phone
        .send(&format!(
            r#"{{"type":"shift.scheduled","shift":"s-a2","agent":"a2","start":"{start}","end":"{end}","position":"P2"}}"#
        ))
        .await;
    // Nothing is raised within the grace: a2 is absent, and late.
    let (_, floor) = get_json(addr, "/api/v1/floor").await;
    assert_eq!(
        floor["open_violations"].as_array().map(Vec::len),
        Some(0),
        "{floor}"
    );
    let open = open_violations(addr, 1).await;
    let (agent, id, kind) = open[0].clone();
    assert_eq!((agent.as_str(), kind.as_str()), ("a2", "late_login"));
    let labels = wait_alert(&hook, id, "warning", "firing", 15).await;
    assert_eq!(
        labels,
        serde_json::json!({
            "alertname": "FloorRuleViolation",
            "rule": "attendance",
            "kind": "late_login",
            "agent": "a2",
            "team": "hotline-1",
            "lead": "zhang.wei",
            "severity": "warning",
            "violation_id": id.to_string(),
        })
    );
    let body = hook
        .received()
        .into_iter()
        .map(|(_, b)| b)
        .find(|b| label_id(&b["alerts"][0]["labels"]) == Some(id))
        .expect("notification");
    assert_eq!(
        body["alerts"][0]["annotations"]["summary"],
        "坐席 a2 班次已开始仍未登录（上班后立即登录服务系统），请安排顶岗"
    );
    // The record names the shift and the limit that applied.
    let (status, record) = get_json(addr, &format!("/api/v1/violations/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(record["evidence"]["shift"], "s-a2", "{record}");
    assert_eq!(record["evidence"]["limit_ms"], 3_000, "{record}");

    phone.login(&["a2"]).await;
    wait_alert(&hook, id, "warning", "resolved", 15).await;
    daemon.shutdown().await;
}
