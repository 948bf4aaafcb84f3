"""Evaluation counts equal what the timelines say, for a scripted set of cases."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.auth.permissions import permissions_of
from cityops.auth.principal import Principal
from cityops.db import utcnow
from cityops.events import evaluation, intake, lifecycle
from cityops.events.lifecycle import Action, ActionInput
from cityops.events.models import Case
from cityops.org.models import Unit

GRID = "500154024003001"
PA, MS = "TC-500154024-PA", "TC-500154024-MS"
WEIGHTS = {"closure_rate": 0.5, "satisfaction_rate": 0.5, "rework_rate": -0.2}


def person(role: str, region: str = "500154024", unit_id: int | None = None) -> Principal:
    return Principal(
        "person", 0, role, frozenset({role}), permissions_of({role}), region, unit_id=unit_id
    )


@pytest.fixture
def scripted(session: Session) -> dict[str, object]:
    units = dict(session.execute(select(Unit.code, Unit.id).where(Unit.code.in_([PA, MS]))).all())
    town, grid = person("dispatcher"), person("grid_worker", GRID)
    pa, ms = person("handler", unit_id=units[PA]), person("handler", unit_id=units[MS])
    t0 = utcnow()

    def new_case(unit: str, at: object) -> Case:
        citizen = Principal(
            "person", 0, "群众", frozenset({"citizen"}), permissions_of({"citizen"}), "500154"
        )
        case, _ = intake.report(session, citizen, intake.Report("路面破损", region_code=GRID), t0)
        lifecycle.act(session, case, Action.register, town, ActionInput(category="SR01"), t0)
        lifecycle.act(session, case, Action.dispatch, town, ActionInput(unit=unit), t0)
        return case

    def step(case: Case, who: Principal, action: Action, minutes: float, **data: object) -> None:
        lifecycle.act(
            session, case, action, who, ActionInput(**data), t0 + timedelta(minutes=minutes)
        )  # type: ignore[arg-type]

    a = new_case(PA, t0)  # accepted at once, done, closed, satisfied
    step(a, pa, Action.accept, 5)
    step(a, pa, Action.report_done, 60, note="已修复")
    step(a, grid, Action.verify_ok, 90)
    step(a, town, Action.rate, 100, satisfied=True)  # recorded by the town from a call-back
    b = new_case(PA, t0)  # accepted late, redone once, closed, then unsatisfied (reopened)
    step(b, pa, Action.accept, 180)
    step(b, pa, Action.report_done, 200, note="已处理")
    step(b, grid, Action.verify_fail, 210, note="未修好")
    step(b, pa, Action.accept, 215)
    step(b, pa, Action.report_done, 240, note="再次处理")
    step(b, grid, Action.verify_ok, 250)
    step(b, town, Action.rate, 260, satisfied=False)
    c = new_case(MS, t0)  # wrong unit: returned
    step(c, ms, Action.return_, 10, note="非本办职责")
    return {"since": t0 - timedelta(hours=1), "until": t0 + timedelta(days=1)}


def test_counts_and_rates_per_unit(session: Session, scripted: dict[str, object]) -> None:
    rows = {
        r.key: r
        for r in evaluation.evaluate(
            session,
            scripted["since"],
            scripted["until"],  # type: ignore[arg-type]
            weights=WEIGHTS,
        )
    }
    assert rows[PA].counts == {
        "dispatched": 2,
        "accepted": 3,
        "accepted_on_time": 2,
        "handled": 3,
        "closed": 2,
        "closed_on_time": 2,
        "overdue": 0,
        "reworked": 2,
        "returned": 0,
        "rated": 2,
        "satisfied": 1,
    }
    assert rows[PA].rates["closure_rate"] == 1.0 and rows[PA].rates["satisfaction_rate"] == 0.5
    assert rows[PA].rates["rework_rate"] == round(2 / 3, 4)
    assert (
        rows[PA].rates["timely_accept_rate"] == 1.0
    )  # B's first acceptance was late, its rework's was not
    assert rows[MS].counts["dispatched"] == 1 and rows[MS].counts["returned"] == 1
    assert rows[MS].rates["accurate_dispatch_rate"] == 0.0 and rows[MS].rates["closure_rate"] == 0.0
    # Composite: (0.5·1.0 + 0.5·0.5 − 0.2·0.6667) / (0.5 + 0.5) = 0.6167 → 61.7, grade C.
    assert rows[PA].score == 61.7 and rows[PA].grade == "C" and rows[PA].rank == 1
    assert rows[MS].rank == 2


def test_by_town_and_scope(session: Session, scripted: dict[str, object]) -> None:
    towns = evaluation.evaluate(session, scripted["since"], scripted["until"], group="town")  # type: ignore[arg-type]
    yihe = next(r for r in towns if r.key == "500154024")
    assert yihe.name == "义和镇" and yihe.counts["dispatched"] == 3 and yihe.counts["closed"] == 2
    elsewhere = evaluation.evaluate(
        session, scripted["since"], scripted["until"], scope="500154001"
    )  # type: ignore[arg-type]
    assert elsewhere == []
    before = evaluation.evaluate(
        session,
        scripted["since"] - timedelta(days=3),
        scripted["since"],  # type: ignore[operator]
    )
    assert before == []


def test_api_and_exports(client: TestClient, scripted: dict[str, object]) -> None:
    params = {"since": scripted["since"].isoformat(), "until": scripted["until"].isoformat()}  # type: ignore[attr-defined]
    body = client.get("/api/v1/evaluation", params=params).json()
    pa = next(i for i in body["items"] if i["key"] == PA)
    assert pa["counts"]["closed"] == 2 and body["rates"]["closure_rate"] == "结案率"
    csv_text = client.get("/api/v1/evaluation.csv", params=params).text
    assert "结案率" in csv_text.splitlines()[0] and PA in csv_text
    xlsx = client.get("/api/v1/evaluation.xlsx", params=params)
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet is not None and sheet["C1"].value == "名称"
    assert any(row[1].value == PA for row in sheet.iter_rows(min_row=2))
    bad = client.get("/api/v1/evaluation", params={"since": "2026-07-01T00:00:00"})
    assert bad.status_code == 422
    reversed_ = client.get(
        "/api/v1/evaluation", params={"since": params["until"], "until": params["since"]}
    )
    assert (
        reversed_.status_code == 422 and reversed_.json()["error"]["fields"][0]["field"] == "until"
    )


def test_by_role_and_person(client: TestClient) -> None:
    """Actions taken through the API carry the account that took them."""
    code = client.post(
        "/api/v1/cases", json={"description": "路灯不亮", "region_code": GRID, "source": "hotline"}
    ).json()["code"]
    client.post(f"/api/v1/cases/{code}/actions/register", json={"category": "GY02"})
    client.post(f"/api/v1/cases/{code}/actions/dispatch", json={"unit": "DEPT-10"})
    roles = client.get("/api/v1/evaluation", params={"group": "role"}).json()["items"]
    admin = next(r for r in roles if r["key"] == "admin")
    assert admin["name"] == "系统管理员" and admin["counts"]["dispatched"] >= 1
    people = client.get("/api/v1/evaluation", params={"group": "person"}).json()["items"]
    assert sum(p["counts"]["dispatched"] for p in people) >= 1
