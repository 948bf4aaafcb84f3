// Run in the page by tests: inputs without a label, and text whose contrast with what is
// behind it is below WCAG AA (4.5:1, or 3:1 for large text).
(() => {
  const parts = (c) => c.match(/\d+(\.\d+)?/g).map(Number);
  const lum = ([r, g, b]) => {
    const [R, G, B] = [r, g, b].map((v) => {
      v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * R + 0.7152 * G + 0.0722 * B;
  };
  // What is behind an element: its own background, a translucent one laid over its parent's.
  const bg = (el) => {
    if (!el) return [255, 255, 255];
    const st = getComputedStyle(el);
    const gradient = st.backgroundImage.match(/rgba?\([^)]*\)/);  // the gradient's first stop
    const [r, g, b, a = 1] = parts(gradient && st.backgroundColor.startsWith("rgba(0, 0, 0, 0)")
      ? gradient[0] : st.backgroundColor);
    if (a >= 1) return [r, g, b];
    const under = bg(el.parentElement);
    return [r, g, b].map((v, i) => v * a + under[i] * (1 - a));
  };
  const unlabelled = [];
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (el.type === "hidden" || el.closest("[hidden]")) continue;
    const named = el.getAttribute("aria-label") || el.getAttribute("aria-labelledby") ||
      el.closest("label") || (el.id && document.querySelector(`label[for="${el.id}"]`));
    if (!named) unlabelled.push(el.outerHTML.slice(0, 80));
  }
  const poor = [];
  for (const el of document.querySelectorAll("h1, h2, p, a, button, td, th, dt, dd, label, summary, span.state, .count")) {
    if (!el.offsetParent || !el.textContent.trim()) continue;
    const s = getComputedStyle(el);
    const a = lum(parts(s.color)), b = lum(bg(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const large = parseFloat(s.fontSize) >= 24 || (parseFloat(s.fontSize) >= 18.66 && Number(s.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) poor.push(`${el.tagName}.${el.className} “${el.textContent.trim().slice(0, 20)}” ${ratio.toFixed(2)}`);
  }
  return { unlabelled, poor };
})
