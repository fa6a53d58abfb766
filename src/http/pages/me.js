// The agent's own page (/me): their state now with a live countdown while on a break, today
// and this month (calls, ring compliance, break time against the allowance, points and
// money), and every violation of the month with its evidence and waiver. It polls
// GET /api/v1/me (the agent's own view only; /ws/floor shows the whole floor, which an agent
// may not see) and ticks the clocks in between.
"use strict";

(() => {
  const { $, el, api, W } = FW;
  Object.assign(FW.WORDS["zh-CN"], {
    title: "我的表现", pageFor: "坐席本人", nowTitle: "当前状态", today: "今天", month: "本月",
    violations: "本月违规", inState: d => `已持续 ${d}`, offline: "未登录",
    pauseLeft: (r, d) => `本次${r}剩余 ${d}`, pauseOver: (r, d) => `本次${r}已超时 ${d}`,
    allowance: (used, all, left) => `今日小休额度：已用 ${used} / ${all}，剩余 ${left}`,
    allowanceOver: (used, all, over) => `今日小休额度：已用 ${used} / ${all}，已超出 ${over}`,
    approved: (r, until) => `${r}已获批准，至 ${until}`,
    calls: "接听电话", compliance: "三声内应答率", breakUsed: "小休用时", pauseTime: "暂停用时",
    aht: "平均处理时长", adherence: "排班出勤率", points: "扣分", deduction: "扣款", violationsN: "违规次数",
    attempts: "外呼次数", connectRate: "外呼接通率", sales: "销售", conversion: "转化率",
    noViolations: "本月暂无违规", more: n => `另有 ${n} 条未显示`, count: n => `共 ${n} 条`,
    asOf: t => `截至 ${t}`, notWaived: "未豁免",
  });
  Object.assign(FW.WORDS.en, {
    title: "My performance", pageFor: "the agent themself", nowTitle: "Now", today: "Today", month: "This month",
    violations: "My violations this month", inState: d => `for ${d}`, offline: "logged out",
    pauseLeft: (r, d) => `${r}: ${d} left`, pauseOver: (r, d) => `${r}: over by ${d}`,
    allowance: (used, all, left) => `Break allowance today: used ${used} of ${all}, ${left} left`,
    allowanceOver: (used, all, over) => `Break allowance today: used ${used} of ${all}, over by ${over}`,
    approved: (r, until) => `${r} approved until ${until}`,
    calls: "calls answered", compliance: "answered within 3 rings", breakUsed: "break time", pauseTime: "pause time",
    aht: "average handling time", adherence: "schedule adherence", points: "points", deduction: "deduction",
    violationsN: "violations", attempts: "outbound attempts", connectRate: "connect rate", sales: "sales",
    conversion: "conversion", noViolations: "No violations this month", more: n => `${n} more not shown`,
    count: n => `${n} in all`, asOf: t => `as of ${t}`, notWaived: "not waived",
  });

  const MAX_SHOWN = 200;
  let session = null, me = null, offset = 0, violations = [], openIds = null, asOf = null, link = false;
  const now = () => Date.now() + offset;

  function reason(r) { return (session.reasons || []).find(x => x.reason === r); }

  function renderNow() {
    const w = W(), t = now(), a = me && me.now;
    $("status").dataset.status = link ? "live" : "stale";
    $("status").textContent = link ? w.live : w.stale;
    if (!a || !a.logged_in || !a.effective) {
      $("state").textContent = w.offline;
      $("state").dataset.state = "offline";
    } else {
      let st = w.state[a.effective] || a.effective;
      if (a.effective === "not_ready") st += " · " + FW.reasonWord(a.reason);
      $("state").textContent = `${st} · ${w.inState(FW.dur(t - Date.parse(a.effective_since)))}`;
      $("state").dataset.state = a.effective;
    }
    // This pause against its reason's longest.
    const pause = $("pause");
    const paused = a && a.logged_in && a.presence === "not_ready";
    const r = paused ? reason(a.reason) : null;
    if (r && r.max_ms) {
      const left = r.max_ms - (t - Date.parse(a.since));
      pause.textContent = left >= 0 ? w.pauseLeft(FW.reasonWord(a.reason), FW.dur(left))
        : w.pauseOver(FW.reasonWord(a.reason), FW.dur(-left));
      pause.dataset.over = left < 0 ? "1" : "0";
      pause.dataset.leftMs = String(left);
    } else {
      pause.textContent = "";
      pause.dataset.over = "0";
      delete pause.dataset.leftMs;
    }
    // Today's breaks against the daily allowance: the standing counts to its instant; a break
    // still going adds the time since (or since it began, if it began later).
    const all = session.daily_allowance_ms;
    const allow = $("allowance");
    if (all) {
      let used = me && me.today ? Math.round(me.today.break_seconds * 1000) : 0;
      used += pauseSinceStanding(true);
      const left = all - used;
      allow.textContent = left >= 0 ? w.allowance(FW.dur(used), FW.dur(all), FW.dur(left))
        : w.allowanceOver(FW.dur(used), FW.dur(all), FW.dur(-left));
      allow.dataset.over = left < 0 ? "1" : "0";
      allow.dataset.usedMs = String(used);
    }
    $("approvals").replaceChildren(...((me && me.approvals) || []).map(x =>
      el("li", {}, w.approved(FW.reasonWord(x.reason), FW.time(x.until)))));
  }
  function figure(key, label, value, bad) {
    return el("div", { class: "figure", "data-figure": key, "data-bad": bad ? "1" : "0" },
      el("b", { class: "num" }, value), el("span", {}, label));
  }
  // Time in the pause going on now that the standing (counted to its instant) leaves out.
  function pauseSinceStanding(allowanceOnly) {
    const a = me && me.now;
    if (!a || !a.logged_in || a.presence !== "not_ready") return 0;
    const r = reason(a.reason);
    if (allowanceOnly && !(r && r.allowance)) return 0;
    const since = Date.parse(a.since);
    const from = me.standing_as_of ? Math.max(since, Date.parse(me.standing_as_of)) : since;
    return Math.max(0, now() - from);
  }
  function figures(box, row, period) {
    const w = W(), r = row || {};
    const n = (r.violations_ring_answer || 0) + (r.violations_break_overrun || 0) +
      (r.violations_unauthorized_pause || 0) + (r.violations_attendance || 0) + (r.violations_discipline || 0);
    const list = [
      figure("calls_answered", w.calls, String(r.calls_answered || 0)),
      figure("ring_compliance", w.compliance, r.ring_episodes ? `${FW.pct(r.ring_compliance)} (${r.answered_within_rings}/${r.ring_episodes})` : "–"),
      figure("break", w.breakUsed, FW.dur((r.break_seconds || 0) * 1000 + pauseSinceStanding(true))),
    ];
    if (period === "today") list.push(figure("pause", w.pauseTime, FW.dur((r.pause_seconds || 0) * 1000 + pauseSinceStanding(false))));
    if (period === "month") {
      list.push(figure("aht", w.aht, r.aht_seconds != null ? FW.dur(r.aht_seconds * 1000) : "–"));
      if (r.shifts) list.push(figure("adherence", w.adherence, FW.pct(r.adherence)));
    }
    if (r.outbound_attempts) {
      list.push(figure("outbound", w.attempts, `${r.outbound_attempts} · ${FW.pct(r.outbound_connect_rate)}`),
        figure("sales", w.sales, `${r.sales} · ${FW.pct(r.conversion)}`));
    }
    list.push(figure("violations", w.violationsN, String(n), n > 0),
      figure("points", w.points, String(r.points || 0), (r.points || 0) > 0),
      figure("deduction", w.deduction, FW.money(r.deduction || 0), (r.deduction || 0) > 0));
    box.replaceChildren(...list);
  }
  function renderStanding() {
    const w = W();
    for (const e of document.querySelectorAll(".asof")) e.textContent = me && me.standing_as_of ? w.asOf(FW.dateTime(me.standing_as_of)) : "";
    figures($("today"), me && me.today, "today");
    figures($("month"), me && me.month, "month");
  }
  function renderViolations() {
    const w = W();
    const list = violations.slice().sort((a, b) => Date.parse(b.at) - Date.parse(a.at) || b.id - a.id);
    $("violations-count").textContent = w.count(list.length);
    const items = list.slice(0, MAX_SHOWN).map(v => {
      const li = el("li", { class: "violation", "data-violation-id": String(v.id), "data-status": v.status,
        "data-agent": v.agent, "data-kind": v.kind });
      li.append(el("h3", {}, `${FW.kindWords(v)} `, el("span", { class: "badge", "data-status": v.status }, w.status[v.status] || v.status)));
      li.append(el("div", { class: "meta num" }, [w.rule[v.rule] || v.rule, FW.dateTime(v.at),
        w.pts(v.points)].join(" · ")));
      const ev = FW.evidenceWords(v);
      if (ev) li.append(el("div", { class: "evidence num" }, ev));
      li.append(el("div", { class: "waiver", "data-waiver": v.waiver ? "1" : "0" },
        v.waiver ? w.waivedBy(v.waiver.by, v.waiver.reason, FW.dateTime(v.waiver.at)) : w.notWaived));
      return li;
    });
    $("violations").replaceChildren(...(items.length ? items : [el("li", { class: "empty" }, w.noViolations)]));
    $("violations-more").textContent = list.length > MAX_SHOWN ? w.more(list.length - MAX_SHOWN) : "";
  }

  function startOfMonth() { const d = new Date(now()); d.setDate(1); d.setHours(0, 0, 0, 0); return d.toISOString(); }
  async function loadViolations() {
    const r = await api("GET", `api/v1/violations?from=${encodeURIComponent(startOfMonth())}`);
    if (!r.ok) { FW.say(FW.failure(r), false); return; }
    violations = r.data.violations || [];
    renderViolations();
  }
  async function poll() {
    const r = await api("GET", "api/v1/me");
    link = r.ok;
    if (!r.ok) {
      if (r.status === 401 || r.status === 403) FW.say(FW.failure(r), false);
      renderNow();
      return;
    }
    me = r.data;
    if (me.engine_clock) offset = Date.parse(me.engine_clock) - Date.now();
    // A violation opened or closed, or the standing moved (a waiver): read the list again.
    const ids = (me.open_violations || []).map(v => v.id).join(",");
    if (ids !== openIds || me.standing_as_of !== asOf) {
      openIds = ids; asOf = me.standing_as_of;
      loadViolations();
    }
    renderNow();
    renderStanding();
  }

  function renderAll() {
    FW.applyLang();
    const w = W();
    document.title = `floorwatch · ${w.title}`;
    $("who").textContent = `${session.name} (${session.agent || ""})`;
    renderNow();
    renderStanding();
    renderViolations();
  }

  let started = false;
  async function start() {
    FW.applyLang();
    const s = await FW.signIn(["agent"], () => W().pageFor, x => { session = x; });
    if (!s || started) { if (s) renderAll(); return; }
    started = true;
    renderAll();
    await poll();
    setInterval(poll, 3000);
    setInterval(() => { renderNow(); renderStanding(); }, 1000);
    setInterval(loadViolations, 30000);
  }

  document.addEventListener("DOMContentLoaded", () => {
    FW.wireSignin(start);
    $("lang").addEventListener("click", () => {
      FW.setLang(FW.lang() === "en" ? "zh-CN" : "en");
      if (session) renderAll(); else FW.applyLang();
    });
    start();
  });
})();
