// Risk point page: the landslide analysis a commander decides from, drawn from
// GET /api/v1/risk-points/{code}/analysis — per monitor the displacement and velocity with the
// level bands, the tangent angle against its thresholds and the inverse-velocity fit with the
// predicted failure time; per rain gauge the rain events on the intensity–duration chart with
// both thresholds, and the daily rain. Each chart has a text summary next to it.
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("rp-config").textContent);
  const S = cfg.s;
  const DAY = 86400000;
  const LEVEL_COLOR = { none: "#8a96a8", blue: "#1f6fd1", yellow: "#d4a800", orange: "#e8710a", red: "#d93025" };
  const BAND_COLOR = {
    blue: "rgba(31, 111, 209, 0.10)", yellow: "rgba(242, 194, 0, 0.16)",
    orange: "rgba(232, 113, 10, 0.16)", red: "rgba(217, 48, 37, 0.16)",
  };
  const TEXT = "#17243a", MUTED = "#55657d", GRID = "#e4e9f1";
  const charts = {};

  const fmtTime = new Intl.DateTimeFormat(cfg.lang === "en" ? "en-GB" : "zh-CN", {
    timeZone: cfg.tz, month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false,
  });
  const when = (ms) => (ms == null ? "–" : fmtTime.format(new Date(ms)));
  const num = (x, digits = 1) => (x == null || Number.isNaN(x) ? "–" : Number(x).toFixed(digits));
  const fill = (template, values) => template.replace(/\{(\w+)\}/g, (m, k) => (k in values ? values[k] : m));
  const level = (l) => S["lvl_" + (l || "none")] || l;

  function hours(h) {
    if (h == null) return "–";
    const a = Math.abs(h);
    const text = a >= 48 ? fill(S.days, { n: num(a / 24, 1) }) : fill(S.hours, { n: num(a, 1) });
    return h < 0 ? fill(S.ago, { t: text }) : text;
  }

  function chart(id, label) {
    const box = document.getElementById(id);
    if (!box) return null;
    if (label) box.setAttribute("aria-label", label);
    if (!charts[id]) charts[id] = echarts.init(box, null, { renderer: "canvas" });
    return charts[id];
  }

  function say(id, text) {
    const el = document.getElementById(id);
    if (el) el.textContent = text;
  }

  const base = () => ({
    animation: false,
    textStyle: { color: TEXT, fontFamily: "inherit" },
    grid: { left: 56, right: 56, top: 56, bottom: 64 },
    tooltip: { trigger: "axis", confine: true },
    legend: { top: 2, textStyle: { color: TEXT } },
  });
  // Time charts zoom with the wheel or the slider below; ``from`` starts zoomed in.
  const zoom = (from, to) => [
    { type: "inside", startValue: from, endValue: to },
    { type: "slider", height: 14, bottom: 6, startValue: from, endValue: to, showDetail: false,
      borderColor: GRID, fillerColor: "rgba(11, 92, 173, 0.12)" },
  ];
  const timeAxis = () => ({
    type: "time", axisLabel: { color: MUTED, hideOverlap: true, formatter: (v) => when(v).replace(/, /, "\n") },
    axisLine: { lineStyle: { color: "#9fb0c6" } }, splitLine: { show: false },
  });
  const valueAxis = (name, extra = {}) => ({
    type: "value", name, nameTextStyle: { color: MUTED }, axisLabel: { color: MUTED },
    splitLine: { lineStyle: { color: GRID } }, scale: true, ...extra,
  });

  // Stretches of time at one persisted level, as shaded bands behind the curves.
  function levelBands(times, levels) {
    const bands = [];
    let start = null, current = null;
    const close = (end) => {
      if (current && current !== "none" && start != null) {
        bands.push([{ xAxis: start, itemStyle: { color: BAND_COLOR[current] }, name: level(current) }, { xAxis: end }]);
      }
    };
    for (let i = 0; i < times.length; i++) {
      const l = levels[i] || "none";
      if (l !== current) {
        close(times[i]);
        start = times[i];
        current = l;
      }
    }
    if (times.length) close(times[times.length - 1]);
    return bands;
  }

  function drawDisplacement(label, d) {
    const c = chart("chart-displacement", fill(S.aria_displacement, { label }));
    const s = d.t_ms.map((t, i) => [t, d.s_mm[i]]);
    const v = d.v_t_ms.map((t, i) => [t, d.v_mm_d[i]]);
    const bands = levelBands(d.v_t_ms, d.persisted.length ? d.persisted : d.levels);
    c.setOption({
      ...base(),
      xAxis: timeAxis(),
      dataZoom: zoom(),
      yAxis: [valueAxis(S.axis_displacement), valueAxis(S.axis_velocity, { splitLine: { show: false } })],
      series: [
        { name: S.series_displacement, type: "line", data: s, showSymbol: false, lineStyle: { width: 2, color: "#0b5cad" }, itemStyle: { color: "#0b5cad" },
          markArea: { silent: true, label: { show: false }, data: bands } },
        { name: S.series_velocity, type: "line", yAxisIndex: 1, data: v, showSymbol: false, lineStyle: { width: 1.5, color: "#b3261e" }, itemStyle: { color: "#b3261e" } },
        ...(d.v_uniform != null ? [{ name: S.series_uniform, type: "line", yAxisIndex: 1, data: [], markLine: {
          silent: true, symbol: "none", lineStyle: { type: "dashed", color: "#7a5c00" },
          label: { formatter: fill(S.uniform_label, { v: num(d.v_uniform, 2) }), color: "#7a5c00", position: "insideEndTop" },
          data: [{ yAxis: d.v_uniform }] } }] : []),
      ],
    }, true);
    const lastS = d.s_mm.length ? d.s_mm[d.s_mm.length - 1] : null;
    const lastV = d.v_mm_d.length ? d.v_mm_d[d.v_mm_d.length - 1] : null;
    say("sum-displacement", fill(S.sum_displacement, {
      label, s: num(lastS, 1), v: num(lastV, 2), level: level(d.level),
      since: d.level_since_ms ? when(d.level_since_ms) : "–",
    }) + (d.notes.length ? " " + fill(S.notes, { notes: d.notes.join("; ") }) : ""));
  }

  function drawAngle(label, d, bands) {
    const c = chart("chart-angle", fill(S.aria_angle, { label }));
    const a = d.v_t_ms.map((t, i) => [t, d.angle_deg[i]]).filter((p) => p[1] != null);
    // From 30° up (lower only when the curve goes there): the 5° bands near 90° stay legible.
    const lowest = a.reduce((m, p) => Math.min(m, p[1]), 90);
    const min = Math.max(0, Math.min(30, Math.floor(lowest / 15) * 15));
    c.setOption({
      ...base(),
      xAxis: timeAxis(),
      dataZoom: zoom(),
      yAxis: valueAxis(S.axis_angle, { min, max: 90, scale: false, interval: 15 }),
      series: [{
        name: S.series_angle, type: "line", data: a, showSymbol: false, lineStyle: { width: 2, color: "#17243a" }, itemStyle: { color: "#17243a" },
        markArea: { silent: true, data: bands.map((b) => [
          { yAxis: b.from, itemStyle: { color: BAND_COLOR[b.level] }, name: level(b.level),
            label: { color: LEVEL_COLOR[b.level], position: "insideRight", fontSize: 11 } },
          { yAxis: b.to }]) },
      }],
    }, true);
    say("sum-angle", fill(S.sum_angle, { label, a: num(d.angle_now_deg, 1), level: level(d.level) }));
  }

  function drawInverse(label, d) {
    const c = chart("chart-inverse", fill(S.aria_inverse, { label }));
    const fit = d.fit;
    const inWindow = (t) => fit && t >= fit.start_ms && t <= fit.end_ms;
    const pts = [], faint = [];
    d.v_t_ms.forEach((t, i) => {
      const v = d.v_mm_d[i];
      if (v != null && v > 0) (inWindow(t) ? pts : faint).push([t, 1 / v]);
    });
    const series = [
      { name: S.series_inverse_other, type: "scatter", data: faint, symbolSize: 4, itemStyle: { color: "#b7c3d4" } },
      { name: S.series_inverse, type: "scatter", data: pts, symbolSize: 6, itemStyle: { color: "#0b5cad" } },
    ];
    let text;
    if (fit && fit.a != null && fit.b != null) {
      const end = fit.failure_ms != null ? fit.failure_ms : fit.end_ms;
      const at = (t) => fit.b + (fit.a * (t - fit.start_ms)) / DAY;
      series.push({
        name: S.series_fit, type: "line", data: [[fit.start_ms, at(fit.start_ms)], [end, Math.max(0, at(end))]],
        showSymbol: false, lineStyle: { width: 2, type: "dashed", color: "#d93025" }, itemStyle: { color: "#d93025" },
        markLine: fit.failure_ms != null ? {
          silent: true, symbol: "none", lineStyle: { color: "#d93025" },
          label: { formatter: fill(S.failure_label, { t: when(fit.failure_ms) }), color: "#b3261e", position: "end" },
          data: [{ xAxis: fit.failure_ms }],
        } : undefined,
      });
      text = fit.failure_ms != null
        ? fill(S.sum_inverse, { label, r2: num(fit.r2, 2), n: fit.points, t: when(fit.failure_ms), lead: hours(fit.lead_h) })
        : fill(S.sum_inverse_no_failure, { label, r2: num(fit.r2, 2) });
    } else {
      text = fill(S.sum_inverse_none, { label });
    }
    // Zoomed to the fitted stretch (with as much again before it) and the failure time.
    let from, to;
    if (fit) {
      from = fit.start_ms - Math.max(fit.end_ms - fit.start_ms, DAY);
      to = Math.max(fit.failure_ms != null ? fit.failure_ms : fit.end_ms, d.v_t_ms[d.v_t_ms.length - 1] || 0) + DAY / 4;
    }
    c.setOption({
      ...base(),
      tooltip: { trigger: "item", confine: true, formatter: (p) => `${when(p.value[0])}<br>1/v ${num(p.value[1], 2)} d/mm` },
      xAxis: timeAxis(),
      dataZoom: zoom(from, to),
      yAxis: valueAxis(S.axis_inverse, { min: 0, scale: false }),
      series,
    }, true);
    say("sum-inverse", text);
  }

  function drawRain(gauges) {
    const names = Object.keys(gauges);
    if (!names.length) {
      ["chart-rain-id", "chart-rain-daily"].forEach((id) => { document.getElementById(id).hidden = true; });
      say("sum-rain", S.no_gauges);
      say("sum-daily", "");
      return;
    }
    const label = names[0];
    const r = gauges[label];
    const curves = r.threshold_curves || {};
    const events = (r.events || []).filter((e) => e.duration_h > 0 && e.intensity_mm_h > 0);
    const focus = r.current_event || r.last_event;
    const isFocus = (e) => focus && e.start_ms === focus.start_ms;
    const c = chart("chart-rain-id", fill(S.aria_rain, { label }));
    const curveStyle = { caine: { color: "#d93025", type: "solid" }, guzzetti: { color: "#e8710a", type: "dashed" } };
    c.setOption({
      ...base(),
      tooltip: { trigger: "item", confine: true },
      xAxis: { type: "log", name: S.axis_duration, nameLocation: "middle", nameGap: 28, nameTextStyle: { color: MUTED },
        axisLabel: { color: MUTED }, min: 0.1, max: 1000, splitLine: { lineStyle: { color: GRID } } },
      yAxis: { type: "log", name: S.axis_intensity, nameTextStyle: { color: MUTED }, axisLabel: { color: MUTED },
        min: 0.1, max: 200, splitLine: { lineStyle: { color: GRID } } },
      series: [
        ...Object.entries(curves).map(([name, curve]) => ({
          name: S["threshold_" + name] || name, type: "line", showSymbol: false,
          data: curve.duration_h.map((dh, i) => [dh, curve.intensity_mm_h[i]]),
          lineStyle: { width: 2, ...(curveStyle[name] || {}) }, itemStyle: { color: (curveStyle[name] || {}).color },
          tooltip: { show: false },
        })),
        { name: S.series_events, type: "scatter", symbolSize: 7, itemStyle: { color: "#8a96a8" },
          data: events.filter((e) => !isFocus(e)).map((e) => ({ value: [e.duration_h, e.intensity_mm_h], start: e.start_ms })),
          tooltip: { formatter: (p) => `${when(p.data.start)}<br>D ${num(p.value[0])} h · I ${num(p.value[1], 2)} mm/h` } },
        ...(focus && focus.duration_h > 0 ? [{
          name: r.current_event ? S.series_current : S.series_last, type: "scatter", symbolSize: 14, symbol: "diamond",
          itemStyle: { color: "#0b5cad", borderColor: "#fff", borderWidth: 1 },
          label: { show: true, position: "right", color: TEXT, formatter: `${num(focus.total_mm, 0)} mm / ${num(focus.duration_h, 0)} h` },
          data: [[focus.duration_h, focus.intensity_mm_h]],
          tooltip: { formatter: (p) => `D ${num(p.value[0])} h · I ${num(p.value[1], 2)} mm/h` },
        }] : []),
      ],
    }, true);
    const t = r.totals_mm || {};
    let text = fill(S.sum_rain, { label, h1: num(t["1h"]), h24: num(t["24h"]), h72: num(t["72h"]), ant: num(r.antecedent_mm) });
    if (focus) {
      const above = focus.above || {};
      const where = above.caine ? S.above_caine : above.guzzetti ? S.above_guzzetti : S.above_none;
      text += " " + fill(r.current_event ? S.sum_event_current : S.sum_event_last, {
        d: num(focus.duration_h), i: num(focus.intensity_mm_h, 2), mm: num(focus.total_mm), where,
      });
    } else {
      text += " " + S.no_event;
    }
    say("sum-rain", text);

    const daily = r.daily_mm || [];
    const d = chart("chart-rain-daily", fill(S.aria_daily, { label }));
    const now = r.now_ms || Date.now();
    const days = daily.map((mm, i) => [now - i * DAY, mm]).reverse();
    d.setOption({
      ...base(),
      xAxis: { ...timeAxis(), axisLabel: { color: MUTED, formatter: (v) => when(v).slice(0, 5) } },
      yAxis: valueAxis(S.axis_daily, { min: 0, scale: false }),
      series: [{ name: S.series_daily, type: "bar", data: days, itemStyle: { color: "#3f8fd9" }, barMaxWidth: 18 }],
    }, true);
    const wettest = daily.reduce((m, x) => Math.max(m, x || 0), 0);
    say("sum-daily", fill(S.sum_daily, { n: daily.length, today: num(daily[0]), max: num(wettest) }));
  }

  function drawMonitor(data, label) {
    const d = data.displacement[label];
    const bands = (data.level_bands && data.level_bands.tangent_angle_deg) || [];
    drawDisplacement(label, d);
    drawAngle(label, d, bands);
    drawInverse(label, d);
  }

  // The monitor to show first: the one at the highest level, then the steepest tangent angle.
  const RANK = { none: 0, blue: 1, yellow: 2, orange: 3, red: 4 };
  function worst(displacement) {
    return Object.keys(displacement).sort((a, b) => {
      const da = displacement[a], db = displacement[b];
      return (RANK[db.level] || 0) - (RANK[da.level] || 0) || (db.angle_now_deg || 0) - (da.angle_now_deg || 0);
    })[0];
  }

  async function load() {
    if (!window.echarts) {
      ["sum-displacement", "sum-angle", "sum-inverse", "sum-rain", "sum-daily"].forEach((id) => say(id, S.load_failed));
      return;
    }
    let data;
    try {
      const res = await fetch(`/api/v1/risk-points/${encodeURIComponent(cfg.code)}/analysis?max_points=1500`, {
        headers: { Accept: "application/json" }, credentials: "same-origin",
      });
      if (!res.ok) throw new Error(String(res.status));
      data = await res.json();
    } catch (e) {
      ["sum-displacement", "sum-angle", "sum-inverse", "sum-rain", "sum-daily"].forEach((id) => say(id, S.load_failed));
      return;
    }
    const labels = Object.keys(data.displacement || {});
    if (labels.length) {
      const pick = document.getElementById("monitor-pick");
      const first = worst(data.displacement);
      labels.sort().forEach((label) => {
        const o = document.createElement("option");
        o.value = label;
        o.textContent = `${label} · ${level(data.displacement[label].level)}`;
        if (label === first) o.selected = true;
        pick.appendChild(o);
      });
      pick.closest(".monitor-pick").hidden = labels.length < 2;
      pick.addEventListener("change", () => drawMonitor(data, pick.value));
      drawMonitor(data, first);
    } else {
      ["chart-displacement", "chart-angle", "chart-inverse"].forEach((id) => { document.getElementById(id).hidden = true; });
      say("sum-displacement", S.no_monitors);
      say("sum-angle", "");
      say("sum-inverse", "");
    }
    drawRain(data.rainfall || {});
    // The stored assessment is from the last evaluation; say so when the latest data differ.
    if (data.level !== cfg.level || !cfg.evaluated) {
      const reasons = (cfg.lang === "en" && data.reasons_en && data.reasons_en.length ? data.reasons_en : data.reasons) || [];
      const live = document.getElementById("live-verdict");
      live.textContent = fill(S.live_verdict, { level: level(data.level), reasons: reasons.join(cfg.lang === "en" ? "; " : "；") || "–" });
      live.hidden = false;
    }
    document.getElementById("analysis").dataset.ready = "true";
  }

  window.addEventListener("resize", () => Object.values(charts).forEach((c) => c.resize()));
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", load);
  else load();
})();
