"""Geometry helpers: GeoJSON ↔ shapely, areas in km², precision."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import shapely
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

# 1e-6 degree ≈ 0.1 m: finer than any boundary survey, coarse enough to make shared edges exact.
GRID_SIZE = 1e-6
EARTH_RADIUS_KM = 6371.0088


def to_shape(geojson: dict[str, Any]) -> BaseGeometry:
    return shape(geojson)


def to_geojson(geom: BaseGeometry) -> dict[str, Any]:
    """GeoJSON with coordinates rounded to the storage precision (stable bytes across runs)."""
    rounded = shapely.set_precision(geom, GRID_SIZE)
    data: dict[str, Any] = _round_coords(mapping(rounded))
    return data


def _round_coords(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _round_coords(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        if obj and isinstance(obj[0], float | int) and not isinstance(obj[0], bool):
            return [round(float(v), 6) for v in obj]
        return [_round_coords(v) for v in obj]
    return obj


def area_km2(geom: BaseGeometry) -> float:
    """Area on the sphere via a cylindrical equal-area projection at the shape's mid-latitude
    (exact for a sphere; well under 0.5 % off the ellipsoid at Chongqing's latitude)."""
    if geom.is_empty:
        return 0.0
    lat0 = math.radians((geom.bounds[1] + geom.bounds[3]) / 2)
    cos0 = math.cos(lat0)

    def project(coords: np.ndarray) -> np.ndarray:
        lon = np.radians(coords[:, 0])
        lat = np.radians(coords[:, 1])
        return np.column_stack((EARTH_RADIUS_KM * lon * cos0, EARTH_RADIUS_KM * np.sin(lat) / cos0))

    return float(shapely.transform(geom, project).area)


def colour_indices(geoms: list[BaseGeometry], palette_size: int) -> list[int]:
    """Greedy map colouring: neighbours (sharing an edge or a corner) get different indices
    whenever the palette allows, so adjacent regions never blend on the map."""
    if not geoms:
        return []
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    neighbours: dict[int, set[int]] = {i: set() for i in range(len(geoms))}
    for i, j in zip(left.tolist(), right.tolist(), strict=True):
        if i != j:
            neighbours[i].add(j)
    colours: list[int] = []
    used = [0] * palette_size
    for i in range(len(geoms)):
        taken = {colours[j] for j in neighbours[i] if j < i}
        free = [c for c in range(palette_size) if c not in taken]
        # The least-used free colour, so the whole palette shows rather than its first hues.
        pick = min(free, key=lambda c: (used[c], c)) if free else i % palette_size
        used[pick] += 1
        colours.append(pick)
    return colours


def inner_point(geom: BaseGeometry) -> tuple[float, float]:
    c = geom.centroid
    if not geom.contains(c):
        c = geom.point_on_surface()
    return round(c.x, 6), round(c.y, 6)
