from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

GRID = "500154024003001"  # in 义和镇 太康村
BASE = "/open311/v2"


@pytest.fixture
def point(client: TestClient) -> tuple[float, float]:
    """(lat, lon) of a point inside the demo grid."""
    r = client.get(f"/api/v1/regions/{GRID}")
    assert r.status_code == 200, r.text
    lon, lat = r.json()["center"]
    return lat, lon


def make_key(client: TestClient, *scopes: str) -> str:
    r = client.post("/api/v1/api-keys", json={"name": "市民随手拍 App", "scopes": list(scopes)})
    assert r.status_code == 201, r.text
    return str(r.json()["key"])


@pytest.fixture
def api_key(client: TestClient) -> str:
    return make_key(client, "open311:post")


Post = Callable[..., Response]


@pytest.fixture
def post(anon: TestClient, api_key: str, point: tuple[float, float]) -> Post:
    """post(**form) → the response of POST requests.json (or fmt="xml"), with the key, a point
    in the district and a service code unless the form says otherwise (None leaves one out)."""

    def send(fmt: str = "json", **form: Any) -> Response:
        lat, lon = point
        data = {
            "api_key": api_key,
            "service_code": "GY01",
            "lat": str(lat),
            "long": str(lon),
            "description": "井盖不见了，晚上很危险",
        } | {k: v for k, v in form.items()}
        return anon.post(
            f"{BASE}/requests.{fmt}", data={k: v for k, v in data.items() if v is not None}
        )

    return send


@pytest.fixture
def posted(post: Post) -> dict[str, Any]:
    r = post()
    assert r.status_code == 201, r.text
    body = r.json()
    assert isinstance(body, list) and len(body) == 1
    return dict(body[0])
