"""Reading alarms: the filtered, scoped, ordered list (SQL does the filtering and paging)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, case, func, or_, select
from sqlalchemy.orm import Session

from cityops.alarms.models import Alarm, AlarmRule
from cityops.auth.principal import Principal
from cityops.events.models import Case
from cityops.geo.codes import within

SEVERITY_ORDER = case(
    {"critical": 4, "major": 3, "minor": 2, "warning": 1}, value=Alarm.severity, else_=0
)


@dataclass(frozen=True)
class Filters:
    state: str = "open"  # open | closed | all
    severity: Sequence[str] = ()
    condition: str | None = None
    acked: bool | None = None
    shelved: bool | None = None  # None: shelved alarms are left out of the open list
    rule: str | None = None
    region: str | None = None


def _conditions(principal: Principal, f: Filters, now: datetime) -> list[Any]:
    placed: Any = Alarm.region_code
    conds: list[Any] = []
    if principal.region_code:
        conds.append(within(placed, principal.region_code))
    if f.region:
        conds.append(within(placed, f.region))
    if f.state == "open":
        conds.append(Alarm.closed_at.is_(None))
    elif f.state == "closed":
        conds.append(Alarm.closed_at.is_not(None))
    if f.severity:
        conds.append(Alarm.severity.in_(list(f.severity)))
    if f.condition:
        conds.append(Alarm.condition == f.condition)
    if f.acked is not None:
        conds.append(Alarm.acked.is_(f.acked))
    if f.shelved is True:
        conds.append(and_(Alarm.shelved_until.is_not(None), Alarm.shelved_until > now))
    elif f.shelved is False or (f.shelved is None and f.state == "open"):
        conds.append(or_(Alarm.shelved_until.is_(None), Alarm.shelved_until <= now))
    if f.rule:
        conds.append(AlarmRule.code == f.rule)
    return conds


def page(
    session: Session,
    principal: Principal,
    f: Filters,
    now: datetime,
    *,
    limit: int,
    offset: int,
) -> tuple[int, Sequence[Row[Alarm, AlarmRule, str | None]]]:
    """Alarms in the caller's region, most severe and most recent first, with their rule and
    the code of the case they opened."""
    conds = _conditions(principal, f, now)
    total = count(session, principal, f, now)
    rows = session.execute(
        select(Alarm, AlarmRule, Case.code)
        .join(AlarmRule, AlarmRule.id == Alarm.rule_id)
        .outerjoin(Case, Case.id == Alarm.case_id)
        .where(*conds)
        .order_by(SEVERITY_ORDER.desc(), Alarm.last_seen.desc(), Alarm.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return total, rows


def count(session: Session, principal: Principal, f: Filters, now: datetime) -> int:
    query = (
        select(func.count())
        .select_from(Alarm)
        .join(AlarmRule, AlarmRule.id == Alarm.rule_id)
        .where(*_conditions(principal, f, now))
    )
    return session.scalar(query) or 0


def open_by_rule(session: Session, principal: Principal) -> dict[int, int]:
    """Rule id → its open alarms (shelved ones too) in the caller's region."""
    placed: Any = Alarm.region_code
    query = select(Alarm.rule_id, func.count()).where(Alarm.closed_at.is_(None))
    if principal.region_code:
        query = query.where(within(placed, principal.region_code))
    return {rule_id: n for rule_id, n in session.execute(query.group_by(Alarm.rule_id))}


def case_code(session: Session, alarm: Alarm) -> str | None:
    if alarm.case_id is None:
        return None
    return session.scalar(select(Case.code).where(Case.id == alarm.case_id))
