"""Region queries, the cached locator and region writes."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shapely.geometry.base import BaseGeometry
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cityops.db import utcnow
from cityops.errors import InvalidInput, NotFound
from cityops.geo.geometry import area_km2, colour_indices, inner_point, to_geojson, to_shape
from cityops.geo.locator import Location, Locator
from cityops.geo.models import LEVEL_BY_LENGTH, GeoState, Level, Region


def get_region(session: Session, code: str) -> Region:
    region = session.scalar(select(Region).where(Region.code == code))
    if region is None:
        raise NotFound(f"区域 {code} 不存在 / region {code} not found", field="code")
    return region


def list_regions(
    session: Session,
    *,
    level: Level | None = None,
    parent: str | None = None,
    limit: int = 500,
    offset: int = 0,
) -> tuple[Sequence[Region], int]:
    query = select(Region)
    if level is not None:
        query = query.where(Region.level == level.value)
    if parent is not None:
        parent_region = get_region(session, parent)
        query = query.where(Region.parent_id == parent_region.id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Region.code).limit(limit).offset(offset)).all()
    return rows, total


def children(session: Session, region: Region) -> Sequence[Region]:
    return session.scalars(
        select(Region).where(Region.parent_id == region.id).order_by(Region.code)
    ).all()


def count_children(session: Session, region: Region) -> int:
    return session.scalar(select(func.count()).where(Region.parent_id == region.id)) or 0


def ancestors(session: Session, region: Region) -> Sequence[Region]:
    """District first; resolved by code prefix, which is how the codes are built."""
    prefixes = [region.code[:n] for n in (6, 9, 12) if n < len(region.code)]
    if not prefixes:
        return []
    return session.scalars(
        select(Region).where(Region.code.in_(prefixes)).order_by(func.length(Region.code))
    ).all()


MAP_PALETTE_SIZE = 12


def feature_collection(regions: Sequence[Region], *, colours: bool = False) -> dict[str, Any]:
    """GeoJSON of the regions; with ``colours``, a ``colour`` index per feature that differs
    between neighbours (for maps)."""
    colour = (
        colour_indices([to_shape(r.geometry) for r in regions], MAP_PALETTE_SIZE)
        if colours
        else None
    )
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": r.code,
                "properties": {
                    "code": r.code,
                    "name": r.name,
                    "level": r.level,
                    "parent": r.parent_code,
                    "center": [r.center_lon, r.center_lat],
                    "area_km2": r.area_km2,
                    "synthetic": r.synthetic,
                }
                | ({"colour": colour[i]} if colour else {}),
                "geometry": r.geometry,
            }
            for i, r in enumerate(regions)
        ],
    }


# --- writes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegionSpec:
    code: str
    name: str
    geometry: BaseGeometry
    synthetic: bool = False

    @property
    def level(self) -> Level:
        return LEVEL_BY_LENGTH[len(self.code)]

    @property
    def parent_code(self) -> str | None:
        return self.code[:-3] if len(self.code) > 6 else None


def upsert_regions(session: Session, specs: Sequence[RegionSpec]) -> tuple[int, int]:
    """Insert or replace regions by code, one level at a time so parents have ids before their
    children. Returns (created, updated). Callers validate first (see ``importer``)."""
    codes = {s.code for s in specs} | {s.parent_code for s in specs if s.parent_code}
    existing = {r.code: r for r in session.scalars(select(Region).where(Region.code.in_(codes)))}
    created = updated = 0
    for level in Level:
        for spec in sorted((s for s in specs if s.level == level), key=lambda s: s.code):
            parent = existing.get(spec.parent_code) if spec.parent_code else None
            values = _region_values(spec, parent)
            region = existing.get(spec.code)
            if region is None:
                region = Region(code=spec.code, **values)
                session.add(region)
                created += 1
            else:
                for key, value in values.items():
                    setattr(region, key, value)
                updated += 1
            existing[spec.code] = region
        session.flush()
    bump_revision(session)
    return created, updated


def _region_values(spec: RegionSpec, parent: Region | None) -> dict[str, Any]:
    lon, lat = inner_point(spec.geometry)
    min_lon, min_lat, max_lon, max_lat = spec.geometry.bounds
    return dict(
        level=spec.level.value,
        name=spec.name,
        parent_id=parent.id if parent else None,
        geometry=to_geojson(spec.geometry),
        center_lon=lon,
        center_lat=lat,
        min_lon=round(min_lon, 6),
        min_lat=round(min_lat, 6),
        max_lon=round(max_lon, 6),
        max_lat=round(max_lat, 6),
        area_km2=round(area_km2(spec.geometry), 4),
        synthetic=spec.synthetic,
    )


def bump_revision(session: Session) -> str:
    revision = uuid.uuid4().hex
    state = session.get(GeoState, 1)
    if state is None:
        session.add(GeoState(id=1, revision=revision, changed_at=utcnow()))
    else:
        state.revision = revision
        state.changed_at = utcnow()
    session.flush()
    return revision


# --- locator ----------------------------------------------------------------------------------

_cache_lock = threading.Lock()
_cache: dict[str, Locator] = {}


def current_revision(session: Session) -> str:
    return session.scalar(select(GeoState.revision).where(GeoState.id == 1)) or "empty"


def build_locator(session: Session) -> Locator:
    rows = session.execute(select(Region.code, Region.level, Region.name, Region.geometry)).all()
    return Locator((code, level, name, to_shape(geom)) for code, level, name, geom in rows)


def get_locator(session: Session) -> Locator:
    """The locator for the regions as this session sees them; rebuilt when the revision moves."""
    revision = current_revision(session)
    key = f"{session.get_bind().engine.url}#{revision}"
    with _cache_lock:
        locator = _cache.get(key)
    if locator is None:
        locator = build_locator(session)
        with _cache_lock:
            _cache.clear()  # one revision per process is enough; old ones are stale
            _cache[key] = locator
    return locator


def locate(session: Session, lat: float, lon: float) -> Location:
    location = get_locator(session).locate(lon, lat)
    if location is None:
        raise InvalidInput(
            f"坐标 ({lat}, {lon}) 不在本辖区范围内 / "
            f"the point ({lat}, {lon}) is outside the district",
            field="lat,lon",
        )
    return location
