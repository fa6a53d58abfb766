// floorwatch's console pages (/lead, /me): what both share. Signing in (a bearer token kept
// in this tab's sessionStorage, never in a URL; or the auth proxy's header, which the proxy
// adds to every request), the API, the /ws/floor feed, the words in zh-CN and en, and
// formatting. docs/console.md describes the pages; tests/it/pages.rs drives them.
"use strict";

const FW = (() => {
  const TOKEN_KEY = "floorwatch.token";
  const LANG_KEY = "floorwatch.lang";

  const WORDS = {
    "zh-CN": {
      langName: "中文", otherLang: "English", switchLang: "切换到英文 (English)",
      signinTitle: "登录", token: "访问令牌", signin: "登录", signout: "退出登录",
      signinHelp: "请输入管理员发给您的访问令牌。令牌只保存在本浏览器标签页中，关闭标签页即清除。",
      badToken: "令牌无效，请重新输入。", network: "无法连接服务器，请稍后重试。",
      loopbackOnly: "此服务只对本机开放：请联系管理员配置用户和令牌。",
      wrongRolePage: (page, role) => `此页面供${page}使用；您的角色是「${role}」。`,
      live: "实时", stale: "数据过期", skip: "跳到主要内容",
      roles: { admin: "管理员", qa: "质检", lead: "组长", agent: "坐席", viewer: "只读", ingest: "数据源", local: "本机" },
      state: { talking: "通话", ringing: "振铃", ready: "就绪", not_ready: "暂停", acw: "事后工作", offline: "未登录" },
      reason: { break: "小休", meal: "用餐", training: "培训", meeting: "会议", technical: "系统故障",
        "Auto-Pause": "自动暂停", "": "无原因" },
      rule: { ring_answer: "三声内应答", break_overrun: "小休限时", unauthorized_pause: "暂停/事后须有因",
        attendance: "考勤", discipline: "现场纪律" },
      kind: {
        late: "振铃超时未接", missed: "振铃未接", per_break: r => `${r}超时`,
        daily_allowance: "今日小休累计超限", no_reason: "无故暂停，未选原因",
        unknown_reason: r => `未定义原因暂停：${r}`, unapproved: r => `未经批准暂停：${r}`,
        approval_expired: r => `批准已到期仍暂停：${r}`, acw_without_call: "无通话进入事后工作",
        acw_overrun: "事后工作超时", late_login: "上班登录迟到", left_before_relief: "交班人员未到离岗",
        not_logged_out: "下班未正常退出系统",
      },
      status: { open: "进行中", closed: "已结束", waived: "已豁免" },
      evidence: (limit, raised, lasted) => [limit && `限额 ${limit}`, raised && `违规时已持续 ${raised}`,
        lasted && `共持续 ${lasted}`].filter(Boolean).join(" · "),
      recordedBy: (by, note) => `记录人 ${by}` + (note ? ` · 备注：${note}` : ""),
      waivedBy: (by, why, at) => `${by} 于 ${at} 豁免：${why}`,
      pts: n => `${n} 分`, money: (x, c) => `${x} ${c === "CNY" ? "元" : c}`,
      forbidden: "无权操作：", error: "操作失败：",
      notYours: (team, mine) => `不能操作：该坐席属于班组 ${team}，不是您的班组（${mine || "无"}）。组长只能处理本组。`,
    },
    en: {
      langName: "English", otherLang: "中文", switchLang: "Switch to Chinese (中文)",
      signinTitle: "Sign in", token: "Access token", signin: "Sign in", signout: "Sign out",
      signinHelp: "Enter the access token your administrator gave you. It is kept in this browser tab only and forgotten when the tab closes.",
      badToken: "That token is not valid; please enter it again.", network: "Cannot reach the server; try again shortly.",
      loopbackOnly: "This service is open to this machine only: ask the administrator to configure users and tokens.",
      wrongRolePage: (page, role) => `This page is for ${page}; your role is "${role}".`,
      live: "LIVE", stale: "STALE", skip: "Skip to the main content",
      roles: { admin: "admin", qa: "QA", lead: "team lead", agent: "agent", viewer: "viewer", ingest: "source", local: "local" },
      state: { talking: "talking", ringing: "ringing", ready: "ready", not_ready: "paused", acw: "wrap-up", offline: "logged out" },
      reason: { break: "break", meal: "meal", training: "training", meeting: "meeting", technical: "technical",
        "Auto-Pause": "auto-pause", "": "no reason" },
      rule: { ring_answer: "answer within 3 rings", break_overrun: "break overrun",
        unauthorized_pause: "unauthorized pause", attendance: "attendance", discipline: "floor discipline" },
      kind: {
        late: "ringing too long", missed: "ring not answered", per_break: r => `${r} over time`,
        daily_allowance: "over today's break allowance", no_reason: "paused without a reason",
        unknown_reason: r => `paused, unknown reason: ${r}`, unapproved: r => `paused without approval: ${r}`,
        approval_expired: r => `approval ended, still paused: ${r}`,
        acw_without_call: "wrap-up without a call", acw_overrun: "wrap-up over time",
        late_login: "logged in late", left_before_relief: "left before the relief arrived",
        not_logged_out: "did not log out after the shift",
      },
      status: { open: "open", closed: "closed", waived: "waived" },
      evidence: (limit, raised, lasted) => [limit && `limit ${limit}`, raised && `raised after ${raised}`,
        lasted && `lasted ${lasted}`].filter(Boolean).join(" · "),
      recordedBy: (by, note) => `recorded by ${by}` + (note ? ` · note: ${note}` : ""),
      waivedBy: (by, why, at) => `waived by ${by} at ${at}: ${why}`,
      pts: n => `${n} pts`, money: (x, c) => `${x} ${c}`,
      forbidden: "Not allowed: ", error: "Failed: ",
      notYours: (team, mine) => `Cannot act: this agent is in team ${team}, not one of yours (${mine || "none"}). A lead acts on their own teams only.`,
    },
  };

  const params = new URLSearchParams(location.search);
  const state = { lang: null, session: null, catalog: new Map() };

  function lang() {
    const l = state.lang || params.get("lang") || sessionStorage.getItem(LANG_KEY)
      || (state.session && state.session.language) || "zh-CN";
    return WORDS[l] ? l : "zh-CN";
  }
  function setLang(l) {
    state.lang = l;
    sessionStorage.setItem(LANG_KEY, l);
    const p = new URLSearchParams(location.search);
    p.set("lang", l);
    history.replaceState(null, "", location.pathname + "?" + p.toString());
  }

  const $ = id => document.getElementById(id);
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      e.setAttribute(k, v === true ? "" : v);
    }
    for (const k of kids) if (k !== null && k !== undefined) e.append(k);
    return e;
  }

  function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }
  function setToken(t) { if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY); }

  // One API call: {ok, status, data, error}. Paths are relative ("api/v1/..."), so the pages
  // work behind a proxy that serves floorwatch under a prefix.
  async function api(method, path, body) {
    const headers = { "Accept": "application/json" };
    const t = token();
    if (t) headers["Authorization"] = "Bearer " + t;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let r;
    try {
      r = await fetch(path, { method, headers, cache: "no-store", credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      return { ok: false, status: 0, data: null, error: W().network };
    }
    let data = null;
    try { data = await r.json(); } catch (e) { /* not JSON */ }
    return { ok: r.ok, status: r.status, data, error: (data && data.error) || r.statusText };
  }

  // Signs in with the stored token, or without one (auth proxy, open loopback). Resolves to
  // the session, or null after showing the sign-in form (or why this page is not theirs).
  async function signIn(roles, pageName, onReady) {
    const r = await api("GET", "api/v1/session");
    const form = $("signin"), msg = $("signin-msg");
    if (r.ok) {
      state.session = r.data;
      state.catalog = new Map((r.data.discipline || []).map(d => [d.item, d]));
      const role = r.data.role;
      if (!roles.includes(role)) {
        showSignin(W().wrongRolePage(pageName(), W().roles[role] || role), true);
        return null;
      }
      form.classList.add("hidden");
      document.querySelector("main").classList.remove("hidden");
      $("signout").classList.toggle("hidden", !token());
      onReady(r.data);
      return r.data;
    }
    if (r.status === 401) {
      const had = !!token();
      setToken("");
      showSignin(had ? W().badToken : "", false);
    } else if (r.status === 403) {
      showSignin(r.error && r.error.startsWith("open on loopback") ? W().loopbackOnly : r.error, false);
    } else {
      showSignin(W().network, false);
    }
    if (msg) msg.dataset.status = String(r.status);
    return null;
  }
  function showSignin(text, wrongRole) {
    document.querySelector("main").classList.add("hidden");
    $("signin").classList.remove("hidden");
    const msg = $("signin-msg");
    msg.textContent = text || "";
    msg.classList.toggle("hidden", !text);
    $("signin-form").classList.toggle("hidden", wrongRole && !token());
    $("signin-out").classList.toggle("hidden", !(wrongRole && token()));
    if (!wrongRole) $("token").focus();
  }
  function wireSignin(start) {
    $("signin-form").addEventListener("submit", ev => {
      ev.preventDefault();
      const t = $("token").value.trim();
      if (!t) return;
      setToken(t);
      $("token").value = "";
      start();
    });
    const out = () => { setToken(""); location.replace(location.pathname + location.search); };
    $("signout").addEventListener("click", out);
    $("signin-out").addEventListener("click", out);
  }

  // /ws/floor: snapshot, deltas, heartbeats. The token goes as a subprotocol (a browser
  // cannot set headers on a WebSocket), never in the URL.
  function feed(onMessage, onLink) {
    const conn = { ws: null, open: false, last: 0, attempt: 0, typed: false };
    const hex = s => [...new TextEncoder().encode(s)].map(b => b.toString(16).padStart(2, "0")).join("");
    function connect() {
      const proto = location.protocol === "https:" ? "wss:" : "ws:";
      const base = location.pathname.replace(/[^/]*$/, "");
      const protocols = ["floorwatch.floor"];
      if (token()) protocols.push("floorwatch.bearer." + hex(token()));
      let ws;
      try { ws = new WebSocket(proto + "//" + location.host + base + "ws/floor", protocols); } catch (e) { retry(); return; }
      conn.ws = ws;
      ws.onopen = () => { conn.open = true; conn.last = Date.now(); onLink(true); };
      ws.onmessage = ev => {
        let m;
        try { m = JSON.parse(ev.data); } catch (e) { return; }
        conn.attempt = 0; conn.last = Date.now();
        if (m.type) conn.typed = true;
        onMessage(m);
        onLink(true);
      };
      ws.onclose = () => {
        if (conn.ws !== ws) return;
        conn.ws = null; conn.open = false; onLink(false); retry();
      };
    }
    function retry() {
      conn.attempt += 1;
      const base = Math.min(15000, 500 * 2 ** Math.min(conn.attempt - 1, 5));
      setTimeout(connect, base / 2 + Math.random() * base / 2);
    }
    setInterval(() => {
      if (conn.ws && conn.typed && Date.now() - conn.last > 10000) {
        const ws = conn.ws; conn.ws = null; conn.open = false; ws.close(); onLink(false); retry();
      } else if (conn.open && conn.typed && Date.now() - conn.last > 5000) {
        onLink(false);
      }
    }, 1000);
    connect();
    return conn;
  }

  // ---- words and numbers ------------------------------------------------------------
  function W() { return WORDS[lang()]; }
  const pct = x => x == null ? "–" : Math.round(x * 100) + "%";
  function dur(ms) {
    if (ms == null) return "";
    const neg = ms < 0;
    let s = Math.floor(Math.abs(ms) / 1000);
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    return (neg ? "-" : "") + (h ? h + ":" + String(m).padStart(2, "0") : String(m)) + ":" + String(s).padStart(2, "0");
  }
  function time(ts) {
    if (!ts) return "";
    return new Date(ts).toLocaleTimeString(lang(), { hour12: false });
  }
  function dateTime(ts) {
    if (!ts) return "";
    return new Date(ts).toLocaleString(lang(), { hour12: false, month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }
  function money(x) {
    const s = state.session || {};
    return W().money((x || 0).toFixed(2), s.currency || "CNY");
  }
  function reasonWord(r) { const w = W().reason; return Object.hasOwn(w, r || "") ? w[r || ""] : r; }
  function kindWords(v) {
    if (v.rule === "discipline") {
      const item = state.catalog.get(v.kind);
      return item ? item.name : v.kind;
    }
    const k = W().kind[v.kind];
    if (typeof k === "function") return k(reasonWord(v.reason || ""));
    return k || (W().rule[v.rule] || v.rule) + " / " + v.kind;
  }
  function evidenceWords(v) {
    const e = v.evidence || {};
    if (v.rule === "discipline") return W().recordedBy(e.recorded_by || "", e.note || "");
    return W().evidence(e.limit_ms ? dur(e.limit_ms) : "", e.raised_after_ms ? dur(e.raised_after_ms) : "",
      e.lasted_ms != null ? dur(e.lasted_ms) : "");
  }
  // A failed action in words: 403s say why ("not one of your teams"), others what failed.
  function failure(r) {
    return (r.status === 403 ? W().forbidden : W().error) + (r.error || r.status);
  }
  function say(text, ok) {
    const box = $("say");
    box.replaceChildren(el("div", { class: "msg " + (ok ? "ok" : "error") }, text));
    clearTimeout(say.timer);
    say.timer = setTimeout(() => box.replaceChildren(), ok ? 5000 : 12000);
  }
  function applyLang() {
    document.documentElement.lang = lang();
    document.body.dataset.lang = lang();
    for (const e of document.querySelectorAll("[data-w]")) {
      const v = W()[e.dataset.w];
      if (typeof v === "string") e.textContent = v;
    }
    const b = $("lang");
    if (b) { b.textContent = W().otherLang; b.setAttribute("aria-label", W().switchLang); }
  }

  return { WORDS, state, lang, setLang, W, $, el, api, token, signIn, wireSignin, feed, pct, dur,
    time, dateTime, money, reasonWord, kindWords, evidenceWords, failure, say, applyLang };
})();
