"""HTTP: risk points, households, shelters, analytics charts, the warning workflow, CAP 1.2
documents and the Atom feed (public), and the evacuation board."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import or_, select

from cityops.auth import audit
from cityops.auth.deps import Require
from cityops.auth.permissions import Permission as P
from cityops.auth.principal import Principal, Who
from cityops.db import utcnow
from cityops.deps import DbSession
from cityops.errors import Forbidden, NotFound
from cityops.privacy import mask_mobile, mask_name
from cityops.warning import access, analysis, atom, evacuation, views, workflow
from cityops.warning import service as registry
from cityops.warning.models import (
    AT_HOME,
    OPEN_STATES,
    CapMessage,
    Evacuation,
    EvacuationEntry,
    Household,
    RiskPoint,
    Warning,
)
from cityops.warning.schemas import (
    ConfirmIn,
    DecisionIn,
    HouseholdIn,
    HouseholdPatch,
    LiftIn,
    ProposeIn,
    RiskPointIn,
    RiskPointPatch,
    ShelterIn,
    StatusIn,
    UpdateIn,
)

api = APIRouter(prefix="/api/v1", tags=["warnings"])
public = APIRouter(tags=["warnings"])

Reader = Annotated[Principal, Depends(Require(P.warnings_read))]
Proposer = Annotated[Principal, Depends(Require(P.warnings_propose))]
Commander = Annotated[Principal, Depends(Require(P.warnings_decide))]
Manager = Annotated[Principal, Depends(Require(P.risk_points_manage))]
FieldWorker = Annotated[Principal, Depends(Require(P.evacuation_update))]


Unmask = Annotated[
    bool,
    Query(
        description="show household heads' names and phone numbers in full (pii:unmask; audited)"
    ),
]


def _unmasked(
    session: DbSession, principal: Principal, unmask: bool, entity: str, codes: list[str]
) -> bool:
    """Personal data in full only when asked for, by someone allowed to, and audited each time
    (as for people: ``GET /api/v1/people?unmask=true``)."""
    if not unmask:
        return False
    if not principal.can(P.pii_unmask):
        raise Forbidden(
            "无权查看完整个人信息 / not allowed to unmask personal data", field="unmask"
        )
    audit.record(session, "unmask", entity, summary={"codes": codes[:200], "count": len(codes)})
    return True


def _in_scope(principal: Principal, region_code: str) -> None:
    if not principal.sees(region_code):
        raise Forbidden("该位置不在您的辖区 / this place is outside your area", field="lat,lon")


def _publishing(request: Request) -> workflow.Publishing:
    return workflow.Publishing.from_settings(request.app.state.settings)


# --- risk points ------------------------------------------------------------------------------


@api.get("/risk-points")
def list_points(
    principal: Reader,
    session: DbSession,
    hazard: str | None = None,
    level: Annotated[str | None, Query(pattern=r"^(none|blue|yellow|orange|red)$")] = None,
) -> dict[str, Any]:
    points = registry.list_points(session, principal.region_code, hazard=hazard, level=level)
    return {"items": [views.point_summary(p) for p in points], "total": len(points)}


@api.post("/risk-points", status_code=201)
def create_point(body: RiskPointIn, principal: Manager, session: DbSession) -> dict[str, Any]:
    point = registry.create_point(session, body, utcnow())
    _in_scope(principal, point.region_code)
    return views.point_detail(session, point, unmask=False)


@api.get("/risk-points/{code}")
def get_point(
    code: str, principal: Reader, session: DbSession, unmask: Unmask = False
) -> dict[str, Any]:
    point = access.point(session, principal, code)
    show = _unmasked(session, principal, unmask, "risk_points", [point.code])
    return views.point_detail(session, point, unmask=show)


@api.patch("/risk-points/{code}")
def patch_point(
    code: str, body: RiskPointPatch, principal: Manager, session: DbSession
) -> dict[str, Any]:
    point = access.point(session, principal, code)
    changes = body.model_dump(exclude_unset=True)
    registry.update_point(session, point, changes, utcnow())
    return views.point_detail(session, point, unmask=False)


@api.get("/risk-points/{code}/households")
def point_households(
    code: str, principal: Reader, session: DbSession, unmask: Unmask = False
) -> dict[str, Any]:
    point = access.point(session, principal, code)
    households = registry.households_of(session, point.id)
    show = _unmasked(session, principal, unmask, "households", [h.code for h in households])
    items = [views.household_out(h, show) for h in households]
    return {"items": items, "households": point.households, "persons": point.persons}


@api.get("/risk-points/{code}/analysis")
def point_analysis(
    code: str,
    request: Request,
    principal: Reader,
    session: DbSession,
    max_points: Annotated[int, Query(ge=10, le=20_000)] = 2000,
) -> dict[str, Any]:
    """The pictures a commander decides from: displacement, velocity and tangent-angle curves
    with level bands, the inverse-velocity fit with the predicted failure time, the rain event
    on the intensity–duration chart with both thresholds, and the combined level with reasons."""
    point = access.point(session, principal, code)
    settings = request.app.state.settings
    evaluation = analysis.evaluate(session, point, utcnow(), settings.warning_window_days)
    return analysis.chart_view(evaluation, max_points)


@api.post("/risk-points/{code}/evaluate")
def evaluate_point(
    code: str, request: Request, principal: Proposer, session: DbSession
) -> dict[str, Any]:
    """Run the analytics now and keep the level (proposing a warning when it is high)."""
    point = access.point(session, principal, code)
    settings = request.app.state.settings
    now = utcnow()
    evaluation = analysis.evaluate(session, point, now, settings.warning_window_days)
    analysis.apply(session, evaluation, now, settings.warning_auto_propose)
    current = workflow.open_warning(session, point.id)
    return views.point_summary(point) | {
        "warning": views.warning_summary(current) if current else None
    }


# --- shelters and households ------------------------------------------------------------------


@api.get("/shelters")
def list_shelters(principal: Reader, session: DbSession) -> dict[str, Any]:
    shelters = registry.list_shelters(session, principal.region_code)
    used = registry.occupancy(session, [s.id for s in shelters])
    return {"items": [views.shelter_out(s, used.get(s.id, 0)) for s in shelters]}


@api.post("/shelters", status_code=201)
def create_shelter(body: ShelterIn, principal: Manager, session: DbSession) -> dict[str, Any]:
    shelter = registry.create_shelter(session, body, utcnow())
    _in_scope(principal, shelter.region_code)
    return views.shelter_out(shelter, 0)


@api.post("/households", status_code=201)
def create_household(body: HouseholdIn, principal: Manager, session: DbSession) -> dict[str, Any]:
    household = registry.create_household(session, body, utcnow())
    _in_scope(principal, household.region_code)
    return views.household_out(household, unmask=False)


@api.get("/households/{code}")
def get_household(
    code: str, principal: Reader, session: DbSession, unmask: Unmask = False
) -> dict[str, Any]:
    household = registry.get_household(session, code)
    if not principal.sees(household.region_code):
        raise NotFound(f"住户 {code} 不存在 / no such household")
    show = _unmasked(session, principal, unmask, "households", [household.code])
    return views.household_out(household, show)


@api.patch("/households/{code}")
def patch_household(
    code: str, body: HouseholdPatch, principal: Manager, session: DbSession
) -> dict[str, Any]:
    household = registry.get_household(session, code)
    if not principal.sees(household.region_code):
        raise NotFound(f"住户 {code} 不存在 / no such household")
    registry.update_household(session, household, body.model_dump(exclude_unset=True), utcnow())
    _in_scope(principal, household.region_code)  # not moved out of the caller's area
    return views.household_out(household, unmask=False)


# --- warnings ---------------------------------------------------------------------------------


@api.get("/warnings")
def list_warnings(
    principal: Reader,
    session: DbSession,
    state: Annotated[
        str, Query(pattern=r"^(open|proposed|confirmed|issued|lifted|rejected|all)$")
    ] = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    query = select(Warning).where(
        or_(principal.scope(Warning.region_code), Warning.id.in_(access.evacuating_in(principal)))
    )
    if state == "open":
        query = query.where(Warning.state.in_(OPEN_STATES))
    elif state != "all":
        query = query.where(Warning.state == state)
    rows = session.scalars(query.order_by(Warning.updated_at.desc()).limit(limit))
    items = []
    for w in rows:
        point = session.get(RiskPoint, w.risk_point_id)
        assert point is not None
        evac = evacuation.of_warning(session, w)
        item = views.warning_summary(w) | {"risk_point": views.point_summary(point)}
        if evac is not None:
            c = evacuation.counts(session, evac.id)
            item["evacuation"] = {
                "id": evac.id,
                "state": evac.state,
                "at_home": sum(
                    c[s]["persons"] for s in ("pending", "notified", "refused", "unreachable")
                ),
                "evacuated": c["evacuated"]["persons"],
                "sheltered": c["sheltered"]["persons"],
                "total": sum(v["persons"] for v in c.values()),
            }
        items.append(item)
    return {"items": items}


@api.post("/warnings", status_code=201)
def propose(
    body: ProposeIn, response: Response, principal: Proposer, session: DbSession
) -> dict[str, Any]:
    """A new proposal (201), or — when the point already has an open warning — that warning
    with the proposal noted on its history (200)."""
    point = access.point(session, principal, body.risk_point)
    existing = workflow.open_warning(session, point.id)
    warning = workflow.propose(
        session, point, body.level, [body.reason], Who.of(principal), utcnow()
    )
    if existing is not None:
        response.status_code = 200
    return workflow_out(session, warning)


def workflow_out(session: DbSession, warning: Warning) -> dict[str, Any]:
    return views.warning_detail(session, warning)


@api.get("/warnings/{code}")
def get_warning(code: str, principal: Reader, session: DbSession) -> dict[str, Any]:
    return views.warning_detail(session, access.readable(session, principal, code)[0])


@api.post("/warnings/{code}/confirm")
def confirm(code: str, body: ConfirmIn, principal: Commander, session: DbSession) -> dict[str, Any]:
    warning = access.in_area(session, principal, code)
    workflow.confirm(
        session,
        warning,
        Who.of(principal),
        utcnow(),
        level=body.level,
        note=body.note,
        principal=principal,
    )
    return workflow_out(session, warning)


@api.post("/warnings/{code}/reject")
def reject(code: str, body: DecisionIn, principal: Commander, session: DbSession) -> dict[str, Any]:
    warning = access.in_area(session, principal, code)
    workflow.reject(session, warning, Who.of(principal), utcnow(), body.note, principal)
    return workflow_out(session, warning)


@api.post("/warnings/{code}/issue")
def issue(
    code: str, body: DecisionIn, request: Request, principal: Commander, session: DbSession
) -> dict[str, Any]:
    warning = access.in_area(session, principal, code)
    workflow.issue(
        session,
        warning,
        Who.of(principal),
        utcnow(),
        _publishing(request),
        note=body.note,
        principal=principal,
    )
    return workflow_out(session, warning)


@api.post("/warnings/{code}/update")
def update(
    code: str, body: UpdateIn, request: Request, principal: Commander, session: DbSession
) -> dict[str, Any]:
    warning = access.in_area(session, principal, code)
    workflow.update(
        session,
        warning,
        Who.of(principal),
        utcnow(),
        _publishing(request),
        note=body.note,
        level=body.level,
        principal=principal,
    )
    return workflow_out(session, warning)


@api.post("/warnings/{code}/lift")
def lift(
    code: str, body: LiftIn, request: Request, principal: Commander, session: DbSession
) -> dict[str, Any]:
    warning = access.in_area(session, principal, code)
    workflow.lift(
        session,
        warning,
        Who.of(principal),
        utcnow(),
        _publishing(request),
        note=body.note,
        principal=principal,
    )
    return workflow_out(session, warning)


# --- evacuation -------------------------------------------------------------------------------


def _evacuation(session: DbSession, code: str, principal: Principal) -> tuple[Evacuation, bool]:
    """The warning's evacuation, and whether the principal sees all of its households."""
    warning, whole = access.readable(session, principal, code)
    evac = evacuation.of_warning(session, warning)
    if evac is None:
        raise NotFound("该预警未启动转移 / no evacuation for this warning")
    return evac, whole


@api.get("/warnings/{code}/evacuation")
def evacuation_board(code: str, principal: Reader, session: DbSession) -> dict[str, Any]:
    return evacuation.board(session, _evacuation(session, code, principal)[0])


@api.get("/warnings/{code}/evacuation/tasks")
def evacuation_tasks(
    code: str, principal: Reader, session: DbSession, mine: bool = False, unmask: Unmask = False
) -> dict[str, Any]:
    evac, whole = _evacuation(session, code, principal)
    if mine and principal.person_id is None:
        raise Forbidden("只有人员账号有自己的任务 / only a person has tasks", field="mine")
    items = evacuation.tasks(session, evac, principal.person_id if mine else None)
    if not whole:
        for task in items:
            task["households"] = [h for h in task["households"] if principal.sees(h["grid"])]
            task["open"] = sum(1 for h in task["households"] if h["status"] in AT_HOME)
        items = [task for task in items if task["households"]]
    codes = [h["household"] for task in items for h in task["households"]]
    if mine and unmask:
        # The grid worker assigned to these households must call them: need-to-know, audited.
        audit.record(
            session,
            "unmask",
            "households",
            summary={"codes": codes[:200], "count": len(codes), "why": f"evacuation {code}"},
        )
    elif not _unmasked(session, principal, unmask, "households", codes):
        for task in items:
            for h in task["households"]:
                h["phone"] = mask_mobile(h["phone"] or None)
                h["head_name"] = mask_name(h["head_name"])
    return {"items": items}


@api.get("/warnings/{code}/evacuation/households")
def evacuation_households(
    code: str,
    principal: Reader,
    session: DbSession,
    status: Annotated[
        str | None,
        Query(pattern=r"^(pending|notified|evacuated|sheltered|refused|unreachable)$"),
    ] = None,
    grid: Annotated[str | None, Query(pattern=r"^\d{15}$")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> dict[str, Any]:
    evac, whole = _evacuation(session, code, principal)
    query = (
        select(EvacuationEntry, Household.code, Household.address)
        .join(Household, Household.id == EvacuationEntry.household_id)
        .where(EvacuationEntry.evacuation_id == evac.id)
    )
    if not whole:
        query = query.where(principal.scope(EvacuationEntry.grid_code))
    if status:
        query = query.where(EvacuationEntry.status == status)
    if grid:
        query = query.where(EvacuationEntry.grid_code == grid)
    rows = session.execute(query.order_by(Household.code).limit(limit)).all()
    return {
        "items": [
            {
                "household": hcode,
                "address": address,
                "grid": e.grid_code,
                "persons": e.persons,
                "status": e.status,
                "updated_at": e.updated_at,
                "updated_by": e.updated_by,
            }
            for e, hcode, address in rows
        ]
    }


@api.post("/warnings/{code}/evacuation/households/{household}")
def set_status(
    code: str, household: str, body: StatusIn, principal: FieldWorker, session: DbSession
) -> dict[str, Any]:
    evac, whole = _evacuation(session, code, principal)
    if not whole:
        grid = session.scalar(
            select(EvacuationEntry.grid_code)
            .join(Household, Household.id == EvacuationEntry.household_id)
            .where(EvacuationEntry.evacuation_id == evac.id, Household.code == household)
        )
        if grid is None or not principal.sees(grid):
            raise NotFound(f"住户 {household} 不在本次转移范围 / household not in this evacuation")
    change = evacuation.set_status(
        session,
        evac,
        household,
        body.status,
        principal.name,
        utcnow(),
        shelter_code=body.shelter,
        note=body.note,
        key=body.key,
    )
    return {
        "household": household,
        "status": change.entry.status,
        "changed": change.changed,
        "updated_at": change.entry.updated_at,
        "counts": evacuation.counts(session, evac.id),
    }


# --- CAP and Atom (public: a warning is for everyone) ----------------------------------------


@public.get("/api/v1/cap/{identifier}.xml", response_class=Response)
def cap_document(identifier: str, session: DbSession) -> Response:
    message = session.scalar(select(CapMessage).where(CapMessage.identifier == identifier))
    if message is None:
        raise NotFound("没有这条 CAP 消息 / no such CAP message")
    return Response(message.xml, media_type="application/cap+xml")


@public.get("/feeds/warnings.atom", response_class=Response)
def atom_feed(request: Request, session: DbSession) -> Response:
    """Active (issued) warnings, each linking to its latest CAP document."""
    base = request.app.state.settings.public_url.rstrip("/")
    rows = session.execute(
        select(Warning, CapMessage)
        .join(CapMessage, CapMessage.warning_id == Warning.id)
        .where(Warning.state == "issued")
        .order_by(Warning.id, CapMessage.id.desc())
    )
    latest: dict[int, tuple[Warning, CapMessage]] = {}
    for w, m in rows:
        latest.setdefault(w.id, (w, m))
    entries = []
    for w, m in latest.values():
        point = session.get(RiskPoint, w.risk_point_id)
        assert point is not None
        entries.append(
            atom.FeedEntry(
                identifier=m.identifier,
                title=w.headline,
                summary="；".join(w.reasons) or w.headline,
                updated=m.sent,
                cap_url=f"{base}/api/v1/cap/{m.identifier}.xml",
                html_url=f"{base}/api/v1/warnings/{w.code}",
                level=w.level,
                area_desc=point.name,
            )
        )
    updated = max((e.updated for e in entries), default=utcnow())
    body = atom.feed(
        entries,
        feed_id=f"{base}/feeds/warnings.atom",
        title="开州区地质灾害预警 / Kaizhou geohazard warnings",
        self_url=f"{base}/feeds/warnings.atom",
        updated=updated,
    )
    return Response(body, media_type="application/atom+xml")


router = APIRouter()
router.include_router(api)
router.include_router(public)
