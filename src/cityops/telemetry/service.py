"""Devices (types, groups, registration, status) and reading queries (series, latest)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

import yaml
from sqlalchemy import ColumnElement, Select, and_, case, false, func, not_, or_, select
from sqlalchemy.orm import Session

from cityops.errors import Conflict, InvalidInput, NotFound
from cityops.geo import service as geo
from cityops.telemetry.directory import DIRECTORY, MetricSpec
from cityops.telemetry.models import (
    Device,
    DeviceGroup,
    DeviceType,
    Latest,
    Reading,
    Rollup1h,
    Rollup1m,
)

MAX_POINTS = 5000
RESOLUTIONS = {"raw": 0, "1m": 60_000, "1h": 3_600_000}


# --- types and groups -----------------------------------------------------------------------


def default_types() -> list[dict[str, Any]]:
    text = (
        resources.files("cityops.telemetry")
        .joinpath("data/device_types.yaml")
        .read_text(encoding="utf-8")
    )
    data = yaml.safe_load(text)
    return list(data["types"])


def load_types(session: Session, types: Sequence[dict[str, Any]], now: datetime) -> int:
    """Upsert device types by code (metrics are replaced as given)."""
    for i, t in enumerate(types):
        code = t.get("code")
        if not isinstance(code, str) or not 1 <= len(code) <= 30:
            raise InvalidInput(f"types[{i}].code: 1–30 characters", field=f"types.{i}.code")
        metrics = t.get("metrics")
        if not isinstance(metrics, list) or not metrics:
            raise InvalidInput(f"types[{i}].metrics: at least one", field=f"types.{i}.metrics")
        for j, m in enumerate(metrics):
            try:
                spec = MetricSpec.from_dict(m)
            except (KeyError, TypeError, ValueError):
                raise InvalidInput(
                    f"types[{i}].metrics[{j}]: name, unit, min, max",
                    field=f"types.{i}.metrics.{j}",
                ) from None
            if not spec.lo <= spec.hi or len(spec.name) > 32:
                raise InvalidInput(
                    f"types[{i}].metrics[{j}]: min ≤ max, name ≤ 32",
                    field=f"types.{i}.metrics.{j}",
                )
        row = session.get(DeviceType, code) or DeviceType(code=code)
        row.name = str(t.get("name", code))[:60]
        row.name_en = str(t.get("name_en", ""))[:60]
        row.metrics = [dict(m) for m in metrics]
        row.offline_after_s = int(t.get("offline_after_s", 3600))
        row.updated_at = now
        session.add(row)
    session.flush()
    DIRECTORY.invalidate()
    return len(types)


def list_types(session: Session) -> list[DeviceType]:
    return list(session.scalars(select(DeviceType).order_by(DeviceType.code)))


def get_group(session: Session, code: str) -> DeviceGroup:
    group = session.scalar(select(DeviceGroup).where(DeviceGroup.code == code))
    if group is None:
        raise NotFound(f"设备分组 {code} 不存在 / device group not found", field="group")
    return group


def list_groups(session: Session) -> list[DeviceGroup]:
    return list(session.scalars(select(DeviceGroup).order_by(DeviceGroup.code)))


def create_group(session: Session, code: str, name: str) -> DeviceGroup:
    if session.scalar(select(DeviceGroup.id).where(DeviceGroup.code == code)):
        raise Conflict(f"设备分组 {code} 已存在 / group exists", field="code")
    group = DeviceGroup(code=code, name=name)
    session.add(group)
    session.flush()
    return group


# --- devices --------------------------------------------------------------------------------


@dataclass
class DeviceInput:
    code: str
    type: str
    name: str
    lat: float
    lon: float
    model: str = ""
    site: str | None = None
    group: str | None = None
    owner_unit: str | None = None
    active: bool = True


def _unit_id(session: Session, code: str | None) -> int | None:
    if not code:
        return None
    from cityops.org.models import Unit

    unit_id = session.scalar(select(Unit.id).where(Unit.code == code))
    if unit_id is None:
        raise InvalidInput(f"单位 {code} 不存在 / unknown unit", field="owner_unit")
    return unit_id


def create_device(session: Session, d: DeviceInput, now: datetime) -> Device:
    if session.scalar(select(Device.id).where(Device.code == d.code)):
        raise Conflict(f"设备 {d.code} 已登记 / device already registered", field="code")
    if session.get(DeviceType, d.type) is None:
        raise InvalidInput(f"未知设备类型 {d.type!r} / unknown device type", field="type")
    if not (math.isfinite(d.lat) and math.isfinite(d.lon)):
        raise InvalidInput("坐标无效 / coordinates must be numbers", field="lat")
    grid = geo.locate(session, d.lat, d.lon).finest.code
    device = Device(
        code=d.code,
        type_code=d.type,
        name=d.name,
        model=d.model,
        lat=d.lat,
        lon=d.lon,
        region_code=grid,
        site=d.site or None,
        group_id=get_group(session, d.group).id if d.group else None,
        owner_unit_id=_unit_id(session, d.owner_unit),
        active=d.active,
        created_at=now,
        updated_at=now,
    )
    session.add(device)
    session.flush()
    DIRECTORY.invalidate()
    return device


def update_device(
    session: Session, device: Device, changes: dict[str, Any], now: datetime
) -> Device:
    if "lat" in changes or "lon" in changes:
        lat = changes.get("lat", device.lat)
        lon = changes.get("lon", device.lon)
        device.region_code = geo.locate(session, lat, lon).finest.code
        device.lat, device.lon = lat, lon
    for key in ("name", "model", "active"):
        if key in changes:
            setattr(device, key, changes[key])
    if "site" in changes:
        device.site = changes["site"] or None
    if "group" in changes:
        device.group_id = get_group(session, changes["group"]).id if changes["group"] else None
    if "owner_unit" in changes:
        device.owner_unit_id = _unit_id(session, changes["owner_unit"])
    device.updated_at = now
    session.flush()
    DIRECTORY.invalidate()
    return device


def get_device(session: Session, code: str, scope: str = "") -> Device:
    device = session.scalar(select(Device).where(Device.code == code))
    if device is None or not device.region_code.startswith(scope):
        raise NotFound(f"设备 {code} 不存在 / device not found", field="code")
    return device


def metrics_of(session: Session, device: Device) -> list[dict[str, Any]]:
    """The metrics the device's type declares: name, label (zh, en), unit, on/off or not."""
    kind = session.get(DeviceType, device.type_code)
    return [
        {
            "metric": m["name"],
            "label": m.get("label") or m["name"],
            "label_en": m.get("label_en") or m.get("label") or m["name"],
            "unit": m.get("unit") or "",
            "binary": m.get("kind") == "binary",
        }
        for m in (kind.metrics if kind else [])
        if m.get("name")
    ]


def metric_of(session: Session, device: Device, metric: str) -> dict[str, Any]:
    """One metric as ``metrics_of`` gives it (its bare name when the type does not declare it)."""
    return next(
        (m for m in metrics_of(session, device) if m["metric"] == metric),
        {"metric": metric, "label": metric, "label_en": metric, "unit": "", "binary": False},
    )


def metric_label(meta: dict[str, Any], lang: str, name: str) -> str:
    """A metric's label in the page's language, from its ``metrics_of`` entry; its bare name
    when the type does not declare it."""
    return str(meta.get("label_en" if lang == "en" else "label") or name)


def check_metric(session: Session, device: Device, metric: str) -> None:
    """A series is asked of a metric the device's type declares, or one it has reported
    (a metric since taken off its type): anything else is a typo, not an empty series."""
    declared = [m["metric"] for m in metrics_of(session, device)]
    if metric in declared:
        return
    reported = session.scalar(
        select(Latest.metric).where(Latest.device_id == device.id, Latest.metric == metric)
    )
    if reported is None:
        raise InvalidInput(
            f"该设备没有指标 {metric}（可选：{'、'.join(declared) or '无'}）/ "
            f"the device has no metric {metric} (one of: {', '.join(declared) or 'none'})",
            field="metric",
        )


@dataclass
class DeviceRow:
    device: Device
    group: str | None
    last_seen: datetime | None
    online: bool


def _last_seen(device_id: int | None = None) -> Any:
    """When each device (or the one) last reported, by its newest values' arrival."""
    query = select(Latest.device_id, func.max(Latest.received_at).label("seen"))
    if device_id is not None:
        query = query.where(Latest.device_id == device_id)
    return query.group_by(Latest.device_id).subquery()


def _online(session: Session, seen: Any, now: datetime) -> ColumnElement[bool]:
    """SQL for "online": active, and heard from within its type's interval (one cut-off per
    device type, worked out here — the types are few)."""
    cutoffs = [
        and_(Device.type_code == code, seen >= now - timedelta(seconds=after))
        for code, after in session.execute(select(DeviceType.code, DeviceType.offline_after_s))
    ]
    return and_(Device.active.is_(True), seen.is_not(None), or_(*cutoffs) if cutoffs else false())


@dataclass
class DeviceFilter:
    scope: str = ""
    type_code: str | None = None
    site: str | None = None
    group: str | None = None
    region: str | None = None


def _devices_query(f: DeviceFilter, seen: Any) -> Select[Any]:
    from cityops.geo.codes import within

    query: Select[Any] = (
        select(Device, DeviceGroup.code, seen.c.seen)
        .outerjoin(DeviceGroup, DeviceGroup.id == Device.group_id)
        .outerjoin(seen, seen.c.device_id == Device.id)
    )
    conds: list[ColumnElement[bool]] = []
    if f.scope:
        conds.append(within(Device.region_code, f.scope))
    if f.region:
        conds.append(within(Device.region_code, f.region))
    if f.type_code:
        conds.append(Device.type_code == f.type_code)
    if f.site:
        conds.append(Device.site == f.site)
    if f.group:
        conds.append(DeviceGroup.code == f.group)
    return query.where(and_(*conds)) if conds else query


@dataclass(frozen=True)
class DeviceCounts:
    total: int
    online: int

    @property
    def offline(self) -> int:
        return self.total - self.online

    def matching(self, status: str | None) -> int:
        """How many devices a list filtered by this status (None: any) holds."""
        return {"online": self.online, "offline": self.offline}.get(status or "", self.total)


def device_counts(session: Session, f: DeviceFilter, now: datetime) -> DeviceCounts:
    """Devices for a filter, and of them online, counted in SQL."""
    seen = _last_seen()
    online = _online(session, seen.c.seen, now)
    counted = _devices_query(f, seen).with_only_columns(
        func.count(), func.coalesce(func.sum(case((online, 1), else_=0)), 0)
    )
    total, up = session.execute(counted).one()
    return DeviceCounts(int(total), int(up))


def page_devices(
    session: Session,
    f: DeviceFilter,
    now: datetime,
    *,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[DeviceRow]:
    """One page of devices by code; status (online / offline) decided in SQL against each
    type's interval. ``device_counts`` says how many there are."""
    seen = _last_seen()
    online = _online(session, seen.c.seen, now)
    query = _devices_query(f, seen)
    if status == "online":
        query = query.where(online)
    elif status == "offline":
        query = query.where(not_(online))
    page = session.execute(
        query.add_columns(online.label("online")).order_by(Device.code).limit(limit).offset(offset)
    )
    return [DeviceRow(device, group_code, last, bool(up)) for device, group_code, last, up in page]


def list_devices(
    session: Session,
    f: DeviceFilter,
    now: datetime,
    *,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[int, list[DeviceRow]]:
    """One page of devices and how many match."""
    total = device_counts(session, f, now).matching(status)
    return total, page_devices(session, f, now, status=status, limit=limit, offset=offset)


def device_row(session: Session, device: Device, now: datetime) -> DeviceRow:
    """One device as the lists show it (online decided by the same SQL)."""
    seen = _last_seen(device.id)
    online = _online(session, seen.c.seen, now)
    query = _devices_query(DeviceFilter(), seen).where(Device.id == device.id)
    group_code, last, up = session.execute(
        query.with_only_columns(DeviceGroup.code, seen.c.seen, online)
    ).one()
    return DeviceRow(device, group_code, last, bool(up))


# --- readings -------------------------------------------------------------------------------


@dataclass
class Point:
    ts: int
    n: int
    min: float
    max: float
    avg: float
    last: float


def series(
    session: Session,
    device: Device,
    metric: str,
    start_ms: int,
    end_ms: int,
    *,
    resolution: str = "auto",
    points: int = 500,
) -> tuple[str, int, list[Point]]:
    """Readings of one metric between two instants, downsampled to at most ``points``
    buckets in SQL (count, min, max, average and last value per bucket). ``auto`` reads the
    coarsest stored resolution that still gives ``points`` buckets."""
    if end_ms <= start_ms:
        raise InvalidInput("结束时间须晚于开始时间 / to must be after from", field="to")
    if not 1 <= points <= MAX_POINTS:
        raise InvalidInput(f"points: 1–{MAX_POINTS}", field="points")
    span = end_ms - start_ms
    if resolution == "auto":
        resolution = (
            "1h" if span / points >= 3_600_000 else "1m" if span / points >= 60_000 else "raw"
        )
    if resolution not in RESOLUTIONS:
        raise InvalidInput("resolution: auto | raw | 1m | 1h", field="resolution")
    width = max(-(-span // points), RESOLUTIONS[resolution] or 1)
    if resolution == "raw":
        ts_col = Reading.ts
        aggregates: tuple[Any, ...] = (
            func.count(),
            func.min(Reading.value),
            func.max(Reading.value),
            func.sum(Reading.value),
            func.max(Reading.ts),
        )
        where = [Reading.device_id == device.id, Reading.metric == metric]
    else:
        r = Rollup1m if resolution == "1m" else Rollup1h
        ts_col = r.bucket
        aggregates = (
            func.sum(r.n),
            func.min(r.vmin),
            func.max(r.vmax),
            func.sum(r.vsum),
            func.max(r.last_ts),
        )
        where = [r.device_id == device.id, r.metric == metric]
    offset = ts_col - start_ms
    key = start_ms + offset - offset % width
    rows = session.execute(
        select(key.label("b"), *aggregates)
        .where(*where, ts_col >= start_ms, ts_col < end_ms)
        .group_by(key)
        .order_by(key)
    ).all()
    lasts = _last_values(session, device.id, metric, [int(r[5]) for r in rows], resolution)
    out = []
    for b, count, vmin, vmax, vsum, lts in rows:
        count = int(count or 0)
        if count:
            avg = float(vsum) / count
            out.append(
                Point(int(b), count, float(vmin), float(vmax), avg, lasts.get(int(lts), avg))
            )
    return resolution, width, out


def _last_values(
    session: Session, device_id: int, metric: str, stamps: list[int], resolution: str
) -> dict[int, float]:
    if not stamps:
        return {}
    if resolution == "raw":
        q = select(Reading.ts, Reading.value).where(
            Reading.device_id == device_id, Reading.metric == metric, Reading.ts.in_(stamps)
        )
    else:
        r = Rollup1m if resolution == "1m" else Rollup1h
        q = select(r.last_ts, r.last_value).where(
            r.device_id == device_id, r.metric == metric, r.last_ts.in_(stamps)
        )
    return {int(ts): float(v) for ts, v in session.execute(q)}


def latest(
    session: Session,
    *,
    scope: str,
    devices: Sequence[str] = (),
    region: str | None = None,
    type_code: str | None = None,
    site: str | None = None,
    limit: int = 1000,
) -> list[tuple[Device, list[Latest]]]:
    from cityops.geo.codes import within

    query = select(Device).order_by(Device.code)
    if scope:
        query = query.where(within(Device.region_code, scope))
    if devices:
        query = query.where(Device.code.in_(list(devices)))
    if region:
        query = query.where(within(Device.region_code, region))
    if type_code:
        query = query.where(Device.type_code == type_code)
    if site:
        query = query.where(Device.site == site)
    chosen = list(session.scalars(query.limit(limit)))
    values: dict[int, list[Latest]] = {}
    if chosen:
        for row in session.scalars(
            select(Latest)
            .where(Latest.device_id.in_([d.id for d in chosen]))
            .order_by(Latest.metric)
        ):
            values.setdefault(row.device_id, []).append(row)
    return [(d, values.get(d.id, [])) for d in chosen]
