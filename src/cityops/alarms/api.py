"""HTTP: alarm rules (CRUD), the alarm list and each alarm's lifecycle actions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from cityops.alarms import cases as _cases  # noqa: F401  (closing a case clears its alarm)
from cityops.alarms import queries, rules, service
from cityops.alarms.models import Alarm, AlarmRule
from cityops.alarms.schemas import AssignIn, NoteIn, RuleIn, RulePatch, ShelveIn
from cityops.auth.deps import Require
from cityops.auth.permissions import Permission as P
from cityops.auth.principal import Principal, Who
from cityops.db import utcnow
from cityops.deps import DbSession

router = APIRouter(prefix="/api/v1", tags=["alarms"])

Reader = Annotated[Principal, Depends(Require(P.alarms_read))]
Operator = Annotated[Principal, Depends(Require(P.alarms_manage))]
RuleManager = Annotated[Principal, Depends(Require(P.rules_manage))]


# --- rules ------------------------------------------------------------------------------------


def rule_out(rule: AlarmRule) -> dict[str, Any]:
    return {f: getattr(rule, f) for f in ("code", *rules.FIELDS)} | {"updated_at": rule.updated_at}


@router.get("/alarm-rules")
def list_rules(principal: Reader, session: DbSession) -> list[dict[str, Any]]:
    return [rule_out(r) for r in rules.list_rules(session)]


@router.post("/alarm-rules", status_code=201)
def create_rule(body: RuleIn, principal: RuleManager, session: DbSession) -> dict[str, Any]:
    return rule_out(rules.create(session, body.model_dump(), utcnow()))


@router.get("/alarm-rules/{code}")
def get_rule(code: str, principal: Reader, session: DbSession) -> dict[str, Any]:
    return rule_out(rules.get(session, code))


@router.patch("/alarm-rules/{code}")
def patch_rule(
    code: str, body: RulePatch, principal: RuleManager, session: DbSession
) -> dict[str, Any]:
    rule = rules.get(session, code)
    return rule_out(rules.update(session, rule, body.model_dump(exclude_unset=True), utcnow()))


# --- alarms -----------------------------------------------------------------------------------


def alarm_out(
    alarm: Alarm, rule: AlarmRule, case_code: str | None, now: datetime
) -> dict[str, Any]:
    shelved = alarm.shelved_until is not None and alarm.shelved_until > now
    return {
        "id": alarm.id,
        "rule": rule.code,
        "rule_name": rule.name,
        "source": alarm.source,
        "site": alarm.site,
        "severity": alarm.severity,
        "condition": alarm.condition,
        "acked": alarm.acked,
        "acked_by": alarm.acked_by,
        "acked_at": alarm.acked_at,
        "count": alarm.count,
        "message": alarm.message,
        "value": alarm.value,
        "region_code": alarm.region_code,
        "lat": alarm.lat,
        "lon": alarm.lon,
        "first_seen": alarm.first_seen,
        "last_seen": alarm.last_seen,
        "cleared_at": alarm.cleared_at,
        "assignee_person_id": alarm.assignee_person_id,
        "shelved_until": alarm.shelved_until if shelved else None,
        "case": case_code,
        "closed_at": alarm.closed_at,
    }


@router.get("/alarms")
def list_alarms(
    principal: Reader,
    session: DbSession,
    state: Annotated[str, Query(pattern=r"^(open|closed|all)$")] = "open",
    severity: Annotated[list[str], Query(max_length=4)] = [],  # noqa: B006
    condition: Annotated[str | None, Query(pattern=r"^(active|cleared)$")] = None,
    acked: bool | None = None,
    shelved: bool | None = None,
    rule: str | None = None,
    region: Annotated[str | None, Query(pattern=r"^\d{6,15}$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Alarms in the caller's region, most severe and most recent first. Shelved alarms are
    left out of the open list unless ``shelved=true`` is asked for."""
    now = utcnow()
    total, rows = queries.page(
        session,
        principal,
        queries.Filters(state, severity, condition, acked, shelved, rule, region),
        now,
        limit=limit,
        offset=offset,
    )
    return {"total": total, "items": [alarm_out(a, r, c, now) for a, r, c in rows]}


def _detail(session: Session, alarm: Alarm) -> dict[str, Any]:
    rule = service.rule_of(session, alarm)
    out = alarm_out(alarm, rule, queries.case_code(session, alarm), utcnow())
    out["history"] = [
        {
            "at": e.at,
            "action": e.action,
            "actor": e.actor_name,
            "actor_kind": e.actor_kind,
            "note": e.note,
            "data": e.data,
        }
        for e in service.history(session, alarm)
    ]
    return out


@router.get("/alarms/{alarm_id}")
def get_alarm(alarm_id: int, principal: Reader, session: DbSession) -> dict[str, Any]:
    return _detail(session, service.get(session, alarm_id, principal))


@router.post("/alarms/{alarm_id}/ack")
def ack(alarm_id: int, body: NoteIn, principal: Operator, session: DbSession) -> dict[str, Any]:
    """Acknowledge: someone has seen it and is on it (the condition is separate)."""
    alarm = service.get(session, alarm_id, principal)
    service.acknowledge(session, alarm, principal, utcnow(), body.note)
    return _detail(session, alarm)


@router.post("/alarms/{alarm_id}/clear")
def clear(alarm_id: int, body: NoteIn, principal: Operator, session: DbSession) -> dict[str, Any]:
    """Clear a latched alarm whose condition has gone (409 while it is still present)."""
    alarm = service.get(session, alarm_id, principal)
    service.clear(session, alarm, principal, utcnow(), body.note)
    return _detail(session, alarm)


@router.post("/alarms/{alarm_id}/comment")
def comment(alarm_id: int, body: NoteIn, principal: Operator, session: DbSession) -> dict[str, Any]:
    alarm = service.get(session, alarm_id, principal)
    service.comment(session, alarm, principal, utcnow(), body.note)
    return _detail(session, alarm)


@router.post("/alarms/{alarm_id}/assign")
def assign(
    alarm_id: int, body: AssignIn, principal: Operator, session: DbSession
) -> dict[str, Any]:
    alarm = service.get(session, alarm_id, principal)
    service.assign(session, alarm, principal, utcnow(), body.person_id)
    return _detail(session, alarm)


@router.post("/alarms/{alarm_id}/shelve")
def shelve(
    alarm_id: int, body: ShelveIn, principal: Operator, session: DbSession
) -> dict[str, Any]:
    """Hide a nuisance alarm from the open list for a while (at most 72 h); it returns by
    itself when the shelving expires."""
    alarm = service.get(session, alarm_id, principal)
    service.shelve(session, alarm, principal, utcnow(), body.minutes, body.reason)
    return _detail(session, alarm)


@router.post("/alarms/{alarm_id}/unshelve")
def unshelve(
    alarm_id: int, body: NoteIn, principal: Operator, session: DbSession
) -> dict[str, Any]:
    alarm = service.get(session, alarm_id, principal)
    service.unshelve(session, alarm, Who.of(principal), utcnow(), body.note)
    return _detail(session, alarm)
