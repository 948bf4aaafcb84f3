"""PostgreSQL: LISTEN/NOTIFY carries commits across processes, the listener survives losing its
connection, and streams never skip an id a slower transaction is still committing."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import text

from cityops.db import utcnow
from cityops.live import service as live
from tests.live.conftest import Database, Server, run_in_thread
from tests.live.sse import Stream

POSTGRESQL_ONLY = True  # see conftest


@pytest.fixture(scope="session")
def other(live_db: Database) -> Iterator[Server]:
    """A second server with its own engine and its own listener: another process, as far as
    the database can tell (on PostgreSQL a commit reaches streams only through NOTIFY)."""
    srv, stop = run_in_thread(live_db)
    yield srv
    stop()


def test_a_commit_in_one_process_reaches_a_stream_in_another(
    server: Server, other: Server, live_db: Database
) -> None:
    with Stream(
        other.url, params={"topics": "cases,xproc"}, headers=other.token("demo-admin")
    ) as s:
        r = httpx.post(
            f"{server.url}/api/v1/cases",
            headers=server.token("demo-intake"),
            json={"description": "窨井盖破损", "region_code": "500154024003001"},
        )
        assert r.status_code == 201, r.text
        event = s.next(1.0)
        assert event is not None and (event.topic, event.data["ref"]) == ("cases", r.json()["code"])
        latencies = []
        for _ in range(20):
            started = time.perf_counter()
            item = live_db.publish("xproc")  # a third engine: a worker, say
            event = s.next(1.0)
            assert event is not None and event.id == item
            latencies.append(event.received - started)
        assert statistics.quantiles(latencies, n=20)[18] < 1.0, latencies
    listener = other.hub.listener
    assert listener is not None and listener.ready.is_set()


def test_the_listener_reconnects_after_its_connection_is_killed(
    other: Server, live_db: Database
) -> None:
    with Stream(other.url, params={"topics": "reconnect"}, headers=other.token("demo-admin")) as s:
        assert s.next(0.2) is None
        listener = other.hub.listener
        assert listener is not None and listener.ready.wait(2)
        killed, connections = listener.backend_pid, listener.connections
        with live_db.engine.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": killed}).scalar()
        # Committed while nobody listens: delivered once the listener is back (not after a poll).
        missed = live_db.publish("reconnect")
        event = s.next(3.0)
        assert event is not None and event.id == missed
        assert listener.connections == connections + 1 and listener.backend_pid != killed
        started = time.perf_counter()
        item = live_db.publish("reconnect")
        event = s.next(1.0)
        assert event is not None and event.id == item and event.received - started < 1.0


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_an_id_still_being_committed_is_waited_for_not_skipped(
    server: Server, live_db: Database, outcome: str
) -> None:
    """Ids are drawn when rows are written, not when they commit: while a slow transaction
    holds id N, a fast one may commit N+1. The stream holds N+1 back until N is decided."""
    with Stream(server.url, params={"topics": "gap"}, headers=server.token("demo-admin")) as s:
        slow = live_db.factory()
        try:
            held = live.publish(slow, "gap", "slow", "n", at=utcnow())
            slow.flush()
            fast = live_db.publish("gap")
            assert fast > held.id
            assert s.next(0.4) is None, "N+1 must wait while N may still commit"
            started = time.perf_counter()
            if outcome == "commit":
                slow.commit()
            else:
                slow.rollback()
        finally:
            slow.close()
        expected = [held.id, fast] if outcome == "commit" else [fast]
        events = s.take(len(expected), 1.0)
        assert [e.id for e in events] == expected and s.next(0.2) is None
        assert events[0].received - started < 1.0
