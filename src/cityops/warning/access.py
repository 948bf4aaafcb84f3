"""Who may read which risk point and warning: the area a person answers for, and — for a warning
whose zone straddles grids — the households of their own grid in its evacuation."""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from cityops.auth.principal import Principal
from cityops.errors import NotFound
from cityops.warning import service as registry
from cityops.warning import workflow
from cityops.warning.models import Evacuation, EvacuationEntry, RiskPoint, Warning


def point(session: Session, principal: Principal, code: str) -> RiskPoint:
    found = registry.get_point(session, code)
    if not principal.sees(found.region_code):
        raise NotFound(f"风险点 {code} 不存在 / no such risk point")
    return found


def evacuating_in(principal: Principal) -> Select[int]:
    """Ids of warnings whose evacuation has a household inside the principal's area: a zone
    often straddles grids, and the grid worker of each must see and report their part."""
    return (
        select(Evacuation.warning_id)
        .join(EvacuationEntry, EvacuationEntry.evacuation_id == Evacuation.id)
        .where(principal.scope(EvacuationEntry.grid_code))
    )


def readable(session: Session, principal: Principal, code: str) -> tuple[Warning, bool]:
    """A warning the principal may read, and whether all of it (False: only the households
    of their area, the warning lying in a neighbouring grid)."""
    warning = workflow.get(session, code)
    if principal.sees(warning.region_code):
        return warning, True
    if session.scalar(evacuating_in(principal).where(Evacuation.warning_id == warning.id)):
        return warning, False
    raise NotFound(f"预警 {code} 不存在 / no such warning")


def in_area(session: Session, principal: Principal, code: str) -> Warning:
    """A warning inside the principal's own area (deciding on it needs all of it)."""
    warning = workflow.get(session, code)
    if not principal.sees(warning.region_code):
        raise NotFound(f"预警 {code} 不存在 / no such warning")
    return warning
