"""The register: risk points with their zones, monitors, responsible people and shelters;
households; shelters and how full they are."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from cityops.errors import Conflict, InvalidInput, NotFound
from cityops.geo import service as geo
from cityops.geo.codes import within
from cityops.org.models import Person
from cityops.telemetry.models import Device
from cityops.warning import zones
from cityops.warning.models import (
    Evacuation,
    EvacuationEntry,
    Household,
    RiskPoint,
    RiskPointMonitor,
    RiskPointShelter,
    Shelter,
    ZoneHousehold,
)
from cityops.warning.schemas import (
    HouseholdIn,
    MonitorIn,
    RiskPointIn,
    ShelterIn,
)

# Which metric of a device type the analytics read, and as what.
MONITOR_METRICS = {
    "gnss": ("disp_mm", "displacement"),
    "crack": ("crack_mm", "displacement"),
    "rain": ("rain_mm", "rain"),
}


def get_point(session: Session, code: str) -> RiskPoint:
    point = session.scalar(select(RiskPoint).where(RiskPoint.code == code))
    if point is None:
        raise NotFound(f"风险点 {code} 不存在 / no such risk point")
    return point


def _person_id(session: Session, code: str | None, field: str) -> int | None:
    if not code:
        return None
    pid = session.scalar(select(Person.id).where(Person.code == code))
    if pid is None:
        raise InvalidInput(f"人员 {code} 不存在 / no such person", field=field)
    return pid


def _grid(session: Session, lat: float, lon: float) -> str:
    if not (math.isfinite(lat) and math.isfinite(lon)):
        raise InvalidInput("坐标无效 / coordinates must be numbers", field="lat,lon")
    return geo.locate(session, lat, lon).finest.code


def create_point(session: Session, data: RiskPointIn, now: datetime) -> RiskPoint:
    if session.scalar(select(RiskPoint.id).where(RiskPoint.code == data.code)):
        raise Conflict(f"风险点 {data.code} 已存在 / risk point exists", field="code")
    polygon = zones.parse_zone(data.zone)
    point = RiskPoint(
        code=data.code,
        name=data.name,
        hazard=data.hazard,
        region_code=_grid(session, data.lat, data.lon),
        lat=data.lat,
        lon=data.lon,
        zone={},
        min_lon=0.0,
        min_lat=0.0,
        max_lon=0.0,
        max_lat=0.0,
        town_leader_id=_person_id(session, data.town_leader, "town_leader"),
        monitor_id=_person_id(session, data.monitor, "monitor"),
        route=data.route,
        route_line=data.route_line,
        settings=data.settings,
        created_at=now,
        updated_at=now,
    )
    session.add(point)
    session.flush()
    zones.set_zone(session, point, polygon)
    set_monitors(session, point, data.monitors)
    set_shelters(session, point, data.shelters)
    return point


def update_point(
    session: Session, point: RiskPoint, changes: dict[str, Any], now: datetime
) -> RiskPoint:
    if "zone" in changes and changes["zone"] is not None:
        zones.set_zone(session, point, zones.parse_zone(changes["zone"]))
    for key in ("name", "hazard", "route", "settings", "active"):
        if changes.get(key) is not None:
            setattr(point, key, changes[key])
    if "town_leader" in changes:
        point.town_leader_id = _person_id(session, changes["town_leader"], "town_leader")
    if "monitor" in changes:
        point.monitor_id = _person_id(session, changes["monitor"], "monitor")
    if changes.get("monitors") is not None:
        set_monitors(session, point, [MonitorIn(**m) for m in changes["monitors"]])
    if changes.get("shelters") is not None:
        set_shelters(session, point, changes["shelters"])
    point.updated_at = now
    return point


def set_monitors(session: Session, point: RiskPoint, monitors: Sequence[MonitorIn]) -> None:
    session.execute(delete(RiskPointMonitor).where(RiskPointMonitor.risk_point_id == point.id))
    seen: set[int] = set()
    for i, m in enumerate(monitors):
        device = session.scalar(select(Device).where(Device.code == m.device))
        if device is None:
            raise InvalidInput(f"设备 {m.device} 未登记 / unknown device", field=f"monitors.{i}")
        metric, role = MONITOR_METRICS.get(device.type_code, (None, None))
        metric = m.metric or metric
        if metric is None or role is None:
            raise InvalidInput(
                f"设备类型 {device.type_code} 不能用于预警分析 / device type not usable",
                field=f"monitors.{i}",
            )
        if device.id in seen:
            continue
        seen.add(device.id)
        session.add(
            RiskPointMonitor(
                risk_point_id=point.id,
                device_id=device.id,
                label=m.label or _label(device.code),
                metric=metric,
                role=role,
                v_uniform=m.v_uniform,
            )
        )
    session.flush()


def _label(device_code: str) -> str:
    # "LGW-GNSS-3" → "GNSS-3": the site prefix is implied by the risk point.
    parts = device_code.split("-")
    return "-".join(parts[-2:]) if len(parts) >= 3 else device_code


def set_shelters(session: Session, point: RiskPoint, codes: Sequence[str]) -> None:
    session.execute(delete(RiskPointShelter).where(RiskPointShelter.risk_point_id == point.id))
    for rank, code in enumerate(dict.fromkeys(codes), start=1):
        shelter = session.scalar(select(Shelter).where(Shelter.code == code))
        if shelter is None:
            raise InvalidInput(f"安置点 {code} 不存在 / no such shelter", field="shelters")
        session.add(RiskPointShelter(risk_point_id=point.id, shelter_id=shelter.id, rank=rank))
    session.flush()


def monitors_of(session: Session, point_id: int) -> list[tuple[RiskPointMonitor, Device]]:
    return [
        (m, d)
        for m, d in session.execute(
            select(RiskPointMonitor, Device)
            .join(Device, Device.id == RiskPointMonitor.device_id)
            .where(RiskPointMonitor.risk_point_id == point_id)
            .order_by(RiskPointMonitor.role, RiskPointMonitor.label)
        )
    ]


def shelters_of(session: Session, point_id: int) -> list[Shelter]:
    return list(
        session.scalars(
            select(Shelter)
            .join(RiskPointShelter, RiskPointShelter.shelter_id == Shelter.id)
            .where(RiskPointShelter.risk_point_id == point_id)
            .order_by(RiskPointShelter.rank)
        )
    )


def list_points(
    session: Session,
    region_prefix: str,
    *,
    hazard: str | None = None,
    level: str | None = None,
    limit: int = 500,
) -> list[RiskPoint]:
    query = select(RiskPoint).where(within(RiskPoint.region_code, region_prefix))
    if hazard:
        query = query.where(RiskPoint.hazard == hazard)
    if level:
        query = query.where(RiskPoint.level == level)
    return list(session.scalars(query.order_by(RiskPoint.code).limit(limit)))


# --- shelters -------------------------------------------------------------------------------


def create_shelter(session: Session, data: ShelterIn, now: datetime) -> Shelter:
    if session.scalar(select(Shelter.id).where(Shelter.code == data.code)):
        raise Conflict(f"安置点 {data.code} 已存在 / shelter exists", field="code")
    shelter = Shelter(
        **data.model_dump(),
        region_code=_grid(session, data.lat, data.lon),
        created_at=now,
        updated_at=now,
    )
    session.add(shelter)
    session.flush()
    return shelter


def get_shelter(session: Session, code: str, field: str = "shelter") -> Shelter:
    shelter = session.scalar(select(Shelter).where(Shelter.code == code))
    if shelter is None:
        raise InvalidInput(f"安置点 {code} 不存在 / no such shelter", field=field)
    return shelter


def occupancy(session: Session, shelter_ids: Sequence[int] | None = None) -> dict[int, int]:
    """Persons sheltered now in each shelter, over every open evacuation."""
    query = (
        select(EvacuationEntry.shelter_id, func.sum(EvacuationEntry.persons))
        .join(Evacuation, Evacuation.id == EvacuationEntry.evacuation_id)
        .where(Evacuation.state == "open", EvacuationEntry.status == "sheltered")
        .where(EvacuationEntry.shelter_id.is_not(None))
        .group_by(EvacuationEntry.shelter_id)
    )
    if shelter_ids is not None:
        query = query.where(EvacuationEntry.shelter_id.in_(list(shelter_ids)))
    return {int(sid): int(n or 0) for sid, n in session.execute(query) if sid is not None}


def list_shelters(session: Session, region_prefix: str) -> list[Shelter]:
    return list(
        session.scalars(
            select(Shelter).where(within(Shelter.region_code, region_prefix)).order_by(Shelter.code)
        )
    )


# --- households -----------------------------------------------------------------------------


def get_household(session: Session, code: str) -> Household:
    household = session.scalar(select(Household).where(Household.code == code))
    if household is None:
        raise NotFound(f"住户 {code} 不存在 / no such household")
    return household


def _vulnerable(raw: dict[str, int]) -> dict[str, int]:
    if any(not isinstance(v, int) or v < 0 or v > 100 for v in raw.values()):
        raise InvalidInput("特殊人群人数须为 0–100 的整数 / counts 0–100", field="vulnerable")
    return {k[:20]: v for k, v in raw.items() if v}


def create_household(session: Session, data: HouseholdIn, now: datetime) -> Household:
    if session.scalar(select(Household.id).where(Household.code == data.code)):
        raise Conflict(f"住户 {data.code} 已登记 / household exists", field="code")
    household = Household(
        **(data.model_dump() | {"vulnerable": _vulnerable(data.vulnerable)}),
        region_code=_grid(session, data.lat, data.lon),
        created_at=now,
        updated_at=now,
    )
    session.add(household)
    zones.relink_household(session, household)
    return household


def update_household(
    session: Session, household: Household, changes: dict[str, Any], now: datetime
) -> Household:
    moved = False
    if changes.get("lat") is not None or changes.get("lon") is not None:
        lat = changes.get("lat") or household.lat
        lon = changes.get("lon") or household.lon
        household.region_code = _grid(session, lat, lon)
        household.lat, household.lon = lat, lon
        moved = True
    if changes.get("vulnerable") is not None:
        household.vulnerable = _vulnerable(changes["vulnerable"])
    for key in ("head_name", "address", "persons", "phone", "note", "active"):
        if changes.get(key) is not None:
            setattr(household, key, changes[key])
    household.updated_at = now
    if moved or "active" in changes or "persons" in changes:
        zones.relink_household(session, household)
    return household


def households_of(session: Session, point_id: int) -> list[Household]:
    return list(
        session.scalars(
            select(Household)
            .join(ZoneHousehold, ZoneHousehold.household_id == Household.id)
            .where(ZoneHousehold.risk_point_id == point_id, Household.active.is_(True))
            .order_by(Household.code)
        )
    )
