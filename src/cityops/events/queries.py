"""Who sees which cases, and the workbench lists and counts — filtered in SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, exists, false, func, select
from sqlalchemy.orm import Session

from cityops.auth.permissions import Permission as P
from cityops.auth.principal import Principal
from cityops.catalog.models import Category
from cityops.errors import NotFound
from cityops.events.models import Assignment, Case, CaseEvent, Follower
from cityops.geo.codes import within
from cityops.org.models import Unit


def visible(principal: Principal) -> ColumnElement[bool]:
    """Citizens see their own cases; unit handlers the cases their unit worked on; everyone else
    the cases inside their region scope."""
    if principal.kind != "person":
        return false()
    coordinating = {P.cases_register, P.cases_dispatch, P.cases_verify, P.cases_supervise}
    if any(principal.can(p) for p in coordinating) or (
        principal.can(P.cases_read)
        and not principal.can(P.cases_handle)
        and "citizen" not in principal.roles
    ):
        return principal.scope(Case.region_code)
    if principal.can(P.cases_handle) and principal.unit_id is not None:
        return exists().where(
            Assignment.case_id == Case.id, Assignment.unit_id == principal.unit_id
        )
    if principal.person_id is not None:
        return (Case.reporter_person_id == principal.person_id) | exists().where(
            Follower.case_id == Case.id, Follower.person_id == principal.person_id
        )
    return false()


def get_visible(session: Session, principal: Principal, code: str) -> Case:
    case = session.scalar(select(Case).where(Case.code == code, visible(principal)))
    if case is None:
        raise NotFound(f"案件 {code} 不存在 / case {code} not found", field="code")
    return case


@dataclass
class Filters:
    state: list[str] | None = None
    unit: str | None = None
    level: str | None = None
    region: str | None = None
    category: str | None = None
    source: str | None = None
    overdue: bool | None = None
    problem: bool | None = None
    since: datetime | None = None
    until: datetime | None = None
    q: str | None = None


SORTS = {
    "created": Case.created_at,
    "deadline": Case.deadline_at,
    "updated": Case.updated_at,
    "code": Case.code,
}


def filtered(principal: Principal, f: Filters) -> Select[Case]:
    query = select(Case).where(visible(principal), Case.code.is_not(None))
    if f.state:
        query = query.where(Case.state.in_(f.state))
    if f.unit:
        query = query.where(
            Case.current_unit_id == select(Unit.id).where(Unit.code == f.unit).scalar_subquery()
        )
    if f.level:
        query = query.where(Case.level == f.level)
    if f.region:
        query = query.where(within(Case.region_code, f.region))
    if f.category:
        ids = select(Category.id).where(Category.code.startswith(f.category, autoescape=True))
        query = query.where(Case.category_id.in_(ids))
    if f.source:
        query = query.where(Case.source == f.source)
    if f.overdue is not None:
        query = query.where(Case.overdue.is_(f.overdue))
    if f.problem is not None:
        query = query.where(Case.is_problem.is_(f.problem))
    if f.since:
        query = query.where(Case.created_at >= f.since)
    if f.until:
        query = query.where(Case.created_at < f.until)
    if f.q:
        pattern = f"%{f.q.strip()}%"
        query = query.where(
            Case.description.ilike(pattern)
            | Case.address.ilike(pattern)
            | (Case.code == f.q.strip())
        )
    return query


def page(
    session: Session,
    principal: Principal,
    f: Filters,
    *,
    sort: str = "created",
    desc: bool = True,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Case], int]:
    query = filtered(principal, f)
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    column = SORTS[sort]
    order = column.desc() if desc else column.asc()
    rows = session.scalars(query.order_by(order, Case.id.desc()).limit(limit).offset(offset)).all()
    return list(rows), total


def counts_by_state(session: Session, principal: Principal, f: Filters) -> dict[str, int]:
    f = Filters(**{**f.__dict__, "state": None})
    sub = filtered(principal, f).order_by(None).subquery()
    return {
        state: n
        for state, n in session.execute(select(sub.c.state, func.count()).group_by(sub.c.state))
    }


def categories_and_units(
    session: Session, cases: list[Case]
) -> tuple[dict[int, Category], dict[int, Unit]]:
    """The categories and current units of a page of cases, in two queries."""
    cats = {
        c.id: c
        for c in session.scalars(
            select(Category).where(Category.id.in_({c.category_id for c in cases}))
        )
    }
    units = {
        u.id: u
        for u in session.scalars(
            select(Unit).where(Unit.id.in_({c.current_unit_id for c in cases}))
        )
    }
    return cats, units


def timeline(session: Session, case: Case) -> tuple[list[CaseEvent], dict[int, str]]:
    """A case's events in order, and the codes of the units they concern."""
    events = list(
        session.scalars(
            select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id)
        )
    )
    unit_ids = {e.unit_id for e in events if e.unit_id}
    codes = {
        i: c for i, c in session.execute(select(Unit.id, Unit.code).where(Unit.id.in_(unit_ids)))
    }
    return events, codes


def master_code(session: Session, case: Case) -> str | None:
    if case.master_id is None:
        return None
    return session.scalar(select(Case.code).where(Case.id == case.master_id))
