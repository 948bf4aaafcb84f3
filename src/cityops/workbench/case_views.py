"""The case page (``/workbench/cases/{code}``): details, map, photos, timeline and a form for
each action allowed now; and the hotline/desk form for a new case (``/workbench/new``)."""

from __future__ import annotations

import uuid
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from cityops.auth import audit
from cityops.auth.permissions import Permission as P
from cityops.auth.principal import Principal
from cityops.catalog import service as catalog
from cityops.db import utcnow
from cityops.deps import DbSession
from cityops.errors import CityOpsError, Conflict
from cityops.events import attachments, intake, lifecycle, queries, routing
from cityops.events.lifecycle import Action, ActionInput
from cityops.events.models import Case, Source
from cityops.events.schemas import ActionIn, ReportIn
from cityops.org.models import Unit
from cityops.privacy import mask_mobile, mask_name
from cityops.web.i18n import pick_language, translator
from cityops.web.views import MaybePrincipal
from cityops.workbench import shell

router = APIRouter(include_in_schema=False)
CodePath = Annotated[str, Path(pattern=r"^\d{15}$")]

# Which inputs each action's form shows (the rest of ActionInput stays at its default).
FIELDS: dict[Action, tuple[str, ...]] = {
    Action.register: ("category", "urgency", "note"),
    Action.reject: ("note!",),
    Action.merge: ("master", "note"),
    Action.dispatch: ("unit", "assist_units", "note"),
    Action.delegate: ("note",),
    Action.self_handle: ("note",),
    Action.accept: ("note",),
    Action.return_: ("note!",),
    Action.report_done: ("evidence", "note!"),
    Action.verify_ok: ("note",),
    Action.verify_fail: ("note!",),
    Action.escalate: ("note!",),
    Action.park: ("note!",),
    Action.unpark: ("note",),
    Action.void: ("note!",),
    Action.request_extension: ("hours", "note!"),
    Action.decide_extension: ("extension_id", "approve", "note"),
    Action.assist: ("assist_units", "note"),
    Action.rate: ("satisfied", "note"),
}
# The step that moves the case on, shown first and unfolded; the destructive ones last, in red.
PRIMARY = (
    Action.register,
    Action.dispatch,
    Action.accept,
    Action.report_done,
    Action.verify_ok,
    Action.decide_extension,
    Action.unpark,
    Action.rate,
)
CAUTION = frozenset({Action.reject, Action.void, Action.return_, Action.verify_fail})
FIELD_LABEL_KEYS = {
    "note": "wb_a_note",
    "category": "wb_a_category",
    "urgency": "wb_a_urgency",
    "unit": "wb_a_unit",
    "assist_units": "wb_a_assist",
    "master": "wb_a_master",
    "hours": "wb_a_hours",
    "extension_id": "wb_a_extension",
    "approve": "wb_a_approve",
    "satisfied": "wb_a_satisfied",
    "evidence": "wb_a_evidence",
    "version": "wb_case",
    "description": "wb_new_description",
    "lat": "wb_new_lat",
    "lon": "wb_new_lon",
    "region_code": "wb_new_region",
    "reporter_phone": "wb_new_phone",
    "reporter_name": "wb_new_reporter",
    "source": "wb_new_source",
}


def case_context(
    session: Session, principal: Principal, case: Case, lang: str, unmask: bool
) -> dict[str, Any]:
    allowed = lifecycle.offered(session, case, principal)
    events, _codes = queries.timeline(session, case)
    unit_names = dict(
        session.execute(
            select(Unit.id, Unit.name).where(Unit.id.in_({e.unit_id for e in events if e.unit_id}))
        ).all()
    )
    cats, units = queries.categories_and_units(session, [case])
    context: dict[str, Any] = {
        "case": case,
        "allowed": allowed,
        "fields": FIELDS,
        "caution": CAUTION,
        "category": cats.get(case.category_id) if case.category_id else None,
        "unit": units.get(case.current_unit_id) if case.current_unit_id else None,
        "events": events,
        "unit_names": unit_names,
        "regions": shell.region_path(session, case.region_code),
        "photos": attachments.for_case(session, case),
        "master": queries.master_code(session, case),
        "duplicates": [d.code for d in intake.duplicates(session, case, utcnow()) if d.code],
        "reporter_name": _reporter(case, principal, unmask),
        "reporter_phone": case.reporter_phone if unmask else mask_mobile(case.reporter_phone),
        "may_unmask": principal.can(P.pii_unmask) and not unmask,
        "labels": shell.labels(FIELD_LABEL_KEYS, lang),
    }
    names = {a.value for a in allowed}
    if names & {"register", "dispatch"}:
        context["categories"] = catalog.leaves(session)
    if names & {"dispatch", "assist"}:
        targets = lifecycle.dispatch_targets(session, case)
        suggestions = routing.suggest(session, case) if "dispatch" in names else []
        context["targets"] = targets
        context["suggested"] = next(
            (s.unit.code for s in suggestions if s.action == "dispatch" and s.unit), None
        )
        context["suggestion_reason"] = shell.localized(
            next((s.reason for s in suggestions if s.action == "dispatch" and s.unit), ""), lang
        )
    if "decide_extension" in names:
        context["extensions"] = lifecycle.pending_extensions(session, case)
    context["allowed"] = ordered(allowed)
    return context


def ordered(allowed: list[Action]) -> list[Action]:
    primary = next((a for a in PRIMARY if a in allowed), None)
    return sorted(allowed, key=lambda a: (a != primary, a in CAUTION))


def _reporter(case: Case, principal: Principal, unmask: bool) -> str | None:
    if case.reporter_name is None:
        return None
    own = principal.person_id is not None and principal.person_id == case.reporter_person_id
    return case.reporter_name if unmask or own else mask_name(case.reporter_name)


def _case_page(
    request: Request,
    session: Session,
    principal: Principal,
    case: Case,
    *,
    unmask: bool = False,
    error: shell.Problem | None = None,
    form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    lang = pick_language(request)
    t = translator(lang)
    done = request.query_params.get("done", "")
    notice = ""
    if done in {a.value for a in Action}:
        notice = t("wb_done").format(what=t(f"wb_do_{done}"))
    return shell.page(
        request,
        session,
        principal,
        "wb/case.html",
        status_code=status_code,
        error=error,
        notice=notice,
        form=form or {},
        **case_context(session, principal, case, lang, unmask),
    )


@router.get("/workbench/cases/{code}")
def case_page(
    code: CodePath,
    request: Request,
    principal: MaybePrincipal,
    session: DbSession,
    unmask: bool = False,
) -> Response:
    found = shell.subject(
        request,
        session,
        principal,
        P.cases_read,
        lambda p: queries.get_visible(session, p, code),
        "wb_not_found",
    )
    if isinstance(found, Response):
        return found
    principal, case = found
    if unmask:
        if not principal.can(P.pii_unmask):
            t = translator(pick_language(request))
            return shell.refuse(request, session, principal, t("wb_error_forbidden"))
        audit.record(session, "unmask", "cases", summary={"codes": [code]})
    return _case_page(request, session, principal, case, unmask=unmask)


LISTS = ("assist_units", "evidence")


def form_dict(form: FormData) -> dict[str, Any]:
    """A form as the API's schema takes it: empty inputs left out, repeated ones as lists."""
    data: dict[str, Any] = {}
    for key in form:
        if key in LISTS:
            data[key] = [str(v).strip() for v in form.getlist(key) if str(v).strip()]
        else:
            value = str(form.get(key, "")).strip()
            if value:
                data[key] = value
    return data


def action_input(form: FormData) -> tuple[ActionInput, int | None]:
    """The form checked by the same schema as the API (a bad value names its field)."""
    body = shell.validated(ActionIn, form_dict(form))
    return ActionInput(**body.model_dump(exclude={"version"})), body.version


@router.post("/workbench/cases/{code}/actions/{action}")
async def act(
    code: CodePath,
    action: Action,
    request: Request,
    principal: MaybePrincipal,
    session: DbSession,
) -> Response:
    """Take an action from its form. Success goes back to the case page (post/redirect/get);
    a refusal shows the page again with the reason, the filled form kept."""
    # A session that ended while the form was open: log in again, then back to the case.
    found = shell.subject(
        request,
        session,
        principal,
        P.cases_read,
        lambda p: queries.get_visible(session, p, code),
        "wb_not_found",
        page=f"/workbench/cases/{code}",
    )
    if isinstance(found, Response):
        return found
    principal, case = found
    lang = pick_language(request)

    def run(form: FormData) -> None:
        data, version = action_input(form)
        if version is not None and version != case.version:
            raise Conflict(
                "案件已被他人更新，请刷新 / the case changed since you loaded it; reload",
                field="version",
            )
        lifecycle.act(session, case, action, principal, data, utcnow())

    return await shell.submit(
        request,
        session,
        case,
        partial(_case_page, request, session, principal, case),
        run,
        action=action.value,
        done=f"/workbench/cases/{code}?done={action.value}",
        labels=shell.labels(FIELD_LABEL_KEYS, lang),
        lists=LISTS,
    )


# --- a new case from the hotline or the desk ------------------------------------------------


def _new_page(
    request: Request,
    session: Session,
    principal: Principal,
    *,
    form: dict[str, Any] | None = None,
    error: shell.Problem | None = None,
    status_code: int = 200,
) -> Response:
    sources = sorted(intake.allowed_sources(principal), key=lambda s: list(Source).index(s))
    return shell.page(
        request,
        session,
        principal,
        "wb/new.html",
        active="new",
        status_code=status_code,
        form=form or {"source": "hotline" if Source.hotline in sources else ""},
        error=error,
        sources=[s.value for s in sources],
        categories=catalog.leaves(session),
        key=uuid.uuid4().hex,
    )


@router.get("/workbench/new")
def new_case(request: Request, principal: MaybePrincipal, session: DbSession) -> Response:
    admitted = shell.admit(request, session, principal, P.cases_report)
    if isinstance(admitted, Response):
        return admitted
    principal = admitted
    return _new_page(request, session, principal)


@router.post("/workbench/new")
async def new_case_submit(
    request: Request, principal: MaybePrincipal, session: DbSession
) -> Response:
    if principal is None:
        return RedirectResponse("/login?next=/workbench/new", status_code=303)
    lang = pick_language(request)
    t = translator(lang)
    if shell.lacks(principal, P.cases_report):
        return shell.refuse(request, session, principal, t("wb_error_forbidden"))
    form = await request.form()
    kept = {k: str(v) for k, v in form.items()}
    if not await shell.csrf_ok(request):
        problem = shell.Problem(403, t("wb_error_csrf"), "")
        return _new_page(request, session, principal, form=kept, error=problem, status_code=403)
    try:
        fields = form_dict(form)
        fields.pop("csrf_token", None)
        body = shell.validated(ReportIn, {**fields, "follow": False})
        report = intake.Report(**body.model_dump())
        with session.begin_nested():
            case, _created = intake.report(session, principal, report, utcnow())
    except CityOpsError as exc:
        problem = shell.problem(exc, lang, shell.labels(FIELD_LABEL_KEYS, lang))
        return _new_page(
            request, session, principal, form=kept, error=problem, status_code=exc.status_code
        )
    return RedirectResponse(f"/workbench/cases/{case.code}", status_code=303)
