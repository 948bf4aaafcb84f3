"""HTTP: the live feed, read by id (``after``) — screens poll it or follow it by SSE."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import StreamingResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from cityops.auth.deps import Require
from cityops.auth.permissions import Permission as P
from cityops.auth.principal import Principal
from cityops.deps import DbSession
from cityops.errors import InvalidInput
from cityops.live import bus, service

router = APIRouter(prefix="/api/v1", tags=["live"])
log = logging.getLogger(__name__)

HEARTBEAT_S = 15.0  # a comment line keeps proxies from closing a quiet stream
RETRY_MS = 3000  # how long a browser waits before it reconnects
MAX_STREAM_S = 15 * 60  # then the client reconnects (and is authenticated afresh)
GAP_RECHECK_S = 0.2  # stopped before an id another transaction may still commit
Reader = Annotated[Principal, Depends(Require(P.cases_read))]


@router.get("/feed")
def feed(
    principal: Reader,
    session: DbSession,
    after: Annotated[int, Query(ge=0)] = 0,
    topic: Annotated[list[str], Query(max_length=10)] = [],  # noqa: B006 (FastAPI idiom)
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 100,
) -> dict[str, Any]:
    """Changes after ``after`` in commit order, within the caller's region; ``next`` is the
    id to ask after next time."""
    items = service.read(session, principal, after=after, topics=topic, limit=limit)
    return {
        "next": items[-1].id if items else after,
        "items": [service.as_dict(i) for i in items],
    }


class EventStream(StreamingResponse):
    media_type = "text/event-stream"


@router.get("/stream", response_class=EventStream)
def stream(
    request: Request,
    principal: Reader,
    session: DbSession,
    after: Annotated[int | None, Query(ge=0, description="default: the newest item")] = None,
    topics: Annotated[str, Query(max_length=200, description="comma-separated")] = "",
    timeout: Annotated[
        float | None, Query(ge=0, le=MAX_STREAM_S, description="end the stream after (s)")
    ] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> EventStream:
    """Server-sent events: each feed item after ``after`` (or after the browser's
    ``Last-Event-ID`` when it reconnects) within the caller's region, as ``event: <topic>``
    with the item as ``/feed`` shows it, as soon as it is committed."""
    wanted = [t.strip() for t in topics.split(",") if t.strip()]
    if len(wanted) > 10 or any(len(t) > 20 for t in wanted):
        raise InvalidInput("topics: at most 10, each at most 20 characters", field="topics")
    latest = service.latest_id(session)
    start = _resume_from(last_event_id)
    if start is None:
        start = after if after is not None else latest
    start = min(start, latest)  # an id from before the database was recreated: from now
    hub = bus.hub_of(request.app)
    hub.admit()
    events = _events(
        hub,
        request.app.state.session_factory,
        principal,
        service.Cursor(start),
        wanted,
        poll_s=request.app.state.settings.live_poll_s,
        lifetime=MAX_STREAM_S if timeout is None else timeout,
    )
    return EventStream(events, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _resume_from(last_event_id: str | None) -> int | None:
    if last_event_id is None or not last_event_id.strip():
        return None
    try:
        value = int(last_event_id.strip())
    except ValueError:
        value = -1
    if value < 0:
        raise InvalidInput("Last-Event-ID: a feed item id", field="Last-Event-ID")
    return value


async def _events(
    hub: bus.Hub,
    factory: sessionmaker[Session],
    principal: Principal,
    cursor: service.Cursor,
    topics: Sequence[str],
    *,
    poll_s: float,
    lifetime: float,
) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MS}\n\n"
    subscription = hub.subscribe()
    if subscription is None:
        return  # full or stopping after all: the client reconnects after ``retry``
    began = time.monotonic()
    try:
        await hub.ready()
        said = time.monotonic()  # when the client last heard from us
        while not subscription.ended:
            subscription.clear()
            items = await anyio.to_thread.run_sync(_read, factory, principal, cursor, topics)
            now = time.monotonic()
            if items:
                yield "".join(_frame(item) for item in items)
                said = now
            if now - began >= lifetime or subscription.ended:
                break
            if cursor.more:
                continue
            if now - said >= HEARTBEAT_S:
                yield ": ping\n\n"
                said = now
            pause = min(
                poll_s,
                GAP_RECHECK_S if cursor.waiting else poll_s,
                said + HEARTBEAT_S - now,
                began + lifetime - now,
            )
            await subscription.wait(pause)
    finally:
        subscription.release()


def _read(
    factory: sessionmaker[Session],
    principal: Principal,
    cursor: service.Cursor,
    topics: Sequence[str],
) -> list[dict[str, Any]]:
    """A short session of its own: a waiting stream holds no connection."""
    try:
        with factory() as session:
            return [
                service.as_dict(i)
                for i in service.follow(session, principal, cursor, topics=topics)
            ]
    except DBAPIError as exc:  # the database is away for a moment: keep the stream, retry
        log.warning("live stream: cannot read the feed (%s); retrying", exc.orig)
        cursor.more = False
        return []


def _frame(item: dict[str, Any]) -> str:
    data = json.dumps(jsonable_encoder(item), ensure_ascii=False, separators=(",", ":"))
    return f"id: {item['id']}\nevent: {item['topic']}\ndata: {data}\n\n"
