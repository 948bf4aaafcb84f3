// Run in the page by tests: inputs without a label, and text whose contrast with what is
// behind it is below WCAG AA (4.5:1, or 3:1 for large text).
(() => {
  const lum = (rgb) => {
    const [r, g, b] = rgb.match(/\d+(\.\d+)?/g).slice(0, 3).map(Number).map((v) => {
      v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const bg = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const st = getComputedStyle(e);
      const c = st.backgroundColor;
      if (c && !c.startsWith("rgba(0, 0, 0, 0)") && c !== "transparent") return c;
      const gradient = st.backgroundImage.match(/rgb\([^)]*\)/);  // the gradient's first stop
      if (gradient) return gradient[0];
    }
    return "rgb(255, 255, 255)";
  };
  const unlabelled = [];
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (el.type === "hidden" || el.closest("[hidden]")) continue;
    const named = el.getAttribute("aria-label") || (el.id && document.querySelector(`label[for="${el.id}"]`));
    if (!named) unlabelled.push(el.outerHTML.slice(0, 80));
  }
  const poor = [];
  for (const el of document.querySelectorAll("h1, h2, p, a, button, td, th, dt, dd, label, summary, span.state, .count")) {
    if (!el.offsetParent || !el.textContent.trim()) continue;
    const s = getComputedStyle(el);
    const a = lum(s.color), b = lum(bg(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const large = parseFloat(s.fontSize) >= 24 || (parseFloat(s.fontSize) >= 18.66 && Number(s.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) poor.push(`${el.tagName}.${el.className} “${el.textContent.trim().slice(0, 20)}” ${ratio.toFixed(2)}`);
  }
  return { unlabelled, poor };
})
