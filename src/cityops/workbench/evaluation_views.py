"""The evaluation report in the workbench (``/workbench/evaluation``): a period and a grouping,
the ranked table, and the same figures exported as CSV or Excel by the evaluation API."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from cityops.auth.permissions import Permission as P
from cityops.deps import DbSession
from cityops.events import evaluation
from cityops.events.evaluation import COUNTS, RATES
from cityops.events.evaluation_api import COUNT_LABELS
from cityops.web.i18n import pick_language
from cityops.web.views import MaybePrincipal
from cityops.workbench import shell

router = APIRouter(include_in_schema=False)
GROUPS = ("unit", "town", "village", "role", "person")
MAX_DAYS = 370


@router.get("/workbench/evaluation")
def evaluation_page(
    request: Request,
    principal: MaybePrincipal,
    session: DbSession,
    since: date | None = None,
    until: date | None = None,
    group: Annotated[str, Query(pattern="^(unit|town|village|role|person)$")] = "unit",
) -> Response:
    admitted = shell.admit(request, session, principal, P.evaluation_read)
    if isinstance(admitted, Response):
        return admitted
    principal = admitted
    lang = pick_language(request)
    zone = ZoneInfo(request.app.state.settings.timezone)
    today = datetime.now(zone).date()
    first = since or today.replace(day=1)
    last = until or (first.replace(day=1) + timedelta(days=32)).replace(day=1)
    error = None
    if last <= first or (last - first).days > MAX_DAYS:
        error = shell.Problem(
            422,
            "结束日期须晚于开始日期，区间最长一年"
            if lang == "zh"
            else "The end must be after the start, at most a year later",
            "",
            "until",
        )
        last = (first.replace(day=1) + timedelta(days=32)).replace(day=1)
    start = datetime.combine(first, time(), zone)
    end = datetime.combine(last, time(), zone)
    rows = evaluation.evaluate(
        session,
        start,
        end,
        group=group,
        scope=principal.region_code,
        weights=request.app.state.settings.evaluation_weights,
    )
    export = urlencode({"since": start.isoformat(), "until": end.isoformat(), "group": group})
    return shell.page(
        request,
        session,
        principal,
        "wb/evaluation.html",
        active="evaluation",
        status_code=error.status if error else 200,
        error=error,
        rows=rows,
        group=group,
        groups=GROUPS,
        count_keys=COUNTS,
        count_labels=COUNT_LABELS,
        rate_labels=[(k, v[2] if lang == "zh" else k.replace("_", " ")) for k, v in RATES.items()],
        since_value=first.isoformat(),
        until_value=last.isoformat(),
        since_label=first.isoformat(),
        until_label=(last - timedelta(days=1)).isoformat(),
        export_query=export,
    )
