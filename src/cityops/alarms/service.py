"""The alarm lifecycle (ISA-18.2 style): condition (active / cleared) separate from
acknowledgement; one open alarm per (rule, source) counting its occurrences; shelving with an
expiry; assignment and comments. Every change is on the alarm's history, the live feed and the
audit log. A rule may open a case; the case then hears of clearing and acknowledgement, and
closing it clears a latched alarm."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.alarms.models import Alarm, AlarmEvent, AlarmRule, RuleState
from cityops.auth.principal import Principal, Who
from cityops.errors import Conflict, InvalidInput, NotFound
from cityops.live import service as live
from cityops.telemetry.models import Device

if TYPE_CHECKING:
    from cityops.alarms.engine import Transition

MAX_SHELVE_H = 72


RULES_ENGINE = Who("system", "规则引擎 / rules")


def log_event(
    session: Session,
    alarm: Alarm,
    action: str,
    who: Who,
    now: datetime,
    note: str = "",
    data: dict[str, Any] | None = None,
) -> None:
    session.add(
        AlarmEvent(
            alarm_id=alarm.id,
            at=now,
            action=action,
            actor_kind=who.kind,
            actor_name=who.name,
            note=note,
            data=data or {},
        )
    )
    alarm.updated_at = now
    live.publish(
        session,
        "alarm",
        action,
        alarm.id,
        at=now,
        region_code=alarm.region_code,
        payload=summary(alarm),
    )


def summary(alarm: Alarm) -> dict[str, Any]:
    return {
        "id": alarm.id,
        "source": alarm.source,
        "severity": alarm.severity,
        "condition": alarm.condition,
        "acked": alarm.acked,
        "count": alarm.count,
        "message": alarm.message,
        "lat": alarm.lat,
        "lon": alarm.lon,
        "closed": alarm.closed_at is not None,
        "case_id": alarm.case_id,
    }


def open_alarm(session: Session, rule_id: int, source: str) -> Alarm | None:
    return session.scalar(
        select(Alarm).where(
            Alarm.rule_id == rule_id, Alarm.source == source, Alarm.closed_at.is_(None)
        )
    )


def _ms(ts: int) -> datetime:
    return datetime.fromtimestamp(ts / 1000, UTC)


def apply(session: Session, transitions: Sequence[Transition], now: datetime) -> list[int]:
    changed: list[int] = []
    for t in transitions:
        alarm = (raise_ if t.raised else condition_gone)(session, t, now)
        if alarm is not None:
            changed.append(alarm.id)
    return changed


def raise_(session: Session, t: Transition, now: datetime) -> Alarm:
    rule = t.rule
    alarm = open_alarm(session, rule.id, t.source)
    at = {"value": t.value, "ts": _ms(t.ts).isoformat()}
    if alarm is None:
        lat, lon, region = _place(session, t)
        alarm = Alarm(
            rule_id=rule.id,
            source=t.source,
            device_id=t.device.id if t.device else None,
            site=t.site,
            severity=rule.severity,
            condition="active",
            acked=False,
            count=1,
            message=t.message,
            value=t.value,
            region_code=region,
            lat=lat,
            lon=lon,
            first_seen=now,
            last_seen=now,
            updated_at=now,
        )
        session.add(alarm)
        session.flush()
        log_event(session, alarm, "raised", RULES_ENGINE, now, t.message, at)
        if rule.open_case:
            from cityops.alarms import cases

            cases.open_for(session, alarm, rule, now)
        return alarm
    again = alarm.condition == "cleared"
    alarm.condition = "active"
    alarm.cleared_at = None
    alarm.count += 1
    alarm.last_seen = now
    alarm.value = t.value
    alarm.message = t.message
    log_event(session, alarm, "reraised" if again else "repeated", RULES_ENGINE, now, t.message, at)
    return alarm


def _place(session: Session, t: Transition) -> tuple[float | None, float | None, str | None]:
    if t.device is not None:
        return t.device.lat, t.device.lon, t.device.region_code
    if t.site:
        device = session.scalar(
            select(Device).where(Device.site == t.site).order_by(Device.id).limit(1)
        )
        if device is not None:
            return device.lat, device.lon, device.region_code
    return None, None, None


def condition_gone(session: Session, t: Transition, now: datetime) -> Alarm | None:
    alarm = open_alarm(session, t.rule.id, t.source)
    if alarm is None or alarm.condition == "cleared":
        return None
    data = {"value": t.value, "ts": _ms(t.ts).isoformat()}
    if t.rule.latch:
        # Latched: stays active until a person (or the closing of its case) clears it.
        log_event(session, alarm, "normal", RULES_ENGINE, now, f"数值恢复正常：{t.message}", data)
        return alarm
    mark_cleared(session, alarm, RULES_ENGINE, now, f"条件解除：{t.message}", data)
    return alarm


def mark_cleared(
    session: Session,
    alarm: Alarm,
    who: Who,
    now: datetime,
    note: str,
    data: dict[str, Any] | None = None,
) -> None:
    alarm.condition = "cleared"
    alarm.cleared_at = now
    log_event(session, alarm, "cleared", who, now, note, data)
    _to_case(session, alarm, "alarm_cleared", who, now, note or "报警已解除 / alarm cleared")
    _close_if_done(session, alarm, who, now)


def _close_if_done(session: Session, alarm: Alarm, who: Who, now: datetime) -> None:
    if alarm.condition == "cleared" and alarm.acked and alarm.closed_at is None:
        alarm.closed_at = now
        alarm.shelved_until = None
        log_event(session, alarm, "closed", who, now, "已解除且已确认 / cleared and acknowledged")


def _to_case(
    session: Session, alarm: Alarm, action: str, who: Who, now: datetime, note: str
) -> None:
    if alarm.case_id is not None:
        from cityops.alarms import cases

        cases.note_on_case(session, alarm, action, who, now, note)


# --- operator actions -------------------------------------------------------------------------


def get(session: Session, alarm_id: int, principal: Principal | None = None) -> Alarm:
    alarm = session.get(Alarm, alarm_id)
    if alarm is None or (
        principal is not None
        and principal.region_code
        and not (alarm.region_code or "").startswith(principal.region_code)
    ):
        raise NotFound(f"报警 {alarm_id} 不存在 / alarm not found", field="id")
    return alarm


def _open(alarm: Alarm) -> None:
    if alarm.closed_at is not None:
        raise Conflict("报警已关闭 / the alarm is closed")


def acknowledge(
    session: Session, alarm: Alarm, principal: Principal, now: datetime, note: str = ""
) -> Alarm:
    _open(alarm)
    if alarm.acked:
        raise Conflict("报警已确认 / already acknowledged")
    who = Who.of(principal)
    alarm.acked = True
    alarm.acked_at = now
    alarm.acked_by = principal.name[:100]
    log_event(session, alarm, "acked", who, now, note.strip()[:2000])
    _to_case(session, alarm, "alarm_acked", who, now, note.strip() or "报警已确认 / acknowledged")
    _close_if_done(session, alarm, who, now)
    return alarm


def clear(
    session: Session, alarm: Alarm, principal: Principal, now: datetime, note: str = ""
) -> Alarm:
    """A person clears a latched alarm whose condition has gone away."""
    _open(alarm)
    if alarm.condition == "cleared":
        raise Conflict("报警已解除 / already cleared")
    state = session.get(RuleState, (alarm.rule_id, alarm.source))
    if state is not None and state.active:
        raise Conflict(
            "报警条件仍然存在，不能解除 / the condition is still present; it clears by itself "
            "when the readings return to normal"
        )
    mark_cleared(
        session, alarm, Who.of(principal), now, note.strip()[:2000] or "人工解除 / cleared"
    )
    return alarm


def comment(
    session: Session, alarm: Alarm, principal: Principal, now: datetime, note: str
) -> Alarm:
    text = note.strip()
    if not 1 <= len(text) <= 2000:
        raise InvalidInput("请填写备注（1–2000 字）/ note: 1–2000 characters", field="note")
    log_event(session, alarm, "comment", Who.of(principal), now, text)
    return alarm


def assign(
    session: Session, alarm: Alarm, principal: Principal, now: datetime, person_id: int | None
) -> Alarm:
    _open(alarm)
    from cityops.org.models import Person

    name = ""
    if person_id is not None:
        person = session.get(Person, person_id)
        if person is None:
            raise InvalidInput(f"人员 {person_id} 不存在 / no such person", field="person_id")
        name = person.name
    alarm.assignee_person_id = person_id
    log_event(
        session,
        alarm,
        "assigned",
        Who.of(principal),
        now,
        f"指派给 {name}" if name else "取消指派 / unassigned",
        {"person_id": person_id},
    )
    return alarm


def shelve(
    session: Session,
    alarm: Alarm,
    principal: Principal,
    now: datetime,
    minutes: float,
    reason: str,
) -> Alarm:
    _open(alarm)
    if not 0 < minutes <= MAX_SHELVE_H * 60:
        raise InvalidInput(
            f"搁置时长须在 1 分钟到 {MAX_SHELVE_H} 小时之间 / minutes: up to {MAX_SHELVE_H} h",
            field="minutes",
        )
    if not reason.strip():
        raise InvalidInput("请填写搁置原因 / a reason is required", field="reason")
    alarm.shelved_until = now + timedelta(minutes=minutes)
    log_event(
        session,
        alarm,
        "shelved",
        Who.of(principal),
        now,
        reason.strip()[:2000],
        {"until": alarm.shelved_until.isoformat()},
    )
    return alarm


def unshelve(session: Session, alarm: Alarm, who: Who, now: datetime, note: str = "") -> Alarm:
    if alarm.shelved_until is None:
        raise Conflict("报警未被搁置 / the alarm is not shelved")
    alarm.shelved_until = None
    log_event(session, alarm, "unshelved", who, now, note or "恢复 / unshelved")
    return alarm


def history(session: Session, alarm: Alarm) -> list[AlarmEvent]:
    return list(
        session.scalars(
            select(AlarmEvent).where(AlarmEvent.alarm_id == alarm.id).order_by(AlarmEvent.id)
        )
    )


def rule_of(session: Session, alarm: Alarm) -> AlarmRule:
    rule = session.get(AlarmRule, alarm.rule_id)
    assert rule is not None
    return rule
