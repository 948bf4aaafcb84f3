from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from cityops.demo.district import DemoDistrict
from cityops.geo.locator import Locator
from cityops.geo.service import RegionSpec


@pytest.fixture(scope="module")
def regions(small_demo: DemoDistrict) -> list[RegionSpec]:
    return small_demo.regions


@pytest.fixture(scope="module")
def locator(regions: list[RegionSpec]) -> Locator:
    return Locator((r.code, r.level.value, r.name, r.geometry) for r in regions)


def brute_force(regions: list[RegionSpec], lon: float, lat: float) -> set[str]:
    """Every grid whose polygon contains the point (no index)."""
    p = shapely.Point(lon, lat)
    return {r.code for r in regions if len(r.code) == 15 and r.geometry.contains(p)}


# The demo district lies inside Kaizhou's bounding box; sample a margin around it as well so
# points outside the district are exercised too.
lons = st.floats(min_value=107.85, max_value=108.95, allow_nan=False)
lats = st.floats(min_value=30.78, max_value=31.75, allow_nan=False)


@settings(max_examples=400, deadline=None)
@given(lon=lons, lat=lats)
def test_locator_agrees_with_brute_force(
    locator: Locator, regions: list[RegionSpec], lon: float, lat: float
) -> None:
    expected = brute_force(regions, lon, lat)
    found = locator.locate(lon, lat)
    if not expected:
        assert found is None or found.grid is None
    else:
        assert found is not None and found.grid is not None
        assert found.grid.code in expected
        # The chain is consistent: the grid's village and town are its ancestors by code.
        assert found.village is not None and found.grid.code.startswith(found.village.code)
        assert found.town is not None and found.village.code.startswith(found.town.code)
        assert found.district.code == "500154"


def test_batched_and_single_lookups_agree(locator: Locator) -> None:
    rng = np.random.default_rng(7)
    lon = rng.uniform(107.9, 108.9, 3000)
    lat = rng.uniform(30.8, 31.7, 3000)
    batch = locator.locate_many(lon, lat)
    single = [locator.locate_code(x, y) for x, y in zip(lon, lat, strict=True)]
    assert list(batch) == single
    assert sum(c is not None for c in single) > 1000  # most points fall inside the district


def test_points_outside_are_not_located(locator: Locator) -> None:
    assert locator.locate(116.40, 39.90) is None  # Beijing
    assert locator.locate_many(np.array([116.4]), np.array([39.9]))[0] is None


def test_falls_back_to_coarser_levels_when_a_town_has_no_grids(regions: list[RegionSpec]) -> None:
    without_grids = [r for r in regions if len(r.code) <= 9]
    loc = Locator((r.code, r.level.value, r.name, r.geometry) for r in without_grids)
    town = without_grids[5]
    p = town.geometry.representative_point()
    found = loc.locate(p.x, p.y)
    assert found is not None and found.finest.code == town.code and found.grid is None
