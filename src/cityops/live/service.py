"""Publish to the live feed and read it back within a principal's region scope."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from cityops.auth.principal import Principal
from cityops.live.models import FeedItem

MAX_PAGE = 500


def publish(
    session: Session,
    topic: str,
    action: str,
    ref: str | int,
    *,
    at: datetime,
    region_code: str | None = None,
    payload: dict[str, Any] | None = None,
) -> None:
    session.add(
        FeedItem(
            at=at,
            topic=topic,
            action=action,
            ref=str(ref),
            region_code=region_code,
            payload=payload or {},
        )
    )


def read(
    session: Session,
    principal: Principal,
    *,
    after: int = 0,
    topics: Sequence[str] = (),
    limit: int = 100,
) -> list[FeedItem]:
    query = select(FeedItem).where(FeedItem.id > after)
    if principal.region_code:
        # Items without a place (a rule changed …) are for everyone who may read the feed.
        placed: Any = FeedItem.region_code
        query = query.where(or_(principal.scope(placed), FeedItem.region_code.is_(None)))
    if topics:
        query = query.where(FeedItem.topic.in_(list(topics)))
    return list(session.scalars(query.order_by(FeedItem.id).limit(min(max(limit, 1), MAX_PAGE))))
