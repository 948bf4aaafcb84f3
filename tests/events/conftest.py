from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

Headers = dict[str, str]
YIHE = "500154024"
GRID = "500154024003001"  # demo-grid's grid, in 太康村


class Desk:
    """Acting through the API as a given account."""

    def __init__(self, client: TestClient, headers: Headers) -> None:
        self.client, self.headers = client, headers

    def report(self, **body: Any) -> Any:
        payload = {"description": "井盖缺失，有安全隐患", **body}
        r = self.client.post("/api/v1/cases", json=payload, headers=self.headers)
        assert r.status_code in (200, 201), r.text
        return r.json()

    def act(self, code: str, action: str, expect: int = 200, **body: Any) -> Any:
        url = f"/api/v1/cases/{code}/actions/{action}"
        r = self.client.post(url, json=body, headers=self.headers)
        assert r.status_code == expect, r.text
        return r.json()

    def get(self, code: str, expect: int = 200) -> Any:
        r = self.client.get(f"/api/v1/cases/{code}", headers=self.headers)
        assert r.status_code == expect, r.text
        return r.json()


@pytest.fixture
def desk(anon: TestClient, login: Callable[[str], Headers]) -> Callable[[str], Desk]:
    return lambda username: Desk(anon, login(username))


@pytest.fixture
def handler_at(client: TestClient, anon: TestClient) -> Callable[[str], Desk]:
    """handler_at("TC-500154024-MS") → a handler account in that unit (made on first use)."""
    made: dict[str, Desk] = {}

    def make(unit: str) -> Desk:
        if unit not in made:
            username = "h-" + unit.lower().replace("tc-", "").replace("vs-", "v")
            password = "Handler-desk-2026-x"
            body = {
                "name": "处置人员",
                "roles": ["handler"],
                "region_code": unit.split("-")[1],
                "unit_code": unit,
                "username": username[:32],
                "password": password,
            }
            assert client.post("/api/v1/users", json=body).status_code == 201
            r = anon.post(
                "/api/v1/auth/token", json={"username": username[:32], "password": password}
            )
            made[unit] = Desk(anon, {"Authorization": f"Bearer {r.json()['access_token']}"})
        return made[unit]

    return make


@pytest.fixture
def section_handler(handler_at: Callable[[str], Desk]) -> Desk:
    """A handler in 义和镇's livelihood-services office (民生服务办)."""
    return handler_at(f"TC-{YIHE}-MS")
