from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cityops.db import Base, UTCDateTime, utcnow


class Message(Base):
    """One message to one recipient over one channel, traceable to the case action behind it.
    ``dedupe_key`` is unique, so enqueueing the same action twice (a retried request, a
    re-run job) never sends twice."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(120), unique=True)
    channel: Mapped[str] = mapped_column(String(20))  # inapp | sms | webhook
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), index=True)
    address: Mapped[str] = mapped_column(String(200), default="")  # phone number, webhook key …
    template: Mapped[str] = mapped_column(String(40))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    text: Mapped[str] = mapped_column(Text)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    case_event_id: Mapped[int | None] = mapped_column(ForeignKey("case_events.id"))
    state: Mapped[str] = mapped_column(String(10), default="pending")  # pending|sent|failed|read
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
