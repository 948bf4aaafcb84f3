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
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

# Warnings refer to people, regions and devices: their tables must be known wherever these are.
import cityops.geo.models
import cityops.org.models
import cityops.telemetry.models  # noqa: F401
from cityops.db import Base, UTCDateTime, utcnow


class HazardType(StrEnum):
    landslide = "landslide"  # 滑坡
    collapse = "collapse"  # 崩塌
    debris_flow = "debris_flow"  # 泥石流
    subsidence = "subsidence"  # 地面塌陷
    flood = "flood"  # 易涝点 / 山洪
    unstable_slope = "unstable_slope"  # 不稳定斜坡


HAZARD_ZH = {
    "landslide": "滑坡",
    "collapse": "崩塌",
    "debris_flow": "泥石流",
    "subsidence": "地面塌陷",
    "flood": "山洪易涝点",
    "unstable_slope": "不稳定斜坡",
}


class Level(StrEnum):
    none = "none"
    blue = "blue"
    yellow = "yellow"
    orange = "orange"
    red = "red"


LEVEL_RANK = {"none": 0, "blue": 1, "yellow": 2, "orange": 3, "red": 4}
LEVEL_ZH = {"none": "无", "blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色"}


class WarningState(StrEnum):
    proposed = "proposed"  # by analytics or a person, awaiting a commander
    confirmed = "confirmed"  # a commander agreed; not yet public
    issued = "issued"  # CAP Alert (or Update) published, households told
    lifted = "lifted"  # CAP Cancel published; evacuation closed
    rejected = "rejected"  # a commander declined the proposal


OPEN_STATES = ("proposed", "confirmed", "issued")


class EvacStatus(StrEnum):
    pending = "pending"
    notified = "notified"
    evacuated = "evacuated"
    sheltered = "sheltered"
    refused = "refused"
    unreachable = "unreachable"


# Persons in these statuses are still where the danger is.
AT_HOME = ("pending", "notified", "refused", "unreachable")


def grade_for(persons: int) -> str:
    """Hazard grade by the people to relocate: I ≥ 1000, II 500–1000, III 100–500, IV < 100."""
    if persons >= 1000:
        return "I"
    if persons >= 500:
        return "II"
    if persons >= 100:
        return "III"
    return "IV"


class Shelter(Base):
    __tablename__ = "shelters"
    __audit__ = True

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    region_code: Mapped[str] = mapped_column(String(15), index=True)
    address: Mapped[str] = mapped_column(String(200), default="")
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    capacity: Mapped[int] = mapped_column(Integer)  # persons
    contact_name: Mapped[str] = mapped_column(String(50), default="")
    contact_phone: Mapped[str] = mapped_column(String(20), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class RiskPoint(Base):
    """A place that may fail (地质灾害隐患点 / 风险点位) with the zone it threatens."""

    __tablename__ = "risk_points"
    __audit__ = True
    __table_args__ = (
        CheckConstraint("grade IN ('I','II','III','IV')", name="grade"),
        CheckConstraint("level IN ('none','blue','yellow','orange','red')", name="level"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    hazard: Mapped[str] = mapped_column(String(20), index=True)
    region_code: Mapped[str] = mapped_column(String(15), index=True)  # the grid it lies in
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    # GeoJSON Polygon, WGS-84 lon/lat: the zone whose households must leave.
    zone: Mapped[dict[str, Any]] = mapped_column(JSON)
    min_lon: Mapped[float] = mapped_column(Float)
    min_lat: Mapped[float] = mapped_column(Float)
    max_lon: Mapped[float] = mapped_column(Float)
    max_lat: Mapped[float] = mapped_column(Float)
    # Kept from the households in the zone (persons to relocate).
    households: Mapped[int] = mapped_column(Integer, default=0)
    persons: Mapped[int] = mapped_column(Integer, default=0)
    grade: Mapped[str] = mapped_column(String(3), default="IV")
    town_leader_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))  # 包片领导
    monitor_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))  # 群测群防员
    route: Mapped[str] = mapped_column(Text, default="")  # evacuation route in words
    route_line: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # GeoJSON LineString
    # Per-district analytics settings (smoothing, v_uniform per monitor …), see analysis.py.
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    level: Mapped[str] = mapped_column(String(8), default="none")  # the analytics' latest level
    level_reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    evaluated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class RiskPointMonitor(Base):
    __tablename__ = "risk_point_monitors"
    __table_args__ = (UniqueConstraint("risk_point_id", "device_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    risk_point_id: Mapped[int] = mapped_column(
        ForeignKey("risk_points.id", ondelete="CASCADE"), index=True
    )
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"), index=True)
    label: Mapped[str] = mapped_column(String(40))  # "GNSS-3"
    metric: Mapped[str] = mapped_column(String(32))  # disp_mm, crack_mm, rain_mm …
    role: Mapped[str] = mapped_column(String(12))  # displacement | rain
    v_uniform: Mapped[float | None] = mapped_column(Float)  # mm/day; None: estimated


class RiskPointShelter(Base):
    __tablename__ = "risk_point_shelters"

    risk_point_id: Mapped[int] = mapped_column(
        ForeignKey("risk_points.id", ondelete="CASCADE"), primary_key=True
    )
    shelter_id: Mapped[int] = mapped_column(ForeignKey("shelters.id"), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, default=1)  # 1: first choice


class Household(Base):
    __tablename__ = "households"
    __audit__ = True

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    head_name: Mapped[str] = mapped_column(String(50))
    address: Mapped[str] = mapped_column(String(200))
    region_code: Mapped[str] = mapped_column(String(15), index=True)  # grid
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    persons: Mapped[int] = mapped_column(Integer)
    # Who needs help to leave: elderly, child, disabled, pregnant, ill … (with counts).
    vulnerable: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    phone: Mapped[str] = mapped_column(String(20), default="")
    note: Mapped[str] = mapped_column(String(200), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ZoneHousehold(Base):
    """A household inside a risk zone, kept by point-in-polygon whenever either changes."""

    __tablename__ = "zone_households"

    risk_point_id: Mapped[int] = mapped_column(
        ForeignKey("risk_points.id", ondelete="CASCADE"), primary_key=True
    )
    household_id: Mapped[int] = mapped_column(
        ForeignKey("households.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Warning(Base):
    __tablename__ = "warnings"
    __audit__ = True
    __table_args__ = (
        CheckConstraint(
            "state IN ('proposed','confirmed','issued','lifted','rejected')", name="state"
        ),
        CheckConstraint("level IN ('blue','yellow','orange','red')", name="level"),
        # One open warning per risk point: a new level is an update of it, not a second one.
        Index(
            "uq_warnings_open_per_point",
            "risk_point_id",
            unique=True,
            sqlite_where=text("state IN ('proposed','confirmed','issued')"),
            postgresql_where=text("state IN ('proposed','confirmed','issued')"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)  # W-2026-0007
    risk_point_id: Mapped[int] = mapped_column(ForeignKey("risk_points.id"), index=True)
    region_code: Mapped[str] = mapped_column(String(15), index=True)
    level: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(10), index=True)
    source: Mapped[str] = mapped_column(String(10))  # analytics | person
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    reasons_en: Mapped[list[str]] = mapped_column(JSON, default=list)
    headline: Mapped[str] = mapped_column(String(200), default="")
    instruction: Mapped[str] = mapped_column(Text, default="")
    proposed_by: Mapped[str] = mapped_column(String(100))
    proposed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    confirmed_by: Mapped[str | None] = mapped_column(String(100))
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_by: Mapped[str | None] = mapped_column(String(100))
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    close_note: Mapped[str] = mapped_column(String(500), default="")


class WarningEvent(Base):
    """One step of a warning's workflow: who, when, what, why."""

    __tablename__ = "warning_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    warning_id: Mapped[int] = mapped_column(
        ForeignKey("warnings.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    action: Mapped[str] = mapped_column(String(20))
    who_kind: Mapped[str] = mapped_column(String(10))
    who_name: Mapped[str] = mapped_column(String(100))
    level: Mapped[str] = mapped_column(String(8))
    note: Mapped[str] = mapped_column(String(500), default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class CapMessage(Base):
    """Every CAP 1.2 document published for a warning, as sent (Alert, Updates, Cancel)."""

    __tablename__ = "cap_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    warning_id: Mapped[int] = mapped_column(
        ForeignKey("warnings.id", ondelete="CASCADE"), index=True
    )
    identifier: Mapped[str] = mapped_column(String(100), unique=True)
    msg_type: Mapped[str] = mapped_column(String(8))
    level: Mapped[str] = mapped_column(String(8))
    sent: Mapped[datetime] = mapped_column(UTCDateTime)
    xml: Mapped[str] = mapped_column(Text)


class Evacuation(Base):
    __tablename__ = "evacuations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    warning_id: Mapped[int] = mapped_column(ForeignKey("warnings.id"), unique=True)
    risk_point_id: Mapped[int] = mapped_column(ForeignKey("risk_points.id"), index=True)
    region_code: Mapped[str] = mapped_column(String(15), index=True)
    state: Mapped[str] = mapped_column(String(8), default="open")  # open | closed
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_by: Mapped[str | None] = mapped_column(String(100))
    # The board as it stood when the warning was lifted (counts by status, persons …).
    record: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class EvacuationEntry(Base):
    """One threatened household's place in an evacuation: exactly one status at any time."""

    __tablename__ = "evacuation_entries"
    __table_args__ = (
        UniqueConstraint("evacuation_id", "household_id"),
        CheckConstraint(
            "status IN ('pending','notified','evacuated','sheltered','refused','unreachable')",
            name="status",
        ),
        Index("ix_evacuation_entries_board", "evacuation_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    evacuation_id: Mapped[int] = mapped_column(
        ForeignKey("evacuations.id", ondelete="CASCADE"), index=True
    )
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), index=True)
    grid_code: Mapped[str] = mapped_column(String(15), index=True)
    persons: Mapped[int] = mapped_column(Integer)  # as registered when evacuation opened
    status: Mapped[str] = mapped_column(String(12), default="pending")
    shelter_id: Mapped[int | None] = mapped_column(ForeignKey("shelters.id"), index=True)
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), index=True)
    note: Mapped[str] = mapped_column(String(200), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str] = mapped_column(String(100))


class EvacuationLog(Base):
    """Each status change of a household, with who and when (the field's record)."""

    __tablename__ = "evacuation_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(
        ForeignKey("evacuation_entries.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    from_status: Mapped[str] = mapped_column(String(12))
    to_status: Mapped[str] = mapped_column(String(12))
    who: Mapped[str] = mapped_column(String(100))
    note: Mapped[str] = mapped_column(String(200), default="")
    key: Mapped[str | None] = mapped_column(String(80), unique=True)  # idempotency key
