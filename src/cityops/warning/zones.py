"""Risk zones: polygon checks and which households lie inside (point-in-polygon with shapely).

The link table is rebuilt for a zone whenever the zone is drawn again and for a household
whenever it moves, so counting the threatened households and persons is a SQL join.
"""

from __future__ import annotations

from typing import Any

from shapely import prepared
from shapely.geometry import Point, Polygon, shape
from shapely.validation import explain_validity
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from cityops.errors import InvalidInput
from cityops.warning.models import Household, RiskPoint, ZoneHousehold, grade_for

MAX_VERTICES = 5000
# About 10 m² at Kaizhou's latitude. A smaller "zone" is a slip of the pen, and its corners
# would collapse when the CAP document rounds them to 6 decimals (~0.1 m), failing the issue.
MIN_AREA_DEG2 = 1e-9


def parse_zone(raw: Any, field: str = "zone") -> Polygon:
    """A GeoJSON Polygon (lon, lat), closed, simple, at least three distinct corners."""
    if not isinstance(raw, dict) or raw.get("type") != "Polygon":
        raise InvalidInput(
            "风险区须为 GeoJSON Polygon / zone must be a GeoJSON Polygon", field=field
        )
    rings = raw.get("coordinates")
    if not isinstance(rings, list) or not rings or not isinstance(rings[0], list):
        raise InvalidInput("风险区缺少坐标 / zone has no coordinates", field=field)
    ring = rings[0]
    if len(ring) > MAX_VERTICES:
        raise InvalidInput(f"风险区顶点过多（最多 {MAX_VERTICES}）/ too many vertices", field=field)
    try:
        pts = [(float(p[0]), float(p[1])) for p in ring]
    except (TypeError, ValueError, IndexError):
        raise InvalidInput(
            "坐标须为 [经度, 纬度] / coordinates must be [lon, lat]", field=field
        ) from None
    if any(not (-180 <= x <= 180 and -90 <= y <= 90) for x, y in pts):
        raise InvalidInput("坐标超出范围 / coordinate out of range", field=field)
    if pts and pts[0] != pts[-1]:
        pts.append(pts[0])
    if len(set(pts)) < 3:
        raise InvalidInput(
            "风险区至少需要三个不同顶点 / zone needs 3 distinct corners", field=field
        )
    polygon = Polygon(pts)
    if not polygon.is_valid:
        raise InvalidInput(
            f"风险区多边形无效 / zone polygon is invalid: {explain_validity(polygon)}", field=field
        )
    if polygon.area < MIN_AREA_DEG2:
        raise InvalidInput("风险区面积过小 / zone is too small (under 10 m²)", field=field)
    return polygon


def as_geojson(polygon: Polygon) -> dict[str, Any]:
    return {
        "type": "Polygon",
        "coordinates": [[[round(x, 7), round(y, 7)] for x, y in polygon.exterior.coords]],
    }


def set_zone(session: Session, point: RiskPoint, polygon: Polygon) -> None:
    point.zone = as_geojson(polygon)
    point.min_lon, point.min_lat, point.max_lon, point.max_lat = polygon.bounds
    session.flush()
    relink_zone(session, point, polygon)


def relink_zone(session: Session, point: RiskPoint, polygon: Polygon | None = None) -> None:
    polygon = polygon or shape(point.zone)
    assert polygon is not None
    inside = prepared.prep(polygon)
    candidates = session.execute(
        select(Household.id, Household.lon, Household.lat).where(
            Household.active.is_(True),
            Household.lon.between(point.min_lon, point.max_lon),
            Household.lat.between(point.min_lat, point.max_lat),
        )
    )
    ids = [hid for hid, lon, lat in candidates if inside.covers(Point(lon, lat))]
    session.execute(delete(ZoneHousehold).where(ZoneHousehold.risk_point_id == point.id))
    if ids:
        session.execute(
            insert(ZoneHousehold), [{"risk_point_id": point.id, "household_id": h} for h in ids]
        )
    recount(session, [point.id])


def relink_household(session: Session, household: Household) -> None:
    """After a household is added, moved or deactivated: the zones it now lies in."""
    session.flush()
    before = set(
        session.scalars(
            select(ZoneHousehold.risk_point_id).where(ZoneHousehold.household_id == household.id)
        )
    )
    session.execute(delete(ZoneHousehold).where(ZoneHousehold.household_id == household.id))
    now_in: set[int] = set()
    if household.active:
        for rp in session.scalars(
            select(RiskPoint).where(
                RiskPoint.min_lon <= household.lon,
                RiskPoint.max_lon >= household.lon,
                RiskPoint.min_lat <= household.lat,
                RiskPoint.max_lat >= household.lat,
            )
        ):
            if shape(rp.zone).covers(Point(household.lon, household.lat)):
                now_in.add(rp.id)
        if now_in:
            session.execute(
                insert(ZoneHousehold),
                [{"risk_point_id": r, "household_id": household.id} for r in sorted(now_in)],
            )
    recount(session, sorted(before | now_in))


def recount(session: Session, point_ids: list[int]) -> None:
    """Households and persons in each zone (SQL sums them), and the grade they imply."""
    if not point_ids:
        return
    totals = dict(
        (rp, (n, p))
        for rp, n, p in session.execute(
            select(
                ZoneHousehold.risk_point_id,
                func.count(Household.id),
                func.coalesce(func.sum(Household.persons), 0),
            )
            .join(Household, Household.id == ZoneHousehold.household_id)
            .where(ZoneHousehold.risk_point_id.in_(point_ids), Household.active.is_(True))
            .group_by(ZoneHousehold.risk_point_id)
        )
    )
    for rp in session.scalars(select(RiskPoint).where(RiskPoint.id.in_(point_ids))):
        n, p = totals.get(rp.id, (0, 0))
        rp.households, rp.persons, rp.grade = int(n), int(p), grade_for(int(p))
