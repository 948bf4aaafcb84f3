"""The workbench's queue and search page (``/workbench``) and bulk dispatch. Server-rendered;
htmx swaps just the list while filters are typed, and everything works without it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cityops.auth.permissions import Permission as P
from cityops.auth.principal import Principal
from cityops.catalog import service as catalog
from cityops.db import utcnow
from cityops.deps import DbSession
from cityops.errors import CityOpsError
from cityops.events import lifecycle, queries, routing
from cityops.events.lifecycle import Action, ActionInput
from cityops.events.models import Case, Source, State
from cityops.web.i18n import pick_language, translator
from cityops.web.views import MaybePrincipal, render
from cityops.workbench import queues, shell

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 30
SUGGESTED = "__suggested__"
CODE_PATTERN = r"^\d{15}$"


@dataclass
class Listing:
    queue: str
    rows: list[dict[str, Any]]
    total: int
    page: int
    pages: int
    filters: dict[str, Any]


def _filters(
    q: str | None,
    state: list[str] | None,
    source: str | None,
    category: str | None,
    region: str | None,
    overdue: bool,
) -> queries.Filters:
    return queries.Filters(
        q=q or None,
        state=[s for s in state or [] if s in State.__members__] or None,
        source=source if source in Source.__members__ else None,
        category=category or None,
        region=region or None,
        overdue=True if overdue else None,
    )


def _pick_queue(asked: str | None, mine: list[queues.Queue], sizes: dict[str, int]) -> str:
    keys = [q.key for q in mine]
    if asked in keys or asked == "all":
        return str(asked)
    for key in keys:
        if key != "overdue" and sizes.get(key):
            return key
    return "all"


def listing(
    session: Session, principal: Principal, queue: str, f: queries.Filters, page: int
) -> Listing:
    query = queries.filtered(principal, f)
    if queue != "all":
        query = query.where(queues.condition(queues.QUEUES[queue], principal))
        # Work waits: the nearest deadline first, undated work after, oldest first.
        order: list[Any] = [
            Case.deadline_at.is_(None),
            Case.deadline_at.asc(),
            Case.created_at.asc(),
        ]
    else:
        order = [Case.created_at.desc()]
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    pages = shell.pages_of(total, PAGE_SIZE)
    page = min(max(1, page), pages)
    cases = list(
        session.scalars(
            query.order_by(*order, Case.id.desc()).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
        )
    )
    cats, units = queries.categories_and_units(session, cases)
    names = shell.region_names(session, {c.region_code for c in cases})
    rows = [
        {
            "case": c,
            "category": cats[c.category_id].name if c.category_id in cats else "",
            "unit": units[c.current_unit_id].name if c.current_unit_id in units else "",
            "place": c.address or names.get(c.region_code, c.region_code),
            "region": names.get(c.region_code, c.region_code),
        }
        for c in cases
    ]
    return Listing(queue, rows, total, page, pages, {})


def dispatch_units(session: Session, principal: Principal) -> list[Any]:
    level = queues.level_of(principal)
    if level is None or not principal.can(P.cases_dispatch):
        return []
    return lifecycle.targets_at(session, level, principal.region_code)


@router.get("/workbench")
def workbench(
    request: Request,
    principal: MaybePrincipal,
    session: DbSession,
    queue: Annotated[str | None, Query(max_length=20)] = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
    state: Annotated[list[str] | None, Query()] = None,
    source: Annotated[str | None, Query(max_length=20)] = None,
    category: Annotated[str | None, Query(max_length=8)] = None,
    region: Annotated[str | None, Query(pattern=shell.REGION_FILTER)] = None,
    overdue: bool = False,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    admitted = shell.admit(request, session, principal, P.cases_read)
    if isinstance(admitted, Response):
        return admitted
    principal = admitted
    return _queue_page(
        request,
        session,
        principal,
        queue,
        _filters(q, state, source, category, region, overdue),
        page,
    )


def _queue_page(
    request: Request,
    session: Session,
    principal: Principal,
    queue: str | None,
    f: queries.Filters,
    page: int,
    *,
    outcome: dict[str, Any] | None = None,
) -> Response:
    mine = queues.mine(principal)
    sizes = queues.counts(session, principal, utcnow())
    chosen = _pick_queue(queue, mine, sizes)
    result = listing(session, principal, chosen, f, page)
    bulk = chosen == "dispatch" and principal.can(P.cases_dispatch)
    context: dict[str, Any] = {
        "listing": result,
        "f": f,
        "queue": chosen,
        "bulk": bulk,
        "units": dispatch_units(session, principal) if bulk else [],
        "states": [s.value for s in State],
        "sources": [s.value for s in Source],
        "categories": catalog.leaves(session),
        "outcome": outcome,
        "has_queues": bool(mine),
    }
    if request.headers.get("hx-request") and request.headers.get("hx-target") == "case-list":
        lang = pick_language(request)
        return render(
            request,
            "wb/_list.html",
            principal=principal,
            csrf_token=getattr(request.state, "csrf_token", ""),
            clock=shell.Clock(request.app.state.settings.timezone, lang, utcnow()),
            **context,
        )
    return shell.page(
        request, session, principal, "wb/queue.html", active=chosen, sizes=sizes, **context
    )


@router.post("/workbench/bulk-dispatch")
async def bulk_dispatch(
    request: Request, principal: MaybePrincipal, session: DbSession
) -> Response:
    """Dispatch the ticked cases to one unit, or each to its suggested unit. Each case stands
    alone: one that cannot go (changed meanwhile, no suggestion) is reported, the rest go."""
    admitted = shell.admit(request, session, principal, P.cases_dispatch)
    if isinstance(admitted, Response):
        return admitted
    principal = admitted
    lang = pick_language(request)
    t = translator(lang)
    if not await shell.csrf_ok(request):
        return shell.refuse(request, session, principal, t("wb_error_csrf"))
    form = await request.form()
    codes = [str(c) for c in form.getlist("codes") if str(c).isdigit() and len(str(c)) == 15]
    unit = str(form.get("unit", ""))
    note = str(form.get("note", ""))[:2000]
    done: list[str] = []
    failed: list[tuple[str, str]] = []
    if not codes:
        failed.append(("", t("wb_bulk_none")))
    now = utcnow()
    for code in codes[:200]:
        try:
            with session.begin_nested():
                case = queries.get_visible(session, principal, code)
                target = unit
                if unit == SUGGESTED:
                    target = _suggested_unit(session, case) or ""
                    if not target:
                        failed.append((code, t("wb_bulk_no_suggestion")))
                        continue
                data = ActionInput(note=note, unit=target or None)
                lifecycle.act(session, case, Action.dispatch, principal, data, now)
            done.append(code)
        except CityOpsError as exc:
            failed.append((code, shell.localized(exc.message, lang)))
    outcome = {"done": done, "failed": failed}
    return _queue_page(
        request, session, principal, "dispatch", queries.Filters(), 1, outcome=outcome
    )


def _suggested_unit(session: Session, case: Case) -> str | None:
    for s in routing.suggest(session, case):
        if s.action == "dispatch" and s.unit is not None:
            return s.unit.code
    return None
