"""Telemetry ingestion benchmark: CityOps next to a raw bulk write of the same rows, same run.

    .venv/bin/python bench/ingest.py                       # SQLite and PostgreSQL
    .venv/bin/python bench/ingest.py --db sqlite --readings 50000 --soak 600

Each path (HTTP, MQTT) of each engine gets a scratch database of its own, starting empty as the
raw baseline's table does (bench/events.py: SQLite in a temporary file, PostgreSQL a
``cityops_bench_<random>`` database dropped afterwards), migrated, with the small demo district,
--devices water-level gauges (``SIM-000000`` …) and three rules on every one of them: level
above a limit, level below a limit, and a rise of more than 5 m within an hour (rate of change:
one index seek per reading). --rules N keeps the first N of them: ``--rules 0`` measures
storing, checking and folding alone — the ceiling that no work on the rules can raise.

Measured, for --readings readings of about 200 bytes each (one device, one value, one time):

* raw — the same rows into a table of the same shape: SQLite ``executemany`` in one
  transaction; PostgreSQL one ``COPY``. Readings/s. Beside it ("per batch"), the same bulk
  writes committed every --batch rows, as CityOps commits each HTTP batch: each commit writes
  out every index page its rows touched, and with readings of 10,000 devices in a growing
  table that is most of the index each time — the one-transaction baseline pays it once.
* HTTP — --servers ``cityops serve`` processes (default 2: production runs several behind a
  proxy, and on SQLite one checks its batch while the other stores one); --clients
  keep-alive connections post batches of --batch readings with an API key, bodies encoded
  before the clock starts, after one warm-up batch per server. Sustained readings/s until all
  are stored and folded; meanwhile ``GET /healthz`` on the first server every 20 ms, its p99
  — how long the server keeps everyone else waiting while it ingests.
* MQTT — a private Mosquitto (the Debian broker, started on --mqtt-port with no in-flight
  limit, so the numbers show CityOps and not the broker's default window of 20) and --workers
  ``cityops ingest`` processes sharing one subscription (default 2: on SQLite too, where they
  take turns at the single writer but decode and check messages side by side). The devices sit
  behind field gateways of 100 (device groups ``GW-0000`` …); each message is a gateway's array of
  --per-message readings on ``cityops/GW-…/telemetry`` at QoS 1 (--per-message 1: every
  device publishes its own, and one Python publisher — some 10,000 messages/s — is then the
  limit). A worker commits --mqtt-batch messages at a time (default about 50,000 readings, as
  an operator raising CITYOPS_MQTT_BATCH and the broker's window for throughput would: each
  commit writes out every index page its readings touched, so larger commits cost less a
  reading — 10,000 a commit made about two thirds of the rate; docs/operations.md).
  Sustained readings/s until all are stored and folded. Then publish → alarm latency: --trips
  devices publish a reading above the limit on their own topic while --trip-rate readings/s
  of background load flow; the alarm's ``first_seen`` minus the publish time, p50 / p99.
* roll-ups: ingestion stores readings; the server's (or worker's) folder folds them into the
  1-minute and 1-hour roll-ups and the latest values in the background, every
  CITYOPS_TELEMETRY_FOLD_INTERVAL_S (telemetry/fold.py). The folding runs during the
  measurement, competing for the same cores, and the clock stops only when the roll-ups have
  caught up with every reading — folding left for after the last batch would otherwise not
  count; "roll-ups +N s" is how long after the last reading was stored that took.
* --soak S: S seconds of MQTT at --soak-rate readings/s; each worker's resident memory every
  10 s, printed first and last.

Targets (issue 5): ≥ 0.4× raw on SQLite, ≥ 0.6× COPY on PostgreSQL, publish → alarm p99 < 3 s,
memory flat over a 10-minute soak.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import requests
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).parent))
from cityops import migrate
from cityops.alarms import rules
from cityops.alarms.models import Alarm
from cityops.auth import apikeys
from cityops.db import make_engine, session_factory, transaction, utcnow
from cityops.demo import district
from cityops.geo.models import Region
from cityops.telemetry import fold
from cityops.telemetry import service as devices
from cityops.telemetry.models import Device, DeviceGroup, Reading
from events import scratch_database

BIN = Path(sys.executable).parent
HIGH, LOW = 390.0, -19.0
THINGSBOARD_PER_CORE = 3_333 / (0.2 * 4)  # issue 5's yardstick: data points/s a core
GATEWAY = 100  # devices behind one field gateway (DTU): SIM-000000…099 on GW-0000, and so on


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat, after the command name)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_jiffies() -> tuple[int, int, int]:
    """(busy, stolen, total) clock ticks of all cores since boot, from /proc/stat: busy is user,
    nice, system, irq and softirq; stolen is time the hypervisor gave to other machines."""
    line = Path("/proc/stat").read_text().split("\n", 1)[0]
    user, nice, system, idle, iowait, irq, softirq, steal = map(int, line.split()[1:9])
    busy = user + nice + system + irq + softirq
    return busy, steal, busy + steal + idle + iowait


def postgres_pids() -> list[int]:
    """Every PostgreSQL process on this machine (server, backends, writers): the database's
    own share of the cores, when it runs here as in the bench."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError):  # gone meanwhile
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
    return pids


class CpuUse:
    """Where the cores went during a run: how busy the machine was and each process group's
    CPU seconds — whether the limit is the cores themselves or something waiting. A group is
    a list of pids, or a function listing them (asked again at the end: a process started
    meanwhile counts in full)."""

    def __init__(self, groups: dict[str, list[int] | Callable[[], list[int]]]) -> None:
        self.groups = groups
        self.before: dict[int, float] = {}
        self.used: dict[str, float] = {}
        self.busy = self.stolen = 0.0
        self.cores = os.cpu_count() or 1
        self.wall = 0.0

    def _pids(self) -> dict[str, list[int]]:
        return {g: p() if callable(p) else p for g, p in self.groups.items()}

    @staticmethod
    def _times(pids: dict[str, list[int]]) -> dict[int, float]:
        out = {}
        for group in pids.values():
            for pid in group:
                with suppress(OSError):  # ended meanwhile: its time is lost to the count
                    out[pid] = cpu_seconds(pid)
        return out

    def __enter__(self) -> CpuUse:
        self.before = self._times(self._pids())
        self.jiffies, self.t0 = machine_jiffies(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        pids = self._pids()
        after, (busy, stolen, total) = self._times(pids), machine_jiffies()
        self.wall = time.perf_counter() - self.t0
        self.used = {
            g: sum(after[p] - self.before.get(p, 0.0) for p in group if p in after)
            for g, group in pids.items()
            if group
        }
        ticks = max(1, total - self.jiffies[2])
        self.busy = (busy - self.jiffies[0]) / ticks
        self.stolen = (stolen - self.jiffies[1]) / ticks

    def line(self) -> str:
        parts = ", ".join(f"{g} {s:.1f} s" for g, s in self.used.items())
        stolen = f" (+{self.stolen:.0%} taken by the hypervisor)" if self.stolen >= 0.01 else ""
        return (
            f"CPU: {self.cores} cores {self.busy:.0%} busy{stolen} over {self.wall:.1f} s; {parts}"
        )


RULES = (
    ("bench-high", "threshold", {"op": "above", "value": HIGH, "clear": HIGH - 10}),
    ("bench-low", "threshold", {"op": "below", "value": LOW, "duration_s": 60}),
    ("bench-rise", "rate", {"op": "above", "value": 5.0, "window_s": 3600}),
)


def prepare(url: str, n: int, n_rules: int = len(RULES)) -> tuple[str, dict[str, int]]:
    """Migrate, load the district, register the gauges and the first ``n_rules`` rules;
    return an API key."""
    engine = make_engine(url)
    migrate.upgrade(engine)
    now = utcnow()
    with transaction(session_factory(engine)) as session:
        district.load(session, district.generate(district.DemoConfig(3, 2)))
        devices.load_types(session, devices.default_types(), now)
        session.execute(
            insert(DeviceGroup),
            [
                {
                    "id": g + 1,
                    "code": gateway(g * GATEWAY),
                    "name": f"模拟网关 {g}",
                    "created_at": now,
                }
                for g in range((n + GATEWAY - 1) // GATEWAY)
            ],
        )
        grids = list(
            session.execute(
                select(Region.code, Region.center_lat, Region.center_lon).where(
                    Region.level == "grid"
                )
            )
        )
        session.execute(
            insert(Device),
            [
                {
                    "code": f"SIM-{i:06d}",
                    "type_code": "water_level",
                    "name": f"模拟水位计 {i}",
                    "model": "bench",
                    "lat": grids[i % len(grids)][1],
                    "lon": grids[i % len(grids)][2],
                    "region_code": grids[i % len(grids)][0],
                    "group_id": i // GATEWAY + 1,
                    "active": True,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(n)
            ],
        )
        for code, kind, params in RULES[:n_rules]:
            rules.upsert(
                session,
                {
                    "code": code,
                    "name": code,
                    "kind": kind,
                    "scope": "device_type",
                    "scope_value": "water_level",
                    "metric": "level_m",
                    "params": params,
                    "severity": "major",
                },
                now,
            )
        key, _row = apikeys.create_key(
            session, name="bench", scopes=["telemetry:write"], created_by=None
        )
    with engine.connect() as conn:
        ids = {code: i for i, code in conn.execute(select(Device.id, Device.code))}
    engine.dispose()
    return key, ids


def gateway(device_index: int) -> str:
    return f"GW-{device_index // GATEWAY:04d}"


def readings(n_devices: int, total: int, start_ms: int) -> list[dict[str, Any]]:
    """Round-robin over the devices, one value a second each: a realistic level with noise,
    with what a field logger sends beside it (unit, quality, sequence number, battery, signal,
    firmware) — about 200 bytes of JSON a reading, as the issue sets; CityOps reads the four
    fields it needs and ignores the rest."""
    rng = np.random.default_rng(20240712)
    values = np.round(12.0 + rng.normal(0, 0.3, total), 3)
    battery = np.round(3.3 + rng.random(total) * 0.9, 2)
    return [
        {
            "device": f"SIM-{i % n_devices:06d}",
            "metric": "level_m",
            "ts": start_ms + (i // n_devices) * 1000 + i % 997,
            "value": float(values[i]),
            "unit": "m",
            "quality": "good",
            "seq": i // n_devices,
            "battery_v": float(battery[i]),
            "rssi_dbm": -60 - i % 37,
            "firmware": "RTU-3.2.7",
            "sampled_by": "radar-level-gauge",
        }
        for i in range(total)
    ]


def stored(url: str) -> int:
    engine = make_engine(url)
    try:
        return _count(engine)
    finally:
        engine.dispose()


def unfolded(url: str) -> int:
    """Readings stored but not yet folded into the roll-ups and latest values."""
    engine = make_engine(url)
    with Session(engine) as session:
        count = fold.pending(session)
    engine.dispose()
    return count


def wait_folded(url: str, timeout: float) -> float:
    """Seconds until every stored reading is folded into the roll-ups (polled every 100 ms)."""
    t0 = time.perf_counter()
    while unfolded(url):
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"{unfolded(url)} readings not folded after {timeout:.0f} s")
        time.sleep(0.1)
    return time.perf_counter() - t0


def wait_subscribed(logs: list[Path], timeout: float) -> None:
    """Until every worker says its subscription stands: a message published before that goes
    to no one (a worker can take seconds to start on a busy machine)."""
    t0 = time.perf_counter()
    while not all(log.exists() and "subscribed to" in log.read_text() for log in logs):
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"the ingest workers did not subscribe within {timeout:.0f} s")
        time.sleep(0.1)


def wait_stored(url: str, target: int, timeout: float) -> float:
    """Seconds until ``target`` readings are stored. Counting them is a scan of the table
    (tens of milliseconds at a million readings, on the cores the workers use), so the waiting
    sleeps half the time the rate so far says is left — a handful of counts in all, then every
    100 ms at the end."""
    engine = make_engine(url)
    t0 = time.perf_counter()
    try:
        first = count = _count(engine)
        while count < target:
            elapsed = time.perf_counter() - t0
            if elapsed > timeout:
                raise TimeoutError(f"only {count} of {target} stored after {timeout:.0f} s")
            rate = (count - first) / elapsed if elapsed > 0 else 0.0
            left = (target - count) / rate if rate > 0 else 0.2
            time.sleep(min(2.0, max(0.1, left / 2)))
            count = _count(engine)
        return time.perf_counter() - t0
    finally:
        engine.dispose()


def _count(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Reading)).scalar_one())


def raw_baseline(
    kind: str, url: str, rows: list[dict[str, Any]], ids: dict[str, int], per_commit: int = 0
) -> float:
    """The same rows into a bare table of the same shape: in one transaction (``per_commit``
    0, the issue's baseline), or committed every ``per_commit`` rows — as CityOps commits
    each HTTP batch, and pays for each commit's scattered index pages."""
    engine = make_engine(url)
    tuples = [(ids[r["device"]], r["metric"], r["ts"], r["value"]) for r in rows]
    table = f"readings_raw_{per_commit}"
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TABLE {table} (device_id integer NOT NULL, metric varchar(32) NOT NULL,"
            " ts bigint NOT NULL, value double precision NOT NULL,"
            " PRIMARY KEY (device_id, metric, ts))"
        )
    step = per_commit or len(tuples)
    t0 = time.perf_counter()
    for i in range(0, len(tuples), step):
        chunk = tuples[i : i + step]
        with engine.begin() as conn:
            if kind == "sqlite":
                conn.exec_driver_sql(f"INSERT INTO {table} VALUES (?, ?, ?, ?)", chunk)
            else:
                raw: Any = conn.connection.dbapi_connection
                with raw.cursor() as cur, cur.copy(f"COPY {table} FROM STDIN") as copy:
                    for t in chunk:
                        copy.write_row(t)
    elapsed = time.perf_counter() - t0
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE {table}")
    engine.dispose()
    return len(rows) / elapsed


@contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def http_run(
    url: str,
    key: str,
    rows: list[dict[str, Any]],
    args: argparse.Namespace,
    tmp: Path,
    env: dict[str, str],
) -> tuple[float, float, float, str]:
    """Readings/s until the last batch is stored and folded into the roll-ups and latest
    values; the seconds the folding took after the last batch; and the p99 of the first
    server's answers to other requests meanwhile, in milliseconds (``Probe``); where the CPU
    went meanwhile (``CpuUse``).

    --servers ``cityops serve`` processes (production runs several behind a proxy) take
    --clients keep-alive connections' batches, spread over them in turn. The request bodies are
    encoded before the clock starts — the client's JSON encoding is not CityOps' work — and
    each server answers one warm-up batch first (its device cache loaded, as in service)."""
    bodies = [
        json.dumps(rows[i : i + args.batch]).encode() for i in range(0, len(rows), args.batch)
    ]
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    ports = [free_port() for _ in range(args.servers)]
    with ExitStack() as stack:
        servers = [
            stack.enter_context(
                process(
                    [str(BIN / "cityops"), "serve", "--port", str(port)],
                    env,
                    tmp / f"serve-{n}.log",
                )
            )
            for n, port in enumerate(ports)
        ]
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        for n, base in enumerate(bases):
            for _ in range(200):
                try:
                    requests.get(f"{base}/healthz", timeout=1)
                    break
                except requests.ConnectionError:
                    time.sleep(0.1)
            warm = {"device": "SIM-000000", "metric": "level_m", "ts": rows[0]["ts"] - 1000 - n}
            requests.post(
                f"{base}/api/v1/telemetry", json={**warm, "value": 12.0}, headers=headers
            ).raise_for_status()
        before = stored(url)
        sessions = [requests.Session() for _ in range(args.clients)]

        def post(i: int) -> None:
            r = sessions[i % args.clients].post(
                f"{bases[i % len(bases)]}/api/v1/telemetry",
                data=bodies[i],
                headers=headers,
                timeout=120,
            )
            r.raise_for_status()

        probe = Probe(f"{bases[0]}/healthz")
        cpu = CpuUse(
            {
                "servers": [p.pid for p in servers],
                "bench client": [os.getpid()],
                "PostgreSQL": postgres_pids if url.startswith("postgresql") else [],
            }
        )
        with cpu:
            t0 = time.perf_counter()
            with probe, ThreadPoolExecutor(args.clients) as pool:
                list(pool.map(post, range(len(bodies))))
            elapsed = time.perf_counter() - t0
            lag = wait_folded(url, timeout=120)
        assert stored(url) - before == len(rows), "HTTP: not every reading was stored"
    return len(rows) / (elapsed + lag), lag, probe.p99_ms(), cpu.line()


class Probe:
    """How long a server takes to answer something else while it ingests: ``GET /healthz``
    every 20 ms on a connection of its own, each answer's time kept."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with requests.Session() as http:
            while not self._stop.wait(0.02):
                t = time.perf_counter()
                http.get(self.address, timeout=30).raise_for_status()
                self.times.append(time.perf_counter() - t)

    def p99_ms(self) -> float:
        return float(np.percentile(self.times, 99)) * 1000 if self.times else float("nan")


def publisher(port: int) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{os.getpid()}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


OUTSTANDING: deque[mqtt.MQTTMessageInfo] = deque()


def send(client: mqtt.Client, topic: str, body: bytes) -> mqtt.MQTTMessageInfo:
    # MQTT packet ids are 16-bit: a client with more than 65,535 messages queued at once
    # reuses ids still in flight and loses messages, so the publisher keeps 20,000 at most.
    while len(OUTSTANDING) >= 20_000:
        OUTSTANDING.popleft().wait_for_publish(timeout=60)
    info = client.publish(topic, body, qos=1)
    OUTSTANDING.append(info)
    return info


def message(r: dict[str, Any]) -> tuple[str, bytes]:
    """A device's own message: its topic names it."""
    body = {"ts": r["ts"], "values": {r["metric"]: r["value"]}, "seq": r["ts"] % 10}
    return f"cityops/{r['device']}/telemetry", json.dumps(body).encode()


def encode(rows: list[dict[str, Any]], per_message: int) -> list[tuple[str, bytes]]:
    """The messages carrying these readings, encoded before the clock starts: one per reading
    (``per_message`` 1), or a gateway's array of up to ``per_message`` of its devices'
    readings on ``cityops/GW-…/telemetry`` (consecutive readings of one gateway)."""
    if per_message <= 1:
        return [message(r) for r in rows]
    out: list[tuple[str, bytes]] = []
    chunk: list[dict[str, Any]] = []
    for r in rows:
        if chunk and (
            len(chunk) >= per_message or gateway_of(chunk[0]["device"]) != gateway_of(r["device"])
        ):
            out.append(
                (f"cityops/{gateway_of(chunk[0]['device'])}/telemetry", json.dumps(chunk).encode())
            )
            chunk = []
        chunk.append(r)
    if chunk:
        out.append(
            (f"cityops/{gateway_of(chunk[0]['device'])}/telemetry", json.dumps(chunk).encode())
        )
    return out


def gateway_of(device: str) -> str:
    return gateway(int(device.removeprefix("SIM-")))


def publish(client: mqtt.Client, r: dict[str, Any]) -> mqtt.MQTTMessageInfo:
    return send(client, *message(r))


def mqtt_batch(args: argparse.Namespace) -> int:
    """Messages a worker commits at a time."""
    return int(args.mqtt_batch or min(1000, max(1, 50_000 // args.per_message)))


def mqtt_run(
    args: argparse.Namespace,
    url: str,
    rows: list[dict[str, Any]],
    tmp: Path,
    env: dict[str, str],
    console: Console,
) -> dict[str, Any]:
    port = args.mqtt_port
    conf = tmp / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 0\n"
        "max_queued_messages 0\npersistence false\n"
    )
    out: dict[str, Any] = {}
    with ExitStack() as stack:
        broker = stack.enter_context(
            process([shutil.which("mosquitto") or "mosquitto", "-c", str(conf)], env, tmp / "m.log")
        )
        time.sleep(0.5)
        workers = [
            stack.enter_context(
                process(
                    [
                        str(BIN / "cityops"),
                        "ingest",
                        "--mqtt",
                        f"mqtt://127.0.0.1:{port}",
                        "--client-id",
                        f"bench-ingest-{i}",
                        "--group",
                        "bench",
                        "--batch",
                        str(mqtt_batch(args)),
                        "--stats-every",
                        "10",
                    ],
                    env,
                    tmp / f"ingest-{i}.log",
                )
            )
            for i in range(args.workers)
        ]
        wait_subscribed([tmp / f"ingest-{i}.log" for i in range(args.workers)], timeout=60)
        client = publisher(port)
        messages = encode(rows, args.per_message)
        before = stored(url)
        cpu = CpuUse(
            {
                "workers": [w.pid for w in workers],
                "broker": [broker.pid],
                "publisher": [os.getpid()],
                "PostgreSQL": postgres_pids if url.startswith("postgresql") else [],
            }
        )
        with cpu:
            t0 = time.perf_counter()
            for topic, body in messages:
                send(client, topic, body)
            published = time.perf_counter() - t0
            took = wait_stored(url, before + len(rows), timeout=args.timeout)
            elapsed = time.perf_counter() - t0
            out["fold_lag"] = wait_folded(url, timeout=120)
        console.print(
            f"  MQTT: {len(rows):,} readings in {len(messages):,} messages published in "
            f"{published:.2f} s ({len(rows) / published:,.0f}/s), all stored {took:.2f} s later"
            f"\n  {cpu.line()}"
        )
        out["drain_s"] = took
        out["rate"] = len(rows) / (elapsed + out["fold_lag"])

        # Publish → alarm: trips among background load.
        start_ms = int(utcnow().timestamp() * 1000) - 120_000
        background = readings(args.devices, args.trip_rate * 10, start_ms)
        sent: dict[str, float] = {}
        step = 1.0 / args.trip_rate
        next_trip = len(background) // (args.trips + 1)
        trips = 0
        t_start = time.perf_counter()
        for i, r in enumerate(background):
            publish(client, r)
            if trips < args.trips and i == next_trip * (trips + 1):
                device = f"SIM-{(args.devices - 1 - trips):06d}"
                trip = {"device": device, "metric": "level_m", "ts": r["ts"] + 1, "value": 395.0}
                publish(client, trip)
                sent[device] = time.time()
                trips += 1
            delay = t_start + (i + 1) * step - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        wait_stored(url, before + len(rows) + len(background) + trips, timeout=300)
        engine = make_engine(url)
        with engine.connect() as conn:
            first = dict(
                conn.execute(
                    select(Device.code, Alarm.first_seen)
                    .join(Alarm, Alarm.device_id == Device.id)
                    .where(Device.code.in_(list(sent)))
                ).all()
            )
        engine.dispose()
        lat = [first[d].timestamp() - t for d, t in sent.items() if d in first]
        out["alarms"] = f"{len(lat)}/{len(sent)}"
        out["p50"] = float(np.percentile(lat, 50)) if lat else float("nan")
        out["p99"] = float(np.percentile(lat, 99)) if lat else float("nan")

        if args.soak:
            out["rss"] = soak(args, client, workers, console)
        client.loop_stop()
        client.disconnect()
    return out


def soak(
    args: argparse.Namespace,
    client: mqtt.Client,
    workers: list[subprocess.Popen[bytes]],
    console: Console,
) -> list[tuple[int, list[int]]]:
    samples: list[tuple[int, list[int]]] = []
    stop = threading.Event()
    t0 = time.perf_counter()
    start_ms = int(utcnow().timestamp() * 1000) - 60_000

    def sample() -> None:
        while not stop.wait(10):
            samples.append((int(time.perf_counter() - t0), [rss_kib(w.pid) for w in workers]))
            console.print(f"  soak {samples[-1][0]:>4d} s  RSS KiB {samples[-1][1]}")

    threading.Thread(target=sample, daemon=True).start()
    i = 0
    while time.perf_counter() - t0 < args.soak:
        r = {
            "device": f"SIM-{i % args.devices:06d}",
            "metric": "level_m",
            "ts": start_ms + i,
            "value": 12.0,
        }
        publish(client, r)
        i += 1
        delay = t0 + i / args.soak_rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    stop.set()
    return samples


@contextmanager
def fresh_database(
    kind: str, args: argparse.Namespace, tmp: Path, console: Console
) -> Iterator[tuple[str, str, dict[str, int], dict[str, str]]]:
    """A scratch database of its own for one path, prepared: its URL, an API key, the device
    ids and the environment for the processes under test. Each path starts from an empty
    readings table, as the raw baseline does — the MQTT run would otherwise write into a table
    already holding the HTTP run's readings, and pay for the larger index."""
    tmp.mkdir(parents=True, exist_ok=True)
    with scratch_database(kind, args.pg_url, tmp) as url:
        with console.status(f"{kind}: migrating, {args.devices:,} devices, {args.rules} rules…"):
            key, ids = prepare(url, args.devices, args.rules)
        yield url, key, ids, dict(os.environ, CITYOPS_DATABASE_URL=url, CITYOPS_LOG_LEVEL="info")


def run_engine(kind: str, args: argparse.Namespace, console: Console) -> dict[str, Any]:
    with ExitStack() as stack:
        if args.keep:
            tmp = Path(tempfile.mkdtemp(prefix=f"cityops-bench-{kind}-"))
            console.print(f"{kind}: logs kept in {tmp}")
        else:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        start_ms = int((utcnow() - timedelta(hours=2)).timestamp() * 1000)
        rows = readings(args.devices, args.readings, start_ms)
        size = sum(len(json.dumps(r)) for r in rows[:1000]) / 1000
        result: dict[str, Any] = {"bytes": size}
        with fresh_database(kind, args, tmp / "http", console) as (url, key, ids, env):
            with console.status(f"{kind}: raw baseline…"):
                result["raw"] = raw_baseline(kind, url, rows, ids)
                result["raw_batched"] = raw_baseline(kind, url, rows, ids, args.batch)
            console.print(
                f"{kind}: raw {result['raw']:,.0f} readings/s; committed every {args.batch:,}: "
                f"{result['raw_batched']:,.0f}/s"
            )
            with console.status(f"{kind}: HTTP…"):
                result["http"], result["http_fold_lag"], result["http_probe_ms"], cpu = (
                    (float("nan"), float("nan"), float("nan"), "")
                    if args.skip_http
                    else http_run(url, key, rows, args, tmp / "http", env)
                )
            console.print(
                f"{kind}: HTTP {result['http']:,.0f} readings/s; roll-ups caught up "
                f"{result['http_fold_lag']:.2f} s after the last batch; GET /healthz meanwhile "
                f"p99 {result['http_probe_ms']:.0f} ms\n  {cpu}"
            )
        if args.skip_mqtt:
            nan = float("nan")
            result["mqtt"] = {"rate": nan, "p50": nan, "p99": nan, "alarms": "-", "fold_lag": nan}
            return result
        mqtt_rows = readings(args.devices, args.readings, start_ms + 3_600_000)
        with (
            fresh_database(kind, args, tmp / "mqtt", console) as (url, _key, _ids, env),
            console.status(f"{kind}: MQTT ({args.workers} workers)…"),
        ):
            result["mqtt"] = mqtt_run(args, url, mqtt_rows, tmp / "mqtt", env, console)
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument(
        "--readings", type=int, default=500_000, help="readings per path (some seconds of each)"
    )
    parser.add_argument("--batch", type=int, default=5_000, help="HTTP readings per request")
    parser.add_argument(
        "--servers",
        type=int,
        default=2,
        help="cityops serve processes (on SQLite one checks its batch while the other stores one)",
    )
    parser.add_argument("--clients", type=int, default=2, help="HTTP connections posting at once")
    parser.add_argument("--workers", type=int, default=2, help="cityops ingest processes")
    parser.add_argument(
        "--mqtt-batch",
        type=int,
        default=0,
        help="messages per commit, CITYOPS_MQTT_BATCH (default: about 50,000 readings, "
        "at most 1,000 messages)",
    )
    parser.add_argument(
        "--per-message",
        type=int,
        default=GATEWAY,
        help=f"readings per MQTT message: a gateway's devices at one moment (≤ {GATEWAY}); "
        "1 = each device publishing its own",
    )
    parser.add_argument("--mqtt-port", type=int, default=18830)
    parser.add_argument(
        "--rules",
        type=int,
        choices=range(len(RULES) + 1),
        default=len(RULES),
        help="the first N rules (above, below, rate of change); 0: storing and folding alone",
    )
    parser.add_argument(
        "--trips", type=int, default=100, help="publish → alarm trips (none without rules)"
    )
    parser.add_argument("--trip-rate", type=int, default=500, help="background readings/s")
    parser.add_argument("--soak", type=int, default=0, help="seconds of MQTT soak (600 = 10 min)")
    parser.add_argument("--soak-rate", type=int, default=1000)
    parser.add_argument(
        "--keep", action="store_true", help="keep the processes' logs (the folder is printed)"
    )
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-mqtt", action="store_true")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for storage")
    args = parser.parse_args()
    console = Console(width=170)
    if not args.rules:
        args.trips = 0  # no rule, no alarm to wait for
    table = Table(title=f"telemetry ingestion — {args.devices:,} devices × {args.rules} rules")
    columns = ("engine", "path", "CityOps /s", "raw /s", "ratio", "target", "per batch", "notes")
    for col in columns:
        table.add_column(col)
    rates: list[float] = []
    for kind in args.db.split(","):
        res = run_engine(kind, args, console)
        target = 0.4 if kind == "sqlite" else 0.6
        raw = res["raw"]
        raw_name = "executemany" if kind == "sqlite" else "COPY"
        m = res["mqtt"]
        for path, rate, notes in (
            (
                f"HTTP ×{args.servers}",
                res["http"],
                f"{args.batch:,}/request, {args.clients} clients, ~{res['bytes']:.0f} B/reading; "
                f"roll-ups +{res['http_fold_lag']:.2f} s; "
                f"GET /healthz meanwhile p99 {res['http_probe_ms']:.0f} ms",
            ),
            (
                f"MQTT ×{args.workers}",
                m["rate"],
                f"{args.per_message}/message, {mqtt_batch(args):,}/commit; "
                f"publish→alarm p50 {m['p50']:.2f} s p99 {m['p99']:.2f} s ({m['alarms']}); "
                f"roll-ups +{m['fold_lag']:.2f} s",
            ),
        ):
            rates.append(rate)
            ok = "✓" if rate / raw >= target else "✗"
            table.add_row(
                kind,
                path,
                f"{rate:,.0f}",
                f"{raw:,.0f} ({raw_name})",
                f"{rate / raw:.2f}",
                f"≥ {target} {ok}",
                f"{res['raw_batched']:,.0f} ({rate / res['raw_batched']:.2f})",
                notes,
            )
        if m.get("rss"):
            first, last = m["rss"][0][1], m["rss"][-1][1]
            console.print(f"{kind}: soak RSS KiB first {first} last {last}")
    console.print(table)
    cores = os.cpu_count() or 1
    slowest = min((r for r in rates if r == r), default=float("nan"))  # NaN: a path skipped
    console.print(
        f"For scale: ThingsBoard reports 3,333 data points/s at 20 % of a 4-vCPU server, "
        f"{THINGSBOARD_PER_CORE:,.0f}/s a core; the slowest path here {slowest / cores:,.0f}/s "
        f"a core ({cores} cores, everything on them: database, broker, load) — "
        f"{slowest / cores / THINGSBOARD_PER_CORE:.0f}×"
    )


if __name__ == "__main__":
    main()
