// Workbench behaviour on top of plain forms: CSRF header for htmx, keyboard shortcuts,
// "select all" for bulk dispatch, and a banner when the live feed reports a change.
(function () {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  document.body.addEventListener("htmx:configRequest", (e) => {
    if (csrf) e.detail.headers["X-CSRF-Token"] = csrf;
  });

  const typing = (el) => el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  const rows = () => Array.from(document.querySelectorAll("tr.case-row"));
  let current = -1;
  function focusRow(i) {
    const list = rows();
    if (!list.length) return;
    current = Math.max(0, Math.min(list.length - 1, i));
    list.forEach((r, n) => r.classList.toggle("current", n === current));
    const link = list[current].querySelector("a.code");
    if (link) link.focus();
  }
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
    if (e.key === "/") {
      const search = document.getElementById("f-q");
      if (search) { e.preventDefault(); search.focus(); search.select(); }
    } else if (e.key === "j") {
      focusRow(current + 1);
    } else if (e.key === "k") {
      focusRow(current - 1);
    } else if (e.key === "x") {
      const box = rows()[current]?.querySelector('input[type="checkbox"]');
      if (box) { box.checked = !box.checked; }
    } else if (e.key === "?") {
      document.getElementById("keys-dialog")?.showModal();
    }
  });
  document.getElementById("keys-help")?.addEventListener("click", () => {
    document.getElementById("keys-dialog")?.showModal();
  });
  document.body.addEventListener("change", (e) => {
    if (e.target.id === "select-all") {
      document.querySelectorAll('#case-list input[name="codes"]').forEach((b) => { b.checked = e.target.checked; });
    }
  });
  document.body.addEventListener("htmx:afterSwap", () => { current = -1; });

  // A failed action scrolls its message into view for keyboard and screen-reader users.
  document.getElementById("problem")?.focus();

  // Live: on a queue page, a change to cases offers a refresh instead of moving rows under the cursor.
  const list = document.getElementById("case-list");
  if (list && window.EventSource) {
    const topics = ["cases", "alarm", "warnings"];
    const source = new EventSource(`/api/v1/stream?topics=${topics.join(",")}`);
    let shown = false;
    const offer = () => {
      if (shown) return;
      shown = true;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "secondary live-banner";
      button.textContent = document.documentElement.lang === "en" ? "Something changed — refresh" : "有新的变化，点击刷新";
      button.addEventListener("click", () => window.location.reload());
      list.parentNode.insertBefore(button, list);
    };
    topics.forEach((topic) => source.addEventListener(topic, offer));
    window.addEventListener("beforeunload", () => source.close());
  }
})();
