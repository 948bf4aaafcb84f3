from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Boolean, CheckConstraint, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cityops.db import Base, UTCDateTime, utcnow


class CategoryKind(StrEnum):
    event = "event"  # territory first, then owner
    component = "component"  # owner first, then territory


class Clock(StrEnum):
    working = "working"
    natural = "natural"


class Urgency(StrEnum):
    urgent = "urgent"
    normal = "normal"


class Category(Base):
    """A case category: a big class (no parent) or a leaf under it. Only leaves are used on
    cases; their limits say how long handling may take after dispatch."""

    __tablename__ = "categories"
    __audit__ = True
    __table_args__ = (
        CheckConstraint("kind IN ('event','component')", name="kind"),
        CheckConstraint("clock IN ('working','natural')", name="clock"),
        CheckConstraint("limit_urgent_h > 0 AND limit_normal_h >= limit_urgent_h", name="limits"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(8), unique=True)
    name: Mapped[str] = mapped_column(String(50))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    # The department owning the component or the line of work; none: the territory handles it.
    owner_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    owner_short_name: Mapped[str | None] = mapped_column(String(40))
    clock: Mapped[str] = mapped_column(String(10), default=Clock.working.value)
    limit_urgent_h: Mapped[float] = mapped_column(Float, default=2.0)
    limit_normal_h: Mapped[float] = mapped_column(Float, default=24.0)
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    def limit_hours(self, urgency: str) -> float:
        return self.limit_urgent_h if urgency == Urgency.urgent.value else self.limit_normal_h
