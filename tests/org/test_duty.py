from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.errors import InvalidInput
from cityops.geo import service as geo
from cityops.org import service as org
from cityops.org.models import Person, Unit
from cityops.org.roles import Role

GRID = "500154024001001"
NOW = datetime(2026, 7, 15, 3, 0, tzinfo=UTC)


def test_standing_grid_worker_is_on_duty(session: Session) -> None:
    person = org.on_duty(session, GRID, NOW)
    assert person is not None and person.title == "专职网格员"
    assert [r.role for r in person.roles] == [Role.grid_worker.value]


def test_a_shift_covers_the_grid_while_it_lasts(session: Session) -> None:
    grid = geo.get_region(session, GRID)
    station = org.get_unit(session, f"VS-{GRID[:12]}")
    cover = org.add_person(
        session,
        code="T-COVER",
        name="夜班员",
        unit=station,
        region=grid,
        roles=[Role.grid_worker],
        mobile="13800000000",
    )
    org.add_shift(
        session,
        grid=grid,
        person=cover,
        starts_at=NOW,
        ends_at=NOW + timedelta(hours=12),
        note="夜间值守",
    )
    session.flush()
    assert org.on_duty(session, GRID, NOW + timedelta(hours=1)).code == "T-COVER"  # type: ignore[union-attr]
    standing = org.on_duty(session, GRID, NOW + timedelta(hours=13))
    assert standing is not None and standing.code != "T-COVER"
    assert org.on_duty(session, GRID, NOW - timedelta(minutes=1)).code != "T-COVER"  # type: ignore[union-attr]


def test_nobody_before_any_assignment(session: Session) -> None:
    assert org.on_duty(session, GRID, datetime(2020, 1, 1, tzinfo=UTC)) is None


def test_shift_validation(session: Session) -> None:
    village = geo.get_region(session, GRID[:12])
    person = session.scalars(select(Person).limit(1)).one()
    with pytest.raises(InvalidInput, match="not a grid"):
        org.add_shift(session, grid=village, person=person, starts_at=NOW)
    grid = geo.get_region(session, GRID)
    with pytest.raises(InvalidInput) as info:
        org.add_shift(session, grid=grid, person=person, starts_at=NOW, ends_at=NOW)
    assert info.value.field == "ends_at"
    unit = session.scalars(select(Unit).limit(1)).one()
    with pytest.raises(InvalidInput):
        org.add_person(session, code="X", name="无角色", unit=unit, region=grid, roles=[])


def test_on_duty_api_masks_the_phone_number(client: TestClient) -> None:
    r = client.get(f"/api/v1/regions/{GRID}/on-duty", params={"at": "2026-07-15T11:00:00+08:00"})
    body = r.json()
    assert r.status_code == 200 and body["person_code"] and body["title"] == "专职网格员"
    assert body["mobile"][3:7] == "****"


def test_on_duty_api_rejects_non_grids_and_naive_times(client: TestClient) -> None:
    assert client.get(f"/api/v1/regions/{GRID[:12]}/on-duty").status_code == 422
    naive = client.get(f"/api/v1/regions/{GRID}/on-duty", params={"at": "2026-07-15T11:00:00"})
    assert naive.status_code == 422 and naive.json()["error"]["fields"][0]["field"] == "at"


def test_units_api(client: TestClient) -> None:
    depts = client.get("/api/v1/units", params={"kind": "department"}).json()
    assert len(depts) == 21 and sum(d["one_window"] for d in depts) == 19
    assert any(d["name"] == "区规划自然资源局" for d in depts)
    yihe = client.get("/api/v1/units", params={"kind": "town_center", "region": "500154024"}).json()
    assert [u["name"] for u in yihe] == ["义和镇基层治理指挥中心"]
