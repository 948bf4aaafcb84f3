"""The cockpit map's point layers as GeoJSON FeatureCollections (WGS-84 lon/lat), each one SQL
query scoped to a region-code prefix and capped at ``MAX_FEATURES`` points (newest or most
severe first; ``truncated`` says when the cap cut some off).

Besides ``features`` each collection carries foreign members: ``layer``, ``region``, ``limit``,
``truncated`` and, where it matters, a ``note``. Each comes encoded (JSON bytes), as it is sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from cityops.alarms.models import SEVERITY_RANK, Alarm
from cityops.cockpit.service import ALARM_PLACE, OPEN, Scope, device_online, overdue_now
from cityops.events.models import Case
from cityops.geo.codes import within
from cityops.geo.models import Region
from cityops.org.models import DutyShift, Person
from cityops.privacy import mask_name
from cityops.telemetry.models import Device, DeviceType
from cityops.warning import service as registry
from cityops.warning.models import LEVEL_RANK, RiskPoint, Shelter

MAX_FEATURES = 5000


class Layer(StrEnum):
    cases = "cases"
    alarms = "alarms"
    risk_points = "risk_points"
    devices = "devices"
    workers = "workers"
    shelters = "shelters"


def _json(value: Any) -> str:
    """As the app's JSON responses encode (UTF-8, compact)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _feature(lon: float, lat: float, properties: dict[str, Any]) -> str:
    """One feature, encoded at once: thousands of features kept as objects until the response
    is written would cost the server a full garbage collection every other request."""
    return _json(
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [round(lon, 6), round(lat, 6)]},
            "properties": properties,
        }
    )


def _collection(layer: Layer, scope: Scope, features: list[str], note: str | None = None) -> bytes:
    """The encoded FeatureCollection (``features`` already encoded, one string each)."""
    head: dict[str, Any] = {
        "type": "FeatureCollection",
        "layer": layer.value,
        "region": scope.code,
        "limit": MAX_FEATURES,
        "truncated": len(features) >= MAX_FEATURES,
    }
    if note:
        head["note"] = note
    return f'{_json(head)[:-1]},"features":[{",".join(features)}]}}'.encode()


def cases(session: Session, scope: Scope, now: datetime) -> bytes:
    """Open cases, newest first. A case reported without coordinates stands at the centre of
    the region it was located to (``located: "region"``)."""
    # The newest ones picked from the index (state, region, created_at, id) alone, then read.
    newest = (
        select(Case.id)
        .where(Case.state.in_(OPEN), *scope.cases())
        .order_by(Case.created_at.desc(), Case.id.desc())
        .limit(MAX_FEATURES)
        .subquery()
    )
    rows = session.execute(
        select(
            Case.code,
            Case.state,
            Case.urgency,
            Case.source,
            overdue_now(now).label("late"),
            func.coalesce(Case.lon, Region.center_lon),
            func.coalesce(Case.lat, Region.center_lat),
            Case.lat.is_not(None),
        )
        .join(newest, newest.c.id == Case.id)
        .outerjoin(Region, Region.code == Case.region_code)
        .order_by(Case.created_at.desc(), Case.id.desc())
    )
    features = [
        _feature(
            lon,
            lat,
            {
                "code": code,
                "state": state,
                "urgency": urgency,
                "source": source,
                "overdue": bool(late),
                "located": "point" if exact else "region",
            },
        )
        for code, state, urgency, source, late, lon, lat, exact in rows
        if lon is not None and lat is not None
    ]
    return _collection(Layer.cases, scope, features, f"newest {MAX_FEATURES} open cases")


def alarms(session: Session, scope: Scope, now: datetime) -> bytes:
    """Open alarms with a place, most severe and most recent first."""
    rank = case(SEVERITY_RANK, value=Alarm.severity, else_=0)
    shelved = and_(Alarm.shelved_until.is_not(None), Alarm.shelved_until > now)
    rows = session.execute(
        select(
            Alarm.id,
            Alarm.severity,
            Alarm.condition,
            Alarm.acked,
            shelved.label("shelved"),
            Alarm.message,
            Alarm.lon,
            Alarm.lat,
        )
        .where(
            Alarm.closed_at.is_(None),
            within(ALARM_PLACE, scope.code),
            Alarm.lat.is_not(None),
            Alarm.lon.is_not(None),
        )
        .order_by(rank.desc(), Alarm.last_seen.desc())
        .limit(MAX_FEATURES)
    ).all()
    return _collection(
        Layer.alarms,
        scope,
        [
            _feature(
                lon,
                lat,
                {
                    "id": aid,
                    "severity": severity,
                    "condition": condition,
                    "acked": acked,
                    "shelved": bool(is_shelved),
                    "message": message[:120],
                },
            )
            for aid, severity, condition, acked, is_shelved, message, lon, lat in rows
            if lon is not None and lat is not None  # (the query asked for these only)
        ],
    )


def risk_points(session: Session, scope: Scope, now: datetime) -> bytes:
    """Active risk points, highest warning colour first."""
    rank = case(LEVEL_RANK, value=RiskPoint.level, else_=0)
    rows = session.execute(
        select(
            RiskPoint.code,
            RiskPoint.name,
            RiskPoint.hazard,
            RiskPoint.level,
            RiskPoint.grade,
            RiskPoint.persons,
            RiskPoint.lon,
            RiskPoint.lat,
        )
        .where(RiskPoint.active.is_(True), within(RiskPoint.region_code, scope.code))
        .order_by(rank.desc(), RiskPoint.code)
        .limit(MAX_FEATURES)
    ).all()
    return _collection(
        Layer.risk_points,
        scope,
        [
            _feature(
                lon,
                lat,
                {
                    "code": code,
                    "name": name,
                    "hazard": hazard,
                    "level": level,
                    "grade": grade,
                    "persons": persons,
                },
            )
            for code, name, hazard, level, grade, persons, lon, lat in rows
        ],
    )


def devices(session: Session, scope: Scope, now: datetime) -> bytes:
    """Devices, offline ones first (those are what the screen should show)."""
    online = device_online(session, now).label("online")
    rows = session.execute(
        select(
            Device.code,
            Device.name,
            Device.type_code,
            DeviceType.name,
            DeviceType.name_en,
            online,
            Device.lon,
            Device.lat,
        )
        .join(DeviceType, DeviceType.code == Device.type_code)
        .where(within(Device.region_code, scope.code))
        .order_by(online, Device.code)
        .limit(MAX_FEATURES)
    ).all()
    return _collection(
        Layer.devices,
        scope,
        [
            _feature(
                lon,
                lat,
                {
                    "code": code,
                    "name": name,
                    "type": kind,
                    "type_name": type_name,
                    "type_name_en": type_name_en,
                    "online": bool(is_online),
                },
            )
            for code, name, kind, type_name, type_name_en, is_online, lon, lat in rows
        ],
    )


def workers(session: Session, scope: Scope, now: datetime) -> bytes:
    """The grid worker on duty now in each grid (a covering shift before the standing
    assignment, the latest start within each — the org domain's rule), drawn at the grid's
    centre: there is no GPS track of field staff yet. Names are masked."""
    order = (case((DutyShift.kind == "shift", 0), else_=1), DutyShift.starts_at.desc())
    ranked = (
        select(
            DutyShift.grid_id,
            DutyShift.person_id,
            DutyShift.kind,
            func.row_number().over(partition_by=DutyShift.grid_id, order_by=order).label("rn"),
        )
        .join(Region, Region.id == DutyShift.grid_id)
        .join(Person, Person.id == DutyShift.person_id)
        .where(
            within(Region.code, scope.code),
            DutyShift.starts_at <= now,
            or_(DutyShift.ends_at.is_(None), DutyShift.ends_at > now),
            Person.active.is_(True),
        )
        .subquery()
    )
    rows = session.execute(
        select(
            Region.code,
            Region.name,
            Person.code,
            Person.name,
            Person.title,
            ranked.c.kind,
            Region.center_lon,
            Region.center_lat,
        )
        .select_from(ranked)
        .join(Region, Region.id == ranked.c.grid_id)
        .join(Person, Person.id == ranked.c.person_id)
        .where(ranked.c.rn == 1)
        .order_by(Region.code)
        .limit(MAX_FEATURES)
    ).all()
    features = [
        _feature(
            lon,
            lat,
            {
                "grid": grid,
                "grid_name": grid_name,
                "person": person,
                "name": mask_name(name),
                "title": title,
                "duty": kind,
                "position": "grid_centre",
            },
        )
        for grid, grid_name, person, name, title, kind, lon, lat in rows
    ]
    return _collection(
        Layer.workers, scope, features, "drawn at the grid's centre: no GPS track of staff yet"
    )


def shelters(session: Session, scope: Scope, now: datetime) -> bytes:
    """Active shelters with their capacity and the persons sheltered now."""
    rows = session.execute(
        select(
            Shelter.id,
            Shelter.code,
            Shelter.name,
            Shelter.capacity,
            Shelter.lon,
            Shelter.lat,
        )
        .where(Shelter.active.is_(True), within(Shelter.region_code, scope.code))
        .order_by(Shelter.code)
        .limit(MAX_FEATURES)
    ).all()
    used = registry.occupancy(session, [r[0] for r in rows]) if rows else {}
    return _collection(
        Layer.shelters,
        scope,
        [
            _feature(
                lon,
                lat,
                {
                    "code": code,
                    "name": name,
                    "capacity": capacity,
                    "occupancy": used.get(sid, 0),
                },
            )
            for sid, code, name, capacity, lon, lat in rows
        ],
    )


BUILDERS: dict[Layer, Callable[[Session, Scope, datetime], bytes]] = {
    Layer.cases: cases,
    Layer.alarms: alarms,
    Layer.risk_points: risk_points,
    Layer.devices: devices,
    Layer.workers: workers,
    Layer.shelters: shelters,
}


def build(session: Session, layer: Layer, scope: Scope, now: datetime) -> bytes:
    return BUILDERS[layer](session, scope, now)
