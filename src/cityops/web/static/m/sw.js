// Service worker of the pocket command room (served as /m/sw.js, scope /m/). It keeps the app
// shell for an offline start: the versioned static files (cache first) and the pages (network
// first, the last good copy when there is no signal). API calls pass straight through: never
// answered from a cache. The server fills in the version and the shell list.
"use strict";
const VERSION = "__VERSION__";
const SHELL = ["__SHELL__"];
const STATIC = `cityops-m-static-${VERSION}`;
const PAGES = "cityops-m-pages";
const PAGE_PATHS = new Set(["/m/", "/m/tasks", "/m/report", "/m/alerts"]);

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(STATIC).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys
        .filter((k) => k.startsWith("cityops-m-static-") && k !== STATIC)
        .map((k) => caches.delete(k))))
      .then(() => self.clients.claim()));
});

// A page worth keeping: a signed-in page of ours, not the log-in page we were sent to.
function keepable(response) {
  return response && response.ok && !response.redirected && response.type === "basic";
}

async function keepPage(url) {
  try {
    const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
    if (keepable(response)) await (await caches.open(PAGES)).put(url, response);
  } catch (e) { /* offline: keep what we have */ }
}

self.addEventListener("message", (event) => {
  const data = event.data || {};
  if (data.type === "warm" && Array.isArray(data.urls)) {
    const urls = [...new Set(data.urls)].filter((u) => PAGE_PATHS.has(new URL(u, self.location.origin).pathname));
    event.waitUntil(Promise.all(urls.map(keepPage)));
  }
});

async function page(request) {
  try {
    const response = await fetch(request);
    if (keepable(response)) {
      const copy = response.clone();
      caches.open(PAGES).then((cache) => cache.put(request, copy));
    }
    return response;
  } catch (e) {
    const cache = await caches.open(PAGES);
    const hit = (await cache.match(request)) || (await cache.match(request, { ignoreSearch: true }))
      || (await cache.match("/m/"));
    if (hit) return hit;
    return new Response(
      "<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'>" +
      "<title>离线 / Offline</title><body style='font:18px system-ui;padding:2rem'>" +
      "<h1>没有网络 / No signal</h1><p>首次使用需要联网登录。恢复信号后请刷新。</p>" +
      "<p>The first start needs a connection to sign in. Reload when you have signal.</p>",
      { status: 503, headers: { "Content-Type": "text/html; charset=utf-8" } });
  }
}

async function staticFile(request) {
  const cache = await caches.open(STATIC);
  const hit = await cache.match(request);
  if (hit) return hit;
  const response = await fetch(request);
  if (response.ok) cache.put(request, response.clone());
  return response;
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname.startsWith("/api/") || url.pathname.startsWith("/m/api/")) return;
  if (request.mode === "navigate" && PAGE_PATHS.has(url.pathname)) {
    event.respondWith(page(request));
  } else if (url.pathname.startsWith("/static/m/")) {
    event.respondWith(staticFile(request));
  }
});
