"""The demo district's devices: a seeded plan, loaded idempotently, the 老沟湾 slope in 太康村,
and the demo's in-process feed that starts, backfills and stops cleanly."""

from __future__ import annotations

import math
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cityops import migrate
from cityops.alarms.models import AlarmRule
from cityops.auth import audit
from cityops.db import make_engine, transaction
from cityops.demo import devices, district
from cityops.demo.geometry import BBOX
from cityops.telemetry.directory import DIRECTORY
from cityops.telemetry.models import Device, DeviceGroup, Reading
from tests.conftest import SMALL
from tests.dbutil import fresh_database

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
