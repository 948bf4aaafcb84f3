"""HTTP: the live feed, read by id (``after``) — screens poll it or follow it by SSE."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from cityops.auth.deps import Require
from cityops.auth.permissions import Permission as P
from cityops.auth.principal import Principal
from cityops.deps import DbSession
from cityops.live import service

router = APIRouter(prefix="/api/v1", tags=["live"])


@router.get("/feed")
def feed(
    principal: Annotated[Principal, Depends(Require(P.cases_read))],
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
        "items": [
            {
                "id": i.id,
                "at": i.at,
                "topic": i.topic,
                "action": i.action,
                "ref": i.ref,
                "region_code": i.region_code,
                "payload": i.payload,
            }
            for i in items
        ],
    }
