from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from cityops.auth import audit
from cityops.auth.deps import Require
from cityops.auth.permissions import Permission as P
from cityops.auth.principal import Principal
from cityops.catalog import service as catalog
from cityops.catalog.models import Category
from cityops.db import utcnow
from cityops.deps import DbSession
from cityops.errors import Conflict, Forbidden, InvalidInput
from cityops.events import intake, lifecycle, queries, routing
from cityops.events.lifecycle import Action, ActionInput
from cityops.events.models import Case, RoutingRule, Source, State
from cityops.events.schemas import (
    ActionIn,
    CaseDetail,
    CaseOut,
    CasePage,
    CategoryOut,
    CategoryPatch,
    EventOut,
    ReportIn,
)
from cityops.org.models import Unit
from cityops.privacy import mask_mobile, mask_name

router = APIRouter(prefix="/api/v1", tags=["cases"])

Reporter = Annotated[Principal, Depends(Require(P.cases_report))]
Reader = Annotated[Principal, Depends(Require(P.cases_read))]
Dispatcher = Annotated[Principal, Depends(Require(P.cases_dispatch))]
CatalogAdmin = Annotated[Principal, Depends(Require(P.catalog_manage))]
CodePath = Annotated[str, Path(pattern=r"^\d{15}$", description="case code")]


def _out(session: Session, cases: list[Case], principal: Principal, unmask: bool) -> list[CaseOut]:
    cats, units = queries.categories_and_units(session, cases)
    return [
        CaseOut(
            code=c.code or "",
            state=c.state,
            level=c.level,
            source=c.source,
            category=cats[c.category_id].code if c.category_id else None,
            category_name=cats[c.category_id].name if c.category_id else None,
            description=c.description,
            address=c.address,
            lat=c.lat,
            lon=c.lon,
            region_code=c.region_code,
            urgency=c.urgency,
            unit=units[c.current_unit_id].code if c.current_unit_id else None,
            unit_name=units[c.current_unit_id].name if c.current_unit_id else None,
            deadline_at=c.deadline_at,
            overdue=c.overdue,
            is_problem=c.is_problem,
            rework_count=c.rework_count,
            units_passed=c.units_passed,
            satisfied=c.satisfied,
            reporter_name=_reporter_name(c, principal, unmask),
            reporter_phone=c.reporter_phone if unmask else mask_mobile(c.reporter_phone),
            created_at=c.created_at,
            closed_at=c.closed_at,
            version=c.version,
        )
        for c in cases
    ]


def _reporter_name(case: Case, principal: Principal, unmask: bool) -> str | None:
    if case.reporter_name is None:
        return None
    own = principal.person_id is not None and principal.person_id == case.reporter_person_id
    return case.reporter_name if unmask or own else mask_name(case.reporter_name)


def _unmask(session: Session, principal: Principal, unmask: bool, codes: list[str]) -> bool:
    if not unmask:
        return False
    if not principal.can(P.pii_unmask):
        raise Forbidden(
            "无权查看完整个人信息 / not allowed to unmask personal data", field="unmask"
        )
    audit.record(session, "unmask", "cases", summary={"codes": codes[:200]})
    return True


def _detail(session: Session, case: Case, principal: Principal, unmask: bool) -> CaseDetail:
    base = _out(session, [case], principal, unmask)[0]
    events, codes = queries.timeline(session, case)
    master = queries.master_code(session, case)
    return CaseDetail(
        **base.model_dump(),
        allowed_actions=[a.value for a in lifecycle.offered(session, case, principal)],
        timeline=[
            EventOut(
                id=e.id,
                at=e.at,
                action=e.action,
                actor_name=e.actor_name,
                actor_kind=e.actor_kind,
                unit_code=codes.get(e.unit_id) if e.unit_id else None,
                from_state=e.from_state,
                to_state=e.to_state,
                note=e.note,
                data=e.data,
            )
            for e in events
        ],
        master=master,
        duplicates=[d.code for d in intake.duplicates(session, case, utcnow()) if d.code],
    )


@router.post("/cases", response_model=CaseDetail, status_code=201)
def report_case(
    body: ReportIn, principal: Reporter, session: DbSession, response: Response
) -> CaseDetail:
    """Report a problem (any channel). A retry with the same idempotency key returns the first."""
    case, created = intake.report(session, principal, intake.Report(**body.model_dump()), utcnow())
    if not created:
        case = queries.get_visible(session, principal, case.code or "")
        response.status_code = 200
    return _detail(session, case, principal, unmask=False)


@router.get("/cases", response_model=CasePage)
def list_cases(
    principal: Reader,
    session: DbSession,
    state: Annotated[list[State] | None, Query()] = None,
    unit: Annotated[str | None, Query(max_length=40)] = None,
    level: Annotated[str | None, Query(pattern="^(village|town|district)$")] = None,
    region: Annotated[str | None, Query(pattern=r"^\d{6}(\d{3}){0,3}$")] = None,
    category: Annotated[str | None, Query(max_length=8)] = None,
    source: Source | None = None,
    overdue: bool | None = None,
    problem: bool | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
    sort: Annotated[str, Query(pattern="^(created|deadline|updated|code)$")] = "created",
    desc: bool = True,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    unmask: bool = False,
) -> CasePage:
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise InvalidInput(f"{name} 须带时区偏移 / {name} needs a UTC offset", field=name)
    f = queries.Filters(
        state=[s.value for s in state] if state else None,
        unit=unit,
        level=level,
        region=region,
        category=category,
        source=source.value if source else None,
        overdue=overdue,
        problem=problem,
        since=since,
        until=until,
        q=q,
    )
    rows, total = queries.page(
        session, principal, f, sort=sort, desc=desc, limit=limit, offset=offset
    )
    shown = _unmask(session, principal, unmask, [c.code or "" for c in rows])
    return CasePage(
        items=_out(session, rows, principal, shown),
        total=total,
        limit=limit,
        offset=offset,
        counts=queries.counts_by_state(session, principal, f),
    )


@router.get("/cases/{code}", response_model=CaseDetail)
def get_case(
    code: CodePath, principal: Reader, session: DbSession, unmask: bool = False
) -> CaseDetail:
    case = queries.get_visible(session, principal, code)
    return _detail(session, case, principal, _unmask(session, principal, unmask, [code]))


@router.post("/cases/{code}/actions/{action}", response_model=CaseDetail)
def act(
    code: CodePath, action: Action, body: ActionIn, principal: Reader, session: DbSession
) -> CaseDetail:
    """Take an action on a case; 409 (with the actions allowed now) when the state forbids it."""
    case = queries.get_visible(session, principal, code)
    if body.version is not None and body.version != case.version:
        raise Conflict(
            "案件已被他人更新，请刷新 / the case changed since you loaded it; reload",
            field="version",
        )
    data = ActionInput(**body.model_dump(exclude={"version"}))
    lifecycle.act(session, case, action, principal, data, utcnow())
    return _detail(session, case, principal, unmask=False)


@router.get("/cases/{code}/routing")
def routing_suggestions(
    code: CodePath, principal: Dispatcher, session: DbSession
) -> dict[str, object]:
    case = queries.get_visible(session, principal, code)
    return {
        "suggestions": [
            {
                "action": s.action,
                "unit": s.unit.code if s.unit else None,
                "unit_name": s.unit.name if s.unit else None,
                "reason": s.reason,
            }
            for s in routing.suggest(session, case)
        ],
        "targets": [
            {"code": u.code, "name": u.name, "kind": u.kind}
            for u in lifecycle.dispatch_targets(session, case)
        ],
    }


def category_out(c: Category, parents: dict[int, str]) -> CategoryOut:
    return CategoryOut(
        code=c.code,
        name=c.name,
        parent=parents.get(c.parent_id) if c.parent_id else None,
        kind=c.kind,
        owner=c.owner_short_name,
        clock=c.clock,
        limit_urgent_h=c.limit_urgent_h,
        limit_normal_h=c.limit_normal_h,
        keywords=c.keywords,
        active=c.active,
    )


@router.get("/categories", response_model=list[CategoryOut])
def list_categories(principal: Reporter, session: DbSession) -> list[CategoryOut]:
    rows = catalog.tree(session)
    parents = {c.id: c.code for c in rows if c.parent_id is None}
    return [category_out(c, parents) for c in rows]


@router.patch("/categories/{code}", response_model=CategoryOut)
def update_category(
    code: Annotated[str, Path(max_length=8)],
    body: CategoryPatch,
    principal: CatalogAdmin,
    session: DbSession,
) -> CategoryOut:
    category = catalog.update(session, code, **body.model_dump(exclude_none=True))
    parents = {c.id: c.code for c in catalog.tree(session) if c.parent_id is None}
    return category_out(category, parents)


class RoutingRuleIn(BaseModel):
    level: str = Field(pattern="^(district|town|village)$")
    unit_code: str = Field(min_length=1, max_length=40)
    category_code: str = Field(default="", max_length=8)
    region_code: str = Field(default="", pattern=r"^(\d{6}(\d{3}){0,3})?$")
    note: str = Field(default="", max_length=200)


def _rule_out(rule: RoutingRule, unit: Unit) -> dict[str, object]:
    return {
        "id": rule.id,
        "level": rule.level,
        "unit": unit.code,
        "unit_name": unit.name,
        "category_code": rule.category_code,
        "region_code": rule.region_code,
        "note": rule.note,
    }


@router.get("/routing-rules")
def list_routing_rules(principal: CatalogAdmin, session: DbSession) -> list[dict[str, object]]:
    return [_rule_out(r, u) for r, u in routing.list_rules(session)]


@router.post("/routing-rules", status_code=201)
def add_routing_rule(
    body: RoutingRuleIn, principal: CatalogAdmin, session: DbSession
) -> dict[str, object]:
    """Place × category → unit: guides dispatchers before the owner/territory precedence."""
    return _rule_out(*routing.add_rule(session, **body.model_dump()))


@router.delete("/routing-rules/{rule_id}", status_code=204)
def delete_routing_rule(
    rule_id: Annotated[int, Path(ge=1, le=2**31 - 1)], principal: CatalogAdmin, session: DbSession
) -> None:
    routing.delete_rule(session, rule_id)
