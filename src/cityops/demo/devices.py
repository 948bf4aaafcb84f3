"""The demo district's sensors, and the in-process feed that keeps them reporting.

A seeded plan (the same seed and regions give the same devices, codes and places every run):

- a rain gauge per town (``RG-024`` …);
- the 老沟湾 slope in 义和镇 太康村 6组 (site ``LGW``, gateway ``GW-LGW``): three GNSS stations,
  a crack meter, an inclinometer and a rain gauge, inside the first grid of 太康村;
- GNSS and crack meters (some with an inclinometer or a rain gauge) at ten other landslide
  sites ``RP-001`` … in the rural towns, the mountainous north favoured;
- water level gauges along the 东河, 南河 and 澎溪河 and on the Hanfeng lake (site ``HFH``);
- smoke detectors and hydrant pressure sensors in the seat 汉丰街道, the other streets and the
  town seats;
- dust and noise monitors at six construction sites (``CS-01`` …) in the streets;
- four parking zones of 20 bays in 汉丰街道, RFID readers for e-bikes, and 24 buses on four
  lines between the outer streets and the seat.

Geometry is synthetic, so rivers and sites are placed by town, not surveyed. Every device
reports through one gateway group (``GW-…``), so a gateway gets one API key.
"""

from __future__ import annotations

import logging
import math
import random
import threading
from collections import defaultdict
from collections.abc import Collection, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from shapely import contains_xy, prepare
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.ops import polylabel
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cityops.db import utcnow
from cityops.demo.district import DEFAULT_SEED, DemoConfig, departments, townships
from cityops.demo.geometry import SEAT

if TYPE_CHECKING:
    from rich.console import Console
    from sqlalchemy import Engine

    from cityops.geo.service import RegionSpec
    from cityops.telemetry.simulator import Outcome, Simulator, Source

log = logging.getLogger("cityops.demo.devices")

LGW = "LGW"
LGW_VILLAGE = "500154024003"  # 义和镇 太康村
LGW_NAME = "老沟湾"
BACKFILL_H = 48.0  # two days: enough history that the alarm list and the charts have a past
REPLAY_STEP = timedelta(minutes=1)
FEED_INTERVAL_S = 5.0
M_PER_DEG_LAT = 110_570.0

# Who looks after each kind of device (department short names, district_departments.csv).
OWNERS = {
    "gnss": "规划自然资源",
    "crack": "规划自然资源",
    "inclinometer": "规划自然资源",
    "rain": "气象",
    "water_level": "水利",
    "smoke": "消防",
    "hydrant": "水利",
    "dust": "住建",
    "noise": "住建",
    "parking": "交通",
    "rfid": "公安",
    "bus_gps": "交通",
}
MODELS = {
    "gnss": "北斗/GNSS 地表位移监测站",
    "crack": "拉线式裂缝计",
    "inclinometer": "MEMS 固定式测斜仪",
    "rain": "翻斗式雨量计 0.1 mm",
    "water_level": "雷达水位计",
    "smoke": "NB-IoT 独立式光电烟感",
    "hydrant": "无线消火栓压力监测终端",
    "dust": "扬尘在线监测仪（β 射线）",
    "noise": "噪声在线监测仪（1 级）",
    "parking": "地磁车位检测器",
    "rfid": "超高频 RFID 读写基站",
    "bus_gps": "北斗车载定位终端",
}
SLOPE_STEMS = [
    "黄泥坡",
    "大石板",
    "岩脚湾",
    "白岩子",
    "竹林湾",
    "堰塘坎",
    "凉风垭",
    "石板沟",
    "枫香坪",
    "庙垭口",
    "火烧坡",
    "油房沟",
    "长岭岗",
    "鹰嘴岩",
    "松树梁",
    "青杠林",
    "大土湾",
    "马鞍山",
    "水井湾",
    "烂泥沟",
]
SLOPE_KINDS = ["滑坡", "滑坡", "滑坡", "不稳定斜坡", "危岩"]
RIVERS = [  # (code, name, towns it passes, upstream first) — synthetic geometry: by town
    ("DH", "东河", ["厚坝镇", "白桥镇", "谭家镇", "义和镇", "云枫街道"]),
    ("NH", "南河", ["敦好镇", "中和镇", "临江镇", "丰乐街道"]),
    ("PXH", "澎溪河", ["正安街道", "长沙镇", "南门镇"]),
]
LAKE = ("HFH", "汉丰湖", ["汉丰街道", "镇东街道", "文峰街道"])
BUILD_SITES = [
    ("汉丰街道", "滨湖安置房项目"),
    ("汉丰街道", "汉丰中学扩建工程"),
    ("文峰街道", "文峰片区旧城改造"),
    ("云枫街道", "云枫新区市政道路工程"),
    ("镇东街道", "镇东物流园一期"),
    ("白鹤街道", "白鹤工业园标准厂房"),
]
PARKING_ZONES = [("A", "开州大道"), ("B", "滨湖路"), ("C", "汉丰路"), ("D", "安康路")]
BAYS_PER_ZONE = 20
BUS_LINES = [("101", "镇东街道"), ("102", "白鹤街道"), ("103", "赵家街道"), ("105", "文峰街道")]
BUSES_PER_LINE = 6


# --- the plan -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    """A region as the plan needs it (read from the database)."""

    code: str
    name: str
    lat: float
    lon: float
    geometry: BaseGeometry


@dataclass(frozen=True)
class DeviceSpec:
    code: str
    type: str
    name: str
    lat: float
    lon: float
    site: str | None = None
    group: str | None = None
    model: str = ""
    owner: str | None = None  # department short name


@dataclass(frozen=True)
class SiteSpec:
    code: str
    name: str
    kind: str  # landslide | river | lake | construction
    region_code: str
    lat: float
    lon: float


@dataclass
class DevicePlan:
    groups: dict[str, str] = field(default_factory=dict)  # code → name
    sites: list[SiteSpec] = field(default_factory=list)
    devices: list[DeviceSpec] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for d in self.devices:
            out[d.type] += 1
        return dict(sorted(out.items()))


class _Map:
    """Towns, villages and grids by code, in code order."""

    def __init__(self, places: Sequence[Place]) -> None:
        self.by_code = {p.code: p for p in sorted(places, key=lambda p: p.code)}
        self.children: dict[str, list[Place]] = defaultdict(list)
        for p in self.by_code.values():
            if len(p.code) > 6:
                self.children[p.code[:-3]].append(p)
        self.towns = [p for p in self.by_code.values() if len(p.code) == 9]
        self.town_by_name = {t.name: t for t in self.towns}
        kinds = dict(townships())
        self.streets = [t for t in self.towns if kinds.get(t.name) == "street"]
        self.rural = [t for t in self.towns if kinds.get(t.name, "town") != "street"]
        for p in self.by_code.values():
            prepare(p.geometry)

    def grids(self, region: Place) -> list[Place]:
        """The grids inside a town or village (the region itself when it has none)."""
        out: list[Place] = []
        stack = [region]
        while stack:
            p = stack.pop(0)
            kids = self.children.get(p.code, [])
            if kids:
                stack.extend(kids)
            elif len(p.code) == 15 or p is region:
                out.append(p)
        return out

    def seat(self, town: Place) -> Place:
        """The town's first village (the community at the town seat), else the town."""
        return (self.children.get(town.code) or [town])[0]

    def village(self, grid: Place) -> Place | None:
        return self.by_code.get(grid.code[:12])


def _offset(lat: float, lon: float, east_m: float, north_m: float) -> tuple[float, float]:
    return (
        lat + north_m / M_PER_DEG_LAT,
        lon + east_m / (M_PER_DEG_LAT * 1.0068 * math.cos(math.radians(lat))),
    )


def _inside(place: Place, lat: float, lon: float) -> bool:
    return bool(contains_xy(place.geometry, lon, lat))


def point_in(place: Place, rng: random.Random, spread: float = 0.35) -> tuple[float, float]:
    """A random point inside the region, near its centre."""
    min_lon, min_lat, max_lon, max_lat = place.geometry.bounds
    for _ in range(40):
        lat = place.lat + (rng.random() - 0.5) * spread * (max_lat - min_lat)
        lon = place.lon + (rng.random() - 0.5) * spread * (max_lon - min_lon)
        if _inside(place, lat, lon):
            return round(lat, 6), round(lon, 6)
    return place.lat, place.lon


def _cluster(
    place: Place, centre: tuple[float, float], offsets: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    """Points at metre offsets from a centre, pulled in until all lie inside the region."""
    for scale in (1.0, 0.5, 0.25, 0.1, 0.0):
        pts = [_offset(centre[0], centre[1], e * scale, n * scale) for e, n in offsets]
        if all(_inside(place, lat, lon) for lat, lon in pts):
            return [(round(lat, 6), round(lon, 6)) for lat, lon in pts]
    return [centre] * len(offsets)


def _interior(place: Place) -> tuple[float, float]:
    """The point deepest inside a region (room around it for a cluster of devices)."""
    geom = place.geometry
    if isinstance(geom, MultiPolygon):
        geom = max(geom.geoms, key=lambda g: g.area)
    if isinstance(geom, Polygon):
        p = polylabel(geom, tolerance=1e-6)
        if _inside(place, p.y, p.x):
            return round(p.y, 6), round(p.x, 6)
    return place.lat, place.lon


def _owner_units() -> dict[str, str]:
    return {d["short"]: f"DEPT-{i:02d}" for i, d in enumerate(departments(), start=1)}


def plan(places: Sequence[Place], seed: int = DEFAULT_SEED) -> DevicePlan:
    """The devices of the demo district laid over its regions (towns, villages, grids)."""
    m = _Map(places)
    out = DevicePlan()

    def rng(section: str) -> random.Random:
        return random.Random(f"cityops-devices:{seed}:{section}")

    def add(spec: DeviceSpec) -> None:
        out.devices.append(
            DeviceSpec(
                spec.code,
                spec.type,
                spec.name,
                spec.lat,
                spec.lon,
                spec.site,
                spec.group,
                spec.model or MODELS[spec.type],
                spec.owner or OWNERS[spec.type],
            )
        )

    _lgw(m, out, add)
    _landslides(m, out, add, rng("landslides"))
    _rain(m, out, add, rng("rain"))
    _water(m, out, add, rng("water"))
    _fire(m, out, add, rng("fire"))
    _construction(m, out, add, rng("construction"))
    _traffic(m, out, add, rng("traffic"))
    return out


def _lgw(m: _Map, out: DevicePlan, add: Any) -> None:
    village = m.by_code.get(LGW_VILLAGE)
    if village is None:
        return
    grids = m.grids(village)
    grid = grids[0]
    centre = _interior(grid)
    # Crown to toe along the slope (north → south), the crack meter across the main scarp.
    offsets = [(0, 70), (-30, 0), (20, -70), (15, 55), (-10, 10), (90, 20)]
    pts = _cluster(grid, centre, offsets)
    group = f"GW-{LGW}"
    out.groups[group] = f"{LGW_NAME}监测站网关（义和镇太康村6组）"
    out.sites.append(SiteSpec(LGW, f"{LGW_NAME}滑坡", "landslide", grid.code, centre[0], centre[1]))
    kinds = [
        ("GNSS-1", "gnss", "GNSS-1"),
        ("GNSS-2", "gnss", "GNSS-2"),
        ("GNSS-3", "gnss", "GNSS-3"),
        ("CRK-1", "crack", "裂缝计-1"),
        ("INC-1", "inclinometer", "测斜仪-1"),
        ("RG-1", "rain", "雨量计"),
    ]
    for (suffix, kind, label), (lat, lon) in zip(kinds, pts, strict=True):
        add(DeviceSpec(f"{LGW}-{suffix}", kind, f"{LGW_NAME} {label}", lat, lon, LGW, group))


def _landslides(m: _Map, out: DevicePlan, add: Any, rng: random.Random, count: int = 10) -> None:
    if not m.rural:
        return
    lats = [t.lat for t in m.rural]
    lo, hi = min(lats), max(lats)
    # One site per town at most; the mountainous north is three times as likely.
    keyed = []
    for town in m.rural:
        weight = 1 + 3 * (town.lat - lo) / ((hi - lo) or 1)
        keyed.append((rng.random() ** (1 / weight), town.code, town))
    chosen = [t for _k, _c, t in sorted(keyed, key=lambda k: (-k[0], k[1]))[:count]]
    chosen.sort(key=lambda t: t.code)
    stems = rng.sample(SLOPE_STEMS, len(chosen))
    for n, (town, stem) in enumerate(zip(chosen, stems, strict=True), start=1):
        villages = [v for v in m.children.get(town.code, []) if v.code != LGW_VILLAGE]
        village = rng.choice(villages) if villages else town
        grid = rng.choice(m.grids(village))
        centre = point_in(grid, rng, 0.4)
        code = f"RP-{n:03d}"
        name = f"{stem}{rng.choice(SLOPE_KINDS)}"
        group = f"GW-{code}"
        out.groups[group] = f"{town.name}{name}监测站网关"
        out.sites.append(SiteSpec(code, name, "landslide", grid.code, centre[0], centre[1]))
        # (kind, code suffix, name label)
        kinds = [("gnss", f"GNSS-{i}", f"GNSS-{i}") for i in range(1, rng.randint(1, 3) + 1)]
        kinds.append(("crack", "CRK-1", "裂缝计-1"))
        if rng.random() < 0.4:
            kinds.append(("inclinometer", "INC-1", "测斜仪-1"))
        if rng.random() < 0.4:
            kinds.append(("rain", "RG-1", "雨量计"))
        offsets = [(rng.uniform(-60, 60), rng.uniform(-60, 60)) for _ in kinds]
        pts = _cluster(grid, centre, offsets)
        for (kind, suffix, label), (lat, lon) in zip(kinds, pts, strict=True):
            add(DeviceSpec(f"{code}-{suffix}", kind, f"{name} {label}", lat, lon, code, group))


def _rain(m: _Map, out: DevicePlan, add: Any, rng: random.Random) -> None:
    out.groups["GW-RAIN"] = "雨量遥测站网"
    for town in m.towns:
        lat, lon = point_in(rng.choice(m.grids(m.seat(town))), rng)
        no = town.code[-3:]
        add(
            DeviceSpec(f"RG-{no}", "rain", f"{town.name} 雨量计 RG-{no}", lat, lon, None, "GW-RAIN")
        )


def _nearest_grid(m: _Map, region: Place, lat: float, lon: float) -> Place:
    return min(m.grids(region), key=lambda g: (g.lat - lat) ** 2 + (g.lon - lon) ** 2)


def _water(m: _Map, out: DevicePlan, add: Any, rng: random.Random) -> None:
    out.groups["GW-WATER"] = "水位遥测站网"
    for code, river, towns in RIVERS:
        reach = [m.town_by_name[n] for n in towns if n in m.town_by_name]
        for i, town in enumerate(reach, start=1):
            grid = _nearest_grid(m, town, town.lat, town.lon)
            lat, lon = point_in(grid, rng)
            if i == 1:
                out.sites.append(SiteSpec(code, river, "river", grid.code, lat, lon))
            add(
                DeviceSpec(
                    f"SW-{code}-{i:02d}",
                    "water_level",
                    f"{river} {town.name}段 水位计 SW-{code}-{i:02d}",
                    lat,
                    lon,
                    code,
                    "GW-WATER",
                )
            )
    code, lake, towns = LAKE
    reach = [m.town_by_name[n] for n in towns if n in m.town_by_name]
    for i, town in enumerate(reach, start=1):
        grid = _nearest_grid(m, town, SEAT[1], SEAT[0])  # the lake lies at the seat
        lat, lon = point_in(grid, rng)
        if i == 1:
            out.sites.append(SiteSpec(code, lake, "lake", grid.code, lat, lon))
        add(
            DeviceSpec(
                f"SW-{code}-{i:02d}",
                "water_level",
                f"{lake} {town.name} 水位计 SW-{code}-{i:02d}",
                lat,
                lon,
                code,
                "GW-WATER",
            )
        )


def _fire(m: _Map, out: DevicePlan, add: Any, rng: random.Random) -> None:
    out.groups["GW-FIRE"] = "智慧消防物联网平台（NB-IoT）"
    smoke: list[tuple[Place, int]] = []
    hydrants: list[tuple[Place, int]] = []
    for i, town in enumerate(m.streets):
        smoke.append((town, 48 if i == 0 else 6))  # the seat first
        hydrants.append((town, 24 if i == 0 else 3))
    for i, town in enumerate(m.rural):
        smoke.append((town, 1))
        if i % 2 == 0:
            hydrants.append((town, 1))
    n = 0
    for town, count in smoke:
        grids = m.grids(town) if town in m.streets else m.grids(m.seat(town))
        for j in range(count):
            grid = grids[j * len(grids) // count]  # spread over the town's grids
            village = m.village(grid)
            n += 1
            code = f"YG-{n:04d}"
            lat, lon = point_in(grid, rng, 0.6)
            where = f"{town.name} {village.name}" if village else town.name
            add(DeviceSpec(code, "smoke", f"{where} 烟感 {code}", lat, lon, None, "GW-FIRE"))
    n = 0
    for town, count in hydrants:
        grids = m.grids(town) if town in m.streets else m.grids(m.seat(town))
        for j in range(count):
            grid = grids[(j * 7) % len(grids)]
            n += 1
            code = f"HY-{n:03d}"
            lat, lon = point_in(grid, rng, 0.6)
            add(
                DeviceSpec(code, "hydrant", f"{town.name} 消火栓 {code}", lat, lon, None, "GW-FIRE")
            )


def _construction(m: _Map, out: DevicePlan, add: Any, rng: random.Random) -> None:
    used: set[str] = set()
    for n, (town_name, project) in enumerate(BUILD_SITES, start=1):
        town = m.town_by_name.get(town_name)
        if town is None:
            continue
        grids = [g for g in m.grids(town) if g.code not in used] or m.grids(town)
        grid = rng.choice(grids)
        used.add(grid.code)
        site = f"CS-{n:02d}"
        lat, lon = point_in(grid, rng, 0.4)
        out.sites.append(SiteSpec(site, f"{project}工地", "construction", grid.code, lat, lon))
        group = f"GW-{site}"
        out.groups[group] = f"{project}工地 扬尘噪声监测网关"
        (lat2, lon2) = _cluster(grid, (lat, lon), [(25, 5)])[0]
        add(DeviceSpec(f"{site}-DUST", "dust", f"{project}工地 扬尘监测", lat, lon, site, group))
        add(
            DeviceSpec(f"{site}-NOISE", "noise", f"{project}工地 噪声监测", lat2, lon2, site, group)
        )


def _traffic(m: _Map, out: DevicePlan, add: Any, rng: random.Random) -> None:
    if not m.streets:
        return
    seat = m.streets[0]
    seat_grids = m.grids(seat)
    out.groups["GW-PARK"] = "智慧停车平台（地磁泊位）"
    for z, (letter, road) in enumerate(PARKING_ZONES):
        grid = seat_grids[(z * 5) % len(seat_grids)]
        lat, lon = point_in(grid, rng, 0.3)
        heading = rng.uniform(0, math.pi)
        offsets = [
            (
                6 * (i - BAYS_PER_ZONE / 2) * math.cos(heading),
                6 * (i - BAYS_PER_ZONE / 2) * math.sin(heading),
            )
            for i in range(BAYS_PER_ZONE)
        ]
        for i, (blat, blon) in enumerate(_cluster(grid, (lat, lon), offsets), start=1):
            code = f"PK-{letter}-{i:02d}"
            add(
                DeviceSpec(
                    code, "parking", f"{road} 泊位 {letter}-{i:02d}", blat, blon, None, "GW-PARK"
                )
            )

    out.groups["GW-RFID"] = "电动自行车 RFID 防盗平台"
    readers = [(seat, 8)] + [(t, 1) for t in m.streets[1:]]
    n = 0
    for town, count in readers:
        grids = m.grids(town)
        for j in range(count):
            n += 1
            code = f"RF-{n:03d}"
            lat, lon = point_in(grids[(j * 3) % len(grids)], rng, 0.5)
            add(
                DeviceSpec(code, "rfid", f"{town.name} RFID 基站 {code}", lat, lon, None, "GW-RFID")
            )

    out.groups["GW-BUS"] = "公交智能调度平台"
    for line, town_name in BUS_LINES:
        street = m.town_by_name.get(town_name)
        if street is None:
            continue
        # The terminus: the grid of that street farthest from the seat.
        grid = max(m.grids(street), key=lambda g: (g.lat - SEAT[1]) ** 2 + (g.lon - SEAT[0]) ** 2)
        lat, lon = point_in(grid, rng, 0.2)
        for b in range(1, BUSES_PER_LINE + 1):
            plate = f"渝F·D{rng.randint(10000, 99999)}"
            add(
                DeviceSpec(
                    f"BUS-{line}-{b}",
                    "bus_gps",
                    f"{line}路 {plate} 车载定位",
                    lat,
                    lon,
                    None,
                    "GW-BUS",
                )
            )


# --- loading --------------------------------------------------------------------------------


def places_from_db(session: Session) -> list[Place]:
    from cityops.geo.geometry import to_shape
    from cityops.geo.models import Region

    rows = session.execute(
        select(Region.code, Region.name, Region.center_lat, Region.center_lon, Region.geometry)
        .where(Region.level != "district")
        .order_by(Region.code)
    )
    return [Place(code, name, lat, lon, to_shape(geom)) for code, name, lat, lon, geom in rows]


def places_from_specs(regions: Sequence[RegionSpec]) -> list[Place]:
    """The same from a generated district not yet written (geometry before storage rounding,
    so a device near a boundary may land a little differently than from the database)."""
    from cityops.geo.geometry import inner_point

    out = []
    for r in regions:
        if len(r.code) > 6:
            lon, lat = inner_point(r.geometry)
            out.append(Place(r.code, r.name, lat, lon, r.geometry))
    return out


def ensure_types(session: Session, now: datetime) -> int:
    """Load the packaged device types that are missing or differ from the stored ones."""
    from cityops.telemetry import service as telemetry
    from cityops.telemetry.models import DeviceType

    stored = {t.code: t for t in session.scalars(select(DeviceType))}
    changed = []
    for t in telemetry.default_types():
        row = stored.get(t["code"])
        if (
            row is None
            or row.metrics != t["metrics"]
            or row.name != t.get("name", t["code"])
            or row.offline_after_s != int(t.get("offline_after_s", 3600))
        ):
            changed.append(t)
    if changed:
        telemetry.load_types(session, changed, now)
    return len(changed)


def _load(session: Session, now: datetime, config: DemoConfig | None) -> tuple[int, DevicePlan]:
    from cityops.auth import audit
    from cityops.org.models import Unit
    from cityops.telemetry import service as telemetry
    from cityops.telemetry.models import Device, DeviceGroup

    config = config or DemoConfig()
    ensure_types(session, now)
    the_plan = plan(places_from_db(session), config.seed)
    existing = set(session.scalars(select(Device.code)))
    todo = [d for d in the_plan.devices if d.code not in existing]
    groups = set(session.scalars(select(DeviceGroup.code)))
    new_groups = [(c, n) for c, n in the_plan.groups.items() if c not in groups]
    if not todo and not new_groups:
        return 0, the_plan
    units = set(session.scalars(select(Unit.code)))
    owners = {short: code for short, code in _owner_units().items() if code in units}
    with audit.bulk(session, "demo_load", "devices") as summary:
        for code, name in new_groups:
            telemetry.create_group(session, code, name)
        for d in todo:
            telemetry.create_device(
                session,
                telemetry.DeviceInput(
                    code=d.code,
                    type=d.type,
                    name=d.name,
                    lat=d.lat,
                    lon=d.lon,
                    model=d.model,
                    site=d.site,
                    group=d.group,
                    owner_unit=owners.get(d.owner or ""),
                ),
                now,
            )
        summary.update(devices=len(todo), groups=len(new_groups))
    return len(todo), the_plan


def load(session: Session, now: datetime, config: DemoConfig | None = None) -> int:
    """Register the device types and the demo devices (and their gateway groups) that are not
    there yet; returns how many devices were created. The caller owns the transaction."""
    return _load(session, now, config)[0]


# --- the in-process feed --------------------------------------------------------------------


@dataclass
class Feed:
    """The running demo feed: set ``stop`` to end it; ``thread`` ends within a tick."""

    thread: threading.Thread
    stop: threading.Event
    devices: int
    backfilled: int
    alarms: int


def feed_loop(
    factory: sessionmaker[Session],
    sim: Simulator,
    stop: threading.Event,
    *,
    since: datetime,
    interval_s: float = FEED_INTERVAL_S,
) -> None:
    """Every ``interval_s``, ingest the readings that fell due since the last tick. A failed
    tick is tried again with the next one (stored readings are not stored twice)."""
    from cityops.telemetry.simulator import InProcessSink

    sink = InProcessSink(factory)
    last = since
    while not stop.wait(interval_s):
        now = utcnow()
        failed = sink.totals.failed
        try:
            sink.send(sim.due(last, now))
        except Exception:  # the demo keeps running; the next tick tries again
            log.exception("telemetry feed tick failed")
            continue
        if sink.totals.failed == failed or now - last > timedelta(hours=1):
            last = now


def replay(
    factory: sessionmaker[Session],
    sim: Source,
    since: datetime,
    until: datetime,
    step: timedelta = REPLAY_STEP,
) -> Outcome:
    """Ingest the readings ``sim.due`` gives from ``since`` to ``until`` as if they had come in
    live: a ``step`` at a time, each received at the step's end. An alarm they raise, the case
    it opens and its history then carry the time it would have happened — not the moment the
    demo started, which would show two days of alarms raised and cleared within a second of
    each other, every reading "late". The roll-ups are folded once, at the end (the rules read
    raw readings)."""
    from cityops.telemetry import fold
    from cityops.telemetry.simulator import InProcessSink

    received = since
    sink = InProcessSink(factory, batch=1000, clock=lambda: received, fold=False)
    moment = since
    while moment < until:
        received = min(moment + step, until)
        sink.send(sim.due(moment, received))
        moment = received
    fold.catch_up(factory, until, wait=True)
    return sink.stats()


def start(
    engine: Engine,
    console: Console | None = None,
    *,
    config: DemoConfig | None = None,
    backfill_h: float = BACKFILL_H,
    interval_s: float = FEED_INTERVAL_S,
    stop: threading.Event | None = None,
    skip_sites: Collection[str] = (),
) -> Feed:
    """Register the demo devices and default alarm rules (those missing), ingest the last
    ``backfill_h`` hours the database does not have yet, and start the feed thread.
    ``skip_sites``: sites whose devices are registered but not fed (a story feeds them)."""
    from cityops.alarms import rules
    from cityops.alarms.models import AlarmRule
    from cityops.auth import audit
    from cityops.db import session_factory, transaction
    from cityops.telemetry.models import Device, Latest
    from cityops.telemetry.simulator import Simulator, devices_from_db

    waiting: AbstractContextManager[Any]
    config = config or DemoConfig()
    factory = session_factory(engine, writer=True)
    now = utcnow()
    with transaction(factory) as session:
        audit.set_actor(session, audit.Actor("system", "simulator", "演示模拟 / demo"))
        _created, the_plan = _load(session, now, config)
        have = set(session.scalars(select(AlarmRule.code)))
        missing = [r for r in rules.default_rules() if r.get("code") not in have]
        if missing:
            rules.load(session, missing, now)
        codes = [d.code for d in the_plan.devices if d.site not in skip_sites]
        devices = devices_from_db(session, codes)
        newest = session.scalar(
            select(func.max(Latest.ts))
            .join(Device, Device.id == Latest.device_id)
            .where(Device.code.in_(codes))
        )
    sim = Simulator(devices, config.seed)
    since = now - timedelta(hours=backfill_h)
    if newest is not None:
        since = max(since, datetime.fromtimestamp(newest / 1000, now.tzinfo))
    waiting = console.status("遥测回填 / telemetry backfill…") if console else nullcontext()
    with waiting:
        totals = replay(factory, sim, since, now)
    stop = stop or threading.Event()
    thread = threading.Thread(
        target=feed_loop,
        args=(factory, sim, stop),
        kwargs={"since": now, "interval_s": interval_s},
        name="demo-telemetry",
        daemon=True,
    )
    thread.start()
    if console is not None:
        console.print(
            f"演示设备 / demo devices: {len(devices)} reporting; backfill "
            f"{totals.sent} readings ({totals.stored} values), {totals.alarms} alarm changes"
        )
    return Feed(thread, stop, len(devices), totals.sent, totals.alarms)
