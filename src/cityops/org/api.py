from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from cityops.auth import audit
from cityops.auth.deps import Require
from cityops.auth.permissions import Permission
from cityops.auth.principal import Principal
from cityops.db import utcnow
from cityops.deps import DbSession
from cityops.errors import Forbidden, InvalidInput, NotFound
from cityops.org import service
from cityops.org.models import UnitKind
from cityops.org.roles import Role
from cityops.org.schemas import OnDutyOut, PersonOut, UnitOut
from cityops.privacy import mask_mobile, mask_name

router = APIRouter(prefix="/api/v1", tags=["organisation"])

OrgReader = Annotated[Principal, Depends(Require(Permission.org_read))]
PeopleReader = Annotated[Principal, Depends(Require(Permission.people_read))]
RegionCode = Annotated[str | None, Query(pattern=r"^\d{6}(\d{3}){0,3}$")]


@router.get("/units", response_model=list[UnitOut])
def list_units(
    principal: OrgReader,
    session: DbSession,
    kind: UnitKind | None = None,
    region: RegionCode = None,
) -> list[UnitOut]:
    # Units are the dispatch directory: every staff member may see all of them.
    return [
        UnitOut(
            code=u.code,
            name=u.name,
            short_name=u.short_name,
            kind=u.kind,
            region_code=region_code,
            duties=u.duties,
            one_window=u.one_window,
        )
        for u, region_code in service.list_units(session, kind=kind, region=region)
    ]


@router.get("/people", response_model=list[PersonOut])
def list_people(
    principal: PeopleReader,
    session: DbSession,
    region: RegionCode = None,
    unit: Annotated[str | None, Query(max_length=40)] = None,
    role: Role | None = None,
    unmask: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[PersonOut]:
    """People inside the caller's region scope. Mobile numbers (and citizens' names) are masked
    unless the caller may unmask and asks to; every unmasked listing is audited."""
    if unmask and not principal.can(Permission.pii_unmask):
        raise Forbidden(
            "无权查看完整个人信息 / not allowed to unmask personal data", field="unmask"
        )
    rows = service.list_people(
        session,
        scope=principal.region_code,
        region=region,
        unit=unit,
        role=role,
        limit=limit,
        offset=offset,
    )
    if unmask:
        audit.record(
            session,
            "unmask",
            "people",
            summary={"codes": [p.code for p, *_ in rows][:200], "count": len(rows)},
        )
    return [
        PersonOut(
            code=p.code,
            name=p.name if unmask or Role.citizen.value not in roles else mask_name(p.name),
            mobile=p.mobile if unmask else mask_mobile(p.mobile),
            title=p.title,
            unit_code=unit_code,
            region_code=region_code,
            roles=roles,
            masked=not unmask,
        )
        for p, unit_code, region_code, roles in rows
    ]


@router.get("/regions/{code}/on-duty", response_model=OnDutyOut)
def on_duty(
    principal: PeopleReader,
    session: DbSession,
    code: Annotated[str, Path(pattern=r"^\d{15}$", description="grid code (15 digits)")],
    at: Annotated[
        datetime | None, Query(description="moment (ISO 8601 with offset); default now")
    ] = None,
) -> OnDutyOut:
    if not principal.sees(code):
        raise NotFound(f"区域 {code} 不存在 / region {code} not found", field="code")
    if at is not None and at.tzinfo is None:
        raise InvalidInput("时间须带时区偏移 / at needs a UTC offset, e.g. +08:00", field="at")
    moment = at or utcnow()
    person = service.on_duty(session, code, moment)
    return OnDutyOut(
        grid_code=code,
        at=moment.isoformat(),
        person_code=person.code if person else None,
        name=person.name if person else None,
        mobile=mask_mobile(person.mobile) if person else None,
        title=person.title if person else None,
    )
