"""Publish to the live feed and read it back within a principal's region scope.

Publishing adds a row in the caller's transaction; the bus (``cityops.live.bus``) announces it
to open streams once that transaction commits. Followers read by id (``after``); ``follow``
also copes with PostgreSQL handing out ids in one order and committing them in another."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, exists, func, or_, select, text
from sqlalchemy.orm import Session

from cityops.auth.principal import Principal
from cityops.live import bus
from cityops.live.models import FeedItem

MAX_PAGE = 500
CASES = "cases"  # the event center's topic (see ``cityops.events.lifecycle.publish``)
# How long a follower waits for an id that is missing while transactions that might still
# commit it are running (PostgreSQL), before it counts the id as rolled back.
GAP_MAX_S = 30.0
log = logging.getLogger(__name__)

bus.install()  # whoever publishes announces its commits


def publish(
    session: Session,
    topic: str,
    action: str,
    ref: str | int,
    *,
    at: datetime,
    region_code: str | None = None,
    payload: dict[str, Any] | None = None,
) -> FeedItem:
    item = FeedItem(
        at=at,
        topic=topic,
        action=action,
        ref=str(ref),
        region_code=region_code,
        payload=payload or {},
    )
    session.add(item)
    return item


def read(
    session: Session,
    principal: Principal,
    *,
    after: int = 0,
    upto: int | None = None,
    topics: Sequence[str] = (),
    limit: int = 100,
) -> list[FeedItem]:
    query = select(FeedItem).where(FeedItem.id > after)
    if upto is not None:
        query = query.where(FeedItem.id <= upto)
    if principal.region_code:
        # Items without a place (a rule changed …) are for everyone who may read the feed.
        placed: Any = FeedItem.region_code
        query = query.where(or_(principal.scope(placed), FeedItem.region_code.is_(None)))
    if topics:
        query = query.where(FeedItem.topic.in_(list(topics)))
    query = query.where(or_(FeedItem.topic != CASES, _case_visible(principal)))
    return list(session.scalars(query.order_by(FeedItem.id).limit(min(max(limit, 1), MAX_PAGE))))


def _case_visible(principal: Principal) -> ColumnElement[bool]:
    """A case's items go to whoever may see the case — its region for desks and leaders, their
    unit's cases for handlers, their own for citizens: the event center decides."""
    from cityops.events import queries
    from cityops.events.models import Case

    return exists().where(Case.code == FeedItem.ref, queries.visible(principal))


def as_dict(item: FeedItem) -> dict[str, Any]:
    """One item as the feed and the stream show it."""
    return {
        "id": item.id,
        "at": item.at,
        "topic": item.topic,
        "action": item.action,
        "ref": item.ref,
        "region_code": item.region_code,
        "payload": item.payload,
    }


def latest_id(session: Session) -> int:
    return session.scalar(select(func.max(FeedItem.id))) or 0


@dataclass
class Cursor:
    """Where a follower stands: every item up to ``after`` has been read or never will exist.

    On PostgreSQL ids come from a sequence when rows are written, not when they commit: id 11
    may be visible while id 10 is still being committed by a slower transaction. A missing id is
    a *gap*; the cursor stops before it while a transaction that had written to the feed when
    the gap was first seen is still running (it may commit the id), then moves on."""

    after: int
    more: bool = False  # a full page was read: read again at once
    gaps: dict[int, tuple[frozenset[int], float]] = field(default_factory=dict)

    @property
    def waiting(self) -> bool:
        """Stopped at a gap that may still fill."""
        return bool(self.gaps)


def follow(
    session: Session,
    principal: Principal,
    cursor: Cursor,
    *,
    topics: Sequence[str] = (),
    limit: int = MAX_PAGE,
) -> list[FeedItem]:
    """The next items for ``principal`` after ``cursor`` — only those no earlier item can still
    appear before — with the cursor moved past them (and past items outside the scope)."""
    limit = min(max(limit, 1), MAX_PAGE)
    ids, running = _ids_after(session, cursor.after, limit)
    writers: frozenset[int] | None = None
    horizon = cursor.after
    for item_id in ids:
        if item_id > horizon + 1:
            if running is not None and writers is None:
                writers = _feed_writers(session) & running
            if not _settled(cursor, horizon + 1, writers):
                break
        horizon = item_id
    for start in [s for s in cursor.gaps if s <= horizon]:
        del cursor.gaps[start]
    # Read after the writers were sampled: an id whose transaction committed in between is seen.
    items = (
        read(session, principal, after=cursor.after, upto=horizon, topics=topics, limit=limit)
        if horizon > cursor.after
        else []
    )
    cursor.more = bool(ids) and len(ids) == limit and horizon == ids[-1]
    cursor.after = horizon
    return items


def _ids_after(session: Session, after: int, limit: int) -> tuple[list[int], frozenset[int] | None]:
    """Visible ids after ``after`` and, on PostgreSQL, the transactions running when they were
    read (one statement: one snapshot); ``None`` on SQLite, whose single writer makes ids
    visible in the order they were given."""
    if session.get_bind().dialect.name != "postgresql":
        query = select(FeedItem.id).where(FeedItem.id > after).order_by(FeedItem.id).limit(limit)
        return list(session.scalars(query)), None
    snapshot, ids = session.execute(
        text(
            "SELECT pg_current_snapshot()::text, "
            f"ARRAY(SELECT id FROM {FeedItem.__tablename__} WHERE id > :after "
            "ORDER BY id LIMIT :limit)"
        ),
        {"after": after, "limit": limit},
    ).one()
    running = snapshot.split(":")[2]
    # pg_locks shows 32-bit transaction ids; the snapshot 64-bit ones.
    return list(ids), frozenset(int(x) & 0xFFFFFFFF for x in running.split(",") if x)


def _feed_writers(session: Session) -> frozenset[int]:
    """Transactions of this database, other than ours, that have written to the feed and not
    yet ended (whoever inserts a row holds the table's RowExclusiveLock from before its id is
    drawn until it commits or rolls back)."""
    rows = session.execute(
        text(
            "SELECT DISTINCT x.transactionid::text FROM pg_locks r "
            "JOIN pg_locks x ON x.pid = r.pid AND x.locktype = 'transactionid' "
            "AND x.mode = 'ExclusiveLock' AND x.granted "
            "WHERE r.locktype = 'relation' AND r.mode = 'RowExclusiveLock' "
            "AND r.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            f"AND r.relation = '{FeedItem.__tablename__}'::regclass "
            "AND r.pid <> pg_backend_pid()"
        )
    ).scalars()
    return frozenset(int(x) for x in rows)


def _settled(cursor: Cursor, start: int, writers: frozenset[int] | None) -> bool:
    """Whether the missing id ``start`` will never appear (rolled back, or skipped).

    The id was drawn before a later, visible one committed, so the transaction holding it was
    running when the ids were read; if it still runs it is among ``writers``."""
    if writers is None:  # SQLite
        return True
    now = time.monotonic()
    seen = cursor.gaps.get(start)
    if seen is None:
        cursor.gaps[start] = (writers, now)
        return not writers
    waiting_for, since = seen
    if not waiting_for & writers:
        return True
    if now - since > GAP_MAX_S:
        log.warning("live feed: id %d still missing after %.0f s; moving on", start, GAP_MAX_S)
        return True
    return False
