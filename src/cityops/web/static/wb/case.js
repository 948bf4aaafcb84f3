// Case page: the village's grids from our own GeoJSON (no tile server) with the case's grid
// highlighted and its point marked; and the evidence photo uploaded before "report done".
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("case-config").textContent);
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";

  async function drawMap() {
    const box = document.getElementById("case-map");
    if (!box || !window.echarts) return;
    const { region, grid, lat, lon } = box.dataset;
    let fc;
    try {
      const res = await fetch(`/api/v1/regions/${region}/children.geojson`, { headers: { Accept: "application/geo+json, application/json" } });
      if (!res.ok) throw new Error(String(res.status));
      fc = await res.json();
    } catch (e) {
      box.textContent = "";
      return;
    }
    if (!fc.features.length) return;
    const name = "case-" + region;
    echarts.registerMap(name, fc);
    const chart = echarts.init(box, null, { renderer: "canvas" });
    window.addEventListener("resize", () => chart.resize());
    const point = lat && lon ? [[Number(lon), Number(lat)]] : [];
    chart.setOption({
      geo: {
        map: name, nameProperty: "code", roam: true, aspectScale: 0.86,
        layoutCenter: ["50%", "50%"], layoutSize: "95%",
        itemStyle: { areaColor: "#e3ebf6", borderColor: "#8aa2c4" },
        emphasis: { disabled: true },
        regions: [{ name: grid, itemStyle: { areaColor: "#ffd98a", borderColor: "#b36b00", borderWidth: 2 } }],
        label: { show: fc.features.length <= 30, fontSize: 10, color: "#334",
          formatter: (p) => (fc.features.find((f) => f.properties.code === p.name)?.properties.name || "") },
      },
      series: [{ type: "effectScatter", coordinateSystem: "geo", data: point, symbolSize: 14,
        itemStyle: { color: "#d93025" }, rippleEffect: { scale: 3 } }],
    });
  }

  // Upload the chosen photo at once, so "report done" sends only its id (as the phone does).
  document.querySelectorAll("input.evidence-file").forEach((input) => {
    input.addEventListener("change", async () => {
      const form = input.closest("form");
      const hint = document.getElementById(input.getAttribute("aria-describedby"));
      const hidden = form.querySelector("input.evidence-id");
      const file = input.files[0];
      if (!file) return;
      const submit = form.querySelector('button[type="submit"]');
      submit.disabled = true;
      hint.textContent = cfg.uploading;
      const body = new FormData();
      body.append("file", file);
      try {
        const res = await fetch("/api/v1/attachments", { method: "POST", body, headers: { "X-CSRF-Token": csrf } });
        const data = await res.json().catch(() => ({}));
        if (!res.ok) throw new Error(data?.error?.message || String(res.status));
        hidden.value = String(data.id);
        hint.textContent = cfg.uploaded.replace("{name}", file.name);
      } catch (e) {
        hidden.value = "";
        hint.textContent = cfg.upload_failed.replace("{why}", e.message);
      } finally {
        submit.disabled = false;
      }
    });
  });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", drawMap);
  else drawMap();
})();
