// District map: regions drawn from our own GeoJSON API with ECharts (no tile server), with
// drill-down district → town → village → grid and a breadcrumb back. The hash keeps the place.
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("page-config").textContent);
  const S = cfg.strings;
  const PALETTE = ["#1f6feb", "#2a9d8f", "#8957e5", "#d9822b", "#3fb950", "#db61a2", "#1b9aaa",
    "#c5a200", "#6e7bff", "#e5534b", "#2ea043", "#a371f7"];
  const el = (id) => document.getElementById(id);
  const chart = echarts.init(el("map"), null, { renderer: "canvas" });
  window.addEventListener("resize", () => chart.resize());
  let current = null;
  // The API gives neighbours different colour indices; fall back to position otherwise.
  const colourOf = (f, i) => PALETTE[(f.properties.colour ?? i) % PALETTE.length];

  async function getJSON(url) {
    const res = await fetch(url, { headers: { Accept: "application/json" } });
    if (!res.ok) throw new Error(url + " → " + res.status);
    return res.json();
  }

  async function show(code) {
    let region, fc;
    try {
      [region, fc] = await Promise.all([
        getJSON(`/api/v1/regions/${code}`),
        getJSON(`/api/v1/regions/${code}/children.geojson`),
      ]);
    } catch (e) {
      el("region-name").textContent = S.load_failed;
      return;
    }
    current = region;
    const leaf = fc.features.length === 0;
    if (leaf) {
      fc = { type: "FeatureCollection", features: [{ type: "Feature",
        properties: { code: region.code, name: region.name, area_km2: region.area_km2 },
        geometry: region.geometry }] };
    }
    const mapName = "region-" + code;
    echarts.registerMap(mapName, fc);
    const data = fc.features.map((f, i) => ({
      name: f.properties.code, label: f.properties.name, value: f.properties.area_km2,
      itemStyle: { areaColor: colourOf(f, i) },
    }));
    const many = data.length > 60 || (data.length > 20 && el("map").clientWidth < 600);
    chart.setOption({
      tooltip: { trigger: "item", formatter: (p) => p.data
        ? `${p.data.label}<br>${p.data.name}<br>${p.data.value.toFixed(2)} ${S.km2}` : "" },
      series: [{
        type: "map", map: mapName, nameProperty: "code", roam: true, selectedMode: false,
        data, aspectScale: 0.86, layoutCenter: ["50%", "50%"], layoutSize: "95%",
        label: { show: !many, color: "#f4f8ff", fontSize: many ? 10 : 12, textBorderColor: "#0b1426",
          textBorderWidth: 3, formatter: (p) => (p.data ? p.data.label : "") },
        itemStyle: { borderColor: "#bfe3ff", borderWidth: 1, opacity: 0.92 },
        emphasis: { label: { show: true, color: "#fff" }, itemStyle: { areaColor: "#ffb547" } },
      }],
    }, true);
    renderSide(region, fc, leaf);
    if (location.hash.slice(1) !== code) history.pushState(null, "", "#" + code);
    const langLink = document.getElementById("lang-switch");
    if (langLink) langLink.href = langLink.href.split("#")[0] + "#" + code;
  }

  function renderSide(region, fc, leaf) {
    el("region-name").textContent = `${region.name}（${S[region.level]}）`;
    el("region-area").textContent = `${region.area_km2.toFixed(1)} ${S.km2}`;
    el("region-count").textContent = String(region.children_count);
    el("back").hidden = region.ancestors.length === 0;
    const crumbs = [...region.ancestors, region];
    el("breadcrumb").replaceChildren(...crumbs.map((c, i) => {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button"; b.textContent = c.name; b.dataset.code = c.code;
      if (i === crumbs.length - 1) b.setAttribute("aria-current", "page");
      else b.addEventListener("click", () => show(c.code));
      li.append(b); return li;
    }));
    el("children").replaceChildren(...(leaf ? [] : fc.features).map((f, i) => {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button"; b.dataset.code = f.properties.code;
      b.innerHTML = `<span><span class="swatch" style="background:${colourOf(f, i)}"></span></span>`;
      b.firstChild.append(f.properties.name);
      const small = document.createElement("small");
      small.textContent = `${f.properties.area_km2.toFixed(1)} ${S.km2}`;
      b.append(small);
      b.addEventListener("click", () => show(f.properties.code));
      li.append(b); return li;
    }));
  }

  chart.on("click", (p) => { if (p.data && current && current.children_count) show(p.data.name); });
  el("back").addEventListener("click", () => {
    if (current && current.ancestors.length) show(current.ancestors[current.ancestors.length - 1].code);
  });
  window.addEventListener("popstate", () => show(location.hash.slice(1) || cfg.district));
  show(location.hash.slice(1) || cfg.district);
})();
