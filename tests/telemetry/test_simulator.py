"""The telemetry simulator: seeded and pure, every reading valid for its device type, the
series behave (creep, storms, dropouts), and the transports deliver — in process (raising an
alarm for a scripted slope acceleration), over HTTP to a live server, and over MQTT."""

from __future__ import annotations

import itertools
import json
import math
import re
import shutil
import socket
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session, sessionmaker

from cityops.alarms import rules
from cityops.alarms.models import Alarm, AlarmRule
from cityops.demo import devices as demo_devices
from cityops.demo import district
from cityops.telemetry import service as tsvc
from cityops.telemetry.directory import DIRECTORY, Directory, MetricSpec
from cityops.telemetry.ingest import Policy
from cityops.telemetry.models import Latest, Reading
from cityops.telemetry.simulator import (
    INTERVAL_S,
    Acceleration,
    InProcessSink,
    MqttSink,
    SimDevice,
    Simulator,
    Storm,
    devices_from_db,
)
from cityops.telemetry.validate import check

T0 = datetime(2026, 7, 14, 16, 0, tzinfo=UTC)  # 00:00 on 15 July in Kaizhou


@pytest.fixture(scope="module")
def plan(small_demo: district.DemoDistrict) -> demo_devices.DevicePlan:
    return demo_devices.plan(demo_devices.places_from_specs(small_demo.regions))


@pytest.fixture(scope="module")
def fleet(plan: demo_devices.DevicePlan) -> list[SimDevice]:
    return [SimDevice(d.code, d.type, d.lat, d.lon, d.site) for d in plan.devices]


@pytest.fixture
def loaded(session: Session) -> Iterator[list[SimDevice]]:
    """The demo devices registered in the test's (rolled-back) database."""
    demo_devices.load(session, T0)
    DIRECTORY.invalidate()
    yield devices_from_db(session)
    DIRECTORY.invalidate()


def specs() -> dict[str, dict[str, MetricSpec]]:
    return {
        t["code"]: {m["name"]: MetricSpec.from_dict(m) for m in t["metrics"]}
        for t in tsvc.default_types()
    }


def series(readings: list[dict], device: str, metric: str) -> list[tuple[float, float]]:
    return [
        (datetime.fromisoformat(r["ts"]).timestamp(), r["values"][metric])
        for r in readings
        if r["device"] == device and metric in r["values"]
    ]


# --- pure behaviour -------------------------------------------------------------------------


def test_same_seed_same_readings_and_windows_compose(fleet: list[SimDevice]) -> None:
    end = T0 + timedelta(hours=3)
    a = Simulator(fleet, seed=11).due(T0, end)
    b = Simulator(list(reversed(fleet)), seed=11).due(T0, end)
    assert a == b and len(a) > 1000
    assert Simulator(fleet, seed=12).due(T0, end) != a
    # No state carries between calls: any split of the span gives the same readings.
    sim = Simulator(fleet, seed=11)
    mid = T0 + timedelta(minutes=97, seconds=13)
    assert sim.due(mid, end) == Simulator(fleet, seed=11).due(mid, end)
    assert sim.due(T0, mid) + sim.due(mid, end) == a
    # Second by second (what a live loop asks) gives each reading once.
    five = T0 + timedelta(minutes=5)
    window = [r for r in a if datetime.fromisoformat(r["ts"]) <= five]
    by_second: list[dict] = []
    for s in range(1, 301):
        by_second += sim.readings(T0 + timedelta(seconds=s))
    assert sorted(by_second, key=json.dumps) == sorted(window, key=json.dumps)


def test_values_stay_in_range_all_year(fleet: list[SimDevice]) -> None:
    """Every device every few days through a year (so every season, storm and episode has a
    chance): each value inside its metric's range, each message small."""
    limits = specs()
    by_type: dict[str, list[SimDevice]] = defaultdict(list)
    for d in fleet:
        by_type[d.type].append(d)
    sample = [d for kind in by_type.values() for d in kind[:4]] + [
        d for d in fleet if d.site == "LGW"
    ]
    sim = Simulator(sample, seed=3, interval_s=0.7 * 86400)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    seen: dict[str, set[str]] = defaultdict(set)
    for month in range(12):
        a = start + timedelta(days=31 * month)
        for r in sim.due(a, a + timedelta(days=31)):
            assert len(json.dumps(r, ensure_ascii=False).encode()) <= 200
            kind = next(d.type for d in sample if d.code == r["device"])
            for metric, value in r["values"].items():
                spec = limits[kind][metric]
                assert spec.lo <= value <= spec.hi, (r, spec)
                assert not spec.binary or value in (0, 1)
                seen[kind].add(metric)
    assert seen == {k: set(v) for k, v in limits.items()}


def test_dropouts_happen(fleet: list[SimDevice]) -> None:
    steady = [d for d in fleet if d.type not in ("smoke", "parking", "bus_gps")]
    sim = Simulator(steady)
    span = timedelta(days=2)
    readings = sim.due(T0, T0 + span)
    got = defaultdict(list)
    for r in readings:
        got[r["device"]].append(datetime.fromisoformat(r["ts"]).timestamp())
    expected = sum(span.total_seconds() / INTERVAL_S[d.type] for d in steady)
    actual = sum(len(got[d.code]) for d in steady)
    assert 0.9 * expected < actual < 0.998 * expected
    longest = {
        d.code: max(b - a for a, b in zip(got[d.code], got[d.code][1:], strict=False))
        / INTERVAL_S[d.type]
        for d in steady
        if len(got[d.code]) > 1
    }
    assert sum(1 for gap in longest.values() if gap >= 2) > 5  # a reading skipped
    assert any(gap >= 6 for gap in longest.values())  # and a device silent for a while
    # Without dropouts every scheduled reading is there.
    assert len(Simulator(steady, dropouts=False).due(T0, T0 + span)) > len(readings)


def test_gnss_creeps_monotonically_with_noise(fleet: list[SimDevice]) -> None:
    lgw = [d for d in fleet if d.site == "LGW" and d.type == "gnss"]
    sim = Simulator(lgw, dropouts=False)
    start = datetime(2026, 5, 1, tzinfo=UTC)
    readings = sim.due(start, start + timedelta(days=61))
    for d in lgw:
        xs = series(readings, d.code, "disp_mm")
        daily = [
            sum(v for _t, v in xs[i : i + 144]) / len(xs[i : i + 144])
            for i in range(0, len(xs), 144)
        ]
        assert all(b > a - 1.0 for a, b in itertools.pairwise(daily)), daily
        assert daily[-1] > daily[0]
        assert all(-5000 <= v <= 100 for _t, v in xs)
        # Noisy at ten minutes (not a staircase), smooth over a day.
        steps = [b - a for (_, a), (_, b) in itertools.pairwise(xs)]
        assert any(s < 0 for s in steps)


def test_an_acceleration_moves_the_whole_site(fleet: list[SimDevice]) -> None:
    lgw = [d for d in fleet if d.site == "LGW"]
    start = T0 + timedelta(hours=2)
    plain = Simulator(lgw, dropouts=False).due(T0, T0 + timedelta(hours=10))
    moved = Simulator(lgw, dropouts=False, accelerations=[Acceleration("LGW", start, 4, 30.0)]).due(
        T0, T0 + timedelta(hours=10)
    )
    for code, metric, least in [
        ("LGW-GNSS-1", "disp_mm", 15),
        ("LGW-GNSS-2", "disp_mm", 15),
        ("LGW-CRK-1", "crack_mm", 2),
        ("LGW-INC-1", "tilt_x_deg", 0.1),
    ]:
        before, after = series(plain, code, metric), series(moved, code, metric)
        assert after[0] == before[0]  # nothing changes before the episode starts
        assert after[-1][1] - before[-1][1] > least


def test_a_storm_raises_nearby_gauges_together(
    fleet: list[SimDevice], plan: demo_devices.DevicePlan
) -> None:
    lgw = next(s for s in plan.sites if s.code == "LGW")
    storm = Storm(T0 + timedelta(hours=1), 3, 90.0, lgw.lat, lgw.lon, radius_km=8)
    gauges = [d for d in fleet if d.type in ("rain", "water_level")]
    end = T0 + timedelta(hours=12)
    plain = Simulator(gauges, dropouts=False).due(T0, end)
    wet = Simulator(gauges, dropouts=False, storms=[storm]).due(T0, end)

    def km(d: SimDevice) -> float:
        return math.hypot((d.lat - lgw.lat) * 110.6, (d.lon - lgw.lon) * 95.3)

    near = [d for d in gauges if d.type == "rain" and km(d) < 6]
    far = [d for d in gauges if d.type == "rain" and km(d) > 30]  # beyond the storm's reach
    assert len(near) >= 2 and far
    peaks = []
    for d in near:
        extra = sum(v for _t, v in series(wet, d.code, "rain_mm")) - sum(
            v for _t, v in series(plain, d.code, "rain_mm")
        )
        assert extra > 40  # ≈ 90 mm/h × 3 h × the storm's shape near its centre
        xs = series(wet, d.code, "rain_mm")
        peaks.append(max(xs, key=lambda p: p[1])[0])
    assert max(peaks) - min(peaks) <= 3600  # the gauges see the storm together
    for d in far:
        assert series(wet, d.code, "rain_mm") == series(plain, d.code, "rain_mm")
    # A river gauge downstream of the storm rises some hours later; the lake barely moves.
    river = min((d for d in gauges if d.type == "water_level" and d.site != "HFH"), key=km)
    rise = max(v for _t, v in series(wet, river.code, "level_m")) - max(
        v for _t, v in series(plain, river.code, "level_m")
    )
    assert rise > 0.3


def test_buses_move_along_their_line_in_service_hours(fleet: list[SimDevice]) -> None:
    bus = next(d for d in fleet if d.type == "bus_gps")
    readings = Simulator([bus], dropouts=False).due(T0, T0 + timedelta(days=1))
    xs = [(r["ts"], r["values"]) for r in readings]
    hours = {int(ts[11:13]) for ts, _v in xs}
    assert hours == set(range(6, 23))  # 06:00–23:00 local, silent at night
    points = [(v["lat"], v["lon"]) for _ts, v in xs]
    a, b = (
        points[0],
        max(points, key=lambda p: (p[0] - points[0][0]) ** 2 + (p[1] - points[0][1]) ** 2),
    )
    for lat, lon in points:  # on the segment a–b, give or take GPS noise
        cross = (b[0] - a[0]) * (lon - a[1]) - (b[1] - a[1]) * (lat - a[0])
        assert abs(cross) / math.hypot(b[0] - a[0], b[1] - a[1]) < 0.0003
    speeds = [v["speed_kmh"] for _ts, v in xs]
    assert min(speeds) == 0 and 20 < max(speeds) < 60


# --- against the database -------------------------------------------------------------------


def test_every_reading_passes_validation(session: Session, loaded: list[SimDevice]) -> None:
    readings = Simulator(loaded).due(T0, T0 + timedelta(days=1))
    devices = Directory().lookup(session, {r["device"] for r in readings})
    assert len(devices) > 300
    rows, rejected = check(readings, devices, Policy().limits(T0 + timedelta(days=1)))
    assert rejected == []
    assert len(rows) == sum(len(r["values"]) for r in readings)


@pytest.fixture
def factory(connection: Connection) -> sessionmaker[Session]:
    """Transactions that commit into the test's rolled-back one (as ``transaction`` does)."""
    return sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )


def test_in_process_sink_stores_and_raises_the_slope_alarm(
    session: Session, loaded: list[SimDevice], factory: sessionmaker[Session]
) -> None:
    winter = datetime(2026, 1, 20, 16, 0, tzinfo=UTC)  # little natural movement yet
    rules.load(session, rules.default_rules(), winter)
    session.flush()
    lgw = [d for d in loaded if d.site == "LGW"]
    sim = Simulator(lgw, accelerations=[Acceleration("LGW", winter + timedelta(hours=2), 4, 40.0)])
    clock = [winter]
    sink = InProcessSink(factory, clock=lambda: clock[0], batch=50)
    moment = winter
    while moment < winter + timedelta(hours=9):
        clock[0] = moment + timedelta(minutes=30)
        sink.send(sim.due(moment, clock[0]))
        moment = clock[0]
    totals = sink.stats()
    assert totals.failed == 0 and totals.rejected == 0 and totals.sent > 200
    stored = session.scalar(select(func.count()).select_from(Reading))
    assert stored == totals.stored
    assert session.scalar(select(func.count()).select_from(Latest)) == 10  # 6 devices, 10 series
    rule = session.scalar(select(AlarmRule).where(AlarmRule.code == "gnss-creep-fast"))
    assert rule is not None
    alarms = list(session.scalars(select(Alarm).where(Alarm.rule_id == rule.id)))
    assert {a.source for a in alarms} >= {"device:LGW-GNSS-1", "device:LGW-GNSS-2"}
    assert all(a.case_id is not None for a in alarms)  # the rule opens a case
    assert totals.alarms >= len(alarms)
    # Nothing else tripped: the slope was quiet before, and the gauges saw no storm.
    assert {a.rule_id for a in session.scalars(select(Alarm))} == {rule.id}


# --- transports -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[str]:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).exists():
        pytest.skip("mosquitto not installed")
    port = _free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("mosquitto did not start")
                time.sleep(0.05)
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=5)


@contextmanager
def listening(broker: str, client_id: str, got: list[tuple[str, Any]]) -> Iterator[None]:
    """A subscriber on ``cityops/+/telemetry`` appending (topic, parsed payload) to ``got``."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    ready = threading.Event()
    sub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id)
    sub.on_connect = lambda c, *_: (c.subscribe("cityops/+/telemetry", qos=1), ready.set())
    sub.on_message = lambda _c, _u, m: got.append((m.topic, json.loads(m.payload)))
    sub.connect("127.0.0.1", int(broker.rsplit(":", 1)[1]))
    sub.loop_start()
    try:
        assert ready.wait(5)
        time.sleep(0.2)  # the subscription is in place
        yield
    finally:
        sub.loop_stop()
        sub.disconnect()


def test_mqtt_sink_publishes_one_message_per_device_and_instant(
    broker: str, fleet: list[SimDevice]
) -> None:
    got: list[tuple[str, Any]] = []
    with listening(broker, "sim-test", got):
        readings = Simulator(fleet[:40]).due(T0, T0 + timedelta(minutes=20))
        sink = MqttSink(broker)
        sink.send(readings)
        totals = sink.close()
        assert totals.sent == len(readings) and totals.failed == 0
        deadline = time.monotonic() + 5
        while len(got) < len(readings) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert len(got) == len(readings)
    first = readings[0]
    topic, payload = got[0]
    assert topic == f"cityops/{first['device']}/telemetry"
    assert payload == {"ts": first["ts"], "values": first["values"]}


def test_mqtt_sink_publishes_as_field_gateways(broker: str, fleet: list[SimDevice]) -> None:
    """With gateways, a group's readings go out together — arrays of at most ``per_message``
    on the group's topic, each reading naming its device — and a device without a group
    still publishes its own; every reading is sent once and counted once acknowledged."""
    import dataclasses

    devices = [
        dataclasses.replace(d, group="GW-A" if i < 25 else None) for i, d in enumerate(fleet[:40])
    ]
    got: list[tuple[str, Any]] = []
    readings = Simulator(devices).due(T0, T0 + timedelta(minutes=20))
    with listening(broker, "sim-gw-test", got):
        sink = MqttSink(broker, gateways={d.code: d.group for d in devices}, per_message=7)
        sink.send(readings)
        totals = sink.close()
        assert totals.sent == len(readings) and totals.failed == 0
        deadline = time.monotonic() + 5
        while sum(len(p) if isinstance(p, list) else 1 for _t, p in got) < len(readings):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
    grouped = {d.code for d in devices if d.group}
    received = []
    for topic, payload in got:
        if topic == "cityops/GW-A/telemetry":
            assert isinstance(payload, list) and 1 <= len(payload) <= 7
            assert all(item["device"] in grouped for item in payload)
            received += [(item["device"], item["ts"], item["values"]) for item in payload]
        else:
            device = topic.split("/")[1]
            assert device not in grouped and set(payload) == {"ts", "values"}
            received.append((device, payload["ts"], payload["values"]))
    assert any(len(p) == 7 for t, p in got if t.endswith("GW-A/telemetry"))
    want = [(r["device"], r["ts"], r["values"]) for r in readings]
    assert sorted(received, key=repr) == sorted(want, key=repr)


def test_simulate_command_over_http(tmp_path: Path, small_demo: district.DemoDistrict) -> None:
    """``cityops simulate --http … --register`` against a live server on its own database."""
    import uvicorn

    from cityops.app import create_app
    from tests.cliutil import run_cli
    from tests.conftest import own_demo_database

    settings, engine, key = own_demo_database(tmp_path / "cityops.db", small_demo)
    url = settings.database_url
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, engine=engine), port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "live server did not start"
            time.sleep(0.05)
        env = {"CITYOPS_DATABASE_URL": url}
        args = ["simulate", "--http", f"http://127.0.0.1:{port}", "--key", key]
        result = run_cli(
            *args, "--devices", "30", "--rate", "40", "--duration", "2", "--register", env=env
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "registered 30 devices" in result.stdout
        assert "rate achieved" in result.stdout and "failed" in result.stdout
        found = re.search(r"sent \(acknowledged\)\W+([\d,]+)", result.stdout)
        assert found, result.stdout
        sent = int(found.group(1).replace(",", ""))
        assert 50 <= sent <= 90  # 40 readings/s for 2 s
        with Session(bind=engine) as s:
            assert s.scalar(select(func.count()).select_from(Latest)) > 0
        bad = run_cli(
            *args[:3],
            "--key",
            "cok_wrong",
            "--devices",
            "3",
            "--rate",
            "5",
            "--duration",
            "0.5",
            env=env,
        )
        assert bad.returncode == 1 and "HTTP 401" in bad.stderr
        neither = run_cli("simulate", "--devices", "3", env=env)
        assert neither.returncode == 2
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        engine.dispose()
