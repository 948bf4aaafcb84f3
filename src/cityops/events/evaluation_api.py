from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from cityops.auth import audit
from cityops.auth.deps import Require
from cityops.auth.permissions import Permission as P
from cityops.auth.principal import Principal
from cityops.deps import DbSession
from cityops.errors import InvalidInput
from cityops.events import evaluation
from cityops.events.evaluation import COUNTS, RATES, Row

router = APIRouter(prefix="/api/v1", tags=["evaluation"])
Evaluator = Annotated[Principal, Depends(Require(P.evaluation_read))]
COUNT_LABELS = {
    "dispatched": "派遣数",
    "accepted": "签收数",
    "accepted_on_time": "按时签收数",
    "handled": "处置数",
    "closed": "结案数",
    "closed_on_time": "按期结案数",
    "overdue": "超期数",
    "reworked": "返工数",
    "returned": "回退数",
    "rated": "评价数",
    "satisfied": "满意数",
}


def period(
    request: Request,
    since: datetime | None = None,
    until: datetime | None = None,
    group: Annotated[str, Query(pattern="^(unit|town|village|role|person)$")] = "unit",
) -> dict[str, Any]:
    """Default: the current calendar month in the display time zone."""
    zone = ZoneInfo(request.app.state.settings.timezone)
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise InvalidInput(f"{name} 须带时区偏移 / {name} needs a UTC offset", field=name)
    if since is None:
        today = datetime.now(zone)
        since = today.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if until is None:
        until = (since.astimezone(zone).replace(day=1) + timedelta(days=32)).replace(day=1)
    if until <= since:
        raise InvalidInput("结束时间须晚于开始时间 / until must be after since", field="until")
    if until - since > timedelta(days=370):
        raise InvalidInput("统计区间最长一年 / at most one year", field="until")
    return {"since": since, "until": until, "group": group}


Period = Annotated[dict[str, Any], Depends(period)]


def _rows(
    session: DbSession, principal: Principal, request: Request, p: dict[str, Any]
) -> list[Row]:
    return evaluation.evaluate(
        session,
        p["since"],
        p["until"],
        group=p["group"],
        scope=principal.region_code,
        weights=request.app.state.settings.evaluation_weights,
    )


@router.get("/evaluation")
def get_evaluation(
    principal: Evaluator, request: Request, session: DbSession, p: Period
) -> dict[str, Any]:
    rows = _rows(session, principal, request, p)
    return {
        "since": p["since"].isoformat(),
        "until": p["until"].isoformat(),
        "group": p["group"],
        "weights": request.app.state.settings.evaluation_weights,
        "rates": {k: v[2] for k, v in RATES.items()},
        "items": [
            {
                "key": r.key,
                "name": r.name,
                "counts": r.counts,
                "rates": r.rates,
                "score": r.score,
                "grade": r.grade,
                "rank": r.rank,
            }
            for r in rows
        ],
    }


def _table(rows: list[Row]) -> tuple[list[str], list[list[Any]]]:
    header = [
        "排名",
        "编码",
        "名称",
        *[COUNT_LABELS[c] for c in COUNTS],
        *[v[2] for v in RATES.values()],
        "综合得分",
        "等级",
    ]
    body = [
        [
            r.rank,
            r.key,
            r.name,
            *[r.counts[c] for c in COUNTS],
            *[r.rates[k] for k in RATES],
            r.score,
            r.grade,
        ]
        for r in rows
    ]
    return header, body


@router.get("/evaluation.csv")
def export_csv(principal: Evaluator, request: Request, session: DbSession, p: Period) -> Response:
    header, body = _table(_rows(session, principal, request, p))
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(body)
    audit.record(session, "export", "evaluation", summary={"format": "csv", "group": p["group"]})
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="evaluation-{p["group"]}.csv"'},
    )


@router.get("/evaluation.xlsx")
def export_xlsx(principal: Evaluator, request: Request, session: DbSession, p: Period) -> Response:
    from openpyxl import Workbook

    header, body = _table(_rows(session, principal, request, p))
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "综合评价"
    sheet.append(header)
    for row in body:
        sheet.append(row)
    sheet.freeze_panes = "D2"
    out = io.BytesIO()
    book.save(out)
    audit.record(session, "export", "evaluation", summary={"format": "xlsx", "group": p["group"]})
    return Response(
        out.getvalue(),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="evaluation-{p["group"]}.xlsx"'},
    )
