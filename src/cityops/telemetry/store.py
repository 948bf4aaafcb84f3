"""Batched writes of readings with their roll-ups and latest values, exactly once.

Both engines load the batch into a temporary staging table (kept until the transaction ends)
in one bulk call (``executemany`` on SQLite, ``COPY`` on PostgreSQL), then move only the
readings not stored before into ``readings`` and fold those — and only those — into the
1-minute and 1-hour roll-ups and the latest values, so a retried batch neither duplicates a
reading nor counts it twice.

On PostgreSQL the move is one statement (``INSERT … ON CONFLICT DO NOTHING RETURNING`` feeding
the roll-up upserts), which stays exact when two workers store the same reading at the same
moment. SQLite has one writer at a time (ingestion takes the write lock at BEGIN), so there the
steps run one after another.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from cityops.db import UTCDateTime
from cityops.telemetry.validate import Row

MINUTE_MS = 60_000
HOUR_MS = 3_600_000


class Stored(NamedTuple):
    """A reading stored by this batch, with the newest timestamp its series had before."""

    device_id: int
    metric: str
    ts: int
    value: float
    prior_ts: int | None


class Batch:
    """What one ``store()`` wrote: how many readings were new, every valid reading of the call
    (new or seen before), and — on demand, for the few series a rule needs to walk — the new
    readings of a series that are newer than anything it had before, oldest first."""

    def __init__(self, session: Session, rows: list[Row], count: int) -> None:
        self.session = session
        self.rows = rows
        self.count = count
        self._series: dict[tuple[int, str], list[Stored]] = {}
        self._loaded: set[tuple[int, str]] = set()

    def load(self, metric: str, device_ids: Collection[int]) -> None:
        wanted = [d for d in set(device_ids) if (d, metric) not in self._loaded]
        if not wanted:
            return
        for row in self._fetch(metric, wanted):
            if row.prior_ts is None or row.ts > row.prior_ts:
                self._series.setdefault((row.device_id, row.metric), []).append(row)
        for d in wanted:
            self._loaded.add((d, metric))
            rows = self._series.get((d, metric))
            if rows and len(rows) > 1:
                rows.sort(key=lambda r: r.ts)

    def series(self, device_id: int, metric: str) -> list[Stored]:
        self.load(metric, [device_id])
        return self._series.get((device_id, metric), [])

    def _fetch(self, metric: str, device_ids: list[int]) -> list[Stored]:
        # SQLite: the staging table holds exactly the new readings; a series' previous newest
        # is its newest stored reading not among them (found from the top of the index).
        result = self.session.connection().execute(
            text(
                """
                SELECT s.device_id, s.metric, s.ts, s.value,
                  (SELECT r.ts FROM readings AS r WHERE r.device_id = s.device_id
                     AND r.metric = s.metric AND NOT EXISTS (
                       SELECT 1 FROM reading_stage AS x WHERE x.device_id = r.device_id
                       AND x.metric = r.metric AND x.ts = r.ts)
                   ORDER BY r.ts DESC LIMIT 1)
                FROM reading_stage AS s WHERE s.metric = :m AND s.device_id IN :ids
                """
            ).bindparams(bindparam("ids", expanding=True)),
            {"m": metric, "ids": device_ids},
        )
        return [Stored(*r) for r in result]


class _ListedBatch(Batch):
    """PostgreSQL: the storing statement returned the new readings with their series'
    previous newest (from its own snapshot), so nothing more is asked of the database."""

    def __init__(self, session: Session, rows: list[Row], new: list[Stored]) -> None:
        super().__init__(session, rows, len(new))
        self._new = new

    def _fetch(self, metric: str, device_ids: list[int]) -> list[Stored]:
        ids = set(device_ids)
        return [r for r in self._new if r.metric == metric and r.device_id in ids]


def store(session: Session, rows: list[Row], now: datetime) -> Batch:
    if not rows:
        return Batch(session, rows, 0)
    if session.get_bind().dialect.name == "postgresql":
        return _ListedBatch(session, rows, _store_pg(session, rows, now))
    return Batch(session, rows, _store_sqlite(session, rows, now))


def window_starts(
    session: Session, metric: str, window_ms: int, device_ids: list[int]
) -> dict[tuple[int, int], tuple[int, float]]:
    """For each reading of ``metric`` in the batch being stored (the staging table lives until
    the transaction ends): the oldest stored reading of its series inside the window ending at
    it — one index seek each, however often the device reports."""
    rows = session.connection().execute(
        text(
            """
            SELECT s.device_id, s.ts,
              (SELECT r.ts FROM readings AS r WHERE r.device_id = s.device_id
                 AND r.metric = s.metric AND r.ts >= s.ts - :w ORDER BY r.ts LIMIT 1),
              (SELECT r.value FROM readings AS r WHERE r.device_id = s.device_id
                 AND r.metric = s.metric AND r.ts >= s.ts - :w ORDER BY r.ts LIMIT 1)
            FROM reading_stage AS s WHERE s.metric = :m AND s.device_id IN :ids
            """
        ).bindparams(bindparam("ids", expanding=True)),
        {"m": metric, "w": window_ms, "ids": device_ids},
    )
    return {(d, t): (t0, v0) for d, t, t0, v0 in rows if t0 is not None}


# --- SQLite ---------------------------------------------------------------------------------

_SQLITE_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS reading_stage ("
    "device_id INTEGER NOT NULL, metric TEXT NOT NULL, ts INTEGER NOT NULL, "
    "value REAL NOT NULL, PRIMARY KEY (device_id, metric, ts)) WITHOUT ROWID"
)


def _rollup_sql(table: str, width: int, source: str, conflict_tail: str = "") -> str:
    # The last value of each bucket comes from the row holding the bucket's latest timestamp.
    return f"""
        INSERT INTO {table} (device_id, metric, bucket, n, vmin, vmax, vsum, last_ts, last_value)
        SELECT g.device_id, g.metric, g.bucket, g.n, g.vmin, g.vmax, g.vsum, g.last_ts, s.value
        FROM (
            SELECT device_id, metric, ts - ts % {width} AS bucket, count(*) AS n,
                   min(value) AS vmin, max(value) AS vmax, sum(value) AS vsum, max(ts) AS last_ts
            FROM {source} GROUP BY device_id, metric, ts - ts % {width}
        ) AS g
        JOIN {source} AS s ON s.device_id = g.device_id AND s.metric = g.metric
                          AND s.ts = g.last_ts
        WHERE true
        ON CONFLICT (device_id, metric, bucket) DO UPDATE SET
            n = {table}.n + excluded.n,
            vmin = min({table}.vmin, excluded.vmin),
            vmax = max({table}.vmax, excluded.vmax),
            vsum = {table}.vsum + excluded.vsum,
            last_value = CASE WHEN excluded.last_ts >= {table}.last_ts
                              THEN excluded.last_value ELSE {table}.last_value END,
            last_ts = max({table}.last_ts, excluded.last_ts){conflict_tail}
    """


_SQLITE_LATEST = text(
    """
    INSERT INTO telemetry_latest (device_id, metric, ts, value, received_at)
    SELECT s.device_id, s.metric, s.ts, s.value, :now
    FROM reading_stage AS s
    JOIN (SELECT device_id, metric, max(ts) AS ts FROM reading_stage
          GROUP BY device_id, metric) AS m
      ON m.device_id = s.device_id AND m.metric = s.metric AND m.ts = s.ts
    WHERE true
    ON CONFLICT (device_id, metric) DO UPDATE SET
        value = CASE WHEN excluded.ts > telemetry_latest.ts
                     THEN excluded.value ELSE telemetry_latest.value END,
        ts = max(telemetry_latest.ts, excluded.ts),
        received_at = excluded.received_at
    """
).bindparams(bindparam("now", type_=UTCDateTime()))


def _store_sqlite(session: Session, rows: list[Row], now: datetime) -> int:
    conn = session.connection()
    conn.exec_driver_sql(_SQLITE_STAGE)
    conn.exec_driver_sql("DELETE FROM reading_stage")
    conn.exec_driver_sql("INSERT OR IGNORE INTO reading_stage VALUES (?, ?, ?, ?)", rows)
    conn.exec_driver_sql(
        "DELETE FROM reading_stage WHERE EXISTS (SELECT 1 FROM readings AS r "
        "WHERE r.device_id = reading_stage.device_id AND r.metric = reading_stage.metric "
        "AND r.ts = reading_stage.ts)"
    )
    count = int(conn.exec_driver_sql("SELECT count(*) FROM reading_stage").scalar_one())
    if count:
        conn.exec_driver_sql(
            "INSERT INTO readings (device_id, metric, ts, value) "
            "SELECT device_id, metric, ts, value FROM reading_stage"
        )
        conn.exec_driver_sql(_rollup_sql("rollups_1m", MINUTE_MS, "reading_stage"))
        conn.exec_driver_sql(_rollup_sql("rollups_1h", HOUR_MS, "reading_stage"))
        conn.execute(_SQLITE_LATEST, {"now": now})
    return count


# --- PostgreSQL ---------------------------------------------------------------------------

_PG_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS reading_stage ("
    "device_id integer NOT NULL, metric varchar(32) NOT NULL, ts bigint NOT NULL, "
    "value double precision NOT NULL) ON COMMIT DELETE ROWS"
)


def _pg_rollup(table: str, width: int) -> str:
    return f"""
    {table}_up AS (
        INSERT INTO {table} AS t (device_id, metric, bucket, n, vmin, vmax, vsum,
                                  last_ts, last_value)
        SELECT device_id, metric, ts - ts % {width}, count(*), min(value), max(value),
               sum(value), max(ts), (array_agg(value ORDER BY ts DESC))[1]
        FROM ins GROUP BY device_id, metric, ts - ts % {width}
        ON CONFLICT (device_id, metric, bucket) DO UPDATE SET
            n = t.n + excluded.n,
            vmin = least(t.vmin, excluded.vmin),
            vmax = greatest(t.vmax, excluded.vmax),
            vsum = t.vsum + excluded.vsum,
            last_value = CASE WHEN excluded.last_ts >= t.last_ts
                              THEN excluded.last_value ELSE t.last_value END,
            last_ts = greatest(t.last_ts, excluded.last_ts)
    )"""


_PG_MOVE = text(
    f"""
    WITH ins AS (
        INSERT INTO readings (device_id, metric, ts, value)
        SELECT DISTINCT ON (device_id, metric, ts) device_id, metric, ts, value
        FROM reading_stage ORDER BY device_id, metric, ts
        ON CONFLICT DO NOTHING
        RETURNING device_id, metric, ts, value
    ),
    {_pg_rollup("rollups_1m", MINUTE_MS)},
    {_pg_rollup("rollups_1h", HOUR_MS)},
    prior AS (
        SELECT l.device_id, l.metric, l.ts FROM telemetry_latest AS l
        WHERE (l.device_id, l.metric) IN (SELECT device_id, metric FROM ins)
    ),
    latest_up AS (
        INSERT INTO telemetry_latest AS t (device_id, metric, ts, value, received_at)
        SELECT DISTINCT ON (device_id, metric) device_id, metric, ts, value, :now
        FROM ins ORDER BY device_id, metric, ts DESC
        ON CONFLICT (device_id, metric) DO UPDATE SET
            value = CASE WHEN excluded.ts > t.ts THEN excluded.value ELSE t.value END,
            ts = greatest(t.ts, excluded.ts),
            received_at = excluded.received_at
    )
    SELECT ins.device_id, ins.metric, ins.ts, ins.value, prior.ts
    FROM ins LEFT JOIN prior ON prior.device_id = ins.device_id AND prior.metric = ins.metric
    """
).bindparams(bindparam("now", type_=UTCDateTime()))


def _store_pg(session: Session, rows: list[Row], now: datetime) -> list[Stored]:
    from cityops.telemetry import partitions

    partitions.ensure_for(session, (r[2] for r in rows))
    conn = session.connection()
    conn.exec_driver_sql(_PG_STAGE)
    conn.exec_driver_sql("DELETE FROM reading_stage")  # a retried transaction starts clean
    raw: Any = conn.connection.dbapi_connection  # psycopg's connection: COPY is not DB-API
    with (
        raw.cursor() as cur,
        cur.copy("COPY reading_stage (device_id, metric, ts, value) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)
    new = conn.execute(_PG_MOVE, {"now": now}).all()
    return [Stored(*r) for r in new]
