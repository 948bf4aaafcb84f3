// Sensor curves (alarm and device pages): each .curve-chart draws the points embedded in the
// page (its data-config names a JSON script: [bucket, low, high, last] points, the rule's
// lines, when an alarm was raised and cleared) — the band shows each interval's low to high,
// the line its last reading.
(function () {
  "use strict";
  if (typeof echarts === "undefined") return;
  const charts = [];
  document.querySelectorAll(".curve-chart").forEach((box) => {
    const node = document.getElementById(box.dataset.config);
    if (node) charts.push(draw(box, JSON.parse(node.textContent)));
  });
  window.addEventListener("resize", () => charts.forEach((c) => c.resize()));

  function draw(box, cfg) {
    const S = cfg.s;
    const TEXT = "#17243a", MUTED = "#55657d", GRID = "#e4e9f1";
    const RED = "#d93025", GREEN = "#188038", BLUE = "#0b5cad";
    const unit = cfg.unit ? " " + cfg.unit : "";
    const fmt = new Intl.DateTimeFormat(cfg.lang === "en" ? "en-GB" : "zh-CN", {
      timeZone: cfg.tz, month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false,
    });
    const hm = new Intl.DateTimeFormat(cfg.lang === "en" ? "en-GB" : "zh-CN", {
      timeZone: cfg.tz, hour: "2-digit", minute: "2-digit", hour12: false,
    });
    const when = (ms) => fmt.format(new Date(ms));
    const DAY = 86400000;
    const num = (v) => (v == null ? "–" : Number(v).toPrecision(6).replace(/\.?0+$/, ""));

    const pts = cfg.points;
    const span = cfg.to - cfg.from;
    const low = pts.map((p) => [p[0], p[1]]);
    const spread = pts.map((p) => [p[0], p[2] - p[1]]);
    const last = pts.map((p) => [p[0], p[3]]);
    const level = cfg.lines.map((l) => ({
      yAxis: l.value,
      name: l.kind === "raise" ? S.raise : S.clear,
      lineStyle: { color: l.kind === "raise" ? RED : GREEN, type: "dashed", width: 1.5 },
      label: { formatter: (l.kind === "raise" ? S.raise : S.clear) + " " + num(l.value), color: l.kind === "raise" ? RED : GREEN, position: "insideEndTop" },
    }));
    const moments = [];
    if (cfg.raised != null) {
      moments.push({ xAxis: cfg.raised, name: S.raised, lineStyle: { color: RED, width: 1.5 }, label: { formatter: S.raised, color: RED } });
    }
    if (cfg.cleared != null) {
      moments.push({ xAxis: cfg.cleared, name: S.cleared, lineStyle: { color: GREEN, width: 1.5 }, label: { formatter: S.cleared, color: GREEN } });
    }
    const values = pts.flatMap((p) => [p[1], p[2]]).concat(cfg.lines.map((l) => l.value));
    const lo = Math.min(...values), hi = Math.max(...values);
    const pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.05 || 1;

    const chart = echarts.init(box, null, { renderer: "canvas" });
    chart.setOption({
      animation: false,
      textStyle: { color: TEXT, fontFamily: "inherit" },
      grid: { left: 64, right: 24, top: 36, bottom: 56 },
      legend: { top: 2, data: [S.value, S.range], textStyle: { color: TEXT } },
      tooltip: {
        trigger: "axis",
        confine: true,
        formatter: (items) => {
          const i = items[0].dataIndex;
          const p = pts[i];
          return `${when(p[0])}<br>${S.value}: <b>${num(p[3])}${unit}</b><br>${S.range}: ${num(p[1])} – ${num(p[2])}${unit}`;
        },
      },
      xAxis: {
        type: "time",
        min: cfg.from,
        max: cfg.to,
        axisLabel: { color: MUTED, hideOverlap: true, formatter: (v) => (span < 2 * DAY ? hm.format(new Date(v)) : when(v)) },
        splitLine: { show: false },
      },
      yAxis: {
        type: "value",
        scale: true,
        min: Number((lo - pad).toPrecision(6)),
        max: Number((hi + pad).toPrecision(6)),
        name: cfg.unit || "",
        nameTextStyle: { color: MUTED },
        // The bounds are the data's range padded (379.08, 0.92): only the round ticks between.
        axisLabel: { color: MUTED, showMinLabel: false, showMaxLabel: false },
        splitLine: { lineStyle: { color: GRID } },
      },
      dataZoom: [
        { type: "inside" },
        { type: "slider", height: 14, bottom: 8, showDetail: false, borderColor: GRID, fillerColor: "rgba(11, 92, 173, 0.12)" },
      ],
      series: [
        { name: "low", type: "line", data: low, stack: "band", symbol: "none", lineStyle: { opacity: 0 }, tooltip: { show: false }, silent: true },
        {
          name: S.range, type: "line", data: spread, stack: "band", symbol: "none",
          lineStyle: { opacity: 0 }, areaStyle: { color: "rgba(11, 92, 173, 0.15)" }, silent: true,
          itemStyle: { color: "rgba(11, 92, 173, 0.35)" },
        },
        {
          name: S.value, type: "line", data: last, symbol: pts.length > 60 ? "none" : "circle", symbolSize: 4,
          step: cfg.binary ? "end" : false, // an on/off sensor holds its state until the next reading
          lineStyle: { color: BLUE, width: 1.8 }, itemStyle: { color: BLUE },
          markLine: { symbol: "none", silent: true, data: level.concat(moments) },
        },
      ],
    });
    box.dataset.ready = "true";
    return chart;
  }
})();
