"""综合评价: counts per unit or per region over a period, aggregated in SQL from the case
timeline; rates, a weighted composite score, grade and rank computed from those counts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, Integer, String, and_, case, cast, func, select
from sqlalchemy.orm import Session

from cityops.auth.models import Account
from cityops.events.models import Case, CaseEvent
from cityops.geo.codes import within
from cityops.geo.models import Region
from cityops.org.models import Person, PersonRole, Unit
from cityops.org.roles import ROLE_LABELS_ZH, Role

E = CaseEvent
COUNTS = (
    "dispatched",
    "accepted",
    "accepted_on_time",
    "handled",
    "closed",
    "closed_on_time",
    "overdue",
    "reworked",
    "returned",
    "rated",
    "satisfied",
)
RATES = {
    # name: (numerator, denominator, label)
    "closure_rate": ("closed", "dispatched", "结案率"),
    "on_time_closure_rate": ("closed_on_time", "closed", "按期结案率"),
    "rework_rate": ("reworked", "handled", "返工率"),
    "overdue_rate": ("overdue", "dispatched", "超期率"),
    "timely_accept_rate": ("accepted_on_time", "dispatched", "及时签收率"),
    "satisfaction_rate": ("satisfied", "rated", "满意率"),
    "accurate_dispatch_rate": ("returned", "dispatched", "准确派遣率"),  # 1 − returned/dispatched
}
GRADES = ((90.0, "A"), (80.0, "B"), (60.0, "C"), (0.0, "D"))
DISTRICT_CODE_LENGTH = 6


def _count(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0).cast(Integer)


def _aggregates() -> list[ColumnElement[int]]:
    positive = E.positive.is_(True)
    return [
        _count(E.action.in_(("dispatch", "self_handle"))).label("dispatched"),
        _count(E.action == "accept").label("accepted"),
        _count(and_(E.action == "accept", positive)).label("accepted_on_time"),
        _count(E.action == "report_done").label("handled"),
        _count(E.action == "verify_ok").label("closed"),
        _count(and_(E.action == "verify_ok", positive)).label("closed_on_time"),
        _count(E.action == "urge").label("overdue"),
        _count((E.action == "verify_fail") | and_(E.action == "rate", E.positive.is_(False))).label(
            "reworked"
        ),
        _count(E.action == "return").label("returned"),
        _count(E.action == "rate").label("rated"),
        _count(and_(E.action == "rate", positive)).label("satisfied"),
    ]


@dataclass
class Row:
    key: str
    name: str
    counts: dict[str, int]
    rates: dict[str, float | None] = field(default_factory=dict)
    score: float | None = None
    grade: str | None = None
    rank: int | None = None


def evaluate(
    session: Session,
    since: datetime,
    until: datetime,
    *,
    group: str = "unit",
    scope: str = "",
    weights: dict[str, float] | None = None,
) -> list[Row]:
    """``group``: "unit" (the unit each action concerned), "town" / "village" (the place), or
    "role" / "person" (who took the actions)."""
    base = select(*_aggregates()).select_from(E).where(E.at >= since, E.at < until)
    # The place is on the case: join it only when a scope narrower than the district or a
    # grouping by place needs it (a district-wide month then reads one covering index).
    if len(scope) > DISTRICT_CODE_LENGTH or group in ("town", "village"):
        base = base.join(Case, Case.id == E.case_id).where(within(Case.region_code, scope))
    rows: list[Row] = []
    if group == "unit":
        # Count by unit id first, then name the few hundred units: grouping a month of events by
        # the units' text columns would sort millions of rows.
        counted = base.add_columns(E.unit_id).where(E.unit_id.is_not(None)).group_by(E.unit_id)
        sub = counted.subquery()
        query = select(sub, Unit.code, Unit.name).join(Unit, Unit.id == sub.c.unit_id)
        for r in session.execute(query):
            rows.append(Row(r.code, r.name, {c: int(getattr(r, c)) for c in COUNTS}))
    elif group in ("role", "person"):
        actor = base.join(
            Account, and_(E.actor_kind == "person", cast(Account.id, String) == E.actor_id)
        ).join(Person, Person.id == Account.person_id)
        if group == "person":
            query = actor.add_columns(Person.code, Person.name).group_by(Person.code, Person.name)
            for r in session.execute(query):
                rows.append(Row(r.code, r.name, {c: int(getattr(r, c)) for c in COUNTS}))
        else:
            query = actor.join(PersonRole, PersonRole.person_id == Person.id)
            query = query.add_columns(PersonRole.role).group_by(PersonRole.role)
            for r in session.execute(query):
                label = ROLE_LABELS_ZH.get(Role(r.role), r.role)
                rows.append(Row(r.role, label, {c: int(getattr(r, c)) for c in COUNTS}))
    else:
        length = {"town": 9, "village": 12}[group]
        place = func.substr(Case.region_code, 1, length).label("place")
        query = (
            base.add_columns(place).where(func.length(Case.region_code) >= length).group_by(place)
        )
        names = {}
        found = list(session.execute(query))
        if found:
            codes = [r.place for r in found]
            names = dict(
                session.execute(
                    select(Region.code, Region.name).where(Region.code.in_(codes))
                ).all()
            )
        for r in found:
            rows.append(
                Row(r.place, names.get(r.place, r.place), {c: int(getattr(r, c)) for c in COUNTS})
            )
    return score(rows, weights or {})


def score(rows: Sequence[Row], weights: dict[str, float]) -> list[Row]:
    for row in rows:
        c = row.counts
        for name, (num, den, _label) in RATES.items():
            value = c[num] / c[den] if c[den] else None
            if name == "accurate_dispatch_rate" and value is not None:
                value = 1 - value
            row.rates[name] = None if value is None else round(value, 4)
        used = {k: w for k, w in weights.items() if row.rates.get(k) is not None}
        positive = sum(w for w in used.values() if w > 0)
        if positive > 0:
            raw = sum(w * (row.rates[k] or 0.0) for k, w in used.items()) / positive
            row.score = round(max(0.0, min(100.0, 100 * raw)), 1)
            row.grade = next(g for floor, g in GRADES if row.score >= floor)
    ranked = sorted((r for r in rows if r.score is not None), key=lambda r: -(r.score or 0))
    for i, row in enumerate(ranked, start=1):
        row.rank = i
    return sorted(rows, key=lambda r: (r.rank is None, r.rank or 0, r.key))
