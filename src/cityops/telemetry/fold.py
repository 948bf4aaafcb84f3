"""Folding stored readings into the 1-minute and 1-hour roll-ups and the latest values.

Ingestion only appends readings (``store``); a fold brings the roll-ups and the latest values
up to date, incrementally and exactly once:

* SQLite: one writer at a time appends readings with rising rowids, so the highest rowid folded
  (``telemetry_fold.position``) splits what is folded from what is new. A fold takes the
  database's write lock, folds the rowids above it and moves it, in one transaction.
  ``reading_batches`` says when each batch was received (for ``received_at``). Retention never
  deletes the newest row (so a rowid is never handed out twice) and VACUUM keeps rowids.
* PostgreSQL: writers commit in any order, so no counter splits folded from new; each reading
  carries instead the id of the transaction that stored it (``readings.tx``). Every
  transaction below the oldest one still running (the fold's snapshot ``xmin``) has finished,
  so a fold takes the readings of the transactions from ``telemetry_fold.position`` up to that
  horizon (a BRIN index finds them in the few newest pages) and moves the position there:
  each reading is folded once. Readings this very transaction stored are folded by clearing
  their ``tx`` (``UPDATE … RETURNING``), so no later fold takes them again. Folders first lock
  the ``telemetry_fold`` row — ``FOR UPDATE SKIP LOCKED``: a second folder finds it taken and
  leaves the work to the first. A writing transaction running long anywhere in the cluster
  holds the horizon back: background folds then wait for it (the roll-ups lag), while a
  folder that waits (``catch_up(wait=True)``: at shutdown, direct callers, and a background
  folder whose horizon has not moved for ``HELD_BACK_S``) also takes the readings of
  transactions that finished above it, clearing their ``tx`` as for its own.

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
import time
from datetime import datetime

from sqlalchemy import bindparam, select, text
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


def prune_sqlite(session: Session, cutoff_ms: int) -> int:
    """SQLite retention: readings older than ``cutoff_ms`` — but none not folded yet, and never
    the newest row (so no rowid is handed out twice: folds follow rowids). How many."""
    result = session.execute(
        text(
            "DELETE FROM readings WHERE ts < :cutoff"
            " AND rowid <= (SELECT position FROM telemetry_fold WHERE stream = :s)"
            " AND rowid < (SELECT max(rowid) FROM readings)"
        ),
        {"cutoff": cutoff_ms, "s": STREAM},
    )
    return int(getattr(result, "rowcount", 0))


def pending(session: Session) -> int:
    """Readings stored and not folded yet (that this transaction sees)."""
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM readings WHERE tx >= "
                    "(SELECT coalesce(max(position), 0) FROM telemetry_fold WHERE stream = :s)"
                ),
                {"s": STREAM},
            ).scalar_one()
        )
    return int(
        conn.execute(
            text(
                "SELECT count(*) FROM readings WHERE rowid > "
                "(SELECT coalesce(max(position), 0) FROM telemetry_fold WHERE stream = :s)"
            ),
            {"s": STREAM},
        ).scalar_one()
    )


PACE = 4  # a folder rests at least this many times as long as its last fold took
QUIET_S = 0.25  # storing paused this long: a burst has ended (Folder.stored)
HELD_BACK_S = 60.0  # PostgreSQL: a horizon stuck this long is passed (see Folder.round)


class Folder:
    """A daemon thread folding every ``interval_s`` seconds, for a process that ingests with
    ``fold=False`` — or, when folds grow long under heavy ingestion, resting ``PACE`` times as
    long as the last one took: a fold costs a write per series it touches however few readings
    it folds, so under load fewer, larger folds do the same work for less (and leave the
    writers their turn), the roll-ups lagging by a few fold-lengths (ten intervals) at most.
    When its process stops storing (``stored()`` not called for ``QUIET_S``), it cuts such a
    rest short: the roll-ups catch up an interval after a burst, not a rest after it."""

    def __init__(self, factory: sessionmaker[Session], interval_s: float) -> None:
        self.factory = factory
        self.interval_s = interval_s
        self.last_s = 0.0  # how long the last fold took
        self.held_back_s = HELD_BACK_S
        self.held = False  # folding past a held-back horizon (PostgreSQL)
        with factory() as session:  # a session does not connect until asked to
            self.postgres = session.get_bind().dialect.name == "postgresql"
        self._stop = threading.Event()
        self._stored_at: float | None = None  # when this process last stored, if since a fold
        self._thread = threading.Thread(target=self._loop, name="telemetry-fold", daemon=True)

    def start(self) -> Folder:
        self._thread.start()
        return self

    @classmethod
    def background(cls, factory: sessionmaker[Session], interval_s: float) -> Folder | None:
        """A started folder for a process that ingests (``cityops serve``, ``cityops
        ingest``); None when CITYOPS_TELEMETRY_FOLD_INTERVAL_S is 0 (the worker folds)."""
        return cls(factory, interval_s).start() if interval_s > 0 else None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop, folding what is left first (a clean shutdown leaves nothing behind)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        try:
            catch_up(self.factory, wait=True)
        except Exception:
            log.exception("folding readings into the roll-ups at shutdown failed")

    def stored(self) -> None:
        """This process has just stored readings (called by whoever stores them)."""
        self._stored_at = time.monotonic()

    def _loop(self) -> None:
        while not self._rest():
            try:
                self.round()
            except Exception:  # the next round tries again; nothing is lost meanwhile
                log.exception("folding readings into the roll-ups failed")

    def _rest(self) -> bool:
        """Rest before the next round: ``rest_s()``, or an interval once this process has
        stored readings and then none for ``QUIET_S``. True: stop."""
        started = time.monotonic()
        end = started + self.rest_s()
        while True:
            now = time.monotonic()
            last = self._stored_at
            if now >= end or (
                last is not None and now - started >= self.interval_s and now - last >= QUIET_S
            ):
                self._stored_at = None
                return self._stop.is_set()
            if self._stop.wait(min(end - now, QUIET_S / 2)):
                return True

    def round(self) -> int:
        """One round: fold what there is, unless another process just did; the number
        folded. On PostgreSQL, when the horizon has not moved for ``held_back_s`` while
        readings wait — a writing transaction left open somewhere in the cluster — fold past
        it as a waiting folder does (an extra write per reading, until that transaction
        ends), so the roll-ups and latest values never lag by more than that."""
        if self._folded_lately():
            return 0
        started = time.monotonic()
        count = catch_up(self.factory)
        held = self._held_back()
        if held:
            if not self.held:  # once a spell, not every round
                log.warning("a transaction left open holds the fold horizon back: folding past it")
            count += catch_up(self.factory, wait=True)
        self.held = held
        self.last_s = time.monotonic() - started
        return count

    def _held_back(self) -> bool:
        if not self.postgres:
            return False  # SQLite's position follows its single writer
        with self.factory() as session:
            ago = _since_folded(session)
            return (ago is None or ago >= self.held_back_s) and pending(session) > 0

    def rest_s(self) -> float:
        """The interval, or ``PACE`` fold-lengths — never more than ten intervals."""
        return min(max(self.interval_s, PACE * self.last_s), 10 * self.interval_s)

    def _folded_lately(self) -> bool:
        """Whether another process's folder folded less than an interval ago: then this round
        is left out, so several processes fold once an interval between them, not once each
        (each fold costs a write per series it touches, however few readings it folds)."""
        with self.factory() as session:
            ago = _since_folded(session)
        return ago is not None and ago < self.interval_s * 0.9


def _since_folded(session: Session) -> float | None:
    """Seconds since a fold last moved the position (any process's), if one ever did."""
    from cityops.telemetry.models import FoldState

    last = session.scalar(select(FoldState.folded_at).where(FoldState.stream == STREAM))
    return None if last is None else (utcnow() - last).total_seconds()


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

# A bucket's last value is the value of the reading at its last timestamp: usually the bucket's
# newest-stored reading too (one rowid lookup), else found by its key.
_SQLITE_LAST = """
    UPDATE fold_1m SET last_value = coalesce(
        (SELECT r.value FROM readings AS r WHERE r.rowid = fold_1m.last_row
         AND r.ts = fold_1m.last_ts),
        (SELECT r.value FROM readings AS r WHERE r.device_id = fold_1m.device_id
         AND r.metric = fold_1m.metric AND r.ts = fold_1m.last_ts))
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

# Each minute is upserted into its hour in turn (SQLite lets a statement's later rows update
# what its earlier ones inserted): no grouping, and no join back for the hour's last value.
_SQLITE_1H = _sqlite_upsert(
    "rollups_1h",
    f"""
    SELECT device_id, metric, bucket - bucket % {HOUR_MS}, n, vmin, vmax, vsum, last_ts,
           last_value
    FROM fold_1m
    """,
)

# Likewise each minute into the latest value in turn; received_at: when the batch that stored
# the minute's newest-stored reading was received.
_SQLITE_LATEST = text(
    """
    INSERT INTO telemetry_latest (device_id, metric, ts, value, received_at)
    SELECT f.device_id, f.metric, f.last_ts, f.last_value, coalesce(
        (SELECT b.received_at FROM reading_batches AS b WHERE b.upto >= f.last_row
         ORDER BY b.upto LIMIT 1), :now)
    FROM fold_1m AS f
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
    conn.exec_driver_sql(_SQLITE_TEMP)  # empty: every fold empties it before it ends
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


# A group's last value: max(ARRAY[ts, value])[2] — a series has one reading per timestamp and
# epoch milliseconds are exact as doubles. (array_agg(value ORDER BY ts DESC))[1] said the
# same but sorted every group again: the fold's aggregation took 15 % longer.


def _pg_fold(source: str, received: str) -> str:
    """Aggregate readings per (device, metric, minute) into ``fold_1m``."""
    return f"""
        INSERT INTO fold_1m
        SELECT r.device_id, r.metric, r.ts - r.ts % {MINUTE_MS}, count(*), min(r.value),
               max(r.value), sum(r.value), max(r.ts), (max(ARRAY[r.ts, r.value]))[2],
               {received}
        FROM {source}
        GROUP BY r.device_id, r.metric, r.ts - r.ts % {MINUTE_MS}
    """


# The BRIN index on readings.tx summarised up to the partitions' ends, so that a fold's look
# for new readings reads the pages written since the last fold and no more (summarising reads
# each of them once; autovacuum would leave a minute's worth unsummarised, read at every fold).
_PG_SUMMARIZE = (
    "SELECT coalesce(sum(brin_summarize_new_values(inhrelid)), 0) FROM pg_inherits"
    " WHERE inhparent = 'ix_readings_tx'::regclass"
)
# Those of the transactions finished since the last fold; received when their batch was.
_PG_FINISHED = _pg_fold(
    "readings AS r LEFT JOIN reading_batches AS b ON b.upto = r.tx"
    " WHERE r.tx >= :lo AND r.tx < :hi",
    "coalesce(max(b.received_at), :now)",
)
# This transaction's own, taken out of every later fold's reach.
_PG_OWN = "WITH mine AS (UPDATE readings SET tx = NULL WHERE tx = :tx RETURNING *) " + _pg_fold(
    "mine AS r", "coalesce((SELECT received_at FROM reading_batches WHERE upto = :tx), :now)"
)
# A folder that waits (shutdown, direct callers) also takes what transactions that finished
# above the horizon stored — a writing transaction running long anywhere in the cluster holds
# the horizon back — taking those readings out of every later fold's reach, as its own.
_PG_AHEAD = (
    "WITH ahead AS (SELECT device_id, metric, ts, value, tx FROM readings"
    " WHERE tx >= :hi AND tx <> :tx),"
    " cleared AS (UPDATE readings AS u SET tx = NULL FROM ahead AS a WHERE"
    " u.device_id = a.device_id AND u.metric = a.metric AND u.ts = a.ts) "
    + _pg_fold(
        "ahead AS r LEFT JOIN reading_batches AS b ON b.upto = r.tx",
        "coalesce(max(b.received_at), :now)",
    )
)


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


# fold_1m may hold a minute twice (readings taken by two routes: finished transactions, this
# one's own, those above the horizon), so minutes are summed up too, as hours are.
_PG_1M = _pg_upsert(
    "rollups_1m",
    """
    SELECT device_id, metric, bucket, sum(n), min(vmin), max(vmax), sum(vsum), max(last_ts),
           (max(ARRAY[last_ts, last_value]))[2]
    FROM fold_1m GROUP BY device_id, metric, bucket
    """,
)

_PG_1H = _pg_upsert(
    "rollups_1h",
    f"""
    SELECT device_id, metric, bucket - bucket % {HOUR_MS}, sum(n), min(vmin), max(vmax),
           sum(vsum), max(last_ts), (max(ARRAY[last_ts, last_value]))[2]
    FROM fold_1m GROUP BY device_id, metric, bucket - bucket % {HOUR_MS}
    """,
)

_PG_LATEST = """
    INSERT INTO telemetry_latest AS t (device_id, metric, ts, value, received_at)
    SELECT device_id, metric, max(last_ts), (max(ARRAY[last_ts, last_value]))[2],
           max(received_at)
    FROM fold_1m GROUP BY device_id, metric
    ON CONFLICT (device_id, metric) DO UPDATE SET
        value = CASE WHEN excluded.ts > t.ts THEN excluded.value ELSE t.value END,
        ts = greatest(t.ts, excluded.ts),
        received_at = greatest(t.received_at, excluded.received_at)
"""


def _run_pg(session: Session, now: datetime, wait: bool, limit: int | None) -> int:
    """``limit`` does not apply: a fold takes every finished transaction's readings (with
    ``wait``, also those above the horizon: everything committed before it began)."""
    from cityops.telemetry.store import PENDING

    conn = session.connection()
    lock = "FOR UPDATE" if wait else "FOR UPDATE SKIP LOCKED"
    claim = text(f"SELECT position FROM telemetry_fold WHERE stream = :s {lock}")
    found = conn.execute(claim, {"s": STREAM}).scalar()
    if found is None:
        made = conn.execute(
            text(
                "INSERT INTO telemetry_fold (stream, position) VALUES (:s, 0) "
                "ON CONFLICT DO NOTHING"
            ),
            {"s": STREAM},
        )
        if not getattr(made, "rowcount", 0):
            return 0  # another folder holds it
        found = conn.execute(claim, {"s": STREAM}).scalar()
    lo = int(found or 0)
    hi = int(
        conn.exec_driver_sql("SELECT txid_snapshot_xmin(txid_current_snapshot())").scalar_one()
    )
    conn.execute(text(_PG_TEMP))  # empty: every fold empties it before it ends
    params = {"lo": lo, "hi": hi, "now": now}
    if hi > lo:
        conn.exec_driver_sql(_PG_SUMMARIZE)
        conn.execute(text(_PG_FINISHED), params)
    own = -1
    if session.info.pop(PENDING, False):
        own = int(conn.exec_driver_sql("SELECT txid_current()").scalar_one())
        conn.execute(text(_PG_OWN), {**params, "tx": own})
    if wait:
        conn.execute(text(_PG_AHEAD), {**params, "tx": own})
    count = int(conn.execute(text("SELECT coalesce(sum(n), 0) FROM fold_1m")).scalar_one())
    if count:
        conn.execute(text(_PG_1M))
        conn.execute(text(_PG_1H))
        conn.execute(text(_PG_LATEST))
    if hi > lo:
        conn.execute(
            text(
                "UPDATE telemetry_fold SET position = :hi, folded_at = :now WHERE stream = :s"
            ).bindparams(bindparam("now", type_=UTCDateTime())),
            {"hi": hi, "now": now, "s": STREAM},
        )
        conn.execute(text("DELETE FROM reading_batches WHERE upto < :hi"), {"hi": hi})
    conn.execute(text("DELETE FROM fold_1m"))
    return count
