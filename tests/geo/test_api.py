from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

HANFENG = "500154001"


def test_list_towns(client: TestClient) -> None:
    r = client.get("/api/v1/regions", params={"level": "town", "limit": 100})
    body = r.json()
    assert r.status_code == 200 and body["total"] == 40 and len(body["items"]) == 40
    first = body["items"][0]
    assert (
        first["code"] == HANFENG
        and first["name"] == "汉丰街道"
        and first["parent_code"] == "500154"
    )
    assert first["synthetic"] is True


def test_list_children_of_a_town_paginated(client: TestClient) -> None:
    r = client.get("/api/v1/regions", params={"parent": HANFENG, "limit": 2, "offset": 1})
    body = r.json()
    assert body["total"] == 3 and [i["code"] for i in body["items"]] == [
        f"{HANFENG}002",
        f"{HANFENG}003",
    ]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"level": "province"}, "level"), ({"limit": 0}, "limit"), ({"parent": "12ab"}, "parent")],
)
def test_bad_list_filters_name_the_field(
    client: TestClient, params: dict[str, object], field: str
) -> None:
    r = client.get("/api/v1/regions", params=params)
    assert r.status_code == 422
    assert [f["field"] for f in r.json()["error"]["fields"]] == [field]


def test_unknown_parent_is_404(client: TestClient) -> None:
    assert client.get("/api/v1/regions", params={"parent": "500154999"}).status_code == 404


def test_region_detail_has_geometry_and_breadcrumb(client: TestClient) -> None:
    grid = f"{HANFENG}001001"
    r = client.get(f"/api/v1/regions/{grid}")
    body = r.json()
    assert r.status_code == 200
    assert body["level"] == "grid" and body["geometry"]["type"] == "Polygon"
    assert [a["code"] for a in body["ancestors"]] == ["500154", HANFENG, f"{HANFENG}001"]
    assert body["children_count"] == 0
    lon, lat = body["center"]
    assert body["bbox"][0] <= lon <= body["bbox"][2] and body["bbox"][1] <= lat <= body["bbox"][3]


def test_region_not_found_and_malformed_code(client: TestClient) -> None:
    assert client.get("/api/v1/regions/500154999").status_code == 404
    bad = client.get("/api/v1/regions/50015x")
    assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["field"] == "code"


def test_children_geojson(client: TestClient) -> None:
    r = client.get("/api/v1/regions/500154/children.geojson")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/geo+json")
    fc = r.json()
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 40
    names = {f["properties"]["name"] for f in fc["features"]}
    assert {"汉丰街道", "义和镇", "雪宝山镇", "五通乡"} <= names
    assert all(f["geometry"]["type"] in {"Polygon", "MultiPolygon"} for f in fc["features"])


def test_children_of_a_grid_is_an_empty_collection(client: TestClient) -> None:
    r = client.get(f"/api/v1/regions/{HANFENG}001001/children.geojson")
    assert r.status_code == 200 and r.json()["features"] == []


def test_locate_round_trip_from_a_grid_center(client: TestClient) -> None:
    grid = client.get(f"/api/v1/regions/{HANFENG}002001").json()
    lon, lat = grid["center"]
    r = client.get("/api/v1/locate", params={"lat": lat, "lon": lon})
    body = r.json()
    assert r.status_code == 200
    assert body["grid"]["code"] == grid["code"]
    assert body["village"]["code"] == grid["code"][:12] and body["town"]["code"] == HANFENG
    assert body["district"]["name"] == "开州区"


def test_locate_outside_the_district_is_422_with_a_clear_message(client: TestClient) -> None:
    r = client.get("/api/v1/locate", params={"lat": 39.9, "lon": 116.4})
    assert r.status_code == 422
    assert "outside the district" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"lat": "abc", "lon": 108.4}, "lat"),
        ({"lat": 91, "lon": 108.4}, "lat"),
        ({"lat": "nan", "lon": 108.4}, "lat"),
        ({"lat": 31.1, "lon": "inf"}, "lon"),
        ({"lat": 31.1}, "lon"),
    ],
)
def test_locate_bad_input_names_the_field(
    client: TestClient, params: dict[str, object], field: str
) -> None:
    r = client.get("/api/v1/locate", params=params)
    assert r.status_code == 422
    assert field in [f["field"] for f in r.json()["error"]["fields"]]


def test_neighbouring_regions_get_different_map_colours(client: TestClient) -> None:
    import shapely
    from shapely.geometry import shape

    fc = client.get("/api/v1/regions/500154/children.geojson").json()
    geoms = [shape(f["geometry"]) for f in fc["features"]]
    colours = [f["properties"]["colour"] for f in fc["features"]]
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    pairs = [(i, j) for i, j in zip(left, right, strict=True) if i < j]
    assert pairs, "towns share borders"
    assert all(colours[i] != colours[j] for i, j in pairs)
