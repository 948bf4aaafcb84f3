"""Digital-cockpit benchmark: each figure next to its target and a same-run baseline.

    .venv/bin/python bench/cockpit.py          # SQLite and PostgreSQL, 1,000,000 cases
    .venv/bin/python bench/cockpit.py --backend sqlite --cases 100000 --skip-live --skip-mobile

Each backend gets a scratch database (as bench/events.py: SQLite in a temporary file, PostgreSQL a
database ``cityops_bench_<random>`` on --pg-url, dropped afterwards; ``--keep`` keeps them under
fixed names and ``--reuse`` measures those again without loading) holding the demo district with
its devices, risk points, shelters and accounts, then --cases cases over the last --days days
bulk-loaded with their timelines (bench/_data.py, the same rows into every backend), then the
cockpit's daily roll-up rebuilt from them (``cityops cockpit rebuild``, timed). The web server runs
as ``cityops serve`` in a process of its own; the browser is Debian's /usr/bin/chromium, headless,
driven by Playwright (never a downloaded build).

Measured per backend, each next to its target and a baseline from the same run:

(c) every API call the cockpit makes — its summary, the six map layers, the region boundaries
    (``/api/v1/regions/R/children.geojson``, and ``/api/v1/regions/R`` for a grid) and the feed
    it polls when the stream is down — as the district administrator, for the district, towns,
    villages and grids (the region varies per sample): p50 / p95 against p95 < 100 ms. Baselines:
    ``GET /healthz`` through the same server (the HTTP floor) and the bare SQL ``SELECT count(*)``
    over the same 30 days' cases of the same regions (the rows the summary counts).
(a) first render of ``/cockpit`` at 1920×1080 in a fresh browser context (a first visit: nothing
    cached; signed in beforehand): from navigation start to the frame after the map has its
    regions and the default layers drawn and the figures are filled — median and max against
    < 2 s. Baseline: a static page (the sign-in page) loaded the same way, and the cockpit's own
    ``load`` event (its HTML, ECharts and script, before any data).
(b) commit → screen: --commits cases created through ``POST /api/v1/cases`` while the district
    cockpit is open; from just before the POST to the moment the case is in the page's ticker, and
    to the moment the "today" figure shows it (the page refreshes 100 ms after an event): p50 / p95
    against p95 < 1 s. Baseline: a bare server-sent-events client on ``/api/v1/stream`` receiving
    the same commits.
(d) the mobile page ``/m/`` first load as the demo grid worker on a 390×844 phone: bytes
    transferred (headers and bodies) from the sign-in click until the network is idle, map GeoJSON
    excluded, against < 500 KB. Baseline: the sign-in page's own first load.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import requests
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, bindparam, create_engine, make_url, text
from sqlalchemy.orm import Session

import _data
import events as ev
from cityops import migrate
from cityops.auth import audit
from cityops.cockpit import rollup
from cityops.cockpit.service import PERIOD_DAYS, day_bounds
from cityops.config import Settings, normalise_database_url
from cityops.db import UTCDateTime, make_engine, session_factory, transaction, utcnow
from cityops.demo import accounts as demo_accounts
from cityops.demo import devices as demo_devices
from cityops.demo import district
from cityops.demo import warnings as demo_warnings
from cityops.geo.codes import MAX_CODE_LENGTH

ROOT = Path(__file__).resolve().parents[1]
KEEP_SQLITE = ROOT / "var" / "bench-cockpit.db"
KEEP_PG = "cityops_bench_cockpit"
CHROMIUM = Path(os.environ.get("CITYOPS_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
DISTRICT = "500154"
API_TARGET_MS = 100.0
RENDER_TARGET_S = 2.0
LIVE_TARGET_S = 1.0
MOBILE_TARGET_KB = 500.0
LAYERS = ("cases", "alarms", "risk_points", "devices", "workers", "shelters")
RAW_COUNT = text(
    "SELECT count(*) FROM cases WHERE created_at >= :since AND created_at < :until "
    "AND region_code >= :lo AND region_code <= :hi"
).bindparams(bindparam("since", type_=UTCDateTime()), bindparam("until", type_=UTCDateTime()))
# True once the cockpit has drawn the region with its default layers and filled its figures.
READY = """code => {
  const map = document.getElementById('map');
  const kpi = document.getElementById('kpi-intake');
  const drawn = map && map.dataset.loaded === code && /^\\d/.test(kpi.textContent);
  return drawn ? performance.now() : false;
}"""
WATCH = """() => {
  window.__bench = { ticker: [], kpi: [] };
  const ticker = document.getElementById('ticker'), kpi = document.getElementById('kpi-intake');
  new MutationObserver((changes) => {
    const now = Date.now();
    for (const c of changes)
      for (const n of c.addedNodes) window.__bench.ticker.push([now, n.textContent]);
  }).observe(ticker, { childList: true });
  new MutationObserver(() => window.__bench.kpi.push([Date.now(), kpi.textContent]))
    .observe(kpi, { childList: true, characterData: true, subtree: true });
}"""
SEEN = """code => { const hit = window.__bench.ticker.find(([, t]) => t.includes(code));
  return hit ? hit[0] : false; }"""
SHOWN = """n => {
  const hit = window.__bench.kpi.find(([, t]) => Number(t.replace(/\\D/g, '')) >= n);
  return hit ? hit[0] : false; }"""


@dataclass
class Row:
    measure: str
    value: float | None
    target: str
    met: bool | None
    baseline: str
    unit: str = "ms"
    note: str = ""


@dataclass
class Report:
    kind: str
    version: str = ""
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q)) if values else float("nan")


# --- databases ----------------------------------------------------------------------------------


@contextmanager
def database(kind: str, args: argparse.Namespace, tmp: Path) -> Iterator[str]:
    """A scratch database (--keep / --reuse: the kept one under its fixed name)."""
    if not (args.keep or args.reuse):
        with ev.scratch_database(kind, args.pg_url, tmp) as url:
            yield url
        return
    if kind == "sqlite":
        KEEP_SQLITE.parent.mkdir(exist_ok=True)
        if not args.reuse:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{KEEP_SQLITE}{suffix}").unlink(missing_ok=True)
        yield f"sqlite:///{KEEP_SQLITE}"
        return
    server = make_url(normalise_database_url(args.pg_url))
    if not args.reuse:
        admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{KEEP_PG}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{KEEP_PG}"'))
        admin.dispose()
    yield server.set(database=KEEP_PG).render_as_string(hide_password=False)


def accounts_file(kind: str) -> Path:
    return ROOT / "var" / f"bench-cockpit-{kind}-accounts.json"


def prepare(target: ev.Target, demo: district.DemoDistrict, console: Console) -> dict[str, str]:
    """Migrate; the demo district with its devices, risk points, shelters and accounts."""
    ev.prepare(target, demo, console)
    engine = make_engine(target.url)
    try:
        with console.status(f"{target.kind}: devices, risk points, shelters, accounts…"):
            now = utcnow()
            with transaction(session_factory(engine)) as session:
                audit.set_actor(session, audit.Actor("system", "bench", "bench"))
                demo_devices.load(session, now)
            with transaction(session_factory(engine)) as session:
                audit.set_actor(session, audit.Actor("system", "bench", "bench"))
                demo_warnings.seed(session, now)
                rows = demo_accounts.ensure(session, Settings(database_url=target.url))
        assert rows is not None
    finally:
        engine.dispose()
    return {user: secret for user, _label, secret in rows}


def rebuild_rollup(url: str) -> tuple[float, int]:
    """``cityops cockpit rebuild``: the roll-up from the loaded cases; ANALYZE it."""
    engine = make_engine(url)
    try:
        t0 = time.perf_counter()
        with transaction(session_factory(engine)) as session:
            rows = rollup.rebuild(session)
        seconds = time.perf_counter() - t0
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in rollup.TABLES:
                conn.exec_driver_sql(f"ANALYZE {table}")
    finally:
        engine.dispose()
    return seconds, rows


# --- the server ---------------------------------------------------------------------------------


@contextmanager
def server(url: str, console: Console) -> Iterator[str]:
    """``cityops serve`` on a free port, in a process of its own."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cli = Path(sys.executable).with_name("cityops")
    env = os.environ | {
        "CITYOPS_DATABASE_URL": url,
        "CITYOPS_LOG_LEVEL": "warning",
        "CITYOPS_HOST": "127.0.0.1",
        "CITYOPS_PORT": str(port),
    }
    proc = subprocess.Popen([str(cli), "serve"], env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("cityops serve did not start")
            time.sleep(0.2)
        yield base
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def bearer(base: str, username: str, password: str) -> dict[str, str]:
    r = requests.post(
        f"{base}/api/v1/auth/token", json={"username": username, "password": password}, timeout=30
    )
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


# --- (c) the API --------------------------------------------------------------------------------


def regions(world: _data.World) -> dict[str, list[str]]:
    grids = [g.code for g in world.grids]
    villages = sorted({g[:12] for g in grids})
    rng = np.random.default_rng(7)
    return {
        "district": [DISTRICT],
        "town": list(world.towns),
        "village": [str(v) for v in rng.permutation(villages)],
        "grid": [str(g) for g in rng.permutation(grids)],
    }


def calls(level: str) -> list[tuple[str, str]]:
    """(name, path with {r}) of every call the cockpit page makes for a region at ``level``."""
    out = [("summary", "/api/v1/cockpit/summary?region={r}")]
    out += [(f"layer {layer}", f"/api/v1/cockpit/layers/{layer}?region={{r}}") for layer in LAYERS]
    out.append(("boundaries", "/api/v1/regions/{r}/children.geojson"))
    if level == "grid":  # a grid has no children: the page asks for its own outline
        out.append(("region", "/api/v1/regions/{r}"))
    if level == "district":
        out.append(("feed (polling)", "/api/v1/feed?after={after}&limit=200"))
    return out


def measure_api(
    base: str,
    headers: dict[str, str],
    engine: Engine,
    world: _data.World,
    samples: int,
    report: Report,
    console: Console,
) -> None:
    http = requests.Session()
    http.headers.update(headers)
    bounds = day_bounds(utcnow(), rollup.ZONE, PERIOD_DAYS)
    places = regions(world)
    with engine.connect() as conn:
        latest = conn.exec_driver_sql("SELECT coalesce(max(id), 0) FROM feed").scalar_one()
    after = max(0, int(latest) - 200)
    health: list[float] = []
    timings: dict[tuple[str, str], list[float]] = {}
    raw: dict[str, list[float]] = {}
    agree = checked = 0
    warm = 3
    for level, codes in places.items():
        with console.status(f"{report.kind}: API at {level} level ×{samples}…"):
            for i in range(samples + warm):
                code = codes[i % len(codes)]
                t0 = time.perf_counter()
                http.get(f"{base}/healthz", timeout=30).raise_for_status()
                health_ms = (time.perf_counter() - t0) * 1e3
                intake = None
                for name, path in calls(level):
                    url = base + path.format(r=code, after=after)
                    t0 = time.perf_counter()
                    r = http.get(url, timeout=60)
                    ms = (time.perf_counter() - t0) * 1e3
                    r.raise_for_status()
                    if name == "summary":
                        intake = sum(r.json()["trend"]["intake"])
                    if i >= warm:
                        timings.setdefault((level, name), []).append(ms)
                t0 = time.perf_counter()
                with engine.connect() as conn:
                    n = conn.execute(
                        RAW_COUNT,
                        {
                            "since": bounds[0],
                            "until": bounds[-1],
                            "lo": code,
                            "hi": code + "9" * (MAX_CODE_LENGTH - len(code)),
                        },
                    ).scalar_one()
                raw_ms = (time.perf_counter() - t0) * 1e3
                if i >= warm:
                    health.append(health_ms)
                    raw.setdefault(level, []).append(raw_ms)
                    checked += 1
                    agree += int(intake == n)
    for level in places:
        for (lv, name), values in timings.items():
            if lv != level:
                continue
            p95 = pct(values, 95)
            report.add(
                Row(
                    f"{level:8} {name}",
                    p95,
                    f"p95 < {API_TARGET_MS:g} ms",
                    p95 < API_TARGET_MS,
                    "",
                    note=f"p50 {pct(values, 50):.1f}",
                )
            )
        report.add(
            Row(
                f"{level:8} baseline: bare SQL count(*), 30 days",
                pct(raw[level], 95),
                "",
                None,
                "(the rows the summary counts)",
                note=f"p50 {pct(raw[level], 50):.1f}",
            )
        )
    report.add(
        Row(
            "baseline: GET /healthz",
            pct(health, 95),
            "",
            None,
            "(the HTTP floor)",
            note=f"p50 {pct(health, 50):.1f}",
        )
    )
    report.notes.append(
        f"API: {samples} samples per call and level after {warm} warm-up ones, as the district "
        f"administrator; /healthz p50 {pct(health, 50):.1f} ms, p95 {pct(health, 95):.1f} ms; "
        "bare SQL count of the 30 days' cases p50/p95 (ms) "
        + ", ".join(f"{lv} {pct(v, 50):.1f}/{pct(v, 95):.1f}" for lv, v in raw.items())
        + f"; the summary's 30-day intake equals the SQL count in {agree}/{checked} samples"
    )


# --- (a) first render, (b) commit → screen, (d) the mobile page ----------------------------------


@contextmanager
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        raise SystemExit(f"Chromium not found at {CHROMIUM}: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def signed_in_state(browser: Any, base: str, username: str, password: str) -> Any:
    context = browser.new_context()
    r = context.request.post(
        f"{base}/api/v1/auth/login", data={"username": username, "password": password}
    )
    assert r.ok, r.text()
    state = context.storage_state()
    context.close()
    return state


def measure_render(
    browser: Any, base: str, state: Any, renders: int, report: Report, console: Console
) -> None:
    ready: list[float] = []
    loaded: list[float] = []
    static: list[float] = []
    view = {"width": 1920, "height": 1080}
    with console.status(f"{report.kind}: first render ×{renders}…"):
        for _ in range(renders):
            context = browser.new_context(viewport=view, storage_state=state)
            page = context.new_page()
            page.goto(f"{base}/login")
            page.wait_for_load_state("load")
            static.append(
                page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
            )
            context.close()

            context = browser.new_context(viewport=view, storage_state=state)
            page = context.new_page()
            page.goto(f"{base}/cockpit?region={DISTRICT}")
            handle = page.wait_for_function(READY, arg=DISTRICT, polling="raf", timeout=60_000)
            ready.append(float(handle.json_value()))
            loaded.append(
                page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
            )
            context.close()
    median = float(np.median(ready)) / 1e3
    report.add(
        Row(
            "first render /cockpit (median)",
            median,
            f"< {RENDER_TARGET_S:g} s",
            median < RENDER_TARGET_S,
            f"sign-in page {np.median(static) / 1e3:.2f} s · cockpit load event "
            f"{np.median(loaded) / 1e3:.2f} s",
            unit="s",
            note=f"max {max(ready) / 1e3:.2f} s",
        )
    )
    report.add(
        Row(
            "first render /cockpit (max)",
            max(ready) / 1e3,
            f"< {RENDER_TARGET_S:g} s",
            max(ready) / 1e3 < RENDER_TARGET_S,
            f"sign-in page max {max(static) / 1e3:.2f} s",
            unit="s",
        )
    )
    report.notes.append(
        f"render: {renders} first visits (fresh context, nothing cached) at 1920×1080: ready "
        + ", ".join(f"{v / 1e3:.2f}" for v in ready)
        + " s"
    )


class StreamListener:
    """A bare SSE client on /api/v1/stream: when each case's first event arrives."""

    def __init__(self, base: str, headers: dict[str, str]) -> None:
        self.seen: dict[str, float] = {}
        self.ready = threading.Event()
        self.stop = False
        self.response = requests.get(
            f"{base}/api/v1/stream?topics=cases",
            headers=headers | {"Accept": "text/event-stream"},
            stream=True,
            timeout=(10, 600),
        )
        self.response.raise_for_status()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.ready.set()
        try:
            for line in self.response.iter_lines(decode_unicode=True):
                if self.stop:
                    return
                if line and line.startswith("data:"):
                    at = time.time()
                    item = json.loads(line[5:])
                    self.seen.setdefault(str(item.get("ref")), at)
        except (requests.RequestException, AttributeError):
            return

    def close(self) -> None:
        self.stop = True
        self.response.close()


def measure_live(
    browser: Any,
    base: str,
    state: Any,
    headers: dict[str, str],
    world: _data.World,
    commits: int,
    report: Report,
    console: Console,
) -> None:
    context = browser.new_context(viewport={"width": 1920, "height": 1080}, storage_state=state)
    page = context.new_page()
    page.goto(f"{base}/cockpit?region={DISTRICT}")
    page.wait_for_function(READY, arg=DISTRICT, polling="raf", timeout=60_000)
    page.wait_for_function(
        "() => document.getElementById('live-status').dataset.mode === 'stream'", timeout=30_000
    )
    page.evaluate(WATCH)
    first = int(page.locator("#kpi-intake").inner_text().replace(",", ""))
    listener = StreamListener(base, headers)
    listener.ready.wait(10)
    time.sleep(0.5)
    http = requests.Session()
    http.headers.update(headers)
    grids = world.grids
    ticker: list[float] = []
    figure: list[float] = []
    bare: list[float] = []
    posts: list[float] = []
    try:
        with console.status(f"{report.kind}: commit → screen ×{commits}…"):
            for i in range(commits):
                grid = grids[(i * 37) % len(grids)]
                body = {
                    "description": f"驾驶舱基准 实时 {i}",
                    "region_code": grid.code,
                    "category": world.categories[i % len(world.categories)].code,
                    "source": "hotline",
                }
                t0 = time.time()
                r = http.post(f"{base}/api/v1/cases", json=body, timeout=30)
                posts.append((time.time() - t0) * 1e3)
                r.raise_for_status()
                code = str(r.json()["code"])
                seen = page.wait_for_function(SEEN, arg=code, timeout=60_000).json_value()
                shown = page.wait_for_function(SHOWN, arg=first + i + 1, timeout=60_000)
                ticker.append(float(seen) - t0 * 1e3)
                figure.append(float(shown.json_value()) - t0 * 1e3)
                deadline = time.monotonic() + 10
                while code not in listener.seen and time.monotonic() < deadline:
                    time.sleep(0.01)
                if code in listener.seen:
                    bare.append((listener.seen[code] - t0) * 1e3)
                time.sleep(0.4)  # past the page's refresh: one refresh per commit
    finally:
        listener.close()
        context.close()
    for name, values in (("commit → ticker", ticker), ("commit → figures", figure)):
        p95 = pct(values, 95) / 1e3
        report.add(
            Row(
                f"{name} p95",
                p95,
                f"p95 < {LIVE_TARGET_S:g} s",
                p95 < LIVE_TARGET_S,
                f"bare SSE client p95 {pct(bare, 95) / 1e3:.3f} s",
                unit="s",
                note=f"p50 {pct(values, 50) / 1e3:.3f} s",
            )
        )
    report.notes.append(
        f"live: {commits} commits through POST /api/v1/cases (p50 {pct(posts, 50):.0f} ms, p95 "
        f"{pct(posts, 95):.0f} ms), timed from before the POST; bare SSE client received "
        f"{len(bare)}/{commits}, p50 {pct(bare, 50):.0f} ms"
    )


def measure_mobile(
    browser: Any, base: str, credentials: dict[str, str], report: Report, console: Console
) -> None:
    def first_load(path: str, sign_in: bool) -> tuple[int, int, int]:
        context = browser.new_context(
            viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
        )
        page = context.new_page()
        sizes: list[tuple[str, int]] = []

        def done(request: Any) -> None:
            s = request.sizes()
            sizes.append((request.url, s["responseBodySize"] + s["responseHeadersSize"]))

        if sign_in:
            page.goto(f"{base}/login?next={path}")
            page.fill("#username", "demo-grid")
            page.fill("#password", credentials["demo-grid"])
            page.on("requestfinished", done)
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}{path}")
        else:
            page.on("requestfinished", done)
            page.goto(f"{base}{path}")
        page.wait_for_load_state("networkidle")
        context.close()
        geo = sum(n for u, n in sizes if "geojson" in u.lower())
        return sum(n for _u, n in sizes) - geo, geo, len(sizes)

    with console.status(f"{report.kind}: mobile first load…"):
        total, geo, count = first_load("/m/", True)
        login, _geo, login_count = first_load("/login", False)
    kb = total / 1024
    report.add(
        Row(
            "mobile /m/ first load",
            kb,
            f"< {MOBILE_TARGET_KB:g} KB",
            kb < MOBILE_TARGET_KB,
            f"sign-in page {login / 1024:.1f} KB in {login_count} requests",
            unit="KB",
            note=f"{count} requests; GeoJSON excluded: {geo / 1024:.1f} KB",
        )
    )


# --- one backend --------------------------------------------------------------------------------


def measure(
    target: ev.Target,
    world: _data.World,
    credentials: dict[str, str],
    args: argparse.Namespace,
    report: Report,
    console: Console,
) -> None:
    engine = make_engine(target.url)

    def attempt(name: str, target_text: str, fn: Callable[[], None]) -> None:
        """One part; a part that fails is reported as missed, and the others still run."""
        try:
            fn()
        except Exception as exc:  # a timeout, an HTTP error: say so, go on
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            report.add(Row(name, None, target_text, False, f"failed: {type(exc).__name__} {first}"))

    try:
        with server(target.url, console) as base:
            headers = bearer(base, "demo-admin", credentials["demo-admin"])
            if not args.skip_api:
                attempt(
                    "(c) API",
                    f"p95 < {API_TARGET_MS:g} ms",
                    lambda: measure_api(
                        base, headers, engine, world, args.samples, report, console
                    ),
                )
            if args.skip_render and args.skip_live and args.skip_mobile:
                return
            with chromium() as browser:
                state = signed_in_state(browser, base, "demo-admin", credentials["demo-admin"])
                if not args.skip_render:
                    attempt(
                        "(a) first render",
                        f"< {RENDER_TARGET_S:g} s",
                        lambda: measure_render(browser, base, state, args.renders, report, console),
                    )
                if not args.skip_live:
                    attempt(
                        "(b) commit → screen",
                        f"p95 < {LIVE_TARGET_S:g} s",
                        lambda: measure_live(
                            browser, base, state, headers, world, args.commits, report, console
                        ),
                    )
                if not args.skip_mobile:
                    attempt(
                        "(d) mobile first load",
                        f"< {MOBILE_TARGET_KB:g} KB",
                        lambda: measure_mobile(browser, base, credentials, report, console),
                    )
    finally:
        engine.dispose()


def print_report(report: Report, args: argparse.Namespace, console: Console) -> None:
    table = Table(title=f"cockpit on {report.kind} {report.version}: {args.cases:,} cases")
    for name, justify in (
        ("measure", "left"),
        ("CityOps", "right"),
        ("", "left"),
        ("target", "right"),
        ("", "left"),
        ("baseline (same run)", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in report.rows:
        shown = "–" if r.value is None else f"{r.value:,.{3 if r.unit == 's' else 1}f} {r.unit}"
        met = "" if r.met is None else ("[green]✓[/]" if r.met else "[red]✗[/]")
        table.add_row(r.measure, shown, r.note, r.target, met, r.baseline)
    console.print(table)
    for note in report.notes:
        console.print(f"  {note}", highlight=False)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--pg-url", default=ev.PG_URL, help="server for the scratch database")
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90, help="the cases span this many days")
    parser.add_argument("--samples", type=int, default=40, help="requests per API call and level")
    parser.add_argument("--renders", type=int, default=10, help="first renders")
    parser.add_argument("--commits", type=int, default=50, help="commits for commit → screen")
    parser.add_argument("--chunk", type=int, default=20_000, help="cases per bulk-load chunk")
    parser.add_argument("--seed", type=int, default=20240712)
    parser.add_argument("--skip-api", action="store_true", help="skip (c), the API latencies")
    parser.add_argument("--skip-render", action="store_true", help="skip (a), the first render")
    parser.add_argument("--skip-live", action="store_true", help="skip (b), commit → screen")
    parser.add_argument("--skip-mobile", action="store_true", help="skip (d), the mobile page")
    parser.add_argument(
        "--keep", action="store_true", help=f"keep the databases ({KEEP_SQLITE}, {KEEP_PG})"
    )
    parser.add_argument(
        "--reuse", action="store_true", help="measure the kept databases again (no load)"
    )
    args = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 150)
    kinds = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    t_start = time.perf_counter()
    now = utcnow().replace(microsecond=0)
    audit.install()
    with console.status("building the demo district…"):
        demo = district.generate(district.DemoConfig())
    reports: list[Report] = []
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cityops-bench-")))
        targets: list[ev.Target] = []
        credentials: dict[str, dict[str, str]] = {}
        for kind in kinds:
            url = stack.enter_context(database(kind, args, tmp))
            target = ev.Target(kind, url, ev.Result(kind))
            if args.reuse:
                engine = make_engine(url)
                t0 = time.perf_counter()
                migrate.upgrade(engine)
                console.print(f"{kind}: migrated to head in {time.perf_counter() - t0:.1f} s")
                credentials[kind] = json.loads(accounts_file(kind).read_text())
                with Session(engine) as session:
                    target.world = _data.read_world(session)
                engine.dispose()
            else:
                credentials[kind] = prepare(target, demo, console)
                if args.keep:
                    accounts_file(kind).write_text(json.dumps(credentials[kind]))
            targets.append(target)
        world = targets[0].world
        assert world is not None
        if not args.reuse:
            if any(t.world != world for t in targets):
                raise SystemExit("the demo district got different ids on the backends")
            console.print(ev.load_cases(targets, world, args, now, console))
            for t in targets:
                console.print(t.result.loaded)
        for t in targets:
            report = Report(t.kind)
            engine = make_engine(t.url)
            with engine.connect() as conn:
                report.version = conn.exec_driver_sql(
                    "SELECT sqlite_version()" if t.kind == "sqlite" else "SHOW server_version"
                ).scalar_one()
                cases = conn.exec_driver_sql("SELECT count(*) FROM cases").scalar_one()
            engine.dispose()
            with console.status(f"{t.kind}: rebuilding the cockpit roll-up…"):
                seconds, rows = rebuild_rollup(t.url)
            report.notes.append(
                f"roll-up rebuilt from {cases:,} cases in {seconds:.1f} s ({rows:,} rows)"
            )
            measure(t, world, credentials[t.kind], args, report, console)
            print_report(report, args, console)
            reports.append(report)
        if args.keep or args.reuse:
            console.print(f"kept: {', '.join(t.url for t in targets)}")
    missed = [f"{r.kind}: {row.measure}" for r in reports for row in r.rows if row.met is False]
    console.print(f"whole run {time.perf_counter() - t_start:.0f} s")
    if missed:
        console.print("[bold red]targets missed:[/] " + "; ".join(missed))
    else:
        console.print("[bold green]targets met[/]")


if __name__ == "__main__":
    main()
