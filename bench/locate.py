"""Locator benchmark: CityOps next to raw shapely STRtree, measured in the same run.

    make bench            # or: .venv/bin/python bench/locate.py --points 500000

Batched: 500,000 random points inside the demo district (default 2,400 grids). The baseline is
``STRtree(grids).query(points, predicate="within")`` on points built in advance; CityOps is
``Locator.locate_many(lons, lats)`` from bare coordinates to region codes (building the points,
the query, mapping to codes, and the coarser-level fallback for points on no grid). Target:
CityOps ≥ 0.8× raw. Single point: ``Locator.locate(lon, lat)`` p50/p99, target p99 < 0.5 ms.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import shapely
from rich.console import Console
from rich.table import Table

from cityops.demo import district
from cityops.geo.locator import Locator


def random_points_inside(outline: shapely.Polygon, n: int, rng: np.random.Generator) -> np.ndarray:
    min_x, min_y, max_x, max_y = outline.bounds
    shapely.prepare(outline)
    chunks, have = [], 0
    while have < n:
        xy = rng.uniform((min_x, min_y), (max_x, max_y), size=(n, 2))
        inside = xy[shapely.contains_xy(outline, xy[:, 0], xy[:, 1])]
        chunks.append(inside)
        have += len(inside)
    return np.vstack(chunks)[:n]


def best_of(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--points", type=int, default=500_000)
    parser.add_argument("--single", type=int, default=20_000, help="single-point lookups to time")
    parser.add_argument("--villages-per-town", type=int, default=12)
    parser.add_argument("--grids-per-village", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    console = Console()

    with console.status("building the demo district…"):
        demo = district.generate(
            district.DemoConfig(
                villages_per_town=args.villages_per_town, grids_per_village=args.grids_per_village
            )
        )
    grids = [r for r in demo.regions if len(r.code) == 15]
    locator = Locator((r.code, r.level.value, r.name, r.geometry) for r in demo.regions)
    rng = np.random.default_rng(1)
    xy = random_points_inside(demo.regions[0].geometry, args.points, rng)
    lons, lats = xy[:, 0].copy(), xy[:, 1].copy()

    raw_tree = shapely.STRtree([g.geometry for g in grids])
    raw_points = shapely.points(lons, lats)

    # Same answers first: a fast wrong locator is no locator.
    codes = locator.locate_many(lons, lats)
    pairs = raw_tree.query(raw_points, predicate="within")
    raw_codes = np.full(len(lons), None, dtype=object)
    raw_codes[pairs[0]] = np.array([g.code for g in grids], dtype=object)[pairs[1]]
    hit = raw_codes != None  # noqa: E711 — elementwise on an object array
    agree = bool(np.all(codes[hit] == raw_codes[hit]))

    with console.status("timing batched lookups…"):
        raw_s = best_of(lambda: raw_tree.query(raw_points, predicate="within"), args.repeat)
        ours_s = best_of(lambda: locator.locate_many(lons, lats), args.repeat)

    with console.status("timing single lookups…"):
        ours_single, raw_single = [], []
        for lon, lat in zip(lons[: args.single], lats[: args.single], strict=True):
            t0 = time.perf_counter()
            locator.locate(lon, lat)
            t1 = time.perf_counter()
            raw_tree.query(shapely.Point(lon, lat), predicate="within")
            t2 = time.perf_counter()
            ours_single.append((t1 - t0) * 1e3)
            raw_single.append((t2 - t1) * 1e3)

    n = len(lons)
    table = Table(title=f"locator: {n:,} points inside the district, {len(grids):,} grids")
    table.add_column("measure")
    table.add_column("CityOps", justify="right")
    table.add_column("raw STRtree", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("target", justify="right")
    ratio = raw_s / ours_s
    table.add_row(
        "batched points/s", f"{n / ours_s:,.0f}", f"{n / raw_s:,.0f}", f"{ratio:.2f}×", "≥ 0.80×"
    )
    for q in (50, 99):
        table.add_row(
            f"single lookup p{q} (ms)",
            f"{percentile(ours_single, q):.4f}",
            f"{percentile(raw_single, q):.4f}",
            "",
            "p99 < 0.5 ms" if q == 99 else "",
        )
    table.add_row(
        "single lookup mean (ms)",
        f"{statistics.fmean(ours_single):.4f}",
        f"{statistics.fmean(raw_single):.4f}",
        "",
        "",
    )
    console.print(table)
    located = int(np.count_nonzero(codes != None))  # noqa: E711
    console.print(
        f"answers agree with raw STRtree: {'yes' if agree else 'NO'}; "
        f"{located:,} of {n:,} points located; grid hits {int(hit.sum()):,}"
    )
    ok = agree and ratio >= 0.8 and percentile(ours_single, 99) < 0.5
    console.print("[bold green]targets met[/]" if ok else "[bold red]targets missed[/]")


if __name__ == "__main__":
    main()
