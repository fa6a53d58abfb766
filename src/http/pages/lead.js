// The team lead's console (/lead): their teams live from /ws/floor, today's attendance and
// violations, waivers, floor-discipline demerits, pause approvals and the month so far.
// Every action goes through the API, which decides what a lead may do; the page only says so
// early (a button for another team's violation is disabled, with the reason beside it).
"use strict";

(() => {
  const { $, el, api, W } = FW;
  Object.assign(FW.WORDS["zh-CN"], {
    title: "组长控制台", pageFor: "组长和质检", teams: "我的班组", showAll: "显示全部班组",
    attendance: "今日出勤", month: "本月至今", violations: "今日违规", demerit: "记录现场违纪",
    agent: "坐席", item: "违纪项目", points: "扣分", pointsRange: (a, b) => `扣分（${a}–${b}）`,
    note: "备注（可选）", recordDemerit: "记录违纪", approve: "批准暂停", reasonLabel: "暂停原因",
    minutes: "时长（分钟）", grant: "批准", activeApprovals: "生效中的批准", noApprovals: "暂无生效中的批准",
    waive: "豁免", unwaive: "撤销豁免", why: "理由（必填）", confirmWaive: "确认豁免",
    confirmUnwaive: "确认撤销", cancel: "取消", lead: "组长", allTeams: "全部班组", notMine: "非本组",
    absent: "缺勤", lateBy: d => `已迟到 ${d}`, shiftAt: (a, b) => `班次 ${a}–${b}`, noAbsent: "无人缺勤",
    lateLogins: "今日迟到登录", noViolations: "今日暂无违规", more: n => `另有 ${n} 条未显示`,
    count: (open, all) => `进行中 ${open} · 共 ${all}`, asOf: t => `截至 ${t}`,
    waived: id => `已豁免违规 #${id}`, unwaived: id => `已撤销违规 #${id} 的豁免`,
    recorded: (who, what, n) => `已记录：${who} · ${what} · ${n} 分`,
    granted: (who, r, until) => `已批准：${who} ${r}，至 ${until}`, needsApproval: "须批准",
    sales: (s, t) => t ? `销售 ${s} / 目标 ${t}` : `销售 ${s}`, connect: (c, a, r) => `外呼 ${a} · 接通 ${c}（${r}）`,
    cols: ["坐席", "班组", "今日扣分", "本月扣分", "扣款", "出勤率", "三声内应答", "接听", "违规"],
    noRows: "暂无数据", choose: "请选择", whys: ["系统故障导致", "已与坐席核实，属正常情况", "客户原因", "组长事先已同意"],
    state: FW.WORDS["zh-CN"].state,
  });
  Object.assign(FW.WORDS.en, {
    title: "Team lead console", pageFor: "team leads and QA", teams: "My teams", showAll: "Show all teams",
    attendance: "Attendance today", month: "Month so far", violations: "Violations today",
    demerit: "Record a floor-discipline demerit", agent: "Agent", item: "Item", points: "Points",
    pointsRange: (a, b) => `Points (${a}–${b})`, note: "Note (optional)", recordDemerit: "Record demerit",
    approve: "Approve a pause", reasonLabel: "Pause reason", minutes: "Minutes", grant: "Approve",
    activeApprovals: "Active approvals", noApprovals: "No active approvals", waive: "Waive",
    unwaive: "Undo waiver", why: "Why (required)", confirmWaive: "Confirm waiver", confirmUnwaive: "Confirm undo",
    cancel: "Cancel", lead: "lead", allTeams: "all teams", notMine: "not yours", absent: "absent",
    lateBy: d => `late by ${d}`, shiftAt: (a, b) => `shift ${a}–${b}`, noAbsent: "Nobody absent",
    lateLogins: "Late logins today", noViolations: "No violations today", more: n => `${n} more not shown`,
    count: (open, all) => `${open} open · ${all} in all`, asOf: t => `as of ${t}`,
    waived: id => `Violation #${id} waived`, unwaived: id => `Waiver of violation #${id} undone`,
    recorded: (who, what, n) => `Recorded: ${who} · ${what} · ${n} pts`,
    granted: (who, r, until) => `Approved: ${who}, ${r}, until ${until}`, needsApproval: "needs approval",
    sales: (s, t) => t ? `sales ${s} / target ${t}` : `sales ${s}`, connect: (c, a, r) => `dialed ${a} · connected ${c} (${r})`,
    cols: ["Agent", "Team", "Points today", "Points month", "Deduction", "Adherence", "Within 3 rings", "Answered", "Violations"],
    noRows: "No data yet", choose: "Choose…", whys: ["Caused by a system fault", "Checked with the agent: justified", "Customer's doing", "Agreed by the lead beforehand"],
  });

  const STATES = ["talking", "ringing", "ready", "not_ready", "acw"];
  const MAX_SHOWN = 100;
  const floor = { agents: new Map(), absent: [], outbound: [], open: [], teams: [], offset: 0, version: -1, seen: false };
  let session = null, violations = [], approvals = [], standing = null, showAll = false, link = false;
  let openForm = null, violationsDirty = false, openIds = "";

  const mine = team => !session.teams || session.teams.includes(team);
  const visible = team => showAll || mine(team);
  const now = () => Date.now() + floor.offset;
  const nameOf = id => { const a = floor.agents.get(id); return a && a.name ? `${a.name} (${id})` : id; };
  const teamOf = id => { const a = floor.agents.get(id); if (a) return a.team;
    const x = floor.absent.find(x => x.agent === id); return x ? x.team : null; };
  const myTeams = () => (session.teams || []).join(", ");
  const leadOf = team => { const t = floor.teams.find(t => t.id === team); return t && t.lead; };

  // ---- the feed --------------------------------------------------------------------
  function onMessage(m) {
    const type = m.type || "snapshot";
    if (type === "snapshot") {
      floor.agents = new Map((m.agents || []).map(a => [a.agent, a]));
      if (m.teams) floor.teams = m.teams;
      if (m.version != null) floor.version = m.version;
    } else if (type === "delta") {
      if (m.version != null && m.version <= floor.version) return;
      for (const a of m.agents || []) floor.agents.set(a.agent, a);
      if (m.version != null) floor.version = m.version;
    } else if (type !== "heartbeat") return;
    if (m.engine_clock) floor.offset = Date.parse(m.engine_clock) - Date.now();
    if (m.schedule) floor.absent = m.schedule.absent || [];
    if (m.outbound) floor.outbound = m.outbound;
    if (m.open_violations) {
      floor.open = m.open_violations;
      const ids = floor.open.map(v => v.id).join(",");
      if (ids !== openIds || !floor.seen) { openIds = ids; loadViolations(); }
    }
    if (type === "snapshot") renderMonth();
    floor.seen = true;
    renderLive();
    fillAgentPickers();
  }
  function onLink(up) { link = up; renderStatus(); }

  // ---- rendering ---------------------------------------------------------------------
  function renderStatus() {
    const s = $("status");
    s.dataset.status = link ? "live" : "stale";
    s.textContent = link ? W().live : W().stale;
  }
  function teamIds() {
    const ids = new Set(floor.teams.map(t => t.id));
    for (const a of floor.agents.values()) if (a.logged_in) ids.add(a.team);
    for (const x of floor.absent) ids.add(x.team);
    for (const o of floor.outbound) ids.add(o.team);
    if (session.teams) for (const t of session.teams) ids.add(t);
    return [...ids].filter(visible).sort();
  }
  function renderTeams() {
    const w = W(), t0 = now(), box = $("teams");
    const out = [];
    for (const id of teamIds()) {
      const agents = [...floor.agents.values()].filter(a => a.logged_in && a.effective && a.team === id)
        .sort((a, b) => a.agent < b.agent ? -1 : 1);
      const absent = floor.absent.filter(x => x.team === id);
      const lead = leadOf(id);
      const head = el("h3", {}, id, lead ? el("small", {}, `${w.lead} ${lead}`) : null,
        mine(id) ? null : el("small", { class: "why-not" }, w.notMine));
      const counts = el("div", { class: "counts" });
      for (const s of STATES) {
        const n = agents.filter(a => a.effective === s).length;
        counts.append(el("span", { "data-count": s }, el("span", { class: `dot s-${s}`, "aria-hidden": "true" }), `${w.state[s]} ${n}`));
      }
      counts.append(el("span", { "data-count": "absent" }, el("span", { class: "dot s-absent", "aria-hidden": "true" }), `${w.absent} ${absent.length}`));
      const team = el("div", { class: "team", "data-team": id }, head, counts);
      const o = floor.outbound.find(o => o.team === id);
      if (o) team.append(salesBar(o));
      const list = el("ul", { class: "agents plain" });
      for (const a of agents) {
        let st = w.state[a.effective] || a.effective;
        if (a.effective === "not_ready") st += " · " + FW.reasonWord(a.reason);
        list.append(el("li", { class: "agent", "data-agent": a.agent, "data-state": a.effective,
          "data-violation": a.open_violations > 0 ? "1" : "0" },
          el("div", { class: "who" }, a.name || a.agent, a.name ? el("small", {}, " " + a.agent) : null),
          el("div", { class: "st num" }, `${st} · ${FW.dur(t0 - Date.parse(a.effective_since))}`)));
      }
      for (const x of absent) {
        list.append(el("li", { class: "agent", "data-agent": x.agent, "data-absent": "1" },
          el("div", { class: "who" }, x.name || x.agent, x.name ? el("small", {}, " " + x.agent) : null),
          el("div", { class: "st num" }, `${w.absent} · ${w.lateBy(FW.dur(t0 - Date.parse(x.start)))}`)));
      }
      team.append(list);
      out.push(team);
    }
    box.replaceChildren(...out);
  }
  function salesBar(o) {
    const w = W();
    const p = o.progress != null ? o.progress : null;
    // Set through the CSSOM: the page's content security policy refuses style attributes.
    const fill = el("span");
    fill.style.width = `${Math.min(100, Math.round((p || 0) * 100))}%`;
    const bar = el("div", { class: "bar", role: "progressbar", "aria-valuemin": "0",
      "aria-valuemax": String(o.target || 0), "aria-valuenow": String(o.sales),
      "aria-label": w.sales(o.sales, o.target), "data-done": p != null && p >= 1 ? "1" : "0" }, fill);
    return el("div", { class: "sales", "data-sales-team": o.team },
      el("div", { class: "line" }, el("span", {}, w.sales(o.sales, o.target)),
        el("span", { class: "muted" }, w.connect(o.connected, o.attempts, FW.pct(o.connect_rate)))),
      o.target ? bar : null);
  }
  function renderAttendance() {
    const w = W(), t0 = now();
    const absent = floor.absent.filter(x => visible(x.team));
    $("absent").replaceChildren(...(absent.length ? absent.map(x => el("li", { "data-absent-agent": x.agent },
      el("b", {}, x.name ? `${x.name} (${x.agent})` : x.agent), ` · ${x.team} · `,
      el("span", { class: "why-not num" }, w.lateBy(FW.dur(t0 - Date.parse(x.start)))),
      el("span", { class: "muted" }, ` · ${w.shiftAt(FW.time(x.start), FW.time(x.end))}`)))
      : [el("li", { class: "empty" }, w.noAbsent)]));
    const late = violations.filter(v => v.kind === "late_login" && visible(v.team));
    $("late").replaceChildren(...(late.length ? [el("li", { class: "muted" }, w.lateLogins)] : []),
      ...late.map(v => el("li", { "data-late-agent": v.agent }, el("b", {}, nameOf(v.agent)),
        ` · ${v.team} · ${FW.time(v.at)} · ${FW.evidenceWords(v)}`)));
  }
  function renderLive() {
    renderStatus();
    renderTeams();
    renderAttendance();
  }

  function renderViolations() {
    if (openForm) { violationsDirty = true; return; }
    violationsDirty = false;
    const w = W();
    const list = violations.filter(v => visible(v.team)).sort((a, b) =>
      (a.status === "open" ? 0 : 1) - (b.status === "open" ? 0 : 1) || Date.parse(b.at) - Date.parse(a.at) || b.id - a.id);
    const open = list.filter(v => v.status === "open").length;
    $("violations-count").textContent = w.count(open, list.length);
    const items = list.slice(0, MAX_SHOWN).map(v => {
      const st = v.status;
      const li = el("li", { class: "violation", "data-violation-id": String(v.id), "data-status": st,
        "data-agent": v.agent, "data-team": v.team, "data-kind": v.kind });
      li.append(el("h3", {}, `${nameOf(v.agent)} · ${FW.kindWords(v)} `,
        el("span", { class: "badge", "data-status": st }, w.status[st] || st)));
      li.append(el("div", { class: "meta num" }, [w.rule[v.rule] || v.rule, FW.time(v.at), v.team,
        w.pts(v.points)].join(" · ")));
      const ev = FW.evidenceWords(v);
      if (ev) li.append(el("div", { class: "evidence num" }, ev));
      if (v.waiver) li.append(el("div", { class: "waiver" }, w.waivedBy(v.waiver.by, v.waiver.reason, FW.dateTime(v.waiver.at))));
      const actions = el("div", { class: "actions" });
      const action = st === "waived" ? "unwaive" : "waive";
      const b = el("button", { type: "button", class: "small", "data-action": action,
        "aria-label": `${w[action]} #${v.id} ${nameOf(v.agent)} ${FW.kindWords(v)}` }, w[action]);
      if (!mine(v.team)) {
        b.disabled = true;
        const why = el("span", { class: "why-not", id: `why-not-${v.id}` }, w.notYours(v.team, myTeams()));
        b.setAttribute("aria-describedby", why.id);
        actions.append(b, why);
      } else {
        b.addEventListener("click", () => openWaiver(li, v, action));
        actions.append(b);
      }
      li.append(actions);
      return li;
    });
    $("violations").replaceChildren(...(items.length ? items : [el("li", { class: "empty" }, w.noViolations)]));
    $("violations-more").textContent = list.length > MAX_SHOWN ? w.more(list.length - MAX_SHOWN) : "";
    renderAttendance();
  }
  function openWaiver(li, v, action) {
    const w = W();
    if (openForm) openForm.remove();
    const id = `why-${v.id}`;
    const input = el("input", { id, name: "why", list: "why-suggestions", required: true, maxlength: "500", autocomplete: "off" });
    const result = el("div", { role: "alert" });
    const cancel = el("button", { type: "button" }, w.cancel);
    const form = el("form", { class: "inline", "data-form": action },
      el("label", { for: id }, w.why), input,
      el("div", { class: "row" }, el("button", { type: "submit", class: action === "waive" ? "primary" : "danger" },
        action === "waive" ? w.confirmWaive : w.confirmUnwaive), cancel), result);
    const close = () => { form.remove(); openForm = null; if (violationsDirty) renderViolations();
      const b = document.querySelector(`#violations li[data-violation-id="${v.id}"] button[data-action]`); if (b) b.focus(); };
    cancel.addEventListener("click", close);
    form.addEventListener("keydown", ev => { if (ev.key === "Escape") close(); });
    form.addEventListener("submit", async ev => {
      ev.preventDefault();
      const why = input.value.trim();
      if (!why) { input.focus(); return; }
      const r = await api("POST", `api/v1/violations/${v.id}/${action}`, { why });
      if (r.ok) {
        FW.say(action === "waive" ? w.waived(v.id) : w.unwaived(v.id), true);
        form.remove(); openForm = null;
        await loadViolations();
        refreshStandingSoon();
        const b = document.querySelector(`#violations li[data-violation-id="${v.id}"] button[data-action]`);
        if (b) b.focus();
      } else {
        result.replaceChildren(el("div", { class: "msg error" }, FW.failure(r)));
      }
    });
    li.append(form);
    openForm = form;
    input.focus();
  }

  // ---- pickers and forms --------------------------------------------------------------
  let pickerKey = "";
  function fillAgentPickers() {
    const ids = new Set();
    for (const a of floor.agents.values()) if (visible(a.team)) ids.add(a.agent);
    for (const x of floor.absent) if (visible(x.team)) ids.add(x.agent);
    const sorted = [...ids].sort();
    const key = FW.lang() + "|" + sorted.join(",");
    if (key === pickerKey) return;
    pickerKey = key;
    for (const sel of [$("demerit-agent"), $("approval-agent")]) {
      const keep = sel.value;
      sel.replaceChildren(el("option", { value: "" }, W().choose),
        ...sorted.map(id => el("option", { value: id }, `${nameOf(id)} · ${teamOf(id) || ""}`)));
      if (sorted.includes(keep)) sel.value = keep;
    }
  }
  function fillForms() {
    const w = W();
    const item = $("demerit-item"), keep = item.value;
    item.replaceChildren(el("option", { value: "" }, w.choose), ...(session.discipline || []).map(d =>
      el("option", { value: d.item }, `${d.name} · ${d.points != null ? w.pts(d.points) : w.pts(`${d.min}–${d.max}`)}`)));
    item.value = keep;
    const reason = $("approval-reason"), keepR = reason.value;
    reason.replaceChildren(...(session.reasons || []).map(r =>
      el("option", { value: r.reason }, FW.reasonWord(r.reason) + (r.approval ? ` (${w.needsApproval})` : ""))));
    const firstApproval = (session.reasons || []).find(r => r.approval);
    reason.value = keepR || (firstApproval ? firstApproval.reason : "");
    pointsRow();
    $("why-suggestions").replaceChildren(...w.whys.map(x => el("option", { value: x })));
  }
  function pointsRow() {
    const d = (session.discipline || []).find(d => d.item === $("demerit-item").value);
    const ranged = d && d.points == null;
    $("demerit-points-row").classList.toggle("hidden", !ranged);
    const p = $("demerit-points");
    p.required = !!ranged;
    if (ranged) {
      p.min = d.min; p.max = d.max;
      if (!p.value) p.value = d.min;
      $("demerit-points-label").textContent = W().pointsRange(d.min, d.max);
    }
  }
  function result(box, text, ok) {
    box.replaceChildren(el("div", { class: "msg " + (ok ? "ok" : "error"), role: ok ? null : "alert" }, text));
  }
  // A refusal in words: another team's agent is named as such; otherwise the API's reason.
  function refusal(r, agent) {
    const team = teamOf(agent);
    if (r.status === 403 && team && !mine(team)) return W().notYours(team, myTeams()) + " (" + r.error + ")";
    return FW.failure(r);
  }
  async function submitDemerit(ev) {
    ev.preventDefault();
    const w = W(), box = $("demerit-result");
    const agent = $("demerit-agent").value, item = $("demerit-item").value;
    if (!agent || !item) { result(box, w.error + w.choose, false); return; }
    const body = { agent, item };
    const d = (session.discipline || []).find(d => d.item === item);
    if (d && d.points == null) body.points = Number($("demerit-points").value);
    const note = $("demerit-note").value.trim();
    if (note) body.note = note;
    const r = await api("POST", "api/v1/demerits", body);
    if (r.ok) {
      const v = (r.data.violations || [])[0];
      result(box, w.recorded(nameOf(agent), d ? d.name : item, v ? v.points : body.points), true);
      $("demerit-note").value = "";
      loadViolations();
      refreshStandingSoon();
    } else {
      result(box, refusal(r, agent), false);
    }
  }
  async function submitApproval(ev) {
    ev.preventDefault();
    const w = W(), box = $("approval-result");
    const agent = $("approval-agent").value, reason = $("approval-reason").value;
    const minutes = Number($("approval-minutes").value);
    if (!agent || !reason) { result(box, w.error + w.choose, false); return; }
    const r = await api("POST", "api/v1/approvals", { agent, reason, minutes });
    if (r.ok) {
      result(box, w.granted(nameOf(agent), FW.reasonWord(reason), FW.time(r.data.until)), true);
      loadApprovals();
    } else {
      result(box, refusal(r, agent), false);
    }
  }

  // ---- loading -----------------------------------------------------------------------
  function startOfToday() { const d = new Date(now()); d.setHours(0, 0, 0, 0); return d.toISOString(); }
  let loading = null;
  async function loadViolations() {
    if (loading) { loading.again = true; return; }
    loading = { again: false };
    try {
      const from = encodeURIComponent(startOfToday());
      const teams = showAll || !session.teams ? [null] : session.teams;
      const all = [];
      for (const t of teams) {
        const r = await api("GET", `api/v1/violations?from=${from}` + (t ? `&team=${encodeURIComponent(t)}` : ""));
        if (!r.ok) { FW.say(FW.failure(r), false); return; }
        all.push(...r.data.violations);
      }
      violations = all;
      renderViolations();
    } finally {
      const again = loading.again;
      loading = null;
      if (again) loadViolations();
    }
  }
  async function loadApprovals() {
    const r = await api("GET", "api/v1/approvals");
    if (!r.ok) return;
    approvals = r.data.approvals || [];
    const w = W();
    const mineNow = approvals.filter(a => { const t = teamOf(a.agent); return !t || visible(t); });
    $("approvals").replaceChildren(...(mineNow.length ? mineNow.map(a => el("li", { "data-approval-agent": a.agent },
      `${nameOf(a.agent)} · ${FW.reasonWord(a.reason)} · ${FW.time(a.from)}–${FW.time(a.until)}`))
      : [el("li", { class: "empty" }, w.noApprovals)]));
  }
  async function loadStanding() {
    const r = await api("GET", "api/v1/standing");
    if (!r.ok) return;
    standing = r.data;
    renderMonth();
  }
  function refreshStandingSoon() { setTimeout(loadStanding, 1200); setTimeout(loadStanding, 4000); }
  function renderMonth() {
    const w = W();
    // The ring and call columns (6, 7) give way on a phone.
    $("month-head").replaceChildren(el("tr", {}, ...w.cols.map((c, i) => el("th", { scope: "col", class: i == 6 || i == 7 ? "wide" : null }, c))));
    if (!standing) return;
    $("month-asof").textContent = standing.as_of ? w.asOf(FW.dateTime(standing.as_of)) : "";
    const today = new Map(standing.today.map(r => [r.agent, r]));
    const rows = standing.month.filter(r => visible(r.team)).map(r => {
      const t = today.get(r.agent);
      const n = r.violations_ring_answer + r.violations_break_overrun + r.violations_unauthorized_pause +
        r.violations_attendance + r.violations_discipline;
      return el("tr", { "data-agent": r.agent }, el("th", { scope: "row" }, nameOf(r.agent)), el("td", {}, r.team),
        el("td", { class: "num", "data-col": "points_today" }, String(t ? t.points : 0)),
        el("td", { class: "num", "data-col": "points" }, String(r.points)),
        el("td", { class: "num", "data-col": "deduction" }, FW.money(r.deduction)),
        el("td", { class: "num", "data-col": "adherence" }, FW.pct(r.adherence)),
        el("td", { class: "num wide" }, FW.pct(r.ring_compliance)),
        el("td", { class: "num wide" }, String(r.calls_answered)), el("td", { class: "num" }, String(n)));
    });
    $("month-rows").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: String(w.cols.length), class: "empty" }, w.noRows))]));
  }

  function renderAll() {
    FW.applyLang();
    const w = W();
    document.title = `floorwatch · ${w.title}`;
    const role = w.roles[session.role] || session.role;
    $("who").textContent = `${session.name} · ${role} · ` + (session.teams ? session.teams.join(", ") : w.allTeams);
    fillForms();
    pickerKey = "";
    fillAgentPickers();
    renderLive();
    renderViolations();
    renderMonth();
    loadApprovals();
  }

  let started = false;
  async function start() {
    FW.applyLang();
    const s = await FW.signIn(["lead", "qa", "admin"], () => W().pageFor, x => { session = x; });
    if (!s || started) { if (s) renderAll(); return; }
    started = true;
    renderAll();
    FW.feed(onMessage, onLink);
    loadStanding();
    setInterval(renderLive, 1000);
    setInterval(loadStanding, 60000);
    setInterval(loadApprovals, 15000);
    setInterval(() => { if (!openForm) loadViolations(); }, 30000);
  }

  document.addEventListener("DOMContentLoaded", () => {
    FW.wireSignin(start);
    $("lang").addEventListener("click", () => {
      FW.setLang(FW.lang() === "en" ? "zh-CN" : "en");
      if (session) renderAll(); else FW.applyLang();
    });
    $("show-all").addEventListener("change", ev => {
      showAll = ev.target.checked;
      pickerKey = "";
      fillAgentPickers();
      renderLive();
      loadViolations();
      renderMonth();
    });
    $("demerit-item").addEventListener("change", pointsRow);
    $("demerit-form").addEventListener("submit", submitDemerit);
    $("approval-form").addEventListener("submit", submitApproval);
    start();
  });
})();
