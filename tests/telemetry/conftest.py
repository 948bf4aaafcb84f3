"""Devices for telemetry and alarm tests: a GNSS station, a rain gauge and a crack meter at one
site, and a hydrant sensor, placed at grid centres of the small demo district."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cityops import migrate
from cityops.db import make_engine
from cityops.geo.models import Region
from cityops.telemetry import service as tsvc
from cityops.telemetry.directory import DIRECTORY
from cityops.telemetry.models import Device
from tests.conftest import _skip_without_pg
from tests.dbutil import BACKENDS, fresh_database

NOW = datetime(2026, 7, 15, 8, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


@dataclass
class Kit:
    grid: Region
    codes: dict[str, str]


def ms(minutes: float) -> int:
    """A timestamp ``minutes`` after NOW, in epoch milliseconds."""
    return NOW_MS + int(minutes * 60_000)


@pytest.fixture
def kit(session: Session) -> Kit:
    tsvc.load_types(session, tsvc.default_types(), NOW)
    grid = session.scalars(
        select(Region).where(Region.level == "grid").order_by(Region.code)
    ).first()
    assert grid is not None
    codes = {"gnss": "T-GNSS-1", "rain": "T-RAIN-1", "crack": "T-CRACK-1", "hydrant": "T-HYD-1"}
    tsvc.create_group(session, "T-GW", "测试网关")
    for kind, code in codes.items():
        tsvc.create_device(
            session,
            tsvc.DeviceInput(
                code=code,
                type=kind,
                name=f"测试 {kind}",
                lat=grid.center_lat,
                lon=grid.center_lon,
                site="T-SITE" if kind != "hydrant" else None,
                group="T-GW" if kind in ("gnss", "crack") else None,
            ),
            NOW,
        )
    DIRECTORY.invalidate()  # another test's rolled-back devices must not linger in the cache
    return Kit(grid, codes)


def bare_devices(session: Session, devices: dict[str, str]) -> None:
    """Device types and devices (code → type) in a database without the demo district: in a
    county's region, with no grid."""
    tsvc.load_types(session, tsvc.default_types(), NOW)
    for code, kind in devices.items():
        session.add(
            Device(
                code=code,
                type_code=kind,
                name=code,
                lat=31.2,
                lon=108.4,
                region_code="500154",
                created_at=NOW,
                updated_at=NOW,
            )
        )


@pytest.fixture(scope="module", params=BACKENDS)
def own_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """A migrated database of the module's own, for tests of committed data (several
    transactions at once)."""
    _skip_without_pg(str(request.param))
    with fresh_database(str(request.param), tmp_path_factory.mktemp("own")) as url:
        engine = make_engine(url)
        try:
            migrate.upgrade(engine)
            yield engine
        finally:
            engine.dispose()
