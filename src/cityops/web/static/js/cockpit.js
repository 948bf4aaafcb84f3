// Digital cockpit: the region's vital signs, charts and a layered map (ECharts on our own
// GeoJSON, no tile server), drill-down district → town → village → grid with a breadcrumb back,
// kept live by the event stream (or by polling the feed when the stream is unavailable).
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("cockpit-config").textContent);
  const S = cfg.strings;
  const el = (id) => document.getElementById(id);
  const fmt = (tpl, vars) => String(tpl).replace(/\{(\w+)\}/g, (_, k) => (k in vars ? vars[k] : ""));
  const locale = cfg.lang === "en" ? "en-GB" : "zh-CN";
  const num = new Intl.NumberFormat(locale);
  const FONT = '"Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei", sans-serif';
  const TEXT = "#dbe7ff", MUTED = "#9db3d6", GRID_LINE = "#1d3559";
  // Case states in colours that stand out against the blue map; overdue ones in red.
  const STATE_COLOURS = { reported: "#f1f7ff", registered: "#7df9ff", dispatched: "#c9b0ff",
    handling: "#ffe066", handled: "#5cf0a0" };
  const AREA_RAMP = ["#0d2650", "#154582", "#1e66b0", "#2a8bd4", "#48b3ee"]; // open cases, few → many
  const SEVERITY_COLOURS = { critical: "#ff4d4f", major: "#ff9a3c", minor: "#ffd84d", warning: "#8fc0ff" };
  const LEVEL_COLOURS = { red: "#ff3b30", orange: "#ff9500", yellow: "#ffd60a", blue: "#3a86ff", none: "#8d9bb3" };
  const PALETTE = ["#4cc9ff", "#ffb547", "#3fd28b", "#b692f6", "#ff7a90", "#ffd84d", "#2ee6d6", "#8fc0ff"];
  // Which map layers an event of a topic may change.
  const TOPIC_LAYERS = { cases: ["cases"], alarms: ["alarms"], alarm: ["alarms"],
    warnings: ["risk_points", "shelters"], evacuations: ["shelters"], risk_points: ["risk_points"] };
  const TOPIC_KIND = { alarm: "alarms" }; // the alarm domain publishes "alarm"

  let region = cfg.region;
  let summary = null;
  let names = Object.assign({}, cfg.names); // code → name, for the ticker and the map labels
  let boundaries = null; // { name, leaf }
  const layerData = {};
  const enabled = new Set();
  const previousAtHome = {};
  const previousKpi = {};

  if (typeof echarts === "undefined") return; // assets missing: the page says so
  const init = (id) => echarts.init(el(id), null, { renderer: "canvas" });
  const charts = { map: init("map"), sources: init("chart-sources"),
    categories: init("chart-categories"), trend: init("chart-trend") };
  window.addEventListener("resize", () => Object.values(charts).forEach((c) => c.resize()));

  // --- data -------------------------------------------------------------------------------------
  async function getJSON(url) {
    const res = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (res.status === 401) {
      location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
      throw new Error("signed out");
    }
    if (!res.ok) throw new Error(url + " → " + res.status);
    return res.json();
  }
  const api = (path) => `/api/v1/cockpit/${path}?region=${encodeURIComponent(region)}`;

  async function loadSummary() {
    summary = await getJSON(api("summary"));
    renderSummary();
  }

  async function loadBoundaries() {
    let fc = await getJSON(`/api/v1/regions/${region}/children.geojson`);
    let leaf = false;
    if (!fc.features.length) {
      const detail = await getJSON(`/api/v1/regions/${region}`);
      leaf = true;
      fc = { type: "FeatureCollection", features: [{ type: "Feature",
        properties: { code: detail.code, name: detail.name }, geometry: detail.geometry }] };
    }
    fc.features.forEach((f) => { names[f.properties.code] = f.properties.name; });
    const name = "ck-" + region;
    echarts.registerMap(name, fc);
    boundaries = { name, leaf, count: fc.features.length, codes: fc.features.map((f) => f.properties.code) };
    renderDrill(leaf ? [] : fc.features.map((f) => f.properties));
  }

  async function loadLayer(layer) {
    layerData[layer] = await getJSON(api("layers/" + layer));
  }

  // The keyboard's way down: the same children as the map, in a list.
  function renderDrill(children) {
    const select = el("drill");
    const first = select.options[0];
    select.replaceChildren(first, ...children.map((c) => new Option(c.name, c.code)));
    select.value = "";
    el("drill-box").hidden = children.length === 0;
  }
  el("drill").addEventListener("change", (e) => { if (e.target.value) go(e.target.value, true); });

  // --- navigation -------------------------------------------------------------------------------
  async function go(code, push) {
    region = code;
    if (push) history.pushState({ region: code }, "", `?region=${code}`);
    const lang = el("lang-switch");
    if (lang) lang.href = `?region=${code}&lang=${cfg.lang === "zh" ? "en" : "zh"}`;
    Object.keys(layerData).forEach((k) => delete layerData[k]);
    try {
      await Promise.all([loadSummary(), loadBoundaries(), ...[...enabled].map(loadLayer)]);
      drawMap(true);
      el("map").dataset.loaded = code; // drawn with its figures and layers (tests, benchmarks)
    } catch (e) {
      showError(e);
    }
  }

  function showError(e) {
    console.warn(e);
    el("layer-note").textContent = S.load_failed;
  }

  // --- panels -----------------------------------------------------------------------------------
  function setNumber(id, value, text) {
    const node = el(id);
    const shown = text !== undefined ? text : num.format(value);
    if (node.textContent === shown) return;
    node.textContent = shown;
    if (previousKpi[id] !== undefined && previousKpi[id] !== value) {
      node.classList.remove("flash"); void node.offsetWidth; node.classList.add("flash");
    }
    previousKpi[id] = value;
  }
  const pct = (rate) => (rate === null || rate === undefined ? "–" : (rate * 100).toFixed(1) + "%");

  function renderSummary() {
    const s = summary;
    el("region-name").textContent = s.region.name;
    document.title = `${S.page_title} · ${s.region.name}`;
    renderCrumbs(s.breadcrumb);
    setNumber("kpi-intake", s.today.intake);
    setNumber("kpi-closed", s.today.closed);
    setNumber("kpi-open", s.today.open);
    setNumber("kpi-overdue", s.today.overdue);
    setNumber("kpi-closure", s.rates.closure_rate, pct(s.rates.closure_rate));
    setNumber("kpi-ontime", s.rates.on_time_closure_rate, pct(s.rates.on_time_closure_rate));
    for (const sev of ["critical", "major", "minor", "warning"]) setNumber("alarm-" + sev, s.alarms[sev]);
    for (const level of ["red", "orange", "yellow", "blue"]) setNumber("rp-" + level, s.risk_points[level]);
    setNumber("rp-total", s.risk_points.total);
    setNumber("alarm-total", s.alarms.total);
    el("alarm-unacked").textContent = fmt(S.unacked, { n: num.format(s.alarms.unacked) });
    el("alarm-shelved").textContent = s.alarms.shelved ? fmt(S.shelved, { n: num.format(s.alarms.shelved) }) : "";
    setNumber("dev-total", s.devices.total);
    setNumber("dev-online", s.devices.online);
    setNumber("dev-offline", s.devices.offline);
    const share = s.devices.total ? (100 * s.devices.online) / s.devices.total : 0;
    el("dev-on-bar").style.width = share.toFixed(1) + "%";
    el("dev-bar").setAttribute("aria-label",
      `${S.devices}: ${S.online} ${s.devices.online}, ${S.offline} ${s.devices.offline}`);
    renderWarnings(s.warnings);
    renderCharts(s);
  }

  function renderCrumbs(crumbs) {
    el("breadcrumb").replaceChildren(...crumbs.map((c, i) => {
      const li = document.createElement("li");
      const last = i === crumbs.length - 1;
      let node;
      if (!last && c.in_scope) {
        node = document.createElement("button");
        node.type = "button";
        node.addEventListener("click", () => go(c.code, true));
      } else {
        node = document.createElement("span");
        if (last) node.setAttribute("aria-current", "page");
      }
      node.textContent = c.name;
      node.dataset.code = c.code;
      li.append(node);
      return li;
    }));
  }

  function renderWarnings(warnings) {
    const list = el("warnings");
    if (!warnings.length) {
      const li = document.createElement("li");
      li.className = "wn-empty"; li.textContent = S.no_warnings;
      list.replaceChildren(li);
      return;
    }
    list.replaceChildren(...warnings.map((w) => {
      const li = document.createElement("li");
      li.className = `wn wn-${w.level}`;
      li.dataset.code = w.code;
      const head = document.createElement("div");
      head.className = "wn-head";
      head.append(span("wn-level", fmt(S.warning_level, { level: S["level_" + w.level] || w.level })),
        span("wn-name", `${w.risk_point_name} · ${S["hazard_" + w.hazard] || w.hazard}`),
        span("wn-state", S["wstate_" + w.state] || w.state));
      li.append(head);
      const e = w.evacuation;
      if (!e) {
        li.append(span("wn-none", S.no_evacuation, "p"));
        return li;
      }
      const home = document.createElement("div");
      home.className = "wn-home";
      const strong = document.createElement("strong");
      strong.textContent = fmt(S.at_home, { n: num.format(e.at_home) });
      if (e.at_home === 0) strong.classList.add("zero");
      if (previousAtHome[w.code] !== undefined && previousAtHome[w.code] !== e.at_home) strong.classList.add("flash");
      previousAtHome[w.code] = e.at_home;
      home.append(strong, span("", fmt(S.evac_detail, { evacuated: num.format(e.evacuated),
        sheltered: num.format(e.sheltered), total: num.format(e.total) })));
      const bar = document.createElement("div");
      bar.className = "wn-bar";
      const done = e.evacuated + e.sheltered;
      bar.setAttribute("role", "progressbar");
      bar.setAttribute("aria-valuemin", "0");
      bar.setAttribute("aria-valuemax", String(e.total));
      bar.setAttribute("aria-valuenow", String(done));
      bar.setAttribute("aria-label", fmt(S.evac_progress, { done, total: e.total }));
      const part = (cls, n) => { const p = document.createElement("span"); p.className = cls;
        p.style.width = (e.total ? (100 * n) / e.total : 0).toFixed(1) + "%"; return p; };
      bar.append(part("evac", e.evacuated), part("shel", e.sheltered));
      li.append(home, bar);
      return li;
    }));
  }

  function span(cls, text, tag) {
    const node = document.createElement(tag || "span");
    if (cls) node.className = cls;
    node.textContent = text;
    return node;
  }

  // --- charts -----------------------------------------------------------------------------------
  const empty = (none) => ({ show: none, text: S.no_data, left: "center", top: "middle",
    textStyle: { color: MUTED, fontSize: 14, fontWeight: "normal", fontFamily: FONT } });

  function renderCharts(s) {
    const sources = s.by_source.map((x) => ({ name: S["src_" + x.key] || x.key, value: x.count }));
    charts.sources.setOption({
      color: PALETTE, textStyle: { fontFamily: FONT }, title: empty(!sources.length),
      tooltip: { trigger: "item", formatter: "{b}：{c}（{d}%）" },
      legend: { type: "scroll", orient: "vertical", right: 4, top: "middle", itemWidth: 10, itemHeight: 10,
        textStyle: { color: TEXT, fontSize: 12 }, pageTextStyle: { color: MUTED } },
      series: [{ type: "pie", radius: ["42%", "72%"], center: ["32%", "52%"], avoidLabelOverlap: true,
        label: { show: false }, itemStyle: { borderColor: "#0c1b38", borderWidth: 2 }, data: sources }],
    }, true);

    const cats = s.by_category.items.map((c) => ({ name: c.name || S.uncategorised, value: c.count }));
    cats.reverse(); // the most frequent at the top
    charts.categories.setOption({
      textStyle: { fontFamily: FONT }, title: empty(!cats.length),
      grid: { left: 8, right: 36, top: 4, bottom: 4, containLabel: true },
      tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
      xAxis: { type: "value", show: false },
      yAxis: { type: "category", data: cats.map((c) => c.name), axisTick: { show: false },
        axisLine: { lineStyle: { color: GRID_LINE } },
        axisLabel: { color: TEXT, fontSize: 12, width: 120, overflow: "truncate" } },
      series: [{ type: "bar", data: cats.map((c) => c.value), barMaxWidth: 14,
        label: { show: true, position: "right", color: TEXT, fontSize: 12 },
        itemStyle: { borderRadius: [0, 3, 3, 0], color: new echarts.graphic.LinearGradient(0, 0, 1, 0,
          [{ offset: 0, color: "#1f6feb" }, { offset: 1, color: "#4cc9ff" }]) } }],
    }, true);

    charts.trend.setOption({
      color: ["#4cc9ff", "#3fd28b"], textStyle: { fontFamily: FONT },
      tooltip: { trigger: "axis" },
      legend: { top: 0, right: 0, textStyle: { color: TEXT, fontSize: 12 }, itemWidth: 14, itemHeight: 8 },
      grid: { left: 6, right: 12, top: 26, bottom: 4, containLabel: true },
      xAxis: { type: "category", boundaryGap: false, data: s.trend.days.map((d) => d.slice(5)),
        axisLabel: { color: MUTED, fontSize: 11 }, axisLine: { lineStyle: { color: GRID_LINE } } },
      yAxis: { type: "value", minInterval: 1, axisLabel: { color: MUTED, fontSize: 11 },
        splitLine: { lineStyle: { color: GRID_LINE } } },
      series: [
        { name: S.series_intake, type: "line", smooth: 0.2, symbol: "none", data: s.trend.intake,
          areaStyle: { opacity: 0.18 } },
        { name: S.series_closed, type: "line", smooth: 0.2, symbol: "none", data: s.trend.closed,
          areaStyle: { opacity: 0.12 } },
      ],
    }, true);
  }

  // --- map --------------------------------------------------------------------------------------
  const point = (f, extra) => Object.assign({ value: f.geometry.coordinates, p: f.properties }, extra || {});

  function scatter(name, data, colour, options) {
    return Object.assign({ name, type: "scatter", coordinateSystem: "geo", geoIndex: 0, data,
      symbolSize: 7, itemStyle: { color: colour, borderColor: "rgba(5,12,27,0.8)", borderWidth: 0.6 },
      emphasis: { scale: 1.6 }, large: data.length > 2000, zlevel: 1 }, options || {});
  }

  function layerSeries() {
    const out = [];
    const deep = summary && summary.region.level !== "district";
    const fc = (layer) => (enabled.has(layer) && layerData[layer] ? layerData[layer].features : null);
    let f = fc("cases");
    if (f) {
      for (const state of Object.keys(STATE_COLOURS)) {
        const data = f.filter((x) => x.properties.state === state && !x.properties.overdue).map((x) => point(x));
        if (data.length) out.push(scatter(`${S.layer_cases}·${S["state_" + state]}`, data, STATE_COLOURS[state],
          { symbolSize: deep ? 9 : 6, kind: "cases" }));
      }
      const late = f.filter((x) => x.properties.overdue).map((x) => point(x));
      if (late.length) out.push(Object.assign(scatter(`${S.layer_cases}·${S.overdue_cases}`, late, "#ff4d4f",
        { symbolSize: deep ? 10 : 8, kind: "cases" }), late.length <= 400
        ? { type: "effectScatter", rippleEffect: { brushType: "stroke", scale: 3, period: 3 }, large: false } : {}));
    }
    f = fc("alarms");
    if (f) {
      for (const sev of Object.keys(SEVERITY_COLOURS)) {
        const data = f.filter((x) => x.properties.severity === sev).map((x) => point(x));
        if (data.length) out.push(scatter(`${S.layer_alarms}·${S["sev_" + sev]}`, data, SEVERITY_COLOURS[sev],
          { symbol: "triangle", symbolSize: 12, kind: "alarms", zlevel: 2 }));
      }
    }
    f = fc("risk_points");
    if (f) {
      for (const level of Object.keys(LEVEL_COLOURS)) {
        const data = f.filter((x) => x.properties.level === level).map((x) => point(x));
        if (data.length) out.push(scatter(`${S.layer_risk_points}·${S["level_" + level]}`, data, LEVEL_COLOURS[level],
          { symbol: "diamond", symbolSize: level === "none" ? 10 : 14, kind: "risk_points", zlevel: 2 }));
      }
    }
    f = fc("devices");
    if (f) {
      const on = f.filter((x) => x.properties.online).map((x) => point(x));
      const off = f.filter((x) => !x.properties.online).map((x) => point(x));
      if (on.length) out.push(scatter(`${S.layer_devices}·${S.online}`, on, "#3fd28b", { symbolSize: 5, kind: "devices" }));
      if (off.length) out.push(scatter(`${S.layer_devices}·${S.offline}`, off, "#8d9bb3",
        { symbolSize: 6, kind: "devices", itemStyle: { color: "rgba(141,155,179,0.35)", borderColor: "#c3cde0", borderWidth: 1 } }));
    }
    f = fc("workers");
    if (f && f.length) out.push(scatter(S.layer_workers, f.map((x) => point(x)), "#2ee6d6",
      { symbol: "pin", symbolSize: deep ? 16 : 10, kind: "workers" }));
    f = fc("shelters");
    if (f && f.length) out.push(scatter(S.layer_shelters, f.map((x) => point(x)), "#b692f6",
      { symbol: "roundRect", kind: "shelters", zlevel: 2,
        symbolSize: (v, p) => Math.max(8, Math.min(15, 4 + Math.sqrt(p.data.p.capacity || 0) / 1.5)) }));
    return out;
  }

  function tooltip(p) {
    if (p.seriesType === "map" || p.componentType === "geo") {
      const child = summary && summary.children.find((c) => c.code === p.name);
      const title = names[p.name] || p.name;
      return child ? `${esc(title)}<br>${S.open}：${child.open}　${S.overdue}：${child.overdue}` : esc(title);
    }
    const d = p.data && p.data.p;
    if (!d) return "";
    switch (p.seriesOptions ? p.seriesOptions.kind : seriesKind(p.seriesIndex)) {
      case "cases":
        return `${esc(d.code)}<br>${S["state_" + d.state] || d.state}${d.overdue ? " · " + S.overdue_cases : ""}`
          + `${d.urgency === "urgent" ? " · " + S.urgent : ""}<br>${S["src_" + d.source] || d.source}`;
      case "alarms":
        return `${S["sev_" + d.severity]} · #${d.id}<br>${esc(d.message)}`;
      case "risk_points":
        return `${esc(d.name)}（${S["hazard_" + d.hazard] || d.hazard}）<br>${S["level_" + d.level]} · ${fmt(S.threatened, { n: d.persons })}`;
      case "devices":
        return `${esc(d.name)}<br>${esc(cfg.lang === "en" && d.type_name_en ? d.type_name_en : d.type_name)} · ${d.online ? S.online : S.offline}`;
      case "workers":
        return `${esc(d.name)} · ${esc(d.title)}<br>${esc(d.grid_name)} · ${S.on_duty}`;
      case "shelters":
        return `${esc(d.name)}<br>${fmt(S.occupancy, { n: d.occupancy, capacity: d.capacity })}`;
      default:
        return "";
    }
  }
  let currentSeries = [];
  const seriesKind = (i) => (currentSeries[i] ? currentSeries[i].kind : "");
  const esc = (text) => String(text ?? "").replace(/[&<>"']/g, (c) =>
    ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

  function drawMap(fresh) {
    if (!summary || !boundaries || boundaries.name !== "ck-" + summary.region.code) return;
    const open = Object.fromEntries(summary.children.map((c) => [c.code, c.open]));
    const max = Math.max(1, ...summary.children.map((c) => c.open));
    const narrow = el("map").clientWidth < 600; // a phone: no legend or scale over the map
    const many = boundaries.count > 60 || (boundaries.count > 20 && narrow);
    const label = { show: !many && !boundaries.leaf, color: "#eef5ff", fontSize: many ? 10 : 12, textBorderColor: "#06101f",
      textBorderWidth: 3, formatter: (p) => names[p.name] || "" };
    // Every child region is in the data (none left to the series' default style), coloured by
    // its open cases; a grid has no children and no colouring.
    const regionSeries = boundaries.leaf ? [] : [{ type: "map", geoIndex: 0, kind: "regions", label,
      data: boundaries.codes.map((code) => ({ name: code, value: open[code] || 0 })) }];
    currentSeries = [...regionSeries, ...layerSeries()];
    const option = {
      textStyle: { fontFamily: FONT },
      tooltip: { trigger: "item", formatter: tooltip, confine: true,
        backgroundColor: "rgba(8,20,44,0.95)", borderColor: "#2a6fd6", textStyle: { color: TEXT } },
      visualMap: boundaries.leaf ? [] : [{ type: "continuous", seriesIndex: 0, min: 0, max, show: !narrow,
        left: 8, bottom: 8, itemHeight: 110, itemWidth: 12, calculable: false,
        text: [`${S.open} ${num.format(max)}`, "0"], textStyle: { color: TEXT, fontSize: 12 },
        inRange: { color: AREA_RAMP } }],
      legend: { show: !narrow, type: "scroll", orient: "vertical", right: 6, top: 6, bottom: 40,
        data: currentSeries.slice(regionSeries.length).map((s) => s.name),
        textStyle: { color: TEXT, fontSize: 12 },
        pageTextStyle: { color: MUTED }, itemWidth: 12, itemHeight: 10,
        backgroundColor: "rgba(5,12,27,0.55)", borderRadius: 4, padding: 6 },
      series: currentSeries,
    };
    if (fresh) {
      option.geo = { map: boundaries.name, nameProperty: "code", roam: true, aspectScale: 0.86,
        layoutCenter: ["46%", "50%"], layoutSize: "94%", scaleLimit: { min: 0.6, max: 40 },
        selectedMode: false, zlevel: 0, label,
        itemStyle: { areaColor: boundaries.leaf ? "#1d5fae" : "#10305e", borderColor: "#7fc8ff", borderWidth: 1 },
        emphasis: { label: { show: true, color: "#fff" }, itemStyle: { areaColor: "#ffb547" } } };
      charts.map.setOption(option, true);
    } else {
      charts.map.setOption(option, { replaceMerge: ["series"] });
    }
    renderLayerNote();
  }

  function renderLayerNote() {
    const notes = [];
    for (const layer of enabled) {
      const d = layerData[layer];
      if (d && d.truncated) notes.push(fmt(S.truncated, { layer: S["layer_" + layer], n: num.format(d.limit) }));
    }
    if (enabled.has("workers")) notes.push(S.workers_note);
    el("layer-note").textContent = notes.join(" · ");
  }

  // A point opens its page in the workbench, in a tab of its own (the wall keeps its view).
  const PAGES = {
    cases: (d) => `/workbench/cases/${encodeURIComponent(d.code)}`,
    alarms: (d) => `/workbench/alarms/${encodeURIComponent(d.id)}`,
    devices: (d) => `/workbench/devices/${encodeURIComponent(d.code)}`,
    risk_points: (d) => `/workbench/risk-points/${encodeURIComponent(d.code)}`,
  };
  charts.map.on("click", (p) => {
    const point = p.data && p.data.p;
    const page = point && PAGES[p.seriesOptions ? p.seriesOptions.kind : seriesKind(p.seriesIndex)];
    if (page) {
      window.open(page(point), "_blank", "noopener");
      return;
    }
    const code = p.name;
    if (!summary || !summary.region.child_level || boundaries.leaf) return;
    if ((p.componentType === "geo" || p.seriesType === "map") && code && code.startsWith(summary.region.code)
      && code !== summary.region.code) go(code, true);
  });

  document.querySelectorAll("input[name=layer]").forEach((box) => {
    if (box.checked) enabled.add(box.value);
    box.addEventListener("change", async () => {
      if (box.checked) {
        enabled.add(box.value);
        try { await loadLayer(box.value); } catch (e) { showError(e); }
      } else {
        enabled.delete(box.value);
      }
      drawMap(false);
    });
  });

  // --- live -------------------------------------------------------------------------------------
  let after = cfg.feed_after || 0;
  let source = null, pollTimer = null, retryTimer = null;
  const dirty = { summary: false, layers: new Set() };
  const REFRESH_AFTER_MS = 100; // one refresh for the events of one commit, which come together
  let refreshTimer = null;

  function setMode(mode) {
    const node = el("live-status");
    node.dataset.mode = mode;
    node.textContent = { stream: S.live_stream, polling: S.live_polling, off: S.live_off }[mode];
  }

  function relevant(item) {
    return !item.region_code || item.region_code.startsWith(region) || region.startsWith(item.region_code);
  }

  function onItem(item) {
    if (!item || typeof item !== "object") return;
    if (item.id) after = Math.max(after, item.id);
    if (!cfg.topics.includes(item.topic) || !relevant(item)) return;
    pushTicker(item);
    dirty.summary = true;
    (TOPIC_LAYERS[item.topic] || []).forEach((l) => dirty.layers.add(l));
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, REFRESH_AFTER_MS);
  }

  async function refresh() {
    const wanted = [...dirty.layers].filter((l) => enabled.has(l));
    const withSummary = dirty.summary;
    dirty.summary = false; dirty.layers.clear();
    try {
      // The figures first (a commit should be on screen within a second), then the map's points:
      // asked for together, the large case layer would hold the summary up.
      if (withSummary) await loadSummary();
      await Promise.all(wanted.map(loadLayer));
      drawMap(false);
    } catch (e) {
      showError(e);
    }
  }

  function regionName(code) {
    if (!code) return "";
    for (let n = code.length; n >= 6; n -= 3) if (names[code.slice(0, n)]) return names[code.slice(0, n)];
    return code;
  }

  function describe(item) {
    const p = item.payload || {};
    const act = S["act_" + item.action] || item.action;
    const kind = TOPIC_KIND[item.topic] || item.topic;
    switch (kind) {
      case "alarms":
        return `${S["sev_" + p.severity] || ""} ${act} · ${p.message || "#" + item.ref}`;
      case "evacuations":
        return p.household ? `${act} · ${p.household}：${S["evac_" + p.from] || p.from} → ${S["evac_" + p.to] || p.to}`
          : `${act} · ${p.warning || "#" + item.ref}`;
      case "risk_points":
        return `${item.ref} ${act}：${S["level_" + p.from] || p.from} → ${S["level_" + p.to] || p.to}`;
      case "warnings":
        return `${item.ref} ${act}${p.level ? " · " + fmt(S.warning_level, { level: S["level_" + p.level] || p.level }) : ""}`;
      default:
        return `${item.ref} ${act}`;
    }
  }

  const clockFormat = new Intl.DateTimeFormat(locale, { timeZone: cfg.zone, hour: "2-digit",
    minute: "2-digit", second: "2-digit", hour12: false });

  function pushTicker(item) {
    const list = el("ticker");
    list.querySelector(".tk-empty")?.remove();
    const li = document.createElement("li");
    li.className = "new";
    const time = document.createElement("time");
    time.dateTime = item.at;
    time.textContent = clockFormat.format(new Date(item.at));
    const kind = TOPIC_KIND[item.topic] || item.topic;
    li.append(time, span(`tk-topic tk-${kind}`, S["topic_" + kind] || item.topic),
      span("", `${regionName(item.region_code)} · ${describe(item)}`));
    list.prepend(li);
    while (list.children.length > 30) list.lastElementChild.remove();
  }

  function startStream() {
    if (!("EventSource" in window)) return startPolling();
    clearTimeout(retryTimer);
    const topics = cfg.topics.join(",");
    try {
      source = new EventSource(`/api/v1/stream?topics=${topics}&after=${after}`);
    } catch (e) {
      return startPolling();
    }
    const handle = (ev) => { try { onItem(JSON.parse(ev.data)); } catch (e) { /* not an item */ } };
    source.onmessage = handle;
    cfg.topics.forEach((topic) => source.addEventListener(topic, handle));
    source.onopen = () => { stopPolling(); setMode("stream"); };
    source.onerror = () => {
      // The stream is unavailable (or dropped): poll the feed, and try the stream again later.
      if (source) source.close();
      source = null;
      startPolling();
      retryTimer = setTimeout(startStream, 120000);
    };
  }

  function startPolling() {
    if (pollTimer) return;
    setMode("polling");
    const poll = async () => {
      try {
        const page = await getJSON(`/api/v1/feed?after=${after}&limit=200`);
        page.items.forEach(onItem);
        after = Math.max(after, page.next || 0);
        setMode("polling");
      } catch (e) {
        setMode("off");
      }
    };
    poll();
    pollTimer = setInterval(poll, 5000);
  }

  function stopPolling() {
    clearInterval(pollTimer);
    pollTimer = null;
  }

  // What the feed does not announce (devices going quiet, deadlines passing) is refreshed
  // every minute.
  setInterval(() => {
    dirty.summary = true;
    ["devices", "cases"].forEach((l) => dirty.layers.add(l));
    refresh();
  }, 60000);

  // --- clock ------------------------------------------------------------------------------------
  const dateFormat = new Intl.DateTimeFormat("en-CA", { timeZone: cfg.zone, year: "numeric",
    month: "2-digit", day: "2-digit" }); // YYYY-MM-DD
  const dayFormat = new Intl.DateTimeFormat(locale, { timeZone: cfg.zone, weekday: "short" });
  function tick() {
    const now = new Date();
    const node = el("clock");
    node.textContent = `${dateFormat.format(now)} ${dayFormat.format(now)} ${clockFormat.format(now)}`;
    node.dateTime = now.toISOString();
  }
  tick();
  setInterval(tick, 1000);

  window.addEventListener("popstate", (e) => go((e.state && e.state.region) || new URLSearchParams(location.search).get("region") || cfg.home, false));
  history.replaceState({ region }, "", location.search || `?region=${region}`);
  go(region, false);
  startStream();
})();
