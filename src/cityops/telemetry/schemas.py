from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from cityops.telemetry.models import Device, Latest
    from cityops.telemetry.service import DeviceRow, Point

CODE = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"


class DeviceIn(BaseModel):
    code: str = Field(pattern=CODE, description="the id the device reports under")
    type: str = Field(min_length=1, max_length=30)
    name: str = Field(min_length=1, max_length=100)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    model: str = Field(default="", max_length=60)
    site: str | None = Field(default=None, max_length=40)
    group: str | None = Field(default=None, max_length=40)
    owner_unit: str | None = Field(default=None, max_length=40)
    active: bool = True


class DevicePatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    model: str | None = Field(default=None, max_length=60)
    site: str | None = Field(default=None, max_length=40)
    group: str | None = Field(default=None, max_length=40)
    owner_unit: str | None = Field(default=None, max_length=40)
    active: bool | None = None


class GroupIn(BaseModel):
    code: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
    name: str = Field(min_length=1, max_length=100)


class DeviceOut(BaseModel):
    code: str
    type: str
    name: str
    model: str
    lat: float
    lon: float
    region_code: str
    site: str | None
    group: str | None
    owner_unit_id: int | None
    active: bool
    online: bool
    last_seen: datetime | None


def device_out(row: DeviceRow) -> DeviceOut:
    d = row.device
    return DeviceOut(
        code=d.code,
        type=d.type_code,
        name=d.name,
        model=d.model,
        lat=d.lat,
        lon=d.lon,
        region_code=d.region_code,
        site=d.site,
        group=row.group,
        owner_unit_id=d.owner_unit_id,
        active=d.active,
        online=row.online,
        last_seen=row.last_seen,
    )


class KeyOut(BaseModel):
    id: int
    key: str = Field(description="shown once; store it in the device")
    scopes: list[str]
    restrict: dict[str, Any]


def _iso(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


class PointOut(BaseModel):
    t: datetime
    n: int
    min: float
    max: float
    avg: float
    last: float


class SeriesOut(BaseModel):
    device: str
    metric: str
    resolution: str
    bucket_ms: int
    points: list[PointOut]

    @classmethod
    def build(
        cls, device: Device, metric: str, resolution: str, width: int, rows: list[Point]
    ) -> SeriesOut:
        return cls(
            device=device.code,
            metric=metric,
            resolution=resolution,
            bucket_ms=width,
            points=[
                PointOut(t=_iso(p.ts), n=p.n, min=p.min, max=p.max, avg=p.avg, last=p.last)
                for p in rows
            ],
        )


class ValueOut(BaseModel):
    metric: str
    value: float
    t: datetime
    received_at: datetime


class LatestOut(BaseModel):
    device: str
    type: str
    name: str
    lat: float
    lon: float
    region_code: str
    site: str | None
    values: list[ValueOut]

    @classmethod
    def build(cls, device: Device, values: list[Latest]) -> LatestOut:
        return cls(
            device=device.code,
            type=device.type_code,
            name=device.name,
            lat=device.lat,
            lon=device.lon,
            region_code=device.region_code,
            site=device.site,
            values=[
                ValueOut(metric=v.metric, value=v.value, t=_iso(v.ts), received_at=v.received_at)
                for v in values
            ],
        )
