"""A hand-counted small world in the small demo district, around "now" (the API reads the real
clock): cases in 义和镇 and 汉丰街道 in every open state, closed and outside the 30-day period,
their timeline, alarms, devices, risk points, warnings with an evacuation, shelters and a
covering duty shift. The expected figures are worked out by hand in the tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.alarms.models import Alarm, AlarmRule
from cityops.catalog.models import Category
from cityops.cockpit import rollup
from cityops.db import utcnow
from cityops.events.models import Assignment, Case, CaseEvent
from cityops.geo.models import Region
from cityops.org import service as org
from cityops.org.models import Person, Unit
from cityops.telemetry import service as tsvc
from cityops.telemetry.directory import DIRECTORY
from cityops.telemetry.models import Device, Latest
from cityops.warning.models import (
    Evacuation,
    EvacuationEntry,
    Household,
    RiskPoint,
    Shelter,
    Warning,
)

ZONE = ZoneInfo("Asia/Shanghai")
DISTRICT, YIHE, OTHER_TOWN = "500154", "500154024", "500154001"
TAIKANG = "500154024003"
G1, G2 = "500154024003001", "500154024003002"  # 太康村 grids 1 (demo-grid's) and 2
G3 = "500154024001001"  # 义和镇, another village
O1 = "500154001001001"  # another town


@dataclass
class World:
    now: datetime
    today: datetime  # a moment earlier today (Asia/Shanghai)
    yesterday: datetime
    cat_a: Category
    cat_b: Category
    cases: dict[str, Case] = field(default_factory=dict)
    centre: dict[str, tuple[float, float]] = field(default_factory=dict)  # code → (lon, lat)
    cover: Person | None = None  # on a covering shift in G1 now


@pytest.fixture
def world(session: Session) -> World:
    now = utcnow()
    midnight = datetime.combine(now.astimezone(ZONE).date(), time(0), tzinfo=ZONE).astimezone(UTC)
    w = World(
        now=now,
        today=midnight + (now - midnight) / 2,
        yesterday=midnight - timedelta(hours=2),
        cat_a=session.scalars(select(Category).where(Category.code == "GY02")).one(),
        cat_b=session.scalars(
            select(Category)
            .where(Category.parent_id.is_not(None), Category.code != "GY02")
            .order_by(Category.code)
            .limit(1)
        ).one(),
    )
    ten_days = midnight - timedelta(days=10) + timedelta(hours=3)
    forty_days = midnight - timedelta(days=40)
    for r in session.scalars(select(Region).where(Region.code.in_([G1, G2, G3, O1, YIHE]))):
        w.centre[r.code] = (r.center_lon, r.center_lat)

    def case(
        key: str, region: str, state: str, created: datetime, source: str, **kw: object
    ) -> Case:
        lon, lat = w.centre[region] if region != YIHE else (None, None)
        c = Case(
            code=f"CK{len(w.cases) + 1:05d}",
            source=source,
            description=f"驾驶舱测试 {key}",
            region_code=region,
            lon=lon,
            lat=lat,
            state=state,
            level="town",
            created_at=created,
            updated_at=created,
            **kw,
        )
        session.add(c)
        w.cases[key] = c
        return c

    a, b = w.cat_a.id, w.cat_b.id
    case("c1", G1, "reported", w.today, "hotline", category_id=a)
    case(
        "c2",
        G1,
        "dispatched",
        w.today,
        "citizen",
        category_id=a,
        deadline_at=now - timedelta(hours=1),
    )
    case(
        "c3",
        G2,
        "handling",
        w.yesterday,
        "grid_worker",
        category_id=b,
        deadline_at=now + timedelta(hours=5),
    )
    case("c4", G3, "handled", ten_days, "grid_worker", category_id=b, overdue=True)
    case(
        "c5", G3, "handled", ten_days, "citizen", category_id=a, deadline_at=now - timedelta(days=1)
    )
    case("c6", O1, "registered", w.today, "hotline", category_id=a, overdue=True)
    case("c7", G1, "closed", ten_days, "hotline", category_id=b, closed_at=w.yesterday)
    case("c8", G2, "closed", forty_days, "citizen", category_id=a, closed_at=forty_days)
    case("c9", YIHE, "reported", w.today, "hotline")
    case("c10", O1, "merged", w.yesterday, "citizen", category_id=a)
    case("c11", O1, "closed", ten_days, "department", category_id=b, closed_at=w.today)
    session.flush()

    def event(key: str, action: str, at: datetime, positive: bool | None = None) -> None:
        session.add(
            CaseEvent(
                case_id=w.cases[key].id,
                at=at,
                action=action,
                actor_kind="person",
                positive=positive,
            )
        )

    event("c7", "dispatch", ten_days)
    event("c7", "verify_ok", w.yesterday, positive=True)
    event("c4", "dispatch", ten_days)
    event("c5", "self_handle", ten_days)
    event("c2", "dispatch", w.today)
    event("c3", "dispatch", w.yesterday)
    event("c8", "dispatch", forty_days)
    event("c8", "verify_ok", forty_days + timedelta(hours=1), positive=True)
    event("c11", "dispatch", ten_days)
    event("c11", "verify_ok", w.today, positive=False)
    # demo-handler's unit (DEPT-08) works on c2 only.
    dept = session.scalars(select(Unit).where(Unit.code == "DEPT-08")).one()
    session.add(Assignment(case_id=w.cases["c2"].id, unit_id=dept.id, role="lead"))

    _alarms(session, w)
    _devices(session, w)
    _warnings(session, w)
    # A covering shift in G1 wins over the standing grid worker there.
    grid = session.scalars(select(Region).where(Region.code == G1)).one()
    w.cover = session.scalars(
        select(Person)
        .join(Unit, Unit.id == Person.unit_id)
        .where(Unit.code == f"VS-{TAIKANG}", Person.title == "村（社区）专干")
    ).first()
    assert w.cover is not None
    org.add_shift(
        session,
        grid=grid,
        person=w.cover,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=1),
    )
    session.flush()
    # The cases above were written directly, not through intake and the lifecycle: recount.
    rollup.rebuild(session)
    return w


def _alarms(session: Session, w: World) -> None:
    rule = AlarmRule(
        code="ck-rule",
        name="驾驶舱测试",
        kind="threshold",
        scope="device_type",
        scope_value="rain",
        severity="major",
    )
    session.add(rule)
    session.flush()

    def alarm(source: str, region: str, severity: str, **kw: object) -> None:
        lon, lat = w.centre[region]
        session.add(
            Alarm(
                rule_id=rule.id,
                source=source,
                severity=severity,
                region_code=region,
                lat=lat,
                lon=lon,
                first_seen=w.now,
                last_seen=w.now,
                message=f"测试 {source}",
                **kw,
            )
        )

    alarm("a1", G1, "critical")
    alarm("a2", G1, "major", acked=True)
    alarm("a3", G3, "minor", shelved_until=w.now + timedelta(hours=1))
    alarm("a4", O1, "warning")
    alarm("a5", G1, "critical", closed_at=w.now)


def _devices(session: Session, w: World) -> None:
    tsvc.load_types(session, tsvc.default_types(), w.now)  # rain: offline after 3600 s

    def device(code: str, region: str, seen: datetime | None, active: bool = True) -> None:
        lon, lat = w.centre[region]
        d = Device(
            code=code,
            type_code="rain",
            name=f"雨量计 {code}",
            lat=lat,
            lon=lon,
            region_code=region,
            active=active,
        )
        session.add(d)
        session.flush()
        if seen is not None:
            session.add(Latest(device_id=d.id, metric="rain_mm", ts=0, value=0.0, received_at=seen))

    device("CK-D1", G1, w.now - timedelta(minutes=1))
    device("CK-D2", G2, w.now - timedelta(days=10))
    device("CK-D3", G3, None)
    device("CK-D4", G1, w.now - timedelta(minutes=1), active=False)
    device("CK-D5", O1, w.now - timedelta(minutes=5))
    DIRECTORY.invalidate()


def _warnings(session: Session, w: World) -> None:
    def square(region: str) -> dict[str, object]:
        lon, lat = w.centre[region]
        ring = [[lon - 0.001, lat - 0.001], [lon + 0.001, lat - 0.001], [lon, lat + 0.001]]
        return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}

    def point(code: str, region: str, level: str, active: bool = True) -> RiskPoint:
        lon, lat = w.centre[region]
        p = RiskPoint(
            code=code,
            name=f"测试滑坡{code[-1]}",
            hazard="landslide",
            region_code=region,
            lat=lat,
            lon=lon,
            zone=square(region),
            min_lon=lon - 0.001,
            min_lat=lat - 0.001,
            max_lon=lon + 0.001,
            max_lat=lat + 0.001,
            households=2,
            persons=9,
            level=level,
            active=active,
        )
        session.add(p)
        session.flush()
        return p

    rp1 = point("CK-RP1", G1, "red")
    rp2 = point("CK-RP2", G2, "orange")
    rp3 = point("CK-RP3", O1, "yellow")
    point("CK-RP4", G3, "none")
    point("CK-RP5", G1, "red", active=False)

    def shelter(code: str, region: str, capacity: int, active: bool = True) -> Shelter:
        lon, lat = w.centre[region]
        s = Shelter(
            code=code,
            name=f"安置点{code[-1]}",
            region_code=region,
            lat=lat,
            lon=lon,
            capacity=capacity,
            active=active,
        )
        session.add(s)
        session.flush()
        return s

    s1 = shelter("CK-SH1", G2, 50)
    shelter("CK-SH2", O1, 100)
    shelter("CK-SH3", G1, 30, active=False)

    def warning(code: str, p: RiskPoint, level: str, state: str) -> Warning:
        wn = Warning(
            code=code,
            risk_point_id=p.id,
            region_code=p.region_code,
            level=level,
            state=state,
            source="person",
            headline=f"{p.name}{level}预警",
            proposed_by="测试",
            proposed_at=w.today,
            issued_at=w.today if state == "issued" else None,
        )
        session.add(wn)
        session.flush()
        return wn

    def evacuate(wn: Warning, p: RiskPoint, entries: list[tuple[str, int, str]]) -> None:
        evac = Evacuation(
            warning_id=wn.id, risk_point_id=p.id, region_code=p.region_code, opened_at=w.today
        )
        session.add(evac)
        session.flush()
        for i, (grid, persons, status) in enumerate(entries):
            lon, lat = w.centre[grid]
            h = Household(
                code=f"{wn.code}-H{i}",
                head_name="户主",
                address="测试",
                region_code=grid,
                lat=lat,
                lon=lon,
                persons=persons,
            )
            session.add(h)
            session.flush()
            session.add(
                EvacuationEntry(
                    evacuation_id=evac.id,
                    household_id=h.id,
                    grid_code=grid,
                    persons=persons,
                    status=status,
                    shelter_id=s1.id if status == "sheltered" else None,
                    updated_at=w.today,
                    updated_by="测试",
                )
            )

    evacuate(
        warning("CK-W1", rp1, "red", "issued"),
        rp1,
        [(G1, 3, "pending"), (G1, 4, "evacuated"), (G2, 2, "sheltered")],
    )
    warning("CK-W2", rp2, "orange", "proposed")
    # A zone in 汉丰街道 reaching into 义和镇 (G3), as far as counting goes.
    evacuate(
        warning("CK-W3", rp3, "yellow", "issued"), rp3, [(O1, 5, "notified"), (G3, 6, "refused")]
    )
    warning("CK-W4", rp2, "blue", "lifted")  # not active
