"""A landslide risk zone in the small demo district, for the register, workflow, evacuation and
API tests: the zone straddles the border of 太康村's grids 1 and 2 (so two grid workers share
the evacuation), with households inside and outside it, two shelters, the town commander as
包片领导, the village officer as 群测群防员, and a GNSS station and a rain gauge on the slope."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from shapely.geometry import Point, box, shape
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.geo.models import Region
from cityops.org import service as org
from cityops.org.models import Person, Unit
from cityops.telemetry import service as tsvc
from cityops.telemetry.directory import DIRECTORY
from cityops.warning import service as registry
from cityops.warning.models import Household, RiskPoint, Shelter
from cityops.warning.schemas import HouseholdIn, MonitorIn, RiskPointIn, ShelterIn

NOW = datetime(2026, 7, 14, 13, 30, tzinfo=UTC)  # 21:30 in Kaizhou
YIHE, LINJIANG = "500154024", "500154025"
GRID_1, GRID_2 = "500154024003001", "500154024003002"  # 太康村 grids 1 (demo-grid's) and 2
HALF_LON, HALF_LAT = 0.004, 0.003  # the zone: about 760 m × 670 m
LATTICE = 4  # households on a LATTICE × LATTICE lattice inside the zone


@dataclass
class Zone:
    point: RiskPoint
    geojson: dict[str, Any]  # the zone as drawn (GeoJSON Polygon, lon/lat)
    inside: list[str]  # household codes in the zone
    outside: list[str]  # household codes near it but outside
    persons: dict[str, int]  # household code → persons
    phones: dict[str, str]  # household code → phone ("" when none)
    grid_of: dict[str, str]  # household code → grid code
    small: Shelter  # first choice, room for few
    large: Shelter
    leader: Person  # 义和镇 commander, the point's 包片领导
    monitor: Person  # the village officer, 群测群防员
    workers: dict[str, Person]  # grid → the grid worker standing on duty there
    devices: dict[str, str] = field(default_factory=dict)

    @property
    def total_persons(self) -> int:
        return sum(self.persons[c] for c in self.inside)


def square(lat: float, lon: float, half_lon: float = HALF_LON, half_lat: float = HALF_LAT) -> Any:
    """A GeoJSON square around a point, open ring (the service closes it)."""
    return {
        "type": "Polygon",
        "coordinates": [
            [
                [lon - half_lon, lat - half_lat],
                [lon + half_lon, lat - half_lat],
                [lon + half_lon, lat + half_lat],
                [lon - half_lon, lat + half_lat],
            ]
        ],
    }


def border_point(session: Session) -> tuple[float, float]:
    """(lat, lon) of the middle of the border between grids 1 and 2."""
    one, two = (
        shape(session.scalars(select(Region.geometry).where(Region.code == code)).one())
        for code in (GRID_1, GRID_2)
    )
    mid = one.intersection(two).interpolate(0.5, normalized=True)
    return round(mid.y, 6), round(mid.x, 6)


def person(session: Session, unit_code: str, title: str) -> Person:
    return session.scalars(
        select(Person)
        .join(Unit, Unit.id == Person.unit_id)
        .where(Unit.code == unit_code, Person.title == title)
        .order_by(Person.code)
    ).first() or pytest.fail(f"demo district has no {title} in {unit_code}")


def add_household(
    session: Session, code: str, lat: float, lon: float, persons: int, phone: str = ""
) -> Household:
    return registry.create_household(
        session,
        HouseholdIn(
            code=code,
            head_name=f"户主{code[-2:]}号",
            address=f"义和镇太康村{code[-2:]}号",
            lat=lat,
            lon=lon,
            persons=persons,
            phone=phone,
            vulnerable={"elderly": 1} if persons >= 4 else {},
        ),
        NOW,
    )


@pytest.fixture
def zone(session: Session) -> Zone:
    tsvc.load_types(session, tsvc.default_types(), NOW)
    lat, lon = border_point(session)
    geojson = square(lat, lon)
    area = box(lon - HALF_LON, lat - HALF_LAT, lon + HALF_LON, lat + HALF_LAT)
    grid_one = shape(session.scalars(select(Region.geometry).where(Region.code == GRID_1)).one())
    # The point itself lies in grid 1 (demo-grid's grid, inside every demo scope).
    spot = area.intersection(grid_one).representative_point()
    devices = {"gnss": "W-LGW-GNSS-1", "rain": "W-LGW-RAIN-1"}
    for kind, code in devices.items():
        tsvc.create_device(
            session,
            tsvc.DeviceInput(
                code=code, type=kind, name=f"老沟湾 {kind}", lat=spot.y, lon=spot.x, site="W-LGW"
            ),
            NOW,
        )
    DIRECTORY.invalidate()  # another test's rolled-back devices must not linger in the cache

    small = registry.create_shelter(
        session,
        ShelterIn(code="W-SH-SCHOOL", name="太康村小学", lat=lat + 0.01, lon=lon, capacity=8),
        NOW,
    )
    large = registry.create_shelter(
        session,
        ShelterIn(code="W-SH-HALL", name="义和镇文化站", lat=lat + 0.012, lon=lon, capacity=500),
        NOW,
    )

    inside: list[str] = []
    persons: dict[str, int] = {}
    phones: dict[str, str] = {}
    grid_of: dict[str, str] = {}
    n = 0
    for i in range(LATTICE):
        for j in range(LATTICE):
            n += 1
            code = f"W-HH-{n:02d}"
            h_lat = lat - HALF_LAT + HALF_LAT * 2 * (i + 0.5) / LATTICE
            h_lon = lon - HALF_LON + HALF_LON * 2 * (j + 0.5) / LATTICE
            phone = "" if n % 4 == 0 else f"1390000{n:04d}"
            household = add_household(session, code, h_lat, h_lon, n % 5 + 1, phone)
            inside.append(code)
            persons[code], phones[code], grid_of[code] = n % 5 + 1, phone, household.region_code
    outside = []
    for k, (d_lat, d_lon) in enumerate([(0, 3 * HALF_LON), (-3 * HALF_LAT, 0)], start=1):
        code = f"W-HH-OUT{k}"
        add_household(session, code, lat + d_lat, lon + d_lon, 3, f"1390001{k:04d}")
        outside.append(code)
        persons[code], phones[code] = 3, f"1390001{k:04d}"
    assert {grid_of[c] for c in inside} == {GRID_1, GRID_2}, "the zone must straddle two grids"

    leader = person(session, f"TC-{YIHE}", "镇街指挥长")
    monitor = person(session, f"VS-{GRID_1[:12]}", "村（社区）专干")
    workers = {grid: org.on_duty(session, grid, NOW) for grid in (GRID_1, GRID_2)}
    assert all(workers.values()), "each grid has its standing grid worker"
    point = registry.create_point(
        session,
        RiskPointIn(
            code="W-LGW",
            name="老沟湾滑坡",
            hazard="landslide",
            lat=round(spot.y, 6),
            lon=round(spot.x, 6),
            zone=geojson,
            town_leader=leader.code,
            monitor=monitor.code,
            route="沿村道向北撤至太康村小学",
            shelters=[small.code, large.code],
            monitors=[MonitorIn(device=c) for c in devices.values()],
        ),
        NOW,
    )
    assert point.region_code == GRID_1
    return Zone(
        point=point,
        geojson=geojson,
        inside=inside,
        outside=outside,
        persons=persons,
        phones=phones,
        grid_of=grid_of,
        small=small,
        large=large,
        leader=leader,
        monitor=monitor,
        workers={g: w for g, w in workers.items() if w is not None},
        devices=devices,
    )


def inside_point(z: Zone) -> tuple[float, float]:
    """(lat, lon) of a spot inside the zone where no household stands."""
    centre = shape(z.geojson).centroid
    return centre.y + 0.0001, centre.x + 0.0001


def outside_point(z: Zone) -> tuple[float, float]:
    _minx, miny, maxx, maxy = shape(z.geojson).bounds
    spot = Point(maxx + 0.002, (miny + maxy) / 2)
    return spot.y, spot.x
