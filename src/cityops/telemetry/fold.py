"""Folding stored readings into the 1-minute and 1-hour roll-ups and the latest values.

Ingestion only appends readings (``store``); a fold brings the roll-ups and the latest values
up to date, incrementally and exactly once:

* SQLite: one writer at a time appends readings with rising rowids, so the highest rowid folded
  (``telemetry_fold.position``) splits what is folded from what is new. A fold takes the
  database's write lock, folds the rowids above it and moves it, in one transaction.
  ``reading_batches`` says when each batch was received (for ``received_at``). Retention never
  deletes the newest row (so a rowid is never handed out twice) and VACUUM keeps rowids.
* PostgreSQL: the storing transaction also appended each new reading to ``reading_pending``;
  a fold deletes the rows it folds (``DELETE … RETURNING``), so a reading is folded by exactly
  one committed fold. Folders first lock the ``telemetry_fold`` row — ``FOR UPDATE SKIP
  LOCKED``: a second folder finds it taken and leaves the work to the first.

A fold aggregates its readings per (device, metric, minute) in a temporary table and upserts
minutes, hours and latest values from that: a device reporting every second costs one
roll-up write a minute per fold, not one per reading. Everything a fold does commits together,
so a crash in between folds nothing and the next fold starts from the same place.

Who folds: ``ingest(fold=True)`` (the default) in its own transaction; ``cityops serve`` and
``cityops ingest`` in a background thread every ``CITYOPS_TELEMETRY_FOLD_INTERVAL_S`` — their
HTTP batches and MQTT messages are stored with ``fold=False`` — and once more when they stop;
the worker loop (``cityops worker``) before its alarm duties. Readers of roll-ups and latest
values see them at most about one interval behind; the rule engine reads raw readings only.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session, sessionmaker

from cityops.db import UTCDateTime, transaction, utcnow

log = logging.getLogger("cityops.telemetry")

STREAM = "readings"
CHUNK = 100_000  # readings per fold transaction (bounds how long it holds SQLite's write lock)
MINUTE_MS = 60_000
HOUR_MS = 3_600_000


def run(session: Session, now: datetime, *, wait: bool = False, limit: int | None = CHUNK) -> int:
    """Fold up to ``limit`` readings (None: all there are) in the caller's transaction; the
    number folded. On PostgreSQL, 0 also when another folder is at work, unless ``wait``."""
    if session.get_bind().dialect.name == "postgresql":
        return _run_pg(session, now, wait, limit)
    return _run_sqlite(session, now, limit)


def catch_up(
    factory: sessionmaker[Session], now: datetime | None = None, *, wait: bool = False
) -> int:
    """Fold everything stored so far, one transaction per ``CHUNK``; the number folded. The
    factory must take SQLite's write lock at BEGIN (``session_factory(writer=True)``). On
    PostgreSQL, without ``wait`` it leaves at once if another folder is at work (which folds
    the same readings); with it, it waits for that folder and folds what is left."""
    total = 0
    while True:
        with transaction(factory) as session:
            count = run(session, now or utcnow(), wait=wait)
        total += count
        if not count:
            return total


def pending(session: Session) -> int:
    """Readings stored and not folded yet."""
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        return int(conn.execute(text("SELECT count(*) FROM reading_pending")).scalar_one())
    return int(
        conn.execute(
            text(
                "SELECT count(*) FROM readings WHERE rowid > "
                "(SELECT coalesce(max(position), 0) FROM telemetry_fold WHERE stream = :s)"
            ),
            {"s": STREAM},
        ).scalar_one()
    )


class Folder:
    """A daemon thread folding every ``interval_s`` seconds, for a process that ingests with
    ``fold=False``."""

    def __init__(self, factory: sessionmaker[Session], interval_s: float) -> None:
        self.factory = factory
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="telemetry-fold", daemon=True)

    def start(self) -> Folder:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop, folding what is left first (a clean shutdown leaves nothing behind)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        try:
            catch_up(self.factory, wait=True)
        except Exception:
            log.exception("folding readings into the roll-ups at shutdown failed")

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                catch_up(self.factory)
            except Exception:  # the next round tries again; nothing is lost meanwhile
                log.exception("folding readings into the roll-ups failed")


# --- SQLite ---------------------------------------------------------------------------------

_SQLITE_TEMP = (
    "CREATE TEMP TABLE IF NOT EXISTS fold_1m (device_id INTEGER NOT NULL, metric TEXT NOT NULL,"
    " bucket INTEGER NOT NULL, n INTEGER NOT NULL, vmin REAL NOT NULL, vmax REAL NOT NULL,"
    " vsum REAL NOT NULL, last_ts INTEGER NOT NULL, last_value REAL, last_row INTEGER NOT NULL,"
    " PRIMARY KEY (device_id, metric, bucket)) WITHOUT ROWID"
)

_SQLITE_MINUTES = f"""
    INSERT INTO fold_1m (device_id, metric, bucket, n, vmin, vmax, vsum, last_ts, last_row)
    SELECT device_id, metric, ts - ts % {MINUTE_MS}, count(*), min(value), max(value),
           sum(value), max(ts), max(rowid)
    FROM readings WHERE rowid > ? AND rowid <= ?
    GROUP BY device_id, metric, ts - ts % {MINUTE_MS}
"""

# A bucket's last value is the value of the reading at its last timestamp (one key lookup).
_SQLITE_LAST = """
    UPDATE fold_1m SET last_value = (
        SELECT r.value FROM readings AS r WHERE r.device_id = fold_1m.device_id
        AND r.metric = fold_1m.metric AND r.ts = fold_1m.last_ts)
"""


def _sqlite_upsert(table: str, select: str) -> str:
    return f"""
        INSERT INTO {table} (device_id, metric, bucket, n, vmin, vmax, vsum, last_ts, last_value)
        {select}
        WHERE true
        ON CONFLICT (device_id, metric, bucket) DO UPDATE SET
            n = {table}.n + excluded.n,
            vmin = min({table}.vmin, excluded.vmin),
            vmax = max({table}.vmax, excluded.vmax),
            vsum = {table}.vsum + excluded.vsum,
            last_value = CASE WHEN excluded.last_ts >= {table}.last_ts
                              THEN excluded.last_value ELSE {table}.last_value END,
            last_ts = max({table}.last_ts, excluded.last_ts)
    """


_SQLITE_1M = _sqlite_upsert(
    "rollups_1m",
    "SELECT device_id, metric, bucket, n, vmin, vmax, vsum, last_ts, last_value FROM fold_1m",
)

_SQLITE_1H = _sqlite_upsert(
    "rollups_1h",
    f"""
    SELECT g.device_id, g.metric, g.bucket, g.n, g.vmin, g.vmax, g.vsum, g.last_ts, f.last_value
    FROM (
        SELECT device_id, metric, bucket - bucket % {HOUR_MS} AS bucket, sum(n) AS n,
               min(vmin) AS vmin, max(vmax) AS vmax, sum(vsum) AS vsum, max(last_ts) AS last_ts
        FROM fold_1m GROUP BY device_id, metric, bucket - bucket % {HOUR_MS}
    ) AS g
    JOIN fold_1m AS f ON f.device_id = g.device_id AND f.metric = g.metric
                     AND f.bucket = g.last_ts - g.last_ts % {MINUTE_MS}
    """,
)

# received_at: when the batch that stored the series' newest-stored reading was received.
_SQLITE_LATEST = text(
    f"""
    INSERT INTO telemetry_latest (device_id, metric, ts, value, received_at)
    SELECT f.device_id, f.metric, f.last_ts, f.last_value, coalesce(
        (SELECT b.received_at FROM reading_batches AS b WHERE b.upto >= g.last_row
         ORDER BY b.upto LIMIT 1), :now)
    FROM (
        SELECT device_id, metric, max(last_ts) AS last_ts, max(last_row) AS last_row
        FROM fold_1m GROUP BY device_id, metric
    ) AS g
    JOIN fold_1m AS f ON f.device_id = g.device_id AND f.metric = g.metric
                     AND f.bucket = g.last_ts - g.last_ts % {MINUTE_MS}
    WHERE true
    ON CONFLICT (device_id, metric) DO UPDATE SET
        value = CASE WHEN excluded.ts > telemetry_latest.ts
                     THEN excluded.value ELSE telemetry_latest.value END,
        ts = max(telemetry_latest.ts, excluded.ts),
        received_at = max(telemetry_latest.received_at, excluded.received_at)
    """
).bindparams(bindparam("now", type_=UTCDateTime()))

_SQLITE_MOVE = text(
    "UPDATE telemetry_fold SET position = :hi, folded_at = :now WHERE stream = :s"
).bindparams(bindparam("now", type_=UTCDateTime()))


def _position(session: Session) -> int:
    conn = session.connection()
    found = conn.execute(
        text("SELECT position FROM telemetry_fold WHERE stream = :s"), {"s": STREAM}
    ).scalar()
    if found is None:  # a database made without the migration's first row
        conn.execute(
            text("INSERT INTO telemetry_fold (stream, position) VALUES (:s, 0)"), {"s": STREAM}
        )
        return 0
    return int(found)


def _run_sqlite(session: Session, now: datetime, limit: int | None) -> int:
    lo = _position(session)
    conn = session.connection()
    top = conn.execute(text("SELECT max(rowid) FROM readings")).scalar()
    if top is None or top <= lo:
        return 0
    hi = int(top) if limit is None else min(int(top), lo + limit)
    conn.exec_driver_sql(_SQLITE_TEMP)
    conn.exec_driver_sql("DELETE FROM fold_1m")
    conn.exec_driver_sql(_SQLITE_MINUTES, (lo, hi))
    conn.exec_driver_sql(_SQLITE_LAST)
    conn.exec_driver_sql(_SQLITE_1M)
    conn.exec_driver_sql(_SQLITE_1H)
    conn.execute(_SQLITE_LATEST, {"now": now})
    count = int(conn.exec_driver_sql("SELECT coalesce(sum(n), 0) FROM fold_1m").scalar_one())
    conn.execute(_SQLITE_MOVE, {"hi": hi, "now": now, "s": STREAM})
    conn.exec_driver_sql("DELETE FROM reading_batches WHERE upto <= ?", (hi,))
    conn.exec_driver_sql("DELETE FROM fold_1m")
    return count


# --- PostgreSQL -----------------------------------------------------------------------------

_PG_TEMP = (
    "CREATE TEMP TABLE IF NOT EXISTS fold_1m (device_id integer NOT NULL,"
    " metric varchar(32) NOT NULL, bucket bigint NOT NULL, n integer NOT NULL,"
    " vmin double precision NOT NULL, vmax double precision NOT NULL,"
    " vsum double precision NOT NULL, last_ts bigint NOT NULL,"
    " last_value double precision NOT NULL, received_at timestamptz NOT NULL)"
    " ON COMMIT DELETE ROWS"
)


def _pg_claim(limit: int | None) -> str:
    # One folder at a time holds the telemetry_fold row, so no two delete the same rows.
    where = (
        ""
        if limit is None
        else f" WHERE ctid = ANY(ARRAY(SELECT ctid FROM reading_pending LIMIT {int(limit)}))"
    )
    return f"""
        WITH claimed AS (
            DELETE FROM reading_pending{where}
            RETURNING device_id, metric, ts, value, received_at
        )
        INSERT INTO fold_1m
        SELECT device_id, metric, ts - ts % {MINUTE_MS}, count(*), min(value), max(value),
               sum(value), max(ts), (array_agg(value ORDER BY ts DESC))[1], max(received_at)
        FROM claimed GROUP BY device_id, metric, ts - ts % {MINUTE_MS}
    """


def _pg_upsert(table: str, select: str) -> str:
    return f"""
        INSERT INTO {table} AS t (device_id, metric, bucket, n, vmin, vmax, vsum,
                                  last_ts, last_value)
        {select}
        ON CONFLICT (device_id, metric, bucket) DO UPDATE SET
            n = t.n + excluded.n,
            vmin = least(t.vmin, excluded.vmin),
            vmax = greatest(t.vmax, excluded.vmax),
            vsum = t.vsum + excluded.vsum,
            last_value = CASE WHEN excluded.last_ts >= t.last_ts
                              THEN excluded.last_value ELSE t.last_value END,
            last_ts = greatest(t.last_ts, excluded.last_ts)
    """


_PG_1M = _pg_upsert(
    "rollups_1m",
    "SELECT device_id, metric, bucket, n, vmin, vmax, vsum, last_ts, last_value FROM fold_1m",
)

_PG_1H = _pg_upsert(
    "rollups_1h",
    f"""
    SELECT device_id, metric, bucket - bucket % {HOUR_MS}, sum(n), min(vmin), max(vmax),
           sum(vsum), max(last_ts), (array_agg(last_value ORDER BY last_ts DESC))[1]
    FROM fold_1m GROUP BY device_id, metric, bucket - bucket % {HOUR_MS}
    """,
)

_PG_LATEST = """
    INSERT INTO telemetry_latest AS t (device_id, metric, ts, value, received_at)
    SELECT device_id, metric, max(last_ts), (array_agg(last_value ORDER BY last_ts DESC))[1],
           max(received_at)
    FROM fold_1m GROUP BY device_id, metric
    ON CONFLICT (device_id, metric) DO UPDATE SET
        value = CASE WHEN excluded.ts > t.ts THEN excluded.value ELSE t.value END,
        ts = greatest(t.ts, excluded.ts),
        received_at = greatest(t.received_at, excluded.received_at)
"""


def _run_pg(session: Session, now: datetime, wait: bool, limit: int | None) -> int:
    conn = session.connection()
    lock = "FOR UPDATE" if wait else "FOR UPDATE SKIP LOCKED"
    claim = text(f"SELECT position FROM telemetry_fold WHERE stream = :s {lock}")
    if conn.execute(claim, {"s": STREAM}).first() is None:
        made = conn.execute(
            text(
                "INSERT INTO telemetry_fold (stream, position) VALUES (:s, 0) "
                "ON CONFLICT DO NOTHING"
            ),
            {"s": STREAM},
        )
        if not getattr(made, "rowcount", 0):
            return 0  # another folder holds it
        conn.execute(claim, {"s": STREAM})
    conn.execute(text(_PG_TEMP))
    conn.execute(text("DELETE FROM fold_1m"))
    conn.execute(text(_pg_claim(limit)))
    count = int(conn.execute(text("SELECT coalesce(sum(n), 0) FROM fold_1m")).scalar_one())
    if count:
        conn.execute(text(_PG_1M))
        conn.execute(text(_PG_1H))
        conn.execute(text(_PG_LATEST))
        conn.execute(
            text(
                "UPDATE telemetry_fold SET position = position + :n, folded_at = :now "
                "WHERE stream = :s"
            ).bindparams(bindparam("now", type_=UTCDateTime())),
            {"n": count, "now": now, "s": STREAM},
        )
    conn.execute(text("DELETE FROM fold_1m"))
    return count
