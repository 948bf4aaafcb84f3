"""The event stream: what is committed reaches an open stream within a second, only within the
caller's region and topics; nothing rolled back ever does; a reconnecting client resumes."""

from __future__ import annotations

import signal
import statistics
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cityops.db import utcnow
from cityops.live import service as live
from cityops.live.models import FeedItem
from tests.live.conftest import Database, Process, Server
from tests.live.sse import Stream

YIHE_GRID = "500154024003001"  # inside demo-town's town (义和镇)
ELSEWHERE = "500154001001001"  # another town


def test_a_commit_reaches_an_open_stream_at_once_a_rollback_never(
    server: Server, live_db: Database
) -> None:
    with Stream(server.url, params={"topics": "probe"}, headers=server.token("demo-admin")) as s:
        assert s.status == 200 and s.headers["content-type"].startswith("text/event-stream")
        assert s.next(0.2) is None and s.retry == 3000  # nothing yet, and the reconnect delay
        rolled_back = live_db.publish("probe", commit=False)
        assert s.next(0.3) is None, "a rolled-back item must never be sent"
        started = time.perf_counter()
        committed = live_db.publish("probe", YIHE_GRID)
        event = s.next(1.0)
        assert event is not None, "a committed item must arrive within a second"
        assert event.received - started < 1.0
        assert (event.id, event.topic) == (committed, "probe")
        assert event.data["id"] == committed and event.data["region_code"] == YIHE_GRID
        assert event.data["action"] == "probe" and event.data["at"]
        assert rolled_back <= committed  # (SQLite reuses the id; PostgreSQL skips it)
        assert s.next(0.2) is None


def test_savepoint_rolled_back_inside_a_committed_transaction(
    server: Server, live_db: Database
) -> None:
    with Stream(server.url, params={"topics": "probe"}, headers=server.token("demo-admin")) as s:
        session = live_db.factory()
        try:
            savepoint = session.begin_nested()
            live.publish(session, "probe", "undone", "a", at=utcnow())
            session.flush()
            savepoint.rollback()
            kept = live.publish(session, "probe", "kept", "b", at=utcnow())
            session.commit()
        finally:
            session.close()
        event = s.next(1.0)
        assert event is not None and event.id == kept.id and event.data["action"] == "kept"
        assert s.next(0.2) is None


def test_stream_follows_many_commits_quickly(server: Server, live_db: Database) -> None:
    latencies = []
    with Stream(server.url, params={"topics": "burst"}, headers=server.token("demo-admin")) as s:
        for _ in range(40):
            started = time.perf_counter()
            item = live_db.publish("burst")
            event = s.next(1.0)
            assert event is not None and event.id == item
            latencies.append(event.received - started)
    p95 = statistics.quantiles(latencies, n=20)[18]
    assert p95 < 1.0, latencies
    print(
        f"commit → event: p50 {statistics.median(latencies) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms"
    )


def test_last_event_id_resumes_where_the_client_left(server: Server, live_db: Database) -> None:
    auth = server.token("demo-admin")
    first = live_db.publish("resume")
    with Stream(server.url, params={"topics": "resume", "after": first - 1}, headers=auth) as s:
        event = s.next(1.0)
        assert event is not None and event.id == first  # ``after`` replays what came later
    missed = [live_db.publish("resume") for _ in range(3)]
    # The browser reconnects to the same address, saying what it saw last: that wins over after.
    headers = auth | {"Last-Event-ID": str(first)}
    params = {"topics": "resume", "after": first - 1}
    with Stream(server.url, params=params, headers=headers) as s:
        assert [e.id for e in s.take(3, 1.0)] == missed and s.next(0.2) is None
    # Without either, a stream starts from now.
    with Stream(server.url, params={"topics": "resume"}, headers=auth) as s:
        assert s.next(0.3) is None
        newest = live_db.publish("resume")
        event = s.next(1.0)
        assert event is not None and event.id == newest
    bad = Stream(server.url, headers=auth | {"Last-Event-ID": "yesterday"})
    assert bad.status == 422


def test_a_town_user_sees_their_town_only(server: Server, live_db: Database) -> None:
    town = Stream(server.url, params={"topics": "scoped"}, headers=server.token("demo-town"))
    district = Stream(server.url, params={"topics": "scoped"}, headers=server.token("demo-admin"))
    with town, district:
        outside = live_db.publish("scoped", ELSEWHERE)
        inside = live_db.publish("scoped", YIHE_GRID)
        everywhere = live_db.publish("scoped", None)  # no place: for everyone
        assert [e.id for e in district.take(3, 1.0)] == [outside, inside, everywhere]
        assert [e.id for e in town.take(2, 1.0)] == [inside, everywhere]
        assert town.next(0.2) is None


def test_topics_filter(server: Server, live_db: Database) -> None:
    params = {"topics": "topic-a, topic-b"}
    with Stream(server.url, params=params, headers=server.token("demo-admin")) as s:
        ids = {t: live_db.publish(t) for t in ("topic-c", "topic-a", "topic-b", "topic-c")}
        assert [(e.topic, e.id) for e in s.take(2, 1.0)] == [
            ("topic-a", ids["topic-a"]),
            ("topic-b", ids["topic-b"]),
        ]
        assert s.next(0.2) is None


def test_a_case_reported_through_the_api_appears_as_a_cases_event(server: Server) -> None:
    admin = server.token("demo-admin")
    with Stream(server.url, params={"topics": "cases"}, headers=admin) as s:
        started = time.perf_counter()
        r = httpx.post(
            f"{server.url}/api/v1/cases",
            headers=server.token("demo-intake"),
            json={"description": "路灯不亮，夜间出行不便", "region_code": YIHE_GRID},
        )
        assert r.status_code == 201, r.text
        code = r.json()["code"]
        event = s.next(1.0)
        assert event is not None and event.received - started < 1.5
        assert (event.topic, event.data["action"], event.data["ref"]) == ("cases", "report", code)
        assert event.data["region_code"] == YIHE_GRID
        payload = event.data["payload"]
        assert payload["state"] == "reported" and payload["source"] == "hotline"
        assert payload["overdue"] is False and "deadline" in payload
        # Every later step of the case follows it onto the screens.
        r = httpx.post(
            f"{server.url}/api/v1/cases/{code}/actions/register",
            headers=admin,
            json={"category": "DZ01", "note": "立案"},
        )
        assert r.status_code == 200, r.text
        event = s.next(1.0)
        assert event is not None and event.data["action"] == "register"
        assert event.data["payload"]["state"] == "registered"


def test_case_items_go_only_to_those_who_may_see_the_case(server: Server) -> None:
    """Citizens see their own cases; a district desk every case in its region."""
    citizen, intake = server.token("demo-citizen"), server.token("demo-intake")
    mine = Stream(server.url, params={"topics": "cases"}, headers=citizen)
    desk = Stream(server.url, params={"topics": "cases"}, headers=server.token("demo-admin"))
    with mine, desk:
        codes = []
        for who in (intake, citizen):
            r = httpx.post(
                f"{server.url}/api/v1/cases",
                headers=who,
                json={"description": "垃圾未清运", "region_code": YIHE_GRID},
            )
            assert r.status_code == 201, r.text
            codes.append(r.json()["code"])
        assert [e.data["ref"] for e in desk.take(2, 1.0)] == codes
        assert [e.data["ref"] for e in mine.take(2, 1.0)] == codes[1:]


def test_streams_are_bounded_and_give_their_place_back(server: Server) -> None:
    auth = server.token("demo-admin")
    hub = server.hub
    before, hub.max_streams = hub.max_streams, hub.streams + 1
    try:
        first = Stream(server.url, params={"topics": "none"}, headers=auth)
        assert first.status == 200 and first.next(0.2) is None
        refused = Stream(server.url, params={"topics": "none"}, headers=auth)
        assert refused.status == 503 and int(refused.headers["retry-after"]) > 0
        assert refused.body["error"]["code"] == "busy"
        first.close()  # the client goes away: the server notices and frees the place
        deadline = time.monotonic() + 3
        while hub.streams >= hub.max_streams and time.monotonic() < deadline:
            time.sleep(0.02)
        with Stream(server.url, params={"topics": "none"}, headers=auth) as again:
            assert again.status == 200
    finally:
        hub.max_streams = before


def test_a_stream_needs_the_feed_permission(server: Server) -> None:
    assert Stream(server.url).status == 401
    device = {"X-API-Key": server.credentials["(API key)"]}  # may send readings, not read
    assert Stream(server.url, headers=device).status == 403


def test_a_stream_ends_after_its_timeout(server: Server) -> None:
    with Stream(
        server.url, params={"topics": "none", "timeout": 0.3}, headers=server.token("demo-admin")
    ) as s:
        assert s.ended(2.0)


@pytest.mark.sqlite_only
def test_sigterm_ends_open_streams_and_the_server_stops(
    server_process: Process, server: Server
) -> None:
    """uvicorn waits for open responses before it stops; an event stream never ends by itself,
    so without the bus ending them a server would never stop."""
    s = Stream(server_process.url, headers=server.token("demo-admin"))
    assert s.status == 200 and s.next(0.3) is None
    server_process.proc.send_signal(signal.SIGTERM)
    assert s.ended(3.0), "the open stream must end when the server is told to stop"
    assert server_process.proc.wait(timeout=5) is not None


def test_one_shot_stream_in_the_callers_transaction(client: TestClient, session: Session) -> None:
    """``timeout=0``: what is there, then the end (the test client reads to the end)."""
    reporter = client.post(
        "/api/v1/cases",
        json={"description": "路面塌陷", "region_code": YIHE_GRID, "source": "hotline"},
    )
    assert reporter.status_code == 201, reporter.text
    before = session.scalar(select(func.max(FeedItem.id))) or 0
    r = client.get("/api/v1/stream", params={"after": before - 1, "timeout": 0})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["cache-control"] == "no-cache"
    assert r.text.startswith("retry: 3000\n\n")
    assert f"id: {before}\nevent: cases\ndata: " in r.text
    assert r.text.count("event: ") == 1
