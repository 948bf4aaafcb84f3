"""The workbench's alarm pages: the list (``/workbench/alarms``) with its filters, and each
alarm's page (``/workbench/alarms/{id}``) with its rule, device, place, history and a form for
each thing the person may do to it now (acknowledge, clear, comment, assign, shelve, unshelve).
The forms call the same service functions as the alarm API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from cityops.alarms import cases as _cases  # noqa: F401  (closing a case clears its alarm)
from cityops.alarms import queries, service
from cityops.alarms.models import Alarm, RuleState
from cityops.alarms.schemas import AssignIn, NoteIn, ShelveIn
from cityops.auth.permissions import Permission as P
from cityops.auth.principal import Principal, Who
from cityops.db import utcnow
from cityops.deps import DbSession
from cityops.org.models import Person
from cityops.telemetry import service as telemetry
from cityops.telemetry.models import Device
from cityops.web.i18n import pick_language, translator
from cityops.web.views import MaybePrincipal
from cityops.workbench import curves, shell

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 30
SEVERITIES = ("critical", "major", "minor", "warning")
STATES = ("open", "closed", "all")
# How long an alarm may be shelved, in minutes (the service allows up to 72 h).
SHELVE_MINUTES = (30, 60, 120, 240, 480, 1440, 4320)
IdPath = Annotated[int, Path(ge=1, le=2**31 - 1)]


class AlarmAction(StrEnum):
    ack = "ack"
    clear = "clear"
    comment = "comment"
    assign = "assign"
    shelve = "shelve"
    unshelve = "unshelve"


FIELD_LABEL_KEYS = {
    "note": "wb_al_f_note",
    "minutes": "wb_al_f_minutes",
    "reason": "wb_al_f_reason",
    "person_id": "wb_al_f_assignee",
}


# --- the list ---------------------------------------------------------------------------------


def _flag(value: str | None) -> bool | None:
    """A yes/no filter from a form: anything else means "either"."""
    if value in ("true", "yes", "1"):
        return True
    if value in ("false", "no", "0"):
        return False
    return None


@dataclass
class AlarmListing:
    rows: list[dict[str, Any]]
    total: int
    page: int
    pages: int


def _devices(session: Session, ids: set[int]) -> dict[int, Device]:
    if not ids:
        return {}
    return {d.id: d for d in session.scalars(select(Device).where(Device.id.in_(ids)))}


def listing(
    session: Session, principal: Principal, f: queries.Filters, page: int, now: datetime
) -> AlarmListing:
    total, found = queries.page(
        session, principal, f, now, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
    )
    pages = shell.pages_of(total, PAGE_SIZE)
    if page > pages:  # a page that no longer exists (the list shrank): the last one
        page = pages
        total, found = queries.page(
            session, principal, f, now, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
        )
    alarms = [a for a, _r, _c in found]
    names = shell.region_names(session, {a.region_code for a in alarms if a.region_code})
    devices = _devices(session, {a.device_id for a in alarms if a.device_id is not None})
    rows = [
        {
            "alarm": a,
            "rule": r,
            "case": c,
            "device": devices.get(a.device_id) if a.device_id is not None else None,
            "place": names.get(a.region_code or "", a.region_code or "–"),
            "shelved": a.shelved_until is not None and a.shelved_until > now,
        }
        for a, r, c in found
    ]
    return AlarmListing(rows, total, page, pages)


@router.get("/workbench/alarms")
def alarm_list(
    request: Request,
    principal: MaybePrincipal,
    session: DbSession,
    state: Annotated[str | None, Query(max_length=10)] = None,
    severity: Annotated[str | None, Query(max_length=10)] = None,
    acked: Annotated[str | None, Query(max_length=5)] = None,
    shelved: Annotated[str | None, Query(max_length=5)] = None,
    region: Annotated[str | None, Query(pattern=shell.REGION_FILTER)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    admitted = shell.admit(request, session, principal, P.alarms_read)
    if isinstance(admitted, Response):
        return admitted
    principal = admitted
    chosen = state if state in STATES else "open"
    f = queries.Filters(
        state=chosen,
        severity=(severity,) if severity in SEVERITIES else (),
        acked=_flag(acked),
        shelved=bool(_flag(shelved)),  # shelved alarms only when asked for
        region=region or None,
    )
    # The nav's "to acknowledge" queue is exactly the open, unacknowledged, unshelved list.
    queue = chosen == "open" and f.acked is False and not f.severity and not f.shelved
    queue = queue and not f.region
    now = utcnow()
    return shell.page(
        request,
        session,
        principal,
        "wb/alarms.html",
        active="alarms" if queue and principal.can(P.alarms_manage) else "alarm-list",
        listing=listing(session, principal, f, page, now),
        f=f,
        queue=queue,
        states=STATES,
        severities=SEVERITIES,
    )


# --- one alarm --------------------------------------------------------------------------------


def allowed_actions(
    session: Session, principal: Principal, alarm: Alarm, now: datetime
) -> list[AlarmAction]:
    """What this person may do to the alarm now, in the order the page offers it."""
    if shell.lacks(principal, P.alarms_manage):
        return []
    shelved = alarm.shelved_until is not None and alarm.shelved_until > now
    if alarm.closed_at is not None:
        return [AlarmAction.comment]
    allowed = []
    if not alarm.acked:
        allowed.append(AlarmAction.ack)
    if alarm.condition == "active":
        # A person clears only a latched alarm whose condition has gone away.
        state = session.get(RuleState, (alarm.rule_id, alarm.source))
        if state is None or not state.active:
            allowed.append(AlarmAction.clear)
    allowed += [AlarmAction.comment, AlarmAction.assign]
    allowed.append(AlarmAction.unshelve if shelved else AlarmAction.shelve)
    return allowed


def _assignees(session: Session, principal: Principal, alarm: Alarm) -> list[tuple[int, str]]:
    """Whom the alarm may be given to: the people of the person's own unit (themselves first),
    and whoever has it now."""
    people: list[tuple[int, str]] = []
    if principal.person_id is not None:
        me = session.get(Person, principal.person_id)
        if me is not None:
            people.append((me.id, me.name))
    if principal.unit_id is not None:
        people += [
            (p.id, p.name)
            for p in session.scalars(
                select(Person)
                .where(Person.unit_id == principal.unit_id, Person.active.is_(True))
                .order_by(Person.name, Person.id)
                .limit(200)
            )
            if p.id != principal.person_id
        ]
    if alarm.assignee_person_id is not None and all(
        pid != alarm.assignee_person_id for pid, _n in people
    ):
        current = session.get(Person, alarm.assignee_person_id)
        if current is not None:
            people.append((current.id, current.name))
    return people


def _duration(minutes: int, lang: str) -> str:
    if minutes < 60:
        return f"{minutes} 分钟" if lang == "zh" else f"{minutes} min"
    hours = minutes // 60
    return f"{hours} 小时" if lang == "zh" else f"{hours} h"


def alarm_context(
    session: Session, principal: Principal, alarm: Alarm, now: datetime, lang: str
) -> dict[str, Any]:
    rule = service.rule_of(session, alarm)
    events = service.history(session, alarm)
    allowed = allowed_actions(session, principal, alarm, now)
    assignee = (
        session.get(Person, alarm.assignee_person_id)
        if alarm.assignee_person_id is not None
        else None
    )
    device = session.get(Device, alarm.device_id) if alarm.device_id is not None else None
    metric = None
    if rule.metric:
        meta = telemetry.metric_of(session, device, rule.metric) if device else {}
        label = telemetry.metric_label(meta, lang, rule.metric)
        metric = {"label": label, "unit": meta.get("unit", ""), "name": rule.metric}
    return {
        "alarm": alarm,
        "rule": rule,
        "device": device,
        "metric": metric,
        "curve": curves.alarm_curve(session, alarm, rule, device, now, events),
        "reading_at": curves.raised_reading(alarm, events),
        "regions": shell.region_path(session, alarm.region_code),
        "case_code": queries.case_code(session, alarm),
        "assignee": assignee,
        "events": events,
        "comments": [e for e in events if e.action == "comment"],
        "shelved": alarm.shelved_until is not None and alarm.shelved_until > now,
        "allowed": allowed,
        "assignees": _assignees(session, principal, alarm) if AlarmAction.assign in allowed else [],
        "shelve_options": [(m, _duration(m, lang)) for m in SHELVE_MINUTES],
        "may_manage": principal.can(P.alarms_manage),
    }


def _alarm_page(
    request: Request,
    session: Session,
    principal: Principal,
    alarm: Alarm,
    *,
    error: shell.Problem | None = None,
    form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    t = translator(pick_language(request))
    done = request.query_params.get("done", "")
    notice = ""
    if done in {a.value for a in AlarmAction}:
        notice = t("wb_done").format(what=t(f"wb_al_do_{done}"))
    return shell.page(
        request,
        session,
        principal,
        "wb/alarm.html",
        active="alarm-list",
        status_code=status_code,
        error=error,
        notice=notice,
        form=form or {},
        **alarm_context(session, principal, alarm, utcnow(), pick_language(request)),
    )


@router.get("/workbench/alarms/{alarm_id}")
def alarm_page(
    alarm_id: IdPath, request: Request, principal: MaybePrincipal, session: DbSession
) -> Response:
    found = shell.subject(
        request,
        session,
        principal,
        P.alarms_read,
        lambda p: service.get(session, alarm_id, p),
        "wb_al_not_found",
    )
    if isinstance(found, Response):
        return found
    principal, alarm = found
    return _alarm_page(request, session, principal, alarm)


def _act(
    session: Session,
    principal: Principal,
    alarm: Alarm,
    action: AlarmAction,
    form: FormData,
    now: datetime,
) -> None:
    """One action, its form checked by the API's own schema."""
    match action:
        case AlarmAction.ack:
            note = shell.validated(NoteIn, {"note": shell.text(form, "note")}).note
            service.acknowledge(session, alarm, principal, now, note)
        case AlarmAction.clear:
            note = shell.validated(NoteIn, {"note": shell.text(form, "note")}).note
            service.clear(session, alarm, principal, now, note)
        case AlarmAction.comment:
            note = shell.validated(NoteIn, {"note": shell.text(form, "note")}).note
            service.comment(session, alarm, principal, now, note)
        case AlarmAction.assign:
            who = shell.text(form, "person_id")
            body = shell.validated(AssignIn, {"person_id": who or None})
            service.assign(session, alarm, principal, now, body.person_id)
        case AlarmAction.shelve:
            shelving = shell.validated(
                ShelveIn,
                {"minutes": shell.text(form, "minutes"), "reason": shell.text(form, "reason")},
            )
            service.shelve(session, alarm, principal, now, shelving.minutes, shelving.reason)
        case AlarmAction.unshelve:
            note = shell.validated(NoteIn, {"note": shell.text(form, "note")}).note
            service.unshelve(session, alarm, Who.of(principal), now, note)


@router.post("/workbench/alarms/{alarm_id}/{action}")
async def act(
    alarm_id: IdPath,
    action: AlarmAction,
    request: Request,
    principal: MaybePrincipal,
    session: DbSession,
) -> Response:
    """Take an action from its form: success goes back to the alarm (post/redirect/get); a
    refusal shows the page again with the reason, the filled form kept."""
    found = shell.subject(
        request,
        session,
        principal,
        P.alarms_read,
        lambda p: service.get(session, alarm_id, p),
        "wb_al_not_found",
        page=f"/workbench/alarms/{alarm_id}",
    )
    if isinstance(found, Response):
        return found
    principal, alarm = found
    lang = pick_language(request)
    t = translator(lang)
    refused = None
    if shell.lacks(principal, P.alarms_manage):
        refused = (t("wb_al_read_only"), t("wb_error_forbidden"))
    return await shell.submit(
        request,
        session,
        alarm,
        partial(_alarm_page, request, session, principal, alarm),
        lambda form: _act(session, principal, alarm, action, form, utcnow()),
        action=action.value,
        done=f"/workbench/alarms/{alarm_id}?done={action.value}",
        labels=shell.labels(FIELD_LABEL_KEYS, lang),
        refused=refused,
    )
