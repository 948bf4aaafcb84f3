from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel
from sqlalchemy import func, select, update

from cityops.auth import audit
from cityops.auth.deps import Authenticated
from cityops.db import utcnow
from cityops.deps import DbSession
from cityops.errors import NotFound
from cityops.events.models import Case
from cityops.notify.models import Message

router = APIRouter(prefix="/api/v1", tags=["notifications"])


class NotificationOut(BaseModel):
    id: int
    text: str
    template: str
    case: str | None
    created_at: datetime
    read: bool


@router.get("/notifications")
def my_notifications(
    principal: Authenticated,
    session: DbSession,
    unread: bool = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, object]:
    """The signed-in person's in-app messages, newest first, with the unread count."""
    mine = (Message.person_id == principal.person_id) & (Message.channel == "inapp")
    query = select(Message, Case.code).outerjoin(Case, Case.id == Message.case_id).where(mine)
    if unread:
        query = query.where(Message.read_at.is_(None))
    rows = session.execute(query.order_by(Message.id.desc()).limit(limit)).all()
    count = session.scalar(select(func.count()).where(mine, Message.read_at.is_(None))) or 0
    return {
        "unread": count,
        "items": [
            NotificationOut(
                id=m.id,
                text=m.text,
                template=m.template,
                case=code,
                created_at=m.created_at,
                read=m.read_at is not None,
            )
            for m, code in rows
        ],
    }


@router.post("/notifications/{message_id}/read", status_code=204)
def mark_read(
    message_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    principal: Authenticated,
    session: DbSession,
) -> None:
    result = session.execute(
        update(Message)
        .where(
            Message.id == message_id,
            Message.person_id == principal.person_id,
            Message.channel == "inapp",
            Message.read_at.is_(None),
        )
        .values(read_at=utcnow())
    )
    if getattr(result, "rowcount", 0) != 1:
        if (
            session.scalar(
                select(Message.id).where(
                    Message.id == message_id, Message.person_id == principal.person_id
                )
            )
            is None
        ):
            raise NotFound("消息不存在 / no such message", field="message_id")
        return
    audit.record(session, "read", "outbox", message_id)
