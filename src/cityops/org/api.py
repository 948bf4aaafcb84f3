from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query

from cityops.db import utcnow
from cityops.deps import DbSession
from cityops.errors import InvalidInput
from cityops.org import service
from cityops.org.models import UnitKind
from cityops.org.schemas import OnDutyOut, UnitOut
from cityops.privacy import mask_mobile, mask_name

router = APIRouter(prefix="/api/v1", tags=["organisation"])


@router.get("/units", response_model=list[UnitOut])
def list_units(
    session: DbSession,
    kind: UnitKind | None = None,
    region: Annotated[str | None, Query(pattern=r"^\d{6}(\d{3}){0,3}$")] = None,
) -> list[UnitOut]:
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


@router.get("/regions/{code}/on-duty", response_model=OnDutyOut)
def on_duty(
    session: DbSession,
    code: Annotated[str, Path(pattern=r"^\d{15}$", description="grid code (15 digits)")],
    at: Annotated[
        datetime | None, Query(description="moment (ISO 8601 with offset); default now")
    ] = None,
) -> OnDutyOut:
    if at is not None and at.tzinfo is None:
        raise InvalidInput("时间须带时区偏移 / at needs a UTC offset, e.g. +08:00", field="at")
    moment = at or utcnow()
    person = service.on_duty(session, code, moment)
    # Names and numbers stay masked until log-in and roles exist to decide who may see them.
    return OnDutyOut(
        grid_code=code,
        at=moment.isoformat(),
        person_code=person.code if person else None,
        name=mask_name(person.name) if person else None,
        mobile=mask_mobile(person.mobile) if person else None,
        title=person.title if person else None,
    )
