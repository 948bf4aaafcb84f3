from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from cityops.db import Base, UTCDateTime, utcnow


class State(StrEnum):
    reported = "reported"  # 上报，待立案
    registered = "registered"  # 已立案，待派遣
    dispatched = "dispatched"  # 已派遣，待签收
    handling = "handling"  # 处置中
    handled = "handled"  # 已处置，待核查
    closed = "closed"  # 已结案
    rejected = "rejected"  # 不予立案
    merged = "merged"  # 已合并
    parked = "parked"  # 挂账
    voided = "voided"  # 作废


OPEN_STATES = frozenset(
    {State.reported, State.registered, State.dispatched, State.handling, State.handled}
)
FINAL_STATES = frozenset({State.rejected, State.merged, State.voided})


class Source(StrEnum):
    citizen = "citizen"
    grid_worker = "grid_worker"
    inspector = "inspector"
    hotline = "hotline"
    sensor_alarm = "sensor_alarm"
    department = "department"
    open311 = "open311"
    video = "video"


class Level(StrEnum):
    village = "village"
    town = "town"
    district = "district"


class Case(Base):
    __tablename__ = "cases"
    __audit__ = True
    # The audit log must not become a way round the audited unmasking of personal data.
    __audit_redact__ = frozenset({"reporter_name", "reporter_phone"})
    __table_args__ = (
        CheckConstraint(
            "state IN ('reported','registered','dispatched','handling','handled','closed',"
            "'rejected','merged','parked','voided')",
            name="state",
        ),
        CheckConstraint("level IN ('village','town','district')", name="level"),
        CheckConstraint("urgency IN ('urgent','normal')", name="urgency"),
        # Lists by state and place; covers the cockpit's open cases per region (with the
        # clock's overdue and deadline) and its newest open cases (created_at, id).
        Index(
            "ix_cases_state_region",
            "state",
            "region_code",
            "created_at",
            "id",
            "overdue",
            "deadline_at",
        ),
        Index("ix_cases_unit_state", "current_unit_id", "state"),
        Index("ix_cases_next_clock", "next_clock_at"),
        Index("ix_cases_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str | None] = mapped_column(String(20), unique=True)
    source: Mapped[str] = mapped_column(String(20))
    category_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id"), index=True)
    description: Mapped[str] = mapped_column(Text)
    address: Mapped[str] = mapped_column(String(200), default="")
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    # The finest region the case lies in; a code prefix query gives any region's cases.
    region_code: Mapped[str] = mapped_column(String(15), index=True)
    urgency: Mapped[str] = mapped_column(String(10), default="normal")
    state: Mapped[str] = mapped_column(String(12), default=State.reported.value)
    resume_state: Mapped[str | None] = mapped_column(String(12))  # where un-parking returns
    level: Mapped[str] = mapped_column(String(10))
    current_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    reporter_name: Mapped[str | None] = mapped_column(String(50))
    reporter_phone: Mapped[str | None] = mapped_column(String(20))
    reporter_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), index=True)
    master_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    # Clock of the current assignment.
    clock: Mapped[str] = mapped_column(String(10), default="working")
    clock_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    limit_hours: Mapped[float | None] = mapped_column(Float)  # including approved extensions
    paused_hours: Mapped[float] = mapped_column(Float, default=0.0)  # clock time spent parked
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    clock_step: Mapped[int] = mapped_column(Integer, default=0)  # ladder steps taken
    next_clock_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Counters for the problem-case rule and evaluation.
    rework_count: Mapped[int] = mapped_column(Integer, default=0)
    units_passed: Mapped[int] = mapped_column(Integer, default=0)
    is_problem: Mapped[bool] = mapped_column(Boolean, default=False)
    overdue: Mapped[bool] = mapped_column(Boolean, default=False)
    satisfied: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)

    # Optimistic locking: two dispatchers acting at once cannot both win.
    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class CaseEvent(Base):
    """The case timeline: every action with who, when, what, note and evidence."""

    __tablename__ = "case_events"
    __table_args__ = (
        Index("ix_case_events_case", "case_id", "id"),
        # Covers evaluation: a period's events counted by unit and action from the index alone.
        Index("ix_case_events_period", "at", "unit_id", "action", "positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    action: Mapped[str] = mapped_column(String(20), index=True)
    actor_kind: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[str] = mapped_column(String(64), default="")
    actor_name: Mapped[str] = mapped_column(String(100), default="")
    actor_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    # The unit the action concerns (dispatched to, returned by, …): evaluation counts by it.
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    from_state: Mapped[str | None] = mapped_column(String(12))
    to_state: Mapped[str | None] = mapped_column(String(12))
    note: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Whether the action went well, for evaluation in SQL: accept — within the acceptance
    # limit; report_done and verify_ok — before the deadline; rate — satisfied.
    positive: Mapped[bool | None] = mapped_column(Boolean)


class Assignment(Base):
    """Units working on a case: one lead and any assisting units (联合处置)."""

    __tablename__ = "case_assignments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    role: Mapped[str] = mapped_column(String(10))  # lead | assist
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Extension(Base):
    """A request for more time, made before the deadline and decided by the dispatching level."""

    __tablename__ = "case_extensions"
    __audit__ = True

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    hours: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(10), default="pending")  # pending|approved|rejected
    requested_by: Mapped[str] = mapped_column(String(100))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(100))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Attachment(Base):
    """A photo or document, stored once by content hash and served only to authorised users."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    content_type: Mapped[str] = mapped_column(String(50))
    size: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str] = mapped_column(String(200), default="")
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    uploaded_by: Mapped[str] = mapped_column(String(100), default="")
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RoutingRule(Base):
    """Place × category → unit. The most specific matching rule wins (longest region prefix,
    then longest category code), before the standard owner/territory precedence."""

    __tablename__ = "routing_rules"
    __audit__ = True

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    category_code: Mapped[str] = mapped_column(String(8), default="")  # prefix; "" = any
    region_code: Mapped[str] = mapped_column(String(15), default="")  # prefix; "" = anywhere
    level: Mapped[str] = mapped_column(String(10))  # the level whose dispatcher it guides
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    note: Mapped[str] = mapped_column(String(200), default="")


class Follower(Base):
    """Who follows a case's public status: its reporter, and the reporters of merged duplicates."""

    __tablename__ = "case_followers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    name: Mapped[str | None] = mapped_column(String(50))
    phone: Mapped[str | None] = mapped_column(String(20))
    since: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
