from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cityops.db import Base, UTCDateTime, utcnow
from cityops.geo.models import Region


class UnitKind(StrEnum):
    district_center = "district_center"  # 区城市运行和治理中心
    town_center = "town_center"  # 镇街基层治理指挥中心
    village_station = "village_station"  # 村（社区）工作站
    department = "department"  # 区级部门
    section = "section"  # 科室 / 办公室 within a center or department


class Unit(Base):
    __tablename__ = "units"
    __audit__ = True
    __table_args__ = (
        CheckConstraint(
            "kind IN ('district_center','town_center','village_station','department','section')",
            name="kind",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    short_name: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(20), index=True)
    # The area the unit answers for (a department answers for the whole district).
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id"), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    duties: Mapped[str] = mapped_column(Text, default="")
    one_window: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    region: Mapped[Region] = relationship(lazy="raise")
    parent: Mapped[Unit | None] = relationship(remote_side=[id], lazy="raise")


class Person(Base):
    __tablename__ = "people"
    __audit__ = True
    __audit_redact__ = frozenset({"mobile", "email"})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)  # staff number
    name: Mapped[str] = mapped_column(String(50))
    mobile: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(200))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)  # none: citizen
    # What the person may see and act on: the district, a town, a village or a grid.
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id"), index=True)
    title: Mapped[str] = mapped_column(String(50), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    unit: Mapped[Unit | None] = relationship(lazy="raise")
    region: Mapped[Region] = relationship(lazy="raise")
    roles: Mapped[list[PersonRole]] = relationship(
        lazy="raise", cascade="all, delete-orphan", order_by="PersonRole.role"
    )


class PersonRole(Base):
    __tablename__ = "person_roles"
    __audit__ = True

    person_id: Mapped[int] = mapped_column(
        ForeignKey("people.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(30), primary_key=True)


class DutyShift(Base):
    """Who answers for a grid when. A standing assignment has no end; a shift (night duty,
    leave cover) has one and wins over the standing assignment while it lasts."""

    __tablename__ = "duty_shifts"
    __audit__ = True
    __table_args__ = (
        Index("ix_duty_shifts_grid_start", "grid_id", "starts_at"),
        CheckConstraint("kind IN ('standing','shift')", name="kind"),
        CheckConstraint("ends_at IS NULL OR ends_at > starts_at", name="ends_after_start"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("regions.id"))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10), default="standing")
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(String(200), default="")

    grid: Mapped[Region] = relationship(lazy="raise")
    person: Mapped[Person] = relationship(lazy="raise")
