"""The alarm lifecycle over HTTP, alarm → case with its timeline kept in step, rules by API,
and every change on the live feed and in the audit log."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cityops.auth.models import AuditEntry
from cityops.auth.permissions import permissions_of
from cityops.auth.principal import Principal
from cityops.db import utcnow
from cityops.events import lifecycle
from cityops.events.lifecycle import Action, ActionInput
from cityops.events.models import Case, CaseEvent
from tests.telemetry.conftest import Kit


def now_ms(minutes: float = 0) -> int:
    return int((utcnow() + timedelta(minutes=minutes)).timestamp() * 1000)


def post(
    anon: TestClient, key: dict[str, str], device: str, metric: str, value: float, minutes: float
) -> dict[str, Any]:
    body = [{"device": device, "metric": metric, "ts": now_ms(minutes), "value": value}]
    r = anon.post("/api/v1/telemetry", json=body, headers=key)
    assert r.status_code == 200, r.text
    return dict(r.json())


def make_rule(client: TestClient, **extra: Any) -> None:
    body = {
        "code": "t-hydrant",
        "name": "消火栓压力过低",
        "kind": "threshold",
        "scope": "device_type",
        "scope_value": "hydrant",
        "metric": "pressure_mpa",
        "params": {"op": "below", "value": 0.10, "clear": 0.14},
        "severity": "critical",
    } | extra
    r = client.post("/api/v1/alarm-rules", json=body)
    assert r.status_code == 201, r.text


def test_lifecycle_over_http(
    client: TestClient,
    anon: TestClient,
    credentials: dict[str, str],
    kit: Kit,
    session: Session,
    login: Callable[[str], dict[str, str]],
) -> None:
    make_rule(client)
    key = {"X-API-Key": credentials["(API key)"]}
    h = kit.codes["hydrant"]
    out = post(anon, key, h, "pressure_mpa", 0.05, -10)
    [alarm_id] = out["alarms"]
    listed = client.get("/api/v1/alarms").json()
    assert listed["total"] == 1 and listed["items"][0]["condition"] == "active"

    leader = login("demo-leader")  # may look, may not act
    assert anon.get(f"/api/v1/alarms/{alarm_id}", headers=leader).status_code == 200
    assert anon.post(f"/api/v1/alarms/{alarm_id}/ack", json={}, headers=leader).status_code == 403

    r = client.post(f"/api/v1/alarms/{alarm_id}/comment", json={"note": "已通知供水公司"})
    assert r.status_code == 200
    assert client.post(f"/api/v1/alarms/{alarm_id}/comment", json={"note": " "}).status_code == 422
    r = client.post(f"/api/v1/alarms/{alarm_id}/shelve", json={"minutes": 30, "reason": "检修"})
    assert r.json()["shelved_until"] is not None
    assert client.get("/api/v1/alarms").json()["total"] == 0  # hidden while shelved
    assert client.get("/api/v1/alarms", params={"shelved": True}).json()["total"] == 1
    client.post(f"/api/v1/alarms/{alarm_id}/unshelve", json={})
    r = client.post(f"/api/v1/alarms/{alarm_id}/shelve", json={"minutes": 99999, "reason": "x"})
    assert r.status_code == 422

    r = client.post(f"/api/v1/alarms/{alarm_id}/ack", json={"note": "收到"})
    assert r.json()["acked"] is True and r.json()["closed_at"] is None  # still active
    assert client.post(f"/api/v1/alarms/{alarm_id}/ack", json={}).status_code == 409
    # The condition is still there: a person cannot clear it away.
    assert client.post(f"/api/v1/alarms/{alarm_id}/clear", json={}).status_code == 409

    post(anon, key, h, "pressure_mpa", 0.30, -5)  # pressure back
    detail = client.get(f"/api/v1/alarms/{alarm_id}").json()
    assert detail["condition"] == "cleared" and detail["closed_at"] is not None
    assert [e["action"] for e in detail["history"]] == [
        "raised",
        "comment",
        "shelved",
        "unshelved",
        "acked",
        "cleared",
        "closed",
    ]
    # The next occurrence is a new alarm.
    out = post(anon, key, h, "pressure_mpa", 0.01, -1)
    assert out["alarms"] and out["alarms"][0] != alarm_id

    feed = client.get("/api/v1/feed", params={"topic": "alarm"}).json()
    assert [i["action"] for i in feed["items"]][:3] == ["raised", "comment", "shelved"]
    later = client.get("/api/v1/feed", params={"after": feed["next"]}).json()
    assert later["items"] == []
    audited = session.scalar(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.entity == "alarms")
    )
    assert audited and audited >= 7


def test_alarm_opens_a_routed_case_and_case_closure_clears_latch(
    client: TestClient,
    anon: TestClient,
    credentials: dict[str, str],
    kit: Kit,
    session: Session,
) -> None:
    make_rule(
        client,
        latch=True,
        open_case=True,
        case_category="GY06",
        case_urgency="urgent",
        case_route=True,
    )
    key = {"X-API-Key": credentials["(API key)"]}
    h = kit.codes["hydrant"]
    [alarm_id] = post(anon, key, h, "pressure_mpa", 0.05, -10)["alarms"]
    alarm = client.get(f"/api/v1/alarms/{alarm_id}").json()
    case = session.scalar(select(Case).where(Case.code == alarm["case"]))
    assert case is not None and case.source == "sensor_alarm" and case.urgency == "urgent"
    assert case.state == "dispatched"  # registered and routed as the event center suggests
    assert case.region_code == kit.grid.code

    post(anon, key, h, "pressure_mpa", 0.30, -5)  # latched: stays active
    alarm = client.get(f"/api/v1/alarms/{alarm_id}").json()
    assert alarm["condition"] == "active" and alarm["history"][-1]["action"] == "normal"
    client.post(f"/api/v1/alarms/{alarm_id}/ack", json={"note": "派人查看"})
    actions = list(
        session.scalars(
            select(CaseEvent.action).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id)
        )
    )
    assert "alarm_acked" in actions
    # The note on the case timeline is on the live feed too, for open case pages and screens.
    case_feed = client.get("/api/v1/feed", params={"topic": "cases"}).json()["items"]
    assert any(i["action"] == "alarm_acked" and i["ref"] == case.code for i in case_feed)

    # Close the case through the loop: the latched alarm is cleared and, being acked, closes.
    handler = Principal(
        "person",
        0,
        "处置人",
        frozenset({"handler"}),
        permissions_of({"handler"}),
        "500154",
        unit_id=case.current_unit_id,
    )
    admin = Principal(
        "person", 0, "核查", frozenset({"admin"}), permissions_of({"admin"}), "500154"
    )
    now = utcnow()
    for who, action in (
        (handler, Action.accept),
        (handler, Action.report_done),
        (admin, Action.verify_ok),
    ):
        lifecycle.act(session, case, action, who, ActionInput(note="ok"), now)
    session.flush()
    alarm = client.get(f"/api/v1/alarms/{alarm_id}").json()
    assert alarm["condition"] == "cleared" and alarm["closed_at"] is not None
    assert any("已结案" in e["note"] for e in alarm["history"])


def test_rules_by_api(
    client: TestClient, login: Callable[[str], dict[str, str]], anon: TestClient
) -> None:
    make_rule(client)
    r = client.patch(
        "/api/v1/alarm-rules/t-hydrant",
        json={"params": {"op": "below", "value": 0.2, "clear": 0.1}},
    )
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "params.clear"
    r = client.patch("/api/v1/alarm-rules/t-hydrant", json={"enabled": False})
    assert r.json()["enabled"] is False
    r = client.post(
        "/api/v1/alarm-rules",
        json={
            "code": "x",
            "name": "x",
            "kind": "threshold",
            "scope": "device_type",
            "scope_value": "gnss",
            "severity": "loud",
        },
    )
    assert r.status_code == 422
    r = anon.post("/api/v1/alarm-rules", json={}, headers=login("demo-commander"))
    assert r.status_code == 403
