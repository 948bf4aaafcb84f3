"""The MQTT ingest worker against the real Mosquitto broker, on SQLite and PostgreSQL: readings
published are stored exactly once (also with two workers, and across a worker killed and
restarted), alarms are raised once, bad input is reported back, and nothing stops the worker.

Each test uses its own topic prefix, share group, client ids and devices, and the module its own
database (the workers commit for real, so the rolled-back test transaction would not do).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, create_engine, func, make_url, select
from sqlalchemy.orm import Session, sessionmaker

from cityops import migrate
from cityops.alarms import rules
from cityops.alarms.models import Alarm
from cityops.auth import audit
from cityops.catalog.models import Category
from cityops.db import make_engine, session_factory, transaction, utcnow
from cityops.demo import district
from cityops.events.models import Case
from cityops.geo.models import Region
from cityops.telemetry import fold as folding
from cityops.telemetry import service as tsvc
from cityops.telemetry.models import Device, Latest, Reading, Rollup1h, Rollup1m
from cityops.telemetry.mqtt import Broker, Config, IngestWorker, check_topic, parse_url
from tests.cliutil import run_cli
from tests.conftest import _skip_without_pg
from tests.dbutil import BACKENDS, fresh_database

BROKER_URL = os.environ.get("CITYOPS_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
BROKER = parse_url(BROKER_URL)
CITYOPS = Path(sys.executable).with_name("cityops")


def _broker_up() -> bool:
    try:
        with socket.create_connection((BROKER.host, BROKER.port), timeout=2):
            return True
    except OSError:
        return False


needs_broker = pytest.mark.skipif(
    not _broker_up(),
    reason=f"no MQTT broker at {BROKER} (start Mosquitto or set CITYOPS_TEST_MQTT_URL)",
)


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    """Poll until ``condition()`` is truthy; its value. Fails the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what or condition}")
        time.sleep(0.05)


# --- the database ---------------------------------------------------------------------------


@dataclass
class Env:
    url: str
    engine: Engine
    factory: sessionmaker[Session]
    grid: str  # a grid's code, where every test device stands
    lat: float
    lon: float


@pytest.fixture(scope="module", params=BACKENDS)
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    backend = str(request.param)
    _skip_without_pg(backend)
    audit.install()
    with fresh_database(backend, tmp_path_factory.mktemp("mqtt")) as url:
        engine = make_engine(url)
        try:
            migrate.upgrade(engine)
            with transaction(sessionmaker(bind=engine)) as s:
                district.load(
                    s,
                    district.generate(
                        district.DemoConfig(villages_per_town=3, grids_per_village=2)
                    ),
                )
                tsvc.load_types(s, tsvc.default_types(), utcnow())
                grid = s.scalars(
                    select(Region).where(Region.level == "grid").order_by(Region.code)
                ).first()
                assert grid is not None
                place = (grid.code, grid.center_lat, grid.center_lon)
            yield Env(url, engine, session_factory(engine, writer=True), *place)
        finally:
            engine.dispose()


@dataclass
class Names:
    """Everything a test publishes under is its own."""

    tag: str
    prefix: str
    group: str

    @property
    def topic(self) -> str:
        return f"{self.prefix}/+/telemetry"

    def telemetry(self, segment: str) -> str:
        return f"{self.prefix}/{segment}/telemetry"

    def device(self, name: str) -> str:
        return f"{self.tag}-{name}"


@pytest.fixture
def names() -> Names:
    tag = uuid.uuid4().hex[:10]
    return Names(tag=tag, prefix=f"cityops-test-{tag}", group=f"g{tag}")


def add_devices(
    env: Env, codes: dict[str, str], *, group: str | None = None, site: str | None = None
) -> None:
    """codes: device code → device type; all at one grid centre, optionally in a group."""
    with transaction(env.factory) as s:
        if group:
            tsvc.create_group(s, group, "测试网关")
        for code, kind in codes.items():
            tsvc.create_device(
                s,
                tsvc.DeviceInput(
                    code=code,
                    type=kind,
                    name=f"测试 {kind}",
                    lat=env.lat,
                    lon=env.lon,
                    group=group,
                    site=site,
                ),
                utcnow(),
            )


def add_rule(env: Env, **rule: Any) -> None:
    with transaction(env.factory) as s:
        rules.upsert(s, {"name": "测试规则", "severity": "major"} | rule, utcnow())


def count_readings(env: Env, codes: list[str]) -> int:
    with env.engine.connect() as conn:
        return int(
            conn.scalar(
                select(func.count())
                .select_from(Reading)
                .join(Device, Device.id == Reading.device_id)
                .where(Device.code.in_(codes))
            )
            or 0
        )


def alarms_of(env: Env, codes: list[str]) -> list[Alarm]:
    with env.factory() as s:
        return list(
            s.scalars(
                select(Alarm)
                .join(Device, Device.id == Alarm.device_id)
                .where(Device.code.in_(codes))
                .order_by(Alarm.id)
            )
        )


# --- the broker -----------------------------------------------------------------------------


class Publisher:
    """A device-side client: QoS 1 publishing, each publish confirmed by the broker."""

    def __init__(self, name: str) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"pub-{name}", protocol=mqtt.MQTTv5
        )
        self.client.max_inflight_messages_set(200)
        self.client.connect(BROKER.host, BROKER.port)
        self.client.loop_start()
        self.received: list[tuple[str, Any]] = []
        self._subscribed = threading.Event()

    def publish(self, topic: str, payload: bytes | str | dict[str, Any] | list[Any]) -> None:
        body = payload if isinstance(payload, bytes | str) else json.dumps(payload)
        self.client.publish(topic, body, qos=1).wait_for_publish(10)

    def publish_many(
        self,
        messages: list[tuple[str, Any]],
        *,
        backlog: Callable[[int], int] | None = None,
        limit: int = 400,
        pace_s: float = 0.0,
    ) -> None:
        """Publish all, confirmed by the broker. ``backlog(published)`` says how many are not
        yet taken by the workers: kept under ``limit`` so the broker's per-client queue
        (Mosquitto's max_queued_messages, 1000) never drops any. ``pace_s``: a pause after
        every 20 messages."""
        infos = []
        for i, (topic, payload) in enumerate(messages):
            if backlog is not None:
                wait_for(lambda i=i: backlog(i) < limit, 30, "the workers to catch up")
            if pace_s and i % 20 == 19:
                time.sleep(pace_s)
            body = payload if isinstance(payload, bytes | str) else json.dumps(payload)
            infos.append(self.client.publish(topic, body, qos=1))
        for info in infos:
            info.wait_for_publish(30)
            assert info.is_published()

    def listen(self, topic: str) -> None:
        def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
            self.received.append((msg.topic, json.loads(msg.payload)))

        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = on_message
        self.client.subscribe(topic, qos=1)
        assert self._subscribed.wait(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def publisher(names: Names) -> Iterator[Publisher]:
    p = Publisher(names.tag)
    yield p
    p.close()


@contextmanager
def worker(
    env: Env,
    names: Names,
    client_id: str,
    *,
    url: str = BROKER_URL,
    factory: sessionmaker[Session] | None = None,
    fold: bool = True,
    on_stored: Callable[[], object] | None = None,
    **options: Any,
) -> Iterator[IngestWorker]:
    """An ingest worker on a thread of this process, subscribed before it is handed over.
    ``fold=False``: as ``cityops ingest`` runs it, leaving the roll-ups to a folder (the test
    folds with ``fold.catch_up`` before it looks), which ``on_stored`` stands for."""
    config = Config(
        url=url,
        topic=names.topic,
        group=names.group,
        client_id=client_id,
        session_expiry_s=60,
        stats_every_s=5,
        **options,
    )
    w = IngestWorker(factory or env.factory, config, fold=fold, on_stored=on_stored)
    thread = threading.Thread(target=w.run, name=client_id, daemon=True)
    thread.start()
    try:
        assert w.subscribed.wait(10), "the worker did not subscribe"
        yield w
    finally:
        w.stop()
        thread.join(15)
        assert not thread.is_alive(), "the worker did not stop"


def now_ms() -> int:
    return int(time.time() * 1000)


# --- tests ----------------------------------------------------------------------------------


@needs_broker
def test_published_reading_is_stored_raises_an_alarm_and_opens_a_case(
    env: Env, names: Names, publisher: Publisher
) -> None:
    code = names.device("gnss")
    add_devices(env, {code: "gnss"})
    add_rule(
        env,
        code=f"{names.tag}-total",
        kind="threshold",
        scope="device",
        scope_value=code,
        metric="disp_mm",
        params={"op": "above", "value": 100, "clear": 95},
        severity="critical",
        open_case=True,
        case_category="DZ01",
        case_urgency="urgent",
    )
    t0 = now_ms() - 60_000
    with worker(env, names, f"{names.tag}-w") as w:
        publisher.publish(names.telemetry(code), {"metric": "disp_mm", "ts": t0, "value": 42.0})
        publisher.publish(names.telemetry(code), {"ts": t0 + 1000, "values": {"disp_mm": 120.5}})
        alarm = wait_for(
            lambda: next((a for a in alarms_of(env, [code]) if a.case_id), None),
            what="an alarm with a case",
        )
        wait_for(lambda: w.stats.stored == 2, what="the worker's counters")
        assert w.stats.alarms >= 1

    assert count_readings(env, [code]) == 2
    assert (alarm.condition, alarm.count, alarm.severity) == ("active", 1, "critical")
    assert alarm.value == 120.5
    with env.factory() as s:
        case = s.get(Case, alarm.case_id)
        assert case is not None
        assert case.source == "sensor_alarm"
        assert case.urgency == "urgent"
        assert s.scalar(select(Category.code).where(Category.id == case.category_id)) == "DZ01"
        assert case.region_code == env.grid
        latest = s.scalars(
            select(Latest).join(Device, Device.id == Latest.device_id).where(Device.code == code)
        ).one()
        assert (latest.ts, latest.value) == (t0 + 1000, 120.5)


@needs_broker
def test_two_workers_share_the_load_and_store_every_reading_once(
    env: Env, names: Names, publisher: Publisher
) -> None:
    codes = [names.device(f"rain{i}") for i in range(8)]
    add_devices(env, dict.fromkeys(codes, "rain"), group=f"{names.tag}-gw")
    add_rule(
        env,
        code=f"{names.tag}-heavy",
        kind="threshold",
        scope="group",
        scope_value=f"{names.tag}-gw",
        metric="rain_mm",
        params={"op": "above", "value": 30, "clear": 10},
        severity="warning",
    )
    per_device = 250  # 2,000 readings, one message each
    t0 = now_ms() - 3_600_000
    messages = []
    for code in codes:
        for i in range(per_device):
            # Dry for the first half, a downpour after it: each gauge crosses the line once,
            # whatever order the two workers store the readings in.
            value = 2.0 if i < per_device // 2 else 40.0 + i % 7
            messages.append(
                (names.telemetry(code), {"metric": "rain_mm", "ts": t0 + i * 1000, "value": value})
            )
    random.Random(7).shuffle(messages)
    told: list[str] = []  # the folder beside each worker hears of each batch it stored
    with (
        worker(env, names, f"{names.tag}-a", fold=False, on_stored=lambda: told.append("a")) as a,
        worker(env, names, f"{names.tag}-b", fold=False, on_stored=lambda: told.append("b")) as b,
    ):
        started = time.monotonic()
        publisher.publish_many(messages, backlog=lambda n: n - a.stats.acked - b.stats.acked)
        wait_for(lambda: a.stats.acked + b.stats.acked >= len(messages), 60, "all acknowledged")
        elapsed = time.monotonic() - started
        stats = (a.stats, b.stats)
    print(f"\n{env.engine.dialect.name}: two workers, {len(messages)} messages in {elapsed:.2f} s")

    assert count_readings(env, codes) == len(messages)
    assert all(s.received > 0 and s.stored > 0 for s in stats), "both workers took part"
    assert sum(s.stored for s in stats) == len(messages)
    assert sum(s.rejected + s.malformed + s.failed for s in stats) == 0
    assert set(told) == {"a", "b"} and len(told) >= 2
    folding.catch_up(env.factory, wait=True)  # what the workers' folder does a moment later
    with env.factory() as s:
        total = s.scalar(
            select(func.sum(Rollup1m.n))
            .join(Device, Device.id == Rollup1m.device_id)
            .where(Device.code.in_(codes))
        )
        assert total == len(messages)
    alarms = alarms_of(env, codes)
    assert sorted(a.source for a in alarms) == sorted(f"device:{c}" for c in codes)
    assert [a.count for a in alarms] == [1] * len(codes)


@needs_broker
def test_the_worker_reports_its_share_of_the_sqlite_writer(
    env: Env, names: Names, publisher: Publisher, caplog: pytest.LogCaptureFixture
) -> None:
    """On SQLite the worker's figures say how long this process held the single write lock
    (and waited for it): the sign an installation has outgrown the embedded database.
    PostgreSQL has no such lock, and the figures say nothing of it."""
    caplog.set_level(logging.INFO, logger="cityops.ingest")
    code = names.device("rain")
    add_devices(env, {code: "rain"})
    t0 = now_ms() - 60_000
    with worker(env, names, f"{names.tag}-w") as w:
        for i in range(5):
            publisher.publish(
                names.telemetry(code), {"metric": "rain_mm", "ts": t0 + i * 1000, "value": 1.0}
            )
        wait_for(lambda: w.stats.acked >= 5, 30, "all acknowledged")
    stopped = [r.getMessage() for r in caplog.records if ": stopped;" in r.getMessage()]
    assert len(stopped) == 1
    share = re.search(
        r"SQLite write lock: held (\d+\.\d) s \((\d+)%\), waited (\d+\.\d) s, (\d+) turns",
        stopped[0],
    )
    if env.engine.dialect.name == "sqlite":
        assert share is not None, stopped[0]
        assert int(share.group(4)) >= 1  # at least the batch it stored
    else:
        assert share is None and "SQLite" not in stopped[0]


@needs_broker
def test_simulated_field_gateways_are_stored_whole(env: Env, names: Names) -> None:
    """``cityops simulate --mqtt … --per-gateway N``: a group's readings arrive as its
    gateway's arrays, a device without a group on its own topic; the worker stores them all."""
    from datetime import UTC, datetime, timedelta

    from cityops.telemetry.simulator import MqttSink, Simulator, devices_from_db

    gateway = f"{names.tag}-gw"
    kinds = ["rain", "gnss", "crack", "water_level", "smoke", "hydrant"]
    grouped = {names.device(f"g{i}"): kinds[i % len(kinds)] for i in range(12)}
    loner = names.device("solo")
    add_devices(env, grouped, group=gateway)
    add_devices(env, {loner: "rain"})
    codes = [*grouped, loner]
    with env.factory() as s:
        fleet = devices_from_db(s, codes)
    assert {d.code: d.group for d in fleet} == dict.fromkeys(grouped, gateway) | {loner: None}
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    readings = Simulator(fleet, seed=5).due(start, start + timedelta(minutes=30))
    expected = sum(len(r["values"]) for r in readings)
    with worker(env, names, f"{names.tag}-w") as w:
        sink = MqttSink(
            BROKER_URL,
            topic=f"{names.prefix}/{{device}}/telemetry",
            gateways={d.code: d.group for d in fleet},
            per_message=5,
        )
        sink.send(readings)
        totals = sink.close()
        wait_for(lambda: count_readings(env, codes) >= expected, 30, "all stored")
        stats = w.stats
    assert (totals.sent, totals.failed) == (len(readings), 0)
    assert count_readings(env, codes) == expected
    assert stats.received < len(readings)  # arrays: fewer messages than readings
    assert stats.rejected + stats.malformed + stats.failed == 0


@needs_broker
@pytest.mark.slow
def test_a_killed_worker_loses_and_repeats_nothing_when_restarted(
    env: Env, names: Names, publisher: Publisher, tmp_path: Path
) -> None:
    if not CITYOPS.exists():
        pytest.skip(f"{CITYOPS} is not installed")
    codes = [names.device(f"gnss{i}") for i in range(3)]
    add_devices(env, dict.fromkeys(codes, "gnss"))
    watched = codes[0]
    add_rule(
        env,
        code=f"{names.tag}-creep",
        kind="threshold",
        scope="device",
        scope_value=watched,
        metric="disp_mm",
        params={"op": "above", "value": 100, "clear": 95},
    )
    n = 200  # per device: 600 messages, below the broker's queue of 1000 for an absent client
    t0 = now_ms() - 3_600_000
    messages = [
        (
            names.telemetry(code),
            {"metric": "disp_mm", "ts": t0 + i * 1000, "value": 50.0 if i < n // 2 else 150.0},
        )
        for i in range(n)
        for code in codes
    ]
    client_id = f"{names.tag}-sub"
    env_vars = {k: v for k, v in os.environ.items() if not k.startswith("CITYOPS_")} | {
        "CITYOPS_DATABASE_URL": env.url,
        "CITYOPS_LOG_LEVEL": "info",
    }
    command = [
        str(CITYOPS),
        "ingest",
        "--mqtt",
        BROKER_URL,
        "--client-id",
        client_id,
        "--topic",
        names.topic,
        "--group",
        names.group,
        "--batch",
        "20",
        "--session-expiry",
        "120",
    ]

    def start(log: Path) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            command, env=env_vars, stdout=log.open("wb"), stderr=subprocess.STDOUT
        )
        wait_for(
            lambda: "subscribed to" in log.read_text() or proc.poll() is not None,
            30,
            "the worker to subscribe",
        )
        assert proc.poll() is None, log.read_text()
        return proc

    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    with env.factory() as s:
        fleet = s.scalar(select(func.count()).select_from(Device))
    first = start(first_log)
    # The device directory is loaded before the first message, not with it.
    wait_for(lambda: "ingest running" in first_log.read_text(), 10, "the start-up line")
    assert f"{fleet} 台设备 / devices" in first_log.read_text()
    try:
        sender = threading.Thread(
            target=publisher.publish_many, args=(messages,), kwargs={"pace_s": 0.02}
        )
        sender.start()
        # Kill it while messages are flowing: some stored, more on their way.
        wait_for(lambda: count_readings(env, codes) >= 60, 30, "the first readings")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        stored_by_first = count_readings(env, codes)
        sender.join(30)
        assert not sender.is_alive()
    finally:
        if first.poll() is None:
            first.kill()
    assert stored_by_first < len(messages), "killed too late to prove anything"

    second = start(second_log)
    try:
        assert "session resumed" in second_log.read_text()
        wait_for(lambda: count_readings(env, codes) >= len(messages), 30, "every reading")
        # Anything still on its way would show up as an extra row now.
        time.sleep(0.3)
        second.send_signal(signal.SIGTERM)
        assert second.wait(15) == 0, second_log.read_text()
    finally:
        if second.poll() is None:
            second.kill()
    out = second_log.read_text()
    print(f"\n{env.engine.dialect.name}: killed after {stored_by_first} readings; {out[-400:]}")
    assert "ingest stopped" in out

    assert count_readings(env, codes) == len(messages)
    with env.factory() as s:
        total = s.scalar(
            select(func.sum(Rollup1h.n))
            .join(Device, Device.id == Rollup1h.device_id)
            .where(Device.code.in_(codes))
        )
        assert total == len(messages)  # no reading counted twice in the roll-ups
    alarms = alarms_of(env, [watched])
    assert [(a.count, a.condition) for a in alarms] == [(1, "active")]


@needs_broker
def test_bad_input_is_reported_back_and_the_good_readings_are_kept(
    env: Env, names: Names, publisher: Publisher
) -> None:
    rain, gnss, other = names.device("rain"), names.device("gnss"), names.device("other")
    gateway = f"{names.tag}-gw"
    add_devices(env, {rain: "rain", gnss: "gnss"}, group=gateway)
    add_devices(env, {other: "rain"})
    publisher.listen(f"{names.prefix}/+/rejected")
    t = now_ms() - 10_000
    with worker(env, names, f"{names.tag}-w") as w:
        publisher.publish(names.telemetry(rain), b"{not json")
        publisher.publish(names.telemetry(rain), b"\xff\xfe\x00")
        publisher.publish(names.telemetry(rain), b"42")
        publisher.publish(names.telemetry(rain), b"[" + b" " * (1024 * 1024) + b"]")
        publisher.publish(
            names.telemetry(rain),
            [
                {"metric": "rain_mm", "ts": t, "value": 1.5},  # 0 kept
                {"metric": "rain_mm", "ts": t + 1, "value": "12"},  # 1 wrong type
                {"device": "NOPE", "metric": "rain_mm", "ts": t, "value": 1.0},  # 2 unknown
                {"device": other, "metric": "rain_mm", "ts": t, "value": 1.0},  # 3 not its own
                {"metric": "rain_mm", "ts": t + 2, "value": 301},  # 4 out of range
                "reading",  # 5 not an object
                {"metric": "rain_mm", "ts": t + 3, "value": 10**400},  # 6 no float holds it
            ],
        )
        # A gateway reports for the devices of its group, and only for them.
        publisher.publish(
            names.telemetry(gateway),
            [
                {"device": rain, "metric": "rain_mm", "ts": t + 3, "value": 2.5},  # 0 kept
                {"device": gnss, "ts": t, "values": {"disp_mm": 3.0, "tilt": 1}},  # 1 half kept
                {"device": other, "metric": "rain_mm", "ts": t, "value": 1.0},  # 2 forbidden
                {"metric": "rain_mm", "ts": t, "value": 1.0},  # 3 the group is no device
            ],
        )
        wait_for(lambda: len(publisher.received) >= 6, 10, "six rejection reports")
        # It keeps running: a good reading afterwards is stored.
        publisher.publish(names.telemetry(other), {"metric": "rain_mm", "ts": t, "value": 0.5})
        wait_for(lambda: count_readings(env, [other]) == 1, 10, "the next good reading")
        stats = w.stats

    by_reason: dict[str, list[dict[str, Any]]] = {}
    for topic, body in publisher.received:
        assert set(body) == {"rejected", "rejected_count"}
        for r in body["rejected"]:
            by_reason.setdefault(r["reason"], []).append(r | {"topic": topic})
    assert sorted(by_reason) == sorted(
        [
            "not_json",
            "not_utf8",
            "not_object_or_array",
            "too_large",
            "wrong_type",
            "unknown_device",
            "forbidden_device",
            "out_of_range",
            "not_finite",
            "malformed",
            "unknown_metric",
        ]
    )
    rain_topic = f"{names.prefix}/{rain}/rejected"
    gw_topic = f"{names.prefix}/{gateway}/rejected"
    for reason in ("not_json", "not_utf8", "not_object_or_array", "too_large"):
        [r] = by_reason[reason]
        assert (r["topic"], r["field"], r["device"], r["index"]) == (
            rain_topic,
            "payload",
            rain,
            None,
        )
        assert r["message"]
    places = {
        (r["topic"], r["index"], r["reason"], r["device"])
        for reason in (
            "wrong_type",
            "unknown_device",
            "forbidden_device",
            "out_of_range",
            "not_finite",
        )
        for r in by_reason[reason]
    }
    assert places == {
        (rain_topic, 1, "wrong_type", rain),
        (rain_topic, 2, "unknown_device", "NOPE"),
        (rain_topic, 3, "forbidden_device", other),
        (rain_topic, 4, "out_of_range", rain),
        (rain_topic, 6, "not_finite", rain),
        (gw_topic, 2, "forbidden_device", other),
        (gw_topic, 3, "unknown_device", gateway),
    }
    [not_object] = by_reason["malformed"]
    assert (not_object["topic"], not_object["index"]) == (rain_topic, 5)
    [tilt] = by_reason["unknown_metric"]
    assert (tilt["topic"], tilt["index"], tilt["field"]) == (gw_topic, 1, "values.tilt")

    assert count_readings(env, [rain]) == 2
    assert count_readings(env, [gnss]) == 1
    assert count_readings(env, [other]) == 1
    assert stats.malformed == 4
    assert stats.rejected == 9
    assert stats.failed == 0


@needs_broker
def test_a_flood_from_one_device_is_stored_whole_with_exact_rollups(
    env: Env, names: Names, publisher: Publisher
) -> None:
    code = names.device("gnss")
    add_devices(env, {code: "gnss"})
    rng = random.Random(11)
    t0 = (now_ms() - 2 * 3_600_000) // 3_600_000 * 3_600_000  # on an hour boundary
    readings = {t0 + i * 1500: round(rng.uniform(-50, 50), 3) for i in range(3000)}
    order = list(readings)
    rng.shuffle(order)  # delivered in any order
    messages = [
        (names.telemetry(code), {"metric": "disp_mm", "ts": ts, "value": readings[ts]})
        for ts in order
    ]
    # …and some of them twice, as a device that did not hear the broker's ack would.
    messages += rng.sample(messages, 200)
    with worker(env, names, f"{names.tag}-w", fold=False) as w:
        started = time.monotonic()
        publisher.publish_many(messages, backlog=lambda n: n - w.stats.acked)
        wait_for(lambda: w.stats.acked >= len(messages), 60, "all acknowledged")
        elapsed = time.monotonic() - started
        stats = w.stats
    print(f"\n{env.engine.dialect.name}: one worker, {len(messages)} messages in {elapsed:.2f} s")
    assert (stats.stored, stats.duplicates) == (3000, 200)
    folding.catch_up(env.factory, wait=True)  # what the worker's folder does a moment later

    assert count_readings(env, [code]) == 3000
    expected: dict[int, list[tuple[int, float]]] = {}
    for ts, value in readings.items():
        expected.setdefault(ts - ts % 60_000, []).append((ts, value))
    with env.factory() as s:
        device_id = s.scalar(select(Device.id).where(Device.code == code))
        minutes = {
            r.bucket: r for r in s.scalars(select(Rollup1m).where(Rollup1m.device_id == device_id))
        }
        hours = list(s.scalars(select(Rollup1h).where(Rollup1h.device_id == device_id)))
        latest = s.scalars(select(Latest).where(Latest.device_id == device_id)).one()
    assert sorted(minutes) == sorted(expected)
    for bucket, points in expected.items():
        r = minutes[bucket]
        values = [v for _, v in points]
        assert (r.n, r.vmin, r.vmax) == (len(points), min(values), max(values))
        assert r.vsum == pytest.approx(sum(values))
        assert (r.last_ts, r.last_value) == max(points)
    assert sum(h.n for h in hours) == 3000
    assert len(hours) == len({ts - ts % 3_600_000 for ts in readings})
    assert (latest.ts, latest.value) == max(readings.items())


class Relay:
    """A TCP relay in front of the broker whose connections the test can cut, as a network
    failure or a broker restart would."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"mqtt://127.0.0.1:{self.server.getsockname()[1]}"
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                inner, _ = self.server.accept()
            except OSError:
                return
            outer = socket.create_connection((BROKER.host, BROKER.port))
            with self.lock:
                self.sockets += [inner, outer]
            for a, b in ((inner, outer), (outer, inner)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            Relay._close(a, b)

    @staticmethod
    def _close(*sockets: socket.socket) -> None:
        for s in sockets:
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def cut(self) -> None:
        with self.lock:
            sockets, self.sockets = self.sockets, []
        self._close(*sockets)

    def close(self) -> None:
        self.server.close()
        self.cut()


@needs_broker
def test_the_worker_reconnects_and_loses_nothing_when_the_connection_drops(
    env: Env, names: Names, publisher: Publisher
) -> None:
    code = names.device("rain")
    add_devices(env, {code: "rain"})
    t0 = now_ms() - 3_600_000
    messages = [
        (names.telemetry(code), {"metric": "rain_mm", "ts": t0 + i * 1000, "value": i % 50})
        for i in range(400)
    ]
    relay = Relay()
    try:
        with worker(env, names, f"{names.tag}-w", url=relay.url) as w:
            publisher.publish_many(messages[:200])
            wait_for(lambda: w.stats.acked >= 40, 10, "the first batches")
            relay.cut()  # mid-stream: some messages in hand, not yet acknowledged
            publisher.publish_many(messages[200:])
            wait_for(lambda: count_readings(env, [code]) >= len(messages), 30, "every reading")
            wait_for(lambda: w.stats.stored >= len(messages), 10, "the worker's counters")
            stats = w.stats
    finally:
        relay.close()
    print(f"\n{env.engine.dialect.name}: connection cut: {stats.line()}")
    assert stats.connects >= 2
    assert stats.last_error and "disconnected" in stats.last_error
    assert stats.stored == len(messages)
    assert count_readings(env, [code]) == len(messages)
    with env.factory() as s:
        total = s.scalar(
            select(func.sum(Rollup1m.n))
            .join(Device, Device.id == Rollup1m.device_id)
            .where(Device.code == code)
        )
    assert total == len(messages)


@needs_broker
def test_a_batch_the_database_refuses_is_kept_unacknowledged_and_stored_when_it_returns(
    env: Env, names: Names, publisher: Publisher, tmp_path: Path
) -> None:
    code = names.device("rain")
    add_devices(env, {code: "rain"})
    if env.engine.dialect.name == "postgresql":
        away = env.engine.url.set(port=1)  # nothing listens there
    else:
        away = make_url(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    down = sessionmaker(bind=create_engine(away))
    t = now_ms() - 1000
    with worker(env, names, f"{names.tag}-w", factory=down, retries=1) as w:
        publisher.publish(names.telemetry(code), {"metric": "rain_mm", "ts": t, "value": 3.0})
        wait_for(lambda: w.stats.failed >= 2, 10, "the batch to fail twice")
        assert (w.stats.acked, w.stats.stored) == (0, 0)
        assert w.stats.retries >= 2
        assert w.stats.last_error and "OperationalError" in w.stats.last_error
        w.factory = env.factory  # the database is back
        wait_for(lambda: w.stats.acked == 1, 10, "the batch to be stored and acknowledged")
        assert w.stats.stored == 1
    assert count_readings(env, [code]) == 1


def test_bad_settings_stop_the_command_with_a_message_naming_them() -> None:
    r = run_cli("ingest", "--mqtt", "http://broker:1883")
    assert r.returncode == 2
    assert "--mqtt: must start with mqtt:// or mqtts://" in r.stderr
    r = run_cli("ingest", env={"CITYOPS_MQTT_URL": "mqtt://"})
    assert r.returncode == 2 and "CITYOPS_MQTT_URL: names no host" in r.stderr
    r = run_cli("ingest", env={"CITYOPS_MQTT_TOPIC": "cityops/#"})
    assert r.returncode == 2 and "CITYOPS_MQTT_TOPIC" in r.stderr
    r = run_cli("ingest", env={"CITYOPS_MQTT_BATCH": "0"})
    assert r.returncode == 2 and "CITYOPS_MQTT_BATCH" in r.stderr


def test_broker_addresses_and_topic_filters() -> None:
    assert parse_url("mqtt://10.0.0.5") == Broker("10.0.0.5", 1883)
    b = parse_url("mqtts://ingest:p%40ss@broker.example:8884")
    assert (b.host, b.port, b.tls, b.username, b.password) == (
        "broker.example",
        8884,
        True,
        "ingest",
        "p@ss",
    )
    assert "p@ss" not in str(b)
    assert check_topic("cityops/+/telemetry") == 1
    assert check_topic("district/500154/+/telemetry") == 2
    for bad in ("cityops/#", "cityops/+/+/telemetry", "cityops/telemetry", "cityops/+", "a/b+/c"):
        with pytest.raises(ValueError):
            check_topic(bad)
