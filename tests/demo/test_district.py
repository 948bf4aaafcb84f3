"""The demo district's geometry is a proper hierarchy and is built the same way every time."""

from __future__ import annotations

import csv
import hashlib
from collections import defaultdict
from pathlib import Path

import pytest
import shapely
from sqlalchemy.orm import sessionmaker

from cityops import migrate
from cityops.db import make_engine, transaction
from cityops.demo import district
from cityops.demo.geometry import BBOX, SEAT, TARGET_AREA_KM2
from cityops.exports import export_all
from cityops.geo.geometry import area_km2
from cityops.geo.importer import CODE_RE
from cityops.geo.service import RegionSpec

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "kaizhou_townships.csv"


@pytest.fixture(scope="module")
def full() -> district.DemoDistrict:
    return district.generate()


def by_parent(regions: list[RegionSpec]) -> dict[str, list[RegionSpec]]:
    groups: dict[str, list[RegionSpec]] = defaultdict(list)
    for r in regions:
        if r.parent_code:
            groups[r.parent_code].append(r)
    return groups


def test_default_size_and_names(full: district.DemoDistrict) -> None:
    levels = defaultdict(int)
    for r in full.regions:
        levels[r.level.value] += 1
    assert dict(levels) == {"district": 1, "town": 40, "village": 480, "grid": 2400}
    towns = [r.name for r in full.regions if r.level.value == "town"]
    assert towns == [name for name, _kind in district.townships()]
    if SHARED.exists():  # the package's copy is the shared reference list
        assert towns == [row["name"] for row in csv.DictReader(SHARED.open(encoding="utf-8"))]
    yihe = next(r for r in full.regions if r.name == "义和镇")
    assert any(r.name == "太康村" and r.parent_code == yihe.code for r in full.regions)


def test_codes_unique_and_well_formed(full: district.DemoDistrict) -> None:
    codes = [r.code for r in full.regions]
    assert len(codes) == len(set(codes))
    assert all(CODE_RE.match(c) for c in codes)
    assert all(r.parent_code is None or r.parent_code in set(codes) for r in full.regions)
    assert codes[1] == "500154001" and "500154040012005" in codes


def test_district_outline(full: district.DemoDistrict) -> None:
    outline = full.regions[0].geometry
    assert outline.is_valid
    assert area_km2(outline) == pytest.approx(TARGET_AREA_KM2, rel=0.002)
    min_lon, min_lat, max_lon, max_lat = outline.bounds
    assert BBOX[0] <= min_lon and max_lon <= BBOX[2] and BBOX[1] <= min_lat and max_lat <= BBOX[3]
    assert outline.contains(shapely.Point(SEAT))


def test_children_tile_their_parent(full: district.DemoDistrict) -> None:
    """Towns tile the district, villages their town, grids their village: valid polygons, no
    overlaps between siblings, and their union follows the parent's boundary to within the
    storage precision (coordinates are kept to 1e-6 degree, about 0.1 m)."""
    geometry = {r.code: r.geometry for r in full.regions}
    for parent_code, children in by_parent(full.regions).items():
        parent = geometry[parent_code]
        geoms = [c.geometry for c in children]
        assert all(g.is_valid and not g.is_empty for g in geoms), parent_code
        # No overlaps and matching shared edges (GEOS coverage validation).
        assert bool(shapely.coverage_is_valid(shapely.GeometryCollection(geoms))), parent_code
        union = shapely.coverage_union_all(geoms)
        assert union.hausdorff_distance(parent) < 2e-6, parent_code  # < 0.2 m anywhere
        assert union.symmetric_difference(parent).area < 2e-4 * parent.area, parent_code
        assert sum(g.area for g in geoms) == pytest.approx(parent.area, rel=2e-4), parent_code


def test_every_region_is_a_single_polygon(full: district.DemoDistrict) -> None:
    assert {r.geometry.geom_type for r in full.regions} == {"Polygon"}


def test_organisation(full: district.DemoDistrict) -> None:
    kinds = defaultdict(int)
    for u in full.units:
        kinds[u.kind.value] += 1
    assert kinds["district_center"] == 1 and kinds["town_center"] == 40
    assert kinds["village_station"] == 480 and kinds["department"] == 21
    assert sum(u.one_window for u in full.units) == 19
    grid_workers = [p for p in full.people if p.grid_code]
    assert len(grid_workers) == 2400 and len({p.grid_code for p in grid_workers}) == 2400
    assert len({p.code for p in full.people}) == len(full.people)


def test_same_seed_same_bytes(tmp_path: Path, small_demo: district.DemoDistrict) -> None:
    """Two independent builds (generate → database → export) are byte-identical."""
    digests = []
    for run in ("a", "b"):
        engine = make_engine(f"sqlite:///{tmp_path / run}.db")
        migrate.upgrade(engine)
        with transaction(sessionmaker(bind=engine)) as session:
            district.load(
                session,
                district.generate(district.DemoConfig(villages_per_town=3, grids_per_village=2)),
            )
        with transaction(sessionmaker(bind=engine)) as session:
            files = export_all(session, tmp_path / f"export-{run}")
        engine.dispose()
        digests.append({f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files})
    assert digests[0] == digests[1]
    assert set(digests[0]) == {"regions.geojson", "units.csv", "people.csv", "duty.csv"}


def test_full_generation_is_deterministic(full: district.DemoDistrict) -> None:
    again = district.generate()
    assert [(r.code, r.name, r.geometry.wkb) for r in again.regions] == [
        (r.code, r.name, r.geometry.wkb) for r in full.regions
    ]
    assert again.people == full.people


def test_another_seed_gives_another_district() -> None:
    a = district.generate(district.DemoConfig(seed=1, villages_per_town=2, grids_per_village=1))
    b = district.generate(district.DemoConfig(seed=2, villages_per_town=2, grids_per_village=1))
    assert a.regions[0].geometry.wkb != b.regions[0].geometry.wkb


def test_export_says_geometry_is_synthetic(
    tmp_path: Path, tmp_db: str, small_demo: district.DemoDistrict
) -> None:
    engine = make_engine(tmp_db)
    migrate.upgrade(engine)
    with transaction(sessionmaker(bind=engine)) as session:
        district.load(session, small_demo)
        export_all(session, tmp_path)
    engine.dispose()
    text = (tmp_path / "regions.geojson").read_text(encoding="utf-8")
    assert '"synthetic_geometry":true' in text and '"synthetic":true' in text


def test_export_masks_phone_numbers_unless_asked(
    tmp_path: Path, tmp_db: str, small_demo: district.DemoDistrict
) -> None:
    from sqlalchemy import func, select

    from cityops.auth.models import AuditEntry

    engine = make_engine(tmp_db)
    migrate.upgrade(engine)
    with transaction(sessionmaker(bind=engine)) as session:
        district.load(session, small_demo)
        export_all(session, tmp_path / "masked")
        export_all(session, tmp_path / "full", unmask=True)
        unmasked = session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "unmask")
        )
    engine.dispose()
    masked = list(csv.DictReader((tmp_path / "masked" / "people.csv").open(encoding="utf-8")))
    full = list(csv.DictReader((tmp_path / "full" / "people.csv").open(encoding="utf-8")))
    assert all(row["mobile"][3:7] == "****" for row in masked)
    assert all(row["mobile"].isdigit() and len(row["mobile"]) == 11 for row in full)
    assert unmasked == 1
