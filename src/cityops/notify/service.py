"""What case actions tell whom, and the outbox that carries it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from cityops.db import transaction, utcnow
from cityops.events.models import Case, CaseEvent, Follower
from cityops.notify.channels import Channel, DeliveryError
from cityops.notify.models import Message
from cityops.org.models import Person, PersonRole, Unit

ZONE = ZoneInfo("Asia/Shanghai")
MAX_ATTEMPTS = 6
# Staff of the unit concerned are told of these actions …
UNIT_TEMPLATES = {
    "dispatch": "您单位收到新派遣案件 {code}：{summary}，请于 {deadline} 前处置。",
    "warn": "案件 {code} 即将到期，请抓紧处置。",
    "urge": "案件 {code} 已超过处置时限，请尽快处置（催办）。",
    "supervise": "案件 {code} 超期严重，已列入上级督办。",
    "auto_escalate": "案件 {code} 超期一倍，已自动提级。",
    "verify_fail": "案件 {code} 核查未通过，请返工处置。",
    "rate": "案件 {code} 已收到群众评价。",
}
# … the dispatching desk hears when a unit sends a case back …
RETURN_TEMPLATE = "案件 {code} 被退回：{note}，请重新派遣。"
# … and followers (reporters) hear of its public status changes.
FOLLOWER_TEMPLATES = {
    "register": "您反映的问题已受理（编号 {code}）。",
    "dispatch": "您反映的问题（{code}）已派单处理。",
    "verify_ok": "您反映的问题（{code}）已办结，欢迎评价。",
    "reject": "您反映的问题（{code}）未予立案：{note}",
}
SMS_ACTIONS = frozenset({"dispatch", "urge", "auto_escalate"})
# Optional channels, switched on by configure() when their settings are present.
WEBHOOK = {"enabled": False}  # units' work-app group chats hear of unit messages
EMAIL = {"enabled": False}  # people with an e-mail address get their messages by mail too


def configure(webhook: bool, email: bool = False) -> None:
    WEBHOOK["enabled"] = webhook
    EMAIL["enabled"] = email


@dataclass(frozen=True)
class Recipient:
    person_id: int | None
    phone: str | None
    email: str | None = None


def unit_staff(session: Session, unit_id: int) -> list[Recipient]:
    rows = session.execute(
        select(Person.id, Person.mobile, Person.email)
        .where(Person.unit_id == unit_id, Person.active.is_(True))
        .where(
            Person.roles.any(PersonRole.role.in_(("handler", "dispatcher", "district_commander")))
        )
    ).all()
    return [Recipient(pid, mobile, email) for pid, mobile, email in rows]


def enqueue(
    session: Session,
    *,
    key: str,
    recipients: Iterable[Recipient],
    template: str,
    text: str,
    params: Mapping[str, object],
    case_id: int | None,
    event_id: int | None,
    sms: bool,
) -> int:
    """Queue in-app messages (and SMS when asked); returns how many were new."""
    wanted: list[Message] = []
    for r in recipients:
        if r.person_id is not None:
            wanted.append(
                Message(
                    dedupe_key=f"{key}:inapp:{r.person_id}", channel="inapp", person_id=r.person_id
                )
            )
        if EMAIL["enabled"] and r.email:
            wanted.append(
                Message(
                    dedupe_key=f"{key}:email:{r.email}",
                    channel="email",
                    person_id=r.person_id,
                    address=r.email,
                )
            )
        if sms and r.phone:
            wanted.append(
                Message(
                    dedupe_key=f"{key}:sms:{r.phone}",
                    channel="sms",
                    person_id=r.person_id,
                    address=r.phone,
                )
            )
    wanted = list({m.dedupe_key: m for m in wanted}.values())  # one per recipient and channel
    if not wanted:
        return 0
    keys = [m.dedupe_key for m in wanted]
    existing = set(session.scalars(select(Message.dedupe_key).where(Message.dedupe_key.in_(keys))))
    new = [m for m in wanted if m.dedupe_key not in existing]
    for m in new:
        m.template, m.text, m.params = template, text, dict(params)
        m.case_id, m.case_event_id = case_id, event_id
        session.add(m)
    session.flush()
    return len(new)


def case_event(session: Session, case: Case, event: CaseEvent) -> None:
    """Tell the people concerned about one timeline event (called by the lifecycle)."""
    deadline = (
        case.deadline_at.astimezone(ZONE).strftime("%m-%d %H:%M") if case.deadline_at else "—"
    )
    params = {
        "code": case.code or "",
        "summary": case.description[:30],
        "deadline": deadline,
        "note": event.note[:60],
    }
    key = f"case-event:{event.id}"
    common = {"case_id": case.id, "event_id": event.id}
    sms = event.action in SMS_ACTIONS or case.urgency == "urgent"
    if event.action in UNIT_TEMPLATES and event.unit_id is not None and WEBHOOK["enabled"]:
        _to_unit_chat(session, key, event, UNIT_TEMPLATES[event.action].format(**params), params)
    if event.action in UNIT_TEMPLATES and event.unit_id is not None:
        enqueue(
            session,
            key=key,
            recipients=unit_staff(session, event.unit_id),
            template=event.action,
            text=UNIT_TEMPLATES[event.action].format(**params),
            params=params,
            sms=sms,
            **common,
        )
    if event.action == "return":
        desk = _desk(session, case)
        if desk is not None:
            enqueue(
                session,
                key=key,
                recipients=unit_staff(session, desk),
                template="return",
                text=RETURN_TEMPLATE.format(**params),
                params=params,
                sms=False,
                **common,
            )
    if event.action in FOLLOWER_TEMPLATES:
        followers = [
            Recipient(person_id, phone)
            for person_id, phone in session.execute(
                select(Follower.person_id, Follower.phone).where(Follower.case_id == case.id)
            )
        ]
        enqueue(
            session,
            key=f"{key}:follow",
            recipients=followers,
            template=f"follow_{event.action}",
            text=FOLLOWER_TEMPLATES[event.action].format(**params),
            params=params,
            sms=True,
            **common,
        )


def _to_unit_chat(
    session: Session, key: str, event: CaseEvent, text: str, params: Mapping[str, object]
) -> None:
    unit = session.get(Unit, event.unit_id)
    dedupe = f"{key}:webhook:{event.unit_id}"
    if unit is None or session.scalar(select(Message.id).where(Message.dedupe_key == dedupe)):
        return
    session.add(
        Message(
            dedupe_key=dedupe,
            channel="webhook",
            address=unit.code,
            template=event.action,
            text=text,
            params=dict(params),
            case_id=event.case_id,
            case_event_id=event.id,
        )
    )
    session.flush()


def _desk(session: Session, case: Case) -> int | None:
    """The center that dispatches at the case's level."""
    code = (
        f"DC-{case.region_code[:6]}" if case.level == "district" else f"TC-{case.region_code[:9]}"
    )
    return session.scalar(select(Unit.id).where(Unit.code == code))


# --- delivery ---------------------------------------------------------------------------------


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(30 * 2 ** (attempts - 1), 3600))


def deliver_due(
    factory: sessionmaker[Session],
    channels: Mapping[str, Channel],
    now: datetime | None = None,
    limit: int = 500,
) -> dict[str, int]:
    """Send what is due. Each message is claimed by a conditional UPDATE (pending, attempts =
    n → attempts = n + 1) so two workers never send it twice; a failure is retried with
    exponential back-off, and after MAX_ATTEMPTS it stays failed for a person to look at."""
    tally = {"sent": 0, "retry": 0, "failed": 0}
    moment = now or utcnow()
    with transaction(factory) as session:
        due = session.execute(
            select(Message.id, Message.attempts)
            .where(Message.state == "pending", Message.next_attempt_at <= moment)
            .order_by(Message.next_attempt_at)
            .limit(limit)
        ).all()
    for message_id, attempts in due:
        with transaction(factory) as session:
            claimed = session.execute(
                update(Message)
                .where(
                    Message.id == message_id,
                    Message.state == "pending",
                    Message.attempts == attempts,
                )
                .values(attempts=attempts + 1, next_attempt_at=moment + timedelta(minutes=5))
                .execution_options(synchronize_session=False)
            )
            if getattr(claimed, "rowcount", 0) != 1:
                continue
        with transaction(factory) as session:
            message = session.get(Message, message_id)
            assert message is not None
            channel = channels.get(message.channel)
            try:
                if channel is None:
                    raise DeliveryError(f"no channel {message.channel!r} configured")
                channel.send(message)
            except DeliveryError as exc:
                message.last_error = str(exc)[:300]
                if message.attempts >= MAX_ATTEMPTS:
                    message.state = "failed"
                    tally["failed"] += 1
                else:
                    message.next_attempt_at = moment + backoff(message.attempts)
                    tally["retry"] += 1
                continue
            message.state = "sent"
            message.sent_at = moment
            tally["sent"] += 1
    return tally
