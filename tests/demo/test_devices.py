"""The demo district's devices: a seeded plan, loaded idempotently, the 老沟湾 slope in 太康村,
and the demo's in-process feed that starts, backfills and stops cleanly."""

from __future__ import annotations

import math
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cityops import migrate
from cityops.alarms import rules
from cityops.alarms.models import Alarm, AlarmEvent, AlarmRule
from cityops.auth import audit
from cityops.db import make_engine, session_factory, transaction
from cityops.demo import devices, district
from cityops.demo.geometry import BBOX
from cityops.telemetry import fold
from cityops.telemetry.directory import DIRECTORY
from cityops.telemetry.models import Device, DeviceGroup, Latest, Reading
from cityops.telemetry.simulator import Reading as SimReading
from tests.conftest import SMALL
from tests.dbutil import fresh_database
from tests.telemetry.conftest import bare_devices

NOW = datetime(2026, 7, 15, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def places(small_demo: district.DemoDistrict) -> list[devices.Place]:
    return devices.places_from_specs(small_demo.regions)


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    dlat = (a[0] - b[0]) * 110_570
    dlon = (a[1] - b[1]) * 111_320 * math.cos(math.radians(a[0]))
    return math.hypot(dlat, dlon)


def test_the_plan_is_seeded(places: list[devices.Place]) -> None:
    one, two = devices.plan(places), devices.plan(places)
    assert one.devices == two.devices and one.groups == two.groups
    codes = [d.code for d in one.devices]
    assert len(codes) == len(set(codes))
    other = devices.plan(places, seed=7)
    assert [d.code for d in other.devices if d.site == "LGW"] == [
        d.code for d in one.devices if d.site == "LGW"
    ]
    assert {(d.lat, d.lon) for d in other.devices} != {(d.lat, d.lon) for d in one.devices}
    counts = one.counts()
    assert counts["rain"] >= 40 and counts["smoke"] > 100 and counts["gnss"] >= 13
    assert set(counts) == {
        "bus_gps",
        "crack",
        "dust",
        "gnss",
        "hydrant",
        "inclinometer",
        "noise",
        "parking",
        "rain",
        "rfid",
        "smoke",
        "water_level",
    }
    for d in one.devices:
        assert BBOX[0] < d.lon < BBOX[2] and BBOX[1] < d.lat < BBOX[3]
        assert d.name and d.model and d.owner and len(d.name) <= 100


def test_load_is_idempotent(session: Session) -> None:
    created = devices.load(session, NOW)
    DIRECTORY.invalidate()
    assert 300 <= created <= 600
    assert session.scalar(select(func.count()).select_from(Device)) == created
    assert devices.load(session, NOW) == 0
    assert session.scalar(select(func.count()).select_from(Device)) == created
    groups = set(session.scalars(select(DeviceGroup.code)))
    assert {"GW-LGW", "GW-RAIN", "GW-FIRE", "GW-BUS"} <= groups
    # Every device knows who looks after it.
    assert session.scalar(select(func.count()).where(Device.owner_unit_id.is_(None))) == 0


def test_lgw_slope_is_in_taikang(session: Session) -> None:
    devices.load(session, NOW)
    DIRECTORY.invalidate()
    lgw = list(session.scalars(select(Device).where(Device.site == devices.LGW)))
    assert Counter(d.type_code for d in lgw) == {
        "gnss": 3,
        "crack": 1,
        "inclinometer": 1,
        "rain": 1,
    }
    assert all(d.region_code.startswith(devices.LGW_VILLAGE) for d in lgw)
    assert {d.code for d in lgw} >= {"LGW-GNSS-1", "LGW-GNSS-2", "LGW-GNSS-3", "LGW-CRK-1"}
    group = session.scalar(select(DeviceGroup).where(DeviceGroup.code == "GW-LGW"))
    assert group is not None and all(d.group_id == group.id for d in lgw)
    names = {d.code: d.name for d in lgw}
    assert names["LGW-GNSS-1"] == "老沟湾 GNSS-1"
    spots = [(d.lat, d.lon) for d in lgw]
    assert max(metres(a, b) for a in spots for b in spots) < 300


def test_default_district_has_a_few_hundred_devices() -> None:
    plan = devices.plan(devices.places_from_specs(district.generate().regions))
    assert 300 <= len(plan.devices) <= 600
    counts = plan.counts()
    assert counts["rain"] >= 40  # one a town, plus the slopes'
    assert counts["parking"] == 80 and counts["bus_gps"] == 24
    lgw = [d for d in plan.devices if d.site == devices.LGW]
    assert len(lgw) == 6
    sites = {s.code: s for s in plan.sites}
    assert sites["LGW"].region_code.startswith(devices.LGW_VILLAGE)
    assert len([s for s in plan.sites if s.code.startswith("RP-")]) == 10


def test_demo_feed_backfills_runs_and_stops(backend: str, tmp_path: Path) -> None:
    """What ``cityops demo`` does: devices and rules loaded, a backfill, then a thread that
    keeps ingesting until its stop event is set."""
    audit.install()
    with fresh_database(backend, tmp_path) as url:
        engine = make_engine(url)
        try:
            migrate.upgrade(engine)
            with transaction(sessionmaker(bind=engine)) as s:
                district.load(s, district.generate(SMALL))
            stop = threading.Event()
            feed = devices.start(engine, backfill_h=1.0, interval_s=0.2, stop=stop)
            assert feed.devices >= 300 and feed.backfilled > 500
            stop.wait(0.8)
            with Session(bind=engine) as s:
                before = s.scalar(select(func.count()).select_from(Reading))
                assert before and before > 500
                assert s.scalar(select(func.count()).select_from(AlarmRule)) >= 10
            stop.set()
            feed.thread.join(timeout=5)
            assert not feed.thread.is_alive()
            # A second start finds everything in place and backfills only the gap.
            again = devices.start(engine, backfill_h=1.0, interval_s=60, stop=threading.Event())
            again.stop.set()
            again.thread.join(timeout=5)
            assert again.devices == feed.devices and again.backfilled < feed.backfilled / 10
        finally:
            DIRECTORY.invalidate()
            engine.dispose()


class Script:
    """A source of readings: a hydrant reporting every five minutes, its pressure gone at
    ``low`` and back at ``back``."""

    def __init__(self, low: datetime, back: datetime) -> None:
        self.low, self.back = low, back

    def due(self, start: datetime, end: datetime) -> list[SimReading]:
        out = []
        t = start.replace(second=7, microsecond=0)
        while t <= end:
            if t > start and t.minute % 5 == 0:
                p = 0.05 if self.low <= t < self.back else 0.3
                out.append({"device": "BF-HYD", "ts": t.isoformat(), "values": {"pressure_mpa": p}})
            t += timedelta(minutes=1)
        return out


def test_a_backfill_happens_at_the_time_of_its_readings(backend: str, tmp_path: Path) -> None:
    """The demo's backfill is received a minute at a time, as if live: the alarm a reading
    raises, its clearing, its history and the case it opens carry that reading's time (within
    the minute), not the moment the demo started; the roll-ups are folded by the end."""
    audit.install()
    with fresh_database(backend, tmp_path) as url:
        engine = make_engine(url)
        try:
            migrate.upgrade(engine)
            factory = session_factory(engine, writer=True)
            now = datetime.now(UTC).replace(microsecond=0)
            with transaction(factory) as s:
                bare_devices(s, {"BF-HYD": "hydrant"})
                rule = {
                    "code": "bf-low",
                    "name": "压力过低",
                    "kind": "threshold",
                    "scope": "device",
                    "scope_value": "BF-HYD",
                    "metric": "pressure_mpa",
                    "params": {"op": "below", "value": 0.1, "clear": 0.14},
                    "severity": "critical",
                }
                rules.load(s, [rule], now)
            since = now - timedelta(hours=3)
            low = since.replace(minute=0, second=0) + timedelta(hours=1, minutes=10)
            back = low + timedelta(minutes=35)
            sent = devices.replay(factory, Script(low, back), since, now)
            assert sent.sent == sent.stored > 30 and sent.alarms == 2
            with Session(engine) as s:
                alarm = s.scalars(select(Alarm)).one()
                minute = timedelta(minutes=1)
                raised_at = low + timedelta(seconds=7)
                cleared_at = back + timedelta(seconds=7)
                assert raised_at <= alarm.first_seen < raised_at + minute
                assert alarm.cleared_at is not None
                assert cleared_at <= alarm.cleared_at < cleared_at + minute
                history = {e.action: e.at for e in s.scalars(select(AlarmEvent))}
                assert raised_at <= history["raised"] < raised_at + minute
                assert cleared_at <= history["cleared"] < cleared_at + minute
                assert fold.pending(s) == 0
                latest = s.scalars(select(Latest)).one()
                assert latest.value == 0.3 and now - minute * 5 <= latest.received_at <= now
        finally:
            DIRECTORY.invalidate()
            engine.dispose()
