"""Synthetic district geometry: a smooth outline tiled by Voronoi cells at every level.

Nothing here is surveyed. The outline has Kaizhou's area and sits inside its real bounding box
around the district seat; towns, villages and grids are Lloyd-relaxed Voronoi cells clipped to
their parent, so each level tiles the one above it exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Point, Polygon, box
from shapely.geometry.base import BaseGeometry

from cityops.geo.geometry import GRID_SIZE, area_km2

# Kaizhou: 30°49′30″–31°41′30″ N, 107°55′48″–108°54′ E; seat 汉丰街道; about 3,959 km².
BBOX = (107.93, 30.83, 108.90, 31.69)
SEAT = (108.39, 31.16)
CENTER = (108.42, 31.24)
TARGET_AREA_KM2 = 3959.0
KM_PER_DEG_LAT = 110.57
KM_PER_DEG_LON = 111.32 * math.cos(math.radians(CENTER[1]))


def district_outline(rng: np.random.Generator) -> Polygon:
    """A smooth, mountain-district-like blob of the target area inside the bounding box."""
    theta = np.linspace(0, 2 * math.pi, 256, endpoint=False)
    radius = np.ones_like(theta)
    for k in range(2, 9):
        radius += rng.uniform(0.04, 0.11) / k**0.6 * np.cos(k * theta + rng.uniform(0, 2 * math.pi))
    # Kaizhou runs longer north–south than east–west.
    x_km, y_km = radius * np.cos(theta) * 0.93, radius * np.sin(theta) * 1.08
    bounds = box(*BBOX)
    scale = 30.0
    shape: BaseGeometry = Polygon()
    for _ in range(8):
        lon = CENTER[0] + scale * x_km / KM_PER_DEG_LON
        lat = CENTER[1] + scale * y_km / KM_PER_DEG_LAT
        shape = shapely.intersection(
            Polygon(np.column_stack((lon, lat))), bounds, grid_size=GRID_SIZE
        )
        area = area_km2(shape)
        if abs(area - TARGET_AREA_KM2) < 0.5:
            break
        scale *= math.sqrt(TARGET_AREA_KM2 / area)
    assert isinstance(shape, Polygon) and shape.contains(Point(SEAT))
    return shape


def _to_plane(xy: np.ndarray) -> np.ndarray:
    """Degrees → an isotropic plane (km), so Voronoi cells are not stretched north–south."""
    return np.column_stack((xy[:, 0] * KM_PER_DEG_LON, xy[:, 1] * KM_PER_DEG_LAT))


def _from_plane(xy: np.ndarray) -> np.ndarray:
    return np.column_stack((xy[:, 0] / KM_PER_DEG_LON, xy[:, 1] / KM_PER_DEG_LAT))


def sample_points(
    parent: BaseGeometry, n: int, rng: np.random.Generator, candidates: int = 12
) -> np.ndarray:
    """Mitchell's best-candidate sampling: well spread points inside ``parent`` (degrees)."""
    min_x, min_y, max_x, max_y = parent.bounds
    prepared = shapely.prepared.prep(parent) if hasattr(shapely, "prepared") else parent
    chosen: list[tuple[float, float]] = []
    while len(chosen) < n:
        best, best_d = None, -1.0
        tries = 0
        while tries < candidates:
            x, y = rng.uniform(min_x, max_x), rng.uniform(min_y, max_y)
            if not prepared.contains(Point(x, y)):
                continue
            tries += 1
            if not chosen:
                best = (x, y)
                break
            pts = _to_plane(np.array(chosen))
            here = _to_plane(np.array([[x, y]]))[0]
            d = float(np.min(np.hypot(pts[:, 0] - here[0], pts[:, 1] - here[1])))
            if d > best_d:
                best, best_d = (x, y), d
        assert best is not None
        chosen.append(best)
    return np.array(chosen)


def voronoi_cells(parent: BaseGeometry, seeds: np.ndarray) -> list[BaseGeometry]:
    """One cell per seed (same order), clipped to ``parent`` on the storage precision grid."""
    plane = _to_plane(seeds)
    envelope = shapely.transform(box(*parent.bounds).buffer(0.5), _to_plane)
    cells = shapely.voronoi_polygons(shapely.multipoints(plane), extend_to=envelope, ordered=True)
    out = []
    for cell in shapely.get_parts(cells):
        back = shapely.transform(cell, _from_plane)
        out.append(shapely.intersection(back, parent, grid_size=GRID_SIZE))
    return out


def partition(
    parent: BaseGeometry,
    n: int,
    rng: np.random.Generator,
    *,
    fixed: np.ndarray | None = None,
    iterations: int = 3,
) -> list[BaseGeometry]:
    """Split ``parent`` into ``n`` cells. ``fixed`` seeds (first in the result) do not move during
    Lloyd relaxation; the rest drift to their cell centroids for even, compact shapes."""
    fixed = np.empty((0, 2)) if fixed is None else fixed
    free = sample_points(parent, n - len(fixed), rng) if n > len(fixed) else np.empty((0, 2))
    for _ in range(iterations):
        cells = voronoi_cells(parent, np.vstack((fixed, free)))
        moved = []
        for cell in cells[len(fixed) :]:
            c = cell.centroid
            moved.append((c.x, c.y) if parent.contains(c) else cell.point_on_surface().coords[0])
        free = np.array(moved) if moved else free
    cells = voronoi_cells(parent, np.vstack((fixed, free)))
    return dissolve_fragments(cells)


def dissolve_fragments(cells: Sequence[BaseGeometry]) -> list[BaseGeometry]:
    """Clipping a cell to a concave parent can cut it in pieces; give each stray piece to the
    neighbour it shares the longest edge with, so every region is one polygon."""
    cells = list(cells)
    for _ in range(5):
        changed = False
        for i, cell in enumerate(cells):
            if not isinstance(cell, MultiPolygon):
                continue
            parts = sorted(cell.geoms, key=lambda p: p.area, reverse=True)
            keep: list[BaseGeometry] = [parts[0]]
            for part in parts[1:]:
                shared = [
                    (part.boundary.intersection(other.boundary).length, j)
                    for j, other in enumerate(cells)
                    if j != i and part.intersects(other)
                ]
                length, j = max(shared, default=(0.0, -1))
                if length <= 0:
                    keep.append(part)  # an island: it stays with its own region
                    continue
                cells[j] = shapely.union(cells[j], part, grid_size=GRID_SIZE)
                changed = True
            cells[i] = keep[0] if len(keep) == 1 else MultiPolygon(keep)
        if not changed:
            break
    return cells
