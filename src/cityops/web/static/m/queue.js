// The pocket command room's offline queue (IndexedDB). Every report or status change becomes an
// item {id, owner, kind, payload, created_at, seq, attempts, last_error, next_at}; its id (a UUID)
// is the idempotency key the server deduplicates on, so sending it again never does it twice.
// Items are sent in order; a network error or 5xx keeps the item (backing off) and stops the
// round so that later items never overtake it; a 4xx moves it to "failed" with the reason.
// The "cache" store keeps the last copy of each list for reading without signal.
(function () {
  "use strict";
  const DB_NAME = "cityops-m";
  const DB_VERSION = 1;
  const MAX_BACKOFF_MS = 5 * 60 * 1000;
  let dbPromise = null;
  let seq = 0;

  function openDb() {
    if (!dbPromise) {
      dbPromise = new Promise((resolve, reject) => {
        if (!self.indexedDB) { reject(new Error("IndexedDB unavailable")); return; }
        const req = indexedDB.open(DB_NAME, DB_VERSION);
        req.onupgradeneeded = () => {
          const db = req.result;
          for (const name of ["queue", "failed"]) {
            if (!db.objectStoreNames.contains(name)) db.createObjectStore(name, { keyPath: "id" });
          }
          if (!db.objectStoreNames.contains("cache")) db.createObjectStore("cache", { keyPath: "key" });
        };
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(req.error);
        req.onblocked = () => reject(new Error("IndexedDB blocked"));
      });
      dbPromise.catch(() => { dbPromise = null; });
    }
    return dbPromise;
  }

  // One request in one transaction; resolves when the transaction has committed.
  async function run(store, mode, fn) {
    const db = await openDb();
    return new Promise((resolve, reject) => {
      const tx = db.transaction(store, mode);
      const req = fn(tx.objectStore(store));
      let result;
      if (req) req.onsuccess = () => { result = req.result; };
      tx.oncomplete = () => resolve(result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error || new Error("transaction aborted"));
    });
  }

  function uuid() {
    if (self.crypto && crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    const x = Array.from(b, (v) => v.toString(16).padStart(2, "0")).join("");
    return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
  }

  const byOrder = (a, b) => a.seq - b.seq || (a.id < b.id ? -1 : 1);

  // Who is allowed to send what: the senders, keyed by kind, set by the page.
  const senders = {};
  const listeners = { sent: [], failed: [], retry: [], change: [], expired: [] };
  let owner = "";
  let flushing = null;
  let timer = null;

  function emit(event, ...args) {
    for (const fn of listeners[event]) {
      try { fn(...args); } catch (e) { console.error(e); }
    }
  }

  function backoff(attempts) {
    const base = Math.min(MAX_BACKOFF_MS, 2000 * 2 ** Math.min(attempts - 1, 10));
    return base / 2 + Math.random() * base / 2;
  }

  // Errors the senders throw: {network: true} or {status, ...}. Retry on network trouble, 5xx,
  // 408 and 429; 401 keeps the item until the person signs in again.
  const retryable = (e) => e.network || e.status >= 500 || e.status === 408 || e.status === 429;

  const Queue = {
    uuid,
    senders,
    on(event, fn) { listeners[event].push(fn); },
    setOwner(value) { owner = value; },

    async add(kind, payload, label) {
      const now = Date.now();
      const item = {
        id: uuid(), owner, kind, payload, label: label || "",
        created_at: new Date(now).toISOString(), seq: now * 1000 + (seq++ % 1000),
        attempts: 0, last_error: null, next_at: 0,
      };
      await run("queue", "readwrite", (s) => s.add(item));
      emit("change");
      return item;
    },
    async update(item) { await run("queue", "readwrite", (s) => s.put(item)); },
    async pending() {
      const all = (await run("queue", "readonly", (s) => s.getAll())) || [];
      return all.filter((i) => i.owner === owner).sort(byOrder);
    },
    async failed() {
      const all = (await run("failed", "readonly", (s) => s.getAll())) || [];
      return all.filter((i) => i.owner === owner).sort(byOrder);
    },
    async discard(id) {
      await run("failed", "readwrite", (s) => s.delete(id));
      emit("change");
    },
    async cacheGet(key) { return run("cache", "readonly", (s) => s.get(`${owner}|${key}`)); },
    async cachePut(key, data) {
      await run("cache", "readwrite", (s) => s.put({ key: `${owner}|${key}`, at: Date.now(), data }));
    },
    async cacheClear() {
      const keys = (await run("cache", "readonly", (s) => s.getAllKeys())) || [];
      const mine = keys.filter((k) => String(k).startsWith(`${owner}|`));
      for (const k of mine) await run("cache", "readwrite", (s) => s.delete(k));
    },

    prepare: null, // set by the page: resolves to what the senders need (a fresh CSRF token)

    // Send what is due, in order. force: ignore the back-off (the person asked, or the signal
    // just came back). Resolves to the number of items sent. One round at a time.
    flush(force) {
      if (flushing) return flushing;
      flushing = (async () => {
        let sent = 0;
        let items;
        try { items = await Queue.pending(); } catch (e) { return 0; }
        if (!items.length) return 0;
        let context;
        try {
          context = Queue.prepare ? await Queue.prepare() : {};
        } catch (e) {
          if (e.status === 401) emit("expired", e);
          else schedule(items[0].next_at || Date.now() + backoff(1));
          return 0;
        }
        for (const item of items) {
          if (!force && item.next_at > Date.now()) { schedule(item.next_at); break; }
          const send = senders[item.kind];
          try {
            if (!send) throw { status: 400, message: `unknown kind ${item.kind}` };
            const result = await send(item, context);
            await run("queue", "readwrite", (s) => s.delete(item.id));
            sent += 1;
            emit("sent", item, result);
          } catch (e) {
            item.attempts += 1;
            item.last_error = { status: e.status || 0, network: !!e.network, message: e.message || "" };
            if (e.status === 401) {
              await Queue.update(item);
              emit("expired", e);
              break;
            }
            if (retryable(e)) {
              item.next_at = Date.now() + backoff(item.attempts);
              await Queue.update(item);
              emit("retry", item, e);
              schedule(item.next_at);
              break;
            }
            // Refused for good (4xx): out of the queue, kept aside with the reason so that
            // nothing typed is lost; the person can edit it again or discard it.
            await run("failed", "readwrite", (s) => s.put(item));
            await run("queue", "readwrite", (s) => s.delete(item.id));
            emit("failed", item, e);
          }
        }
        return sent;
      })().finally(() => {
        flushing = null;
        emit("change");
      });
      return flushing;
    },
  };

  function schedule(at) {
    clearTimeout(timer);
    const wait = Math.max(1000, at - Date.now());
    timer = setTimeout(() => { if (navigator.onLine) Queue.flush(false); }, wait);
  }

  self.CityOpsQueue = Queue;
})();
