"""Import of real boundaries from GeoJSON: validate everything, then write all or nothing."""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.auth import audit
from cityops.errors import InvalidInput
from cityops.geo.geometry import to_shape
from cityops.geo.models import LEVEL_BY_LENGTH, Region
from cityops.geo.service import RegionSpec, upsert_regions

CODE_RE = re.compile(r"^\d{6}(\d{3}){0,3}$")
# Shared boundaries digitised separately never match to the last digit; slivers below this
# share of the smaller area are tolerated rather than reported as overlaps.
AREA_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Problem:
    code: str
    message: str


class ImportRejected(InvalidInput):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} problem(s); nothing was imported")
        self.problems = problems


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int


def import_file(session: Session, path: Path, *, synthetic: bool = False) -> ImportResult:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImportRejected([Problem("-", f"cannot read {path}: {exc}")]) from None
    return import_geojson(session, data, synthetic=synthetic)


def import_geojson(session: Session, data: Any, *, synthetic: bool = False) -> ImportResult:
    specs, problems = parse_features(data, synthetic=synthetic)
    problems += check_topology(session, specs)  # on the readable features: one pass reports all
    if problems:
        raise ImportRejected(problems)
    with audit.bulk(session, "import", "regions") as summary:
        created, updated = upsert_regions(session, specs)
        summary.update(created=created, updated=updated, codes=sorted(s.code for s in specs)[:100])
    return ImportResult(created, updated)


def parse_features(data: Any, *, synthetic: bool = False) -> tuple[list[RegionSpec], list[Problem]]:
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        return [], [Problem("-", "the file must be a GeoJSON FeatureCollection")]
    features = data.get("features")
    if not isinstance(features, list) or not features:
        return [], [Problem("-", "the FeatureCollection has no features")]
    specs: list[RegionSpec] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    for number, feature in enumerate(features, start=1):
        spec, feature_problems = _parse_feature(number, feature, synthetic)
        problems.extend(feature_problems)
        if spec is None:
            continue
        if spec.code in seen:
            problems.append(Problem(spec.code, "code appears more than once in the file"))
            continue
        seen.add(spec.code)
        specs.append(spec)
    return specs, problems


def _parse_feature(
    number: int, feature: Any, synthetic: bool
) -> tuple[RegionSpec | None, list[Problem]]:
    where = f"feature #{number}"
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        return None, [Problem(where, "not a GeoJSON Feature")]
    props = feature.get("properties") or {}
    code = props.get("code")
    if not isinstance(code, str) or not CODE_RE.match(code):
        return None, [
            Problem(
                where, "properties.code must be 6, 9, 12 or 15 digits (division+town+village+grid)"
            )
        ]
    problems: list[Problem] = []
    name = props.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        problems.append(Problem(code, "properties.name must be 1–100 characters"))
    level = props.get("level")
    if level is not None and level != LEVEL_BY_LENGTH[len(code)].value:
        problems.append(
            Problem(code, f"properties.level {level!r} does not match a {len(code)}-digit code")
        )
    geom, geom_problem = _parse_geometry(feature.get("geometry"))
    if geom_problem:
        problems.append(Problem(code, geom_problem))
    if problems or geom is None:
        return None, problems
    return RegionSpec(code=code, name=str(name).strip(), geometry=geom, synthetic=synthetic), []


def _parse_geometry(raw: Any) -> tuple[BaseGeometry | None, str | None]:
    if not isinstance(raw, dict) or raw.get("type") not in {"Polygon", "MultiPolygon"}:
        return None, "geometry must be a Polygon or MultiPolygon"
    try:
        geom = to_shape(raw)
    except (ValueError, TypeError, KeyError, IndexError, shapely.errors.GEOSException) as exc:
        return None, f"geometry cannot be read: {exc}"
    if geom.is_empty:
        return None, "geometry is empty"
    min_lon, min_lat, max_lon, max_lat = geom.bounds
    if not all(math.isfinite(v) for v in geom.bounds):
        return None, "geometry has non-finite coordinates"
    if min_lon < -180 or max_lon > 180 or min_lat < -90 or max_lat > 90:
        return None, "coordinates must be WGS-84 longitude, latitude in degrees"
    if not geom.is_valid:
        return None, f"invalid polygon: {explain_validity(geom)}"
    return geom, None


def check_topology(session: Session, specs: list[RegionSpec]) -> list[Problem]:
    """Parents exist; children stay inside them; siblings do not overlap — judged on the regions
    as they would be after the import (the file's regions replace stored ones of the same code).
    """
    in_file = {s.code: s.geometry for s in specs}
    parents_needed = {s.parent_code for s in specs if s.parent_code} - in_file.keys()
    touched_parents = {s.parent_code for s in specs}
    stored: dict[str, tuple[str | None, BaseGeometry]] = {}
    wanted = parents_needed | {p for p in touched_parents if p}
    if wanted:
        for code, geom in session.execute(
            select(Region.code, Region.geometry).where(Region.code.in_(wanted))
        ):
            stored[code] = (code[:-3] if len(code) > 6 else None, to_shape(geom))
    problems: list[Problem] = []
    geometry_of = {c: g for c, (_, g) in stored.items()} | in_file
    for spec in specs:
        parent = spec.parent_code
        if parent is None:
            continue
        parent_geom = geometry_of.get(parent)
        if parent_geom is None:
            problems.append(
                Problem(spec.code, f"parent region {parent} is neither stored nor in the file")
            )
            continue
        outside = spec.geometry.difference(parent_geom).area
        if outside > AREA_TOLERANCE * spec.geometry.area:
            share = 100 * outside / spec.geometry.area
            problems.append(
                Problem(
                    spec.code, f"extends outside its parent {parent} ({share:.2f} % of its area)"
                )
            )
    problems.extend(_sibling_overlaps(session, specs, in_file))
    return problems


def _sibling_overlaps(
    session: Session, specs: list[RegionSpec], in_file: dict[str, BaseGeometry]
) -> list[Problem]:
    groups: dict[str | None, dict[str, BaseGeometry]] = defaultdict(dict)
    parents = {s.parent_code for s in specs}
    stored_parent_ids = {
        code: rid
        for code, rid in session.execute(
            select(Region.code, Region.id).where(Region.code.in_([p for p in parents if p]))
        )
    }
    if stored_parent_ids:
        for code, geom in session.execute(
            select(Region.code, Region.geometry).where(
                Region.parent_id.in_(stored_parent_ids.values())
            )
        ):
            if code not in in_file:
                groups[code[:-3]][code] = to_shape(geom)
    for spec in specs:
        groups[spec.parent_code][spec.code] = spec.geometry
    problems: list[Problem] = []
    new_codes = set(in_file)
    for siblings in groups.values():
        codes = list(siblings)
        geoms = [siblings[c] for c in codes]
        tree = shapely.STRtree(geoms)
        left, right = tree.query(geoms, predicate="intersects")
        for i, j in zip(left, right, strict=True):
            if i >= j or (codes[i] not in new_codes and codes[j] not in new_codes):
                continue
            shared = geoms[i].intersection(geoms[j]).area
            if shared > AREA_TOLERANCE * min(geoms[i].area, geoms[j].area):
                a, b = sorted((codes[i], codes[j]))
                problems.append(Problem(a, f"overlaps its sibling {b}"))
    return problems
