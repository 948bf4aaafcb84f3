"""Alarm → case: a rule may open a case in the event center (category, urgency and — when the
rule says so — registration and routing as the event center suggests). The two stay linked:
clearing or acknowledging the alarm is written on the case timeline, and closing the case
clears a latched alarm."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.alarms.models import Alarm, AlarmRule, RuleState
from cityops.auth.permissions import Permission as P
from cityops.auth.principal import Principal, Who
from cityops.events import intake, lifecycle, routing
from cityops.events.models import Case, CaseEvent


def sensor_desk(region_code: str) -> Principal:
    """The principal alarm-opened cases are reported, registered and routed by: the
    district's sensor desk, which may do nothing else."""
    return Principal(
        kind="system",
        id=0,
        name="物联感知 / sensor alarms",
        roles=frozenset(),
        permissions=frozenset({P.cases_register, P.cases_dispatch}),
        region_code=region_code[:6],
    )


def open_for(session: Session, alarm: Alarm, rule: AlarmRule, now: datetime) -> Case | None:
    from cityops.alarms.service import RULES_ENGINE, log_event

    if alarm.region_code is None:
        return None
    desk = sensor_desk(alarm.region_code)
    case, _new = intake.report(
        session,
        desk,
        intake.Report(
            description=f"【{rule.name}】{alarm.message}",
            source="sensor_alarm",
            category=rule.case_category,
            urgency=rule.case_urgency,
            lat=alarm.lat,
            lon=alarm.lon,
            region_code=None if alarm.lat is not None else alarm.region_code,
            follow=False,
            idempotency_key=f"alarm:{alarm.id}",
        ),
        now,
    )
    alarm.case_id = case.id
    log_event(
        session,
        alarm,
        "case_opened",
        RULES_ENGINE,
        now,
        f"已生成案件 {case.code}",
        {"case": case.code},
    )
    if rule.case_route and rule.case_category:
        _route(session, case, desk, now)
    return case


def _route(session: Session, case: Case, desk: Principal, now: datetime) -> None:
    lifecycle.act(
        session,
        case,
        lifecycle.Action.register,
        desk,
        lifecycle.ActionInput(note="物联感知报警自动立案"),
        now,
    )
    suggestions = routing.suggest(session, case)
    if not suggestions:
        return
    first = suggestions[0]
    note = f"自动派遣：{first.reason}"
    if first.action == "dispatch" and first.unit is not None:
        lifecycle.act(
            session,
            case,
            lifecycle.Action.dispatch,
            desk,
            lifecycle.ActionInput(note=note, unit=first.unit.code),
            now,
        )
    elif first.action == "delegate":
        lifecycle.act(
            session, case, lifecycle.Action.delegate, desk, lifecycle.ActionInput(note=note), now
        )


def note_on_case(
    session: Session, alarm: Alarm, action: str, who: object, now: datetime, note: str
) -> None:
    case = session.get(Case, alarm.case_id)
    if case is None:
        return
    session.add(
        CaseEvent(
            case_id=case.id,
            at=now,
            action=action,
            actor_kind=getattr(who, "kind", "system"),
            actor_id="",
            actor_name=getattr(who, "name", ""),
            from_state=case.state,
            to_state=case.state,
            note=note[:2000],
            data={"alarm": alarm.id},
        )
    )
    # On the live feed like every other timeline entry, so open case pages and screens hear it.
    lifecycle.publish(session, case, action, now)


def on_case_closed(session: Session, case: Case, principal: Principal, now: datetime) -> None:
    """Closing the case clears its latched alarms (their readings are back to normal)."""
    from cityops.alarms import service

    alarms = session.scalars(
        select(Alarm).where(Alarm.case_id == case.id, Alarm.closed_at.is_(None))
    ).all()
    for alarm in alarms:
        rule = service.rule_of(session, alarm)
        if rule.latch and alarm.condition == "active":
            state = session.get(RuleState, (alarm.rule_id, alarm.source))
            if state is None or not state.active:
                service.mark_cleared(
                    session,
                    alarm,
                    Who.of(principal),
                    now,
                    f"案件 {case.code} 已结案 / case closed",
                )


lifecycle.ON_CLOSE.append(on_case_closed)
