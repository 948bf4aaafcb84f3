"""The workbench's queues: for each kind of waiting work, the SQL condition that picks exactly the
cases the signed-in person may act on now (the same rules as :mod:`cityops.events.lifecycle`), and
every queue's size counted in one query."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, exists, false, func, select
from sqlalchemy.orm import Session

from cityops.alarms import queries as alarm_queries
from cityops.auth.permissions import Permission as P
from cityops.auth.principal import Principal
from cityops.events.lifecycle import Action
from cityops.events.models import OPEN_STATES, Case, Extension, Level, State
from cityops.events.queries import visible
from cityops.geo.codes import within
from cityops.warning.models import Warning

LEVEL_BY_CODE_LENGTH = {6: Level.district, 9: Level.town, 12: Level.village}


@dataclass(frozen=True)
class Queue:
    key: str
    action: Action | None  # the action the queue waits for (None: a watch list)
    permissions: tuple[P, ...]  # any of: who sees the queue at all


CASE_QUEUES = (
    Queue("register", Action.register, (P.cases_register,)),
    Queue("dispatch", Action.dispatch, (P.cases_dispatch,)),
    Queue("accept", Action.accept, (P.cases_handle, P.cases_dispatch)),
    Queue("handle", Action.report_done, (P.cases_handle, P.cases_dispatch)),
    Queue("verify", Action.verify_ok, (P.cases_verify,)),
    Queue("overdue", None, (P.cases_read,)),
    Queue("parked", Action.unpark, (P.cases_supervise,)),
    Queue("extensions", Action.decide_extension, (P.cases_dispatch,)),
)
QUEUES = {q.key: q for q in CASE_QUEUES}


def level_of(principal: Principal) -> Level | None:
    return LEVEL_BY_CODE_LENGTH.get(len(principal.region_code or ""))


def _at_my_level(principal: Principal) -> ColumnElement[bool]:
    level = level_of(principal)
    return Case.level == level.value if level else false()


def _my_unit(principal: Principal) -> ColumnElement[bool]:
    if principal.unit_id is None:
        return false()
    return Case.current_unit_id == principal.unit_id


def _at_or_below_my_level(principal: Principal) -> ColumnElement[bool]:
    order = [Level.village, Level.town, Level.district]
    mine = level_of(principal)
    if mine is None:
        return false()
    return Case.level.in_([lvl.value for lvl in order[: order.index(mine) + 1]])


def condition(queue: Queue, principal: Principal) -> ColumnElement[bool]:
    """Which cases wait in this queue for this person (on top of the cases they may see)."""
    match queue.key:
        case "register":
            return and_(Case.state == State.reported.value, _at_my_level(principal))
        case "dispatch":
            return and_(Case.state == State.registered.value, _at_my_level(principal))
        case "accept":
            return and_(Case.state == State.dispatched.value, _my_unit(principal))
        case "handle":
            return and_(Case.state == State.handling.value, _my_unit(principal))
        case "verify":
            others = (
                Case.current_unit_id.is_(None) | (Case.current_unit_id != principal.unit_id)
                if principal.unit_id is not None
                else Case.id.is_not(None)
            )
            return and_(Case.state == State.handled.value, others)
        case "overdue":
            return and_(Case.state.in_([s.value for s in OPEN_STATES]), Case.overdue.is_(True))
        case "parked":
            return and_(Case.state == State.parked.value, _at_or_below_my_level(principal))
        case "extensions":
            pending = exists().where(Extension.case_id == Case.id, Extension.state == "pending")
            return and_(
                Case.state.in_([State.dispatched.value, State.handling.value]),
                _at_or_below_my_level(principal),
                pending,
            )
    raise KeyError(queue.key)


def mine(principal: Principal) -> list[Queue]:
    """The queues this person works (a person with no say over cases has none)."""
    if principal.kind != "person":
        return []
    return [q for q in CASE_QUEUES if any(principal.can(p) for p in q.permissions)]


def counts(session: Session, principal: Principal, now: datetime) -> dict[str, int]:
    """Every queue's size (cases), plus alarms to acknowledge and warnings to confirm."""
    queues = mine(principal)
    sizes: dict[str, int] = {}
    if queues:
        columns = [func.count(case((condition(q, principal), 1))) for q in queues]
        row = session.execute(
            select(*columns).where(visible(principal), Case.code.is_not(None))
        ).one()
        sizes = {q.key: int(n) for q, n in zip(queues, row, strict=True)}
    if principal.can(P.alarms_manage):
        sizes["alarms"] = alarms_to_ack(session, principal, now)
    if principal.can(P.warnings_decide):
        sizes["warnings"] = warnings_to_confirm(session, principal)
    return sizes


def alarms_to_ack(session: Session, principal: Principal, now: datetime) -> int:
    f = alarm_queries.Filters(state="open", acked=False)
    return alarm_queries.count(session, principal, f, now)


def warnings_to_confirm(session: Session, principal: Principal) -> int:
    query = select(func.count(Warning.id)).where(Warning.state == "proposed")
    if principal.region_code:
        query = query.where(within(Warning.region_code, principal.region_code))
    return int(session.scalar(query) or 0)
