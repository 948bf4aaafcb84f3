"""Event-center benchmark: CityOps next to raw SQL on the same rows, measured in the same run.

    .venv/bin/python bench/events.py                    # SQLite and PostgreSQL, 1,000,000 cases
    .venv/bin/python bench/events.py --db sqlite --cases 200000 --samples 100 --explain

Each engine gets a scratch database: SQLite in a temporary file; PostgreSQL a database
``cityops_bench_<random>`` created on --pg-url and dropped afterwards. Each is migrated and gets
the demo district (regions, units, people, category catalogue); then --cases cases reported over
the last --days days are bulk-loaded with their timelines (~6 events a case), lead assignments,
followers and extensions — the same rows into every engine (bench/_data.py: generated once, in a
second process, while Core executemany on SQLite and COPY on PostgreSQL write them, one
transaction per engine, with the secondary indexes dropped and rebuilt from their own DDL
afterwards), then ANALYZE (VACUUM ANALYZE on PostgreSQL, so autovacuum does not start on the
fresh tables mid-measurement).

Measured, each next to a raw-SQL baseline on the same rows in the same run:

* create case — ``intake.report`` by a grid worker at a grid centre with a category, each in its
  own ``transaction(factory)``; raw: a single-row Core INSERT of the same columns into ``cases``
  in its own transaction. p50/p99; target p99 < 50 ms.
* filtered list — ``queries.page`` for a town dispatcher, state in (dispatched, handling), region =
  the town, sort by deadline, 50 rows (the town varies per sample); raw: ``SELECT … WHERE state IN
  (…) AND region_code LIKE :town || '%' ORDER BY deadline_at DESC, id DESC LIMIT 50`` (the id
  breaks ties, as CityOps does: working-time deadlines often fall on the same period end) plus
  its count. p95; target < 150 ms.
* evaluation — ``evaluation.evaluate`` for all units over the last calendar month (Asia/Shanghai);
  raw: ``SELECT unit_id, count(*) FROM case_events`` over the same month ``GROUP BY unit_id``.
  Median of --repeat runs; target < 3 s.
* worker — --worker open dispatched cases are made due (natural clock, 90 % of a 24 h limit
  used, so exactly one step — warn — is due each) and ``jobs.run_due(session_factory(engine,
  writer=True), now, limit=…)`` takes them; raw: as many ``UPDATE cases SET clock_step =
  clock_step + 1 WHERE id = :id AND clock_step = :s``, each in its own transaction. Steps/s.

--explain prints the query plans CityOps' list and evaluation queries get.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    make_url,
    select,
    text,
)
from sqlalchemy import update as sql_update

import _data
from cityops import migrate
from cityops.auth import audit
from cityops.auth.permissions import permissions_of
from cityops.auth.principal import Principal
from cityops.config import normalise_database_url
from cityops.db import UTCDateTime, make_engine, session_factory, transaction, utcnow
from cityops.demo import district
from cityops.events import evaluation, intake, jobs, queries
from cityops.events.models import Case, State

# The lifecycle imports the notifier lazily; import it now, so a run uses one version of the code.
from cityops.notify import service as _notify  # noqa: F401

PG_URL = "postgresql://postgres@127.0.0.1:5432/"
ZONE = ZoneInfo("Asia/Shanghai")
LIST_STATES = [State.dispatched.value, State.handling.value]
WORKER_LIMIT_H = 24.0

RAW_LIST = text(
    "SELECT * FROM cases WHERE state IN ('dispatched', 'handling') "
    "AND region_code LIKE :town || '%' ORDER BY deadline_at DESC, id DESC LIMIT 50"
)
RAW_COUNT = text(
    "SELECT count(*) FROM cases WHERE state IN ('dispatched', 'handling') "
    "AND region_code LIKE :town || '%'"
)
RAW_EVALUATION = text(
    "SELECT unit_id, count(*) FROM case_events WHERE at >= :since AND at < :until GROUP BY unit_id"
).bindparams(bindparam("since", type_=UTCDateTime()), bindparam("until", type_=UTCDateTime()))
RAW_STEP = text("UPDATE cases SET clock_step = clock_step + 1 WHERE id = :id AND clock_step = :s")


@dataclass
class Result:
    engine: str
    version: str = ""
    loaded: str = ""
    rows: list[tuple[str, str, str, str, str, str]] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


@contextmanager
def scratch_database(kind: str, pg_url: str, tmp: Path) -> Iterator[str]:
    """A fresh empty database of its own, removed afterwards (as tests/dbutil.py does)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'cityops-bench.db'}"
        return
    server = make_url(normalise_database_url(pg_url))
    name = f"cityops_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


# --- loading ------------------------------------------------------------------------------------


@dataclass
class Target:
    """One engine's scratch database, what the generator needs from it, and its results."""

    kind: str
    url: str
    result: Result
    world: _data.World | None = None
    write_s: float = 0.0


def prepare(target: Target, demo: district.DemoDistrict, console: Console) -> None:
    """Migrate and load the demo district; read back what the generator needs."""
    engine = make_engine(target.url)
    try:
        with console.status(f"{target.kind}: migrating, loading the demo district…"):
            migrate.upgrade(engine)
            with transaction(session_factory(engine)) as session:
                district.load(session, demo)
            with session_factory(engine)() as session:
                target.world = _data.read_world(session)
            with engine.connect() as conn:
                target.result.version = conn.exec_driver_sql(
                    "SELECT sqlite_version()" if target.kind == "sqlite" else "SHOW server_version"
                ).scalar_one()
    finally:
        engine.dispose()


def load_cases(
    targets: list[Target],
    world: _data.World,
    args: argparse.Namespace,
    now: datetime,
    console: Console,
) -> str:
    """Bulk-load one generated history into every target (the same rows everywhere); returns a
    line saying what was loaded, how fast. Each target's own timings go into its result."""
    counts = dict.fromkeys(_data.TABLES, 0)
    with ExitStack() as stack:
        conns: list[Connection] = []
        indexes: list[list[tuple[str, str]]] = []
        for t in targets:
            # A loader engine of its own: its session settings go when it is disposed.
            engine = make_engine(t.url)
            stack.callback(engine.dispose)
            conn = stack.enter_context(engine.connect())
            raw = conn.connection.driver_connection
            assert raw is not None
            if t.kind == "sqlite":
                raw.execute("PRAGMA cache_size = -1048576")  # 1 GiB, this connection only
                raw.execute("PRAGMA synchronous = OFF")
                raw.execute("PRAGMA foreign_keys = OFF")
            else:
                conn.exec_driver_sql("SET TIME ZONE 'UTC'")
                conn.exec_driver_sql("SET session_replication_role = replica")  # no FK triggers
                conn.exec_driver_sql("SET maintenance_work_mem = '1GB'")
            found = _data.secondary_indexes(conn, list(_data.TABLES))
            for name, _ddl in found:
                conn.exec_driver_sql(f'DROP INDEX "{name}"')
            conns.append(conn)
            indexes.append(found)
        writers = [_data.Writer(conn) for conn in conns]
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("cases · {task.fields[events]:,} events"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        t_start = time.perf_counter()
        with progress:
            names = " + ".join(t.kind for t in targets)
            task = progress.add_task(f"loading {names}", total=args.cases, events=0)
            for chunk in _data.stream(world, args.cases, now, args.days, args.seed, args.chunk):
                for t, writer in zip(targets, writers, strict=True):
                    t0 = time.perf_counter()
                    writer.write(chunk)
                    t.write_s += time.perf_counter() - t0
                for table, rows in chunk.rows.items():
                    counts[table] += len(rows)
                progress.update(task, advance=chunk.cases, events=counts["case_events"])
        load_s = time.perf_counter() - t_start
        for t, conn, found in zip(targets, conns, indexes, strict=True):
            t0 = time.perf_counter()
            with console.status(f"{t.kind}: rebuilding {len(found)} indexes…"):
                for _name, ddl in found:
                    conn.exec_driver_sql(ddl)
            index_s = time.perf_counter() - t0
            if t.kind == "postgresql":
                for table in _data.TABLES:
                    conn.exec_driver_sql(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT coalesce(max(id), 1) FROM {table}))"
                    )
            conn.commit()
            t0 = time.perf_counter()
            with console.status(f"{t.kind}: ANALYZE…"):
                size = analyze(t.kind, conn)
            analyze_s = time.perf_counter() - t0
            t.result.loaded = (
                f"{t.kind}: writing {t.write_s:.1f} s "
                f"({counts['cases'] / t.write_s:,.0f} cases/s with their rows), "
                f"{len(found)} indexes rebuilt in {index_s:.1f} s, "
                f"{'ANALYZE' if t.kind == 'sqlite' else 'VACUUM ANALYZE'} {analyze_s:.1f} s"
                f"{size}"
            )
    return (
        f"loaded {counts['cases']:,} cases, {counts['case_events']:,} events, "
        f"{counts['case_assignments']:,} assignments, {counts['case_followers']:,} followers, "
        f"{counts['case_extensions']:,} extensions into {len(targets)} database(s) in "
        f"{load_s:.1f} s ({counts['cases'] / load_s:,.0f} cases/s; generated once, in a second "
        f"process, while written)"
    )


def analyze(kind: str, conn: Connection) -> str:
    """ANALYZE after the load (PostgreSQL: VACUUM ANALYZE, so autovacuum does not start on the
    fresh tables mid-measurement); returns a note on the database's size."""
    if kind == "sqlite":
        raw = conn.connection.driver_connection
        assert raw is not None
        raw.execute("ANALYZE")
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = raw.execute("PRAGMA page_count").fetchone()[0]
        size = raw.execute("PRAGMA page_size").fetchone()[0]
        return f", {pages * size / 2**30:.1f} GiB file"
    auto = conn.execution_options(isolation_level="AUTOCOMMIT")
    for table in (*_data.TABLES, "units", "regions", "categories", "people", "person_roles"):
        auto.exec_driver_sql(f"VACUUM (ANALYZE) {table}")
    size = auto.exec_driver_sql("SELECT pg_database_size(current_database())").scalar_one()
    return f", {size / 2**30:.1f} GiB database"


# --- principals ---------------------------------------------------------------------------------


def grid_worker(grid: _data.Grid) -> Principal:
    roles = frozenset({"grid_worker"})
    return Principal(
        "person",
        int(grid.worker.id),
        grid.worker.name,
        roles,
        permissions_of(roles),
        grid.code,
        person_id=grid.worker_person,
        unit_id=grid.station,
    )


def town_dispatcher(world: _data.World, town: str) -> Principal:
    desk = world.town_desk[town]
    roles = frozenset({"intake_operator", "dispatcher"})  # as the demo's town desks
    return Principal(
        "person",
        int(desk.id),
        desk.name,
        roles,
        permissions_of(roles),
        town,
        person_id=int(desk.id),
        unit_id=desk.unit_id,
    )


# --- measurements -------------------------------------------------------------------------------


def measure_create(
    engine: Engine, world: _data.World, samples: int, rng: np.random.Generator
) -> tuple[list[float], list[float]]:
    factory = session_factory(engine)
    table = Case.__table__
    ours: list[float] = []
    raw: list[float] = []
    for i in range(samples + 5):  # the first five warm the locator and statement caches
        grid = world.grids[int(rng.integers(len(world.grids)))]
        cat = world.categories[int(rng.integers(len(world.categories)))]
        who = grid_worker(grid)
        report = intake.Report(cat.phrases[0], category=cat.code, lat=grid.lat, lon=grid.lon)
        t0 = time.perf_counter()
        with transaction(factory) as session:
            audit.set_actor(session, audit.Actor("person", str(who.id), who.name))
            intake.report(session, who, report, utcnow())
        t1 = time.perf_counter()
        now = utcnow()
        with engine.begin() as conn:
            conn.execute(
                insert(table).values(
                    code=f"{now.astimezone(ZONE):%Y%m%d}{9_000_000 + i:07d}",
                    source="grid_worker",
                    category_id=cat.id,
                    description=cat.phrases[0],
                    address="",
                    lon=grid.lon,
                    lat=grid.lat,
                    region_code=grid.code,
                    urgency="normal",
                    state="reported",
                    level="town",
                    reporter_person_id=grid.worker_person,
                    created_at=now,
                )
            )
        t2 = time.perf_counter()
        if i >= 5:
            ours.append((t1 - t0) * 1e3)
            raw.append((t2 - t1) * 1e3)
    return ours, raw


def pair(i: int, ours: Callable[[], Any], raw: Callable[[], Any]) -> tuple[float, Any, float, Any]:
    """Time both, CityOps first on even samples and raw first on odd ones, so neither always
    finds the pages the other just read in the cache."""
    if i % 2:
        raw_s, raw_out = timed(raw)
        ours_s, ours_out = timed(ours)
    else:
        ours_s, ours_out = timed(ours)
        raw_s, raw_out = timed(raw)
    return ours_s, ours_out, raw_s, raw_out


def measure_list(
    engine: Engine, world: _data.World, samples: int
) -> tuple[list[float], list[float], int, int]:
    factory = session_factory(engine)
    ours: list[float] = []
    raw: list[float] = []
    agree = rows_seen = 0
    for i in range(samples + 5):
        town = world.towns[i % len(world.towns)]
        who = town_dispatcher(world, town)
        f = queries.Filters(state=LIST_STATES, region=town)

        def cityops() -> tuple[list[Case], int]:
            with factory() as session:
                return queries.page(session, who, f, sort="deadline", limit=50)  # noqa: B023

        def baseline() -> tuple[list[Any], int]:
            with engine.connect() as conn:
                rows = conn.execute(RAW_LIST, {"town": town}).all()  # noqa: B023
                return list(rows), conn.execute(RAW_COUNT, {"town": town}).scalar_one()  # noqa: B023

        ours_s, (cases, total), raw_s, (raw_rows, raw_total) = pair(i, cityops, baseline)
        if i >= 5:
            ours.append(ours_s * 1e3)
            raw.append(raw_s * 1e3)
            rows_seen += total
            agree += int(total == raw_total and [c.id for c in cases] == [r.id for r in raw_rows])
    return ours, raw, agree, rows_seen


def last_month(now: datetime) -> tuple[datetime, datetime]:
    first = now.astimezone(ZONE).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    start = (first - timedelta(days=1)).replace(day=1)
    return start.astimezone(UTC), first.astimezone(UTC)


def measure_evaluation(
    engine: Engine, since: datetime, until: datetime, repeat: int
) -> tuple[list[float], list[float], int, int]:
    factory = session_factory(engine)

    def cityops() -> list[evaluation.Row]:
        with factory() as session:
            return evaluation.evaluate(session, since, until, group="unit")

    def baseline() -> list[Any]:
        with engine.connect() as conn:
            return list(conn.execute(RAW_EVALUATION, {"since": since, "until": until}).all())

    ours: list[float] = []
    raw: list[float] = []
    units = raw_units = 0
    for i in range(repeat):
        ours_s, rows, raw_s, raw_rows = pair(i, cityops, baseline)
        ours.append(ours_s)
        raw.append(raw_s)
        units, raw_units = len(rows), sum(1 for row in raw_rows if row[0] is not None)
    return ours, raw, units, raw_units


def make_due(engine: Engine, n: int, now: datetime) -> list[int]:
    """n running cases (dispatched first) whose clocks have exactly one ladder step due."""
    with engine.connect() as conn:
        ids = list(
            conn.scalars(
                select(Case.id)
                .where(Case.state == State.dispatched.value)
                .order_by(Case.id)
                .limit(n)
            )
        )
        if len(ids) < n:
            ids += conn.scalars(
                select(Case.id)
                .where(Case.state == State.handling.value)
                .order_by(Case.id)
                .limit(n - len(ids))
            )
    table = Case.__table__
    stmt = (
        sql_update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(
            clock="natural",
            clock_started_at=bindparam("b_start"),
            limit_hours=WORKER_LIMIT_H,
            paused_hours=0.0,
            paused_at=None,
            clock_step=0,
            next_clock_at=bindparam("b_due"),
            deadline_at=bindparam("b_deadline"),
        )
    )
    params = []
    for i, case_id in enumerate(ids):
        # 90 % of the limit used: warn (at 80 %) is due, urge (at 100 %) is not — staggered.
        start = now - timedelta(hours=0.9 * WORKER_LIMIT_H, seconds=0.5 * i)
        params.append(
            {
                "b_id": case_id,
                "b_start": start,
                "b_due": start + timedelta(hours=0.8 * WORKER_LIMIT_H),
                "b_deadline": start + timedelta(hours=WORKER_LIMIT_H),
            }
        )
    with engine.begin() as conn:
        for lo in range(0, len(params), 5000):
            conn.execute(stmt, params[lo : lo + 5000])
    return ids


def measure_worker(
    engine: Engine, n: int, now: datetime
) -> tuple[float, float, int, dict[str, int], int]:
    ids = make_due(engine, n, now)
    with engine.connect() as conn:
        due = conn.scalar(
            select(func.count())
            .select_from(Case)
            .where(Case.next_clock_at <= now, Case.state.in_(jobs.RUNNING))
        )
    factory = session_factory(engine, writer=True)
    ours_s, tally = timed(lambda: jobs.run_due(factory, now, limit=len(ids)))
    t0 = time.perf_counter()
    claimed = 0
    for case_id in ids:
        with engine.begin() as conn:
            claimed += conn.execute(RAW_STEP, {"id": case_id, "s": 1}).rowcount
    raw_s = time.perf_counter() - t0
    return ours_s, raw_s, int(due or 0), tally.steps, claimed


# --- plans ---------------------------------------------------------------------------------------


def captured(engine: Engine, fn: Callable[[], Any]) -> list[tuple[str, Any]]:
    """The statements ``fn`` sends to the database, with their parameters."""
    seen: list[tuple[str, Any]] = []

    def listen(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _many: bool) -> None:
        seen.append((statement, params))

    event.listen(engine, "before_cursor_execute", listen)
    try:
        fn()
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    return seen


def explain(engine: Engine, statement: str, params: Any) -> list[str]:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).all()
            depth: dict[int, int] = {0: 0}
            lines = []
            for node, parent, _x, detail in rows:
                depth[node] = depth.get(parent, 0) + 1
                lines.append("  " * depth[node] + detail)
            return lines
        rows = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, params).all()
        return [r[0] for r in rows]


def print_plans(
    engine: Engine, world: _data.World, since: datetime, until: datetime, console: Console
) -> None:
    town = world.towns[0]
    factory = session_factory(engine)

    def list_page() -> None:
        with factory() as session:
            queries.page(
                session,
                town_dispatcher(world, town),
                queries.Filters(state=LIST_STATES, region=town),
                sort="deadline",
                limit=50,
            )

    def evaluate() -> None:
        with factory() as session:
            evaluation.evaluate(session, since, until, group="unit")

    for title, fn in (("filtered list", list_page), ("evaluation", evaluate)):
        for statement, params in captured(engine, fn):
            if not statement.lstrip().upper().startswith("SELECT"):
                continue
            console.rule(f"{engine.dialect.name} plan: {title}")
            console.print(statement, markup=False, highlight=False)
            console.print("\n".join(explain(engine, statement, params)), markup=False)


# --- one engine ----------------------------------------------------------------------------------


def measure(
    engine: Engine,
    world: _data.World,
    args: argparse.Namespace,
    now: datetime,
    console: Console,
    result: Result,
) -> None:
    kind = engine.dialect.name
    rng = np.random.default_rng(args.seed)
    since, until = last_month(now)
    if args.explain:
        print_plans(engine, world, since, until, console)
    with console.status(f"{kind}: create case ×{args.samples}…"):
        c_ours, c_raw = measure_create(engine, world, args.samples, rng)
    with console.status(f"{kind}: filtered list ×{args.samples}…"):
        l_ours, l_raw, agree, rows_seen = measure_list(engine, world, args.samples)
    with console.status(f"{kind}: evaluation ×{args.repeat}…"):
        e_ours, e_raw, units, raw_units = measure_evaluation(engine, since, until, args.repeat)
    with console.status(f"{kind}: worker, {args.worker:,} due clock steps…"):
        w_ours, w_raw, due, steps, claimed = measure_worker(engine, args.worker, now)

    def row(name: str, ours: float, raw: float, fmt: str, target: float | None, unit: str) -> None:
        ratio = f"{ours / raw:.1f}×" if raw else ""
        if target is None:
            met = ""
        elif ours < target:
            met = "[green]✓ met[/]"
        else:
            met = f"[red]✗ +{ours - target:{fmt}}[/]"
            result.missed.append(
                f"{kind}: {name} {ours:{fmt}}, target < {target:g} {unit} "
                f"(over by {ours - target:{fmt}} {unit}, {ours / target:.2f}× the target)"
            )
        result.rows.append(
            (
                name,
                f"{ours:{fmt}}",
                f"{raw:{fmt}}",
                ratio,
                f"< {target:g} {unit}" if target is not None else "",
                met,
            )
        )

    row("create case p50 (ms)", percentile(c_ours, 50), percentile(c_raw, 50), ".2f", None, "ms")
    row("create case p99 (ms)", percentile(c_ours, 99), percentile(c_raw, 99), ".2f", 50, "ms")
    row("filtered list p50 (ms)", percentile(l_ours, 50), percentile(l_raw, 50), ".2f", None, "")
    row("filtered list p95 (ms)", percentile(l_ours, 95), percentile(l_raw, 95), ".2f", 150, "ms")
    row(
        "evaluation 1 month (s)",
        statistics.median(e_ours),
        statistics.median(e_raw),
        ".3f",
        3,
        "s",
    )
    worker_rate, raw_rate = sum(steps.values()) / w_ours, claimed / w_raw
    result.rows.append(
        (
            "worker clock steps/s",
            f"{worker_rate:,.0f}",
            f"{raw_rate:,.0f}",
            f"{raw_rate / worker_rate:.1f}×" if worker_rate else "",
            "",
            "",
        )
    )
    result.notes += [
        f"create: {args.samples} samples each; list: {args.samples} samples over "
        f"{len(world.towns)} towns, {rows_seen / max(1, args.samples):,.0f} matching cases per "
        f"town on average, CityOps and raw agree on {agree}/{args.samples} pages",
        f"evaluation {since.astimezone(ZONE):%Y-%m-%d} – {until.astimezone(ZONE):%Y-%m-%d} "
        f"(local): {units} units scored; raw groups {raw_units} units; runs "
        f"{', '.join(f'{s:.2f}' for s in e_ours)} s; raw "
        f"{', '.join(f'{s:.2f}' for s in e_raw)} s",
        f"worker: {due:,} due; run_due took {sum(steps.values()):,} steps {steps} in "
        f"{w_ours:.1f} s; raw claimed {claimed:,} in {w_raw:.1f} s",
    ]


def print_result(result: Result, args: argparse.Namespace, console: Console) -> None:
    table = Table(
        title=f"events on {result.engine} {result.version}: "
        f"{args.cases:,} cases over {args.days} days"
    )
    table.add_column("measure")
    table.add_column("CityOps", justify="right")
    table.add_column("raw SQL", justify="right")
    table.add_column("× raw", justify="right")
    table.add_column("target", justify="right")
    table.add_column("", justify="left")
    for r in result.rows:
        table.add_row(*r)
    console.print(table)
    console.print(result.loaded)
    for note in result.notes:
        console.print(f"  {note}", highlight=False)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--pg-url", default=PG_URL, help="server for the scratch database")
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90, help="the cases span this many days")
    parser.add_argument("--samples", type=int, default=300, help="create and list samples")
    parser.add_argument("--repeat", type=int, default=3, help="evaluation runs")
    parser.add_argument("--worker", type=int, default=10_000, help="due clock steps")
    parser.add_argument("--chunk", type=int, default=20_000, help="cases per bulk-load chunk")
    parser.add_argument("--seed", type=int, default=20240712)
    parser.add_argument("--villages-per-town", type=int, default=12)
    parser.add_argument("--grids-per-village", type=int, default=5)
    parser.add_argument("--explain", action="store_true", help="print the query plans")
    args = parser.parse_args()
    console = Console()
    now = utcnow().replace(microsecond=0)
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    t0 = time.perf_counter()
    audit.install()
    with console.status("building the demo district…"):
        demo = district.generate(
            district.DemoConfig(
                villages_per_town=args.villages_per_town, grids_per_village=args.grids_per_village
            )
        )
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cityops-bench-")))
        targets = []
        for kind in kinds:
            url = stack.enter_context(scratch_database(kind, args.pg_url, tmp))
            target = Target(kind, url, Result(kind))
            prepare(target, demo, console)
            targets.append(target)
        world = targets[0].world
        assert world is not None
        if any(t.world != world for t in targets):
            raise SystemExit(
                "the demo district got different ids on the engines; cannot share rows"
            )
        loaded = load_cases(targets, world, args, now, console)
        console.print(loaded)
        for t in targets:
            console.print(t.result.loaded)
        for t in targets:
            engine = make_engine(t.url)
            try:
                measure(engine, world, args, now, console, t.result)
            finally:
                engine.dispose()
            print_result(t.result, args, console)
    console.print(loaded)
    missed = [m for t in targets for m in t.result.missed]
    console.print(f"whole run {time.perf_counter() - t0:.0f} s")
    if missed:
        console.print("[bold red]targets missed[/]")
        for m in missed:
            console.print(f"  {m}")
    else:
        console.print("[bold green]targets met[/]")


if __name__ == "__main__":
    main()
