"""The warning workflow: proposed (analytics or a person) → confirmed by a commander → issued
as CAP 1.2 → updated → lifted; or rejected. Each step is on the warning's history, the audit
log (the model is audited) and the live feed.

Issuing publishes a CAP Alert, tells the responsible people and every household in the zone
(outbox: in-app and SMS), and for orange and red opens the evacuation. An update publishes a
CAP Update referencing every earlier message; lifting publishes a CAP Cancel and closes the
evacuation with its record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from cityops.auth.principal import Principal, Who
from cityops.errors import CityOpsError, Conflict, Forbidden, NotFound
from cityops.live import service as live
from cityops.notify.models import Message
from cityops.org.models import Person
from cityops.warning import cap, evacuation
from cityops.warning import service as registry
from cityops.warning.models import (
    HAZARD_ZH,
    LEVEL_RANK,
    LEVEL_ZH,
    OPEN_STATES,
    CapMessage,
    EvacuationEntry,
    Household,
    RiskPoint,
    Warning,
    WarningEvent,
    ZoneHousehold,
)

EVACUATE_AT = ("orange", "red")


class CapInvalid(CityOpsError):
    """Our own document failed the schema: a defect, reported instead of publishing it."""

    status_code = 500
    code = "cap_invalid"


ANALYTICS = Who("system", "预警模型 / analytics")


@dataclass(frozen=True)
class Publishing:
    """What CAP documents need from the settings."""

    sender: str = "cityops@kaizhou.gov.cn"
    sender_name: str = "开州区城市运行和治理中心"
    public_url: str = "http://127.0.0.1:8000"
    district_code: str = "500154"
    expiry_h: int = 24

    @classmethod
    def from_settings(cls, settings: Any) -> Publishing:
        return cls(
            sender=settings.cap_sender,
            sender_name=settings.cap_sender_name,
            public_url=settings.public_url.rstrip("/"),
            district_code=settings.district_code,
            expiry_h=settings.warning_expiry_h,
        )


def get(session: Session, code: str) -> Warning:
    warning = session.scalar(select(Warning).where(Warning.code == code))
    if warning is None:
        raise NotFound(f"预警 {code} 不存在 / no such warning")
    return warning


def open_warning(session: Session, point_id: int) -> Warning | None:
    return session.scalar(
        select(Warning).where(Warning.risk_point_id == point_id, Warning.state.in_(OPEN_STATES))
    )


def _log(
    session: Session,
    warning: Warning,
    action: str,
    who: Who,
    now: datetime,
    note: str = "",
    data: dict[str, Any] | None = None,
) -> None:
    session.add(
        WarningEvent(
            warning_id=warning.id,
            at=now,
            action=action,
            who_kind=who.kind,
            who_name=who.name,
            level=warning.level,
            note=note[:500],
            data=data or {},
        )
    )
    warning.updated_at = now
    # Each step is flushed on its own, so the audit log shows every state the warning passed
    # through even when several steps run in one transaction (a script, the demo story).
    session.flush()
    live.publish(
        session,
        "warnings",
        action,
        warning.code,
        at=now,
        region_code=warning.region_code,
        payload={"level": warning.level, "state": warning.state, "note": note[:200]},
    )


def _suggested(session: Session, warning: Warning, level: str) -> bool:
    """Whether the warning's latest step already suggests this level: analytics re-run on
    every new reading and must not repeat themselves on the history."""
    last = session.scalar(
        select(WarningEvent)
        .where(WarningEvent.warning_id == warning.id)
        .order_by(WarningEvent.id.desc())
        .limit(1)
    )
    return (
        last is not None
        and last.action == "upgrade_suggested"
        and last.data.get("suggested") == level
    )


def _next_code(session: Session, now: datetime) -> str:
    year = now.year
    prefix = f"W-{year}-"
    last = session.scalar(select(func.max(Warning.code)).where(Warning.code.like(f"{prefix}%")))
    n = int(last.rsplit("-", 1)[1]) + 1 if last else 1
    return f"{prefix}{n:04d}"


def _require_scope(principal: Principal | None, warning: Warning) -> None:
    if principal is not None and not principal.sees(warning.region_code):
        raise Forbidden("该预警不在您的辖区 / this warning is outside your area")


def propose(
    session: Session,
    point: RiskPoint,
    level: str,
    reasons: list[str],
    who: Who,
    now: datetime,
    *,
    reasons_en: list[str] | None = None,
    source: str = "person",
    evidence: dict[str, Any] | None = None,
) -> Warning:
    """A new proposal, or — when the point already has an open warning — a note on it (and a
    raised level while it is still only proposed or confirmed)."""
    current = open_warning(session, point.id)
    if current is not None:
        if LEVEL_RANK[level] > LEVEL_RANK[current.level]:
            if current.state in ("proposed", "confirmed"):
                _set_level(current, point, level)
                current.reasons, current.reasons_en = reasons, reasons_en or []
                _log(session, current, "raised", who, now, "；".join(reasons))
            elif not _suggested(session, current, level):
                _log(
                    session,
                    current,
                    "upgrade_suggested",
                    who,
                    now,
                    "；".join(reasons),
                    {"suggested": level},
                )
        elif source == "person":
            _log(session, current, "seconded", who, now, "；".join(reasons), {"level": level})
        return current
    warning = Warning(
        code=_next_code(session, now),
        risk_point_id=point.id,
        region_code=point.region_code,
        level=level,
        state="proposed",
        source=source,
        reasons=reasons,
        reasons_en=reasons_en or [],
        headline=_headline(point, level),
        instruction=_instruction(point, level),
        proposed_by=who.name,
        proposed_at=now,
        updated_at=now,
    )
    session.add(warning)
    session.flush()
    _log(session, warning, "proposed", who, now, "；".join(reasons), {"evidence": evidence or {}})
    _tell_people(
        session,
        warning,
        point,
        "warning_proposed",
        f"【预警待确认】{point.name}{LEVEL_ZH[level]}预警建议：{'；'.join(reasons)[:120]}",
        now,
        sms=False,
    )
    return warning


def confirm(
    session: Session,
    warning: Warning,
    who: Who,
    now: datetime,
    *,
    level: str | None = None,
    note: str = "",
    principal: Principal | None = None,
) -> Warning:
    _require_scope(principal, warning)
    if warning.state != "proposed":
        raise Conflict(
            f"只有待确认的预警可以确认（当前：{warning.state}）/ only a proposed "
            "warning can be confirmed",
            field="state",
        )
    if level and level != warning.level:
        _set_level(warning, _point(session, warning), level)
    warning.state, warning.confirmed_by, warning.confirmed_at = "confirmed", who.name, now
    _log(session, warning, "confirmed", who, now, note)
    return warning


def reject(
    session: Session,
    warning: Warning,
    who: Who,
    now: datetime,
    note: str,
    principal: Principal | None = None,
) -> Warning:
    _require_scope(principal, warning)
    if warning.state not in ("proposed", "confirmed"):
        raise Conflict("已发布的预警只能解除 / an issued warning can only be lifted", field="state")
    warning.state, warning.closed_by, warning.closed_at, warning.close_note = (
        "rejected",
        who.name,
        now,
        note,
    )
    _log(session, warning, "rejected", who, now, note)
    return warning


def issue(
    session: Session,
    warning: Warning,
    who: Who,
    now: datetime,
    publishing: Publishing,
    *,
    note: str = "",
    principal: Principal | None = None,
) -> Warning:
    _require_scope(principal, warning)
    if warning.state != "confirmed":
        raise Conflict(
            "预警须先经指挥长确认再发布 / a commander must confirm before issuing", field="state"
        )
    warning.state, warning.issued_at = "issued", now
    return _broadcast(
        session, warning, _point(session, warning), "Alert", who, now, publishing, note
    )


def update(
    session: Session,
    warning: Warning,
    who: Who,
    now: datetime,
    publishing: Publishing,
    *,
    note: str,
    level: str | None = None,
    principal: Principal | None = None,
) -> Warning:
    _require_scope(principal, warning)
    if warning.state != "issued":
        raise Conflict(
            "只有已发布的预警可以更新 / only an issued warning can be updated", field="state"
        )
    point = _point(session, warning)
    if level and level != warning.level:
        _set_level(warning, point, level)
    return _broadcast(session, warning, point, "Update", who, now, publishing, note)


def _point(session: Session, warning: Warning) -> RiskPoint:
    point = session.get(RiskPoint, warning.risk_point_id)
    assert point is not None
    return point


def _set_level(warning: Warning, point: RiskPoint, level: str) -> None:
    """A new level rewrites the words people read with it."""
    warning.level = level
    warning.headline = _headline(point, level)
    warning.instruction = _instruction(point, level)


def _broadcast(
    session: Session,
    warning: Warning,
    point: RiskPoint,
    msg_type: str,
    who: Who,
    now: datetime,
    publishing: Publishing,
    note: str,
) -> Warning:
    """Issue or update: a CAP message valid for another term, everyone told, and for orange
    and red the evacuation opened (once) with the grid workers' tasks."""
    warning.expires_at = now + timedelta(hours=publishing.expiry_h)
    # An Alert's note is the commander's remark for the history; an Update's is news for all.
    news = note if msg_type == "Update" else ""
    message = _publish_cap(session, warning, point, msg_type, now, publishing, note=news)
    action = "issued" if msg_type == "Alert" else "updated"
    _log(session, warning, action, who, now, note, {"cap": message.identifier})
    _notify_issue(session, warning, point, message, now)
    if warning.level in EVACUATE_AT:
        evacuation.open_for(session, warning, point, who.name, now)
        notify_tasks(session, warning, now)
    return warning


def lift(
    session: Session,
    warning: Warning,
    who: Who,
    now: datetime,
    publishing: Publishing,
    *,
    note: str,
    principal: Principal | None = None,
) -> Warning:
    _require_scope(principal, warning)
    if warning.state != "issued":
        raise Conflict(
            "只有已发布的预警可以解除 / only an issued warning can be lifted", field="state"
        )
    point = _point(session, warning)
    warning.state, warning.closed_by, warning.closed_at, warning.close_note = (
        "lifted",
        who.name,
        now,
        note,
    )
    message = _publish_cap(session, warning, point, "Cancel", now, publishing, note=note)
    _log(session, warning, "lifted", who, now, note, {"cap": message.identifier})
    evac = evacuation.of_warning(session, warning)
    if evac is not None:
        evacuation.close(session, evac, who.name, now)
    _tell_households(
        session,
        warning,
        point,
        message,
        f"【预警解除】{_place(point)}预警已解除。{note[:60]}请听从村组通知有序返回。",
        now,
    )
    return warning


# --- CAP ------------------------------------------------------------------------------------


def _place(point: RiskPoint) -> str:
    """The point's name with its hazard: 老沟湾 → 老沟湾滑坡, but 老沟湾滑坡 stays as it is."""
    hazard = HAZARD_ZH.get(point.hazard, "地质灾害")
    return point.name if point.name.endswith(hazard) else f"{point.name}{hazard}"


def _headline(point: RiskPoint, level: str) -> str:
    return f"{_place(point)}{LEVEL_ZH[level]}预警"


def _instruction(point: RiskPoint, level: str) -> str:
    if level in EVACUATE_AT:
        route = f"沿{point.route}" if point.route else "按村组指定路线"
        return (
            f"风险区内所有人员立即{route}撤离至安置点，老人、儿童、行动不便者由网格员协助；"
            "撤离途中远离坡脚、沟道和陡坎，未经允许不得返回。"
        )
    if level == "yellow":
        return "风险区内人员做好撤离准备，夜间留人值守，发现裂缝、异响、渗水立即报告。"
    return "加强巡查监测，注意坡体变化，发现异常立即报告。"


def _polygon_latlon(point: RiskPoint) -> list[tuple[float, float]]:
    ring = point.zone["coordinates"][0]
    return [(float(lat), float(lon)) for lon, lat in ring]


def _publish_cap(
    session: Session,
    warning: Warning,
    point: RiskPoint,
    msg_type: str,
    now: datetime,
    publishing: Publishing,
    note: str = "",
) -> CapMessage:
    earlier = list(
        session.scalars(
            select(CapMessage).where(CapMessage.warning_id == warning.id).order_by(CapMessage.id)
        )
    )
    identifier = f"cityops-{publishing.district_code}-{warning.code}-{len(earlier) + 1}"
    hazard = HAZARD_ZH.get(point.hazard, "地质灾害")
    reasons = "；".join(warning.reasons) or "监测数据异常"
    description = (
        f"{point.name}（{hazard}隐患点，{point.grade}级）监测研判：{reasons}。"
        f"风险区内 {point.households} 户 {point.persons} 人受威胁。"
    )
    if note:
        description += f"更新说明：{note}"
    if msg_type == "Cancel":
        description = f"{_place(point)}预警解除。{note}"
    document = cap.build(
        cap.CapInput(
            identifier=identifier,
            sender=publishing.sender,
            sent=now,
            msg_type=msg_type,
            references=[(publishing.sender, m.identifier, m.sent) for m in earlier],
            level=warning.level,
            hazard=point.hazard,
            event_zh=f"{hazard}{LEVEL_ZH[warning.level]}预警",
            headline_zh=warning.headline if msg_type != "Cancel" else f"{warning.headline}解除",
            description_zh=description,
            instruction_zh=(
                warning.instruction
                if msg_type != "Cancel"
                else "预警已解除，请听从村组通知有序返回。"
            ),
            event_en=f"{point.hazard.replace('_', ' ')} warning ({warning.level})",
            headline_en=f"{warning.level.capitalize()} {point.hazard.replace('_', ' ')} warning: "
            f"{point.code}",
            description_en="; ".join(warning.reasons_en) or None,
            instruction_en=(
                "Leave the zone now along the marked route to the shelter."
                if warning.level in EVACUATE_AT and msg_type != "Cancel"
                else None
            ),
            area_desc=f"{_place(point)}风险区",
            polygon=_polygon_latlon(point),
            effective=now,
            onset=now,
            expires=warning.expires_at if msg_type != "Cancel" else None,
            sender_name=publishing.sender_name,
            web=f"{publishing.public_url}/api/v1/warnings/{warning.code}",
            parameters={
                "riskPointCode": point.code,
                "households": str(point.households),
                "persons": str(point.persons),
                "hazardGrade": point.grade,
            },
            geocode={"GB/T2260": point.region_code[:6]},
        )
    )
    # A document the public and downstream systems cannot parse must never go out: when the
    # OASIS schema is installed (it is by `make install`), every document is checked first.
    if cap.schema_path() is not None:
        problems = cap.validate(document)
        if problems:
            raise CapInvalid(
                "CAP 报文未通过 OASIS CAP 1.2 校验，未发布 / the CAP document failed validation "
                "and was not published: " + "; ".join(problems[:3])
            )
    message = CapMessage(
        warning_id=warning.id,
        identifier=identifier,
        msg_type=msg_type,
        level=warning.level,
        sent=now,
        xml=document.decode("utf-8"),
    )
    session.add(message)
    session.flush()
    return message


# --- notifications ---------------------------------------------------------------------------


def _responsible(session: Session, point: RiskPoint) -> list[Person]:
    ids = [i for i in (point.town_leader_id, point.monitor_id) if i]
    return list(session.scalars(select(Person).where(Person.id.in_(ids)))) if ids else []


def _bulk(session: Session, rows: list[dict[str, Any]]) -> int:
    """Insert outbox messages whose keys are new (a retried step never sends twice)."""
    if not rows:
        return 0
    keys = [r["dedupe_key"] for r in rows]
    existing: set[str] = set()
    for i in range(0, len(keys), 1000):
        existing |= set(
            session.scalars(
                select(Message.dedupe_key).where(Message.dedupe_key.in_(keys[i : i + 1000]))
            )
        )
    new = [
        r for r in {r["dedupe_key"]: r for r in rows}.values() if r["dedupe_key"] not in existing
    ]
    if new:
        session.execute(insert(Message), new)
    return len(new)


def _message(
    key: str,
    channel: str,
    person_id: int | None,
    address: str,
    template: str,
    text: str,
    now: datetime,
    params: dict[str, Any],
) -> dict[str, Any]:
    return {
        "dedupe_key": key[:120],
        "channel": channel,
        "person_id": person_id,
        "address": address,
        "template": template,
        "params": params,
        "text": text,
        "case_id": None,
        "case_event_id": None,
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "last_error": "",
        "created_at": now,
    }


def _tell_people(
    session: Session,
    warning: Warning,
    point: RiskPoint,
    template: str,
    text: str,
    now: datetime,
    *,
    sms: bool,
    step: str = "",
) -> int:
    rows = []
    key = f"warning:{warning.code}:{template}{step}"
    for person in _responsible(session, point):
        rows.append(
            _message(
                f"{key}:inapp:{person.id}",
                "inapp",
                person.id,
                "",
                template,
                text,
                now,
                {"warning": warning.code},
            )
        )
        if sms and person.mobile:
            rows.append(
                _message(
                    f"{key}:sms:{person.mobile}",
                    "sms",
                    person.id,
                    person.mobile,
                    template,
                    text,
                    now,
                    {"warning": warning.code},
                )
            )
    return _bulk(session, rows)


def _tell_households(
    session: Session,
    warning: Warning,
    point: RiskPoint,
    message: CapMessage,
    text: str,
    now: datetime,
) -> int:
    phones = session.execute(
        select(Household.code, Household.phone)
        .join(ZoneHousehold, ZoneHousehold.household_id == Household.id)
        .where(ZoneHousehold.risk_point_id == point.id, Household.active.is_(True))
        .where(Household.phone != "")
    ).all()
    template = f"warning_{message.msg_type.lower()}"
    rows = [
        _message(
            f"{message.identifier}:sms:{phone}",
            "sms",
            None,
            phone,
            template,
            text,
            now,
            {"warning": warning.code, "household": code},
        )
        for code, phone in phones
    ]
    return _bulk(session, rows)


def _notify_issue(
    session: Session, warning: Warning, point: RiskPoint, message: CapMessage, now: datetime
) -> None:
    shelters = registry.shelters_of(session, point.id)
    where = f"，到{shelters[0].name}安置" if shelters else ""
    action = "请立即撤离" if warning.level in EVACUATE_AT else "请做好撤离准备"
    route = f"路线：{point.route[:40]}。" if point.route and warning.level in EVACUATE_AT else ""
    text = (
        f"【{LEVEL_ZH[warning.level]}预警】{_place(point)}风险加大，{action}{where}。"
        f"{route}开州区城市运行和治理中心"
    )
    _tell_households(session, warning, point, message, text, now)
    _tell_people(
        session,
        warning,
        point,
        "warning_issued",
        f"【{LEVEL_ZH[warning.level]}预警已发布】{point.name}：风险区 {point.households} 户 "
        f"{point.persons} 人，请组织转移并在掌上指挥室逐户更新状态。",
        now,
        sms=True,
        step=f":{message.identifier}",
    )


def notify_tasks(session: Session, warning: Warning, now: datetime) -> int:
    """Each grid worker with households to move gets one in-app task message."""
    evac = evacuation.of_warning(session, warning)
    if evac is None:
        return 0
    rows = []
    for worker_id, n, persons in session.execute(
        select(EvacuationEntry.worker_id, func.count(), func.sum(EvacuationEntry.persons))
        .where(EvacuationEntry.evacuation_id == evac.id, EvacuationEntry.worker_id.is_not(None))
        .group_by(EvacuationEntry.worker_id)
    ):
        text = f"【转移任务】{warning.headline}：您负责 {n} 户 {persons} 人，请逐户通知并更新状态。"
        rows.append(
            _message(
                f"evac:{evac.id}:task:{worker_id}",
                "inapp",
                worker_id,
                "",
                "evacuation_task",
                text,
                now,
                {"warning": warning.code},
            )
        )
    return _bulk(session, rows)
