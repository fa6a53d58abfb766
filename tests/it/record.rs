//! The appraisal as the floor's system of record, through a live daemon: named people and
//! their scopes (every role × every endpoint × own and other team), waivers and demerits as
//! journaled events, closed months and their statements (export + replay gives the same
//! bytes), a restart with a changed config leaving a past month unchanged, the engine's
//! refusals, and `replay --what-if --compare` on a stream worked by hand.

use std::net::SocketAddr;

use floorwatch::config::{Config, Role};
use floorwatch::daemon::DaemonHandle;
use serde_json::{json, Value};

use crate::daemon_support::{self as sup, call, Source};

/// Users of the floor.
const USERS: &[sup::UserRow] = &[
    ("管理员", Role::Admin, &[], None, "admin-token"),
    ("质检-陈", Role::Qa, &[], None, "qa-token"),
    ("王芳", Role::Lead, &["t1"], None, "lead1-token"),
    ("李娜", Role::Lead, &["t2"], None, "lead2-token"),
    ("a1", Role::Agent, &[], Some("a1"), "a1-token"),
    ("tv", Role::Viewer, &[], None, "viewer-token"),
    ("pbx", Role::Ingest, &[], None, "ingest-token"),
];

fn config_in(dir: &std::path::Path) -> Config {
    let mut c = sup::config();
    c.store.dir = dir.to_path_buf();
    c.server.users = sup::users(USERS);
    c.server.auth_proxy = Some(floorwatch::config::AuthProxy {
        header: "X-Forwarded-User".into(),
        trusted: vec!["127.0.0.1/32".parse().expect("net")],
    });
    c.rules.team_of.insert("a1".into(), "t1".into());
    c.rules.team_of.insert("a2".into(), "t2".into());
    c
}

/// 2026-11-20 10:00 in Asia/Shanghai.
const NOV: i64 = 1_795_658_400_000;

/// Two agents of two teams, each with a pause without a reason (5 points) in November.
fn november() -> String {
    json!([
        {"type": "agent.login", "ts": NOV, "seq": 1, "agent": "a1"},
        {"type": "agent.login", "ts": NOV, "seq": 2, "agent": "a2"},
        {"type": "agent.state", "ts": NOV + 1_000, "seq": 3, "agent": "a1", "state": "not_ready"},
        {"type": "agent.state", "ts": NOV + 1_000, "seq": 4, "agent": "a2", "state": "not_ready"},
        {"type": "agent.state", "ts": NOV + 60_000, "seq": 5, "agent": "a1", "state": "ready"},
        {"type": "agent.state", "ts": NOV + 60_000, "seq": 6, "agent": "a2", "state": "ready"}
    ])
    .to_string()
}

async fn daemon_with_november(dir: &std::path::Path) -> (DaemonHandle, SocketAddr, Vec<Value>) {
    let d = sup::start(config_in(dir)).await;
    let addr = d.local_addr();
    let mut s = Source::connect(addr, "pbx", Some("ingest-token"))
        .await
        .expect("ingest");
    s.json().await; // hello
    s.send(november()).await;
    assert_eq!(s.until_ack().await.1, 6);
    let v = call(
        addr,
        "GET",
        "/api/v1/violations",
        Some("admin-token"),
        &[],
        None,
    )
    .await;
    assert_eq!(v.status, 200, "{}", v.body);
    let list = v.json()["violations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(list.len(), 2, "{list:?}");
    (d, addr, list)
}

fn id_of(list: &[Value], agent: &str) -> u64 {
    list.iter()
        .find(|v| v["agent"] == agent)
        .and_then(|v| v["id"].as_u64())
        .expect("a violation of the agent")
}

#[tokio::test]
async fn the_access_table_every_role_every_endpoint_own_and_other_team() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (d, addr, list) = daemon_with_november(dir.path()).await;
    let (v1, v2) = (id_of(&list, "a1"), id_of(&list, "a2"));
    let tokens = [
        "admin-token",
        "qa-token",
        "lead1-token",
        "lead2-token",
        "a1-token",
        "viewer-token",
        "ingest-token",
    ];
    let demerit_a1 = r#"{"agent":"a1","item":"eating","note":"seen"}"#;
    let shift_t1 = r#"[{"shift":"s-x","agent":"a1","start":"2026-12-30T08:00:00+08:00","end":"2026-12-30T16:00:00+08:00"}]"#;
    // Status for each token, in the order above. A lead of t1 may act on a1 (team t1), not
    // on a2 (team t2); an agent reads only their own record.
    let table: Vec<(&str, String, Option<&str>, [u16; 7])> = vec![
        (
            "GET",
            "/api/v1/floor".into(),
            None,
            [200, 200, 200, 200, 403, 200, 403],
        ),
        (
            "GET",
            "/api/v1/violations".into(),
            None,
            [200, 200, 200, 200, 200, 200, 403],
        ),
        (
            "GET",
            format!("/api/v1/violations/{v1}"),
            None,
            [200, 200, 200, 200, 200, 200, 403],
        ),
        (
            "GET",
            format!("/api/v1/violations/{v2}"),
            None,
            [200, 200, 200, 200, 403, 200, 403],
        ),
        (
            "GET",
            "/api/v1/shifts".into(),
            None,
            [200, 200, 200, 200, 403, 200, 403],
        ),
        (
            "GET",
            "/api/v1/appraisal?month=2026-11".into(),
            None,
            [200, 200, 200, 200, 200, 200, 403],
        ),
        (
            "POST",
            "/api/v1/demerits".into(),
            Some(demerit_a1),
            [201, 201, 201, 403, 403, 403, 403],
        ),
        (
            "POST",
            "/api/v1/shifts".into(),
            Some(shift_t1),
            [201, 403, 201, 403, 403, 403, 403],
        ),
        (
            "GET",
            "/api/v1/periods/2026-11/statement".into(),
            None,
            [200, 200, 200, 200, 403, 403, 403],
        ),
    ];
    for (method, path, body, want) in &table {
        for (token, want) in tokens.iter().zip(want) {
            let r = call(addr, method, path, Some(token), &[], *body).await;
            assert_eq!(r.status, *want, "{method} {path} as {token}: {}", r.body);
        }
        let r = call(addr, method, path, None, &[], *body).await;
        assert_eq!(r.status, 401, "{method} {path} without a token");
        let r = call(addr, method, path, Some("nobody"), &[], *body).await;
        assert_eq!(r.status, 401, "{method} {path} with an unknown token");
    }
    // The agent's list holds only their own violations (and the demerits on a1).
    let mine = call(
        addr,
        "GET",
        "/api/v1/violations",
        Some("a1-token"),
        &[],
        None,
    )
    .await;
    let mine = mine.json()["violations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        !mine.is_empty() && mine.iter().all(|v| v["agent"] == "a1"),
        "{mine:?}"
    );
    // Waivers: a lead of the other team is refused, saying why; the own lead may.
    let w = |id: u64| format!("/api/v1/violations/{id}/waive");
    let body = Some(r#"{"why":"system fault"}"#);
    let r = call(addr, "POST", &w(v1), Some("lead2-token"), &[], body).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.json()["error"].as_str().unwrap_or("").contains("team t1"),
        "{}",
        r.body
    );
    for token in ["a1-token", "viewer-token", "ingest-token"] {
        let r = call(addr, "POST", &w(v1), Some(token), &[], body).await;
        assert_eq!(r.status, 403, "{token}: {}", r.body);
    }
    let r = call(addr, "POST", &w(v1), Some("lead1-token"), &[], body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["violation"]["waiver"]["by"], "王芳");
    let r = call(addr, "POST", &w(v2), Some("qa-token"), &[], body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    // Un-waive: own lead yes, other no.
    let u = format!("/api/v1/violations/{v1}/unwaive");
    let r = call(addr, "POST", &u, Some("lead2-token"), &[], body).await;
    assert_eq!(r.status, 403);
    let r = call(addr, "POST", &u, Some("lead1-token"), &[], body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    // Closing a month: qa and admin only.
    let close = "/api/v1/periods/2026-11/close";
    for token in ["lead1-token", "a1-token", "viewer-token", "ingest-token"] {
        let r = call(addr, "POST", close, Some(token), &[], None).await;
        assert_eq!(r.status, 403, "{token}: {}", r.body);
    }
    let r = call(addr, "POST", close, Some("qa-token"), &[], None).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["by"], "质检-陈");
    let r = call(addr, "POST", close, Some("admin-token"), &[], None).await;
    assert_eq!(r.status, 409, "closing twice: {}", r.body);
    // The auth proxy names a user from a trusted peer (loopback here).
    let r = call(
        addr,
        "POST",
        "/api/v1/demerits",
        None,
        &[("X-Forwarded-User", "王芳")],
        Some(r#"{"agent":"a1","item":"mobile_phone"}"#),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["violations"][0]["evidence"]["recorded_by"], "王芳");
    let r = call(
        addr,
        "POST",
        "/api/v1/demerits",
        None,
        &[("X-Forwarded-User", "mallory")],
        Some(r#"{"agent":"a1","item":"mobile_phone"}"#),
    )
    .await;
    assert_eq!(r.status, 401);
    d.shutdown().await;
}

/// The violation's id, the waiver chain and refusals: one of each, through the API and
/// through `/ingest`.
#[tokio::test]
async fn closed_months_and_the_engines_refusals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (d, addr, list) = daemon_with_november(dir.path()).await;
    let v1 = id_of(&list, "a1");
    let admin = Some("admin-token");
    let why = Some(r#"{"why":"checked"}"#);
    // Unknown item, bad points, unknown violation, not waived.
    let r = call(
        addr,
        "POST",
        "/api/v1/demerits",
        admin,
        &[],
        Some(r#"{"agent":"a1","item":"sleeping"}"#),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("unknown discipline item"), "{}", r.body);
    let r = call(
        addr,
        "POST",
        "/api/v1/demerits",
        admin,
        &[],
        Some(r#"{"agent":"a1","item":"equipment_damage","points":9}"#),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("from 1 to 5"), "{}", r.body);
    let r = call(
        addr,
        "POST",
        "/api/v1/violations/999/waive",
        admin,
        &[],
        why,
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = call(
        addr,
        "POST",
        &format!("/api/v1/violations/{v1}/unwaive"),
        admin,
        &[],
        why,
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("not waived"), "{}", r.body);
    // A closed month refuses waivers of its violations, and a second close.
    let r = call(
        addr,
        "POST",
        "/api/v1/periods/2026-11/close",
        admin,
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let digest = r.json()["digest"].as_str().expect("digest").to_string();
    let r = call(
        addr,
        "POST",
        &format!("/api/v1/violations/{v1}/waive"),
        admin,
        &[],
        why,
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("2026-11, a closed month"), "{}", r.body);
    let r = call(
        addr,
        "GET",
        "/api/v1/periods/2026-11/statement",
        admin,
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-floorwatch-digest"), Some(digest.as_str()));
    assert_eq!(r.header("x-floorwatch-closed"), Some("true"));
    // The same refusals from a source on /ingest: error replies, nothing applied.
    let mut s = Source::connect(addr, "crm", Some("ingest-token"))
        .await
        .expect("ingest");
    s.json().await;
    let bad = json!([
        {"type": "demerit.recorded", "ts": NOV + 120_000, "seq": 1, "agent": "a1", "item": "sleeping", "by": "x"},
        {"type": "violation.waived", "ts": NOV + 120_000, "seq": 2, "violation": v1, "by": "x", "why": "y"},
        {"type": "period.closed", "ts": NOV + 120_000, "seq": 3, "period": "2026-11", "by": "x", "digest": "0".repeat(64)}
    ]);
    s.send(bad.to_string()).await;
    let mut reasons = Vec::new();
    while reasons.len() < 3 {
        let v = s.json().await;
        if v["type"] == "error" {
            reasons.push(
                v["reason"]
                    .as_str()
                    .unwrap_or("")
                    .split(':')
                    .next()
                    .unwrap_or("")
                    .to_string(),
            );
        }
    }
    assert_eq!(reasons, ["unknown_item", "period_closed", "already_closed"]);
    let r = call(
        addr,
        "GET",
        "/api/v1/periods/2026-11/statement",
        admin,
        &[],
        None,
    )
    .await;
    assert_eq!(
        r.header("x-floorwatch-digest"),
        Some(digest.as_str()),
        "unchanged"
    );
    d.shutdown().await;
}

/// Anyone can check a statement: the export of the journal up to the close, replayed with
/// `--appraisal`, gives the same bytes and digest; and a restart with a changed config
/// leaves the statement of the past month byte-identical.
#[tokio::test]
async fn export_and_replay_give_the_closed_statement_and_a_changed_config_changes_no_past_month() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (d, addr, list) = daemon_with_november(dir.path()).await;
    let admin = Some("admin-token");
    let v2 = id_of(&list, "a2");
    let r = call(
        addr,
        "POST",
        &format!("/api/v1/violations/{v2}/waive"),
        admin,
        &[],
        Some(r#"{"why":"outage"}"#),
    )
    .await;
    assert_eq!(r.status, 201);
    let r = call(
        addr,
        "POST",
        "/api/v1/demerits",
        admin,
        &[],
        Some(r#"{"agent":"a1","item":"equipment_damage","points":4,"note":"耳麦"}"#),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = call(
        addr,
        "POST",
        "/api/v1/periods/2026-11/close",
        admin,
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let closed = r.json();
    let digest = closed["digest"].as_str().expect("digest").to_string();
    let closed_at = closed["closed_at"].as_str().expect("closed_at").to_string();
    let statement = call(
        addr,
        "GET",
        "/api/v1/periods/2026-11/statement",
        admin,
        &[],
        None,
    )
    .await;
    assert_eq!(statement.status, 200);
    let csv = statement.body.clone();
    assert_eq!(floorwatch::config::digest_of(&csv), digest);
    // Worked by hand: a1 has 5 points (no reason) in November; the demerit was recorded
    // now, in December; a2's 5 are waived.
    let row = |agent: &str| {
        csv.lines()
            .find(|l| l.starts_with(&format!("{agent},")))
            .map(|l| l.split(',').map(str::to_string).collect::<Vec<_>>())
            .expect("row")
    };
    let header: Vec<&str> = csv.lines().next().expect("header").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect(name);
    assert_eq!(row("a1")[col("points")], "5");
    assert_eq!(row("a1")[col("deduction")], "50");
    assert_eq!(row("a1")[col("violations_discipline")], "0");
    assert_eq!(row("a2")[col("points")], "0");
    assert_eq!(row("a2")[col("violations_unauthorized_pause")], "0");
    d.shutdown().await;

    // Export up to and including the close, and replay it.
    let cfg = dir.path().join("floorwatch.toml");
    std::fs::write(
        &cfg,
        format!("[store]\ndir = {:?}\n", dir.path().display().to_string()),
    )
    .expect("config");
    let to = floorwatch::time::Timestamp::parse_rfc3339(&closed_at)
        .expect("time")
        .plus(1);
    let (ok, export, err) = sup::run_floorwatch(&[
        "export",
        "--config",
        cfg.to_str().expect("path"),
        "--to",
        &to.0.to_string(),
    ]);
    assert!(ok, "{err}");
    let file = dir.path().join("export.ndjson");
    std::fs::write(&file, &export).expect("write");
    let out = dir.path().join("replayed.csv");
    let (ok, _, err) = sup::run_floorwatch(&[
        "replay",
        "--month",
        "2026-11",
        "--appraisal",
        out.to_str().expect("path"),
        file.to_str().expect("path"),
    ]);
    assert!(ok, "{err}");
    let replayed = std::fs::read_to_string(&out).expect("csv");
    assert_eq!(replayed, csv, "export + replay = the closed statement");
    assert_eq!(floorwatch::config::digest_of(&replayed), digest);
    // A transcript for whoever audits by hand (`--nocapture` shows it).
    eprintln!(
        "closed 2026-11 at {closed_at}, X-Floorwatch-Digest {digest}\nstatement:\n{csv}\
         export --to {}: {} lines\nreplay --month 2026-11 --appraisal: sha256 {}, {}",
        to.0,
        export.lines().count(),
        floorwatch::config::digest_of(&replayed),
        if replayed == csv {
            "byte-identical"
        } else {
            "DIFFERENT"
        },
    );

    // A restart with other rules (and other money) leaves November as it was.
    let mut c = config_in(dir.path());
    c.rules.unauthorized_pause.points = 8;
    c.rules.money_per_point = 20.0;
    let d = sup::start(c).await;
    let addr = d.local_addr();
    let again = call(
        addr,
        "GET",
        "/api/v1/periods/2026-11/statement",
        admin,
        &[],
        None,
    )
    .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body, csv, "byte-identical after the restart");
    assert_eq!(again.header("x-floorwatch-digest"), Some(digest.as_str()));
    let api = call(
        addr,
        "GET",
        "/api/v1/appraisal?month=2026-11&format=csv",
        admin,
        &[],
        None,
    )
    .await;
    assert_eq!(api.body, csv);
    d.shutdown().await;
}

/// `replay --what-if FILE --compare`, worked by hand: a 20-minute break (per_break, 2
/// points) is no violation with breaks of 25 minutes; a late ring costs 15 yuan instead of
/// 10; a waived pause without reason stays waived under the other rules.
#[test]
fn what_if_compares_points_and_money_per_agent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = |m: i64| NOV + m;
    let stream = [
        json!({"type": "agent.login", "ts": t(0), "agent": "a"}),
        json!({"type": "agent.login", "ts": t(0), "agent": "b"}),
        json!({"type": "agent.login", "ts": t(0), "agent": "c"}),
        json!({"type": "agent.state", "ts": t(0), "agent": "b", "state": "not_ready"}),
        json!({"type": "agent.state", "ts": t(60_000), "agent": "b", "state": "ready"}),
        json!({"type": "call.ringing", "ts": t(60_000), "call": "k1", "agent": "c"}),
        json!({"type": "call.answered", "ts": t(80_000), "call": "k1", "agent": "c"}),
        json!({"type": "call.ended", "ts": t(90_000), "call": "k1", "agent": "c"}),
        json!({"type": "agent.state", "ts": t(600_000), "agent": "a", "state": "not_ready", "reason": "break"}),
        json!({"type": "agent.state", "ts": t(1_800_000), "agent": "a", "state": "ready"}),
        // b's no_reason was raised first: violation 1.
        json!({"type": "violation.waived", "ts": t(2_000_000), "violation": 1, "by": "qa", "why": "ok"}),
    ];
    let file = dir.path().join("s.ndjson");
    std::fs::write(
        &file,
        stream
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
            + "\n",
    )
    .expect("write");
    let what_if = dir.path().join("what-if.toml");
    std::fs::write(
        &what_if,
        "[reasons.break]\nmax = \"25m\"\nallowance = true\n[reasons.meal]\n[appraisal]\nmoney_per_point = 15\n",
    )
    .expect("write");
    let (ok, out, err) = sup::run_floorwatch(&[
        "replay",
        "--what-if",
        what_if.to_str().expect("path"),
        "--compare",
        "--month",
        "2026-11",
        file.to_str().expect("path"),
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "agent,team,points,deduction,what_if_points,what_if_deduction,points_change,deduction_change\n\
         a,unassigned,2,20,0,0,-2,-20\n\
         b,unassigned,0,0,0,0,0,0\n\
         c,unassigned,1,10,1,15,0,5\n"
    );
    // --compare needs --what-if and --month.
    let (ok, _, err) = sup::run_floorwatch(&[
        "replay",
        "--what-if",
        what_if.to_str().expect("path"),
        "--compare",
        file.to_str().expect("path"),
    ]);
    assert!(!ok && err.contains("--month"), "{err}");
}

/// `floorwatch schedule import --url` against a running daemon, as a WFM export would be
/// loaded: the roster's shifts are planned once (a second import changes nothing), a roster
/// with a bad row sends nothing and names the line, and a lead cannot plan another team's
/// shift (the daemon's 403, nothing planned).
#[tokio::test]
async fn a_roster_is_imported_into_a_running_daemon_once_and_a_bad_one_sends_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = sup::start(config_in(dir.path())).await;
    let url = format!("http://{}", d.local_addr());
    let write = |name: &str, rows: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, format!("shift,agent,start,end,position,team\n{rows}")).expect("csv");
        p.to_str().expect("path").to_string()
    };
    let good = write(
        "good.csv",
        "s1,a1,2027-01-04 08:00,2027-01-04 16:00,P01,t1\n\
         s2,a2,2027-01-04 16:00,2027-01-05 00:00,P01,t2\n",
    );
    let bad = write(
        "bad.csv",
        "s3,a1,2027-01-05 08:00,2027-01-05 16:00,P01,t1\n\
         s4,a2,2027-01-05 16:00,2027-01-05 08:00,P01,t2\n",
    );
    let other_team = write("t2.csv", "s5,a2,2027-01-06 08:00,2027-01-06 16:00,,t2\n");
    let import = |file: String, token: &'static str| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            sup::run_floorwatch(&["schedule", "import", &file, "--url", &url, "--token", token])
        })
    };
    let planned = || async {
        let r = call(
            d.local_addr(),
            "GET",
            "/api/v1/shifts",
            Some("admin-token"),
            &[],
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["shifts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|s| {
                (
                    s["shift"].as_str().unwrap_or("?").to_string(),
                    s["start"].as_str().unwrap_or("?").to_string(),
                    s["team"].as_str().unwrap_or("?").to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    // 08:00 in Shanghai is 00:00Z; 16:00 is 08:00Z.
    let want = vec![
        (
            "s1".to_string(),
            "2027-01-04T00:00:00.000Z".to_string(),
            "t1".to_string(),
        ),
        (
            "s2".to_string(),
            "2027-01-04T08:00:00.000Z".to_string(),
            "t2".to_string(),
        ),
    ];

    let (ok, _, err) = import(good.clone(), "admin-token").await.expect("join");
    assert!(ok, "{err}");
    assert!(err.contains("2 shifts sent"), "{err}");
    assert_eq!(planned().await, want);

    // The same roster again: the same ids, nothing new.
    let (ok, _, err) = import(good, "admin-token").await.expect("join");
    assert!(ok, "{err}");
    assert_eq!(planned().await, want);

    // One bad row (it ends before it starts, line 3): nothing is sent, not even s3.
    let (ok, _, err) = import(bad, "admin-token").await.expect("join");
    assert!(!ok, "a roster with a bad row must fail");
    assert!(err.contains("bad.csv:3:"), "{err}");
    assert!(err.contains("nothing was sent"), "{err}");
    assert_eq!(planned().await, want);

    // The lead of t1 cannot plan t2's shift.
    let (ok, _, err) = import(other_team, "lead1-token").await.expect("join");
    assert!(!ok, "another team's shift must be refused");
    assert!(err.contains("403"), "{err}");
    assert_eq!(planned().await, want);
    d.shutdown().await;
}
