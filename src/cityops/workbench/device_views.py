"""The workbench's device pages: every sensor in the person's area with its status (online while
it reports within its type's interval), its last report and newest values, filtered by type,
status and area; and a device's page — its details, newest values, open alarms and each
metric's curve over the last day."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.alarms.models import Alarm, AlarmRule
from cityops.auth.permissions import Permission as P
from cityops.auth.principal import Principal
from cityops.db import utcnow
from cityops.deps import DbSession
from cityops.telemetry import service as telemetry
from cityops.telemetry.models import Device, DeviceType, Latest
from cityops.web.i18n import pick_language
from cityops.web.views import MaybePrincipal
from cityops.workbench import curves, shell

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
STATUSES = ("online", "offline")
SHOWN_VALUES = 3  # newest values a list row shows


def _values(
    latest: list[Latest], declared: list[dict[str, Any]], lang: str
) -> list[dict[str, Any]]:
    """The newest values, in the order the type declares its metrics (``telemetry.metrics_of``)."""
    by_name = {m["metric"]: m for m in declared}
    order = {name: i for i, name in enumerate(by_name)}
    out = []
    for v in sorted(latest, key=lambda v: (order.get(v.metric, len(order)), v.metric)):
        m = by_name.get(v.metric, {})
        label = telemetry.metric_label(m, lang, v.metric)
        out.append({"label": label, "value": v.value, "unit": m.get("unit", ""), "ts": v.ts})
    return out


@router.get("/workbench/devices")
def device_list(
    request: Request,
    principal: MaybePrincipal,
    session: DbSession,
    type: Annotated[str | None, Query(max_length=30)] = None,
    status: Annotated[str | None, Query(max_length=10)] = None,
    region: Annotated[str | None, Query(pattern=shell.REGION_FILTER)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    admitted = shell.admit(request, session, principal, P.devices_read)
    if isinstance(admitted, Response):
        return admitted
    principal = admitted
    lang = pick_language(request)
    types = list(session.scalars(select(DeviceType).order_by(DeviceType.code)))
    chosen_type = type if type in {k.code for k in types} else None
    chosen_status = status if status in STATUSES else None
    now = utcnow()
    f = telemetry.DeviceFilter(principal.region_code, chosen_type, region=region or None)
    counts = telemetry.device_counts(session, f, now)
    shown = counts.matching(chosen_status)
    pages = shell.pages_of(shown, PAGE_SIZE)
    page = min(page, pages)
    rows = telemetry.page_devices(
        session, f, now, status=chosen_status, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
    )
    latest: dict[int, list[Latest]] = {}
    if rows:
        for found in session.scalars(
            select(Latest).where(Latest.device_id.in_([r.device.id for r in rows]))
        ):
            latest.setdefault(found.device_id, []).append(found)
    names = shell.region_names(session, {r.device.region_code for r in rows})
    return shell.page(
        request,
        session,
        principal,
        "wb/devices.html",
        active="device-list",
        rows=[
            {
                "row": r,
                "type": next((k for k in types if k.code == r.device.type_code), None),
                "place": names.get(r.device.region_code, r.device.region_code),
                "values": _values(
                    latest.get(r.device.id, []), telemetry.metrics_of(session, r.device), lang
                )[:SHOWN_VALUES],
            }
            for r in rows
        ],
        counts={"total": counts.total, "online": counts.online, "offline": counts.offline},
        shown=shown,
        listing={"page": page, "pages": pages},
        types=types,
        f={"type": chosen_type, "status": chosen_status, "region": region or ""},
        statuses=STATUSES,
    )


def device_context(
    session: Session, principal: Principal, device: Device, now: datetime, lang: str
) -> dict[str, Any]:
    kind = session.get(DeviceType, device.type_code)
    latest = list(session.scalars(select(Latest).where(Latest.device_id == device.id)))
    alarms = list(
        session.execute(
            select(Alarm, AlarmRule.name)
            .join(AlarmRule, AlarmRule.id == Alarm.rule_id)
            .where(Alarm.device_id == device.id, Alarm.closed_at.is_(None))
            .order_by(Alarm.last_seen.desc())
            .limit(20)
        ).all()
    )
    return {
        "device": device,
        "row": telemetry.device_row(session, device, now),
        "type": kind,
        "regions": shell.region_path(session, device.region_code),
        "values": _values(latest, telemetry.metrics_of(session, device), lang),
        "alarms": alarms,
        "curves": curves.device_curves(session, device, now),
        "may_read_alarms": principal.can(P.alarms_read),
    }


@router.get("/workbench/devices/{code}")
def device_page(
    code: Annotated[str, Path(max_length=64)],
    request: Request,
    principal: MaybePrincipal,
    session: DbSession,
) -> Response:
    found = shell.subject(
        request,
        session,
        principal,
        P.devices_read,
        lambda p: telemetry.get_device(session, code, p.region_code),
        "wb_dev_not_found",
    )
    if isinstance(found, Response):
        return found
    principal, device = found
    return shell.page(
        request,
        session,
        principal,
        "wb/device.html",
        active="device-list",
        **device_context(session, principal, device, utcnow(), pick_language(request)),
    )
