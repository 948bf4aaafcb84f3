from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cityops.db import Base, UTCDateTime, utcnow


class Level(StrEnum):
    district = "district"
    town = "town"
    village = "village"
    grid = "grid"

    @property
    def code_length(self) -> int:
        return CODE_LENGTH[self]

    @property
    def child(self) -> Level | None:
        order = list(Level)
        i = order.index(self)
        return order[i + 1] if i + 1 < len(order) else None


# GB/T 30428: 6 division + 3 town + 3 village/community + 3 grid digits.
CODE_LENGTH = {Level.district: 6, Level.town: 9, Level.village: 12, Level.grid: 15}
LEVEL_BY_LENGTH = {n: level for level, n in CODE_LENGTH.items()}


class Region(Base):
    __tablename__ = "regions"
    __audit__ = True
    __table_args__ = (
        CheckConstraint("level IN ('district','town','village','grid')", name="level"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(15), unique=True)
    level: Mapped[str] = mapped_column(String(10), index=True)
    name: Mapped[str] = mapped_column(String(100))
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("regions.id", ondelete="RESTRICT"), index=True
    )
    # GeoJSON geometry (Polygon or MultiPolygon), WGS-84 lon/lat.
    geometry: Mapped[dict[str, Any]] = mapped_column(JSON)
    # A point inside the region (its centroid, or a surface point when the centroid falls outside).
    center_lon: Mapped[float] = mapped_column(Float)
    center_lat: Mapped[float] = mapped_column(Float)
    min_lon: Mapped[float] = mapped_column(Float)
    min_lat: Mapped[float] = mapped_column(Float)
    max_lon: Mapped[float] = mapped_column(Float)
    max_lat: Mapped[float] = mapped_column(Float)
    area_km2: Mapped[float] = mapped_column(Float)
    synthetic: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    parent: Mapped[Region | None] = relationship(remote_side=[id], lazy="raise")

    @property
    def parent_code(self) -> str | None:
        n = CODE_LENGTH[Level(self.level)]
        return self.code[: n - 3] if n > 6 else None


class GeoState(Base):
    """One row whose revision changes whenever regions change, so every process rebuilds its
    locator. A random token rather than a counter: a rolled-back change must not leave two
    different region sets under the same revision."""

    __tablename__ = "geo_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[str] = mapped_column(String(32))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
