"""HTTP: the cockpit's data — its summary and its map layers — and, included here, its page.

Register ``cityops.cockpit.api`` in the app's router list: ``router`` carries both."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from cityops.auth.deps import Require
from cityops.auth.principal import Principal
from cityops.cockpit import layers, service, views
from cityops.cockpit.layers import Layer
from cityops.cockpit.schemas import Summary
from cityops.db import utcnow
from cityops.deps import DbSession

api = APIRouter(prefix="/api/v1/cockpit", tags=["cockpit"])
Reader = Annotated[Principal, Depends(Require(*service.READ_PERMISSIONS))]
RegionCode = Annotated[
    str | None,
    Query(
        pattern=service.REGION_PATTERN,
        description="district, town, village or grid code inside your area (default: your area)",
    ),
]


def _scope(
    request: Request, session: DbSession, principal: Principal, region: str | None
) -> service.Scope:
    default = request.app.state.settings.district_code
    return service.scope_for(session, principal, region, default)


@api.get("/summary", response_model=Summary)
def summary(
    request: Request, principal: Reader, session: DbSession, region: RegionCode = None
) -> Summary:
    """Vital signs of a region: today's intake, closures, open and overdue cases; closure and
    on-time rates, cases by source and category and the daily trend over 30 days; open alarms
    by severity; devices online; active warnings with evacuation progress; open cases per child
    region; the breadcrumb from the district down."""
    scope = _scope(request, session, principal, region)
    return service.summary(session, principal, scope, utcnow(), request.app.state.settings.zone)


@api.get(
    "/layers/{layer}",
    response_class=Response,
    responses={200: {"content": {"application/geo+json": {}}}},
)
def layer(
    request: Request,
    principal: Reader,
    session: DbSession,
    layer: Layer,
    region: RegionCode = None,
) -> Response:
    """One map layer of a region as a GeoJSON FeatureCollection of points (at most
    5,000, ``truncated`` when more): open cases (state, overdue), open alarms (severity), risk
    points (warning colour), devices (online), grid workers on duty (at their grid's centre),
    shelters (capacity, occupancy)."""
    scope = _scope(request, session, principal, region)
    return Response(
        layers.build(session, layer, scope, utcnow()),
        media_type="application/geo+json",
        headers={"Cache-Control": "no-store"},
    )


router = APIRouter()
router.include_router(api)
router.include_router(views.router)
