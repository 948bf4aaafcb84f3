from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

# Alarms refer to cases, people and devices: their tables must be known wherever alarms are.
import cityops.events.models
import cityops.org.models
import cityops.telemetry.models  # noqa: F401
from cityops.db import Base, UTCDateTime, utcnow


class Kind(StrEnum):
    threshold = "threshold"  # above / below a value, with hysteresis and a minimum duration
    rate = "rate"  # change over a time window
    no_data = "no_data"  # silence for longer than T (evaluated by the worker)
    composite = "composite"  # all of several conditions on one site or device group


class Severity(StrEnum):
    critical = "critical"
    major = "major"
    minor = "minor"
    warning = "warning"


SEVERITY_RANK = {Severity.critical: 4, Severity.major: 3, Severity.minor: 2, Severity.warning: 1}


class AlarmRule(Base):
    __tablename__ = "alarm_rules"
    __audit__ = True
    __table_args__ = (
        CheckConstraint("kind IN ('threshold','rate','no_data','composite')", name="kind"),
        CheckConstraint("scope IN ('device_type','group','device','site')", name="scope"),
        CheckConstraint("severity IN ('critical','major','minor','warning')", name="severity"),
        CheckConstraint("case_urgency IN ('urgent','normal')", name="case_urgency"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(12))
    scope: Mapped[str] = mapped_column(String(12))  # what scope_value names
    scope_value: Mapped[str] = mapped_column(String(64))
    metric: Mapped[str | None] = mapped_column(String(32))
    # threshold: op, value, clear (hysteresis), duration_s; rate: op, delta, window_s;
    # no_data: after_s; composite: per (site|group) conditions [{metric, op, value}], by.
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    severity: Mapped[str] = mapped_column(String(10))
    # A latched alarm stays active when the condition goes away, until someone clears it
    # (or the case it opened is closed).
    latch: Mapped[bool] = mapped_column(Boolean, default=False)
    open_case: Mapped[bool] = mapped_column(Boolean, default=False)
    case_category: Mapped[str | None] = mapped_column(String(20))
    case_urgency: Mapped[str] = mapped_column(String(10), default="normal")
    # Register and route the case as the event center suggests, instead of leaving it to intake.
    case_route: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RuleState(Base):
    """What a rule last concluded about one source: kept in the same transaction as the
    readings that changed it, so a restart neither loses nor repeats an alarm. Written only
    when the conclusion changes."""

    __tablename__ = "alarm_rule_states"
    __table_args__ = (PrimaryKeyConstraint("rule_id", "source"),)

    rule_id: Mapped[int] = mapped_column(ForeignKey("alarm_rules.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(80))  # device:CODE | site:CODE | group:CODE
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    # While pending (condition true, minimum duration not yet reached): when it began (ms).
    pending_since: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Alarm(Base):
    """One open alarm per (rule, source); condition (active / cleared) and acknowledgement
    are separate. It closes when it is both cleared and acknowledged; the next occurrence
    then opens a new alarm."""

    __tablename__ = "alarms"
    __audit__ = True
    __table_args__ = (
        CheckConstraint("condition IN ('active','cleared')", name="condition"),
        CheckConstraint("severity IN ('critical','major','minor','warning')", name="severity"),
        Index(
            "uq_alarms_open",
            "rule_id",
            "source",
            unique=True,
            sqlite_where=text("closed_at IS NULL"),
            postgresql_where=text("closed_at IS NULL"),
        ),
        Index("ix_alarms_open_region", "closed_at", "region_code"),
        Index("ix_alarms_shelved", "shelved_until"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("alarm_rules.id", ondelete="RESTRICT"))
    source: Mapped[str] = mapped_column(String(80))
    device_id: Mapped[int | None] = mapped_column(
        ForeignKey("devices.id", ondelete="SET NULL"), index=True
    )
    site: Mapped[str | None] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(10))
    condition: Mapped[str] = mapped_column(String(8), default="active")
    acked: Mapped[bool] = mapped_column(Boolean, default=False)
    count: Mapped[int] = mapped_column(Integer, default=1)
    message: Mapped[str] = mapped_column(Text, default="")
    value: Mapped[float | None] = mapped_column(Float)
    region_code: Mapped[str | None] = mapped_column(String(15), index=True)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acked_by: Mapped[str | None] = mapped_column(String(100))
    assignee_person_id: Mapped[int | None] = mapped_column(
        ForeignKey("people.id", ondelete="SET NULL")
    )
    shelved_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    case_id: Mapped[int | None] = mapped_column(
        ForeignKey("cases.id", ondelete="SET NULL"), index=True
    )
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AlarmEvent(Base):
    """The alarm's history: raised, re-raised, cleared, acknowledged, assigned, commented,
    shelved, case opened, closed — who, when and what."""

    __tablename__ = "alarm_events"
    __table_args__ = (Index("ix_alarm_events_alarm", "alarm_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alarm_id: Mapped[int] = mapped_column(ForeignKey("alarms.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    action: Mapped[str] = mapped_column(String(20))
    actor_kind: Mapped[str] = mapped_column(String(10))
    actor_name: Mapped[str] = mapped_column(String(100))
    note: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
