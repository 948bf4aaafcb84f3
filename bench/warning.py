"""Landslide warning benchmark: CityOps next to a plain baseline of the same work, same run.

    .venv/bin/python bench/warning.py                      # SQLite and PostgreSQL
    .venv/bin/python bench/warning.py --db sqlite --monitors 200 --households 1000

Measured:

* analytics — ``displacement.analyse`` (clean, smooth, midpoint velocity, acceleration, tangent
  angle, persistence, inverse-velocity fit) on --monitors GNSS series of --days days of hourly
  data, plus ``rainfall.analyse`` on one gauge per 10 monitors; baseline: the bare numpy core of
  the same arithmetic on the same arrays (``np.diff`` velocities and one ``np.polyfit`` per
  series). Target: < 10 s for 1,000 monitors × 90 days.
* issue — ``workflow.issue`` of a red warning on a risk point whose zone holds --households
  households (each with a phone): the CAP Alert, one SMS outbox row per household, the evacuation
  with one entry per household, tasks for the grid workers; one transaction. Baseline: the same
  number of outbox-shaped and entry-shaped rows written raw into plain tables (SQLite
  ``executemany``; PostgreSQL ``COPY``) in one transaction. Target: < 5 s for 5,000 households.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from sqlalchemy import insert, select

sys.path.insert(0, str(Path(__file__).parent))
from cityops import migrate
from cityops.db import make_engine, session_factory, transaction, utcnow
from cityops.demo import district
from cityops.geo.models import Region
from cityops.warning import displacement, rainfall, workflow, zones
from cityops.warning.models import Household, RiskPoint
from events import scratch_database

HOUR_MS = 3_600_000


# --- analytics --------------------------------------------------------------------------------


def series(monitors: int, days: int, seed: int = 7) -> list[tuple[np.ndarray, np.ndarray]]:
    """Creep with noise; one in ten series accelerates towards failure in its last days. The
    analytics run on the hourly step (their most demanding setting; points default to daily)."""
    rng = np.random.default_rng(seed)
    n = days * 24
    t_ms = (np.arange(n, dtype=np.int64) * HOUR_MS) + 1_750_000_000_000
    t_d = np.arange(n) / 24.0
    out = []
    for i in range(monitors):
        v0 = rng.uniform(0.1, 0.5)
        s = v0 * t_d + rng.normal(0, 0.3, n)
        if i % 10 == 0:
            tf = days + rng.uniform(0.5, 3)
            s += 5 * np.log(tf / np.maximum(tf - t_d, 1e-3))
        out.append((t_ms, s))
    return out


def rain_series(gauges: int, days: int, seed: int = 8) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    n = days * 24
    t_ms = (np.arange(n, dtype=np.int64) * HOUR_MS) + 1_750_000_000_000
    return [
        (t_ms, np.where(rng.random(n) < 0.1, rng.gamma(1.5, 4.0, n), 0.0)) for _ in range(gauges)
    ]


def analytics(monitors: int, days: int) -> tuple[float, float]:
    data = series(monitors, days)
    rain = rain_series(max(1, monitors // 10), days)
    t0 = time.perf_counter()
    for t, s in data:
        displacement.analyse(t, s, displacement.DisplacementConfig(v_uniform=0.3, step_h=1.0))
    for t, mm in rain:
        rainfall.analyse(t, mm)
    ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    for t, s in data:
        days_ = (t - t[0]) / 86_400_000
        v = np.diff(s) / np.diff(days_)
        mid = (days_[1:] + days_[:-1]) / 2
        np.degrees(np.arctan(v / 0.3))
        pos = v > 0
        if pos.sum() > 2:
            np.polyfit(mid[pos][-48:], 1 / v[pos][-48:], 1)
    for _t, mm in rain:
        np.convolve(mm, np.ones(24), "valid")
    base = time.perf_counter() - t0
    return ours, base


# --- issuing ----------------------------------------------------------------------------------


def prepare(url: str, households: int) -> str:
    """A district, one risk point whose zone holds ``households`` households; returns its code."""
    engine = make_engine(url)
    migrate.upgrade(engine)
    now = utcnow()
    with transaction(session_factory(engine)) as session:
        district.load(session, district.generate(district.DemoConfig(3, 2)))
        grid = session.scalars(select(Region).where(Region.level == "grid")).first()
        assert grid is not None
        lat, lon = grid.center_lat, grid.center_lon
        d = 0.01
        ring = [[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d]]
        polygon = zones.parse_zone({"type": "Polygon", "coordinates": [ring]})
        point = RiskPoint(
            code="BENCH-RP",
            name="基准滑坡",
            hazard="landslide",
            region_code=grid.code,
            lat=lat,
            lon=lon,
            zone={},
            min_lon=0,
            min_lat=0,
            max_lon=0,
            max_lat=0,
            created_at=now,
            updated_at=now,
        )
        session.add(point)
        session.flush()
        side = math.ceil(math.sqrt(households))
        session.execute(
            insert(Household),
            [
                {
                    "code": f"H{i:06d}",
                    "head_name": f"住户{i}",
                    "address": f"基准村 {i} 号",
                    "region_code": grid.code,
                    "lat": lat - d * 0.9 + 1.8 * d * (i // side) / side,
                    "lon": lon - d * 0.9 + 1.8 * d * (i % side) / side,
                    "persons": 1 + i % 5,
                    "vulnerable": {},
                    "phone": f"139{i:08d}",
                    "note": "",
                    "active": True,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(households)
            ],
        )
        zones.set_zone(session, point, polygon)
        assert point.households == households, point.households
        warning = workflow.propose(
            session, point, "red", ["基准"], workflow.Who("system", "bench"), now
        )
        workflow.confirm(session, warning, workflow.Who("system", "bench"), now)
        code = warning.code
    engine.dispose()
    return code


def issue(url: str, code: str) -> float:
    engine = make_engine(url)
    factory = session_factory(engine)
    t0 = time.perf_counter()
    with transaction(factory) as session:
        warning = workflow.get(session, code)
        workflow.issue(
            session, warning, workflow.Who("system", "bench"), utcnow(), workflow.Publishing()
        )
    elapsed = time.perf_counter() - t0
    engine.dispose()
    return elapsed


def raw_issue(kind: str, url: str, households: int) -> float:
    engine = make_engine(url)
    now = utcnow()
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE raw_outbox (id integer PRIMARY KEY, dedupe_key varchar(120) UNIQUE, "
            "channel varchar(20), address varchar(200), template varchar(40), text text, "
            "state varchar(10), created_at varchar(40))"
        )
        conn.exec_driver_sql(
            "CREATE TABLE raw_entries (id integer PRIMARY KEY, evacuation_id integer, "
            "household_id integer, grid_code varchar(15), persons integer, status varchar(12), "
            "updated_at varchar(40), UNIQUE (evacuation_id, household_id))"
        )
    text = "【红色预警】基准滑坡风险加大，请立即撤离，到安置点安置。开州区城市运行和治理中心"
    outbox = [
        (i, f"x:sms:139{i:08d}", "sms", f"139{i:08d}", "warning_alert", text, "pending", str(now))
        for i in range(households)
    ]
    entries = [
        (i, 1, i, "500154001001001", 1 + i % 5, "pending", str(now)) for i in range(households)
    ]
    t0 = time.perf_counter()
    with engine.begin() as conn:
        if kind == "sqlite":
            conn.exec_driver_sql("INSERT INTO raw_outbox VALUES (?, ?, ?, ?, ?, ?, ?, ?)", outbox)
            conn.exec_driver_sql("INSERT INTO raw_entries VALUES (?, ?, ?, ?, ?, ?, ?)", entries)
        else:
            raw: Any = conn.connection.dbapi_connection
            with raw.cursor() as cur:
                with cur.copy("COPY raw_outbox FROM STDIN") as copy:
                    for row in outbox:
                        copy.write_row(row)
                with cur.copy("COPY raw_entries FROM STDIN") as copy:
                    for row in entries:
                        copy.write_row(row)
    elapsed = time.perf_counter() - t0
    engine.dispose()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--monitors", type=int, default=1000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--households", type=int, default=5000)
    args = parser.parse_args()
    console = Console(width=150)
    table = Table(title="landslide warning")
    for col in ("what", "engine", "CityOps", "baseline", "target", "notes"):
        table.add_column(col)
    with console.status("analytics…"):
        ours, base = analytics(args.monitors, args.days)
    ok = "✓" if ours < 10 * args.monitors / 1000 else "✗"
    table.add_row(
        "analytics",
        "numpy",
        f"{ours:.2f} s",
        f"{base:.2f} s (bare numpy)",
        f"< {10 * args.monitors / 1000:g} s {ok}",
        f"{args.monitors:,} monitors × {args.days} d hourly ({args.days * 24:,} points each)",
    )
    for kind in args.db.split(","):
        with (
            tempfile.TemporaryDirectory() as tmp,
            scratch_database(kind, args.pg_url, Path(tmp)) as url,
        ):
            with console.status(f"{kind}: {args.households:,} households…"):
                code = prepare(url, args.households)
            with console.status(f"{kind}: issuing…"):
                took = issue(url, code)
                raw = raw_issue(kind, url, args.households)
        limit = 5 * args.households / 5000
        table.add_row(
            "issue warning",
            kind,
            f"{took:.2f} s",
            f"{raw:.2f} s ({'executemany' if kind == 'sqlite' else 'COPY'})",
            f"< {limit:g} s {'✓' if took < limit else '✗'}",
            f"{args.households:,} households: CAP + SMS outbox + evacuation rows",
        )
    console.print(table)


if __name__ == "__main__":
    main()
