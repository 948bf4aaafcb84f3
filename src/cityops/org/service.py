"""Units, people and who is on duty for a grid."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import case, select
from sqlalchemy.orm import Session, selectinload

from cityops.errors import InvalidInput, NotFound
from cityops.geo import service as geo
from cityops.geo.codes import within
from cityops.geo.models import Level, Region
from cityops.org.models import DutyShift, Person, PersonRole, Unit, UnitKind
from cityops.org.roles import Role


def get_unit(session: Session, code: str) -> Unit:
    unit = session.scalar(select(Unit).where(Unit.code == code))
    if unit is None:
        raise NotFound(f"单位 {code} 不存在 / unit {code} not found", field="code")
    return unit


def list_units(
    session: Session, *, kind: UnitKind | None = None, region: str | None = None
) -> Sequence[tuple[Unit, str]]:
    """Units with the code of the region they answer for."""
    query = select(Unit, Region.code).join(Region, Unit.region_id == Region.id)
    if kind is not None:
        query = query.where(Unit.kind == kind.value)
    if region is not None:
        query = query.where(within(Region.code, region))
    rows = session.execute(query.order_by(Unit.kind, Unit.code)).all()
    return [(u, c) for u, c in rows]


def add_person(
    session: Session,
    *,
    code: str,
    name: str,
    unit: Unit | None,
    region: Region,
    roles: Sequence[Role],
    mobile: str | None = None,
    title: str = "",
) -> Person:
    if not roles:
        raise InvalidInput("a person needs at least one role", field="roles")
    person = Person(code=code, name=name, mobile=mobile, unit=unit, region=region, title=title)
    person.roles = [PersonRole(role=Role(r).value) for r in sorted(set(roles))]
    session.add(person)
    return person


def add_shift(
    session: Session,
    *,
    grid: Region,
    person: Person,
    starts_at: datetime,
    ends_at: datetime | None = None,
    note: str = "",
) -> DutyShift:
    if grid.level != Level.grid:
        raise InvalidInput(f"{grid.code} is a {grid.level}, not a grid", field="grid")
    if ends_at is not None and ends_at <= starts_at:
        raise InvalidInput("ends_at must be after starts_at", field="ends_at")
    shift = DutyShift(
        grid=grid,
        person=person,
        kind="standing" if ends_at is None else "shift",
        starts_at=starts_at,
        ends_at=ends_at,
        note=note,
    )
    session.add(shift)
    return shift


def on_duty(session: Session, grid_code: str, at: datetime) -> Person | None:
    """The person answering for a grid at a moment: a covering shift first, then the standing
    assignment; the most recently started wins within each kind."""
    grid = geo.get_region(session, grid_code)
    if grid.level != Level.grid:
        raise InvalidInput(f"{grid_code} is a {grid.level}, not a grid", field="code")
    query = (
        select(Person)
        .join(DutyShift, DutyShift.person_id == Person.id)
        .where(
            DutyShift.grid_id == grid.id,
            DutyShift.starts_at <= at,
            (DutyShift.ends_at.is_(None)) | (DutyShift.ends_at > at),
            Person.active.is_(True),
        )
        .order_by(case((DutyShift.kind == "shift", 0), else_=1), DutyShift.starts_at.desc())
        .options(selectinload(Person.roles))
        .limit(1)
    )
    return session.scalar(query)


def list_people(
    session: Session,
    *,
    scope: str,
    region: str | None = None,
    unit: str | None = None,
    role: Role | None = None,
    limit: int = 200,
    offset: int = 0,
) -> list[tuple[Person, str | None, str, list[str]]]:
    """People whose region lies inside ``scope`` (a code prefix), with unit code, region code
    and roles."""
    query = (
        select(Person, Unit.code, Region.code)
        .join(Region, Person.region_id == Region.id)
        .outerjoin(Unit, Person.unit_id == Unit.id)
        .where(within(Region.code, scope), Person.active.is_(True))
    )
    if region:
        query = query.where(within(Region.code, region))
    if unit:
        query = query.where(Unit.code == unit)
    if role:
        query = query.where(Person.roles.any(PersonRole.role == role.value))
    query = (
        query.order_by(Person.code).limit(limit).offset(offset).options(selectinload(Person.roles))
    )
    return [
        (p, unit_code, region_code, [r.role for r in p.roles])
        for p, unit_code, region_code in session.execute(query).all()
    ]
