"""Intake from every channel: one function turns a report into a located case."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.auth.principal import Principal
from cityops.catalog import service as catalog
from cityops.cockpit import rollup
from cityops.errors import InvalidInput
from cityops.events.models import OPEN_STATES, Case, Follower, Level, Source
from cityops.geo import service as geo
from cityops.org.roles import Role

DUPLICATE_RADIUS_M = 200.0
DUPLICATE_WINDOW = timedelta(hours=72)

# Which channels a caller may report through, by role (a machine reports as its key allows).
SOURCES_BY_ROLE: dict[str, frozenset[Source]] = {
    Role.citizen.value: frozenset({Source.citizen}),
    Role.grid_worker.value: frozenset({Source.grid_worker}),
    Role.inspector.value: frozenset({Source.inspector}),
    Role.handler.value: frozenset({Source.department}),
    Role.intake_operator.value: frozenset({Source.hotline, Source.citizen, Source.video}),
    Role.dispatcher.value: frozenset({Source.hotline, Source.citizen, Source.video}),
    Role.shift_leader.value: frozenset({Source.hotline, Source.citizen, Source.video}),
    Role.district_commander.value: frozenset({Source.hotline, Source.department}),
    Role.admin.value: frozenset(Source),
}
# Channels that reach the district center first; the rest start at the town of the place.
DISTRICT_INTAKE = frozenset(
    {Source.hotline, Source.open311, Source.department, Source.sensor_alarm, Source.video}
)


@dataclass
class Report:
    description: str
    source: str | None = None
    category: str | None = None
    urgency: str = "normal"
    lat: float | None = None
    lon: float | None = None
    region_code: str | None = None
    address: str = ""
    reporter_name: str | None = None
    reporter_phone: str | None = None
    follow: bool = True
    idempotency_key: str | None = None
    attachments: Sequence[int] = field(default_factory=tuple)


def allowed_sources(principal: Principal) -> frozenset[Source]:
    if principal.kind == "system":
        return frozenset({Source.sensor_alarm})
    if principal.kind == "api_key":
        return (
            frozenset({Source.open311}) if "open311:post" in principal.permissions else frozenset()
        )
    allowed: set[Source] = set()
    for role in principal.roles:
        allowed |= SOURCES_BY_ROLE.get(role, frozenset())
    return frozenset(allowed)


def report(session: Session, principal: Principal, r: Report, now: datetime) -> tuple[Case, bool]:
    """Returns the case and whether it is new (a retried idempotency key returns the first)."""
    if r.idempotency_key:
        existing = session.scalar(select(Case).where(Case.idempotency_key == r.idempotency_key))
        if existing is not None:
            return existing, False
    description = r.description.strip()
    if not 2 <= len(description) <= 2000:
        raise InvalidInput(
            "请描述问题（2–2000 字）/ description: 2–2000 characters", field="description"
        )
    source = _source(principal, r.source)
    region_code = _locate(session, r)
    category = catalog.leaf(session, r.category) if r.category else None
    if r.urgency not in ("urgent", "normal"):
        raise InvalidInput(
            "紧急程度须为 urgent 或 normal / urgency: urgent or normal", field="urgency"
        )
    level = Level.district if source in DISTRICT_INTAKE or len(region_code) < 9 else Level.town
    case = Case(
        source=source.value,
        category_id=category.id if category else None,
        description=description,
        address=r.address.strip()[:200],
        lon=r.lon,
        lat=r.lat,
        region_code=region_code,
        urgency=r.urgency,
        level=level.value,
        reporter_name=(r.reporter_name or "").strip()[:50] or None,
        reporter_phone=(r.reporter_phone or "").strip()[:20] or None,
        # A caller on the hotline is the reporter, not the operator taking the call.
        reporter_person_id=principal.person_id if source.value in principal.roles else None,
        idempotency_key=r.idempotency_key,
        created_at=now,
    )
    session.add(case)
    session.flush()
    local = now.astimezone(ZoneInfo(catalog.calendar().zone))
    case.code = f"{local:%Y%m%d}{case.id:07d}"
    rollup.reported(session, case)
    if r.follow and (case.reporter_person_id or case.reporter_phone):
        session.add(
            Follower(
                case_id=case.id,
                person_id=case.reporter_person_id,
                name=case.reporter_name,
                phone=case.reporter_phone,
                since=now,
            )
        )
    if r.attachments:
        from cityops.events import attachments

        attachments.link(session, case, r.attachments, principal)
    from cityops.events import lifecycle

    lifecycle.publish(session, case, "report", now)
    session.flush()
    return case, True


def _source(principal: Principal, asked: str | None) -> Source:
    allowed = allowed_sources(principal)
    if asked is None:
        if len(allowed) == 1:
            return next(iter(allowed))
        for preferred in (Source.hotline, Source.grid_worker, Source.citizen):
            if preferred in allowed:
                return preferred
        raise InvalidInput("请指明来源 / source is required", field="source")
    try:
        source = Source(asked)
    except ValueError:
        raise InvalidInput(f"未知来源 {asked!r} / unknown source", field="source") from None
    if source not in allowed:
        raise InvalidInput(
            f"您不能以 {asked} 渠道上报 / you cannot report as {asked}", field="source"
        )
    return source


def _locate(session: Session, r: Report) -> str:
    if r.lat is not None or r.lon is not None:
        if r.lat is None or r.lon is None:
            raise InvalidInput(
                "经纬度须同时提供 / give both lat and lon", field="lat" if r.lat is None else "lon"
            )
        if not (math.isfinite(r.lat) and math.isfinite(r.lon)):
            raise InvalidInput("坐标无效 / coordinates must be numbers", field="lat")
        return geo.locate(session, r.lat, r.lon).finest.code
    if r.region_code:
        return geo.get_region(session, r.region_code).code
    raise InvalidInput(
        "请提供位置（经纬度或区域编码）/ a location is required (lat/lon or region_code)",
        field="lat",
    )


def duplicates(session: Session, case: Case, now: datetime) -> list[Case]:
    """Open cases of the same category nearby and recent: candidates to merge, not merged."""
    if case.category_id is None or case.lat is None or case.lon is None:
        return []
    dlat = DUPLICATE_RADIUS_M / 111_000
    dlon = dlat / max(math.cos(math.radians(case.lat)), 0.1)
    rows = session.scalars(
        select(Case)
        .where(
            Case.id != case.id,
            Case.category_id == case.category_id,
            Case.state.in_([s.value for s in OPEN_STATES]),
            Case.created_at >= now - DUPLICATE_WINDOW,
            Case.lat.between(case.lat - dlat, case.lat + dlat),
            Case.lon.between(case.lon - dlon, case.lon + dlon),
        )
        .order_by(Case.created_at.desc())
        .limit(20)
    )
    return [c for c in rows if _metres(case, c) <= DUPLICATE_RADIUS_M]


def _metres(a: Case, b: Case) -> float:
    assert a.lat is not None and a.lon is not None and b.lat is not None and b.lon is not None
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(h))
