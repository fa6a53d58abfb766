//! The console pages (`/lead`, `/me`) and the CJK font in a real headless Chromium, against a
//! live daemon with named users: a lead signs in, waives a violation and records a demerit
//! through the page (the API then shows both with the lead's name), a lead of another team
//! is refused and told why, an agent sees their own record only, every control has a name
//! for screen readers, and Chinese renders from the served font on a machine without any
//! CJK font. Screenshots of both pages at 390×844 and 1366×768 in both languages go to
//! `target/screenshots/`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use floorwatch::config::{Config, Role, TeamConfig};
use floorwatch::daemon::DaemonHandle;
use serde_json::{json, Value};

use crate::browser::{Browser, Options};
use crate::daemon_support::{self as sup, call, Source};

/// How long a page may take to show what the daemon has.
const SHOWN: Duration = Duration::from_secs(15);

const USERS: &[sup::UserRow] = &[
    ("王芳", Role::Lead, &["t1"], None, "lead1-token"),
    ("李娜", Role::Lead, &["t2"], None, "lead2-token"),
    ("质检-陈", Role::Qa, &[], None, "qa-token"),
    ("张敏", Role::Agent, &[], Some("a1"), "a1-token"),
    ("刘洋", Role::Agent, &[], Some("a2"), "a2-token"),
    ("tv", Role::Viewer, &[], None, "viewer-token"),
];

fn config() -> Config {
    let mut c = sup::config();
    // Events are stamped near now: the engine clock follows the daemon's.
    c.source.idle = 2_000;
    c.server.users = sup::users(USERS);
    c.server.tokens.ingest = vec!["pbx-token".into()];
    c.teams = [("t1", "王芳", 4), ("t2", "李娜", 6)]
        .iter()
        .map(|(id, lead, target)| TeamConfig {
            id: id.to_string(),
            lead: Some(lead.to_string()),
            supervisor: None,
            members: Vec::new(),
            sales_target: Some(*target),
        })
        .collect();
    // What config validation derives from `[[teams]] sales_target`.
    c.rules.sales_target.insert("t1".into(), 4);
    c.rules.sales_target.insert("t2".into(), 6);
    c
}

fn now_ms() -> i64 {
    floorwatch::clock::Clock::system().now().0
}

/// A floor: a1 and a3 in t1, a2 in t2. A minute ago a1 and a2 paused without a reason (5
/// points each, raised 5 s later and open since), and a3 went on a break 60 s ago. a4 (t1)
/// has a shift that began 10 minutes ago and has not logged in (absent; late_login).
async fn floor() -> (DaemonHandle, Source) {
    let d = sup::start(config()).await;
    let addr = d.local_addr();
    let mut pbx = source(addr, "pbx").await;
    let t = now_ms();
    let events = json!([
        {"type": "agent.login", "ts": t - 120_000, "seq": 1, "agent": "a1", "team": "t1", "name": "张敏"},
        {"type": "agent.login", "ts": t - 120_000, "seq": 2, "agent": "a2", "team": "t2", "name": "刘洋"},
        {"type": "agent.login", "ts": t - 120_000, "seq": 3, "agent": "a3", "team": "t1", "name": "陈静"},
        {"type": "agent.state", "ts": t - 60_000, "seq": 4, "agent": "a1", "state": "not_ready"},
        {"type": "agent.state", "ts": t - 60_000, "seq": 5, "agent": "a2", "state": "not_ready"},
        {"type": "agent.state", "ts": t - 60_000, "seq": 6, "agent": "a3", "state": "not_ready", "reason": "break"},
    ]);
    let shift = json!({"type": "shift.scheduled", "ts": t - 3_600_000, "seq": 1, "shift": "s-a4",
        "agent": "a4", "team": "t1", "start": t - 600_000, "end": t + 4 * 3_600_000});
    // The roster comes from a workforce-management system, a source of its own.
    let mut wfm = source(addr, "wfm").await;
    wfm.send(shift.to_string()).await;
    let (got, _) = wfm.until_ack().await;
    assert!(got.iter().all(|m| m["type"] != "error"), "{got:?}");
    pbx.send(events.to_string()).await;
    let (got, _) = pbx.until_ack().await;
    assert!(got.iter().all(|m| m["type"] != "error"), "{got:?}");
    // Both pauses are judged once the clock passes their grace.
    sup::eventually("two no_reason violations and a late login", || async {
        let v = violations_with(addr, "?status=open&rule=unauthorized_pause", "qa-token").await;
        let late = violations_with(addr, "?agent=a4&rule=attendance", "qa-token").await;
        (v.len() == 2 && late.len() == 1).then_some(())
    })
    .await;
    (d, pbx)
}

/// A phone system on `/ingest` with the ingest token, past its hello.
async fn source(addr: SocketAddr, name: &str) -> Source {
    let mut s = Source::connect(addr, name, Some("pbx-token"))
        .await
        .expect("connects");
    let hello = s.json().await;
    assert_eq!(hello["type"], "hello", "{hello}");
    s
}

/// `GET /api/v1/violations{query}` with `token`: the records.
async fn violations_with(addr: SocketAddr, query: &str, token: &str) -> Vec<Value> {
    let (status, v) = get_json_with(addr, &format!("/api/v1/violations{query}"), token).await;
    assert_eq!(status, 200, "{v}");
    v["violations"].as_array().expect("violations").clone()
}

async fn get_json_with(addr: SocketAddr, path: &str, token: &str) -> (u16, Value) {
    let r = call(addr, "GET", path, Some(token), &[], None).await;
    (r.status, r.json())
}

/// A GET whose body is bytes: the head as text, the body.
async fn get_bytes(addr: SocketAddr, path: &str) -> (String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(sup::WAIT, s.read_to_end(&mut buf))
        .await
        .expect("in time")
        .expect("read");
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").expect("head");
    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
    (
        head.replacen("http/1.1", "HTTP/1.1", 1),
        buf[end + 4..].to_vec(),
    )
}

/// `target/screenshots/`.
fn shots_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("screenshots")
}

async fn open(addr: SocketAddr, path: &str, o: Options) -> Browser {
    let mut b = Browser::launch_with(o).await;
    b.navigate(&format!("http://{addr}{path}")).await;
    b
}

/// Signs in through the page's form, with the keyboard: the token field has the focus.
async fn sign_in(b: &mut Browser, token: &str) {
    b.wait_for(
        "the sign-in form",
        "!document.getElementById('signin').classList.contains('hidden') && document.activeElement.id == 'token'",
        SHOWN,
    )
    .await;
    b.type_text(token).await;
    b.press("Enter", false).await;
    b.wait_for(
        "signed in",
        "!document.querySelector('main').classList.contains('hidden')",
        SHOWN,
    )
    .await;
    // The token is kept in the tab's session, never in the URL.
    assert_eq!(
        b.eval("sessionStorage.getItem('floorwatch.token')").await,
        token
    );
    let url = b.eval("location.href").await;
    assert!(!url.as_str().unwrap_or("").contains(token), "{url}");
}

fn item(id: u64) -> String {
    format!("document.querySelector('#violations li[data-violation-id=\"{id}\"]')")
}

async fn open_violation_of(addr: SocketAddr, agent: &str) -> u64 {
    let v = violations_with(addr, &format!("?agent={agent}&status=open"), "qa-token").await;
    v[0]["id"].as_u64().expect("id")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lead_waives_and_records_a_demerit_through_the_page_and_the_api_names_them() {
    let (d, mut pbx) = floor().await;
    let addr = d.local_addr();
    let a1 = open_violation_of(addr, "a1").await;
    let mut b = open(addr, "/lead", Options::default()).await;
    sign_in(&mut b, "lead1-token").await;
    assert_eq!(b.eval("document.documentElement.lang").await, "zh-CN");
    b.wait_for(
        "t1 live from the feed",
        "document.querySelector('#teams [data-team=\"t1\"] [data-agent=\"a1\"]') && document.getElementById('status').dataset.status == 'live'",
        SHOWN,
    )
    .await;
    // My teams only: t2 is not shown.
    assert_eq!(
        b.eval("[...document.querySelectorAll('#teams [data-team]')].map(t => t.dataset.team)")
            .await,
        json!(["t1"])
    );
    let who = b.eval("document.getElementById('who').innerText").await;
    assert!(who.as_str().unwrap().contains("王芳"), "{who}");
    // Attendance: a4 is absent, 10 minutes late, and logged in late (late_login).
    let absent = b
        .wait_for(
            "a4 absent",
            "(e => e && e.innerText)(document.querySelector('#absent [data-absent-agent=\"a4\"]'))",
            SHOWN,
        )
        .await;
    assert!(absent.as_str().unwrap().contains("已迟到 10:"), "{absent}");
    assert_eq!(
        b.eval("document.querySelector('#teams [data-team=\"t1\"] [data-agent=\"a4\"]').dataset.absent")
            .await,
        "1"
    );
    b.wait_for(
        "a4's late login listed",
        "document.querySelector('#late [data-late-agent=\"a4\"]')",
        SHOWN,
    )
    .await;
    // Live, without a reload: a3 comes back from the break.
    pbx.send(
        json!({"type": "agent.state", "ts": now_ms(), "seq": 7, "agent": "a3", "state": "ready"})
            .to_string(),
    )
    .await;
    b.wait_for(
        "a3 ready on the page",
        "(e => e && e.dataset.state == 'ready')(document.querySelector('#teams [data-agent=\"a3\"]'))",
        SHOWN,
    )
    .await;

    // Waive a1's violation with the keyboard only: Tab to its button, Enter, type, Enter.
    b.wait_for("a1's violation", &item(a1), SHOWN).await;
    let button = format!(
        "{}.querySelector('button[data-action=\"waive\"]')",
        item(a1)
    );
    let mut reached = false;
    for _ in 0..80 {
        b.press("Tab", false).await;
        if b.eval(&format!("document.activeElement === {button}"))
            .await
            == true
        {
            reached = true;
            break;
        }
    }
    assert!(reached, "the waive button is reachable with Tab");
    b.press("Enter", false).await;
    b.wait_for(
        "the reason field has the focus",
        &format!("document.activeElement.id == 'why-{a1}'"),
        SHOWN,
    )
    .await;
    b.type_text("系统故障导致暂停原因未上报").await;
    b.press("Enter", false).await;
    b.wait_for(
        "waived on the page",
        &format!("{} && {}.dataset.status == 'waived'", item(a1), item(a1)),
        SHOWN,
    )
    .await;
    let text = b.eval(&format!("{}.innerText", item(a1))).await;
    assert!(text.as_str().unwrap().contains("王芳"), "{text}");

    // A demerit: a3 took a private mobile call (3 points, the manual's 2.2.1).
    b.eval(
        "(() => { const f = id => document.getElementById(id); \
         f('demerit-agent').value = 'a3'; f('demerit-item').value = 'mobile_phone'; \
         f('demerit-item').dispatchEvent(new Event('change')); \
         f('demerit-note').value = '现场接听私人手机'; \
         f('demerit-form').querySelector('button[type=submit]').click(); })()",
    )
    .await;
    let said = b
        .wait_for(
            "the demerit recorded",
            "(e => e && e.innerText)(document.querySelector('#demerit-result .msg.ok'))",
            SHOWN,
        )
        .await;
    assert!(said.as_str().unwrap().contains("3 分"), "{said}");

    // A pause approved: a1 goes to a meeting for 30 minutes.
    b.eval(
        "(() => { const f = id => document.getElementById(id); \
         f('approval-agent').value = 'a1'; f('approval-reason').value = 'meeting'; \
         f('approval-minutes').value = '30'; \
         f('approval-form').querySelector('button[type=submit]').click(); })()",
    )
    .await;
    b.wait_for(
        "the approval listed",
        "document.querySelector('#approvals [data-approval-agent=\"a1\"]')",
        SHOWN,
    )
    .await;

    // The API has both, by the lead's name.
    let r = call(
        addr,
        "GET",
        &format!("/api/v1/violations/{a1}"),
        Some("qa-token"),
        &[],
        None,
    )
    .await;
    let v = r.json();
    assert_eq!(v["status"], "waived", "{v}");
    assert_eq!(v["waiver"]["by"], "王芳", "{v}");
    assert_eq!(v["waivers"][0]["why"], "系统故障导致暂停原因未上报", "{v}");
    let demerits = violations_with(addr, "?agent=a3&rule=discipline", "qa-token").await;
    assert_eq!(demerits.len(), 1, "{demerits:?}");
    assert_eq!(demerits[0]["kind"], "mobile_phone");
    assert_eq!(demerits[0]["points"], 3);
    assert_eq!(demerits[0]["evidence"]["recorded_by"], "王芳");
    assert_eq!(demerits[0]["evidence"]["note"], "现场接听私人手机");
    let (_, approvals) = get_json_with(addr, "/api/v1/approvals", "qa-token").await;
    assert_eq!(approvals["approvals"][0]["agent"], "a1", "{approvals}");
    assert_eq!(
        approvals["approvals"][0]["reason"], "meeting",
        "{approvals}"
    );

    // The month so far on the page: a1's 5 points are waived (0), a3 has the demerit's 3
    // (30 CNY at the default 10 a point).
    let row = |agent: &str, col: &str| {
        format!("(e => e && e.innerText)(document.querySelector('#month-rows tr[data-agent=\"{agent}\"] [data-col=\"{col}\"]'))")
    };
    b.wait_for(
        "a3's 3 points in the month",
        &format!("{} == '3'", row("a3", "points")),
        SHOWN,
    )
    .await;
    assert_eq!(b.eval(&row("a3", "deduction")).await, "30.00 元");
    b.wait_for(
        "a1's waived points gone",
        &format!("{} == '0'", row("a1", "points")),
        SHOWN,
    )
    .await;
    // The other team's agents are not in a t1 lead's table.
    assert_eq!(
        b.eval("document.querySelector('#month-rows tr[data-agent=\"a2\"]')")
            .await,
        Value::Null
    );
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lead_of_another_team_cannot_act_and_the_page_says_why() {
    let (d, _pbx) = floor().await;
    let addr = d.local_addr();
    let a1 = open_violation_of(addr, "a1").await;
    let mut b = open(addr, "/lead?lang=en", Options::default()).await;
    sign_in(&mut b, "lead2-token").await;
    b.wait_for(
        "t2's violation",
        "document.querySelector('#violations li[data-agent=\"a2\"]')",
        SHOWN,
    )
    .await;
    assert_eq!(
        b.eval(&item(a1)).await,
        Value::Null,
        "t1's violation is not among a t2 lead's"
    );
    // Shown all teams, t1's violation has its button disabled, with the reason beside it.
    b.eval("document.getElementById('show-all').click()").await;
    b.wait_for("t1's violation", &item(a1), SHOWN).await;
    let button = format!(
        "{}.querySelector('button[data-action=\"waive\"]')",
        item(a1)
    );
    assert_eq!(b.eval(&format!("{button}.disabled")).await, true);
    let why = b
        .eval(&format!("{}.querySelector('.why-not').innerText", item(a1)))
        .await;
    let why = why.as_str().unwrap().to_string();
    assert!(
        why.contains("team t1") && why.contains("not one of yours (t2)"),
        "{why}"
    );
    // Its description is the reason, for screen readers too.
    assert_eq!(
        b.eval(&format!(
            "document.getElementById({button}.getAttribute('aria-describedby')).innerText"
        ))
        .await,
        json!(why)
    );
    // A demerit for a1 goes to the API, which refuses it; the page says why.
    b.eval(
        "(() => { const f = id => document.getElementById(id); \
         f('demerit-agent').value = 'a1'; f('demerit-item').value = 'eating'; \
         f('demerit-form').querySelector('button[type=submit]').click(); })()",
    )
    .await;
    let said = b
        .wait_for(
            "the refusal",
            "(e => e && e.innerText)(document.querySelector('#demerit-result .msg.error'))",
            SHOWN,
        )
        .await;
    let said = said.as_str().unwrap();
    assert!(
        said.contains("Cannot act: this agent is in team t1, not one of yours (t2)"),
        "{said}"
    );
    assert!(
        said.contains("a lead acts on their own teams only"),
        "the API's reason: {said}"
    );
    // Nothing was recorded, and the violation is still open.
    assert!(
        violations_with(addr, "?agent=a1&rule=discipline", "qa-token")
            .await
            .is_empty()
    );
    let r = call(
        addr,
        "GET",
        &format!("/api/v1/violations/{a1}"),
        Some("qa-token"),
        &[],
        None,
    )
    .await;
    assert_eq!(r.json()["status"], "open");
    // The API refuses the waiver itself too (the button only says so early).
    let r = call(
        addr,
        "POST",
        &format!("/api/v1/violations/{a1}/waive"),
        Some("lead2-token"),
        &[],
        Some(r#"{"why":"x"}"#),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_sees_their_own_record_only() {
    let (d, _pbx) = floor().await;
    let addr = d.local_addr();
    let a1 = open_violation_of(addr, "a1").await;
    let a2 = open_violation_of(addr, "a2").await;
    let mut b = open(addr, "/me", Options::default()).await;
    sign_in(&mut b, "a1-token").await;
    b.wait_for("a1's violation", &item(a1), SHOWN).await;
    assert_eq!(
        b.eval("[...document.querySelectorAll('#violations li[data-agent]')].map(l => l.dataset.agent)")
            .await,
        json!(["a1"])
    );
    assert_eq!(b.eval(&item(a2)).await, Value::Null);
    let text = b.eval("document.body.innerText").await;
    let text = text.as_str().unwrap();
    assert!(!text.contains("a2") && !text.contains("刘洋"), "{text}");
    assert!(text.contains("无故暂停，未选原因"), "{text}");
    // The violation says what it costs: 5 points, 50 yuan at 10 a point.
    let meta = b
        .eval(&format!("{}.querySelector('.meta').innerText", item(a1)))
        .await;
    assert!(
        meta.as_str()
            .unwrap_or_default()
            .ends_with("5 分 · 50.00 元"),
        "{meta}"
    );
    // Today's figures from the standing: one violation, 5 points, 50 CNY at 10 a point.
    let fig = |period: &str, key: &str| {
        format!("(e => e && e.innerText)(document.querySelector('#{period} [data-figure=\"{key}\"] b'))")
    };
    b.wait_for(
        "today's points",
        &format!("{} == '5'", fig("today", "points")),
        SHOWN,
    )
    .await;
    assert_eq!(b.eval(&fig("today", "violations")).await, "1");
    assert_eq!(b.eval(&fig("today", "deduction")).await, "50.00 元");
    assert_eq!(b.eval(&fig("month", "points")).await, "5");
    // Paused without a reason since a minute ago, 5 points open.
    let state = b.eval("document.getElementById('state').innerText").await;
    assert!(
        state.as_str().unwrap().starts_with("暂停 · 无原因"),
        "{state}"
    );
    // The API behind the page names nobody else either.
    let me = call(addr, "GET", "/api/v1/me", Some("a1-token"), &[], None).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert!(
        !me.body.contains("a2") && !me.body.contains("a3"),
        "{}",
        me.body
    );
    assert_eq!(me.json()["now"]["agent"], "a1");
    // Someone else's page is not theirs: a lead's token on /me says so.
    let mut other = open(addr, "/me", Options::default()).await;
    other
        .wait_for(
            "the sign-in form",
            "document.activeElement && document.activeElement.id == 'token'",
            SHOWN,
        )
        .await;
    other.type_text("lead1-token").await;
    other.press("Enter", false).await;
    let msg = other
        .wait_for(
            "why not",
            "(e => !e.classList.contains('hidden') && e.innerText)(document.getElementById('signin-msg'))",
            SHOWN,
        )
        .await;
    assert!(msg.as_str().unwrap().contains("坐席本人"), "{msg}");
    assert!(
        other
            .eval("document.querySelector('main').classList.contains('hidden')")
            .await
            == true
    );
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agents_break_counts_down_live_against_its_limit_and_the_allowance() {
    let (d, _pbx) = floor().await;
    let addr = d.local_addr();
    let mut b = open(addr, "/me?lang=en", Options::default()).await;
    sign_in(&mut b, "a1-token").await;
    // a1's pause has no reason: no countdown, and no break time used today.
    b.wait_for(
        "the allowance",
        "document.getElementById('allowance').dataset.usedMs == '0'",
        SHOWN,
    )
    .await;
    assert_eq!(
        b.eval("document.getElementById('pause').innerText").await,
        ""
    );
    assert_eq!(
        b.eval("document.getElementById('allowance').innerText")
            .await,
        "Break allowance today: used 0:00 of 1:00:00, 1:00:00 left"
    );
    // Now a1 goes on a break: the 15 minutes of a break count down, ticking.
    let mut pbx = source(addr, "pbx2").await;
    pbx.send(
        json!({"type": "agent.state", "ts": now_ms(), "seq": 1, "agent": "a1", "state": "not_ready", "reason": "break"})
            .to_string(),
    )
    .await;
    pbx.until_ack().await;
    let left = b
        .wait_for(
            "the break countdown",
            "Number(document.getElementById('pause').dataset.leftMs)",
            SHOWN,
        )
        .await;
    let left = left.as_f64().unwrap();
    // 15 min less the time the page took to show it (the bounds are wide: this checks
    // which figure is shown, not how fast).
    assert!((840_000.0..=900_000.0).contains(&left), "{left}");
    let first = b.eval("document.getElementById('pause').innerText").await;
    assert!(first.as_str().unwrap().starts_with("break: 14:"), "{first}");
    assert!(first.as_str().unwrap().ends_with("left"), "{first}");
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let later = b
        .eval("Number(document.getElementById('pause').dataset.leftMs)")
        .await;
    assert!(
        later.as_f64().unwrap() < left - 1_000.0,
        "it ticks: {left} then {later}"
    );
    // The allowance counts the break too: what the break has lasted, and growing.
    let used = b
        .eval("Number(document.getElementById('allowance').dataset.usedMs)")
        .await
        .as_f64()
        .unwrap();
    let lasted = 900_000.0 - later.as_f64().unwrap();
    assert!(
        (used - lasted).abs() < 1_500.0,
        "used {used}, lasted {lasted}"
    );
    assert!(used >= 2_000.0, "{used}");
    d.shutdown().await;
}

/// Every control the page offers a keyboard or a screen reader, without a name
/// (`Accessibility.getFullAXTree`): role and the DOM node, for the failure message.
async fn unnamed_controls(b: &mut Browser) -> Vec<String> {
    const CONTROLS: [&str; 8] = [
        "button",
        "textbox",
        "combobox",
        "checkbox",
        "spinbutton",
        "link",
        "progressbar",
        "ListBox",
    ];
    b.ax_nodes()
        .await
        .into_iter()
        .filter(|n| n["ignored"] != true)
        .filter(|n| CONTROLS.contains(&n["role"]["value"].as_str().unwrap_or("")))
        .filter(|n| n["name"]["value"].as_str().unwrap_or("").trim().is_empty())
        .map(|n| format!("{} (node {})", n["role"]["value"], n["backendDOMNodeId"]))
        .collect()
}

/// Elements of `main` whose box reaches past the right edge of the viewport, or whose text
/// is wider than their box (cut).
const OVERFLOW: &str = "(() => { const out = []; \
    if (document.documentElement.scrollWidth > innerWidth) out.push('page ' + document.documentElement.scrollWidth); \
    for (const e of document.querySelectorAll('header *, main *')) { \
      if (!e.offsetParent || e.closest('.sr-only, .scroll')) continue; \
      const r = e.getBoundingClientRect(); \
      if (r.width && r.right > innerWidth + 1) out.push((e.id || e.className || e.tagName) + ' right ' + r.right); \
      const st = getComputedStyle(e); \
      if (st.overflowX == 'hidden' && e.scrollWidth > e.clientWidth + 1) out.push('cut: ' + e.innerText); \
    } return out; })()";

#[tokio::test(flavor = "multi_thread")]
async fn screenshots_of_both_pages_at_phone_and_desktop_size_in_both_languages() {
    let (d, _pbx) = floor().await;
    let addr = d.local_addr();
    let dir = shots_dir();
    for (page, token, ready, title) in [
        (
            "lead",
            "lead1-token",
            "document.querySelector('#teams [data-agent=\"a1\"]') && document.querySelector('#violations li[data-agent]') && document.querySelector('#month-rows tr[data-agent]')",
            ("组长控制台", "Team lead console"),
        ),
        (
            "me",
            "a1-token",
            "document.querySelector('#violations li[data-agent]') && document.querySelector('#month [data-figure]')",
            ("我的表现", "My performance"),
        ),
    ] {
        for (w, h, mobile) in [(390, 844, true), (1366, 768, false)] {
            for lang in ["zh-CN", "en"] {
                let o = Options {
                    width: w,
                    height: h,
                    mobile,
                    no_cjk_fonts: false,
                };
                let mut b = open(addr, &format!("/{page}?lang={lang}"), o).await;
                sign_in(&mut b, token).await;
                b.wait_for(&format!("{page} filled"), ready, SHOWN).await;
                b.eval("document.fonts.ready.then(() => true)").await;
                tokio::time::sleep(Duration::from_millis(1_200)).await;
                let what = format!("{page} {lang} {w}x{h}");
                assert_eq!(b.eval("document.documentElement.lang").await, lang, "{what}");
                let text = b.eval("document.body.innerText").await;
                let want = if lang == "en" { title.1 } else { title.0 };
                assert!(text.as_str().unwrap().contains(want), "{what}: {text}");
                assert_eq!(b.eval(OVERFLOW).await, json!([]), "{what}: cut or off screen");
                assert_eq!(
                    unnamed_controls(&mut b).await,
                    Vec::<String>::new(),
                    "{what}: controls without a name"
                );
                let name = format!("{page}-{lang}-{w}x{h}");
                let png = b.screenshot(&dir.join(format!("{name}.png"))).await;
                assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
                b.screenshot_full(&dir.join(format!("{name}-full.png")))
                    .await;
                println!("pages: {}", dir.join(format!("{name}.png")).display());
            }
        }
    }
    d.shutdown().await;
}

/// Every CJK character (the font's unicode-range) in the built-in pages' sources.
fn page_cjk_chars() -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("src/wallboard.html")];
    for e in std::fs::read_dir(root.join("src/http/pages")).expect("pages dir") {
        files.push(e.expect("entry").path());
    }
    let mut chars = std::collections::BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        chars.extend(text.chars().filter(|c| {
            let c = u32::from(*c);
            (0x3000..=0x30FF).contains(&c)
                || (0x3400..=0x4DBF).contains(&c)
                || (0x4E00..=0x9FFF).contains(&c)
                || (0xFF00..=0xFFEF).contains(&c)
        }));
    }
    chars.into_iter().collect()
}

/// The CJK characters of `chars` that the served font lacks: drawn in "floorwatch CJK", each
/// is compared with U+9FFF, a character in the font's range that no font has (so it draws the
/// font's missing-glyph box). A browser without any CJK font of its own falls back to nothing
/// else, so a character drawn like U+9FFF is missing.
fn missing_glyphs_js(chars: &str) -> String {
    format!(
        "(async () => {{ const chars = [...{chars}].filter(ch => /[\\u3000-\\u30ff\\u3400-\\u9fff\\uff00-\\uffef]/.test(ch)); \
         await document.fonts.load('40px \"floorwatch CJK\"', chars.join('') + '\\u9fff'); \
         const c = document.createElement('canvas'); c.width = 48; c.height = 48; \
         const g = c.getContext('2d', {{willReadFrequently: true}}); \
         const draw = ch => {{ g.clearRect(0, 0, 48, 48); g.font = '40px \"floorwatch CJK\", \"DejaVu Sans\"'; \
           g.fillStyle = '#000'; g.textBaseline = 'top'; g.fillText(ch, 2, 2); return g.getImageData(0, 0, 48, 48).data.join(); }}; \
         const none = draw('\\u9fff'); \
         return chars.filter(ch => draw(ch) == none); }})()",
        chars = serde_json::to_string(chars).expect("json")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn chinese_renders_from_the_served_font_in_a_browser_without_any_cjk_font() {
    let d = sup::start(config()).await;
    let addr = d.local_addr();
    // The font itself: served from the binary, a WOFF2 file.
    let (head, body) = get_bytes(addr, "/assets/cjk.woff2").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("content-type: font/woff2"), "{head}");
    let file =
        std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/fonts/cjk.woff2"))
            .expect("font file");
    assert!(body == file, "the served font is the file");
    assert!(body.starts_with(b"wOF2"));

    let o = Options {
        no_cjk_fonts: true,
        ..Options::default()
    };
    let mut b = open(addr, "/lead", o).await;
    // This browser has no CJK font: without the served font, two different characters
    // draw the same missing-glyph box (so the comparison below means something).
    let same = b
        .eval(
            "(() => { const c = document.createElement('canvas'); c.width = 48; c.height = 48; \
             const g = c.getContext('2d'); const draw = ch => { g.clearRect(0, 0, 48, 48); \
             g.font = '40px \"DejaVu Sans\"'; g.fillText(ch, 2, 40); return g.getImageData(0, 0, 48, 48).data.join(); }; \
             return draw('班') == draw('组') && draw('班') != draw('A'); })()",
        )
        .await;
    assert_eq!(same, true, "the browser must have no CJK font of its own");
    // The check finds a character the font lacks (乹, U+4E79, is not in GB 2312), and not one
    // it has.
    assert_eq!(b.eval(&missing_glyphs_js("班乹组")).await, json!(["乹"]));
    let chars = page_cjk_chars();
    assert!(chars.chars().count() > 150, "{chars}");
    let missing = b.eval(&missing_glyphs_js(&chars)).await;
    assert_eq!(
        missing,
        json!([]),
        "characters of the pages missing from assets/fonts/cjk.woff2: run scripts/font-subset"
    );
    // Names too: GB 2312's hanzi are in (a name from the rarer half of it, and a common one).
    let names = b
        .eval(&missing_glyphs_js("王芳张敏刘洋陈静冯磊邓超婷蕾爽翔"))
        .await;
    assert_eq!(names, json!([]));
    // The page asked for the font and got it.
    let loaded = b
        .eval("document.fonts.ready.then(() => [...document.fonts].filter(f => f.family.includes('floorwatch CJK')).map(f => f.status))")
        .await;
    assert_eq!(loaded, json!(["loaded"]), "lead page");

    // The wallboard too, photographed for the eye.
    let mut pbx = source(addr, "pbx").await;
    let t = now_ms();
    pbx.send(
        json!([{"type": "agent.login", "ts": t, "seq": 1, "agent": "a1", "team": "t1", "name": "张敏"},
               {"type": "agent.state", "ts": t, "seq": 2, "agent": "a1", "state": "not_ready", "reason": "meal"}])
        .to_string(),
    )
    .await;
    pbx.until_ack().await;
    b.navigate(&format!("http://{addr}/?token=viewer-token"))
        .await;
    b.wait_for(
        "a1's tile",
        "document.querySelector('.tile[data-agent=\"a1\"]')",
        SHOWN,
    )
    .await;
    let loaded = b
        .eval("document.fonts.ready.then(() => [...document.fonts].filter(f => f.family.includes('floorwatch CJK')).map(f => f.status))")
        .await;
    assert_eq!(loaded, json!(["loaded"]), "wallboard");
    let tile = b
        .eval("document.querySelector('.tile[data-agent=\"a1\"]').innerText")
        .await;
    let missing = b
        .eval(&missing_glyphs_js(tile.as_str().unwrap_or("").trim()))
        .await;
    assert_eq!(missing, json!([]), "{tile}");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let path = shots_dir().join("wallboard-zh-no-system-cjk-font.png");
    b.screenshot(&path).await;
    println!("pages: {}", path.display());
    d.shutdown().await;
}

/// The pages are public (they hold no data); what they read is not, and is scoped.
#[tokio::test(flavor = "multi_thread")]
async fn the_pages_are_open_and_the_api_behind_them_is_scoped() {
    let (d, _pbx) = floor().await;
    let addr = d.local_addr();
    for path in [
        "/lead",
        "/me",
        "/assets/console.js",
        "/assets/lead.js",
        "/assets/me.js",
        "/assets/console.css",
    ] {
        let r = call(addr, "GET", path, None, &[], None).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        if !path.starts_with("/assets") {
            let csp = r.header("content-security-policy").unwrap_or("");
            assert!(
                csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"),
                "{csp}"
            );
            assert!(r
                .header("content-type")
                .unwrap_or("")
                .starts_with("text/html"));
        }
    }
    // Who is signed in: every user; an ingest token is not a person.
    let r = call(addr, "GET", "/api/v1/session", None, &[], None).await;
    assert_eq!(r.status, 401);
    let r = call(
        addr,
        "GET",
        "/api/v1/session",
        Some("lead1-token"),
        &[],
        None,
    )
    .await;
    let s = r.json();
    assert_eq!(
        (s["name"].as_str(), s["role"].as_str()),
        (Some("王芳"), Some("lead"))
    );
    assert_eq!(s["teams"], json!(["t1"]));
    let mobile = s["discipline"]
        .as_array()
        .expect("catalog")
        .iter()
        .find(|i| i["item"] == "mobile_phone")
        .cloned();
    assert_eq!(
        mobile,
        Some(json!({"item": "mobile_phone", "name": "在现场拨打或接听私人手机", "points": 3}))
    );
    let r = call(addr, "GET", "/api/v1/session", Some("qa-token"), &[], None).await;
    assert_eq!(r.json()["teams"], Value::Null, "qa: every team");
    let r = call(addr, "GET", "/api/v1/session", Some("pbx-token"), &[], None).await;
    assert_eq!(r.status, 403);

    // An agent's own view: agents only.
    for (token, status) in [
        ("a1-token", 200),
        ("lead1-token", 403),
        ("viewer-token", 403),
    ] {
        let r = call(addr, "GET", "/api/v1/me", Some(token), &[], None).await;
        assert_eq!(r.status, status, "{token}: {}", r.body);
    }

    // The standing, once computed: a lead sees their teams' rows, an agent their own.
    sup::eventually("the standing", || async {
        let (_, v) = get_json_with(addr, "/api/v1/standing", "qa-token").await;
        (v["month"].as_array().map_or(0, Vec::len) == 4).then_some(())
    })
    .await;
    let agents = |v: &Value, period: &str| -> Vec<String> {
        v[period]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| r["agent"].as_str().unwrap_or("").to_string())
            .collect()
    };
    for (token, want) in [
        ("qa-token", vec!["a1", "a2", "a3", "a4"]),
        ("lead1-token", vec!["a1", "a3", "a4"]),
        ("lead2-token", vec!["a2"]),
        ("a1-token", vec!["a1"]),
    ] {
        let (status, v) = get_json_with(addr, "/api/v1/standing", token).await;
        assert_eq!(status, 200, "{token}");
        assert_eq!(agents(&v, "month"), want, "{token} month");
        assert_eq!(agents(&v, "today"), want, "{token} today");
    }
    let (_, v) = get_json_with(addr, "/api/v1/standing?team=t2", "qa-token").await;
    assert_eq!(agents(&v, "month"), vec!["a2"]);

    // Approvals: a lead approves for their own team only, and is `by`, whatever the body says.
    let body = r#"{"agent":"a1","reason":"meeting","minutes":30,"by":"someone else"}"#;
    let r = call(
        addr,
        "POST",
        "/api/v1/approvals",
        Some("lead2-token"),
        &[],
        Some(body),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("not one of yours"), "{}", r.body);
    let r = call(
        addr,
        "POST",
        "/api/v1/approvals",
        Some("lead1-token"),
        &[],
        Some(body),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["by"], "王芳");
    d.shutdown().await;
}

/// The floor feed takes a page's token as a WebSocket subprotocol, never in the URL.
#[tokio::test(flavor = "multi_thread")]
async fn the_floor_feed_takes_the_token_as_a_subprotocol() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let (d, _pbx) = floor().await;
    let addr = d.local_addr();
    let hex = |t: &str| t.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    let dial = |protocols: Option<String>| async move {
        let mut req = format!("ws://{addr}/ws/floor")
            .into_client_request()
            .expect("request");
        if let Some(p) = protocols {
            req.headers_mut()
                .insert("sec-websocket-protocol", p.parse().expect("header"));
        }
        tokio_tungstenite::connect_async(req).await
    };
    let ok = dial(Some(format!(
        "floorwatch.floor, floorwatch.bearer.{}",
        hex("lead1-token")
    )))
    .await;
    let (mut ws, resp) = ok.expect("a lead's token opens the feed");
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("floorwatch.floor")
    );
    let first = sup::read_json(&mut ws).await;
    assert_eq!(first["type"], "snapshot");
    for (what, protocols) in [
        ("no token", None),
        (
            "a wrong token",
            Some(format!(
                "floorwatch.floor, floorwatch.bearer.{}",
                hex("nope")
            )),
        ),
        (
            "not hex",
            Some("floorwatch.floor, floorwatch.bearer.zz".to_string()),
        ),
        // An agent may not see the floor.
        (
            "an agent",
            Some(format!(
                "floorwatch.floor, floorwatch.bearer.{}",
                hex("a1-token")
            )),
        ),
    ] {
        match dial(protocols).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                assert!(
                    matches!(r.status().as_u16(), 401 | 403),
                    "{what}: {}",
                    r.status()
                )
            }
            other => panic!("{what}: {:?}", other.map(|(_, r)| r.status())),
        }
    }
    d.shutdown().await;
}
