from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cityops.db import Base, UTCDateTime


class FeedItem(Base):
    """Written in the same transaction as the change it announces, so a screen never shows
    what was rolled back; readers follow it by id (``after``), whichever process wrote it."""

    __tablename__ = "feed"
    __table_args__ = (Index("ix_feed_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    topic: Mapped[str] = mapped_column(String(20))  # alarm | case | warning …
    action: Mapped[str] = mapped_column(String(20))
    ref: Mapped[str] = mapped_column(String(40))  # the thing's id or code
    region_code: Mapped[str | None] = mapped_column(String(15), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
