// Pocket command room (掌上指挥室): tabs, lists read from the JSON API (the last copy kept for
// reading without signal), the case report form, household statuses and case actions through
// the offline queue (queue.js), and the decisions that need a connection (warnings, alarms,
// dispatch). Plain DOM; no framework, no charts, nothing from a CDN.
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("m-config").textContent);
  const S = cfg.strings;
  const Q = window.CityOpsQueue;
  const $ = (id) => document.getElementById(id);
  const VIEWS = ["home", "tasks", "report", "alerts"];
  const STATUSES = ["notified", "evacuated", "sheltered", "refused", "unreachable"];
  const AT_HOME = new Set(["pending", "notified", "refused", "unreachable"]);
  const NOTE_ACTIONS = new Set(["report_done", "return", "verify_fail"]);
  const enc = encodeURIComponent;
  let csrf = document.querySelector("#logout input[name=csrf_token]").value;
  Q.setOwner(cfg.owner);

  const state = {
    warnings: null, evac: null, cases: null, alarms: null, categories: null,
    stale: {}, errors: {}, pending: [], failed: [],
  };

  // --- text ---------------------------------------------------------------------------------

  function fmt(key, vars) {
    const text = S[key] === undefined ? key : S[key];
    return text.replace(/\{(\w+)\}/g, (m, k) => (vars && k in vars ? String(vars[k]) : m));
  }

  // Server messages are "中文 / English": show the reader's half.
  function pick(message) {
    if (!message) return "";
    const i = message.indexOf(" / ");
    if (i < 0) return message;
    return cfg.lang === "zh" ? message.slice(0, i) : message.slice(i + 3);
  }

  // Why it failed and what to do, for a person. queued: the item stays in the queue.
  function readable(e, queued) {
    if (!e) return "";
    if (e.network) return queued ? S.err_network : S.err_network_now;
    const why = pick(e.message || "").replace(/[。.！!\s]+$/, "") || String(e.status || "");
    const s = e.status || 0;
    if (s === 401) return S.err_session;
    if (s === 413 || e.code === "too_large") return S.err_too_large;
    if (s >= 500 || s === 408 || s === 429) return fmt(queued ? "err_busy" : "err_server_now", { why });
    if (s === 403) return fmt("err_forbidden", { why });
    if (s === 404) return fmt("err_not_found", { why });
    if (s === 409) return fmt("err_conflict", { why });
    return fmt("err_invalid", { why });
  }

  const timeFormat = new Intl.DateTimeFormat(cfg.lang === "zh" ? "zh-CN" : "en-GB", {
    timeZone: cfg.zone, month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit",
  });
  const when = (value) => (value ? timeFormat.format(new Date(value)) : "");

  // --- DOM ----------------------------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : String(c));
    }
    return el;
  }
  const empty = (text) => h("p", { class: "empty" }, text);
  // A line of facts that wrap between, never inside, each other.
  const meta = (parts) => h("p", { class: "meta" },
    parts.filter(Boolean).flatMap((part, i) => [i ? " · " : "", h("span", { class: "nowrap" }, part)]));

  let bannerTimer = null;
  function banner(text, kind, actions) {
    const el = $("banner");
    $("banner-text").textContent = text;
    el.dataset.kind = kind || "info";
    el.setAttribute("role", kind === "error" ? "alert" : "status");
    $("banner-actions").replaceChildren(...(actions || []));
    el.hidden = false;
    clearTimeout(bannerTimer);
    if (kind === "ok") bannerTimer = setTimeout(() => { el.hidden = true; }, 8000);
  }

  $("banner-close").addEventListener("click", () => { $("banner").hidden = true; });

  let signedOut = false; // the session ended: that message stays until the person signs in
  function expired() {
    signedOut = true;
    const next = location.pathname + location.search;
    banner(S.err_session, "error", [
      h("a", { class: "btn small primary", href: `/login?next=${enc(next).replace(/%2F/g, "/")}` }, S.sign_in_again),
    ]);
  }

  // --- HTTP ---------------------------------------------------------------------------------

  async function api(method, url, body, retried) {
    const headers = { Accept: "application/json" };
    let payload;
    if (body instanceof FormData) payload = body;
    else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    if (method !== "GET") headers["X-CSRF-Token"] = csrf;
    let res, text;
    try {
      res = await fetch(url, { method, headers, body: payload, credentials: "same-origin", cache: "no-store" });
      text = await res.text();
    } catch (e) {
      throw Object.assign(new Error("network"), { network: true });
    }
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!res.ok) {
      const err = (data && data.error) || {};
      const field = err.fields && err.fields[0] ? err.fields[0].field : null;
      if (res.status === 403 && field === "csrf_token" && !retried) {
        await refreshSession(); // the page's token is stale (signed in again elsewhere)
        return api(method, url, body, true);
      }
      throw Object.assign(new Error(err.message || res.statusText || String(res.status)), {
        status: res.status, code: err.code, field,
      });
    }
    return data;
  }

  // Before a sync: who is signed in now, and this session's CSRF token (the page may have been
  // opened from the offline copy). Another person on this phone: reload as them.
  async function refreshSession() {
    const s = await api("GET", "/m/api/session", undefined, true);
    if (s.owner !== cfg.owner) {
      location.reload();
      throw Object.assign(new Error("another user"), { status: 409 });
    }
    csrf = s.csrf_token;
    signedOut = false;
    return s;
  }
  Q.prepare = refreshSession;

  // --- the queue: senders -------------------------------------------------------------------

  Q.senders.report = async (item) => {
    const p = item.payload;
    if (p.photo && !item.attachment_id) {
      const form = new FormData();
      form.append("file", p.photo, "photo.jpg");
      const out = await api("POST", "/api/v1/attachments", form);
      item.attachment_id = out.id; // a retry re-uses the upload
      await Q.update(item).catch(() => {});
    }
    return api("POST", "/api/v1/cases", {
      description: p.description, category: p.category, urgency: p.urgency,
      lat: p.lat, lon: p.lon, region_code: p.region_code, address: p.address,
      idempotency_key: item.id, attachments: item.attachment_id ? [item.attachment_id] : [],
    });
  };

  Q.senders.evac_status = (item) => {
    const p = item.payload;
    return api("POST", `/api/v1/warnings/${enc(p.warning)}/evacuation/households/${enc(p.household)}`,
      { status: p.status, key: item.id });
  };

  Q.senders.case_action = async (item, session) => {
    const p = item.payload;
    const body = { note: p.note || "" };
    if (p.version) body.version = p.version;
    try {
      return await api("POST", `/api/v1/cases/${enc(p.code)}/actions/${enc(p.action)}`, body);
    } catch (e) {
      // Case actions carry no idempotency key: after a lost answer, the retry meets a changed
      // case (409). If the timeline shows our action by us, it was done.
      if (e.status === 409 && item.attempts > 0) {
        const c = await api("GET", `/api/v1/cases/${enc(p.code)}`);
        const done = (c.timeline || []).slice(-5).some(
          (ev) => ev.action === p.action && ev.actor_name === (session && session.name));
        if (done) return c;
      }
      throw e;
    }
  };

  Q.on("expired", expired);
  Q.on("change", () => { renderQueue(); });
  Q.on("sent", (item, result) => {
    if (item.kind === "report") banner(fmt("reported", { code: result.code }), "ok");
    else if (item.kind === "case_action") {
      banner(fmt("action_done", { code: item.payload.code, action: S[`act_${item.payload.action}`] }), "ok");
    } else if (item.kind === "evac_status") {
      applyStatus(item.payload, result);
      banner(fmt("status_set", { household: item.payload.name || item.payload.household, status: S[`status_${result.status}`] }), "ok");
    }
    scheduleRefresh();
  });
  Q.on("failed", (item, e) => {
    const actions = item.kind === "report" ? [editAgainButton(item)] : [];
    banner(fmt("failed_item", { kind: S[`kind_${item.kind}`] || item.kind, why: readable(e, false) }), "error", actions);
    scheduleRefresh();
  });
  Q.on("retry", (item, e) => {
    if (!e.network) banner(readable(e, true), "warn");
  });

  // Send now (the person acted, or the signal came back); a second round picks up what was
  // added while the first one ran.
  async function syncNow() {
    if (!navigator.onLine) return;
    await Q.flush(true);
    const left = await Q.pending().catch(() => []);
    if (left.length && left.every((i) => !i.last_error)) await Q.flush(true);
  }

  // Queue an action; fall back to sending it straight away when this phone cannot store it.
  async function enqueue(kind, payload, label, queuedText) {
    let item;
    try {
      item = await Q.add(kind, payload, label);
    } catch (e) {
      if (!navigator.onLine) { banner(S.err_storage, "error"); return null; }
      const direct = { id: Q.uuid(), kind, payload, attempts: 0 };
      try {
        const session = await refreshSession();
        const result = await Q.senders[kind](direct, session);
        if (kind === "report") banner(fmt("reported", { code: result.code }), "ok");
        if (kind === "evac_status") applyStatus(payload, result);
        scheduleRefresh();
      } catch (err) {
        banner(readable(err, false), "error");
      }
      return null;
    }
    await renderQueue();
    renderAll();
    if (!navigator.onLine) { banner(queuedText, "warn"); return item; }
    await syncNow();
    const still = (await Q.pending().catch(() => [])).find((i) => i.id === item.id);
    if (still && !signedOut) banner(still.last_error && !still.last_error.network ? readable(still.last_error, true) : queuedText, "warn");
    return item;
  }

  // --- the sync chip and panel --------------------------------------------------------------

  async function renderQueue() {
    let pending = [], failed = [];
    try { [pending, failed] = await Promise.all([Q.pending(), Q.failed()]); } catch (e) { /* no storage */ }
    state.pending = pending;
    state.failed = failed;
    const chip = $("sync");
    chip.hidden = !pending.length && !failed.length;
    chip.textContent = pending.length
      ? fmt("pending", { n: pending.length })
      : `${S.queue_failed} ${failed.length}`;
    chip.dataset.count = String(pending.length);
    $("queue-list").replaceChildren(...(pending.length ? pending.map((i) => h("li", {},
      `${S[`kind_${i.kind}`] || i.kind}：${i.label}`,
      h("small", {}, when(i.created_at), i.attempts ? ` · ${fmt("attempts", { n: i.attempts })}` : "",
        i.last_error ? ` · ${readable(i.last_error, true)}` : ""))) : [h("li", {}, S.pending_none)]));
    $("failed-title").hidden = !failed.length;
    $("failed-list").replaceChildren(...failed.map((i) => h("li", {},
      `${S[`kind_${i.kind}`] || i.kind}：${i.label}`,
      h("small", {}, readable(i.last_error, false)),
      h("div", { class: "row" },
        i.kind === "report" ? editAgainButton(i) : null,
        h("button", { type: "button", class: "btn small ghost", onclick: () => Q.discard(i.id) }, S.discard)))));
    renderAll();
  }

  $("sync").addEventListener("click", () => {
    const panel = $("queue-panel");
    panel.hidden = !panel.hidden;
    $("sync").setAttribute("aria-expanded", String(!panel.hidden));
  });
  $("sync-now").addEventListener("click", async () => {
    if (!navigator.onLine) { banner(S.err_network, "warn"); return; }
    const sent = await Q.flush(true);
    if (sent > 1) banner(fmt("synced", { n: sent }), "ok"); // one: its own message says it
  });

  // --- reading: lists with an offline copy --------------------------------------------------

  async function load(key, url) {
    try {
      const data = await api("GET", url);
      state.stale[key] = 0;
      state.errors[key] = null;
      Q.cachePut(key, data).catch(() => {});
      return data;
    } catch (e) {
      if (e.status === 401) expired();
      const hit = await Q.cacheGet(key).catch(() => null);
      if (hit) { state.stale[key] = hit.at; return hit.data; }
      state.errors[key] = e;
      throw e;
    }
  }

  async function loadWarnings() {
    const data = await load("warnings", "/api/v1/warnings?state=open");
    state.warnings = data.items;
    if (!cfg.can.evacuation) return;
    const fromCopy = async () => {
      const hit = await Q.cacheGet("evac").catch(() => null);
      state.evac = hit ? hit.data : [];
      state.stale.evac = hit ? hit.at : 0;
    };
    if (state.stale.warnings) { await fromCopy(); return; }
    try {
      const groups = [];
      for (const w of state.warnings) {
        if (!w.evacuation || w.evacuation.state !== "open") continue;
        const url = `/api/v1/warnings/${enc(w.code)}/evacuation/tasks?mine=true&unmask=true`;
        const tasks = await api("GET", url);
        const households = tasks.items.flatMap((t) => t.households);
        if (households.length) groups.push({ warning: w, households });
      }
      state.evac = groups;
      state.stale.evac = 0;
      state.errors.evac = null;
      Q.cachePut("evac", groups).catch(() => {});
    } catch (e) {
      if (e.status === 401) expired();
      state.errors.evac = e;
      await fromCopy();
    }
  }

  let loading = null;
  function refresh() {
    if (loading) return loading;
    const jobs = [];
    if (cfg.can.warnings) jobs.push(loadWarnings().catch(() => { state.warnings = state.warnings || []; }));
    if (cfg.can.cases) {
      jobs.push(load("cases", "/m/api/cases").then((d) => { state.cases = d.items; }, () => { state.cases = state.cases || []; }));
    }
    if (cfg.can.alarms) {
      jobs.push(load("alarms", "/api/v1/alarms?state=open&limit=50").then((d) => { state.alarms = d; }, () => { state.alarms = state.alarms || { total: 0, items: [] }; }));
    }
    loading = Promise.all(jobs).then(renderAll).finally(() => { loading = null; });
    return loading;
  }

  let refreshTimer = null;
  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, 300);
  }

  // --- rendering ----------------------------------------------------------------------------

  function pendingOverlay() {
    const evac = new Map();
    const cases = new Map();
    for (const i of state.pending) {
      if (i.kind === "evac_status") evac.set(`${i.payload.warning}|${i.payload.household}`, i.payload.status);
      if (i.kind === "case_action") cases.set(i.payload.code, i.payload.action);
    }
    return { evac, cases };
  }

  function applyStatus(payload, result) {
    for (const g of state.evac || []) {
      if (g.warning.code !== payload.warning) continue;
      for (const x of g.households) if (x.household === payload.household) x.status = result.status;
    }
    renderAll();
  }

  function levelTag(level) {
    return h("span", { class: `tag level level-${level}` }, S[`level_${level}`] || level);
  }

  function householdCard(w, x, overlay) {
    const queued = overlay.evac.get(`${w.code}|${x.household}`);
    const status = queued || x.status;
    const vulnerable = Object.values(x.vulnerable || {}).reduce((a, b) => a + b, 0);
    return h("article", { class: `card household${queued ? " pending-sync" : ""}`, "data-household": x.household, "data-status": status },
      h("h3", {}, x.head_name, h("span", { class: "tag" }, fmt("persons", { n: x.persons })),
        vulnerable ? h("span", { class: "tag warn" }, fmt("vulnerable", { n: vulnerable })) : null,
        queued ? h("span", { class: "tag sync" }, S.waiting_sync) : null),
      h("p", { class: "meta" }, x.address),
      h("p", {}, h("span", { class: `status-now status-${status}` }, S[`status_${status}`] || status),
        x.updated_by && !queued && status !== "pending" ? h("span", { class: "meta" }, ` · ${x.updated_by} ${when(x.updated_at)}`) : null),
      x.phone ? h("a", { class: "btn small ghost call", href: `tel:${x.phone}` }, `${S.call} ${x.phone}`)
        : h("p", { class: "meta" }, S.no_phone),
      h("div", { class: "statuses", role: "group", "aria-label": x.head_name },
        STATUSES.map((s) => h("button", {
          type: "button", "data-status": s, "aria-pressed": String(s === status),
          onclick: () => setStatus(w, x, s),
        }, S[`status_${s}`]))));
  }

  function evacNodes(limit) {
    if (state.evac === null) return [empty(S.loading)];
    const overlay = pendingOverlay();
    const nodes = [];
    let shown = 0;
    for (const g of state.evac) {
      const statusOf = (x) => overlay.evac.get(`${g.warning.code}|${x.household}`) || x.status;
      const open = g.households.filter((x) => AT_HOME.has(statusOf(x)));
      const list = limit ? open : g.households;
      if (!list.length || (limit && shown >= limit)) continue;
      nodes.push(h("p", { class: "group-head" }, levelTag(g.warning.level),
        g.warning.risk_point ? g.warning.risk_point.name : g.warning.code,
        h("span", { class: "meta" }, fmt("open_households", { n: open.length }))));
      for (const x of list) {
        if (limit && shown >= limit) break;
        nodes.push(householdCard(g.warning, x, overlay));
        shown += 1;
      }
    }
    if (!nodes.length) {
      nodes.push(state.errors.evac && !state.stale.evac
        ? empty(fmt("err_load", { why: readable(state.errors.evac, false) }))
        : empty(S.tasks_evac_none));
    }
    return nodes;
  }

  function caseCard(c, overlay) {
    const queued = overlay.cases.get(c.code);
    const tags = [h("span", { class: "tag" }, S[`state_${c.state}`] || c.state)];
    if (c.urgency === "urgent") tags.push(h("span", { class: "tag bad" }, S.urgent_tag));
    if (c.overdue) tags.push(h("span", { class: "tag bad" }, S.overdue));
    if (queued) tags.push(h("span", { class: "tag sync" }, `${S[`act_${queued}`]} · ${S.waiting_sync}`));
    const card = h("article", { class: `card case${queued ? " pending-sync" : ""}`, "data-case": c.code },
      h("h3", {}, c.category_name || S.category_unsure, tags),
      h("p", {}, c.description),
      meta([c.code, c.address, c.unit_name, c.deadline_at ? fmt("deadline", { time: when(c.deadline_at) }) : ""]));
    const actions = h("div", { class: "actions" });
    for (const a of c.actions) {
      const isDispatch = a === "dispatch";
      actions.append(h("button", {
        type: "button", class: `btn${a === "verify_fail" || a === "return" ? " danger" : a === "verify_ok" || a === "accept" ? " primary" : ""}`,
        disabled: !!queued, "data-action": a,
        onclick: () => (isDispatch ? dispatchForm(card, c) : NOTE_ACTIONS.has(a) ? noteForm(card, c, a) : caseAction(c, a, "")),
      }, S[`act_${a}`] || a));
    }
    card.append(actions);
    return card;
  }

  function caseNodes(dispatch, limit) {
    if (state.cases === null) return [empty(S.loading)];
    const overlay = pendingOverlay();
    let list = state.cases.filter((c) => (dispatch ? c.actions.includes("dispatch") : c.actions.some((a) => a !== "dispatch")));
    if (!dispatch) list = list.map((c) => ({ ...c, actions: c.actions.filter((a) => a !== "dispatch") }));
    else list = list.map((c) => ({ ...c, actions: ["dispatch"] }));
    if (limit) list = list.slice(0, limit);
    if (!list.length) {
      return [state.errors.cases && !state.stale.cases
        ? empty(fmt("err_load", { why: readable(state.errors.cases, false) }))
        : empty(dispatch ? S.dispatch_none : S.tasks_cases_none)];
    }
    return list.map((c) => caseCard(c, overlay));
  }

  // Warning decisions asked ("确定要…吗？") and not yet answered, by warning and step: a list
  // refreshed meanwhile (new data, the live feed) keeps the question on screen.
  const asking = new Set();

  function warningCard(w) {
    const card = h("article", { class: "card warning", "data-warning": w.code },
      h("h3", {}, levelTag(w.level), w.risk_point ? w.risk_point.name : w.code,
        h("span", { class: "tag" }, S[`wstate_${w.state}`] || w.state)),
      h("p", {}, w.headline));
    if (w.evacuation) card.append(h("p", { class: "meta" }, fmt("evac_progress", w.evacuation)));
    const reasons = cfg.lang === "en" && w.reasons_en && w.reasons_en.length ? w.reasons_en : w.reasons;
    if (reasons && reasons.length) card.append(h("p", { class: "meta" }, reasons.join("；")));
    const step = w.state === "proposed" ? "confirm" : w.state === "confirmed" ? "issue" : null;
    if (cfg.can.decide && step) {
      const label = S[`warning_${step}`];
      const key = `${w.code}:${step}`;
      const actions = h("div", { class: "actions" });
      const ask = () => {
        asking.add(key);
        actions.replaceChildren(
          h("p", { class: "status-now" }, fmt("warning_ask", { action: label })),
          h("button", {
            type: "button", class: "btn primary", "data-confirm": step,
            onclick: (ev) => online(ev.currentTarget, async () => {
              await api("POST", `/api/v1/warnings/${enc(w.code)}/${step}`, {});
              asking.delete(key);
              banner(step === "confirm" ? S.warning_confirmed : S.warning_issued, "ok");
            }),
          }, S.confirm),
          h("button", {
            type: "button", class: "btn ghost",
            onclick: () => { asking.delete(key); actions.replaceChildren(first); },
          }, S.cancel));
      };
      const first = h("button", { type: "button", class: "btn primary", "data-step": step, onclick: ask }, label);
      actions.append(first);
      card.append(actions);
      if (asking.has(key)) ask();
    }
    return card;
  }

  function alarmCard(a) {
    const card = h("article", { class: "card alarm", "data-alarm": a.id },
      h("h3", {}, h("span", { class: `tag sev-${a.severity}` }, S[`sev_${a.severity}`] || a.severity),
        a.rule_name, a.count > 1 ? h("span", { class: "tag" }, fmt("alarm_count", { n: a.count })) : null,
        a.acked ? h("span", { class: "tag ok" }, S.alarm_acked) : null),
      a.message ? h("p", {}, a.message) : null,
      meta([a.site || a.source, when(a.last_seen)]));
    if (cfg.can.ack && !a.acked) {
      card.append(h("div", { class: "actions" }, h("button", {
        type: "button", class: "btn",
        onclick: (ev) => online(ev.currentTarget, async () => {
          await api("POST", `/api/v1/alarms/${a.id}/ack`, { note: "" });
          banner(S.alarm_acked, "ok");
        }),
      }, S.alarm_ack)));
    }
    return card;
  }

  function warningNodes(limit) {
    if (state.warnings === null) return [empty(S.loading)];
    const list = limit ? state.warnings.slice(0, limit) : state.warnings;
    if (!list.length) {
      return [state.errors.warnings ? empty(fmt("err_load", { why: readable(state.errors.warnings, false) }))
        : empty(S.alerts_warnings_none)];
    }
    return list.map(warningCard);
  }

  function alarmNodes(limit) {
    if (state.alarms === null) return [empty(S.loading)];
    const items = state.alarms.items || [];
    const list = limit ? items.slice(0, limit) : items;
    if (!list.length) {
      return [state.errors.alarms ? empty(fmt("err_load", { why: readable(state.errors.alarms, false) }))
        : empty(S.alerts_alarms_none)];
    }
    return list.map(alarmCard);
  }

  function counts() {
    const overlay = pendingOverlay();
    let households = 0;
    for (const g of state.evac || []) {
      for (const x of g.households) {
        if (AT_HOME.has(overlay.evac.get(`${g.warning.code}|${x.household}`) || x.status)) households += 1;
      }
    }
    return {
      households,
      cases: (state.cases || []).filter((c) => c.actions.some((a) => a !== "dispatch")).length,
      dispatch: (state.cases || []).filter((c) => c.actions.includes("dispatch")).length,
      warnings: (state.warnings || []).length,
      alarms: state.alarms ? state.alarms.total : 0,
    };
  }

  function setBadge(id, n) {
    const b = $(id);
    b.hidden = !n;
    b.textContent = n > 99 ? "99+" : String(n);
  }

  function renderAll() {
    const n = counts();
    const put = (id, value, ready) => { $(id).textContent = ready ? String(value) : "–"; };
    put("count-households", n.households, state.evac !== null);
    put("count-cases", n.cases, state.cases !== null);
    put("count-warnings", n.warnings, state.warnings !== null);
    put("count-alarms", n.alarms, state.alarms !== null);
    setBadge("badge-tasks", (cfg.can.evacuation ? n.households : 0) + n.cases);
    setBadge("badge-alerts", n.warnings + n.dispatch);
    const home = [];
    if (cfg.can.evacuation) home.push(...evacNodes(3).filter((node) => !node.classList.contains("empty")));
    if (cfg.can.cases) home.push(...caseNodes(false, 3).filter((node) => !node.classList.contains("empty")));
    $("home-tasks").replaceChildren(...(home.length ? home : [empty(S.tasks_cases_none)]));
    const alerts = [];
    if (cfg.can.warnings) alerts.push(...warningNodes(3).filter((node) => !node.classList.contains("empty")));
    if (cfg.can.alarms) alerts.push(...alarmNodes(3).filter((node) => !node.classList.contains("empty")));
    $("home-alerts").replaceChildren(...(alerts.length ? alerts : [empty(S.alerts_warnings_none)]));
    if (cfg.can.evacuation) $("evac-list").replaceChildren(...evacNodes(0));
    if (cfg.can.cases) $("case-list").replaceChildren(...caseNodes(false, 0));
    if (cfg.can.dispatch) $("dispatch-list").replaceChildren(...caseNodes(true, 0));
    if (cfg.can.warnings) $("warning-list").replaceChildren(...warningNodes(0));
    if (cfg.can.alarms) $("alarm-list").replaceChildren(...alarmNodes(0));
    for (const p of document.querySelectorAll("[data-stale]")) {
      const at = state.stale[p.dataset.stale];
      p.hidden = !at;
      if (at) p.textContent = fmt("as_of", { time: when(at) });
    }
  }

  // --- acting -------------------------------------------------------------------------------

  function setStatus(w, x, status) {
    const payload = { warning: w.code, household: x.household, status, name: x.head_name };
    const label = `${x.head_name}（${x.household}）→ ${S[`status_${status}`]}`;
    return enqueue("evac_status", payload, label, S.queued_status);
  }

  function caseAction(c, action, note) {
    const payload = { code: c.code, action, note, version: c.version };
    return enqueue("case_action", payload, `${c.code} ${S[`act_${action}`]}`, S.queued_action);
  }

  function noteForm(card, c, action) {
    card.querySelector(".inline-form")?.remove();
    const label = S[`act_${action}`];
    const area = h("textarea", { rows: 3, maxlength: 2000, "aria-label": fmt("note_for", { action: label }) });
    const error = h("p", { class: "error", role: "alert", hidden: true });
    const form = h("form", { class: "inline-form", novalidate: true },
      h("label", {}, fmt("note_for", { action: label })), area, error,
      h("div", { class: "row" },
        h("button", { type: "submit", class: "btn primary" }, S.confirm),
        h("button", { type: "button", class: "btn ghost", onclick: () => form.remove() }, S.cancel)));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const note = area.value.trim();
      if (!note) { error.textContent = S.note_required; error.hidden = false; area.focus(); return; }
      form.remove();
      caseAction(c, action, note);
    });
    card.append(form);
    area.focus();
  }

  async function dispatchForm(card, c) {
    card.querySelector(".inline-form")?.remove();
    if (!navigator.onLine) { banner(S.err_network_now, "error"); return; }
    let routing;
    try { routing = await api("GET", `/api/v1/cases/${enc(c.code)}/routing`); } catch (e) {
      if (e.status === 401) expired(); else banner(readable(e, false), "error");
      return;
    }
    const suggested = new Set(routing.suggestions.filter((s) => s.unit).map((s) => s.unit));
    const targets = [...routing.targets].sort((a, b) => suggested.has(b.code) - suggested.has(a.code));
    const select = h("select", { "aria-label": S.dispatch_to },
      targets.map((t) => h("option", { value: t.code }, t.name + (suggested.has(t.code) ? S.dispatch_suggested : ""))));
    const form = h("form", { class: "inline-form" }, h("label", {}, S.dispatch_to), select,
      h("div", { class: "row" },
        h("button", { type: "submit", class: "btn primary" }, S.confirm),
        h("button", { type: "button", class: "btn ghost", onclick: () => form.remove() }, S.cancel)));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      online(form.querySelector("button[type=submit]"), async () => {
        await api("POST", `/api/v1/cases/${enc(c.code)}/actions/dispatch`, { unit: select.value, version: c.version });
        banner(fmt("action_done", { code: c.code, action: S.act_dispatch }), "ok");
      });
    });
    card.append(form);
  }

  // Decisions that must not wait in a queue (a warning confirmed hours later is wrong).
  async function online(button, fn) {
    if (!navigator.onLine) { banner(S.err_network_now, "error"); return; }
    button.disabled = true;
    try {
      await fn();
      scheduleRefresh();
    } catch (e) {
      if (e.status === 401) expired(); else banner(readable(e, false), "error");
    } finally {
      button.disabled = false;
    }
  }

  // --- the report form ----------------------------------------------------------------------

  const form = $("report-form");
  const report = { photo: null, lat: null, lon: null, region_code: null, previewUrl: null };

  function formError(text) {
    $("r-error").textContent = text || "";
    $("r-error").hidden = !text;
  }
  function locationNote(text, ok) {
    $("r-location").textContent = text;
    $("r-location").className = `hint${ok ? " ok" : ""}`;
  }

  async function loadCategories() {
    if (state.categories) return;
    let data;
    try { data = await load("categories", "/api/v1/categories"); } catch (e) {
      $("r-category-note").hidden = false;
      return;
    }
    state.categories = data;
    const parents = new Map(data.filter((c) => !c.parent).map((c) => [c.code, c.name]));
    const groups = new Map();
    for (const c of data) {
      if (!c.parent || c.active === false) continue;
      if (!groups.has(c.parent)) groups.set(c.parent, []);
      groups.get(c.parent).push(c);
    }
    const select = $("r-category");
    const chosen = select.value;
    for (const [parent, items] of groups) {
      select.append(h("optgroup", { label: parents.get(parent) || parent },
        items.map((c) => h("option", { value: c.code }, `${c.name}`))));
    }
    if (chosen) select.value = chosen;
  }

  async function shrink(file) {
    const MAX = 1600;
    let source;
    if (self.createImageBitmap) source = await createImageBitmap(file);
    else {
      source = await new Promise((resolve, reject) => {
        const img = new Image();
        img.onload = () => resolve(img);
        img.onerror = reject;
        img.src = URL.createObjectURL(file);
      });
    }
    const scale = Math.min(1, MAX / Math.max(source.width, source.height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(source.width * scale));
    canvas.height = Math.max(1, Math.round(source.height * scale));
    canvas.getContext("2d").drawImage(source, 0, 0, canvas.width, canvas.height);
    return new Promise((resolve, reject) =>
      canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("encode"))), "image/jpeg", 0.82));
  }

  function setPhoto(blob) {
    report.photo = blob;
    if (report.previewUrl) URL.revokeObjectURL(report.previewUrl);
    report.previewUrl = blob ? URL.createObjectURL(blob) : null;
    $("r-preview").hidden = !blob;
    if (blob) $("r-preview-img").src = report.previewUrl;
    else $("r-preview-img").removeAttribute("src");
  }

  $("r-photo").addEventListener("change", async (ev) => {
    const file = ev.target.files && ev.target.files[0];
    if (!file) return;
    formError("");
    try { setPhoto(await shrink(file)); } catch (e) { setPhoto(null); formError(S.photo_failed); }
    ev.target.value = "";
  });
  $("r-photo-remove").addEventListener("click", () => setPhoto(null));

  async function placeName(lat, lon) {
    if (!navigator.onLine) return;
    try {
      const where = await api("GET", `/api/v1/locate?lat=${lat}&lon=${lon}`);
      const place = [where.town, where.village, where.grid].filter(Boolean).map((r) => r.name).join(" ");
      if (place && report.lat === lat) locationNote(`${$("r-location").textContent} · ${fmt("located_in", { place })}`, true);
    } catch (e) { /* the place name is a courtesy */ }
  }

  function locate() {
    if (!navigator.geolocation) { locationNote(fmt("gps_failed", { why: S.gps_unavailable })); return; }
    const btn = $("r-gps");
    btn.disabled = true;
    locationNote(S.gps_busy);
    navigator.geolocation.getCurrentPosition((pos) => {
      btn.disabled = false;
      report.lat = Math.round(pos.coords.latitude * 1e6) / 1e6;
      report.lon = Math.round(pos.coords.longitude * 1e6) / 1e6;
      report.region_code = null;
      locationNote(fmt("gps_ok", { acc: Math.round(pos.coords.accuracy) }), true);
      placeName(report.lat, report.lon);
    }, (err) => {
      btn.disabled = false;
      const why = err.code === 1 ? S.gps_denied : err.code === 3 ? S.gps_timeout : S.gps_unavailable;
      locationNote(fmt("gps_failed", { why }));
    }, { enableHighAccuracy: true, timeout: 15000, maximumAge: 30000 });
  }
  $("r-gps").addEventListener("click", locate);

  $("r-grid").addEventListener("click", () => {
    if (!cfg.grid) { locationNote(S.no_grid); return; }
    report.lat = report.lon = null;
    report.region_code = cfg.grid.code;
    locationNote(fmt("grid_centre_set", { name: cfg.grid.name }), true);
  });
  if (!cfg.grid) $("r-grid").hidden = true;

  let reportPrepared = false;
  async function prepareReport() {
    loadCategories();
    if (reportPrepared) return;
    reportPrepared = true;
    // Locate straight away when the phone already allows it; otherwise wait for a tap.
    try {
      const p = await navigator.permissions.query({ name: "geolocation" });
      if (p.state === "granted" && report.lat === null && !report.region_code) locate();
    } catch (e) { /* no Permissions API */ }
  }

  function resetForm() {
    form.reset();
    setPhoto(null);
    report.lat = report.lon = report.region_code = null;
    locationNote("");
    formError("");
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    formError("");
    const description = $("r-description").value.trim();
    const choice = $("r-category").value;
    if (!choice) { formError(S.category_choose); $("r-category").focus(); return; }
    if (description.length < 2) { formError(S.need_description); $("r-description").focus(); return; }
    if (report.lat === null && !report.region_code) { formError(S.need_location); $("r-gps").focus(); return; }
    const payload = {
      description, category: choice === "-" ? null : choice,
      urgency: $("r-urgent").checked ? "urgent" : "normal",
      lat: report.lat, lon: report.lon, region_code: report.region_code,
      address: $("r-address").value.trim(), photo: report.photo,
    };
    const button = $("r-submit");
    button.disabled = true;
    resetForm();
    window.scrollTo(0, 0);
    try {
      await enqueue("report", payload, description.slice(0, 40), S.queued_report);
    } finally {
      button.disabled = false;
    }
  });

  function editAgainButton(item) {
    return h("button", {
      type: "button", class: "btn small",
      onclick: async () => {
        const p = item.payload;
        await Q.discard(item.id).catch(() => {});
        show("report", true);
        await loadCategories();
        $("r-category").value = p.category || "-";
        $("r-description").value = p.description;
        $("r-urgent").checked = p.urgency === "urgent";
        $("r-address").value = p.address || "";
        report.lat = p.lat; report.lon = p.lon; report.region_code = p.region_code;
        setPhoto(p.photo || null);
        if (p.region_code && cfg.grid && p.region_code === cfg.grid.code) {
          locationNote(fmt("grid_centre_set", { name: cfg.grid.name }), true);
        } else if (p.lat !== null) locationNote(`${p.lat}, ${p.lon}`, true);
        formError(readable(item.last_error, false));
        $("banner").hidden = true;
      },
    }, S.report_resend);
  }

  // --- navigation ---------------------------------------------------------------------------

  const PATHS = { home: "/m/", tasks: "/m/tasks", report: "/m/report", alerts: "/m/alerts" };
  function viewOf(pathname) {
    const name = pathname.replace(/^\/m\/?/, "").split("/")[0];
    return VIEWS.includes(name) ? name : "home";
  }

  function show(view, push) {
    if (view === "report" && !cfg.can.report) view = "home";
    for (const v of VIEWS) $(`view-${v}`).hidden = v !== view;
    for (const a of document.querySelectorAll(".m-tabs a")) {
      if (a.dataset.nav === view) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    document.body.dataset.view = view;
    if (push && location.pathname !== PATHS[view]) history.pushState({ view }, "", PATHS[view]);
    if (view === "report") prepareReport();
    window.scrollTo(0, 0);
  }

  document.addEventListener("click", (ev) => {
    const a = ev.target.closest("a[data-nav]");
    if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey) return;
    ev.preventDefault();
    show(a.dataset.nav, true);
  });
  window.addEventListener("popstate", () => show(viewOf(location.pathname), false));
  for (const el of document.querySelectorAll("[data-needs]")) {
    if (!cfg.can[el.dataset.needs]) el.hidden = true;
  }
  if (!cfg.can.report) document.querySelector('.m-tabs a[data-nav="report"]').hidden = true;
  for (const b of document.querySelectorAll("button.refresh")) {
    b.addEventListener("click", () => { syncNow(); refresh(); });
  }

  // --- connection, sign-out, service worker -------------------------------------------------

  function netStatus() {
    const on = navigator.onLine;
    $("net").dataset.state = on ? "online" : "offline";
    $("net").textContent = on ? S.online : S.offline;
  }
  window.addEventListener("online", async () => {
    netStatus();
    const sent = await Q.flush(true);
    if (sent > 1) banner(fmt("synced", { n: sent }), "ok"); // one: its own message says it
    refresh();
  });
  window.addEventListener("offline", netStatus);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && navigator.onLine) { Q.flush(false); refresh(); }
  });
  setInterval(() => {
    if (document.visibilityState === "visible" && navigator.onLine) refresh();
  }, 60000);

  $("logout").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const n = state.pending.length;
    if (n && !window.confirm(fmt("sign_out_pending", { n }))) return;
    // Personal data leaves the phone with the person; unsent items stay, bound to them.
    await Q.cacheClear().catch(() => {});
    if (self.caches) await caches.delete("cityops-m-pages").catch(() => {});
    ev.target.submit();
  });

  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/m/sw.js", { scope: "/m/" })
      .then(() => navigator.serviceWorker.ready)
      .then((reg) => {
        // Keep this session's shell for an offline start, whichever page opened the app.
        if (reg.active) reg.active.postMessage({ type: "warm", urls: [PATHS.home, location.pathname] });
      })
      .catch((e) => console.warn("service worker not registered:", e));
  }

  // --- start --------------------------------------------------------------------------------

  window.CityOpsMobile = { state, refresh, syncNow, queue: Q };
  netStatus();
  show(viewOf(location.pathname), false);
  renderQueue().then(() => (navigator.onLine ? Q.flush(false) : 0)).then((sent) => {
    if (sent > 1) banner(fmt("synced", { n: sent }), "ok"); // one: its own message says it
  });
  refresh();
})();
