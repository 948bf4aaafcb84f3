"""JSON shapes of risk points, households, shelters and warnings for the API and the pages."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.org.models import Person
from cityops.privacy import mask_mobile, mask_name
from cityops.warning import evacuation
from cityops.warning import service as registry
from cityops.warning.models import (
    HAZARD_ZH,
    LEVEL_ZH,
    CapMessage,
    Household,
    RiskPoint,
    Shelter,
    Warning,
    WarningEvent,
)


def point_summary(point: RiskPoint) -> dict[str, Any]:
    return {
        "code": point.code,
        "name": point.name,
        "hazard": point.hazard,
        "hazard_zh": HAZARD_ZH.get(point.hazard, point.hazard),
        "grade": point.grade,
        "region_code": point.region_code,
        "lat": point.lat,
        "lon": point.lon,
        "households": point.households,
        "persons": point.persons,
        "level": point.level,
        "level_zh": LEVEL_ZH.get(point.level, point.level),
        "level_reasons": point.level_reasons,
        "evaluated_at": point.evaluated_at,
        "active": point.active,
    }


def _person(session: Session, pid: int | None, unmask: bool) -> dict[str, Any] | None:
    if pid is None:
        return None
    person = session.get(Person, pid)
    if person is None:
        return None
    return {
        "code": person.code,
        "name": person.name if unmask else mask_name(person.name),
        "mobile": person.mobile if unmask else mask_mobile(person.mobile),
        "title": person.title,
    }


def point_detail(session: Session, point: RiskPoint, *, unmask: bool) -> dict[str, Any]:
    """``unmask``: the responsible people's names and mobiles in full (the caller checks
    pii:unmask and audits)."""
    from cityops.warning import workflow

    current = workflow.open_warning(session, point.id)
    return point_summary(point) | {
        "zone": point.zone,
        "route": point.route,
        "route_line": point.route_line,
        "settings": point.settings,
        "town_leader": _person(session, point.town_leader_id, unmask),
        "monitor": _person(session, point.monitor_id, unmask),
        "monitors": [
            {
                "label": m.label,
                "device": d.code,
                "type": d.type_code,
                "metric": m.metric,
                "role": m.role,
                "v_uniform": m.v_uniform,
                "lat": d.lat,
                "lon": d.lon,
            }
            for m, d in registry.monitors_of(session, point.id)
        ],
        "shelters": [shelter_out(s) for s in registry.shelters_of(session, point.id)],
        "warning": warning_summary(current) if current else None,
    }


def shelter_out(shelter: Shelter, occupancy: int | None = None) -> dict[str, Any]:
    out = {
        "code": shelter.code,
        "name": shelter.name,
        "region_code": shelter.region_code,
        "address": shelter.address,
        "lat": shelter.lat,
        "lon": shelter.lon,
        "capacity": shelter.capacity,
        "contact_name": shelter.contact_name,
        "contact_phone": shelter.contact_phone,
    }
    if occupancy is not None:
        out["occupancy"] = occupancy
    return out


def household_out(household: Household, unmask: bool) -> dict[str, Any]:
    return {
        "code": household.code,
        "head_name": household.head_name if unmask else mask_name(household.head_name),
        "address": household.address,
        "region_code": household.region_code,
        "lat": household.lat,
        "lon": household.lon,
        "persons": household.persons,
        "vulnerable": household.vulnerable,
        "phone": household.phone if unmask else mask_mobile(household.phone or None),
        "note": household.note,
        "active": household.active,
    }


def warning_summary(warning: Warning) -> dict[str, Any]:
    return {
        "code": warning.code,
        "level": warning.level,
        "level_zh": LEVEL_ZH[warning.level],
        "state": warning.state,
        "source": warning.source,
        "headline": warning.headline,
        "reasons": warning.reasons,
        "reasons_en": warning.reasons_en,
        "region_code": warning.region_code,
        "proposed_by": warning.proposed_by,
        "proposed_at": warning.proposed_at,
        "confirmed_by": warning.confirmed_by,
        "confirmed_at": warning.confirmed_at,
        "issued_at": warning.issued_at,
        "expires_at": warning.expires_at,
        "closed_by": warning.closed_by,
        "closed_at": warning.closed_at,
    }


def warning_detail(session: Session, warning: Warning) -> dict[str, Any]:
    point = session.get(RiskPoint, warning.risk_point_id)
    assert point is not None
    events = session.scalars(
        select(WarningEvent).where(WarningEvent.warning_id == warning.id).order_by(WarningEvent.id)
    )
    messages = session.scalars(
        select(CapMessage).where(CapMessage.warning_id == warning.id).order_by(CapMessage.id)
    )
    evac = evacuation.of_warning(session, warning)
    return warning_summary(warning) | {
        "instruction": warning.instruction,
        "close_note": warning.close_note,
        "risk_point": point_summary(point) | {"zone": point.zone},
        "history": [
            {
                "at": e.at,
                "action": e.action,
                "who": e.who_name,
                "who_kind": e.who_kind,
                "level": e.level,
                "note": e.note,
            }
            for e in events
        ],
        "cap": [
            {
                "identifier": m.identifier,
                "msg_type": m.msg_type,
                "level": m.level,
                "sent": m.sent,
                "url": f"/api/v1/cap/{m.identifier}.xml",
            }
            for m in messages
        ],
        "evacuation": evacuation.board(session, evac) if evac else None,
    }
