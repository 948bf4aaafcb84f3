"""Monthly partitions of ``readings`` on PostgreSQL, and the retention that drops old ones.

Partitions are created ahead (the retention window back, two months forward) in their own
short transaction, once per process and month, so ingestion never waits on DDL; on SQLite
retention deletes old rows instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

log = logging.getLogger("cityops.telemetry")

_known: dict[str, set[tuple[int, int]]] = {}
_lock = threading.Lock()


def month_of(ts_ms: int) -> tuple[int, int]:
    moment = datetime.fromtimestamp(ts_ms / 1000, UTC)
    return moment.year, moment.month


def _next(ym: tuple[int, int]) -> tuple[int, int]:
    year, month = ym
    return (year + 1, 1) if month == 12 else (year, month + 1)


def _bounds(ym: tuple[int, int]) -> tuple[int, int]:
    start = datetime(ym[0], ym[1], 1, tzinfo=UTC)
    ny, nm = _next(ym)
    end = datetime(ny, nm, 1, tzinfo=UTC)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def _back(ym: tuple[int, int], months: int) -> tuple[int, int]:
    for _ in range(months):
        year, month = ym
        ym = (year - 1, 12) if month == 1 else (year, month - 1)
    return ym


WINDOW_BACK = 13


def name_of(ym: tuple[int, int]) -> str:
    return f"readings_y{ym[0]:04d}m{ym[1]:02d}"


def months_between(first: tuple[int, int], last: tuple[int, int]) -> list[tuple[int, int]]:
    out = [first]
    while out[-1] < last:
        out.append(_next(out[-1]))
    return out


def existing(engine: Engine) -> set[tuple[int, int]]:
    with engine.connect() as conn:
        names = conn.execute(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'readings'"
            )
        ).scalars()
        out = set()
        for name in names:
            if name.startswith("readings_y") and len(name) == 17:
                out.add((int(name[10:14]), int(name[15:17])))
        return out


def create(engine: Engine, months: Iterable[tuple[int, int]]) -> list[str]:
    made = []
    for ym in sorted(set(months)):
        lo, hi = _bounds(ym)
        try:
            with engine.begin() as conn:
                # Never wait long for the parent table: a writer of this very process may hold
                # it (then the reading that needed the month fails and is retried, rather than
                # both waiting for ever).
                conn.execute(text("SET LOCAL lock_timeout = '5s'"))
                conn.execute(
                    text(
                        f"CREATE TABLE IF NOT EXISTS {name_of(ym)} PARTITION OF readings "
                        f"FOR VALUES FROM ({lo}) TO ({hi})"
                    )
                )
            made.append(name_of(ym))
        except DBAPIError as exc:  # another process created it at the same moment
            log.info("partition %s: %s", name_of(ym), exc.orig)
    return made


def _range(stamps: Iterable[int]) -> tuple[int, int]:
    values = list(stamps)
    return min(values), max(values)


def ensure_for(session: Session, stamps: Iterable[int]) -> None:
    """Make sure every month the batch touches has its partition (usually a set lookup)."""
    bind = session.get_bind()
    engine = bind.engine if hasattr(bind, "engine") else bind
    assert isinstance(engine, Engine)
    key = str(engine.url)
    low, high = _range(stamps)
    months = set(months_between(month_of(low), month_of(high)))
    with _lock:
        known = _known.get(key)
        if known is not None and months <= known:
            return
        have = existing(engine)
        # Create the whole window at once, so later batches (late or early readings) find
        # theirs and DDL does not run while other transactions write.
        now = datetime.now(UTC)
        back = _back((now.year, now.month), WINDOW_BACK)
        ahead = _next(_next((now.year, now.month)))
        missing = set(months_between(min(months | {back}), max(months | {ahead}))) - have
        if missing:
            create(engine, missing)
            have |= missing
        _known[key] = have


def prepare(engine: Engine, now: datetime, retention_months: int) -> list[str]:
    """Partitions from the retention horizon to two months ahead (the worker and the
    ``cityops db upgrade`` step call this)."""
    this = (now.year, now.month)
    first = _back(this, retention_months)
    last = _next(_next(this))
    want = set(months_between(first, last))
    made = create(engine, want - existing(engine))
    with _lock:
        _known[str(engine.url)] = existing(engine)
    return made


def drop_expired(engine: Engine, now: datetime, retention_months: int) -> list[str]:
    horizon = _back((now.year, now.month), retention_months)
    dropped = []
    for ym in sorted(existing(engine)):
        if ym < horizon:
            with engine.begin() as conn:
                conn.execute(text(f"DROP TABLE IF EXISTS {name_of(ym)}"))
            dropped.append(name_of(ym))
    with _lock:
        _known.pop(str(engine.url), None)
    return dropped
