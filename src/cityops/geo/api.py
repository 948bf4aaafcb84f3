from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from cityops.auth.deps import Require
from cityops.auth.permissions import Permission
from cityops.deps import DbSession
from cityops.geo import service
from cityops.geo.models import Level, Region
from cityops.geo.schemas import LocationOut, RegionDetail, RegionOut, RegionPage, RegionRefOut

# Boundaries are reference data: every signed-in user (and machines with regions:read) may read
# all of them; what lies inside a region is what region scope protects.
router = APIRouter(
    prefix="/api/v1", tags=["regions"], dependencies=[Depends(Require(Permission.regions_read))]
)

CodePath = Annotated[str, Path(pattern=r"^\d{6}(\d{3}){0,3}$", description="region code")]


def _out(region: Region) -> RegionOut:
    return RegionOut(
        code=region.code,
        name=region.name,
        level=region.level,
        parent_code=region.parent_code,
        center=(region.center_lon, region.center_lat),
        bbox=(region.min_lon, region.min_lat, region.max_lon, region.max_lat),
        area_km2=region.area_km2,
        synthetic=region.synthetic,
    )


@router.get("/regions", response_model=RegionPage)
def list_regions(
    session: DbSession,
    level: Level | None = None,
    parent: Annotated[str | None, Query(pattern=r"^\d{6}(\d{3}){0,2}$")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> RegionPage:
    rows, total = service.list_regions(
        session, level=level, parent=parent, limit=limit, offset=offset
    )
    return RegionPage(items=[_out(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/regions/{code}", response_model=RegionDetail)
def get_region(session: DbSession, code: CodePath) -> RegionDetail:
    region = service.get_region(session, code)
    return _detail(session, region)


def _detail(session: Session, region: Region) -> RegionDetail:
    return RegionDetail(
        **_out(region).model_dump(),
        geometry=region.geometry,
        ancestors=[RegionRefOut.model_validate(a) for a in service.ancestors(session, region)],
        children_count=service.count_children(session, region),
    )


@router.get(
    "/regions/{code}/children.geojson",
    response_class=JSONResponse,
    responses={200: {"content": {"application/geo+json": {}}}},
)
def children_geojson(session: DbSession, code: CodePath) -> JSONResponse:
    region = service.get_region(session, code)
    body: dict[str, Any] = service.feature_collection(
        service.children(session, region), colours=True
    )
    body["parent"] = {"code": region.code, "name": region.name, "level": region.level}
    return JSONResponse(
        body,
        media_type="application/geo+json",
        headers={"Cache-Control": "public, max-age=300"},
    )


@router.get("/locate", response_model=LocationOut)
def locate(
    session: DbSession,
    lat: Annotated[float, Query(ge=-90, le=90, description="WGS-84 latitude")],
    lon: Annotated[float, Query(ge=-180, le=180, description="WGS-84 longitude")],
) -> LocationOut:
    loc = service.locate(session, lat, lon)

    def ref(r: Any) -> RegionRefOut | None:
        return RegionRefOut(code=r.code, name=r.name, level=r.level) if r else None

    district = ref(loc.district)
    assert district is not None
    return LocationOut(
        lat=lat,
        lon=lon,
        district=district,
        town=ref(loc.town),
        village=ref(loc.village),
        grid=ref(loc.grid),
    )
