"""The workbench's warning pages: the warnings and risk points (``/workbench/warnings``), each
warning's page with its history, CAP messages, evacuation board and the workflow steps the
person may take now (``/workbench/warnings/{code}``), and each risk point's page with the
analysis charts a commander decides from (``/workbench/risk-points/{code}``). The forms call
the same workflow functions, with the same scope checks, as the warning API."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from cityops.auth.permissions import Permission as P
from cityops.auth.principal import Principal, Who
from cityops.db import utcnow
from cityops.deps import DbSession
from cityops.geo.models import Region
from cityops.org.models import Person
from cityops.warning import access, evacuation, workflow
from cityops.warning import service as registry
from cityops.warning.models import (
    AT_HOME,
    HAZARD_ZH,
    LEVEL_RANK,
    OPEN_STATES,
    CapMessage,
    Evacuation,
    EvacuationEntry,
    Household,
    RiskPoint,
    Warning,
    WarningEvent,
)
from cityops.warning.schemas import ConfirmIn, DecisionIn, LiftIn, ProposeIn, UpdateIn
from cityops.web.i18n import pick_language, translator
from cityops.web.i18n_workbench_alerts import CHART_KEYS
from cityops.web.views import MaybePrincipal
from cityops.workbench import shell

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 30
STATES = ("open", "proposed", "confirmed", "issued", "lifted", "rejected", "all")
LEVELS = ("blue", "yellow", "orange", "red")
EVAC_STATUSES = ("pending", "notified", "evacuated", "sheltered", "refused", "unreachable")
CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,39}$"
CodePath = Annotated[str, Path(pattern=CODE_PATTERN)]


class WarningAction(StrEnum):
    confirm = "confirm"
    reject = "reject"
    issue = "issue"
    update = "update"
    lift = "lift"


# The steps each state allows (the workflow checks again).
STEPS: dict[str, tuple[WarningAction, ...]] = {
    "proposed": (WarningAction.confirm, WarningAction.reject),
    "confirmed": (WarningAction.issue, WarningAction.reject),
    "issued": (WarningAction.update, WarningAction.lift),
}
CAUTION = frozenset({WarningAction.reject, WarningAction.lift})
FIELD_LABEL_KEYS = {
    "note": "wb_wa_f_note",
    "level": "wb_wa_f_level",
    "reason": "wb_wa_f_reason",
    "state": "wb_wa_state",
}


# --- the list ---------------------------------------------------------------------------------


@dataclass
class WarningListing:
    rows: list[dict[str, Any]]
    total: int
    page: int
    pages: int


def _progress(session: Session, warning_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Per warning with an evacuation: persons by where they are now (one grouped query)."""
    if not warning_ids:
        return {}
    at_home = case((EvacuationEntry.status.in_(AT_HOME), EvacuationEntry.persons), else_=0)
    evacuated = case((EvacuationEntry.status == "evacuated", EvacuationEntry.persons), else_=0)
    sheltered = case((EvacuationEntry.status == "sheltered", EvacuationEntry.persons), else_=0)
    rows = session.execute(
        select(
            Evacuation.warning_id,
            Evacuation.state,
            func.count(EvacuationEntry.id),
            func.coalesce(func.sum(EvacuationEntry.persons), 0),
            func.coalesce(func.sum(at_home), 0),
            func.coalesce(func.sum(evacuated), 0),
            func.coalesce(func.sum(sheltered), 0),
        )
        .outerjoin(EvacuationEntry, EvacuationEntry.evacuation_id == Evacuation.id)
        .where(Evacuation.warning_id.in_(warning_ids))
        .group_by(Evacuation.warning_id, Evacuation.state)
    ).all()
    out = {}
    for wid, state, households, persons, home, evac, shelter in rows:
        total = int(persons)
        safe = int(evac) + int(shelter)
        out[int(wid)] = {
            "state": state,
            "households": int(households),
            "persons": total,
            "at_home": int(home),
            "evacuated": int(evac),
            "sheltered": int(shelter),
            "safe": safe,
            "percent": round(100 * safe / total) if total else 100,
        }
    return out


def warning_listing(
    session: Session, principal: Principal, state: str, page: int
) -> WarningListing:
    conds: list[Any] = [
        or_(principal.scope(Warning.region_code), Warning.id.in_(access.evacuating_in(principal)))
    ]
    if state == "open":
        conds.append(Warning.state.in_(OPEN_STATES))
    elif state != "all":
        conds.append(Warning.state == state)
    total = session.scalar(select(func.count(Warning.id)).where(*conds)) or 0
    pages = shell.pages_of(total, PAGE_SIZE)
    page = min(max(1, page), pages)
    found = session.execute(
        select(Warning, RiskPoint)
        .join(RiskPoint, RiskPoint.id == Warning.risk_point_id)
        .where(*conds)
        .order_by(Warning.updated_at.desc(), Warning.id.desc())
        .limit(PAGE_SIZE)
        .offset((page - 1) * PAGE_SIZE)
    ).all()
    progress = _progress(session, [w.id for w, _p in found])
    rows = [
        {
            "warning": w,
            "point": p,
            "evacuation": progress.get(w.id) if w.state in OPEN_STATES else None,
            "readable_point": principal.sees(p.region_code),
        }
        for w, p in found
    ]
    return WarningListing(rows, total, page, pages)


LEVEL_ORDER = case(LEVEL_RANK, value=RiskPoint.level, else_=0)


def risk_points(session: Session, principal: Principal) -> list[dict[str, Any]]:
    """The person's risk points, the most alarming first, each with its open warning."""
    rows = session.execute(
        select(RiskPoint, Warning.code, Warning.level, Warning.state)
        .outerjoin(
            Warning,
            and_(Warning.risk_point_id == RiskPoint.id, Warning.state.in_(OPEN_STATES)),
        )
        .where(principal.scope(RiskPoint.region_code), RiskPoint.active.is_(True))
        .order_by(LEVEL_ORDER.desc(), RiskPoint.code)
        .limit(500)
    ).all()
    return [
        {
            "point": p,
            "hazard": HAZARD_ZH.get(p.hazard, p.hazard),
            "warning": {"code": code, "level": level, "state": state} if code else None,
        }
        for p, code, level, state in rows
    ]


@router.get("/workbench/warnings")
def warning_list(
    request: Request,
    principal: MaybePrincipal,
    session: DbSession,
    state: Annotated[str | None, Query(max_length=10)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    admitted = shell.admit(request, session, principal, P.warnings_read)
    if isinstance(admitted, Response):
        return admitted
    principal = admitted
    chosen = state if state in STATES else "open"
    queue = chosen == "proposed" and principal.can(P.warnings_decide)
    return shell.page(
        request,
        session,
        principal,
        "wb/warnings.html",
        active="warnings" if queue else "warning-list",
        state=chosen,
        states=STATES,
        queue=queue,
        listing=warning_listing(session, principal, chosen, page),
        points=risk_points(session, principal),
    )


# --- one warning ------------------------------------------------------------------------------


def allowed_steps(principal: Principal, warning: Warning) -> list[WarningAction]:
    """The workflow steps this person may take now: a commander (warnings:decide) whose area
    holds the warning, and the steps its state allows."""
    if shell.lacks(principal, P.warnings_decide) or not principal.sees(warning.region_code):
        return []
    return list(STEPS.get(warning.state, ()))


def _households(
    session: Session, principal: Principal, evac: Evacuation, whole: bool, status: str | None
) -> list[Any]:
    query = (
        select(EvacuationEntry, Household.code, Household.address)
        .join(Household, Household.id == EvacuationEntry.household_id)
        .where(EvacuationEntry.evacuation_id == evac.id)
    )
    if not whole:
        query = query.where(principal.scope(EvacuationEntry.grid_code))
    if status:
        query = query.where(EvacuationEntry.status == status)
    at_home_first = case((EvacuationEntry.status.in_(AT_HOME), 0), else_=1)
    return list(session.execute(query.order_by(at_home_first, Household.code).limit(1000)).all())


def warning_context(
    session: Session,
    principal: Principal,
    warning: Warning,
    whole: bool,
    lang: str,
    status: str | None,
) -> dict[str, Any]:
    point = session.get(RiskPoint, warning.risk_point_id)
    assert point is not None
    events = list(
        session.scalars(
            select(WarningEvent)
            .where(WarningEvent.warning_id == warning.id)
            .order_by(WarningEvent.id)
        )
    )
    messages = list(
        session.scalars(
            select(CapMessage).where(CapMessage.warning_id == warning.id).order_by(CapMessage.id)
        )
    )
    evac = evacuation.of_warning(session, warning)
    board = evacuation.board(session, evac) if evac is not None else None
    grids = shell.region_names(session, {g["grid"] for g in board["grids"]}) if board else {}
    reasons = warning.reasons_en if lang == "en" and warning.reasons_en else warning.reasons
    return {
        "warning": warning,
        "point": point,
        "whole": whole,
        "reasons": reasons,
        "events": events,
        "messages": messages,
        "board": board,
        "grid_names": grids,
        "households": _households(session, principal, evac, whole, status) if evac else [],
        "household_status": status,
        "statuses": EVAC_STATUSES,
        "allowed": allowed_steps(principal, warning),
        "caution": CAUTION,
        "levels": LEVELS,
        "may_decide": principal.can(P.warnings_decide),
    }


def _warning_page(
    request: Request,
    session: Session,
    principal: Principal,
    warning: Warning,
    whole: bool,
    *,
    error: shell.Problem | None = None,
    form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    lang = pick_language(request)
    t = translator(lang)
    done = request.query_params.get("done", "")
    notice = ""
    if done in {a.value for a in WarningAction} or done == "propose":
        notice = t("wb_done").format(what=t(f"wb_wa_do_{done}"))
    status = request.query_params.get("status")
    return shell.page(
        request,
        session,
        principal,
        "wb/warning.html",
        active="warning-list",
        status_code=status_code,
        error=error,
        notice=notice,
        form=form or {},
        **warning_context(
            session,
            principal,
            warning,
            whole,
            lang,
            status if status in EVAC_STATUSES else None,
        ),
    )


@router.get("/workbench/warnings/{code}")
def warning_page(
    code: CodePath, request: Request, principal: MaybePrincipal, session: DbSession
) -> Response:
    found = shell.subject(
        request,
        session,
        principal,
        P.warnings_read,
        lambda p: access.readable(session, p, code),
        "wb_wa_not_found",
    )
    if isinstance(found, Response):
        return found
    principal, (warning, whole) = found
    return _warning_page(request, session, principal, warning, whole)


def _step(
    request: Request,
    session: Session,
    principal: Principal,
    warning: Warning,
    action: WarningAction,
    form: FormData,
) -> None:
    """One workflow step, its form checked by the API's own schema."""
    who = Who.of(principal)
    now = utcnow()
    note = shell.text(form, "note")
    level = shell.text(form, "level") or None
    match action:
        case WarningAction.confirm:
            body = shell.validated(ConfirmIn, {"level": level, "note": note})
            workflow.confirm(
                session, warning, who, now, level=body.level, note=body.note, principal=principal
            )
        case WarningAction.reject:
            decided = shell.validated(DecisionIn, {"note": note})
            workflow.reject(session, warning, who, now, decided.note, principal)
        case WarningAction.issue:
            decided = shell.validated(DecisionIn, {"note": note})
            workflow.issue(
                session,
                warning,
                who,
                now,
                _publishing(request),
                note=decided.note,
                principal=principal,
            )
        case WarningAction.update:
            update = shell.validated(UpdateIn, {"level": level, "note": note})
            workflow.update(
                session,
                warning,
                who,
                now,
                _publishing(request),
                note=update.note,
                level=update.level,
                principal=principal,
            )
        case WarningAction.lift:
            lifted = shell.validated(LiftIn, {"note": note})
            workflow.lift(
                session,
                warning,
                who,
                now,
                _publishing(request),
                note=lifted.note,
                principal=principal,
            )


def _publishing(request: Request) -> workflow.Publishing:
    return workflow.Publishing.from_settings(request.app.state.settings)


@router.post("/workbench/warnings/{code}/{action}")
async def act(
    code: CodePath,
    action: WarningAction,
    request: Request,
    principal: MaybePrincipal,
    session: DbSession,
) -> Response:
    """A workflow step from its form: success goes back to the warning (post/redirect/get); a
    refusal shows the page again with the reason, the filled form kept."""
    found = shell.subject(
        request,
        session,
        principal,
        P.warnings_read,
        lambda p: access.readable(session, p, code),
        "wb_wa_not_found",
        page=f"/workbench/warnings/{code}",
    )
    if isinstance(found, Response):
        return found
    principal, (warning, whole) = found
    lang = pick_language(request)
    t = translator(lang)
    refused = None
    if shell.lacks(principal, P.warnings_decide):
        refused = (t("wb_wa_cannot_decide"), t("wb_error_forbidden"))
    return await shell.submit(
        request,
        session,
        warning,
        partial(_warning_page, request, session, principal, warning, whole),
        lambda form: _step(request, session, principal, warning, action, form),
        action=action.value,
        done=f"/workbench/warnings/{code}?done={action.value}",
        labels=shell.labels(FIELD_LABEL_KEYS, lang),
        refused=refused,
    )


# --- a risk point -----------------------------------------------------------------------------


def _person_name(session: Session, pid: int | None) -> str | None:
    if pid is None:
        return None
    person = session.get(Person, pid)
    return person.name if person else None


def point_context(
    session: Session, principal: Principal, point: RiskPoint, lang: str
) -> dict[str, Any]:
    t = translator(lang)
    shelters = registry.shelters_of(session, point.id)
    used = registry.occupancy(session, [s.id for s in shelters])
    recent = list(
        session.scalars(
            select(Warning)
            .where(Warning.risk_point_id == point.id)
            .order_by(Warning.proposed_at.desc(), Warning.id.desc())
            .limit(5)
        )
    )
    regions = [
        r
        for r in session.scalars(
            select(Region)
            .where(Region.code.in_([point.region_code[:n] for n in (9, 12, 15)]))
            .order_by(Region.code)
        )
    ]
    return {
        "point": point,
        "hazard": HAZARD_ZH.get(point.hazard, point.hazard) if lang == "zh" else point.hazard,
        "regions": regions,
        "monitors": registry.monitors_of(session, point.id),
        "shelters": [(s, used.get(s.id, 0)) for s in shelters],
        "current": workflow.open_warning(session, point.id),
        "recent": recent,
        "leader": _person_name(session, point.town_leader_id),
        "monitor_person": _person_name(session, point.monitor_id),
        "may_propose": not shell.lacks(principal, P.warnings_propose),
        "levels": LEVELS,
        "js_strings": {key: t(f"wb_wa_js_{key}") for key in CHART_KEYS},
    }


def _point_page(
    request: Request,
    session: Session,
    principal: Principal,
    point: RiskPoint,
    *,
    error: shell.Problem | None = None,
    form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    lang = pick_language(request)
    return shell.page(
        request,
        session,
        principal,
        "wb/risk_point.html",
        active="warning-list",
        status_code=status_code,
        error=error,
        form=form or {},
        timezone=request.app.state.settings.timezone,
        **point_context(session, principal, point, lang),
    )


@router.get("/workbench/risk-points/{code}")
def risk_point_page(
    code: CodePath, request: Request, principal: MaybePrincipal, session: DbSession
) -> Response:
    found = shell.subject(
        request,
        session,
        principal,
        P.warnings_read,
        lambda p: access.point(session, p, code),
        "wb_wa_point_not_found",
    )
    if isinstance(found, Response):
        return found
    principal, point = found
    return _point_page(request, session, principal, point)


@router.post("/workbench/risk-points/{code}/propose")
async def propose(
    code: CodePath, request: Request, principal: MaybePrincipal, session: DbSession
) -> Response:
    """Propose a warning for the point (or second the open one): then to the warning."""
    found = shell.subject(
        request,
        session,
        principal,
        P.warnings_read,
        lambda p: access.point(session, p, code),
        "wb_wa_point_not_found",
        page=f"/workbench/risk-points/{code}",
    )
    if isinstance(found, Response):
        return found
    principal, point = found
    lang = pick_language(request)
    t = translator(lang)
    refused = None
    if shell.lacks(principal, P.warnings_propose):
        refused = (t("wb_wa_cannot_propose"), t("wb_error_forbidden"))

    def run(form: FormData) -> str:
        body = shell.validated(
            ProposeIn,
            {
                "risk_point": point.code,
                "level": shell.text(form, "level"),
                "reason": shell.text(form, "reason"),
            },
        )
        warning = workflow.propose(
            session, point, body.level, [body.reason], Who.of(principal), utcnow()
        )
        return f"/workbench/warnings/{warning.code}?done=propose"

    return await shell.submit(
        request,
        session,
        point,
        partial(_point_page, request, session, principal, point),
        run,
        action="propose",
        done=f"/workbench/risk-points/{code}",
        labels=shell.labels(FIELD_LABEL_KEYS, lang),
        refused=refused,
    )
