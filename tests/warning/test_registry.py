"""The register: risk points with their zones, monitors, responsible people and shelters; which
households a zone holds (point-in-polygon, kept as households move and zones are redrawn); the
hazard grade from the persons to relocate; shelters and their occupancy; bad input refused with
a 4xx naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.auth.principal import Who
from cityops.errors import Conflict, InvalidInput
from cityops.warning import evacuation, workflow, zones
from cityops.warning import service as registry
from cityops.warning.models import RiskPoint, ZoneHousehold, grade_for
from cityops.warning.schemas import MonitorIn, RiskPointIn
from tests.warning.conftest import (
    GRID_1,
    GRID_2,
    HALF_LAT,
    HALF_LON,
    NOW,
    Zone,
    add_household,
    border_point,
    inside_point,
    outside_point,
    square,
)


def linked(session: Session, point: RiskPoint) -> set[str]:
    return {h.code for h in registry.households_of(session, point.id)}


def test_zone_holds_exactly_the_households_inside_it(session: Session, zone: Zone) -> None:
    point = zone.point
    assert linked(session, point) == set(zone.inside)
    assert point.households == len(zone.inside) == 16
    assert point.persons == zone.total_persons == sum(n % 5 + 1 for n in range(1, 17))
    assert point.grade == "IV"
    assert point.zone["coordinates"][0][0] == point.zone["coordinates"][0][-1], "ring is closed"
    assert (point.min_lon, point.max_lon) == pytest.approx(
        (zone.geojson["coordinates"][0][0][0], zone.geojson["coordinates"][0][1][0])
    )


def test_monitors_people_shelters_and_route_are_kept(session: Session, zone: Zone) -> None:
    point = zone.point
    monitors = {
        m.label: (m.role, m.metric, d.code) for m, d in registry.monitors_of(session, point.id)
    }
    assert monitors == {
        "GNSS-1": ("displacement", "disp_mm", "W-LGW-GNSS-1"),
        "RAIN-1": ("rain", "rain_mm", "W-LGW-RAIN-1"),
    }
    assert [s.code for s in registry.shelters_of(session, point.id)] == ["W-SH-SCHOOL", "W-SH-HALL"]
    assert (point.town_leader_id, point.monitor_id) == (zone.leader.id, zone.monitor.id)
    assert point.route.startswith("沿村道")
    # Reordering shelters and replacing monitors is a full replacement, not an append.
    registry.update_point(
        session,
        point,
        {"shelters": ["W-SH-HALL"], "monitors": [{"device": "W-LGW-GNSS-1", "label": "G1"}]},
        NOW,
    )
    assert [s.code for s in registry.shelters_of(session, point.id)] == ["W-SH-HALL"]
    assert [m.label for m, _d in registry.monitors_of(session, point.id)] == ["G1"]


@pytest.mark.parametrize(
    ("persons", "grade"),
    [(0, "IV"), (99, "IV"), (100, "III"), (499, "III"), (500, "II"), (999, "II"), (1000, "I")],
)
def test_grade_by_persons_to_relocate(persons: int, grade: str) -> None:
    assert grade_for(persons) == grade


def test_grade_follows_the_households(session: Session, zone: Zone) -> None:
    point = zone.point
    big = registry.get_household(session, "W-HH-01")
    registry.update_household(session, big, {"persons": 60}, NOW)
    assert point.persons == zone.total_persons - 2 + 60 and point.grade == "III"
    registry.update_household(session, big, {"active": False}, NOW)
    assert point.persons == zone.total_persons - 2 and point.grade == "IV"
    assert "W-HH-01" not in linked(session, point)
    registry.update_household(session, big, {"active": True}, NOW)
    assert point.households == 16 and "W-HH-01" in linked(session, point)
    # Enough people for grade II: five households of 100 and the rest.
    lat, lon = inside_point(zone)
    for k in range(5):
        add_household(session, f"W-HH-BIG{k}", lat + k * 1e-5, lon, 100)
    assert point.persons == zone.total_persons - 2 + 60 + 500 and point.grade == "II"


def test_households_moving_in_and_out(session: Session, zone: Zone) -> None:
    point = zone.point
    mover = registry.get_household(session, zone.outside[0])
    assert mover.code not in linked(session, point)
    lat, lon = inside_point(zone)
    registry.update_household(session, mover, {"lat": lat, "lon": lon}, NOW)
    assert mover.code in linked(session, point)
    assert point.households == 17 and point.persons == zone.total_persons + 3
    lat, lon = outside_point(zone)
    registry.update_household(session, mover, {"lat": lat, "lon": lon}, NOW)
    assert mover.code not in linked(session, point)
    assert (point.households, point.persons) == (16, zone.total_persons)
    # Moving within the zone across the grid border changes the grid, not the zone.
    inner = registry.get_household(session, "W-HH-01")
    other = registry.get_household(session, "W-HH-03")
    assert (inner.region_code, other.region_code) == (GRID_1, GRID_2)
    registry.update_household(session, inner, {"lat": other.lat, "lon": other.lon}, NOW)
    assert inner.region_code == GRID_2 and inner.code in linked(session, point)


def test_point_in_polygon_not_bounding_box(session: Session, zone: Zone) -> None:
    """An L-shaped zone: a household in its bounding box but in the notch is outside; one on
    the edge is inside."""
    lat, lon = border_point(session)
    ring = [
        [lon - HALF_LON, lat - HALF_LAT],
        [lon + HALF_LON, lat - HALF_LAT],
        [lon + HALF_LON, lat],
        [lon, lat],
        [lon, lat + HALF_LAT],
        [lon - HALF_LON, lat + HALF_LAT],
        [lon - HALF_LON, lat - HALF_LAT],
    ]
    registry.update_point(
        session, zone.point, {"zone": {"type": "Polygon", "coordinates": [ring]}}, NOW
    )
    inside = linked(session, zone.point)
    assert inside and inside < set(zone.inside)
    for code in zone.inside:
        h = registry.get_household(session, code)
        in_notch = h.lat > lat and h.lon > lon
        assert (code in inside) == (not in_notch), code
    edge = add_household(session, "W-HH-EDGE", lat - HALF_LAT, lon, 2)  # on the bottom edge
    assert edge.code in linked(session, zone.point)
    rows = session.scalars(
        select(ZoneHousehold.household_id).where(ZoneHousehold.risk_point_id == zone.point.id)
    ).all()
    assert len(rows) == len(set(rows)) == zone.point.households


def test_redrawing_the_zone_relinks(session: Session, zone: Zone) -> None:
    lat, lon = border_point(session)
    registry.update_point(session, zone.point, {"zone": square(lat, lon, 0.0005, 0.0005)}, NOW)
    assert zone.point.households == 0 and zone.point.persons == 0
    registry.update_point(session, zone.point, {"zone": zone.geojson}, NOW)
    assert linked(session, zone.point) == set(zone.inside)


def test_a_household_in_two_zones_counts_in_both(session: Session, zone: Zone) -> None:
    lat, lon = border_point(session)
    second = registry.create_point(
        session,
        RiskPointIn(
            code="W-LGW-2",
            name="老沟湾北侧崩塌",
            hazard="collapse",
            lat=lat,
            lon=lon,
            zone=square(lat + HALF_LAT, lon, HALF_LON, HALF_LAT),  # overlaps the top half
        ),
        NOW,
    )
    shared = linked(session, second) & set(zone.inside)
    assert shared and shared == linked(session, second) - set(zone.outside)
    assert zone.point.households == 16


def test_shelter_occupancy_counts_open_evacuations(session: Session, zone: Zone) -> None:
    who = Who("person", "区指挥长")
    warning = workflow.propose(session, zone.point, "red", ["位移加速"], who, NOW)
    workflow.confirm(session, warning, who, NOW)
    workflow.issue(session, warning, who, NOW, workflow.Publishing())
    evac = evacuation.of_warning(session, warning)
    assert evac is not None
    assert registry.occupancy(session) == {}
    evacuation.set_status(session, evac, "W-HH-01", "sheltered", "网格员", NOW)  # 2 persons
    evacuation.set_status(
        session, evac, "W-HH-02", "sheltered", "网格员", NOW, shelter_code="W-SH-HALL"
    )
    assert registry.occupancy(session) == {zone.small.id: 2, zone.large.id: 3}
    assert registry.occupancy(session, [zone.large.id]) == {zone.large.id: 3}
    workflow.lift(session, warning, who, NOW, workflow.Publishing(), note="险情解除")
    assert registry.occupancy(session) == {}, "a closed evacuation holds no places"


# --- bad input ---------------------------------------------------------------------------------


def point_body(zone_geojson: Any, **changes: Any) -> dict[str, Any]:
    lat, lon = 31.2587, 108.4583
    return {
        "code": "W-NEW",
        "name": "新风险点",
        "lat": lat,
        "lon": lon,
        "zone": zone_geojson,
    } | changes


def bowtie(lat: float, lon: float) -> dict[str, Any]:
    d = 0.001
    ring = [[lon - d, lat - d], [lon + d, lat + d], [lon + d, lat - d], [lon - d, lat + d]]
    return {"type": "Polygon", "coordinates": [ring]}


BAD_ZONES = {
    "point": {"type": "Point", "coordinates": [108.45, 31.25]},
    "no coordinates": {"type": "Polygon"},
    "empty ring": {"type": "Polygon", "coordinates": [[]]},
    "two corners": {"type": "Polygon", "coordinates": [[[108.45, 31.25], [108.46, 31.25]]]},
    "text corners": {"type": "Polygon", "coordinates": [[["a", "b"], ["c", "d"], ["e", "f"]]]},
    "out of range": {
        "type": "Polygon",
        "coordinates": [[[108.45, 31.25], [208.46, 31.25], [108.46, 95.0]]],
    },
    "self-intersecting": bowtie(31.2587, 108.4583),
    "collinear": {
        "type": "Polygon",
        "coordinates": [[[108.45, 31.25], [108.46, 31.25], [108.47, 31.25]]],
    },
    "a few centimetres": {
        "type": "Polygon",
        "coordinates": [[[108.45, 31.25], [108.4500001, 31.25], [108.4500001, 31.2500001]]],
    },
    "not an object": [[108.45, 31.25], [108.46, 31.25], [108.46, 31.26]],
}


def test_invalid_zones_are_422_naming_the_zone(client: TestClient) -> None:
    for name, bad in BAD_ZONES.items():
        r = client.post("/api/v1/risk-points", json=point_body(bad))
        assert r.status_code == 422, f"{name}: {r.text}"
        error = r.json()["error"]
        assert error["code"] == "invalid_input", name
        assert [f["field"] for f in error["fields"]] == ["zone"], f"{name}: {error}"
        assert " / " in error["message"], f"{name}: the message is in Chinese and English"
    assert client.get("/api/v1/risk-points/W-NEW").status_code == 404, "nothing was stored"


def test_invalid_zone_on_patch_is_422_and_keeps_the_old_one(
    client: TestClient, session: Session, zone: Zone
) -> None:
    r = client.patch("/api/v1/risk-points/W-LGW", json={"zone": BAD_ZONES["self-intersecting"]})
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "zone"
    detail = client.get("/api/v1/risk-points/W-LGW").json()
    assert detail["households"] == 16 and detail["zone"]["coordinates"][0][0] == [
        pytest.approx(c) for c in zone.geojson["coordinates"][0][0]
    ]


BAD_POINTS: list[tuple[dict[str, Any], str, int]] = [
    ({"lat": 39.9, "lon": 116.4}, "lat,lon", 422),  # Beijing: not in the district
    ({"lat": 91}, "lat", 422),
    ({"code": "has space"}, "code", 422),
    ({"hazard": "volcano"}, "hazard", 422),
    ({"town_leader": "P999999"}, "town_leader", 422),
    ({"monitor": "P999999"}, "monitor", 422),
    ({"shelters": ["NO-SUCH"]}, "shelters", 422),
    ({"monitors": [{"device": "NO-SUCH"}]}, "monitors.0", 422),
    ({"monitors": [{"device": "W-LGW-GNSS-1", "v_uniform": -1}]}, "monitors.0.v_uniform", 422),
    ({"code": "W-LGW"}, "code", 409),
]


def test_bad_risk_points_name_the_field(client: TestClient, zone: Zone) -> None:
    for changes, field, status in BAD_POINTS:
        r = client.post("/api/v1/risk-points", json=point_body(zone.geojson, **changes))
        assert r.status_code == status, f"{changes}: {r.text}"
        assert field in [f["field"] for f in r.json()["error"]["fields"]], f"{changes}: {r.text}"


def test_device_unusable_for_analytics_is_refused(session: Session, zone: Zone) -> None:
    from cityops.telemetry import service as tsvc

    tsvc.create_device(
        session, tsvc.DeviceInput("W-HYD", "hydrant", "消火栓", zone.point.lat, zone.point.lon), NOW
    )
    with pytest.raises(InvalidInput) as err:
        registry.set_monitors(session, zone.point, [MonitorIn(device="W-HYD")])
    assert err.value.field == "monitors.0"


BAD_HOUSEHOLDS: list[tuple[dict[str, Any], str]] = [
    ({"phone": "call me"}, "phone"),
    ({"persons": 0}, "persons"),
    ({"vulnerable": {"elderly": -1}}, "vulnerable"),
    ({"vulnerable": {"elderly": "two"}}, "vulnerable.elderly"),
    ({"lat": 39.9, "lon": 116.4}, "lat,lon"),
    ({"head_name": ""}, "head_name"),
]


def test_bad_households_name_the_field(client: TestClient) -> None:
    good = {
        "code": "W-HH-NEW",
        "head_name": "张三",
        "address": "太康村1组",
        "lat": 31.2587,
        "lon": 108.4583,
        "persons": 3,
    }
    for changes, field in BAD_HOUSEHOLDS:
        r = client.post("/api/v1/households", json=good | changes)
        assert r.status_code == 422, f"{changes}: {r.text}"
        assert field in [f["field"] for f in r.json()["error"]["fields"]], f"{changes}: {r.text}"
        stored = client.get("/api/v1/households/W-HH-NEW")
        assert stored.status_code == 404, "the bad household was not stored"
    assert client.post("/api/v1/households", json=good).status_code == 201
    for changes, field in BAD_HOUSEHOLDS:
        if "code" in changes:
            continue
        r = client.patch("/api/v1/households/W-HH-NEW", json=changes)
        assert r.status_code == 422, f"patch {changes}: {r.text}"
        assert field in [f["field"] for f in r.json()["error"]["fields"]], f"{changes}: {r.text}"


def test_duplicates_conflict(session: Session, zone: Zone) -> None:
    with pytest.raises(Conflict) as err:
        add_household(session, "W-HH-01", zone.point.lat, zone.point.lon, 1)
    assert err.value.field == "code"
    with pytest.raises(Conflict):
        registry.create_point(
            session,
            RiskPointIn(
                code="W-LGW", name="重复", lat=zone.point.lat, lon=zone.point.lon, zone=zone.geojson
            ),
            NOW,
        )


def test_parse_zone_closes_an_open_ring() -> None:
    polygon = zones.parse_zone(square(31.25, 108.45))
    assert len(polygon.exterior.coords) == 5 and polygon.is_valid
