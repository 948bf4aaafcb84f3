from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cityops.app import create_app
from cityops.config import Settings
from cityops.db import make_engine
from cityops.deps import DbSession
from cityops.geo.models import GeoState


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] == "ok"


def test_readiness_fails_cleanly_when_the_database_is_gone() -> None:
    engine = make_engine("postgresql://nobody@127.0.0.1:1/none")
    app = create_app(Settings(database_url="sqlite:///unused.db"), engine=engine)
    with TestClient(app) as c:
        r = c.get("/readyz")
    assert r.status_code == 503 and r.json()["database"] == "unreachable"


def test_openapi_docs_are_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/v1/locate" in paths and "/api/v1/regions/{code}/children.geojson" in paths


def test_request_owns_the_transaction(engine: Engine, db_url: str) -> None:
    """A route's writes are committed when it succeeds and rolled back when it fails."""
    router = APIRouter()

    @router.post("/t/{outcome}")
    def write(outcome: str, session: DbSession) -> dict[str, str]:
        state = session.get(GeoState, 1)
        assert state is not None
        state.revision = f"test-{outcome}"
        session.flush()
        if outcome == "fail":
            raise HTTPException(409, "planned failure")
        return {"ok": outcome}

    app = create_app(Settings(database_url=db_url), engine=engine)
    app.include_router(router)
    with Session(engine) as s:
        before = s.scalar(select(GeoState.revision))
    try:
        with TestClient(app) as c:
            assert c.post("/t/fail").status_code == 409
            with Session(engine) as s:
                assert s.scalar(select(GeoState.revision)) == before
            assert c.post("/t/ok").status_code == 200
            with Session(engine) as s:
                assert s.scalar(select(GeoState.revision)) == "test-ok"
    finally:
        with Session(engine) as s:
            state = s.get(GeoState, 1)
            assert state is not None
            state.revision = before or "x"
            s.commit()


def test_unknown_route_is_a_404_json(client: TestClient) -> None:
    assert client.get("/api/v1/nothing-here").status_code == 404


def test_values_the_database_refuses_are_422_not_500(client: TestClient) -> None:
    for url in ("/api/v1/cases?unit=x%00", "/api/v1/cases?q=%00abc", "/api/v1/people?unit=a%00"):
        r = client.get(url)
        assert r.status_code in (200, 422), (url, r.status_code)
    r = client.patch("/api/v1/categories/GY01%00", json={"limit_normal_h": 5})
    assert r.status_code in (404, 422)
    r = client.post(
        "/api/v1/cases", json={"description": "井盖\u0000缺失", "region_code": "500154024003001"}
    )
    assert r.status_code in (201, 422)
