"""In-memory point locator over region polygons (shapely 2 STRtree)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

from cityops.geo.models import CODE_LENGTH, Level


@dataclass(frozen=True, slots=True)
class RegionRef:
    code: str
    name: str
    level: str


@dataclass(frozen=True, slots=True)
class Location:
    """The finest region containing a point, and its ancestors."""

    district: RegionRef
    town: RegionRef | None
    village: RegionRef | None
    grid: RegionRef | None

    @property
    def finest(self) -> RegionRef:
        return self.grid or self.village or self.town or self.district


class _LevelIndex:
    def __init__(self, codes: list[str], geoms: list[BaseGeometry]) -> None:
        self.codes = np.array(codes, dtype=object)
        self.geoms = np.array(geoms, dtype=object)
        shapely.prepare(self.geoms)
        self.tree = shapely.STRtree(self.geoms)

    def query(
        self, points: NDArray[np.object_], lons: NDArray[np.float64], lats: NDArray[np.float64]
    ) -> NDArray[np.intp]:
        """Index of the containing polygon per point, -1 where none.

        Bounding-box candidates from the tree, then ``contains_xy`` on the prepared polygons:
        the same answer as ``query(predicate="within")`` in well under half the time."""
        point_i, poly_i = self.tree.query(points)
        inside = shapely.contains_xy(self.geoms[poly_i], lons[point_i], lats[point_i])
        found = np.full(len(points), -1, dtype=np.intp)
        found[point_i[inside]] = poly_i[inside]
        return found


class Locator:
    """Maps WGS-84 points to grid → village → town → district.

    Levels are searched finest first, so a district whose towns have no grids yet (say, freshly
    imported real boundaries) still locates points to the finest level it has.
    """

    def __init__(self, regions: Iterable[tuple[str, str, str, BaseGeometry]]) -> None:
        by_level: dict[str, tuple[list[str], list[BaseGeometry]]] = {lv: ([], []) for lv in Level}
        self._refs: dict[str, RegionRef] = {}
        for code, level, name, geom in regions:
            by_level[level][0].append(code)
            by_level[level][1].append(geom)
            self._refs[code] = RegionRef(code, name, level)
        finest_first = [Level.grid, Level.village, Level.town, Level.district]
        self._levels = [_LevelIndex(*by_level[lv]) for lv in finest_first if by_level[lv][0]]

    def __len__(self) -> int:
        return len(self._refs)

    def locate_code(self, lon: float, lat: float) -> str | None:
        point = shapely.Point(lon, lat)
        for index in self._levels:
            hits = index.tree.query(point, predicate="within")
            if len(hits):
                return str(index.codes[hits[0]])
        return None

    def locate(self, lon: float, lat: float) -> Location | None:
        code = self.locate_code(lon, lat)
        return self.location_of(code) if code else None

    def locate_many(
        self, lons: NDArray[np.float64], lats: NDArray[np.float64]
    ) -> NDArray[np.object_]:
        """Finest region code per point (None outside): the batched path for imports and replays."""
        lons = np.asarray(lons, dtype=float)
        lats = np.asarray(lats, dtype=float)
        points = shapely.points(lons, lats)
        result = np.full(len(points), None, dtype=object)
        todo: NDArray[np.intp] | None = None  # None: every point (saves a copy on the first level)
        for index in self._levels:
            if todo is None:
                found = index.query(points, lons, lats)
                hit = found >= 0
                result[hit] = index.codes[found[hit]]
                todo = np.flatnonzero(~hit)
            else:
                if not len(todo):
                    break
                found = index.query(points[todo], lons[todo], lats[todo])
                hit = found >= 0
                result[todo[hit]] = index.codes[found[hit]]
                todo = todo[~hit]
        return result

    def location_of(self, code: str) -> Location:
        chain: dict[str, RegionRef | None] = {lv.value: None for lv in Level}
        for level in Level:
            prefix = code[: CODE_LENGTH[level]]
            if len(prefix) == CODE_LENGTH[level] and prefix in self._refs:
                chain[level.value] = self._refs[prefix]
        district = chain["district"]
        assert district is not None, f"region {code} has no district in the locator"
        return Location(district, chain["town"], chain["village"], chain["grid"])
