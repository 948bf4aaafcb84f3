"""The demo district's landslide register: risk points, shelters, responsible people and the
households their zones threaten, seeded from the device plan (same seed → same register).

Every landslide site of :func:`cityops.demo.devices.plan` becomes a risk point with the site's
code and name, its GNSS / crack / rain devices as monitors (with a steady-creep velocity
``v_uniform`` each, as a geologist would fix it from the survey record), the town's commander
as the leader in charge (包片领导), a 群测群防员 from the village, one or two shelters beside
the slope and a route to them in words.

老沟湾 (``LGW``, 义和镇太康村6组) is the place of the July story: 27 households, 80 persons in
its zone, 太康村村委会 (200 places) and 义和镇中心小学 as shelters.

**Geometry is synthetic.** Zones are irregular polygons drawn around the site centre,
elongated downslope; households are scattered inside them (and a few just outside, which the
point-in-polygon linking must leave out); shelters stand beside the slope, never below it.
Names, addresses and phone numbers are made up.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any

import numpy as np
from shapely.geometry import Point, Polygon
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from cityops.auth import audit
from cityops.demo import devices as demo_devices
from cityops.demo.district import DemoConfig
from cityops.demo.names import NameMaker
from cityops.geo import service as geo
from cityops.geo.locator import Locator
from cityops.geo.models import Region
from cityops.org import service as org
from cityops.org.models import Person, PersonRole, Unit
from cityops.org.roles import Role
from cityops.telemetry.models import Device
from cityops.warning import service as registry
from cityops.warning.models import Household, RiskPoint, Shelter
from cityops.warning.schemas import MonitorIn, RiskPointIn, ShelterIn

M_PER_DEG_LAT = 110_570.0
LGW_HOUSEHOLDS, LGW_PERSONS = 27, 80
LGW_GROUP = 6  # 太康村6组
# The plan lays the LGW devices from crown (north) to toe (south): the slope faces south.
LGW_DOWNSLOPE_DEG = 180.0
LGW_SHELTERS = (("村委会", 200, 600.0), ("中心小学", 500, 1200.0))  # (kind, capacity, metres)
# Households of 1 … 6 persons, roughly as in rural Chongqing (many elderly and left-behind
# children, younger adults working away).
PERSON_WEIGHTS = (12, 22, 24, 20, 14, 8)
OUTSIDE_PER_POINT = 3
NO_PHONE_SHARE = 0.08  # reached in person by the grid worker
MONITORED_TYPES = tuple(registry.MONITOR_METRICS)
# Which hazard a site's name describes (the plan names slopes 滑坡, 不稳定斜坡 or 危岩).
HAZARD_BY_SUFFIX = (("不稳定斜坡", "unstable_slope"), ("危岩", "collapse"), ("滑坡", "landslide"))
COUNTS = (
    "risk_points",
    "shelters",
    "households",
    "households_in_zones",
    "persons_in_zones",
    "people",
    "monitors",
)
COMPASS = ("北", "东北", "东", "东南", "南", "西南", "西", "西北")
# Keeps households clear of the zone edge (≈ 8 m): rounding a coordinate never moves a house
# across it.
EDGE_DEG = 0.00008


@dataclass(frozen=True)
class _Frame:
    """Metres east / north of a centre, converted to degrees (good to a few km)."""

    lat: float
    lon: float

    def at(self, east: float, north: float) -> tuple[float, float]:
        m_per_deg_lon = M_PER_DEG_LAT * 1.0068 * math.cos(math.radians(self.lat))
        return (
            round(self.lat + north / M_PER_DEG_LAT, 6),
            round(self.lon + east / m_per_deg_lon, 6),
        )

    def toward(self, bearing_deg: float, metres: float) -> tuple[float, float]:
        b = math.radians(bearing_deg)
        return self.at(metres * math.sin(b), metres * math.cos(b))


@dataclass
class _Place:
    """Where a site lies, by name (for addresses and shelter names)."""

    grid: str
    village_code: str
    village: str
    town_code: str
    town: str


@dataclass
class _PointPlan:
    code: str
    name: str
    hazard: str
    lat: float
    lon: float
    zone: Polygon
    leader: str | None
    monitor: str | None
    shelters: list[str]
    route: str
    route_line: dict[str, Any]
    monitors: list[MonitorIn] = field(default_factory=list)


@dataclass
class _Ctx:
    """What every step of one seeding shares."""

    session: Session
    now: datetime
    locator: Locator
    # name → code: a school may serve two slopes of one town.
    shelters: dict[str, str] = field(default_factory=dict)
    people: int = 0
    created_shelters: int = 0

    def grid(self, lat: float, lon: float) -> str | None:
        """The grid of a point, None outside the district (synthetic edges are ragged)."""
        where = self.locator.locate(lon, lat)
        return where.finest.code if where is not None else None


def seed(session: Session, now: datetime, config: DemoConfig | None = None) -> dict[str, int]:
    """Seed the register once (nothing happens when risk points exist); returns counts.
    Needs the demo district and its devices; the caller owns the transaction."""
    if session.scalar(select(RiskPoint.id).limit(1)) is not None:
        return dict.fromkeys(COUNTS, 0)
    config = config or DemoConfig()
    the_plan = demo_devices.plan(demo_devices.places_from_db(session), config.seed)
    sites = [s for s in the_plan.sites if s.kind == "landslide"]
    with audit.bulk(session, "demo_load", "warnings") as summary:
        counts = _seed(session, now, sites, config.seed)
        summary.update(counts)
    return counts


def _seed(
    session: Session, now: datetime, sites: Sequence[demo_devices.SiteSpec], seed_no: int
) -> dict[str, int]:
    ctx = _Ctx(session, now, geo.get_locator(session))
    places = _places(session, [s.region_code for s in sites])
    devices = _devices(session, [s.code for s in sites])
    households: list[dict[str, Any]] = []
    plans = []
    for site in sites:
        rng = random.Random(f"cityops-warnings:{seed_no}:{site.code}")
        names = NameMaker(np.random.default_rng(rng.getrandbits(64)))
        place = places[site.region_code]
        plans.append(_plan_point(ctx, site, place, devices.get(site.code, []), rng, names))
        households += _households(ctx, plans[-1], place, rng, names)
    if households:
        session.execute(insert(Household), households)
    monitors = 0
    for p in plans:
        registry.create_point(session, _point_in(p), now)
        monitors += len(p.monitors)
    session.flush()
    in_zones = session.execute(
        select(
            func.coalesce(func.sum(RiskPoint.households), 0),
            func.coalesce(func.sum(RiskPoint.persons), 0),
        )
    ).one()
    return {
        "risk_points": len(plans),
        "shelters": ctx.created_shelters,
        "households": len(households),
        "households_in_zones": int(in_zones[0]),
        "persons_in_zones": int(in_zones[1]),
        "people": ctx.people,
        "monitors": monitors,
    }


def _point_in(p: _PointPlan) -> RiskPointIn:
    return RiskPointIn(
        code=p.code,
        name=p.name,
        hazard=p.hazard,
        lat=p.lat,
        lon=p.lon,
        zone={"type": "Polygon", "coordinates": [[list(c) for c in p.zone.exterior.coords]]},
        town_leader=p.leader,
        monitor=p.monitor,
        route=p.route,
        route_line=p.route_line,
        shelters=p.shelters,
        monitors=p.monitors,
    )


# --- lookups ----------------------------------------------------------------------------------


def _places(session: Session, grids: Sequence[str]) -> dict[str, _Place]:
    wanted = {c for g in grids for c in (g, g[:12], g[:9])}
    rows = session.execute(select(Region.code, Region.name).where(Region.code.in_(wanted)))
    names = {code: name for code, name in rows}
    return {g: _Place(g, g[:12], names.get(g[:12], ""), g[:9], names.get(g[:9], "")) for g in grids}


def _devices(session: Session, sites: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for code, kind, site in session.execute(
        select(Device.code, Device.type_code, Device.site)
        .where(Device.site.in_(list(sites)), Device.type_code.in_(MONITORED_TYPES))
        .order_by(Device.code)
    ):
        out.setdefault(site or "", []).append((code, kind))
    return out


def _hazard(name: str) -> str:
    return next((h for suffix, h in HAZARD_BY_SUFFIX if name.endswith(suffix)), "landslide")


# --- one risk point ---------------------------------------------------------------------------


def _plan_point(
    ctx: _Ctx,
    site: demo_devices.SiteSpec,
    place: _Place,
    devices: list[tuple[str, str]],
    rng: random.Random,
    names: NameMaker,
) -> _PointPlan:
    lgw = site.code == demo_devices.LGW
    downslope = LGW_DOWNSLOPE_DEG if lgw else rng.uniform(0.0, 360.0)
    frame = _Frame(site.lat, site.lon)
    zone = _zone(frame, downslope, rng, lgw)
    stops = _shelters(ctx, site, place, frame, downslope, zone, rng, names)
    route, line = _route(frame, stops)
    return _PointPlan(
        code=site.code,
        name=site.name,
        hazard=_hazard(site.name),
        lat=site.lat,
        lon=site.lon,
        zone=zone,
        leader=_town_leader(ctx.session, place.town_code),
        monitor=_monitor_person(ctx, site.code, place, names),
        shelters=[code for code, _name, _lat, _lon in stops],
        route=route,
        route_line=line,
        monitors=_monitors(devices, rng),
    )


def _zone(frame: _Frame, downslope_deg: float, rng: random.Random, lgw: bool) -> Polygon:
    """A synthetic zone (not surveyed): an irregular, star-shaped polygon (so always simple)
    round an ellipse along the slope, its centre shifted downslope — the toe and what lies
    below it are what a slide reaches."""
    half_len = 230.0 if lgw else rng.uniform(150.0, 250.0)
    half_wid = 130.0 if lgw else rng.uniform(90.0, 140.0)
    shift = 0.2 * half_len
    b = math.radians(downslope_deg)
    ux, uy = math.sin(b), math.cos(b)  # downslope unit vector (east, north)
    corners = 16
    ring = []
    for k in range(corners):
        phi = 2 * math.pi * (k + rng.uniform(-0.3, 0.3)) / corners
        r = rng.uniform(0.82, 1.12)
        along = shift + r * half_len * math.cos(phi)
        across = r * half_wid * math.sin(phi)
        east, north = along * ux - across * uy, along * uy + across * ux
        lat, lon = frame.at(east, north)
        ring.append((lon, lat))
    return Polygon(ring)


def _monitors(devices: list[tuple[str, str]], rng: random.Random) -> list[MonitorIn]:
    """GNSS stations, crack meters and rain gauges (the analytics read no inclinometer). The
    steady-creep rate is fixed, as a geologist would from the survey record: estimated from a
    short record that is already accelerating, it would call the acceleration uniform."""
    out = []
    for code, kind in devices:
        v_uniform = None
        if kind == "gnss":
            v_uniform = round(rng.uniform(0.2, 0.5), 2)
        elif kind == "crack":
            v_uniform = round(rng.uniform(0.05, 0.15), 2)
        out.append(MonitorIn(device=code, v_uniform=v_uniform))
    return out


def _town_leader(session: Session, town_code: str) -> str | None:
    """The town centre's commander answers for the slopes of the town (包片领导)."""
    return session.scalar(
        select(Person.code)
        .join(Unit, Unit.id == Person.unit_id)
        .join(PersonRole, PersonRole.person_id == Person.id)
        .where(Unit.code == f"TC-{town_code}", PersonRole.role == Role.district_commander.value)
        .order_by(Person.code)
        .limit(1)
    )


def _monitor_person(ctx: _Ctx, site: str, place: _Place, names: NameMaker) -> str | None:
    """A villager who watches the slope (群测群防员), attached to the village station."""
    session = ctx.session
    code = f"QCQF-{site}"
    if session.scalar(select(Person.id).where(Person.code == code)) is not None:
        return code
    unit = session.scalar(select(Unit).where(Unit.code == f"VS-{place.village_code}"))
    region = session.scalar(select(Region).where(Region.code == place.village_code))
    if unit is None or region is None:
        return None
    org.add_person(
        session,
        code=code,
        name=names.person(),
        unit=unit,
        region=region,
        roles=(Role.inspector,),
        mobile=names.mobile(),
        title="群测群防员",
    )
    ctx.people += 1
    return code


# --- shelters and the route -------------------------------------------------------------------


def _shelter_kinds(place: _Place, lgw: bool, rng: random.Random) -> list[tuple[str, int, float]]:
    """(name, capacity, metres from the slope) of the shelters, nearest first."""
    committee = "村委会" if place.village.endswith("村") else "居委会"
    if lgw:
        return [
            (place.village + committee, LGW_SHELTERS[0][1], LGW_SHELTERS[0][2]),
            (place.town + LGW_SHELTERS[1][0], LGW_SHELTERS[1][1], LGW_SHELTERS[1][2]),
        ]
    out = [(place.village + committee, rng.randrange(100, 301, 10), rng.uniform(450.0, 750.0))]
    if rng.random() < 0.6:
        school = place.village + "小学" if place.village.endswith("村") else place.town + "中心小学"
        out.append((school, rng.randrange(300, 601, 10), rng.uniform(1000.0, 1500.0)))
    return out


def _shelters(
    ctx: _Ctx,
    site: demo_devices.SiteSpec,
    place: _Place,
    frame: _Frame,
    downslope_deg: float,
    zone: Polygon,
    rng: random.Random,
    names: NameMaker,
) -> list[tuple[str, str, float, float]]:
    """Shelters beside the slope (across it, never below it), outside the zone and inside the
    district; returns (code, name, lat, lon) nearest first."""
    lgw = site.code == demo_devices.LGW
    sides = [downslope_deg - 90.0, downslope_deg + 90.0]
    if not lgw and rng.random() < 0.5:
        sides.reverse()
    out: list[tuple[str, str, float, float]] = []
    for n, (name, capacity, metres) in enumerate(_shelter_kinds(place, lgw, rng), start=1):
        if name in ctx.shelters:
            row = ctx.session.scalar(select(Shelter).where(Shelter.code == ctx.shelters[name]))
            if row is not None and not zone.buffer(EDGE_DEG).covers(Point(row.lon, row.lat)):
                out.append((row.code, row.name, row.lat, row.lon))
                continue
        spot = _beside(ctx, frame, sides, metres, zone)
        if spot is None:
            continue
        code = f"SH-{site.code}-{n}"
        registry.create_shelter(
            ctx.session,
            ShelterIn(
                code=code,
                name=name,
                lat=spot[0],
                lon=spot[1],
                capacity=capacity,
                address=f"{place.town}{place.village}",
                contact_name=names.person(),
                contact_phone=names.mobile(),
            ),
            ctx.now,
        )
        ctx.shelters[name] = code
        ctx.created_shelters += 1
        out.append((code, name, spot[0], spot[1]))
    return out


def _beside(
    ctx: _Ctx, frame: _Frame, sides: list[float], metres: float, zone: Polygon
) -> tuple[float, float] | None:
    guard = zone.buffer(EDGE_DEG)
    for scale in (1.0, 0.8, 1.3, 0.6):
        for bearing in sides:
            lat, lon = frame.toward(bearing, metres * scale)
            if not guard.covers(Point(lon, lat)) and ctx.grid(lat, lon):
                return lat, lon
    return None


def _compass(bearing_deg: float) -> str:
    return COMPASS[round((bearing_deg % 360.0) / 45.0) % 8]


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    north = (a[0] - b[0]) * M_PER_DEG_LAT
    east = (a[1] - b[1]) * M_PER_DEG_LAT * 1.0068 * math.cos(math.radians(a[0]))
    return math.hypot(north, east)


def _route(frame: _Frame, stops: list[tuple[str, str, float, float]]) -> tuple[str, dict[str, Any]]:
    """The way out in words (what the SMS and the grid worker say) and as a line."""
    if not stops:
        return "", {"type": "LineString", "coordinates": []}
    path = [(frame.lat, frame.lon)] + [(lat, lon) for _c, _n, lat, lon in stops]
    km = sum(_metres(a, b) for a, b in pairwise(path)) / 1000
    first = path[1]
    bearing = math.degrees(
        math.atan2((first[1] - frame.lon) * math.cos(math.radians(frame.lat)), first[0] - frame.lat)
    )
    names = [name for _c, name, _lat, _lon in stops]
    via = f"经{names[0]}至{names[-1]}" if len(names) > 1 else f"至{names[0]}"
    words = f"沿村道向{_compass(bearing)}{via}，约 {km:.1f} km；避开坡脚和沟道"
    line = {"type": "LineString", "coordinates": [[lon, lat] for lat, lon in path]}
    return words, line


# --- households -------------------------------------------------------------------------------


def _households(
    ctx: _Ctx,
    p: _PointPlan,
    place: _Place,
    rng: random.Random,
    names: NameMaker,
) -> list[dict[str, Any]]:
    lgw = p.code == demo_devices.LGW
    count = LGW_HOUSEHOLDS if lgw else rng.randint(8, 60)
    persons = [rng.choices(range(1, 7), PERSON_WEIGHTS)[0] for _ in range(count)]
    if lgw:
        _adjust(persons, LGW_PERSONS, rng)
    group = LGW_GROUP if lgw else rng.randint(1, 9)
    spots = _inside(ctx, p.zone, count, rng) + _outside(ctx, p, rng)
    rows = []
    number = 0
    for i, (lat, lon, grid) in enumerate(spots):
        inside = i < count
        number += rng.randint(1, 3)
        n = persons[i] if inside else rng.choices(range(1, 7), PERSON_WEIGHTS)[0]
        rows.append(
            _household(
                f"HH-{p.code}-{i + 1:03d}",
                f"{place.town}{place.village}{group if inside else group + 1}组 {number} 号",
                lat,
                lon,
                grid,
                n,
                rng,
                names,
                ctx.now,
            )
        )
    return rows


def _adjust(persons: list[int], total: int, rng: random.Random) -> None:
    """Nudge household sizes (within 1–6) until they add up to ``total``."""
    while sum(persons) != total:
        i = rng.randrange(len(persons))
        step = 1 if sum(persons) < total else -1
        if 1 <= persons[i] + step <= 6:
            persons[i] += step


def _household(
    code: str,
    address: str,
    lat: float,
    lon: float,
    grid: str,
    persons: int,
    rng: random.Random,
    names: NameMaker,
    now: datetime,
) -> dict[str, Any]:
    vulnerable: dict[str, int] = {}
    if rng.random() < 0.45:
        vulnerable["elderly"] = min(persons, rng.choice((1, 1, 2)))
    room = persons - sum(vulnerable.values())
    if room >= 1 and persons >= 3 and rng.random() < 0.35:
        vulnerable["child"] = rng.randint(1, min(2, room))
    if rng.random() < 0.06:
        vulnerable["disabled"] = 1
    note = ""
    if persons == 1 and vulnerable.get("elderly"):
        note = "独居老人"
    elif vulnerable.get("disabled"):
        note = "有行动不便人员，需协助转移"
    head = names.person()
    phone = names.mobile()
    return {
        "code": code,
        "head_name": head,
        "address": address,
        "region_code": grid,
        "lat": lat,
        "lon": lon,
        "persons": persons,
        "vulnerable": vulnerable,
        "phone": "" if rng.random() < NO_PHONE_SHARE else phone,
        "note": note,
        "active": True,
        "created_at": now,
        "updated_at": now,
    }


def _inside(
    ctx: _Ctx, zone: Polygon, count: int, rng: random.Random
) -> list[tuple[float, float, str]]:
    """``count`` houses well inside the zone (and inside the district)."""
    inner = zone.buffer(-EDGE_DEG)
    min_lon, min_lat, max_lon, max_lat = inner.bounds
    out: list[tuple[float, float, str]] = []
    for _ in range(count * 200):
        if len(out) == count:
            break
        lat = round(rng.uniform(min_lat, max_lat), 6)
        lon = round(rng.uniform(min_lon, max_lon), 6)
        if inner.contains(Point(lon, lat)) and (grid := ctx.grid(lat, lon)):
            out.append((lat, lon, grid))
    return out


def _outside(ctx: _Ctx, p: _PointPlan, rng: random.Random) -> list[tuple[float, float, str]]:
    """A few houses just beyond the zone's edge (15–60 m), which must not be linked to it."""
    outer = p.zone.buffer(EDGE_DEG)
    centre = p.zone.centroid
    frame = _Frame(centre.y, centre.x)
    out: list[tuple[float, float, str]] = []
    for _ in range(OUTSIDE_PER_POINT * 20):
        if len(out) == OUTSIDE_PER_POINT:
            break
        bearing = rng.uniform(0.0, 360.0)
        metres = 20.0
        while metres < 2000 and _covers(outer, frame.toward(bearing, metres)):
            metres += 10.0
        lat, lon = frame.toward(bearing, metres + rng.uniform(15.0, 60.0))
        if not _covers(outer, (lat, lon)) and (grid := ctx.grid(lat, lon)):
            out.append((lat, lon, grid))
    return out


def _covers(polygon: Polygon, spot: tuple[float, float]) -> bool:
    return bool(polygon.covers(Point(spot[1], spot[0])))
