from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from cityops.db import Base, UTCDateTime, utcnow


class DeviceType(Base):
    """A kind of sensor and the metrics it reports (loaded from YAML; extensible as data)."""

    __tablename__ = "device_types"
    __audit__ = True

    code: Mapped[str] = mapped_column(String(30), primary_key=True)
    name: Mapped[str] = mapped_column(String(60))
    name_en: Mapped[str] = mapped_column(String(60), default="")
    # [{name, label, label_en, unit, min, max, kind}] — kind number (default) or binary.
    metrics: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    offline_after_s: Mapped[int] = mapped_column(Integer, default=3600)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeviceGroup(Base):
    """Devices managed together: one API key for a gateway, one scope for rules."""

    __tablename__ = "device_groups"
    __audit__ = True

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Device(Base):
    __tablename__ = "devices"
    __audit__ = True
    __table_args__ = (Index("ix_devices_type_region", "type_code", "region_code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The identifier the device reports under (MQTT topic segment, "device" in HTTP batches).
    code: Mapped[str] = mapped_column(String(64), unique=True)
    type_code: Mapped[str] = mapped_column(
        ForeignKey("device_types.code", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(60), default="")
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    region_code: Mapped[str] = mapped_column(String(15), index=True)  # the grid it stands in
    # The risk point or site it watches (a landslide slope, a construction site …).
    site: Mapped[str | None] = mapped_column(String(40), index=True)
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("device_groups.id", ondelete="SET NULL"), index=True
    )
    owner_unit_id: Mapped[int | None] = mapped_column(
        ForeignKey("units.id", ondelete="SET NULL"), index=True
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Reading(Base):
    """One value of one metric at one instant. Times are epoch milliseconds (UTC): compact,
    cheap to bucket on both engines. On PostgreSQL the table is partitioned by month, and
    ``tx`` is the id of the transaction that stored the reading (the column's default there;
    always empty on SQLite): what tells a fold which readings it has not seen yet, through a
    BRIN index of a few pages that each fold brings up to date (telemetry/fold.py)."""

    __tablename__ = "readings"
    __table_args__ = (
        PrimaryKeyConstraint("device_id", "metric", "ts"),
        Index(
            "ix_readings_tx",
            "tx",
            postgresql_using="brin",
            postgresql_with={"pages_per_range": "32"},
            sqlite_where=text("tx IS NOT NULL"),  # empty there
        ),
        {"postgresql_partition_by": "RANGE (ts)"},
    )

    device_id: Mapped[int] = mapped_column(Integer)
    metric: Mapped[str] = mapped_column(String(32))
    ts: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[float] = mapped_column(Float)
    tx: Mapped[int | None] = mapped_column(BigInteger)


class _Rollup:
    device_id: Mapped[int] = mapped_column(Integer)
    metric: Mapped[str] = mapped_column(String(32))
    bucket: Mapped[int] = mapped_column(BigInteger)  # bucket start, epoch ms
    n: Mapped[int] = mapped_column(Integer)
    vmin: Mapped[float] = mapped_column(Float)
    vmax: Mapped[float] = mapped_column(Float)
    vsum: Mapped[float] = mapped_column(Float)
    last_ts: Mapped[int] = mapped_column(BigInteger)
    last_value: Mapped[float] = mapped_column(Float)


# Roll-ups and latest values are updated in place on every batch: room left in each page lets
# PostgreSQL update them without touching the primary-key index (HOT updates).
UPDATE_HEAVY = {"postgresql_with": {"fillfactor": 50}}


class Rollup1m(_Rollup, Base):
    __tablename__ = "rollups_1m"
    __table_args__ = (PrimaryKeyConstraint("device_id", "metric", "bucket"), UPDATE_HEAVY)


class Rollup1h(_Rollup, Base):
    __tablename__ = "rollups_1h"
    __table_args__ = (PrimaryKeyConstraint("device_id", "metric", "bucket"), UPDATE_HEAVY)


class Latest(Base):
    """The newest value of each metric of each device, and when the device last reported."""

    __tablename__ = "telemetry_latest"
    __table_args__ = (PrimaryKeyConstraint("device_id", "metric"), UPDATE_HEAVY)

    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(32))
    ts: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[float] = mapped_column(Float)
    # Not indexed: every fold rewrites it, and nothing looks devices up by it.
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


# --- folding new readings into the roll-ups and latest values (telemetry/fold.py) ----------


class FoldState(Base):
    """How far folding new readings into the roll-ups and latest values has got, one row per
    stream (``readings``), locked by the folder at work. ``position``: SQLite, the highest
    ``readings`` rowid folded; PostgreSQL, the transaction id below which every reading is
    folded."""

    __tablename__ = "telemetry_fold"

    stream: Mapped[str] = mapped_column(String(32), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=0)
    folded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ReadingBatch(Base):
    """When readings not folded yet were received, so that a fold knows each device's
    ``received_at``: SQLite, one row per batch by the highest rowid it wrote; PostgreSQL, one
    per storing transaction by its id (``readings.tx``). Removed once folded."""

    __tablename__ = "reading_batches"

    upto: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
