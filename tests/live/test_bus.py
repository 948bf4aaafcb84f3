"""The bus announces a transaction's feed items when — and only if — it commits."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest
from sqlalchemy.orm import Session

from cityops.db import utcnow
from cityops.live import bus
from cityops.live import service as live
from tests.live.conftest import Database

Announced = Callable[[], list[int]]


@pytest.fixture
def announced(live_db: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[Announced]:
    """What the bus announced since the last call: in-process announcements on SQLite,
    notifications on the channel on PostgreSQL."""
    if live_db.engine.dialect.name == "sqlite":
        seen: list[int] = []
        monkeypatch.setattr(bus, "announce", seen.append)

        def local() -> list[int]:
            found = list(seen)
            seen.clear()
            return found

        yield local
        return
    conninfo = live_db.engine.url.set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f"LISTEN {bus.CHANNEL}")

        def notified() -> list[int]:
            return [int(n.payload) for n in conn.notifies(timeout=0.3)]

        yield notified


def _item(session: Session, action: str = "probe") -> int:
    item = live.publish(session, "bus", action, "x", at=utcnow())
    session.flush()
    return item.id


def test_rolled_back_items_are_never_announced(live_db: Database, announced: Announced) -> None:
    with live_db.factory() as session:
        _item(session)
        session.rollback()
    with live_db.factory() as session:
        _item(session)  # closed without a commit
    with live_db.factory() as session:
        savepoint = session.begin_nested()
        _item(session)
        savepoint.rollback()
        session.commit()
    assert announced() == []


def test_a_commit_announces_its_highest_item(live_db: Database, announced: Announced) -> None:
    with live_db.factory() as session:
        savepoint = session.begin_nested()
        _item(session, "released")
        savepoint.commit()
        _item(session)
        top = _item(session)
        session.commit()
    # One announcement per commit on SQLite; per flush on PostgreSQL (delivered at commit).
    found = announced()
    assert found and max(found) == top
    with live_db.factory() as session:
        session.commit()  # nothing written to the feed: nothing to say
    assert announced() == []
