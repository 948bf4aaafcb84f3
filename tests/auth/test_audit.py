"""Every write is audited (who, when, what, before/after, address); the log is append-only."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from cityops.auth.models import Account, AuditEntry
from cityops.events.models import Case


def entries(session: Session, **where: str) -> list[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.id)
    for key, value in where.items():
        query = query.where(getattr(AuditEntry, key) == value)
    return list(session.scalars(query))


def test_account_changes_are_audited_with_before_and_after(
    client: TestClient, session: Session
) -> None:
    me = client.get("/api/v1/auth/me").json()
    created = client.post(
        "/api/v1/users",
        json={
            "name": "王小明",
            "roles": ["handler"],
            "region_code": "500154024",
            "unit_code": "TC-500154024-MS",
            "username": "wangxm",
            "password": "Liang-shan-ridge-47",
        },
    ).json()
    person_created = entries(session, action="create", entity="people")
    assert person_created and person_created[-1].summary["after"]["name"] == "王小明"
    account_created = entries(
        session, action="create", entity="accounts", entity_id=str(created["id"])
    )
    assert len(account_created) == 1
    entry = account_created[0]
    assert entry.actor_kind == "person" and entry.actor_id == str(me["account"]["id"])
    assert entry.actor_name == me["name"] and entry.ip == "testclient"
    assert entry.summary["after"]["password_hash"] == "***"  # secrets never reach the log

    client.patch(f"/api/v1/users/{created['id']}", json={"name": "王晓明", "active": False})
    changes = entries(session, action="update", entity="people")
    assert changes[-1].summary == {"before": {"name": "王小明"}, "after": {"name": "王晓明"}}
    disabled = entries(session, action="update", entity="accounts", entity_id=str(created["id"]))
    assert disabled[-1].summary["after"] == {"active": False}


def test_api_key_writes_are_audited_without_the_secret(
    client: TestClient, session: Session
) -> None:
    body = client.post(
        "/api/v1/api-keys", json={"name": "雨量站", "scopes": ["telemetry:write"]}
    ).json()
    entry = entries(session, action="create", entity="api_keys", entity_id=str(body["id"]))[0]
    assert entry.summary["after"]["secret_hash"] == "***"
    assert body["key"].split("_", 2)[2] not in str(entry.summary)
    client.post(f"/api/v1/api-keys/{body['id']}/revoke")
    assert entries(session, action="update", entity="api_keys", entity_id=str(body["id"]))


def test_log_in_and_log_out_are_audited(
    anon: TestClient, credentials: dict[str, str], session: Session
) -> None:
    anon.post("/api/v1/auth/token", json={"username": "demo-shift", "password": "wrong-password-9"})
    r = anon.post(
        "/api/v1/auth/token", json={"username": "demo-shift", "password": credentials["demo-shift"]}
    )
    token = r.json()["access_token"]
    anon.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"})
    failed = entries(session, action="login_failed")[-1]
    assert failed.actor_kind == "anonymous" and failed.summary["login"] == "demo-shift"
    account_id = session.scalar(select(Account.id).where(Account.username == "demo-shift"))
    assert entries(session, action="login", entity_id=str(account_id))
    assert entries(session, action="logout", entity_id=str(account_id))


def test_audit_log_is_append_only_in_the_database(client: TestClient, session: Session) -> None:
    client.post("/api/v1/api-keys", json={"name": "x", "scopes": ["open311:post"]})
    for statement in ("UPDATE audit_log SET action = 'tampered'", "DELETE FROM audit_log"):
        nested = session.begin_nested()
        with pytest.raises(DBAPIError, match="append-only"):
            session.execute(text(statement))
        nested.rollback()


def test_no_api_edits_the_audit_log(client: TestClient) -> None:
    for method in ("PUT", "PATCH", "DELETE", "POST"):
        assert client.request(method, "/api/v1/audit").status_code == 405


def test_search_and_csv_export(client: TestClient, session: Session) -> None:
    client.post("/api/v1/api-keys", json={"name": "搜索用", "scopes": ["open311:post"]})
    page = client.get("/api/v1/audit", params={"entity": "api_keys", "action": "create"}).json()
    assert page["total"] >= 1 and all(i["entity"] == "api_keys" for i in page["items"])
    naive = client.get("/api/v1/audit", params={"since": "2026-01-01T00:00:00"})
    assert naive.status_code == 422 and naive.json()["error"]["fields"][0]["field"] == "since"

    export = client.get("/api/v1/audit.csv", params={"entity": "api_keys"})
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(export.text.lstrip("\ufeff"))))
    assert rows[0][:3] == ["id", "at", "actor_kind"]
    assert any("搜索用" in row[9] for row in rows[1:])
    assert entries(session, action="export", entity="audit_log")  # exporting is itself audited


def test_only_auditors_read_the_log(login: object) -> None:
    # The matrix test covers every role; this names the rule.
    from cityops.auth.permissions import ROLE_PERMISSIONS, Permission

    readers = {r for r, perms in ROLE_PERMISSIONS.items() if Permission.audit_read in perms}
    assert {r.value for r in readers} == {"admin"}


def test_personal_data_is_redacted_in_the_audit_log(client: TestClient, session: Session) -> None:
    body = {
        "description": "路灯不亮",
        "region_code": "500154024003001",
        "source": "hotline",
        "reporter_name": "赵六",
        "reporter_phone": "13912345678",
    }
    code = client.post("/api/v1/cases", json=body).json()["code"]
    case_id = session.scalar(select(Case.id).where(Case.code == code))
    entry = entries(session, action="create", entity="cases", entity_id=str(case_id))[0]
    assert entry.summary["after"]["reporter_phone"] == "***"
    assert entry.summary["after"]["reporter_name"] == "***"
    assert "13912345678" not in str(entry.summary)
