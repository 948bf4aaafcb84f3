"""Build the Kaizhou demo district: regions, units, people and standing duty assignments."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.auth import audit
from cityops.demo.geometry import SEAT, district_outline, partition
from cityops.demo.names import NameMaker
from cityops.geo import service as geo
from cityops.geo.models import Region
from cityops.geo.service import RegionSpec
from cityops.org import service as org
from cityops.org.models import Unit, UnitKind
from cityops.org.roles import Role

DISTRICT_CODE = "500154"
DISTRICT_NAME = "开州区"
DEFAULT_SEED = 20240712  # the July rainstorm
STANDING_FROM = datetime(2026, 1, 1, tzinfo=UTC)
TOWN_SECTIONS = [
    ("DJ", "党建统领办"),
    ("JJ", "经济发展办"),
    ("MS", "民生服务办"),
    ("PA", "平安法治办"),
]
# 义和镇 太康村 is where the July landslide story happens; it must exist in the demo.
STORY_TOWN, STORY_VILLAGE = "义和镇", "太康"


@dataclass(frozen=True)
class DemoConfig:
    seed: int = DEFAULT_SEED
    villages_per_town: int = 12
    grids_per_village: int = 5

    def __post_init__(self) -> None:
        if not 1 <= self.villages_per_town <= 999 or not 1 <= self.grids_per_village <= 999:
            raise ValueError("villages per town and grids per village must be 1–999")


@dataclass
class UnitSpec:
    code: str
    name: str
    short_name: str
    kind: UnitKind
    region_code: str
    parent_code: str | None = None
    duties: str = ""
    one_window: bool = False


@dataclass
class PersonSpec:
    code: str
    name: str
    mobile: str
    unit_code: str
    region_code: str
    roles: tuple[Role, ...]
    title: str
    grid_code: str | None = None  # standing duty for a grid worker


@dataclass
class DemoDistrict:
    regions: list[RegionSpec] = field(default_factory=list)
    units: list[UnitSpec] = field(default_factory=list)
    people: list[PersonSpec] = field(default_factory=list)


def townships() -> list[tuple[str, str]]:
    text = resources.files("cityops.demo").joinpath("data/kaizhou_townships.csv").read_text("utf-8")
    return [(row["name"], row["kind"]) for row in csv.DictReader(text.splitlines())]


def departments() -> list[dict[str, str]]:
    text = (
        resources.files("cityops.demo").joinpath("data/district_departments.csv").read_text("utf-8")
    )
    return list(csv.DictReader(text.splitlines()))


Progress = Callable[[str, int, int], None]


def generate(config: DemoConfig = DemoConfig(), progress: Progress | None = None) -> DemoDistrict:
    rng = np.random.default_rng(config.seed)
    names = NameMaker(rng)
    demo = DemoDistrict()
    outline = district_outline(rng)
    demo.regions.append(RegionSpec(DISTRICT_CODE, DISTRICT_NAME, outline, synthetic=True))

    towns = townships()
    streets = [n for n, kind in towns if kind == "street"]
    # The seat street in the middle, the other streets in a ring around it: a compact town core.
    ring = [
        (SEAT[0] + 0.05 * math.cos(a) / 0.857, SEAT[1] + 0.05 * math.sin(a))
        for a in np.linspace(0, 2 * math.pi, len(streets) - 1, endpoint=False) + 0.3
    ]
    fixed = np.array([SEAT, *ring])
    town_cells = partition(outline, len(towns), rng, fixed=fixed)
    # Streets take the fixed seeds in file order; towns go north → south, west → east.
    rural = sorted(
        range(len(streets), len(towns)),
        key=lambda i: (-round(town_cells[i].centroid.y, 2), town_cells[i].centroid.x),
    )
    order = list(range(len(streets))) + rural
    for number, ((town_name, kind), cell_index) in enumerate(
        zip(towns, order, strict=True), start=1
    ):
        town_code = f"{DISTRICT_CODE}{number:03d}"
        town_geom = town_cells[cell_index]
        demo.regions.append(RegionSpec(town_code, town_name, town_geom, synthetic=True))
        if progress:
            progress(town_name, number, len(towns))
        village_cells = partition(town_geom, config.villages_per_town, rng)
        for v, village_geom in enumerate(village_cells, start=1):
            village_code = f"{town_code}{v:03d}"
            village_name = _village_name(names, town_name, kind, v)
            demo.regions.append(
                RegionSpec(village_code, village_name, village_geom, synthetic=True)
            )
            for g, grid_geom in enumerate(
                partition(village_geom, config.grids_per_village, rng), start=1
            ):
                grid_code = f"{village_code}{g:03d}"
                demo.regions.append(
                    RegionSpec(grid_code, f"{village_name}第{g}网格", grid_geom, synthetic=True)
                )
    _organisation(demo, names, towns)
    return demo


def _village_name(names: NameMaker, town_name: str, kind: str, number: int) -> str:
    stem = town_name[:-2] if town_name.endswith(("街道", "山镇")) else town_name[:-1]
    if town_name == STORY_TOWN and number == 3:
        names.reserve(STORY_VILLAGE)
        return STORY_VILLAGE + "村"
    if number == 1 and kind != "street":
        return stem + "社区"  # the community at the town seat
    return names.place("社区" if kind == "street" else "村")


def _organisation(demo: DemoDistrict, names: NameMaker, towns: list[tuple[str, str]]) -> None:
    seq = iter(range(1, 1_000_000))

    def person(
        unit: str, region: str, roles: tuple[Role, ...], title: str, grid: str | None = None
    ) -> None:
        demo.people.append(
            PersonSpec(
                f"P{next(seq):06d}",
                names.person(),
                names.mobile(),
                unit,
                region,
                roles,
                title,
                grid,
            )
        )

    center = f"DC-{DISTRICT_CODE}"
    demo.units.append(
        UnitSpec(
            center,
            "开州区数字化城市运行和治理中心",
            "区治理中心",
            UnitKind.district_center,
            DISTRICT_CODE,
        )
    )
    person(center, DISTRICT_CODE, (Role.admin,), "系统管理员")
    person(center, DISTRICT_CODE, (Role.district_commander,), "指挥长")
    person(center, DISTRICT_CODE, (Role.leader,), "分管领导")
    for title, role, count in [
        ("值班长", Role.shift_leader, 2),
        ("受理员", Role.intake_operator, 3),
        ("派遣员", Role.dispatcher, 3),
        ("监督员", Role.inspector, 4),
    ]:
        for _ in range(count):
            person(center, DISTRICT_CODE, (role,), title)

    for i, dept in enumerate(departments(), start=1):
        code = f"DEPT-{i:02d}"
        demo.units.append(
            UnitSpec(
                code,
                dept["name"],
                dept["short"],
                UnitKind.department,
                DISTRICT_CODE,
                duties=dept["handles"],
                one_window=i <= 19,
            )
        )
        for _ in range(2):
            person(code, DISTRICT_CODE, (Role.handler,), "业务科室")

    for town in (r for r in demo.regions if len(r.code) == 9):
        tc = f"TC-{town.code}"
        demo.units.append(
            UnitSpec(
                tc,
                f"{town.name}基层治理指挥中心",
                f"{town.name}指挥中心",
                UnitKind.town_center,
                town.code,
                parent_code=center,
            )
        )
        person(tc, town.code, (Role.district_commander,), "镇街指挥长")
        person(tc, town.code, (Role.shift_leader,), "值班长")
        person(tc, town.code, (Role.intake_operator, Role.dispatcher), "受理派遣员")
        for suffix, section in TOWN_SECTIONS:
            sc = f"{tc}-{suffix}"
            demo.units.append(
                UnitSpec(
                    sc,
                    f"{town.name}{section}",
                    section,
                    UnitKind.section,
                    town.code,
                    parent_code=tc,
                )
            )
            person(sc, town.code, (Role.handler,), section)

    for village in (r for r in demo.regions if len(r.code) == 12):
        vs = f"VS-{village.code}"
        demo.units.append(
            UnitSpec(
                vs,
                f"{village.name}便民服务站",
                f"{village.name}",
                UnitKind.village_station,
                village.code,
                parent_code=f"TC-{village.code[:9]}",
            )
        )
        person(vs, village.code, (Role.handler, Role.inspector), "村（社区）专干")

    for grid in (r for r in demo.regions if len(r.code) == 15):
        person(f"VS-{grid.code[:12]}", grid.code, (Role.grid_worker,), "专职网格员", grid=grid.code)


def load(session: Session, demo: DemoDistrict) -> dict[str, int]:
    """Write the demo district (one audit entry for the lot); the caller owns the transaction."""
    from cityops.catalog import service as catalog

    with audit.bulk(session, "demo_load", "district") as summary:
        counts = _load(session, demo)
        counts["categories"] = catalog.load(session).created
        summary.update(counts)
    return counts


def _load(session: Session, demo: DemoDistrict) -> dict[str, int]:
    geo.upsert_regions(session, demo.regions)
    regions = {code: r for code, r in session.execute(select(Region.code, Region))}
    units: dict[str, Unit] = {}
    for spec in demo.units:
        unit = Unit(
            code=spec.code,
            name=spec.name,
            short_name=spec.short_name,
            kind=spec.kind.value,
            region=regions[spec.region_code],
            parent=units[spec.parent_code] if spec.parent_code else None,
            duties=spec.duties,
            one_window=spec.one_window,
        )
        session.add(unit)
        units[spec.code] = unit
    for p in demo.people:
        person = org.add_person(
            session,
            code=p.code,
            name=p.name,
            unit=units[p.unit_code],
            region=regions[p.region_code],
            roles=p.roles,
            mobile=p.mobile,
            title=p.title,
        )
        if p.grid_code:
            org.add_shift(
                session,
                grid=regions[p.grid_code],
                person=person,
                starts_at=STANDING_FROM,
                note="专职网格员（常驻）",
            )
    session.flush()
    return {"regions": len(demo.regions), "units": len(demo.units), "people": len(demo.people)}


def is_loaded(session: Session) -> bool:
    return session.scalar(select(Region.id).where(Region.code == DISTRICT_CODE)) is not None
