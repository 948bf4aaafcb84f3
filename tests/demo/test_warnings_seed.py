"""The demo landslide register: seeded from the device plan, the same every run, with zones that
link the households inside them (and none of those just outside), grades that follow persons,
and 老沟湾 as the July story needs it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from shapely.geometry import Point, shape
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.orm import Session

from cityops.demo import devices, warnings
from cityops.org.models import Person
from cityops.telemetry.directory import DIRECTORY
from cityops.warning import service as registry
from cityops.warning.models import (
    Household,
    RiskPoint,
    RiskPointMonitor,
    Shelter,
    ZoneHousehold,
)
from cityops.warning.schemas import HouseholdIn

NOW = datetime(2026, 7, 10, 8, 0, tzinfo=UTC)


@dataclass
class Seeded:
    counts: dict[str, int]
    again: dict[str, int]  # the same seed once more, from scratch
    first: dict[str, Any]  # snapshots of both
    second: dict[str, Any]


@pytest.fixture(scope="module")
def connection(engine: Engine) -> Iterator[Connection]:
    """One transaction for the module, rolled back at its end: the devices and the register
    are loaded once (the seed itself twice, to compare)."""
    with engine.connect() as conn:
        outer = conn.begin()
        try:
            yield conn
        finally:
            outer.rollback()
            DIRECTORY.invalidate()


@pytest.fixture(scope="module")
def seeded(connection: Connection) -> Seeded:
    with Session(bind=connection, join_transaction_mode="create_savepoint") as s:
        devices.load(s, NOW)
        DIRECTORY.invalidate()
        trial = s.begin_nested()
        counts = warnings.seed(s, NOW)
        first = snapshot(s)
        trial.rollback()
        assert s.scalar(select(func.count()).select_from(RiskPoint)) == 0
        again = warnings.seed(s, NOW)
        second = snapshot(s)
        s.commit()  # releases the session's savepoint: the module's tests share the result
    return Seeded(counts, again, first, second)


@pytest.fixture
def session(connection: Connection, seeded: Seeded) -> Iterator[Session]:
    """Each test's changes are rolled back to the seeded state."""
    with Session(bind=connection, join_transaction_mode="create_savepoint") as s:
        yield s


def snapshot(session: Session) -> dict[str, Any]:
    """Everything the seed decides, without database ids."""
    people = {pid: code for pid, code in session.execute(select(Person.id, Person.code))}
    return {
        "points": [
            (
                p.code,
                p.name,
                p.hazard,
                p.region_code,
                p.zone,
                p.households,
                p.persons,
                p.grade,
                p.route,
                people.get(p.town_leader_id or 0),
                people.get(p.monitor_id or 0),
            )
            for p in session.scalars(select(RiskPoint).order_by(RiskPoint.code))
        ],
        "households": session.execute(
            select(
                Household.code,
                Household.head_name,
                Household.address,
                Household.lat,
                Household.lon,
                Household.persons,
                Household.phone,
            ).order_by(Household.code)
        ).all(),
        "shelters": session.execute(
            select(Shelter.code, Shelter.name, Shelter.lat, Shelter.lon, Shelter.capacity).order_by(
                Shelter.code
            )
        ).all(),
        "monitors": session.execute(
            select(RiskPointMonitor.label, RiskPointMonitor.metric, RiskPointMonitor.v_uniform)
            .join(RiskPoint, RiskPoint.id == RiskPointMonitor.risk_point_id)
            .order_by(RiskPoint.code, RiskPointMonitor.label)
        ).all(),
    }


def test_the_seed_is_the_same_every_time(seeded: Seeded) -> None:
    assert seeded.again == seeded.counts
    assert seeded.second == seeded.first
    assert seeded.counts["risk_points"] == 11 and seeded.counts["households"] > 11 * 8
    assert seeded.counts["households_in_zones"] < seeded.counts["households"]


def test_seeding_twice_changes_nothing(session: Session, seeded: Seeded) -> None:
    before = snapshot(session)
    assert set(warnings.seed(session, NOW).values()) == {0}
    assert snapshot(session) == before


def test_every_landslide_site_is_a_risk_point(session: Session, seeded: Seeded) -> None:
    plan = devices.plan(devices.places_from_db(session))
    sites = {s.code: s for s in plan.sites if s.kind == "landslide"}
    points = {p.code: p for p in session.scalars(select(RiskPoint))}
    assert set(points) == set(sites) and seeded.counts["risk_points"] == len(sites)
    for code, point in points.items():
        assert point.name == sites[code].name
        assert (point.lat, point.lon) == (sites[code].lat, sites[code].lon)
        zone = shape(point.zone)
        assert zone.is_valid and zone.covers(Point(point.lon, point.lat))
        width = (point.max_lon - point.min_lon) * 95_000  # metres at 31° N
        height = (point.max_lat - point.min_lat) * 110_570
        assert 150 < max(width, height) < 600, code  # a slope, not a village
        assert point.route.startswith("沿村道向") and "km" in point.route
        assert point.town_leader_id and point.monitor_id
        monitors = registry.monitors_of(session, point.id)
        assert {m.role for m, _d in monitors} >= {"displacement"}
        for m, device in monitors:
            assert device.site == code
            if device.type_code == "gnss":
                assert m.v_uniform is not None and 0.2 <= m.v_uniform <= 0.5
        shelters = registry.shelters_of(session, point.id)
        assert 1 <= len(shelters) <= 2
        for s in shelters:
            assert 100 <= s.capacity <= 600
            assert not zone.covers(Point(s.lon, s.lat)), (code, s.name)


def test_households_are_linked_by_point_in_polygon(session: Session, seeded: Seeded) -> None:
    households = list(session.scalars(select(Household)))
    linked: dict[int, set[int]] = {}
    for point_id, household_id in session.execute(
        select(ZoneHousehold.risk_point_id, ZoneHousehold.household_id)
    ):
        linked.setdefault(point_id, set()).add(household_id)
    for point in session.scalars(select(RiskPoint)):
        zone = shape(point.zone)
        inside = {h.id for h in households if zone.covers(Point(h.lon, h.lat))}
        assert linked.get(point.id, set()) == inside, point.code
        assert 8 <= len(inside) <= 60
        # The houses built just beyond the edge prove the edge is where the polygon says.
        near = [
            h for h in households if h.code.startswith(f"HH-{point.code}-") and h.id not in inside
        ]
        assert near, point.code
        assert all(zone.distance(Point(h.lon, h.lat)) < 0.001 for h in near)  # < ~100 m
    assert all(1 <= h.persons <= 6 for h in households)
    assert any(h.vulnerable.get("elderly") for h in households)
    assert any(h.vulnerable.get("child") for h in households)
    assert all(sum(h.vulnerable.values()) <= h.persons + 1 for h in households)
    assert all(h.phone == "" or (h.phone[0] == "1" and len(h.phone) == 11) for h in households)


def expected_grade(persons: int) -> str:
    if persons >= 1000:
        return "I"
    if persons >= 500:
        return "II"
    if persons >= 100:
        return "III"
    return "IV"


def test_grades_follow_the_persons_in_the_zone(session: Session, seeded: Seeded) -> None:
    for point in session.scalars(select(RiskPoint)):
        persons = session.scalar(
            select(func.coalesce(func.sum(Household.persons), 0))
            .join(ZoneHousehold, ZoneHousehold.household_id == Household.id)
            .where(ZoneHousehold.risk_point_id == point.id)
        )
        assert point.persons == persons
        assert point.grade == expected_grade(point.persons)
    # Twenty more people moving into the LGW zone make it a grade III risk point.
    lgw = registry.get_point(session, "LGW")
    assert (lgw.persons, lgw.grade) == (80, "IV")
    registry.create_household(
        session,
        HouseholdIn(
            code="HH-NEW-1",
            head_name="新住户",
            address="义和镇太康村6组 99 号",
            lat=lgw.lat,
            lon=lgw.lon,
            persons=20,
        ),
        NOW,
    )
    session.flush()
    assert (lgw.persons, lgw.grade) == (100, "III")
    assert [expected_grade(n) for n in (99, 100, 499, 500, 999, 1000)] == [
        "IV",
        "III",
        "III",
        "II",
        "II",
        "I",
    ]


def test_laogouwan_is_the_place_of_the_story(session: Session, seeded: Seeded) -> None:
    lgw = registry.get_point(session, "LGW")
    assert lgw.name == "老沟湾滑坡" and lgw.hazard == "landslide"
    assert lgw.region_code.startswith(devices.LGW_VILLAGE)
    assert (lgw.households, lgw.persons) == (27, 80)
    shelters = registry.shelters_of(session, lgw.id)
    assert [(s.name, s.capacity) for s in shelters] == [
        ("太康村村委会", 200),
        ("义和镇中心小学", 500),
    ]
    assert "太康村村委会" in lgw.route and "义和镇中心小学" in lgw.route
    assert lgw.route_line and len(lgw.route_line["coordinates"]) == 3
    labels = sorted(m.label for m, _d in registry.monitors_of(session, lgw.id))
    assert labels == ["CRK-1", "GNSS-1", "GNSS-2", "GNSS-3", "RG-1"]
    addresses = [h.address for h in registry.households_of(session, lgw.id)]
    assert all(a.startswith("义和镇太康村6组 ") and a.endswith(" 号") for a in addresses)
    monitor = session.get(Person, lgw.monitor_id)
    leader = session.get(Person, lgw.town_leader_id)
    assert monitor is not None and monitor.title == "群测群防员" and monitor.mobile
    assert leader is not None and leader.title == "镇街指挥长"
