"""Batched writes of readings, exactly once; the roll-ups and latest values follow in a fold.

A batch is appended in one bulk call with nothing else written per reading, so storing costs
little more than the raw write:

* SQLite: ``executemany`` of ``INSERT OR IGNORE`` straight into ``readings``. A retried
  reading is ignored by its key; the rows this call added are the ones with a rowid above the
  highest before it (one writer at a time), and ``reading_batches`` gets one row saying when
  they were received. The fold finds them by rowid.
* PostgreSQL: one ``COPY`` straight into the month's partition (or the partitioned table when
  the batch spans months) inside a savepoint — the common case, where every reading is new.
  Each row takes the storing transaction's id (``readings.tx``); ``reading_batches`` gets one
  row per transaction saying when. If one reading was stored before (a retry, a replay, a
  duplicate in the batch) the savepoint is rolled back and the batch goes through a temporary
  staging table with ``ON CONFLICT DO NOTHING RETURNING`` instead, so the rules see only the
  new readings; that stays exact when two workers store the same reading at the same moment.
  A rate-of-change rule looks back from each new reading in SQL, from the staging table: when
  one is enabled (``look_back``) the batch is copied there first and moved into its partition
  with one ``INSERT … SELECT`` (one pass of Python over the rows, not two).

Nothing here touches the roll-ups or the latest values: ``cityops.telemetry.fold`` folds the
new readings in (in the same transaction when ``ingest(fold=True)``, else in the background).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from operator import itemgetter
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
    """What one ``store()`` wrote: every valid reading of the call (new or seen before), the
    readings it stored (``new``), and — on demand, for the few series a rule needs to walk —
    a series' new readings newer than anything it had before, oldest first.

    ``source`` is SQL naming a relation ``s`` that holds (at least) the new readings, for the
    rule queries that look back from each one (rate of change): more readings than the new ones
    only cost time. ``stage``, if given, makes that relation the first time it is asked for
    and returns its SQL."""

    def __init__(
        self,
        session: Session,
        rows: list[Row],
        new: list[Row],
        source: str = "",
        params: dict[str, Any] | None = None,
        stage: Callable[[], str] | None = None,
    ) -> None:
        self.session = session
        self.rows = rows
        self.new = new
        self.count = len(new)
        self._source = source
        self._stage = stage
        self.params = params or {}
        self.month_table: Callable[[int, int], str] | None = None
        self._metrics: dict[str, list[Row]] | None = None
        self._by_series: dict[tuple[int, str], list[Row]] | None = None
        self._series: dict[tuple[int, str], list[Stored]] = {}

    @property
    def source(self) -> str:
        if not self._source and self._stage is not None:
            self._source = self._stage()
        return self._source

    def table_for(self, window_ms: int) -> str:
        """Where to look back ``window_ms`` from the new readings: ``readings``, or on
        PostgreSQL the month's partition when every such window lies within one month (the
        planner then skips pruning sixteen partitions at every look-back)."""
        if self.month_table is None or not self.new:
            return "readings"
        stamps = list(map(itemgetter(2), self.new))
        return self.month_table(min(stamps) - window_ms, max(stamps))

    def of_metric(self, metric: str) -> list[Row]:
        """The new readings of one metric."""
        if self._metrics is None:
            groups: dict[str, list[Row]] = {}
            names = set(map(itemgetter(1), self.new))
            if len(names) == 1:
                groups[names.pop()] = self.new  # one metric, as is usual
            else:
                for r in self.new:
                    groups.setdefault(r[1], []).append(r)
            self._metrics = groups
        return self._metrics.get(metric, [])

    def series(self, device_id: int, metric: str) -> list[Stored]:
        key = (device_id, metric)
        found = self._series.get(key)
        if found is not None:
            return found
        if self._by_series is None:
            groups: dict[tuple[int, str], list[Row]] = {}
            for r in self.new:
                groups.setdefault((r[0], r[1]), []).append(r)
            self._by_series = groups
        mine = self._by_series.get(key, [])
        out: list[Stored] = []
        if mine:
            prior = self._prior(device_id, metric, {r[2] for r in mine})
            out = sorted(
                (Stored(d, m, t, v, prior) for d, m, t, v in mine if prior is None or t > prior),
                key=lambda r: r.ts,
            )
        self._series[key] = out
        return out

    def _prior(self, device_id: int, metric: str, new: set[int]) -> int | None:
        """The series' newest timestamp not stored by this batch: among its len(new) + 1
        newest (an index walk from the top)."""
        stamps = self.session.connection().execute(
            text(
                "SELECT ts FROM readings WHERE device_id = :d AND metric = :m "
                "ORDER BY ts DESC LIMIT :k"
            ),
            {"d": device_id, "m": metric, "k": len(new) + 1},
        )
        return next((int(t) for (t,) in stamps if t not in new), None)


def store(session: Session, rows: list[Row], now: datetime, *, look_back: bool = False) -> Batch:
    """``look_back``: a rule will look back from each new reading (``Batch.source``) — on
    PostgreSQL the batch is then staged first and moved into its partition by the server,
    rather than copied twice."""
    if not rows:
        return Batch(session, rows, [])
    if session.get_bind().dialect.name == "postgresql":
        return _store_pg(session, rows, now, look_back)
    return _store_sqlite(session, rows, now)


def window_starts(
    batch: Batch, metric: str, window_ms: int, device_ids: list[int]
) -> dict[tuple[int, int], tuple[int, float]]:
    """For each new reading of ``metric`` of these devices: the oldest stored reading of its
    series inside the window ending at it — one index seek each."""
    table = batch.table_for(window_ms)
    rows = batch.session.connection().execute(
        text(
            f"""
            SELECT s.device_id, s.ts,
              (SELECT r.ts FROM {table} AS r WHERE r.device_id = s.device_id
                 AND r.metric = s.metric AND r.ts >= s.ts - :w AND r.ts <= s.ts
                 ORDER BY r.ts LIMIT 1),
              (SELECT r.value FROM {table} AS r WHERE r.device_id = s.device_id
                 AND r.metric = s.metric AND r.ts >= s.ts - :w AND r.ts <= s.ts
                 ORDER BY r.ts LIMIT 1)
            FROM {batch.source} AND s.metric = :m AND s.device_id IN :ids
            """
        ).bindparams(bindparam("ids", expanding=True)),
        {**batch.params, "m": metric, "w": window_ms, "ids": device_ids},
    )
    return {(d, t): (t0, v0) for d, t, t0, v0 in rows if t0 is not None}


def rising(batch: Batch, metric: str, window_ms: int, sign: str, limit: float) -> set[int]:
    """Devices with a new reading of ``metric`` whose change since the oldest reading inside
    the window ending at it is ``sign`` (> or <) ``limit``: one index seek per new reading,
    all in one statement."""
    assert sign in (">", "<")
    table = batch.table_for(window_ms)
    found = batch.session.connection().execute(
        text(
            f"""
            SELECT DISTINCT s.device_id FROM {batch.source} AND s.metric = :m AND s.value - (
                SELECT r.value FROM {table} AS r WHERE r.device_id = s.device_id
                AND r.metric = s.metric AND r.ts >= s.ts - :w AND r.ts <= s.ts
                ORDER BY r.ts LIMIT 1
            ) {sign} :v
            """
        ),
        {**batch.params, "m": metric, "w": window_ms, "v": limit},
    )
    return set(found.scalars())


# --- SQLite ---------------------------------------------------------------------------------

_SQLITE_LOG = text(
    "INSERT INTO reading_batches (upto, received_at) VALUES (:upto, :now)"
).bindparams(bindparam("now", type_=UTCDateTime()))


def _store_sqlite(session: Session, rows: list[Row], now: datetime) -> Batch:
    conn = session.connection()
    cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        (before,) = cur.execute("SELECT coalesce(max(rowid), 0) FROM readings").fetchone()
        cur.executemany(
            "INSERT OR IGNORE INTO readings (device_id, metric, ts, value) VALUES (?, ?, ?, ?)",
            rows,
        )
        count = cur.rowcount
        if count <= 0:
            return Batch(session, rows, [])
        if count == len(rows):
            new = rows
        else:  # some were stored before (or twice in this batch): read back what is new
            new = cur.execute(
                "SELECT device_id, metric, ts, value FROM readings WHERE rowid > ?", (before,)
            ).fetchall()
        (upto,) = cur.execute("SELECT max(rowid) FROM readings").fetchone()
    finally:
        cur.close()
    conn.execute(_SQLITE_LOG, {"upto": upto, "now": now})
    # NOT INDEXED: left to itself, SQLite answers a DISTINCT over these rows by scanning the
    # whole key index in device order — every batch then costs as much as all readings stored.
    return Batch(
        session, rows, new, "readings AS s NOT INDEXED WHERE s.rowid > :before", {"before": before}
    )


# --- PostgreSQL ---------------------------------------------------------------------------

_PG_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS reading_stage ("
    "device_id integer NOT NULL, metric varchar(32) NOT NULL, ts bigint NOT NULL, "
    "value double precision NOT NULL) ON COMMIT DELETE ROWS"
)
_PG_MOVE = """
    INSERT INTO readings (device_id, metric, ts, value)
    SELECT DISTINCT ON (device_id, metric, ts) device_id, metric, ts, value
    FROM reading_stage ORDER BY device_id, metric, ts
    ON CONFLICT DO NOTHING
    RETURNING device_id, metric, ts, value
"""
# Every staged reading new (the common case): moved as they are; a duplicate raises.
_PG_PLACE = (
    "INSERT INTO {table} (device_id, metric, ts, value)"
    " SELECT device_id, metric, ts, value FROM reading_stage"
)
# One row per storing transaction (several batches of one transaction share it).
_PG_LOG = """
    INSERT INTO reading_batches (upto, received_at) VALUES (txid_current(), %(now)s)
    ON CONFLICT (upto) DO UPDATE SET received_at = greatest(
        reading_batches.received_at, excluded.received_at)
"""
PENDING = "cityops_readings_unfolded"  # session.info: this transaction stored readings


def _store_pg(session: Session, rows: list[Row], now: datetime, look_back: bool) -> Batch:
    import psycopg

    from cityops.telemetry import partitions

    stamps = list(map(itemgetter(2), rows))
    low, high = min(stamps), max(stamps)
    partitions.ensure_for(session, (low, high))
    conn = session.connection()
    raw: Any = conn.connection.dbapi_connection  # psycopg's connection: COPY is not DB-API
    staged = look_back
    table = _month_table(low, high)
    with raw.cursor() as cur:
        if staged:
            _stage(cur, rows)
        cur.execute("SAVEPOINT cityops_store")
        try:
            if staged:
                cur.execute(_PG_PLACE.format(table=table))
            else:
                with cur.copy(f"COPY {table} (device_id, metric, ts, value) FROM STDIN") as copy:
                    _write(copy, rows)
        except psycopg.errors.UniqueViolation:
            cur.execute("ROLLBACK TO SAVEPOINT cityops_store")
            cur.execute("RELEASE SAVEPOINT cityops_store")
            if not staged:
                _stage(cur, rows)
                staged = True
            cur.execute(_PG_MOVE)
            new: list[Row] = [tuple(r) for r in cur.fetchall()]
        else:
            cur.execute("RELEASE SAVEPOINT cityops_store")
            new = rows
        if new:
            cur.execute(_PG_LOG, {"now": now})
            session.info[PENDING] = True

    def stage() -> str:
        """The new readings for the rule queries that look back from each, copied to the
        staging table only when a rule asks (a rate of change)."""
        if not staged:
            with raw.cursor() as cur:
                _stage(cur, new)
        return "reading_stage AS s WHERE true"

    batch = Batch(session, rows, new, stage=stage)
    batch.month_table = _month_table
    return batch


def _stage(cur: Any, rows: list[Row]) -> None:
    cur.execute(_PG_STAGE)
    cur.execute("DELETE FROM reading_stage")  # a second batch in this transaction
    with cur.copy("COPY reading_stage (device_id, metric, ts, value) FROM STDIN") as copy:
        _write(copy, rows)


def _month_table(low: int, high: int) -> str:
    """The partition holding every reading stamped from ``low`` to ``high``, if one does
    (else the partitioned table itself): writing to it or reading from it directly spares
    the routing of each row and the pruning of every look-back."""
    from cityops.telemetry import partitions

    first = partitions.month_of(low)
    return partitions.name_of(first) if first == partitions.month_of(high) else "readings"


def _write(copy: Any, rows: Iterable[Row]) -> None:
    for row in rows:
        copy.write_row(row)
